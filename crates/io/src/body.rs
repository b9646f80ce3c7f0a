//! Streaming file bodies: exactly `len` bytes, hashed on the way, every read
//! and write bounded by a stall deadline. Memory use is one chunk, whatever
//! the size of the file.

use std::io;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

use crate::framed::{FrameReader, FrameWriter};
use ferry_protocol::limits::CHUNK_LEN;

/// Why a body transfer stopped.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// The other side ended the stream early.
    #[error("connection closed after {received} of {expected} bytes")]
    Truncated {
        /// Bytes announced.
        expected: u64,
        /// Bytes received before the end.
        received: u64,
    },
    /// No progress within the stall deadline.
    #[error("transfer stalled: no progress for {0:?}")]
    Stalled(Duration),
    /// Reading from or writing to the connection failed.
    #[error("network error: {0}")]
    Network(io::Error),
    /// Reading or writing the local file failed.
    #[error("disk error: {0}")]
    Disk(io::Error),
    /// The local source ended before the announced size (file shrank).
    #[error("the file changed while it was being sent ({sent} of {expected} bytes)")]
    SourceChanged {
        /// Bytes announced.
        expected: u64,
        /// Bytes available.
        sent: u64,
    },
}

/// Reads exactly `len` body bytes from `reader` into `sink`, feeding `hasher`.
/// Whatever happens, no byte past `len` is consumed from the connection.
pub async fn receive_body<R, D, W>(
    reader: &mut FrameReader<R, D>,
    len: u64,
    sink: &mut W,
    hasher: &mut blake3::Hasher,
    stall: Duration,
) -> Result<(), BodyError>
where
    R: AsyncRead + Unpin,
    D: DeserializeOwned,
    W: AsyncWrite + Unpin,
{
    let mut buf = vec![
        0u8;
        CHUNK_LEN
            .min(usize::try_from(len).unwrap_or(CHUNK_LEN))
            .max(1)
    ];
    let mut received = 0u64;
    while received < len {
        let want = buf
            .len()
            .min(usize::try_from(len - received).unwrap_or(usize::MAX));
        let n = timeout(stall, reader.read_raw(&mut buf[..want]))
            .await
            .map_err(|_| BodyError::Stalled(stall))?
            .map_err(BodyError::Network)?;
        if n == 0 {
            return Err(BodyError::Truncated {
                expected: len,
                received,
            });
        }
        hasher.update(&buf[..n]);
        timeout(stall, sink.write_all(&buf[..n]))
            .await
            .map_err(|_| BodyError::Stalled(stall))?
            .map_err(BodyError::Disk)?;
        received += n as u64;
    }
    Ok(())
}

/// Reads `len` body bytes and throws them away (an eager upload
/// that was refused still has to be skipped to reach the next frame).
pub async fn discard_body<R, D>(
    reader: &mut FrameReader<R, D>,
    len: u64,
    stall: Duration,
) -> Result<(), BodyError>
where
    R: AsyncRead + Unpin,
    D: DeserializeOwned,
{
    let mut sink = tokio::io::sink();
    receive_body(reader, len, &mut sink, &mut blake3::Hasher::new(), stall).await
}

/// Writes raw body bytes within the stall deadline (not flushed).
pub async fn write_within<W, E>(
    writer: &mut FrameWriter<W, E>,
    bytes: &[u8],
    stall: Duration,
) -> Result<(), BodyError>
where
    W: AsyncWrite + Unpin,
    E: Serialize,
{
    timeout(stall, writer.write_raw(bytes))
        .await
        .map_err(|_| BodyError::Stalled(stall))?
        .map_err(BodyError::Network)
}

/// Flushes a frame writer within the stall deadline.
pub async fn flush_within<W, E>(
    writer: &mut FrameWriter<W, E>,
    stall: Duration,
) -> Result<(), BodyError>
where
    W: AsyncWrite + Unpin,
    E: Serialize,
{
    timeout(stall, writer.flush())
        .await
        .map_err(|_| BodyError::Stalled(stall))?
        .map_err(BodyError::Network)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_protocol::Request;

    async fn pipe_body(len: usize) -> (Vec<u8>, blake3::Hash) {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
        let (a, b) = tokio::io::duplex(CHUNK_LEN);
        let mut writer = FrameWriter::<_, Request>::new(a);
        let source = data.clone();
        let send = tokio::spawn(async move {
            writer.write_raw(&source).await.unwrap();
            writer.flush().await.unwrap();
        });
        let mut reader = FrameReader::<_, Request>::new(b);
        let mut out = Vec::new();
        let mut hasher = blake3::Hasher::new();
        receive_body(
            &mut reader,
            len as u64,
            &mut out,
            &mut hasher,
            Duration::from_secs(5),
        )
        .await
        .unwrap();
        send.await.unwrap();
        assert_eq!(out, data);
        (out, hasher.finalize())
    }

    #[tokio::test]
    async fn bodies_of_boundary_sizes_arrive_whole_and_hashed() {
        for len in [
            0,
            1,
            CHUNK_LEN - 1,
            CHUNK_LEN,
            CHUNK_LEN + 1,
            3 * CHUNK_LEN + 7,
        ] {
            let (out, hash) = pipe_body(len).await;
            assert_eq!(hash, blake3::hash(&out), "len {len}");
        }
    }

    #[tokio::test]
    async fn short_body_is_truncated() {
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(b"abc").await.unwrap();
        drop(a);
        let mut reader = FrameReader::<_, Request>::new(b);
        let err = receive_body(
            &mut reader,
            10,
            &mut Vec::new(),
            &mut blake3::Hasher::new(),
            Duration::from_secs(1),
        )
        .await
        .unwrap_err();
        assert!(matches!(
            err,
            BodyError::Truncated {
                expected: 10,
                received: 3
            }
        ));
    }

    #[tokio::test(start_paused = true)]
    async fn silent_sender_stalls() {
        let (_a, b) = tokio::io::duplex(64);
        let mut reader = FrameReader::<_, Request>::new(b);
        let err = receive_body(
            &mut reader,
            10,
            &mut Vec::new(),
            &mut blake3::Hasher::new(),
            Duration::from_secs(3),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, BodyError::Stalled(_)));
    }
}
