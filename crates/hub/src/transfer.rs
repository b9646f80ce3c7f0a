//! Uploads into the store, for a [`Session`].
//!
//! Upload path: validate → decide placement → bytes into a temp (eager) or
//! partial (negotiated, resumable) file while hashing → check size and hash
//! → fsync → publish (rename into `blobs/`, fsync dir, write the entry).
//! A refused eager upload still consumes its (small) body so the next frame
//! is found; a failed body closes the connection.

use std::path::Path;
use std::sync::Arc;

use ferry_io::body::{discard_body, receive_body};
use ferry_io::disk::{open_for_resume, receive_to_file};
use ferry_protocol::{
    ConflictPolicy, ContentHash, EAGER_UPLOAD_MAX, ErrorCode, FileEntry, FileName, Handle,
    Response, UploadMode,
};

use crate::access::policy;
use crate::error::HubError;
use crate::outcome::{Outcome, Refusal};
use crate::possession::Possession;
use crate::publish::accounts::Reservation;
use crate::publish::group::Received;
use crate::publish::{Placement, Publication, unix_now};
use crate::session::{Flow, MAX_PENDING, Session};
use crate::space;
use crate::state::Hub;
use crate::store::remove_quietly;

/// Small uploads up to this size wait for their commit in memory (within
/// the hub's budget): no temp file to create, fill and reopen per upload.
const IN_MEMORY_MAX: u64 = 64 << 10;

impl Session {
    pub(crate) async fn upload(
        &mut self,
        owner: Handle,
        raw_name: &str,
        size: u64,
        hash: ContentHash,
        policy: ConflictPolicy,
        mode: UploadMode,
    ) -> Result<Flow, HubError> {
        let eager = mode == UploadMode::Eager;
        if eager && size > EAGER_UPLOAD_MAX {
            let message = format!("eager uploads are limited to {EAGER_UPLOAD_MAX} bytes");
            self.refuse(Refusal::new(ErrorCode::BadRequest, message))
                .await?;
            return Ok(Flow::Close);
        }
        let admin = policy::allows(self.role, policy::Permission::Manage);
        let publication = match validate(owner, raw_name, size, hash, policy, admin, &self.hub) {
            Ok(publication) => publication,
            Err(refusal) => return self.refuse_upload(eager, size, refusal).await,
        };
        if let Some(refusal) = self.hub.dav.lock_refusal(&publication.name, false).await {
            return self.refuse_upload(eager, size, refusal).await;
        }
        // Reserved before any byte flows, so that uploads under way
        // together cannot pass the quota; given back when this one ends.
        let accounts = &self.hub.publisher.accounts;
        let reservation = match accounts.reserve(&publication.owner, size, self.quota) {
            Ok(reservation) => reservation,
            Err(refusal) => return self.refuse_upload(eager, size, refusal).await,
        };
        self.record_activity().await?;
        if eager {
            let reserve = self.hub.config.min_free_space;
            let room = space::check_room(&self.hub.config.data_dir, size, reserve)
                .map_err(|e| HubError::io("checking free space", &self.hub.config.data_dir, e))?;
            if let Err(no_room) = room {
                let refusal = Refusal::new(ErrorCode::StorageFull, no_room.message(raw_name));
                return self.refuse_upload(true, size, refusal).await;
            }
            // Placement is decided at commit; the body comes anyway.
            return self.receive_eager(publication, reservation).await;
        }
        match self.hub.publisher.place(&publication).await? {
            Outcome::Refused(refusal) => self.refuse_upload(false, size, refusal).await,
            Outcome::Done(Placement::AlreadyThere(entry)) => self.stored(entry, true).await,
            Outcome::Done(Placement::Store(_)) => self.receive_negotiated(&publication).await,
        }
    }

    /// Notes, once per session, that its handle stores things (handles
    /// that never do expire on open hubs).
    pub(crate) async fn record_activity(&mut self) -> Result<(), HubError> {
        if !self.active
            && let Some(handle) = &self.handle
        {
            self.hub.catalog.active(handle, unix_now()).await?;
            self.active = true;
        }
        Ok(())
    }

    /// Tells the client its upload is durable and listed.
    async fn stored(&mut self, entry: FileEntry, deduplicated: bool) -> Result<Flow, HubError> {
        self.writer
            .send(&Response::Stored {
                entry: self.hub.publisher.accounts.spell(entry),
                deduplicated,
            })
            .await?;
        Ok(Flow::Continue)
    }

