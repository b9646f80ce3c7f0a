//! Downloads out of the store, for a [`Session`].
//!
//! A client fetching a folder sends its `Download` requests back to back.
//! The session takes every one already buffered behind the first (up to
//! [`MAX_RUN`]) and serves them as a run: one catalog read for all the
//! names; every blob opened, and the small ones read whole, on the session's
//! thread when the page cache holds them and in one blocking call when not,
//! instead of a query and a thread hop per file. Replies go out
//! in request order, exactly as if each had been served alone.

use std::io;
use std::path::{Path, PathBuf};

use ferry_io::body::flush_within;
use ferry_io::source::{Source, open_source, open_source_cached, send_source};
use ferry_protocol::{ErrorCode, FileEntry, FileName, Request, Response};

use crate::error::HubError;
use crate::outcome::{Refusal, not_found};
use crate::session::{Flow, Session};

/// Most downloads served as one run.
const MAX_RUN: usize = 64;

/// Blobs up to this size are read whole in the call that opens them...
const READ_WHOLE_MAX: u64 = 64 << 10;

/// ...while a run holds at most this much read ahead; the rest stream from
/// disk as large blobs do.
const RUN_MEMORY: u64 = 1 << 20;

/// One blob of a run to open: `len` bytes from `offset`, read whole or
/// left open to stream.
#[derive(Clone)]
struct BlobRead {
    path: PathBuf,
    offset: u64,
    len: u64,
    whole: bool,
}

impl BlobRead {
    /// Opens it without waiting for the disk, if the page cache allows.
    fn cached(&self) -> Option<io::Result<Source>> {
        open_source_cached(&self.path, self.offset, self.len, self.whole)
    }

    /// Opens it, waiting for the disk if need be. Blocking.
    fn blocking(&self) -> io::Result<Source> {
        open_source(&self.path, self.offset, self.len, self.whole)
    }
}

/// One requested download, once looked up.
enum Planned {
    Refused(Refusal),
    Send {
        name: FileName,
        entry: FileEntry,
        offset: u64,
        blob: PathBuf,
    },
}

impl Session {
    /// Serves a download and every download request already buffered
    /// behind it. A different request found behind them is kept for the
    /// session loop.
    pub(crate) async fn download(&mut self, name: String, offset: u64) -> Result<Flow, HubError> {
        let mut wanted = vec![(name, offset)];
        while wanted.len() < MAX_RUN {
            match self.reader.try_recv_buffered() {
                Ok(Some(Request::Download { name, offset })) => wanted.push((name, offset)),
                Ok(Some(other)) => {
                    self.deferred = Some(Ok(other));
                    break;
                }
                Ok(None) => break,
                Err(e) => {
                    self.deferred = Some(Err(e));
                    break;
                }
            }
        }
        let planned = self.plan(&wanted).await?;
        let mut held = 0;
        let reads: Vec<BlobRead> = planned
            .iter()
            .filter_map(|p| match p {
                Planned::Send {
                    entry,
                    offset,
                    blob,
                    ..
                } => {
                    let len = entry.size - offset;
                    let whole = len <= READ_WHOLE_MAX && held + len <= RUN_MEMORY;
                    held += if whole { len } else { 0 };
                    Some(BlobRead {
                        path: blob.clone(),
                        offset: *offset,
                        len,
                        whole,
                    })
                }
                Planned::Refused(_) => None,
            })
            .collect();
        let mut sources = open_sources(reads).await?.into_iter();
        for plan in planned {
            match plan {
                Planned::Refused(refusal) => self.refuse(refusal).await?,
                Planned::Send {
                    name,
                    entry,
                    offset,
                    blob,
                } => {
                    let source = sources.next().expect("one source per file to send");
                    self.send_blob(&name, entry, offset, &blob, source).await?;
                }
            }
        }
        flush_within(&mut self.writer, self.hub.config.stall_timeout).await?;
        Ok(Flow::Continue)
    }

    /// Looks every name up in one catalog read and checks each request.
    async fn plan(&self, wanted: &[(String, u64)]) -> Result<Vec<Planned>, HubError> {
        let parsed: Vec<_> = wanted
            .iter()
            .map(|(raw, offset)| (FileName::parse(raw), *offset))
            .collect();
        let valid: Vec<&str> = parsed
            .iter()
            .filter_map(|(name, _)| name.as_ref().ok().map(FileName::as_str))
            .collect();
        let entries = self.hub.catalog.get_many(&valid).await?;
        let planned = parsed.into_iter().map(|(name, offset)| {
            let name = match name {
                Ok(name) => name,
                Err(e) => {
                    return Planned::Refused(Refusal::new(ErrorCode::InvalidName, e.to_string()));
                }
            };
            let Some(entry) = entries.get(name.as_str()).cloned() else {
                return Planned::Refused(not_found(&name));
            };
            if offset > entry.size {
                let message = format!(
                    "offset {offset} is past the end of '{name}' ({} bytes)",
                    entry.size
                );
                return Planned::Refused(Refusal::new(ErrorCode::BadRequest, message));
            }
            let blob = self.hub.store.blob_path(&entry.hash);
            Planned::Send {
                name,
                entry,
                offset,
                blob,
            }
        });
        Ok(planned.collect())
    }

    /// Sends one file from `offset` (not flushed).
    async fn send_blob(
        &mut self,
        name: &FileName,
        entry: FileEntry,
        offset: u64,
        blob: &Path,
        source: io::Result<Source>,
    ) -> Result<(), HubError> {
        let source = match source {
            Ok(source) => source,
            // Deleted between the lookup and the open.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return self.refuse(not_found(name)).await;
            }
            Err(e) => return Err(HubError::io("opening blob", blob, e)),
        };
        let remaining = entry.size - offset;
        let entry = self.hub.publisher.accounts.spell(entry);
        self.writer
            .queue(&Response::Sending { entry, offset })
            .await?;
        let stall = self.hub.config.stall_timeout;
        send_source(source, remaining, &mut self.writer, stall, &mut |_| {}).await?;
        Ok(())
    }
}

/// Opens every blob of a run: on this thread where the page cache already
/// holds it, and in one blocking call for the rest. One result per blob,
/// in order.
async fn open_sources(reads: Vec<BlobRead>) -> Result<Vec<io::Result<Source>>, HubError> {
    let mut opened: Vec<_> = reads.iter().map(BlobRead::cached).collect();
    let waiting: Vec<usize> = (0..opened.len()).filter(|&i| opened[i].is_none()).collect();
    if !waiting.is_empty() {
        let jobs: Vec<BlobRead> = waiting.iter().map(|&i| reads[i].clone()).collect();
        let results = tokio::task::spawn_blocking(move || {
            jobs.iter().map(BlobRead::blocking).collect::<Vec<_>>()
        })
        .await
        .map_err(|e| HubError::io("opening blobs", Path::new("store"), io::Error::other(e)))?;
        for (i, result) in waiting.into_iter().zip(results) {
            opened[i] = Some(result);
        }
    }
    Ok(opened
        .into_iter()
        .map(|o| o.expect("every blob was opened one way or the other"))
        .collect())
}
