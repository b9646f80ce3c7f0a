//! Framing: `u32` big-endian length, then that many bytes of postcard.
//!
//! The length is checked against [`MAX_FRAME_LEN`] as soon as its four bytes
//! are in, before any buffer grows, so a hostile `u32::MAX` costs nothing.

use std::io;
use std::marker::PhantomData;

use bytes::{Buf, BufMut, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_util::codec::{Decoder, Encoder};

use crate::limits::MAX_FRAME_LEN;

const LEN_PREFIX: usize = 4;

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The length prefix announced more than the codec's limit
    /// ([`MAX_FRAME_LEN`], or less before login).
    #[error("frame of {len} bytes exceeds the {limit}-byte limit")]
    TooLarge {
        /// The announced length.
        len: u64,
        /// The limit it passed.
        limit: u64,
    },
    /// The frame's bytes are not a valid message.
    #[error("malformed frame: {0}")]
    Malformed(#[from] postcard::Error),
    /// The stream ended in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    Truncated,
    /// The underlying stream failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
}

/// Decodes frames into `D` and encodes `E` into frames.
#[derive(Debug)]
pub struct MessageCodec<D, E> {
    max_len: usize,
    _types: PhantomData<fn(E) -> D>,
}

impl<D, E> MessageCodec<D, E> {
    /// A codec with the standard limits.
    pub fn new() -> Self {
        Self {
            max_len: MAX_FRAME_LEN,
            _types: PhantomData,
        }
    }

    /// Decodes only frames of at most `max_len` bytes (capped at
    /// [`MAX_FRAME_LEN`]): a hub takes only small frames before login, so
    /// a connection nobody has vouched for cannot make it buffer much.
    pub fn set_max_len(&mut self, max_len: usize) {
        self.max_len = max_len.min(MAX_FRAME_LEN);
    }
}

impl<D, E> Default for MessageCodec<D, E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<D: DeserializeOwned, E> Decoder for MessageCodec<D, E> {
    type Item = D;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<D>, FrameError> {
        let Some(prefix) = src.get(..LEN_PREFIX) else {
            return Ok(None);
        };
        let len = u32::from_be_bytes(prefix.try_into().expect("slice of four")) as usize;
        if len > self.max_len {
            return Err(FrameError::TooLarge {
                len: len as u64,
                limit: self.max_len as u64,
            });
        }
        if src.len() < LEN_PREFIX + len {
            src.reserve(LEN_PREFIX + len - src.len());
            return Ok(None);
        }
        src.advance(LEN_PREFIX);
        let frame = src.split_to(len);
        Ok(Some(postcard::from_bytes(&frame)?))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<D>, FrameError> {
        match self.decode(src)? {
            Some(item) => Ok(Some(item)),
            None if src.is_empty() => Ok(None),
            None => Err(FrameError::Truncated),
        }
    }
}

impl<D, E: Serialize> Encoder<&E> for MessageCodec<D, E> {
    type Error = FrameError;

    fn encode(&mut self, item: &E, dst: &mut BytesMut) -> Result<(), FrameError> {
        let body = postcard::to_stdvec(item)?;
        if body.len() > MAX_FRAME_LEN {
            return Err(FrameError::TooLarge {
                len: body.len() as u64,
                limit: MAX_FRAME_LEN as u64,
            });
        }
        dst.reserve(LEN_PREFIX + body.len());
        dst.put_u32(body.len() as u32);
        dst.put_slice(&body);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Request, Response};

    type ClientCodec = MessageCodec<Response, Request>;
    type HubCodec = MessageCodec<Request, Response>;

    fn encoded(request: &Request) -> BytesMut {
        let mut buf = BytesMut::new();
        ClientCodec::new().encode(request, &mut buf).unwrap();
        buf
    }

    #[test]
    fn frame_round_trips() {
        let request = Request::Delete { name: "a".into() };
        let mut buf = encoded(&request);
        assert_eq!(HubCodec::new().decode(&mut buf).unwrap(), Some(request));
        assert!(buf.is_empty());
    }

    #[test]
    fn partial_input_asks_for_more_at_every_cut() {
        let full = encoded(&Request::Download {
            name: "some/file".into(),
            offset: 77,
        });
        for cut in 0..full.len() {
            let mut part = BytesMut::from(&full[..cut]);
            assert!(
                HubCodec::new().decode(&mut part).unwrap().is_none(),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn two_frames_in_one_buffer_decode_in_order() {
        let mut buf = encoded(&Request::Subscribe);
        buf.extend_from_slice(&encoded(&Request::Delete { name: "x".into() }));
        let mut codec = HubCodec::new();
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(Request::Subscribe));
        assert!(matches!(
            codec.decode(&mut buf).unwrap(),
            Some(Request::Delete { .. })
        ));
    }

    #[test]
    fn oversized_length_prefix_is_rejected_before_allocating() {
        let mut buf = BytesMut::from(&u32::MAX.to_be_bytes()[..]);
        let err = HubCodec::new().decode(&mut buf).unwrap_err();
        assert!(matches!(err, FrameError::TooLarge { len, .. } if len == u64::from(u32::MAX)));
        assert!(buf.capacity() < 1024);
    }

    #[test]
    fn a_lowered_limit_refuses_a_frame_the_standard_one_takes() {
        let hello = Request::Hello {
            version: 1,
            agent: "a".repeat(crate::MAX_TEXT_LEN + 1000),
        };
        let mut buf = encoded(&hello);
        let mut small = HubCodec::new();
        small.set_max_len(crate::MAX_PRE_LOGIN_FRAME_LEN);
        let err = small.decode(&mut buf.clone()).unwrap_err();
        assert!(
            matches!(err, FrameError::TooLarge { limit, .. } if limit == crate::MAX_PRE_LOGIN_FRAME_LEN as u64)
        );
        assert_eq!(HubCodec::new().decode(&mut buf).unwrap(), Some(hello));
    }

    #[test]
    fn frame_at_the_limit_is_accepted_and_one_over_is_not() {
        let mut at = BytesMut::new();
        at.put_u32(MAX_FRAME_LEN as u32);
        assert!(HubCodec::new().decode(&mut at).unwrap().is_none());
        let mut over = BytesMut::new();
        over.put_u32(MAX_FRAME_LEN as u32 + 1);
        assert!(HubCodec::new().decode(&mut over).is_err());
    }

    #[test]
    fn garbage_is_malformed() {
        let mut buf = BytesMut::new();
        buf.put_u32(3);
        buf.put_slice(&[0xff, 0xff, 0xff]);
        assert!(matches!(
            HubCodec::new().decode(&mut buf),
            Err(FrameError::Malformed(_))
        ));
    }

    #[test]
    fn truncated_frame_at_eof_is_an_error() {
        let full = encoded(&Request::Subscribe);
        let mut part = BytesMut::from(&full[..full.len() - 1]);
        assert!(matches!(
            HubCodec::new().decode_eof(&mut part),
            Err(FrameError::Truncated)
        ));
        assert!(
            HubCodec::new()
                .decode_eof(&mut BytesMut::new())
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn oversized_message_is_not_encoded() {
        let huge = Response::Error {
            code: crate::ErrorCode::Internal,
            message: "x".repeat(MAX_FRAME_LEN),
        };
        let mut buf = BytesMut::new();
        assert!(
            MessageCodec::<Request, Response>::new()
                .encode(&huge, &mut buf)
                .is_err()
        );
        assert!(buf.is_empty());
    }
}
