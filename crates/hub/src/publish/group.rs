//! Group commit for small uploads: many files made durable for the price of
//! a few disk flushes, and none acknowledged before it is durable.
//!
//! An upload whose bytes are verified joins the waiting group. Whoever then
//! gets the commit lock commits everything waiting: each member's target is
//! decided, the members held in memory are written straight to their blob
//! files and those in temp files renamed there, one flush of the store's
//! filesystem makes the bytes and the names durable, and all entries go
//! into the catalog in one transaction. Two flushes per group (the
//! catalog's is the second), however many files. The others find their
//! result ready when they get the lock.
//!
//! The bytes reach their blob names before they are durable. That is safe
//! because a blob is trusted only once an entry refers to it (see
//! [`crate::store`]): a crash before the flush leaves blobs that nothing
//! refers to, and the next upload of the same bytes replaces them.

use std::collections::HashSet;
use std::fmt::Display;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_protocol::{Event, FileEntry};
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use crate::error::HubError;
use crate::outcome::Outcome;
use crate::publish::{Placement, Publication, Publisher, unix_now};
use crate::store::{Incoming, remove_quietly};

/// What a grouped publication ends as: the entry and whether the bytes were
/// already stored, or a refusal.
pub(crate) type Published = Outcome<(FileEntry, bool)>;

/// Where a verified upload's bytes are until the commit.
pub(crate) enum Received {
    /// In memory, counted against the hub's budget for small uploads; the
    /// commit writes them straight to their blob file.
    Memory {
        bytes: Vec<u8>,
        /// Held until the bytes are written.
        _budget: OwnedSemaphorePermit,
    },
    /// In a temp file, written but not yet fsynced.
    File(PathBuf),
}

impl Received {
    /// The bytes as the store takes them.
    fn incoming(&self) -> Incoming<'_> {
        match self {
            Self::Memory { bytes, .. } => Incoming::Bytes(bytes),
            Self::File(path) => Incoming::File(path),
        }
    }

    /// Lets go of bytes that will not be stored.
    async fn discard(self) {
        if let Self::File(path) = self {
            remove_quietly(&path).await;
        }
    }
}

/// Where a member's result goes.
type Answer = oneshot::Sender<Result<Published, HubError>>;

/// An upload waiting to be committed.
pub(crate) struct Waiting {
    publication: Publication,
    bytes: Received,
    done: Answer,
}

/// A member with its target decided, before its entry is written.
struct Placed {
    done: Answer,
    entry: FileEntry,
    /// The name already held these bytes: no entry to write.
    deduplicated: bool,
}

impl Publisher {
    /// Publishes verified, not yet durable bytes together with whatever
    /// else is waiting. The upload joins the group at once, before the
    /// returned future is first polled, so uploads received while a commit
    /// runs are all in the next group however the tasks that await them are
    /// scheduled. The future resolves once the bytes are durable and listed.
    pub(crate) fn publish_grouped(
        self: &Arc<Self>,
        publication: Publication,
        bytes: Received,
    ) -> impl Future<Output = Result<Published, HubError>> + Send + 'static {
        let (done, result) = oneshot::channel();
        self.waiting().push(Waiting {
            publication,
            bytes,
            done,
        });
        let hub = Arc::clone(self);
        async move {
            {
                let _commit = hub.commit_lock.lock().await;
                let group = std::mem::take(&mut *hub.waiting());
                hub.commit_group(group).await;
            }
            result.await.unwrap_or_else(|_| {
                let gone = std::io::Error::other("the group commit was abandoned");
                Err(HubError::io("publishing", Path::new("store"), gone))
            })
        }
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, Vec<Waiting>> {
        self.group.lock().expect("group lock is never poisoned")
    }

    /// Commits `group`; every member gets its result. Caller holds the
    /// commit lock. Two members that resolve to the same name go in
    /// successive rounds, so the second sees the first's entry.
    async fn commit_group(self: &Arc<Self>, group: Vec<Waiting>) {
        if group.is_empty() {
            return; // an earlier holder of the lock committed ours
        }
        let (started, files) = (std::time::Instant::now(), group.len());
        let mut ready = group;
        while !ready.is_empty() {
            ready = self.commit_round(ready).await;
        }
        tracing::debug!(files, elapsed = ?started.elapsed(), "group committed");
    }

