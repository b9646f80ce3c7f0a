//! Test fixtures: a real hub on a loopback port in this process, real
//! clients, a raw connection for hostile input, a proxy that cuts
//! connections, and the `ferry` binary.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ferry_client::identity::{Credentials, LoginKey};
use ferry_client::{ConnectOptions, HubClient, KnownHubs, UploadItem, prepare_upload};
use ferry_hub::{Hub, HubConfig};
use ferry_io::{FrameReader, FrameWriter};
use ferry_protocol::{Challenge, Claim, FileName, PROTOCOL_VERSION, Request, Response};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Fails a test that hangs instead of letting it hang.
pub(crate) async fn within<T>(seconds: u64, test: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(seconds), test)
        .await
        .expect("test timed out")
}

/// A hub serving on 127.0.0.1 with its data in a temp dir.
pub(crate) struct TestHub {
    pub(crate) addr: SocketAddr,
    pub(crate) hub: Arc<Hub>,
    pub(crate) dir: TempDir,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl TestHub {
    pub(crate) async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub(crate) async fn start_with(tweak: impl FnOnce(&mut HubConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::start_in(dir, tweak).await
    }

    pub(crate) async fn start_in(dir: TempDir, tweak: impl FnOnce(&mut HubConfig)) -> Self {
        Self::start_on(dir, "127.0.0.1:0".parse().unwrap(), tweak).await
    }

    /// An invite-only hub (TLS unless `tls` is false) with its owner
    /// `owner` joined from `home`: the hub and the owner's client.
    pub(crate) async fn invite_only(tls: bool, home: &Home, owner: &str) -> (Self, HubClient) {
        let hub = Self::start_with(|c| {
            c.tls = tls;
            c.admission = Some(ferry_hub::access::Admission::Invite);
        })
        .await;
        let link = hub.owner_link().await;
        let client = home.join(&hub, link.secret, owner).await.unwrap();
        (hub, client)
    }

    /// The owner invite of a hub no one owns yet.
    pub(crate) async fn owner_link(&self) -> ferry_protocol::InviteLink {
        let addr = self.addr.to_string();
        let link = self.hub.owner_invite(&addr).await.unwrap();
        link.expect("no one owns this hub yet").0
    }

    /// Stops this hub and starts a new one on the same address and data.
    pub(crate) async fn restart(self) -> Self {
        let (addr, tls, admission) = (self.addr, self.tls(), self.hub.config.admission);
        let dir = self.stop().await;
        Self::start_on(dir, addr, |c| {
            c.tls = tls;
            c.admission = admission;
        })
        .await
    }

    async fn start_on(dir: TempDir, addr: SocketAddr, tweak: impl FnOnce(&mut HubConfig)) -> Self {
        let mut config = HubConfig::new(dir.path().join("data"));
        config.shutdown_grace = Duration::from_secs(10);
        // The older designs' open hubs, unless a test asks for invites.
        config.admission = Some(ferry_hub::access::Admission::Open);
        // Many hubs run at once here: only a discovery test answers probes.
        config.discovery = None;
        tweak(&mut config);
        let hub = Hub::open(config).await.unwrap();
        let listener = TcpListener::bind(addr).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(ferry_hub::serve(
            Arc::clone(&hub),
            listener,
            shutdown.clone(),
        ));
        Self {
            addr,
            hub,
            dir,
            shutdown,
            task,
        }
    }

    /// Cancels and waits for the accept loop and every session to end.
    pub(crate) async fn stop(self) -> TempDir {
        self.shutdown.cancel();
        within(20, self.task).await.unwrap();
        self.dir
    }

    pub(crate) fn tls(&self) -> bool {
        self.hub.config.tls
    }

    /// Files currently in the store's temp and partial areas.
    pub(crate) fn leftovers(&self) -> usize {
        let store = self.dir.path().join("data/store");
        ["tmp", "partial"]
            .iter()
            .map(|d| std::fs::read_dir(store.join(d)).unwrap().count())
            .sum()
    }

    pub(crate) fn blob_count(&self) -> usize {
        let blobs = self.dir.path().join("data/store/blobs");
        std::fs::read_dir(blobs)
            .unwrap()
            .map(|shard| std::fs::read_dir(shard.unwrap().path()).unwrap().count())
            .sum()
    }
}

/// A client identity: a home directory with its secret and pins.
pub(crate) struct Home {
    pub(crate) dir: TempDir,
}

impl Home {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }

    pub(crate) fn credentials(&self) -> Credentials {
        Credentials::load(self.dir.path()).unwrap()
    }

    pub(crate) fn options(&self, addr: SocketAddr, tls: bool) -> ConnectOptions {
        ConnectOptions {
            addr: addr.to_string(),
            tls,
            known_hubs: KnownHubs::new(self.dir.path().join("known_hubs")),
            expect: None,
            ca_file: None,
            connect_timeout: Duration::from_secs(5),
            stall_timeout: Duration::from_secs(10),
        }
    }

    /// Connects without logging in.
    pub(crate) async fn connect(&self, hub: &TestHub) -> HubClient {
        HubClient::connect(&self.options(hub.addr, hub.tls()))
            .await
            .unwrap()
    }

    /// Connects and registers (or logs in as) `handle`.
    pub(crate) async fn client(&self, hub: &TestHub, handle: &str) -> HubClient {
        self.client_at(hub.addr, hub.tls(), handle).await
    }

    /// Connects and redeems the invite `secret` as `handle`.
    pub(crate) async fn join(
        &self,
        hub: &TestHub,
        secret: ferry_protocol::InviteSecret,
        handle: &str,
    ) -> Result<HubClient, ferry_client::ClientError> {
        let mut client = HubClient::connect(&self.options(hub.addr, hub.tls())).await?;
        let credentials = self.credentials();
        client
            .authenticate(handle, &credentials, Claim::Invite(secret))
            .await?;
        Ok(client)
    }

    pub(crate) async fn client_at(&self, addr: SocketAddr, tls: bool, handle: &str) -> HubClient {
        let mut client = HubClient::connect(&self.options(addr, tls)).await.unwrap();
        let credentials = self.credentials();
        client
            .authenticate(handle, &credentials, Claim::Register)
            .await
            .unwrap();
        client
    }
}

/// Writes `data` to `dir/name` and hashes it for upload as `name`.
pub(crate) async fn local_file(dir: &Path, name: &str, data: &[u8]) -> UploadItem {
    // Distinct contents under one name must not share a local file.
    let path = dir.join(format!(
        "{}-{}",
        blake3::hash(data).to_hex()[..8].to_owned(),
        name.replace('/', "_")
    ));
    std::fs::write(&path, data).unwrap();
    prepare_upload(path, FileName::parse(name).unwrap())
        .await
        .unwrap()
}

/// Entries paired with their own path as the place to download them to.
pub(crate) fn with_layout(
    entries: &[ferry_protocol::FileEntry],
) -> Vec<(ferry_protocol::FileEntry, PathBuf)> {
    entries
        .iter()
        .map(|e| {
            (
                e.clone(),
                FileName::parse(&e.name).unwrap().to_relative_path(),
            )
        })
        .collect()
}

/// Deterministic pseudo-random bytes (incompressible enough, reproducible).
pub(crate) fn pattern(len: usize, seed: u8) -> Vec<u8> {
    let mut state = u64::from(seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// A plaintext protocol connection that can send anything at all.
pub(crate) struct Raw {
    pub(crate) reader: FrameReader<tokio::net::tcp::OwnedReadHalf, Response>,
    pub(crate) writer: FrameWriter<tokio::net::tcp::OwnedWriteHalf, Request>,
    /// From the hub's `Welcome`, once greeted.
    pub(crate) challenge: Challenge,
}

/// The key raw connections log in with.
pub(crate) fn raw_key() -> LoginKey {
    LoginKey::from_seed(&[9; 32])
}

impl Raw {
    pub(crate) async fn connect(addr: SocketAddr) -> Self {
        let (read, write) = TcpStream::connect(addr).await.unwrap().into_split();
        Self {
            reader: FrameReader::new(read),
            writer: FrameWriter::new(write),
            challenge: Challenge([0; 32]),
        }
    }

    /// Connected from the loopback address `source` ("another host").
    pub(crate) async fn connect_from(addr: SocketAddr, source: [u8; 4]) -> Self {
        let (read, write) = connect_from(addr, source).await.into_split();
        Self {
            reader: FrameReader::new(read),
            writer: FrameWriter::new(write),
            challenge: Challenge([0; 32]),
        }
    }

    /// Says `Hello`; whether the hub answered `Welcome`.
    pub(crate) async fn greeted(&mut self) -> bool {
        let hello = Request::Hello {
            version: PROTOCOL_VERSION,
            agent: "raw".into(),
        };
        if self.writer.send(&hello).await.is_err() {
            return false;
        }
        match self.recv().await {
            Some(Response::Welcome { challenge, .. }) => {
                self.challenge = challenge;
                true
            }
            _ => false,
        }
    }

    /// A `Login` registering `handle` with [`raw_key`] on this (plaintext)
    /// connection.
    pub(crate) fn login_request(&self, handle: &str) -> Request {
        self.claim_request(handle, &raw_key(), Claim::Register)
    }

    /// A `Login` making `claim` for `handle` with `key` on this (plaintext)
    /// connection.
    pub(crate) fn claim_request(&self, handle: &str, key: &LoginKey, claim: Claim) -> Request {
        Request::Login {
            handle: handle.into(),
            key: key.public(),
            proof: key.prove(&self.challenge, None, handle),
            claim,
            legacy: None,
        }
    }

    /// Greets and registers `handle`; whether both worked.
    pub(crate) async fn try_log_in(&mut self, handle: &str) -> bool {
        if !self.greeted().await {
            return false;
        }
        let login = self.login_request(handle);
        self.writer.send(&login).await.is_ok()
            && matches!(self.recv().await, Some(Response::LoggedIn { .. }))
    }

    /// Connected, greeted and logged in as `handle` with a fresh secret.
    pub(crate) async fn logged_in(addr: SocketAddr, handle: &str) -> Self {
        let mut raw = Self::connect(addr).await;
        assert!(raw.greeted().await, "no Welcome");
        let login = raw.login_request(handle);
        assert!(matches!(
            raw.call(&login).await,
            Some(Response::LoggedIn { .. })
        ));
        raw
    }

    pub(crate) async fn call(&mut self, request: &Request) -> Option<Response> {
        self.writer.send(request).await.unwrap();
        self.recv().await
    }

    /// The next reply; `None` if the hub closed the connection.
    pub(crate) async fn recv(&mut self) -> Option<Response> {
        within(10, self.reader.recv()).await.ok().flatten()
    }

    pub(crate) async fn raw_bytes(&mut self, bytes: &[u8]) {
        self.writer.write_raw(bytes).await.unwrap();
        self.writer.flush().await.unwrap();
    }

    /// Whether the hub has closed this connection (reads EOF or an error).
    pub(crate) async fn closed_by_hub(&mut self) -> bool {
        loop {
            match within(10, self.reader.recv()).await {
                Ok(Some(Response::Error { .. })) => continue,
                Ok(Some(_)) => return false,
                Ok(None) | Err(_) => return true,
            }
        }
    }
}

/// A TCP connection to `addr` from the loopback address `source`.
pub(crate) async fn connect_from(addr: SocketAddr, source: [u8; 4]) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(SocketAddr::from((source, 0)))
        .expect("127.0.0.0/8 is all loopback");
    socket.connect(addr).await.unwrap()
}

/// The error code of a reply, for asserts.
pub(crate) fn code_of(reply: &Option<Response>) -> Option<ferry_protocol::ErrorCode> {
    match reply {
        Some(Response::Error { code, .. }) => Some(*code),
        _ => None,
    }
}

/// A TCP proxy in front of the hub that cuts each connection once `limit`
/// bytes have gone in the chosen direction.
pub(crate) struct CuttingProxy {
    pub(crate) addr: SocketAddr,
    task: JoinHandle<()>,
}

#[derive(Clone, Copy)]
pub(crate) enum Cut {
    Upstream(u64),
    Downstream(u64),
    /// Let everything through, but flip the bits of the byte at this
    /// offset towards the hub.
    FlipUpstream(u64),
    /// The same towards the client.
    FlipDownstream(u64),
}

impl CuttingProxy {
    pub(crate) async fn start(target: SocketAddr, cut: Cut) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let hub = TcpStream::connect(target).await.unwrap();
                tokio::spawn(relay(client, hub, cut));
            }
        });
        Self { addr, task }
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(client: TcpStream, hub: TcpStream, cut: Cut) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut hub_read, mut hub_write) = hub.into_split();
    let (mut up, mut down) = (Pump::default(), Pump::default());
    match cut {
        Cut::Upstream(n) => up.limit = n,
        Cut::Downstream(n) => down.limit = n,
        Cut::FlipUpstream(at) => up.flip = Some(at),
        Cut::FlipDownstream(at) => down.flip = Some(at),
    }
    let up = pump(&mut client_read, &mut hub_write, up);
    let down = pump(&mut hub_read, &mut client_write, down);
    // Whichever direction hits its limit (or ends) cuts both.
    tokio::select! {
        () = up => {}
        () = down => {}
    }
}

