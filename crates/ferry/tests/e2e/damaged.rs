//! Damaged state is never used silently: a clean stop leaves the catalog
//! whole in its database file, a scribbled catalog is refused by name, and
//! entries whose bytes are gone are refused or, with `--repair`, removed
//! and said so.

use std::path::Path;
use std::process::Stdio;

use ferry_protocol::ConflictPolicy;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{Home, TestHub, ferry_bin, local_file, run, within};

/// A stopped hub's data folder holding `count` small files.
async fn stopped_hub_with_files(count: usize) -> tempfile::TempDir {
    let hub = TestHub::start().await;
    let src = tempfile::tempdir().unwrap();
    let mut items = Vec::new();
    for i in 0..count {
        let name = format!("docs/file-{i:04}.txt");
        items.push(local_file(src.path(), &name, name.as_bytes()).await);
    }
    let mut client = Home::new().client(&hub, "alice").await;
    let stored = client
        .upload(&items, ConflictPolicy::Refuse, &())
        .await
        .unwrap();
    assert!(stored.iter().all(Result::is_ok));
    client.close().await;
    hub.stop().await
}

fn serve(data: &Path, extra: &[&str]) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(ferry_bin());
    command
        .args([
            "serve",
            "--plaintext",
            "--admission",
            "open",
            "--listen",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(data)
        .args(extra)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true);
    command
}

#[tokio::test]
async fn a_clean_stop_leaves_no_log_and_a_scribbled_catalog_is_refused_by_name() {
    within(60, async {
        let dir = stopped_hub_with_files(500).await;
        let data = dir.path().join("data");
        let db = data.join("catalog.db");
        let wal = std::fs::metadata(data.join("catalog.db-wal")).map_or(0, |m| m.len());
        assert_eq!(
            wal, 0,
            "committed entries are in the database file, not only its log"
        );

        let mut bytes = std::fs::read(&db).unwrap();
        let middle = bytes.len() / 2 / 4096 * 4096;
        bytes[middle..middle + 4096].fill(0xA5);
        std::fs::write(&db, bytes).unwrap();
        let started = run(&mut serve(&data, &[])).await;
        assert_ne!(started.code, 0, "{}", started.stdout);
        assert!(
            started.stderr.contains("catalog.db is damaged"),
            "{}",
            started.stderr
        );
    })
    .await;
}

