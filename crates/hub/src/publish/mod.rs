//! Making an upload visible: the one place that decides where a file goes
//! and writes its entry, for every way in (uploads over the protocol, small
//! uploads in group commits, relayed copies, and later HTTP and WebDAV).
//!
//! Invariants (each kept here and nowhere else):
//! - a catalog entry exists only if its blob is durable in the store;
//! - a blob is trusted only while some entry refers to it: one nothing
//!   refers to may be a crash's leftover and is replaced, never reused.
//!   Blobs are placed and entries written under `commit_lock`, and
//!   deletions check references under the same lock;
//! - a name is decided under `commit_lock` at commit time ([`Placement`]);
//!   deciding it earlier (to refuse before the bytes come) is only a hint;
//! - at most one upload at a time writes a given partial file (`uploads`);
//! - small uploads wait in memory within `UPLOAD_MEMORY` bytes in all.
//!
//! The `group` module commits many small uploads at once under the same
//! rules; `copies` lists stored bytes under another name (WebDAV COPY, MOVE).

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use ferry_protocol::{ConflictPolicy, ContentHash, ErrorCode, Event, FileEntry, FileName, Handle};
use tokio::sync::broadcast;

use crate::catalog::Catalog;
use crate::error::HubError;
use crate::outcome::{Outcome, Refusal, not_found};
use crate::store::Store;

pub mod accounts;
pub mod copies;
pub(crate) mod group;

use accounts::Accounts;

/// Highest `n` tried for `name (n).ext` under the rename policy.
const MAX_RENAME_ATTEMPTS: u32 = 10_000;

/// Bytes of small uploads held in memory until their group commit, across
/// all sessions; past it, uploads wait in temp files instead.
pub(crate) const UPLOAD_MEMORY: usize = 8 << 20;

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
    /// The uploader is an admin: any folder, any file to overwrite.
    pub admin: bool,
    /// A copy the hub keeps of a relayed file: counted against no one's
    /// quota, but within the hub's budget for such copies.
    pub relayed: bool,
}

/// What a name must hold at commit for a conditional write (HTTP
/// `If-Match`, `If-None-Match: *`), checked under `commit_lock` so that
/// no write in between is lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Anything, or nothing.
    Any,
    /// Nothing: the write creates the name.
    Absent,
    /// The file with this hash.
    Holds(ContentHash),
}

impl Precondition {
    /// The refusal when `current` is not what is asked for.
    fn refuse(self, name: &str, current: Option<&FileEntry>) -> Option<Refusal> {
        let met = match self {
            Self::Any => true,
            Self::Absent => current.is_none(),
            Self::Holds(hash) => current.is_some_and(|c| c.hash == hash),
        };
        (!met).then(|| {
            let now = current.map_or_else(|| "gone".to_owned(), |c| format!("now {}", c.hash.short()));
            Refusal::new(
                ErrorCode::PreconditionFailed,
                format!("'{name}' is not the version the request named (it is {now}); nothing was changed"),
            )
        })
    }
}

/// What placing a file resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Store under this name.
    Store(FileName),
    /// The name already holds exactly these bytes: nothing to do.
    AlreadyThere(FileEntry),
}

/// The publishing path and the locks that keep it consistent.
pub struct Publisher {
    catalog: Catalog,
    store: Arc<Store>,
    events: broadcast::Sender<Event>,
    commit_lock: tokio::sync::Mutex<()>,
    /// Uploads waiting for the next group commit.
    group: Mutex<Vec<group::Waiting>>,
    /// Bytes of small uploads that may wait in memory for their commit.
    pub(crate) upload_memory: Arc<tokio::sync::Semaphore>,
    uploads: Mutex<HashSet<ContentHash>>,
    /// Quotas and folder owners.
    pub accounts: Arc<Accounts>,
}

impl Publisher {
    /// Publishes into `catalog` and `store`, announcing uploads and
    /// deletions on `events`.
    pub fn new(
        catalog: Catalog,
        store: Arc<Store>,
        events: broadcast::Sender<Event>,
        accounts: Arc<Accounts>,
    ) -> Self {
        Self {
            accounts,
            catalog,
            store,
            events,
            commit_lock: tokio::sync::Mutex::new(()),
            group: Mutex::new(Vec::new()),
            upload_memory: Arc::new(tokio::sync::Semaphore::new(UPLOAD_MEMORY)),
            uploads: Mutex::new(HashSet::new()),
        }
    }

