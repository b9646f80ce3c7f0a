//! The one way Ferry opens a user's files: beneath a [`Folder`] handle.
//!
//! A shared file served to a peer, a file uploaded from a folder, a
//! download's partial and the name it is finally given: each is reached
//! through a folder opened here, never through a path string put together
//! from names. The rules:
//!
//! 1. A folder is opened once, by the path the user gave (symlinks in that
//!    path are the user's own choice). Everything under it is reached from
//!    that handle.
//! 2. Below it no symlink is ever followed, neither in the last component
//!    nor in a folder on the way: `openat2(RESOLVE_BENEATH |
//!    RESOLVE_NO_SYMLINKS)` where the kernel has it, one `O_NOFOLLOW` step
//!    per component otherwise. `..`, `.` and absolute paths are refused.
//! 3. A file opened to read must be a regular file. It is opened
//!    non-blocking, so a file swapped for a FIFO cannot hang the open. A
//!    caller that hashed the file earlier compares its [`FileIdentity`]
//!    before a byte is sent.
//! 4. A file written is new (`O_CREAT | O_EXCL | O_NOFOLLOW`), or a partial
//!    of ours: a regular file with one link, owned by this user.
//! 5. A file is put in place by a rename within its folder's handle that
//!    refuses to replace anything (`RENAME_NOREPLACE`) unless asked to.
//!
//! Someone who can write to the folder can still rename a folder of ours
//! away; our handle then follows the folder itself, which is where the
//! bytes belonged, and never a link they planted.

use std::ffi::OsStr;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use rustix::fs::{AtFlags, FileType, Mode, OFlags, RenameFlags, ResolveFlags};
use rustix::io::Errno;

/// A folder held open; see the module's rules.
#[derive(Debug)]
pub struct Folder {
    fd: OwnedFd,
    /// Where it was when opened: for messages only.
    path: PathBuf,
}

/// What identifies one version of a file: a file swapped for another
/// (even one made to look the same) or rewritten since differs in one of
/// these. The change time cannot be set back by its owner, unlike the
/// modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, in nanoseconds since the epoch.
    pub mtime: i128,
    /// Status change time, in nanoseconds since the epoch.
    pub ctime: i128,
}

impl FileIdentity {
    /// The identity of the file `meta` describes.
    pub fn of(meta: &Metadata) -> Self {
        use std::os::unix::fs::MetadataExt;
        Self {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.len(),
            mtime: nanos(meta.mtime(), meta.mtime_nsec()),
            ctime: nanos(meta.ctime(), meta.ctime_nsec()),
        }
    }

    #[allow(clippy::useless_conversion)] // the field types differ between targets
    fn of_stat(stat: &rustix::fs::Stat) -> Self {
        let nsec = |n| i64::try_from(n).unwrap_or(0);
        Self {
            dev: u64::from(stat.st_dev),
            ino: u64::from(stat.st_ino),
            size: u64::try_from(stat.st_size).unwrap_or(0),
            mtime: nanos(i64::from(stat.st_mtime), nsec(stat.st_mtime_nsec)),
            ctime: nanos(i64::from(stat.st_ctime), nsec(stat.st_ctime_nsec)),
        }
    }

    /// Whether `other` is this version of the file, possibly seen on
    /// another boot: device numbers of some filesystems (btrfs, NFS,
    /// removable disks) change between boots, so a saved hash is matched
    /// without the device.
    pub fn same_but_device(&self, other: &Self) -> bool {
        Self { dev: 0, ..*self } == Self { dev: 0, ..*other }
    }

    /// Fails unless `file` is still this version of the file.
    pub fn check(&self, file: &File) -> io::Result<()> {
        if Self::of(&file.metadata()?) == *self {
            return Ok(());
        }
        Err(io::Error::other(
            "the file changed or was replaced since it was hashed; nothing of it was sent",
        ))
    }
}

/// Seconds and nanoseconds as nanoseconds since the epoch.
fn nanos(secs: i64, nanos: i64) -> i128 {
    i128::from(secs) * 1_000_000_000 + i128::from(nanos)
}

/// `file` if it is a regular file.
fn regular(file: File) -> io::Result<File> {
    if file.metadata()?.file_type().is_file() {
        return Ok(file);
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        "not a regular file",
    ))
}

/// A regular file or folder found by [`Folder::list`]; anything else
/// (symlinks included) is left out.
#[derive(Debug)]
pub struct Listed {
    /// Its name in the folder.
    pub name: std::ffi::OsString,
    /// A regular file's identity when listed; `None` for a folder.
    pub file: Option<FileIdentity>,
}

