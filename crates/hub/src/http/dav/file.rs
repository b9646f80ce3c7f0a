//! Open files for WebDAV: a stored file read by position (hashed while it
//! is read from start to end in order, so a rotten blob fails its last
//! read instead of passing as good), and an upload staged in the store's
//! temp area while it is hashed, published on `flush` only, and removed if
//! it never is.

use std::fmt;
use std::io::{self, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use dav_server::fs::{DavFile, DavMetaData, FsError, FsFuture};
use ferry_protocol::{ConflictPolicy, ContentHash, FileEntry, FileName};
use futures_util::FutureExt;

use super::meta::Meta;
use super::{fs_error, refusal_error};
use crate::access::credentials::Caller;
use crate::access::policy::Permission;
use crate::outcome::Outcome;
use crate::publish::Publication;
use crate::publish::accounts::Reservation;
use crate::state::Hub;

/// A disk error's meaning to a WebDAV client (a full disk is 507).
fn io_error(error: &io::Error) -> FsError {
    if crate::space::is_storage_full(error) {
        return FsError::InsufficientStorage;
    }
    tracing::warn!("WebDAV file operation failed: {error}");
    FsError::GeneralFailure
}

/// Bytes gathered before each write to disk.
const WRITE_BUFFER: usize = 1 << 20;

/// A stored file, open for reading.
pub(crate) struct Download {
    pub(crate) file: Arc<std::fs::File>,
    pub(crate) entry: FileEntry,
    pub(crate) position: u64,
    /// Fed every byte read so far, while reads went in order from 0.
    pub(crate) hasher: Option<blake3::Hasher>,
}

impl fmt::Debug for Download {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Download({})", self.entry.name)
    }
}

impl DavFile for Download {
    fn metadata(&mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let meta: Box<dyn DavMetaData> = Box::new(Meta::File(self.entry.clone()));
        futures_util::future::ready(Ok(meta)).boxed()
    }

    fn write_buf(&mut self, _buf: Box<dyn Buf + Send>) -> FsFuture<'_, ()> {
        futures_util::future::ready(Err(FsError::Forbidden)).boxed()
    }

    fn write_bytes(&mut self, _buf: Bytes) -> FsFuture<'_, ()> {
        futures_util::future::ready(Err(FsError::Forbidden)).boxed()
    }

    fn read_bytes(&mut self, count: usize) -> FsFuture<'_, Bytes> {
        async move {
            let left = self.entry.size.saturating_sub(self.position);
            let n = usize::try_from(left).unwrap_or(usize::MAX).min(count);
            let (file, start) = (Arc::clone(&self.file), self.position);
            let mut hasher = self.hasher.take();
            let read = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0; n];
                file.read_exact_at(&mut buf, start)?;
                if let Some(hasher) = &mut hasher {
                    hasher.update(&buf);
                }
                Ok::<_, io::Error>((buf, hasher))
            });
            let (buf, hasher) = read
                .await
                .map_err(|_| FsError::GeneralFailure)?
                .map_err(|e| io_error(&e))?;
            self.position += n as u64;
            if self.position == self.entry.size
                && let Some(hasher) = hasher
            {
                if ContentHash::from(hasher.finalize()) != self.entry.hash {
                    tracing::error!(
                        name = %self.entry.name,
                        "a stored file does not hash to its entry (its disk may be failing); the WebDAV download was cut off"
                    );
                    return Err(FsError::GeneralFailure);
                }
            } else {
                self.hasher = hasher;
            }
            Ok(Bytes::from(buf))
        }
        .boxed()
    }

    fn seek(&mut self, pos: SeekFrom) -> FsFuture<'_, u64> {
        let size = self.entry.size;
        let target = match pos {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => size.checked_add_signed(d),
            SeekFrom::Current(d) => self.position.checked_add_signed(d),
        };
        let result = match target {
            Some(n) if n <= size => {
                if n != self.position {
                    // Out of order: what is read can no longer be checked.
                    self.hasher = None;
                }
                self.position = n;
                Ok(n)
            }
            _ => Err(FsError::GeneralFailure),
        };
        futures_util::future::ready(result).boxed()
    }

    fn flush(&mut self) -> FsFuture<'_, ()> {
        futures_util::future::ready(Ok(())).boxed()
    }
}

/// An upload under way: bytes into a temp file, published on `flush`.
pub(crate) struct Upload {
    pub(crate) hub: Arc<Hub>,
    pub(crate) caller: Caller,
    pub(crate) name: FileName,
    pub(crate) path: PathBuf,
    pub(crate) file: Option<std::fs::File>,
    pub(crate) buffer: Vec<u8>,
    pub(crate) written: u64,
    /// The size the client announced, if it did.
    pub(crate) expected: Option<u64>,
    pub(crate) hasher: blake3::Hasher,
    pub(crate) reservation: Option<Reservation>,
    /// The entry, once published.
    pub(crate) published: Option<FileEntry>,
}

