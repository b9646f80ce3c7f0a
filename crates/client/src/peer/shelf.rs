//! What a peer offers: the regular files under its shared folder (or a
//! picked subset), each with its identity and BLAKE3. The folder is walked
//! and every file hashed and served through its handle (see
//! [`ferry_io::beneath`]): no symlink is followed, inside or on the way.
//! Names are validated, and a hash cache in the state directory spares a
//! restart from rehashing unchanged files.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ferry_io::{FileIdentity, Folder};
use ferry_protocol::{ContentHash, FileName, Offered};

use crate::error::ClientError;
use crate::progress::{Progress, TransferEvent};

/// One offered file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShelfFile {
    /// Where it is on disk (inside the shared folder), for messages.
    pub path: PathBuf,
    /// The shared folder.
    pub root: PathBuf,
    /// The file's path inside `root`.
    pub relative: PathBuf,
    /// The version of the file that was hashed: the file served must be it.
    pub identity: FileIdentity,
    /// BLAKE3 when hashed.
    pub hash: ContentHash,
}

impl ShelfFile {
    /// Size when hashed.
    pub fn size(&self) -> u64 {
        self.identity.size
    }

    /// Opens the file positioned at `offset`, ready to send the rest:
    /// beneath the shared folder without following any symlink, and only if
    /// it is still the version that was hashed.
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
        let mut file = Folder::open(&self.root)?.open_file(&self.relative)?;
        self.identity.check(&file).map_err(|_| {
            std::io::Error::other(
                "the file changed since it was offered; not sent (the next rescan offers it anew)",
            )
        })?;
        file.seek(SeekFrom::Start(offset))?;
        Ok(file)
    }
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
            relative,
            name,
            identity,
        } in found
        {
            let name = name.to_string();
            if only.as_ref().is_some_and(|only| !only.contains(&name)) {
                continue;
            }
            let path = dir.join(&relative);
            if let Some(first) = fresh.get(&name) {
                // Two spellings of one name (NFC and NFD, say): one offer.
                let first: &ShelfFile = first;
                tracing::warn!(
                    "{} and {} are one name ('{name}'): only the first is offered; rename one",
                    first.path.display(),
                    path.display()
                );
                continue;
            }
            let known = self
                .get(&name)
                .filter(|f| f.identity == identity)
                .map(|f| f.hash)
                .or_else(|| cache.get(&path, &identity));
            let file = match known {
                Some(hash) => ShelfFile {
                    path,
                    root: dir.clone(),
                    relative,
                    identity,
                    hash,
                },
                // Changed while it was hashed: offered once it settles.
                // Gone or swapped meanwhile: not offered (the next scan
                // sees what is there).
                None => match hash_beneath(&dir, &relative).await {
                    Ok(Some((identity, hash))) => {
                        progress.event(TransferEvent::Bytes(identity.size));
                        let file = ShelfFile {
                            path,
                            root: dir.clone(),
                            relative,
                            identity,
                            hash,
                        };
                        cache.put(&file);
                        file
                    }
                    Ok(None) => continue,
                    Err(e) => {
                        tracing::debug!("not offered: {e}");
                        continue;
                    }
                },
            };
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
        size: file.size(),
        hash: file.hash,
    }
}

/// A regular file found under the shared folder.
struct Found {
    /// Its path inside the folder, as it is spelled on disk.
    relative: PathBuf,
    /// The name it is offered under (in NFC: see [`FileName::parse`]).
    name: FileName,
    identity: FileIdentity,
}

/// Every regular file under `dir`, walked through folder handles so that
/// no symlink is followed (a folder swapped for a link while the walk runs
/// is skipped, not entered); names that are not valid file names, and
/// Ferry's own partials, are skipped.
fn list_files(dir: &Path) -> Result<Vec<Found>, ClientError> {
    let root = Folder::open(dir).map_err(|e| ClientError::local("opening", dir, e))?;
    let mut found = Vec::new();
    // Folders waiting are kept as names, not handles: a wide tree must not
    // hold a descriptor per folder.
    let mut pending = vec![String::new()];
    while let Some(prefix) = pending.pop() {
        let folder = if prefix.is_empty() {
            None
        } else {
            match root.subfolder(Path::new(&prefix), false) {
                Ok(folder) => Some(folder),
                Err(_) => continue, // gone or swapped since it was listed
            }
        };
        let folder = folder.as_ref().unwrap_or(&root);
        let listed = folder
            .list()
            .map_err(|e| ClientError::local("listing", folder.path(), e))?;
        for entry in listed {
            let Some(file_name) = entry.name.to_str() else {
                continue;
            };
            if file_name.starts_with(".ferry-") {
                continue;
            }
            let name = if prefix.is_empty() {
                file_name.to_owned()
            } else {
                format!("{prefix}/{file_name}")
            };
            let Ok(parsed) = FileName::parse(&name) else {
                continue;
            };
            match entry.file {
                None => pending.push(name),
                Some(identity) => found.push(Found {
                    relative: name.split('/').collect(),
                    name: parsed,
                    identity,
                }),
            }
        }
    }
    // In path order: of two spellings of one name, the same one wins each scan.
    found.sort_by(|a, b| a.relative.cmp(&b.relative));
    Ok(found)
}

