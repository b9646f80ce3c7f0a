//! Hostile and broken input: every case gets a clear error, closes at most
//! its own connection, and leaves nothing behind in the store.

use std::time::Duration;

use ferry_protocol::{
    ConflictPolicy, ContentHash, ErrorCode, PROTOCOL_VERSION, Request, Response, UploadMode,
};
use tokio::net::TcpStream;

use crate::support::{Raw, TestHub, code_of, served_at_once, within};

fn plaintext() -> impl FnOnce(&mut ferry_hub::HubConfig) {
    |c| c.tls = false
}

fn eager(name: &str, size: u64, hash: ContentHash) -> Request {
    Request::Upload {
        name: name.into(),
        size,
        hash,
        policy: ConflictPolicy::Refuse,
        mode: UploadMode::Eager,
    }
}

fn negotiated(name: &str, size: u64, hash: ContentHash) -> Request {
    Request::Upload {
        name: name.into(),
        size,
        hash,
        policy: ConflictPolicy::Refuse,
        mode: UploadMode::Negotiate,
    }
}

async fn listing_len(raw: &mut Raw) -> usize {
    match raw
        .call(&Request::List {
            prefix: None,
            after: None,
            limit: 100,
        })
        .await
    {
        Some(Response::Listing { entries, .. }) => entries.len(),
        other => panic!("expected a listing, got {other:?}"),
    }
}

