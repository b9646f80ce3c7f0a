//! Copies and renames inside the store (WebDAV's COPY and MOVE): a new
//! entry for bytes the store already holds, under the same rules as an
//! upload of them, decided under `commit_lock`. No byte is copied: both
//! names refer to one blob, which stays while either does.

use ferry_protocol::{ConflictPolicy, ErrorCode, Event, FileEntry, FileName, Handle};

use super::{Placement, Publication, Publisher, unix_now};
use crate::error::HubError;
use crate::outcome::{Outcome, Refusal, not_found};

/// Who asks for a copy or rename, and what a taken name gets.
#[derive(Debug, Clone)]
pub struct Mover {
    /// The handle asking.
    pub by: Handle,
    /// Whether it is an admin (any folder, anyone's file).
    pub admin: bool,
    /// Its quota in force, for a copy (`None`: unlimited).
    pub quota: Option<u64>,
    /// Whether a file already at the target may be replaced.
    pub overwrite: bool,
}

impl Publisher {
    /// Lists the bytes of `from` under `to` too, as `mover`'s file.
    pub async fn copy(
        &self,
        from: &FileName,
        to: &FileName,
        mover: &Mover,
    ) -> Result<Outcome<FileEntry>, HubError> {
        let _commit = self.commit_lock.lock().await;
        let Some(source) = self.catalog.get(from).await? else {
            return Ok(Outcome::Refused(not_found(from)));
        };
        let entry = FileEntry {
            name: to.to_string(),
            owner: mover.by.to_string(),
            modified: unix_now(),
            ..source
        };
        let previous = match self.place_at(&entry, mover).await? {
            Outcome::Done(previous) => previous,
            Outcome::Refused(refusal) => return Ok(Outcome::Refused(refusal)),
        };
        // Counted like an upload: the copy is the mover's.
        let _reservation = match self.accounts.reserve(&mover.by, entry.size, mover.quota) {
            Ok(reservation) => reservation,
            Err(refusal) => return Ok(Outcome::Refused(refusal)),
        };
        self.catalog.put(&entry).await?;
        self.written(&entry, previous.as_ref(), false).await?;
        if let Some(previous) = previous {
            self.release_blob(&previous.hash).await?;
        }
        self.announce(Event::Uploaded {
            handle: entry.owner.clone(),
            name: entry.name.clone(),
            at: entry.modified,
        });
        Ok(Outcome::Done(entry))
    }

    /// Moves `from` to `to`; only its owner or an admin may (as deleting
    /// it). The file keeps its owner and time.
    pub async fn rename(
        &self,
        from: &FileName,
        to: &FileName,
        mover: &Mover,
    ) -> Result<Outcome<FileEntry>, HubError> {
        let _commit = self.commit_lock.lock().await;
        let Some(source) = self.catalog.get(from).await? else {
            return Ok(Outcome::Refused(not_found(from)));
        };
        if source.owner != mover.by.as_str() && !mover.admin {
            return Ok(Outcome::Refused(Refusal::new(
                ErrorCode::PermissionDenied,
                format!(
                    "not allowed: '{from}' belongs to {}; only its owner or an admin may move it",
                    source.owner
                ),
            )));
        }
        let entry = FileEntry {
            name: to.to_string(),
            ..source.clone()
        };
        let previous = match self.place_at(&entry, mover).await? {
            Outcome::Done(previous) => previous,
            Outcome::Refused(refusal) => return Ok(Outcome::Refused(refusal)),
        };
        self.catalog.put(&entry).await?;
        // Its WebDAV properties go with it (deleting drops the source's).
        self.catalog
            .copy_dead_props(from.as_str(), to.as_str())
            .await?;
        self.catalog.delete(from).await?;
        let relayed = self.catalog.unmark_relayed(from.as_str()).await?;
        if !relayed {
            self.accounts.removed(&source);
        }
        self.written(&entry, previous.as_ref(), relayed).await?;
        if relayed {
            self.catalog
                .mark_relayed(&entry.name, entry.size, entry.modified)
                .await?;
        }
        if let Some(previous) = previous {
            self.release_blob(&previous.hash).await?;
        }
        let at = unix_now();
        let handle = mover.by.to_string();
        let (old, new) = (source.name, entry.name.clone());
        self.announce(Event::Deleted {
            handle: handle.clone(),
            name: old,
            at,
        });
        self.announce(Event::Uploaded {
            handle,
            name: new,
            at,
        });
        Ok(Outcome::Done(entry))
    }

    /// Whether `entry` may be written at its name for `mover` (folders, a
    /// file already there); the entry it would replace. Caller holds
    /// `commit_lock`.
    async fn place_at(
        &self,
        entry: &FileEntry,
        mover: &Mover,
    ) -> Result<Outcome<Option<FileEntry>>, HubError> {
        let name = FileName::parse(&entry.name).expect("names in entries are valid");
        let publication = Publication {
            name,
            size: entry.size,
            hash: entry.hash,
            owner: mover.by.clone(),
            policy: if mover.overwrite {
                ConflictPolicy::Overwrite
            } else {
                ConflictPolicy::Refuse
            },
            admin: mover.admin,
            relayed: false,
        };
        let current = self.catalog.get(&publication.name).await?;
        let outcome = self
            .place_given(&publication, current.clone(), true)
            .await?;
        Ok(match outcome {
            Outcome::Refused(refusal) => Outcome::Refused(refusal),
            // The same bytes there already still become this entry (a copy
            // over an identical file is the mover's now).
            Outcome::Done(Placement::AlreadyThere(_) | Placement::Store(_)) => {
                Outcome::Done(current)
            }
        })
    }
}
