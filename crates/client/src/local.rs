//! The local side of downloads: partial files, the download folder, and
//! putting a verified file into place without overwriting anything unasked.
//!
//! Every file operation goes through a [`Folder`] handle of the download
//! folder (see [`ferry_io::beneath`]): nothing is created, written or
//! renamed through a symlink someone else planted there.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ferry_io::Folder;
use ferry_protocol::{ConflictPolicy, ContentHash, FileName};

use crate::error::ClientError;

/// Folders held open at once by one [`DownloadDir`].
const OPEN_FOLDERS: usize = 256;

/// A download folder, and the folders in it a download has used, held
/// open (a bounded number, so a tree of many folders does not run out of
/// file descriptors).
#[derive(Debug, Clone)]
pub struct DownloadDir(Arc<DirInner>);

#[derive(Debug)]
struct DirInner {
    root: Arc<Folder>,
    open: Mutex<HashMap<PathBuf, Arc<Folder>>>,
}

impl DownloadDir {
    /// Opens the download folder at `path`.
    pub fn open(path: &Path) -> Result<Self, ClientError> {
        let root = Folder::open(path).map_err(|e| ClientError::local("opening", path, e))?;
        Ok(Self(Arc::new(DirInner {
            root: Arc::new(root),
            open: Mutex::new(HashMap::new()),
        })))
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        self.0.root.path()
    }

    /// The folder `relative` inside, never reached through a symlink; with
    /// `create`, missing folders are made.
    pub fn folder(&self, relative: &Path, create: bool) -> Result<Arc<Folder>, ClientError> {
        if relative.as_os_str().is_empty() {
            return Ok(self.0.root.clone());
        }
        if let Some(open) = self.lock().get(relative) {
            return Ok(open.clone());
        }
        let folder = self
            .0
            .root
            .subfolder(relative, create)
            .map(Arc::new)
            .map_err(|e| ClientError::local("opening folder", self.path().join(relative), e))?;
        let mut open = self.lock();
        if open.len() >= OPEN_FOLDERS {
            open.clear();
        }
        open.insert(relative.to_owned(), folder.clone());
        Ok(folder)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Arc<Folder>>> {
        self.0.open.lock().expect("folder cache lock")
    }
}

/// Where one download goes: a file name in a folder of the download
/// folder, and the hidden partial beside it.
#[derive(Debug, Clone)]
pub struct Target {
    /// The download folder.
    pub dir: DownloadDir,
    /// The file's folder, relative to `dir`.
    pub parent: PathBuf,
    /// The file's name in that folder.
    pub name: OsString,
    /// The partial's name in that folder.
    pub partial: OsString,
}

impl Target {
    /// The target for `relative` (a checked relative path) inside `dir`,
    /// with its partial named after `name` and `hash`.
    pub fn new(
        dir: &DownloadDir,
        relative: &Path,
        name: &FileName,
        hash: &ContentHash,
    ) -> Result<Self, ClientError> {
        let file_name = relative
            .file_name()
            .ok_or_else(|| ClientError::InvalidName {
                name: name.to_string(),
                reason: ferry_protocol::NameError::Empty,
            })?;
        Ok(Self {
            dir: dir.clone(),
            parent: relative.parent().map(Path::to_owned).unwrap_or_default(),
            name: file_name.to_owned(),
            partial: partial_name(name, hash).into(),
        })
    }

    /// The file's folder, made if missing.
    pub fn folder(&self) -> Result<Arc<Folder>, ClientError> {
        self.dir.folder(&self.parent, true)
    }

    /// Where the file goes, for messages.
    pub fn dest_path(&self) -> PathBuf {
        self.dir.path().join(&self.parent).join(&self.name)
    }

    /// Where the partial is, for messages.
    pub fn partial_path(&self) -> PathBuf {
        self.dir.path().join(&self.parent).join(&self.partial)
    }

    /// Opens (creating, or continuing) the partial file.
    pub fn open_partial(&self) -> Result<std::fs::File, ClientError> {
        self.folder()?
            .open_partial(&self.partial)
            .map_err(|e| ClientError::local("opening", self.partial_path(), e))
    }

    /// Removes the partial file (a download that failed its check).
    pub fn remove_partial(&self) {
        if let Ok(folder) = self.dir.folder(&self.parent, false) {
            let _ = folder.remove(&self.partial);
        }
    }
}

/// The hidden partial file name a download of `name` with `hash` goes to,
/// next to its destination so the final rename stays in one folder.
pub fn partial_name(name: &FileName, hash: &ContentHash) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(name.as_str().as_bytes());
    hasher.update(&hash.0);
    let key = ContentHash::from(hasher.finalize()).short();
    format!(".ferry-{key}.part")
}

/// Moves the verified, fsynced partial of `target` into place under
/// `policy` and makes the folder entry durable. Returns where it went.
pub fn place(target: &Target, policy: ConflictPolicy) -> Result<PathBuf, ClientError> {
    let folder = target.folder()?;
    let placed = place_unsynced(&folder, target, policy)?;
    folder
        .sync()
        .map_err(|e| ClientError::local("syncing folder", folder.path(), e))?;
    Ok(placed)
}

