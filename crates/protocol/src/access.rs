//! Who may do what: login proofs, roles, invites, and what admins see.
//!
//! ## Login proofs
//!
//! A client holds one Ed25519 key (made on first use, never sent). To log
//! in it signs [`login_transcript`]: a fixed context, the hub's per-connection
//! [`Challenge`] from `Welcome`, the TLS channel binding (RFC 9266's
//! `EXPORTER-Channel-Binding`, 32 bytes; zeros on a plaintext hub) and the
//! handle. A proof is good for that one connection only: a hub, or anyone
//! who records it, can replay it nowhere else — a different connection has
//! a different challenge and a different TLS session. On a plaintext hub an
//! active attacker in the middle can still relay a live login; a passive
//! one learns nothing that logs in later.
//!
//! A handle registered before keys moves onto a key with a [`LegacyProof`]:
//! a MAC of the same transcript keyed with the hash of the old secret, so
//! the old secret itself never travels again.
//!
//! ## Invites
//!
//! An invite is the link `ferry://HOST:PORT/#v1.FINGERPRINT.SECRET` (see
//! [`InviteLink`]). The fingerprint lets the client refuse an impostor
//! during the TLS handshake, before it sends a byte of its own; the secret
//! (32 random bytes, hex) is stored hashed on the hub, which also keeps
//! what it attached to the invite: role, quota, uses left, expiry.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::hash::{ContentHash, Fingerprint};

/// Random bytes the hub sends in `Welcome`; a login proof signs them.
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge(pub [u8; 32]);

/// A client's Ed25519 public key.
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PublicKey(pub [u8; 32]);

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", &ContentHash(self.0).to_hex()[..12])
    }
}

/// An Ed25519 signature, as its two halves (R and S).
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// The first 32 bytes.
    pub r: [u8; 32],
    /// The last 32 bytes.
    pub s: [u8; 32],
}

impl Signature {
    /// From the 64 bytes a signer produced; `None` for any other length.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let (r, s) = bytes.split_at_checked(32)?;
        Some(Self {
            r: r.try_into().ok()?,
            s: s.try_into().ok()?,
        })
    }

    /// The 64 bytes, for a verifier.
    pub fn to_bytes(&self) -> [u8; 64] {
        let mut bytes = [0; 64];
        bytes[..32].copy_from_slice(&self.r);
        bytes[32..].copy_from_slice(&self.s);
        bytes
    }
}

/// What a login proof signs. `channel` is the TLS channel binding (`None`
/// on a plaintext hub).
pub fn login_transcript(
    challenge: &Challenge,
    channel: Option<&[u8; 32]>,
    handle: &str,
) -> Vec<u8> {
    const CONTEXT: &[u8] = b"ferry login v1\0";
    let mut transcript = Vec::with_capacity(CONTEXT.len() + 64 + handle.len());
    transcript.extend_from_slice(CONTEXT);
    transcript.extend_from_slice(&challenge.0);
    transcript.extend_from_slice(channel.unwrap_or(&[0; 32]));
    transcript.extend_from_slice(handle.as_bytes());
    transcript
}

/// Proof that a client holds the bearer secret a handle was registered with
/// before login keys, without sending it: BLAKE3 keyed with the secret's
/// hash (all the hub keeps) over this connection's transcript and the new
/// key. Bound to the connection like a key proof; only a party that already
/// holds the hash (a hub the user registered on) could make one.
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyProof(pub [u8; 32]);

impl LegacyProof {
    /// The proof for a secret whose BLAKE3 hash is `secret_hash`, moving
    /// `handle` onto `key` on the connection with `challenge` and `channel`.
    pub fn new(
        secret_hash: &[u8; 32],
        challenge: &Challenge,
        channel: Option<&[u8; 32]>,
        handle: &str,
        key: &PublicKey,
    ) -> Self {
        let mut hasher = blake3::Hasher::new_keyed(secret_hash);
        hasher.update(b"ferry legacy v1\0");
        hasher.update(&key.0);
        hasher.update(&login_transcript(challenge, channel, handle));
        Self(*hasher.finalize().as_bytes())
    }
}

/// The TLS exporter label of RFC 9266 channel bindings.
pub const CHANNEL_BINDING_LABEL: &[u8] = b"EXPORTER-Channel-Binding";

/// An invite's secret.
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteSecret(pub [u8; 32]);

impl InviteSecret {
    /// What the hub stores: the secret's BLAKE3 hash.
    pub fn hashed(&self) -> [u8; 32] {
        *blake3::hash(&self.0).as_bytes()
    }

    /// The invite's public id (for `invite ls`/`rm`): the start of the hash.
    pub fn id(&self) -> String {
        invite_id(&self.hashed())
    }
}

/// The public id of an invite whose secret hashes to `hashed`.
pub fn invite_id(hashed: &[u8; 32]) -> String {
    ContentHash(*hashed).to_hex()[..10].to_owned()
}

impl fmt::Debug for InviteSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("InviteSecret(..)")
    }
}

/// How a login claims its handle.
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Claim {
    /// Only log in: the handle must already belong to this key.
    Existing,
    /// Log in, or register the handle if it is free (open hubs only).
    Register,
    /// Redeem an invite: register the handle with the invite's role, or,
    /// if this key already owns the handle, give it that role.
    Invite(InviteSecret),
}

/// What a user may do (one policy on the hub decides; see its `policy`).
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Role {
    /// List, search and get only.
    Reader,
    /// Read everything; write and delete its own files; share as a peer.
    Member,
    /// Everything, including any file, users and invites.
    Admin,
    /// An admin no other admin can demote or revoke.
    Owner,
}