/// What one direction of a proxied connection does to the bytes.
#[derive(Clone, Copy)]
struct Pump {
    /// Bytes let through before the connection is cut.
    limit: u64,
    /// Offset of a byte whose bits are flipped on the way.
    flip: Option<u64>,
}

impl Default for Pump {
    fn default() -> Self {
        Self {
            limit: u64::MAX,
            flip: None,
        }
    }
}

async fn pump(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    pump: Pump,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut passed = 0u64;
    while passed < pump.limit {
        let want = buf
            .len()
            .min(usize::try_from(pump.limit - passed).unwrap_or(usize::MAX));
        let Ok(n) = from.read(&mut buf[..want]).await else {
            return;
        };
        if let Some(at) = pump
            .flip
            .filter(|&at| (passed..passed + n as u64).contains(&at))
        {
            buf[(at - passed) as usize] ^= 0xff;
        }
        if n == 0 || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
        passed += n as u64;
    }
}

/// The `ferry` binary under test.
pub(crate) fn ferry_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_ferry"))
}

/// A `ferry` command with its own home and the hub preset.
pub(crate) fn ferry(home: &Home, hub: &TestHub) -> tokio::process::Command {
    ferry_at(home, &hub.addr.to_string(), hub.tls())
}

/// A `ferry` command with its own home, talking to `addr`.
pub(crate) fn ferry_at(home: &Home, addr: &str, tls: bool) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(ferry_bin());
    command
        .env("FERRY_HOME", home.path())
        .env_remove("FERRY_HUB")
        .env("RUST_LOG", "warn")
        .env("FERRY_PEER_BIND", "127.0.0.1")
        .args(["--hub", addr])
        .kill_on_drop(true);
    if !tls {
        command.arg("--plaintext");
    }
    command
}

