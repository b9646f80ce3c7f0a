//! Put, list, get, delete, conflicts and ownership through the libraries.

use ferry_client::ClientError;
use ferry_protocol::{ConflictPolicy, ErrorCode, FileName};

use crate::support::{Home, TestHub, local_file, pattern, with_layout, within};

#[tokio::test]
async fn files_and_folders_round_trip_byte_for_byte() {
    within(60, async {
        let hub = TestHub::start().await;
        let home = Home::new();
        let mut client = home.client(&hub, "alice").await;
        let src = tempfile::tempdir().unwrap();
        let sizes = [0, 1, 256 * 1024 - 1, 256 * 1024, 256 * 1024 + 1, 3 << 20];
        let mut items = Vec::new();
        for (i, size) in sizes.iter().enumerate() {
            items.push(
                local_file(
                    src.path(),
                    &format!("photos/2024/f{i}.bin"),
                    &pattern(*size, i as u8),
                )
                .await,
            );
        }
        items.push(local_file(src.path(), "notes.txt", b"hello").await);
        let stored = client
            .upload(&items, ConflictPolicy::Refuse, &())
            .await
            .unwrap();
        assert!(stored.iter().all(Result::is_ok), "{stored:?}");

        let listed = client.list(None).await.unwrap();
        assert_eq!(listed.len(), items.len());
        let folder = client
            .list(Some(&FileName::parse("photos").unwrap()))
            .await
            .unwrap();
        assert_eq!(folder.len(), sizes.len());
        assert!(folder.iter().all(|e| e.owner == "alice"));

        let out = tempfile::tempdir().unwrap();
        let wanted = with_layout(&listed);
        let got = client
            .download(&wanted, out.path(), ConflictPolicy::Refuse, &())
            .await
            .unwrap();
        assert!(got.iter().all(Result::is_ok), "{got:?}");
        for item in &items {
            let downloaded = std::fs::read(out.path().join(item.name.to_relative_path())).unwrap();
            assert_eq!(
                downloaded,
                std::fs::read(&item.path).unwrap(),
                "{}",
                item.name
            );
        }
        let partials = walk_names(out.path())
            .into_iter()
            .filter(|n| n.ends_with(".part"))
            .count();
        assert_eq!(partials, 0, "no partial file is left visible");
        hub.stop().await;
    })
    .await;
}

fn walk_names(dir: &std::path::Path) -> Vec<String> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        if entry.file_type().unwrap().is_dir() {
            names.extend(walk_names(&entry.path()));
        } else {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names
}

