//! Access control end to end: login proofs that cannot be replayed, invites
//! that pin the hub, one policy for every role, quotas, revocation, slowed
//! guesses, the audit log, and old handles moving onto keys.

use std::time::{Duration, Instant};

use ferry_client::HubClient;
use ferry_client::identity::LoginKey;
use ferry_io::{FrameReader, FrameWriter};
use ferry_protocol::{
    Claim, ConflictPolicy, ErrorCode, FileName, Fingerprint, InviteLink, InviteSecret, InviteTerms,
    PROTOCOL_VERSION, Request, Response, Role, UploadMode, UserChange,
};

use crate::support::{
    Home, Raw, TestHub, TestPeer, code_of, eventually, ferry_bin, local_file, run, within,
};

fn terms(role: Role) -> InviteTerms {
    InviteTerms {
        role,
        uses: 1,
        expires_at: None,
        quota: None,
    }
}

/// An invite made by `admin` for `role`.
async fn invite(admin: &mut HubClient, terms: InviteTerms) -> InviteSecret {
    admin.create_invite(terms).await.unwrap().1
}

/// A greeted plaintext connection from `source` logged in with `key` as
/// `claim` says; the reply.
async fn raw_login(
    hub: &TestHub,
    source: [u8; 4],
    handle: &str,
    key: &LoginKey,
    claim: Claim,
) -> (Raw, Option<Response>) {
    let mut raw = Raw::connect_from(hub.addr, source).await;
    assert!(raw.greeted().await);
    let request = raw.claim_request(handle, key, claim);
    let reply = raw.call(&request).await;
    (raw, reply)
}

#[tokio::test]
async fn a_recorded_login_proof_logs_in_nowhere_else() {
    within(60, async {
        let alice = Home::new();
        let (hub, _owner) = TestHub::invite_only(false, &alice, "alice").await;
        let key = alice.credentials().key;

        // Recorded on one connection, replayed on another: refused.
        let mut first = Raw::connect(hub.addr).await;
        assert!(first.greeted().await);
        let recorded = first.claim_request("alice", &key, Claim::Existing);
        let mut second = Raw::connect(hub.addr).await;
        assert!(second.greeted().await);
        let replayed = second.call(&recorded).await;
        assert_eq!(
            code_of(&replayed),
            Some(ErrorCode::PermissionDenied),
            "{replayed:?}"
        );
        let genuine = first.call(&recorded).await;
        assert!(
            matches!(genuine, Some(Response::LoggedIn { .. })),
            "{genuine:?}"
        );

        // A fake TLS hub passes the real hub's challenge on and relays the
        // proof it gets: the proof is bound to the fake hub's TLS session.
        let fake_dir = tempfile::tempdir().unwrap();
        let fake_tls =
            ferry_hub::tls::load_or_create(fake_dir.path(), &["ferry-hub".to_owned()]).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake_addr = listener.local_addr().unwrap();
        let real = hub.addr;
        let fake = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let tls = fake_tls.acceptor().accept(stream).await.unwrap();
            let (read, write) = tokio::io::split(tls);
            let mut reader = FrameReader::<_, Request>::new(read);
            let mut writer = FrameWriter::<_, Response>::new(write);
            let _hello = reader.recv().await.unwrap();
            let mut upstream = Raw::connect(real).await;
            assert!(upstream.greeted().await);
            let welcome = Response::Welcome {
                version: PROTOCOL_VERSION,
                agent: "fake".into(),
                challenge: upstream.challenge,
            };
            writer.send(&welcome).await.unwrap();
            let login = reader.recv().await.unwrap().unwrap();
            let relayed = upstream.call(&login).await;
            let refusal = Response::Error {
                code: ErrorCode::Internal,
                message: "fake".into(),
            };
            writer.send(&refusal).await.unwrap();
            relayed
        });
        let mut victim = HubClient::connect(&alice.options(fake_addr, true))
            .await
            .unwrap();
        let credentials = alice.credentials();
        let _ = victim
            .authenticate("alice", &credentials, Claim::Existing)
            .await;
        let relayed = within(10, fake).await.unwrap();
        assert_eq!(
            code_of(&relayed),
            Some(ErrorCode::PermissionDenied),
            "{relayed:?}"
        );
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn join_refuses_an_impostor_before_sending_anything() {
    within(60, async {
        let owner = Home::new();
        let (hub, mut admin) = TestHub::invite_only(true, &owner, "olive").await;
        let secret = invite(&mut admin, terms(Role::Member)).await;
        let real = InviteLink {
            addr: hub.addr.to_string(),
            fingerprint: hub.hub.fingerprint(),
            secret,
        };

        // An impostor at the invite's address, with its own certificate,
        // records whatever the client sends inside TLS.
        let impostor_dir = tempfile::tempdir().unwrap();
        let impostor_tls =
            ferry_hub::tls::load_or_create(impostor_dir.path(), &["ferry-hub".to_owned()]).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let impostor_addr = listener.local_addr().unwrap();
        let impostor = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            match impostor_tls.acceptor().accept(stream).await {
                Err(_) => Vec::new(),
                Ok(mut tls) => {
                    let mut received = Vec::new();
                    let _ = tokio::io::AsyncReadExt::read_to_end(&mut tls, &mut received).await;
                    received
                }
            }
        });
        let fooled = InviteLink {
            addr: impostor_addr.to_string(),
            ..real.clone()
        };
        let mia = Home::new();
        let mut join = tokio::process::Command::new(ferry_bin());
        join.env("FERRY_HOME", mia.path())
            .args(["join", &fooled.to_string(), "--name", "mia"]);
        let refused = run(&mut join).await;
        assert_eq!(refused.code, 8, "certificate changed: {}", refused.stderr);
        let received = within(10, impostor).await.unwrap();
        assert!(
            received.is_empty(),
            "the impostor got {} bytes",
            received.len()
        );

        // The invite was not spent: it still works at the real hub.
        let mut join = tokio::process::Command::new(ferry_bin());
        join.env("FERRY_HOME", mia.path())
            .args(["join", &real.to_string(), "--name", "mia"]);
        let joined = run(&mut join).await;
        assert_eq!(joined.code, 0, "{}", joined.stderr);
        assert!(
            joined.stdout.contains("as mia (member)"),
            "{}",
            joined.stdout
        );
        hub.stop().await;
    })
    .await;
}