    pub(crate) async fn refuse_upload(
        &mut self,
        eager: bool,
        size: u64,
        refusal: Refusal,
    ) -> Result<Flow, HubError> {
        if eager {
            self.skip_body(size).await?;
        }
        self.refuse(refusal).await?;
        Ok(Flow::Continue)
    }

    async fn skip_body(&mut self, size: u64) -> Result<(), HubError> {
        Ok(discard_body(&mut self.reader, size, self.hub.config.stall_timeout).await?)
    }

    /// Receives a small upload and hands it to the group commit; its reply
    /// goes out when the group is durable.
    async fn receive_eager(
        &mut self,
        publication: Publication,
        reservation: Reservation,
    ) -> Result<Flow, HubError> {
        let Some(bytes) = self.receive_small(&publication).await? else {
            return Ok(Flow::Continue); // refused: it did not hash as announced
        };
        let publishing = self.hub.publisher.publish_grouped(publication, bytes);
        let commit = tokio::spawn(async move {
            let _reservation = reservation;
            publishing.await
        });
        self.pending.push_back(commit);
        if self.pending.len() >= MAX_PENDING {
            // Free many slots at once, not one: admitting one upload per
            // finished commit would keep every later group at one file.
            self.settle_to(MAX_PENDING / 2).await?;
        }
        Ok(Flow::Continue)
    }

    /// Receives and verifies a small body: into memory while the hub's
    /// budget for that allows, else into a temp file (not fsynced; the
    /// group commit does that). `None`: refused for a wrong hash.
    async fn receive_small(
        &mut self,
        publication: &Publication,
    ) -> Result<Option<Received>, HubError> {
        let size = publication.size;
        let permit = u32::try_from(size)
            .ok()
            .filter(|&n| u64::from(n) <= IN_MEMORY_MAX)
            .and_then(|n| {
                Arc::clone(&self.hub.publisher.upload_memory)
                    .try_acquire_many_owned(n)
                    .ok()
            });
        if let Some(permit) = permit {
            let mut data = Vec::with_capacity(permit.num_permits());
            let mut hasher = blake3::Hasher::new();
            let stall = self.hub.config.stall_timeout;
            receive_body(&mut self.reader, size, &mut data, &mut hasher, stall).await?;
            let verified = self.verified(None, publication, hasher.finalize()).await?;
            let received = Received::Memory {
                bytes: data,
                _budget: permit,
            };
            return Ok(verified.then_some(received));
        }
        let path = self.hub.store.temp_path();
        let received = self.receive_into(&path, 0, publication, false).await;
        let hash = match received {
            Ok(hash) => hash,
            Err(e) => {
                remove_quietly(&path).await;
                return Err(e);
            }
        };
        let verified = self.verified(Some(&path), publication, hash).await?;
        Ok(verified.then_some(Received::File(path)))
    }

    async fn receive_negotiated(&mut self, publication: &Publication) -> Result<Flow, HubError> {
        // The store may hold these bytes under another name already; the
        // client must show it has them, not just their hash.
        let proven = match self.challenge_possession(publication).await? {
            Possession::Proven => true,
            Possession::NotHeld => false,
            Possession::Refused => return Ok(Flow::Continue),
        };
        match self
            .hub
            .publisher
            .publish(publication, None, proven)
            .await?
        {
            Outcome::Done(Some((entry, deduplicated))) => {
                return self.stored(entry, deduplicated).await;
            }
            Outcome::Refused(refusal) => return self.refuse_upload(false, 0, refusal).await,
            Outcome::Done(None) => {}
        }
        let key = upload_key(publication);
        let Some(_claim) = self.hub.publisher.claim_upload(key) else {
            let message = format!(
                "'{}' is being uploaded by another connection; retry later",
                publication.name
            );
            self.refuse(Refusal::new(ErrorCode::Busy, message)).await?;
            return Ok(Flow::Continue);
        };
        let path = self.hub.store.partial_path(&key);
        let held = tokio::fs::metadata(&path).await.map_or(0, |m| m.len());
        let offset = if held > publication.size { 0 } else { held };
        if !self.make_room(&path, offset, publication).await? {
            return Ok(Flow::Continue);
        }
        self.writer.send(&Response::UploadReady { offset }).await?;
        let result = self.receive_into(&path, offset, publication, true).await;
        if let Err(e) = &result {
            if e.is_storage_full() {
                remove_quietly(&path).await;
            } else {
                let owned = path.clone();
                if let Err(e) = blocking(move || space::release_unused(&owned)).await {
                    tracing::warn!(path = %path.display(), "could not trim a partial upload: {e}");
                }
            }
        }
        self.finish_upload(&path, publication, result).await
    }

