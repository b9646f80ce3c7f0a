//! The shell, fed scripts in each older dialect, through the real binary.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::support::{Home, Ran, TestHub, ferry, ferry_bin, run, within};

/// Runs `ferry shell` with `script` on stdin, in `cwd`, without `--hub`.
async fn shell_without_hub(home: &Home, cwd: &std::path::Path, args: &[&str], script: &str) -> Ran {
    let mut command = tokio::process::Command::new(ferry_bin());
    command
        .env("FERRY_HOME", home.path())
        .env_remove("FERRY_HUB")
        .env("RUST_LOG", "warn")
        .current_dir(cwd)
        .args(args)
        .arg("shell");
    feed(&mut command, script).await
}

/// Runs `command` with `script` on stdin; its exit code and output.
pub(crate) async fn feed(command: &mut tokio::process::Command, script: &str) -> Ran {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(script.as_bytes()).await.unwrap();
    drop(stdin);
    let output = within(60, child.wait_with_output()).await.unwrap();
    Ran {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn workdir(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join("src").join(name), text).unwrap();
    }
    dir
}

#[tokio::test]
async fn the_shell_speaks_the_central_store_dialect() {
    within(60, async {
        let hub = TestHub::start().await;
        let home = Home::new();
        let work = workdir(&[("Hello.txt", "hello there")]);
        let script = format!(
            "/join 127.0.0.1 {}\n/register User1\n/store src/Hello.txt\n/dir\n/get Hello.txt\n/?\n/bogus\n/leave\n",
            hub.addr.port()
        );
        let ran = shell_without_hub(&home, work.path(), &[], &script).await;
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        let out = &ran.stdout;
        assert!(out.contains("Connection to the hub at 127.0.0.1:"), "{out}");
        // The central store's own sample output, spelled as registered.
        assert!(out.contains("Welcome User1!"), "{out}");
        assert!(out.lines().any(|l| l.starts_with("User1<") && l.ends_with(">: Uploaded Hello.txt")), "{out}");
        assert!(out.contains("1 files, 11 B"), "the listing: {out}");
        assert!(out.contains("File received from hub: Hello.txt"), "{out}");
        assert!(out.contains("/join ip port"), "help lists the dialects: {out}");
        for peer_command in ["search TERM", "request FILE PEER", "setdir DIR", "offer FILE", "dereg"] {
            assert!(out.contains(peer_command), "help lists {peer_command}: {out}");
        }
        assert!(out.contains("Connection closed. Thank you!"), "{out}");
        assert!(ran.stderr.contains("Type help"), "an unknown command is one clear error: {}", ran.stderr);
        assert_eq!(std::fs::read_to_string(work.path().join("Hello.txt")).unwrap(), "hello there");
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_shell_speaks_the_relay_dialect() {
    within(60, async {
        let hub = TestHub::start().await;
        let home = Home::new();
        let work = workdir(&[("b.txt", "bee"), ("c d.txt", "sea")]);
        let script = "UPLOAD@src/b.txt\nupload 'src/c d.txt'\nDOWNLOAD@b.txt\ndownload 'c d.txt'\nDELETE@b.txt\ndelete 'c d.txt'\nls\n";
        let mut command = ferry(&home, &hub);
        command.current_dir(work.path()).args(["--name", "bob", "shell"]);
        let ran = feed(&mut command, script).await;
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        let out = &ran.stdout;
        for expected in [">: Uploaded b.txt", ">: Uploaded c d.txt", "File received from hub: b.txt", "File received from hub: c d.txt", "Deleted b.txt", "Deleted c d.txt", "store is empty"] {
            assert!(out.contains(expected), "missing {expected:?} in {out}");
        }
        assert_eq!(std::fs::read_to_string(work.path().join("c d.txt")).unwrap(), "sea");
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_shell_asks_for_the_hub_when_none_is_configured() {
    within(60, async {
        let hub = TestHub::start().await;
        let home = Home::new();
        let work = workdir(&[("d.txt", "dee")]);
        let script = format!(
            "upload src/d.txt\n127.0.0.1:{}\ndownload d.txt\n",
            hub.addr.port()
        );
        let ran = shell_without_hub(&home, work.path(), &["--name", "carol"], &script).await;
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        assert!(
            ran.stdout.contains("Hub address (HOST:PORT):"),
            "{}",
            ran.stdout
        );
        assert!(ran.stdout.contains(">: Uploaded d.txt"), "{}", ran.stdout);
        assert!(
            ran.stdout.contains("File received from hub: d.txt"),
            "{}",
            ran.stdout
        );
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_shell_sees_other_users_uploads_live() {
    within(60, async {
        let hub = TestHub::start().await;
        let (bob, alice) = (Home::new(), Home::new());
        let mut command = ferry(&bob, &hub);
        let mut shell = command
            .args(["--name", "bob", "shell"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stdin = shell.stdin.take().unwrap();
        let mut lines = BufReader::new(shell.stdout.take().unwrap()).lines();
        // `ls` logs in and starts the feed; `help` answers only after that.
        stdin.write_all(b"ls\nhelp\n").await.unwrap();
        while !lines.next_line().await.unwrap().unwrap().contains("quit") {}

        let work = tempfile::tempdir().unwrap();
        std::fs::write(work.path().join("live.txt"), b"now").unwrap();
        let put = run(ferry(&alice, &hub)
            .current_dir(work.path())
            .args(["--name", "alice", "put", "live.txt"]))
        .await;
        assert_eq!(put.code, 0, "{}", put.stderr);
        let seen = loop {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("the shell printed the event");
            if line.contains("Uploaded live.txt") {
                break line;
            }
        };
        assert!(seen.starts_with("alice<"), "{seen}");
        drop(stdin);
        assert!(within(20, shell.wait()).await.unwrap().success());
        hub.stop().await;
    })
    .await;
}

/// `/join`, a pause past the hub's login deadline, then `/register`: the
/// shell connects again instead of failing on the closed connection.
#[tokio::test]
async fn register_long_after_join_reconnects_past_the_login_deadline() {
    within(60, async {
        let hub = TestHub::start_with(|c| {
            c.tls = false;
            c.login_timeout = std::time::Duration::from_millis(300);
        })
        .await;
        let home = Home::new();
        let mut child = tokio::process::Command::new(ferry_bin())
            .env("FERRY_HOME", home.path())
            .env_remove("FERRY_HUB")
            .env("RUST_LOG", "warn")
            .args(["--plaintext", "shell"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let (ip, port) = (hub.addr.ip().to_string(), hub.addr.port().to_string());
        stdin
            .write_all(format!("/join {ip} {port}\n").as_bytes())
            .await
            .unwrap();
        stdin.flush().await.unwrap();
        // Long enough for the hub to close the idle, unregistered connection.
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        stdin.write_all(b"/register late\n/dir\n").await.unwrap();
        drop(stdin);
        let output = within(30, child.wait_with_output()).await.unwrap();
        let (stdout, stderr) = (
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
        assert!(stdout.contains("Welcome late!"), "{stdout}\n{stderr}");
        assert!(!stderr.contains("rror"), "{stderr}");
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_shell_joins_an_invite_only_hub_by_invite() {
    within(60, async {
        let owner = Home::new();
        let (hub, mut admin) = TestHub::invite_only(true, &owner, "olive").await;
        let terms = ferry_protocol::InviteTerms {
            role: ferry_protocol::Role::Member,
            uses: 1,
            expires_at: None,
            quota: None,
        };
        let (_, secret) = admin.create_invite(terms).await.unwrap();
        let link = ferry_protocol::InviteLink {
            addr: hub.addr.to_string(),
            fingerprint: hub.hub.fingerprint(),
            secret,
        };
        let home = Home::new();
        let work = workdir(&[("x.txt", "by invite")]);
        let script = format!(
            "/join 127.0.0.1 {}\n/register bob\n/join {link} --name bob\n/store src/x.txt\n/dir\n/leave\n",
            hub.addr.port()
        );
        let ran = shell_without_hub(&home, work.path(), &[], &script).await;
        assert!(
            ran.stderr.contains("admits new users by invite only") && ran.stderr.contains("ferry join"),
            "/register explains what to do: {}",
            ran.stderr
        );
        let out = &ran.stdout;
        assert!(out.contains("as bob (member)"), "{out}\n{}", ran.stderr);
        assert!(out.lines().any(|l| l.starts_with("bob<") && l.ends_with(">: Uploaded x.txt")), "{out}");
        hub.stop().await;
    })
    .await;
}