impl Folder {
    /// Opens the folder at `path` (following symlinks: the user named it).
    pub fn open(path: &Path) -> io::Result<Self> {
        let flags = OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY;
        let fd = rustix::fs::open(path, flags, Mode::empty())?;
        Ok(Self {
            fd,
            path: path.to_owned(),
        })
    }

    /// Where the folder was when opened, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The folder at `relative` beneath this one, each step opened without
    /// following a symlink; with `create`, missing folders are made.
    pub fn subfolder(&self, relative: &Path, create: bool) -> io::Result<Self> {
        let mut fd = self.fd.try_clone()?;
        for part in plain_components(relative)? {
            fd = match rustix::fs::openat(&fd, part, dir_flags(), Mode::empty()) {
                Err(Errno::NOENT) if create => {
                    match rustix::fs::mkdirat(&fd, part, Mode::from_raw_mode(0o777)) {
                        Ok(()) | Err(Errno::EXIST) => {}
                        Err(e) => return Err(e.into()),
                    }
                    rustix::fs::openat(&fd, part, dir_flags(), Mode::empty())
                }
                other => other,
            }
            .map_err(|e| not_a_folder(e, &self.path.join(relative)))?;
        }
        Ok(Self {
            fd,
            path: self.path.join(relative),
        })
    }

    /// Opens the regular file at `relative` beneath this folder for
    /// reading, following no symlink on the way.
    pub fn open_file(&self, relative: &Path) -> io::Result<File> {
        let flags =
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS;
        // `..` is refused on both ways, though openat2 would stay beneath.
        plain_components(relative)?;
        let file = match rustix::fs::openat2(&self.fd, relative, flags, Mode::empty(), resolve) {
            Ok(fd) => File::from(fd),
            // No openat2 (old kernels), or a sandbox that forbids it: the
            // walk is as strict, one component at a time.
            Err(Errno::NOSYS | Errno::PERM | Errno::ACCESS | Errno::INVAL | Errno::TOOBIG) => {
                self.open_file_by_steps(relative, flags)?
            }
            Err(e) => return Err(e.into()),
        };
        regular(file)
    }

    fn open_file_by_steps(&self, relative: &Path, flags: OFlags) -> io::Result<File> {
        let parts = plain_components(relative)?;
        let Some((last, folders)) = parts.split_last() else {
            return Err(not_plain());
        };
        let mut fd = self.fd.try_clone()?;
        for part in folders {
            fd = rustix::fs::openat(&fd, *part, dir_flags(), Mode::empty())?;
        }
        Ok(File::from(rustix::fs::openat(
            &fd,
            *last,
            flags,
            Mode::empty(),
        )?))
    }

