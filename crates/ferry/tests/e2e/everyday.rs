//! Everyday use through the binary: the first run, completions and the man
//! page, log lines for collectors, the container's hub as its own user, and
//! the older designs' flows in their own words.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use crate::support::{Home, Ran, TestHub, eventually, ferry, ferry_bin, run, within};

/// `ferry ARGS` with its own client state and no hub preset.
pub(crate) fn bare(home: &Home) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(ferry_bin());
    command
        .env("FERRY_HOME", home.path())
        .env_remove("FERRY_HUB")
        .env_remove("RUST_LOG")
        .env("FERRY_PEER_BIND", "127.0.0.1")
        .kill_on_drop(true);
    command
}

/// Spawns `command` (a `ferry serve`) with its output in `log`, and waits
/// for its banner; returns the child and the address it listens on.
pub(crate) async fn serving(
    command: &mut tokio::process::Command,
    log: &Path,
) -> (tokio::process::Child, String) {
    let child = command
        .stdout(std::fs::File::create(log).unwrap())
        .stderr(std::fs::File::create(log.with_extension("err")).unwrap())
        .spawn()
        .unwrap();
    let started = eventually(30, async || {
        std::fs::read_to_string(log).is_ok_and(|t| t.contains("admission"))
    })
    .await;
    let text = std::fs::read_to_string(log).unwrap();
    assert!(started, "ferry serve started: {text}");
    let addr = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("Ferry hub listening on "))
        .expect("the banner names the address")
        .to_owned();
    (child, addr)
}

