//! Pipelined, verified, resumable transfers between local disk and the hub.
//!
//! Uploads: every file is hashed first (the hub verifies against it). Small
//! files go eagerly, header and bytes back to back; large ones negotiate so
//! the hub can say how much it already holds. A writer and a reader run
//! concurrently over the two halves of the connection, so replies never
//! wait for the last request to leave, and no file costs a round trip.
//!
//! Downloads: each file goes to a hidden partial file next to its
//! destination; an existing partial is continued, the whole is hashed and
//! checked, fsynced, then linked into place without overwriting anything
//! the policy does not allow.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use ferry_protocol::body::{BodyError, receive_body};
use ferry_protocol::disk::{open_for_resume, open_from, receive_to_file, send_from_file};
use ferry_protocol::{
    ConflictPolicy, ContentHash, EAGER_UPLOAD_MAX, FileEntry, FileName, FrameError, FrameWriter,
    Request, Response, UploadMode,
};
use tokio::sync::mpsc;
use tokio::time::timeout;

use crate::error::ClientError;
use crate::hub_client::{HubClient, read_reply, unexpected};
use crate::local::{self, Received};
use crate::progress::{Progress, TransferEvent};
use crate::scan::parse_name;

/// A local file ready to upload: hashed, sized, named.
#[derive(Debug, Clone)]
pub struct UploadItem {
    /// Where it is.
    pub path: PathBuf,
    /// Name it gets in the store.
    pub name: FileName,
    /// Size when hashed.
    pub size: u64,
    /// BLAKE3 when hashed.
    pub hash: ContentHash,
}

/// How a file ended up after a transfer.
#[derive(Debug, Clone)]
pub struct Transferred {
    /// The entry as the hub has it.
    pub entry: FileEntry,
    /// Where it landed locally (downloads only).
    pub path: Option<PathBuf>,
    /// Bytes that an earlier attempt had already moved.
    pub resumed_from: u64,
    /// The hub already had the bytes (uploads only).
    pub deduplicated: bool,
}

/// One result per file; the batch goes on past a refused file.
pub type FileResult = Result<Transferred, ClientError>;

/// Files up to this size are read whole ahead of their turn.
const READ_WHOLE_MAX: u64 = 64 << 10;

/// Files opened (and small ones read) ahead of the one being sent: enough
/// to keep the connection busy, at most 2 MiB of small files in memory.
const READ_AHEAD: usize = 32;

/// An upload's bytes as the read-ahead thread hands them over.
enum Source {
    /// A small file, read whole.
    Bytes(Vec<u8>),
    /// A larger one, opened, streamed from disk when its turn comes.
    File(std::fs::File),
}

/// Opens every item in order on one blocking thread, reading small ones
/// whole, a few items ahead of the sender: no thread hop per small file.
/// A small file whose size changed since it was hashed is an error here,
/// before its header goes out.
fn read_ahead(items: &[UploadItem]) -> mpsc::Receiver<std::io::Result<Source>> {
    let wanted: Vec<(PathBuf, u64)> = items.iter().map(|i| (i.path.clone(), i.size)).collect();
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    tokio::task::spawn_blocking(move || {
        for (path, size) in wanted {
            let opened = open_from(&path, 0).and_then(|file| {
                if size > READ_WHOLE_MAX {
                    return Ok(Source::File(file));
                }
                let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
                file.take(READ_WHOLE_MAX + 1).read_to_end(&mut bytes)?;
                if bytes.len() as u64 != size {
                    let message = format!("changed size since it was hashed ({size} bytes then)");
                    return Err(std::io::Error::other(message));
                }
                Ok(Source::Bytes(bytes))
            });
            if tx.blocking_send(opened).is_err() {
                return; // the upload stopped
            }
        }
    });
    rx
}

/// Sends an upload's body from `offset` on.
async fn send_source<W>(
    source: Source,
    item: &UploadItem,
    offset: u64,
    writer: &mut FrameWriter<W, Request>,
    stall: std::time::Duration,
    progress: &dyn Progress,
) -> Result<(), ClientError>
where
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut counted = |n| progress.event(TransferEvent::Bytes(n));
    match source {
        Source::Bytes(bytes) => {
            let rest = &bytes[usize::try_from(offset).unwrap_or(bytes.len())..];
            timeout(stall, writer.write_raw(rest))
                .await
                .map_err(|_| BodyError::Stalled(stall))?
                .map_err(BodyError::Network)?;
            counted(rest.len() as u64);
        }
        Source::File(mut file) => {
            file.seek(SeekFrom::Start(offset))
                .map_err(|e| ClientError::local("seeking", &item.path, e))?;
            send_from_file(file, item.size - offset, writer, stall, &mut counted).await?;
        }
    }
    Ok(())
}

