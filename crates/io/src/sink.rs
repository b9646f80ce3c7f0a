//! Writing received bodies to disk.
//!
//! A buffered write copies every byte into freshly allocated page-cache
//! pages and leaves the kernel to write them back; on the machines Ferry is
//! measured on that costs more CPU than TLS and hashing together (`dd` of
//! 1 GiB with `conv=fsync`: 3.4–3.8 s of system time, against 0.2 s with
//! `oflag=direct` and 1 MiB writes, which also finished 5× sooner). With
//! `O_DIRECT` the disk reads the bytes straight from our buffer. It asks
//! for aligned buffers, lengths and file offsets; whatever is not aligned
//! (the tail of a body, a resume point mid-block, a filesystem without
//! direct I/O) goes through the page cache, with writeback started early.

use std::fs::File;
use std::io::{self, IoSlice, Write};
use std::num::NonZeroU64;
use std::ops::{Deref, DerefMut};

use rustix::fs::{Advice, OFlags, fadvise, fcntl_getfl, fcntl_setfl};

/// Alignment direct I/O needs for buffers, lengths and offsets: the largest
/// logical block size in common use, so it also covers 512-byte devices.
pub(crate) const DIRECT_ALIGN: usize = 4096;

/// Bodies smaller than this stay buffered: the page cache absorbs them at
/// memory speed, while each direct write waits for the device.
const DIRECT_MIN: u64 = 8 << 20;

/// Buffered writes start writeback every this many bytes.
const WRITEBACK_EVERY: u64 = 8 << 20;

/// A body buffer whose bytes start on a [`DIRECT_ALIGN`] boundary.
#[derive(Debug)]
pub(crate) struct Chunk {
    storage: Vec<u8>,
    start: usize,
    len: usize,
    capacity: usize,
}

impl Chunk {
    pub(crate) fn new(capacity: usize) -> Self {
        let storage = vec![0; capacity + DIRECT_ALIGN];
        let start = storage.as_ptr().align_offset(DIRECT_ALIGN);
        Self {
            storage,
            start,
            len: capacity,
            capacity,
        }
    }

    /// Keeps only the first `len` bytes (no-op if it holds fewer).
    pub(crate) fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Makes the whole capacity usable again.
    pub(crate) fn restore(&mut self) {
        self.len = self.capacity;
    }
}

impl Deref for Chunk {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.storage[self.start..self.start + self.len]
    }
}

impl DerefMut for Chunk {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut self.storage[self.start..self.start + self.len]
    }
}

/// A file being written from [`Chunk`]s, directly while it can be.
pub(crate) struct FileSink {
    file: File,
    direct: bool,
    /// File offset of the first byte written.
    start: u64,
    written: u64,
    /// Bytes (from `start`) already handed to writeback or written direct.
    handed: u64,
}

impl FileSink {
    /// Writes go direct if the body of `len` bytes is large, `start` (the
    /// file's position) is aligned, and the filesystem accepts `O_DIRECT`.
    pub(crate) fn new(file: File, start: u64, len: u64) -> Self {
        let wanted = len >= DIRECT_MIN && start.is_multiple_of(DIRECT_ALIGN as u64);
        let direct = wanted && set_direct(&file, true).is_ok();
        Self {
            file,
            direct,
            start,
            written: 0,
            handed: 0,
        }
    }

    /// Whether the bytes still bypass the page cache.
    #[cfg(test)]
    fn is_direct(&self) -> bool {
        self.direct
    }

    /// Writes chunks in order, which start on an aligned boundary in memory.
    /// While direct, everything up to the first unaligned byte goes in one
    /// system call (a direct write waits for the device, and one of 1 MiB
    /// costs about what one of 64 KiB does); the rest turns direct I/O off
    /// for good, since the file offset is then unaligned for every later
    /// write.
    pub(crate) fn write_batch(&mut self, chunks: &[&[u8]]) -> io::Result<()> {
        let mut skip = if self.direct {
            self.write_direct(chunks)?
        } else {
            0
        };
        for chunk in chunks {
            let from = skip.min(chunk.len());
            skip -= from;
            if from < chunk.len() {
                if self.direct {
                    set_direct(&self.file, false)?;
                    self.direct = false;
                }
                self.file.write_all(&chunk[from..])?;
            }
            self.written += chunk.len() as u64;
        }
        self.start_writeback();
        Ok(())
    }

