//! The hub's TLS identity: a self-signed certificate made on first start and
//! kept in the data directory, so its fingerprint stays stable and clients
//! can pin it.

use std::path::Path;
use std::sync::Arc;

use ferry_protocol::Fingerprint;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

use crate::error::HubError;

/// Protocol name announced through ALPN.
pub const ALPN: &[u8] = b"ferry/1";
/// HTTP/2 through ALPN.
pub const ALPN_H2: &[u8] = b"h2";
/// HTTP/1.1 through ALPN.
pub const ALPN_HTTP1: &[u8] = b"http/1.1";

/// A loaded identity, ready to accept TLS connections.
pub struct TlsIdentity {
    acceptor: TlsAcceptor,
    /// What clients will see and pin.
    pub fingerprint: Fingerprint,
}

impl TlsIdentity {
    /// Accepts TLS connections with this identity.
    pub fn acceptor(&self) -> &TlsAcceptor {
        &self.acceptor
    }
}

/// Loads `dir/cert.der` and `dir/key.der`, creating them on first start.
pub fn load_or_create(dir: &Path) -> Result<TlsIdentity, HubError> {
    let cert_path = dir.join("cert.der");
    let key_path = dir.join("key.der");
    let (cert, key) = ferry_io::tls::load_or_create_identity(&cert_path, &key_path, "ferry-hub")
        .map_err(|e| HubError::io("loading or creating the TLS identity", dir, e))?;
    let cert = CertificateDer::from(cert);
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key));
    let fingerprint = Fingerprint::of_certificate(&cert);
    let provider = Arc::new(ferry_io::tls::crypto_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .and_then(|builder| {
            builder
                .with_no_client_auth()
                .with_single_cert(vec![cert], key)
        })
        .map_err(|e| HubError::Tls(e.to_string()))?;
    // Ferry first: a Ferry client offers only its own, and HTTP clients
    // only theirs, so the order decides nothing but reads as the priority.
    config.alpn_protocols = vec![ALPN.to_vec(), ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()];
    Ok(TlsIdentity {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        fingerprint,
    })
}
