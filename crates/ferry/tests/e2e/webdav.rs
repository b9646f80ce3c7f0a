//! WebDAV at `/dav/` through real clients: the litmus suites (0 failures
//! each), rclone copying a tree up and checking it back byte for byte,
//! and curl for the store's rules (roles, other users' files, quotas).

use std::path::Path;

use ferry_protocol::{InviteTerms, Role};

use crate::support::{Home, TestHub, ferry, pattern, run, within};

/// A plaintext hub (litmus cannot pin a certificate) and a user's token.
async fn hub_and_token(handle: &str) -> (TestHub, Home, String) {
    let hub = TestHub::start_with(|c| c.tls = false).await;
    let home = Home::new();
    let made = run(ferry(&home, &hub).args(["--name", handle, "token", "create"])).await;
    assert_eq!(made.code, 0, "{}", made.stderr);
    let token = made.stdout.lines().last().unwrap().to_owned();
    (hub, home, token)
}

fn dav_url(hub: &TestHub) -> String {
    format!("http://{}/dav/", hub.addr)
}

#[tokio::test]
async fn litmus_passes_every_suite() {
    let (hub, _home, token) = hub_and_token("alice").await;
    let dir = tempfile::tempdir().unwrap();
    for suite in ["basic", "copymove", "props", "locks", "http"] {
        let binary = Path::new("/usr/libexec/litmus").join(suite);
        assert!(
            binary.exists(),
            "litmus is not installed (apt-get install litmus)"
        );
        let ran = run(tokio::process::Command::new(&binary)
            .current_dir(dir.path())
            .args([
                "--htdocs",
                "/usr/share/litmus/htdocs",
                &dav_url(&hub),
                "alice",
                &token,
            ]))
        .await;
        let summary = ran
            .stdout
            .lines()
            .find(|l| l.contains("summary for"))
            .unwrap_or_else(|| panic!("{suite}: no summary: {}{}", ran.stdout, ran.stderr));
        assert!(
            summary.contains(" 0 failed"),
            "{suite}: {summary}\n{}",
            ran.stdout
        );
        assert_eq!(ran.code, 0, "{suite}: {}", ran.stdout);
    }
}

/// rclone with an on-the-fly WebDAV remote for `user` and `token`.
fn rclone(
    config: &Path,
    url: &str,
    user: &str,
    obscured: &str,
) -> (tokio::process::Command, String) {
    let mut command = tokio::process::Command::new("rclone");
    command.env("RCLONE_CONFIG", config).kill_on_drop(true);
    let remote = format!(":webdav,url='{url}',vendor=other,user={user},pass='{obscured}':");
    (command, remote)
}

#[tokio::test]
async fn rclone_copies_a_tree_up_and_checks_it_back() {
    let (hub, home, token) = hub_and_token("alice").await;
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    for (name, len, seed) in [
        ("top.txt", 10, 1),
        ("docs/a.bin", 300_000, 2),
        ("docs/deeper/b.bin", 2_100_000, 3),
        ("docs/deeper/empty.txt", 0, 4),
        ("photos/c d é.jpg", 65_537, 5),
    ] {
        let path = tree.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, pattern(len, seed)).unwrap();
    }
    let obscured = run(tokio::process::Command::new("rclone").args(["obscure", &token])).await;
    assert_eq!(
        obscured.code, 0,
        "rclone is not installed? {}",
        obscured.stderr
    );
    let config = dir.path().join("rclone.conf");
    let (mut copy, remote) = rclone(&config, &dav_url(&hub), "alice", obscured.stdout.trim());
    let copied = run(copy.arg("copy").arg(&tree).arg(format!("{remote}backup"))).await;
    assert_eq!(copied.code, 0, "{}", copied.stderr);
    let (mut check, remote) = rclone(&config, &dav_url(&hub), "alice", obscured.stdout.trim());
    let checked = run(check
        .args(["check", "--download"])
        .arg(&tree)
        .arg(format!("{remote}backup")))
    .await;
    assert_eq!(checked.code, 0, "{}", checked.stderr);
    assert!(
        checked.stderr.contains("0 differences found"),
        "{}",
        checked.stderr
    );

    // The files are the store's, as any upload: listed, owned, fetchable.
    let listed = run(ferry(&home, &hub).args(["--name", "alice", "--json", "ls"])).await;
    for name in [
        "backup/top.txt",
        "backup/docs/deeper/b.bin",
        "backup/photos/c d é.jpg",
    ] {
        assert!(listed.stdout.contains(name), "{name}: {}", listed.stdout);
    }
    assert_eq!(hub.leftovers(), 0);
}

