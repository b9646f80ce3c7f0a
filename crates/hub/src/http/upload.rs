//! `PUT /api/v1/files/{name}`: a body streamed to disk (never held whole),
//! hashed on the way, fsynced, then published as any upload is. Refused
//! before the body when it can be: a taken name, a quota, the free-space
//! reserve, a size over the hub's limit. An announced hash (`Ferry-Hash`)
//! that the bytes do not match stores nothing.

use std::path::Path as FsPath;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use ferry_io::disk_writer::DiskWriter;
use ferry_protocol::{ConflictPolicy, ContentHash, ErrorCode};
use http::{HeaderMap, Method, StatusCode, Version, header};
use serde::Deserialize;

use super::conditions::{self, Verdict};
use super::error::ApiError;
use super::files::{describe, entry_json, name, precondition_failed};
use super::unannounced::Unannounced;
use crate::access::credentials::Caller;
use crate::access::policy::Permission;
use crate::outcome::{Outcome, Refusal};
use crate::publish::{Placement, Precondition, Publication};
use crate::space;
use crate::state::Hub;
use crate::store::Staged;

/// The query of a `PUT`.
#[derive(Debug, Deserialize)]
pub(crate) struct PutQuery {
    /// `refuse` (the default), `rename` or `overwrite`, as on the CLI.
    conflict: Option<String>,
}

/// The header that announces the BLAKE3 hash of the body.
pub(crate) const HASH_HEADER: &str = "ferry-hash";

/// `PUT /api/v1/files/{name}`.
pub(crate) async fn put(
    State(hub): State<Arc<Hub>>,
    caller: Caller,
    version: Version,
    Path(raw): Path<String>,
    Query(query): Query<PutQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    caller.may(Permission::Write)?;
    let name = name(&raw)?;
    // None: a body of unknown length (chunked, as `curl -T -` sends).
    let size = content_length(&headers, version)?;
    let announced = announced_hash(&headers)?;
    let mut policy = conflict_policy(query.conflict.as_deref())?;
    hub.dav.refuse_if_locked(&name, false).await?;
    let current = hub.catalog.get(&name).await?;
    if conditions::evaluate(&headers, &Method::PUT, current.as_ref()) != Verdict::Proceed {
        return Err(precondition(current.as_ref(), &name));
    }
    // Checked again at commit, so that a write in between is not lost.
    let precondition = match &current {
        _ if headers.contains_key(header::IF_NONE_MATCH) => Precondition::Absent,
        Some(entry) if headers.contains_key(header::IF_MATCH) => {
            // If-Match names the version to replace: replacing it is the point.
            policy = ConflictPolicy::Overwrite;
            Precondition::Holds(entry.hash)
        }
        _ => Precondition::Any,
    };
    let max = hub.config.max_file_size;
    if let Some(size) = size
        && size > max
    {
        let message = format!("'{name}' is {size} bytes; this hub accepts at most {max}");
        return Err(Refusal::new(ErrorCode::TooLarge, message).into());
    }
    let mut publication = Publication {
        name,
        size: size.unwrap_or(0),
        // Unknown until the bytes are in: a hash no file has, so that
        // placement decides as for different bytes.
        hash: announced.unwrap_or(ContentHash([0; 32])),
        owner: caller.handle.clone(),
        policy,
        admin: caller.admin(),
        relayed: false,
    };
    match hub.publisher.place(&publication).await? {
        Outcome::Refused(refusal) => return Err(refused_with_hint(refusal, announced.is_none())),
        Outcome::Done(Placement::AlreadyThere(entry)) => return Ok(stored(&hub, entry, false)),
        Outcome::Done(Placement::Store(_)) => {}
    }
    let accounts = &hub.publisher.accounts;
    let (mut length, mut held) = match size {
        Some(size) => {
            let reserved = accounts.reserve(&caller.handle, size, caller.quota)?;
            let dir = &hub.config.data_dir;
            let room = space::check_room(dir, size, hub.config.min_free_space)
                .map_err(|e| crate::error::HubError::io("checking free space", dir, e))?;
            if let Err(no_room) = room {
                let message = no_room.message(publication.name.as_str());
                return Err(Refusal::new(ErrorCode::StorageFull, message).into());
            }
            (BodyLength::Exactly(size), vec![reserved])
        }
        None => {
            let limits = Unannounced::new(&hub, &caller, &publication.name)?;
            (BodyLength::AtMost(limits), Vec::new())
        }
    };
    // Removed however this ends, a dropped connection included, unless
    // the publisher took the bytes.
    let staged = Staged::new(hub.store.temp_path());
    let received = receive(body, staged.path(), &mut length, hub.config.stall_timeout).await;
    if let BodyLength::AtMost(limits) = length {
        held.extend(limits.into_reservations());
    }
    let (hash, size) = received?;
    publication.size = size;
    // Held until the file is published, and counted in its owner's use.
    let _held = held;
    if announced.is_some_and(|a| a != hash) {
        let message = format!(
            "'{}' arrived with hash {}, not the announced {}; nothing was stored",
            publication.name,
            hash.short(),
            publication.hash.short()
        );
        return Err(Refusal::new(ErrorCode::HashMismatch, message).into());
    }
    publication.hash = hash;
    // A long upload may outlast its user's rights, or a lock be taken.
    super::auth::still_may(&hub, &caller, Permission::Write).await?;
    hub.dav.refuse_if_locked(&publication.name, false).await?;
    let published = hub
        .publisher
        .publish_when(&publication, Some(staged.path()), false, precondition)
        .await?;
    match published {
        Outcome::Done(Some((entry, already))) => {
            staged.taken();
            Ok(stored(&hub, entry, !already))
        }
        Outcome::Done(None) => unreachable!("publishing with bytes always stores them"),
        // Another upload may have taken the name meanwhile.
        Outcome::Refused(refusal) => Err(refused_with_hint(refusal, false)),
    }
}

