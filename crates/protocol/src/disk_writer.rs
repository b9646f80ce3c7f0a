//! A file written and hashed on a blocking thread from bytes handed over
//! piecemeal: the disk half of [`receive_to_file`], for bytes that arrive
//! some other way than from one reader (the hub's copy of a relayed file).
//!
//! The bytes are copied into the same aligned, pooled chunks an upload
//! uses, each filled whole before it goes, so a large file is written
//! direct (see the `sink` module) instead of into fresh page-cache pages,
//! which costs more CPU than anything else on the way on the machines
//! Ferry is measured on.
//!
//! [`receive_to_file`]: crate::disk::receive_to_file

use std::fs::File;
use std::io;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::disk::{BUFFERS, Pool, write_out};
use crate::sink::Chunk;

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
    pub fn start(file: File, len: u64, hasher: blake3::Hasher, sync: bool) -> Self {
        let (pool, give_back) = Pool::new(len);
        let (full, full_rx) = mpsc::channel(BUFFERS);
        let disk = tokio::task::spawn_blocking(move || {
            write_out(file, len, hasher, full_rx, give_back, sync)
        });
        Self {
            pool,
            filling: None,
            full,
            disk,
        }
    }

    /// Hands `bytes` over; waits only when every chunk is in use. An error
    /// means the disk side failed: see [`Self::finish`] for why.
    pub async fn write(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let (mut chunk, filled) = match self.filling.take() {
                Some(filling) => filling,
                None => (self.pool.take().await.ok_or_else(stopped)?, 0),
            };
            let n = bytes.len().min(chunk.len() - filled);
            chunk[filled..filled + n].copy_from_slice(&bytes[..n]);
            bytes = &bytes[n..];
            if filled + n < chunk.len() {
                self.filling = Some((chunk, filled + n));
            } else if self.full.send(chunk).await.is_err() {
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
            let _ = self.full.send(chunk).await;
        }
        drop(self.full);
        self.disk.await.map_err(io::Error::other)?
    }
}

fn stopped() -> io::Error {
    io::Error::other("the disk writer stopped")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::CHUNK_LEN;

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
            );
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
        let mut writer = DiskWriter::start(read_only, len as u64, blake3::Hasher::new(), false);
        for piece in data(len).chunks(1000) {
            if writer.write(piece).await.is_err() {
                break;
            }
        }
        assert!(writer.finish().await.is_err());
    }
}