    /// Writes the aligned head of `chunks` direct; returns how many bytes
    /// went, fewer than that head only if the kernel refused direct I/O or
    /// wrote short.
    fn write_direct(&mut self, chunks: &[&[u8]]) -> io::Result<usize> {
        let mut slices = Vec::with_capacity(chunks.len());
        for chunk in chunks {
            let aligned = chunk.len() - chunk.len() % DIRECT_ALIGN;
            if aligned > 0 {
                slices.push(IoSlice::new(&chunk[..aligned]));
            }
            if aligned < chunk.len() {
                break;
            }
        }
        let (mut slices, mut done) = (&mut slices[..], 0);
        while !slices.is_empty() {
            match self.file.write_vectored(slices) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    done += n;
                    IoSlice::advance_slices(&mut slices, n);
                    if n % DIRECT_ALIGN != 0 {
                        break; // short and unaligned: the rest goes buffered
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(rustix::io::Errno::INVAL.raw_os_error()) => {
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// Asks the kernel to start writing what was written buffered since the
    /// last time, every [`WRITEBACK_EVERY`] bytes, without waiting for it:
    /// on Linux, `POSIX_FADV_DONTNEED` starts writeback of dirty pages (and
    /// drops only pages already clean, which these are not yet). Without
    /// it, a gigabyte sits dirty in memory until the final fsync, which then
    /// stalls for the time the disk needs to write all of it. Direct writes
    /// have nothing to hand over.
    fn start_writeback(&mut self) {
        if self.direct {
            self.handed = self.written;
            return;
        }
        let pending = self.written - self.handed;
        if let Some(len) = NonZeroU64::new(pending).filter(|l| l.get() >= WRITEBACK_EVERY) {
            let _ = fadvise(
                &self.file,
                self.start + self.handed,
                Some(len),
                Advice::DontNeed,
            );
            self.handed = self.written;
        }
    }

    /// Flushes the file to disk if `sync`.
    pub(crate) fn finish(self, sync: bool) -> io::Result<()> {
        if sync {
            self.file.sync_all()?;
        }
        Ok(())
    }
}

fn set_direct(file: &File, on: bool) -> io::Result<()> {
    let flags = fcntl_getfl(file)?;
    let flags = if on {
        flags | OFlags::DIRECT
    } else {
        flags - OFlags::DIRECT
    };
    fcntl_setfl(file, flags)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom};

    fn data(len: usize, seed: usize) -> Vec<u8> {
        (0..len).map(|i| ((i * 31 + seed) % 251) as u8).collect()
    }

    #[test]
    fn chunks_start_aligned_and_shrink_and_grow_back() {
        let mut chunk = Chunk::new(10_000);
        assert_eq!(chunk.as_ptr().align_offset(DIRECT_ALIGN), 0);
        assert_eq!(chunk.len(), 10_000);
        chunk.truncate(123);
        assert_eq!(chunk.len(), 123);
        chunk.truncate(5_000);
        assert_eq!(chunk.len(), 123, "truncate never grows");
        chunk.restore();
        assert_eq!(chunk.len(), 10_000);
    }

    /// A large body: whole chunks direct, in batches, an unaligned tail buffered; the
    /// file holds exactly the bytes, and direct I/O was really used where
    /// the filesystem offers it.
    #[test]
    fn a_large_body_goes_direct_and_its_tail_buffered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let total = DIRECT_MIN as usize + 5_000;
        let expected = data(total, 1);
        let mut sink = FileSink::new(File::create(&path).unwrap(), 0, total as u64);
        let went_direct = sink.is_direct();
        // Batches of three chunks, as the disk thread gets them when it
        // falls behind; the last batch ends with the short tail.
        let pieces: Vec<&[u8]> = expected.chunks(256 * 1024).collect();
        for batch in pieces.chunks(3) {
            let chunks: Vec<Chunk> = batch
                .iter()
                .map(|piece| {
                    let mut chunk = Chunk::new(256 * 1024);
                    chunk.truncate(piece.len());
                    chunk.copy_from_slice(piece);
                    chunk
                })
                .collect();
            let slices: Vec<&[u8]> = chunks.iter().map(|c| &c[..]).collect();
            sink.write_batch(&slices).unwrap();
        }
        assert!(!sink.is_direct(), "the unaligned tail ends direct I/O");
        drop(sink);
        assert_eq!(std::fs::read(&path).unwrap(), expected);
        // ext4, xfs and btrfs (where tests and benchmarks run) take O_DIRECT.
        let fs_takes_direct = set_direct(&File::open(&path).unwrap(), true).is_ok();
        assert_eq!(went_direct, fs_takes_direct);
    }

    /// A resume point mid-block and a small body both stay buffered.
    #[test]
    fn unaligned_offsets_and_small_bodies_stay_buffered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, data(100, 2)).unwrap();
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.seek(SeekFrom::Start(100)).unwrap();
        let mut sink = FileSink::new(file, 100, DIRECT_MIN * 2);
        assert!(!sink.is_direct());
        let mut chunk = Chunk::new(DIRECT_ALIGN * 2);
        chunk.copy_from_slice(&data(DIRECT_ALIGN * 2, 3));
        sink.write_batch(&[&chunk]).unwrap();
        let mut expected = data(100, 2);
        expected.extend(data(DIRECT_ALIGN * 2, 3));
        assert_eq!(std::fs::read(&path).unwrap(), expected);

        let small = FileSink::new(File::create(dir.path().join("g")).unwrap(), 0, 1 << 20);
        assert!(!small.is_direct());
    }
}
