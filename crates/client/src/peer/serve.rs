//! Answering other peers on our peer port: mutual TLS, one `Fetch` per
//! connection, served only for a grant the hub announced, only to the
//! certificate named in it, only for a file we offer right now.

use std::sync::Arc;
use std::time::Duration;

use ferry_io::body::flush_within;
use ferry_io::disk::send_from_file;
use ferry_io::{FrameReader, FrameWriter, Sources};
use ferry_protocol::{ErrorCode, Fingerprint, PROTOCOL_VERSION, PeerRequest, PeerResponse, Token};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::error::ClientError;
use crate::identity::PeerIdentity;
use crate::peer::Expectations;
use crate::peer::shelf::Shelf;
use crate::tls::peer_server_config;

/// Most peers served at once.
const MAX_PEER_CONNECTIONS: usize = 64;

/// Most connections one source address may hold, so one slow or hostile
/// host never takes every slot (a requester uses one per file).
const MAX_PER_SOURCE: usize = 8;

/// Deadline for a requester's TLS handshake and its `Fetch`: the hub
/// falls back to a relay after 3 s anyway.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest frame a requester may send (a `Fetch` is a few dozen bytes).
const MAX_REQUEST_LEN: usize = 1024;

/// Something the peer server did, for the user to see.
#[derive(Debug, Clone)]
pub enum Served {
    /// A file went to a requester.
    Sent {
        /// The file.
        name: String,
        /// Who got it.
        requester: String,
        /// The grant it used (the hub is told, so that it stops counting it).
        token: Token,
    },
    /// A connection was refused.
    Refused(String),
}

/// Everything the server needs.
#[derive(Clone)]
pub struct PeerServer {
    /// What we offer.
    pub shelf: Shelf,
    /// Grants we honour.
    pub expectations: Expectations,
    /// Deadline for the handshake and for each step of a body.
    pub stall: Duration,
}

impl PeerServer {
    /// Serves on `listener` until `shutdown`; reports through `report`.
    pub async fn run(
        self,
        listener: TcpListener,
        identity: &PeerIdentity,
        shutdown: CancellationToken,
        report: impl Fn(Served) + Send + Sync + 'static,
    ) -> Result<(), ClientError> {
        let config = peer_server_config(identity).map_err(|e| ClientError::Tls {
            addr: "peer server".into(),
            reason: e.to_string(),
        })?;
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let permits = Arc::new(Semaphore::new(MAX_PEER_CONNECTIONS));
        let sources = Sources::new(MAX_PER_SOURCE, MAX_PER_SOURCE);
        let report = Arc::new(report);
        let mut tasks = JoinSet::new();
        loop {
            let (stream, from) = tokio::select! {
                () = shutdown.cancelled() => break,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Usually out of file descriptors: back off, do not spin.
                        tracing::debug!("peer port accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let Ok(slot) = sources.admit(from.ip()) else {
                continue;
            };
            let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                continue;
            };
            let (server, acceptor, report) = (self.clone(), acceptor.clone(), Arc::clone(&report));
            tasks.spawn(async move {
                let outcome = server.serve_one(stream, acceptor).await;
                report(outcome.unwrap_or_else(|e| Served::Refused(e.to_string())));
                drop((permit, slot));
            });
        }
        tasks.shutdown().await;
        Ok(())
    }

    async fn serve_one(
        &self,
        stream: TcpStream,
        acceptor: TlsAcceptor,
    ) -> Result<Served, ClientError> {
        let _ = stream.set_nodelay(true);
        let tls = timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
            .await
            .map_err(|_| ClientError::Timeout("peer handshake".into()))?
            .map_err(|e| ClientError::Tls {
                addr: "peer".into(),
                reason: e.to_string(),
            })?;
        let presented = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|certs| certs.first())
            .map(|cert| Fingerprint::of_certificate(cert));
        let (read, write) = tokio::io::split(tls);
        let mut reader = FrameReader::<_, PeerRequest>::new(read);
        reader.set_max_frame_len(MAX_REQUEST_LEN);
        let mut writer = FrameWriter::<_, PeerResponse>::new(write);
        writer.set_write_deadline(self.stall);
        let request = timeout(HANDSHAKE_TIMEOUT, reader.recv())
            .await
            .map_err(|_| ClientError::Timeout("peer request".into()))??;
        let Some(PeerRequest::Fetch {
            version,
            token,
            offset,
        }) = request
        else {
            return Err(ClientError::Protocol("the peer sent no request".into()));
        };
        let refuse = |code, message: String| PeerResponse::Error { code, message };
        let checked = match (version == PROTOCOL_VERSION, self.expectations.take(&token)) {
            (false, _) => Err(refuse(
                ErrorCode::VersionMismatch,
                format!("this peer speaks protocol {PROTOCOL_VERSION}"),
            )),
            (true, None) => Err(refuse(
                ErrorCode::PermissionDenied,
                "no valid grant: unknown, expired or already used".into(),
            )),
            (true, Some(grant)) if Some(grant.fingerprint) != presented => Err(refuse(
                ErrorCode::PermissionDenied,
                "your certificate is not the one the grant names".into(),
            )),
            (true, Some(grant)) => match self.shelf.get(&grant.name) {
                Some(file) if offset <= file.size() => Ok((grant, file)),
                Some(_) => Err(refuse(
                    ErrorCode::BadRequest,
                    "offset past the end of the file".into(),
                )),
                None => Err(refuse(
                    ErrorCode::NotFound,
                    format!("'{}' is no longer offered", grant.name),
                )),
            },
        };
        let (grant, file) = match checked {
            Ok(found) => found,
            Err(refusal) => {
                let reason = format!("{refusal:?}");
                let _ = writer.send(&refusal).await;
                let _ = writer.shutdown().await;
                return Ok(Served::Refused(reason));
            }
        };
        let source = match file.open_at(offset).await {
            Ok(source) => source,
            Err(e) => {
                // Gone, changed, or a link now: the requester is told (not
                // our paths), and no byte of whatever is there now leaves.
                tracing::info!("not serving '{}': {e}", grant.name);
                let message = format!(
                    "'{}' changed or is no longer a plain file here; not sent",
                    grant.name
                );
                let refusal = refuse(ErrorCode::NotFound, message);
                let reason = format!("{refusal:?}");
                let _ = writer.send(&refusal).await;
                let _ = writer.shutdown().await;
                return Ok(Served::Refused(reason));
            }
        };
        writer
            .queue(&PeerResponse::Sending {
                size: file.size(),
                hash: file.hash,
                offset,
            })
            .await?;
        send_from_file(
            source,
            file.size() - offset,
            &mut writer,
            self.stall,
            &mut |_| {},
        )
        .await?;
        flush_within(&mut writer, self.stall).await?;
        let _ = writer.shutdown().await;
        Ok(Served::Sent {
            name: grant.name,
            requester: grant.requester,
            token,
        })
    }
}
