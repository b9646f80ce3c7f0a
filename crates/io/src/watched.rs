//! A stream with deadlines, for connections whose protocol has none of its
//! own (HTTP through hyper): it fails once nothing moved either way for
//! `idle`, or a write waited `stall` for the peer to read. A client that
//! stops reading or says nothing gives its slot back.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep, sleep_until};

/// `inner`, with deadlines.
#[derive(Debug)]
pub struct Watched<T> {
    inner: T,
    idle: Duration,
    stall: Duration,
    /// Fires `idle` after the last progress; pushed back as bytes move.
    idle_timer: Pin<Box<Sleep>>,
    /// Armed while a write waits.
    write_timer: Option<Pin<Box<Sleep>>>,
}

impl<T> Watched<T> {
    /// Watches `inner`.
    pub fn new(inner: T, idle: Duration, stall: Duration) -> Self {
        Self {
            inner,
            idle,
            stall,
            idle_timer: Box::pin(sleep_until(Instant::now() + idle)),
            write_timer: None,
        }
    }

    fn progressed(&mut self) {
        let at = Instant::now() + self.idle;
        self.idle_timer.as_mut().reset(at);
    }
}

fn timed_out(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, what.to_owned())
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.progressed();
                }
                Poll::Ready(result)
            }
            Poll::Pending => match self.idle_timer.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Err(timed_out("the connection was idle too long"))),
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl<T: AsyncWrite + Unpin> Watched<T> {
    /// What a write came to: progress disarms the stall timer; waiting arms it.
    fn watch_write<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        match polled {
            Poll::Ready(result) => {
                self.write_timer = None;
                self.progressed();
                Poll::Ready(result)
            }
            Poll::Pending => {
                let stall = self.stall;
                let timer = self
                    .write_timer
                    .get_or_insert_with(|| Box::pin(sleep_until(Instant::now() + stall)));
                match timer.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Err(timed_out("the peer stopped reading"))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.watch_write(cx, polled)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.watch_write(cx, polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let polled = Pin::new(&mut self.inner).poll_flush(cx);
        self.watch_write(cx, polled)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test(start_paused = true)]
    async fn a_silent_peer_times_out_and_a_talking_one_does_not() {
        let (mut peer, ours) = tokio::io::duplex(64);
        let mut watched = Watched::new(ours, Duration::from_secs(10), Duration::from_secs(5));
        peer.write_all(b"hi").await.unwrap();
        let mut buf = [0; 2];
        watched.read_exact(&mut buf).await.unwrap();
        let silent = watched.read(&mut buf).await.unwrap_err();
        assert_eq!(silent.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn a_peer_that_stops_reading_times_out_the_write() {
        let (_peer, ours) = tokio::io::duplex(64);
        let mut watched = Watched::new(ours, Duration::from_secs(60), Duration::from_secs(5));
        let stalled = watched.write_all(&[0; 1024]).await.unwrap_err();
        assert_eq!(stalled.kind(), io::ErrorKind::TimedOut);
    }
}
