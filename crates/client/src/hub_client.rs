//! A connection to a hub and the typed calls over it.

use std::time::Duration;

use ferry_io::{FrameReader, FrameWriter, Transport};
use ferry_protocol::{
    CHANNEL_BINDING_LABEL, Challenge, Claim, Event, FileEntry, FileName, Fingerprint, Grant, Hit,
    LegacyProof, MAX_LIST_PAGE, PROTOCOL_VERSION, Request, Response, Role,
};
use tokio::io::{ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

use crate::error::ClientError;
use crate::identity::{Credentials, LoginKey};
use crate::tls::{
    HubVerifier, KnownHubs, PinningVerifier, authorities, client_config, hub_server_name,
};

pub(crate) type Reader = FrameReader<ReadHalf<Box<dyn Transport>>, Response>;
pub(crate) type Writer = FrameWriter<WriteHalf<Box<dyn Transport>>, Request>;

/// How to reach a hub.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// `host:port`.
    pub addr: String,
    /// TLS with fingerprint pinning (default) or plaintext.
    pub tls: bool,
    /// Where fingerprints are pinned.
    pub known_hubs: KnownHubs,
    /// Accept only this certificate (from an invite link), whatever is
    /// pinned, and pin it once the handshake succeeds.
    pub expect: Option<Fingerprint>,
    /// Certificate authorities (PEM) whose word alone decides whether to
    /// trust the hub (`--cacert`); without it, the system's authorities
    /// vouch for a hub reached by name, and a pin for any other.
    pub ca_file: Option<std::path::PathBuf>,
    /// Deadline for connecting and for the handshake.
    pub connect_timeout: Duration,
    /// Deadline for any reply, and for each step of a body.
    pub stall_timeout: Duration,
}

/// What the handshake learnt about the hub.
#[derive(Debug, Clone)]
pub struct HubInfo {
    /// The address connected to.
    pub addr: String,
    /// Its certificate fingerprint (TLS only).
    pub fingerprint: Option<Fingerprint>,
    /// Whether this connection pinned the fingerprint for the first time.
    pub first_use: bool,
    /// The hub's self-description.
    pub agent: String,
}

/// Answer to a login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedIn {
    /// The normalised handle.
    pub handle: String,
    /// Whether this login registered it.
    pub registered: bool,
    /// What it may do.
    pub role: Role,
}

/// A live connection to a hub. Requests are answered in order.
pub struct HubClient {
    pub(crate) reader: Reader,
    pub(crate) writer: Writer,
    pub(crate) stall: Duration,
    info: HubInfo,
    /// What a login proof on this connection signs.
    challenge: Challenge,
    channel: Option<[u8; 32]>,
}

impl HubClient {
    /// Connects, runs TLS (pinning the certificate on first use) and `Hello`.
    pub async fn connect(options: &ConnectOptions) -> Result<Self, ClientError> {
        let addr = options.addr.clone();
        let connect_error = |reason: String| ClientError::Connect {
            addr: addr.clone(),
            reason,
        };
        let stream = timeout(options.connect_timeout, TcpStream::connect(&addr))
            .await
            .map_err(|_| connect_error(format!("no answer within {:?}", options.connect_timeout)))?
            .map_err(|e| connect_error(e.to_string()))?;
        let _ = stream.set_nodelay(true);
        let handshake = timeout(options.connect_timeout, handshake(options, stream));
        let Handshake {
            transport,
            fingerprint,
            first_use,
            vouched,
            channel,
        } = handshake
            .await
            .map_err(|_| ClientError::Timeout(format!("handshake with {addr}")))??;
        let (read, write) = tokio::io::split(transport);
        let mut client = Self {
            reader: FrameReader::new(read),
            writer: FrameWriter::new(write),
            stall: options.stall_timeout,
            info: HubInfo {
                addr,
                fingerprint,
                first_use,
                agent: String::new(),
            },
            challenge: Challenge([0; 32]),
            channel,
        };
        let hello = Request::Hello {
            version: PROTOCOL_VERSION,
            agent: agent(),
        };
        match client.call(&hello).await? {
            Response::Welcome {
                agent, challenge, ..
            } => {
                client.info.agent = agent;
                client.challenge = challenge;
            }
            other => return Err(unexpected(&other)),
        }
        if let Some(fingerprint) = fingerprint {
            let known = &options.known_hubs;
            // What an authority vouches for is pinned too, quietly, and
            // re-pinned on a renewal: should the authority one day not
            // vouch (a stranger's self-signed certificate), the pin still
            // stands guard rather than a new first use.
            let replace = options.expect.is_some() || vouched;
            if first_use {
                known.add(&options.addr, fingerprint)?;
            } else if replace && known.get(&options.addr) != Some(fingerprint) {
                known.forget(&options.addr)?;
                known.add(&options.addr, fingerprint)?;
            }
        }
        Ok(client)
    }

