//! Limits fit together: however long the names one user picks, every
//! other user's `ls`, `search` and share keep working.

use ferry_protocol::{ConflictPolicy, FileName, MAX_LIST_PAGE, MAX_NAME_LEN, MAX_OFFERS_PER_FRAME};

use crate::support::{Home, TestHub, TestPeer, ferry, run, within};

/// A legal name of `MAX_NAME_LEN - 4` bytes, unique per `i`.
fn long_name(i: usize) -> String {
    let folders: Vec<String> = (b'a'..b'e')
        .map(|c| (c as char).to_string().repeat(200))
        .collect();
    let stem = format!("f{i:04}");
    let used = folders.iter().map(|f| f.len() + 1).sum::<usize>() + stem.len();
    let name = format!(
        "{}/{stem}{}",
        folders.join("/"),
        "z".repeat(MAX_NAME_LEN - 4 - used)
    );
    assert_eq!(name.len(), MAX_NAME_LEN - 4);
    name
}

#[tokio::test]
async fn names_near_the_limit_do_not_break_ls_or_search_for_anyone() {
    within(120, async {
        let hub = TestHub::start().await;
        let files = MAX_LIST_PAGE as usize + 60;
        let src = tempfile::tempdir().unwrap();
        let mut items = Vec::new();
        for i in 0..files {
            // Local copies under short names: the long ones fit the store,
            // not one local file name.
            let path = src.path().join(i.to_string());
            std::fs::write(&path, i.to_string()).unwrap();
            let name = FileName::parse(&long_name(i)).unwrap();
            items.push(ferry_client::prepare_upload(path, name).await.unwrap());
        }
        let mut alice = Home::new().client(&hub, "alice").await;
        let stored = alice
            .upload(&items, ConflictPolicy::Refuse, &())
            .await
            .unwrap();
        assert!(stored.iter().all(Result::is_ok));

        let bob = Home::new();
        let ls = run(ferry(&bob, &hub).args(["--name", "bob", "--json", "ls"])).await;
        assert_eq!(ls.code, 0, "{}", ls.stderr);
        let listed: serde_json::Value = serde_json::from_str(&ls.stdout).unwrap();
        assert_eq!(listed.as_array().unwrap().len(), files);

        let search = run(ferry(&bob, &hub).args(["--name", "bob", "search", "zzzz"])).await;
        assert_eq!(search.code, 0, "{}", search.stderr);
        assert!(search.stdout.contains("f0000"), "{}", search.stdout);
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_share_of_long_names_is_offered_whole_and_searchable() {
    within(120, async {
        let hub = TestHub::start().await;
        let count = MAX_OFFERS_PER_FRAME + 10;
        let names: Vec<String> = (0..count).map(long_name).collect();
        let data: Vec<Vec<u8>> = (0..count).map(|i| i.to_string().into_bytes()).collect();
        let files: Vec<(&str, &[u8])> = names
            .iter()
            .zip(&data)
            .map(|(n, d)| (n.as_str(), d.as_slice()))
            .collect();
        let mut peer = TestPeer::start(&hub, "carol", &files).await;
        let mut total = 0;
        while total < count as u32 {
            match within(10, peer.events.recv()).await {
                Some(ferry_client::peer::agent::ShareEvent::Offered { total: t, refused }) => {
                    assert!(refused.is_empty(), "{refused:?}");
                    total = t;
                }
                Some(_) => {}
                None => panic!("the peer stopped"),
            }
        }
        let mut watcher = Home::new().client(&hub, "dave").await;
        let (hits, truncated) = watcher.search("zzzz", u32::MAX).await.unwrap();
        assert!(truncated);
        assert_eq!(hits.len(), ferry_protocol::MAX_SEARCH_HITS as usize);
        peer.stop().await;
        hub.stop().await;
    })
    .await;
}
