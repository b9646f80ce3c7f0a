//! Fetching a granted file straight from its owner's peer port: mutual TLS
//! pinned to the certificate the hub vouched for, resume from a partial
//! file, verification before the file appears.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ferry_io::{FrameReader, FrameWriter};
use ferry_protocol::{
    ConflictPolicy, FileEntry, Grant, PROTOCOL_VERSION, PeerRequest, PeerResponse, Request,
    Response,
};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_rustls::TlsConnector;

use crate::download::{Incoming, plan_download, receive_file};
use crate::error::ClientError;
use crate::hub_client::{HubClient, unexpected};
use crate::identity::PeerIdentity;
use crate::local::DownloadDir;
use crate::progress::Progress;
use crate::tls::{PinningVerifier, client_config};
use crate::transfer::{FileResult, Transferred, report};

/// The entry a grant describes, as a download target.
pub fn grant_entry(grant: &Grant) -> FileEntry {
    FileEntry {
        name: grant.file.name.clone(),
        size: grant.file.size,
        hash: grant.file.hash,
        owner: grant.owner.clone(),
        modified: 0,
    }
}

/// Fetches `grant`'s file directly from the owner into `dir/relative`.
/// Fails fast (within `connect_timeout`) if the owner cannot be reached,
/// so the caller can fall back to the relay.
pub async fn fetch_direct(
    grant: &Grant,
    identity: &PeerIdentity,
    target: (&Path, &Path),
    policy: ConflictPolicy,
    progress: &dyn Progress,
    timeouts: (Duration, Duration),
) -> FileResult {
    let result: FileResult = async {
        let (dir, relative) = target;
        let (connect_timeout, stall) = timeouts;
        let entry = grant_entry(grant);
        let plan = plan_download(&entry, relative, &DownloadDir::open(dir)?, policy)?;
        let tls = connect(grant, identity, connect_timeout).await?;
        let (read, write) = tokio::io::split(tls);
        let mut reader = FrameReader::<_, PeerResponse>::new(read);
        let mut writer = FrameWriter::<_, PeerRequest>::new(write);
        writer
            .send(&PeerRequest::Fetch {
                version: PROTOCOL_VERSION,
                token: grant.token,
                offset: plan.offset,
            })
            .await?;
        let reply = timeout(stall, reader.recv())
            .await
            .map_err(|_| ClientError::Timeout("peer reply".into()))??;
        let incoming = match reply {
            Some(PeerResponse::Sending { size, hash, offset })
                if size == grant.file.size && hash == grant.file.hash && offset == plan.offset =>
            {
                Incoming { size, hash, offset }
            }
            Some(PeerResponse::Sending { .. }) => {
                return Err(ClientError::Protocol(
                    "the peer announced a different file than it offered".into(),
                ));
            }
            Some(PeerResponse::Error { code, message }) => {
                return Err(ClientError::Hub { code, message });
            }
            None => return Err(ClientError::Closed),
        };
        let placed = receive_file(&mut reader, &plan, incoming, policy, progress, stall).await?;
        Ok(Transferred {
            entry,
            path: Some(placed),
            resumed_from: incoming.offset,
            deduplicated: false,
        })
    }
    .await;
    if result.is_ok() {
        report(progress, &grant.file.name, &result);
    }
    result
}

/// Opens mutual TLS to the grant's owner, accepting only the certificate
/// the hub vouched for.
async fn connect(
    grant: &Grant,
    identity: &PeerIdentity,
    connect_timeout: Duration,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, ClientError> {
    let connect_error = |reason: String| ClientError::Connect {
        addr: grant.addr.clone(),
        reason,
    };
    let stream = timeout(connect_timeout, TcpStream::connect(&grant.addr))
        .await
        .map_err(|_| connect_error(format!("no answer within {connect_timeout:?}")))?
        .map_err(|e| connect_error(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    let tls_error = |reason: String| ClientError::Tls {
        addr: grant.addr.clone(),
        reason,
    };
    let verifier = PinningVerifier::new(Some(grant.fingerprint));
    let config = client_config(verifier, Some(identity)).map_err(|e| tls_error(e.to_string()))?;
    let name = ServerName::try_from("ferry-peer").expect("a valid DNS name");
    timeout(
        connect_timeout,
        TlsConnector::from(Arc::new(config)).connect(name, stream),
    )
    .await
    .map_err(|_| connect_error("TLS handshake timed out".into()))?
    .map_err(|e| tls_error(format!("{e} (not the peer the hub vouched for?)")))
}

impl HubClient {
    /// Fetches `grant`'s file through the hub, which asks the owner to push it.
    pub async fn fetch_relayed(
        &mut self,
        grant: &Grant,
        target: (&Path, &Path),
        policy: ConflictPolicy,
        progress: &dyn Progress,
    ) -> FileResult {
        let (dir, relative) = target;
        let entry = grant_entry(grant);
        let plan = plan_download(&entry, relative, &DownloadDir::open(dir)?, policy)?;
        self.writer
            .send(&Request::Relay {
                token: grant.token,
                offset: plan.offset,
            })
            .await?;
        let incoming = match self.reply().await? {
            Response::Sending { entry, offset }
                if entry.hash == grant.file.hash && offset == plan.offset =>
            {
                Incoming {
                    size: entry.size,
                    hash: entry.hash,
                    offset,
                }
            }
            other => return Err(unexpected(&other)),
        };
        let placed = receive_file(
            &mut self.reader,
            &plan,
            incoming,
            policy,
            progress,
            self.stall,
        )
        .await?;
        let result = Ok(Transferred {
            entry,
            path: Some(placed),
            resumed_from: incoming.offset,
            deduplicated: false,
        });
        report(progress, &grant.file.name, &result);
        result
    }
}