/// curl `args` against `url`, as `user` with `token`: the status.
async fn dav(url: &str, user: &str, token: &str, args: &[&str]) -> u16 {
    dav_body(url, user, token, args).await.0
}

/// [`dav`], with the response's body.
async fn dav_body(url: &str, user: &str, token: &str, args: &[&str]) -> (u16, String) {
    let credential = format!("{user}:{token}");
    let output = within(
        60,
        tokio::process::Command::new("curl")
            .args(["-sS", "-w", "\n%{http_code}", "-u", &credential])
            .args(args)
            .arg(url)
            .output(),
    )
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.trim().parse().unwrap(), body.to_owned())
}

#[tokio::test]
async fn webdav_keeps_the_stores_rules() {
    let owner_home = Home::new();
    let (hub, mut owner) = TestHub::invite_only(false, &owner_home, "owner").await;
    let mut tokens = Vec::new();
    for (handle, role, quota) in [
        ("alice", Role::Member, Some(100_000)),
        ("bob", Role::Member, None),
        ("rita", Role::Reader, None),
    ] {
        let terms = InviteTerms {
            role,
            uses: 1,
            expires_at: None,
            quota,
        };
        let secret = owner.create_invite(terms).await.unwrap().1;
        let mut client = Home::new().join(&hub, secret, handle).await.unwrap();
        tokens.push(
            client
                .create_token("dav", None)
                .await
                .unwrap()
                .1
                .to_string(),
        );
    }
    let [alice, bob, rita] = [&tokens[0], &tokens[1], &tokens[2]];
    let dir = tempfile::tempdir().unwrap();
    let small = dir.path().join("small");
    std::fs::write(&small, b"alice's notes").unwrap();
    let big = dir.path().join("big");
    std::fs::write(&big, pattern(150_000, 1)).unwrap();
    let (small, big) = (small.to_str().unwrap(), big.to_str().unwrap());
    let url = |name: &str| format!("http://{}/dav/{name}", hub.addr);

    assert_eq!(
        dav(&url("notes.txt"), "alice", alice, &["-T", small]).await,
        201
    );
    assert_eq!(
        dav(&url("notes.txt"), "alice", alice, &["-T", small]).await,
        204,
        "her own: replaced"
    );
    assert_eq!(
        dav(&url("notes.txt"), "bob", bob, &["-T", small]).await,
        403,
        "another's file"
    );
    // Through the API, the taken name's hint offers bob only what he may do.
    let api_url = format!("http://{}/api/v1/files/notes.txt", hub.addr);
    let (status, said) = dav_body(&api_url, "bob", bob, &["-T", small]).await;
    assert_eq!(status, 409, "{said}");
    assert!(
        said.contains("belongs to alice")
            && said.contains("?conflict=rename")
            && !said.contains("overwrite"),
        "{said}"
    );
    // The owner check reads the path as dav-server does: an escaped or
    // dotted spelling of alice's file, or of the root, is no way around it.
    for (sneaky, depth) in [
        ("%6Eotes.txt", "0"),
        ("./notes.txt", "0"),
        ("sub/../notes.txt", "0"),
        ("%2E", "infinity"),
    ] {
        let (status, _) = lock(&url(sneaky), "bob", bob, depth).await;
        assert_eq!(status, 403, "{sneaky}");
    }
    assert_eq!(
        dav(&url("notes.txt"), "bob", bob, &["-X", "DELETE"]).await,
        403
    );
    let moved_by_bob = format!("Destination: {}", url("mine.txt"));
    assert_eq!(
        dav(
            &url("notes.txt"),
            "bob",
            bob,
            &["-X", "MOVE", "-H", &moved_by_bob]
        )
        .await,
        403
    );
    assert_eq!(
        dav(&url("r.txt"), "rita", rita, &["-T", small]).await,
        403,
        "readers read"
    );
    assert_eq!(dav(&url("notes.txt"), "rita", rita, &[]).await, 200);
    assert_eq!(
        dav(&url("big.bin"), "alice", alice, &["-T", big]).await,
        507,
        "over her quota"
    );
    assert_eq!(
        dav(&url("nowhere/x.txt"), "alice", alice, &["-T", small]).await,
        409,
        "no such folder"
    );
    assert_eq!(
        dav(&url("notes.txt"), "alice", "ferry_nonsense", &[]).await,
        401
    );

    // A copy by bob is bob's; alice's move keeps hers and its bytes.
    let copy_dest = format!("Destination: {}", url("bobs-copy.txt"));
    assert_eq!(
        dav(
            &url("notes.txt"),
            "bob",
            bob,
            &["-X", "COPY", "-H", &copy_dest]
        )
        .await,
        201
    );
    let move_dest = format!("Destination: {}", url("moved.txt"));
    assert_eq!(
        dav(
            &url("notes.txt"),
            "alice",
            alice,
            &["-X", "MOVE", "-H", &move_dest]
        )
        .await,
        201
    );
    let listed = owner.list(None).await.unwrap();
    let owners: Vec<(String, String)> = listed
        .iter()
        .map(|e| (e.name.clone(), e.owner.clone()))
        .collect();
    assert_eq!(
        owners,
        [
            ("bobs-copy.txt".into(), "bob".into()),
            ("moved.txt".into(), "alice".into())
        ]
    );
    assert_eq!(hub.leftovers(), 0, "refused uploads left nothing behind");
}