/// [`place`] without making the folder entry durable: the caller syncs
/// the folder once for a whole batch.
fn place_unsynced(
    folder: &Folder,
    target: &Target,
    policy: ConflictPolicy,
) -> Result<PathBuf, ClientError> {
    let dest = target.dest_path();
    let moved = |e| ClientError::local("moving into place", &dest, e);
    match policy {
        ConflictPolicy::Overwrite => {
            folder
                .rename(&target.partial, &target.name, true)
                .map_err(moved)?;
            Ok(dest)
        }
        ConflictPolicy::Refuse => {
            if folder
                .rename(&target.partial, &target.name, false)
                .map_err(moved)?
            {
                Ok(dest)
            } else {
                Err(ClientError::LocalConflict { path: dest })
            }
        }
        ConflictPolicy::Rename => place_numbered(folder, target),
    }
}

/// A verified download in a batch: its partial file, or its bytes still in
/// memory (then written to the partial first), and where it goes.
#[derive(Debug)]
pub struct Received {
    /// Where it goes.
    pub target: Target,
    /// The whole file, if it was received into memory.
    pub bytes: Option<Vec<u8>>,
}

/// Makes a batch of received files durable with as few disk flushes as
/// possible, then places each under `policy`. Files held in memory are
/// written out first. When little else waits to be written, one flush of
/// each filesystem involved covers the whole batch (and a second its
/// renames); otherwise the files are fsynced concurrently and each folder
/// once. One result per file.
pub fn place_batch(
    files: &[Received],
    policy: ConflictPolicy,
) -> Vec<Result<PathBuf, ClientError>> {
    let whole_filesystems = ferry_io::disk::little_dirty_data();
    place_batch_flushing(files, policy, whole_filesystems)
}

fn place_batch_flushing(
    files: &[Received],
    policy: ConflictPolicy,
    whole_filesystems: bool,
) -> Vec<Result<PathBuf, ClientError>> {
    let folders = files.iter().map(|f| f.target.folder()).collect();
    let mut placed: Vec<Result<(PathBuf, Arc<Folder>), ClientError>> =
        write_durably(files, folders, whole_filesystems)
            .into_iter()
            .zip(files)
            .map(|(ready, file)| {
                let folder = ready?;
                let path = place_unsynced(&folder, &file.target, policy)?;
                Ok((path, folder))
            })
            .collect();
    sync_folders(&mut placed, whole_filesystems);
    placed
        .into_iter()
        .map(|p| p.map(|(path, _)| path))
        .collect()
}

/// Writes out the files held in memory and makes every partial durable;
/// each result holds the file's folder.
fn write_durably(
    files: &[Received],
    folders: Vec<Result<Arc<Folder>, ClientError>>,
    whole_filesystems: bool,
) -> Vec<Result<Arc<Folder>, ClientError>> {
    let mut results: Vec<Result<Arc<Folder>, ClientError>> = files
        .iter()
        .zip(folders)
        .map(|(f, folder)| {
            let folder = folder?;
            if let Some(bytes) = &f.bytes {
                folder
                    .open_partial(&f.target.partial)
                    .and_then(|mut file| {
                        file.set_len(0)?;
                        file.write_all(bytes)
                    })
                    .map_err(|e| ClientError::local("writing", f.target.partial_path(), e))?;
            }
            Ok(folder)
        })
        .collect();
    if whole_filesystems {
        flush_filesystems(&mut results);
        return results;
    }
    let synced = ferry_io::disk::sync_all_concurrently(files, |f| {
        f.target
            .folder()
            .map_err(|e| io::Error::other(e.to_string()))?
            .open_partial(&f.target.partial)?
            .sync_all()
    });
    for ((result, file), synced) in results.iter_mut().zip(files).zip(synced) {
        if let (Ok(_), Err(e)) = (&result, synced) {
            *result = Err(ClientError::local("syncing", file.target.partial_path(), e));
        }
    }
    results
}

/// Makes the new entries in every folder something was placed in durable;
/// where that fails, the files placed there are reported as failed.
fn sync_folders(placed: &mut [Result<(PathBuf, Arc<Folder>), ClientError>], whole: bool) {
    let mut folders: Vec<Result<Arc<Folder>, ClientError>> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (_, folder) in placed.iter().flatten() {
        if seen.insert(folder.path().to_owned()) {
            folders.push(Ok(folder.clone()));
        }
    }
    if whole {
        flush_filesystems(&mut folders);
    } else {
        for result in &mut folders {
            if let Ok(folder) = result
                && let Err(e) = folder.sync()
            {
                *result = Err(ClientError::local("syncing folder", folder.path(), e));
            }
        }
    }
    let failed: HashMap<PathBuf, String> = folders
        .iter()
        .filter_map(|r| match r {
            Err(ClientError::Local { path, source, .. }) => {
                Some((path.clone(), source.to_string()))
            }
            _ => None,
        })
        .collect();
    for p in placed.iter_mut() {
        let Ok((_, folder)) = p else { continue };
        if let Some(e) = failed.get(folder.path()) {
            let e = io::Error::other(e.clone());
            *p = Err(ClientError::local("syncing folder", folder.path(), e));
        }
    }
}

