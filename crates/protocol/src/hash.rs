//! BLAKE3 content hashes.

use std::fmt;

use serde::{Deserialize, Serialize};

/// A BLAKE3 hash of a file's full contents; the file's identity on the wire.
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ContentHash(pub [u8; 32]);

impl ContentHash {
    /// Hash of a complete in-memory buffer (small data and tests).
    pub fn of(data: &[u8]) -> Self {
        Self(*blake3::hash(data).as_bytes())
    }

    /// The full lowercase hex form, 64 characters.
    pub fn to_hex(&self) -> String {
        blake3::Hash::from_bytes(self.0).to_hex().to_string()
    }

    /// The first 12 hex characters, for listings.
    pub fn short(&self) -> String {
        let mut hex = self.to_hex();
        hex.truncate(12);
        hex
    }

    /// Parses the 64-character hex form.
    pub fn from_hex(hex: &str) -> Option<Self> {
        blake3::Hash::from_hex(hex)
            .ok()
            .map(|h| Self(*h.as_bytes()))
    }
}

impl From<blake3::Hash> for ContentHash {
    fn from(hash: blake3::Hash) -> Self {
        Self(*hash.as_bytes())
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({})", self.short())
    }
}

/// Identity of a TLS certificate: the BLAKE3 hash of its DER bytes. Clients
/// pin a hub's fingerprint on first use, as SSH pins host keys.
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Fingerprint of a DER-encoded certificate.
    pub fn of_certificate(der: &[u8]) -> Self {
        Self(*blake3::hash(der).as_bytes())
    }

    /// Parses the form produced by `Display` (`b3:` and 64 hex digits).
    pub fn parse(text: &str) -> Option<Self> {
        let hex = text.strip_prefix("b3:")?;
        ContentHash::from_hex(hex).map(|h| Self(h.0))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "b3:{}", ContentHash(self.0).to_hex())
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips() {
        let hash = ContentHash::of(b"ferry");
        assert_eq!(ContentHash::from_hex(&hash.to_hex()), Some(hash));
        assert_eq!(hash.short().len(), 12);
        assert!(ContentHash::from_hex("zz").is_none());
    }

    #[test]
    fn fingerprint_display_parses_back() {
        let fp = Fingerprint::of_certificate(b"cert");
        assert_eq!(Fingerprint::parse(&fp.to_string()), Some(fp));
        assert!(Fingerprint::parse(&ContentHash(fp.0).to_hex()).is_none());
    }
}