    /// Commits the members whose target names are distinct; returns the rest.
    async fn commit_round(self: &Arc<Self>, members: Vec<Waiting>) -> Vec<Waiting> {
        let names: Vec<&str> = members
            .iter()
            .map(|m| m.publication.name.as_str())
            .collect();
        let existing = match self.catalog.get_many(&names).await {
            Ok(existing) => existing,
            Err(e) => {
                fail_all(
                    members.into_iter().map(|m| m.done),
                    "reading the catalog",
                    &e,
                );
                return Vec::new();
            }
        };
        let (mut later, mut claimed, mut placed, mut bytes) =
            (Vec::new(), HashSet::new(), Vec::new(), Vec::new());
        for member in members {
            // Not `remove`: members later in the round may ask for the name too.
            let current = existing.get(member.publication.name.as_str()).cloned();
            match self.place_member(member, current, &mut claimed).await {
                Ok(Some((member, received))) => {
                    placed.push(member);
                    bytes.push(received);
                }
                Ok(None) => {}
                Err(member) => later.push(*member),
            }
        }
        let hashes: Vec<_> = placed.iter().map(|p| p.entry.hash).collect();
        let referenced = match self.catalog.referenced(&hashes).await {
            Ok(referenced) => referenced,
            Err(e) => {
                fail_all(
                    placed.into_iter().map(|p| p.done),
                    "reading the catalog",
                    &e,
                );
                return later;
            }
        };
        // A deduplicated member's entry is among the references.
        let uploads: Vec<_> = bytes
            .into_iter()
            .zip(hashes)
            .map(|(bytes, hash)| (bytes, hash, referenced.contains(&hash)))
            .collect();
        let hub = Arc::clone(self);
        crash_point!("commit::before_blobs");
        let stored = tokio::task::spawn_blocking(move || {
            let incoming: Vec<_> = uploads
                .iter()
                .map(|(bytes, hash, known)| (bytes.incoming(), *hash, *known))
                .collect();
            hub.store.commit_many(&incoming)
        })
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(e)));
        match stored {
            Ok(()) => {
                crash_point!("commit::after_blobs");
                self.write_entries(placed).await;
            }
            Err(e) => fail_all(placed.into_iter().map(|p| p.done), "storing uploads", &e),
        }
        later
    }

    /// Decides one member's target, given the catalog's entry for its name.
    /// `Ok(None)`: answered already (refused or failed). `Err`: its target
    /// name is taken within this round; it goes in the next.
    async fn place_member(
        &self,
        member: Waiting,
        current: Option<FileEntry>,
        claimed: &mut HashSet<String>,
    ) -> Result<Option<(Placed, Received)>, Box<Waiting>> {
        let placement = match self.place_given(&member.publication, current, true).await {
            Ok(Outcome::Done(placement)) => placement,
            Ok(Outcome::Refused(refusal)) => {
                member.bytes.discard().await;
                let _ = member.done.send(Ok(Outcome::Refused(refusal)));
                return Ok(None);
            }
            Err(e) => {
                member.bytes.discard().await;
                let _ = member.done.send(Err(e));
                return Ok(None);
            }
        };
        let (name, existing) = match placement {
            Placement::Store(name) => (name.to_string(), None),
            Placement::AlreadyThere(entry) => (entry.name.clone(), Some(entry)),
        };
        if !claimed.insert(name.clone()) {
            return Err(Box::new(member));
        }
        let publication = &member.publication;
        let deduplicated = existing.is_some();
        let entry = existing.unwrap_or_else(|| FileEntry {
            name,
            size: publication.size,
            hash: publication.hash,
            owner: publication.owner.to_string(),
            modified: unix_now(),
        });
        let placed = Placed {
            done: member.done,
            entry,
            deduplicated,
        };
        Ok(Some((placed, member.bytes)))
    }

    /// Writes the new entries in one transaction, frees replaced blobs,
    /// announces, and answers every member.
    async fn write_entries(&self, placed: Vec<Placed>) {
        let entries: Vec<FileEntry> = placed
            .iter()
            .filter(|p| !p.deduplicated)
            .map(|p| p.entry.clone())
            .collect();
        let replaced = match self.catalog.put_many(&entries).await {
            Ok(replaced) => replaced,
            Err(e) => {
                fail_all(
                    placed.into_iter().map(|p| p.done),
                    "writing the catalog",
                    &e,
                );
                return;
            }
        };
        crash_point!("commit::after_entries");
        for (entry, previous) in entries.iter().zip(replaced) {
            if let Err(e) = self.written(entry, previous.as_ref(), false).await {
                tracing::warn!("could not record a folder's owner: {e}");
            }
            let Some(previous) = previous else { continue };
            if let Err(e) = self.release_blob(&previous.hash).await {
                tracing::warn!("could not free a replaced blob: {e}");
            }
        }
        for p in placed {
            if !p.deduplicated {
                self.announce(Event::Uploaded {
                    handle: p.entry.owner.clone(),
                    name: p.entry.name.clone(),
                    at: p.entry.modified,
                });
            }
            let _ = p.done.send(Ok(Outcome::Done((p.entry, p.deduplicated))));
        }
    }
}