    /// What the handshake learnt.
    pub fn info(&self) -> &HubInfo {
        &self.info
    }

    /// Establishes `handle` for this connection by proving `key`, as
    /// `claim` says. `legacy` proves the pre-key secret, for a hub that
    /// asked for it ([`ferry_protocol::ErrorCode::LegacySecretNeeded`]).
    pub async fn login(
        &mut self,
        handle: &str,
        key: &LoginKey,
        claim: Claim,
        legacy: Option<LegacyProof>,
    ) -> Result<LoggedIn, ClientError> {
        let request = Request::Login {
            handle: handle.to_owned(),
            key: key.public(),
            proof: key.prove(&self.challenge, self.channel.as_ref(), handle),
            claim,
            legacy,
        };
        match self.call(&request).await? {
            Response::LoggedIn {
                handle,
                registered,
                role,
            } => Ok(LoggedIn {
                handle,
                registered,
                role,
            }),
            other => Err(unexpected(&other)),
        }
    }

    /// Logs in as `handle` with `credentials`. A handle registered before
    /// login keys moves onto the key here, with a proof of the old secret
    /// bound to this connection (the secret itself is never sent).
    pub async fn authenticate(
        &mut self,
        handle: &str,
        credentials: &Credentials,
        claim: Claim,
    ) -> Result<LoggedIn, ClientError> {
        let first = self.login(handle, &credentials.key, claim, None).await;
        let needs_legacy = matches!(
            &first,
            Err(ClientError::Hub {
                code: ferry_protocol::ErrorCode::LegacySecretNeeded,
                ..
            })
        );
        match credentials.legacy {
            Some(secret) if needs_legacy => {
                let proof = LegacyProof::new(
                    blake3::hash(&secret.0).as_bytes(),
                    &self.challenge,
                    self.channel.as_ref(),
                    handle,
                    &credentials.key.public(),
                );
                self.login(handle, &credentials.key, claim, Some(proof))
                    .await
            }
            _ => first,
        }
    }