#[tokio::test]
async fn an_oversized_length_prefix_is_rejected_before_allocating() {
    within(30, async {
        let hub = TestHub::start_with(plaintext()).await;
        // A Ferry frame's first byte is 0 (frames stay under 16 MiB): the
        // largest length that still reads as Ferry is refused as such...
        let mut raw = Raw::connect(hub.addr).await;
        raw.raw_bytes(&0x00FF_FFFFu32.to_be_bytes()).await;
        assert_eq!(code_of(&raw.recv().await), Some(ErrorCode::TooLarge));
        assert!(raw.closed_by_hub().await);
        served_at_once(&hub).await;
        // ...and any larger one is not Ferry at all: HTTP refuses it.
        let mut raw = tokio::net::TcpStream::connect(hub.addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut raw, &u32::MAX.to_be_bytes())
            .await
            .unwrap();
        let mut answer = Vec::new();
        let _ = tokio::io::AsyncReadExt::read_to_end(&mut raw, &mut answer).await;
        assert!(
            answer.is_empty() || answer.starts_with(b"HTTP/1.1 400"),
            "{answer:?}"
        );
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn garbage_and_truncated_frames_close_only_their_connection() {
    within(30, async {
        let hub = TestHub::start_with(plaintext()).await;
        let mut bystander = Raw::logged_in(hub.addr, "bystander").await;

        let mut garbage = Raw::logged_in(hub.addr, "garbage").await;
        garbage
            .raw_bytes(&[0, 0, 0, 4, 0xff, 0xfe, 0xfd, 0xfc])
            .await;
        assert_eq!(code_of(&garbage.recv().await), Some(ErrorCode::BadRequest));
        assert!(garbage.closed_by_hub().await);

        let mut cut = Raw::connect(hub.addr).await;
        cut.raw_bytes(&[0, 0, 0, 50, 1, 2, 3]).await;
        cut.writer.shutdown().await.unwrap();
        assert!(cut.closed_by_hub().await);

        assert_eq!(
            listing_len(&mut bystander).await,
            0,
            "other connections carry on"
        );
        served_at_once(&hub).await;
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn hostile_names_are_refused_and_the_connection_goes_on() {
    within(30, async {
        let hub = TestHub::start_with(plaintext()).await;
        let mut raw = Raw::logged_in(hub.addr, "eve").await;
        let long = "x".repeat(256);
        let bad = [
            "/etc/passwd",
            "a//b",
            "a/",
            ".",
            "..",
            "../../etc/passwd",
            "a/./b",
            "a\\b",
            "a\0b",
            "bell\x07",
            "esc\x1b[2J",
            long.as_str(),
            "",
        ];
        for name in bad {
            let hash = ContentHash::of(b"x");
            raw.writer.queue(&eager(name, 1, hash)).await.unwrap();
            raw.raw_bytes(b"x").await;
            assert_eq!(
                code_of(&raw.recv().await),
                Some(ErrorCode::InvalidName),
                "upload {name:?}"
            );
            let reply = raw.call(&negotiated(name, 5 << 20, hash)).await;
            assert_eq!(
                code_of(&reply),
                Some(ErrorCode::InvalidName),
                "negotiated upload {name:?}"
            );
            let reply = raw
                .call(&Request::Download {
                    name: name.into(),
                    offset: 0,
                })
                .await;
            assert_eq!(
                code_of(&reply),
                Some(ErrorCode::InvalidName),
                "download {name:?}"
            );
            let reply = raw.call(&Request::Delete { name: name.into() }).await;
            assert_eq!(
                code_of(&reply),
                Some(ErrorCode::InvalidName),
                "delete {name:?}"
            );
        }
        let reply = raw
            .call(&Request::List {
                prefix: Some("../x".into()),
                after: None,
                limit: 10,
            })
            .await;
        assert_eq!(code_of(&reply), Some(ErrorCode::InvalidName));
        assert_eq!(listing_len(&mut raw).await, 0);
        assert_eq!(hub.leftovers(), 0);
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn bytes_that_do_not_match_the_hash_are_not_stored() {
    within(30, async {
        let hub = TestHub::start_with(plaintext()).await;
        let mut raw = Raw::logged_in(hub.addr, "eve").await;
        raw.writer
            .queue(&eager("lie.txt", 5, ContentHash::of(b"truth")))
            .await
            .unwrap();
        raw.raw_bytes(b"lies!").await;
        assert_eq!(code_of(&raw.recv().await), Some(ErrorCode::HashMismatch));
        assert_eq!(
            listing_len(&mut raw).await,
            0,
            "nothing stored, and the connection goes on"
        );
        // Past the size kept in memory, an eager body waits in a temp file.
        let size = 100 << 10;
        raw.writer
            .queue(&eager("lie-2.bin", size, ContentHash::of(b"truth")))
            .await
            .unwrap();
        raw.raw_bytes(&vec![7u8; size as usize]).await;
        assert_eq!(code_of(&raw.recv().await), Some(ErrorCode::HashMismatch));
        assert_eq!(listing_len(&mut raw).await, 0);
        assert_eq!(hub.leftovers(), 0, "the temp file is removed");

        let size = 2 << 20;
        let reply = raw
            .call(&negotiated("big-lie.bin", size, ContentHash::of(b"other")))
            .await;
        assert_eq!(reply, Some(Response::UploadReady { offset: 0 }));
        raw.raw_bytes(&vec![7u8; size as usize]).await;
        assert_eq!(code_of(&raw.recv().await), Some(ErrorCode::HashMismatch));
        assert_eq!(listing_len(&mut raw).await, 0);
        assert_eq!(
            hub.leftovers(),
            0,
            "the bad partial is deleted, not kept for resume"
        );
        assert_eq!(hub.blob_count(), 0);
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn fewer_bytes_than_announced_store_nothing() {
    within(30, async {
        let hub = TestHub::start_with(plaintext()).await;
        let data = vec![1u8; 1000];
        let mut raw = Raw::logged_in(hub.addr, "eve").await;
        raw.writer
            .queue(&eager("short.bin", 1000, ContentHash::of(&data)))
            .await
            .unwrap();
        raw.raw_bytes(&data[..400]).await;
        raw.writer.shutdown().await.unwrap();
        assert_eq!(code_of(&raw.recv().await), Some(ErrorCode::SizeMismatch));
        assert!(raw.closed_by_hub().await);
        assert_eq!(hub.leftovers(), 0);
        let mut check = Raw::logged_in(hub.addr, "checker").await;
        assert_eq!(listing_len(&mut check).await, 0);
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn more_bytes_than_announced_store_nothing() {
    within(30, async {
        let hub = TestHub::start_with(plaintext()).await;
        let data = vec![2u8; 20];
        let mut raw = Raw::logged_in(hub.addr, "eve").await;
        // The client hashed 20 bytes but announces 10: the hub checks what it
        // was promised, finds the hash wrong, then the extra bytes are junk.
        raw.writer
            .queue(&eager("grown.bin", 10, ContentHash::of(&data)))
            .await
            .unwrap();
        raw.raw_bytes(&data).await;
        assert_eq!(code_of(&raw.recv().await), Some(ErrorCode::HashMismatch));
        assert!(raw.closed_by_hub().await);
        let mut check = Raw::logged_in(hub.addr, "checker").await;
        assert_eq!(listing_len(&mut check).await, 0);
        assert_eq!(hub.leftovers(), 0);
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn oversized_announcements_are_refused() {
    within(30, async {
        let hub = TestHub::start_with(|c| {
            c.tls = false;
            c.max_file_size = 1 << 20;
        })
        .await;
        let mut raw = Raw::logged_in(hub.addr, "eve").await;
        let reply = raw
            .call(&negotiated("huge.bin", 2 << 20, ContentHash::of(b"")))
            .await;
        assert_eq!(code_of(&reply), Some(ErrorCode::TooLarge));
        // An eager upload larger than the eager limit cannot be skipped safely.
        let reply = raw
            .call(&eager("huge.bin", u64::MAX, ContentHash::of(b"")))
            .await;
        assert_eq!(code_of(&reply), Some(ErrorCode::BadRequest));
        assert!(raw.closed_by_hub().await);
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_silent_connection_is_dropped_at_the_handshake_deadline() {
    within(30, async {
        for tls in [false, true] {
            let hub = TestHub::start_with(|c| {
                c.tls = tls;
                c.handshake_timeout = Duration::from_millis(300);
            })
            .await;
            let mut silent = TcpStream::connect(hub.addr).await.unwrap();
            let mut buf = [0u8; 64];
            let read = within(5, tokio::io::AsyncReadExt::read(&mut silent, &mut buf)).await;
            assert!(matches!(read, Ok(0) | Err(_)), "tls={tls}: the hub hung up");
            hub.stop().await;
        }
    })
    .await;
}

#[tokio::test]
async fn idle_and_stalled_connections_are_closed() {
    within(30, async {
        let hub = TestHub::start_with(|c| {
            c.tls = false;
            c.idle_timeout = Duration::from_millis(400);
            c.stall_timeout = Duration::from_millis(400);
        })
        .await;
        let mut idle = Raw::logged_in(hub.addr, "idler").await;
        assert_eq!(code_of(&idle.recv().await), Some(ErrorCode::Timeout));
        assert!(idle.closed_by_hub().await);

        let mut stalled = Raw::logged_in(hub.addr, "staller").await;
        let reply = stalled
            .call(&negotiated("slow.bin", 4 << 20, ContentHash::of(b"?")))
            .await;
        assert_eq!(reply, Some(Response::UploadReady { offset: 0 }));
        stalled.raw_bytes(&[0u8; 1000]).await;
        assert_eq!(code_of(&stalled.recv().await), Some(ErrorCode::Timeout));
        assert!(stalled.closed_by_hub().await);
        let mut check = Raw::logged_in(hub.addr, "checker").await;
        assert_eq!(listing_len(&mut check).await, 0);
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn connections_beyond_the_cap_are_refused_and_slots_free_up() {
    within(30, async {
        let hub = TestHub::start_with(|c| {
            c.tls = false;
            c.max_connections = 2;
        })
        .await;
        let first = Raw::logged_in(hub.addr, "one").await;
        let _second = Raw::logged_in(hub.addr, "two").await;
        let mut third = Raw::connect(hub.addr).await;
        third
            .writer
            .send(&Request::Hello {
                version: PROTOCOL_VERSION,
                agent: "t".into(),
            })
            .await
            .ok();
        assert!(third.recv().await.is_none(), "no Welcome past the cap");

        drop(first);
        // The slot frees once the hub has seen the first connection close.
        let mut attempts = 0;
        loop {
            let mut again = Raw::connect(hub.addr).await;
            let _ = again
                .writer
                .send(&Request::Hello {
                    version: PROTOCOL_VERSION,
                    agent: "t".into(),
                })
                .await;
            if let Some(Response::Welcome { .. }) = again.recv().await {
                break;
            }
            attempts += 1;
            assert!(attempts < 100, "the slot never freed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_subscribed_connection_takes_no_requests() {
    within(30, async {
        let hub = TestHub::start_with(plaintext()).await;
        let mut raw = Raw::logged_in(hub.addr, "eve").await;
        assert_eq!(
            raw.call(&Request::Subscribe).await,
            Some(Response::Subscribed)
        );
        raw.writer
            .send(&Request::List {
                prefix: None,
                after: None,
                limit: 1,
            })
            .await
            .unwrap();
        assert!(raw.closed_by_hub().await);
        hub.stop().await;
    })
    .await;
}

/// Reads one body of `len` bytes after a `Sending` header.
async fn body(raw: &mut Raw, len: u64) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut hasher = blake3::Hasher::new();
    let stall = Duration::from_secs(5);
    ferry_io::body::receive_body(&mut raw.reader, len, &mut bytes, &mut hasher, stall)
        .await
        .expect("the whole body arrives");
    bytes
}

#[tokio::test]
async fn downloads_sent_back_to_back_are_answered_one_by_one_in_order() {
    within(30, async {
        let hub = TestHub::start_with(plaintext()).await;
        let mut raw = Raw::logged_in(hub.addr, "eve").await;
        raw.writer
            .queue(&eager("a.txt", 5, ContentHash::of(b"hello")))
            .await
            .unwrap();
        raw.raw_bytes(b"hello").await;
        assert!(matches!(raw.recv().await, Some(Response::Stored { .. })));

        let get = |name: &str, offset| Request::Download {
            name: name.into(),
            offset,
        };
        // One write: the hub finds them all buffered and serves them as a run.
        for request in [
            get("a.txt", 0),
            get("../etc/passwd", 0),
            get("missing.txt", 0),
            get("a.txt", 9),
            get("a.txt", 3),
            Request::List {
                prefix: None,
                after: None,
                limit: 10,
            },
            get("a.txt", 0),
        ] {
            raw.writer.queue(&request).await.unwrap();
        }
        raw.writer.flush().await.unwrap();

        assert!(matches!(
            raw.recv().await,
            Some(Response::Sending { offset: 0, .. })
        ));
        assert_eq!(body(&mut raw, 5).await, b"hello");
        assert_eq!(code_of(&raw.recv().await), Some(ErrorCode::InvalidName));
        assert_eq!(code_of(&raw.recv().await), Some(ErrorCode::NotFound));
        assert_eq!(code_of(&raw.recv().await), Some(ErrorCode::BadRequest));
        assert!(matches!(
            raw.recv().await,
            Some(Response::Sending { offset: 3, .. })
        ));
        assert_eq!(body(&mut raw, 2).await, b"lo");
        assert!(matches!(raw.recv().await, Some(Response::Listing { .. })));
        assert!(matches!(
            raw.recv().await,
            Some(Response::Sending { offset: 0, .. })
        ));
        assert_eq!(body(&mut raw, 5).await, b"hello");
        hub.stop().await;
    })
    .await;
}