/// Fails every member with one error, as each one's own I/O error
/// (clients are told "internal" whatever the cause).
fn fail_all(members: impl IntoIterator<Item = Answer>, what: &'static str, error: &dyn Display) {
    for done in members {
        let copy = std::io::Error::other(error.to_string());
        let _ = done.send(Err(HubError::io(what, Path::new("store"), copy)));
    }
}

#[cfg(test)]
mod tests {
    use ferry_protocol::{ConflictPolicy, ContentHash, ErrorCode, FileName, Handle};

    use super::*;
    use crate::HubConfig;
    use crate::publish::UPLOAD_MEMORY;
    use crate::state::Hub;

    /// A hub in `dir` where the handle "alice" is registered.
    async fn hub_with_alice(dir: &Path) -> Arc<Hub> {
        let hub = Hub::open(HubConfig::new(dir)).await.unwrap();
        let alice = Handle::parse("alice").unwrap();
        let key = ferry_protocol::PublicKey([7; 32]);
        let role = ferry_protocol::Role::Member;
        hub.catalog
            .register(
                &alice,
                "alice",
                &key,
                role,
                crate::catalog::QuotaSetting::Default,
                0,
            )
            .await
            .unwrap();
        hub
    }

    /// Puts `bytes` in a temp file and announces it as `name`.
    fn upload(hub: &Hub, bytes: &[u8], policy: ConflictPolicy) -> (Publication, PathBuf) {
        let path = hub.store.temp_path();
        std::fs::write(&path, bytes).unwrap();
        let publication = Publication {
            name: FileName::parse("x.txt").unwrap(),
            size: bytes.len() as u64,
            hash: ContentHash::of(bytes),
            owner: Handle::parse("alice").unwrap(),
            policy,
            admin: false,
            relayed: false,
        };
        (publication, path)
    }

    /// `bytes` held in memory, counted against the hub's budget.
    fn held(hub: &Arc<Hub>, bytes: &[u8]) -> Received {
        let budget = Arc::clone(&hub.publisher.upload_memory)
            .try_acquire_many_owned(bytes.len() as u32)
            .unwrap();
        Received::Memory {
            bytes: bytes.to_vec(),
            _budget: budget,
        }
    }

