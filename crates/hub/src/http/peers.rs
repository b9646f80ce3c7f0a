//! `GET /api/v1/peers/{handle}/{name}`: a file only an online peer has,
//! for a client that cannot reach peers (a browser, curl). The hub asks
//! the peer to push it through (as a relay), checks the bytes against
//! the hash the peer offered as they pass, and holds the last chunk back
//! until they match: a peer that lies ends the response cut short, never
//! as a good file. Nothing is stored.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::Response;
use bytes::Bytes;
use ferry_protocol::{ContentHash, ErrorCode, FileEntry, Fingerprint};
use http::{HeaderValue, StatusCode, header};

use super::error::ApiError;
use super::files::describe;
use crate::access::credentials::Caller;
use crate::access::policy::Permission;
use crate::grants::RelayChunks;
use crate::state::Hub;

/// `GET /api/v1/peers/{handle}/{name}`.
pub(crate) async fn get(
    State(hub): State<Arc<Hub>>,
    caller: Caller,
    Path((owner, name)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    caller.may(Permission::Read)?;
    // The peer checks this for a direct connection; the hub relays instead.
    let fingerprint = hub.fingerprint().unwrap_or(Fingerprint([0; 32]));
    let introduced =
        crate::broker::introduce(&hub, &caller.handle, &owner, &name, fingerprint).await?;
    let introduced = introduced.map_err(|refusal| {
        let timed_out = refusal.code == ErrorCode::Timeout;
        let error = ApiError::from(refusal);
        if timed_out {
            error.with_status(StatusCode::GATEWAY_TIMEOUT)
        } else {
            error
        }
    })?;
    let token = introduced.token;
    let Some(grant) = hub.grants.take_for_relay(&token, caller.handle.as_str()) else {
        return Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            "the grant expired before it was used; try again",
        ));
    };
    let Some(chunks) = crate::broker::pushed(&hub, &grant, token, 0).await else {
        let message = format!(
            "'{}' did not start sending '{}'; try again",
            introduced.owner, grant.file.name
        );
        return Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            message,
        ));
    };
    let entry = FileEntry {
        name: grant.file.name.clone(),
        size: grant.file.size,
        hash: grant.file.hash,
        owner: hub.publisher.accounts.spelled(&grant.owner),
        modified: crate::publish::unix_now(),
    };
    let mut response = Response::builder().status(StatusCode::OK);
    let headers = response.headers_mut().expect("a fresh builder");
    describe(headers, &entry);
    // Relayed from the start each time: no ranges.
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("none"));
    headers.remove(header::LAST_MODIFIED);
    let body = checked(chunks, entry.size, entry.hash, hub.config.stall_timeout);
    Ok(response
        .header(header::CONTENT_LENGTH, entry.size)
        .body(body)
        .expect("headers were checked as they were set"))
}

/// The relayed bytes as a body, checked against `hash` with the last
/// chunk held back until they match.
fn checked(chunks: RelayChunks, size: u64, hash: ContentHash, stall: std::time::Duration) -> Body {
    let state = Relayed {
        chunks,
        hasher: blake3::Hasher::new(),
        remaining: size,
        held: None,
        checked: false,
        hash,
        stall,
    };
    Body::from_stream(futures_util::stream::unfold(
        state,
        |mut state| async move {
            let next = state.next().await?;
            Some((next, state))
        },
    ))
}

struct Relayed {
    chunks: RelayChunks,
    hasher: blake3::Hasher,
    remaining: u64,
    held: Option<Bytes>,
    /// Whether the hash was compared.
    checked: bool,
    hash: ContentHash,
    stall: std::time::Duration,
}

impl Relayed {
    async fn next(&mut self) -> Option<std::io::Result<Bytes>> {
        loop {
            if self.remaining == 0 {
                // Checked once, also for an empty file (it has no last chunk).
                if self.checked {
                    return None;
                }
                self.checked = true;
                if ContentHash::from(self.hasher.finalize()) != self.hash {
                    tracing::warn!(
                        "a peer's bytes did not match the hash it offered; the HTTP download was cut off"
                    );
                    return Some(Err(std::io::Error::other(
                        "the peer's bytes do not match its offer",
                    )));
                }
                return self.held.take().map(Ok);
            }
            let chunk = match tokio::time::timeout(self.stall, self.chunks.recv()).await {
                Ok(Some(chunk)) if chunk.len() as u64 <= self.remaining => chunk,
                Ok(Some(_)) => {
                    self.finished();
                    return Some(Err(std::io::Error::other(
                        "the peer sent more than it offered",
                    )));
                }
                _ => {
                    self.finished();
                    return Some(Err(std::io::Error::other("the peer stopped sending")));
                }
            };
            self.hasher.update(&chunk);
            self.remaining -= chunk.len() as u64;
            if let Some(previous) = self.held.replace(chunk) {
                return Some(Ok(previous));
            }
        }
    }

    /// Nothing more is sent after an error.
    fn finished(&mut self) {
        self.remaining = 0;
        self.held = None;
        self.checked = true;
    }
}
