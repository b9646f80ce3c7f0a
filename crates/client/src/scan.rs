//! Finding and hashing the local files an upload will send.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use ferry_protocol::FileName;

use ferry_io::{FileIdentity, Folder};

use crate::error::ClientError;
use crate::file_hash::hash_file;
use crate::transfer::UploadItem;

/// Where an upload's bytes are read from.
#[derive(Debug, Clone)]
pub enum LocalFile {
    /// A file the user named (symlinks on its path are the user's choice).
    Named(PathBuf),
    /// A file found in a folder the user named: reached beneath that
    /// folder's handle, following no symlink (see [`ferry_io::beneath`]).
    Beneath {
        /// The folder the user named.
        root: PathBuf,
        /// The file's path inside it.
        relative: PathBuf,
    },
}

impl LocalFile {
    /// Where the file is, for messages.
    pub fn path(&self) -> PathBuf {
        match self {
            Self::Named(path) => path.clone(),
            Self::Beneath { root, relative } => root.join(relative),
        }
    }

    /// Opens the file for reading; it must be a regular file.
    pub fn open(&self) -> std::io::Result<std::fs::File> {
        match self {
            Self::Named(path) => ferry_io::beneath::open_named(path),
            Self::Beneath { root, relative } => Folder::open(root)?.open_file(relative),
        }
    }
}

/// Expands files and folders into `(file, name)` pairs: a file is named by
/// its file name, a folder's files by their path from the folder's parent
/// (`photos/2024/a.jpg`). Only regular files are taken; symlinks inside a
/// folder are skipped, never followed.
pub fn collect_uploads(paths: &[PathBuf]) -> Result<Vec<(LocalFile, FileName)>, ClientError> {
    let mut found = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| ClientError::local("reading", path, e))?;
        let base = file_name_of(path)?;
        if meta.is_dir() {
            let root = Folder::open(path).map_err(|e| ClientError::local("opening", path, e))?;
            walk(&root, Path::new(""), &base, &mut found)?;
        } else {
            found.push((LocalFile::Named(path.clone()), parse_name(&base)?));
        }
    }
    Ok(found)
}

/// Adds the files under `relative` in `root`, in name order.
fn walk(
    root: &Folder,
    relative: &Path,
    prefix: &str,
    found: &mut Vec<(LocalFile, FileName)>,
) -> Result<(), ClientError> {
    let here = root.path().join(relative);
    let folder = root
        .subfolder(relative, false)
        .map_err(|e| ClientError::local("opening", &here, e))?;
    let mut entries = folder
        .list()
        .map_err(|e| ClientError::local("listing", &here, e))?;
    drop(folder); // one descriptor at a time, however deep the tree
    entries.sort_by(|a, b| a.name.cmp(&b.name));
    for entry in entries {
        let Some(file_name) = entry.name.to_str() else {
            let reason = ferry_protocol::NameError::NotUtf8;
            return Err(ClientError::InvalidName {
                name: here.join(&entry.name).display().to_string(),
                reason,
            });
        };
        let name = format!("{prefix}/{file_name}");
        let inner = relative.join(file_name);
        if entry.file.is_none() {
            walk(root, &inner, &name, found)?;
        } else {
            let file = LocalFile::Beneath {
                root: root.path().to_owned(),
                relative: inner,
            };
            found.push((file, parse_name(&name)?));
        }
    }
    Ok(())
}

fn file_name_of(path: &Path) -> Result<String, ClientError> {
    let absolute =
        std::path::absolute(path).map_err(|e| ClientError::local("resolving", path, e))?;
    let normal: PathBuf = absolute.components().collect();
    normal
        .file_name()
        .and_then(|n| n.to_str())
        .map(str::to_owned)
        .ok_or_else(|| ClientError::InvalidName {
            name: path.display().to_string(),
            reason: ferry_protocol::NameError::Empty,
        })
}

pub(crate) fn parse_name(name: &str) -> Result<FileName, ClientError> {
    FileName::parse(name).map_err(|reason| ClientError::InvalidName {
        name: name.to_owned(),
        reason,
    })
}

/// Hashes a local file for upload (on a blocking thread).
pub async fn prepare_upload(path: PathBuf, name: FileName) -> Result<UploadItem, ClientError> {
    let mut items = prepare_uploads(vec![(LocalFile::Named(path), name)]).await?;
    Ok(items.pop().expect("one item in, one out"))
}

/// Hashes local files for upload (see [`prepare_each`]); the first file
/// that cannot be read fails the whole batch.
pub async fn prepare_uploads(
    files: Vec<(LocalFile, FileName)>,
) -> Result<Vec<UploadItem>, ClientError> {
    prepare_each(files).await?.into_iter().collect()
}

