//! Room on the store's disk. An upload takes its room when it starts, not
//! as its bytes arrive: a resumable upload's partial file is preallocated
//! for all the bytes still to come (`fallocate`, keeping its length, so the
//! length still says how much arrived), and the hub refuses at once, before
//! any byte flows, when that would leave less than the free-space reserve.
//! A refused or failed upload gives its room back: the unused allocation is
//! cut off a partial kept for resuming, and a partial the disk could not
//! hold is removed. Small uploads check the reserve only; their bytes wait
//! in memory or in small temp files.
//!
//! The reserve keeps room for what the hub itself must write to go on
//! working: catalog transactions, its log, the next group commit.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::Path;

use rustix::fs::{FallocateFlags, fallocate, statvfs};
use rustix::io::Errno;

/// Why there is no room, for the refusal's message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NoRoom {
    /// Bytes the upload still needs.
    pub(crate) needed: u64,
    /// Bytes free beyond the reserve.
    pub(crate) free: u64,
}

impl NoRoom {
    /// The line a client is told.
    pub(crate) fn message(&self, name: &str) -> String {
        format!(
            "the hub's storage is full: '{name}' needs {} and {} is free; nothing was stored \
             (ask the hub's operator to free space)",
            megabytes(self.needed),
            megabytes(self.free)
        )
    }
}

/// Bytes free on the filesystem holding `dir` beyond `reserve`.
pub(crate) fn free_beyond(dir: &Path, reserve: u64) -> io::Result<u64> {
    let stats = statvfs(dir)?;
    let available = stats.f_bavail.saturating_mul(stats.f_frsize);
    Ok(available.saturating_sub(reserve))
}

/// Whether `needed` more bytes fit on `dir`'s filesystem above `reserve`.
pub(crate) fn check_room(dir: &Path, needed: u64, reserve: u64) -> io::Result<Result<(), NoRoom>> {
    let free = free_beyond(dir, reserve)?;
    Ok(if needed > free {
        Err(NoRoom { needed, free })
    } else {
        Ok(())
    })
}

/// Opens (creating) the partial file at `path`, cuts it to `offset`, and
/// allocates `[offset, size)` for the bytes to come. `Ok(Err)`: no room.
pub(crate) fn make_room(
    path: &Path,
    offset: u64,
    size: u64,
    reserve: u64,
) -> io::Result<Result<(), NoRoom>> {
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    // Always cut, also to the same length: that frees what an earlier run
    // preallocated past the end (a hub killed mid-upload never trimmed it).
    file.set_len(offset)?;
    // A fresh time keeps the running sweep off a partial being resumed.
    file.set_modified(std::time::SystemTime::now())?;
    let needed = size - offset;
    let dir = path.parent().unwrap_or(Path::new("."));
    if let Err(no_room) = check_room(dir, needed, reserve)? {
        return Ok(Err(no_room));
    }
    match preallocate(&file, offset, needed) {
        Ok(()) => Ok(Ok(())),
        Err(e) if is_storage_full(&e) => Ok(Err(NoRoom {
            needed,
            free: free_beyond(dir, reserve).unwrap_or(0),
        })),
        Err(e) => Err(e),
    }
}

/// Allocates `len` bytes from `offset` without changing the file's length.
/// A filesystem that cannot preallocate is fine: the check above stands.
fn preallocate(file: &File, offset: u64, len: u64) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    match fallocate(file, FallocateFlags::KEEP_SIZE, offset, len) {
        Ok(()) => Ok(()),
        Err(Errno::OPNOTSUPP | Errno::NOSYS) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Gives back what a partial file kept for resuming had allocated past the
/// bytes that arrived (truncating to its own length frees blocks past it
/// on ext4, XFS and tmpfs).
pub(crate) fn release_unused(path: &Path) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    let len = file.metadata()?.len();
    file.set_len(len)
}

/// Whether an error means the disk (or the hub's disk quota) is full.
pub(crate) fn is_storage_full(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    )
}

/// `bytes` as megabytes with one decimal, for messages.
fn megabytes(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partial_gets_room_for_what_is_to_come_and_keeps_its_length() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        std::fs::write(&path, b"0123456789").unwrap();
        assert_eq!(make_room(&path, 4, 1 << 20, 0).unwrap(), Ok(()));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 4);
        release_unused(&path).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"0123");
    }

    #[test]
    fn more_than_the_disk_holds_is_refused_before_anything_is_written() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        let refused = make_room(&path, 0, u64::MAX / 2, 0).unwrap().unwrap_err();
        assert_eq!(refused.needed, u64::MAX / 2);
        assert!(
            refused
                .message("a.bin")
                .starts_with("the hub's storage is full")
        );
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
    }
}
