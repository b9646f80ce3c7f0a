//! What each fuzz target does with its input, shared by the targets
//! (`fuzz_targets/*.rs`, under cargo fuzz) and by the protocol crate's
//! corpus replay test (`crates/protocol/tests/fuzz_corpus.rs`), so the
//! committed corpus is exercised by every `cargo test`.
//!
//! Each function must never panic, whatever the bytes.

use bytes::BytesMut;
use ferry_protocol::{
    FileName, Handle, MAX_FRAME_LEN, MessageCodec, PeerRequest, PeerResponse, Request, Response,
};
use tokio_util::codec::{Decoder, Encoder};

/// Feeds `data` to the hub's and the client's frame decoders in pieces, as
/// a stream would arrive; every frame decoded re-encodes to a frame that
/// decodes to the same message.
pub fn frame_decoder(data: &[u8]) {
    let split = data.first().map_or(1, |&b| usize::from(b).max(1));
    decode_stream::<Request>(data, split);
    decode_stream::<Response>(data, split);
}

fn decode_stream<T>(data: &[u8], split: usize)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let mut codec = MessageCodec::<T, T>::new();
    let mut buf = BytesMut::new();
    for piece in data.chunks(split) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(message)) => reencodes(&message),
                Ok(None) => break,
                Err(_) => return, // the connection would close here
            }
        }
        assert!(
            buf.capacity() <= 4 * (MAX_FRAME_LEN + 4),
            "buffering is bounded"
        );
    }
    let _ = codec.decode_eof(&mut buf);
}

fn reencodes<T>(message: &T)
where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let mut wire = BytesMut::new();
    MessageCodec::<T, T>::new()
        .encode(message, &mut wire)
        .expect("a decoded message fits a frame again");
    let again = MessageCodec::<T, T>::new()
        .decode(&mut wire)
        .expect("decodes");
    assert_eq!(again.as_ref(), Some(message));
}

/// Decodes `data` as one message body of every kind.
pub fn messages(data: &[u8]) {
    if let Ok(m) = postcard::from_bytes::<Request>(data) {
        reencodes(&m);
    }
    if let Ok(m) = postcard::from_bytes::<Response>(data) {
        reencodes(&m);
    }
}

/// Parses `data` as a file name and a handle: whatever is accepted is
/// canonical (parses again to itself) and obeys the rules.
pub fn names(data: &[u8]) {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(name) = FileName::parse(raw) {
        assert_eq!(FileName::parse(name.as_str()).as_ref(), Ok(&name));
        let text = name.as_str();
        assert!(text.len() <= ferry_protocol::MAX_NAME_LEN);
        assert!(
            text.split('/')
                .all(|c| !c.is_empty() && c != "." && c != "..")
        );
        assert!(!text.contains('\\') && !text.chars().any(char::is_control));
        assert!(!name.to_relative_path().is_absolute());
    }
    if let Ok(handle) = Handle::parse(raw) {
        assert_eq!(Handle::parse(handle.as_str()).as_ref(), Ok(&handle));
        assert!(handle.as_str().len() <= ferry_protocol::MAX_HANDLE_LEN);
    }
}

/// What a sharing peer's port reads from a requester, and a requester
/// from a peer: frames of the peer-port protocol, streamed.
pub fn peer_protocol(data: &[u8]) {
    let split = data.first().map_or(1, |&b| usize::from(b).max(1));
    decode_stream::<PeerRequest>(data, split);
    decode_stream::<PeerResponse>(data, split);
    if let Ok(m) = postcard::from_bytes::<PeerRequest>(data) {
        reencodes(&m);
    }
}
