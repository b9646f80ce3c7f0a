//! A hub whose disk fills: a clear refusal before any byte flows, nothing
//! listed, the space given back at once, other users unaffected. The data
//! directory is a small tmpfs (the tests run as root, as CI does).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Home, TestHub, ferry, pattern, run, within};

/// A tmpfs mounted for one test, unmounted when dropped.
struct SmallDisk {
    path: PathBuf,
}

impl SmallDisk {
    fn mount(path: &Path, megabytes: u32) -> Self {
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(path)
            .status()
            .expect("mount runs");
        assert!(status.success(), "mounting a tmpfs needs root, as CI has");
        Self {
            path: path.to_owned(),
        }
    }

    fn free_bytes(&self) -> u64 {
        let stats = rustix::fs::statvfs(&self.path).unwrap();
        stats.f_bavail * stats.f_frsize
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

#[tokio::test]
async fn a_full_disk_refuses_at_once_lists_nothing_and_keeps_serving_others() {
    within(120, async {
        let dir = tempfile::tempdir().unwrap();
        let disk = SmallDisk::mount(&dir.path().join("data"), 64);
        let hub = TestHub::start_in(dir, |c| c.min_free_space = 8 << 20).await;
        let work = tempfile::tempdir().unwrap();
        let w = work.path();
        std::fs::write(w.join("big.bin"), pattern(100_000_000, 1)).unwrap();
        std::fs::write(w.join("mid.bin"), pattern(30_000_000, 2)).unwrap();
        std::fs::write(w.join("rest.bin"), pattern(32_000_000, 3)).unwrap();
        std::fs::write(w.join("small.txt"), b"still fits").unwrap();
        let (alice, bob) = (Home::new(), Home::new());
        let free_before = disk.free_bytes();

        let put = run(ferry(&alice, &hub)
            .current_dir(w)
            .args(["--name", "alice", "put", "big.bin"]))
        .await;
        assert_eq!(put.code, 9, "{}", put.stderr);
        assert!(put.stderr.contains("storage is full"), "{}", put.stderr);
        assert_eq!(hub.leftovers(), 0, "no partial is kept");
        let given_back = disk.free_bytes();
        assert!(
            given_back + (1 << 20) >= free_before,
            "{given_back} of {free_before}"
        );

        // Another user's upload that fits goes through, and so does a small one.
        let put = run(ferry(&bob, &hub).current_dir(w).args([
            "--name",
            "bob",
            "put",
            "mid.bin",
            "small.txt",
        ]))
        .await;
        assert_eq!(put.code, 0, "{}", put.stderr);

        // What would eat into the reserve is refused.
        let put = run(ferry(&alice, &hub)
            .current_dir(w)
            .args(["--name", "alice", "put", "rest.bin"]))
        .await;
        assert_eq!(put.code, 9, "{}", put.stderr);
        assert_eq!(hub.leftovers(), 0);

        let ls = run(ferry(&bob, &hub).args(["--name", "bob", "--json", "ls"])).await;
        assert_eq!(ls.code, 0, "{}", ls.stderr);
        let names = crate::support::listed_names(&ls.stdout);
        assert_eq!(names, ["mid.bin", "small.txt"]);
        let dir = hub.stop().await;
        drop(disk);
        drop(dir);
    })
    .await;
}

#[tokio::test]
async fn an_abandoned_partial_upload_is_swept_while_the_hub_runs() {
    within(60, async {
        let hub = crate::support::TestHub::start_with(|c| {
            c.tls = false;
            c.partial_ttl = std::time::Duration::from_secs(2);
        })
        .await;
        let mut raw = crate::support::Raw::logged_in(hub.addr, "quitter").await;
        let upload = ferry_protocol::Request::Upload {
            name: "never.bin".into(),
            size: 8 << 20,
            hash: ferry_protocol::ContentHash::of(b"?"),
            policy: ferry_protocol::ConflictPolicy::Refuse,
            mode: ferry_protocol::UploadMode::Negotiate,
        };
        let ready = raw.call(&upload).await;
        assert_eq!(
            ready,
            Some(ferry_protocol::Response::UploadReady { offset: 0 })
        );
        raw.raw_bytes(&[7u8; 100_000]).await;
        drop(raw);
        let kept = crate::support::eventually(5, async || hub.leftovers() == 1).await;
        assert!(kept, "the partial is kept for a resume at first");
        let swept = crate::support::eventually(15, async || hub.leftovers() == 0).await;
        assert!(
            swept,
            "and removed once idle past partial_ttl, without a restart"
        );
        hub.stop().await;
    })
    .await;
}
