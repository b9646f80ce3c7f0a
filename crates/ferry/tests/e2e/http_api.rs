//! The HTTP API through real curl against a real hub: tokens made with the
//! `ferry` binary, every route, and each way a request is refused (401,
//! 403, 404, 409, 411, 412, 413, 416, 422, 507, a rotten blob), on the same
//! port as Ferry's own protocol, over TLS and in plaintext.

use std::path::Path;

use ferry_protocol::{InviteTerms, Role, UserChange};

use crate::support::{Home, TestHub, ferry, pattern, run, within};

/// What curl got.
struct Reply {
    status: u16,
    headers: String,
    body: Vec<u8>,
    /// curl's own exit code (18: the body was cut short).
    exit: i32,
}

impl Reply {
    fn header(&self, name: &str) -> Option<String> {
        let wanted = format!("{}:", name.to_ascii_lowercase());
        self.headers
            .lines()
            .filter(|l| l.to_ascii_lowercase().starts_with(&wanted))
            .map(|l| l[wanted.len()..].trim().to_owned())
            .next_back()
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    fn error(&self) -> String {
        self.json()["error"].as_str().unwrap_or_default().to_owned()
    }
}

/// Runs curl with `args`, in `dir`.
async fn curl(dir: &Path, args: &[&str]) -> Reply {
    curl_fed(dir, None, args).await
}

/// [`curl`] with `stdin` (a file) as its standard input.
async fn curl_fed(dir: &Path, stdin: Option<&Path>, args: &[&str]) -> Reply {
    let (headers, body) = (dir.join("headers"), dir.join("body"));
    let _ = std::fs::remove_file(&body);
    let input = match stdin {
        Some(path) => std::process::Stdio::from(std::fs::File::open(path).unwrap()),
        None => std::process::Stdio::null(),
    };
    let output = within(
        60,
        tokio::process::Command::new("curl")
            .stdin(input)
            .args(["-sS", "-o"])
            .arg(&body)
            .arg("-D")
            .arg(&headers)
            .args(["-w", "%{http_code}"])
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap();
    Reply {
        status: String::from_utf8_lossy(&output.stdout)
            .trim()
            .parse()
            .unwrap_or(0),
        headers: std::fs::read_to_string(&headers).unwrap_or_default(),
        body: std::fs::read(&body).unwrap_or_default(),
        exit: output.status.code().unwrap_or(-1),
    }
}

/// A hub, a user with a token made through the binary, and curl's options.
struct Api {
    hub: TestHub,
    home: Home,
    dir: tempfile::TempDir,
    token: String,
}

impl Api {
    async fn start(tweak: impl FnOnce(&mut ferry_hub::HubConfig)) -> Self {
        let hub = TestHub::start_with(|c| {
            c.tls = false;
            tweak(c);
        })
        .await;
        let home = Home::new();
        let token = token(&home, &hub, "Alice").await;
        Self {
            hub,
            home,
            dir: tempfile::tempdir().unwrap(),
            token,
        }
    }

    fn url(&self, path: &str) -> String {
        let scheme = if self.hub.tls() { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.hub.addr)
    }

    /// curl with this user's token on `path`, plus `args`.
    async fn call(&self, path: &str, args: &[&str]) -> Reply {
        self.call_as(&self.token, path, args).await
    }

    async fn call_as(&self, token: &str, path: &str, args: &[&str]) -> Reply {
        let bearer = format!("Authorization: Bearer {token}");
        let url = self.url(path);
        let mut all = vec!["-k", "-H", &bearer];
        all.extend_from_slice(args);
        all.push(&url);
        curl(self.dir.path(), &all).await
    }

    /// The stored files' names, in order.
    async fn names(&self) -> Vec<serde_json::Value> {
        let listed = self.call("/api/v1/files", &[]).await.json();
        let files = listed["files"].as_array().unwrap();
        files.iter().map(|f| f["name"].clone()).collect()
    }

    /// Writes `data` to a local file for `curl -T`.
    fn local(&self, name: &str, data: &[u8]) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, data).unwrap();
        path.to_string_lossy().into_owned()
    }
}

/// `ferry token create` as `handle` (registering it on an open hub): the
/// token, from the last line of its output.
async fn token(home: &Home, hub: &TestHub, handle: &str) -> String {
    let made =
        run(ferry(home, hub).args(["--name", handle, "token", "create", "--label", "curl"])).await;
    assert_eq!(made.code, 0, "{}", made.stderr);
    assert!(
        made.stdout.contains("Authorization: Bearer"),
        "{}",
        made.stdout
    );
    let token = made.stdout.lines().last().unwrap().to_owned();
    assert!(token.starts_with("ferry_"), "{token}");
    token
}

