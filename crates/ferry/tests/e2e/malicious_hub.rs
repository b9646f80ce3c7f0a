//! A hub that lies: the client checks what arrives against what it asked
//! for, and fails cleanly instead of believing it.

use ferry_io::{FrameReader, FrameWriter};
use ferry_protocol::{ContentHash, FileEntry, PROTOCOL_VERSION, Request, Response};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::support::{Home, ferry_at, run, within};

/// Serves one plaintext connection: lists `listed`, then answers every
/// download with `sent` and a few bytes.
async fn lying_hub(listener: TcpListener, listed: FileEntry, sent: FileEntry) {
    scripted_hub(listener, listed, sent, vec![b'x'; 4096], None).await;
}

/// A hub's first download held back: `asked` fires when it comes, and the
/// answer waits for `go`.
type Hold = (oneshot::Sender<()>, oneshot::Receiver<()>);

/// Serves one plaintext connection: logs anyone in, lists `listed`, and
/// answers every download with `sent` and `body` (the first one after
/// `hold`, if given).
async fn scripted_hub(
    listener: TcpListener,
    listed: FileEntry,
    sent: FileEntry,
    body: Vec<u8>,
    mut hold: Option<Hold>,
) {
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
                agent: "scripted".into(),
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
                if let Some((asked, go)) = hold.take() {
                    let _ = asked.send(());
                    let _ = go.await;
                }
                let sending = Response::Sending {
                    entry: sent.clone(),
                    offset: 0,
                };
                if writer.send(&sending).await.is_err() {
                    return;
                }
                let _ = writer.write_raw(&body).await;
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

#[tokio::test]
async fn a_folder_swapped_for_a_link_mid_download_is_not_written_through() {
    within(60, async {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let data = b"ssh-ed25519 AAAA mallory\n".repeat(8 << 10);
        let entry = FileEntry {
            name: "photos/sub/authorized_keys".into(),
            size: data.len() as u64,
            hash: ContentHash::of(&data),
            owner: "mallory".into(),
            modified: 0,
        };
        let (asked_tx, asked_rx) = oneshot::channel();
        let (go_tx, go_rx) = oneshot::channel();
        let hold = Some((asked_tx, go_rx));
        let honest = scripted_hub(listener, entry.clone(), entry, data.clone(), hold);
        let hub = tokio::spawn(honest);
        let home = Home::new();
        let out = tempfile::tempdir().unwrap();
        let victim = tempfile::tempdir().unwrap();
        let mut get = ferry_at(&home, &addr.to_string(), false);
        get.args(["--name", "victim", "get", "photos", "-o"])
            .arg(out.path());
        let get = tokio::spawn(async move { run(&mut get).await });
        // The client made photos/sub and asked for the file; someone who
        // can write to the download folder now swaps that folder for a
        // link to another (as if to ~/.ssh).
        asked_rx.await.unwrap();
        let sub = out.path().join("photos/sub");
        assert!(sub.is_dir());
        std::fs::rename(&sub, out.path().join("photos/moved")).unwrap();
        std::os::unix::fs::symlink(victim.path(), &sub).unwrap();
        go_tx.send(()).unwrap();
        let got = get.await.unwrap();
        assert_eq!(
            std::fs::read_dir(victim.path()).unwrap().count(),
            0,
            "nothing was written through the link: {} {}",
            got.stdout,
            got.stderr
        );
        // The bytes went to the folder the client made, wherever it is now.
        let landed = out.path().join("photos/moved/authorized_keys");
        assert_eq!(std::fs::read(landed).unwrap(), data, "{}", got.stderr);
        hub.abort();
    })
    .await;
}
