//! The hub's TLS identity: a self-signed certificate made on first start and
//! kept in the data directory, so its fingerprint stays stable and clients
//! can pin it.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use ferry_protocol::Fingerprint;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

use crate::error::HubError;

/// Protocol name announced through ALPN.
pub const ALPN: &[u8] = b"ferry/1";

/// A loaded identity, ready to accept TLS connections.
pub struct TlsIdentity {
    /// Acceptor configured with the certificate.
    pub acceptor: TlsAcceptor,
    /// What clients will see and pin.
    pub fingerprint: Fingerprint,
}

/// Loads `dir/cert.der` and `dir/key.der`, creating them on first start.
pub fn load_or_create(dir: &Path) -> Result<TlsIdentity, HubError> {
    let cert_path = dir.join("cert.der");
    let key_path = dir.join("key.der");
    if !cert_path.exists() || !key_path.exists() {
        create(dir, &cert_path, &key_path)?;
    }
    let read =
        |path: &Path| fs::read(path).map_err(|e| HubError::io("reading TLS identity", path, e));
    let cert = CertificateDer::from(read(&cert_path)?);
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(read(&key_path)?));
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
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(TlsIdentity {
        acceptor: TlsAcceptor::from(Arc::new(config)),
        fingerprint,
    })
}

fn create(dir: &Path, cert_path: &Path, key_path: &Path) -> Result<(), HubError> {
    fs::create_dir_all(dir).map_err(|e| HubError::io("creating TLS directory", dir, e))?;
    let generated = rcgen::generate_simple_self_signed(vec!["ferry-hub".to_owned()])
        .map_err(|e| HubError::Tls(e.to_string()))?;
    write_private(key_path, &generated.signing_key.serialize_der())?;
    fs::write(cert_path, generated.cert.der())
        .map_err(|e| HubError::io("writing certificate", cert_path, e))
}

fn write_private(path: &Path, bytes: &[u8]) -> Result<(), HubError> {
    ferry_io::disk::write_private(path, bytes)
        .map_err(|e| HubError::io("writing private key", path, e))
}
