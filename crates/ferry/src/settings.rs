//! Resolved settings: flags over the config file over the environment,
//! checked before any command runs. Library code gets these, never clap types.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ferry_client::{ConnectOptions, KnownHubs};
use serde::Deserialize;

use crate::cli::{AdmissionArg, GlobalArgs, ServeArgs};
use crate::remembered::Remembered;
use ferry_hub::access::Admission;

/// Port used when an address names none.
pub(crate) const DEFAULT_PORT: u16 = 7878;

/// `config.toml` in the client's state directory.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientFile {
    hub: Option<String>,
    name: Option<String>,
    plaintext: Option<bool>,
    cacert: Option<PathBuf>,
    peer_bind: Option<std::net::IpAddr>,
}

/// Everything a client command needs to know.
#[derive(Debug, Clone)]
pub(crate) struct ClientSettings {
    /// Hub address, if configured anywhere.
    pub(crate) hub: Option<String>,
    /// Handle to use, if configured.
    pub(crate) name: Option<String>,
    /// TLS on (default) or off.
    pub(crate) tls: bool,
    /// The certificate authorities that alone may vouch for the hub.
    pub(crate) cacert: Option<PathBuf>,
    /// JSON output.
    pub(crate) json: bool,
    /// Where client state lives: config, secret, known hubs, history.
    pub(crate) state_dir: PathBuf,
    /// Address the peer port listens on when sharing.
    pub(crate) peer_bind: std::net::IpAddr,
}

impl ClientSettings {
    /// Resolves flags, the config file and `FERRY_HUB`.
    pub(crate) fn resolve(global: &GlobalArgs) -> Result<Self> {
        let state_dir = state_dir()?;
        let config_path = state_dir.join("config.toml");
        let file = match std::fs::read_to_string(&config_path) {
            Ok(text) => toml::from_str(&text)
                .with_context(|| format!("reading {}", config_path.display()))?,
            Err(_) => ClientFile::default(),
        };
        let remembered = Remembered::load(&state_dir);
        let hub = global
            .hub
            .clone()
            .or(file.hub)
            .or_else(|| std::env::var("FERRY_HUB").ok())
            .map(|h| normalize_addr(&h))
            .transpose()?
            .or(remembered.default.clone());
        let memory = hub
            .as_ref()
            .and_then(|h| remembered.hubs.get(h))
            .cloned()
            .unwrap_or_default();
        let peer_bind = match std::env::var("FERRY_PEER_BIND") {
            Ok(ip) => ip
                .parse()
                .with_context(|| format!("FERRY_PEER_BIND={ip} is not an IP address"))?,
            Err(_) => file
                .peer_bind
                .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into()),
        };
        let plaintext = global.plaintext || file.plaintext.unwrap_or(memory.plaintext);
        Ok(Self {
            hub,
            name: global.name.clone().or(file.name).or(memory.handle),
            tls: !plaintext,
            // A relative path in the config file is relative to the file.
            cacert: global
                .cacert
                .clone()
                .or_else(|| file.cacert.map(|ca| state_dir.join(ca))),
            json: global.json,
            state_dir,
            peer_bind,
        })
    }

    /// Connection options for `addr`.
    pub(crate) fn connect_options(&self, addr: &str) -> ConnectOptions {
        ConnectOptions {
            addr: addr.to_owned(),
            tls: self.tls,
            known_hubs: self.known_hubs(),
            expect: None,
            ca_file: self.cacert.clone(),
            connect_timeout: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(60),
        }
    }

    /// The pinned fingerprints.
    pub(crate) fn known_hubs(&self) -> KnownHubs {
        KnownHubs::new(self.state_dir.join("known_hubs"))
    }

    /// The client's login key and old secret.
    pub(crate) fn credentials(&self) -> Result<ferry_client::identity::Credentials> {
        Ok(ferry_client::identity::Credentials::load(&self.state_dir)?)
    }
}

/// `FERRY_HOME`, else the platform's config directory for ferry.
fn state_dir() -> Result<PathBuf> {
    if let Some(home) = std::env::var_os("FERRY_HOME") {
        return Ok(PathBuf::from(home));
    }
    directories::ProjectDirs::from("", "", "ferry")
        .map(|dirs| dirs.config_dir().to_owned())
        .context("cannot find a config directory; set FERRY_HOME")
}

/// `host` or `host:port` → `host:port`.
pub(crate) fn normalize_addr(addr: &str) -> Result<String> {
    let addr = addr.trim();
    if addr.is_empty() || addr.contains(char::is_whitespace) {
        bail!("'{addr}' is not a hub address (HOST:PORT)");
    }
    match addr.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && !host.ends_with(':') => {
            port.parse::<u16>()
                .with_context(|| format!("bad port in '{addr}'"))?;
            Ok(addr.to_owned())
        }
        _ => Ok(format!("{addr}:{DEFAULT_PORT}")),
    }
}

