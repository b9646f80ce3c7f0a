//! What a peer offers: the regular files under its shared folder (or a
//! picked subset), each with size, mtime and BLAKE3. Symlinks are never
//! followed, names are validated, and a hash cache in the state directory
//! spares a restart from rehashing unchanged files.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use ferry_protocol::{ContentHash, FileName, Offered};

use crate::error::ClientError;
use crate::progress::{Progress, TransferEvent};

/// One offered file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShelfFile {
    /// Where it is on disk (inside the shared folder).
    pub path: PathBuf,
    /// The shared folder.
    pub root: PathBuf,
    /// The file's path inside `root`.
    pub relative: PathBuf,
    /// Device and inode when scanned: the file served must be this one.
    pub dev: u64,
    /// See `dev`.
    pub ino: u64,
    /// Size when hashed.
    pub size: u64,
    /// Modification time (ns) when hashed.
    pub mtime: u128,
    /// BLAKE3 when hashed.
    pub hash: ContentHash,
}

impl ShelfFile {
    /// Opens the file positioned at `offset`, ready to send the rest:
    /// beneath the shared folder without following any symlink, and only if
    /// it is still the file that was scanned (device, inode, size, mtime).
    pub async fn open_at(&self, offset: u64) -> Result<std::fs::File, ClientError> {
        let file = self.clone();
        tokio::task::spawn_blocking(move || file.open_checked(offset))
            .await
            .map_err(std::io::Error::other)
            .and_then(|r| r)
            .map_err(|e| ClientError::local("opening", &self.path, e))
    }

    fn open_checked(&self, offset: u64) -> std::io::Result<std::fs::File> {
        use std::io::{Seek, SeekFrom};
        use std::os::unix::fs::MetadataExt;
        let mut file = ferry_io::disk::open_beneath(&self.root, &self.relative)?;
        let meta = file.metadata()?;
        let same = meta.file_type().is_file()
            && meta.dev() == self.dev
            && meta.ino() == self.ino
            && meta.len() == self.size
            && mtime_ns(&meta) == self.mtime;
        if !same {
            return Err(std::io::Error::other(
                "the file changed since it was offered; not sent (the next rescan offers it anew)",
            ));
        }
        file.seek(SeekFrom::Start(offset))?;
        Ok(file)
    }
}

/// A file's modification time in nanoseconds since the epoch.
fn mtime_ns(meta: &std::fs::Metadata) -> u128 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

/// The changes a rescan found.
#[derive(Debug, Default)]
pub struct ShelfChanges {
    /// New or changed files.
    pub offered: Vec<Offered>,
    /// Names no longer there.
    pub withdrawn: Vec<String>,
}

#[derive(Debug)]
struct State {
    dir: Option<PathBuf>,
    only: Option<BTreeSet<String>>,
    files: BTreeMap<String, ShelfFile>,
}

/// The offered files, shared between the agent and the peer server.
#[derive(Debug, Clone)]
pub struct Shelf(Arc<Mutex<State>>);

impl Shelf {
    /// Offers every file under `dir` (`ferry share DIR`).
    pub fn folder(dir: PathBuf) -> Self {
        Self(Arc::new(Mutex::new(State {
            dir: Some(dir),
            only: None,
            files: BTreeMap::new(),
        })))
    }

    /// Offers nothing until a folder is set and names are picked (the
    /// shell's `setdir` and `offer`).
    pub fn picked() -> Self {
        Self(Arc::new(Mutex::new(State {
            dir: None,
            only: Some(BTreeSet::new()),
            files: BTreeMap::new(),
        })))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().expect("shelf lock")
    }

    /// Sets the shared folder.
    pub fn set_dir(&self, dir: PathBuf) {
        let mut state = self.lock();
        state.dir = Some(dir);
        state.files.clear();
    }

    /// The shared folder, once set.
    pub fn dir(&self) -> Option<PathBuf> {
        self.lock().dir.clone()
    }

    /// Adds names to a picked shelf (validated relative names).
    pub fn pick(&self, names: impl IntoIterator<Item = String>) {
        let mut state = self.lock();
        state.only.get_or_insert_with(BTreeSet::new).extend(names);
    }

    /// The offered file called `name`.
    pub fn get(&self, name: &str) -> Option<ShelfFile> {
        self.lock().files.get(name).cloned()
    }

    /// Everything offered now.
    pub fn offers(&self) -> Vec<Offered> {
        self.lock()
            .files
            .iter()
            .map(|(name, f)| offered(name, f))
            .collect()
    }

    /// Number of files offered.
    pub fn len(&self) -> usize {
        self.lock().files.len()
    }

