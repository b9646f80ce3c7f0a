//! The hub's shared state: catalog, store, publishing path, presence
//! index, grants, TLS identity and event feed. Sessions hold an
//! `Arc<Hub>`. What makes an upload visible, and its invariants, is
//! [`crate::publish`].

use std::sync::Arc;

use ferry_protocol::{Event, Fingerprint};
use tokio::sync::broadcast;

use crate::access::Access;
use crate::catalog::Catalog;
use crate::config::HubConfig;
use crate::error::HubError;
use crate::grants::Grants;
use crate::index::{Index, OfferLimits};
use crate::publish::Publisher;
use crate::publish::accounts::Accounts;
use crate::store::Store;
use crate::tls::{self, TlsIdentity};

/// Events buffered per subscriber before a slow one starts missing some.
const EVENT_BACKLOG: usize = 256;

/// Shared hub state.
pub struct Hub {
    /// Settings.
    pub config: HubConfig,
    /// Metadata.
    pub catalog: Catalog,
    /// File bytes.
    pub store: Arc<Store>,
    /// The one way files become visible or go away.
    pub publisher: Arc<Publisher>,
    /// Who is online and what they offer.
    pub index: Index,
    /// Issued grants and waiting relays.
    pub grants: Grants,
    /// Admission, guessing, live sessions, audit log.
    pub access: Access,
    /// WebDAV's lock store.
    pub dav: crate::http::dav::DavState,
    /// Outstanding browser sign-in codes.
    pub web: crate::http::web::SignIns,
    /// Small blobs' verified bytes, for HTTP GETs.
    pub(crate) hot: crate::http::hot::HotBlobs,
    tls: Option<TlsIdentity>,
    next_session: std::sync::atomic::AtomicU64,
    events: broadcast::Sender<Event>,
    /// Held while the hub lives: one hub to a data directory.
    _lock: std::fs::File,
}

/// Takes `dir/hub.lock` (an advisory lock the kernel drops when the hub
/// exits, however it exits), or says which hub holds it: two hubs on one
/// data directory would each think their catalog, locks and uploads under
/// way are the only ones.
fn lock_data_dir(dir: &std::path::Path) -> Result<std::fs::File, HubError> {
    use std::io::{Read, Seek, Write};
    let path = dir.join("hub.lock");
    let io = |e| HubError::io("locking the data directory at", &path, e);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    if let Err(e) = rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        if e != rustix::io::Errno::WOULDBLOCK {
            return Err(io(e.into()));
        }
        let mut holder = String::new();
        let _ = file.read_to_string(&mut holder);
        let holder = match holder.trim() {
            "" => "its lock is held".to_owned(),
            pid => format!("pid {pid}"),
        };
        return Err(HubError::InUse {
            dir: dir.to_owned(),
            holder,
        });
    }
    file.set_len(0).map_err(io)?;
    file.rewind().map_err(io)?;
    write!(file, "{}", std::process::id()).map_err(io)?;
    Ok(file)
}

/// Says so when other users can read the data dir (one made before data
/// dirs were private, or by hand): every stored file is in it.
fn warn_if_open(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(dir) {
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            tracing::warn!(
                "the data dir {} is open to other users (mode {mode:o}): they can read every stored file; run chmod 700 {}",
                dir.display(),
                dir.display()
            );
        }
    }
}

impl Hub {
    /// Opens (creating on first start) the hub's state under `config.data_dir`.
    pub async fn open(config: HubConfig) -> Result<Arc<Self>, HubError> {
        let dir = &config.data_dir;
        ferry_io::disk::create_private_dir_all(dir)
            .map_err(|e| HubError::io("creating data directory", dir, e))?;
        warn_if_open(dir);
        let lock = lock_data_dir(dir)?;
        let store = Store::open(&dir.join("store"), config.partial_ttl)?;
        let catalog = Catalog::open(&dir.join("catalog.db")).await?;
        crate::respell::respell(&catalog).await?;
        crate::integrity::check(&catalog, &store, config.repair).await?;
        let store = Arc::new(store);
        let events = broadcast::channel(EVENT_BACKLOG).0;
        let accounts = Accounts::load(&catalog).await?;
        let publisher = Arc::new(Publisher::new(
            catalog.clone(),
            Arc::clone(&store),
            events.clone(),
            accounts,
        ));
        let access = Access::open(
            dir,
            &catalog,
            config.admission,
            config.registrations_per_source,
        )
        .await?;
        let tls = if config.tls {
            Some(tls::load(
                &dir.join("tls"),
                &config.tls_names,
                config.tls_files.as_ref(),
            )?)
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
            access,
            dav: crate::http::dav::DavState::default(),
            web: crate::http::web::SignIns::default(),
            hot: crate::http::hot::HotBlobs::default(),
            next_session: std::sync::atomic::AtomicU64::new(1),
            config,
            catalog,
            store,
            publisher,
            tls,
            events,
            _lock: lock,
        }))
    }

    /// The TLS identity, unless the hub runs in plaintext.
    pub fn tls(&self) -> Option<&TlsIdentity> {
        self.tls.as_ref()
    }

    /// The certificate fingerprint clients will pin.
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        self.tls.as_ref().map(TlsIdentity::fingerprint)
    }

    /// While no one owns this invite-only hub: the owner invite, as a link
    /// to `addr` (see [`Access::owner_invite`]).
    pub async fn owner_invite(
        &self,
        addr: &str,
    ) -> Result<Option<(ferry_protocol::InviteLink, bool)>, HubError> {
        self.access
            .owner_invite(&self.catalog, self.fingerprint(), addr)
            .await
    }

    /// A receiver of every future event.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.events.subscribe()
    }

    /// A number no other session of this run has.
    pub fn next_session_id(&self) -> u64 {
        self.next_session
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    }

    /// Tells every subscriber.
    pub fn announce(&self, event: Event) {
        // No subscribers is fine: nobody is listening.
        let _ = self.events.send(self.publisher.accounts.spell_event(event));
    }
}
