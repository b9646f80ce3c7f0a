//! The hub's shared state: catalog, store, TLS identity, event feed and the
//! locks that keep them consistent. Sessions hold an `Arc<Hub>`.
//!
//! Invariants:
//! - a catalog entry exists only if its blob is durable in the store;
//! - a blob is trusted only while some entry refers to it: one nothing
//!   refers to may be a crash's leftover and is replaced, never reused.
//!   Blobs are placed and entries written under `commit_lock`, and
//!   deletions check references under the same lock;
//! - at most one upload at a time writes a given partial file (`uploads`).

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use ferry_protocol::{
    ConflictPolicy, ContentHash, ErrorCode, Event, FileEntry, FileName, Fingerprint, Handle,
};
use tokio::sync::broadcast;

use crate::catalog::Catalog;
use crate::config::HubConfig;
use crate::error::HubError;
use crate::grants::Grants;
use crate::index::{Index, OfferLimits};
use crate::store::Store;
use crate::tls::{self, TlsIdentity};

/// Events buffered per subscriber before a slow one starts missing some.
const EVENT_BACKLOG: usize = 256;

/// Highest `n` tried for `name (n).ext` under the rename policy.
const MAX_RENAME_ATTEMPTS: u32 = 10_000;

/// Bytes of small uploads held in memory until their group commit, across
/// all sessions; past it, uploads wait in temp files instead.
pub(crate) const UPLOAD_MEMORY: usize = 8 << 20;

/// A request-level refusal: sent to the client, the session goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// What kind of refusal.
    pub code: ErrorCode,
    /// One line for a human.
    pub message: String,
}

impl Refusal {
    /// A refusal with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// Either a refusal for the client or an internal failure.
#[derive(Debug)]
pub enum Outcome<T> {
    /// It worked.
    Done(T),
    /// The client asked for something it may not have.
    Refused(Refusal),
}

/// A file about to be published: what the client announced, after checks.
#[derive(Debug, Clone)]
pub struct Publication {
    /// Requested name.
    pub name: FileName,
    /// Verified size.
    pub size: u64,
    /// Verified hash.
    pub hash: ContentHash,
    /// Uploader.
    pub owner: Handle,
    /// What to do if the name is taken.
    pub policy: ConflictPolicy,
}

/// What placing a file resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Store under this name.
    Store(FileName),
    /// The name already holds exactly these bytes: nothing to do.
    AlreadyThere(FileEntry),
}

/// Shared hub state.
pub struct Hub {
    /// Settings.
    pub config: HubConfig,
    /// Metadata.
    pub catalog: Catalog,
    /// File bytes.
    pub store: Store,
    /// Who is online and what they offer.
    pub index: Index,
    /// Issued grants and waiting relays.
    pub grants: Grants,
    tls: Option<TlsIdentity>,
    next_session: std::sync::atomic::AtomicU64,
    events: broadcast::Sender<Event>,
    pub(crate) commit_lock: tokio::sync::Mutex<()>,
    /// Uploads waiting for the next group commit.
    pub(crate) group: Mutex<Vec<crate::group::Waiting>>,
    /// Bytes of small uploads that may wait in memory for their commit.
    pub(crate) upload_memory: Arc<tokio::sync::Semaphore>,
    uploads: Mutex<HashSet<ContentHash>>,
}

