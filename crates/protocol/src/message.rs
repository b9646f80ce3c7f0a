//! The messages. One enum per direction: [`Request`] (client to hub) and
//! [`Response`] (hub to client). Names and handles travel as plain strings
//! and are validated by the receiver, so a bad one gets a precise error
//! instead of an undecodable frame.
//!
//! Variants are only ever appended: postcard encodes the variant index, so
//! reordering or removing one would silently change the wire format.

use serde::{Deserialize, Serialize};

use crate::access::{
    Challenge, Claim, InviteInfo, InviteSecret, InviteTerms, LegacyProof, PublicKey, Role,
    Signature, UserChange, UserInfo,
};
use crate::hash::{ContentHash, Fingerprint};
use crate::peer::{Grant, Hit, Offered, Token};
use crate::possession::{ByteRange, PossessionProof};
use crate::token::{ApiToken, TokenInfo};

/// The bearer secret of clients before login keys: kept in their state
/// directory, hashed on hubs. It no longer travels: a [`LegacyProof`] made
/// from its hash moves a handle registered with it onto the client's key.
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Secret(pub [u8; 32]);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// What to do when an upload's name is already taken in the store (or a
/// download's name in the local folder).
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ConflictPolicy {
    /// Refuse with [`ErrorCode::Conflict`].
    #[default]
    Refuse,
    /// Replace the existing file atomically (owner only).
    Overwrite,
    /// Store under the first free `name (n).ext`.
    Rename,
}

/// How an upload's bytes follow its header.
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum UploadMode {
    /// All `size` bytes follow the header at once; one reply comes after
    /// them. Small files use this so that many pipeline without a round trip.
    Eager,
    /// The hub first replies [`Response::UploadReady`] with the offset it
    /// already holds (resume) or [`Response::Stored`] if it needs no bytes;
    /// only then do the remaining bytes follow.
    Negotiate,
}

