//! The hub as a drive: davfs2 mounts `/dav/` through FUSE (what a Linux
//! desktop does), files are copied in and read back through the mount,
//! and the hub's API sees exactly those bytes; cadaver, the command-line
//! WebDAV client, lists and fetches. Both need root (the mount) and their
//! Debian packages, which `.ci/run` installs.

use std::path::{Path, PathBuf};

use crate::support::{Home, TestHub, ferry, pattern, run, within};

/// A plaintext hub and a token for `handle`.
async fn hub_and_token(handle: &str) -> (TestHub, String) {
    let hub = TestHub::start_with(|c| c.tls = false).await;
    let made = run(ferry(&Home::new(), &hub).args(["--name", handle, "token", "create"])).await;
    assert_eq!(made.code, 0, "{}", made.stderr);
    (hub, made.stdout.lines().last().unwrap().to_owned())
}

/// A davfs2 mount, unmounted (its cached writes sent) when dropped.
struct Mount {
    point: PathBuf,
}

impl Mount {
    /// Mounts `url` at `dir/mnt` as `user` with `token`.
    async fn new(dir: &Path, url: &str, user: &str, token: &str) -> Self {
        assert!(
            Path::new("/usr/sbin/mount.davfs").exists(),
            "davfs2 is not installed (apt-get install davfs2)"
        );
        let (point, cache, secrets, conf) = (
            dir.join("mnt"),
            dir.join("cache"),
            dir.join("secrets"),
            dir.join("davfs2.conf"),
        );
        std::fs::create_dir_all(&point).unwrap();
        std::fs::create_dir_all(&cache).unwrap();
        std::fs::write(&secrets, format!("{url} {user} {token}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        let mode = |path: &Path, mode| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        mode(&secrets, 0o600);
        // mount.davfs works on its cache as the davfs2 user.
        mode(dir, 0o755);
        mode(&cache, 0o777);
        // buf_size 64: this kernel's FUSE refuses davfs2's default.
        let settings = format!(
            "buf_size 64\nsecrets {}\ncache_dir {}\nask_auth 0\ndelay_upload 0\n",
            secrets.display(),
            cache.display()
        );
        std::fs::write(&conf, settings).unwrap();
        let options = format!("conf={}", conf.display());
        let mounted = run(tokio::process::Command::new("mount")
            .args(["-t", "davfs", url])
            .arg(&point)
            .args(["-o", &options]))
        .await;
        assert_eq!(mounted.code, 0, "mount: {}", mounted.stderr);
        Self { point }
    }

    /// Unmounts, waiting for davfs2 to send what it cached.
    async fn unmount(self) {
        let done = run(tokio::process::Command::new("umount").arg(&self.point)).await;
        assert_eq!(done.code, 0, "umount: {}", done.stderr);
        std::mem::forget(self);
    }
}

impl Drop for Mount {
    /// A test that failed with the mount up: detach it without waiting
    /// (davfs2 may be waiting for the hub, which runs on this thread).
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.point)
            .spawn();
    }
}

/// The body of `GET url` with `token`, or the status it failed with.
async fn fetch(url: &str, token: &str) -> Result<Vec<u8>, String> {
    let bearer = format!("Authorization: Bearer {token}");
    let got = within(
        60,
        tokio::process::Command::new("curl")
            .args(["-sS", "--fail", "-H", &bearer, url])
            .output(),
    )
    .await
    .unwrap();
    if got.status.success() {
        Ok(got.stdout)
    } else {
        Err(String::from_utf8_lossy(&got.stderr).into_owned())
    }
}

#[tokio::test]
async fn davfs2_mounts_the_hub_as_a_drive() {
    let (hub, token) = hub_and_token("alice").await;
    let dir = tempfile::tempdir().unwrap();
    let dav = format!("http://{}/dav/", hub.addr);
    let api = |name: &str| format!("http://{}/api/v1/files/{name}", hub.addr);
    let big = pattern(3_000_001, 7);

    // Copied in through the mount; on the hub once davfs2 has sent it.
    let mount = Mount::new(dir.path(), &dav, "alice", &token).await;
    // (tokio::fs: the hub answers on this test's thread.)
    tokio::fs::create_dir(mount.point.join("docs"))
        .await
        .unwrap();
    tokio::fs::write(mount.point.join("docs/big.bin"), &big)
        .await
        .unwrap();
    tokio::fs::write(mount.point.join("notes ü.txt"), b"from the drive")
        .await
        .unwrap();
    mount.unmount().await;
    assert_eq!(fetch(&api("docs/big.bin"), &token).await.unwrap(), big);
    assert_eq!(
        fetch(&api("notes%20%C3%BC.txt"), &token).await.unwrap(),
        b"from the drive"
    );

    // Mounted again: read back, renamed and deleted through the drive.
    let second = dir.path().join("again");
    std::fs::create_dir(&second).unwrap();
    let mount = Mount::new(&second, &dav, "alice", &token).await;
    let read = tokio::fs::read(mount.point.join("docs/big.bin")).await;
    assert_eq!(read.unwrap(), big);
    let (from, to) = (
        mount.point.join("notes ü.txt"),
        mount.point.join("docs/notes.txt"),
    );
    tokio::fs::rename(from, to).await.unwrap();
    let big_there = mount.point.join("docs/big.bin");
    tokio::fs::remove_file(big_there).await.unwrap();
    mount.unmount().await;
    assert_eq!(
        fetch(&api("docs/notes.txt"), &token).await.unwrap(),
        b"from the drive"
    );
    assert!(
        fetch(&api("docs/big.bin"), &token).await.is_err(),
        "deleted"
    );
    assert_eq!(hub.leftovers(), 0);
}

#[tokio::test]
async fn cadaver_lists_and_fetches() {
    let (hub, token) = hub_and_token("alice").await;
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.txt");
    std::fs::write(&report, b"quarterly numbers").unwrap();
    let put = run(tokio::process::Command::new("curl")
        .args(["-sS", "--fail", "-u", &format!("alice:{token}"), "-T"])
        .arg(&report)
        .arg(format!("http://{}/dav/report.txt", hub.addr)))
    .await;
    assert_eq!(put.code, 0, "{}", put.stderr);
    // cadaver reads its credentials from ~/.netrc and its commands from
    // stdin, and exits 0 whatever happened: its output says.
    std::fs::write(
        dir.path().join(".netrc"),
        format!("machine 127.0.0.1 login alice password {token}\n"),
    )
    .unwrap();
    let commands = dir.path().join("commands");
    std::fs::write(&commands, "ls\nget report.txt fetched.txt\nquit\n").unwrap();
    let host = hub.addr.to_string();
    let ran = within(
        60,
        tokio::process::Command::new("cadaver")
            .env("HOME", dir.path())
            .current_dir(dir.path())
            .arg(format!("http://{host}/dav/"))
            .stdin(std::fs::File::open(&commands).unwrap())
            .output(),
    )
    .await
    .unwrap();
    let said = String::from_utf8_lossy(&ran.stdout);
    assert!(said.contains("report.txt"), "{said}");
    assert_eq!(
        std::fs::read(dir.path().join("fetched.txt")).unwrap(),
        b"quarterly numbers",
        "{said}"
    );
}
