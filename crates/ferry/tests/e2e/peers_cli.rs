//! The peer network through the real binary: `ferry share`, `search`,
//! `get` (direct, relayed, and falling back from the store), presence after
//! kill -9, and the shell's peer dialects.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

use crate::support::{Home, TestHub, closed_port, eventually, ferry, run, within};

/// Starts `ferry share` and waits until the hub has its offers.
async fn share(
    home: &Home,
    hub: &TestHub,
    handle: &str,
    dir: &std::path::Path,
    extra: &[&str],
) -> (Child, Lines<BufReader<ChildStdout>>) {
    let mut command = ferry(home, hub);
    command
        .args(["--name", handle, "share"])
        .arg(dir)
        .args(extra)
        .stdout(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = within(20, lines.next_line())
            .await
            .unwrap()
            .expect("share keeps running");
        if line.starts_with("Offering ") {
            return (child, lines);
        }
    }
}

async fn wait_for_line(lines: &mut Lines<BufReader<ChildStdout>>, needle: &str) -> String {
    loop {
        let line = within(20, lines.next_line())
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no line with {needle:?}"));
        if line.contains(needle) {
            return line;
        }
    }
}

#[tokio::test]
async fn share_then_get_directly_by_relay_and_by_fallback_and_kill_9_presence() {
    within(120, async {
        let hub = TestHub::start().await;
        let (bob, carol, alice) = (Home::new(), Home::new(), Home::new());
        let shared = tempfile::tempdir().unwrap();
        std::fs::create_dir(shared.path().join("sub")).unwrap();
        std::fs::write(shared.path().join("notes.txt"), b"bob's notes").unwrap();
        std::fs::write(shared.path().join("sub/photo.jpg"), vec![7u8; 300_000]).unwrap();
        let (mut bob_share, mut bob_out) = share(&bob, &hub, "bob", shared.path(), &[]).await;
        let port = closed_port().to_string();
        let (mut carol_share, _carol_out) = share(&carol, &hub, "carol", shared.path(), &["--advertise-port", &port]).await;

        let found = run(ferry(&alice, &hub).args(["--name", "alice", "search", "PHOTO"])).await;
        assert_eq!(found.code, 0, "{}", found.stderr);
        assert!(found.stdout.contains("[bob 127.0.0.1 ") && found.stdout.contains(&format!("[carol 127.0.0.1 {port}]")), "{}", found.stdout);

        let out = tempfile::tempdir().unwrap();
        let direct = run(ferry(&alice, &hub).args(["--name", "alice", "get", "notes.txt", "--from", "bob", "-o"]).arg(out.path())).await;
        assert_eq!(direct.code, 0, "{}", direct.stderr);
        assert!(direct.stdout.contains("File received from bob (direct): notes.txt"), "{}", direct.stdout);
        wait_for_line(&mut bob_out, "Sent notes.txt to alice (direct)").await;
        let again = run(ferry(&alice, &hub).args(["--name", "alice", "get", "notes.txt", "--from", "bob", "-o"]).arg(out.path())).await;
        assert_eq!(again.code, 4, "a local file is in the way: {}", again.stderr);
        assert!(again.stderr.contains("--overwrite"), "a failed peer fetch says why: {}", again.stderr);

        let relayed = run(ferry(&alice, &hub).args(["--name", "alice", "get", "sub/photo.jpg", "--from", "carol", "-o"]).arg(out.path())).await;
        assert_eq!(relayed.code, 0, "{}", relayed.stderr);
        assert!(relayed.stdout.contains("File received from carol (relayed through the hub): sub/photo.jpg"), "{}", relayed.stdout);
        assert!(relayed.stderr.contains("relaying through the hub"), "{}", relayed.stderr);
        assert_eq!(std::fs::read(out.path().join("photo.jpg")).unwrap(), vec![7u8; 300_000]);

        // Not in the store under this name, so `get` finds a peer by itself.
        let other = tempfile::tempdir().unwrap();
        let fallback = run(ferry(&alice, &hub).args(["--name", "alice", "get", "notes.txt", "-o"]).arg(other.path())).await;
        assert_eq!(fallback.code, 0, "{}", fallback.stderr);
        assert!(fallback.stdout.contains("(direct): notes.txt"), "{}", fallback.stdout);

        bob_share.start_kill().unwrap();
        bob_share.wait().await.unwrap();
        let home = Home::new();
        let mut watcher = home.client(&hub, "watcher").await;
        let gone = eventually(10, async || {
            let hits = watcher.search("notes", 10).await.unwrap().0;
            !hits.iter().any(|h| matches!(&h.source, ferry_protocol::Source::Peer { handle, .. } if handle == "bob"))
        });
        assert!(gone.await, "a killed peer leaves search within 10 s");

        let pid = carol_share.id().unwrap().to_string();
        tokio::process::Command::new("kill").args(["-INT", &pid]).status().await.unwrap();
        assert!(within(20, carol_share.wait()).await.unwrap().success(), "Ctrl-C stops sharing cleanly");
        assert!(watcher.search("", 100).await.unwrap().0.iter().all(|h| matches!(h.source, ferry_protocol::Source::Store { .. })));
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_shell_speaks_the_multimode_and_tracker_dialects() {
    within(120, async {
        let hub = TestHub::start().await;
        let (dave, eve) = (Home::new(), Home::new());
        let shared = tempfile::tempdir().unwrap();
        std::fs::write(shared.path().join("a.txt"), b"dave's a").unwrap();
        std::fs::write(shared.path().join("b.txt"), b"not offered").unwrap();
        let mut command = ferry(&dave, &hub);
        let mut dave_shell = command
            .args(["--name", "dave", "shell"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut dave_in = dave_shell.stdin.take().unwrap();
        let mut dave_out = BufReader::new(dave_shell.stdout.take().unwrap()).lines();
        dave_in
            .write_all(format!("setdir {}\noffer a.txt\n", shared.path().display()).as_bytes())
            .await
            .unwrap();
        wait_for_line(&mut dave_out, "Offering 1 files.").await;

        let work = tempfile::tempdir().unwrap();
        let mut eve_shell = ferry(&eve, &hub);
        eve_shell
            .current_dir(work.path())
            .args(["--name", "eve", "shell"]);
        let script = "list\nsearch A.T\nrequest a.txt dave\nrequest b.txt dave\n";
        let ran = feed(&mut eve_shell, script).await;
        assert!(
            ran.0.contains("[dave 127.0.0.1 "),
            "list and search show dave's offer: {}",
            ran.0
        );
        assert!(
            !ran.0.contains("b.txt  "),
            "only offered files are listed: {}",
            ran.0
        );
        assert!(
            ran.0.contains("File received from dave (direct): a.txt"),
            "{}",
            ran.0
        );
        assert!(ran.1.contains("no file or folder 'b.txt'"), "{}", ran.1);
        assert_eq!(
            std::fs::read(work.path().join("a.txt")).unwrap(),
            b"dave's a"
        );

        dave_in.write_all(b"dereg\n").await.unwrap();
        wait_for_line(&mut dave_out, "Deregistered").await;
        assert!(within(20, dave_shell.wait()).await.unwrap().success());
        let home = Home::new();
        let mut watcher = home.client(&hub, "watcher").await;
        assert!(
            watcher.search("", 10).await.unwrap().0.is_empty(),
            "dereg withdraws everything"
        );
        hub.stop().await;
    })
    .await;
}

async fn feed(command: &mut tokio::process::Command, script: &str) -> (String, String) {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .await
        .unwrap();
    let output = within(60, child.wait_with_output()).await.unwrap();
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_share_comes_back_by_itself_after_the_hub_restarts() {
    within(120, async {
        let hub = TestHub::start().await;
        let bob = Home::new();
        let shared = tempfile::tempdir().unwrap();
        std::fs::write(shared.path().join("survivor.txt"), b"still here").unwrap();
        let (mut sharing, mut out) = share(&bob, &hub, "bob", shared.path(), &[]).await;

        let hub = hub.restart().await;
        wait_for_line(&mut out, "Offering ").await;
        let mut alice = Home::new().client(&hub, "alice").await;
        let hits = alice.search("survivor", 10).await.unwrap().0;
        assert_eq!(hits.len(), 1, "the peer re-announced its offers: {hits:?}");
        assert!(matches!(
            hits[0].source,
            ferry_protocol::Source::Peer { .. }
        ));
        sharing.kill().await.unwrap();
        hub.stop().await;
    })
    .await;
}