#[tokio::test]
async fn a_token_lets_its_user_in_until_it_is_removed() {
    let api = Api::start(|_| {}).await;
    let me = api.call("/api/v1/me", &[]).await;
    assert_eq!(me.status, 200);
    assert_eq!(me.json()["handle"], "Alice");
    assert_eq!(me.json()["role"], "member");

    // Basic with the handle as user name (any case) and the token as password.
    let basic = format!("alice:{}", api.token);
    let url = api.url("/api/v1/me");
    let by_basic = curl(api.dir.path(), &["-u", &basic, &url]).await;
    assert_eq!(by_basic.status, 200);
    let wrong_user = format!("bob:{}", api.token);
    let refused = curl(api.dir.path(), &["-u", &wrong_user, &url]).await;
    assert_eq!(refused.status, 401);

    // No credential, or none of ours: 401 with a challenge and a way out.
    let none = curl(api.dir.path(), &[&url]).await;
    assert_eq!(none.status, 401);
    assert!(
        none.header("www-authenticate")
            .unwrap()
            .starts_with("Bearer")
    );
    assert!(
        none.json()["message"]
            .as_str()
            .unwrap()
            .contains("ferry token create")
    );
    let made_up = format!("ferry_{}", "ab".repeat(32));
    assert_eq!(api.call_as(&made_up, "/api/v1/me", &[]).await.status, 401);
    assert_eq!(api.call_as("hunter2", "/api/v1/me", &[]).await.status, 401);

    // Listed by id, removed by id, and refused at once after that.
    let listed =
        run(ferry(&api.home, &api.hub).args(["--name", "Alice", "--json", "token", "ls"])).await;
    let listed: serde_json::Value = serde_json::from_str(&listed.stdout).unwrap();
    let id = listed[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(listed[0]["label"], "curl");
    let removed =
        run(ferry(&api.home, &api.hub).args(["--name", "Alice", "token", "rm", &id])).await;
    assert_eq!(removed.code, 0, "{}", removed.stderr);
    assert_eq!(api.call("/api/v1/me", &[]).await.status, 401);
    let again = run(ferry(&api.home, &api.hub).args(["--name", "Alice", "token", "rm", &id])).await;
    assert_eq!(
        again.code, 3,
        "removing it twice is 'not found': {}",
        again.stderr
    );
}

#[tokio::test]
async fn revoking_a_user_shuts_its_tokens_out_at_once_and_readers_only_read() {
    let owner_home = Home::new();
    let (hub, mut owner) = TestHub::invite_only(false, &owner_home, "owner").await;
    let terms = |role| InviteTerms {
        role,
        uses: 1,
        expires_at: None,
        quota: None,
    };
    let secret = owner.create_invite(terms(Role::Reader)).await.unwrap().1;
    let reader_home = Home::new();
    let mut reader = reader_home.join(&hub, secret, "rita").await.unwrap();
    let (_, reader_token) = reader.create_token("laptop", None).await.unwrap();
    let (_, owner_token) = owner.create_token("", None).await.unwrap();
    let api = Api {
        hub,
        home: owner_home,
        dir: tempfile::tempdir().unwrap(),
        token: owner_token.to_string(),
    };
    let file = api.local("r.txt", b"hello");
    let reader_token = reader_token.to_string();

    assert_eq!(
        api.call_as(&reader_token, "/api/v1/files", &[])
            .await
            .status,
        200
    );
    let put = api
        .call_as(&reader_token, "/api/v1/files/r.txt", &["-T", &file])
        .await;
    assert_eq!(put.status, 403, "{}", String::from_utf8_lossy(&put.body));
    assert_eq!(put.error(), "permission_denied");
    assert!(
        put.json()["message"]
            .as_str()
            .unwrap()
            .contains("ask an admin")
    );
    assert_eq!(
        api.call("/api/v1/files/r.txt", &["-T", &file]).await.status,
        201
    );
    let delete = api
        .call_as(&reader_token, "/api/v1/files/r.txt", &["-X", "DELETE"])
        .await;
    assert_eq!(delete.status, 403);

    // Just verified (so remembered), then revoked: refused on the next request.
    assert_eq!(
        api.call_as(&reader_token, "/api/v1/me", &[]).await.status,
        200
    );
    owner.change_user("rita", UserChange::Revoke).await.unwrap();
    assert_eq!(
        api.call_as(&reader_token, "/api/v1/me", &[]).await.status,
        401
    );
    assert_eq!(api.call("/api/v1/me", &[]).await.json()["role"], "owner");
}

#[tokio::test]
async fn a_file_goes_up_and_comes_back_with_validators_and_ranges_and_goes_away() {
    let api = Api::start(|_| {}).await;
    let data = pattern(300_000, 3);
    let file = api.local("big.bin", &data);
    let hash = blake3::hash(&data).to_hex().to_string();

    let put = api.call("/api/v1/files/docs/big.bin", &["-T", &file]).await;
    assert_eq!(put.status, 201, "{}", String::from_utf8_lossy(&put.body));
    assert_eq!(put.json()["hash"], hash.as_str());
    assert_eq!(put.json()["owner"], "Alice");
    let etag = format!("\"{}\"", &hash[..32]);
    assert_eq!(put.header("etag").unwrap(), etag);

    // The CLI sees it as any upload.
    let listed = run(ferry(&api.home, &api.hub).args(["--name", "Alice", "--json", "ls"])).await;
    assert!(listed.stdout.contains("docs/big.bin"), "{}", listed.stdout);

    let got = api.call("/api/v1/files/docs/big.bin", &[]).await;
    assert_eq!(got.status, 200);
    assert!(got.body == data, "the bytes come back as they went");
    assert_eq!(got.header("etag").unwrap(), etag);
    assert_eq!(got.header("accept-ranges").unwrap(), "bytes");
    assert_eq!(
        got.header("content-type").unwrap(),
        "application/octet-stream"
    );
    assert!(
        got.header("content-disposition")
            .unwrap()
            .contains("filename*=UTF-8''big.bin")
    );

    // curl -I writes the headers where the body would go: no file bytes.
    let head = api.call("/api/v1/files/docs/big.bin", &["-I"]).await;
    assert!(head.status == 200 && head.body.len() < 1000);
    assert_eq!(head.header("content-length").unwrap(), "300000");

    // Validators.
    let fresh = api
        .call(
            "/api/v1/files/docs/big.bin",
            &["-H", &format!("If-None-Match: {etag}")],
        )
        .await;
    assert_eq!((fresh.status, fresh.body.len()), (304, 0));
    let stale = api
        .call("/api/v1/files/docs/big.bin", &["-H", "If-Match: \"0000\""])
        .await;
    assert_eq!(stale.status, 412);
    assert_eq!(stale.error(), "precondition_failed");

    // Ranges: one, several, none inside, and one for another version.
    let one = api
        .call("/api/v1/files/docs/big.bin", &["-r", "1000-1999"])
        .await;
    assert_eq!(one.status, 206);
    assert_eq!(
        one.header("content-range").unwrap(),
        "bytes 1000-1999/300000"
    );
    assert!(one.body == data[1000..2000]);
    let tail = api.call("/api/v1/files/docs/big.bin", &["-r", "-10"]).await;
    assert!(tail.status == 206 && tail.body == data[299_990..]);
    let many = api
        .call("/api/v1/files/docs/big.bin", &["-r", "0-9,200000-200009"])
        .await;
    assert_eq!(many.status, 206);
    let boundary = many.header("content-type").unwrap();
    let boundary = boundary.split("boundary=").nth(1).unwrap().to_owned();
    let parts = split_multipart(&many.body, &boundary);
    assert_eq!(parts.len(), 2);
    assert!(parts[0].0.contains("bytes 0-9/300000") && parts[0].1 == data[..10]);
    assert!(
        parts[1].0.contains("bytes 200000-200009/300000") && parts[1].1 == data[200_000..200_010]
    );
    let outside = api
        .call("/api/v1/files/docs/big.bin", &["-r", "300000-"])
        .await;
    assert_eq!(outside.status, 416);
    assert_eq!(outside.header("content-range").unwrap(), "bytes */300000");
    let if_range = api
        .call(
            "/api/v1/files/docs/big.bin",
            &["-r", "0-9", "-H", "If-Range: \"other\""],
        )
        .await;
    assert!(
        if_range.status == 200 && if_range.body == data,
        "If-Range for another version gets the whole file"
    );

    // A taken name: 409 with the way out; the same bytes with their hash: a no-op.
    let taken = api.call("/api/v1/files/docs/big.bin", &["-T", &file]).await;
    assert_eq!(taken.status, 409);
    assert!(
        taken.json()["message"]
            .as_str()
            .unwrap()
            .contains("?conflict=rename")
    );
    let hash_header = format!("Ferry-Hash: {hash}");
    let same = api
        .call(
            "/api/v1/files/docs/big.bin",
            &["-T", &file, "-H", &hash_header],
        )
        .await;
    assert_eq!(same.status, 200, "{}", String::from_utf8_lossy(&same.body));
    let same_renamed = api
        .call("/api/v1/files/docs/big.bin?conflict=rename", &["-T", &file])
        .await;
    assert_eq!(
        same_renamed.status, 200,
        "identical bytes need no second name"
    );
    let other = api.local("other.bin", b"other");
    let renamed = api
        .call(
            "/api/v1/files/docs/big.bin?conflict=rename",
            &["-T", &other],
        )
        .await;
    assert_eq!(renamed.status, 201);
    assert_eq!(renamed.json()["name"], "docs/big (1).bin");
    let newer = api.local("newer.bin", b"newer");
    let replaced = api
        .call(
            "/api/v1/files/docs/big.bin",
            &["-T", &newer, "-H", &format!("If-Match: {etag}")],
        )
        .await;
    assert_eq!(
        replaced.status, 201,
        "If-Match names the version to replace"
    );
    let lost_update = api
        .call(
            "/api/v1/files/docs/big.bin",
            &["-T", &newer, "-H", &format!("If-Match: {etag}")],
        )
        .await;
    assert_eq!(
        lost_update.status, 412,
        "a replace of a version that is gone"
    );
    let create_only = api
        .call(
            "/api/v1/files/docs/big.bin",
            &["-T", &newer, "-H", "If-None-Match: *"],
        )
        .await;
    assert_eq!(create_only.status, 412);

    // Listing pages with a cursor.
    let page = api
        .call("/api/v1/files?prefix=docs&limit=1", &[])
        .await
        .json();
    assert_eq!(page["files"][0]["name"], "docs/big (1).bin");
    let cursor = page["next"].as_str().unwrap().replace(' ', "%20");
    let next = api
        .call(
            &format!("/api/v1/files?prefix=docs&limit=1&cursor={cursor}"),
            &[],
        )
        .await
        .json();
    assert_eq!(next["files"][0]["name"], "docs/big.bin");
    assert!(next["next"].is_null());

    // Someone else may not delete it; its owner may, and then it is gone.
    let bob = token(&Home::new(), &api.hub, "bob").await;
    let refused = api
        .call_as(&bob, "/api/v1/files/docs/big.bin", &["-X", "DELETE"])
        .await;
    assert_eq!(refused.status, 403);
    let deleted = api
        .call("/api/v1/files/docs/big.bin", &["-X", "DELETE"])
        .await;
    assert_eq!(deleted.status, 200);
    let gone = api.call("/api/v1/files/docs/big.bin", &[]).await;
    assert_eq!((gone.status, gone.error().as_str()), (404, "not_found"));
    assert_eq!(
        api.call("/api/v1/files/docs/big.bin", &["-X", "DELETE"])
            .await
            .status,
        404
    );
    assert_eq!(api.call("/api/nothing", &[]).await.status, 404);
    // axum's own refusals come as the API's JSON too.
    for (path, args, status, code) in [
        ("/api/v1/search", &[][..], 400, "bad_request"),
        ("/api/v1/files?limit=abc", &[][..], 400, "bad_request"),
        (
            "/api/v1/files",
            &["-X", "POST"][..],
            405,
            "method_not_allowed",
        ),
    ] {
        let refused = api.call(path, args).await;
        assert_eq!(
            (refused.status, refused.error().as_str()),
            (status, code),
            "{path}"
        );
        assert!(!refused.json()["message"].as_str().unwrap().is_empty());
    }
}

/// The parts of a multipart/byteranges body: headers and bytes.
fn split_multipart(body: &[u8], boundary: &str) -> Vec<(String, Vec<u8>)> {
    let delimiter = format!("\r\n--{boundary}");
    let text = body;
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(at) = find(rest, delimiter.as_bytes()) {
        rest = &rest[at + delimiter.len()..];
        if rest.starts_with(b"--") {
            break;
        }
        let end_of_headers = find(rest, b"\r\n\r\n").unwrap();
        let headers = String::from_utf8_lossy(&rest[..end_of_headers]).into_owned();
        let after = &rest[end_of_headers + 4..];
        let next = find(after, delimiter.as_bytes()).unwrap();
        parts.push((headers, after[..next].to_vec()));
        rest = &after[next..];
    }
    parts
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test]
async fn an_upload_that_breaks_a_rule_stores_nothing() {
    let api = Api::start(|c| {
        c.max_file_size = 100_000;
        c.default_quota = Some(150_000);
    })
    .await;
    let data = pattern(50_000, 9);
    let file = api.local("f.bin", &data);

    let lie = format!("Ferry-Hash: {}", blake3::hash(b"other").to_hex());
    let lied = api
        .call("/api/v1/files/f.bin", &["-T", &file, "-H", &lie])
        .await;
    assert_eq!((lied.status, lied.error().as_str()), (422, "hash_mismatch"));
    let bad_hash = api
        .call(
            "/api/v1/files/f.bin",
            &["-T", &file, "-H", "Ferry-Hash: abc"],
        )
        .await;
    assert_eq!(bad_hash.status, 400);

    let big = api.local("big.bin", &pattern(100_001, 1));
    let too_big = api.call("/api/v1/files/big.bin", &["-T", &big]).await;
    assert_eq!(
        (too_big.status, too_big.error().as_str()),
        (413, "too_large")
    );

    for bad in [
        "/api/v1/files/..%2Fetc%2Fpasswd",
        "/api/v1/files/a%00b",
        "/api/v1/files/%2Fabs",
    ] {
        let refused = api.call(bad, &["-T", &file]).await;
        assert_eq!(
            (refused.status, refused.error().as_str()),
            (400, "invalid_name"),
            "{bad}"
        );
    }
    assert_eq!(
        api.call("/api/v1/files/f.bin?conflict=maybe", &["-T", &file])
            .await
            .status,
        400
    );

    // Within quota twice, then the third is refused before its body.
    for name in ["q1.bin", "q2.bin"] {
        let file = api.local(name, &pattern(60_000, name.as_bytes()[1]));
        let path = format!("/api/v1/files/{name}");
        assert_eq!(api.call(&path, &["-T", &file]).await.status, 201);
    }
    let over = api.call("/api/v1/files/q3.bin", &["-T", &file]).await;
    assert_eq!(
        (over.status, over.error().as_str()),
        (507, "quota_exceeded")
    );

    let names = api.names().await;
    assert_eq!(names, ["q1.bin", "q2.bin"]);
    assert_eq!(
        api.hub.leftovers(),
        0,
        "refused uploads leave nothing behind"
    );
}

/// `curl -T -` of `data` as `name`: no length announced (chunked), as
/// `tar c . | curl -T - URL` sends it.
async fn put_chunked(api: &Api, name: &str, data: &[u8]) -> Reply {
    let file = api.local(name, data);
    let bearer = format!("Authorization: Bearer {}", api.token);
    let url = api.url(&format!("/api/v1/files/{name}"));
    let args = ["-k", "-H", &bearer, "-T", "-", &url];
    curl_fed(api.dir.path(), Some(Path::new(&file)), &args).await
}

#[tokio::test]
async fn a_body_of_unknown_length_is_stored_within_the_same_limits() {
    let api = Api::start(|c| {
        c.max_file_size = 100_000;
        c.default_quota = Some(150_000);
    })
    .await;
    let data = pattern(50_000, 3);
    let stored = put_chunked(&api, "c.bin", &data).await;
    assert_eq!(
        stored.status,
        201,
        "{}",
        String::from_utf8_lossy(&stored.body)
    );
    assert_eq!(stored.json()["size"], 50_000);
    let got = api.call("/api/v1/files/c.bin", &[]).await;
    assert_eq!((got.status, got.body), (200, data));
    let empty = put_chunked(&api, "empty.bin", b"").await;
    assert_eq!(
        (empty.status, empty.json()["size"].clone()),
        (201, 0.into())
    );
    // With neither a length nor chunks, HTTP/1.1 has no body: no upload
    // (else `curl -X PUT URL?conflict=overwrite` would empty a file).
    let bodiless = api
        .call("/api/v1/files/c.bin?conflict=overwrite", &["-X", "PUT"])
        .await;
    assert_eq!(
        (bodiless.status, bodiless.error().as_str()),
        (411, "length_required")
    );

    // Past the hub's largest file, then past the quota left (100,000 of
    // 150,000 once d.bin is in), each found as the bytes arrive.
    let too_big = put_chunked(&api, "big.bin", &pattern(100_001, 4)).await;
    assert_eq!(
        (too_big.status, too_big.error().as_str()),
        (413, "too_large")
    );
    let in_quota = put_chunked(&api, "d.bin", &pattern(50_000, 5)).await;
    assert_eq!(in_quota.status, 201);
    let over = put_chunked(&api, "e.bin", &pattern(50_001, 6)).await;
    assert_eq!(
        (over.status, over.error().as_str()),
        (507, "quota_exceeded")
    );
    let names = api.names().await;
    assert_eq!(names, ["c.bin", "d.bin", "empty.bin"]);
    assert_eq!(
        api.hub.leftovers(),
        0,
        "refused uploads leave nothing behind"
    );
}

#[tokio::test]
async fn a_rotten_blob_is_never_served_as_a_good_file() {
    let api = Api::start(|_| {}).await;
    let (small, large) = (pattern(1000, 5), pattern(2 << 20, 6));
    for (name, data) in [("small.bin", &small), ("large.bin", &large)] {
        let file = api.local(name, data);
        assert_eq!(
            api.call(&format!("/api/v1/files/{name}"), &["-T", &file])
                .await
                .status,
            201
        );
        let blob = api.hub.hub.store.blob_path(&blake3::hash(data).into());
        let mut rotten = std::fs::read(&blob).unwrap();
        rotten[data.len() / 2] ^= 1;
        std::fs::write(&blob, rotten).unwrap();
    }
    let small_got = api.call("/api/v1/files/small.bin", &[]).await;
    assert_eq!(
        (small_got.status, small_got.error().as_str()),
        (500, "damaged")
    );
    let large_got = api.call("/api/v1/files/large.bin", &[]).await;
    assert_eq!(
        large_got.status, 200,
        "the headers went out before the rot was found"
    );
    assert_eq!(
        large_got.exit, 18,
        "curl reports a body cut short of its length"
    );
    assert!(large_got.body.len() < large.len());
}

#[tokio::test]
async fn one_port_serves_ferry_and_http_over_tls_and_in_plaintext() {
    for tls in [true, false] {
        let hub = TestHub::start_with(|c| c.tls = tls).await;
        let home = Home::new();
        let token = token(&home, &hub, "alice").await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("n.txt"), b"notes").unwrap();
        let put = run(ferry(&home, &hub)
            .current_dir(dir.path())
            .args(["--name", "alice", "put", "n.txt"]))
        .await;
        assert_eq!(put.code, 0, "{}", put.stderr);
        let scheme = if tls { "https" } else { "http" };
        let url = format!("{scheme}://{}/api/v1/files/n.txt", hub.addr);
        let bearer = format!("Authorization: Bearer {token}");
        let versions: &[&[&str]] = if tls {
            &[&["--http2"], &["--http1.1"], &["--http1.1", "--no-alpn"]]
        } else {
            &[&["--http1.1"], &["--http2-prior-knowledge"]]
        };
        for version in versions {
            let mut args = vec!["-k", "-H", &bearer];
            args.extend_from_slice(version);
            args.push(&url);
            let got = curl(dir.path(), &args).await;
            assert_eq!(
                (got.status, got.body.as_slice()),
                (200, &b"notes"[..]),
                "{version:?}"
            );
        }
        let health = curl(
            dir.path(),
            &["-k", &format!("{scheme}://{}/healthz", hub.addr)],
        )
        .await;
        assert_eq!(health.status, 200);
        if tls {
            // The certificate names the address: curl verifies it, no -k.
            let pem = hub.dir.path().join("data/tls/cert.pem");
            let url = format!("https://{}/healthz", hub.addr);
            let verified = curl(dir.path(), &["--cacert", pem.to_str().unwrap(), &url]).await;
            assert_eq!(verified.status, 200, "exit {}", verified.exit);
        }
        hub.stop().await;
    }
}