#[tokio::test]
async fn entries_without_their_bytes_are_refused_then_repaired_and_reported() {
    within(60, async {
        let dir = stopped_hub_with_files(3).await;
        let data = dir.path().join("data");
        let blobs = data.join("store/blobs");
        let victim = ferry_protocol::ContentHash::of(b"docs/file-0001.txt").to_hex();
        std::fs::remove_file(blobs.join(&victim[..2]).join(&victim)).unwrap();

        let refused = run(&mut serve(&data, &[])).await;
        assert_ne!(refused.code, 0);
        assert!(
            refused.stderr.contains("docs/file-0001.txt"),
            "{}",
            refused.stderr
        );
        assert!(refused.stderr.contains("--repair"), "{}", refused.stderr);

        let mut repaired = serve(&data, &["--repair"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(repaired.stdout.take().unwrap()).lines();
        let first = out.next_line().await.unwrap().unwrap();
        let addr = first
            .strip_prefix("Ferry hub listening on ")
            .expect("it starts")
            .to_owned();
        let mut log = BufReader::new(repaired.stderr.take().unwrap()).lines();
        let said = log.next_line().await.unwrap().unwrap();
        assert!(
            said.contains("repair") && said.contains("docs/file-0001.txt"),
            "{said}"
        );

        let home = Home::new();
        let ls =
            run(crate::support::ferry_at(&home, &addr, false)
                .args(["--name", "bob", "--json", "ls"]))
            .await;
        let names = crate::support::listed_names(&ls.stdout);
        assert_eq!(names, ["docs/file-0000.txt", "docs/file-0002.txt"]);
        repaired.kill().await.unwrap();
    })
    .await;
}

/// Starts `ferry serve` on `data`; returns the child and its address.
/// Its output goes to a file: a pipe nobody reads would block or break it.
async fn serving(data: &Path) -> (tokio::process::Child, String) {
    serving_with(data, "").await
}

/// [`serving`] with `FAILPOINTS` set to `failpoints`.
async fn serving_with(data: &Path, failpoints: &str) -> (tokio::process::Child, String) {
    let log = data.with_extension(format!("out{}", std::process::id()));
    let child = serve(data, &[])
        .env("FAILPOINTS", failpoints)
        .stdout(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let started = crate::support::eventually(30, async || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.lines().count() >= 2)
    })
    .await;
    assert!(started, "ferry serve started");
    let text = std::fs::read_to_string(&log).unwrap();
    let addr = text
        .lines()
        .next()
        .unwrap()
        .strip_prefix("Ferry hub listening on ")
        .expect("it starts")
        .to_owned();
    (child, addr)
}

#[tokio::test]
async fn kill_9_during_uploads_leaves_every_file_absent_or_complete() {
    within(120, async {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let work = tempfile::tempdir().unwrap();
        let w = work.path();
        std::fs::create_dir(w.join("batch")).unwrap();
        for i in 0..300 {
            std::fs::write(
                w.join(format!("batch/f{i:03}")),
                crate::support::pattern(8_000 + i, i as u8),
            )
            .unwrap();
        }
        std::fs::write(w.join("batch/big.bin"), crate::support::pattern(6 << 20, 1)).unwrap();
        // The last kill comes late enough that some files are committed.
        let mut last_listed = 0;
        for (round, after_ms) in [40u64, 150, 1_500].into_iter().enumerate() {
            let (mut hub, addr) = serving(&data).await;
            let home = Home::new();
            let mut put = crate::support::ferry_at(&home, &addr, false);
            put.current_dir(w)
                .args([
                    "--name",
                    &format!("writer{round}"),
                    "put",
                    "--rename",
                    "batch",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let mut uploading = put.spawn().unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(after_ms)).await;
            hub.start_kill().unwrap(); // SIGKILL
            hub.wait().await.unwrap();
            let _ = uploading.wait().await;

            // It starts again (catalog and store check out) and every entry
            // it lists comes back whole.
            let (mut hub, addr) = serving(&data).await;
            let leftovers = std::fs::read_dir(data.join("store/tmp")).unwrap().count();
            assert_eq!(leftovers, 0, "temp files are swept at start");
            let reader = Home::new();
            let out = tempfile::tempdir().unwrap();
            let get = run(crate::support::ferry_at(&reader, &addr, false).args([
                "--name",
                &format!("reader{round}"),
                "--json",
                "ls",
            ]))
            .await;
            let names = crate::support::listed_names(&get.stdout);
            last_listed = names.len();
            if !names.is_empty() {
                let got = run(crate::support::ferry_at(&reader, &addr, false)
                    .args(["--name", &format!("reader{round}"), "get"])
                    .args(&names)
                    .arg("-o")
                    .arg(out.path()))
                .await;
                assert_eq!(got.code, 0, "round {round}: {}", got.stderr);
            }
            hub.kill().await.unwrap();
        }
        assert!(
            last_listed > 0,
            "a kill after 1.5 s finds committed files to check"
        );
    })
    .await;
}

/// What a fresh hub started on `data` lists, each name with its bytes.
async fn listed_with_bytes(data: &Path) -> Vec<(String, Vec<u8>)> {
    static READERS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let handle = format!(
        "reader{}",
        READERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let (mut hub, addr) = serving(data).await;
    let reader = Home::new();
    let ls =
        run(crate::support::ferry_at(&reader, &addr, false)
            .args(["--name", &handle, "--json", "ls"]))
        .await;
    assert_eq!(ls.code, 0, "{:?} {}", ls.stdout, ls.stderr);
    let names = crate::support::listed_names(&ls.stdout);
    let out = tempfile::tempdir().unwrap();
    let mut listed = Vec::new();
    for name in names {
        let got = run(crate::support::ferry_at(&reader, &addr, false)
            .args(["--name", &handle, "get", &name, "-o"])
            .arg(out.path()))
        .await;
        assert_eq!(got.code, 0, "{name} comes back whole: {}", got.stderr);
        listed.push((name.clone(), std::fs::read(out.path().join(&name)).unwrap()));
    }
    hub.kill().await.unwrap();
    listed
}

#[tokio::test]
async fn a_crash_at_each_commit_step_leaves_the_file_absent_or_complete() {
    use std::os::unix::process::ExitStatusExt;
    within(240, async {
        let work = tempfile::tempdir().unwrap();
        // A small file commits in a group; a large one on its own.
        let files = [
            ("small.txt", crate::support::pattern(5_000, 3)),
            ("big.bin", crate::support::pattern(3 << 20, 4)),
        ];
        for (name, bytes) in &files {
            std::fs::write(work.path().join(name), bytes).unwrap();
        }
        let steps = [
            ("commit::before_blobs", false),
            ("commit::after_blobs", false),
            ("commit::after_entries", true),
        ];
        for (step, committed) in steps {
            for (name, bytes) in &files {
                let dir = tempfile::tempdir().unwrap();
                let data = dir.path().join("data");
                let (mut hub, addr) = serving_with(&data, &format!("{step}=return")).await;
                let home = Home::new();
                let put = run(crate::support::ferry_at(&home, &addr, false)
                    .current_dir(work.path())
                    .args(["--name", "writer", "put", name]))
                .await;
                assert_ne!(
                    put.code, 0,
                    "{step} {name}: the hub died, the put cannot have succeeded"
                );
                let died = within(20, hub.wait()).await.unwrap();
                assert_eq!(
                    died.signal(),
                    Some(6),
                    "{step} {name}: it crashed right there (SIGABRT)"
                );

                // It starts again, and lists the file whole or not at all.
                let listed = listed_with_bytes(&data).await;
                if committed {
                    assert_eq!(listed, [(name.to_string(), bytes.clone())], "{step}");
                } else {
                    assert!(
                        listed.is_empty(),
                        "{step} {name}: {:?}",
                        listed.iter().map(|l| &l.0).collect::<Vec<_>>()
                    );
                }
                // And the upload, tried again, works.
                let (mut hub, addr) = serving(&data).await;
                let again = run(crate::support::ferry_at(&home, &addr, false)
                    .current_dir(work.path())
                    .args(["--name", "writer", "put", name]))
                .await;
                assert_eq!(again.code, 0, "{step} {name}: {}", again.stderr);
                hub.kill().await.unwrap();
                assert_eq!(
                    listed_with_bytes(&data).await,
                    [(name.to_string(), bytes.clone())]
                );
            }
        }
    })
    .await;
}

#[tokio::test]
async fn a_failing_fsync_is_never_reported_as_success() {
    within(60, async {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let (mut hub, addr) =
            serving_with(&data, "store::sync=return;store::sync_dir=return").await;
        let work = tempfile::tempdir().unwrap();
        std::fs::write(work.path().join("small.txt"), b"must be durable").unwrap();
        std::fs::write(
            work.path().join("big.bin"),
            crate::support::pattern(3 << 20, 5),
        )
        .unwrap();
        let home = Home::new();
        for name in ["small.txt", "big.bin"] {
            let put = run(crate::support::ferry_at(&home, &addr, false)
                .current_dir(work.path())
                .args(["--name", "writer", "put", name]))
            .await;
            assert_ne!(put.code, 0, "{name}: {}", put.stdout);
            assert!(
                put.stderr.contains("disk failed"),
                "{name}: says what failed: {}",
                put.stderr
            );
            assert!(!put.stdout.contains("Uploaded"), "{}", put.stdout);
        }
        let ls = run(crate::support::ferry_at(&home, &addr, false)
            .args(["--name", "writer", "--json", "ls"]))
        .await;
        assert!(
            crate::support::listed_names(&ls.stdout).is_empty(),
            "nothing listed: {}",
            ls.stdout
        );
        hub.kill().await.unwrap();
    })
    .await;
}
