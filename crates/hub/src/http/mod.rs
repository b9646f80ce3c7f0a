//! HTTP on the hub's port, for curl, scripts, browsers and WebDAV clients.
//! Every route acts for a [`crate::access::credentials::Caller`] verified from an API token and asks
//! the same [`crate::access::policy`] as the protocol; uploads and deletions
//! go through the same [`crate::publish::Publisher`].
//!
//! | route | what |
//! | --- | --- |
//! | `GET /healthz` | `ok` while the hub serves |
//! | `GET /api/v1/me` | the caller: handle, role, quota, use |
//! | `GET /api/v1/files` | a page of the listing (`prefix`, `cursor`, `limit`) |
//! | `GET`, `HEAD /api/v1/files/{name}` | the bytes: `ETag`, ranges, conditions |
//! | `PUT /api/v1/files/{name}` | an upload (`?conflict=`, `Ferry-Hash`) |
//! | `DELETE /api/v1/files/{name}` | a deletion |
//!
//! `api/openapi.yaml` in the repository documents each.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::routing::get;
use ferry_io::{Slot, Transport};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio_util::sync::CancellationToken;

use crate::state::Hub;

mod auth;
mod blob;
mod conditions;
pub mod error;
mod files;
mod ranges;
mod upload;

/// The routes, for `hub`.
pub(crate) fn router(hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/v1/me", get(files::me))
        .route("/api/v1/files", get(files::list))
        .route(
            "/api/v1/files/{*name}",
            get(files::get).put(upload::put).delete(files::delete),
        )
        .fallback(|| async {
            error::ApiError::new(
                http::StatusCode::NOT_FOUND,
                "no_route",
                "no such page; the API is under /api/v1/",
            )
        })
        .with_state(hub)
}

/// Serves HTTP/1.1 or HTTP/2 on one connection until the client leaves or
/// the hub shuts down (then a request under way is let finish, within the
/// hub's grace period, and the connection closed).
pub(crate) async fn serve(
    hub: Arc<Hub>,
    transport: Box<dyn Transport>,
    remote: SocketAddr,
    slot: Slot,
    shutdown: CancellationToken,
) {
    let _slot = slot;
    let service = TowerToHyperService::new(router(Arc::clone(&hub)));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(hub.config.handshake_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(hub.config.stall_timeout));
    let connection = builder.serve_connection(TokioIo::new(transport), service);
    tokio::pin!(connection);
    let served = tokio::select! {
        served = connection.as_mut() => served,
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(e) = served {
        tracing::debug!(%remote, "HTTP connection ended: {e}");
    }
}