/// How long a body must be.
#[derive(Debug)]
pub(crate) enum BodyLength {
    /// Its `Content-Length`.
    Exactly(u64),
    /// Unannounced: as long as its limits let it grow.
    AtMost(Unannounced),
}

/// The body into a new file at `path`, fsynced; its hash and length.
async fn receive(
    body: Body,
    path: &FsPath,
    length: &mut BodyLength,
    stall: std::time::Duration,
) -> Result<(ContentHash, u64), ApiError> {
    let owned = path.to_owned();
    let file = tokio::task::spawn_blocking(move || std::fs::File::create_new(&owned))
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r)
        .map_err(|e| crate::error::HubError::io("creating an upload", path, e))?;
    let expected = match length {
        BodyLength::Exactly(len) => *len,
        BodyLength::AtMost(limits) => limits.cap(),
    };
    let mut disk = DiskWriter::start(file, expected, blake3::Hasher::new(), true).await;
    let received = copy_body(body, &mut disk, path, length, stall).await?;
    let hasher = disk.finish().await.map_err(disk_error(path))?;
    Ok((hasher.finalize().into(), received))
}

/// Hands `body` to `disk`, as long as `length` allows: a longer body is
/// refused, a shorter or stalled one is cut short. Returns its length.
pub(crate) async fn copy_body(
    body: Body,
    disk: &mut DiskWriter,
    path: &FsPath,
    length: &mut BodyLength,
    stall: std::time::Duration,
) -> Result<u64, ApiError> {
    let of = match length {
        BodyLength::Exactly(len) => format!(" of {len}"),
        BodyLength::AtMost(_) => String::new(),
    };
    let mut body = body.into_data_stream();
    let mut received = 0u64;
    loop {
        let next = tokio::time::timeout(stall, futures_util::StreamExt::next(&mut body)).await;
        let chunk = match next {
            Err(_) => {
                let message = format!(
                    "the upload stalled after {received}{of} bytes: nothing came for {stall:?}; nothing was stored"
                );
                return Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "timeout",
                    message,
                ));
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(cut(received, &of, &e.to_string())),
            Ok(Some(Ok(chunk))) => chunk,
        };
        received += chunk.len() as u64;
        match length {
            BodyLength::Exactly(len) if received > *len => {
                return Err(ApiError::bad_request(format!(
                    "the body is longer than its Content-Length of {len} bytes"
                )));
            }
            BodyLength::Exactly(_) => {}
            BodyLength::AtMost(limits) => limits.admit(received)?,
        }
        disk.write(&chunk).await.map_err(disk_error(path))?;
    }
    if let BodyLength::Exactly(len) = *length
        && received < len
    {
        return Err(cut(received, &of, "the body ended"));
    }
    Ok(received)
}

