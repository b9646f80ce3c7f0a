//! What the publisher checks per uploader: quotas (bytes stored plus bytes
//! of uploads under way, reserved before any byte flows) and top-level
//! folders (each belongs to whoever first stored in it; others add to it
//! only when allowed). Both are kept in memory, loaded once at start and
//! changed only by the publisher, so a check on the upload path is a map
//! lookup, not a query.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use ferry_protocol::{ErrorCode, Event, FileEntry, FileName, Handle, Hit, Source};

use crate::catalog::Catalog;
use crate::error::HubError;
use crate::outcome::Refusal;

/// Usage, folder owners, and how handles are spelled.
#[derive(Debug, Default)]
pub struct Accounts {
    usage: Mutex<HashMap<String, Usage>>,
    folders: Mutex<HashMap<String, Folder>>,
    /// Handles whose spelling differs from their lowercase key.
    spellings: Mutex<HashMap<String, String>>,
}

#[derive(Debug, Default, Clone, Copy)]
struct Usage {
    stored: u64,
    reserved: u64,
}

#[derive(Debug, Default)]
struct Folder {
    owner: String,
    writers: HashSet<String>,
    /// Whether the catalog knows this owner yet.
    recorded: bool,
}

/// An upload's claim on its uploader's quota; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    accounts: Arc<Accounts>,
    owner: String,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut usage = self.accounts.usage();
        if let Some(usage) = usage.get_mut(&self.owner) {
            usage.reserved = usage.reserved.saturating_sub(self.bytes);
        }
    }
}

impl Accounts {
    /// `handle` (a key) as its user spelled it when registering: how every
    /// message and listing shows it.
    pub fn spelled(&self, handle: &str) -> String {
        let spellings = self.spellings.lock().expect("spellings lock");
        spellings
            .get(handle)
            .cloned()
            .unwrap_or_else(|| handle.to_owned())
    }

    /// `entry` with its owner spelled as registered.
    pub fn spell(&self, mut entry: FileEntry) -> FileEntry {
        entry.owner = self.spelled(&entry.owner);
        entry
    }

    /// `event` with its handle spelled as registered.
    pub fn spell_event(&self, event: Event) -> Event {
        match event {
            Event::Uploaded { handle, name, at } => Event::Uploaded {
                handle: self.spelled(&handle),
                name,
                at,
            },
            Event::Deleted { handle, name, at } => Event::Deleted {
                handle: self.spelled(&handle),
                name,
                at,
            },
            Event::PeerJoined { handle } => Event::PeerJoined {
                handle: self.spelled(&handle),
            },
            Event::PeerLeft { handle } => Event::PeerLeft {
                handle: self.spelled(&handle),
            },
        }
    }

    /// `hit` with its owner or peer spelled as registered.
    pub fn spell_hit(&self, mut hit: Hit) -> Hit {
        match &mut hit.source {
            Source::Store { owner } => *owner = self.spelled(owner),
            Source::Peer { handle, .. } => *handle = self.spelled(handle),
        }
        hit
    }

    /// Remembers how `handle` is spelled (at each login: a new handle's
    /// spelling is known from then on).
    pub fn note_spelling(&self, handle: &str, spelling: &str) {
        let mut spellings = self.spellings.lock().expect("spellings lock");
        if handle == spelling {
            // A handle removed and registered again may be spelled plainly now.
            spellings.remove(handle);
        } else {
            spellings.insert(handle.to_owned(), spelling.to_owned());
        }
    }

