//! Connecting benchmark clients the way `ferry` does: TLS with the hub's
//! certificate pinned on first use (or plaintext), then a login.

use std::path::Path;
use std::time::Duration;

use ferry_client::{ConnectOptions, HubClient, KnownHubs};

/// Where and how the benchmark clients connect.
#[derive(clap::Args, Clone, Debug)]
pub(crate) struct Target {
    /// The hub, HOST:PORT.
    #[arg(long)]
    pub(crate) hub: String,
    /// The hub runs with --plaintext.
    #[arg(long)]
    pub(crate) plaintext: bool,
}

impl Target {
    /// Options for connecting; fingerprints are pinned in `home`.
    pub(crate) fn options(&self, home: &Path) -> ConnectOptions {
        ConnectOptions {
            addr: self.hub.clone(),
            tls: !self.plaintext,
            known_hubs: KnownHubs::new(home.join("known_hubs")),
            ca_file: None,
            connect_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(30),
            expect: None,
        }
    }
}

/// Connects and logs in as `handle` (registering it on first use); the
/// secret is derived from the handle so reruns can log in again.
pub(crate) async fn connect(options: &ConnectOptions, handle: &str) -> anyhow::Result<HubClient> {
    let mut client = HubClient::connect(options).await?;
    let seed = blake3::hash(handle.as_bytes());
    let key = ferry_client::identity::LoginKey::from_seed(seed.as_bytes());
    client
        .login(handle, &key, ferry_protocol::Claim::Register, None)
        .await?;
    Ok(client)
}