#[tokio::test]
async fn sizes_at_each_threshold_come_back_whole() {
    let api = Api::start(|_| {}).await;
    // Read whole up to 64 KiB; streamed in 256 KiB chunks past it.
    for len in [
        0, 1, 65_535, 65_536, 65_537, 262_143, 262_144, 262_145, 524_289,
    ] {
        let data = pattern(len, (len % 251) as u8);
        let file = api.local("t.bin", &data);
        let path = format!("/api/v1/files/t{len}.bin");
        assert_eq!(api.call(&path, &["-T", &file]).await.status, 201, "{len}");
        let got = api.call(&path, &[]).await;
        assert!(
            got.status == 200 && got.body == data,
            "{len} bytes come back as sent"
        );
        if len > 2 {
            let range = format!("1-{}", len - 2);
            let part = api.call(&path, &["-r", &range]).await;
            assert!(
                part.status == 206 && part.body == data[1..len - 1],
                "{len}: a middle range"
            );
        }
    }
}

#[tokio::test]
async fn an_upload_cut_off_midway_leaves_nothing_behind() {
    use tokio::io::AsyncWriteExt;
    let api = Api::start(|_| {}).await;
    let mut stream = tokio::net::TcpStream::connect(api.hub.addr).await.unwrap();
    let head = format!(
        "PUT /api/v1/files/cut.bin HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer {}\r\nContent-Length: 10000000\r\n\r\n",
        api.token
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&pattern(2_000_000, 1)).await.unwrap();
    let store = api.hub.dir.path().join("data/store/tmp");
    let staged =
        crate::support::eventually(10, async || std::fs::read_dir(&store).unwrap().count() == 1)
            .await;
    assert!(staged, "the upload was under way in tmp/");
    drop(stream);
    let gone = crate::support::eventually(10, async || api.hub.leftovers() == 0).await;
    assert!(
        gone,
        "the cut upload's temp file is removed at once, not at the next start"
    );
    let listed = api.call("/api/v1/files", &[]).await.json();
    assert_eq!(listed["files"].as_array().unwrap().len(), 0);
    let me = api.call("/api/v1/me", &[]).await.json();
    assert_eq!(me["used"], 0, "and nothing is counted against its quota");
}