    /// Loads usage and folders from the catalog.
    pub async fn load(catalog: &Catalog) -> Result<Arc<Self>, HubError> {
        let usage = catalog
            .usage()
            .await?
            .into_iter()
            .map(|(owner, stored)| {
                (
                    owner,
                    Usage {
                        stored,
                        reserved: 0,
                    },
                )
            })
            .collect();
        let folders = catalog
            .folders()
            .await?
            .into_iter()
            .map(|(name, owner, writers)| {
                let writers = writers.into_iter().collect();
                let recorded = true;
                (
                    name,
                    Folder {
                        owner,
                        writers,
                        recorded,
                    },
                )
            })
            .collect();
        let spellings = catalog.spellings().await?.into_iter().collect();
        Ok(Arc::new(Self {
            usage: Mutex::new(usage),
            folders: Mutex::new(folders),
            spellings: Mutex::new(spellings),
        }))
    }

    /// Bytes `owner`'s files take.
    pub fn used(&self, owner: &str) -> u64 {
        self.usage().get(owner).map_or(0, |u| u.stored)
    }

    /// Bytes `owner` may still store under `quota` (`None`: unlimited),
    /// counting uploads under way.
    pub fn left(&self, owner: &Handle, quota: Option<u64>) -> Option<u64> {
        let usage = self.usage();
        let current = usage.get(owner.as_str()).copied().unwrap_or_default();
        let committed = current.stored.saturating_add(current.reserved);
        quota.map(|q| q.saturating_sub(committed))
    }

    /// Reserves `bytes` of `owner`'s `quota` (`None`: unlimited) for an
    /// upload, or refuses with what is used and allowed.
    pub fn reserve(
        self: &Arc<Self>,
        owner: &Handle,
        bytes: u64,
        quota: Option<u64>,
    ) -> Result<Reservation, Refusal> {
        let mut usage = self.usage();
        let current = usage.entry(owner.to_string()).or_default();
        let committed = current.stored.saturating_add(current.reserved);
        if let Some(quota) = quota
            && committed.saturating_add(bytes) > quota
        {
            let under_way = match current.reserved {
                0 => String::new(),
                n => format!(" ({} more in uploads under way)", human(n)),
            };
            return Err(Refusal::new(
                ErrorCode::QuotaExceeded,
                format!(
                    "quota: {owner} uses {} of {} allowed{under_way}; this upload needs {}. \
                     Delete files (ferry rm) or ask an admin for more (ferry users set {owner} --quota SIZE)",
                    human(current.stored),
                    human(quota),
                    human(bytes)
                ),
            ));
        }
        current.reserved = current.reserved.saturating_add(bytes);
        Ok(Reservation {
            accounts: Arc::clone(self),
            owner: owner.to_string(),
            bytes,
        })
    }

    /// Counts a written entry (and the one it replaced) in usage.
    pub fn stored(&self, entry: &FileEntry, replaced: Option<&FileEntry>) {
        let mut usage = self.usage();
        if let Some(old) = replaced {
            let previous = usage.entry(old.owner.clone()).or_default();
            previous.stored = previous.stored.saturating_sub(old.size);
        }
        let owner = usage.entry(entry.owner.clone()).or_default();
        owner.stored = owner.stored.saturating_add(entry.size);
    }

    /// Counts a removed entry in usage.
    pub fn removed(&self, entry: &FileEntry) {
        if let Some(usage) = self.usage().get_mut(&entry.owner) {
            usage.stored = usage.stored.saturating_sub(entry.size);
        }
    }

    /// Whether `writer` may store `name`: always for a name outside any
    /// folder and for admins; inside a folder, only its owner and those it
    /// allowed. With `claim` (at commit time, under the commit lock), a
    /// folder nobody owns yet is claimed for `writer`, and recorded in the
    /// catalog once the file is written ([`Self::to_record`]).
    pub fn may_store(
        &self,
        name: &FileName,
        writer: &Handle,
        admin: bool,
        claim: bool,
    ) -> Result<(), Refusal> {
        let Some((top, _)) = name.as_str().split_once('/') else {
            return Ok(());
        };
        let mut folders = self.folders();
        if !claim && !folders.contains_key(top) {
            return Ok(());
        }
        let folder = folders.entry(top.to_owned()).or_insert_with(|| Folder {
            owner: writer.to_string(),
            ..Folder::default()
        });
        if admin || folder.owner == writer.as_str() || folder.writers.contains(writer.as_str()) {
            return Ok(());
        }
        Err(Refusal::new(
            ErrorCode::PermissionDenied,
            format!(
                "not allowed: the folder '{top}' belongs to {}; ask them to run `ferry allow {writer} {top}`, \
                 or store your file under a folder of your own",
                folder.owner
            ),
        ))
    }