/// `LOCK` of `url` as `user`: the status and the lock's token.
async fn lock(url: &str, user: &str, token: &str, depth: &str) -> (u16, String) {
    let body = "<?xml version=\"1.0\"?><D:lockinfo xmlns:D=\"DAV:\"><D:lockscope><D:exclusive/></D:lockscope>\
                <D:locktype><D:write/></D:locktype><D:owner>test</D:owner></D:lockinfo>";
    let depth = format!("Depth: {depth}");
    // The headers (where the token is) in place of the body.
    let args = [
        "-o",
        "/dev/null",
        "-D",
        "-",
        "-X",
        "LOCK",
        "-H",
        "Timeout: Second-600",
        "-H",
        &depth,
        "-H",
        "Content-Type: application/xml",
        "--data",
        body,
    ];
    let (status, headers) = dav_body(url, user, token, &args).await;
    let token = headers
        .lines()
        .find_map(|l| {
            l.strip_prefix("lock-token: ")
                .or(l.strip_prefix("Lock-Token: "))
        })
        .unwrap_or_default()
        .trim()
        .to_owned();
    (status, token)
}

#[tokio::test]
async fn a_webdav_lock_keeps_out_the_apis_changes_until_it_is_lifted() {
    let (hub, home, token) = hub_and_token("alice").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, b"draft").unwrap();
    let file = file.to_str().unwrap();
    let dav_at = |name: &str| format!("http://{}/dav/{name}", hub.addr);
    let api_at = |name: &str| format!("http://{}/api/v1/files/{name}", hub.addr);
    assert_eq!(
        dav(&dav_at("report.txt"), "alice", &token, &["-T", file]).await,
        201
    );
    let (locked, lock_token) = lock(&dav_at("report.txt"), "alice", &token, "0").await;
    assert_eq!(locked, 200);
    assert!(lock_token.starts_with('<'), "{lock_token:?}");

    // Even its owner's API calls wait: the file is open in a WebDAV client.
    // (The API takes the token as the Basic password too.)
    let overwrite = format!("{}?conflict=overwrite", api_at("report.txt"));
    let api = async |args: &[&str], url: String| dav(&url, "alice", &token, args).await;
    assert_eq!(api(&["-T", "/dev/null"], overwrite.clone()).await, 423);
    assert_eq!(api(&["-X", "DELETE"], api_at("report.txt")).await, 423);
    // And the CLI's: busy, saying why.
    let cli = async |args: &[&str]| {
        run(ferry(&home, &hub)
            .current_dir(dir.path())
            .args(["--name", "alice"])
            .args(args))
        .await
    };
    std::fs::write(dir.path().join("report.txt"), b"edited elsewhere").unwrap();
    for args in [
        &["put", "--overwrite", "report.txt"][..],
        &["rm", "report.txt"],
    ] {
        let refused = cli(args).await;
        assert_ne!(refused.code, 0, "{args:?}");
        assert!(
            refused.stderr.contains("locked through WebDAV"),
            "{args:?}: {}",
            refused.stderr
        );
    }

    // A folder locked deep keeps out new files inside it.
    assert_eq!(
        dav(&dav_at("docs/"), "alice", &token, &["-X", "MKCOL"]).await,
        201
    );
    let (folder_locked, folder_token) = lock(&dav_at("docs/"), "alice", &token, "infinity").await;
    assert_eq!(folder_locked, 200);
    let inside = api_at("docs/new.txt");
    assert_eq!(api(&["-T", "/dev/null"], inside.clone()).await, 423);

    // Lifted, and the same calls go through.
    for (url, held) in [
        (dav_at("report.txt"), &lock_token),
        (dav_at("docs/"), &folder_token),
    ] {
        let unlock = format!("Lock-Token: {held}");
        assert_eq!(
            dav(&url, "alice", &token, &["-X", "UNLOCK", "-H", &unlock]).await,
            204
        );
    }
    assert_eq!(api(&["-T", "/dev/null"], inside).await, 201);
    assert_eq!(api(&["-T", "/dev/null"], overwrite).await, 201);
    assert_eq!(api(&["-X", "DELETE"], api_at("report.txt")).await, 200);
}