/// What each role may do, as one table: `true` where allowed.
#[tokio::test]
async fn each_role_may_do_exactly_what_its_role_allows() {
    within(90, async {
        let owner = Home::new();
        let (hub, mut admin) = TestHub::invite_only(false, &owner, "olive").await;
        // Files of a member for the others to try deleting, one each.
        let zed = Home::new();
        let mut zed_client = zed
            .join(&hub, invite(&mut admin, terms(Role::Member)).await, "zed")
            .await
            .unwrap();
        let src = tempfile::tempdir().unwrap();
        for role in ["owner", "admin", "member", "reader"] {
            let item = local_file(src.path(), &format!("zed/{role}.txt"), role.as_bytes()).await;
            let stored = zed_client
                .upload(&[item], ConflictPolicy::Refuse, &())
                .await
                .unwrap();
            assert!(stored[0].is_ok());
        }
        let ops = [
            "list",
            "search",
            "put",
            "rm own",
            "rm other's",
            "invite",
            "users",
            "audit",
            "manage owner",
            "share",
        ];
        // The owner last: changing its own quota ends its sessions.
        let table: [(Role, &str, [bool; 10]); 4] = [
            (
                Role::Admin,
                "adam",
                [true, true, true, true, true, true, true, true, false, true],
            ),
            (
                Role::Member,
                "mia",
                [
                    true, true, true, true, false, false, false, false, false, true,
                ],
            ),
            (
                Role::Reader,
                "rex",
                [
                    true, true, false, false, false, false, false, false, false, false,
                ],
            ),
            (Role::Owner, "olive", [true; 10]),
        ];
        for (role, handle, expected) in table {
            let (key, claim) = if role == Role::Owner {
                (owner.credentials().key, Claim::Existing)
            } else {
                let secret = invite(&mut admin, terms(role)).await;
                (
                    LoginKey::from_seed(&[role as u8 + 1; 32]),
                    Claim::Invite(secret),
                )
            };
            let (mut raw, reply) = raw_login(&hub, [127, 0, 0, 1], handle, &key, claim).await;
            assert!(
                matches!(reply, Some(Response::LoggedIn { role: r, .. }) if r == role),
                "{reply:?}"
            );
            let mut got = [false; 10];
            for (i, op) in ops.iter().enumerate() {
                got[i] = try_op(&hub, &mut raw, &key, handle, role, op).await;
            }
            let row: Vec<_> = ops
                .iter()
                .zip(got)
                .map(|(op, ok)| format!("{op}: {ok}"))
                .collect();
            assert_eq!(got, expected, "{role}: {}", row.join(", "));
        }
        hub.stop().await;
    })
    .await;
}