    /// Marks upload `key` as in progress; `None` if another session holds it.
    pub fn claim_upload(self: &Arc<Self>, key: ContentHash) -> Option<UploadClaim> {
        let mut uploads = self
            .uploads
            .lock()
            .expect("upload set lock is never poisoned");
        uploads.insert(key).then(|| UploadClaim {
            publisher: Arc::clone(self),
            key,
        })
    }

    /// Decides where a publication would go now (checked again at commit).
    pub async fn place(&self, publication: &Publication) -> Result<Outcome<Placement>, HubError> {
        let current = self.catalog.get(&publication.name).await?;
        self.place_given(publication, current, false).await
    }

    /// [`Self::place`] given the catalog's `current` entry for the name;
    /// at commit (`committing`, under `commit_lock`), a new folder is
    /// claimed for the uploader.
    pub(crate) async fn place_given(
        &self,
        publication: &Publication,
        current: Option<FileEntry>,
        committing: bool,
    ) -> Result<Outcome<Placement>, HubError> {
        let name = &publication.name;
        let (owner, admin) = (&publication.owner, publication.admin);
        if let Err(refusal) = self.accounts.may_store(name, owner, admin, committing) {
            return Ok(Outcome::Refused(refusal));
        }
        let Some(existing) = current else {
            return Ok(Outcome::Done(Placement::Store(name.clone())));
        };
        if existing.hash == publication.hash && existing.size == publication.size {
            return Ok(Outcome::Done(Placement::AlreadyThere(existing)));
        }
        let theirs = existing.owner != publication.owner.as_str() && !publication.admin;
        let refusal = match publication.policy {
            // Only who may overwrite is told to.
            ConflictPolicy::Refuse if theirs => Refusal::new(
                ErrorCode::Conflict,
                format!(
                    "'{name}' already exists and belongs to {}; use --rename to keep both, or pick another name",
                    existing.owner
                ),
            ),
            ConflictPolicy::Refuse => Refusal::new(
                ErrorCode::Conflict,
                format!(
                    "'{name}' already exists (uploaded by {}); use --overwrite to replace it or --rename to keep both",
                    existing.owner
                ),
            ),
            ConflictPolicy::Overwrite if theirs => Refusal::new(
                ErrorCode::PermissionDenied,
                format!(
                    "not allowed: '{name}' belongs to {}; only its owner or an admin may overwrite it",
                    existing.owner
                ),
            ),
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
    /// `None` and `proven` possession of them, reuses a blob an entry
    /// already refers to) and writes the entry. Returns
    /// `Ok(Outcome::Done(None))` when `bytes` is `None` and no entry refers
    /// to the blob, or possession is not proven, so the caller must ask for
    /// the bytes after all.
    pub async fn publish(
        &self,
        publication: &Publication,
        bytes: Option<&Path>,
        proven: bool,
    ) -> Result<Outcome<Option<(FileEntry, bool)>>, HubError> {
        self.publish_when(publication, bytes, proven, Precondition::Any)
            .await
    }

    /// [`Self::publish`] only if the name holds what `precondition` says.
    pub async fn publish_when(
        &self,
        publication: &Publication,
        bytes: Option<&Path>,
        proven: bool,
        precondition: Precondition,
    ) -> Result<Outcome<Option<(FileEntry, bool)>>, HubError> {
        let _commit = self.commit_lock.lock().await;
        let current = self.catalog.get(&publication.name).await?;
        if let Some(refusal) = precondition.refuse(publication.name.as_str(), current.as_ref()) {
            return Ok(Outcome::Refused(refusal));
        }
        let name = match self.place_given(publication, current, true).await? {
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
                crash_point!("commit::before_blobs");
                self.store
                    .commit(path, &publication.hash, referenced)
                    .await?;
                crash_point!("commit::after_blobs");
                false
            }
            None if referenced => {
                // A hash names bytes of one size: a claim of another size
                // is a lie that would break every reader of the entry.
                let stored = self.catalog.size_of_blob(&publication.hash).await?;
                if stored != Some(publication.size) {
                    return Ok(Outcome::Refused(Refusal::new(
                        ErrorCode::SizeMismatch,
                        format!(
                            "'{name}': the announced size does not match the bytes with that hash; nothing was stored"
                        ),
                    )));
                }
                // A hash is not a key: without a proof of possession the
                // bytes themselves must come.
                if !proven {
                    return Ok(Outcome::Done(None));
                }
                true
            }
            None => return Ok(Outcome::Done(None)),
        };
        let entry = FileEntry {
            name: name.to_string(),
            size: publication.size,
            hash: publication.hash,
            owner: publication.owner.to_string(),
            modified: unix_now(),
        };
        let previous = self.catalog.put(&entry).await?;
        crash_point!("commit::after_entries");
        if publication.relayed {
            self.catalog
                .mark_relayed(&entry.name, entry.size, entry.modified)
                .await?;
        }
        self.written(&entry, previous.as_ref(), publication.relayed)
            .await?;
        if let Some(previous) = previous {
            self.release_blob(&previous.hash).await?;
        }
        self.announce(Event::Uploaded {
            handle: entry.owner.clone(),
            name: entry.name.clone(),
            at: entry.modified,
        });
        Ok(Outcome::Done(Some((entry, deduplicated))))
    }

    /// Counts a written entry against its owner (unless it is a relayed
    /// copy) and gives back what the one it replaced took (unless that was
    /// one), and records a new folder's owner.
    pub(crate) async fn written(
        &self,
        entry: &FileEntry,
        replaced: Option<&FileEntry>,
        relayed: bool,
    ) -> Result<(), HubError> {
        if let Some(old) = replaced
            && !self.catalog.unmark_relayed(&old.name).await?
        {
            self.accounts.removed(old);
        }
        if !relayed {
            self.accounts.stored(entry, None);
        }
        if let Some((folder, owner)) = self.accounts.to_record(&entry.name) {
            self.catalog.claim_folder(&folder, &owner).await?;
        }
        Ok(())
    }

    /// Deletes `name` on behalf of `by`, who must own it or be an admin.
    pub async fn remove(
        &self,
        name: &FileName,
        by: &Handle,
        admin: bool,
    ) -> Result<Outcome<FileEntry>, HubError> {
        self.remove_when(name, by, admin, Precondition::Any).await
    }

    /// [`Self::remove`] only if the name holds what `precondition` says.
    pub async fn remove_when(
        &self,
        name: &FileName,
        by: &Handle,
        admin: bool,
        precondition: Precondition,
    ) -> Result<Outcome<FileEntry>, HubError> {
        let _commit = self.commit_lock.lock().await;
        let Some(entry) = self.catalog.get(name).await? else {
            return Ok(Outcome::Refused(not_found(name)));
        };
        if let Some(refusal) = precondition.refuse(name.as_str(), Some(&entry)) {
            return Ok(Outcome::Refused(refusal));
        }
        if entry.owner != by.as_str() && !admin {
            return Ok(Outcome::Refused(Refusal::new(
                ErrorCode::PermissionDenied,
                format!(
                    "not allowed: '{name}' belongs to {}; only its owner or an admin may delete it",
                    entry.owner
                ),
            )));
        }
        self.catalog.delete(name).await?;
        if !self.catalog.unmark_relayed(name.as_str()).await? {
            self.accounts.removed(&entry);
        }
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

    /// Tells every subscriber.
    fn announce(&self, event: Event) {
        // No subscribers is fine: nobody is listening.
        let _ = self.events.send(self.accounts.spell_event(event));
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Holds an upload key; releases it when dropped.
pub struct UploadClaim {
    publisher: Arc<Publisher>,
    key: ContentHash,
}

impl Drop for UploadClaim {
    fn drop(&mut self) {
        self.publisher
            .uploads
            .lock()
            .expect("upload set lock is never poisoned")
            .remove(&self.key);
    }
}
