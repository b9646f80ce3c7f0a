//! The client's identity: its login key (an Ed25519 seed, 32 random bytes
//! made on first use, mode 0600), its peer certificate, and the bearer
//! secret of earlier versions, read only to move an old handle onto the key.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use ferry_protocol::{Challenge, Fingerprint, PublicKey, Secret, Signature, login_transcript};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::ClientError;

/// The key a client proves its handles with. It never leaves the client:
/// a login sends a signature bound to that one connection.
pub struct LoginKey {
    pair: Ed25519KeyPair,
}

impl std::fmt::Debug for LoginKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LoginKey({:?})", self.public())
    }
}

impl LoginKey {
    /// Loads the key seed at `path`, creating it if absent.
    pub fn load_or_create(path: &Path) -> Result<Self, ClientError> {
        let seed = load_or_create_secret(path)?;
        Ok(Self::from_seed(&seed.0))
    }

    /// The key made from a 32-byte seed (any 32 bytes are one).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed)
            .expect("every 32-byte seed makes an Ed25519 key");
        Self { pair }
    }

    /// The public half, which the hub keeps.
    pub fn public(&self) -> PublicKey {
        let bytes = self.pair.public_key().as_ref();
        PublicKey(bytes.try_into().expect("Ed25519 public keys are 32 bytes"))
    }

    /// Proves this key for `handle` on the connection that sent `challenge`
    /// and whose TLS channel binding is `channel`.
    pub fn prove(
        &self,
        challenge: &Challenge,
        channel: Option<&[u8; 32]>,
        handle: &str,
    ) -> Signature {
        let signed = self
            .pair
            .sign(&login_transcript(challenge, channel, handle));
        Signature::from_slice(signed.as_ref()).expect("Ed25519 signatures are 64 bytes")
    }
}

/// What a client logs in with: its key, and the bearer secret of earlier
/// versions if it has one (to move old handles onto the key).
#[derive(Debug)]
pub struct Credentials {
    /// The login key.
    pub key: LoginKey,
    /// The pre-key secret, if this client was used before keys.
    pub legacy: Option<Secret>,
}

impl Credentials {
    /// Loads `dir/login-key` (creating it) and `dir/secret` (if present).
    pub fn load(dir: &Path) -> Result<Self, ClientError> {
        Ok(Self {
            key: LoginKey::load_or_create(&dir.join("login-key"))?,
            legacy: legacy_secret(&dir.join("secret")),
        })
    }
}

/// The old bearer secret at `path`, if this client has one (and keeps it
/// to itself: one that others can read is not trusted to prove anything).
pub fn legacy_secret(path: &Path) -> Option<Secret> {
    let bytes = ferry_io::disk::read_private(path).ok()?;
    <[u8; 32]>::try_from(bytes.as_slice()).ok().map(Secret)
}

/// Loads the 32 secret bytes at `path`, creating them if absent.
pub fn load_or_create_secret(path: &Path) -> Result<Secret, ClientError> {
    match ferry_io::disk::read_private(path) {
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
        ferry_io::disk::create_private_dir_all(dir).map_err(io)?;
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
        let (cert, key) = ferry_io::tls::load_or_create_identity(
            &cert_path,
            &key_path,
            &["ferry-peer".to_owned()],
        )
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
