//! Hub settings. The binary builds a [`HubConfig`] from flags and the config
//! file; the library never sees clap or TOML.

use std::path::PathBuf;
use std::time::Duration;

use ferry_protocol::limits::{HANDSHAKE_TIMEOUT, STALL_TIMEOUT};

/// Everything a hub needs besides its listening socket.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Root of the hub's state: database, blobs, certificate.
    pub data_dir: PathBuf,
    /// Serve TLS (the default) or plaintext TCP.
    pub tls: bool,
    /// The names a new self-signed certificate is made for (addresses
    /// become IP names): the hub's addresses and host names.
    pub tls_names: Vec<String>,
    /// The operator's certificate chain and private key (PEM) instead of
    /// the self-signed certificate.
    pub tls_files: Option<(PathBuf, PathBuf)>,
    /// Most connections served at once; further ones are closed at accept.
    pub max_connections: usize,
    /// Most connections one source address (an IPv6 /64) may hold.
    pub max_connections_per_source: usize,
    /// Most connections one source may hold that have not logged in yet.
    pub max_unverified_per_source: usize,
    /// How long a connection may take from accept to a successful login.
    pub login_timeout: Duration,
    /// Deadline for TLS plus `Hello`.
    pub handshake_timeout: Duration,
    /// How long a connection may sit between requests.
    pub idle_timeout: Duration,
    /// How long a body transfer may go without progress.
    pub stall_timeout: Duration,
    /// After SIGTERM, how long running transfers get to finish.
    pub shutdown_grace: Duration,
    /// Largest file accepted into the store.
    pub max_file_size: u64,
    /// How long an interrupted upload is kept for resuming.
    pub partial_ttl: Duration,
    /// A sharing peer that sends nothing (not even a heartbeat) for this
    /// long is taken offline.
    pub peer_timeout: Duration,
    /// How long a peer gets to acknowledge a grant.
    pub grant_timeout: Duration,
    /// How long a relay waits for the owner to start pushing.
    pub relay_timeout: Duration,
    /// Keep a copy of relayed files in the store, as the older relay design
    /// did (`None`: open hubs do, invite-only hubs do not). Copies within
    /// `max_file_size` only.
    pub keep_relayed: Option<bool>,
    /// Bytes all kept relayed copies may take; past it the oldest go.
    pub relay_cache: u64,
    /// The UDP port discovery probes are answered on (`None`: off).
    pub discovery: Option<u16>,
    /// Most files one peer may offer.
    pub max_offers_per_peer: usize,
    /// Most files all peers together may offer.
    pub max_offers_total: usize,
    /// Most memory all offers together may take, in bytes.
    pub max_offer_memory: usize,
    /// Free space the store's disk keeps: uploads that would leave less
    /// are refused at once, as "storage full".
    pub min_free_space: u64,
    /// Who may register (`None`: open for a data dir from before invites,
    /// else invite).
    pub admission: Option<crate::access::Admission>,
    /// Quota of users whose invite set none, in bytes (`None`: unlimited).
    pub default_quota: Option<u64>,
    /// On an open hub, handles one source address may register per 10 minutes.
    pub registrations_per_source: u32,
    /// On an open hub, handles that never uploaded or shared are removed
    /// this long after they were last seen.
    pub idle_handle_ttl: Duration,
    /// At start, remove catalog entries whose bytes are missing from the
    /// store (and say which) instead of refusing to start.
    pub repair: bool,
}

impl HubConfig {
    /// Defaults for a hub keeping its state in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            tls: true,
            tls_names: ["ferry-hub", "localhost", "127.0.0.1", "::1"]
                .map(str::to_owned)
                .to_vec(),
            tls_files: None,
            max_connections: 4096,
            max_connections_per_source: 1024,
            max_unverified_per_source: 128,
            login_timeout: Duration::from_secs(30),
            handshake_timeout: HANDSHAKE_TIMEOUT,
            idle_timeout: Duration::from_secs(600),
            stall_timeout: STALL_TIMEOUT,
            shutdown_grace: Duration::from_secs(30),
            max_file_size: 64 << 30,
            partial_ttl: Duration::from_secs(24 * 3600),
            peer_timeout: Duration::from_secs(9),
            grant_timeout: Duration::from_secs(5),
            relay_timeout: Duration::from_secs(10),
            keep_relayed: None,
            relay_cache: 4 << 30,
            discovery: Some(ferry_protocol::discovery::DISCOVERY_PORT),
            admission: None,
            default_quota: None,
            idle_handle_ttl: Duration::from_secs(30 * 24 * 3600),
            registrations_per_source: crate::access::attempts::REGISTRATIONS_PER_WINDOW,
            max_offers_per_peer: 100_000,
            max_offers_total: 1_000_000,
            max_offer_memory: 256 << 20,
            min_free_space: 64 << 20,
            repair: false,
        }
    }
}
