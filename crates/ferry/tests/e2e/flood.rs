//! Floods from one source address leave every other address served at
//! once: silent, Hello-only, subscribed, never-reading and trickling
//! connections, and frames too big for a connection that has not logged in.

use std::time::Duration;

use ferry_protocol::{ConflictPolicy, ContentHash, ErrorCode, Request, Response, UploadMode};

use crate::support::{
    Home, Raw, TestHub, code_of, connect_from, local_file, served_at_once, within,
};

#[tokio::test]
async fn silent_and_hello_only_floods_from_two_hosts_leave_a_third_served() {
    within(60, async {
        let hub = TestHub::start_with(|c| {
            c.tls = false;
            c.max_connections = 400;
        })
        .await;
        let mut silent = Vec::new();
        for _ in 0..300 {
            silent.push(connect_from(hub.addr, [127, 0, 0, 2]).await);
        }
        let mut hello_only = Vec::new();
        let mut welcomed = 0;
        for _ in 0..300 {
            let mut raw = Raw::connect_from(hub.addr, [127, 0, 0, 3]).await;
            welcomed += usize::from(raw.greeted().await);
            hello_only.push(raw);
        }
        assert_eq!(
            welcomed, 128,
            "a host gets 128 connections that have not logged in"
        );
        served_at_once(&hub).await;
        drop((silent, hello_only));
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_registration_flood_from_one_host_leaves_another_registering() {
    within(60, async {
        let hub = TestHub::start_with(|c| {
            c.tls = false;
            c.registrations_per_source = 20;
        })
        .await;
        let mut registered = 0;
        for i in 0..60 {
            let mut raw = Raw::connect_from(hub.addr, [127, 0, 0, 4]).await;
            registered += usize::from(raw.try_log_in(&format!("flood{i}")).await);
        }
        assert_eq!(registered, 20, "one host registers only its share");
        let mut other = Raw::connect_from(hub.addr, [127, 0, 0, 5]).await;
        assert!(
            within(5, other.try_log_in("newcomer")).await,
            "another host registers at once"
        );
        served_at_once(&hub).await;
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_connection_that_does_not_log_in_is_closed_at_the_login_deadline() {
    within(30, async {
        let hub = TestHub::start_with(|c| {
            c.tls = false;
            c.login_timeout = Duration::from_millis(500);
        })
        .await;
        let mut idle = Raw::connect_from(hub.addr, [127, 0, 0, 3]).await;
        assert!(idle.greeted().await);
        assert_eq!(code_of(&idle.recv().await), Some(ErrorCode::Timeout));
        assert!(idle.closed_by_hub().await);
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn subscribers_from_one_host_take_only_its_share() {
    within(60, async {
        let hub = TestHub::start_with(|c| {
            c.tls = false;
            c.max_connections = 120;
            c.max_connections_per_source = 50;
        })
        .await;
        let mut subscribers = Vec::new();
        let mut admitted = 0;
        for i in 0..150 {
            let mut raw = Raw::connect_from(hub.addr, [127, 0, 0, 2]).await;
            if raw.try_log_in(&format!("sub{i}")).await {
                assert_eq!(
                    raw.call(&Request::Subscribe).await,
                    Some(Response::Subscribed)
                );
                admitted += 1;
            }
            subscribers.push(raw);
        }
        assert_eq!(admitted, 50);
        served_at_once(&hub).await;
        drop(subscribers);
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_client_that_never_reads_is_closed_at_the_write_deadline() {
    within(60, async {
        let hub = TestHub::start_with(|c| {
            c.tls = false;
            c.stall_timeout = Duration::from_millis(500);
        })
        .await;
        // Listings of long names, so the replies fill every socket buffer.
        let src = tempfile::tempdir().unwrap();
        let mut items = Vec::new();
        for i in 0..100 {
            let name = format!("{}/{i:03}", "n".repeat(200));
            items.push(local_file(src.path(), &name, name.as_bytes()).await);
        }
        let mut owner = Home::new().client(&hub, "owner").await;
        let stored = owner
            .upload(&items, ConflictPolicy::Refuse, &())
            .await
            .unwrap();
        assert!(stored.iter().all(Result::is_ok));

        let mut deaf = Raw::connect_from(hub.addr, [127, 0, 0, 2]).await;
        assert!(deaf.try_log_in("deaf").await);
        // Ask for far more than the socket buffers hold, and never read.
        let list = Request::List {
            prefix: None,
            after: None,
            limit: 100,
        };
        for _ in 0..2_000 {
            let write = tokio::time::timeout(Duration::from_secs(5), deaf.writer.queue(&list));
            if !matches!(write.await, Ok(Ok(()))) {
                break; // the hub stopped reading: it is stuck writing
            }
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), deaf.writer.flush()).await;
        served_at_once(&hub).await;
        // Not reading for four write deadlines: the hub gives up and hangs up.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let mut drained = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match within(10, deaf.reader.read_raw(&mut buf)).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n as u64,
            }
        }
        let all = 2_000 * 100 * 200;
        assert!(
            drained < all,
            "the hub sent all {drained} bytes instead of giving up"
        );
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_trickling_upload_is_cut_off() {
    within(60, async {
        let hub = TestHub::start_with(|c| {
            c.tls = false;
            c.stall_timeout = Duration::from_secs(1);
        })
        .await;
        let mut slow = Raw::logged_in(hub.addr, "trickle").await;
        let upload = Request::Upload {
            name: "slow.bin".into(),
            size: 4 << 20,
            hash: ContentHash::of(b"?"),
            policy: ConflictPolicy::Refuse,
            mode: UploadMode::Negotiate,
        };
        assert_eq!(
            slow.call(&upload).await,
            Some(Response::UploadReady { offset: 0 })
        );
        let started = tokio::time::Instant::now();
        let mut cut_off = false;
        // 100 bytes every 200 ms never misses a 1 s deadline per read.
        for _ in 0..50 {
            if slow.writer.write_raw(&[0u8; 100]).await.is_err()
                || slow.writer.flush().await.is_err()
            {
                cut_off = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            if started.elapsed() > Duration::from_secs(3) {
                break;
            }
        }
        if !cut_off {
            assert_eq!(code_of(&slow.recv().await), Some(ErrorCode::Timeout));
        }
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(slow.closed_by_hub().await);
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_big_frame_before_login_is_refused_at_its_length() {
    within(30, async {
        let hub = TestHub::start_with(|c| c.tls = false).await;
        let mut raw = Raw::connect_from(hub.addr, [127, 0, 0, 2]).await;
        // 64 KiB announced: fine after login, too much before it.
        raw.raw_bytes(&(64u32 << 10).to_be_bytes()).await;
        assert_eq!(code_of(&raw.recv().await), Some(ErrorCode::TooLarge));
        assert!(raw.closed_by_hub().await);

        let mut chatty = Raw::connect_from(hub.addr, [127, 0, 0, 2]).await;
        let hello = Request::Hello {
            version: ferry_protocol::PROTOCOL_VERSION,
            agent: "a".repeat(ferry_protocol::MAX_TEXT_LEN + 1),
        };
        assert_eq!(
            code_of(&chatty.call(&hello).await),
            Some(ErrorCode::TooLarge)
        );
        served_at_once(&hub).await;
        hub.stop().await;
    })
    .await;
}

/// The resident memory of process `pid`, in bytes.
fn rss_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kib * 1024
}

/// Offers `count` files with names of about 1,000 bytes as `handle`;
/// returns the connection (the peer stays online while it is open) and
/// how many the hub took.
async fn offer_flood(addr: std::net::SocketAddr, handle: &str, count: usize) -> (Raw, u32) {
    let mut raw = Raw::sharing(addr, handle).await;
    let names: Vec<String> = (0..count)
        .map(|i| format!("{handle}/{}/{i:06}", vec!["n".repeat(200); 4].join("/")))
        .collect();
    let mut total = 0;
    for chunk in names.chunks(ferry_protocol::MAX_OFFERS_PER_FRAME) {
        let files = chunk
            .iter()
            .map(|name| ferry_protocol::Offered {
                name: name.clone(),
                size: 1,
                hash: ContentHash::of(name.as_bytes()),
            })
            .collect();
        total = raw.offer(files, false).await.0;
    }
    (raw, total)
}

#[tokio::test]
async fn offer_floods_from_many_handles_stay_within_the_hubs_budget() {
    within(120, async {
        let data = tempfile::tempdir().unwrap();
        let config = data.path().join("hub.toml");
        std::fs::write(
            &config,
            "max_offer_memory = 16777216\nadmission = \"open\"\n",
        )
        .unwrap();
        let mut serve = tokio::process::Command::new(crate::support::ferry_bin())
            .args([
                "serve",
                "--plaintext",
                "--listen",
                "127.0.0.1:0",
                "--config",
            ])
            .arg(&config)
            .arg("--data")
            .arg(data.path().join("data"))
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut out = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(
            serve.stdout.take().unwrap(),
        ));
        let first = out.next_line().await.unwrap().unwrap();
        let listening = first.strip_prefix("Ferry hub listening on ").unwrap();
        let addr = listening.parse().unwrap();
        let pid = serve.id().unwrap();
        let before = rss_of(pid);

        // Three handles offer 30,000 names of 1 KB each: 90 MB of names.
        let mut peers = Vec::new();
        let mut taken = 0;
        for handle in ["flood1", "flood2", "flood3"] {
            let (raw, total) = offer_flood(addr, handle, 30_000).await;
            taken += total;
            peers.push(raw);
        }
        let grown = rss_of(pid).saturating_sub(before);
        assert!(
            taken > 1_000 && taken < 30_000,
            "the budget took some offers and refused most: {taken} taken"
        );
        assert!(
            grown < 48 << 20,
            "the hub grew by {} MiB for a 16 MiB index",
            grown >> 20
        );

        let home = Home::new();
        let search = crate::support::run(
            crate::support::ferry_at(&home, listening, false)
                .args(["--name", "witness", "search", "flood1"]),
        )
        .await;
        assert_eq!(search.code, 0, "{}", search.stderr);
        drop(peers);
        serve.kill().await.unwrap();
    })
    .await;
}
