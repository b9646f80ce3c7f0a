//! The local side of downloads: partial files, safe folders, and putting a
//! verified file into place without overwriting anything unasked.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use ferry_protocol::{ConflictPolicy, ContentHash, FileName};

use crate::error::ClientError;

/// Creates the folders of `relative` under `root`, refusing to pass through
/// a symlink or a non-folder, and returns the parent folder of the file.
pub fn safe_parent(root: &Path, relative: &Path) -> Result<PathBuf, ClientError> {
    let mut dir = root.to_owned();
    let Some(parent) = relative.parent() else {
        return Ok(dir);
    };
    for component in parent.components() {
        dir.push(component);
        match fs::symlink_metadata(&dir) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                let reason =
                    io::Error::other("exists and is not a folder (symlinks are not followed)");
                return Err(ClientError::local("creating folder", &dir, reason));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&dir).map_err(|e| ClientError::local("creating folder", &dir, e))?;
            }
            Err(e) => return Err(ClientError::local("inspecting", &dir, e)),
        }
    }
    Ok(dir)
}

/// The hidden partial file a download of `name` with `hash` goes to, next to
/// its destination so the final rename stays on one filesystem.
pub fn partial_path(dir: &Path, name: &FileName, hash: &ContentHash) -> PathBuf {
    let mut hasher = blake3::Hasher::new();
    hasher.update(name.as_str().as_bytes());
    hasher.update(&hash.0);
    let key = ContentHash::from(hasher.finalize()).short();
    dir.join(format!(".ferry-{key}.part"))
}

/// Whether something (even a dangling symlink) exists at `path`.
pub fn occupied(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok()
}

/// Moves the verified, fsynced `partial` to `dest` under `policy` and makes
/// the directory entry durable. Returns where the file went.
pub fn place(partial: &Path, dest: &Path, policy: ConflictPolicy) -> Result<PathBuf, ClientError> {
    let placed = place_unsynced(partial, dest, policy)?;
    if let Some(dir) = placed.parent() {
        sync_dir(dir)?;
    }
    Ok(placed)
}

/// [`place`] without making the directory entry durable: the caller syncs
/// the folder once for a whole batch.
pub fn place_unsynced(
    partial: &Path,
    dest: &Path,
    policy: ConflictPolicy,
) -> Result<PathBuf, ClientError> {
    Ok(match policy {
        ConflictPolicy::Overwrite => {
            fs::rename(partial, dest)
                .map_err(|e| ClientError::local("moving into place", dest, e))?;
            dest.to_owned()
        }
        ConflictPolicy::Refuse => {
            link_new(partial, dest)?.ok_or_else(|| ClientError::LocalConflict {
                path: dest.to_owned(),
            })?
        }
        ConflictPolicy::Rename => place_numbered(partial, dest)?,
    })
}

/// A verified download in a batch: its partial file, or its bytes still in
/// memory (then written to the partial first), and where it goes.
#[derive(Debug)]
pub struct Received {
    /// The hidden partial file.
    pub partial: PathBuf,
    /// Where it should land.
    pub dest: PathBuf,
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
    let mut placed: Vec<Result<PathBuf, ClientError>> = write_durably(files, whole_filesystems)
        .into_iter()
        .zip(files)
        .map(|(ready, file)| ready.and_then(|()| place_unsynced(&file.partial, &file.dest, policy)))
        .collect();
    sync_folders(&mut placed, whole_filesystems);
    placed
}

/// Writes out the files held in memory and makes every partial durable.
fn write_durably(files: &[Received], whole_filesystems: bool) -> Vec<Result<(), ClientError>> {
    let mut results: Vec<Result<(), ClientError>> = files
        .iter()
        .map(|f| {
            match &f.bytes {
                Some(bytes) => ferry_io::disk::open_partial(&f.partial).and_then(|mut file| {
                    file.set_len(0)?;
                    std::io::Write::write_all(&mut file, bytes)
                }),
                None => Ok(()),
            }
            .map_err(|e| ClientError::local("writing", &f.partial, e))
        })
        .collect();
    if whole_filesystems {
        let folders = files
            .iter()
            .map(|f| f.partial.parent().unwrap_or(&f.partial));
        flush_filesystems(folders, &mut results);
        return results;
    }
    let partials: Vec<&Path> = files.iter().map(|f| f.partial.as_path()).collect();
    let synced = ferry_io::disk::sync_all_concurrently(&partials);
    for ((result, file), synced) in results.iter_mut().zip(files).zip(synced) {
        if let (Ok(()), Err(e)) = (&result, synced) {
            *result = Err(ClientError::local("syncing", &file.partial, e));
        }
    }
    results
}