impl Hub {
    /// Opens (creating on first start) the hub's state under `config.data_dir`.
    pub async fn open(config: HubConfig) -> Result<Arc<Self>, HubError> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir)
            .map_err(|e| HubError::io("creating data directory", dir, e))?;
        let store = Store::open(&dir.join("store"), config.partial_ttl)?;
        let catalog = Catalog::open(&dir.join("catalog.db")).await?;
        crate::integrity::check(&catalog, &store, config.repair).await?;
        let tls = if config.tls {
            Some(tls::load_or_create(&dir.join("tls"))?)
        } else {
            None
        };
        Ok(Arc::new(Self {
            index: Index::new(OfferLimits {
                per_peer: config.max_offers_per_peer,
                total: config.max_offers_total,
                total_bytes: config.max_offer_memory,
            }),
            grants: Grants::default(),
            next_session: std::sync::atomic::AtomicU64::new(1),
            config,
            catalog,
            store,
            tls,
            events: broadcast::channel(EVENT_BACKLOG).0,
            commit_lock: tokio::sync::Mutex::new(()),
            group: Mutex::new(Vec::new()),
            upload_memory: Arc::new(tokio::sync::Semaphore::new(UPLOAD_MEMORY)),
            uploads: Mutex::new(HashSet::new()),
        }))
    }

    /// The TLS identity, unless the hub runs in plaintext.
    pub fn tls(&self) -> Option<&TlsIdentity> {
        self.tls.as_ref()
    }

    /// The certificate fingerprint clients will pin.
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        self.tls.as_ref().map(|tls| tls.fingerprint)
    }

    /// A receiver of every future event.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// Marks upload `key` as in progress; `None` if another session holds it.
    pub fn claim_upload(self: &Arc<Self>, key: ContentHash) -> Option<UploadClaim> {
        let mut uploads = self
            .uploads
            .lock()
            .expect("upload set lock is never poisoned");
        uploads.insert(key).then(|| UploadClaim {
            hub: Arc::clone(self),
            key,
        })
    }

    /// Decides where a publication would go now (checked again at commit).
    pub async fn place(&self, publication: &Publication) -> Result<Outcome<Placement>, HubError> {
        let current = self.catalog.get(&publication.name).await?;
        self.place_given(publication, current).await
    }

    /// [`Self::place`] given the catalog's `current` entry for the name.
    pub(crate) async fn place_given(
        &self,
        publication: &Publication,
        current: Option<FileEntry>,
    ) -> Result<Outcome<Placement>, HubError> {
        let name = &publication.name;
        let Some(existing) = current else {
            return Ok(Outcome::Done(Placement::Store(name.clone())));
        };
        if existing.hash == publication.hash && existing.size == publication.size {
            return Ok(Outcome::Done(Placement::AlreadyThere(existing)));
        }
        let refusal = match publication.policy {
            ConflictPolicy::Refuse => Refusal::new(
                ErrorCode::Conflict,
                format!(
                    "'{name}' already exists (uploaded by {}); use --overwrite to replace it or --rename to keep both",
                    existing.owner
                ),
            ),
            ConflictPolicy::Overwrite if existing.owner != publication.owner.as_str() => {
                Refusal::new(
                    ErrorCode::PermissionDenied,
                    format!(
                        "'{name}' belongs to {}; only its owner may overwrite it",
                        existing.owner
                    ),
                )
            }
            ConflictPolicy::Overwrite => return Ok(Outcome::Done(Placement::Store(name.clone()))),
            ConflictPolicy::Rename => return self.free_numbered_name(name).await,
        };
        Ok(Outcome::Refused(refusal))
    }

    async fn free_numbered_name(&self, name: &FileName) -> Result<Outcome<Placement>, HubError> {
        for n in 1..=MAX_RENAME_ATTEMPTS {
            let Ok(candidate) = name.numbered(n) else {
                break;
            };
            if self.catalog.get(&candidate).await?.is_none() {
                return Ok(Outcome::Done(Placement::Store(candidate)));
            }
        }
        Ok(Outcome::Refused(Refusal::new(
            ErrorCode::Conflict,
            format!("no free name left for '{name}'"),
        )))
    }

    /// Makes a verified upload visible: moves the bytes at `bytes` (or, with
    /// `None`, reuses a blob an entry already refers to) and writes the
    /// entry. Returns `Ok(Outcome::Done(None))` when `bytes` is `None` and no
    /// entry refers to the blob, so the caller must ask for the bytes after all.
    pub async fn publish(
        &self,
        publication: &Publication,
        bytes: Option<&Path>,
    ) -> Result<Outcome<Option<(FileEntry, bool)>>, HubError> {
        let _commit = self.commit_lock.lock().await;
        let name = match self.place(publication).await? {
            Outcome::Refused(refusal) => return Ok(Outcome::Refused(refusal)),
            Outcome::Done(Placement::AlreadyThere(entry)) => {
                if let Some(path) = bytes {
                    self.store.commit(path, &entry.hash, true).await?;
                }
                return Ok(Outcome::Done(Some((entry, true))));
            }
            Outcome::Done(Placement::Store(name)) => name,
        };
        let referenced = self.catalog.hash_in_use(&publication.hash).await?;
        let deduplicated = match bytes {
            Some(path) => {
                self.store
                    .commit(path, &publication.hash, referenced)
                    .await?;
                false
            }
            None if referenced => true,
            None => return Ok(Outcome::Done(None)),
        };
        let entry = FileEntry {
            name: name.to_string(),
            size: publication.size,
            hash: publication.hash,
            owner: publication.owner.to_string(),
            modified: unix_now(),
        };
        if let Some(previous) = self.catalog.put(&entry).await? {
            self.release_blob(&previous.hash).await?;
        }
        self.announce(Event::Uploaded {
            handle: entry.owner.clone(),
            name: entry.name.clone(),
            at: entry.modified,
        });
        Ok(Outcome::Done(Some((entry, deduplicated))))
    }

    /// Deletes `name` on behalf of `by`, who must own it.
    pub async fn remove(
        &self,
        name: &FileName,
        by: &Handle,
    ) -> Result<Outcome<FileEntry>, HubError> {
        let _commit = self.commit_lock.lock().await;
        let Some(entry) = self.catalog.get(name).await? else {
            return Ok(Outcome::Refused(not_found(name)));
        };
        if entry.owner != by.as_str() {
            return Ok(Outcome::Refused(Refusal::new(
                ErrorCode::PermissionDenied,
                format!(
                    "'{name}' belongs to {}; only its owner may delete it",
                    entry.owner
                ),
            )));
        }
        self.catalog.delete(name).await?;
        self.release_blob(&entry.hash).await?;
        self.announce(Event::Deleted {
            handle: by.to_string(),
            name: entry.name.clone(),
            at: unix_now(),
        });
        Ok(Outcome::Done(entry))
    }

    /// Removes a blob once no entry refers to it. Caller holds `commit_lock`.
    pub(crate) async fn release_blob(&self, hash: &ContentHash) -> Result<(), HubError> {
        if !self.catalog.hash_in_use(hash).await? {
            self.store.remove_blob(hash).await?;
        }
        Ok(())
    }

    /// A number no other session of this run has.
    pub fn next_session_id(&self) -> u64 {
        self.next_session
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Tells every subscriber.
    pub fn announce(&self, event: Event) {
        // No subscribers is fine: nobody is listening.
        let _ = self.events.send(event);
    }
}

/// The refusal for a missing file.
pub fn not_found(name: &FileName) -> Refusal {
    Refusal::new(ErrorCode::NotFound, format!("no file '{name}' on the hub"))
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Holds an upload key; releases it when dropped.
pub struct UploadClaim {
    hub: Arc<Hub>,
    key: ContentHash,
}

impl Drop for UploadClaim {
    fn drop(&mut self) {
        self.hub
            .uploads
            .lock()
            .expect("upload set lock is never poisoned")
            .remove(&self.key);
    }
}
