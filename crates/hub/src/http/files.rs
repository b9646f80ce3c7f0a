//! `/api/v1/files`: list, download, upload and delete stored files, through
//! the same checks as the protocol (the policy, the publisher's placement
//! rules, quotas, the free-space reserve).

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use ferry_protocol::{FileEntry, FileName, MAX_LIST_PAGE, MAX_NAME_LEN};
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use serde::Deserialize;
use serde_json::json;

use super::blob::{self, Piece, READ_WHOLE_MAX};
use super::conditions::{self, Verdict};
use super::error::ApiError;
use super::ranges::{self, Span, Wanted};
use crate::access::credentials::Caller;
use crate::access::policy::Permission;
use crate::outcome::{Outcome, not_found};
use crate::publish::Precondition;
use crate::state::Hub;

/// The query of `GET /api/v1/files`.
#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    prefix: Option<String>,
    cursor: Option<String>,
    limit: Option<u32>,
}

/// `GET /api/v1/files`: one page in name order, with the cursor of the next.
pub(crate) async fn list(
    State(hub): State<Arc<Hub>>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.may(Permission::Read)?;
    // `docs/` means the folder `docs`, as people type it.
    let prefix = query
        .prefix
        .as_deref()
        .map(|p| name(p.trim_end_matches('/')))
        .transpose()?;
    if query
        .cursor
        .as_ref()
        .is_some_and(|c| c.len() > MAX_NAME_LEN)
    {
        return Err(ApiError::bad_request("the cursor is too long"));
    }
    let limit = query.limit.unwrap_or(MAX_LIST_PAGE).clamp(1, MAX_LIST_PAGE);
    let (entries, more) = hub
        .catalog
        .list(prefix.as_ref(), query.cursor.as_deref(), limit)
        .await?;
    let accounts = &hub.publisher.accounts;
    let next = more
        .then(|| entries.last().map(|e| e.name.clone()))
        .flatten();
    let files: Vec<_> = entries
        .into_iter()
        .map(|e| entry_json(&accounts.spell(e)))
        .collect();
    Ok(Json(json!({ "files": files, "next": next })))
}

/// `GET` and `HEAD /api/v1/files/{name}`: the bytes, with validators and ranges.
pub(crate) async fn get(
    State(hub): State<Arc<Hub>>,
    caller: Caller,
    method: Method,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller.may(Permission::Read)?;
    let name = name(&raw)?;
    let Some(entry) = hub.catalog.get(&name).await? else {
        return Err(not_found(&name).into());
    };
    let mut response = Response::builder();
    let validators = response.headers_mut().expect("a fresh builder");
    describe(validators, &entry);
    match conditions::evaluate(&headers, &method, Some(&entry)) {
        Verdict::Proceed => {}
        Verdict::NotModified => {
            return Ok(finish(
                response.status(StatusCode::NOT_MODIFIED),
                0,
                Body::empty(),
            ));
        }
        Verdict::Failed => return Err(precondition_failed(&entry)),
    }
    let wanted = if conditions::range_applies(&headers, &entry) {
        let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
        ranges::wanted(range, entry.size)
    } else {
        Wanted::Whole
    };
    let head = method == Method::HEAD;
    let path = hub.store.blob_path(&entry.hash);
    let (status, length, body) = match wanted {
        Wanted::Unsatisfiable => {
            let range = HeaderValue::from_str(&format!("bytes */{}", entry.size)).expect("ascii");
            return Err(ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!(
                    "'{name}' is {} bytes; no range asked for lies inside it",
                    entry.size
                ),
            )
            .with_header(header::CONTENT_RANGE, range));
        }
        Wanted::Whole if head => (StatusCode::OK, entry.size, Body::empty()),
        Wanted::Whole if entry.size <= READ_WHOLE_MAX => {
            let bytes = blob::read_whole(&hub.hot, path, entry.size, entry.hash)
                .await
                .map_err(damaged)?;
            (StatusCode::OK, entry.size, Body::from(bytes))
        }
        Wanted::Whole => {
            let whole = vec![Piece::File {
                start: 0,
                len: entry.size,
            }];
            let body = blob::body(path, whole, Some(entry.hash))
                .await
                .map_err(damaged)?;
            (StatusCode::OK, entry.size, body)
        }
        Wanted::Spans(spans) => {
            let (pieces, length) = parts(&mut response, &spans, entry.size);
            let body = if head {
                Body::empty()
            } else {
                blob::body(path, pieces, None).await.map_err(damaged)?
            };
            (StatusCode::PARTIAL_CONTENT, length, body)
        }
    };
    Ok(finish(response.status(status), length, body))
}

/// The pieces of a 206 for `spans`, its `Content-Range` or multipart
/// `Content-Type` set on `response`, and its length.
fn parts(response: &mut http::response::Builder, spans: &[Span], size: u64) -> (Vec<Piece>, u64) {
    let headers = response.headers_mut().expect("a fresh builder");
    let range = |span: &Span| format!("bytes {}-{}/{size}", span.start, span.start + span.len - 1);
    if let [span] = spans {
        let value = HeaderValue::from_str(&range(span)).expect("ascii");
        headers.insert(header::CONTENT_RANGE, value);
        return (
            vec![Piece::File {
                start: span.start,
                len: span.len,
            }],
            span.len,
        );
    }
    let boundary = format!("ferry-{:016x}", rand_u64());
    let value = format!("multipart/byteranges; boundary={boundary}");
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&value).expect("ascii"),
    );
    let mut pieces = Vec::with_capacity(spans.len() * 2 + 1);
    let mut length = 0;
    for span in spans {
        let head = format!(
            "\r\n--{boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: {}\r\n\r\n",
            range(span)
        );
        length += head.len() as u64 + span.len;
        pieces.push(Piece::Text(head.into()));
        pieces.push(Piece::File {
            start: span.start,
            len: span.len,
        });
    }
    let tail = format!("\r\n--{boundary}--\r\n");
    length += tail.len() as u64;
    pieces.push(Piece::Text(tail.into()));
    (pieces, length)
}

