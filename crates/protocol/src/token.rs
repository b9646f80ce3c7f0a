//! API tokens: what HTTP clients (curl, scripts, WebDAV clients) present
//! instead of the CLI's login key. A token is 32 random bytes, written
//! `ferry_` and 64 hex digits; the hub stores only its BLAKE3 hash, and
//! lists it by the start of that hash.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ContentHash;

/// What every token's text starts with (so that secret scanners and
/// people can tell one at a glance).
pub const TOKEN_PREFIX: &str = "ferry_";

/// An API token's secret.
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken(pub [u8; 32]);

impl ApiToken {
    /// Reads a token's text; `None` if it is not one.
    pub fn parse(text: &str) -> Option<Self> {
        let hex = text.trim().strip_prefix(TOKEN_PREFIX)?;
        // Hex digits only: from_hex would also take a shorter form.
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        ContentHash::from_hex(hex).map(|hash| Self(hash.0))
    }

    /// What the hub stores: the secret's BLAKE3 hash.
    pub fn hashed(&self) -> [u8; 32] {
        *blake3::hash(&self.0).as_bytes()
    }

    /// The token's public id (for `token ls`/`rm`): the start of the hash.
    pub fn id(&self) -> String {
        token_id(&self.hashed())
    }
}

/// The public id of a token whose secret hashes to `hashed`.
pub fn token_id(hashed: &[u8; 32]) -> String {
    ContentHash(*hashed).to_hex()[..10].to_owned()
}

impl fmt::Display for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{TOKEN_PREFIX}{}", ContentHash(self.0).to_hex())
    }
}

impl fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiToken(..)")
    }
}

/// A token, as its user sees it listed.
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Public id.
    pub id: String,
    /// What its user called it.
    pub label: String,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
    /// When it stops working (`None`: when its user is revoked).
    pub expires_at: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_reads_back_from_its_text_and_nothing_else_does() {
        let token = ApiToken([7; 32]);
        let text = token.to_string();
        assert!(text.starts_with("ferry_") && text.len() == 70);
        assert_eq!(ApiToken::parse(&text), Some(token));
        assert_eq!(ApiToken::parse(&format!(" {text}\n")), Some(token));
        for bad in [
            &text[6..],
            &text[..69],
            "ferry_",
            "ferry_zz",
            &text.replace("ferry_", "fairy_"),
        ] {
            assert_eq!(ApiToken::parse(bad), None, "{bad}");
        }
        assert_eq!(token.id().len(), 10);
        assert_ne!(token.hashed(), token.0);
    }
}
