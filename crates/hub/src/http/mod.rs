//! HTTP on the hub's port, for curl, scripts, browsers and WebDAV clients.
//! Every route acts for a [`crate::access::credentials::Caller`] verified from an API token and asks
//! the same [`crate::access::policy`] as the protocol; uploads and deletions
//! go through the same [`crate::publish::Publisher`].
//!
//! | route | what |
//! | --- | --- |
//! | `GET /` | the web page (see [`web`]) |
//! | `POST /api/v1/signin`, `/api/v1/signout` | a browser's session |
//! | `GET /healthz` | `ok` while the hub serves |
//! | `GET /api/v1/me` | the caller: handle, role, quota, use |
//! | `GET /api/v1/files` | a page of the listing (`prefix`, `cursor`, `limit`) |
//! | `GET /api/v1/peers/{handle}/{name}` | a file only an online peer has, relayed and checked |
//! | `GET /api/v1/search?q=` | store and online peers, as `ferry search` |
//! | `GET /api/v1/events` | server-sent events: uploads, deletions, peers |
//! | `GET`, `HEAD /api/v1/files/{name}` | the bytes: `ETag`, ranges, conditions |
//! | `PUT /api/v1/files/{name}` | an upload (`?conflict=`, `Ferry-Hash`) |
//! | `DELETE /api/v1/files/{name}` | a deletion |
//! | `/api/v1/uploads` | resumable uploads (tus 1.0: `POST`, `HEAD`, `PATCH`, `DELETE`) |
//! | `/dav/` | WebDAV (see [`dav`]) |
//!
//! `api/openapi.yaml` in the repository documents each.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::routing::{any, get, head, post, put};
use axum::{Extension, Router};
use ferry_io::watched::Watched;
use ferry_io::{Slot, Transport};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio_util::sync::CancellationToken;

use crate::state::Hub;

mod auth;
mod blob;
pub(crate) mod conditions;
pub mod dav;
pub mod error;
mod files;
pub(crate) mod hot;
pub use files::entry_json;
mod linger;
mod live;
mod peers;
mod ranges;
mod resumable;
mod unannounced;
mod upload;
pub mod web;

/// The routes, for `hub`. Two layers go only where they are needed, for
/// each costs a small GET a few percent: JSON for axum's own rejections
/// (routes that parse a query or a body), and reading past the answer
/// (routes that take a body).
pub(crate) fn router(hub: Arc<Hub>) -> Router {
    let json = || axum::middleware::from_fn(error::as_json);
    let linger = || axum::middleware::map_request(linger::wrap);
    Router::new()
        .route("/", get(web::page))
        .route("/app.js", get(web::script))
        .route("/app.css", get(web::style))
        .route(
            "/api/v1/signin",
            post(web::sign_in).layer(json()).layer(linger()),
        )
        .route("/api/v1/signout", post(web::sign_out).layer(linger()))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/v1/me", get(files::me))
        .route("/api/v1/files", get(files::list).layer(json()))
        .route(
            "/api/v1/uploads",
            post(resumable::create)
                .options(resumable::options)
                .layer(linger()),
        )
        .route(
            "/api/v1/uploads/{id}",
            head(resumable::status)
                .patch(resumable::append)
                .delete(resumable::terminate)
                .layer(linger()),
        )
        .route("/api/v1/peers/{handle}/{*name}", get(peers::get))
        .route("/api/v1/search", get(live::search).layer(json()))
        .route("/api/v1/events", get(live::events))
        .route(
            "/api/v1/files/{*name}",
            get(files::get)
                .delete(files::delete)
                .merge(put(upload::put).layer(json()).layer(linger())),
        )
        .route(dav::PREFIX, any(dav::serve).layer(linger()))
        .route("/dav/", any(dav::serve).layer(linger()))
        .route("/dav/{*path}", any(dav::serve).layer(linger()))
        .method_not_allowed_fallback(|| async {
            error::ApiError::new(
                http::StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method; see api/openapi.yaml",
            )
        })
        .fallback(|| async {
            error::ApiError::new(
                http::StatusCode::NOT_FOUND,
                "no_route",
                "no such page; the API is under /api/v1/",
            )
        })
        .with_state(hub)
}