/// Output of a finished command.
pub(crate) struct Ran {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

pub(crate) async fn run(command: &mut tokio::process::Command) -> Ran {
    let output = within(60, command.output()).await.unwrap();
    Ran {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A sharing peer running in this process, as `ferry share` runs it.
pub(crate) struct TestPeer {
    /// Keeps the peer's state directory alive.
    _home: Home,
    pub(crate) dir: TempDir,
    pub(crate) events: tokio::sync::mpsc::UnboundedReceiver<ferry_client::peer::agent::ShareEvent>,
    pub(crate) rescan: Arc<tokio::sync::Notify>,
    shutdown: CancellationToken,
    task: JoinHandle<Result<(), ferry_client::ClientError>>,
}

impl TestPeer {
    /// Shares a new folder holding `files` as `handle`.
    pub(crate) async fn start(hub: &TestHub, handle: &str, files: &[(&str, &[u8])]) -> Self {
        Self::start_advertising(hub, handle, files, None).await
    }

    /// As `start`, as the client in `home` (which may have joined already).
    pub(crate) async fn start_as(
        hub: &TestHub,
        home: Home,
        handle: &str,
        files: &[(&str, &[u8])],
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_home(hub, home, handle, files, listener, None, None).await
    }

    /// As `start_as`, telling the hub `port` and whether it may keep
    /// copies of what it relays.
    pub(crate) async fn start_relayed(
        hub: &TestHub,
        home: Home,
        handle: &str,
        files: &[(&str, &[u8])],
        port: u16,
        copies: Option<bool>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_home(hub, home, handle, files, listener, Some(port), copies).await
    }

    /// As `start`, but tells the hub `port` instead of the real one (a peer
    /// whose port cannot be reached).
    pub(crate) async fn start_advertising(
        hub: &TestHub,
        handle: &str,
        files: &[(&str, &[u8])],
        port: Option<u16>,
    ) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::start_on(hub, handle, files, listener, port).await
    }

    /// As `start`, with other peers sent through a proxy that cuts each
    /// connection after `cut` bytes towards the requester.
    pub(crate) async fn start_behind_cutter(
        hub: &TestHub,
        handle: &str,
        files: &[(&str, &[u8])],
        cut: u64,
    ) -> (Self, CuttingProxy) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy = CuttingProxy::start(listener.local_addr().unwrap(), Cut::Downstream(cut)).await;
        let peer = Self::start_on(hub, handle, files, listener, Some(proxy.addr.port())).await;
        (peer, proxy)
    }

    async fn start_on(
        hub: &TestHub,
        handle: &str,
        files: &[(&str, &[u8])],
        listener: TcpListener,
        port: Option<u16>,
    ) -> Self {
        Self::start_home(hub, Home::new(), handle, files, listener, port, None).await
    }

    async fn start_home(
        hub: &TestHub,
        home: Home,
        handle: &str,
        files: &[(&str, &[u8])],
        listener: TcpListener,
        port: Option<u16>,
        copies: Option<bool>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for (name, data) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, data).unwrap();
        }
        let config = ferry_client::peer::agent::ShareConfig {
            connect: home.options(hub.addr, hub.tls()),
            handle: handle.to_owned(),
            credentials: Arc::new(home.credentials()),
            identity: ferry_client::identity::PeerIdentity::load_or_create(home.path()).unwrap(),
            advertise_port: port.unwrap_or(listener.local_addr().unwrap().port()),
            rescan_every: Duration::ZERO,
            copies,
        };
        let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
        let shutdown = CancellationToken::new();
        let rescan = Arc::new(tokio::sync::Notify::new());
        let shelf = ferry_client::peer::shelf::Shelf::folder(dir.path().to_owned());
        let cache = Arc::new(ferry_client::peer::shelf::HashCache::default());
        let task = tokio::spawn(ferry_client::peer::agent::share(
            config,
            listener,
            shelf,
            cache,
            Arc::clone(&rescan),
            shutdown.clone(),
            tx,
        ));
        // Online once the hub has answered the first offer.
        loop {
            match within(10, events.recv()).await {
                Some(ferry_client::peer::agent::ShareEvent::Offered { .. }) => break,
                Some(_) => {}
                None => panic!("the peer stopped: {:?}", task.await),
            }
        }
        Self {
            _home: home,
            dir,
            events,
            rescan,
            shutdown,
            task,
        }
    }

    /// Stops sharing, whatever the agent's state (it may have failed).
    pub(crate) async fn abandon(self) {
        self.shutdown.cancel();
        let _ = within(10, self.task).await;
    }

    /// Stops sharing and waits for the agent to end.
    pub(crate) async fn stop(self) {
        self.shutdown.cancel();
        within(10, self.task).await.unwrap().unwrap();
    }

    /// Waits for the next event matching `wanted`.
    pub(crate) async fn wait_for(
        &mut self,
        wanted: impl Fn(&ferry_client::peer::agent::ShareEvent) -> bool,
    ) {
        loop {
            let event = within(10, self.events.recv())
                .await
                .expect("the peer is running");
            if wanted(&event) {
                return;
            }
        }
    }
}