#[tokio::test]
async fn a_connection_that_shows_no_credential_is_closed_at_the_login_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let api = Api::start(|c| c.login_timeout = std::time::Duration::from_secs(1)).await;
    let mut stream = tokio::net::TcpStream::connect(api.hub.addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: hub\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // Kept alive by HTTP, but it never logged in: closed within the timeout.
    let closed = within(10, stream.read(&mut buf)).await;
    assert!(matches!(closed, Ok(0) | Err(_)), "closed by the hub");

    // One that showed a token stays.
    let mut stream = tokio::net::TcpStream::connect(api.hub.addr).await.unwrap();
    let request = format!(
        "GET /api/v1/me HTTP/1.1\r\nHost: hub\r\nAuthorization: Bearer {}\r\n\r\n",
        api.token
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    stream.write_all(request.as_bytes()).await.unwrap();
    let n = stream.read(&mut buf).await.unwrap();
    assert!(
        String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
        "still served"
    );
}

#[tokio::test]
async fn search_finds_the_store_and_online_peers_and_events_stream_live() {
    use tokio::io::{AsyncBufReadExt, BufReader};
    let api = Api::start(|_| {}).await;
    let bob =
        crate::support::TestPeer::start(&api.hub, "bob", &[("Holiday-peer.JPG", b"b1")]).await;
    let file = api.local("h.png", b"store");
    assert_eq!(
        api.call("/api/v1/files/holiday-store.png", &["-T", &file])
            .await
            .status,
        201
    );
    let found = api.call("/api/v1/search?q=HOLIDAY", &[]).await.json();
    let mut hits: Vec<(String, String, String)> = found["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["name"].as_str().unwrap().into(),
                h["source"].as_str().unwrap().into(),
                h["owner"].as_str().unwrap().into(),
            )
        })
        .collect();
    hits.sort();
    assert_eq!(
        hits,
        [
            ("Holiday-peer.JPG".into(), "peer".into(), "bob".into()),
            ("holiday-store.png".into(), "store".into(), "Alice".into()),
        ]
    );
    assert!(
        found["hits"][0].get("addr").is_none(),
        "a peer's address is not handed out"
    );
    drop(bob);

    // The stream sees a CLI upload as it lands, and ends when the hub stops.
    let mut events = tokio::process::Command::new("curl")
        .args([
            "-sN",
            "-H",
            &format!("Authorization: Bearer {}", api.token),
            &api.url("/api/v1/events"),
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(events.stdout.take().unwrap()).lines();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("live.txt"), b"live").unwrap();
    let put = run(ferry(&api.home, &api.hub)
        .current_dir(dir.path())
        .args(["--name", "Alice", "put", "live.txt"]))
    .await;
    assert_eq!(put.code, 0, "{}", put.stderr);
    let seen = within(20, async {
        let mut kind = String::new();
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(k) = line.strip_prefix("event: ") {
                kind = k.to_owned();
            } else if let Some(data) = line.strip_prefix("data: ") {
                let data: serde_json::Value = serde_json::from_str(data).unwrap();
                if kind == "uploaded" && data["name"] == "live.txt" {
                    return data;
                }
            }
        }
        panic!("the stream ended before the upload");
    })
    .await;
    assert_eq!(seen["handle"], "Alice");

    // A stream on a token that is then removed ends with it.
    let made = run(ferry(&api.home, &api.hub).args([
        "--name", "Alice", "--json", "token", "create", "--label", "watcher",
    ]))
    .await;
    assert_eq!(made.code, 0, "{}", made.stderr);
    let made: serde_json::Value = serde_json::from_str(made.stdout.trim()).unwrap();
    let watcher = tokio::process::Command::new("curl")
        .args([
            "-sN",
            "-w",
            "%{http_code}",
            "-H",
            &format!("Authorization: Bearer {}", made["token"].as_str().unwrap()),
            &api.url("/api/v1/events"),
        ])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let id = made["id"].as_str().unwrap();
    let removed =
        run(ferry(&api.home, &api.hub).args(["--name", "Alice", "token", "rm", id])).await;
    assert_eq!(removed.code, 0, "{}", removed.stderr);
    let ended = within(30, watcher.wait_with_output()).await.unwrap();
    let said = String::from_utf8_lossy(&ended.stdout);
    // 200: it was streaming when the token went (not refused after it).
    assert!(
        ended.status.success() && said.ends_with("200"),
        "the stream ended: {:?} {said}",
        ended.status
    );

    within(20, api.hub.stop()).await;
    let status = within(10, events.wait()).await.unwrap();
    assert!(
        status.success(),
        "the stream ended cleanly with the hub: {status:?}"
    );
}

