//! Streaming file bodies: exactly `len` bytes, hashed on the way, every read
//! and write bounded by a stall deadline. Memory use is one chunk, whatever
//! the size of the file.

use std::io;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, timeout, timeout_at};

use crate::framed::{FrameReader, FrameWriter};
use ferry_protocol::limits::{CHUNK_LEN, MIN_BODY_PROGRESS};

/// The slowest a received body may arrive: at least [`MIN_BODY_PROGRESS`]
/// bytes (or all that is left) within every `stall` period.
#[derive(Debug)]
pub struct Pace {
    stall: Duration,
    deadline: Instant,
    moved: u64,
}

impl Pace {
    /// Starts the first period now.
    pub fn new(stall: Duration) -> Self {
        Self {
            stall,
            deadline: Instant::now() + stall,
            moved: 0,
        }
    }

    /// Reads from `reader` before the current period ends, counting what
    /// arrived; `Ok(0)` means the stream ended.
    pub async fn read<R, D>(
        &mut self,
        reader: &mut FrameReader<R, D>,
        out: &mut [u8],
    ) -> Result<usize, BodyError>
    where
        R: AsyncRead + Unpin,
        D: DeserializeOwned,
    {
        let n = timeout_at(self.deadline, reader.read_raw(out))
            .await
            .map_err(|_| BodyError::Stalled(self.stall))?
            .map_err(BodyError::Network)?;
        self.moved += n as u64;
        if self.moved >= MIN_BODY_PROGRESS {
            self.moved = 0;
            self.deadline = Instant::now() + self.stall;
        }
        Ok(n)
    }
}

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
    /// No progress within the stall deadline, or too little (under
    /// [`MIN_BODY_PROGRESS`] bytes in a stall period while receiving).
    #[error("transfer stalled or too slow: too little progress in {0:?}")]
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
    let mut pace = Pace::new(stall);
    while received < len {
        let want = buf
            .len()
            .min(usize::try_from(len - received).unwrap_or(usize::MAX));
        let n = pace.read(reader, &mut buf[..want]).await?;
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

    /// One byte a second never misses a per-read deadline of 3 s, but is
    /// far under the least a stall period must bring.
    #[tokio::test(start_paused = true)]
    async fn a_trickling_sender_is_cut_off_after_one_stall_period() {
        let (mut a, b) = tokio::io::duplex(64);
        let trickle = tokio::spawn(async move {
            while a.write_all(b"x").await.is_ok() {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        });
        let mut reader = FrameReader::<_, Request>::new(b);
        let started = Instant::now();
        let err = receive_body(
            &mut reader,
            1 << 20,
            &mut Vec::new(),
            &mut blake3::Hasher::new(),
            Duration::from_secs(3),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, BodyError::Stalled(_)), "{err}");
        assert_eq!(started.elapsed().as_secs(), 3);
        trickle.abort();
    }

    /// A steady sender that brings enough in every period is never cut off.
    #[tokio::test(start_paused = true)]
    async fn a_slow_but_steady_sender_is_kept() {
        let len = 4 * MIN_BODY_PROGRESS as usize;
        let (mut a, b) = tokio::io::duplex(CHUNK_LEN);
        let send = tokio::spawn(async move {
            for chunk in vec![7u8; len].chunks(MIN_BODY_PROGRESS as usize) {
                tokio::time::sleep(Duration::from_secs(2)).await;
                a.write_all(chunk).await.unwrap();
            }
        });
        let mut reader = FrameReader::<_, Request>::new(b);
        let mut out = Vec::new();
        let stall = Duration::from_secs(3);
        let mut hasher = blake3::Hasher::new();
        receive_body(&mut reader, len as u64, &mut out, &mut hasher, stall)
            .await
            .unwrap();
        assert_eq!(out.len(), len);
        send.await.unwrap();
    }
}