/// The hub's config file, `ferry serve --config FILE`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HubFile {
    listen: Option<std::net::SocketAddr>,
    /// The operator's certificate chain (PEM), with `tls_key`.
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    data: Option<PathBuf>,
    plaintext: Option<bool>,
    max_connections: Option<usize>,
    max_connections_per_source: Option<usize>,
    max_unverified_per_source: Option<usize>,
    login_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    stall_timeout_secs: Option<u64>,
    shutdown_grace_secs: Option<u64>,
    max_file_size: Option<u64>,
    peer_timeout_secs: Option<u64>,
    relay_timeout_secs: Option<u64>,
    keep_relayed: Option<bool>,
    max_offers_per_peer: Option<usize>,
    max_offers_total: Option<usize>,
    max_offer_memory: Option<usize>,
    min_free_space: Option<u64>,
    admission: Option<String>,
    default_quota: Option<u64>,
    idle_handle_days: Option<u64>,
    registrations_per_source: Option<u32>,
    relay_cache: Option<u64>,
    discovery: Option<bool>,
    discovery_port: Option<u16>,
}

/// A hub's resolved settings.
pub(crate) struct ServeSettings {
    /// Where to listen.
    pub(crate) listen: std::net::SocketAddr,
    /// The library configuration.
    pub(crate) hub: ferry_hub::HubConfig,
}

impl ServeSettings {
    /// Flags over the config file over defaults.
    pub(crate) fn resolve(args: &ServeArgs) -> Result<Self> {
        let file: HubFile = match &args.config {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?
            }
            None => HubFile::default(),
        };
        let data = args
            .data
            .clone()
            .or(file.data)
            .unwrap_or_else(|| Path::new("ferry-data").to_owned());
        let mut hub = ferry_hub::HubConfig::new(data);
        hub.tls = !(args.plaintext || file.plaintext.unwrap_or(false));
        hub.repair = args.repair;
        hub.tls_files = match (file.tls_cert, file.tls_key) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            _ => anyhow::bail!("hub.toml: tls_cert and tls_key go together (PEM files)"),
        };
        let secs = |v: Option<u64>, default: Duration| v.map_or(default, Duration::from_secs);
        hub.max_connections = file.max_connections.unwrap_or(hub.max_connections);
        hub.max_connections_per_source = file
            .max_connections_per_source
            .unwrap_or(hub.max_connections_per_source);
        hub.max_unverified_per_source = file
            .max_unverified_per_source
            .unwrap_or(hub.max_unverified_per_source);
        hub.login_timeout = secs(file.login_timeout_secs, hub.login_timeout);
        hub.idle_timeout = secs(file.idle_timeout_secs, hub.idle_timeout);
        hub.stall_timeout = secs(file.stall_timeout_secs, hub.stall_timeout);
        hub.shutdown_grace = secs(file.shutdown_grace_secs, hub.shutdown_grace);
        hub.max_file_size = file.max_file_size.unwrap_or(hub.max_file_size);
        hub.peer_timeout = secs(file.peer_timeout_secs, hub.peer_timeout);
        hub.relay_timeout = secs(file.relay_timeout_secs, hub.relay_timeout);
        hub.keep_relayed = file.keep_relayed.or(hub.keep_relayed);
        hub.max_offers_per_peer = file.max_offers_per_peer.unwrap_or(hub.max_offers_per_peer);
        hub.max_offers_total = file.max_offers_total.unwrap_or(hub.max_offers_total);
        hub.max_offer_memory = file.max_offer_memory.unwrap_or(hub.max_offer_memory);
        hub.min_free_space = file.min_free_space.unwrap_or(hub.min_free_space);
        hub.default_quota = file.default_quota.or(hub.default_quota);
        hub.relay_cache = file.relay_cache.unwrap_or(hub.relay_cache);
        hub.discovery = match (file.discovery, file.discovery_port) {
            (Some(false), _) => None,
            (_, Some(port)) => Some(port),
            _ => hub.discovery,
        };
        hub.registrations_per_source = file
            .registrations_per_source
            .unwrap_or(hub.registrations_per_source);
        if let Some(days) = file.idle_handle_days {
            hub.idle_handle_ttl = Duration::from_secs(days.saturating_mul(86_400));
        }
        hub.admission = match (args.admission, file.admission.as_deref()) {
            (Some(AdmissionArg::Invite), _) => Some(Admission::Invite),
            (Some(AdmissionArg::Open), _) => Some(Admission::Open),
            (None, Some(text)) => Some(Admission::parse(text).with_context(|| {
                format!("admission = \"{text}\" in the config file: say \"invite\" or \"open\"")
            })?),
            (None, None) => None,
        };
        let listen = args
            .listen
            .or(file.listen)
            .unwrap_or_else(|| ([0, 0, 0, 0], DEFAULT_PORT).into());
        Ok(Self { listen, hub })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_get_the_default_port() {
        assert_eq!(normalize_addr("10.0.0.1").unwrap(), "10.0.0.1:7878");
        assert_eq!(normalize_addr(" hub:9000 ").unwrap(), "hub:9000");
        assert!(normalize_addr("hub:notaport").is_err());
        assert!(normalize_addr("").is_err());
    }
}