/// Makes the new entries in every folder something was placed in durable;
/// where that fails, the files placed there are reported as failed.
fn sync_folders(placed: &mut [Result<PathBuf, ClientError>], whole_filesystems: bool) {
    let folders: Vec<PathBuf> = placed
        .iter()
        .filter_map(|p| p.as_ref().ok()?.parent().map(Path::to_path_buf))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut synced: Vec<Result<(), ClientError>> = folders.iter().map(|_| Ok(())).collect();
    if whole_filesystems {
        flush_filesystems(folders.iter().map(PathBuf::as_path), &mut synced);
    } else {
        for (folder, result) in folders.iter().zip(&mut synced) {
            *result = sync_dir(folder);
        }
    }
    for (folder, result) in folders.iter().zip(synced) {
        let Err(e) = result else { continue };
        for p in placed.iter_mut() {
            if matches!(p, Ok(path) if path.parent() == Some(folder)) {
                let e = io::Error::other(e.to_string());
                *p = Err(ClientError::local("syncing folder", folder, e));
            }
        }
    }
}

/// Flushes once each filesystem holding one of `folders` (the folder of
/// each result's file, or the folder itself; see
/// [`ferry_io::disk::sync_filesystem`]). A failure fails every result
/// on that filesystem that is still `Ok`. Each folder is looked at once.
fn flush_filesystems<'a>(
    folders: impl Iterator<Item = &'a Path>,
    results: &mut [Result<(), ClientError>],
) {
    use std::collections::HashMap;
    use std::os::unix::fs::MetadataExt;
    let mut by_folder: HashMap<&Path, Result<(), String>> = HashMap::new();
    let mut by_device: HashMap<u64, Result<(), String>> = HashMap::new();
    for (folder, result) in folders.zip(results.iter_mut()) {
        if result.is_err() {
            continue;
        }
        let outcome = by_folder.entry(folder).or_insert_with(|| {
            let device = fs::metadata(folder).map_err(|e| e.to_string())?.dev();
            by_device
                .entry(device)
                .or_insert_with(|| {
                    ferry_io::disk::sync_filesystem(folder).map_err(|e| e.to_string())
                })
                .clone()
        });
        if let Err(e) = outcome {
            *result = Err(ClientError::local(
                "syncing",
                folder,
                io::Error::other(e.clone()),
            ));
        }
    }
}

fn place_numbered(partial: &Path, dest: &Path) -> Result<PathBuf, ClientError> {
    if let Some(placed) = link_new(partial, dest)? {
        return Ok(placed);
    }
    let file = dest.file_name().and_then(|f| f.to_str()).unwrap_or("file");
    let name = FileName::parse(file).map_err(|reason| ClientError::InvalidName {
        name: file.into(),
        reason,
    })?;
    for n in 1..10_000 {
        let candidate = name
            .numbered(n)
            .map_err(|reason| ClientError::InvalidName {
                name: file.into(),
                reason,
            })?;
        if let Some(placed) = link_new(partial, &dest.with_file_name(candidate.as_str()))? {
            return Ok(placed);
        }
    }
    Err(ClientError::LocalConflict {
        path: dest.to_owned(),
    })
}