    #[tokio::test]
    async fn one_group_resolves_clashing_names_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let hub = hub_with_alice(dir.path()).await;
        // All three join before any is committed: one group, one name.
        // One waits in memory, two in temp files.
        let (a, _) = upload(&hub, b"first", ConflictPolicy::Refuse);
        let a_bytes = held(&hub, b"first");
        let (b, b_path) = upload(&hub, b"second", ConflictPolicy::Rename);
        let (c, c_path) = upload(&hub, b"third", ConflictPolicy::Refuse);
        let pending = [
            hub.publisher.publish_grouped(a, a_bytes),
            hub.publisher.publish_grouped(b, Received::File(b_path)),
            hub.publisher
                .publish_grouped(c, Received::File(c_path.clone())),
        ];
        let [a, b, c] = pending.map(tokio::spawn);
        let Outcome::Done((a, false)) = a.await.unwrap().unwrap() else {
            panic!("the first is stored as is");
        };
        let Outcome::Done((b, false)) = b.await.unwrap().unwrap() else {
            panic!("the second is renamed");
        };
        let Outcome::Refused(refusal) = c.await.unwrap().unwrap() else {
            panic!("the third is refused");
        };
        assert_eq!((a.name.as_str(), b.name.as_str()), ("x.txt", "x (1).txt"));
        assert_eq!(refusal.code, ErrorCode::Conflict);
        assert!(!c_path.exists(), "a refused upload leaves no temp file");
        assert_eq!(
            hub.publisher.upload_memory.available_permits(),
            UPLOAD_MEMORY
        );
        for (entry, bytes) in [(a, &b"first"[..]), (b, &b"second"[..])] {
            assert_eq!(
                std::fs::read(hub.store.blob_path(&entry.hash)).unwrap(),
                bytes
            );
            let listed = hub
                .catalog
                .get(&FileName::parse(&entry.name).unwrap())
                .await;
            assert_eq!(listed.unwrap(), Some(entry));
        }
    }

    /// A blob file no entry refers to may be a crash's leftover, written
    /// but never flushed: it neither stands in for the bytes nor survives
    /// the next upload of them.
    #[tokio::test]
    async fn a_blob_nothing_refers_to_is_never_trusted() {
        let dir = tempfile::tempdir().unwrap();
        let hub = hub_with_alice(dir.path()).await;
        let (publication, path) = upload(&hub, b"data", ConflictPolicy::Refuse);
        let blob = hub.store.blob_path(&publication.hash);
        std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
        std::fs::write(&blob, b"to").unwrap();

        let asked = hub
            .publisher
            .publish(&publication, None, true)
            .await
            .unwrap();
        assert!(
            matches!(asked, Outcome::Done(None)),
            "the bytes must be sent"
        );
        let published = hub
            .publisher
            .publish_grouped(publication, Received::File(path));
        let Outcome::Done((entry, false)) = published.await.unwrap() else {
            panic!("stored, not deduplicated");
        };
        assert_eq!(std::fs::read(&blob).unwrap(), b"data");
        let listed = hub.catalog.get(&FileName::parse("x.txt").unwrap()).await;
        assert_eq!(listed.unwrap(), Some(entry));
    }

    /// Bytes held in memory go straight to a new blob file, but a file
    /// already at that name is replaced, not written into: whoever has it
    /// open keeps what they had.
    #[tokio::test]
    async fn bytes_in_memory_never_write_into_an_existing_blob_file() {
        let dir = tempfile::tempdir().unwrap();
        let hub = hub_with_alice(dir.path()).await;
        let (publication, path) = upload(&hub, b"data", ConflictPolicy::Refuse);
        std::fs::remove_file(path).unwrap();
        let blob = hub.store.blob_path(&publication.hash);
        std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
        std::fs::write(&blob, b"leftover").unwrap();
        let mut reader = std::fs::File::open(&blob).unwrap();

        let bytes = held(&hub, b"data");
        let Outcome::Done((_, false)) = hub
            .publisher
            .publish_grouped(publication, bytes)
            .await
            .unwrap()
        else {
            panic!("stored, not deduplicated");
        };
        assert_eq!(std::fs::read(&blob).unwrap(), b"data");
        let mut before = Vec::new();
        std::io::Read::read_to_end(&mut reader, &mut before).unwrap();
        assert_eq!(before, b"leftover");
        assert_eq!(
            hub.publisher.upload_memory.available_permits(),
            UPLOAD_MEMORY
        );
        let left: Vec<_> = std::fs::read_dir(dir.path().join("store/tmp"))
            .unwrap()
            .collect();
        assert!(left.is_empty(), "no temp file left behind");
    }
}