/// Client to hub.
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// First frame on every connection.
    Hello {
        /// The client's [`PROTOCOL_VERSION`](crate::PROTOCOL_VERSION).
        version: u32,
        /// Free text naming the client software, for logs.
        agent: String,
    },
    /// Establish (and perhaps claim) a handle for this session.
    Login {
        /// The handle, normalised by the hub.
        handle: String,
        /// The client's public key.
        key: PublicKey,
        /// `key`'s signature of [`login_transcript`](crate::login_transcript)
        /// for this connection.
        proof: Signature,
        /// Register, redeem an invite, or only log in.
        claim: Claim,
        /// For a handle registered before keys, proof of its old secret,
        /// sent when the hub answered [`ErrorCode::LegacySecretNeeded`].
        legacy: Option<LegacyProof>,
    },
    /// Turn this connection into an event feed: the hub sends
    /// [`Response::Event`] frames until the connection closes.
    Subscribe,
    /// One page of the store, sorted by name.
    List {
        /// Only names equal to this or inside this folder.
        prefix: Option<String>,
        /// Only names sorting after this one (pagination cursor).
        after: Option<String>,
        /// Page size, capped at [`MAX_LIST_PAGE`](crate::MAX_LIST_PAGE).
        limit: u32,
    },
    /// Store a file. Raw bytes follow as described by `mode`.
    Upload {
        /// Name in the store.
        name: String,
        /// Exact size in bytes.
        size: u64,
        /// BLAKE3 of the whole file; the hub verifies it before listing.
        hash: ContentHash,
        /// What to do if `name` is taken.
        policy: ConflictPolicy,
        /// How the bytes follow.
        mode: UploadMode,
    },
    /// Fetch a file from `offset` on. The hub answers [`Response::Sending`]
    /// followed by `size - offset` raw bytes.
    Download {
        /// Name in the store.
        name: String,
        /// Bytes the client already holds.
        offset: u64,
    },
    /// Remove a file the session's handle owns.
    Delete {
        /// Name in the store.
        name: String,
    },
    /// Become a peer: this connection now carries offers and heartbeats up
    /// and hub commands (`Expect`, `PushRequest`) down, until it closes.
    Share {
        /// Port the peer serves files on (its IP is the connection's).
        peer_port: u16,
        /// The peer's certificate fingerprint.
        fingerprint: Fingerprint,
        /// Whether the hub may keep a copy of what it relays from this peer
        /// (`None`: the hub's default; open hubs keep copies).
        copies: Option<bool>,
    },
    /// Add offered files (replacing the whole set if `replace_all`).
    Offer {
        /// The files.
        files: Vec<Offered>,
        /// Drop every earlier offer first.
        replace_all: bool,
    },
    /// Stop offering these names.
    Withdraw {
        /// Offered names.
        names: Vec<String>,
    },
    /// A peer is alive; sent every few seconds on a peer connection.
    Heartbeat,
    /// Case-insensitive substring search over the store and every online
    /// peer's offers; the term is taken literally, the empty term lists all.
    Search {
        /// The term.
        term: String,
        /// Most hits wanted (capped by the hub).
        limit: u32,
    },
    /// Ask for a grant to fetch `name` from the peer `owner`.
    RequestPeer {
        /// The peer's handle.
        owner: String,
        /// The offered name.
        name: String,
        /// The requester's certificate fingerprint, for the peer to check.
        fingerprint: Fingerprint,
    },
    /// Ask the hub to relay a granted file (when direct failed).
    Relay {
        /// The grant's token.
        token: Token,
        /// Bytes the requester already holds.
        offset: u64,
    },
    /// From the owner, on a new connection: the bytes of a relay follow
    /// after `UploadReady{offset}`.
    Push {
        /// The grant's token.
        token: Token,
    },
    /// A peer acknowledges an `Expect`: it will honour the token.
    GrantReady {
        /// The token.
        token: Token,
    },
    /// Make an invite (admins).
    CreateInvite {
        /// What it grants.
        terms: InviteTerms,
    },
    /// The outstanding invites (admins).
    ListInvites,
    /// Withdraw an invite (admins).
    RemoveInvite {
        /// Its public id.
        id: String,
    },
    /// Every user (admins).
    ListUsers,
    /// Change a user (admins).
    ChangeUser {
        /// Whose.
        handle: String,
        /// What.
        change: UserChange,
    },
    /// This session's own use and quota.
    Usage,
    /// Let `handle` add files to the top-level folder `folder` (its owner
    /// or an admin).
    Allow {
        /// Who.
        handle: String,
        /// A top-level folder.
        folder: String,
    },
    /// The newest lines of the audit log (admins).
    Audit {
        /// Most lines wanted.
        limit: u32,
    },
    /// The answer to [`Response::Prove`].
    Proof {
        /// Keyed BLAKE3 over the ranges asked for.
        proof: PossessionProof,
    },
    /// A sharing peer served the grant `token` in full, directly: the hub
    /// stops counting it against the requester and the peer.
    GrantUsed {
        /// The grant.
        token: Token,
    },
    /// Make an API token for HTTP clients; it carries the caller's role.
    CreateToken {
        /// What it is for (shown in `token ls`).
        label: String,
        /// When it stops working (`None`: when its user is revoked).
        expires_at: Option<i64>,
    },
    /// The caller's own tokens.
    ListTokens,
    /// Withdraw one of the caller's tokens.
    RemoveToken {
        /// Its public id.
        id: String,
    },
    /// A one-time code that signs a browser in as the caller.
    CreateWebLink,
}