/// Hashes the file at `relative` beneath `root` (no symlink followed), and
/// returns the version it hashed; `None` if the file changed meanwhile.
async fn hash_beneath(
    root: &Path,
    relative: &Path,
) -> Result<Option<(FileIdentity, ContentHash)>, ClientError> {
    let (root, relative) = (root.to_owned(), relative.to_owned());
    let path = root.join(&relative);
    tokio::task::spawn_blocking(move || {
        let file = Folder::open(&root)?.open_file(&relative)?;
        let identity = FileIdentity::of(&file.metadata()?);
        let (_, hash) = crate::file_hash::hash_file(&file)?;
        Ok(identity.check(&file).is_ok().then_some((identity, hash)))
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|r| r)
    .map_err(|e| ClientError::local("hashing", path, e))
}

/// Hashes computed earlier, keyed by path, valid while the file's
/// identity (device, inode, size, modification and change times) is the
/// same.
#[derive(Debug, Default)]
pub struct HashCache {
    path: Option<PathBuf>,
    entries: Mutex<HashMap<PathBuf, (FileIdentity, ContentHash)>>,
    /// Something was hashed since the last save.
    changed: std::sync::atomic::AtomicBool,
}

/// The first field of every line of the cache file's current format (lines
/// of older formats are ignored: those files are hashed again).
const CACHE_FORMAT: &str = "v2";

impl HashCache {
    /// Loads the cache kept at `path` (missing or damaged lines are ignored).
    pub fn load(path: PathBuf) -> Self {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let entries = text.lines().filter_map(parse_cache_line).collect();
        Self {
            path: Some(path),
            entries: Mutex::new(entries),
            changed: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn get(&self, path: &Path, identity: &FileIdentity) -> Option<ContentHash> {
        let entries = self.entries.lock().expect("cache lock");
        let (known, hash) = entries.get(path)?;
        known.same_but_device(identity).then_some(*hash)
    }

    fn put(&self, file: &ShelfFile) {
        self.entries
            .lock()
            .expect("cache lock")
            .insert(file.path.clone(), (file.identity, file.hash));
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
            .iter()
            .filter_map(|(path, (id, hash))| {
                let p = path.to_str()?;
                Some(format!(
                    "{CACHE_FORMAT}\t{}\t{}\t{}\t{}\t{}\t{hash}\t{p}\n",
                    id.dev, id.ino, id.size, id.mtime, id.ctime
                ))
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

/// One line of the cache file: format, device, inode, size, mtime, ctime,
/// hash, path.
fn parse_cache_line(line: &str) -> Option<(PathBuf, (FileIdentity, ContentHash))> {
    let mut parts = line.splitn(8, '\t');
    if parts.next()? != CACHE_FORMAT {
        return None;
    }
    let identity = FileIdentity {
        dev: parts.next()?.parse().ok()?,
        ino: parts.next()?.parse().ok()?,
        size: parts.next()?.parse().ok()?,
        mtime: parts.next()?.parse().ok()?,
        ctime: parts.next()?.parse().ok()?,
    };
    let hash = ContentHash::from_hex(parts.next()?)?;
    Some((PathBuf::from(parts.next()?), (identity, hash)))
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
    async fn two_spellings_of_one_name_make_one_offer_always_the_same() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cafe\u{301}.txt"), b"decomposed").unwrap();
        std::fs::write(dir.path().join("caf\u{E9}.txt"), b"composed").unwrap();
        for _ in 0..3 {
            let shelf = Shelf::folder(dir.path().to_owned());
            let offered = shelf
                .rescan(&HashCache::default(), &())
                .await
                .unwrap()
                .offered;
            assert_eq!(offered.len(), 1);
            assert_eq!(offered[0].name, "caf\u{E9}.txt");
            assert_eq!(
                offered[0].hash,
                ContentHash::of(b"decomposed"),
                "path order decides"
            );
        }
    }

    #[tokio::test]
    async fn a_rewrite_that_keeps_size_and_mtime_is_still_noticed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.txt");
        std::fs::write(&path, b"first").unwrap();
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        let shelf = Shelf::folder(dir.path().to_owned());
        let cache = HashCache::default();
        shelf.rescan(&cache, &()).await.unwrap();
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&path, b"other").unwrap();
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(mtime)
            .unwrap();
        let changes = shelf.rescan(&cache, &()).await.unwrap();
        assert_eq!(changes.offered.len(), 1, "the change time gives it away");
        assert_eq!(changes.offered[0].hash, ContentHash::of(b"other"));
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
