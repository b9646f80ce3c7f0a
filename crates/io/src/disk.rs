//! Bodies between the network and a file, with the disk work off the
//! network task.
//!
//! Receiving: the network task only decrypts and fills buffers; a
//! [`DiskWriter`] hashes them and writes large bodies straight to the disk. Sending: a blocking thread
//! reads ahead while the network task encrypts and sends. Either way a
//! handful of chunk buffers cycle between the two sides, so memory stays
//! constant.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use crate::body::{BodyError, Pace, write_within};
use crate::disk_writer::DiskWriter;
use crate::framed::{FrameReader, FrameWriter};
use ferry_protocol::limits::CHUNK_LEN;
use ferry_protocol::possession::{ByteRange, PossessionProof, Prover};

/// Transfers that may each hold a disk thread at once. A long transfer
/// holds one of tokio's blocking threads for its whole length, and a hub
/// admits thousands of connections; past this many, a transfer waits for
/// a thread to come free (its connection simply waits), so tokio's pool
/// (512 threads) always has room for short file operations.
pub const MAX_DISK_THREADS: usize = 256;

static DISK_THREADS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_DISK_THREADS);

/// Runs a transfer's disk half on a blocking thread once one of the
/// [`MAX_DISK_THREADS`] is free.
pub(crate) async fn spawn_disk<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> tokio::task::JoinHandle<T> {
    let permit = DISK_THREADS
        .acquire()
        .await
        .expect("the disk thread semaphore is never closed");
    tokio::task::spawn_blocking(move || {
        let _held = permit;
        work()
    })
}

/// Buffers in flight between the two sides of one transfer: 1 MiB, which is
/// also the most one direct write takes at once.
pub(crate) const BUFFERS: usize = 16;

/// Buffer size for a body of `len` bytes: a chunk, or less for a small body.
pub(crate) fn buffer_len(len: u64) -> usize {
    usize::try_from(len).map_or(CHUNK_LEN, |l| l.clamp(1, CHUNK_LEN))
}

/// Receives exactly `len` body bytes into `file` (positioned where they
/// go), feeding `hasher`, and calls `progress` with each chunk's length.
/// If `sync`, the file is fsynced at the end, also when the connection
/// failed partway, so a resumed transfer can trust what arrived.
pub async fn receive_to_file<R, D>(
    reader: &mut FrameReader<R, D>,
    len: u64,
    file: File,
    hasher: blake3::Hasher,
    sync: bool,
    stall: Duration,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<blake3::Hasher, BodyError>
where
    R: AsyncRead + Unpin,
    D: DeserializeOwned,
{
    let mut disk = DiskWriter::start(file, len, hasher, sync).await;
    let mut received = 0u64;
    let mut pace = Pace::new(stall);
    let network = async {
        while received < len {
            let Some(mut buf) = disk.free_chunk().await else {
                break; // the disk side failed; its error is reported below
            };
            let want = usize::try_from(len - received).map_or(buf.len(), |l| l.min(buf.len()));
            let n = fill(reader, &mut buf[..want], &mut pace).await?;
            buf.truncate(n);
            // What arrived before an early end is still written, for a resume.
            if !disk.hand_over(buf).await {
                break;
            }
            received += n as u64;
            progress(n as u64);
            if n < want {
                return Err(BodyError::Truncated {
                    expected: len,
                    received,
                });
            }
        }
        Ok(())
    }
    .await;
    let hasher = disk.finish().await.map_err(BodyError::Disk)?;
    network.map(|()| hasher)
}

/// Opens the hub's own partial at `path` (in its private store) for
/// writing at `offset`: see [`resume`]. A client's partials, in a folder
/// others may write to, are opened by
/// [`crate::beneath::Folder::open_partial`] instead.
pub fn open_for_resume(path: &Path, offset: u64) -> io::Result<(File, blake3::Hasher)> {
    let file = OpenOptions::new()
        .create(true)
        .read(true)
        .write(true)
        .truncate(false)
        .open(path)?;
    resume(file, offset)
}

/// Makes `file` ready to be written at `offset` (cutting anything past
/// it), with a hasher already fed the bytes before `offset`: the start of
/// a resumed receive.
pub fn resume(mut file: File, offset: u64) -> io::Result<(File, blake3::Hasher)> {
    // Only cut a longer file: setting the same length would also free
    // what the hub preallocated past it for the bytes to come.
    if file.metadata()?.len() != offset {
        file.set_len(offset)?;
    }
    let mut hasher = blake3::Hasher::new();
    if offset > 0 {
        hasher.update_reader((&file).take(offset))?;
    }
    file.seek(SeekFrom::Start(offset))?;
    Ok((file, hasher))
}

/// The [`PossessionProof`] of `file` for a challenge (see
/// [`ferry_protocol::possession`]): reads only the ranges asked for.
pub fn prove_possession(
    file: &File,
    nonce: &[u8; 32],
    ranges: &[ByteRange],
) -> io::Result<PossessionProof> {
    use std::os::unix::fs::FileExt;
    let mut prover = Prover::new(nonce);
    let mut buf = Vec::new();
    for &range in ranges {
        buf.resize(range.len as usize, 0);
        file.read_exact_at(&mut buf, range.offset)?;
        prover.range(range, &buf);
    }
    Ok(prover.finish())
}

/// Opens `path` for reading from `offset`.
pub fn open_from(path: &Path, offset: u64) -> io::Result<File> {
    let mut file = File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    Ok(file)
}

/// Runs `sync` (an fsync) on every item, many at once: a filesystem
/// journal folds concurrent flushes into one commit, so a group costs about
/// one flush instead of one each. One result per item, in order.
pub fn sync_all_concurrently<T: Sync>(
    items: &[T],
    sync: impl Fn(&T) -> io::Result<()> + Sync,
) -> Vec<io::Result<()>> {
    const FLUSHERS: usize = 16;
    let per_thread = items.len().div_ceil(FLUSHERS).max(1);
    let sync = &sync;
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(per_thread)
            .map(|chunk| scope.spawn(move || chunk.iter().map(sync).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("fsync threads do not panic"))
            .collect()
    })
}