/// Hub to client.
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Answer to `Hello`.
    Welcome {
        /// The hub's protocol version.
        version: u32,
        /// Free text naming the hub software.
        agent: String,
        /// What a login proof on this connection signs.
        challenge: Challenge,
    },
    /// Answer to `Login`.
    LoggedIn {
        /// The normalised handle now bound to this session.
        handle: String,
        /// Whether this login registered the handle.
        registered: bool,
        /// What the handle may do.
        role: Role,
    },
    /// Answer to `Subscribe`; events follow.
    Subscribed,
    /// Answer to `List`.
    Listing {
        /// Entries in name order.
        entries: Vec<FileEntry>,
        /// Whether more entries follow the last one.
        more: bool,
    },
    /// A negotiated upload may send its bytes from `offset` on.
    UploadReady {
        /// Bytes the hub already holds from an interrupted attempt.
        offset: u64,
    },
    /// An upload is durable and listed.
    Stored {
        /// The stored file (its name may differ under `Rename`).
        entry: FileEntry,
        /// The hub already held these bytes and did not need them.
        deduplicated: bool,
    },
    /// A download's bytes follow this frame.
    Sending {
        /// The file being sent.
        entry: FileEntry,
        /// First byte sent.
        offset: u64,
    },
    /// A file was removed.
    Deleted {
        /// Its name.
        name: String,
    },
    /// Something happened on the hub (subscribed connections only).
    Event(Event),
    /// The request failed; the connection stays usable unless the error
    /// says otherwise.
    Error {
        /// Machine-readable kind.
        code: ErrorCode,
        /// One human-readable line.
        message: String,
    },
    /// Answer to `Share`.
    Sharing {
        /// The address other peers will be told to connect to.
        addr: String,
    },
    /// Answer to `Offer`.
    Offered {
        /// Files now offered in total.
        total: u32,
        /// Offers refused, each as `name: reason`.
        refused: Vec<String>,
    },
    /// Answer to `Search`.
    SearchResults {
        /// Hits, store first, then peers.
        hits: Vec<Hit>,
        /// More hits existed than were sent.
        truncated: bool,
    },
    /// Answer to `RequestPeer`.
    Granted {
        /// What the requester needs.
        grant: Grant,
    },
    /// Hub to peer: a requester holding `token` may fetch `name` once.
    Expect {
        /// The token.
        token: Token,
        /// The offered name.
        name: String,
        /// Who will come.
        requester: String,
        /// The requester's certificate fingerprint.
        fingerprint: Fingerprint,
    },
    /// Hub to peer: push `name` for `token` through the hub, from `offset`.
    PushRequest {
        /// The token.
        token: Token,
        /// The offered name.
        name: String,
        /// First byte wanted.
        offset: u64,
    },
    /// Answer to a completed `Push`.
    Pushed,
    /// Answer to `Withdraw`.
    Withdrawn {
        /// Files still offered.
        total: u32,
    },
    /// Answer to `CreateInvite`.
    InviteCreated {
        /// The invite (its id and terms).
        invite: InviteInfo,
        /// Its secret: shown once, never stored in the clear.
        secret: InviteSecret,
    },
    /// Answer to `ListInvites`.
    Invites {
        /// Outstanding invites, oldest first.
        invites: Vec<InviteInfo>,
    },
    /// Answer to `RemoveInvite`.
    InviteRemoved {
        /// Its id.
        id: String,
    },
    /// Answer to `ListUsers`.
    Users {
        /// Users by handle.
        users: Vec<UserInfo>,
    },
    /// Answer to `ChangeUser`.
    UserChanged {
        /// The user as it is now.
        user: UserInfo,
    },
    /// Answer to `Usage`.
    Usage {
        /// The session's user.
        user: UserInfo,
    },
    /// Answer to `Allow`.
    Allowed {
        /// The folder.
        folder: String,
        /// Who may now add to it.
        handle: String,
    },
    /// Answer to `Audit`: JSON lines, oldest first.
    AuditLines {
        /// The lines.
        lines: Vec<String>,
    },
    /// Answer to a negotiated `Upload` whose bytes the store already holds:
    /// prove you have them (see [`crate::possession`]) with a `Proof`; then
    /// `Stored`, or `Error{HashMismatch}` if the proof is wrong.
    Prove {
        /// A fresh random key for the proof.
        nonce: [u8; 32],
        /// The spans of the file to prove.
        ranges: Vec<ByteRange>,
    },
    /// Answer to `CreateToken`.
    TokenCreated {
        /// The token (its id and terms).
        token: TokenInfo,
        /// Its secret: shown once, never stored in the clear.
        secret: ApiToken,
    },
    /// Answer to `ListTokens`.
    Tokens {
        /// The caller's tokens, oldest first.
        tokens: Vec<TokenInfo>,
    },
    /// Answer to `RemoveToken`.
    TokenRemoved {
        /// Its id.
        id: String,
    },
    /// Answer to `CreateWebLink`.
    WebLink {
        /// The code, for the page's address (`#signin=CODE`).
        code: ApiToken,
        /// When it stops working.
        expires_at: i64,
    },
}

