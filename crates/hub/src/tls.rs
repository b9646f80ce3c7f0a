//! The hub's TLS identity: a self-signed certificate made on first start and
//! kept in the data directory, so its fingerprint stays stable and clients
//! can pin it.

use std::path::Path;
use std::sync::Arc;

use ferry_protocol::Fingerprint;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

use crate::error::HubError;

/// A certificate in PEM, as curl's `--cacert` and rclone's `--ca-cert` read it.
fn pem(der: &[u8]) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = encoded
        .as_bytes()
        .chunks(64)
        .map(|line| std::str::from_utf8(line).expect("base64 is ascii"))
        .collect();
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        lines.join("\n")
    )
}

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

/// Loads `dir/cert.der` and `dir/key.der`, creating them on first start
/// for `names` (addresses and host names, so that curl or rclone can
/// verify the hub with `--cacert dir/cert.pem` instead of skipping checks;
/// Ferry's clients pin the fingerprint whatever the names). `cert.pem` is
/// written beside them at every start: it is public.
pub fn load_or_create(dir: &Path, names: &[String]) -> Result<TlsIdentity, HubError> {
    let cert_path = dir.join("cert.der");
    let key_path = dir.join("key.der");
    let (cert, key) = ferry_io::tls::load_or_create_identity(&cert_path, &key_path, names)
        .map_err(|e| HubError::io("loading or creating the TLS identity", dir, e))?;
    let pem_path = dir.join("cert.pem");
    std::fs::write(&pem_path, pem(&cert))
        .map_err(|e| HubError::io("writing the certificate as PEM", &pem_path, e))?;
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