fn disk_error(path: &FsPath) -> impl Fn(std::io::Error) -> ApiError + '_ {
    move |e| crate::error::HubError::io("writing an upload", path, e).into()
}

fn cut(received: u64, of: &str, why: &str) -> ApiError {
    ApiError::bad_request(format!(
        "the upload was cut short after {received}{of} bytes ({why}); nothing was stored"
    ))
}

/// The answer to a stored upload: 201 for new bytes under the name, 200
/// when the name already held exactly them.
fn stored(hub: &Hub, entry: ferry_protocol::FileEntry, created: bool) -> Response {
    let entry = hub.publisher.accounts.spell(entry);
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let mut response = (status, Json(entry_json(&entry))).into_response();
    let headers = response.headers_mut();
    describe(headers, &entry);
    // The body is the JSON entry, not the file.
    headers.remove(header::CONTENT_DISPOSITION);
    headers.insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// The announced length of the body; `None` if it comes chunked (or in
/// HTTP/2 frames) without one. An HTTP/1 request with neither has no
/// body at all, which is no upload.
fn content_length(headers: &HeaderMap, version: Version) -> Result<Option<u64>, ApiError> {
    let Some(value) = headers.get(header::CONTENT_LENGTH) else {
        let chunked = headers.get_all(header::TRANSFER_ENCODING).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.to_ascii_lowercase().contains("chunked"))
        });
        if chunked || version >= Version::HTTP_2 {
            return Ok(None);
        }
        return Err(ApiError::new(
            StatusCode::LENGTH_REQUIRED,
            "length_required",
            "an upload needs a body: curl -T FILE (or -T - for standard input)",
        ));
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Some)
        .ok_or_else(|| ApiError::bad_request("the Content-Length is not a number"))
}

fn announced_hash(headers: &HeaderMap) -> Result<Option<ContentHash>, ApiError> {
    let Some(value) = headers.get(HASH_HEADER) else {
        return Ok(None);
    };
    let hash = value
        .to_str()
        .ok()
        .filter(|v| v.len() == 64)
        .and_then(ContentHash::from_hex);
    hash.map(Some).ok_or_else(|| {
        ApiError::bad_request("Ferry-Hash must be the BLAKE3 hash of the body, in 64 hex digits")
    })
}

pub(crate) fn conflict_policy(text: Option<&str>) -> Result<ConflictPolicy, ApiError> {
    match text {
        None | Some("refuse") => Ok(ConflictPolicy::Refuse),
        Some("rename") => Ok(ConflictPolicy::Rename),
        Some("overwrite") => Ok(ConflictPolicy::Overwrite),
        Some(other) => Err(ApiError::bad_request(format!(
            "conflict={other}: use refuse, rename or overwrite"
        ))),
    }
}

fn precondition(
    current: Option<&ferry_protocol::FileEntry>,
    name: &ferry_protocol::FileName,
) -> ApiError {
    match current {
        Some(entry) => precondition_failed(entry),
        None => ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "precondition_failed",
            format!("there is no '{name}' to match"),
        ),
    }
}

/// A refused placement, with the HTTP way out of a taken name.
fn refused_with_hint(refusal: Refusal, hash_unknown: bool) -> ApiError {
    if refusal.code != ErrorCode::Conflict {
        return refusal.into();
    }
    let mut message = refusal
        .message
        .replace("use --overwrite", "add ?conflict=overwrite")
        .replace("use --rename", "add ?conflict=rename")
        .replace("--rename", "?conflict=rename");
    if hash_unknown {
        message.push_str(
            " (or send the body's BLAKE3 hash as Ferry-Hash: identical bytes are then a no-op)",
        );
    }
    Refusal::new(ErrorCode::Conflict, message).into()
}
