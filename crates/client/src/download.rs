//! Pipelined, verified, resumable downloads from the hub to local disk.
//!
//! All requests go out at once; the hub answers them in order. Each file
//! goes to a hidden partial file next to its destination (small ones are
//! received into memory); an existing partial is continued, the whole is
//! hashed and checked, made durable (small files in groups, one group
//! while the next arrives), then renamed into place without overwriting
//! anything the policy does not allow.

use std::path::{Path, PathBuf};

use ferry_io::body::receive_body;
use ferry_io::disk::{receive_to_file, resume};
use ferry_protocol::{
    ConflictPolicy, ContentHash, FileEntry, FileName, FrameError, Request, Response,
};

use crate::error::ClientError;
use crate::hub_client::{HubClient, unexpected};
use crate::local::{self, DownloadDir, Received, Target};
use crate::progress::{Progress, TransferEvent};
use crate::scan::parse_name;
use crate::transfer::{FileResult, Transferred, report};

impl HubClient {
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
        let dir = DownloadDir::open(dir)?;
        for (index, (entry, relative)) in entries.iter().enumerate() {
            match plan_download(entry, relative, &dir, policy) {
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
        let mut groups = Groups::new(policy);
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
                    groups.finish(progress, &mut results).await;
                    return Err(e);
                }
                Ok((done, bytes)) if batched => {
                    let unplaced = Unplaced {
                        index,
                        done,
                        plan,
                        bytes,
                    };
                    groups.push(unplaced, progress, &mut results).await;
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
        groups.finish(progress, &mut results).await;
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
        let (size, hash) = (entry.size, entry.hash);
        receive_checked(&mut self.reader, &entry.name, size, hash, sink, self.stall).await?;
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
        // Only what was asked for: the size decides how much is allocated
        // and written, so a hub's word for it is checked, not trusted.
        if (entry.size, entry.hash) != (plan.entry.size, plan.entry.hash) {
            return Err(ClientError::Protocol(format!(
                "the hub announced '{}' as {} bytes with hash {}, not the {} bytes with hash {} \
                 it listed; nothing was written (if the file changed, run the command again)",
                plan.entry.name,
                entry.size,
                entry.hash.short(),
                plan.entry.size,
                plan.entry.hash.short()
            )));
        }
        let incoming = Incoming {
            size: entry.size,
            hash: entry.hash,
            offset,
        };
        let bytes = if in_memory {
            let mut bytes = Vec::with_capacity(usize::try_from(entry.size).unwrap_or(0));
            let (name, size, hash) = (&plan.entry.name, entry.size, entry.hash);
            receive_checked(&mut self.reader, name, size, hash, &mut bytes, self.stall).await?;
            progress.event(TransferEvent::Bytes(size));
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

/// Receives `size` body bytes into `sink` and checks them against `hash`.
async fn receive_checked<R, D, W>(
    reader: &mut ferry_io::FrameReader<R, D>,
    name: &str,
    size: u64,
    hash: ContentHash,
    sink: &mut W,
    stall: std::time::Duration,
) -> Result<(), ClientError>
where
    R: tokio::io::AsyncRead + Unpin,
    D: serde::de::DeserializeOwned,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut hasher = blake3::Hasher::new();
    receive_body(reader, size, sink, &mut hasher, stall).await?;
    check_hash(name, hash, &hasher)
}

/// [`ClientError::Corrupt`] unless what `hasher` saw hashes to `expected`.
fn check_hash(
    name: &str,
    expected: ContentHash,
    hasher: &blake3::Hasher,
) -> Result<(), ClientError> {
    let actual = ContentHash::from(hasher.finalize());
    if actual == expected {
        return Ok(());
    }
    Err(ClientError::Corrupt {
        name: name.to_owned(),
        expected: expected.short(),
        actual: actual.short(),
    })
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

/// Small verified downloads on their way to disk: one group fills while
/// the one before is made durable and placed.
struct Groups {
    policy: ConflictPolicy,
    filling: Vec<Unplaced>,
    /// Bytes of `filling` held in memory.
    held: usize,
    committing: Option<Committing>,
}

impl Groups {
    fn new(policy: ConflictPolicy) -> Self {
        Self {
            policy,
            filling: Vec::new(),
            held: 0,
            committing: None,
        }
    }

    /// Adds a file; a full group starts its commit once the one before
    /// has finished.
    async fn push(
        &mut self,
        unplaced: Unplaced,
        progress: &dyn Progress,
        results: &mut [Option<FileResult>],
    ) {
        self.held += unplaced.bytes.as_ref().map_or(0, Vec::len);
        self.filling.push(unplaced);
        if self.filling.len() >= GROUP_COMMIT_FILES || self.held >= GROUP_COMMIT_MEMORY {
            self.rotate(progress, results).await;
        }
    }

    async fn rotate(&mut self, progress: &dyn Progress, results: &mut [Option<FileResult>]) {
        finish_commit(self.committing.take(), progress, results).await;
        self.committing = start_commit(&mut self.filling, self.policy);
        self.held = 0;
    }

    /// Commits whatever is left and waits for it.
    async fn finish(mut self, progress: &dyn Progress, results: &mut [Option<FileResult>]) {
        self.rotate(progress, results).await;
        finish_commit(self.committing.take(), progress, results).await;
    }
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
            target: u.plan.target.clone(),
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
                Err(ClientError::local("placing", u.plan.target.dest_path(), e))
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
    let target = plan.target.clone();
    tokio::task::spawn_blocking(move || local::place(&target, policy))
        .await
        .map_err(|e| {
            let e = std::io::Error::other(e);
            ClientError::local("placing", plan.target.dest_path(), e)
        })?
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
    reader: &mut ferry_io::FrameReader<R, D>,
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
    reader: &mut ferry_io::FrameReader<R, D>,
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
    let partial = plan.target.partial_path();
    if offset > 0 {
        progress.event(TransferEvent::Resumed {
            name: &plan.entry.name,
            offset,
        });
        progress.event(TransferEvent::Bytes(offset));
    }
    let target = plan.target.clone();
    let (file, hasher) = tokio::task::spawn_blocking(move || {
        resume(target.open_partial()?, offset)
            .map_err(|e| ClientError::local("writing", target.partial_path(), e))
    })
    .await
    .map_err(|e| ClientError::local("writing", &partial, std::io::Error::other(e)))??;
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
    let checked = check_hash(&plan.entry.name, hash, &hasher);
    if checked.is_err() {
        let target = plan.target.clone();
        let _ = tokio::task::spawn_blocking(move || target.remove_partial()).await;
    }
    checked
}

/// Where a download goes and how much of it is already there.
pub(crate) struct DownloadPlan {
    pub(crate) entry: FileEntry,
    pub(crate) target: Target,
    pub(crate) offset: u64,
}

/// Plans the download of `entry` to `relative` inside `dir`: makes its
/// folders, refuses a taken name under [`ConflictPolicy::Refuse`], and
/// finds how much an earlier attempt left in its partial.
pub(crate) fn plan_download(
    entry: &FileEntry,
    relative: &Path,
    dir: &DownloadDir,
    policy: ConflictPolicy,
) -> Result<DownloadPlan, ClientError> {
    let name = parse_name(&entry.name)?;
    let target = Target::new(dir, relative, &name, &entry.hash)?;
    let folder = target.folder()?;
    if policy == ConflictPolicy::Refuse && folder.occupied(&target.name) {
        return Err(ClientError::LocalConflict {
            path: target.dest_path(),
        });
    }
    let held = folder.file_len(&target.partial).unwrap_or(0);
    let offset = if held <= entry.size { held } else { 0 };
    Ok(DownloadPlan {
        entry: entry.clone(),
        target,
        offset,
    })
}