/// `Upload-Metadata` for `pairs`.
fn tus_metadata(pairs: &[(&str, &str)]) -> String {
    use base64::Engine;
    let encoded: Vec<String> = pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{k} {}",
                base64::engine::general_purpose::STANDARD.encode(v)
            )
        })
        .collect();
    format!("Upload-Metadata: {}", encoded.join(","))
}

#[tokio::test]
async fn a_resumable_upload_survives_a_hub_restart_and_publishes_once_whole() {
    let mut api = Api::start(|_| {}).await;
    let data = pattern(3_000_000, 8);
    let (first, second) = data.split_at(1_234_567);
    let (first, second) = (api.local("first", first), api.local("second", second));
    let tus = "Tus-Resumable: 1.0.0";
    let hash = blake3::hash(&data).to_hex().to_string();
    let metadata = tus_metadata(&[("filename", "videos/big film.mp4"), ("hash", &hash)]);
    let length = format!("Upload-Length: {}", data.len());

    let options = api.call("/api/v1/uploads", &["-X", "OPTIONS"]).await;
    assert_eq!(options.header("tus-version").unwrap(), "1.0.0");
    let unversioned = api
        .call(
            "/api/v1/uploads",
            &["-X", "POST", "-H", &length, "-H", &metadata],
        )
        .await;
    assert_eq!(unversioned.status, 412);
    let created = api
        .call(
            "/api/v1/uploads",
            &["-X", "POST", "-H", tus, "-H", &length, "-H", &metadata],
        )
        .await;
    assert_eq!(
        created.status,
        201,
        "{}",
        String::from_utf8_lossy(&created.body)
    );
    let location = created.header("location").unwrap();
    let patch = |file: &str, offset: usize| {
        [
            "-X".to_owned(),
            "PATCH".to_owned(),
            "-H".to_owned(),
            tus.to_owned(),
            "-H".to_owned(),
            "Content-Type: application/offset+octet-stream".to_owned(),
            "-H".to_owned(),
            format!("Upload-Offset: {offset}"),
            "--data-binary".to_owned(),
            format!("@{file}"),
        ]
    };
    let args = patch(&first, 0);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let part = api.call(&location, &args).await;
    assert_eq!(part.status, 204, "{}", String::from_utf8_lossy(&part.body));
    assert_eq!(part.header("upload-offset").unwrap(), "1234567");
    assert_eq!(
        api.call("/api/v1/files", &[]).await.json()["files"]
            .as_array()
            .unwrap()
            .len(),
        0,
        "nothing listed before the last byte"
    );

    // The hub restarts; the upload is where it was, for its owner only.
    api.hub = api.hub.restart().await;
    let head = api.call(&location, &["-I", "-H", tus]).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("upload-offset").unwrap(), "1234567");
    let bob = token(&Home::new(), &api.hub, "bob").await;
    assert_eq!(
        api.call_as(&bob, &location, &["-I", "-H", tus])
            .await
            .status,
        404
    );
    let stale = patch(&second, 0);
    let stale: Vec<&str> = stale.iter().map(String::as_str).collect();
    assert_eq!(
        api.call(&location, &stale).await.status,
        409,
        "the wrong offset"
    );

    let args = patch(&second, 1_234_567);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let done = api.call(&location, &args).await;
    assert_eq!(done.status, 204, "{}", String::from_utf8_lossy(&done.body));
    assert_eq!(done.header("ferry-hash").unwrap(), hash);
    let got = api.call("/api/v1/files/videos/big%20film.mp4", &[]).await;
    assert!(got.status == 200 && got.body == data, "published whole");
    assert_eq!(
        api.call(&location, &["-I", "-H", tus]).await.status,
        404,
        "the upload is gone"
    );
    assert_eq!(api.hub.leftovers(), 0);

    // A lying hash publishes nothing; a terminated upload leaves nothing.
    let lie = tus_metadata(&[
        ("filename", "lie.bin"),
        ("hash", &blake3::hash(b"x").to_hex()),
    ]);
    let small = api.local("small", b"abc");
    let created = api
        .call(
            "/api/v1/uploads",
            &[
                "-X",
                "POST",
                "-H",
                tus,
                "-H",
                "Upload-Length: 3",
                "-H",
                &lie,
            ],
        )
        .await;
    let location = created.header("location").unwrap();
    let args = patch(&small, 0);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    assert_eq!(api.call(&location, &args).await.status, 422);
    let named = tus_metadata(&[("filename", "dropped.bin")]);
    let created = api
        .call(
            "/api/v1/uploads",
            &[
                "-X",
                "POST",
                "-H",
                tus,
                "-H",
                "Upload-Length: 3",
                "-H",
                &named,
            ],
        )
        .await;
    let location = created.header("location").unwrap();
    assert_eq!(
        api.call(&location, &["-X", "DELETE", "-H", tus])
            .await
            .status,
        204
    );
    assert_eq!(api.hub.leftovers(), 0);
    let listed = api.call("/api/v1/files", &[]).await.json();
    assert_eq!(listed["files"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_file_only_a_peer_has_is_fetched_for_an_http_client_and_checked() {
    let api = Api::start(|_| {}).await;
    let data = pattern(1_500_000, 4);
    let bob = crate::support::TestPeer::start(
        &api.hub,
        "Bob",
        &[("docs/report.pdf", &data), ("tiny.txt", b"t")],
    )
    .await;
    let got = api.call("/api/v1/peers/bob/docs/report.pdf", &[]).await;
    assert_eq!(
        got.status,
        200,
        "{}",
        String::from_utf8_lossy(&got.body[..got.body.len().min(300)])
    );
    assert!(got.body == data, "the peer's bytes, whole");
    assert_eq!(
        got.header("ferry-hash").unwrap(),
        blake3::hash(&data).to_hex().as_str()
    );
    assert_eq!(got.header("accept-ranges").unwrap(), "none");
    let tiny = api.call("/api/v1/peers/BOB/tiny.txt", &[]).await;
    assert!(
        tiny.status == 200 && tiny.body == b"t",
        "any spelling of the handle"
    );
    let missing = api.call("/api/v1/peers/bob/nope.txt", &[]).await;
    assert_eq!(
        (missing.status, missing.error().as_str()),
        (404, "not_found")
    );
    assert_eq!(
        api.call("/api/v1/files", &[]).await.json()["files"]
            .as_array()
            .unwrap()
            .len(),
        0,
        "nothing was stored"
    );
    bob.stop().await;
    let gone = crate::support::eventually(20, async || {
        api.call("/api/v1/peers/bob/tiny.txt", &[]).await.status == 404
    })
    .await;
    assert!(gone, "an offline peer's files are not found");
}

/// A certificate for 127.0.0.1 and its key, as PEM files in `dir`.
async fn operator_certificate(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let made = run(tokio::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
        ])
        .args([
            "-subj",
            "/CN=hub.example",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert))
    .await;
    assert_eq!(made.code, 0, "openssl: {}", made.stderr);
    (cert, key)
}

#[tokio::test]
async fn an_operators_certificate_serves_and_a_renewal_is_taken_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = operator_certificate(dir.path(), "first").await;
    let port = crate::support::closed_port();
    let config = dir.path().join("hub.toml");
    let toml = format!(
        "listen = \"127.0.0.1:{port}\"\ndata = \"{}\"\nadmission = \"open\"\ndiscovery = false\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
        dir.path().join("data").display(),
        cert.display(),
        key.display()
    );
    std::fs::write(&config, toml).unwrap();
    let home = Home::new();
    let log = dir.path().join("serve.log");
    let (hub, addr) = crate::everyday::serving(
        crate::everyday::bare(&home)
            .arg("serve")
            .arg("--config")
            .arg(&config),
        &log,
    )
    .await;
    let url = format!("https://{addr}/healthz");
    let verified = curl(dir.path(), &["--cacert", cert.to_str().unwrap(), &url]).await;
    assert_eq!(
        verified.status, 200,
        "the operator's certificate is served (curl exit {})",
        verified.exit
    );

    // Renewed in place, then SIGHUP: new connections get the new one.
    let (renewed, renewed_key) = operator_certificate(dir.path(), "second").await;
    let old = dir.path().join("old.crt");
    std::fs::copy(&cert, &old).unwrap();
    std::fs::copy(&renewed, &cert).unwrap();
    std::fs::copy(&renewed_key, &key).unwrap();
    let pid = hub.id().unwrap().to_string();
    assert!(
        run(tokio::process::Command::new("kill").args(["-HUP", &pid]))
            .await
            .code
            == 0
    );
    let taken = crate::support::eventually(10, async || {
        let first_still = curl(dir.path(), &["--cacert", old.to_str().unwrap(), &url]).await;
        first_still.status == 0
    })
    .await;
    let logged = std::fs::read_to_string(log.with_extension("err")).unwrap_or_default();
    assert!(taken, "the old certificate is no longer served: {logged}");
    let verified = curl(dir.path(), &["--cacert", cert.to_str().unwrap(), &url]).await;
    assert_eq!(verified.status, 200, "the renewed one is");
    crate::everyday::terminate(hub).await;
}