impl Role {
    /// The lowercase name used on the command line and in the catalog.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reader => "reader",
            Self::Member => "member",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }

    /// The inverse of [`Self::as_str`].
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Reader, Self::Member, Self::Admin, Self::Owner]
            .into_iter()
            .find(|role| role.as_str() == text)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an admin attaches to a new invite.
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteTerms {
    /// Role of whoever joins with it.
    pub role: Role,
    /// How many joins it admits.
    pub uses: u32,
    /// Seconds since the Unix epoch after which it admits nobody.
    pub expires_at: Option<i64>,
    /// Quota, in bytes, of whoever joins with it (`None`: the hub's default).
    pub quota: Option<u64>,
}

/// An outstanding invite, as admins see it (never its secret).
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteInfo {
    /// Public id.
    pub id: String,
    /// What it grants.
    pub terms: InviteTerms,
    /// Who made it (`None`: the hub, for its owner).
    pub created_by: Option<String>,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
}

/// A user, as admins see it.
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// Handle.
    pub handle: String,
    /// Role.
    pub role: Role,
    /// Bytes its files take in the store.
    pub used: u64,
    /// Its quota in bytes (`None`: unlimited).
    pub quota: Option<u64>,
    /// Last login, seconds since the Unix epoch.
    pub last_seen: Option<i64>,
    /// Revoked: it can no longer log in.
    pub revoked: bool,
}

/// A change an admin makes to a user.
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserChange {
    /// A new role.
    Role(Role),
    /// A new quota in bytes (`None`: unlimited).
    Quota(Option<u64>),
    /// No more logins; open sessions end.
    Revoke,
}

/// A parsed invite link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InviteLink {
    /// `HOST:PORT` of the hub.
    pub addr: String,
    /// The hub's certificate fingerprint (`None`: a plaintext hub).
    pub fingerprint: Option<Fingerprint>,
    /// The secret.
    pub secret: InviteSecret,
}

/// The scheme of invite links.
pub const INVITE_SCHEME: &str = "ferry://";

impl InviteLink {
    /// Parses `ferry://HOST:PORT/#v1.FINGERPRINT.SECRET` (FINGERPRINT is
    /// `plaintext` for a hub without TLS).
    pub fn parse(text: &str) -> Result<Self, InviteLinkError> {
        let rest = text
            .trim()
            .strip_prefix(INVITE_SCHEME)
            .ok_or(InviteLinkError("it does not start with ferry://"))?;
        let (addr, fragment) = rest
            .split_once("/#")
            .ok_or(InviteLinkError("it has no /# part"))?;
        if addr.is_empty() || addr.len() > crate::MAX_ADDR_LEN || !addr.contains(':') {
            return Err(InviteLinkError("its address is not HOST:PORT"));
        }
        let mut parts = fragment.split('.');
        let (Some("v1"), Some(fp), Some(secret), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(InviteLinkError("its #part is not v1.FINGERPRINT.SECRET"));
        };
        let fingerprint = match fp {
            "plaintext" => None,
            hex => Some(
                ContentHash::from_hex(hex)
                    .map(|h| Fingerprint(h.0))
                    .ok_or(InviteLinkError("its fingerprint is not 64 hex digits"))?,
            ),
        };
        let secret = ContentHash::from_hex(secret)
            .ok_or(InviteLinkError("its secret is not 64 hex digits"))?;
        Ok(Self {
            addr: addr.to_owned(),
            fingerprint,
            secret: InviteSecret(secret.0),
        })
    }
}

impl fmt::Display for InviteLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fp = self
            .fingerprint
            .map_or_else(|| "plaintext".to_owned(), |fp| ContentHash(fp.0).to_hex());
        let secret = ContentHash(self.secret.0).to_hex();
        write!(f, "{INVITE_SCHEME}{}/#v1.{fp}.{secret}", self.addr)
    }
}

/// Why an invite link did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a Ferry invite link: {0}")]
pub struct InviteLinkError(&'static str);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invite_links_round_trip_and_reject_garbage() {
        for fingerprint in [None, Some(Fingerprint([7; 32]))] {
            let link = InviteLink {
                addr: "hub.example:7878".into(),
                fingerprint,
                secret: InviteSecret([9; 32]),
            };
            assert_eq!(InviteLink::parse(&link.to_string()), Ok(link));
        }
        for bad in [
            "",
            "http://h:1/#v1.plaintext.00",
            "ferry://h:1/v1",
            "ferry:///#v1.plaintext.00",
            "ferry://h:1/#v2.plaintext.0000000000000000000000000000000000000000000000000000000000000000",
            "ferry://h:1/#v1.zz.0000000000000000000000000000000000000000000000000000000000000000",
            "ferry://h:1/#v1.plaintext.00.extra",
        ] {
            assert!(InviteLink::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn transcripts_differ_by_challenge_channel_and_handle() {
        let (a, b) = (Challenge([1; 32]), Challenge([2; 32]));
        let base = login_transcript(&a, None, "alice");
        assert_ne!(base, login_transcript(&b, None, "alice"));
        assert_ne!(base, login_transcript(&a, Some(&[1; 32]), "alice"));
        assert_ne!(base, login_transcript(&a, None, "alicf"));
    }

    #[test]
    fn roles_parse_back_and_order_by_power() {
        for role in [Role::Reader, Role::Member, Role::Admin, Role::Owner] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert!(Role::Reader < Role::Member && Role::Admin < Role::Owner);
        assert_eq!(Role::parse("root"), None);
    }
}