/// What the writer tells the reader it put on the wire.
struct Sent {
    index: usize,
    negotiated: bool,
}

impl HubClient {
    /// Uploads `items` in one pipelined batch. `Err` means the connection
    /// broke; per-file refusals are in the returned list, in order.
    pub async fn upload(
        &mut self,
        items: &[UploadItem],
        policy: ConflictPolicy,
        progress: &dyn Progress,
    ) -> Result<Vec<FileResult>, ClientError> {
        let (sent_tx, mut sent_rx) = mpsc::unbounded_channel::<Sent>();
        let (offset_tx, mut offset_rx) = mpsc::channel::<Option<u64>>(1);
        let mut results: Vec<Option<FileResult>> = (0..items.len()).map(|_| None).collect();
        let stall = self.stall;
        let (reader, writer) = (&mut self.reader, &mut self.writer);

        let send_all = async {
            let mut unopened = Vec::new();
            let mut sources = read_ahead(items);
            for (index, item) in items.iter().enumerate() {
                let opened = sources
                    .recv()
                    .await
                    .unwrap_or_else(|| Err(std::io::Error::other("the read-ahead thread stopped")));
                let source = match opened {
                    Ok(source) => source,
                    Err(e) => {
                        let result = Err(ClientError::local("reading", &item.path, e));
                        report(progress, item.name.as_str(), &result);
                        unopened.push((index, result));
                        continue;
                    }
                };
                let negotiated = item.size > EAGER_UPLOAD_MAX;
                let mode = if negotiated {
                    UploadMode::Negotiate
                } else {
                    UploadMode::Eager
                };
                let header = Request::Upload {
                    name: item.name.to_string(),
                    size: item.size,
                    hash: item.hash,
                    policy,
                    mode,
                };
                writer.queue(&header).await?;
                let _ = sent_tx.send(Sent { index, negotiated });
                let mut offset = 0;
                if negotiated {
                    writer.flush().await.map_err(FrameError::from)?;
                    match offset_rx.recv().await {
                        Some(Some(from)) => offset = from,
                        Some(None) => continue,
                        None => break,
                    }
                }
                send_source(source, item, offset, writer, stall, progress).await?;
            }
            drop(sent_tx);
            writer.flush().await.map_err(FrameError::from)?;
            Ok::<_, ClientError>(unopened)
        };

        let receive_all = async {
            while let Some(Sent { index, negotiated }) = sent_rx.recv().await {
                let item = &items[index];
                let mut resumed_from = 0;
                let mut reply = read_reply(reader, stall).await;
                if negotiated {
                    if let Ok(Response::UploadReady { offset }) = reply {
                        resumed_from = offset;
                        if offset > 0 {
                            progress.event(TransferEvent::Resumed {
                                name: item.name.as_str(),
                                offset,
                            });
                            progress.event(TransferEvent::Bytes(offset));
                        }
                        let _ = offset_tx.send(Some(offset)).await;
                        reply = read_reply(reader, stall).await;
                    } else {
                        let _ = offset_tx.send(None).await;
                    }
                }
                let result = match reply {
                    Ok(Response::Stored {
                        entry,
                        deduplicated,
                    }) => {
                        if deduplicated {
                            progress.event(TransferEvent::Bytes(item.size));
                        }
                        Ok(Transferred {
                            entry,
                            path: None,
                            resumed_from,
                            deduplicated,
                        })
                    }
                    Ok(other) => return Err(unexpected(&other)),
                    Err(e) if e.connection_usable() => Err(e),
                    Err(e) => return Err(e),
                };
                report(progress, item.name.as_str(), &result);
                results[index] = Some(result);
            }
            Ok::<_, ClientError>(())
        };

        let (unopened, ()) = tokio::try_join!(send_all, receive_all)?;
        for (index, result) in unopened {
            results[index] = Some(result);
        }
        Ok(results
            .into_iter()
            .map(|r| r.expect("every item was sent or failed to open"))
            .collect())
    }