    /// Opens the partial file `name` in this folder for reading and
    /// writing, creating it (`O_EXCL`, the umask deciding its mode) if
    /// absent. An existing one must be ours: never followed if it is a
    /// symlink, and refused unless it is a regular file with one link that
    /// this user owns. Partials sit at predictable names (so that a download
    /// resumes); whoever else can write to the folder must not be able to
    /// point one at another file, or have our bytes land in theirs.
    pub fn open_partial(&self, name: &OsStr) -> io::Result<File> {
        use std::os::unix::fs::MetadataExt;
        let name = single_name(name)?;
        let flags = OFlags::RDWR | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NOCTTY;
        let mode = Mode::from_raw_mode(0o666);
        // Two steps: a new partial is ours by O_EXCL; only an existing one
        // needs the checks below (and is never truncated before them).
        match rustix::fs::openat(&self.fd, name, flags | OFlags::CREATE | OFlags::EXCL, mode) {
            Ok(fd) => return Ok(File::from(fd)),
            Err(Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        let path = self.path.join(name);
        let not_ours = |why: String| {
            io::Error::new(
                io::ErrorKind::PermissionDenied,
                format!(
                    "{} is not a partial download of ours ({why}): not writing to it; \
                     remove it to download again",
                    path.display()
                ),
            )
        };
        let file = match rustix::fs::openat(&self.fd, name, flags | OFlags::NONBLOCK, mode) {
            Ok(fd) => File::from(fd),
            Err(Errno::LOOP) => return Err(not_ours("a symbolic link".into())),
            Err(e) => return Err(e.into()),
        };
        let meta = file.metadata()?;
        let me = rustix::process::geteuid().as_raw();
        if !meta.file_type().is_file() {
            return Err(not_ours("not a regular file".into()));
        }
        if meta.nlink() != 1 {
            return Err(not_ours(format!("{} hard links", meta.nlink())));
        }
        if meta.uid() != me {
            return Err(not_ours(format!("owned by uid {}, not {me}", meta.uid())));
        }
        Ok(file)
    }

    /// The size of the regular file `name` in this folder, if there is one
    /// (a symlink there is not followed and counts as none).
    pub fn file_len(&self, name: &OsStr) -> Option<u64> {
        let stat = rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
        (FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile)
            .then(|| u64::try_from(stat.st_size).unwrap_or(0))
    }

    /// Whether anything (even a dangling symlink) is called `name` here.
    pub fn occupied(&self, name: &OsStr) -> bool {
        rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW).is_ok()
    }

    /// Gives `from` the name `to`, both in this folder. Unless `replace`,
    /// only if `to` is free: one rename that refuses to replace, or where
    /// the filesystem lacks that, a hard link (which cannot replace either)
    /// and an unlink. `Ok(false)` means `to` was taken.
    pub fn rename(&self, from: &OsStr, to: &OsStr, replace: bool) -> io::Result<bool> {
        let (from, to) = (single_name(from)?, single_name(to)?);
        if replace {
            rustix::fs::renameat(&self.fd, from, &self.fd, to)?;
            return Ok(true);
        }
        match rustix::fs::renameat_with(&self.fd, from, &self.fd, to, RenameFlags::NOREPLACE) {
            Ok(()) => return Ok(true),
            Err(Errno::EXIST) => return Ok(false),
            // The filesystem cannot refuse to replace: fall back.
            Err(Errno::INVAL | Errno::NOSYS | Errno::OPNOTSUPP) => {}
            Err(e) => return Err(e.into()),
        }
        match rustix::fs::linkat(&self.fd, from, &self.fd, to, AtFlags::empty()) {
            Ok(()) => {
                // Placed; a partial name left behind has two links, so it
                // is never resumed into.
                let _ = self.remove(from);
                Ok(true)
            }
            Err(Errno::EXIST) => Ok(false),
            Err(Errno::PERM | Errno::OPNOTSUPP) if !self.occupied(to) => {
                // Filesystems without hard links: check-then-rename is the best left.
                rustix::fs::renameat(&self.fd, from, &self.fd, to)?;
                Ok(true)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the file `name` from this folder.
    pub fn remove(&self, name: &OsStr) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(
            &self.fd,
            single_name(name)?,
            AtFlags::empty(),
        )?)
    }

    /// Makes the folder's entries durable.
    pub fn sync(&self) -> io::Result<()> {
        Ok(rustix::fs::fsync(&self.fd)?)
    }

    /// Flushes the whole filesystem holding this folder (see
    /// [`crate::disk::sync_filesystem`]).
    pub fn sync_filesystem(&self) -> io::Result<()> {
        Ok(rustix::fs::syncfs(&self.fd)?)
    }

    /// The device the folder is on.
    pub fn device(&self) -> io::Result<u64> {
        Ok(rustix::fs::fstat(&self.fd)?.st_dev)
    }

    /// The regular files and folders in this folder, in no order; symlinks
    /// and other kinds are left out (each is looked at without following
    /// it). An entry that vanishes meanwhile is left out too.
    pub fn list(&self) -> io::Result<Vec<Listed>> {
        let mut listed = Vec::new();
        for entry in rustix::fs::Dir::read_from(&self.fd)? {
            let entry = entry?;
            let name = OsStr::from_bytes(entry.file_name().to_bytes());
            if name == "." || name == ".." {
                continue;
            }
            let Ok(stat) =
                rustix::fs::statat(&self.fd, entry.file_name(), AtFlags::SYMLINK_NOFOLLOW)
            else {
                continue;
            };
            let file = match FileType::from_raw_mode(stat.st_mode) {
                FileType::RegularFile => Some(FileIdentity::of_stat(&stat)),
                FileType::Directory => None,
                _ => continue,
            };
            listed.push(Listed {
                name: name.to_owned(),
                file,
            });
        }
        Ok(listed)
    }
}

impl AsFd for Folder {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Opens the regular file `path` for reading, as the user named it (a
/// file given on the command line).
pub fn open_named(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let flags = OFlags::NONBLOCK | OFlags::NOCTTY;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(i32::try_from(flags.bits()).unwrap_or(0))
        .open(path)?;
    regular(file)
}

fn dir_flags() -> OFlags {
    OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::RDONLY
}

/// `relative`'s components, refusing anything but plain names.
fn plain_components(relative: &Path) -> io::Result<Vec<&OsStr>> {
    relative
        .components()
        .map(|c| match c {
            Component::Normal(part) => Ok(part),
            _ => Err(not_plain()),
        })
        .collect()
}

/// `name` if it is one plain name (no folder in it).
fn single_name(name: &OsStr) -> io::Result<&OsStr> {
    match plain_components(Path::new(name))?.as_slice() {
        [one] => Ok(one),
        _ => Err(not_plain()),
    }
}

fn not_plain() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "not a plain relative path")
}

/// What a failed step into a folder means to the user.
fn not_a_folder(e: Errno, path: &Path) -> io::Error {
    match e {
        Errno::LOOP | Errno::NOTDIR => io::Error::other(format!(
            "{} exists and is not a folder (symlinks are not followed)",
            path.display()
        )),
        e => e.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn nothing_is_reached_through_a_symlink() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("key"), b"secret").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/ok"), b"fine").unwrap();
        symlink(outside.path().join("key"), dir.path().join("file-link")).unwrap();
        symlink(outside.path(), dir.path().join("dir-link")).unwrap();
        let folder = Folder::open(dir.path()).unwrap();
        assert!(folder.open_file(Path::new("sub/ok")).is_ok());
        assert!(folder.open_file(Path::new("file-link")).is_err());
        assert!(folder.open_file(Path::new("dir-link/key")).is_err());
        assert!(folder.open_file(Path::new("../x")).is_err());
        assert!(folder.open_file(Path::new("sub")).is_err(), "not a file");
        assert!(folder.subfolder(Path::new("dir-link"), true).is_err());
        let made = folder.subfolder(Path::new("a/b"), true).unwrap();
        assert!(dir.path().join("a/b").is_dir());
        assert!(made.open_partial(OsStr::new("p")).is_ok());
        assert!(dir.path().join("a/b/p").is_file());
        let walked =
            folder.open_file_by_steps(Path::new("dir-link/key"), OFlags::RDONLY | OFlags::NOFOLLOW);
        assert!(walked.is_err(), "the fallback walk is as strict");
        let mut names: Vec<_> = folder.list().unwrap().into_iter().map(|l| l.name).collect();
        names.sort();
        assert_eq!(names, ["a", "sub"], "links are not listed");
        // The folder the user names may itself be reached through a link.
        symlink(dir.path(), outside.path().join("named")).unwrap();
        let named = Folder::open(&outside.path().join("named")).unwrap();
        assert!(named.open_file(Path::new("sub/ok")).is_ok());
        assert!(named.open_file(Path::new("sub/../sub/ok")).is_err());
    }

    #[test]
    fn a_partial_is_never_opened_through_a_link_and_renames_never_replace() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        symlink(&victim, dir.path().join(".p")).unwrap();
        let folder = Folder::open(dir.path()).unwrap();
        let err = folder.open_partial(OsStr::new(".p")).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        std::fs::hard_link(&victim, dir.path().join(".h")).unwrap();
        let err = folder.open_partial(OsStr::new(".h")).unwrap_err();
        assert!(err.to_string().contains("hard links"), "{err}");
        std::fs::write(dir.path().join(".new"), b"new").unwrap();
        assert!(
            !folder
                .rename(OsStr::new(".new"), OsStr::new("victim"), false)
                .unwrap()
        );
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert!(
            folder
                .rename(OsStr::new(".new"), OsStr::new("v2"), false)
                .unwrap()
        );
        assert!(
            folder
                .rename(OsStr::new("a/b"), OsStr::new("c"), false)
                .is_err()
        );
        assert_eq!(folder.file_len(OsStr::new("v2")), Some(3));
        assert_eq!(folder.file_len(OsStr::new(".p")), None, "a link is no file");
    }

    #[test]
    fn an_identity_notices_a_swap_and_a_rewrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"one").unwrap();
        let file = File::open(&path).unwrap();
        let identity = FileIdentity::of(&file.metadata().unwrap());
        identity.check(&file).unwrap();
        std::fs::write(dir.path().join("g"), b"two").unwrap();
        std::fs::rename(dir.path().join("g"), &path).unwrap();
        assert!(identity.check(&File::open(&path).unwrap()).is_err());
    }
}