#[tokio::test]
async fn open_resumable_uploads_count_against_the_quota() {
    let api = Api::start(|c| c.default_quota = Some(100_000)).await;
    let create = async |name: &str, len: u64| {
        let metadata = tus_metadata(&[("filename", name)]);
        let length = format!("Upload-Length: {len}");
        let args = [
            "-X",
            "POST",
            "-H",
            "Tus-Resumable: 1.0.0",
            "-H",
            &length,
            "-H",
            &metadata,
        ];
        api.call("/api/v1/uploads", &args).await
    };
    assert_eq!(create("a.bin", 60_000).await.status, 201);
    let second = create("b.bin", 60_000).await;
    assert_eq!(
        (second.status, second.error().as_str()),
        (507, "quota_exceeded"),
        "the open one counts"
    );
    assert_eq!(
        create("c.bin", 40_000).await.status,
        201,
        "what is left still fits"
    );
}

#[tokio::test]
async fn a_refused_uploads_answer_reaches_curl_over_http2() {
    let hub = TestHub::start_with(|c| c.tls = true).await;
    let home = Home::new();
    let token = token(&home, &hub, "alice").await;
    let dir = tempfile::tempdir().unwrap();
    let bearer = format!("Authorization: Bearer {token}");
    let url = format!("https://{}/api/v1/files/taken.bin", hub.addr);
    let small = dir.path().join("small");
    std::fs::write(&small, b"four").unwrap();
    let large = dir.path().join("large");
    std::fs::write(&large, pattern(112_000, 3)).unwrap();
    let first = curl(
        dir.path(),
        &["-k", "-H", &bearer, "-T", small.to_str().unwrap(), &url],
    )
    .await;
    assert_eq!(first.status, 201);
    // Refused before their bodies are read: the answer, not a reset.
    for body in [&small, &large, &small, &large, &large] {
        let refused = curl(
            dir.path(),
            &[
                "-k",
                "--http2",
                "-H",
                &bearer,
                "-T",
                body.to_str().unwrap(),
                &url,
            ],
        )
        .await;
        assert_eq!(
            (refused.exit, refused.status, refused.error().as_str()),
            (0, 409, "conflict"),
            "{}",
            String::from_utf8_lossy(&refused.body)
        );
        let stranger = curl(
            dir.path(),
            &[
                "-k",
                "--http2",
                "-H",
                "Authorization: Bearer ferry_0",
                "-T",
                body.to_str().unwrap(),
                &url,
            ],
        )
        .await;
        assert_eq!((stranger.exit, stranger.status), (0, 401));
    }
}