    /// Downloads `entries` into `dir`, each to its path relative to `dir`,
    /// pipelined. `Err` means the connection broke (partial files stay for a
    /// resume); per-file failures are in the returned list, in order.
    pub async fn download(
        &mut self,
        entries: &[(FileEntry, PathBuf)],
        dir: &Path,
        policy: ConflictPolicy,
        progress: &dyn Progress,
    ) -> Result<Vec<FileResult>, ClientError> {
        let mut results: Vec<Option<FileResult>> = (0..entries.len()).map(|_| None).collect();
        let mut plans = Vec::new();
        for (index, (entry, relative)) in entries.iter().enumerate() {
            match plan_download(entry, relative, dir, policy) {
                Ok(plan) => plans.push((index, plan)),
                Err(e) => {
                    let result = Err(e);
                    report(progress, &entry.name, &result);
                    results[index] = Some(result);
                }
            }
        }
        for (_, plan) in &plans {
            let request = Request::Download {
                name: plan.entry.name.clone(),
                offset: plan.offset,
            };
            self.writer.queue(&request).await?;
        }
        self.writer.flush().await.map_err(FrameError::from)?;
        let (mut batch, mut held, mut committing) = (Vec::new(), 0, None);
        for (index, plan) in plans {
            let left = plan.entry.size - plan.offset;
            let batched = left <= GROUP_COMMIT_BYTES;
            let in_memory = plan.offset == 0 && left <= IN_MEMORY_MAX;
            let result = self
                .receive_download(&plan, progress, batched, in_memory)
                .await;
            match result {
                Err(e) if !e.connection_usable() => {
                    // Keep what arrived whole before the connection broke.
                    finish_commit(committing.take(), progress, &mut results).await;
                    let last = start_commit(&mut batch, policy);
                    finish_commit(last, progress, &mut results).await;
                    return Err(e);
                }
                Ok((done, bytes)) if batched => {
                    held += bytes.as_ref().map_or(0, Vec::len);
                    batch.push(Unplaced {
                        index,
                        done,
                        plan,
                        bytes,
                    });
                    if batch.len() >= GROUP_COMMIT_FILES || held >= GROUP_COMMIT_MEMORY {
                        // One batch is made durable while the next arrives.
                        finish_commit(committing.take(), progress, &mut results).await;
                        committing = start_commit(&mut batch, policy);
                        held = 0;
                    }
                }
                Ok((done, _)) => {
                    let result = place(&plan, policy).await.map(|path| Transferred {
                        path: Some(path),
                        ..done
                    });
                    report(progress, &plan.entry.name, &result);
                    results[index] = Some(result);
                }
                Err(e) => {
                    let result = Err(e);
                    report(progress, &plan.entry.name, &result);
                    results[index] = Some(result);
                }
            }
        }
        finish_commit(committing.take(), progress, &mut results).await;
        let last = start_commit(&mut batch, policy);
        finish_commit(last, progress, &mut results).await;
        Ok(results
            .into_iter()
            .map(|r| r.expect("every entry gets a result"))
            .collect())
    }

    /// Streams `name` from its first byte into `sink` and checks the whole
    /// against the hub's hash. As with a pipe, the bytes reach `sink` before
    /// the check, so a caller that must not see unverified bytes uses
    /// [`Self::download`] instead.
    pub async fn read_into<W>(
        &mut self,
        name: &FileName,
        sink: &mut W,
    ) -> Result<FileEntry, ClientError>
    where
        W: tokio::io::AsyncWrite + Unpin,
    {
        let request = Request::Download {
            name: name.to_string(),
            offset: 0,
        };
        let entry = match self.call(&request).await? {
            Response::Sending { entry, offset: 0 } if entry.name == name.as_str() => entry,
            other => return Err(unexpected(&other)),
        };
        let mut hasher = blake3::Hasher::new();
        receive_body(&mut self.reader, entry.size, sink, &mut hasher, self.stall).await?;
        let actual = ContentHash::from(hasher.finalize());
        if actual != entry.hash {
            return Err(ClientError::Corrupt {
                name: entry.name,
                expected: entry.hash.short(),
                actual: actual.short(),
            });
        }
        Ok(entry)
    }

