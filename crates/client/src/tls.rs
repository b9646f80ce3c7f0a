//! How a client trusts a hub. A hub's certificate is self-signed by
//! default, so the client pins its fingerprint in `known_hubs` the first
//! time and refuses a different one afterwards, as SSH does with host
//! keys. A hub with an operator's certificate from a certificate
//! authority is verified by that authority instead (the system's, or the
//! one `--cacert` names), so a renewal every few months needs no
//! `ferry forget` on every client.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use ferry_protocol::Fingerprint;
use rustls::DigitallySignedStruct;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use crate::error::ClientError;

/// ALPN protocol name; must match the hub's.
pub const ALPN: &[u8] = b"ferry/1";

/// The file of pinned hub fingerprints: one `address fingerprint` per line.
#[derive(Debug, Clone)]
pub struct KnownHubs {
    path: PathBuf,
}

impl KnownHubs {
    /// The pins kept at `path` (the file need not exist yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// Where the pins are kept.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The fingerprint pinned for `addr`, if any.
    pub fn get(&self, addr: &str) -> Option<Fingerprint> {
        let text = fs::read_to_string(&self.path).ok()?;
        text.lines().find_map(|line| {
            let (host, fp) = line.split_once(' ')?;
            (host == addr)
                .then(|| Fingerprint::parse(fp.trim()))
                .flatten()
        })
    }

    /// Pins `fingerprint` for `addr`.
    pub fn add(&self, addr: &str, fingerprint: Fingerprint) -> Result<(), ClientError> {
        let io = |e| ClientError::local("recording hub fingerprint in", &self.path, e);
        if let Some(dir) = self.path.parent() {
            ferry_io::disk::create_private_dir_all(dir).map_err(io)?;
        }
        let mut file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io)?;
        writeln!(file, "{addr} {fingerprint}").map_err(io)
    }

    /// Removes the pin for `addr`; returns whether there was one.
    pub fn forget(&self, addr: &str) -> Result<bool, ClientError> {
        let Ok(text) = fs::read_to_string(&self.path) else {
            return Ok(false);
        };
        let keep: Vec<&str> = text
            .lines()
            .filter(|l| l.split(' ').next() != Some(addr))
            .collect();
        let removed = keep.len() != text.lines().count();
        let body: String = keep.iter().map(|l| format!("{l}\n")).collect();
        fs::write(&self.path, body).map_err(|e| ClientError::local("rewriting", &self.path, e))?;
        Ok(removed)
    }
}

/// Accepts exactly the pinned certificate (or, with no pin, any, recording
/// what it saw). Signatures are still checked, so the hub must hold the key.
#[derive(Debug)]
pub(crate) struct PinningVerifier {
    pinned: Option<Fingerprint>,
    seen: Mutex<Option<Fingerprint>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl PinningVerifier {
    pub(crate) fn new(pinned: Option<Fingerprint>) -> Arc<Self> {
        let provider = ferry_io::tls::crypto_provider();
        Arc::new(Self {
            pinned,
            seen: Mutex::new(None),
            algorithms: provider.signature_verification_algorithms,
        })
    }

    /// The fingerprint the hub presented, once the handshake got that far.
    pub(crate) fn seen(&self) -> Option<Fingerprint> {
        *self
            .seen
            .lock()
            .expect("fingerprint lock is never poisoned")
    }
}

impl PinningVerifier {
    /// Notes the certificate the hub presented; its fingerprint.
    fn record(&self, end_entity: &CertificateDer<'_>) -> Fingerprint {
        let presented = Fingerprint::of_certificate(end_entity);
        *self
            .seen
            .lock()
            .expect("fingerprint lock is never poisoned") = Some(presented);
        presented
    }
}

impl ServerCertVerifier for PinningVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = self.record(end_entity);
        match self.pinned {
            Some(pinned) if pinned != presented => Err(rustls::Error::General(
                "hub certificate fingerprint changed".into(),
            )),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Trusts a hub whose certificate a certificate authority vouches for,
/// else (unless only the authority may say) the pinned one.
#[derive(Debug)]
pub(crate) struct HubVerifier {
    authority: Option<Arc<WebPkiServerVerifier>>,
    /// `--cacert` named the authority: its word is final.
    authority_only: bool,
    pinning: Arc<PinningVerifier>,
    vouched: AtomicBool,
    /// The authority's word was final, and it refused.
    refused: AtomicBool,
}

impl HubVerifier {
    /// Trusts what `authority` vouches for, else (if not `authority_only`)
    /// what `pinning` accepts.
    pub(crate) fn new(
        authority: Option<Arc<WebPkiServerVerifier>>,
        authority_only: bool,
        pinning: Arc<PinningVerifier>,
    ) -> Arc<Self> {
        Arc::new(Self {
            authority,
            authority_only,
            pinning,
            vouched: AtomicBool::new(false),
            refused: AtomicBool::new(false),
        })
    }

    /// Whether an authority vouched for the certificate (nothing to pin).
    pub(crate) fn vouched(&self) -> bool {
        self.vouched.load(Ordering::Relaxed)
    }

    /// Whether the handshake failed because the authority whose word is
    /// final refused the certificate.
    pub(crate) fn refused_by_authority(&self) -> bool {
        self.refused.load(Ordering::Relaxed)
    }

    /// The fingerprint the hub presented, once the handshake got that far.
    pub(crate) fn seen(&self) -> Option<Fingerprint> {
        self.pinning.seen()
    }
}

impl ServerCertVerifier for HubVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(authority) = &self.authority {
            let said = authority.verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            );
            match said {
                Ok(verified) => {
                    self.vouched.store(true, Ordering::Relaxed);
                    self.pinning.record(end_entity);
                    return Ok(verified);
                }
                Err(refused) if self.authority_only => {
                    self.refused.store(true, Ordering::Relaxed);
                    return Err(refused);
                }
                Err(_) => {}
            }
        }
        self.pinning
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.pinning.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.pinning.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.pinning.supported_verify_schemes()
    }
}

