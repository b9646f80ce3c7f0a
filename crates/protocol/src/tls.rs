//! The TLS settings both ends share.

use rustls::crypto::CryptoProvider;
use rustls::crypto::aws_lc_rs::{cipher_suite, default_provider};

/// aws-lc-rs with TLS 1.3's AES-128-GCM first. Both suites are AEADs with
/// 128-bit or better security; AES-128 runs ten rounds to AES-256's
/// fourteen, which is most of the per-byte cost on CPUs with AES
/// instructions (where ChaCha20 is slower still, so it comes last).
pub fn crypto_provider() -> CryptoProvider {
    let mut provider = default_provider();
    provider.cipher_suites = vec![
        cipher_suite::TLS13_AES_128_GCM_SHA256,
        cipher_suite::TLS13_AES_256_GCM_SHA384,
        cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    provider
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_tls13_suites_with_aes128_first() {
        let suites = crypto_provider().cipher_suites;
        assert_eq!(suites[0], cipher_suite::TLS13_AES_128_GCM_SHA256);
        assert!(suites.iter().all(|s| s.tls13().is_some()));
    }
}
