//! A hub that lies: the client checks what arrives against what it asked
//! for, and fails cleanly instead of believing it.

use ferry_io::{FrameReader, FrameWriter};
use ferry_protocol::{ContentHash, FileEntry, PROTOCOL_VERSION, Request, Response};
use tokio::net::TcpListener;

use crate::support::{Home, ferry_at, run, within};

/// Serves one plaintext connection: lists `listed`, then answers every
/// download with `sent` and a few bytes.
async fn lying_hub(listener: TcpListener, listed: FileEntry, sent: FileEntry) {
    let Ok((stream, _)) = listener.accept().await else {
        return;
    };
    let (read, write) = stream.into_split();
    let mut reader = FrameReader::<_, Request>::new(read);
    let mut writer = FrameWriter::<_, Response>::new(write);
    while let Ok(Some(request)) = reader.recv().await {
        let reply = match request {
            Request::Hello { .. } => Response::Welcome {
                version: PROTOCOL_VERSION,
                agent: "liar".into(),
                challenge: ferry_protocol::Challenge([0; 32]),
            },
            Request::Login { handle, .. } => Response::LoggedIn {
                handle,
                registered: true,
                role: ferry_protocol::Role::Member,
            },
            Request::List { .. } => Response::Listing {
                entries: vec![listed.clone()],
                more: false,
            },
            Request::Download { .. } => {
                let sending = Response::Sending {
                    entry: sent.clone(),
                    offset: 0,
                };
                if writer.send(&sending).await.is_err() {
                    return;
                }
                let _ = writer.write_raw(&[b'x'; 4096]).await;
                let _ = writer.flush().await;
                continue;
            }
            _ => Response::Error {
                code: ferry_protocol::ErrorCode::BadRequest,
                message: "no".into(),
            },
        };
        if writer.send(&reply).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn a_sending_larger_than_listed_is_refused_without_allocating_it() {
    within(60, async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let listed = FileEntry {
            name: "a.txt".into(),
            size: 10,
            hash: ContentHash::of(b"0123456789"),
            owner: "mallory".into(),
            modified: 0,
        };
        let sent = FileEntry {
            size: 1 << 40,
            ..listed.clone()
        };
        let hub = tokio::spawn(lying_hub(listener, listed, sent));
        let home = Home::new();
        let out = tempfile::tempdir().unwrap();
        let get = run(ferry_at(&home, &addr.to_string(), false)
            .args(["--name", "victim", "get", "a.txt", "-o"])
            .arg(out.path()))
        .await;
        assert!(
            get.code > 0,
            "exits with an error, not a crash: {} {}",
            get.code,
            get.stderr
        );
        assert!(get.stderr.contains("not the 10 bytes"), "{}", get.stderr);
        assert_eq!(
            std::fs::read_dir(out.path()).unwrap().count(),
            0,
            "nothing was written"
        );
        hub.abort();
    })
    .await;
}

#[tokio::test]
async fn a_listing_outside_the_folder_asked_for_writes_nothing() {
    within(60, async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let planted = FileEntry {
            name: ".ssh/authorized_keys".into(),
            size: 4096,
            hash: ContentHash::of(b"ssh-ed25519 AAAA mallory"),
            owner: "mallory".into(),
            modified: 0,
        };
        let hub = tokio::spawn(lying_hub(listener, planted.clone(), planted));
        let home = Home::new();
        let out = tempfile::tempdir().unwrap();
        let get = run(ferry_at(&home, &addr.to_string(), false)
            .args(["--name", "victim", "get", "photos", "-o"])
            .arg(out.path()))
        .await;
        assert!(get.code > 0, "{} {}", get.code, get.stderr);
        assert!(get.stderr.contains("not in photos"), "{}", get.stderr);
        assert_eq!(
            std::fs::read_dir(out.path()).unwrap().count(),
            0,
            "nothing was written"
        );
        hub.abort();
    })
    .await;
}