    /// Every entry equal to or inside `prefix` (the whole store with `None`).
    /// Only what was asked for is accepted: an entry outside `prefix`, or
    /// with a name that is no valid name, fails the listing (a lying hub
    /// must not place files where the caller did not ask, as in scp's
    /// CVE-2019-6111).
    pub async fn list(&mut self, prefix: Option<&FileName>) -> Result<Vec<FileEntry>, ClientError> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let request = Request::List {
                prefix: prefix.map(ToString::to_string),
                after: after.clone(),
                limit: MAX_LIST_PAGE,
            };
            let Response::Listing { entries, more } = self.call(&request).await? else {
                return Err(ClientError::Protocol("expected a listing".into()));
            };
            if let Some(outside) = entries.iter().find(|e| !asked_for(prefix, &e.name)) {
                let wanted = prefix.map_or("the store", FileName::as_str);
                return Err(ClientError::Protocol(format!(
                    "the hub listed '{}', which is not in {wanted}: refused",
                    outside.name.escape_debug()
                )));
            }
            // Pages must move forward: a hub repeating one would keep us
            // here, growing `all`, for ever.
            let sorted = entries.windows(2).all(|w| w[0].name < w[1].name);
            let forward = match (&after, entries.first()) {
                (Some(previous), Some(first)) => first.name > *previous,
                _ => true,
            };
            if !sorted || !forward {
                return Err(ClientError::Protocol(
                    "the hub's listing pages are out of order: refused".into(),
                ));
            }
            after = entries.last().map(|e| e.name.clone());
            all.extend(entries);
            if !more || after.is_none() {
                return Ok(all);
            }
        }
    }

    /// Deletes `name` (which this handle must own).
    pub async fn delete(&mut self, name: &FileName) -> Result<(), ClientError> {
        match self
            .call(&Request::Delete {
                name: name.to_string(),
            })
            .await?
        {
            Response::Deleted { .. } => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Says goodbye properly (TLS `close_notify`) and drops the connection.
    pub async fn close(mut self) {
        let _ = timeout(self.stall, self.writer.shutdown()).await;
    }

    /// Searches the store and every online peer's offers.
    pub async fn search(
        &mut self,
        term: &str,
        limit: u32,
    ) -> Result<(Vec<Hit>, bool), ClientError> {
        match self
            .call(&Request::Search {
                term: term.to_owned(),
                limit,
            })
            .await?
        {
            Response::SearchResults { hits, truncated } => Ok((hits, truncated)),
            other => Err(unexpected(&other)),
        }
    }

    /// Asks the hub to introduce us to `owner` for `name`.
    pub async fn request_peer(
        &mut self,
        owner: &str,
        name: &str,
        fingerprint: Fingerprint,
    ) -> Result<Grant, ClientError> {
        let request = Request::RequestPeer {
            owner: owner.to_owned(),
            name: name.to_owned(),
            fingerprint,
        };
        match self.call(&request).await? {
            Response::Granted { grant } => Ok(grant),
            other => Err(unexpected(&other)),
        }
    }

    /// Turns this connection into a feed of hub events.
    pub async fn subscribe(mut self) -> Result<EventFeed, ClientError> {
        match self.call(&Request::Subscribe).await? {
            Response::Subscribed => Ok(EventFeed {
                reader: self.reader,
                _writer: self.writer,
            }),
            other => Err(unexpected(&other)),
        }
    }

    /// Sends one request and reads its reply; a hub `Error` becomes `Err`.
    pub(crate) async fn call(&mut self, request: &Request) -> Result<Response, ClientError> {
        self.writer.send(request).await?;
        self.reply().await
    }

    /// Reads the next reply within the stall deadline.
    pub(crate) async fn reply(&mut self) -> Result<Response, ClientError> {
        read_reply(&mut self.reader, self.stall).await
    }
}

/// Whether `name` is a valid name equal to `prefix` or inside it.
fn asked_for(prefix: Option<&FileName>, name: &str) -> bool {
    let Ok(name) = FileName::parse(name) else {
        return false;
    };
    match prefix {
        None => true,
        Some(prefix) => {
            name == *prefix
                || name
                    .as_str()
                    .strip_prefix(prefix.as_str())
                    .is_some_and(|rest| rest.starts_with('/'))
        }
    }
}

/// Reads one reply from `reader`, turning a hub `Error` into `Err`.
pub(crate) async fn read_reply(
    reader: &mut Reader,
    stall: Duration,
) -> Result<Response, ClientError> {
    let reply = timeout(stall, reader.recv())
        .await
        .map_err(|_| ClientError::Timeout(format!("no reply from the hub within {stall:?}")))??;
    match reply {
        None => Err(ClientError::Closed),
        Some(Response::Error { code, message }) => Err(ClientError::Hub { code, message }),
        Some(response) => Ok(response),
    }
}

/// A subscribed connection: hub events, as they happen.
pub struct EventFeed {
    reader: Reader,
    _writer: Writer,
}

impl EventFeed {
    /// The next event; `None` when the hub closes the feed.
    pub async fn next(&mut self) -> Result<Option<Event>, ClientError> {
        match self.reader.recv().await? {
            None => Ok(None),
            Some(Response::Event(event)) => Ok(Some(event)),
            Some(Response::Error { code, message }) => Err(ClientError::Hub { code, message }),
            Some(other) => Err(unexpected(&other)),
        }
    }
}

pub(crate) fn unexpected(response: &Response) -> ClientError {
    let kind = format!("{response:?}");
    ClientError::Protocol(kind.chars().take(80).collect())
}

fn agent() -> String {
    format!("ferry {}", env!("CARGO_PKG_VERSION"))
}

/// What a handshake yields.
struct Handshake {
    transport: Box<dyn Transport>,
    /// The hub's certificate's (TLS only).
    fingerprint: Option<Fingerprint>,
    /// Nothing was pinned and no authority vouched: pin it, and say so.
    first_use: bool,
    /// A certificate authority vouched for the certificate.
    vouched: bool,
    /// The TLS channel binding.
    channel: Option<[u8; 32]>,
}

async fn handshake(options: &ConnectOptions, stream: TcpStream) -> Result<Handshake, ClientError> {
    if !options.tls {
        return Ok(Handshake {
            transport: Box::new(stream),
            fingerprint: None,
            first_use: false,
            vouched: false,
            channel: None,
        });
    }
    let known = options.known_hubs.get(&options.addr);
    let pinned = options.expect.or(known);
    let server_name = hub_server_name(&options.addr);
    // An invite link's fingerprint is exact: no authority overrides it.
    let authority = match options.expect {
        Some(_) => None,
        // Reading the system's store waits for the disk.
        None => {
            let (ca_file, name) = (options.ca_file.clone(), server_name.clone());
            tokio::task::spawn_blocking(move || authorities(ca_file.as_deref(), &name))
                .await
                .map_err(|e| ClientError::Tls {
                    addr: options.addr.clone(),
                    reason: e.to_string(),
                })??
        }
    };
    let verifier = HubVerifier::new(
        authority,
        options.ca_file.is_some() && options.expect.is_none(),
        PinningVerifier::new(pinned),
    );
    let config = client_config(verifier.clone(), None).map_err(|e| ClientError::Tls {
        addr: options.addr.clone(),
        reason: e.to_string(),
    })?;
    // rustls reads the socket 4 KiB at a time; a read-ahead buffer under it
    // makes that one system call per 64 KiB. Worth its memory in a client
    // (one connection), not in the hub (a thousand). A/B, 1 GiB get, six
    // paired rounds: 1.98 s mean against 2.03 s without, within the noise.
    let stream = tokio::io::BufReader::with_capacity(64 * 1024, stream);
    let connected = TlsConnector::from(std::sync::Arc::new(config))
        .connect(server_name, stream)
        .await;
    match (connected, pinned, verifier.seen()) {
        (Ok(tls), _, seen) => {
            let mut channel = [0; 32];
            tls.get_ref()
                .1
                .export_keying_material(&mut channel, CHANNEL_BINDING_LABEL, None)
                .map_err(|e| ClientError::Tls {
                    addr: options.addr.clone(),
                    reason: e.to_string(),
                })?;
            // What an authority vouches for is no first use, and its
            // word outweighs an old pin (a renewal).
            Ok(Handshake {
                transport: Box::new(tls),
                fingerprint: seen,
                first_use: known.is_none() && !verifier.vouched(),
                vouched: verifier.vouched(),
                channel: Some(channel),
            })
        }
        (Err(e), _, _) if verifier.refused_by_authority() => Err(ClientError::NotVouchedFor {
            addr: options.addr.clone(),
            ca_file: options.ca_file.clone().unwrap_or_default(),
            reason: e.to_string(),
        }),
        (Err(_), Some(pinned), Some(presented)) if pinned != presented => {
            Err(ClientError::FingerprintChanged {
                addr: options.addr.clone(),
                pinned,
                presented,
                known_hubs: options.known_hubs.path().to_owned(),
            })
        }
        (Err(e), _, _) => Err(ClientError::Tls {
            addr: options.addr.clone(),
            reason: e.to_string(),
        }),
    }
}
