//! Interrupted transfers continue from what arrived, and the whole file is
//! still verified. Connections are cut for real by a proxy in between.

use std::time::Duration;

use ferry_client::{ClientError, HubClient, UploadItem};
use ferry_protocol::{ConflictPolicy, ErrorCode, FileEntry};

use crate::support::{Cut, CuttingProxy, Home, TestHub, local_file, pattern, within};

const SIZE: usize = 8 << 20;

/// Uploads, retrying while the hub still holds the interrupted attempt.
async fn upload_when_free(client: &mut HubClient, item: &UploadItem) -> ferry_client::Transferred {
    for _ in 0..100 {
        match client
            .upload(std::slice::from_ref(item), ConflictPolicy::Refuse, &())
            .await
            .unwrap()
            .remove(0)
        {
            Err(e) if e.hub_code() == Some(ErrorCode::Busy) => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            other => return other.unwrap(),
        }
    }
    panic!("the interrupted upload never released its slot");
}

#[tokio::test]
async fn an_upload_cut_midway_resumes_and_verifies() {
    within(60, async {
        let hub = TestHub::start().await;
        let proxy = CuttingProxy::start(hub.addr, Cut::Upstream(3 << 20)).await;
        let home = Home::new();
        let src = tempfile::tempdir().unwrap();
        let item = local_file(src.path(), "big.bin", &pattern(SIZE, 1)).await;

        let mut cut = home.client_at(proxy.addr, true, "alice").await;
        let interrupted = cut
            .upload(std::slice::from_ref(&item), ConflictPolicy::Refuse, &())
            .await;
        assert!(interrupted.is_err(), "the proxy cut the upload");

        let mut client = home.client(&hub, "alice").await;
        let done = upload_when_free(&mut client, &item).await;
        assert!(
            done.resumed_from > 0,
            "continued from the bytes the hub kept"
        );
        assert!(done.resumed_from < SIZE as u64);
        assert_eq!(done.entry.hash, item.hash);

        let entry = client.list(None).await.unwrap().remove(0);
        let out = tempfile::tempdir().unwrap();
        client
            .download(
                &[(entry, "big.bin".into())],
                out.path(),
                ConflictPolicy::Refuse,
                &(),
            )
            .await
            .unwrap()[0]
            .as_ref()
            .unwrap();
        assert_eq!(
            std::fs::read(out.path().join("big.bin")).unwrap(),
            pattern(SIZE, 1)
        );
        assert_eq!(hub.leftovers(), 0, "the partial became the blob");
        hub.stop().await;
    })
    .await;
}

async fn stored_entry(hub: &TestHub, home: &Home) -> FileEntry {
    let mut client = home.client(hub, "alice").await;
    let src = tempfile::tempdir().unwrap();
    let item = local_file(src.path(), "big.bin", &pattern(SIZE, 2)).await;
    client
        .upload(&[item], ConflictPolicy::Refuse, &())
        .await
        .unwrap()[0]
        .as_ref()
        .unwrap();
    client.list(None).await.unwrap().remove(0)
}

fn partial_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(".part"))
        .collect()
}

#[tokio::test]
async fn a_download_cut_midway_resumes_and_verifies() {
    within(60, async {
        let hub = TestHub::start().await;
        let home = Home::new();
        let entry = stored_entry(&hub, &home).await;
        let proxy = CuttingProxy::start(hub.addr, Cut::Downstream(3 << 20)).await;
        let out = tempfile::tempdir().unwrap();
        let wanted = [(entry, "big.bin".into())];

        let mut cut = home.client_at(proxy.addr, true, "alice").await;
        let interrupted = cut
            .download(&wanted, out.path(), ConflictPolicy::Refuse, &())
            .await;
        assert!(interrupted.is_err(), "the proxy cut the download");
        assert!(
            !out.path().join("big.bin").exists(),
            "a partial file is never visible under its name"
        );
        assert_eq!(partial_files(out.path()).len(), 1);

        let mut client = home.client(&hub, "alice").await;
        let done = client
            .download(&wanted, out.path(), ConflictPolicy::Refuse, &())
            .await
            .unwrap()
            .remove(0)
            .unwrap();
        assert!(
            done.resumed_from > 0 && done.resumed_from < SIZE as u64,
            "resumed from {}",
            done.resumed_from
        );
        assert_eq!(
            std::fs::read(out.path().join("big.bin")).unwrap(),
            pattern(SIZE, 2)
        );
        assert!(partial_files(out.path()).is_empty());
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_corrupted_partial_download_is_caught_and_discarded() {
    within(60, async {
        let hub = TestHub::start().await;
        let home = Home::new();
        let entry = stored_entry(&hub, &home).await;
        let proxy = CuttingProxy::start(hub.addr, Cut::Downstream(2 << 20)).await;
        let out = tempfile::tempdir().unwrap();
        let wanted = [(entry, "big.bin".into())];
        let mut cut = home.client_at(proxy.addr, true, "alice").await;
        assert!(
            cut.download(&wanted, out.path(), ConflictPolicy::Refuse, &())
                .await
                .is_err()
        );

        // Flip a byte the resume will trust but the final hash will not.
        let partial = partial_files(out.path()).remove(0);
        let mut bytes = std::fs::read(&partial).unwrap();
        bytes[100] ^= 0xff;
        std::fs::write(&partial, bytes).unwrap();

        let mut client = home.client(&hub, "alice").await;
        let failed = client
            .download(&wanted, out.path(), ConflictPolicy::Refuse, &())
            .await
            .unwrap()
            .remove(0);
        assert!(
            matches!(failed, Err(ClientError::Corrupt { .. })),
            "{failed:?}"
        );
        assert!(!out.path().join("big.bin").exists());
        assert!(
            partial_files(out.path()).is_empty(),
            "the bad partial is deleted"
        );

        let retried = client
            .download(&wanted, out.path(), ConflictPolicy::Refuse, &())
            .await
            .unwrap()
            .remove(0)
            .unwrap();
        assert_eq!(retried.resumed_from, 0);
        assert_eq!(
            std::fs::read(out.path().join("big.bin")).unwrap(),
            pattern(SIZE, 2)
        );
        hub.stop().await;
    })
    .await;
}