/// Gives `partial` the name `dest` only if `dest` is free: one rename that
/// refuses to replace (`RENAME_NOREPLACE`), or where the filesystem lacks
/// that, a hard link (which cannot replace either) and an unlink.
/// `Ok(None)` means `dest` was taken.
fn link_new(partial: &Path, dest: &Path) -> Result<Option<PathBuf>, ClientError> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    match renameat_with(CWD, partial, CWD, dest, RenameFlags::NOREPLACE) {
        Ok(()) => return Ok(Some(dest.to_owned())),
        Err(rustix::io::Errno::EXIST) => return Ok(None),
        Err(_) => {} // not supported here: fall back
    }
    match fs::hard_link(partial, dest) {
        Ok(()) => {
            fs::remove_file(partial)
                .map_err(|e| ClientError::local("removing partial", partial, e))?;
            Ok(Some(dest.to_owned()))
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(None),
        Err(_) if !occupied(dest) => {
            // Filesystems without hard links: check-then-rename is the best left.
            fs::rename(partial, dest)
                .map_err(|e| ClientError::local("moving into place", dest, e))?;
            Ok(Some(dest.to_owned()))
        }
        Err(_) => Ok(None),
    }
}

/// Makes a directory's entries durable.
pub fn sync_dir(dir: &Path) -> Result<(), ClientError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| ClientError::local("syncing folder", dir, e))
}

/// BLAKE3 of the first `len` bytes of `path`.
pub fn hash_prefix(path: &Path, len: u64) -> io::Result<blake3::Hasher> {
    let mut hasher = blake3::Hasher::new();
    hasher.update_reader(fs::File::open(path)?.take(len))?;
    Ok(hasher)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_placed_file_by_file_under_the_policy() {
        for whole_filesystems in [false, true] {
            place_a_batch(whole_filesystems);
        }
    }

    fn place_a_batch(whole_filesystems: bool) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join(".a.part"), b"new a").unwrap();
        fs::write(d.join(".b.part"), b"new b").unwrap();
        fs::write(d.join("b"), b"old b").unwrap();
        let files = [
            Received {
                partial: d.join(".a.part"),
                dest: d.join("a"),
                bytes: None,
            },
            Received {
                partial: d.join(".b.part"),
                dest: d.join("b"),
                bytes: None,
            },
            Received {
                partial: d.join(".c.part"),
                dest: d.join("c"),
                bytes: Some(b"new c".to_vec()),
            },
        ];
        let results = place_batch_flushing(&files, ConflictPolicy::Refuse, whole_filesystems);
        assert_eq!(results[0].as_ref().unwrap(), &d.join("a"));
        assert!(matches!(results[1], Err(ClientError::LocalConflict { .. })));
        assert_eq!(results[2].as_ref().unwrap(), &d.join("c"));
        assert_eq!(fs::read(d.join("a")).unwrap(), b"new a");
        assert_eq!(fs::read(d.join("c")).unwrap(), b"new c");
        assert_eq!(fs::read(d.join("b")).unwrap(), b"old b");
        assert!(!d.join(".a.part").exists());
        // The refused file stays as a partial, nothing lost.
        assert_eq!(fs::read(d.join(".b.part")).unwrap(), b"new b");
    }

    #[test]
    fn refuse_policy_never_replaces_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let (partial, dest) = (dir.path().join(".p"), dir.path().join("a.txt"));
        fs::write(&dest, b"mine").unwrap();
        fs::write(&partial, b"theirs").unwrap();
        assert!(matches!(
            place(&partial, &dest, ConflictPolicy::Refuse),
            Err(ClientError::LocalConflict { .. })
        ));
        assert_eq!(fs::read(&dest).unwrap(), b"mine");
        let placed = place(&partial, &dest, ConflictPolicy::Rename).unwrap();
        assert_eq!(placed, dir.path().join("a (1).txt"));
        assert_eq!(fs::read(placed).unwrap(), b"theirs");
        assert!(!partial.exists());
    }

    #[test]
    fn folders_are_not_created_through_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), dir.path().join("link")).unwrap();
        let err = safe_parent(dir.path(), Path::new("link/x/file")).unwrap_err();
        assert!(matches!(err, ClientError::Local { .. }));
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
        let made = safe_parent(dir.path(), Path::new("a/b/file")).unwrap();
        assert!(made.ends_with("a/b") && made.is_dir());
    }
}
