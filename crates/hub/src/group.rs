//! Group commit for small uploads: many files made durable for the price of
//! a few disk flushes, and none acknowledged before it is durable.
//!
//! An upload whose bytes are verified joins the waiting group. Whoever then
//! gets the commit lock commits everything waiting: the files are fsynced
//! together, renamed into the store, each shard folder is synced once, and
//! all entries go into the catalog in one transaction. The others find their
//! result ready when they get the lock. One upload alone commits as before.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use ferry_protocol::disk::sync_all_concurrently;
use ferry_protocol::{Event, FileEntry};
use tokio::sync::oneshot;

use crate::error::HubError;
use crate::state::{Hub, Outcome, Placement, Publication, unix_now};

/// What a grouped publication ends as: the entry and whether the bytes were
/// already stored, or a refusal.
pub(crate) type Published = Outcome<(FileEntry, bool)>;

/// An upload waiting to be committed.
pub(crate) struct Waiting {
    publication: Publication,
    bytes: PathBuf,
    done: oneshot::Sender<Result<Published, HubError>>,
}

/// A waiting upload with its target decided, before its entry is written.
struct Placed {
    waiting: Waiting,
    entry: FileEntry,
    /// The name already held these bytes: no entry to write.
    deduplicated: bool,
}

impl Hub {
    /// Publishes verified but not yet fsynced bytes at `bytes` together with
    /// whatever else is waiting. The upload joins the group at once, before
    /// the returned future is first polled, so uploads received while a
    /// commit runs are all in the next group however the tasks that await
    /// them are scheduled. The future resolves once the bytes are durable
    /// and listed.
    pub(crate) fn publish_grouped(
        self: &Arc<Self>,
        publication: Publication,
        bytes: PathBuf,
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
    async fn commit_group(&self, mut group: Vec<Waiting>) {
        if group.is_empty() {
            return; // an earlier holder of the lock committed ours
        }
        let (started, files) = (std::time::Instant::now(), group.len());
        let paths: Vec<PathBuf> = group.iter().map(|w| w.bytes.clone()).collect();
        let synced = sync_concurrently(paths).await;
        let mut ready = Vec::with_capacity(group.len());
        for (waiting, synced) in group.drain(..).zip(synced) {
            match synced {
                Ok(()) => ready.push(waiting),
                Err(e) => {
                    let error = HubError::io("syncing upload", &waiting.bytes, e);
                    fail(waiting, error);
                }
            }
        }
        while !ready.is_empty() {
            ready = self.commit_round(ready).await;
        }
        tracing::debug!(files, elapsed = ?started.elapsed(), "group committed");
    }

    /// Commits the members whose target names are distinct; returns the rest.
    async fn commit_round(&self, members: Vec<Waiting>) -> Vec<Waiting> {
        let mut later = Vec::new();
        let mut claimed = HashSet::new();
        let mut placed = Vec::new();
        let mut shards = BTreeSet::new();
        for waiting in members {
            match self.place_member(waiting, &mut claimed, &mut shards).await {
                Ok(Some(member)) => placed.push(member),
                Ok(None) => {}
                Err(waiting) => later.push(*waiting),
            }
        }
        let synced = sync_concurrently(shards.into_iter().collect()).await;
        if let Some(Err(e)) = synced.into_iter().find(Result::is_err) {
            fail_all(placed, "syncing a store folder", &e);
            return later;
        }
        self.write_entries(placed).await;
        later
    }

    /// Decides one member's target and moves its bytes into the store.
    /// `Ok(None)`: answered already (refused or failed). `Err`: its name is
    /// taken within this round; it goes in the next.
    async fn place_member(
        &self,
        waiting: Waiting,
        claimed: &mut HashSet<String>,
        shards: &mut BTreeSet<PathBuf>,
    ) -> Result<Option<Placed>, Box<Waiting>> {
        let placement = match self.place(&waiting.publication).await {
            Ok(Outcome::Done(placement)) => placement,
            Ok(Outcome::Refused(refusal)) => {
                remove_quietly(&waiting.bytes).await;
                let _ = waiting.done.send(Ok(Outcome::Refused(refusal)));
                return Ok(None);
            }
            Err(e) => {
                fail(waiting, e);
                return Ok(None);
            }
        };
        let (name, existing) = match placement {
            Placement::Store(name) => (name.to_string(), None),
            Placement::AlreadyThere(entry) => (entry.name.clone(), Some(entry)),
        };
        if !claimed.insert(name.clone()) {
            return Err(Box::new(waiting));
        }
        let publication = &waiting.publication;
        match self
            .store
            .commit_unsynced(&waiting.bytes, &publication.hash)
            .await
        {
            Ok(shard) => shards.extend(shard),
            Err(e) => {
                fail(waiting, e);
                return Ok(None);
            }
        }
        let deduplicated = existing.is_some();
        let entry = existing.unwrap_or_else(|| FileEntry {
            name,
            size: publication.size,
            hash: publication.hash,
            owner: publication.owner.to_string(),
            modified: unix_now(),
        });
        Ok(Some(Placed {
            waiting,
            entry,
            deduplicated,
        }))
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
                    placed,
                    "writing the catalog",
                    &std::io::Error::other(e.to_string()),
                );
                return;
            }
        };
        for previous in replaced.into_iter().flatten() {
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
            let _ = p
                .waiting
                .done
                .send(Ok(Outcome::Done((p.entry, p.deduplicated))));
        }
    }
}

fn fail(waiting: Waiting, error: HubError) {
    let _ = waiting.done.send(Err(error));
}

/// Fails every member with (a copy of) one error.
fn fail_all(placed: Vec<Placed>, what: &'static str, error: &std::io::Error) {
    for p in placed {
        let copy = std::io::Error::new(error.kind(), error.to_string());
        let error = HubError::io(what, &p.waiting.bytes, copy);
        fail(p.waiting, error);
    }
}

/// [`sync_all_concurrently`] off the async threads.
async fn sync_concurrently(paths: Vec<PathBuf>) -> Vec<std::io::Result<()>> {
    let count = paths.len();
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&Path> = paths.iter().map(PathBuf::as_path).collect();
        sync_all_concurrently(&refs)
    })
    .await
    .unwrap_or_else(|e| {
        (0..count)
            .map(|_| Err(std::io::Error::other(e.to_string())))
            .collect()
    })
}

async fn remove_quietly(path: &Path) {
    if let Err(e) = tokio::fs::remove_file(path).await {
        tracing::warn!(path = %path.display(), "could not remove refused upload: {e}");
    }
}

#[cfg(test)]
mod tests {
    use ferry_protocol::{ConflictPolicy, ContentHash, ErrorCode, FileName, Handle};

    use super::*;
    use crate::HubConfig;

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
        };
        (publication, path)
    }

    #[tokio::test]
    async fn one_group_resolves_clashing_names_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let hub = Hub::open(HubConfig::new(dir.path())).await.unwrap();
        let alice = Handle::parse("alice").unwrap();
        hub.catalog.login(&alice, &[7; 32], true, 0).await.unwrap();
        // All three join before any is committed: one group, one name.
        let (a, a_path) = upload(&hub, b"first", ConflictPolicy::Refuse);
        let (b, b_path) = upload(&hub, b"second", ConflictPolicy::Rename);
        let (c, c_path) = upload(&hub, b"third", ConflictPolicy::Refuse);
        let pending = [
            hub.publish_grouped(a, a_path),
            hub.publish_grouped(b, b_path),
            hub.publish_grouped(c, c_path.clone()),
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
}