/// A requester's peer identity.
pub(crate) fn identity(home: &Home) -> ferry_client::identity::PeerIdentity {
    ferry_client::identity::PeerIdentity::load_or_create(home.path()).unwrap()
}

/// Polls `check` every 20 ms until it holds or `seconds` pass.
pub(crate) async fn eventually(seconds: u64, mut check: impl AsyncFnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    while tokio::time::Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// A hand-driven peer on a plaintext hub: shares, offers, then does only
/// what a test tells it to.
pub(crate) async fn raw_peer(
    hub: &TestHub,
    handle: &str,
    files: Vec<ferry_protocol::Offered>,
) -> (Raw, u32, Vec<String>) {
    let mut raw = Raw::sharing(hub.addr, handle).await;
    let (total, refused) = raw.offer(files, true).await;
    (raw, total, refused)
}

impl Raw {
    /// Logged in as `handle` and sharing (on a port nobody listens on).
    pub(crate) async fn sharing(addr: SocketAddr, handle: &str) -> Self {
        let mut raw = Self::logged_in(addr, handle).await;
        let share = Request::Share {
            peer_port: 1,
            fingerprint: ferry_protocol::Fingerprint::of_certificate(b"raw"),
            copies: None,
        };
        assert!(matches!(
            raw.call(&share).await,
            Some(Response::Sharing { .. })
        ));
        raw
    }

    /// Offers `files`; the hub's count of offers and its refusals.
    pub(crate) async fn offer(
        &mut self,
        files: Vec<ferry_protocol::Offered>,
        replace_all: bool,
    ) -> (u32, Vec<String>) {
        match self.call(&Request::Offer { files, replace_all }).await {
            Some(Response::Offered { total, refused }) => (total, refused),
            other => panic!("expected Offered, got {other:?}"),
        }
    }
}

/// A well-behaved client on 127.0.0.1 connects, logs in and lists, each
/// step within 5 s.
pub(crate) async fn served_at_once(hub: &TestHub) {
    let home = Home::new();
    let mut client = within(5, home.client(hub, "witness")).await;
    within(5, client.list(None)).await.unwrap();
}

/// The names in `ferry --json ls` output.
pub(crate) fn listed_names(json: &str) -> Vec<String> {
    let listed: serde_json::Value = serde_json::from_str(json).expect("ls --json prints JSON");
    let entries = listed.as_array().expect("a list of entries");
    entries
        .iter()
        .map(|e| e["name"].as_str().expect("a name").to_owned())
        .collect()
}

/// A closed port on loopback (bound, then released).
pub(crate) fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
