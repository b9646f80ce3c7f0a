//! Safe by construction: state that is private stays private, a key others
//! can read is refused, and a hash is not taken as proof of a size or of
//! possession.

use std::os::unix::fs::PermissionsExt;

use ferry_protocol::{ConflictPolicy, ContentHash, ErrorCode, Request, Response, UploadMode};

use crate::support::{Home, Raw, TestHub, code_of, ferry_bin, run, within};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn a_claimed_hash_with_another_size_stores_nothing() {
    within(30, async {
        let hub = TestHub::start_with(|c| c.tls = false).await;
        let mut alice = Raw::logged_in(hub.addr, "alice").await;
        let body = b"real bytes";
        let upload = |name: &str, size: u64, mode| Request::Upload {
            name: name.into(),
            size,
            hash: ContentHash::of(body),
            policy: ConflictPolicy::Refuse,
            mode,
        };
        alice
            .writer
            .send(&upload(
                "alice/real.txt",
                body.len() as u64,
                UploadMode::Eager,
            ))
            .await
            .unwrap();
        alice.raw_bytes(body).await;
        assert!(matches!(alice.recv().await, Some(Response::Stored { .. })));

        let mut bob = Raw::logged_in(hub.addr, "bob").await;
        let lie = bob
            .call(&upload("bob/claimed.txt", 1 << 30, UploadMode::Negotiate))
            .await;
        assert_eq!(code_of(&lie), Some(ErrorCode::SizeMismatch), "{lie:?}");
        assert_eq!(
            listed(&mut bob).await,
            ["alice/real.txt"],
            "nothing listed for the claim"
        );
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_hash_alone_lists_nothing_only_the_bytes_prove_possession() {
    within(60, async {
        let hub = TestHub::start_with(|c| c.tls = false).await;
        let home = Home::new();
        let mut alice = home.client(&hub, "alice").await;
        let src = tempfile::tempdir().unwrap();
        let data: Vec<u8> = (0..(3u32 << 20)).map(|i| (i * 13 % 251) as u8).collect();
        let item = crate::support::local_file(src.path(), "alice/big.bin", &data).await;
        alice
            .upload(std::slice::from_ref(&item), ConflictPolicy::Refuse, &())
            .await
            .unwrap()[0]
            .as_ref()
            .unwrap();

        // Bob knows the hash and size (anyone can list them), not the bytes.
        let mut bob = Raw::logged_in(hub.addr, "bob").await;
        let claim = |name: &str| Request::Upload {
            name: name.into(),
            size: item.size,
            hash: item.hash,
            policy: ConflictPolicy::Refuse,
            mode: UploadMode::Negotiate,
        };
        let Some(Response::Prove { nonce, ranges }) = bob.call(&claim("bob/claimed.bin")).await
        else {
            panic!("the hub must ask for a proof, not list the claim");
        };
        let guessed = ferry_protocol::PossessionProof([0; 32]);
        let refused = bob.call(&Request::Proof { proof: guessed }).await;
        assert_eq!(
            code_of(&refused),
            Some(ErrorCode::HashMismatch),
            "{refused:?}"
        );
        assert_eq!(listed(&mut bob).await, ["alice/big.bin"]);

        // A proof from the bytes themselves is what it takes; a new challenge
        // each time, so an old answer is no good either.
        let Some(Response::Prove {
            nonce: again,
            ranges: asked,
        }) = bob.call(&claim("bob/claimed.bin")).await
        else {
            panic!("a second challenge");
        };
        assert_ne!(again, nonce, "every challenge is fresh");
        let mut prover = ferry_protocol::possession::Prover::new(&again);
        for range in asked {
            let start = usize::try_from(range.offset).unwrap();
            prover.range(range, &data[start..start + range.len as usize]);
        }
        let proof = prover.finish();
        let stored = bob.call(&Request::Proof { proof }).await;
        assert!(
            matches!(
                stored,
                Some(Response::Stored {
                    deduplicated: true,
                    ..
                })
            ),
            "{stored:?}"
        );
        assert_eq!(listed(&mut bob).await, ["alice/big.bin", "bob/claimed.bin"]);
        drop(ranges);

        // The client proves on its own when it has the bytes.
        let mut carol = Home::new().client(&hub, "carol").await;
        let copy = crate::support::local_file(src.path(), "carol/copy.bin", &data).await;
        let done = carol
            .upload(std::slice::from_ref(&copy), ConflictPolicy::Refuse, &())
            .await
            .unwrap();
        assert!(done[0].as_ref().unwrap().deduplicated, "{done:?}");
        hub.stop().await;
    })
    .await;
}

/// Every name the hub lists, in order.
async fn listed(raw: &mut Raw) -> Vec<String> {
    let listing = raw
        .call(&Request::List {
            prefix: None,
            after: None,
            limit: 100,
        })
        .await;
    let Some(Response::Listing { entries, .. }) = listing else {
        panic!("{listing:?}")
    };
    entries.into_iter().map(|e| e.name).collect()
}

#[tokio::test]
async fn the_hubs_state_and_the_clients_keys_are_their_owners_alone() {
    within(60, async {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let mut serve = tokio::process::Command::new(ferry_bin())
            .args([
                "serve",
                "--admission",
                "open",
                "--listen",
                "127.0.0.1:0",
                "--data",
            ])
            .arg(&data)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = serve.stdout.take().unwrap();
        let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
        let first = lines.next_line().await.unwrap().unwrap();
        let addr = first
            .strip_prefix("Ferry hub listening on ")
            .unwrap()
            .to_owned();
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        // A client state dir that does not exist yet.
        let home = Home::new();
        let state = home.path().join("state");
        let work = tempfile::tempdir().unwrap();
        std::fs::write(work.path().join("f.txt"), b"private").unwrap();
        let mut put = tokio::process::Command::new(ferry_bin());
        put.env("FERRY_HOME", &state)
            .current_dir(work.path())
            .args(["--hub", &addr, "--name", "ann", "put", "f.txt"]);
        let put = run(&mut put).await;
        assert_eq!(put.code, 0, "{}", put.stderr);

        assert_eq!(mode(&data), 0o700, "the data dir");
        for file in ["catalog.db", "audit.log", "tls/key.der"] {
            assert_eq!(
                mode(&data.join(file)) & 0o077,
                0,
                "{file} is the hub's alone"
            );
        }
        let shard = std::fs::read_dir(data.join("store/blobs"))
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        let blob = std::fs::read_dir(shard.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap();
        assert_eq!(mode(&blob.path()) & 0o077, 0, "a stored blob");
        assert_eq!(mode(&state), 0o700, "the client's state dir");
        assert_eq!(mode(&state.join("login-key")), 0o600);

        // A key others can read is refused, with what to do.
        let key = state.join("login-key");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut ls = tokio::process::Command::new(ferry_bin());
        ls.env("FERRY_HOME", &state)
            .args(["--hub", &addr, "--name", "ann", "ls"]);
        let refused = run(&mut ls).await;
        assert_ne!(refused.code, 0);
        assert!(refused.stderr.contains("chmod 600"), "{}", refused.stderr);
        serve.kill().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_planted_link_at_a_partial_path_is_never_written_through() {
    within(60, async {
        let hub = TestHub::start().await;
        let home = Home::new();
        let mut alice = home.client(&hub, "alice").await;
        let src = tempfile::tempdir().unwrap();
        let data = b"ssh-ed25519 AAAA attacker".repeat(100);
        let item = crate::support::local_file(src.path(), "keys.txt", &data).await;
        alice
            .upload(std::slice::from_ref(&item), ConflictPolicy::Refuse, &())
            .await
            .unwrap();

        // Someone who can write to the download folder plants links at the
        // partial's predictable name: a symlink, then a hard link.
        let victim = tempfile::tempdir().unwrap();
        let precious = victim.path().join("authorized_keys");
        std::fs::write(&precious, b"mine\n").unwrap();
        let out = tempfile::tempdir().unwrap();
        let partial = out
            .path()
            .join(ferry_client::local::partial_name(&item.name, &item.hash));
        for plant in ["symlink", "hard link"] {
            match plant {
                "symlink" => std::os::unix::fs::symlink(&precious, &partial).unwrap(),
                _ => std::fs::hard_link(&precious, &partial).unwrap(),
            }
            let mut get = crate::support::ferry(&home, &hub);
            get.args(["--name", "alice", "get", "keys.txt", "-o"])
                .arg(out.path());
            let refused = run(&mut get).await;
            assert_ne!(refused.code, 0, "{plant}");
            assert!(
                refused.stderr.contains("not a partial download of ours"),
                "{plant}: {}",
                refused.stderr
            );
            assert_eq!(
                std::fs::read(&precious).unwrap(),
                b"mine\n",
                "{plant}: untouched"
            );
            assert!(!out.path().join("keys.txt").exists());
            std::fs::remove_file(&partial).unwrap();
        }
        // With the plant gone, the download works.
        let mut get = crate::support::ferry(&home, &hub);
        get.args(["--name", "alice", "get", "keys.txt", "-o"])
            .arg(out.path());
        assert_eq!(run(&mut get).await.code, 0);
        assert_eq!(std::fs::read(out.path().join("keys.txt")).unwrap(), data);
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_shared_file_swapped_for_a_link_is_not_served() {
    within(60, async {
        let hub = TestHub::start().await;
        let secret_dir = tempfile::tempdir().unwrap();
        let secret = b"-----BEGIN PRIVATE KEY----- do not leak";
        std::fs::write(secret_dir.path().join("id"), secret).unwrap();
        std::fs::write(secret_dir.path().join("b.txt"), secret).unwrap();
        let offered = b"harmless words, same size as the key!!";
        let files: [(&str, &[u8]); 2] = [("a.txt", offered), ("sub/b.txt", offered)];
        let peer = crate::support::TestPeer::start(&hub, "bob", &files).await;
        // Between the scan and a fetch: the file itself becomes a link, and
        // a folder on the other file's path does.
        let shared = peer.dir.path();
        std::fs::remove_file(shared.join("a.txt")).unwrap();
        std::os::unix::fs::symlink(secret_dir.path().join("id"), shared.join("a.txt")).unwrap();
        std::fs::rename(shared.join("sub"), shared.join("sub.away")).unwrap();
        std::os::unix::fs::symlink(secret_dir.path(), shared.join("sub")).unwrap();

        let home = Home::new();
        let mut alice = home.client(&hub, "alice").await;
        let me = crate::support::identity(&home);
        let quick = (
            std::time::Duration::from_secs(2),
            std::time::Duration::from_secs(5),
        );
        for name in ["a.txt", "sub/b.txt"] {
            let grant = alice
                .request_peer("bob", name, me.fingerprint)
                .await
                .unwrap();
            let out = tempfile::tempdir().unwrap();
            let target = (out.path(), std::path::Path::new("got"));
            let got = ferry_client::peer::fetch::fetch_direct(
                &grant,
                &me,
                target,
                ConflictPolicy::Refuse,
                &(),
                quick,
            )
            .await;
            // Refused by the peer before any byte: not bytes that then
            // failed the hash check.
            match &got {
                Err(ferry_client::ClientError::Hub { code, message }) => {
                    assert_eq!(*code, ErrorCode::NotFound, "{name}: {message}");
                }
                other => panic!("{name}: expected the peer's refusal, got {other:?}"),
            }
            for entry in std::fs::read_dir(out.path()).unwrap() {
                let bytes = std::fs::read(entry.unwrap().path()).unwrap();
                assert!(
                    !bytes.windows(8).any(|w| w == &secret[..8]),
                    "{name}: the key leaked"
                );
            }
        }
        peer.abandon().await;
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn names_stored_before_one_spelling_are_respelled_and_reachable() {
    within(60, async {
        let hub = TestHub::start_with(|c| c.tls = false).await;
        let home = Home::new();
        let mut alice = home.client(&hub, "alice").await;
        let src = tempfile::tempdir().unwrap();
        for (name, data) in [
            ("alice/cafe.txt", &b"coffee"[..]),
            ("alice/tips.sh", b"tips"),
        ] {
            let item = crate::support::local_file(src.path(), name, data).await;
            alice
                .upload(std::slice::from_ref(&item), ConflictPolicy::Refuse, &())
                .await
                .unwrap()[0]
                .as_ref()
                .unwrap();
        }
        drop(alice);
        // As an older hub stored them: decomposed, and with a zero-width space.
        let hub = {
            let dir = hub.stop().await;
            let db = rusqlite::Connection::open(dir.path().join("data/catalog.db")).unwrap();
            for (from, to) in [
                ("alice/cafe.txt", "alice/cafe\u{301}.txt"),
                ("alice/tips.sh", "alice/tips\u{200B}.sh"),
            ] {
                let renamed = db
                    .execute("UPDATE files SET name = ?2 WHERE name = ?1", [from, to])
                    .unwrap();
                assert_eq!(renamed, 1);
            }
            drop(db);
            TestHub::start_in(dir, |c| c.tls = false).await
        };
        let mut alice = home.client(&hub, "alice").await;
        let names: Vec<String> = alice
            .list(None)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(names, ["alice/caf\u{E9}.txt", "alice/tips[U+200B].sh"]);
        let out = tempfile::tempdir().unwrap();
        let mut get = crate::support::ferry(&home, &hub);
        get.args(["--name", "alice", "get", "alice/cafe\u{301}.txt", "-o"])
            .arg(out.path());
        let got = run(&mut get).await;
        assert_eq!(got.code, 0, "{}", got.stderr);
        assert_eq!(
            std::fs::read(out.path().join("caf\u{E9}.txt")).unwrap(),
            b"coffee"
        );
        hub.stop().await;
    })
    .await;
}