/// Flushes every file and folder change on the filesystem holding `path`
/// to disk and waits for it (`syncfs`): one journal commit for a whole
/// group of new files and renames, where an fsync each would cost one
/// commit per few files. Everything else dirty on that filesystem is
/// flushed too, so it suits a store with its own volume and bounded dirty
/// data (uploads start their writeback early), not arbitrary folders.
pub fn sync_filesystem(path: &Path) -> io::Result<()> {
    let dir = File::open(path)?;
    rustix::fs::syncfs(&dir)?;
    Ok(())
}

/// Whether little data waits to be written system-wide (dirty or under
/// writeback, from `/proc/meminfo`), so that [`sync_filesystem`] costs
/// about one flush. `false` when it cannot tell.
pub fn little_dirty_data() -> bool {
    const LITTLE_KIB: u64 = 64 << 10;
    let Ok(meminfo) = std::fs::read_to_string("/proc/meminfo") else {
        return false;
    };
    let kib = |field: &str| {
        meminfo
            .lines()
            .find_map(|line| line.strip_prefix(field))
            .and_then(|rest| {
                rest.trim()
                    .trim_end_matches("kB")
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
    };
    match (kib("Dirty:"), kib("Writeback:")) {
        (Some(dirty), Some(writeback)) => dirty + writeback < LITTLE_KIB,
        _ => false,
    }
}

/// Creates `dir` and its missing parents for its owner alone (0700): state
/// directories hold keys, pins and catalogs.
pub fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Reads a secret (a private key), refusing one that other users can read
/// or write, as OpenSSH refuses an unprotected private key.
pub fn read_private(path: &Path) -> io::Result<Vec<u8>> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} is open to other users (mode {mode:o}); a key must be yours alone: run chmod 600 {}",
                path.display(),
                path.display()
            ),
        ));
    }
    std::fs::read(path)
}

/// Writes a secret (a private key) readable by its owner only, creating
/// its folder (0700), and makes it durable. A file already there is made
/// 0600 too (the mode given at open applies only to a new one).
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    if let Some(dir) = path.parent() {
        create_private_dir_all(dir)?;
    }
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Reads until `out` is full or the stream ends; returns how much arrived.
async fn fill<R, D>(
    reader: &mut FrameReader<R, D>,
    out: &mut [u8],
    pace: &mut Pace,
) -> Result<usize, BodyError>
where
    R: AsyncRead + Unpin,
    D: DeserializeOwned,
{
    let mut filled = 0;
    while filled < out.len() {
        let n = pace.read(reader, &mut out[filled..]).await?;
        if n == 0 {
            break;
        }
        filled += n;
    }
    Ok(filled)
}