/// Tries `op` as `handle`; whether the hub allowed it. A refusal must say
/// which permission is missing.
async fn try_op(
    hub: &TestHub,
    raw: &mut Raw,
    key: &LoginKey,
    handle: &str,
    role: Role,
    op: &str,
) -> bool {
    let request = match op {
        "list" => Request::List {
            prefix: None,
            after: None,
            limit: 10,
        },
        "search" => Request::Search {
            term: "txt".into(),
            limit: 10,
        },
        "put" => {
            let body = b"mine";
            let upload = Request::Upload {
                name: format!("{handle}/f.txt"),
                size: body.len() as u64,
                hash: ferry_protocol::ContentHash::of(body),
                policy: ConflictPolicy::Refuse,
                mode: UploadMode::Eager,
            };
            raw.writer.send(&upload).await.unwrap();
            raw.raw_bytes(body).await;
            return allowed(raw.recv().await);
        }
        "rm own" => Request::Delete {
            name: format!("{handle}/f.txt"),
        },
        "rm other's" => Request::Delete {
            name: format!("zed/{}.txt", role.as_str()),
        },
        "invite" => Request::CreateInvite {
            terms: terms(Role::Reader),
        },
        "users" => Request::ListUsers,
        "audit" => Request::Audit { limit: 5 },
        "manage owner" => Request::ChangeUser {
            handle: "olive".into(),
            change: UserChange::Quota(Some(1 << 40)),
        },
        "share" => {
            // On a connection of its own: sharing takes the connection over.
            let (mut sharer, _) =
                raw_login(hub, [127, 0, 0, 1], handle, key, Claim::Existing).await;
            let share = Request::Share {
                peer_port: 9,
                fingerprint: Fingerprint::of_certificate(b"peer"),
                copies: None,
            };
            return allowed(sharer.call(&share).await);
        }
        other => panic!("no op {other}"),
    };
    allowed(raw.call(&request).await)
}

fn allowed(reply: Option<Response>) -> bool {
    match reply {
        Some(Response::Error {
            code: ErrorCode::PermissionDenied,
            message,
        }) => {
            assert!(message.starts_with("not allowed"), "{message}");
            false
        }
        Some(Response::Error { code, message }) => panic!("{code:?}: {message}"),
        Some(_) => true,
        None => panic!("the hub closed the connection"),
    }
}

