//! The TLS settings both ends share.

use rustls::crypto::CryptoProvider;
use rustls::crypto::{aws_lc_rs, ring};

/// aws-lc-rs for the handshake (as for rcgen's keys; it also offers the
/// post-quantum hybrid X25519MLKEM768, which ring lacks) and ring for the
/// record layer. ring 0.17.14 encrypts AES-GCM with VAES/AVX2 where the CPU
/// has it; in a one-off test on the benchmark machine (AMD EPYC) it sealed
/// 16 KiB records at 7.3 GB/s against aws-lc-sys 0.47's 3.8, and AES is
/// most of TLS's cost in a bulk transfer. AES-128 first: ten rounds to
/// AES-256's fourteen, both AEADs with 128-bit or better security; ChaCha20
/// last, as it is slower on CPUs with AES instructions.
pub fn crypto_provider() -> CryptoProvider {
    let mut provider = aws_lc_rs::default_provider();
    provider.cipher_suites = vec![
        ring::cipher_suite::TLS13_AES_128_GCM_SHA256,
        ring::cipher_suite::TLS13_AES_256_GCM_SHA384,
        ring::cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    provider
}

/// A self-signed certificate and its private key (PKCS#8), both DER, as
/// kept in `cert_path` and `key_path`; made on first use (the key written
/// private, see [`crate::disk::write_private`]). The one routine for the
/// hub's identity and a peer's.
pub fn load_or_create_identity(
    cert_path: &std::path::Path,
    key_path: &std::path::Path,
    names: &[String],
) -> std::io::Result<(Vec<u8>, Vec<u8>)> {
    if !cert_path.exists() || !key_path.exists() {
        if let Some(dir) = cert_path.parent() {
            crate::disk::create_private_dir_all(dir)?;
        }
        // Addresses among the names become IP SANs, the rest DNS names.
        let made =
            rcgen::generate_simple_self_signed(names.to_vec()).map_err(std::io::Error::other)?;
        crate::disk::write_private(key_path, &made.signing_key.serialize_der())?;
        std::fs::write(cert_path, made.cert.der())?;
    }
    Ok((
        std::fs::read(cert_path)?,
        crate::disk::read_private(key_path)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tls13_suites_with_aes128_first() {
        let suites = crypto_provider().cipher_suites;
        assert_eq!(suites[0], ring::cipher_suite::TLS13_AES_128_GCM_SHA256);
        assert!(suites.iter().all(|s| s.tls13().is_some()));
    }

    #[test]
    fn the_handshake_still_comes_from_aws_lc_rs() {
        let groups = crypto_provider().kx_groups;
        assert!(
            groups
                .iter()
                .any(|g| g.name() == rustls::NamedGroup::X25519MLKEM768)
        );
    }
}