/// Sends exactly `len` bytes of `file` (positioned where they start) to
/// `writer`, read ahead on a blocking thread; `progress` gets each chunk's
/// length. Does not flush.
pub async fn send_from_file<W, E>(
    file: File,
    len: u64,
    writer: &mut FrameWriter<W, E>,
    stall: Duration,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<(), BodyError>
where
    W: AsyncWrite + Unpin,
    E: Serialize,
{
    let (empty_tx, empty_rx) = mpsc::channel::<Vec<u8>>(BUFFERS);
    let (full_tx, mut full_rx) = mpsc::channel::<io::Result<Vec<u8>>>(BUFFERS);
    for _ in 0..BUFFERS {
        let _ = empty_tx.try_send(vec![0; buffer_len(len)]);
    }
    let disk = spawn_disk(move || read_ahead(file, len, empty_rx, full_tx)).await;
    let mut sent = 0u64;
    let result = async {
        while sent < len {
            let buf = match full_rx.recv().await {
                Some(Ok(buf)) if !buf.is_empty() => buf,
                Some(Err(e)) => return Err(BodyError::Disk(e)),
                _ => {
                    return Err(BodyError::SourceChanged {
                        expected: len,
                        sent,
                    });
                }
            };
            write_within(writer, &buf, stall).await?;
            sent += buf.len() as u64;
            progress(buf.len() as u64);
            let _ = empty_tx.send(buf).await;
        }
        Ok(())
    }
    .await;
    drop((empty_tx, full_rx));
    let _ = disk.await;
    result
}

/// The disk thread of [`send_from_file`]: fills empty buffers in order.
/// An empty buffer sent back means the file ended early.
fn read_ahead(
    mut file: File,
    len: u64,
    mut empty: mpsc::Receiver<Vec<u8>>,
    full: mpsc::Sender<io::Result<Vec<u8>>>,
) {
    let mut left = len;
    while left > 0 {
        let Some(mut buf) = empty.blocking_recv() else {
            return;
        };
        let want = usize::try_from(left).map_or(buf.len(), |l| l.min(buf.capacity()));
        buf.resize(want, 0);
        let read = read_full(&mut file, &mut buf);
        let stop = !matches!(read, Ok(n) if n == want);
        let message = read.map(|n| {
            buf.truncate(n);
            buf
        });
        if let Ok(buf) = &message {
            left -= buf.len() as u64;
        }
        if full.blocking_send(message).is_err() || stop {
            return;
        }
    }
}

/// Reads until `buf` is full or the file ends.
fn read_full(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_protocol::Request;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    /// Sends `len` bytes of a file through a pipe into another file.
    async fn roundtrip(len: usize) {
        let dir = tempfile::tempdir().unwrap();
        let (src, dst) = (dir.path().join("src"), dir.path().join("dst"));
        std::fs::write(&src, data(len)).unwrap();
        let (a, b) = tokio::io::duplex(64 * 1024);
        let mut writer = FrameWriter::<_, Request>::new(a);
        let source = File::open(&src).unwrap();
        let send = tokio::spawn(async move {
            let mut sent = 0;
            send_from_file(
                source,
                len as u64,
                &mut writer,
                Duration::from_secs(5),
                &mut |n| {
                    sent += n;
                },
            )
            .await
            .unwrap();
            writer.flush().await.unwrap();
            sent
        });
        let mut reader = FrameReader::<_, Request>::new(b);
        let mut got = 0;
        let hasher = receive_to_file(
            &mut reader,
            len as u64,
            File::create(&dst).unwrap(),
            blake3::Hasher::new(),
            true,
            Duration::from_secs(5),
            &mut |n| got += n,
        )
        .await
        .unwrap();
        assert_eq!(send.await.unwrap(), len as u64);
        assert_eq!(got, len as u64);
        let out = std::fs::read(&dst).unwrap();
        assert_eq!(out, data(len), "len {len}");
        assert_eq!(hasher.finalize(), blake3::hash(&out));
    }

    #[tokio::test]
    async fn files_of_boundary_sizes_cross_whole() {
        for len in [0, 1, CHUNK_LEN - 1, CHUNK_LEN, 7 * CHUNK_LEN + 3, 40 << 20] {
            roundtrip(len).await;
        }
    }

    #[tokio::test]
    async fn receiving_appends_at_the_file_position_after_a_hashed_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("partial");
        std::fs::write(&path, b"abcdrop").unwrap();
        let (file, prefix) = open_for_resume(&path, 3).unwrap();
        let (mut a, b) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut a, b"defXYZ")
            .await
            .unwrap();
        let mut reader = FrameReader::<_, Request>::new(b);
        let hasher = receive_to_file(
            &mut reader,
            3,
            file,
            prefix,
            false,
            Duration::from_secs(1),
            &mut |_| {},
        )
        .await
        .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abcdef");
        assert_eq!(hasher.finalize(), blake3::hash(b"abcdef"));
        // Nothing past the body was consumed.
        let mut rest = [0u8; 3];
        assert_eq!(reader.read_raw(&mut rest).await.unwrap(), 3);
        assert_eq!(&rest, b"XYZ");
    }

    #[tokio::test]
    async fn a_short_stream_keeps_what_arrived_and_says_truncated() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("partial");
        let (mut a, b) = tokio::io::duplex(64);
        tokio::io::AsyncWriteExt::write_all(&mut a, b"12345")
            .await
            .unwrap();
        drop(a);
        let mut reader = FrameReader::<_, Request>::new(b);
        let err = receive_to_file(
            &mut reader,
            10,
            File::create(&path).unwrap(),
            blake3::Hasher::new(),
            true,
            Duration::from_secs(1),
            &mut |_| {},
        )
        .await
        .unwrap_err();
        assert!(
            matches!(
                err,
                BodyError::Truncated {
                    expected: 10,
                    received: 5
                }
            ),
            "{err}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"12345");
    }

    #[tokio::test]
    async fn a_file_shorter_than_announced_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("short");
        std::fs::write(&path, b"short").unwrap();
        let (a, _b) = tokio::io::duplex(1024);
        let mut writer = FrameWriter::<_, Request>::new(a);
        let err = send_from_file(
            File::open(&path).unwrap(),
            10,
            &mut writer,
            Duration::from_secs(1),
            &mut |_| {},
        )
        .await
        .unwrap_err();
        assert!(
            matches!(
                err,
                BodyError::SourceChanged {
                    expected: 10,
                    sent: 5
                }
            ),
            "{err}"
        );
    }
}