#[tokio::test]
async fn a_quota_refuses_before_any_byte_and_deleting_gives_space_back() {
    within(60, async {
        let owner = Home::new();
        let (hub, mut admin) = TestHub::invite_only(true, &owner, "olive").await;
        let limited = InviteTerms {
            quota: Some(1_000_000),
            ..terms(Role::Member)
        };
        let mia = Home::new();
        let mut client = mia
            .join(&hub, invite(&mut admin, limited).await, "mia")
            .await
            .unwrap();
        let src = tempfile::tempdir().unwrap();
        let a = local_file(src.path(), "mia/a.bin", &vec![1; 600_000]).await;
        let b = local_file(src.path(), "mia/b.bin", &vec![2; 600_000]).await;
        assert!(
            client
                .upload(std::slice::from_ref(&a), ConflictPolicy::Refuse, &())
                .await
                .unwrap()[0]
                .is_ok()
        );

        let refused = client
            .upload(std::slice::from_ref(&b), ConflictPolicy::Refuse, &())
            .await
            .unwrap();
        let err = refused[0].as_ref().unwrap_err();
        assert_eq!(err.hub_code(), Some(ErrorCode::QuotaExceeded), "{err}");
        let text = err.to_string();
        assert!(text.contains("600.0 kB of 1.0 MB"), "{text}");
        assert_eq!(client.list(None).await.unwrap().len(), 1, "nothing stored");
        assert_eq!(hub.leftovers(), 0, "no partial kept");
        let usage = client.usage().await.unwrap();
        assert_eq!((usage.used, usage.quota), (600_000, Some(1_000_000)));

        // The binary says so with its own exit code.
        let mut put = tokio::process::Command::new(ferry_bin());
        put.env("FERRY_HOME", mia.path())
            .args(["--hub", &hub.addr.to_string(), "--name", "mia", "put"])
            .arg(&b.path);
        let put = run(&mut put).await;
        assert_eq!(put.code, 10, "{}", put.stderr);
        assert!(put.stderr.contains("quota"), "{}", put.stderr);

        client
            .delete(&FileName::parse("mia/a.bin").unwrap())
            .await
            .unwrap();
        assert_eq!(client.usage().await.unwrap().used, 0);
        assert!(
            client
                .upload(&[b], ConflictPolicy::Refuse, &())
                .await
                .unwrap()[0]
                .is_ok()
        );
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn uploads_under_way_together_cannot_pass_a_quota() {
    within(60, async {
        let owner = Home::new();
        let (hub, mut admin) = TestHub::invite_only(false, &owner, "olive").await;
        let limited = InviteTerms {
            quota: Some(1_000_000),
            ..terms(Role::Member)
        };
        let key = LoginKey::from_seed(&[5; 32]);
        let secret = invite(&mut admin, limited).await;
        let (mut first, reply) =
            raw_login(&hub, [127, 0, 0, 1], "mia", &key, Claim::Invite(secret)).await;
        assert!(
            matches!(reply, Some(Response::LoggedIn { .. })),
            "{reply:?}"
        );
        let (mut second, _) = raw_login(&hub, [127, 0, 0, 1], "mia", &key, Claim::Existing).await;
        let body = vec![7u8; 600_000];
        let upload = |name: &str| Request::Upload {
            name: name.into(),
            size: body.len() as u64,
            hash: ferry_protocol::ContentHash::of(&body),
            policy: ConflictPolicy::Refuse,
            mode: UploadMode::Negotiate,
        };
        assert_eq!(
            first.call(&upload("mia/a.bin")).await,
            Some(Response::UploadReady { offset: 0 })
        );
        first.raw_bytes(&body[..100_000]).await;
        // The first upload is under way, 100 kB in: its 600 kB are reserved.
        let refused = second.call(&upload("mia/b.bin")).await;
        match &refused {
            Some(Response::Error {
                code: ErrorCode::QuotaExceeded,
                message,
            }) => {
                assert!(message.contains("under way"), "{message}");
            }
            other => panic!("expected a quota refusal, got {other:?}"),
        }
        first.raw_bytes(&body[100_000..]).await;
        assert!(matches!(first.recv().await, Some(Response::Stored { .. })));
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn revoking_a_user_ends_its_share_within_a_second() {
    within(60, async {
        let owner = Home::new();
        let (hub, mut admin) = TestHub::invite_only(true, &owner, "olive").await;
        let mia = Home::new();
        drop(
            mia.join(&hub, invite(&mut admin, terms(Role::Member)).await, "mia")
                .await
                .unwrap(),
        );
        // The same client, to try logging in after the revocation.
        let again = Home::new();
        for file in ["login-key", "known_hubs"] {
            std::fs::copy(mia.path().join(file), again.path().join(file)).unwrap();
        }
        let peer = TestPeer::start_as(&hub, mia, "mia", &[("song.ogg", b"la la")]).await;
        let (hits, _) = admin.search("song", 10).await.unwrap();
        assert_eq!(hits.len(), 1, "{hits:?}");

        let revoked_at = Instant::now();
        let user = admin.change_user("mia", UserChange::Revoke).await.unwrap();
        assert!(user.revoked);
        let gone = eventually(1, async || {
            admin.search("song", 10).await.unwrap().0.is_empty()
        })
        .await;
        assert!(
            gone,
            "offers still listed {:?} after revocation",
            revoked_at.elapsed()
        );

        let mut client = again.connect(&hub).await;
        let err = client
            .authenticate("mia", &again.credentials(), Claim::Existing)
            .await
            .unwrap_err();
        // Told what a stranger is told: revocation is nobody else's business.
        assert_eq!(err.hub_code(), Some(ErrorCode::InviteRequired), "{err}");
        let users = admin.users().await.unwrap();
        assert!(
            users.iter().any(|u| u.handle == "mia" && u.revoked),
            "{users:?}"
        );
        peer.abandon().await;
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn wrong_invite_secrets_slow_a_source_down_but_the_right_one_gets_in() {
    within(90, async {
        let owner = Home::new();
        let (hub, mut admin) = TestHub::invite_only(false, &owner, "olive").await;
        let secret = invite(&mut admin, terms(Role::Member)).await;
        let key = LoginKey::from_seed(&[6; 32]);
        let guesser = [127, 0, 0, 9];
        let mut waits = Vec::new();
        for n in 0..4u8 {
            let started = Instant::now();
            let wrong = Claim::Invite(InviteSecret([n; 32]));
            let (_, reply) = raw_login(&hub, guesser, "mia", &key, wrong).await;
            assert_eq!(code_of(&reply), Some(ErrorCode::InviteInvalid), "{reply:?}");
            waits.push(started.elapsed());
        }
        // Waits of 0, 250 ms, 500 ms and 1 s before the answers.
        assert!(waits[3] >= Duration::from_millis(900), "{waits:?}");
        assert!(waits[2] >= Duration::from_millis(450), "{waits:?}");
        let started = Instant::now();
        let (_, reply) = raw_login(&hub, guesser, "mia", &key, Claim::Invite(secret)).await;
        assert!(
            matches!(reply, Some(Response::LoggedIn { .. })),
            "never a lock-out: {reply:?}"
        );
        assert!(
            started.elapsed() >= Duration::from_millis(1800),
            "the right one waits too"
        );
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn used_up_expired_and_withdrawn_invites_admit_nobody() {
    within(60, async {
        let owner = Home::new();
        let (hub, mut admin) = TestHub::invite_only(true, &owner, "olive").await;
        let once = invite(&mut admin, terms(Role::Member)).await;
        Home::new().join(&hub, once, "first").await.unwrap();
        let past = InviteTerms {
            expires_at: Some(ferry_hub::publish::unix_now() - 10),
            ..terms(Role::Member)
        };
        let expired = invite(&mut admin, past).await;
        let (withdrawn_info, withdrawn) = admin.create_invite(terms(Role::Member)).await.unwrap();
        admin.remove_invite(&withdrawn_info.id).await.unwrap();
        for (what, secret) in [
            ("used up", once),
            ("expired", expired),
            ("withdrawn", withdrawn),
        ] {
            let err = Home::new()
                .join(&hub, secret, "second")
                .await
                .err()
                .expect(what);
            assert_eq!(
                err.hub_code(),
                Some(ErrorCode::InviteInvalid),
                "{what}: {err}"
            );
        }
        let listed = admin.invites().await.unwrap();
        assert!(
            listed.is_empty(),
            "only usable invites are listed: {listed:?}"
        );

        // The owner invite is spent too, and an admin cannot make another owner.
        let link = hub.hub.owner_invite(&hub.addr.to_string()).await.unwrap();
        assert!(link.is_none(), "the hub has an owner");
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn the_audit_log_chains_and_shows_where_it_was_changed() {
    within(60, async {
        let owner = Home::new();
        let (hub, mut admin) = TestHub::invite_only(true, &owner, "olive").await;
        let reader = Home::new();
        let mut rex = reader
            .join(&hub, invite(&mut admin, terms(Role::Reader)).await, "rex")
            .await
            .unwrap();
        let err = rex.users().await.unwrap_err();
        assert_eq!(err.hub_code(), Some(ErrorCode::PermissionDenied));
        let lines = admin.audit(50).await.unwrap();
        let actions: Vec<String> = lines
            .iter()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["action"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        for wanted in ["invite.owner", "join", "invite.create", "refused"] {
            assert!(
                actions.iter().any(|a| a == wanted),
                "{wanted} in {actions:?}"
            );
        }
        let err = rex.audit(5).await.unwrap_err();
        assert_eq!(err.hub_code(), Some(ErrorCode::PermissionDenied));

        let log = hub.dir.path().join("data/audit.log");
        let mut verify = tokio::process::Command::new(ferry_bin());
        verify.args(["audit", "--verify"]).arg(&log);
        let verified = run(&mut verify).await;
        assert_eq!(verified.code, 0, "{}", verified.stderr);
        assert!(
            verified.stdout.contains("chain intact"),
            "{}",
            verified.stdout
        );

        let text = std::fs::read_to_string(&log).unwrap();
        std::fs::write(&log, text.replacen("\"rex\"", "\"eve\"", 1)).unwrap();
        let broken = run(&mut verify).await;
        assert_eq!(broken.code, 1, "{}", broken.stdout);
        assert!(broken.stderr.contains("was changed"), "{}", broken.stderr);
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_handle_from_before_keys_moves_onto_the_key_at_its_next_login() {
    within(60, async {
        let hub = TestHub::start().await; // TLS, open: an upgraded hub
        let old_secret = [42u8; 32];
        let catalog = hub.dir.path().join("data/catalog.db");
        let db = rusqlite::Connection::open(&catalog).unwrap();
        db.execute(
            "INSERT INTO users (handle, secret_hash, created_at) VALUES ('old', ?1, 0)",
            [blake3::hash(&old_secret).as_bytes().to_vec()],
        )
        .unwrap();
        drop(db);
        let home = Home::new();
        write_secret(home.path(), &old_secret);
        let credentials = home.credentials();

        // The handle moves onto the key, on first contact too: what goes
        // over the wire is a proof bound to this connection, never the secret.
        let mut client = home.connect(&hub).await;
        let moved = client
            .authenticate("old", &credentials, Claim::Existing)
            .await
            .unwrap();
        assert_eq!(moved.handle, "old");

        // The old secret alone no longer logs in, with any other key.
        let thief = Home::new();
        write_secret(thief.path(), &old_secret);
        std::fs::copy(
            home.path().join("known_hubs"),
            thief.path().join("known_hubs"),
        )
        .unwrap();
        let mut stolen = thief.connect(&hub).await;
        let err = stolen
            .authenticate("old", &thief.credentials(), Claim::Existing)
            .await
            .unwrap_err();
        assert_eq!(err.hub_code(), Some(ErrorCode::HandleTaken), "{err}");
        home.client(&hub, "old").await;
        hub.stop().await;
    })
    .await;
}

/// A catalog as the hub before access control made it: schema 1, one
/// handle registered with a bearer secret.
fn plant_old_catalog(data: &std::path::Path, handle: &str, secret: &[u8; 32]) {
    std::fs::create_dir_all(data).unwrap();
    let init = include_str!("../../../hub/migrations/sqlite/0001_init.sql");
    let checksum = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, init.as_bytes());
    let db = rusqlite::Connection::open(data.join("catalog.db")).unwrap();
    db.execute_batch(init).unwrap();
    db.execute_batch(
        "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
         installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, \
         checksum BLOB NOT NULL, execution_time BIGINT NOT NULL)",
    )
    .unwrap();
    db.execute(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (1, 'init', 1, ?1, 0)",
        [checksum.as_ref().to_vec()],
    )
    .unwrap();
    db.execute(
        "INSERT INTO users (handle, secret_hash, created_at) VALUES (?1, ?2, 0)",
        rusqlite::params![handle, blake3::hash(secret).as_bytes().to_vec()],
    )
    .unwrap();
}

/// Starts `ferry serve` on `data` with `extra` flags; the child and the
/// banner up to the line `until` matches.
async fn serve_until(
    data: &std::path::Path,
    extra: &[&str],
    until: impl Fn(&str) -> bool,
) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(ferry_bin())
        .args(["serve", "--plaintext", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(stdout));
    let mut banner = String::new();
    loop {
        let line = lines.next_line().await.unwrap().expect("the banner line");
        banner.push_str(&line);
        banner.push('\n');
        if until(&line) {
            return (child, banner);
        }
    }
}

#[tokio::test]
async fn a_data_dir_from_before_invites_stays_open_until_told_and_its_handles_claim_it() {
    within(60, async {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let secret = [7u8; 32];
        plant_old_catalog(&data, "alice", &secret);

        // Open, as before; the owner invite is printed once, even so.
        let (mut open, banner) = serve_until(&data, &[], |l| l.contains("ferry join ")).await;
        assert!(
            banner.contains("OPEN") && banner.contains("predates invites"),
            "{banner}"
        );
        open.kill().await.unwrap();

        // By invite from now on; the owner invite waits in its file.
        let invite_only = ["--admission", "invite"];
        let (mut hub, banner) =
            serve_until(&data, &invite_only, |l| l.contains("owner invite is in")).await;
        assert!(banner.contains("by invite"), "{banner}");
        assert!(
            !banner.contains("ferry join ferry://"),
            "printed once only: {banner}"
        );
        let link = std::fs::read_to_string(data.join("owner-invite")).unwrap();
        let link = link.trim();
        let home = Home::new();
        write_secret(home.path(), &secret);
        let mut join = tokio::process::Command::new(ferry_bin());
        join.env("FERRY_HOME", home.path())
            .args(["join", link, "--name", "alice"]);
        let joined = run(&mut join).await;
        assert_eq!(joined.code, 0, "{}", joined.stderr);
        assert!(
            joined.stdout.contains("Rejoined") && joined.stdout.contains("as alice (owner)"),
            "{}",
            joined.stdout
        );
        let mut users = tokio::process::Command::new(ferry_bin());
        users.env("FERRY_HOME", home.path()).arg("users");
        let listed = run(&mut users).await;
        assert_eq!(listed.code, 0, "{}", listed.stderr);
        assert!(
            listed.stdout.contains("alice") && listed.stdout.contains("owner"),
            "{}",
            listed.stdout
        );
        hub.kill().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn a_recorded_proof_of_an_old_secret_moves_nothing() {
    within(60, async {
        let hub = TestHub::start_with(|c| c.tls = false).await;
        let old_secret = [43u8; 32];
        let hashed = *blake3::hash(&old_secret).as_bytes();
        let db = rusqlite::Connection::open(hub.dir.path().join("data/catalog.db")).unwrap();
        db.execute(
            "INSERT INTO users (handle, secret_hash, created_at) VALUES ('old', ?1, 0)",
            [hashed.to_vec()],
        )
        .unwrap();
        drop(db);
        // What a sniffer or a fake hub records of the victim's move.
        let victim = LoginKey::from_seed(&[1; 32]);
        let mut watched = Raw::connect(hub.addr).await;
        assert!(watched.greeted().await);
        let recorded = ferry_protocol::LegacyProof::new(
            &hashed,
            &watched.challenge,
            None,
            "old",
            &victim.public(),
        );
        // Replayed with the attacker's own key on a new connection: refused.
        let attacker = LoginKey::from_seed(&[2; 32]);
        let mut replay = Raw::connect(hub.addr).await;
        assert!(replay.greeted().await);
        let mut login = replay.claim_request("old", &attacker, Claim::Existing);
        if let Request::Login { legacy, .. } = &mut login {
            *legacy = Some(recorded);
        }
        assert_eq!(
            code_of(&replay.call(&login).await),
            Some(ErrorCode::HandleTaken)
        );
        // The genuine one, on its own connection, moves the handle.
        let mut login = watched.claim_request("old", &victim, Claim::Existing);
        if let Request::Login { legacy, .. } = &mut login {
            *legacy = Some(recorded);
        }
        assert!(matches!(
            watched.call(&login).await,
            Some(Response::LoggedIn { .. })
        ));
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn an_admin_demoted_or_revoked_leaves_no_working_invites_behind() {
    within(60, async {
        let owner = Home::new();
        let (hub, mut olive) = TestHub::invite_only(true, &owner, "olive").await;
        for change in [UserChange::Role(Role::Member), UserChange::Revoke] {
            let adam_home = Home::new();
            let handle = match change {
                UserChange::Revoke => "adam2",
                _ => "adam",
            };
            let secret = invite(&mut olive, terms(Role::Admin)).await;
            let mut adam = adam_home.join(&hub, secret, handle).await.unwrap();
            let left_behind = invite(&mut adam, terms(Role::Admin)).await;
            olive.change_user(handle, change).await.unwrap();
            let err = Home::new()
                .join(&hub, left_behind, "mole")
                .await
                .err()
                .expect("refused");
            assert_eq!(
                err.hub_code(),
                Some(ErrorCode::InviteInvalid),
                "{change:?}: {err}"
            );
        }
        // And an admin cannot make an owner, nor change one.
        let secret = invite(&mut olive, terms(Role::Admin)).await;
        let mut admin = Home::new().join(&hub, secret, "ada").await.unwrap();
        let err = admin.create_invite(terms(Role::Owner)).await.unwrap_err();
        assert_eq!(err.hub_code(), Some(ErrorCode::PermissionDenied));
        let err = admin
            .change_user("olive", UserChange::Revoke)
            .await
            .unwrap_err();
        assert_eq!(err.hub_code(), Some(ErrorCode::PermissionDenied));
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn an_invite_never_overrides_a_pinned_certificate() {
    within(60, async {
        let owner = Home::new();
        let (hub, mut olive) = TestHub::invite_only(true, &owner, "olive").await;
        let secret = invite(&mut olive, terms(Role::Member)).await;
        let mia = Home::new();
        drop(mia.connect(&hub).await); // pins the real certificate
        for fingerprint in [Some(Fingerprint([9; 32])), None] {
            let link = InviteLink {
                addr: hub.addr.to_string(),
                fingerprint,
                secret,
            };
            let mut join = tokio::process::Command::new(ferry_bin());
            join.env("FERRY_HOME", mia.path())
                .args(["join", &link.to_string(), "--name", "mia"]);
            let refused = run(&mut join).await;
            assert_ne!(refused.code, 0);
            assert!(refused.stderr.contains("pinned"), "{}", refused.stderr);
        }
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_relayed_copy_is_kept_only_where_the_sharing_peer_allows_it() {
    within(60, async {
        let owner = Home::new();
        let (hub, mut olive) = TestHub::invite_only(true, &owner, "olive").await;
        let me = crate::support::identity(&owner);
        // (peer, its choice, whether the hub keeps a copy): invite-only
        // hubs keep none unless the peer allows it.
        for (handle, copies, kept) in [("bob", None, false), ("carol", Some(true), true)] {
            let home = Home::new();
            let secret = invite(&mut olive, terms(Role::Member)).await;
            drop(home.join(&hub, secret, handle).await.unwrap());
            let name = format!("{handle}.bin");
            let data = format!("relayed from {handle}").into_bytes();
            let port = crate::support::closed_port();
            let files = [(name.as_str(), data.as_slice())];
            let peer = TestPeer::start_relayed(&hub, home, handle, &files, port, copies).await;
            let grant = olive
                .request_peer(handle, &name, me.fingerprint)
                .await
                .unwrap();
            let out = tempfile::tempdir().unwrap();
            let target = (out.path(), std::path::Path::new("x.bin"));
            let relayed = olive
                .fetch_relayed(&grant, target, ConflictPolicy::Refuse, &())
                .await
                .unwrap();
            assert_eq!(std::fs::read(relayed.path.unwrap()).unwrap(), data);
            let stored = olive
                .list(Some(&FileName::parse(&name).unwrap()))
                .await
                .unwrap();
            assert_eq!(!stored.is_empty(), kept, "{handle}: {stored:?}");
            peer.stop().await;
        }
        assert_eq!(hub.leftovers(), 0);
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn relayed_copies_stay_within_the_hubs_budget_and_count_for_no_one() {
    within(60, async {
        let hub = TestHub::start_with(|c| c.relay_cache = 50).await; // open: copies kept
        let home = Home::new();
        let mut alice = home.client(&hub, "alice").await;
        let me = crate::support::identity(&home);
        for (i, handle) in ["bob", "carol", "dave"].into_iter().enumerate() {
            let name = format!("{handle}.bin");
            let data = vec![i as u8; 20];
            let port = crate::support::closed_port();
            let files = [(name.as_str(), data.as_slice())];
            let peer = TestPeer::start_relayed(&hub, Home::new(), handle, &files, port, None).await;
            let grant = alice
                .request_peer(handle, &name, me.fingerprint)
                .await
                .unwrap();
            let out = tempfile::tempdir().unwrap();
            let target = (out.path(), std::path::Path::new("x.bin"));
            alice
                .fetch_relayed(&grant, target, ConflictPolicy::Refuse, &())
                .await
                .unwrap();
            peer.stop().await;
        }
        // 50 bytes hold two copies of 20: the oldest went.
        let listed: Vec<String> = alice
            .list(None)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.name)
            .collect();
        assert_eq!(listed, ["carol.bin", "dave.bin"]);
        assert_eq!(
            hub.hub.publisher.accounts.used("dave"),
            0,
            "a copy counts for no one"
        );
        assert_eq!(hub.blob_count(), 2, "the evicted copy's bytes are gone");
        hub.stop().await;
    })
    .await;
}

/// Writes a client's old secret as that client did: mode 0600.
fn write_secret(home: &std::path::Path, secret: &[u8; 32]) {
    ferry_io::disk::write_private(&home.join("secret"), secret).unwrap();
}
