//! Uploads into and downloads out of the store, for a [`Session`].
//!
//! Upload path: validate → decide placement → bytes into a temp (eager) or
//! partial (negotiated, resumable) file while hashing → check size and hash
//! → fsync → publish (rename into `blobs/`, fsync dir, write the entry).
//! A refused eager upload still consumes its (small) body so the next frame
//! is found; a failed body closes the connection.

use std::path::Path;

use ferry_protocol::body::discard_body;
use ferry_protocol::disk::{open_for_resume, open_from, receive_to_file, send_from_file};
use ferry_protocol::{
    ConflictPolicy, ContentHash, EAGER_UPLOAD_MAX, ErrorCode, FileEntry, FileName, Handle,
    Response, UploadMode,
};

use crate::error::HubError;
use crate::session::{Flow, MAX_PENDING, Session};
use crate::state::{Outcome, Placement, Publication, Refusal, not_found};

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
        let (publication, placement) = match self
            .check_upload(owner, raw_name, size, hash, policy)
            .await?
        {
            Ok(checked) => checked,
            Err(refusal) => return self.refuse_upload(eager, size, refusal).await,
        };
        if let Placement::AlreadyThere(entry) = placement {
            if eager {
                self.skip_body(size).await?;
            }
            return self.stored(entry, true).await;
        }
        if eager {
            self.receive_eager(&publication).await
        } else {
            self.receive_negotiated(&publication).await
        }
    }

    /// Validates the announcement and decides where it would go right now
    /// (decided again under the commit lock when the bytes are in).
    async fn check_upload(
        &self,
        owner: Handle,
        raw_name: &str,
        size: u64,
        hash: ContentHash,
        policy: ConflictPolicy,
    ) -> Result<Result<(Publication, Placement), Refusal>, HubError> {
        let name = match FileName::parse(raw_name) {
            Ok(name) => name,
            Err(e) => return Ok(Err(Refusal::new(ErrorCode::InvalidName, format!("{e}")))),
        };
        let max = self.hub.config.max_file_size;
        if size > max {
            let message = format!("'{name}' is {size} bytes; this hub accepts at most {max}");
            return Ok(Err(Refusal::new(ErrorCode::TooLarge, message)));
        }
        let publication = Publication {
            name,
            size,
            hash,
            owner,
            policy,
        };
        Ok(match self.hub.place(&publication).await? {
            Outcome::Refused(refusal) => Err(refusal),
            Outcome::Done(placement) => Ok((publication, placement)),
        })
    }

    /// Tells the client its upload is durable and listed.
    async fn stored(&mut self, entry: FileEntry, deduplicated: bool) -> Result<Flow, HubError> {
        self.writer
            .send(&Response::Stored {
                entry,
                deduplicated,
            })
            .await?;
        Ok(Flow::Continue)
    }

    async fn refuse_upload(
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

    /// Receives a small upload without its own fsync and hands it to the
    /// group commit; its reply goes out when the group is durable.
    async fn receive_eager(&mut self, publication: &Publication) -> Result<Flow, HubError> {
        let path = self.hub.store.temp_path();
        let received = self.receive_into(&path, 0, publication, false).await;
        let hash = match received {
            Ok(hash) => hash,
            Err(e) => {
                remove_quietly(&path).await;
                return Err(e);
            }
        };
        if !self.verified(&path, publication, hash).await? {
            return Ok(Flow::Continue);
        }
        let commit = tokio::spawn(self.hub.publish_grouped(publication.clone(), path));
        self.pending.push_back(commit);
        if self.pending.len() >= MAX_PENDING {
            // Wait for all of them, not just the oldest: admitting one upload
            // per finished commit would keep every later group at one file.
            self.settle().await?;
        }
        Ok(Flow::Continue)
    }

    async fn receive_negotiated(&mut self, publication: &Publication) -> Result<Flow, HubError> {
        match self.hub.publish(publication, None).await? {
            Outcome::Done(Some((entry, deduplicated))) => {
                return self.stored(entry, deduplicated).await;
            }
            Outcome::Refused(refusal) => return self.refuse_upload(false, 0, refusal).await,
            Outcome::Done(None) => {}
        }
        let key = upload_key(publication);
        let Some(_claim) = self.hub.claim_upload(key) else {
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
        self.writer.send(&Response::UploadReady { offset }).await?;
        let result = self.receive_into(&path, offset, publication, true).await;
        self.finish_upload(&path, publication, result).await
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
        if !self.verified(path, publication, received?).await? {
            return Ok(Flow::Continue);
        }
        match self.hub.publish(publication, Some(path)).await? {
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

    /// Whether the bytes at `path` hash to what was announced; if not, they
    /// are removed and the client told.
    async fn verified(
        &mut self,
        path: &Path,
        publication: &Publication,
        hash: blake3::Hash,
    ) -> Result<bool, HubError> {
        if ContentHash::from(hash) == publication.hash {
            return Ok(true);
        }
        remove_quietly(path).await;
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

    pub(crate) async fn download(&mut self, raw_name: &str, offset: u64) -> Result<Flow, HubError> {
        let Some(name) = self.name_or_refuse(raw_name).await? else {
            return Ok(Flow::Continue);
        };
        let Some(entry) = self.hub.catalog.get(&name).await? else {
            self.refuse(not_found(&name)).await?;
            return Ok(Flow::Continue);
        };
        if offset > entry.size {
            let message = format!(
                "offset {offset} is past the end of '{name}' ({} bytes)",
                entry.size
            );
            self.refuse(Refusal::new(ErrorCode::BadRequest, message))
                .await?;
            return Ok(Flow::Continue);
        }
        let blob = self.hub.store.blob_path(&entry.hash);
        let owned = blob.clone();
        let file = match blocking(move || open_from(&owned, offset)).await {
            Ok(file) => file,
            // Deleted between the lookup and the open.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.refuse(not_found(&name)).await?;
                return Ok(Flow::Continue);
            }
            Err(e) => return Err(HubError::io("opening blob", &blob, e)),
        };
        let remaining = entry.size - offset;
        self.writer
            .queue(&Response::Sending { entry, offset })
            .await?;
        let stall = self.hub.config.stall_timeout;
        send_from_file(file, remaining, &mut self.writer, stall, &mut |_| {}).await?;
        ferry_protocol::body::flush_within(&mut self.writer, stall).await?;
        Ok(Flow::Continue)
    }
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

async fn remove_quietly(path: &Path) {
    if let Err(e) = tokio::fs::remove_file(path).await {
        tracing::warn!(path = %path.display(), "could not remove rejected upload: {e}");
    }
}