/// The headers that describe a stored file: validators, its hash, and
/// that it is a download (a stored `.html` must never run as the hub's page).
pub(crate) fn describe(headers: &mut HeaderMap, entry: &FileEntry) {
    let etag = HeaderValue::from_str(&conditions::etag(entry)).expect("hex is ascii");
    headers.insert(header::ETAG, etag);
    headers.insert(header::LAST_MODIFIED, conditions::last_modified(entry));
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let hash = HeaderValue::from_str(&entry.hash.to_hex()).expect("hex is ascii");
    headers.insert("ferry-hash", hash);
    as_download(headers);
    let file = entry.name.rsplit('/').next().unwrap_or(&entry.name);
    let encoded = percent_encoding::utf8_percent_encode(file, FILENAME_ESCAPED);
    // A plain filename too, for clients that read no filename* (curl -OJ).
    let plain: String = file
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = format!("attachment; filename=\"{plain}\"; filename*=UTF-8''{encoded}");
    if let Ok(value) = HeaderValue::from_str(&disposition) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
}

/// The headers that make stored bytes a sandboxed download, never a page
/// that runs as the hub's own (the API and WebDAV both send them).
pub(crate) fn as_download(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("sandbox; default-src 'none'"),
    );
}

/// What RFC 8187 escapes in a `filename*`: all but its attr-chars.
const FILENAME_ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

fn finish(response: http::response::Builder, length: u64, body: Body) -> Response {
    response
        .header(header::CONTENT_LENGTH, length)
        .body(body)
        .expect("headers were checked as they were set")
}

/// `DELETE /api/v1/files/{name}`: its owner's or an admin's.
pub(crate) async fn delete(
    State(hub): State<Arc<Hub>>,
    caller: Caller,
    method: Method,
    Path(raw): Path<String>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.may(Permission::Write)?;
    let name = name(&raw)?;
    hub.dav.refuse_if_locked(&name, true).await?;
    let current = hub.catalog.get(&name).await?;
    let precondition = match conditions::evaluate(&headers, &method, current.as_ref()) {
        Verdict::Failed => {
            return Err(match current {
                Some(entry) => precondition_failed(&entry),
                None => not_found(&name).into(),
            });
        }
        // Checked again under the commit lock: a write in between wins.
        _ => match &current {
            Some(entry) if headers.contains_key(header::IF_MATCH) => {
                Precondition::Holds(entry.hash)
            }
            _ => Precondition::Any,
        },
    };
    let admin = caller.admin();
    match hub
        .publisher
        .remove_when(&name, &caller.handle, admin, precondition)
        .await?
    {
        Outcome::Done(entry) => Ok(Json(entry_json(&hub.publisher.accounts.spell(entry)))),
        Outcome::Refused(refusal) => Err(refusal.into()),
    }
}

/// A name from a URL, as the protocol takes it.
pub(crate) fn name(raw: &str) -> Result<FileName, ApiError> {
    FileName::parse(raw)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_name", e.to_string()))
}

/// A file as `ferry ls --json` and the API show it (one shape for both).
pub fn entry_json(entry: &FileEntry) -> serde_json::Value {
    json!({
        "name": entry.name,
        "size": entry.size,
        "hash": entry.hash.to_hex(),
        "owner": entry.owner,
        "modified": entry.modified,
    })
}

pub(crate) fn precondition_failed(entry: &FileEntry) -> ApiError {
    ApiError::new(
        StatusCode::PRECONDITION_FAILED,
        "precondition_failed",
        format!(
            "'{}' is not the version asked for: it is now {} (ETag {})",
            entry.name,
            entry.hash.short(),
            conditions::etag(entry)
        ),
    )
}

fn damaged(e: std::io::Error) -> ApiError {
    let message = if e.kind() == std::io::ErrorKind::InvalidData {
        "the stored bytes of this file are damaged; the hub's operator should restore it (ferry serve --repair lists what is lost)"
    } else {
        "the stored file could not be read; the hub's operator should look at its log"
    };
    tracing::warn!("HTTP download failed: {e}");
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "damaged", message)
}

fn rand_u64() -> u64 {
    let mut bytes = [0; 8];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    u64::from_le_bytes(bytes)
}

/// `GET /api/v1/me`: who the token is, with its role and use.
pub(crate) async fn me(State(hub): State<Arc<Hub>>, caller: Caller) -> impl IntoResponse {
    let accounts = &hub.publisher.accounts;
    Json(json!({
        "handle": accounts.spelled(caller.handle.as_str()),
        "role": caller.role.as_str(),
        "quota": caller.quota,
        "used": accounts.used(caller.handle.as_str()),
    }))
}