/// Sends SIGTERM and waits for a clean exit.
pub(crate) async fn terminate(mut child: tokio::process::Child) {
    let pid = child.id().unwrap().to_string();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let status = within(40, child.wait()).await.unwrap();
    assert!(status.success(), "a clean stop on SIGTERM: {status:?}");
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn a_newcomer_is_shown_where_to_start() {
    within(30, async {
        let home = Home::new();
        let alone = run(&mut bare(&home)).await;
        assert_eq!(alone.code, 0, "{}", alone.stderr);
        for first in [
            "Start here",
            "ferry serve",
            "ferry join LINK",
            "ferry put",
            "ferry share",
        ] {
            assert!(alone.stdout.contains(first), "{first}: {}", alone.stdout);
        }
        let help = run(bare(&home).arg("--help")).await;
        assert!(help.stdout.contains("Start here"), "{}", help.stdout);
        assert!(help.stdout.contains("completions"), "{}", help.stdout);
    })
    .await;
}

#[tokio::test]
async fn completions_and_the_man_page_come_from_the_grammar() {
    within(30, async {
        let home = Home::new();
        for shell in ["bash", "zsh", "fish", "powershell"] {
            let script = run(bare(&home).args(["completions", shell])).await;
            assert_eq!(script.code, 0, "{shell}: {}", script.stderr);
            for word in ["share", "invite", "get"] {
                assert!(script.stdout.contains(word), "{shell} completes {word}");
            }
        }
        let wrong = run(bare(&home).args(["completions", "tcsh"])).await;
        assert_eq!(wrong.code, 2, "a usage error");
        let man = run(bare(&home).arg("man")).await;
        assert_eq!(man.code, 0, "{}", man.stderr);
        assert!(
            man.stdout.starts_with(".ie") || man.stdout.contains(".TH ferry"),
            "{}",
            &man.stdout[..200.min(man.stdout.len())]
        );
        assert!(man.stdout.contains("serve") && man.stdout.contains("Exit codes"));
    })
    .await;
}

#[tokio::test]
async fn a_second_hub_on_the_same_data_directory_is_refused() {
    within(60, async {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let serve = |port: &str| {
            let mut serve = bare(&Home::new());
            serve
                .args(["serve", "--plaintext", "--listen", port, "--data"])
                .arg(&data);
            serve
        };
        let log = dir.path().join("first.out");
        let (first, addr) = serving(&mut serve("127.0.0.1:0"), &log).await;
        let invite = std::fs::read(data.join("owner-invite")).ok();
        let second = run(&mut serve("127.0.0.1:0")).await;
        assert_ne!(second.code, 0, "{}", second.stdout);
        let pid = first.id().unwrap().to_string();
        assert!(
            second.stderr.contains("another hub is serving") && second.stderr.contains(&pid),
            "{}",
            second.stderr
        );
        assert_eq!(
            std::fs::read(data.join("owner-invite")).ok(),
            invite,
            "the first hub's state is left alone"
        );
        let status = run(bare(&Home::new()).args(["--plaintext", "--hub", &addr, "status"])).await;
        assert_eq!(status.code, 0, "the first still serves: {}", status.stdout);
        // Once it stops, its directory is free again.
        terminate(first).await;
        let log = dir.path().join("third.out");
        let (third, _) = serving(&mut serve("127.0.0.1:0"), &log).await;
        terminate(third).await;
    })
    .await;
}

#[tokio::test]
async fn the_hub_logs_json_lines_when_asked() {
    within(60, async {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("serve.out");
        let mut serve = bare(&Home::new());
        serve
            .args([
                "serve",
                "--plaintext",
                "--listen",
                "127.0.0.1:0",
                "--log-format",
                "json",
                "-v",
                "--data",
            ])
            .arg(dir.path().join("data"));
        let (child, addr) = serving(&mut serve, &log).await;
        let status = run(bare(&Home::new()).args(["--plaintext", "--hub", &addr, "status"])).await;
        assert_eq!(status.code, 0, "{}", status.stdout);
        terminate(child).await;
        let lines = std::fs::read_to_string(log.with_extension("err")).unwrap();
        assert!(lines.lines().count() >= 2, "{lines}");
        for line in lines.lines() {
            let object: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert!(
                object["level"].is_string() && object["fields"].is_object(),
                "{line}"
            );
        }
        assert!(
            lines.contains("\"hub serving\"") && lines.contains("\"hub stopped\""),
            "{lines}"
        );
    })
    .await;
}

#[tokio::test]
async fn the_containers_hub_runs_as_its_user_and_passes_its_health_check() {
    within(90, async {
        let dockerfile =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../Dockerfile"))
                .unwrap();
        let lines: Vec<&str> = dockerfile.lines().map(str::trim).collect();
        let json = |line: &str| -> Vec<String> { serde_json::from_str(line).unwrap() };
        let of = |prefix: &'static str| -> Vec<&str> {
            lines
                .iter()
                .filter_map(|l| l.strip_prefix(prefix))
                .collect()
        };
        let entrypoint = json(of("ENTRYPOINT ").last().expect("an ENTRYPOINT"));
        let commands: Vec<Vec<String>> = of("CMD ").into_iter().map(json).collect();
        // The HEALTHCHECK's command runs the binary; the image's CMD is its arguments.
        let health = commands
            .iter()
            .find(|c| c[0] == "ferry")
            .expect("a health check")
            .clone();
        let cmd = commands.last().expect("a CMD").clone();
        let user = dockerfile
            .lines()
            .find_map(|l| l.strip_prefix("USER "))
            .expect("a USER")
            .trim()
            .to_owned();
        let (uid, gid) = user.split_once(':').unwrap();
        assert_ne!(uid, "0", "not root");

        // The image's layout: the binary world-executable, /data the user's own.
        let root = tempfile::tempdir().unwrap();
        let bin = root.path().join("ferry");
        std::fs::copy(ferry_bin(), &bin).unwrap();
        let data = root.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let chown = |path: &Path| {
            std::os::unix::fs::chown(path, uid.parse().ok(), gid.parse().ok()).unwrap()
        };
        chown(&data);
        let client_home = root.path().join("client");
        std::fs::create_dir(&client_home).unwrap();
        chown(&client_home);
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();

        let port = free_port();
        let adapt = |arg: &String| match arg.as_str() {
            "ferry" => bin.display().to_string(),
            "/data" => data.display().to_string(),
            a if a.ends_with(":7878") => format!("127.0.0.1:{port}"),
            a => a.to_owned(),
        };
        let as_user = |args: &[String]| {
            let mut command = tokio::process::Command::new("setpriv");
            command
                .args(["--reuid", uid, "--regid", gid, "--clear-groups", "--"])
                .args(args.iter().map(adapt))
                .env("FERRY_HOME", &client_home)
                .env_remove("RUST_LOG")
                .kill_on_drop(true);
            command
        };
        let argv: Vec<String> = entrypoint.into_iter().chain(cmd).collect();
        assert_eq!(argv[0], "ferry");
        let log = root.path().join("serve.out");
        let (child, addr) = serving(&mut as_user(&argv), &log).await;
        assert_eq!(addr, format!("127.0.0.1:{port}"));
        let checked = run(&mut as_user(&health)).await;
        assert_eq!(
            checked.code, 0,
            "healthy: {} {}",
            checked.stdout, checked.stderr
        );
        use std::os::unix::fs::MetadataExt;
        assert_eq!(
            std::fs::metadata(data.join("catalog.db"))
                .unwrap()
                .uid()
                .to_string(),
            uid
        );
        terminate(child).await;
        let after = run(&mut as_user(&health)).await;
        assert_ne!(after.code, 0, "unhealthy once stopped");
    })
    .await;
}

