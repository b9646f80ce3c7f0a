//! A connection is a pair of halves: [`FrameReader`] reads frames and the raw
//! body bytes that follow some of them; [`FrameWriter`] writes both.
//!
//! Bodies are not framed: after a header such as `Upload` or `Sending`, the
//! announced number of bytes follows on the same stream. The reader hands
//! out whatever it buffered past a frame before touching the stream again.

use std::io;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio_util::codec::{Decoder, Encoder};

use ferry_protocol::{FrameError, MessageCodec};

/// How much the reader asks the stream for at a time when hunting frames.
const READ_AHEAD: usize = 16 * 1024;

/// Write buffer: small frames coalesce, large body chunks pass straight through.
const WRITE_BUFFER: usize = 64 * 1024;

/// Any byte stream a connection can run over (TCP, TLS over TCP, tests' duplex pipes).
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static> Transport for T {}

/// Reads `D` frames, and raw bytes in between.
#[derive(Debug)]
pub struct FrameReader<R, D> {
    inner: R,
    buf: BytesMut,
    codec: MessageCodec<D, ()>,
}

impl<R: AsyncRead + Unpin, D: DeserializeOwned> FrameReader<R, D> {
    /// Wraps the read half of a stream.
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            buf: BytesMut::new(),
            codec: MessageCodec::new(),
        }
    }

    /// Reads only frames of at most `max_len` bytes from now on (see
    /// [`MessageCodec::set_max_len`]).
    pub fn set_max_frame_len(&mut self, max_len: usize) {
        self.codec.set_max_len(max_len);
    }

    /// The next message, or `None` if the peer closed cleanly between frames.
    pub async fn recv(&mut self) -> Result<Option<D>, FrameError> {
        loop {
            if let Some(message) = self.codec.decode(&mut self.buf)? {
                return Ok(Some(message));
            }
            self.buf.reserve(READ_AHEAD);
            match self.inner.read_buf(&mut self.buf).await {
                Ok(0) => return self.codec.decode_eof(&mut self.buf),
                Ok(_) => {}
                // A TLS peer that hangs up between frames without close_notify
                // truncated nothing of ours: treat it as a plain close.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return self.codec.decode_eof(&mut self.buf);
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// The next message if it is already buffered whole; never reads the
    /// stream. Lets a server see requests sent back to back as a batch.
    pub fn try_recv_buffered(&mut self) -> Result<Option<D>, FrameError> {
        self.codec.decode(&mut self.buf)
    }

    /// Reads raw body bytes into `out`; `Ok(0)` means the stream ended.
    pub async fn read_raw(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.buf.is_empty() {
            return self.inner.read(out).await;
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        self.buf.advance(n);
        Ok(n)
    }
}

/// Writes `E` frames and raw bytes, buffered.
#[derive(Debug)]
pub struct FrameWriter<W: AsyncWrite, E> {
    inner: BufWriter<W>,
    scratch: BytesMut,
    codec: MessageCodec<(), E>,
    /// Every frame write and flush must finish within this, if set: a peer
    /// that stops reading must not hold a connection (and its task) for
    /// ever.
    deadline: Option<Duration>,
}

impl<W: AsyncWrite + Unpin, E: Serialize> FrameWriter<W, E> {
    /// Wraps the write half of a stream.
    pub fn new(inner: W) -> Self {
        Self {
            inner: BufWriter::with_capacity(WRITE_BUFFER, inner),
            scratch: BytesMut::new(),
            codec: MessageCodec::new(),
            deadline: None,
        }
    }

    /// Fails every later write or flush that cannot finish within
    /// `deadline` (with `io::ErrorKind::TimedOut`).
    pub fn set_write_deadline(&mut self, deadline: Duration) {
        self.deadline = Some(deadline);
    }

    /// Writes a frame and flushes it to the peer.
    pub async fn send(&mut self, message: &E) -> Result<(), FrameError> {
        self.queue(message).await?;
        Ok(self.flush().await?)
    }

    /// Writes a frame into the buffer without flushing, so several can leave
    /// in one segment.
    pub async fn queue(&mut self, message: &E) -> Result<(), FrameError> {
        self.scratch.clear();
        self.codec.encode(message, &mut self.scratch)?;
        let (inner, scratch) = (&mut self.inner, &self.scratch);
        Ok(write_paced(inner, scratch, self.deadline).await?)
    }

    /// Writes raw body bytes (buffered). No write deadline of its own:
    /// bodies keep theirs per chunk (see `body::write_within`).
    pub async fn write_raw(&mut self, data: &[u8]) -> io::Result<()> {
        self.inner.write_all(data).await
    }

    /// Pushes everything buffered to the peer.
    pub async fn flush(&mut self) -> io::Result<()> {
        within(self.deadline, self.inner.flush()).await
    }

    /// Flushes and closes the write direction (TLS `close_notify`, TCP FIN).
    pub async fn shutdown(&mut self) -> io::Result<()> {
        within(self.deadline, self.inner.shutdown()).await
    }
}

/// Bytes handed to the stream within one write deadline: a full 1 MiB page
/// then needs a slow link's pace (a buffer's worth, 64 KiB, per deadline:
/// about 2 KiB/s at 30 s), not all of it within one deadline (35 KB/s).
const PACED_PIECE: usize = 16 * 1024;

/// Writes `data` in pieces, each within `deadline`.
async fn write_paced<W: AsyncWrite + Unpin>(
    inner: &mut BufWriter<W>,
    data: &[u8],
    deadline: Option<Duration>,
) -> io::Result<()> {
    for piece in data.chunks(PACED_PIECE) {
        within(deadline, inner.write_all(piece)).await?;
    }
    Ok(())
}

/// Runs a write, failing it with `TimedOut` after `deadline` if one is set.
async fn within(
    deadline: Option<Duration>,
    write: impl Future<Output = io::Result<()>>,
) -> io::Result<()> {
    let Some(deadline) = deadline else {
        return write.await;
    };
    tokio::time::timeout(deadline, write)
        .await
        .unwrap_or_else(|_| {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the peer read nothing for {deadline:?}"),
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_protocol::Request;

    #[tokio::test]
    async fn frames_and_raw_bytes_interleave() {
        let (a, b) = tokio::io::duplex(64);
        let mut writer = FrameWriter::<_, Request>::new(a);
        let mut reader = FrameReader::<_, Request>::new(b);
        let sender = tokio::spawn(async move {
            writer.queue(&Request::Subscribe).await.unwrap();
            writer.write_raw(b"hello body").await.unwrap();
            writer
                .send(&Request::Delete { name: "x".into() })
                .await
                .unwrap();
            writer.shutdown().await.unwrap();
        });
        assert_eq!(reader.recv().await.unwrap(), Some(Request::Subscribe));
        let mut body = [0u8; 10];
        let mut filled = 0;
        while filled < body.len() {
            filled += reader.read_raw(&mut body[filled..]).await.unwrap();
        }
        assert_eq!(&body, b"hello body");
        assert!(matches!(
            reader.recv().await.unwrap(),
            Some(Request::Delete { .. })
        ));
        assert!(reader.recv().await.unwrap().is_none());
        sender.await.unwrap();
    }

    #[tokio::test]
    async fn stream_cut_mid_frame_is_truncated() {
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(&[0, 0, 0, 10, 1, 2]).await.unwrap();
        drop(a);
        let mut reader = FrameReader::<_, Request>::new(b);
        assert!(matches!(reader.recv().await, Err(FrameError::Truncated)));
    }
}