    /// Whether nothing is offered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Looks at the folder again; hashes what is new or changed.
    pub async fn rescan(
        &self,
        cache: &HashCache,
        progress: &dyn Progress,
    ) -> Result<ShelfChanges, ClientError> {
        let (dir, only) = {
            let state = self.lock();
            (state.dir.clone(), state.only.clone())
        };
        let Some(dir) = dir else {
            return Ok(ShelfChanges::default());
        };
        let found = tokio::task::spawn_blocking({
            let dir = dir.clone();
            move || list_files(&dir)
        })
        .await
        .map_err(|e| ClientError::local("scanning", &dir, std::io::Error::other(e)))??;
        let mut fresh = BTreeMap::new();
        for Found {
            name,
            path,
            size,
            mtime,
            dev,
            ino,
        } in found
        {
            if only.as_ref().is_some_and(|only| !only.contains(&name)) {
                continue;
            }
            let known = self
                .get(&name)
                .filter(|f| f.size == size && f.mtime == mtime);
            let mut file = match known.or_else(|| cache.get(&path, size, mtime)) {
                Some(file) => file,
                None => {
                    let hash = hash_file(&path).await?;
                    progress.event(TransferEvent::Bytes(size));
                    let file = ShelfFile {
                        path,
                        root: PathBuf::new(),
                        relative: PathBuf::new(),
                        dev,
                        ino,
                        size,
                        mtime,
                        hash,
                    };
                    cache.put(&file);
                    file
                }
            };
            file.root.clone_from(&dir);
            file.relative = FileName::parse(&name)
                .map_err(|e| ClientError::local("naming", &file.path, std::io::Error::other(e)))?
                .to_relative_path();
            (file.dev, file.ino) = (dev, ino);
            fresh.insert(name, file);
        }
        let mut state = self.lock();
        let changes = ShelfChanges {
            offered: fresh
                .iter()
                .filter(|(n, f)| state.files.get(*n) != Some(*f))
                .map(|(n, f)| offered(n, f))
                .collect(),
            withdrawn: state
                .files
                .keys()
                .filter(|n| !fresh.contains_key(*n))
                .cloned()
                .collect(),
        };
        state.files = fresh;
        Ok(changes)
    }
}

fn offered(name: &str, file: &ShelfFile) -> Offered {
    Offered {
        name: name.to_owned(),
        size: file.size,
        hash: file.hash,
    }
}

/// A regular file found under the shared folder.
struct Found {
    name: String,
    path: PathBuf,
    size: u64,
    mtime: u128,
    dev: u64,
    ino: u64,
}

/// Every regular file under `dir`, symlinks not followed, names that are
/// not valid file names skipped.
fn list_files(dir: &Path) -> Result<Vec<Found>, ClientError> {
    use std::os::unix::fs::MetadataExt;
    let mut found = Vec::new();
    let mut pending = vec![(dir.to_owned(), String::new())];
    while let Some((folder, prefix)) = pending.pop() {
        let entries =
            std::fs::read_dir(&folder).map_err(|e| ClientError::local("listing", &folder, e))?;
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let Some(file_name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if file_name.starts_with(".ferry-") {
                continue;
            }
            let name = if prefix.is_empty() {
                file_name
            } else {
                format!("{prefix}/{file_name}")
            };
            if FileName::parse(&name).is_err() {
                continue;
            }
            if kind.is_dir() {
                pending.push((entry.path(), name));
            } else if kind.is_file() {
                let Ok(meta) = entry.metadata() else { continue };
                found.push(Found {
                    name,
                    path: entry.path(),
                    size: meta.len(),
                    mtime: mtime_ns(&meta),
                    dev: meta.dev(),
                    ino: meta.ino(),
                });
            }
        }
    }
    Ok(found)
}