    /// Receives and verifies one file, not yet placed: into memory if
    /// `in_memory` (returned), else into its partial file, fsynced unless
    /// `batched` (then [`start_commit`] makes it durable).
    async fn receive_download(
        &mut self,
        plan: &DownloadPlan,
        progress: &dyn Progress,
        batched: bool,
        in_memory: bool,
    ) -> Result<(Transferred, Option<Vec<u8>>), ClientError> {
        let (entry, offset) = match self.reply().await? {
            Response::Sending { entry, offset }
                if offset == plan.offset && entry.name == plan.entry.name =>
            {
                (entry, offset)
            }
            other => return Err(unexpected(&other)),
        };
        let incoming = Incoming {
            size: entry.size,
            hash: entry.hash,
            offset,
        };
        let bytes = if in_memory {
            let bytes = receive_whole(&mut self.reader, plan, incoming, self.stall).await?;
            progress.event(TransferEvent::Bytes(bytes.len() as u64));
            Some(bytes)
        } else {
            let sync = !batched;
            receive_verified(&mut self.reader, plan, incoming, progress, self.stall, sync).await?;
            None
        };
        let done = Transferred {
            entry,
            path: None,
            resumed_from: offset,
            deduplicated: false,
        };
        Ok((done, bytes))
    }
}

/// Receives a whole small file into memory and verifies it.
async fn receive_whole<R, D>(
    reader: &mut ferry_protocol::FrameReader<R, D>,
    plan: &DownloadPlan,
    incoming: Incoming,
    stall: std::time::Duration,
) -> Result<Vec<u8>, ClientError>
where
    R: tokio::io::AsyncRead + Unpin,
    D: serde::de::DeserializeOwned,
{
    let mut bytes = Vec::with_capacity(usize::try_from(incoming.size).unwrap_or(0));
    let mut hasher = blake3::Hasher::new();
    receive_body(reader, incoming.size, &mut bytes, &mut hasher, stall).await?;
    let actual = ContentHash::from(hasher.finalize());
    if actual != incoming.hash {
        return Err(ClientError::Corrupt {
            name: plan.entry.name.clone(),
            expected: incoming.hash.short(),
            actual: actual.short(),
        });
    }
    Ok(bytes)
}

/// Files up to this size are made durable in groups rather than one by one.
const GROUP_COMMIT_BYTES: u64 = 1 << 20;

/// At most this many files wait in one group.
const GROUP_COMMIT_FILES: usize = 256;

/// Files up to this size (downloaded whole, not resumed) are received into
/// memory and written out with their group: no file to open per file.
const IN_MEMORY_MAX: u64 = 64 << 10;

/// A group is committed once it holds this many bytes in memory.
const GROUP_COMMIT_MEMORY: usize = 4 << 20;

/// A verified download waiting in a group to be made durable and placed.
struct Unplaced {
    index: usize,
    done: Transferred,
    plan: DownloadPlan,
    /// The whole file, if it was received into memory.
    bytes: Option<Vec<u8>>,
}

/// A group being made durable and placed on a blocking thread.
struct Committing {
    waiting: Vec<Unplaced>,
    task: tokio::task::JoinHandle<Vec<Result<PathBuf, ClientError>>>,
}

/// Starts making every file in `batch` (emptied) durable and placing it
/// (see [`local::place_batch`]); `None` if there is nothing to do.
fn start_commit(batch: &mut Vec<Unplaced>, policy: ConflictPolicy) -> Option<Committing> {
    if batch.is_empty() {
        return None;
    }
    let mut waiting = std::mem::take(batch);
    let files: Vec<Received> = waiting
        .iter_mut()
        .map(|u| Received {
            partial: u.plan.partial.clone(),
            dest: u.plan.dest.clone(),
            bytes: u.bytes.take(),
        })
        .collect();
    let task = tokio::task::spawn_blocking(move || local::place_batch(&files, policy));
    Some(Committing { waiting, task })
}

/// Waits for a group started by [`start_commit`] and reports each file.
async fn finish_commit(
    committing: Option<Committing>,
    progress: &dyn Progress,
    results: &mut [Option<FileResult>],
) {
    let Some(Committing { waiting, task }) = committing else {
        return;
    };
    let placed = match task.await {
        Ok(placed) => placed,
        Err(e) => waiting
            .iter()
            .map(|u| {
                let e = std::io::Error::other(e.to_string());
                Err(ClientError::local("placing", &u.plan.dest, e))
            })
            .collect(),
    };
    for (unplaced, placed) in waiting.into_iter().zip(placed) {
        let result = placed.map(|path| Transferred {
            path: Some(path),
            ..unplaced.done
        });
        report(progress, &unplaced.plan.entry.name, &result);
        results[unplaced.index] = Some(result);
    }
}