#[tokio::test]
async fn a_taken_name_is_never_overwritten_silently() {
    within(60, async {
        let hub = TestHub::start().await;
        let (alice_home, bob_home) = (Home::new(), Home::new());
        let mut alice = alice_home.client(&hub, "alice").await;
        let mut bob = bob_home.client(&hub, "bob").await;
        let src = tempfile::tempdir().unwrap();
        let v1 = local_file(src.path(), "report.pdf", b"version one").await;
        alice
            .upload(std::slice::from_ref(&v1), ConflictPolicy::Refuse, &())
            .await
            .unwrap()[0]
            .as_ref()
            .unwrap();

        // Same name and same bytes: nothing changes, nothing to refuse.
        let same = alice
            .upload(std::slice::from_ref(&v1), ConflictPolicy::Refuse, &())
            .await
            .unwrap();
        assert!(same[0].as_ref().unwrap().deduplicated);

        let v2 = local_file(src.path(), "report.pdf", b"version two").await;
        let refused = alice
            .upload(std::slice::from_ref(&v2), ConflictPolicy::Refuse, &())
            .await
            .unwrap();
        let err = refused[0].as_ref().unwrap_err();
        assert_eq!(err.hub_code(), Some(ErrorCode::Conflict));
        assert!(
            err.to_string().contains("--overwrite"),
            "the error gives a hint: {err}"
        );

        let by_bob = bob
            .upload(std::slice::from_ref(&v2), ConflictPolicy::Overwrite, &())
            .await
            .unwrap();
        assert_eq!(
            by_bob[0].as_ref().unwrap_err().hub_code(),
            Some(ErrorCode::PermissionDenied)
        );

        let renamed = bob
            .upload(std::slice::from_ref(&v2), ConflictPolicy::Rename, &())
            .await
            .unwrap();
        assert_eq!(renamed[0].as_ref().unwrap().entry.name, "report (1).pdf");
        let renamed_again = bob
            .upload(
                &[local_file(src.path(), "report.pdf", b"three").await],
                ConflictPolicy::Rename,
                &(),
            )
            .await
            .unwrap();
        assert_eq!(
            renamed_again[0].as_ref().unwrap().entry.name,
            "report (2).pdf"
        );

        let replaced = alice
            .upload(std::slice::from_ref(&v2), ConflictPolicy::Overwrite, &())
            .await
            .unwrap();
        assert_eq!(replaced[0].as_ref().unwrap().entry.hash, v2.hash);
        let entry = alice
            .list(Some(&FileName::parse("report.pdf").unwrap()))
            .await
            .unwrap();
        assert_eq!(entry[0].hash, v2.hash);
        assert_eq!(
            hub.blob_count(),
            2,
            "the replaced blob is gone; v2 is shared by two names"
        );
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn only_the_owner_deletes_and_unreferenced_bytes_go_away() {
    within(30, async {
        let hub = TestHub::start().await;
        let (alice_home, bob_home) = (Home::new(), Home::new());
        let mut alice = alice_home.client(&hub, "alice").await;
        let mut bob = bob_home.client(&hub, "bob").await;
        let src = tempfile::tempdir().unwrap();
        let item = local_file(src.path(), "mine.txt", b"alice's").await;
        alice
            .upload(&[item], ConflictPolicy::Refuse, &())
            .await
            .unwrap();
        let name = FileName::parse("mine.txt").unwrap();

        let err = bob.delete(&name).await.unwrap_err();
        assert_eq!(err.hub_code(), Some(ErrorCode::PermissionDenied));
        assert_eq!(alice.list(None).await.unwrap().len(), 1);

        alice.delete(&name).await.unwrap();
        assert!(alice.list(None).await.unwrap().is_empty());
        assert_eq!(hub.blob_count(), 0);
        let again = alice.delete(&name).await.unwrap_err();
        assert_eq!(again.hub_code(), Some(ErrorCode::NotFound));
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn downloads_never_overwrite_a_local_file_unasked() {
    within(30, async {
        let hub = TestHub::start().await;
        let home = Home::new();
        let mut client = home.client(&hub, "alice").await;
        let src = tempfile::tempdir().unwrap();
        let item = local_file(src.path(), "a.txt", b"from the hub").await;
        client
            .upload(&[item], ConflictPolicy::Refuse, &())
            .await
            .unwrap();
        let entry = client.list(None).await.unwrap().remove(0);
        let out = tempfile::tempdir().unwrap();
        std::fs::write(out.path().join("a.txt"), b"precious local").unwrap();
        let wanted = [(entry, "a.txt".into())];

        let refused = client
            .download(&wanted, out.path(), ConflictPolicy::Refuse, &())
            .await
            .unwrap();
        assert!(matches!(refused[0], Err(ClientError::LocalConflict { .. })));
        assert_eq!(
            std::fs::read(out.path().join("a.txt")).unwrap(),
            b"precious local"
        );

        let renamed = client
            .download(&wanted, out.path(), ConflictPolicy::Rename, &())
            .await
            .unwrap();
        assert_eq!(
            renamed[0].as_ref().unwrap().path.as_deref(),
            Some(out.path().join("a (1).txt").as_path())
        );
        assert_eq!(
            std::fs::read(out.path().join("a (1).txt")).unwrap(),
            b"from the hub"
        );

        client
            .download(&wanted, out.path(), ConflictPolicy::Overwrite, &())
            .await
            .unwrap()[0]
            .as_ref()
            .unwrap();
        assert_eq!(
            std::fs::read(out.path().join("a.txt")).unwrap(),
            b"from the hub"
        );
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn three_hundred_small_files_go_up_and_down_in_one_batch() {
    within(60, async {
        let hub = TestHub::start().await;
        let home = Home::new();
        let mut client = home.client(&hub, "alice").await;
        let src = tempfile::tempdir().unwrap();
        let mut items = Vec::new();
        for i in 0..300 {
            items.push(
                local_file(
                    src.path(),
                    &format!("many/{i:04}.bin"),
                    &pattern(16 * 1024, i as u8),
                )
                .await,
            );
        }
        let stored = client
            .upload(&items, ConflictPolicy::Refuse, &())
            .await
            .unwrap();
        assert_eq!(stored.iter().filter(|r| r.is_ok()).count(), 300);
        let listed = client
            .list(Some(&FileName::parse("many").unwrap()))
            .await
            .unwrap();
        assert_eq!(listed.len(), 300);
        let out = tempfile::tempdir().unwrap();
        let wanted = with_layout(&listed);
        let got = client
            .download(&wanted, out.path(), ConflictPolicy::Refuse, &())
            .await
            .unwrap();
        assert_eq!(got.iter().filter(|r| r.is_ok()).count(), 300);
        assert_eq!(
            std::fs::read(out.path().join("many/0299.bin")).unwrap(),
            pattern(16 * 1024, 299u32 as u8)
        );
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn store_listing_pages_past_the_frame_limit() {
    within(60, async {
        let hub = TestHub::start().await;
        let home = Home::new();
        let mut client = home.client(&hub, "alice").await;
        let src = tempfile::tempdir().unwrap();
        let mut items = Vec::new();
        for i in 0..2500 {
            items.push(local_file(src.path(), &format!("p/{i:05}"), &[]).await);
        }
        client
            .upload(&items, ConflictPolicy::Refuse, &())
            .await
            .unwrap();
        let listed = client.list(None).await.unwrap();
        assert_eq!(
            listed.len(),
            2500,
            "three pages of at most 1000 come back whole"
        );
        assert!(listed.windows(2).all(|w| w[0].name < w[1].name));
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_file_that_changed_since_it_was_hashed_fails_alone() {
    within(30, async {
        let hub = TestHub::start().await;
        let home = Home::new();
        let mut client = home.client(&hub, "alice").await;
        let src = tempfile::tempdir().unwrap();
        let mut items = Vec::new();
        for name in ["a.txt", "b.txt", "c.txt"] {
            items.push(local_file(src.path(), name, name.as_bytes()).await);
        }
        std::fs::write(&items[1].path, b"b.txt, edited after hashing").unwrap();
        let results = client
            .upload(&items, ConflictPolicy::Refuse, &())
            .await
            .expect("the connection goes on");
        assert!(results[0].is_ok() && results[2].is_ok());
        let Err(ClientError::Local { what, .. }) = &results[1] else {
            panic!("b.txt fails locally: {:?}", results[1]);
        };
        assert_eq!(*what, "reading");
        let listed = client.list(None).await.unwrap();
        let names: Vec<&str> = listed.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a.txt", "c.txt"]);
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_small_file_that_arrives_corrupt_is_never_placed() {
    within(30, async {
        let hub = TestHub::start().await;
        let home = Home::new();
        let mut client = home.client(&hub, "alice").await;
        let src = tempfile::tempdir().unwrap();
        let items = [
            local_file(src.path(), "good.txt", b"good bytes").await,
            local_file(src.path(), "bad.txt", b"bad bytes!").await,
        ];
        client
            .upload(&items, ConflictPolicy::Refuse, &())
            .await
            .unwrap();
        // Rot on the hub's disk: same length, other bytes.
        std::fs::write(hub.hub.store.blob_path(&items[1].hash), b"rotten!!!!").unwrap();

        let listed = client.list(None).await.unwrap();
        let out = tempfile::tempdir().unwrap();
        let got = client
            .download(
                &with_layout(&listed),
                out.path(),
                ConflictPolicy::Refuse,
                &(),
            )
            .await
            .expect("the connection goes on");
        // Listed by name: bad.txt, then good.txt.
        assert!(
            matches!(got[0], Err(ClientError::Corrupt { .. })),
            "{:?}",
            got[0]
        );
        assert_eq!(
            std::fs::read(out.path().join("good.txt")).unwrap(),
            b"good bytes"
        );
        let left: Vec<_> = std::fs::read_dir(out.path()).unwrap().collect();
        assert_eq!(left.len(), 1, "no bad file, no partial: {left:?}");
        hub.stop().await;
    })
    .await;
}