    /// Takes room on the disk for the rest of a negotiated upload, or
    /// refuses it (removing its partial file: a partial that cannot be
    /// finished only holds space). `false`: refused.
    async fn make_room(
        &mut self,
        path: &Path,
        offset: u64,
        publication: &Publication,
    ) -> Result<bool, HubError> {
        let (owned, size) = (path.to_owned(), publication.size);
        let reserve = self.hub.config.min_free_space;
        let room = blocking(move || space::make_room(&owned, offset, size, reserve))
            .await
            .map_err(|e| HubError::io("making room for an upload", path, e))?;
        let Err(no_room) = room else {
            return Ok(true);
        };
        remove_quietly(path).await;
        let message = no_room.message(publication.name.as_str());
        self.refuse(Refusal::new(ErrorCode::StorageFull, message))
            .await?;
        Ok(false)
    }

    /// Appends the body to `path` (truncated to `offset`), hashing the bytes
    /// already there first. Returns the hash of the whole file. Whatever
    /// arrived is fsynced, also after a failure, so a resumed upload can
    /// trust it.
    async fn receive_into(
        &mut self,
        path: &Path,
        offset: u64,
        publication: &Publication,
        sync: bool,
    ) -> Result<blake3::Hash, HubError> {
        let owned = path.to_owned();
        let (file, hasher) = blocking(move || open_for_resume(&owned, offset))
            .await
            .map_err(|e| HubError::io("opening upload", path, e))?;
        let received = receive_to_file(
            &mut self.reader,
            publication.size - offset,
            file,
            hasher,
            sync,
            self.hub.config.stall_timeout,
            &mut |_| {},
        )
        .await;
        Ok(received?.finalize())
    }

    async fn finish_upload(
        &mut self,
        path: &Path,
        publication: &Publication,
        received: Result<blake3::Hash, HubError>,
    ) -> Result<Flow, HubError> {
        if !self.verified(Some(path), publication, received?).await? {
            return Ok(Flow::Continue);
        }
        match self
            .hub
            .publisher
            .publish(publication, Some(path), false)
            .await?
        {
            Outcome::Done(Some((entry, deduplicated))) => {
                self.stored(entry, deduplicated).await?;
            }
            Outcome::Done(None) => unreachable!("publishing with bytes always stores them"),
            Outcome::Refused(refusal) => {
                remove_quietly(path).await;
                self.refuse(refusal).await?;
            }
        }
        Ok(Flow::Continue)
    }

    /// Whether the bytes received hash to what was announced; if not, the
    /// file they are in (if any) is removed and the client told.
    async fn verified(
        &mut self,
        path: Option<&Path>,
        publication: &Publication,
        hash: blake3::Hash,
    ) -> Result<bool, HubError> {
        if ContentHash::from(hash) == publication.hash {
            return Ok(true);
        }
        if let Some(path) = path {
            remove_quietly(path).await;
        }
        let message = format!(
            "'{}' arrived with hash {}, not the announced {}; nothing was stored",
            publication.name,
            ContentHash::from(hash).short(),
            publication.hash.short()
        );
        self.refuse(Refusal::new(ErrorCode::HashMismatch, message))
            .await?;
        Ok(false)
    }
}

/// Checks an upload's announcement: a valid name and a size this hub takes.
fn validate(
    owner: Handle,
    raw_name: &str,
    size: u64,
    hash: ContentHash,
    policy: ConflictPolicy,
    admin: bool,
    hub: &Hub,
) -> Result<Publication, Refusal> {
    let name = FileName::parse(raw_name)
        .map_err(|e| Refusal::new(ErrorCode::InvalidName, format!("{e}")))?;
    let max = hub.config.max_file_size;
    if size > max {
        let message = format!("'{name}' is {size} bytes; this hub accepts at most {max}");
        return Err(Refusal::new(ErrorCode::TooLarge, message));
    }
    Ok(Publication {
        name,
        size,
        hash,
        owner,
        policy,
        admin,
        relayed: false,
    })
}

/// Identifies a resumable upload: the same uploader sending the same bytes.
fn upload_key(publication: &Publication) -> ContentHash {
    let mut hasher = blake3::Hasher::new();
    hasher.update(publication.owner.as_str().as_bytes());
    hasher.update(&[0]);
    hasher.update(&publication.hash.0);
    hasher.update(&publication.size.to_le_bytes());
    hasher.finalize().into()
}

/// Runs a blocking file operation off the async threads.
async fn blocking<T: Send + 'static>(
    operation: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> std::io::Result<T> {
    tokio::task::spawn_blocking(operation)
        .await
        .map_err(std::io::Error::other)?
}