/// Places one verified, fsynced partial under `policy`.
async fn place(plan: &DownloadPlan, policy: ConflictPolicy) -> Result<PathBuf, ClientError> {
    let (partial, dest) = (plan.partial.clone(), plan.dest.clone());
    tokio::task::spawn_blocking(move || local::place(&partial, &dest, policy))
        .await
        .map_err(|e| ClientError::local("placing", &plan.dest, std::io::Error::other(e)))?
}

/// What the sender announced before a file's bytes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Incoming {
    pub(crate) size: u64,
    pub(crate) hash: ContentHash,
    pub(crate) offset: u64,
}

/// Receives a file's body into the plan's partial file (continuing at
/// `offset`), verifies the whole against the announced hash, fsyncs, and
/// places it under `policy`. Returns where it landed.
pub(crate) async fn receive_file<R, D>(
    reader: &mut ferry_protocol::FrameReader<R, D>,
    plan: &DownloadPlan,
    incoming: Incoming,
    policy: ConflictPolicy,
    progress: &dyn Progress,
    stall: std::time::Duration,
) -> Result<PathBuf, ClientError>
where
    R: tokio::io::AsyncRead + Unpin,
    D: serde::de::DeserializeOwned,
{
    receive_verified(reader, plan, incoming, progress, stall, true).await?;
    place(plan, policy).await
}

/// Receives a file's body into the plan's partial file (continuing at
/// `offset`) and verifies the whole against the announced hash; a file
/// that fails the check is removed. Fsyncs if `sync`.
async fn receive_verified<R, D>(
    reader: &mut ferry_protocol::FrameReader<R, D>,
    plan: &DownloadPlan,
    incoming: Incoming,
    progress: &dyn Progress,
    stall: std::time::Duration,
    sync: bool,
) -> Result<(), ClientError>
where
    R: tokio::io::AsyncRead + Unpin,
    D: serde::de::DeserializeOwned,
{
    let Incoming { size, hash, offset } = incoming;
    let partial = &plan.partial;
    let io = |e| ClientError::local("writing", partial, e);
    if offset > 0 {
        progress.event(TransferEvent::Resumed {
            name: &plan.entry.name,
            offset,
        });
        progress.event(TransferEvent::Bytes(offset));
    }
    let path = partial.clone();
    let (file, hasher) = tokio::task::spawn_blocking(move || open_for_resume(&path, offset))
        .await
        .map_err(|e| io(std::io::Error::other(e)))?
        .map_err(io)?;
    let mut counted = |n| progress.event(TransferEvent::Bytes(n));
    let hasher = receive_to_file(
        reader,
        size - offset,
        file,
        hasher,
        sync,
        stall,
        &mut counted,
    )
    .await?;
    let actual = ContentHash::from(hasher.finalize());
    if actual != hash {
        let _ = tokio::fs::remove_file(partial).await;
        return Err(ClientError::Corrupt {
            name: plan.entry.name.clone(),
            expected: hash.short(),
            actual: actual.short(),
        });
    }
    Ok(())
}

/// Where a download goes and how much of it is already there.
pub(crate) struct DownloadPlan {
    pub(crate) entry: FileEntry,
    pub(crate) dest: PathBuf,
    pub(crate) partial: PathBuf,
    pub(crate) offset: u64,
}

pub(crate) fn plan_download(
    entry: &FileEntry,
    relative: &Path,
    dir: &Path,
    policy: ConflictPolicy,
) -> Result<DownloadPlan, ClientError> {
    let name = parse_name(&entry.name)?;
    let parent = local::safe_parent(dir, relative)?;
    let dest = parent.join(
        relative
            .file_name()
            .ok_or_else(|| ClientError::InvalidName {
                name: entry.name.clone(),
                reason: ferry_protocol::NameError::Empty,
            })?,
    );
    if policy == ConflictPolicy::Refuse && local::occupied(&dest) {
        return Err(ClientError::LocalConflict { path: dest });
    }
    let partial = local::partial_path(&parent, &name, &entry.hash);
    let held = std::fs::metadata(&partial).map_or(0, |m| m.len());
    let offset = if held <= entry.size { held } else { 0 };
    Ok(DownloadPlan {
        entry: entry.clone(),
        dest,
        partial,
        offset,
    })
}

pub(crate) fn report(progress: &dyn Progress, name: &str, result: &FileResult) {
    match result {
        Ok(done) => progress.event(TransferEvent::Done(&done.entry)),
        Err(error) => progress.event(TransferEvent::Failed { name, error }),
    }
}