#[tokio::test]
async fn a_files_properties_go_with_it_however_it_is_deleted() {
    let (hub, _home, token) = hub_and_token("alice").await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, b"v1").unwrap();
    let file = file.to_str().unwrap();
    let dav_at = format!("http://{}/dav/photo.jpg", hub.addr);
    let api_at = format!("http://{}/api/v1/files/photo.jpg", hub.addr);
    let xml = ["-H", "Content-Type: application/xml", "--data"];
    let set = "<?xml version=\"1.0\"?><D:propertyupdate xmlns:D=\"DAV:\" xmlns:Z=\"urn:ferry-test\">\
               <D:set><D:prop><Z:colour>blue</Z:colour></D:prop></D:set></D:propertyupdate>";
    let ask = "<?xml version=\"1.0\"?><D:propfind xmlns:D=\"DAV:\" xmlns:Z=\"urn:ferry-test\">\
               <D:prop><Z:colour/></D:prop></D:propfind>";
    let colour = async || {
        let mut args = vec!["-X", "PROPFIND", "-H", "Depth: 0"];
        args.extend(xml);
        args.push(ask);
        let (status, body) = dav_body(&dav_at, "alice", &token, &args).await;
        assert_eq!(status, 207, "{body}");
        body.contains("blue")
    };

    assert_eq!(dav(&dav_at, "alice", &token, &["-T", file]).await, 201);
    let mut patch = vec!["-X", "PROPPATCH"];
    patch.extend(xml);
    patch.push(set);
    assert_eq!(dav(&dav_at, "alice", &token, &patch).await, 207);
    assert!(colour().await, "the property was set");

    // Deleted through the API, stored again through WebDAV: no old property.
    assert_eq!(dav(&api_at, "alice", &token, &["-X", "DELETE"]).await, 200);
    assert_eq!(dav(&dav_at, "alice", &token, &["-T", file]).await, 201);
    assert!(!colour().await, "a new file under the name starts bare");
}

#[tokio::test]
async fn a_move_over_https_and_http2_stays_on_the_hub() {
    let hub = TestHub::start_with(|c| c.tls = true).await;
    let home = Home::new();
    let made = run(ferry(&home, &hub).args(["--name", "alice", "token", "create"])).await;
    assert_eq!(made.code, 0, "{}", made.stderr);
    let token = made.stdout.lines().last().unwrap().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("f");
    std::fs::write(&file, b"photo").unwrap();
    let at = |name: &str| format!("https://{}/dav/{name}", hub.addr);
    let h2 = ["-k", "--http2"];
    let put = [&h2[..], &["-T", file.to_str().unwrap()]].concat();
    assert_eq!(dav(&at("a.jpg"), "alice", &token, &put).await, 201);
    // HTTP/2 has no Host header: the request's authority is its host.
    let destination = format!("Destination: {}", at("b.jpg"));
    let moved = [&h2[..], &["-X", "MOVE", "-H", &destination]].concat();
    assert_eq!(dav(&at("a.jpg"), "alice", &token, &moved).await, 201);
    let elsewhere = "Destination: https://elsewhere.example/dav/c.jpg";
    let away = [&h2[..], &["-X", "MOVE", "-H", elsewhere]].concat();
    assert_eq!(dav(&at("b.jpg"), "alice", &token, &away).await, 502);
    assert_eq!(dav(&at("b.jpg"), "alice", &token, &h2).await, 200);
}