/// Hashes local files for upload, in order, on every core: each thread
/// takes the next unhashed file, so a folder of small files goes as fast
/// as one big file (which is itself hashed on every core). One result per
/// file: one that cannot be read, or changes while hashed, fails alone.
pub async fn prepare_each(
    files: Vec<(LocalFile, FileName)>,
) -> Result<Vec<Result<UploadItem, ClientError>>, ClientError> {
    tokio::task::spawn_blocking(move || {
        let next = AtomicUsize::new(0);
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let hash_some = || {
            let mut done = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some((file, name)) = files.get(index) else {
                    return done;
                };
                done.push((index, prepare(file.clone(), name.clone())));
            }
        };
        // This thread hashes too; the others only join for a second file.
        let mut hashed: Vec<_> = std::thread::scope(|scope| {
            let helpers: Vec<_> = (1..threads.min(files.len()))
                .map(|_| scope.spawn(hash_some))
                .collect();
            let mut hashed = hash_some();
            for helper in helpers {
                hashed.extend(helper.join().expect("hashing threads do not panic"));
            }
            hashed
        });
        hashed.sort_by_key(|(index, _)| *index);
        hashed.into_iter().map(|(_, item)| item).collect()
    })
    .await
    .map_err(|e| ClientError::local("hashing", "", std::io::Error::other(e)))
}

/// Hashes one file, and notes which version of it was hashed: the upload
/// sends only from that version (see [`UploadItem::identity`]).
fn prepare(from: LocalFile, name: FileName) -> Result<UploadItem, ClientError> {
    let path = from.path();
    let file = from
        .open()
        .map_err(|e| ClientError::local("opening", &path, e))?;
    let hashed = (|| {
        let identity = FileIdentity::of(&file.metadata()?);
        let (size, hash) = hash_file(&file)?;
        identity.check(&file)?;
        Ok((identity, size, hash))
    })();
    let (identity, size, hash) = hashed.map_err(|e| ClientError::local("hashing", &path, e))?;
    Ok(UploadItem {
        path,
        from,
        name,
        size,
        hash,
        identity,
    })
}

#[cfg(test)]
mod hash_tests {
    use super::*;
    use ferry_protocol::ContentHash;

    #[tokio::test]
    async fn many_files_hash_in_order_and_a_missing_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for i in 0..50u8 {
            let path = dir.path().join(format!("f{i}"));
            std::fs::write(&path, vec![i; usize::from(i) * 100]).unwrap();
            files.push((
                LocalFile::Named(path),
                FileName::parse(&format!("f{i}")).unwrap(),
            ));
        }
        let items = prepare_uploads(files.clone()).await.unwrap();
        for (i, item) in items.iter().enumerate() {
            assert_eq!(item.name.as_str(), format!("f{i}"));
            assert_eq!(item.hash, ContentHash::of(&vec![i as u8; i * 100]));
        }
        files.push((
            LocalFile::Named(dir.path().join("gone")),
            FileName::parse("gone").unwrap(),
        ));
        let each = prepare_each(files.clone()).await.unwrap();
        assert_eq!(each.len(), 51);
        assert!(
            each[..50].iter().all(Result::is_ok),
            "the others are hashed"
        );
        assert!(each[50].is_err());
        assert!(prepare_uploads(files).await.is_err());
    }

    #[tokio::test]
    async fn a_folder_is_walked_without_following_links_and_a_swap_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("key"), b"secret").unwrap();
        let top = dir.path().join("top");
        std::fs::create_dir_all(top.join("sub")).unwrap();
        std::fs::write(top.join("sub/a"), b"a").unwrap();
        std::os::unix::fs::symlink(outside.path(), top.join("linked")).unwrap();
        let found = collect_uploads(std::slice::from_ref(&top)).unwrap();
        let names: Vec<_> = found.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, ["top/sub/a"]);
        let item = prepare_upload_from(found[0].0.clone()).await;
        // The folder is swapped for a link to one holding a same-named file.
        std::fs::write(outside.path().join("a"), b"b").unwrap();
        std::fs::rename(top.join("sub"), dir.path().join("moved")).unwrap();
        std::os::unix::fs::symlink(outside.path(), top.join("sub")).unwrap();
        assert!(item.from.open().is_err(), "not reached through the link");
        // A file swapped in place is not the version that was hashed.
        std::fs::remove_file(top.join("sub")).unwrap();
        std::fs::create_dir(top.join("sub")).unwrap();
        std::fs::write(top.join("sub/a"), b"b").unwrap();
        let file = item.from.open().unwrap();
        assert!(item.identity.check(&file).is_err());
    }

    async fn prepare_upload_from(file: LocalFile) -> UploadItem {
        let name = FileName::parse("x").unwrap();
        prepare_uploads(vec![(file, name)]).await.unwrap().remove(0)
    }
}
