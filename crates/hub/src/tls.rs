//! The hub's TLS identity: by default a self-signed certificate made on
//! first start and kept in the data directory, so its fingerprint stays
//! stable and clients can pin it; or the operator's own certificate chain
//! and key (PEM files), read again on [`TlsIdentity::reload`] (SIGHUP).

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use ferry_protocol::Fingerprint;
use rustls::pki_types::pem::PemObject;
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
    current: RwLock<Current>,
    /// The operator's certificate chain and key, if the hub uses them.
    files: Option<(PathBuf, PathBuf)>,
}

#[derive(Clone)]
struct Current {
    acceptor: TlsAcceptor,
    fingerprint: Fingerprint,
}

impl TlsIdentity {
    /// Accepts TLS connections with the identity in force.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.read().acceptor
    }

    /// What clients see and pin: the fingerprint of the (leaf) certificate.
    pub fn fingerprint(&self) -> Fingerprint {
        self.read().fingerprint
    }

    /// Reads the operator's certificate and key again (after a renewal);
    /// connections from now on use them. Nothing to do for a self-signed
    /// identity. On an error the old identity stays.
    pub fn reload(&self) -> Result<Option<Fingerprint>, HubError> {
        let Some((cert, key)) = &self.files else {
            return Ok(None);
        };
        let current = from_files(cert, key)?;
        let fingerprint = current.fingerprint;
        *self.current.write().expect("tls lock is never poisoned") = current;
        Ok(Some(fingerprint))
    }

    fn read(&self) -> Current {
        self.current
            .read()
            .expect("tls lock is never poisoned")
            .clone()
    }
}

/// The operator's identity from `cert` (PEM chain, leaf first) and `key`
/// (PEM), or else the self-signed one in `dir`.
pub fn load(
    dir: &Path,
    names: &[String],
    files: Option<&(PathBuf, PathBuf)>,
) -> Result<TlsIdentity, HubError> {
    let current = match files {
        Some((cert, key)) => from_files(cert, key)?,
        None => return load_or_create(dir, names),
    };
    Ok(TlsIdentity {
        current: RwLock::new(current),
        files: files.cloned(),
    })
}

fn from_files(cert: &Path, key: &Path) -> Result<Current, HubError> {
    let bad = |what: &'static str, path: &Path, e: rustls::pki_types::pem::Error| {
        HubError::io(what, path, std::io::Error::other(e.to_string()))
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad("reading the certificate chain (tls_cert)", cert, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("reading the certificate chain (tls_cert)", cert, e))?;
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| bad("reading the private key (tls_key)", key, e))?;
    let Some(leaf) = chain.first() else {
        return Err(HubError::Tls(format!(
            "{} holds no certificate",
            cert.display()
        )));
    };
    let fingerprint = Fingerprint::of_certificate(leaf);
    Ok(Current {
        acceptor: acceptor(chain, key)?,
        fingerprint,
    })
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
    Ok(TlsIdentity {
        current: RwLock::new(Current {
            acceptor: acceptor(vec![cert], key)?,
            fingerprint,
        }),
        files: None,
    })
}

fn acceptor(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<TlsAcceptor, HubError> {
    let provider = Arc::new(ferry_io::tls::crypto_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .and_then(|builder| builder.with_no_client_auth().with_single_cert(chain, key))
        .map_err(|e| HubError::Tls(e.to_string()))?;
    // Ferry first: a Ferry client offers only its own, and HTTP clients
    // only theirs, so the order decides nothing but reads as the priority.
    config.alpn_protocols = vec![ALPN.to_vec(), ALPN_H2.to_vec(), ALPN_HTTP1.to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

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
