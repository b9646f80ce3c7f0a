//! Request bodies that are read to their end even when the answer came
//! first. A refused upload (a taken name, a quota, a bad token) is
//! answered before its body is read; dropping the body then resets the
//! HTTP/2 stream, and curl (7.88, Debian's) reports the reset, "Stream
//! error in the HTTP/2 framing layer", instead of the answer it already
//! had: the user never sees why. So an unfinished body is handed to a
//! task that reads and discards the rest, as nginx's lingering close
//! does, bounded in bytes, time and number, after which the stream is
//! reset as before.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

/// Most bytes read past an answer.
const MAX_BYTES: usize = 16 << 20;

/// Longest a body is read past an answer.
const MAX_TIME: Duration = Duration::from_secs(5);

/// Most bodies being read past their answers at once, hub-wide.
const MAX_LINGERING: usize = 256;

static LINGERING: AtomicUsize = AtomicUsize::new(0);

/// Wraps `request`'s body so that, if dropped unfinished, it is drained
/// (a request with none, most GETs, is left as it is).
pub(crate) async fn wrap(request: Request) -> Request {
    if request.body().is_end_stream() {
        return request;
    }
    request.map(|body| Body::new(Lingering { inner: Some(body) }))
}

struct Lingering {
    inner: Option<Body>,
}

impl HttpBody for Lingering {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        match self.inner.as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

impl Drop for Lingering {
    fn drop(&mut self) {
        let Some(body) = self.inner.take() else {
            return;
        };
        if body.is_end_stream() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if LINGERING.fetch_add(1, Ordering::Relaxed) >= MAX_LINGERING {
            LINGERING.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        // Given back however the task ends, dropped unrun at shutdown too.
        let counted = Counted;
        let draining = async move {
            let _counted = counted;
            let _ = tokio::time::timeout(MAX_TIME, drain(body)).await;
        };
        runtime.spawn(tracing::Instrument::instrument(
            draining,
            tracing::debug_span!("reading past an answer"),
        ));
    }
}

/// One of [`LINGERING`], given back when dropped.
struct Counted;

impl Drop for Counted {
    fn drop(&mut self) {
        LINGERING.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Reads and discards `body`, up to [`MAX_BYTES`].
async fn drain(body: Body) {
    let mut stream = body.into_data_stream();
    let mut read = 0;
    while let Some(Ok(chunk)) = futures_util::StreamExt::next(&mut stream).await {
        read += chunk.len();
        if read > MAX_BYTES {
            return;
        }
    }
}
