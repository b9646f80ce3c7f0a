//! The peer half of the protocol: what a sharing client offers, how search
//! hits describe where a file is, the grants the hub issues, and the tiny
//! protocol spoken on a peer's own port.
//!
//! ## Roles
//!
//! A **peer** is a client that ran `Share` on its hub connection. That
//! connection then carries its offers and heartbeats up, and hub commands
//! down (`Expect` a requester, `PushRequest` for a relay). A **requester**
//! asks the hub for a [`Grant`] and then either
//!
//! - **direct**: connects to the peer's port over mutual TLS, checks the
//!   peer's certificate against the grant's fingerprint, and sends
//!   [`PeerRequest::Fetch`] with the grant token; the peer checks that the
//!   token is one the hub told it to expect, unused, and that the
//!   requester's certificate is the one named in it; or
//! - **relayed**: sends `Relay{token}` to the hub, which asks the peer to
//!   `Push` the bytes on a new hub connection and streams them on, hashing.
//!
//! A token is good for one transfer, by either path, and expires.
//!
//! ```text
//! requester            hub                         peer (owner)
//!   RequestPeer ───────▶
//!                        ───── Expect{token,…} ──▶
//!                        ◀──── GrantReady{token} ──
//!   ◀── Granted{grant}
//!   ─────────── TLS + Fetch{token, offset} ───────▶   (direct)
//!   ◀────────── PeerSending{…} + bytes ────────────
//!   Relay{token,offset} ─▶                            (if direct failed)
//!                        ─── PushRequest{token,…} ─▶
//!                        ◀── new conn: Push{token} + bytes
//!   ◀── Sending + bytes
//! ```

use serde::{Deserialize, Serialize};

use crate::hash::{ContentHash, Fingerprint};
use crate::message::ErrorCode;

/// A single-use transfer authorisation, random and unguessable.
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Token(pub [u8; 32]);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Token({})", &ContentHash(self.0).short()[..8])
    }
}

/// A file a peer offers.
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offered {
    /// Name relative to the shared folder (validate before use).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// BLAKE3 of the contents.
    pub hash: ContentHash,
}

/// Where a search hit can be fetched from.
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Source {
    /// The hub's store.
    Store {
        /// Uploader.
        owner: String,
    },
    /// An online peer.
    Peer {
        /// The peer's handle.
        handle: String,
        /// Its peer address, `ip:port`.
        addr: String,
    },
}

/// One search result.
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hit {
    /// The file.
    pub file: Offered,
    /// Where it is.
    pub source: Source,
}

/// What a requester needs to fetch a file from a peer.
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    /// Single-use token.
    pub token: Token,
    /// The peer's handle.
    pub owner: String,
    /// The peer's address, `ip:port`.
    pub addr: String,
    /// The peer's certificate, as the peer told the hub.
    pub fingerprint: Fingerprint,
    /// The file, as offered.
    pub file: Offered,
}

/// Requester to peer, on the peer's port.
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerRequest {
    /// Send the granted file from `offset` on.
    Fetch {
        /// Protocol version.
        version: u32,
        /// The grant's token.
        token: Token,
        /// Bytes the requester already holds.
        offset: u64,
    },
}

/// Peer to requester.
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PeerResponse {
    /// `size - offset` raw bytes follow.
    Sending {
        /// Whole size.
        size: u64,
        /// Hash of the whole file.
        hash: ContentHash,
        /// First byte sent.
        offset: u64,
    },
    /// Refused.
    Error {
        /// Kind.
        code: ErrorCode,
        /// One line.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_messages_round_trip() {
        let fetch = PeerRequest::Fetch {
            version: 1,
            token: Token([3; 32]),
            offset: 7,
        };
        let bytes = postcard::to_stdvec(&fetch).unwrap();
        assert_eq!(postcard::from_bytes::<PeerRequest>(&bytes).unwrap(), fetch);
        let sending = PeerResponse::Sending {
            size: 9,
            hash: ContentHash::of(b"x"),
            offset: 1,
        };
        let bytes = postcard::to_stdvec(&sending).unwrap();
        assert_eq!(
            postcard::from_bytes::<PeerResponse>(&bytes).unwrap(),
            sending
        );
        let hit = Hit {
            file: Offered {
                name: "a".into(),
                size: 1,
                hash: ContentHash::of(b"a"),
            },
            source: Source::Peer {
                handle: "bob".into(),
                addr: "127.0.0.1:9".into(),
            },
        };
        let bytes = postcard::to_stdvec(&hit).unwrap();
        assert_eq!(postcard::from_bytes::<Hit>(&bytes).unwrap(), hit);
    }
}
