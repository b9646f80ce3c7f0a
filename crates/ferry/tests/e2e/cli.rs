//! A handful of tests through the real `ferry` binary: arguments, output,
//! exit codes, pinning, resume messages, and `ferry serve` itself.

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{
    Cut, CuttingProxy, Home, TestHub, ferry, ferry_at, ferry_bin, pattern, run, within,
};

#[tokio::test]
async fn put_ls_get_rm_with_exit_codes_and_json() {
    within(120, async {
        let hub = TestHub::start().await;
        let (alice, bob) = (Home::new(), Home::new());
        let work = tempfile::tempdir().unwrap();
        let w = work.path();
        std::fs::write(w.join("a.txt"), b"hello").unwrap();
        std::fs::create_dir_all(w.join("dir/sub")).unwrap();
        std::fs::write(w.join("dir/sub/y.txt"), b"why").unwrap();
        std::fs::write(w.join("dir/z.txt"), b"zed").unwrap();

        let put = run(ferry(&alice, &hub).current_dir(w).args(["--name", "alice", "put", "a.txt", "dir"])).await;
        assert_eq!(put.code, 0, "{}", put.stderr);
        for name in ["a.txt", "dir/sub/y.txt", "dir/z.txt"] {
            assert!(put.stdout.lines().any(|l| l.starts_with("alice<") && l.ends_with(&format!(">: Uploaded {name}"))), "{}", put.stdout);
        }

        let ls = run(ferry(&alice, &hub).args(["--name", "alice", "--json", "ls"])).await;
        let listed: serde_json::Value = serde_json::from_str(&ls.stdout).unwrap();
        assert_eq!(listed.as_array().unwrap().len(), 3);
        assert_eq!(listed[0]["owner"], "alice");

        let out = w.join("out");
        let get = run(ferry(&alice, &hub).args(["--name", "alice", "get", "dir", "a.txt", "-o"]).arg(&out)).await;
        assert_eq!(get.code, 0, "{}", get.stderr);
        assert_eq!(std::fs::read(out.join("dir/sub/y.txt")).unwrap(), b"why");
        assert_eq!(std::fs::read(out.join("a.txt")).unwrap(), b"hello");

        let again = run(ferry(&alice, &hub).args(["--name", "alice", "get", "a.txt", "-o"]).arg(&out)).await;
        assert_eq!(again.code, 4, "a local file is in the way: {}", again.stderr);
        assert!(again.stderr.contains("--rename"));

        std::fs::write(w.join("a.txt"), b"changed").unwrap();
        let conflict = run(ferry(&alice, &hub).current_dir(w).args(["--name", "alice", "put", "a.txt"])).await;
        assert_eq!(conflict.code, 4);
        assert!(conflict.stderr.contains("--overwrite"), "{}", conflict.stderr);
        let json_put = run(ferry(&alice, &hub).current_dir(w).args(["--name", "alice", "--json", "put", "--rename", "a.txt"])).await;
        let rows: serde_json::Value = serde_json::from_str(&json_put.stdout).unwrap();
        assert_eq!(rows[0]["name"], "a (1).txt");
        assert_eq!(rows[0]["ok"], true);

        let not_yours = run(ferry(&bob, &hub).args(["--name", "bob", "rm", "a.txt"])).await;
        assert_eq!(not_yours.code, 5, "{}", not_yours.stderr);
        let missing = run(ferry(&alice, &hub).args(["--name", "alice", "get", "nope.txt"])).await;
        assert_eq!(missing.code, 3, "{}", missing.stderr);
        let taken = run(ferry(&bob, &hub).args(["--name", "alice", "ls"])).await;
        assert_eq!(taken.code, 5, "another client cannot use alice: {}", taken.stderr);
        let rm = run(ferry(&alice, &hub).args(["--name", "alice", "rm", "a.txt", "a (1).txt"])).await;
        assert_eq!(rm.code, 0, "{}", rm.stderr);
        assert!(rm.stdout.contains("Deleted a (1).txt"));
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_changed_hub_certificate_is_refused_with_a_way_out() {
    within(60, async {
        let hub = TestHub::start().await;
        let home = Home::new();
        let addr = hub.addr.to_string();
        std::fs::write(
            home.path().join("known_hubs"),
            format!("{addr} b3:{}\n", "0".repeat(64)),
        )
        .unwrap();
        let refused = run(ferry(&home, &hub).args(["--name", "alice", "ls"])).await;
        assert_eq!(refused.code, 8, "{}", refused.stderr);
        assert!(
            refused.stderr.contains("presented certificate"),
            "{}",
            refused.stderr
        );
        assert!(
            refused.stderr.contains(&format!("ferry forget {addr}")),
            "{}",
            refused.stderr
        );

        let forget = run(ferry(&home, &hub).args(["forget", &addr])).await;
        assert_eq!(forget.code, 0);
        let ok = run(ferry(&home, &hub).args(["--name", "alice", "ls"])).await;
        assert_eq!(ok.code, 0, "{}", ok.stderr);
        let pinned = std::fs::read_to_string(home.path().join("known_hubs")).unwrap();
        assert!(pinned.contains(&hub.hub.fingerprint().unwrap().to_string()));
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn tls_client_against_a_plaintext_hub_says_what_to_do() {
    within(30, async {
        let hub = TestHub::start_with(|c| c.tls = false).await;
        let home = Home::new();
        let mut command = ferry(&home, &hub);
        let attempt = run(command.args(["--name", "x", "ls"])).await;
        assert_eq!(
            attempt.code, 0,
            "the helper passes --plaintext for plaintext hubs"
        );
        // A client that never used this hub with --plaintext (one that
        // did remembers it, and needs the flag no more).
        let fresh = Home::new();
        let mut tls = tokio::process::Command::new(ferry_bin());
        tls.env("FERRY_HOME", fresh.path()).args([
            "--hub",
            &hub.addr.to_string(),
            "--name",
            "x",
            "ls",
        ]);
        let refused = run(&mut tls).await;
        assert_eq!(refused.code, 6, "{}", refused.stderr);
        assert!(refused.stderr.contains("--plaintext"), "{}", refused.stderr);
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn get_run_again_after_a_cut_resumes_and_says_so() {
    within(120, async {
        let hub = TestHub::start().await;
        let home = Home::new();
        let work = tempfile::tempdir().unwrap();
        std::fs::write(work.path().join("big.bin"), pattern(8 << 20, 5)).unwrap();
        let put = run(ferry(&home, &hub)
            .current_dir(work.path())
            .args(["--name", "alice", "put", "big.bin"]))
        .await;
        assert_eq!(put.code, 0, "{}", put.stderr);

        let proxy = CuttingProxy::start(hub.addr, Cut::Downstream(3 << 20)).await;
        let out = work.path().join("out");
        let mut via_proxy = ferry_at(&home, &proxy.addr.to_string(), true);
        via_proxy
            .args(["--name", "alice", "get", "big.bin", "-o"])
            .arg(&out);
        let cut = run(&mut via_proxy).await;
        assert_eq!(
            cut.code, 6,
            "a cut connection is a network failure: {}",
            cut.stderr
        );

        let resumed = run(ferry(&home, &hub)
            .args(["--name", "alice", "get", "big.bin", "-o"])
            .arg(&out))
        .await;
        assert_eq!(resumed.code, 0, "{}", resumed.stderr);
        assert!(
            resumed.stdout.contains("Resuming big.bin from"),
            "{}",
            resumed.stdout
        );
        assert_eq!(
            std::fs::read(out.join("big.bin")).unwrap(),
            pattern(8 << 20, 5)
        );
        hub.stop().await;
    })
    .await;
}

/// glibc reads its tunables only at start-up, so `ferry` re-executes itself
/// (keeping its PID) to steer mid-sized copies away from `rep movsb`; a
/// threshold the user chose is left alone. See `copies.rs`.
#[cfg(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu"))]
#[tokio::test]
async fn ferry_sets_the_copy_tunable_once_and_keeps_the_users_own() {
    within(60, async {
        let ours = serving_environment(None).await;
        assert!(
            ours.contains("glibc.cpu.x86_rep_movsb_threshold=4194304"),
            "{ours}"
        );
        let users = "glibc.cpu.x86_rep_movsb_threshold=8192";
        let theirs = serving_environment(Some(users)).await;
        assert!(theirs.contains(users), "{theirs}");
        assert!(!theirs.contains("4194304"), "{theirs}");
    })
    .await;
}

/// The environment of a running `ferry serve` as the kernel shows it for
/// the PID that was spawned, read once the hub has said it is listening.
#[cfg(all(target_os = "linux", target_arch = "x86_64", target_env = "gnu"))]
async fn serving_environment(tunables: Option<&str>) -> String {
    let data = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(ferry_bin());
    command
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .kill_on_drop(true);
    match tunables {
        Some(value) => command.env("GLIBC_TUNABLES", value),
        None => command.env_remove("GLIBC_TUNABLES"),
    };
    let mut serve = command.spawn().unwrap();
    let mut lines = BufReader::new(serve.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    assert!(first.starts_with("Ferry hub listening on "), "{first}");
    let pid = serve.id().unwrap();
    // glibc may cut the variable into pieces in place; the pieces stay.
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    serve.kill().await.unwrap();
    String::from_utf8_lossy(&environ).replace('\0', " ")
}

#[tokio::test]
async fn ferry_serve_prints_how_to_reach_it_and_stops_on_sigterm() {
    within(60, async {
        let data = tempfile::tempdir().unwrap();
        let mut serve = tokio::process::Command::new(ferry_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data.path())
            .env("RUST_LOG", "ferry_hub=debug")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut log = serve.stderr.take().unwrap();
        let log = tokio::spawn(async move {
            let mut text = String::new();
            tokio::io::AsyncReadExt::read_to_string(&mut log, &mut text)
                .await
                .unwrap();
            text
        });
        let mut lines = BufReader::new(serve.stdout.take().unwrap()).lines();
        let first = lines.next_line().await.unwrap().unwrap();
        let addr = first
            .strip_prefix("Ferry hub listening on ")
            .expect("address line")
            .to_owned();
        // A new data dir: invite-only, with a one-time owner invite.
        let mut banner = String::new();
        let link = loop {
            let line = lines.next_line().await.unwrap().expect("an owner invite");
            banner.push_str(&line);
            banner.push('\n');
            if let Some(link) = line.trim().strip_prefix("ferry join ") {
                break link.to_owned();
            }
        };
        assert!(banner.contains("fingerprint: b3:"), "{banner}");
        assert!(banner.contains("by invite"), "{banner}");
        let invite_file = data.path().join("owner-invite");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&invite_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the owner invite is private");
        assert_eq!(std::fs::read_to_string(&invite_file).unwrap().trim(), link);

        // A stranger's --name is refused with how to join.
        let stranger = Home::new();
        let mut refused = tokio::process::Command::new(ferry_bin());
        refused
            .env("FERRY_HOME", stranger.path())
            .args(["--hub", &addr, "--name", "eve", "ls"]);
        let refused = run(&mut refused).await;
        assert_eq!(refused.code, 5, "{}", refused.stderr);
        assert!(
            refused.stderr.contains("by invite only") && refused.stderr.contains("ferry join"),
            "{}",
            refused.stderr
        );

        // The owner joins; later commands need neither --hub nor --name.
        let home = Home::new();
        let mut join = tokio::process::Command::new(ferry_bin());
        join.env("FERRY_HOME", home.path())
            .env_remove("FERRY_HUB")
            .args(["join", &link, "--name", "zoe"]);
        let joined = run(&mut join).await;
        assert_eq!(joined.code, 0, "{}", joined.stderr);
        assert!(
            joined.stdout.contains("as zoe (owner)"),
            "{}",
            joined.stdout
        );
        assert!(!invite_file.exists(), "a used owner invite is gone");
        let work = tempfile::tempdir().unwrap();
        std::fs::write(work.path().join("f.txt"), b"via the real binary").unwrap();
        let mut put = tokio::process::Command::new(ferry_bin());
        put.env("FERRY_HOME", home.path())
            .env_remove("FERRY_HUB")
            .current_dir(work.path())
            .args(["put", "f.txt"]);
        let put = run(&mut put).await;
        assert_eq!(put.code, 0, "{}", put.stderr);

        // An invite's link is the last line; it names the hub as asked.
        let mut invite = tokio::process::Command::new(ferry_bin());
        invite
            .env("FERRY_HOME", home.path())
            .args(["invite", "--role", "reader"]);
        let made = run(&mut invite).await;
        assert_eq!(made.code, 0, "{}", made.stderr);
        let last = made.stdout.lines().last().unwrap();
        assert!(
            last.starts_with(&format!("ferry://{addr}/#v1.")),
            "{}",
            made.stdout
        );
        assert!(
            made.stderr.contains("works only on the hub's own machine"),
            "{}",
            made.stderr
        );
        let mut invite = tokio::process::Command::new(ferry_bin());
        invite
            .env("FERRY_HOME", home.path())
            .args(["invite", "--addr", "hub.example:7000"]);
        let made = run(&mut invite).await;
        let last = made.stdout.lines().last().unwrap();
        assert!(
            last.starts_with("ferry://hub.example:7000/#v1."),
            "{}",
            made.stdout
        );

        // Status says what later commands will use, and pins nothing new.
        let mut status = tokio::process::Command::new(ferry_bin());
        status
            .env("FERRY_HOME", home.path())
            .env_remove("FERRY_HUB")
            .arg("status");
        let status = run(&mut status).await;
        assert_eq!(status.code, 0, "{}", status.stderr);
        for wanted in [
            addr.as_str(),
            "handle:      zoe",
            "pinned b3:",
            "hub answers: yes",
            "as zoe (owner)",
        ] {
            assert!(
                status.stdout.contains(wanted),
                "{wanted}: {}",
                status.stdout
            );
        }
        let stranger_status = Home::new();
        let mut status = tokio::process::Command::new(ferry_bin());
        status
            .env("FERRY_HOME", stranger_status.path())
            .args(["--hub", &addr, "status"]);
        let status = run(&mut status).await;
        assert!(
            status.stdout.contains("not pinned yet"),
            "{}",
            status.stdout
        );
        assert!(
            !stranger_status.path().join("known_hubs").exists(),
            "status pins nothing"
        );

        // The owner invite works once only.
        let again = Home::new();
        let mut twice = tokio::process::Command::new(ferry_bin());
        twice
            .env("FERRY_HOME", again.path())
            .args(["join", &link, "--name", "mallory"]);
        let twice = run(&mut twice).await;
        assert_eq!(twice.code, 5, "{}", twice.stderr);
        assert!(twice.stderr.contains("not valid"), "{}", twice.stderr);

        let pid = serve.id().unwrap().to_string();
        let killed = tokio::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .await
            .unwrap();
        assert!(killed.success());
        let status = within(20, serve.wait()).await.unwrap();
        assert!(status.success(), "exit 0 after SIGTERM: {status:?}");
        let mut rest = String::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            rest.push_str(&line);
        }
        assert!(rest.contains("Hub stopped."), "{rest}");
        let log = log.await.unwrap();
        assert!(log.contains("DEBUG"), "the log has lines: {log}");
        assert!(
            !log.contains('\x1b'),
            "no terminal escape codes in a piped log: {log:?}"
        );
        assert!(
            data.path().join("catalog.db").exists() && data.path().join("tls/cert.der").exists()
        );
    })
    .await;
}

#[tokio::test]
async fn the_hub_and_handle_come_from_flags_config_or_environment() {
    within(60, async {
        let hub = TestHub::start().await;
        let addr = hub.addr.to_string();
        let bare = |home: &Home| {
            let mut command = tokio::process::Command::new(ferry_bin());
            command
                .env("FERRY_HOME", home.path())
                .env_remove("FERRY_HUB")
                .env("RUST_LOG", "warn");
            command
        };

        let configured = Home::new();
        std::fs::write(
            configured.path().join("config.toml"),
            format!("hub = \"{addr}\"\nname = \"cfg\"\n"),
        )
        .unwrap();
        let ls = run(bare(&configured).arg("ls")).await;
        assert_eq!(
            ls.code, 0,
            "config.toml names hub and handle: {}",
            ls.stderr
        );

        let from_env = Home::new();
        let ls = run(bare(&from_env)
            .env("FERRY_HUB", &addr)
            .args(["--name", "env", "ls"]))
        .await;
        assert_eq!(ls.code, 0, "FERRY_HUB names the hub: {}", ls.stderr);

        let nothing = Home::new();
        let ls = run(bare(&nothing).args(["--name", "lost", "ls"])).await;
        assert_eq!(ls.code, 1);
        assert!(ls.stderr.contains("no hub configured"), "{}", ls.stderr);
        let nameless = run(bare(&nothing).args(["--hub", &addr, "ls"])).await;
        assert_eq!(nameless.code, 5, "{}", nameless.stderr);
        assert!(nameless.stderr.contains("--name"), "{}", nameless.stderr);
        hub.stop().await;
    })
    .await;
}

/// One flipped byte anywhere on the wire, either way: the command fails
/// or gets the right bytes, and never stores or writes wrong ones.
#[tokio::test]
async fn a_flipped_byte_on_the_wire_never_becomes_a_wrong_file() {
    within(120, async {
        let hub = TestHub::start().await;
        let work = tempfile::tempdir().unwrap();
        let w = work.path();
        let data = pattern(300_000, 9);
        std::fs::write(w.join("f.bin"), &data).unwrap();
        let seeded = run(ferry(&Home::new(), &hub)
            .current_dir(w)
            .args(["--name", "seed", "put", "f.bin"]))
        .await;
        assert_eq!(seeded.code, 0, "{}", seeded.stderr);
        // Gets that failed and that succeeded: the flips must have bitten.
        let mut outcomes = [0; 2];
        let offsets = [0u64, 5, 100, 600, 1_500, 4_000, 20_000, 150_000, 299_000];
        for (i, at) in offsets.into_iter().enumerate() {
            for (d, cut) in [Cut::FlipUpstream(at), Cut::FlipDownstream(at)]
                .into_iter()
                .enumerate()
            {
                let proxy = CuttingProxy::start(hub.addr, cut).await;
                let (home, handle) = (Home::new(), format!("u{i}d{d}"));
                let via = proxy.addr.to_string();
                let name = format!("up{i}-{d}.bin");
                std::fs::copy(w.join("f.bin"), w.join(&name)).unwrap();
                let put = run(ferry_at(&home, &via, true)
                    .current_dir(w)
                    .args(["--name", &handle, "put", &name]))
                .await;
                assert!(
                    put.code != 0 || put.stdout.contains("Uploaded"),
                    "{}",
                    put.stderr
                );
                let out = w.join(format!("out{i}-{d}"));
                let get = run(ferry_at(&home, &via, true)
                    .args(["--name", &handle, "get", "f.bin", "-o"])
                    .arg(&out))
                .await;
                outcomes[usize::from(get.code == 0)] += 1;
                if get.code == 0 {
                    assert_eq!(
                        std::fs::read(out.join("f.bin")).unwrap(),
                        data,
                        "get, flip at {at}"
                    );
                } else {
                    assert!(!out.join("f.bin").exists(), "a failed get leaves no file");
                }
            }
        }
        assert!(
            outcomes[0] > 0 && outcomes[1] > 0,
            "failed / whole gets: {outcomes:?}"
        );
        // Whatever was stored through the proxy is byte for byte right.
        let mut client = Home::new().client(&hub, "checker").await;
        let listed = client.list(None).await.unwrap();
        assert!(
            listed
                .iter()
                .all(|e| e.hash == ferry_protocol::ContentHash::of(&data)),
            "{listed:?}"
        );
        hub.stop().await;
    })
    .await;
}
