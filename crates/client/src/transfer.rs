//! Pipelined, verified, resumable uploads from local disk to the hub, and
//! the result types transfers share (downloads are in `download`).
//!
//! Every file is hashed first (the hub verifies against it). Small files go
//! eagerly, header and bytes back to back; large ones negotiate so the hub
//! can say how much it already holds. A writer and a reader run
//! concurrently over the two halves of the connection, so replies never
//! wait for the last request to leave, and no file costs a round trip.

use std::path::PathBuf;

use ferry_io::FileIdentity;
use ferry_io::source::{Source, send_source, source_from};
use ferry_protocol::possession::{Prover, ranges_are_reasonable};
use ferry_protocol::{
    ByteRange, ConflictPolicy, ContentHash, EAGER_UPLOAD_MAX, FileEntry, FileName, FrameError,
    PossessionProof, Request, Response, UploadMode,
};
use tokio::sync::mpsc;

use crate::error::ClientError;
use crate::hub_client::{HubClient, read_reply, unexpected};
use crate::progress::{Progress, TransferEvent};
use crate::scan::LocalFile;

/// A local file ready to upload: hashed, sized, named.
#[derive(Debug, Clone)]
pub struct UploadItem {
    /// Where it is, for messages.
    pub path: PathBuf,
    /// How to open it.
    pub from: LocalFile,
    /// Name it gets in the store.
    pub name: FileName,
    /// Size when hashed.
    pub size: u64,
    /// BLAKE3 when hashed.
    pub hash: ContentHash,
    /// The version of the file that was hashed. Bytes are sent only from
    /// it: a file swapped (even for a link to another) or rewritten since
    /// is refused before anything of it leaves.
    pub identity: FileIdentity,
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

/// Opens every item in order on one blocking thread, reading small ones
/// whole, a few items ahead of the sender: no thread hop per small file.
/// A small file whose size changed since it was hashed is an error here,
/// before its header goes out.
fn read_ahead(items: &[UploadItem]) -> mpsc::Receiver<std::io::Result<Source>> {
    let wanted: Vec<(LocalFile, FileIdentity)> =
        items.iter().map(|i| (i.from.clone(), i.identity)).collect();
    let (tx, rx) = mpsc::channel(READ_AHEAD);
    tokio::task::spawn_blocking(move || {
        for (from, identity) in wanted {
            let opened = from.open().and_then(|file| {
                identity.check(&file)?;
                source_from(file, identity.size, identity.size <= READ_WHOLE_MAX)
            });
            if tx.blocking_send(opened).is_err() {
                return; // the upload stopped
            }
        }
    });
    rx
}

/// What the writer tells the reader it put on the wire.
struct Sent {
    index: usize,
    negotiated: bool,
}

/// What the reader tells the writer after a negotiated header.
enum Go {
    /// Send the bytes from this offset.
    From(u64),
    /// Prove possession of the bytes (the hub holds them already).
    Prove {
        nonce: [u8; 32],
        ranges: Vec<ByteRange>,
    },
    /// Send nothing: the hub answered already.
    Skip,
}

/// Answers the hub's challenge for the bytes of `item` (opened as
/// `source`), on a blocking thread. A challenge that asks for more than a
/// challenge holds is refused: a hub cannot make us read the whole file.
async fn prove(
    source: Source,
    item: &UploadItem,
    nonce: [u8; 32],
    ranges: Vec<ByteRange>,
) -> Result<PossessionProof, ClientError> {
    if !ranges_are_reasonable(&ranges, item.size) {
        return Err(ClientError::Protocol(
            "the hub asked to prove ranges outside the file or too long".into(),
        ));
    }
    let proved = tokio::task::spawn_blocking(move || match source {
        Source::File(file) => ferry_io::disk::prove_possession(&file, &nonce, &ranges),
        Source::Bytes(bytes) => {
            let mut prover = Prover::new(&nonce);
            for range in ranges {
                let start = usize::try_from(range.offset).map_err(std::io::Error::other)?;
                let end = start + range.len as usize;
                let part = bytes.get(start..end).ok_or_else(|| {
                    std::io::Error::other("the file is shorter than when it was hashed")
                })?;
                prover.range(range, part);
            }
            Ok(prover.finish())
        }
    });
    proved
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r)
        .map_err(|e| ClientError::local("proving possession of", &item.path, e))
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
        let (go_tx, mut go_rx) = mpsc::channel::<Go>(1);
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
                let mut source = match opened {
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
                    match go_rx.recv().await {
                        Some(Go::From(from)) => offset = from,
                        Some(Go::Prove { nonce, ranges }) => {
                            let proof = prove(source, item, nonce, ranges).await?;
                            writer.send(&Request::Proof { proof }).await?;
                            continue;
                        }
                        Some(Go::Skip) => continue,
                        None => break,
                    }
                    source
                        .skip(offset)
                        .map_err(|e| ClientError::local("seeking", &item.path, e))?;
                }
                let mut counted = |n| progress.event(TransferEvent::Bytes(n));
                send_source(source, item.size - offset, writer, stall, &mut counted).await?;
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
                    match reply {
                        Ok(Response::UploadReady { offset }) => {
                            resumed_from = offset;
                            if offset > 0 {
                                progress.event(TransferEvent::Resumed {
                                    name: item.name.as_str(),
                                    offset,
                                });
                                progress.event(TransferEvent::Bytes(offset));
                            }
                            let _ = go_tx.send(Go::From(offset)).await;
                            reply = read_reply(reader, stall).await;
                        }
                        Ok(Response::Prove { nonce, ranges }) => {
                            let _ = go_tx.send(Go::Prove { nonce, ranges }).await;
                            reply = read_reply(reader, stall).await;
                        }
                        _ => {
                            let _ = go_tx.send(Go::Skip).await;
                        }
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
}

pub(crate) fn report(progress: &dyn Progress, name: &str, result: &FileResult) {
    match result {
        Ok(done) => progress.event(TransferEvent::Done {
            entry: &done.entry,
            deduplicated: done.deduplicated,
        }),
        Err(error) => progress.event(TransferEvent::Failed { name, error }),
    }
}
