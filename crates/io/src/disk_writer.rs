//! A file written and hashed on a blocking thread from chunks the caller
//! fills: the disk half of [`receive_to_file`], and of the hub's copy of a
//! relayed file, whose bytes come piecemeal from another connection.
//!
//! A handful of aligned chunks cycle between the caller and the disk
//! thread, so memory stays constant, and a large file is written direct
//! (see the `sink` module) instead of into fresh page-cache pages, which
//! costs more CPU than anything else on the way on the machines Ferry is
//! measured on.
//!
//! [`receive_to_file`]: crate::disk::receive_to_file

use std::fs::File;
use std::io::{self, Seek};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::disk::{BUFFERS, buffer_len, spawn_disk};
use crate::sink::{Chunk, FileSink};

/// Writes `len` bytes to a file, in order, off the calling task.
pub struct DiskWriter {
    pool: Pool,
    /// The chunk being filled and how much of it is.
    filling: Option<(Chunk, usize)>,
    full: mpsc::Sender<Chunk>,
    disk: JoinHandle<io::Result<blake3::Hasher>>,
}

impl DiskWriter {
    /// Starts writing `file` (positioned where the bytes go; `len` of them
    /// will come), hashing them into `hasher`. If `sync`, the file is
    /// fsynced at the end.
    /// Waits for a disk thread first (see [`MAX_DISK_THREADS`]).
    ///
    /// [`MAX_DISK_THREADS`]: crate::disk::MAX_DISK_THREADS
    pub async fn start(file: File, len: u64, hasher: blake3::Hasher, sync: bool) -> Self {
        let (pool, give_back) = Pool::new(len);
        let (full, full_rx) = mpsc::channel(BUFFERS);
        let disk = spawn_disk(move || write_out(file, len, hasher, full_rx, give_back, sync)).await;
        Self {
            pool,
            filling: None,
            full,
            disk,
        }
    }

    /// A free chunk to fill (`None`: the disk side has stopped). Waits
    /// only when every chunk is in use.
    pub(crate) async fn free_chunk(&mut self) -> Option<Chunk> {
        self.pool.take().await
    }

    /// Queues a filled chunk (truncated to its bytes) for the disk; `false`
    /// if the disk side has stopped.
    pub(crate) async fn hand_over(&mut self, chunk: Chunk) -> bool {
        self.full.send(chunk).await.is_ok()
    }

    /// Hands `bytes` over, filling each chunk whole before it goes. An
    /// error means the disk side failed: see [`Self::finish`] for why.
    pub async fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let (mut chunk, filled) = match self.filling.take() {
                Some(filling) => filling,
                None => (self.free_chunk().await.ok_or_else(stopped)?, 0),
            };
            let n = bytes.len().min(chunk.len() - filled);
            chunk[filled..filled + n].copy_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if filled + n < chunk.len() {
                self.filling = Some((chunk, filled + n));
            } else if !self.hand_over(chunk).await {
                return Err(stopped());
            }
        }
        Ok(())
    }

    /// Sends what is left, waits for the disk, and returns the hasher fed
    /// every byte written, or the disk's error.
    pub async fn finish(mut self) -> io::Result<blake3::Hasher> {
        if let Some((mut chunk, filled)) = self.filling.take() {
            chunk.truncate(filled);
            self.hand_over(chunk).await;
        }
        drop(self.full);
        self.disk.await.map_err(io::Error::other)?
    }
}

fn stopped() -> io::Error {
    io::Error::other("the disk writer stopped")
}

/// Hands chunks round between whoever fills them and the disk thread.
struct Pool {
    free: mpsc::UnboundedReceiver<Chunk>,
    made: usize,
    size: usize,
}

impl Pool {
    /// A pool for a body of `len` bytes, and the way back into it for the
    /// other side (the only one: when it is dropped, [`Self::take`] stops
    /// waiting).
    fn new(len: u64) -> (Self, mpsc::UnboundedSender<Chunk>) {
        let (give_back, free) = mpsc::unbounded_channel();
        let pool = Self {
            free,
            made: 0,
            size: buffer_len(len),
        };
        (pool, give_back)
    }

