//! The peer network through the libraries: share, search, direct fetch,
//! relay fallback, presence, and hostile peers.

use std::path::Path;
use std::time::Duration;

use ferry_client::ClientError;
use ferry_client::peer::agent::ShareEvent;
use ferry_client::peer::fetch::fetch_direct;
use ferry_protocol::{ConflictPolicy, ErrorCode, Source};

use crate::support::{
    Home, TestHub, TestPeer, closed_port, eventually, identity, local_file, pattern, within,
};

const QUICK: (Duration, Duration) = (Duration::from_secs(2), Duration::from_secs(10));

#[tokio::test]
async fn search_finds_the_store_and_every_online_peer() {
    within(60, async {
        let hub = TestHub::start().await;
        let bob = TestPeer::start(&hub, "bob", &[("Holiday.JPG", b"b1"), ("docs/notes.txt", b"b2")]).await;
        let carol = TestPeer::start(&hub, "carol", &[("holiday-2.jpg", b"c1")]).await;
        let home = Home::new();
        let mut alice = home.client(&hub, "alice").await;
        let src = tempfile::tempdir().unwrap();
        alice.upload(&[local_file(src.path(), "holiday-store.png", b"s").await], ConflictPolicy::Refuse, &()).await.unwrap();

        let (hits, truncated) = alice.search("HOLIDAY", 100).await.unwrap();
        assert!(!truncated);
        let names: Vec<_> = hits.iter().map(|h| h.file.name.as_str()).collect();
        assert_eq!(names, ["holiday-store.png", "Holiday.JPG", "holiday-2.jpg"], "store first, then peers");
        assert!(matches!(&hits[0].source, Source::Store { owner } if owner == "alice"));
        assert!(matches!(&hits[1].source, Source::Peer { handle, addr } if handle == "bob" && addr.starts_with("127.0.0.1:")));
        assert_eq!(alice.search("%", 100).await.unwrap().0.len(), 0, "the term is literal");
        assert_eq!(alice.search("", 2).await.unwrap(), (hits[..2].to_vec(), true), "results are bounded");
        bob.stop().await;
        carol.stop().await;
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_direct_fetch_verifies_and_its_grant_works_once() {
    within(60, async {
        let hub = TestHub::start().await;
        let data = pattern(3 << 20, 7);
        let mut bob = TestPeer::start(&hub, "bob", &[("big.bin", &data)]).await;
        let home = Home::new();
        let mut alice = home.client(&hub, "alice").await;
        let me = identity(&home);
        let grant = alice
            .request_peer("bob", "big.bin", me.fingerprint)
            .await
            .unwrap();
        let out = tempfile::tempdir().unwrap();
        let got = fetch_direct(
            &grant,
            &me,
            (out.path(), Path::new("big.bin")),
            ConflictPolicy::Refuse,
            &(),
            QUICK,
        )
        .await
        .unwrap();
        assert_eq!(std::fs::read(got.path.unwrap()).unwrap(), data);
        bob.wait_for(|e| {
            matches!(
                e,
                ShareEvent::Served(ferry_client::peer::serve::Served::Sent { .. })
            )
        })
        .await;

        let again = fetch_direct(
            &grant,
            &me,
            (out.path(), Path::new("again.bin")),
            ConflictPolicy::Refuse,
            &(),
            QUICK,
        )
        .await;
        assert_eq!(
            again.unwrap_err().hub_code(),
            Some(ErrorCode::PermissionDenied),
            "a grant is single-use"
        );
        assert!(!out.path().join("again.bin").exists());
        // The peer tells the hub the grant is used up: it no longer counts
        // against alice (who could otherwise fetch only so many per window).
        let released =
            crate::support::eventually(10, async || hub.hub.grants.held_by("alice") == 0).await;
        assert!(released, "the hub still counts the used grant");
        bob.stop().await;
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_peer_is_relayed_through_the_hub_which_keeps_a_copy() {
    within(60, async {
        let hub = TestHub::start().await;
        let closed_port = closed_port();
        // Large enough for the hub to write its copy direct, with a tail
        // that goes through the page cache.
        let data = pattern((9 << 20) + 3, 9);
        let bob =
            TestPeer::start_advertising(&hub, "bob", &[("far.bin", &data)], Some(closed_port))
                .await;
        let home = Home::new();
        let mut alice = home.client(&hub, "alice").await;
        let me = identity(&home);
        let grant = alice
            .request_peer("bob", "far.bin", me.fingerprint)
            .await
            .unwrap();
        let out = tempfile::tempdir().unwrap();
        let target = (out.path(), Path::new("far.bin"));
        let direct = fetch_direct(&grant, &me, target, ConflictPolicy::Refuse, &(), QUICK).await;
        assert!(
            matches!(direct, Err(ClientError::Connect { .. })),
            "{direct:?}"
        );
        let relayed = alice
            .fetch_relayed(&grant, target, ConflictPolicy::Refuse, &())
            .await
            .unwrap();
        assert_eq!(std::fs::read(relayed.path.unwrap()).unwrap(), data);
        let stored = alice.list(None).await.unwrap();
        assert_eq!(
            (stored[0].name.as_str(), stored[0].owner.as_str()),
            ("far.bin", "bob"),
            "the relayed copy stays in the store"
        );
        let blob = hub.hub.store.blob_path(&stored[0].hash);
        assert!(
            std::fs::read(blob).unwrap() == data,
            "the copy has the same bytes"
        );
        assert_eq!(hub.leftovers(), 0, "no temp file left behind");
        bob.stop().await;
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn offers_follow_the_folder_and_vanish_with_the_peer() {
    within(60, async {
        let hub = TestHub::start().await;
        let bob = TestPeer::start(&hub, "bob", &[("a.txt", b"a")]).await;
        let home = Home::new();
        let mut alice = home.client(&hub, "alice").await;
        std::fs::write(bob.dir.path().join("new.txt"), b"new").unwrap();
        std::fs::remove_file(bob.dir.path().join("a.txt")).unwrap();
        bob.rescan.notify_one();
        assert!(
            eventually(5, async || {
                let names: Vec<_> = alice
                    .search("", 10)
                    .await
                    .unwrap()
                    .0
                    .into_iter()
                    .map(|h| h.file.name)
                    .collect();
                names == ["new.txt"]
            })
            .await
        );
        bob.stop().await;
        assert!(
            alice.search("", 10).await.unwrap().0.is_empty(),
            "a peer that leaves withdraws everything"
        );
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_direct_fetch_cut_midway_resumes_with_a_new_grant() {
    within(60, async {
        let hub = TestHub::start().await;
        let data = pattern(4 << 20, 11);
        let (bob, _proxy) =
            TestPeer::start_behind_cutter(&hub, "bob", &[("cut.bin", &data)], 2_600_000).await;
        let home = Home::new();
        let mut alice = home.client(&hub, "alice").await;
        let me = identity(&home);
        let out = tempfile::tempdir().unwrap();
        let target = (out.path(), Path::new("cut.bin"));

        let grant = alice
            .request_peer("bob", "cut.bin", me.fingerprint)
            .await
            .unwrap();
        let cut = fetch_direct(&grant, &me, target, ConflictPolicy::Refuse, &(), QUICK).await;
        assert!(cut.is_err(), "the proxy cut the transfer");
        assert!(
            !out.path().join("cut.bin").exists(),
            "a partial file is never visible"
        );

        let grant = alice
            .request_peer("bob", "cut.bin", me.fingerprint)
            .await
            .unwrap();
        let done = fetch_direct(&grant, &me, target, ConflictPolicy::Refuse, &(), QUICK)
            .await
            .unwrap();
        assert!(
            done.resumed_from > 0,
            "continued from the verified-at-the-end partial"
        );
        assert_eq!(std::fs::read(out.path().join("cut.bin")).unwrap(), data);
        bob.stop().await;
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn slow_handshakes_from_one_host_do_not_lock_a_peer_port() {
    within(60, async {
        let hub = TestHub::start().await;
        let data = pattern(10_000, 3);
        let bob = TestPeer::start(&hub, "bob", &[("song.flac", &data)]).await;
        let home = Home::new();
        let mut alice = home.client(&hub, "alice").await;
        let me = identity(&home);
        let grant = alice
            .request_peer("bob", "song.flac", me.fingerprint)
            .await
            .unwrap();
        // Another host opens every slot the peer port has, and says nothing.
        let peer_addr: std::net::SocketAddr = grant.addr.parse().unwrap();
        let mut silent = Vec::new();
        for _ in 0..64 {
            silent.push(crate::support::connect_from(peer_addr, [127, 0, 0, 2]).await);
        }
        let out = tempfile::tempdir().unwrap();
        let got = fetch_direct(
            &grant,
            &me,
            (out.path(), Path::new("song.flac")),
            ConflictPolicy::Refuse,
            &(),
            QUICK,
        )
        .await
        .unwrap();
        assert_eq!(std::fs::read(got.path.unwrap()).unwrap(), data);
        drop(silent);
        bob.stop().await;
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_peer_spelled_with_capitals_is_found_and_fetched_from_by_any_spelling() {
    within(60, async {
        let hub = TestHub::start().await;
        let data = pattern(100_000, 9);
        let peer = TestPeer::start(&hub, "Bob", &[("song.ogg", &data)]).await;
        let home = Home::new();
        let mut alice = home.client(&hub, "alice").await;
        let (hits, _) = alice.search("song", 10).await.unwrap();
        let shown: Vec<_> = hits
            .iter()
            .filter_map(|h| match &h.source {
                ferry_protocol::Source::Peer { handle, .. } => Some(handle.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(shown, ["Bob"], "spelled as registered");
        let me = identity(&home);
        for spelling in ["Bob", "bob", "BOB"] {
            let grant = alice
                .request_peer(spelling, "song.ogg", me.fingerprint)
                .await;
            let grant = grant.unwrap_or_else(|e| panic!("{spelling}: {e}"));
            assert_eq!(grant.owner, "Bob");
            let out = tempfile::tempdir().unwrap();
            let target = (out.path(), Path::new("song.ogg"));
            let got = fetch_direct(&grant, &me, target, ConflictPolicy::Refuse, &(), QUICK).await;
            assert_eq!(std::fs::read(got.unwrap().path.unwrap()).unwrap(), data);
        }
        peer.stop().await;
        hub.stop().await;
    })
    .await;
}