/// Flushes once each filesystem holding a folder in `results` (see
/// [`ferry_io::disk::sync_filesystem`]). A failure fails every result on
/// that filesystem that is still `Ok`.
fn flush_filesystems(results: &mut [Result<Arc<Folder>, ClientError>]) {
    let mut by_device: HashMap<u64, Result<(), String>> = HashMap::new();
    for result in results.iter_mut() {
        let Ok(folder) = result else { continue };
        let outcome = folder
            .device()
            .map_err(|e| e.to_string())
            .and_then(|device| {
                by_device
                    .entry(device)
                    .or_insert_with(|| folder.sync_filesystem().map_err(|e| e.to_string()))
                    .clone()
            });
        if let Err(e) = outcome {
            *result = Err(ClientError::local(
                "syncing",
                folder.path(),
                io::Error::other(e),
            ));
        }
    }
}

fn place_numbered(folder: &Folder, target: &Target) -> Result<PathBuf, ClientError> {
    let dest = target.dest_path();
    let moved = |e| ClientError::local("moving into place", &dest, e);
    if folder
        .rename(&target.partial, &target.name, false)
        .map_err(moved)?
    {
        return Ok(dest);
    }
    let file = target.name.to_str().unwrap_or("file");
    let invalid = |reason| ClientError::InvalidName {
        name: file.into(),
        reason,
    };
    let name = FileName::parse(file).map_err(invalid)?;
    for n in 1..10_000 {
        let candidate = name.numbered(n).map_err(invalid)?;
        let candidate = OsStr::new(candidate.as_str());
        if folder
            .rename(&target.partial, candidate, false)
            .map_err(moved)?
        {
            return Ok(dest.with_file_name(candidate));
        }
    }
    Err(ClientError::LocalConflict { path: dest })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn target(dir: &DownloadDir, relative: &str, partial: &str) -> Target {
        let relative = Path::new(relative);
        Target {
            dir: dir.clone(),
            parent: relative.parent().unwrap().to_owned(),
            name: relative.file_name().unwrap().to_owned(),
            partial: partial.into(),
        }
    }

    #[test]
    fn a_batch_is_placed_file_by_file_under_the_policy() {
        for whole_filesystems in [false, true] {
            place_a_batch(whole_filesystems);
        }
    }

    fn place_a_batch(whole_filesystems: bool) {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        fs::write(d.join(".a.part"), b"new a").unwrap();
        fs::write(d.join(".b.part"), b"new b").unwrap();
        fs::write(d.join("b"), b"old b").unwrap();
        let dir = DownloadDir::open(d).unwrap();
        let files = [
            Received {
                target: target(&dir, "a", ".a.part"),
                bytes: None,
            },
            Received {
                target: target(&dir, "b", ".b.part"),
                bytes: None,
            },
            Received {
                target: target(&dir, "sub/c", ".c.part"),
                bytes: Some(b"new c".to_vec()),
            },
        ];
        let results = place_batch_flushing(&files, ConflictPolicy::Refuse, whole_filesystems);
        assert_eq!(results[0].as_ref().unwrap(), &d.join("a"));
        assert!(matches!(results[1], Err(ClientError::LocalConflict { .. })));
        assert_eq!(results[2].as_ref().unwrap(), &d.join("sub/c"));
        assert_eq!(fs::read(d.join("a")).unwrap(), b"new a");
        assert_eq!(fs::read(d.join("sub/c")).unwrap(), b"new c");
        assert_eq!(fs::read(d.join("b")).unwrap(), b"old b");
        assert!(!d.join(".a.part").exists());
        // The refused file stays as a partial, nothing lost.
        assert_eq!(fs::read(d.join(".b.part")).unwrap(), b"new b");
    }

    #[test]
    fn refuse_policy_never_replaces_an_existing_file() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = DownloadDir::open(tmp.path()).unwrap();
        let dest = tmp.path().join("a.txt");
        fs::write(&dest, b"mine").unwrap();
        fs::write(tmp.path().join(".p"), b"theirs").unwrap();
        let t = target(&dir, "a.txt", ".p");
        assert!(matches!(
            place(&t, ConflictPolicy::Refuse),
            Err(ClientError::LocalConflict { .. })
        ));
        assert_eq!(fs::read(&dest).unwrap(), b"mine");
        let placed = place(&t, ConflictPolicy::Rename).unwrap();
        assert_eq!(placed, tmp.path().join("a (1).txt"));
        assert_eq!(fs::read(placed).unwrap(), b"theirs");
        assert!(!tmp.path().join(".p").exists());
    }

    #[test]
    fn folders_are_not_created_through_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), tmp.path().join("link")).unwrap();
        let dir = DownloadDir::open(tmp.path()).unwrap();
        let err = dir.folder(Path::new("link/x"), true).unwrap_err();
        assert!(matches!(err, ClientError::Local { .. }), "{err}");
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
        dir.folder(Path::new("a/b"), true).unwrap();
        assert!(tmp.path().join("a/b").is_dir());
    }
}