/// Concurrent requests one HTTP/2 connection may have: each may hold an
/// upload's temp file and reservation, and a connection is one slot.
const MAX_STREAMS: u32 = 8;

/// Bytes one HTTP/2 stream may have queued to send.
const H2_SEND_BUFFER: usize = 1 << 20;

/// A connection's place among its source's, given up as unverified until
/// a request on it shows a valid credential.
pub(crate) struct Connection {
    slot: Mutex<Slot>,
    verified: AtomicBool,
    /// Cancelled when the hub shuts down: long responses (event streams) end.
    pub(crate) ended: CancellationToken,
}

impl Connection {
    /// A request on this connection came from a known user.
    pub(crate) fn verified(&self) {
        if !self.verified.swap(true, Ordering::Relaxed) {
            self.slot
                .lock()
                .expect("slot lock is never poisoned")
                .verified();
        }
    }
}

/// Serves HTTP/1.1 or HTTP/2 on one connection until the client leaves or
/// the hub shuts down (then a request under way is let finish, within the
/// hub's grace period, and the connection closed). A connection that shows
/// no valid credential within the login timeout is closed, as a Ferry
/// connection that does not log in is; one on which nothing moves for the
/// idle timeout, or whose peer stops reading for the stall timeout, too.
pub(crate) async fn serve(
    hub: Arc<Hub>,
    transport: Box<dyn Transport>,
    remote: SocketAddr,
    slot: Slot,
    shutdown: CancellationToken,
) {
    let config = &hub.config;
    let connection = Arc::new(Connection {
        slot: Mutex::new(slot),
        verified: AtomicBool::new(false),
        ended: shutdown.child_token(),
    });
    let router = router(Arc::clone(&hub)).layer(Extension(Arc::clone(&connection)));
    let service = TowerToHyperService::new(router);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.handshake_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_STREAMS)
        // Windows that follow the link's bandwidth-delay product, and room
        // to send ahead: the defaults (64 KiB) held a 1 GiB transfer over
        // HTTP/2 to half the speed of HTTP/1.1 on loopback.
        .adaptive_window(true)
        .max_send_buf_size(H2_SEND_BUFFER)
        .keep_alive_interval(Some(config.stall_timeout));
    let watched = Watched::new(transport, config.idle_timeout, config.stall_timeout);
    let serving = builder.serve_connection(TokioIo::new(watched), service);
    tokio::pin!(serving);
    let login_by = tokio::time::sleep(config.login_timeout);
    tokio::pin!(login_by);
    let served = loop {
        tokio::select! {
            served = serving.as_mut() => break served,
            () = shutdown.cancelled() => {
                serving.as_mut().graceful_shutdown();
                break serving.await;
            }
            () = &mut login_by, if !connection.verified.load(Ordering::Relaxed) => {
                // The condition is read when the wait starts: look again.
                if connection.verified.load(Ordering::Relaxed) {
                    continue;
                }
                tracing::debug!(%remote, "HTTP connection showed no credential in time; closing it");
                serving.as_mut().graceful_shutdown();
                break serving.await;
            }
        }
    };
    if let Err(e) = served {
        tracing::debug!(%remote, "HTTP connection ended: {e}");
    }
}

#[cfg(test)]
mod tests {
    /// Every API route is in the OpenAPI file people read.
    #[test]
    fn every_route_is_documented() {
        let spec = include_str!("../../../../api/openapi.yaml");
        for route in [
            "/healthz:",
            "/api/v1/signin:",
            "/api/v1/signout:",
            "/api/v1/me:",
            "/api/v1/files:",
            "/api/v1/files/{name}:",
            "/api/v1/search:",
            "/api/v1/peers/{handle}/{name}:",
            "/api/v1/events:",
            "/api/v1/uploads:",
            "/api/v1/uploads/{id}:",
        ] {
            assert!(
                spec.contains(&format!("  {route}\n")),
                "{route} is not in api/openapi.yaml"
            );
        }
    }
}