impl fmt::Debug for Upload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Upload({})", self.name)
    }
}

impl Upload {
    /// Writes the gathered bytes out (and, with `sync`, fsyncs the file).
    async fn drain(&mut self, sync: bool) -> Result<(), FsError> {
        let mut file = self.file.take().ok_or(FsError::GeneralFailure)?;
        let buffer = std::mem::take(&mut self.buffer);
        let mut hasher = std::mem::take(&mut self.hasher);
        let written = tokio::task::spawn_blocking(move || {
            file.write_all(&buffer)?;
            hasher.update(&buffer);
            if sync {
                file.sync_all()?;
            }
            Ok::<_, io::Error>((file, hasher, buffer))
        })
        .await
        .map_err(|_| FsError::GeneralFailure)?;
        let (file, hasher, mut buffer) = written.map_err(|e| io_error(&e))?;
        buffer.clear();
        (self.file, self.hasher, self.buffer) = (Some(file), hasher, buffer);
        Ok(())
    }

    async fn add(&mut self, bytes: &[u8]) -> Result<(), FsError> {
        if self.published.is_some() {
            return Err(FsError::GeneralFailure);
        }
        self.written += bytes.len() as u64;
        let limit = self.expected.unwrap_or(self.hub.config.max_file_size);
        if self.written > limit {
            return Err(FsError::TooLarge);
        }
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= WRITE_BUFFER {
            self.drain(false).await?;
        }
        Ok(())
    }

    async fn publish(&mut self) -> Result<(), FsError> {
        if self.published.is_some() {
            return Ok(());
        }
        self.drain(true).await?;
        if self.expected.is_some_and(|n| n != self.written) {
            // The body ended short of its length: nothing is published.
            return Err(FsError::GeneralFailure);
        }
        // A long upload may outlast its user's rights.
        let allowed =
            crate::http::auth::still_may(&self.hub, &self.caller, Permission::Write).await;
        allowed.map_err(|_| FsError::Forbidden)?;
        let accounts = &self.hub.publisher.accounts;
        if self.reservation.is_none() {
            let reserved = accounts.reserve(&self.caller.handle, self.written, self.caller.quota);
            self.reservation = Some(reserved.map_err(|r| refusal_error(&r))?);
        }
        let publication = Publication {
            name: self.name.clone(),
            size: self.written,
            hash: self.hasher.finalize().into(),
            owner: self.caller.handle.clone(),
            // A WebDAV PUT replaces: the publisher refuses another's file.
            policy: ConflictPolicy::Overwrite,
            admin: self.caller.admin(),
            relayed: false,
        };
        let published = self
            .hub
            .publisher
            .publish(&publication, Some(&self.path), false)
            .await;
        match published.map_err(|e| fs_error(&e))? {
            Outcome::Done(Some((entry, _))) => {
                self.published = Some(entry);
                Ok(())
            }
            Outcome::Done(None) => Err(FsError::GeneralFailure),
            Outcome::Refused(refusal) => Err(refusal_error(&refusal)),
        }
    }
}

impl DavFile for Upload {
    fn metadata(&mut self) -> FsFuture<'_, Box<dyn DavMetaData>> {
        let entry = self.published.clone().unwrap_or_else(|| FileEntry {
            name: self.name.to_string(),
            size: self.written,
            hash: ContentHash([0; 32]),
            owner: self.caller.handle.to_string(),
            modified: crate::publish::unix_now(),
        });
        let meta: Box<dyn DavMetaData> = Box::new(Meta::File(entry));
        futures_util::future::ready(Ok(meta)).boxed()
    }

    fn write_buf(&mut self, mut buf: Box<dyn Buf + Send>) -> FsFuture<'_, ()> {
        async move {
            while buf.has_remaining() {
                let chunk = buf.chunk().to_vec();
                buf.advance(chunk.len());
                self.add(&chunk).await?;
            }
            Ok(())
        }
        .boxed()
    }

    fn write_bytes(&mut self, buf: Bytes) -> FsFuture<'_, ()> {
        async move { self.add(&buf).await }.boxed()
    }

    fn read_bytes(&mut self, _count: usize) -> FsFuture<'_, Bytes> {
        futures_util::future::ready(Err(FsError::Forbidden)).boxed()
    }

    fn seek(&mut self, pos: SeekFrom) -> FsFuture<'_, u64> {
        // Bytes go in order; only asking where we are is allowed.
        let result = match pos {
            SeekFrom::Current(0) => Ok(self.written),
            SeekFrom::Start(n) if n == self.written => Ok(n),
            _ => Err(FsError::NotImplemented),
        };
        futures_util::future::ready(result).boxed()
    }

    fn flush(&mut self) -> FsFuture<'_, ()> {
        async move { self.publish().await }.boxed()
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if self.published.is_none() {
            // Never published: its bytes go (a rename moved them if it was).
            let _ = std::fs::remove_file(&self.path);
        }
    }
}