/// The authorities that may vouch for a hub: those in `ca_file` (PEM)
/// if given, else the system's when the hub is reached by a DNS name
/// (public authorities certify names, and loading the system's store
/// costs milliseconds a hub reached by address need not spend). `None`:
/// only the pin counts.
pub(crate) fn authorities(
    ca_file: Option<&Path>,
    server_name: &ServerName<'_>,
) -> Result<Option<Arc<WebPkiServerVerifier>>, ClientError> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(file) => {
            let certs = CertificateDer::pem_file_iter(file)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| ClientError::BadCaFile {
                    path: file.to_owned(),
                    reason: e.to_string(),
                })?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                return Err(ClientError::BadCaFile {
                    path: file.to_owned(),
                    reason: "it holds no PEM certificate (-----BEGIN CERTIFICATE-----); \
                             a DER file converts with openssl x509 -inform der -in FILE -out FILE.pem"
                        .into(),
                });
            }
        }
        None if matches!(server_name, ServerName::DnsName(_)) => {
            let system = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(system.certs);
        }
        None => return Ok(None),
    }
    if roots.is_empty() {
        return Ok(None);
    }
    let provider = Arc::new(ferry_io::tls::crypto_provider());
    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map(Some)
        .map_err(|e| ClientError::BadCaFile {
            path: ca_file.map(Path::to_owned).unwrap_or_default(),
            reason: e.to_string(),
        })
}

/// The name to verify a hub's certificate for: the host of `addr`
/// (`host:port`, an IPv6 address in brackets).
pub(crate) fn hub_server_name(addr: &str) -> ServerName<'static> {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned())
        .unwrap_or_else(|_| ServerName::try_from("ferry-hub").expect("a valid DNS name"))
}

/// A TLS client configuration that trusts `verifier`, presenting
/// `identity` as a client certificate when given (peer to peer).
pub(crate) fn client_config(
    verifier: Arc<dyn ServerCertVerifier>,
    identity: Option<&crate::identity::PeerIdentity>,
) -> Result<rustls::ClientConfig, rustls::Error> {
    let provider = Arc::new(ferry_io::tls::crypto_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match identity {
        Some(identity) => builder.with_client_auth_cert(identity.chain(), identity.key())?,
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

/// Accepts any client certificate whose signature checks out; the peer
/// server compares its fingerprint with the grant afterwards.
#[derive(Debug)]
pub(crate) struct AnyClientCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl rustls::server::danger::ClientCertVerifier for AnyClientCertificate {
    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        Ok(rustls::server::danger::ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The peer server's TLS configuration: our certificate, client
/// certificates required.
pub(crate) fn peer_server_config(
    identity: &crate::identity::PeerIdentity,
) -> Result<rustls::ServerConfig, rustls::Error> {
    let provider = ferry_io::tls::crypto_provider();
    let verifier = Arc::new(AnyClientCertificate {
        algorithms: provider.signature_verification_algorithms,
    });
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.chain(), identity.key())?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_are_added_found_and_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let known = KnownHubs::new(dir.path().join("sub/known_hubs"));
        let fp = Fingerprint::of_certificate(b"c");
        assert_eq!(known.get("h:1"), None);
        known.add("h:1", fp).unwrap();
        known.add("h:2", Fingerprint::of_certificate(b"d")).unwrap();
        assert_eq!(known.get("h:1"), Some(fp));
        assert!(known.forget("h:1").unwrap());
        assert_eq!(known.get("h:1"), None);
        assert!(known.get("h:2").is_some());
        assert!(!known.forget("h:1").unwrap());
    }
}