/// A file in the store.
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Its name (validate before use as a path).
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// BLAKE3 of its contents.
    pub hash: ContentHash,
    /// Handle of the uploader.
    pub owner: String,
    /// Upload time, seconds since the Unix epoch (UTC).
    pub modified: i64,
}

/// Hub events broadcast to subscribed connections.
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// A file became available in the store.
    Uploaded {
        /// Uploader.
        handle: String,
        /// File name.
        name: String,
        /// Seconds since the Unix epoch.
        at: i64,
    },
    /// A file was removed from the store.
    Deleted {
        /// Who removed it.
        handle: String,
        /// File name.
        name: String,
        /// Seconds since the Unix epoch.
        at: i64,
    },
    /// A peer started sharing.
    PeerJoined {
        /// Its handle.
        handle: String,
    },
    /// A peer stopped sharing (left, crashed, or went silent).
    PeerLeft {
        /// Its handle.
        handle: String,
    },
}

/// Kinds of failure that cross the wire.
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The request was malformed or out of order.
    BadRequest,
    /// Client and hub speak different protocol versions.
    VersionMismatch,
    /// A handle must be established first.
    LoginRequired,
    /// The handle is registered to another client.
    HandleTaken,
    /// The handle does not exist (and registration was not asked for).
    UnknownHandle,
    /// The handle is not an allowed handle.
    InvalidHandle,
    /// A file name was refused.
    InvalidName,
    /// No such file.
    NotFound,
    /// The name is taken and the policy was `Refuse`.
    Conflict,
    /// The session's handle may not do this.
    PermissionDenied,
    /// Received bytes do not match the announced hash.
    HashMismatch,
    /// More or fewer bytes than announced.
    SizeMismatch,
    /// Temporarily unable; retry later.
    Busy,
    /// A deadline passed.
    Timeout,
    /// The hub failed internally; details are in its log.
    Internal,
    /// Something exceeds a hub limit.
    TooLarge,
    /// The hub's disk has no room for this; nothing was stored.
    StorageFull,
    /// The upload would pass the user's quota; nothing was stored.
    QuotaExceeded,
    /// The hub admits new users by invite only.
    InviteRequired,
    /// The invite is unknown, used up or expired.
    InviteInvalid,
    /// The handle was revoked.
    Revoked,
    /// The handle predates login keys: prove its old secret once.
    LegacySecretNeeded,
    /// The file is not the version a conditional write named (HTTP
    /// `If-Match`, `If-None-Match: *`).
    PreconditionFailed,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip<T>(value: &T)
    where
        T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        let bytes = postcard::to_stdvec(value).expect("encodes");
        assert_eq!(&postcard::from_bytes::<T>(&bytes).expect("decodes"), value);
    }

    fn entry() -> FileEntry {
        FileEntry {
            name: "photos/a.jpg".into(),
            size: 42,
            hash: ContentHash::of(b"a"),
            owner: "alice".into(),
            modified: 1_700_000_000,
        }
    }

    #[test]
    fn every_request_round_trips() {
        let hash = ContentHash::of(b"x");
        for request in [
            Request::Hello {
                version: 1,
                agent: "t".into(),
            },
            Request::Login {
                handle: "a".into(),
                key: PublicKey([1; 32]),
                proof: Signature {
                    r: [2; 32],
                    s: [3; 32],
                },
                claim: Claim::Register,
                legacy: Some(LegacyProof([7; 32])),
            },
            Request::Subscribe,
            Request::List {
                prefix: Some("p".into()),
                after: None,
                limit: 10,
            },
            Request::Upload {
                name: "n".into(),
                size: u64::MAX,
                hash,
                policy: ConflictPolicy::Rename,
                mode: UploadMode::Negotiate,
            },
            Request::Download {
                name: "n".into(),
                offset: 5,
            },
            Request::Delete { name: "n".into() },
        ] {
            round_trip(&request);
        }
    }

    #[test]
    fn every_response_round_trips() {
        for response in [
            Response::Welcome {
                version: 1,
                agent: "h".into(),
                challenge: Challenge([4; 32]),
            },
            Response::LoggedIn {
                handle: "a".into(),
                registered: false,
                role: Role::Member,
            },
            Response::Subscribed,
            Response::Listing {
                entries: vec![entry(), entry()],
                more: true,
            },
            Response::UploadReady { offset: 9 },
            Response::Stored {
                entry: entry(),
                deduplicated: true,
            },
            Response::Sending {
                entry: entry(),
                offset: 0,
            },
            Response::Deleted { name: "n".into() },
            Response::Event(Event::Uploaded {
                handle: "a".into(),
                name: "n".into(),
                at: 1,
            }),
            Response::Event(Event::Deleted {
                handle: "a".into(),
                name: "n".into(),
                at: 1,
            }),
            Response::Error {
                code: ErrorCode::Conflict,
                message: "taken".into(),
            },
        ] {
            round_trip(&response);
        }
    }

    #[test]
    fn wire_tags_are_stable() {
        // Appending variants is fine; reordering would break old peers.
        let hello = postcard::to_stdvec(&Request::Hello {
            version: 1,
            agent: String::new(),
        });
        assert_eq!(hello.unwrap(), [0, 1, 0]);
        let delete = postcard::to_stdvec(&Request::Delete {
            name: String::new(),
        });
        assert_eq!(delete.unwrap(), [6, 0]);
        let error = postcard::to_stdvec(&Response::Error {
            code: ErrorCode::TooLarge,
            message: String::new(),
        });
        assert_eq!(error.unwrap(), [9, 15, 0]);
    }

    /// Every message of every kind survives postcard and the framing
    /// codec unchanged (the generated values cover every variant).
    #[test]
    fn any_message_round_trips() {
        use proptest::prelude::any;
        // The generated strategies of these large enums nest deeply: in an
        // unoptimised build they need more than a test thread's stack.
        let run = || {
            let strategy = (
                any::<Request>(),
                any::<Response>(),
                any::<crate::PeerRequest>(),
                any::<crate::PeerResponse>(),
            );
            let mut runner = proptest::test_runner::TestRunner::default();
            runner
                .run(
                    &strategy,
                    |(request, response, peer_request, peer_response)| {
                        round_trip(&request);
                        round_trip(&response);
                        round_trip(&peer_request);
                        round_trip(&peer_response);
                        framed_round_trip(&request);
                        framed_round_trip(&response);
                        Ok(())
                    },
                )
                .unwrap();
        };
        std::thread::Builder::new()
            .stack_size(64 << 20)
            .spawn(run)
            .unwrap()
            .join()
            .unwrap();
    }

    fn framed_round_trip<T>(value: &T)
    where
        T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        use tokio_util::codec::{Decoder, Encoder};
        let mut wire = bytes::BytesMut::new();
        let encoded = crate::MessageCodec::<(), T>::new().encode(value, &mut wire);
        if encoded.is_ok() {
            let decoded = crate::MessageCodec::<T, ()>::new()
                .decode(&mut wire)
                .expect("decodes");
            assert_eq!(decoded.as_ref(), Some(value));
            assert!(wire.is_empty());
        }
    }
}
