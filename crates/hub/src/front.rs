//! The front door: one port for Ferry's own protocol and for HTTP. After
//! TLS, ALPN says which (`ferry/1`, `h2`, `http/1.1`); a client that names
//! none, and every plaintext client, is told apart by its first byte: a
//! Ferry frame starts with the high byte of its length, always 0, and an
//! HTTP request with a method's first letter.

use std::net::SocketAddr;
use std::sync::Arc;

use ferry_io::rewind::Rewound;
use ferry_io::{Slot, Transport};
use ferry_protocol::CHANNEL_BINDING_LABEL;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;

use crate::error::HubError;
use crate::state::Hub;
use crate::tls::{ALPN, ALPN_H2, ALPN_HTTP1};

/// Which protocol a connection speaks, and what it runs over.
pub(crate) enum Door {
    /// Ferry's protocol, with the TLS channel binding (`None` in plaintext).
    Ferry(Box<dyn Transport>, Option<[u8; 32]>),
    /// HTTP/1.1 or HTTP/2.
    Http(Box<dyn Transport>),
}

/// Serves one accepted connection to the end, whichever protocol it speaks.
pub(crate) async fn serve(
    hub: Arc<Hub>,
    stream: TcpStream,
    remote: SocketAddr,
    slot: Slot,
    shutdown: CancellationToken,
) {
    let deadline = Instant::now() + hub.config.handshake_timeout;
    let door = match timeout_at(deadline, open(&hub, stream)).await {
        Ok(Ok(Some(door))) => door,
        Ok(Ok(None)) => return,
        Ok(Err(e)) => return tracing::debug!(%remote, "handshake failed: {e}"),
        Err(_) => return tracing::debug!(%remote, "handshake timed out"),
    };
    match door {
        Door::Ferry(transport, channel) => {
            let opened = crate::session::Opened {
                transport,
                channel,
                remote,
                slot,
                deadline,
            };
            crate::session::serve(hub, opened, shutdown).await;
        }
        Door::Http(transport) => crate::http::serve(hub, transport, remote, slot, shutdown).await,
    }
}

/// TLS (unless plaintext), then the protocol. `None`: the client left.
async fn open(hub: &Hub, stream: TcpStream) -> Result<Option<Door>, HubError> {
    let Some(tls) = hub.tls() else {
        let mut first = [0];
        return Ok(match stream.peek(&mut first).await {
            Ok(0) | Err(_) => None,
            Ok(_) if first[0] == 0 => Some(Door::Ferry(Box::new(stream), None)),
            Ok(_) => Some(Door::Http(Box::new(stream))),
        });
    };
    let stream = tls
        .acceptor()
        .accept(stream)
        .await
        .map_err(|e| HubError::Tls(e.to_string()))?;
    let connection = stream.get_ref().1;
    let mut channel = [0; 32];
    connection
        .export_keying_material(&mut channel, CHANNEL_BINDING_LABEL, None)
        .map_err(|e| HubError::Tls(e.to_string()))?;
    match connection.alpn_protocol() {
        Some(ALPN) => return Ok(Some(Door::Ferry(Box::new(stream), Some(channel)))),
        Some(ALPN_H2 | ALPN_HTTP1) => return Ok(Some(Door::Http(Box::new(stream)))),
        _ => {}
    }
    let (first, stream) = Rewound::peek(stream)
        .await
        .map_err(|e| HubError::Tls(e.to_string()))?;
    Ok(match first {
        None => None,
        Some(0) => Some(Door::Ferry(Box::new(stream), Some(channel))),
        Some(_) => Some(Door::Http(Box::new(stream))),
    })
}
