//! Many brand-new users at the same moment: every request is served.

use std::sync::Arc;

use ferry_protocol::{ConflictPolicy, FileName};
use tokio::sync::Barrier;

use crate::support::{Home, TestHub, local_file, pattern, with_layout, within};

/// Clients in the burst (the reliability issue's definition of done).
const USERS: usize = 100;

/// One new user's whole story; any failure is returned, not unwrapped, so
/// the test can say how many of the burst failed and why.
async fn new_user_story(hub: &TestHub, i: usize, start: &Barrier) -> Result<(), String> {
    let home = Home::new();
    let src = tempfile::tempdir().map_err(|e| e.to_string())?;
    // Every fourth user sends a file too big to be grouped, so negotiated
    // uploads race with group commits and registrations.
    let size = if i.is_multiple_of(4) {
        1_500_000
    } else {
        2_000 + i
    };
    // Each user's own folder: a folder belongs to whoever first stored in it.
    let folder = format!("burst{i:03}");
    let name = format!("{folder}/u{i:03}.bin");
    let data = pattern(size, i as u8);
    let item = local_file(src.path(), &name, &data).await;
    start.wait().await;

    let mut client = ferry_client::HubClient::connect(&home.options(hub.addr, hub.tls()))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    client
        .authenticate(
            &format!("user{i:03}"),
            &home.credentials(),
            ferry_protocol::Claim::Register,
        )
        .await
        .map_err(|e| format!("register: {e}"))?;
    let stored = client
        .upload(std::slice::from_ref(&item), ConflictPolicy::Refuse, &())
        .await
        .map_err(|e| format!("put: {e}"))?;
    stored[0].as_ref().map_err(|e| format!("put: {e}"))?;
    let folder = FileName::parse(&folder).expect("valid");
    let listed = client
        .list(Some(&folder))
        .await
        .map_err(|e| format!("ls: {e}"))?;
    let mine: Vec<_> = listed.into_iter().filter(|e| e.name == name).collect();
    if mine.len() != 1 {
        return Err(format!("ls does not show {name}"));
    }
    let (hits, _) = client
        .search(&format!("u{i:03}"), 10)
        .await
        .map_err(|e| format!("search: {e}"))?;
    if hits.is_empty() {
        return Err(format!("search does not find {name}"));
    }
    let out = tempfile::tempdir().map_err(|e| e.to_string())?;
    let got = client
        .download(&with_layout(&mine), out.path(), ConflictPolicy::Refuse, &())
        .await
        .map_err(|e| format!("get: {e}"))?;
    got[0].as_ref().map_err(|e| format!("get: {e}"))?;
    let downloaded = std::fs::read(out.path().join(&name)).map_err(|e| e.to_string())?;
    if downloaded != data {
        return Err(format!("{name} came back different"));
    }
    client
        .delete(&FileName::parse(&name).expect("valid"))
        .await
        .map_err(|e| format!("rm: {e}"))?;
    client.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_new_users_is_served_completely() {
    within(120, async {
        let hub = Arc::new(TestHub::start().await);
        let start = Arc::new(Barrier::new(USERS));
        let mut users = tokio::task::JoinSet::new();
        for i in 0..USERS {
            let (hub, start) = (Arc::clone(&hub), Arc::clone(&start));
            users.spawn(async move { (i, new_user_story(&hub, i, &start).await) });
        }
        let mut failures = Vec::new();
        while let Some(done) = users.join_next().await {
            let (i, outcome) = done.expect("the story does not panic");
            if let Err(e) = outcome {
                failures.push(format!("user {i}: {e}"));
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {USERS} failed: {failures:#?}",
            failures.len()
        );
        let hub = Arc::into_inner(hub).expect("every user is done");
        assert_eq!(hub.leftovers(), 0);
        hub.stop().await;
    })
    .await;
}