#[tokio::test]
async fn the_multi_mode_invocations_work_as_written() {
    within(90, async {
        let cwd = tempfile::tempdir().unwrap();
        std::fs::write(cwd.path().join("a.txt"), b"from the multi-mode design").unwrap();
        let port = free_port();
        let log = cwd.path().join("serve.out");
        let mut hub = bare(&Home::new());
        hub.current_dir(cwd.path()).args(["-s", &port.to_string()]);
        let (child, addr) = serving(&mut hub, &log).await;
        assert_eq!(addr, format!("0.0.0.0:{port}"));
        let banner = std::fs::read_to_string(&log).unwrap();
        assert!(
            banner.contains("OPEN"),
            "anyone may pick a name, as in that design: {banner}"
        );

        let peer_port = free_port();
        let home = Home::new();
        let mut shell = bare(&home);
        shell
            .current_dir(cwd.path())
            .args([
                "-c",
                "alice",
                "127.0.0.1",
                &port.to_string(),
                "0",
                &peer_port.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut shell = shell.spawn().unwrap();
        let mut stdin = shell.stdin.take().unwrap();
        let mut lines = BufReader::new(shell.stdout.take().unwrap()).lines();
        // The tracker's join: share a.txt on that port.
        stdin.write_all(b"1 ").await.unwrap();
        stdin
            .write_all(format!("{peer_port} a.txt\n").as_bytes())
            .await
            .unwrap();
        while !lines
            .next_line()
            .await
            .unwrap()
            .unwrap()
            .starts_with("Offered: a.txt")
        {}
        // The tracker's search, until the offer is indexed.
        let wanted = format!("[alice 127.0.0.1 {peer_port}]");
        let mut found = false;
        for _ in 0..50 {
            stdin.write_all(b"2 a.tx\nhelp quit\n").await.unwrap();
            loop {
                let line = lines.next_line().await.unwrap().unwrap();
                found |= line.contains(&wanted);
                if line.contains("quit") {
                    break;
                }
            }
            if found {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(found, "search answers {wanted}");
        stdin.write_all(b"quit\n").await.unwrap();
        assert!(within(20, shell.wait()).await.unwrap().success());
        terminate(child).await;
    })
    .await;
}

/// Runs `ferry … shell` against `hub` with `script` on stdin, in `cwd`.
async fn shell_script(home: &Home, hub: &TestHub, name: &str, cwd: &Path, script: &str) -> Ran {
    let mut command = ferry(home, hub);
    command.current_dir(cwd).args(["--name", name, "shell"]);
    crate::shell::feed(&mut command, script).await
}

#[tokio::test]
async fn get_without_a_name_lists_the_files_and_asks_for_one() {
    within(60, async {
        let hub = TestHub::start().await;
        let home = Home::new();
        let work = tempfile::tempdir().unwrap();
        std::fs::write(work.path().join("notes.txt"), b"simple server").unwrap();
        let out = tempfile::tempdir().unwrap();
        // The simple server's words: download with no name, then the name.
        let script = format!(
            "upload notes.txt\n/get -o {}\nnotes.txt\n",
            out.path().display()
        );
        let ran = shell_script(&home, &hub, "sam", work.path(), &script).await;
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        assert!(ran.stdout.contains("Which file?"), "{}", ran.stdout);
        let listed = ran.stdout.find("notes.txt").unwrap();
        assert!(
            listed < ran.stdout.find("Which file?").unwrap(),
            "the list comes first: {}",
            ran.stdout
        );
        assert_eq!(
            std::fs::read(out.path().join("notes.txt")).unwrap(),
            b"simple server"
        );

        // The command line takes the next line of input as the answer.
        let again = tempfile::tempdir().unwrap();
        let mut get = ferry(&home, &hub);
        get.args(["--name", "sam", "get", "-o"])
            .arg(again.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        let mut child = get.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"notes.txt\n")
            .await
            .unwrap();
        let output = within(30, child.wait_with_output()).await.unwrap();
        assert!(output.status.success());
        assert_eq!(
            std::fs::read(again.path().join("notes.txt")).unwrap(),
            b"simple server"
        );
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_second_put_of_the_same_bytes_says_whose_file_is_there() {
    within(60, async {
        let hub = TestHub::start().await;
        let (alice, bob) = (Home::new(), Home::new());
        let work = tempfile::tempdir().unwrap();
        std::fs::write(work.path().join("same.txt"), b"identical").unwrap();
        let first = run(ferry(&alice, &hub)
            .current_dir(work.path())
            .args(["--name", "alice", "put", "same.txt"]))
        .await;
        assert!(
            first.stdout.contains(">: Uploaded same.txt"),
            "{}",
            first.stdout
        );
        let second = run(ferry(&bob, &hub)
            .current_dir(work.path())
            .args(["--name", "bob", "put", "same.txt"]))
        .await;
        assert_eq!(second.code, 0, "{}", second.stderr);
        assert!(
            !second.stdout.contains("Uploaded"),
            "not announced as bob's upload: {}",
            second.stdout
        );
        assert!(
            second
                .stdout
                .contains("same.txt is already there with these bytes (uploaded by alice"),
            "{}",
            second.stdout
        );
        let mine = run(ferry(&alice, &hub)
            .current_dir(work.path())
            .args(["--name", "alice", "put", "same.txt"]))
        .await;
        assert!(
            mine.stdout
                .contains("same.txt is stored (the hub already had these bytes"),
            "{}",
            mine.stdout
        );
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_handle_keeps_its_spelling_and_stays_unique_whatever_the_case() {
    within(60, async {
        let hub = TestHub::start().await;
        let (alice, bob, mallory) = (Home::new(), Home::new(), Home::new());
        let work = tempfile::tempdir().unwrap();
        std::fs::write(work.path().join("Hello.txt"), b"hi").unwrap();
        let put = run(ferry(&alice, &hub).current_dir(work.path()).args([
            "--name",
            "Alice",
            "put",
            "Hello.txt",
        ]))
        .await;
        assert_eq!(put.code, 0, "{}", put.stderr);
        assert!(put.stdout.starts_with("Alice<"), "{}", put.stdout);
        // The same person typing it otherwise is still Alice, shown as registered.
        let ls = run(ferry(&alice, &hub).args(["--name", "alice", "ls"])).await;
        assert_eq!(ls.code, 0, "{}", ls.stderr);
        assert!(
            ls.stdout.contains("Alice") && !ls.stdout.contains("alice"),
            "{}",
            ls.stdout
        );
        // Someone else cannot take it in another case.
        let taken = run(ferry(&mallory, &hub)
            .current_dir(work.path())
            .args(["--name", "ALICE", "ls"]))
        .await;
        assert_eq!(taken.code, 5, "{} {}", taken.stdout, taken.stderr);
        let others = run(ferry(&bob, &hub).args(["--name", "bob", "--json", "ls"])).await;
        assert!(
            others.stdout.contains("\"owner\":\"Alice\""),
            "{}",
            others.stdout
        );
        hub.stop().await;
    })
    .await;
}