async fn hash_file(path: &Path) -> Result<ContentHash, ClientError> {
    let owned = path.to_owned();
    tokio::task::spawn_blocking(move || {
        crate::file_hash::hash_file(&std::fs::File::open(&owned)?).map(|(_, hash)| hash)
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|r| r)
    .map_err(|e| ClientError::local("hashing", path, e))
}

/// Hashes computed earlier, keyed by path, valid while size and mtime match.
#[derive(Debug, Default)]
pub struct HashCache {
    path: Option<PathBuf>,
    entries: Mutex<HashMap<PathBuf, ShelfFile>>,
    /// Something was hashed since the last save.
    changed: std::sync::atomic::AtomicBool,
}

impl HashCache {
    /// Loads the cache kept at `path` (missing or damaged lines are ignored).
    pub fn load(path: PathBuf) -> Self {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let entries = text
            .lines()
            .filter_map(|line| {
                let mut parts = line.splitn(4, '\t');
                let mtime = parts.next()?.parse().ok()?;
                let size = parts.next()?.parse().ok()?;
                let hash = ContentHash::from_hex(parts.next()?)?;
                let file_path = PathBuf::from(parts.next()?);
                Some((
                    file_path.clone(),
                    ShelfFile {
                        path: file_path,
                        // Filled in by the scan that finds the file.
                        root: PathBuf::new(),
                        relative: PathBuf::new(),
                        dev: 0,
                        ino: 0,
                        size,
                        mtime,
                        hash,
                    },
                ))
            })
            .collect();
        Self {
            path: Some(path),
            entries: Mutex::new(entries),
            changed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn get(&self, path: &Path, size: u64, mtime: u128) -> Option<ShelfFile> {
        let entries = self.entries.lock().expect("cache lock");
        entries
            .get(path)
            .filter(|f| f.size == size && f.mtime == mtime)
            .cloned()
    }

    fn put(&self, file: &ShelfFile) {
        self.entries
            .lock()
            .expect("cache lock")
            .insert(file.path.clone(), file.clone());
        self.changed
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Writes the cache back (best effort: it only saves time).
    /// Does nothing if nothing was hashed since the last save: the sharing
    /// agent calls this after every rescan.
    pub fn save(&self) {
        let Some(path) = &self.path else { return };
        if !self
            .changed
            .swap(false, std::sync::atomic::Ordering::Relaxed)
        {
            return;
        }
        let entries = self.entries.lock().expect("cache lock");
        let text: String = entries
            .values()
            .filter_map(|f| {
                f.path
                    .to_str()
                    .map(|p| format!("{}\t{}\t{}\t{p}\n", f.mtime, f.size, f.hash))
            })
            .collect();
        let temp = path.with_extension("tmp");
        if std::fs::write(&temp, text)
            .and_then(|()| std::fs::rename(&temp, path))
            .is_err()
        {
            tracing::debug!("could not save the hash cache");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rescans_report_new_changed_and_vanished_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("a.txt"), b"a").unwrap();
        std::fs::write(dir.path().join("sub/b.txt"), b"b").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("link")).unwrap();
        let shelf = Shelf::folder(dir.path().to_owned());
        let cache = HashCache::default();
        let first = shelf.rescan(&cache, &()).await.unwrap();
        let mut names: Vec<_> = first.offered.iter().map(|o| o.name.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["a.txt", "sub/b.txt"], "symlinks are not offered");
        assert!(shelf.rescan(&cache, &()).await.unwrap().offered.is_empty());
        std::fs::write(dir.path().join("a.txt"), b"changed").unwrap();
        std::fs::remove_file(dir.path().join("sub/b.txt")).unwrap();
        let changes = shelf.rescan(&cache, &()).await.unwrap();
        assert_eq!(changes.offered.len(), 1);
        assert_eq!(changes.withdrawn, ["sub/b.txt"]);
    }

    #[tokio::test]
    async fn the_cache_spares_a_restart_from_rehashing() {
        let dir = tempfile::tempdir().unwrap();
        let state = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.txt"), b"a").unwrap();
        let cache = HashCache::load(state.path().join("cache"));
        Shelf::folder(dir.path().to_owned())
            .rescan(&cache, &())
            .await
            .unwrap();
        cache.save();
        std::fs::remove_file(state.path().join("cache")).unwrap();
        cache.save();
        assert!(
            !state.path().join("cache").exists(),
            "nothing new, nothing written"
        );
        Shelf::folder(dir.path().to_owned())
            .rescan(&cache, &())
            .await
            .unwrap();
        std::fs::write(dir.path().join("b.txt"), b"b").unwrap();
        Shelf::folder(dir.path().to_owned())
            .rescan(&cache, &())
            .await
            .unwrap();
        cache.save();
        let reloaded = HashCache::load(state.path().join("cache"));
        let counted = Counter::default();
        Shelf::folder(dir.path().to_owned())
            .rescan(&reloaded, &counted)
            .await
            .unwrap();
        assert_eq!(*counted.0.lock().unwrap(), 0, "nothing was hashed again");
    }

    #[derive(Default)]
    struct Counter(Mutex<u64>);

    impl Progress for Counter {
        fn event(&self, event: TransferEvent<'_>) {
            if let TransferEvent::Bytes(n) = event {
                *self.0.lock().unwrap() += n.max(1);
            }
        }
    }
}