    /// The folder of a just-written `name` and its owner, if the catalog
    /// does not know them yet (then it is told, once).
    pub fn to_record(&self, name: &str) -> Option<(String, String)> {
        let (top, _) = name.split_once('/')?;
        let mut folders = self.folders();
        let folder = folders.get_mut(top).filter(|f| !f.recorded)?;
        folder.recorded = true;
        Some((top.to_owned(), folder.owner.clone()))
    }

    /// The owner of the top-level `folder`, once a file was written in it.
    pub fn folder_owner(&self, folder: &str) -> Option<String> {
        let folders = self.folders();
        folders
            .get(folder)
            .filter(|f| f.recorded)
            .map(|f| f.owner.clone())
    }

    /// Lets `writer` add to `folder` (which must have an owner).
    pub fn allow(&self, folder: &str, writer: &Handle) {
        if let Some(f) = self.folders().get_mut(folder) {
            f.writers.insert(writer.to_string());
        }
    }

    fn usage(&self) -> std::sync::MutexGuard<'_, HashMap<String, Usage>> {
        self.usage.lock().expect("usage lock is never poisoned")
    }

    fn folders(&self) -> std::sync::MutexGuard<'_, HashMap<String, Folder>> {
        self.folders.lock().expect("folder lock is never poisoned")
    }
}

/// Bytes for people: `512 B`, `1.5 MB`, `10 GB` (powers of 1000).
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    match unit {
        0 => format!("{bytes} B"),
        _ => format!("{value:.1} {}", UNITS[unit]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_add_up_and_are_given_back() {
        let accounts = Arc::new(Accounts::default());
        let alice = Handle::parse("alice").unwrap();
        let first = accounts.reserve(&alice, 60, Some(100)).unwrap();
        let refused = accounts.reserve(&alice, 50, Some(100)).unwrap_err();
        assert_eq!(refused.code, ErrorCode::QuotaExceeded);
        assert!(
            refused.message.contains("60 B more in uploads under way"),
            "{}",
            refused.message
        );
        drop(first);
        let second = accounts.reserve(&alice, 100, Some(100)).unwrap();
        drop(second);
        assert!(accounts.reserve(&alice, u64::MAX, None).is_ok());
    }

    #[test]
    fn folders_belong_to_their_first_writer() {
        let accounts = Accounts::default();
        let (alice, bob) = (
            Handle::parse("alice").unwrap(),
            Handle::parse("bob").unwrap(),
        );
        let name = FileName::parse("photos/a.jpg").unwrap();
        accounts.may_store(&name, &bob, false, false).unwrap();
        assert_eq!(
            accounts.to_record("photos/a.jpg"),
            None,
            "a hint claims nothing"
        );
        accounts.may_store(&name, &alice, false, true).unwrap();
        assert_eq!(
            accounts.to_record("photos/a.jpg"),
            Some(("photos".into(), "alice".into()))
        );
        assert_eq!(accounts.to_record("photos/b.jpg"), None);
        assert!(accounts.may_store(&name, &bob, false, true).is_err());
        assert!(accounts.may_store(&name, &bob, true, true).is_ok());
        accounts.allow("photos", &bob);
        assert!(accounts.may_store(&name, &bob, false, true).is_ok());
        let loose = FileName::parse("b.txt").unwrap();
        assert!(accounts.may_store(&loose, &bob, false, true).is_ok());
    }
}
