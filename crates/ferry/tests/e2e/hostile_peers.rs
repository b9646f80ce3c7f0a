//! Hostile peers and requesters: each gets a clear error and nothing wrong
//! reaches anyone's disk.

use std::path::Path;
use std::time::Duration;

use ferry_client::ClientError;
use ferry_client::peer::fetch::fetch_direct;
use ferry_protocol::{ConflictPolicy, ContentHash, ErrorCode, Offered, Request, Response, Token};

use crate::support::{
    Home, Raw, TestHub, TestPeer, eventually, identity, pattern, raw_peer, within,
};

const QUICK: (Duration, Duration) = (Duration::from_secs(2), Duration::from_secs(5));

fn offered(name: &str, data: &[u8]) -> Offered {
    Offered {
        name: name.into(),
        size: data.len() as u64,
        hash: ContentHash::of(data),
    }
}

#[tokio::test]
async fn impostors_and_reused_or_foreign_grants_are_refused() {
    within(60, async {
        let hub = TestHub::start().await;
        let bob = TestPeer::start(&hub, "bob", &[("secret.txt", b"for alice only")]).await;
        let (alice_home, mallory_home) = (Home::new(), Home::new());
        let mut alice = alice_home.client(&hub, "alice").await;
        let (me, mallory) = (identity(&alice_home), identity(&mallory_home));
        let out = tempfile::tempdir().unwrap();
        let target = (out.path(), Path::new("secret.txt"));

        let grant = alice
            .request_peer("bob", "secret.txt", me.fingerprint)
            .await
            .unwrap();
        let stolen =
            fetch_direct(&grant, &mallory, target, ConflictPolicy::Refuse, &(), QUICK).await;
        assert_eq!(
            stolen.unwrap_err().hub_code(),
            Some(ErrorCode::PermissionDenied),
            "another certificate"
        );

        let mut forged = alice
            .request_peer("bob", "secret.txt", me.fingerprint)
            .await
            .unwrap();
        forged.token = Token([0; 32]);
        let made_up = fetch_direct(&forged, &me, target, ConflictPolicy::Refuse, &(), QUICK).await;
        assert_eq!(
            made_up.unwrap_err().hub_code(),
            Some(ErrorCode::PermissionDenied),
            "a token the hub never issued"
        );

        let mut wrong_peer = alice
            .request_peer("bob", "secret.txt", me.fingerprint)
            .await
            .unwrap();
        wrong_peer.fingerprint = mallory.fingerprint;
        let refused =
            fetch_direct(&wrong_peer, &me, target, ConflictPolicy::Refuse, &(), QUICK).await;
        assert!(
            matches!(refused, Err(ClientError::Tls { .. })),
            "the owner's certificate is checked: {refused:?}"
        );
        assert!(!out.path().join("secret.txt").exists());

        let missing = alice
            .request_peer("bob", "not-offered.txt", me.fingerprint)
            .await
            .unwrap_err();
        assert_eq!(missing.hub_code(), Some(ErrorCode::NotFound));
        bob.stop().await;
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn hostile_offers_and_floods_are_refused_per_offer() {
    within(30, async {
        let hub = TestHub::start_with(|c| {
            c.tls = false;
            c.max_offers_per_peer = 3;
        })
        .await;
        let long = "x".repeat(300);
        let mut files: Vec<_> = [
            "../../etc/passwd",
            "/abs",
            "a\x1b[2Jb",
            "back\\slash",
            long.as_str(),
            "",
            "dir/../x",
        ]
        .iter()
        .map(|n| offered(n, b"evil"))
        .collect();
        files.extend((0..5).map(|i| offered(&format!("ok{i}.txt"), b"fine")));
        let (_eve, total, refused) = raw_peer(&hub, "eve", files).await;
        assert_eq!(total, 3, "the per-peer cap holds");
        assert_eq!(refused.len(), 7 + 2);
        let home = Home::new();
        let mut alice = home.client(&hub, "alice").await;
        let names: Vec<_> = alice
            .search("", 100)
            .await
            .unwrap()
            .0
            .into_iter()
            .map(|h| h.file.name)
            .collect();
        assert_eq!(names, ["ok0.txt", "ok1.txt", "ok2.txt"]);
        hub.stop().await;
    })
    .await;
}

/// Answers the hub's `Expect`s on a raw peer connection; returns the token
/// of the first `PushRequest` (which it does not act on).
async fn acknowledge_until_push(raw: &mut Raw) -> Token {
    loop {
        match raw.recv().await {
            Some(Response::Expect { token, .. }) => raw
                .writer
                .send(&Request::GrantReady { token })
                .await
                .unwrap(),
            Some(Response::PushRequest { token, .. }) => return token,
            Some(_) => {}
            None => panic!("the hub closed the peer connection"),
        }
    }
}

#[tokio::test]
async fn a_relay_whose_owner_never_pushes_times_out() {
    within(30, async {
        let hub = TestHub::start_with(|c| {
            c.tls = false;
            c.relay_timeout = Duration::from_millis(500);
        })
        .await;
        let (mut silent, _, _) = raw_peer(&hub, "silent", vec![offered("x.bin", b"x")]).await;
        tokio::spawn(async move {
            acknowledge_until_push(&mut silent).await;
            // Never pushes; keeps the connection open until the test ends.
            let _ = silent.recv().await;
        });
        let home = Home::new();
        let mut alice = home.client(&hub, "alice").await;
        let grant = alice
            .request_peer("silent", "x.bin", identity(&home).fingerprint)
            .await
            .unwrap();
        let out = tempfile::tempdir().unwrap();
        let relayed = alice
            .fetch_relayed(
                &grant,
                (out.path(), Path::new("x.bin")),
                ConflictPolicy::Refuse,
                &(),
            )
            .await;
        assert_eq!(relayed.unwrap_err().hub_code(), Some(ErrorCode::Timeout));
        let again = alice
            .fetch_relayed(
                &grant,
                (out.path(), Path::new("x.bin")),
                ConflictPolicy::Refuse,
                &(),
            )
            .await;
        assert_eq!(
            again.unwrap_err().hub_code(),
            Some(ErrorCode::NotFound),
            "a grant is used up by its relay"
        );
        hub.stop().await;
    })
    .await;
}

/// Starts a raw peer offering `offered_data` that pushes `pushed` (and then
/// stalls, if `stall`) when asked to relay.
async fn lying_peer(
    hub: &TestHub,
    handle: &'static str,
    offered_data: &[u8],
    pushed: Vec<u8>,
    stall: bool,
) {
    let (mut peer, _, _) = raw_peer(hub, handle, vec![offered("f.bin", offered_data)]).await;
    let addr = hub.addr;
    tokio::spawn(async move {
        let token = acknowledge_until_push(&mut peer).await;
        let mut push = Raw::logged_in(addr, handle).await;
        assert!(matches!(
            push.call(&Request::Push { token }).await,
            Some(Response::UploadReady { offset: 0 })
        ));
        push.raw_bytes(&pushed).await;
        if stall {
            let _ = push.recv().await;
        }
        let _ = peer.recv().await;
    });
}

#[tokio::test]
async fn a_peer_that_sends_other_bytes_or_stalls_leaves_nothing_behind() {
    within(60, async {
        let hub = TestHub::start_with(|c| {
            c.tls = false;
            c.stall_timeout = Duration::from_millis(500);
        })
        .await;
        let real = pattern(100_000, 1);
        lying_peer(&hub, "liar", &real, pattern(100_000, 2), false).await;
        lying_peer(&hub, "staller", &real, real[..40_000].to_vec(), true).await;
        let home = Home::new();
        let out = tempfile::tempdir().unwrap();
        for (owner, want_corrupt) in [("liar", true), ("staller", false)] {
            let mut alice = home.client(&hub, "alice").await;
            let grant = alice
                .request_peer(owner, "f.bin", identity(&home).fingerprint)
                .await
                .unwrap();
            let result = alice
                .fetch_relayed(
                    &grant,
                    (out.path(), Path::new("f.bin")),
                    ConflictPolicy::Refuse,
                    &(),
                )
                .await;
            match result {
                Err(ClientError::Corrupt { .. }) => assert!(want_corrupt, "{owner}"),
                Err(e) => assert!(!want_corrupt, "{owner}: {e}"),
                Ok(_) => panic!("{owner}: bad bytes were accepted"),
            }
            assert!(
                !out.path().join("f.bin").exists(),
                "{owner}: nothing visible"
            );
        }
        let mut check = home.client(&hub, "alice").await;
        assert!(
            check.list(None).await.unwrap().is_empty(),
            "the hub kept no copy of bad bytes"
        );
        assert_eq!(hub.leftovers(), 0, "nor any temp file");
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_peer_that_goes_silent_drops_out_of_search() {
    within(30, async {
        let hub = TestHub::start_with(|c| {
            c.tls = false;
            c.peer_timeout = Duration::from_millis(500);
        })
        .await;
        let (_quiet, _, _) = raw_peer(&hub, "quiet", vec![offered("here.txt", b"h")]).await;
        let home = Home::new();
        let mut alice = home.client(&hub, "alice").await;
        assert_eq!(alice.search("here", 10).await.unwrap().0.len(), 1);
        assert!(
            eventually(5, async || alice
                .search("here", 10)
                .await
                .unwrap()
                .0
                .is_empty())
            .await
        );
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn one_requester_cannot_pile_up_grants() {
    within(60, async {
        let hub = TestHub::start_with(|c| c.tls = false).await;
        let (mut peer, _, _) = raw_peer(&hub, "eager", vec![offered("x.bin", b"x")]).await;
        tokio::spawn(async move {
            acknowledge_until_push(&mut peer).await;
        });
        let greedy = Home::new();
        let mut client = greedy.client(&hub, "greedy").await;
        let fingerprint = identity(&greedy).fingerprint;
        let cap = ferry_hub::grants::MAX_GRANTS_PER_REQUESTER;
        for i in 0..cap {
            let granted = client.request_peer("eager", "x.bin", fingerprint).await;
            assert!(granted.is_ok(), "grant {i}: {granted:?}");
        }
        let refused = client.request_peer("eager", "x.bin", fingerprint).await;
        assert_eq!(refused.unwrap_err().hub_code(), Some(ErrorCode::Busy));

        let other = Home::new();
        let mut fair = other.client(&hub, "fair").await;
        let granted = fair
            .request_peer("eager", "x.bin", identity(&other).fingerprint)
            .await;
        assert!(
            granted.is_ok(),
            "another requester still gets one: {granted:?}"
        );
        hub.stop().await;
    })
    .await;
}
