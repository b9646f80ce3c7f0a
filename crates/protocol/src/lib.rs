//! # The Ferry wire protocol
//!
//! This crate is the specification and the only implementation of how a
//! Ferry client talks to a Ferry hub. It opens no sockets: everything here
//! works over any byte stream, and every message round-trips in unit tests.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`limits`] | every cap and default deadline |
//! | [`name`] | [`FileName`] and [`Handle`]: validation of untrusted names |
//! | [`hash`] | [`ContentHash`]: BLAKE3 file identity |
//! | [`message`] | [`Request`], [`Response`], [`Event`], [`ErrorCode`] |
//! | [`peer`] | offers, search hits, grants, and the peer-port protocol |
//! | [`codec`] | length-prefixed postcard framing |
//! | [`access`] | logins by key, invites, roles, user changes |
//! | [`possession`] | proving an upload's bytes are held, not just their hash |
//! | [`discovery`] | the UDP probe and reply that find a hub on the local network |
//!
//! It touches no files and opens no sockets. Moving the bytes (framed
//! streams, bodies with deadlines, disk threads) is the `ferry-io` crate's
//! job.
//!
//! ## Participants and goals
//!
//! A **hub** keeps a store of files and knows who is connected. A **client**
//! uploads, lists, downloads and deletes files, and may subscribe to live
//! events. Goals: integrity (every file has a BLAKE3 hash that the receiver
//! checks before the file becomes visible), resumable transfers, pipelining
//! of many small files, and bounded memory on both ends whatever the input.
//! Non-goals: being self-describing or human-readable on the wire.
//!
//! ## Transport
//!
//! TCP, wrapped in TLS 1.3 unless both sides run `--plaintext`. The hub's
//! certificate is self-signed; clients pin its SHA-256 fingerprint on first
//! use (see the client crate's `known_hubs`).
//!
//! ## Framing
//!
//! A control frame is a 4-byte big-endian length `n` followed by `n` bytes of
//! [postcard](https://docs.rs/postcard)-encoded message. `n` is at most
//! [`MAX_FRAME_LEN`] (1 MiB); a larger prefix is rejected before allocation
//! and the connection closed. Garbage or a frame cut short also closes only
//! that connection.
//!
//! File bytes never travel inside frames. After an `Upload` header (from the
//! client) or a `Sending` reply (from the hub), exactly the announced number
//! of raw bytes follows, then framing resumes.
//!
//! ## Message flow
//!
//! ```text
//! client                                     hub
//!   Hello{version, agent}              ──▶
//!                                      ◀──   Welcome{version, agent, challenge} | Error{VersionMismatch}
//!   Login{handle, key, proof, claim}   ──▶
//!                                      ◀──   LoggedIn{handle, registered, role}
//!                                            | Error{HandleTaken|InviteRequired|InviteInvalid|Revoked,…}
//!   List{prefix, after, limit}         ──▶
//!                                      ◀──   Listing{entries, more}
//!   Upload{…, mode: Eager} + bytes     ──▶
//!                                      ◀──   Stored{entry} | Error{Conflict|HashMismatch|…}
//!   Upload{…, mode: Negotiate}         ──▶
//!                                      ◀──   UploadReady{offset} | Prove{nonce, ranges} | Error
//!   Proof{proof} (after Prove)         ──▶
//!                                      ◀──   Stored (dedup) | Error{HashMismatch}
//!   bytes[offset..size]                ──▶
//!                                      ◀──   Stored{entry} | Error
//!   Download{name, offset}             ──▶
//!                                      ◀──   Sending{entry, offset} + bytes | Error{NotFound}
//!   Delete{name}                       ──▶
//!                                      ◀──   Deleted{name} | Error{PermissionDenied,…}
//!   Subscribe                          ──▶
//!                                      ◀──   Subscribed, then Event{…} as they happen
//! ```
//!
//! Requests are answered strictly in order, so a client may pipeline: send
//! many `Eager` uploads or `Download`s back to back and read the replies as
//! they come. Until `Login` succeeds only `Hello` and `Login` are accepted.
//!
//! `Login` proves the client's key by signing this connection's challenge
//! and TLS channel binding (see [`access`]): nothing a hub or an
//! eavesdropper sees logs in anywhere else. `claim` says whether to
//! register the handle (open hubs), redeem an invite (the join exchange:
//! `Login{claim: Invite(secret)}` after a TLS handshake that pinned the
//! fingerprint from the invite link), or only log in. A handle registered
//! before keys existed is answered `LegacySecretNeeded` once; the client
//! then repeats the login with a `LegacyProof` (a MAC keyed with the hash
//! of its old secret over the same transcript), and the hub moves the
//! handle to the key and never accepts the old secret again.
//!
//! ## Peers
//!
//! A client that sends `Share` turns its connection into a peer connection:
//! `Offer`/`Withdraw` keep its offers current (the hub validates every name
//! and caps offers per peer), a `Heartbeat` every few seconds keeps it
//! online, and the hub sends it `Expect` (a requester is coming with a
//! token; answer `GrantReady`) and `PushRequest` (push this file through me).
//! `Search` covers the store and all online offers; `RequestPeer` returns a
//! [`Grant`]; the requester then fetches directly on the peer's port or asks
//! the hub to `Relay`. The full exchange, grants and relay are in [`peer`].
//!
//! ## Integrity and resume
//!
//! An upload announces size and BLAKE3 hash; the hub hashes the bytes as they
//! arrive (a small body in memory, a larger one while writing it to a
//! temporary file) and lists the file only when both match and the bytes are
//! on disk (flushed; small uploads in groups, so many share one flush). A
//! `Negotiate` upload of the same name, size and hash by the same handle
//! resumes from the bytes the hub kept from an interrupted attempt. A
//! download sends from the client's `offset`; the client hashes
//! its partial file plus the rest and checks the whole against the entry's
//! hash before renaming it into place.
//!
//! ## Limits and deadlines
//!
//! See [`limits`]. Names: relative, at most [`MAX_NAME_LEN`] bytes, each
//! `/`-separated component non-empty, not `.` or `..`, without `\`, NUL,
//! control or bidi characters, at most [`MAX_COMPONENT_LEN`] bytes. Handles:
//! at most [`MAX_HANDLE_LEN`] of `a-z 0-9 . _ -`, normalised to lowercase.
//! Every wait has a deadline: the handshake, the login (a connection that
//! has not logged in is closed after the hub's login timeout), an idle
//! connection, every write, and each body, which must move at least
//! [`MIN_BODY_PROGRESS`] bytes in every stall period.
//!
//! Limits are derived from each other, so no legal message can be too big
//! to send: a `Listing` page holds at most [`MAX_LIST_PAGE`] entries,
//! search results [`MAX_SEARCH_HITS`] hits, an `Offer` or `Withdraw`
//! [`MAX_OFFERS_PER_FRAME`] items, an `Offered` reply
//! [`MAX_REFUSALS_LISTED`] refusals (plus one line counting the rest), each
//! computed from the largest legal item ([`MAX_ENCODED_ENTRY`],
//! [`MAX_ENCODED_HIT`], [`MAX_ENCODED_OFFER`]) so that a full page fits
//! [`MAX_FRAME_LEN`]; unit tests encode the largest legal page of each
//! kind. Before login a hub reads frames of at most
//! [`MAX_PRE_LOGIN_FRAME_LEN`] bytes and refuses a longer agent string than
//! [`MAX_TEXT_LEN`]. A grant lives [`GRANT_LIFETIME`] on hub and peer.
//!
//! An upload the hub's disk cannot hold is refused before any byte flows
//! with `ErrorCode::StorageFull`.
//!
//! ## Versioning
//!
//! `Hello` and `Welcome` carry [`PROTOCOL_VERSION`]; a hub refuses other
//! versions with `ErrorCode::VersionMismatch`. Enum variants are only ever
//! appended, never reordered or reused, because postcard encodes the index.
//!
//! ## Example
//!
//! ```
//! use bytes::BytesMut;
//! use ferry_protocol::{MessageCodec, Request, Response, PROTOCOL_VERSION};
//! use tokio_util::codec::{Decoder, Encoder};
//!
//! let hello = Request::Hello { version: PROTOCOL_VERSION, agent: "doc".into() };
//! let mut wire = BytesMut::new();
//! MessageCodec::<Response, Request>::new().encode(&hello, &mut wire).unwrap();
//! let decoded = MessageCodec::<Request, Response>::new().decode(&mut wire).unwrap();
//! assert_eq!(decoded, Some(hello));
//! ```

pub mod access;
pub mod codec;
pub mod discovery;
pub mod hash;
pub mod limits;
pub mod message;
pub mod name;
pub mod peer;
pub mod possession;
pub mod token;

pub use access::{
    CHANNEL_BINDING_LABEL, Challenge, Claim, InviteInfo, InviteLink, InviteLinkError, InviteSecret,
    InviteTerms, LegacyProof, PublicKey, Role, Signature, UserChange, UserInfo, login_transcript,
};
pub use codec::{FrameError, MessageCodec};
pub use hash::{ContentHash, Fingerprint};
pub use limits::*;
pub use message::{
    ConflictPolicy, ErrorCode, Event, FileEntry, Request, Response, Secret, UploadMode,
};
pub use name::{FileName, Handle, HandleError, NameError};
pub use peer::{Grant, Hit, Offered, PeerRequest, PeerResponse, Source, Token};
pub use possession::{ByteRange, PossessionProof};
pub use token::{ApiToken, TokenInfo};
