//! What is happening on the hub, for HTTP clients: search (the store and
//! online peers, as `ferry search`) and the live event stream (uploads,
//! deletions, peers coming and going; server-sent events), which ends
//! when its user is revoked or the hub shuts down.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::Json;
use axum::extract::{Query, State};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use ferry_protocol::{Event, Hit, Source};
use futures_util::Stream;
use http::{HeaderMap, Method};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::Connection;
use super::error::ApiError;
use crate::access::credentials::Caller;
use crate::access::policy::Permission;
use crate::state::Hub;

/// The query of `GET /api/v1/search`.
#[derive(Debug, Deserialize)]
pub(crate) struct SearchQuery {
    q: String,
    limit: Option<u32>,
}

/// `GET /api/v1/search?q=TERM`: names containing the term, in any case.
pub(crate) async fn search(
    State(hub): State<Arc<Hub>>,
    caller: Caller,
    Query(query): Query<SearchQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.may(Permission::Read)?;
    let limit = query.limit.unwrap_or(u32::MAX);
    let (hits, truncated) = crate::peer::find(&hub, &query.q, limit).await??;
    let hits: Vec<_> = hits.iter().map(hit_json).collect();
    Ok(Json(json!({ "hits": hits, "truncated": truncated })))
}

/// A search hit; a peer's address stays out (a browser cannot reach it,
/// and the hub fetches for it).
fn hit_json(hit: &Hit) -> serde_json::Value {
    let (source, owner) = match &hit.source {
        Source::Store { owner } => ("store", owner),
        Source::Peer { handle, .. } => ("peer", handle),
    };
    json!({
        "name": hit.file.name,
        "size": hit.file.size,
        "hash": hit.file.hash.to_hex(),
        "source": source,
        "owner": owner,
    })
}

/// How often an idle event stream checks that its credential still works.
const RECHECK: Duration = Duration::from_secs(10);

/// How often an idle event stream sends a comment, so that proxies keep it.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `GET /api/v1/events`: server-sent events, one per hub event.
pub(crate) async fn events(
    State(hub): State<Arc<Hub>>,
    Extension(connection): Extension<Arc<Connection>>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    caller.may(Permission::Read)?;
    let ended = connection.ended.child_token();
    // Revoking the user ends the stream, as it ends the user's sessions.
    let entered = hub.access.live.enter(caller.handle.as_str(), ended.clone());
    let receiver = hub.subscribe();
    // So does removing the token (or ending the browser's session) it
    // came with: the credential is checked again before each event (the
    // check is cached, and forgotten when a token is removed).
    let still_valid = move || {
        let (hub, headers) = (Arc::clone(&hub), headers.clone());
        async move {
            let extensions = http::Extensions::new();
            let checked = super::auth::authenticate(&Method::GET, &headers, &extensions, &hub);
            // A catalog that fails for a moment ends no stream: only a
            // credential that no longer lets anyone in does.
            !matches!(checked.await, Ok(Err(_)))
        }
    };
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.reset();
    let stream = futures_util::stream::unfold(
        (receiver, ended, entered, recheck),
        move |(mut receiver, ended, entered, mut recheck)| {
            let still_valid = still_valid.clone();
            async move {
                let event = loop {
                    tokio::select! {
                        () = ended.cancelled() => return None,
                        _ = recheck.tick() => {
                            if !still_valid().await {
                                return None;
                            }
                        }
                        event = receiver.recv() => break event,
                    }
                };
                if !still_valid().await {
                    return None;
                }
                let sse = match event {
                    Ok(event) => sse_of(&event),
                    Err(RecvError::Lagged(missed)) => SseEvent::default()
                        .event("lagged")
                        .data(json!({ "missed": missed }).to_string()),
                    Err(RecvError::Closed) => return None,
                };
                Some((Ok(sse), (receiver, ended, entered, recheck)))
            }
        },
    );
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

fn sse_of(event: &Event) -> SseEvent {
    let (kind, data) = match event {
        Event::Uploaded { handle, name, at } => (
            "uploaded",
            json!({ "handle": handle, "name": name, "at": at }),
        ),
        Event::Deleted { handle, name, at } => (
            "deleted",
            json!({ "handle": handle, "name": name, "at": at }),
        ),
        Event::PeerJoined { handle } => ("peer_joined", json!({ "handle": handle })),
        Event::PeerLeft { handle } => ("peer_left", json!({ "handle": handle })),
    };
    SseEvent::default().event(kind).data(data.to_string())
}
