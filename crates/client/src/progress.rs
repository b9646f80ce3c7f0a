//! Progress reporting hooks. The library reports; the binary draws bars.

use std::pin::Pin;
use std::task::{Context, Poll};

use ferry_protocol::FileEntry;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::ClientError;

/// Something that happened during a transfer.
#[derive(Debug)]
pub enum TransferEvent<'a> {
    /// `n` more bytes were hashed, sent or received (or skipped by resuming).
    Bytes(u64),
    /// A file continues from `offset` bytes a previous attempt left.
    Resumed {
        /// The file.
        name: &'a str,
        /// Bytes already there.
        offset: u64,
    },
    /// A file finished.
    Done(&'a FileEntry),
    /// A file failed; the others go on.
    Failed {
        /// The file.
        name: &'a str,
        /// Why.
        error: &'a ClientError,
    },
}

/// Receives [`TransferEvent`]s. Implementations must be cheap: they are
/// called from the transfer loop.
pub trait Progress: Sync {
    /// Called for every event.
    fn event(&self, event: TransferEvent<'_>);
}

/// Ignores everything.
impl Progress for () {
    fn event(&self, _event: TransferEvent<'_>) {}
}

/// Reports bytes as they are read from a local file.
pub(crate) struct CountingReader<'a, R> {
    pub(crate) inner: R,
    pub(crate) progress: &'a dyn Progress,
}

impl<R: AsyncRead + Unpin> AsyncRead for CountingReader<'_, R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            self.progress.event(TransferEvent::Bytes(n as u64));
        }
        polled
    }
}

/// Reports bytes as they are written to a local file.
pub(crate) struct CountingWriter<'a, W> {
    pub(crate) inner: W,
    pub(crate) progress: &'a dyn Progress,
}

impl<W: AsyncWrite + Unpin> AsyncWrite for CountingWriter<'_, W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = polled {
            self.progress.event(TransferEvent::Bytes(n as u64));
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
