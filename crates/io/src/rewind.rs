//! A stream whose first byte was read to tell its protocol, put back in
//! front so the protocol that takes the stream reads it again.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// `inner` with `first` (if any) read again before it.
#[derive(Debug)]
pub struct Rewound<T> {
    first: Option<u8>,
    inner: T,
}

impl<T: AsyncRead + Unpin> Rewound<T> {
    /// Reads one byte of `inner` (`None` at end of stream) and returns it
    /// with the stream that gives it back.
    pub async fn peek(mut inner: T) -> io::Result<(Option<u8>, Self)> {
        let mut byte = [0];
        let first = match inner.read(&mut byte).await? {
            0 => None,
            _ => Some(byte[0]),
        };
        Ok((first, Self { first, inner }))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewound<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() > 0
            && let Some(byte) = self.first.take()
        {
            buf.put_slice(&[byte]);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewound<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn the_byte_read_to_peek_is_read_again() {
        let (mut a, b) = tokio::io::duplex(64);
        a.write_all(b"GET /").await.unwrap();
        drop(a);
        let (first, mut rewound) = Rewound::peek(b).await.unwrap();
        assert_eq!(first, Some(b'G'));
        let mut all = Vec::new();
        rewound.read_to_end(&mut all).await.unwrap();
        assert_eq!(all, b"GET /");
    }

    #[tokio::test]
    async fn an_empty_stream_peeks_nothing() {
        let (a, b) = tokio::io::duplex(64);
        drop(a);
        let (first, _) = Rewound::peek(b).await.unwrap();
        assert_eq!(first, None);
    }
}