    /// A buffer of `size` bytes: a returned one, a new one while fewer than
    /// `BUFFERS` exist, else the next to come back (`None`: the other side
    /// has stopped).
    async fn take(&mut self) -> Option<Chunk> {
        if let Ok(buf) = self.free.try_recv() {
            return Some(buf);
        }
        if self.made < BUFFERS {
            self.made += 1;
            return Some(Chunk::new(self.size));
        }
        self.free.recv().await
    }
}

/// The disk thread of a [`DiskWriter`]: hashes and writes whatever queued
/// up, in order, and hands each chunk back.
fn write_out(
    mut file: File,
    len: u64,
    mut hasher: blake3::Hasher,
    mut full: mpsc::Receiver<Chunk>,
    give_back: mpsc::UnboundedSender<Chunk>,
    sync: bool,
) -> io::Result<blake3::Hasher> {
    let start = file.stream_position()?;
    let mut sink = FileSink::new(file, start, len);
    let mut batch = Vec::with_capacity(BUFFERS);
    while let Some(first) = full.blocking_recv() {
        batch.push(first);
        // At most half the buffers: the network side keeps the other half
        // to fill while this batch waits for the disk.
        while batch.len() < BUFFERS / 2
            && let Ok(more) = full.try_recv()
        {
            batch.push(more);
        }
        let slices: Vec<&[u8]> = batch.iter().map(|c| &c[..]).collect();
        for slice in &slices {
            hasher.update(slice);
        }
        sink.write_batch(&slices)?;
        for mut chunk in batch.drain(..) {
            chunk.restore();
            let _ = give_back.send(chunk);
        }
    }
    sink.finish(sync)?;
    Ok(hasher)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_protocol::limits::CHUNK_LEN;

    fn data(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 13 % 247) as u8).collect()
    }

    /// Pieces of every size, across chunk boundaries, arrive whole and in
    /// order, hashed; a large file goes through the direct path too.
    #[tokio::test]
    async fn pieces_of_any_size_land_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for len in [0, 1, CHUNK_LEN - 1, CHUNK_LEN + 1, 9 << 20 | 5] {
            let path = dir.path().join(format!("f{len}"));
            let expected = data(len);
            let mut writer = DiskWriter::start(
                File::create(&path).unwrap(),
                len as u64,
                blake3::Hasher::new(),
                true,
            )
            .await;
            let mut rest = &expected[..];
            let mut piece = 1;
            while !rest.is_empty() {
                let n = piece.min(rest.len());
                writer.write(&rest[..n]).await.unwrap();
                rest = &rest[n..];
                piece = piece * 3 + 7;
            }
            let hasher = writer.finish().await.unwrap();
            assert_eq!(std::fs::read(&path).unwrap(), expected, "len {len}");
            assert_eq!(hasher.finalize(), blake3::hash(&expected));
        }
    }

    /// A disk thread that fails stops the writer with an error.
    #[tokio::test]
    async fn a_failing_disk_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"x").unwrap();
        let read_only = File::open(&path).unwrap();
        let len = 4 * BUFFERS * CHUNK_LEN;
        let mut writer =
            DiskWriter::start(read_only, len as u64, blake3::Hasher::new(), false).await;
        for piece in data(len).chunks(1000) {
            if writer.write(piece).await.is_err() {
                break;
            }
        }
        assert!(writer.finish().await.is_err());
    }

    /// A taker waiting for a chunk stops once the way back is gone (the
    /// disk thread ended, say on an error, with every chunk in flight)
    /// instead of waiting forever.
    #[tokio::test]
    async fn a_pool_stops_waiting_once_nothing_can_come_back() {
        let (mut pool, give_back) = Pool::new(u64::MAX);
        let mut in_flight = Vec::new();
        for _ in 0..BUFFERS {
            in_flight.push(pool.take().await.unwrap());
        }
        let waiting = tokio::spawn(async move { pool.take().await.is_none() });
        drop((give_back, in_flight));
        let stopped = tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await;
        assert!(stopped.expect("take() must not wait forever").unwrap());
    }
}
