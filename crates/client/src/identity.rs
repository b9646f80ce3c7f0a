//! The client's secret: 32 random bytes made on first use and kept in the
//! state directory (mode 0600). Whoever holds it owns the handles it
//! registered.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ferry_protocol::{Fingerprint, Secret};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::ClientError;

/// Loads the secret at `path`, creating it if absent.
pub fn load_or_create_secret(path: &Path) -> Result<Secret, ClientError> {
    match fs::read(path) {
        Ok(bytes) => {
            let bytes = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
                let reason = std::io::Error::other("expected exactly 32 bytes");
                ClientError::local("reading client secret", path, reason)
            })?;
            Ok(Secret(bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path),
        Err(e) => Err(ClientError::local("reading client secret", path, e)),
    }
}

fn create(path: &Path) -> Result<Secret, ClientError> {
    let io = |e| ClientError::local("creating client secret", path, e);
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| io(std::io::Error::other("no randomness")))?;
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io)?;
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.write_all(&bytes)
        .and_then(|()| file.sync_all())
        .map_err(io)?;
    Ok(Secret(bytes))
}

/// The certificate a client presents as a peer (serving, and fetching from
/// other peers). Self-signed, made on first use, kept in the state dir.
#[derive(Debug, Clone)]
pub struct PeerIdentity {
    cert: Vec<u8>,
    key: Vec<u8>,
    /// What the hub tells others to expect.
    pub fingerprint: Fingerprint,
}

impl PeerIdentity {
    /// Loads `dir/peer-cert.der` and `dir/peer-key.der`, creating them if absent.
    pub fn load_or_create(dir: &Path) -> Result<Self, ClientError> {
        let (cert_path, key_path) = (dir.join("peer-cert.der"), dir.join("peer-key.der"));
        let (cert, key) =
            ferry_io::tls::load_or_create_identity(&cert_path, &key_path, "ferry-peer")
                .map_err(|e| ClientError::local("loading or creating the peer identity", dir, e))?;
        let fingerprint = Fingerprint::of_certificate(&cert);
        Ok(Self {
            cert,
            key,
            fingerprint,
        })
    }

    /// The certificate chain for rustls.
    pub(crate) fn chain(&self) -> Vec<CertificateDer<'static>> {
        vec![CertificateDer::from(self.cert.clone())]
    }

    /// The private key for rustls.
    pub(crate) fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_created_once_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        let first = load_or_create_secret(&path).unwrap();
        assert_eq!(load_or_create_secret(&path).unwrap(), first);
        assert_ne!(first, Secret([0; 32]));
    }
}
