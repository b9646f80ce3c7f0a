//! File bytes on disk. Blobs live under their verified BLAKE3 hash
//! (`blobs/ab/abcd…`), never under a user-supplied name. Incoming bytes go to
//! `tmp/` (eager uploads, swept at every start) or `partial/` (resumable
//! uploads, kept for a while), and reach `blobs/` by an atomic rename after
//! they were verified. Small uploads verified in memory are written straight
//! to a new blob file instead, saving a rename each.
//!
//! A blob is trusted only while a catalog entry refers to it, and entries
//! are written only after their blob is durable. A blob nothing refers to
//! may be left over from a crash before its flush, with any content, so it
//! is never used to deduplicate: new bytes for it are renamed over it (never
//! written into it, as someone may still be reading the file it was).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use ferry_io::disk::sync_filesystem;
use ferry_protocol::ContentHash;
use tokio::fs::File;

use crate::error::HubError;

/// A file in `tmp/` that is removed when this is dropped, unless it was
/// [`taken`](Self::taken) (moved into place or removed by the publisher):
/// an upload cut off at any point, its task dropped included, leaves
/// nothing behind.
#[derive(Debug)]
pub(crate) struct Staged {
    path: PathBuf,
    taken: bool,
}

impl Staged {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self { path, taken: false }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The file is someone else's now.
    pub(crate) fn taken(mut self) {
        self.taken = true;
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.taken {
            // Small and rare (a failed upload): no need for a blocking thread.
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// The blob directory tree.
#[derive(Debug)]
pub struct Store {
    blobs: PathBuf,
    tmp: PathBuf,
    partial: PathBuf,
    next_temp: AtomicU64,
}

impl Store {
    /// Opens the store under `root`, removing leftovers of earlier runs:
    /// everything in `tmp/` and partial uploads older than `partial_ttl`.
    pub fn open(root: &Path, partial_ttl: Duration) -> Result<Self, HubError> {
        let store = Self {
            blobs: root.join("blobs"),
            tmp: root.join("tmp"),
            partial: root.join("partial"),
            next_temp: AtomicU64::new(0),
        };
        for dir in [&store.blobs, &store.tmp, &store.partial] {
            fs::create_dir_all(dir).map_err(|e| HubError::io("creating", dir, e))?;
        }
        sweep(&store.tmp, Duration::ZERO)?;
        sweep(&store.partial, partial_ttl)?;
        Ok(store)
    }

    /// Removes partial uploads nobody has touched for `max_age`: an
    /// abandoned upload must not hold its space until the next restart.
    /// An upload still arriving keeps its file's time fresh.
    pub fn sweep_partials(&self, max_age: Duration) -> Result<(), HubError> {
        sweep(&self.partial, max_age)?;
        // Temp files of a run that got no cleanup (none should): a live
        // upload keeps its file's time fresh.
        sweep(&self.tmp, max_age)
    }

    /// The store's folder.
    pub fn root(&self) -> &Path {
        self.blobs
            .parent()
            .expect("blobs/ is inside the store's folder")
    }

    /// The hash and size of every blob file in the store (names that are
    /// not a hash are skipped).
    pub fn blob_sizes(&self) -> impl Iterator<Item = (ContentHash, u64)> {
        fs::read_dir(&self.blobs)
            .into_iter()
            .flatten()
            .flatten()
            .flat_map(|shard| fs::read_dir(shard.path()).into_iter().flatten().flatten())
            .filter_map(|blob| {
                let hash = ContentHash::from_hex(blob.file_name().to_str()?)?;
                Some((hash, blob.metadata().ok()?.len()))
            })
    }

    /// Where the blob with `hash` lives.
    pub fn blob_path(&self, hash: &ContentHash) -> PathBuf {
        let hex = hash.to_hex();
        self.blobs.join(&hex[..2]).join(hex)
    }

    /// Opens a blob for reading.
    pub async fn open_blob(&self, hash: &ContentHash) -> io::Result<File> {
        File::open(self.blob_path(hash)).await
    }

    /// A fresh path in `tmp/`, unique within this run (the directory is
    /// emptied at start, so no earlier run can collide).
    pub fn temp_path(&self) -> PathBuf {
        let n = self.next_temp.fetch_add(1, Ordering::Relaxed);
        self.tmp.join(format!("upload-{n}"))
    }

    /// The bytes of HTTP resumable upload `id` (hex; its record is beside
    /// it, with `.json`), swept with the other partials.
    pub fn resumable_path(&self, id: &str) -> PathBuf {
        self.partial.join(format!("http-{id}"))
    }

    /// The folder of partial uploads (protocol and HTTP).
    pub fn partial_dir(&self) -> &Path {
        &self.partial
    }

    /// The resumable partial file for upload `key`.
    pub fn partial_path(&self, key: &ContentHash) -> PathBuf {
        self.partial.join(key.to_hex())
    }

    /// Moves verified, fsynced bytes at `from` into place as blob `hash` and
    /// makes the rename durable. If an entry `referenced` the blob already,
    /// the bytes are identical and `from` is simply removed.
    pub async fn commit(
        &self,
        from: &Path,
        hash: &ContentHash,
        referenced: bool,
    ) -> Result<(), HubError> {
        let (source, target) = (from.to_owned(), self.blob_path(hash));
        let shard =
            tokio::task::spawn_blocking(move || move_into_place(&source, &target, referenced))
                .await
                .map_err(io::Error::other)
                .and_then(|r| r)
                .map_err(|e| HubError::io("moving upload into place", from, e))?;
        match shard {
            Some(shard) => sync_dir(&shard).await,
            None => Ok(()),
        }
    }

    /// Makes every file written and renamed in the store so far durable, in
    /// one flush of its filesystem. Blocking.
    pub fn sync(&self) -> io::Result<()> {
        fault_point!("store::sync");
        sync_filesystem(&self.blobs)
    }

    /// Puts many verified uploads in place, then makes their bytes and the
    /// moves durable with one [`Self::sync`]; each says whether an entry
    /// already refers to its blob. Blocking. On an error some may be in
    /// place, unreferenced and so untrusted, until an upload of the same
    /// bytes replaces them.
    pub fn commit_many(&self, uploads: &[(Incoming<'_>, ContentHash, bool)]) -> io::Result<()> {
        for (incoming, hash, referenced) in uploads {
            let target = self.blob_path(hash);
            match incoming {
                Incoming::File(from) => {
                    move_into_place(from, &target, *referenced)?;
                }
                Incoming::Bytes(_) if *referenced => {}
                Incoming::Bytes(bytes) => self.write_blob(bytes, &target)?,
            }
        }
        self.sync()
    }

    /// Writes verified bytes as a new blob file at `target`, or, if a file
    /// nothing refers to is there, into a temp file renamed over it.
    fn write_blob(&self, bytes: &[u8], target: &Path) -> io::Result<()> {
        match in_shard(target, || fs::File::create_new(target)) {
            Ok(mut file) => file.write_all(bytes),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let temp = self.temp_path();
                fs::File::create_new(&temp)?.write_all(bytes)?;
                move_into_place(&temp, target, false).map(drop)
            }
            Err(e) => Err(e),
        }
    }

    /// Deletes a blob no entry refers to any more.
    pub async fn remove_blob(&self, hash: &ContentHash) -> Result<(), HubError> {
        let path = self.blob_path(hash);
        match tokio::fs::remove_file(&path).await {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(HubError::io("removing blob", &path, e))
            }
            _ => Ok(()),
        }
    }
}

/// Moves verified bytes at `from` to blob path `target`, over whatever
/// unreferenced file is there, unless an entry `referenced` the blob (the
/// same bytes, durable: `from` is removed). Returns the shard folder to
/// sync, if it changed. Blocking.
fn move_into_place(from: &Path, target: &Path, referenced: bool) -> io::Result<Option<PathBuf>> {
    if referenced {
        fs::remove_file(from)?;
        return Ok(None);
    }
    in_shard(target, || fs::rename(from, target))?;
    Ok(target.parent().map(Path::to_owned))
}

/// Runs `op`, which puts a file at blob path `target`, creating the shard
/// folder and trying again if it is missing.
fn in_shard<T>(target: &Path, op: impl Fn() -> io::Result<T>) -> io::Result<T> {
    let shard = target.parent().expect("blob paths have a shard directory");
    match op() {
        Err(e) if e.kind() == io::ErrorKind::NotFound && !shard.exists() => {
            fs::create_dir_all(shard)?;
            op()
        }
        done => done,
    }
}

/// Verified bytes on their way into a blob.
pub enum Incoming<'a> {
    /// Held in memory: written to a new blob file.
    Bytes(&'a [u8]),
    /// Written to a temp file: renamed into place.
    File(&'a Path),
}

/// Removes an upload's temp or partial file that will not be stored (refused,
/// failed its check); a failure is only logged.
pub(crate) async fn remove_quietly(path: &Path) {
    if let Err(e) = tokio::fs::remove_file(path).await {
        tracing::warn!(path = %path.display(), "could not remove a rejected upload: {e}");
    }
}

/// Makes a directory's entries (a rename, a new file) durable.
pub async fn sync_dir(dir: &Path) -> Result<(), HubError> {
    let owned = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        fault_point!("store::sync_dir");
        fs::File::open(&owned)?.sync_all()
    })
    .await
    .map_err(io::Error::other)
    .and_then(|r| r)
    .map_err(|e| HubError::io("syncing directory", dir, e))
}

/// Removes files in `dir` last modified more than `max_age` ago.
fn sweep(dir: &Path, max_age: Duration) -> Result<(), HubError> {
    let now = SystemTime::now();
    let entries = fs::read_dir(dir).map_err(|e| HubError::io("listing", dir, e))?;
    for entry in entries.flatten() {
        let age = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| now.duration_since(modified).ok())
            .unwrap_or(Duration::MAX);
        if age >= max_age {
            let path = entry.path();
            tracing::info!(path = %path.display(), "sweeping leftover upload");
            match fs::remove_file(&path) {
                Ok(()) => {}
                // Finished (renamed into place) since it was listed.
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(HubError::io("sweeping", &path, e)),
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leftover_temp_files_are_swept_and_fresh_partials_kept() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("tmp")).unwrap();
        fs::create_dir_all(dir.path().join("partial")).unwrap();
        fs::write(dir.path().join("tmp/upload-0"), b"half").unwrap();
        fs::write(dir.path().join("partial/abc"), b"resumable").unwrap();
        Store::open(dir.path(), Duration::from_secs(3600)).unwrap();
        assert!(!dir.path().join("tmp/upload-0").exists());
        assert!(dir.path().join("partial/abc").exists());
        Store::open(dir.path(), Duration::ZERO).unwrap();
        assert!(!dir.path().join("partial/abc").exists());
    }

    #[tokio::test]
    async fn commit_moves_bytes_under_their_hash() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), Duration::from_secs(60)).unwrap();
        let hash = ContentHash::of(b"data");
        // A leftover nothing refers to (a crash before its flush) is replaced;
        // a referenced blob is kept and the new copy dropped.
        fs::create_dir_all(store.blob_path(&hash).parent().unwrap()).unwrap();
        fs::write(store.blob_path(&hash), b"torn").unwrap();
        let inode = |path: &Path| std::os::unix::fs::MetadataExt::ino(&fs::metadata(path).unwrap());
        for referenced in [false, true] {
            let temp = store.temp_path();
            fs::write(&temp, b"data").unwrap();
            let (before, incoming) = (inode(&store.blob_path(&hash)), inode(&temp));
            store.commit(&temp, &hash, referenced).await.unwrap();
            assert!(!temp.exists());
            assert_eq!(fs::read(store.blob_path(&hash)).unwrap(), b"data");
            let kept = if referenced { before } else { incoming };
            assert_eq!(
                inode(&store.blob_path(&hash)),
                kept,
                "referenced: {referenced}"
            );
        }
        store.remove_blob(&hash).await.unwrap();
        assert!(!store.blob_path(&hash).exists());
    }
}
