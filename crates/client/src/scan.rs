//! Finding and hashing the local files an upload will send.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use ferry_protocol::FileName;

use crate::error::ClientError;
use crate::file_hash::hash_file;
use crate::transfer::UploadItem;

/// Expands files and folders into `(path, name)` pairs: a file is named by
/// its file name, a folder's files by their path from the folder's parent
/// (`photos/2024/a.jpg`). Only regular files are taken; symlinks are skipped.
pub fn collect_uploads(paths: &[PathBuf]) -> Result<Vec<(PathBuf, FileName)>, ClientError> {
    let mut found = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| ClientError::local("reading", path, e))?;
        let base = file_name_of(path)?;
        if meta.is_dir() {
            walk(path, &base, &mut found)?;
        } else {
            found.push((path.clone(), parse_name(&base)?));
        }
    }
    Ok(found)
}

fn walk(dir: &Path, prefix: &str, found: &mut Vec<(PathBuf, FileName)>) -> Result<(), ClientError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| ClientError::local("listing", dir, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| ClientError::local("listing", dir, e))?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let kind = entry
            .file_type()
            .map_err(|e| ClientError::local("reading", &path, e))?;
        // The entry already knows its name; no need to resolve the path.
        let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else {
            let reason = ferry_protocol::NameError::NotUtf8;
            return Err(ClientError::InvalidName {
                name: path.display().to_string(),
                reason,
            });
        };
        let name = format!("{prefix}/{file_name}");
        if kind.is_dir() {
            walk(&path, &name, found)?;
        } else if kind.is_file() {
            found.push((path, parse_name(&name)?));
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
    let mut items = prepare_uploads(vec![(path, name)]).await?;
    Ok(items.pop().expect("one item in, one out"))
}

/// Hashes local files for upload, in order, on every core: each thread
/// takes the next unhashed file, so a folder of small files goes as fast
/// as one big file (which is itself hashed on every core).
pub async fn prepare_uploads(
    files: Vec<(PathBuf, FileName)>,
) -> Result<Vec<UploadItem>, ClientError> {
    tokio::task::spawn_blocking(move || {
        let next = AtomicUsize::new(0);
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        let hash_some = || {
            let mut done = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some((path, name)) = files.get(index) else {
                    return done;
                };
                done.push((index, prepare(path.clone(), name.clone())));
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
    .map_err(|e| ClientError::local("hashing", "", std::io::Error::other(e)))?
}

fn prepare(path: PathBuf, name: FileName) -> Result<UploadItem, ClientError> {
    let file = std::fs::File::open(&path).map_err(|e| ClientError::local("opening", &path, e))?;
    let (size, hash) = hash_file(&file).map_err(|e| ClientError::local("hashing", &path, e))?;
    Ok(UploadItem {
        path,
        name,
        size,
        hash,
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
            files.push((path, FileName::parse(&format!("f{i}")).unwrap()));
        }
        let items = prepare_uploads(files.clone()).await.unwrap();
        for (i, item) in items.iter().enumerate() {
            assert_eq!(item.name.as_str(), format!("f{i}"));
            assert_eq!(item.hash, ContentHash::of(&vec![i as u8; i * 100]));
        }
        files.push((dir.path().join("gone"), FileName::parse("gone").unwrap()));
        assert!(prepare_uploads(files).await.is_err());
    }
}
