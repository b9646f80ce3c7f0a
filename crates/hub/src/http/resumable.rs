//! Resumable uploads, as tus 1.0 (core, creation, termination) defines
//! them, for large files through proxies and flaky links: `POST` makes an
//! upload (`Upload-Length`, `Upload-Metadata: filename …`), `HEAD` says
//! how much arrived, `PATCH` adds bytes at that offset, `DELETE` drops it.
//! What arrived is fsynced after every `PATCH`, in the store's `partial/`
//! with a small record beside it, so an upload survives a hub restart and
//! is swept with other abandoned partials. The last byte publishes the
//! file through the publisher, hashed whole, as any upload.

use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use ferry_io::disk_writer::DiskWriter;
use ferry_protocol::{ConflictPolicy, ContentHash, ErrorCode, FileName, Handle};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::files::name;
use super::upload::BodyLength;
use crate::access::credentials::Caller;
use crate::access::policy::Permission;
use crate::outcome::{Outcome, Refusal};
use crate::publish::Publication;
use crate::state::Hub;

/// Most resumable uploads one user may have open.
const MAX_OPEN_UPLOADS: usize = 16;

/// The protocol version spoken.
const TUS_VERSION: &str = "1.0.0";

/// An upload under way, as recorded beside its bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Record {
    owner: String,
    name: String,
    size: u64,
    conflict: String,
    hash: Option<String>,
}

/// `OPTIONS /api/v1/uploads`: what this server speaks.
pub(crate) async fn options(State(hub): State<Arc<Hub>>) -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    tus_headers(headers);
    headers.insert("tus-version", HeaderValue::from_static(TUS_VERSION));
    headers.insert(
        "tus-extension",
        HeaderValue::from_static("creation,termination"),
    );
    headers.insert("tus-max-size", HeaderValue::from(hub.config.max_file_size));
    response
}

/// `POST /api/v1/uploads`: a new upload, checked as a PUT would be.
pub(crate) async fn create(
    State(hub): State<Arc<Hub>>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    caller.may(Permission::Write)?;
    speaks_tus(&headers)?;
    let size = number(&headers, "upload-length")?;
    let metadata = metadata(&headers)?;
    let raw = metadata_value(&metadata, &["filename", "name"])
        .ok_or_else(|| ApiError::bad_request("Upload-Metadata needs the file's name (filename)"))?;
    let name = name(&raw)?;
    let conflict = metadata_value(&metadata, &["conflict"]).unwrap_or_else(|| "refuse".into());
    let policy = super::upload::conflict_policy(Some(&conflict))?;
    let hash = metadata_value(&metadata, &["hash"]);
    if hash
        .as_deref()
        .is_some_and(|h| h.len() != 64 || ContentHash::from_hex(h).is_none())
    {
        return Err(ApiError::bad_request(
            "the hash in Upload-Metadata must be 64 hex digits (BLAKE3)",
        ));
    }
    let max = hub.config.max_file_size;
    if size > max {
        let message = format!("'{name}' is {size} bytes; this hub accepts at most {max}");
        return Err(Refusal::new(ErrorCode::TooLarge, message).into());
    }
    hub.dav.refuse_if_locked(&name, false).await?;
    let publication = publication(&caller, name.clone(), size, policy, ContentHash([0; 32]));
    if let Outcome::Refused(refusal) = hub.publisher.place(&publication).await? {
        return Err(refusal.into());
    }
    // The caller's open uploads count against its quota as if stored (what
    // arrived of them is on the disk), and there are only so many.
    let (open, pending) = open_uploads(&hub, &caller.handle).await;
    if open >= MAX_OPEN_UPLOADS {
        let message = format!(
            "you have {MAX_OPEN_UPLOADS} resumable uploads open; finish or remove some (DELETE their URL) first"
        );
        return Err(Refusal::new(ErrorCode::Busy, message).into());
    }
    let wanted = size.saturating_add(pending);
    drop(
        hub.publisher
            .accounts
            .reserve(&caller.handle, wanted, caller.quota)?,
    );
    let id = new_id();
    let record = Record {
        owner: caller.handle.to_string(),
        name: name.to_string(),
        size,
        conflict,
        hash,
    };
    write_record(&hub, &id, &record).await?;
    let (data, _) = paths(&hub, &id);
    tokio::fs::File::create_new(&data)
        .await
        .map_err(|e| crate::error::HubError::io("creating an upload", &data, e))?;
    let mut response = StatusCode::CREATED.into_response();
    let headers = response.headers_mut();
    tus_headers(headers);
    let location = format!("/api/v1/uploads/{id}");
    headers.insert(
        header::LOCATION,
        HeaderValue::from_str(&location).expect("hex"),
    );
    headers.insert("upload-offset", HeaderValue::from(0));
    Ok(response)
}

/// `HEAD /api/v1/uploads/{id}`: how much arrived.
pub(crate) async fn status(
    State(hub): State<Arc<Hub>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let (record, offset) = find(&hub, &caller, &id).await?;
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    tus_headers(headers);
    headers.insert("upload-offset", HeaderValue::from(offset));
    headers.insert("upload-length", HeaderValue::from(record.size));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `PATCH /api/v1/uploads/{id}`: bytes at the offset the upload is at; the
/// last of them publish the file.
pub(crate) async fn append(
    State(hub): State<Arc<Hub>>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    caller.may(Permission::Write)?;
    speaks_tus(&headers)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    if content_type != Some("application/offset+octet-stream") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "bad_request",
            "a PATCH carries Content-Type: application/offset+octet-stream",
        ));
    }
    let key = ContentHash::from(blake3::hash(id.as_bytes()));
    let Some(_claim) = hub.publisher.claim_upload(key) else {
        return Err(Refusal::new(
            ErrorCode::Busy,
            "another request is adding to this upload; retry later",
        )
        .into());
    };
    // Read under the claim: no other request moves the offset meanwhile.
    let (record, offset) = find(&hub, &caller, &id).await?;
    let claimed = number(&headers, "upload-offset")?;
    if claimed != offset {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "offset_mismatch",
            format!(
                "the upload is at offset {offset}, not {claimed}; ask with HEAD and go on from there"
            ),
        ));
    }
    let len = number(&headers, "content-length")?;
    if len > record.size - offset {
        return Err(ApiError::bad_request(format!(
            "this part would pass the upload's length of {} bytes",
            record.size
        )));
    }
    // The whole file, while it may complete: two uploads finishing at once
    // cannot both fit a quota that has room for one.
    let accounts = &hub.publisher.accounts;
    let _reservation = accounts.reserve(&caller.handle, record.size, caller.quota)?;
    let (data, sidecar) = paths(&hub, &id);
    let arrived = receive_part(&hub, &data, offset, len, body).await;
    // Keeps the sweep off a live upload's record.
    touch(&sidecar).await;
    let offset = arrived?;
    if offset == record.size {
        return finish(&hub, &caller, &id, &record).await;
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    tus_headers(response.headers_mut());
    response
        .headers_mut()
        .insert("upload-offset", HeaderValue::from(offset));
    Ok(response)
}

/// `DELETE /api/v1/uploads/{id}`: drops the upload and what arrived.
pub(crate) async fn terminate(
    State(hub): State<Arc<Hub>>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let key = ContentHash::from(blake3::hash(id.as_bytes()));
    let Some(_claim) = hub.publisher.claim_upload(key) else {
        return Err(Refusal::new(
            ErrorCode::Busy,
            "another request is adding to this upload; retry later",
        )
        .into());
    };
    find(&hub, &caller, &id).await?;
    remove(&hub, &id).await;
    let mut response = StatusCode::NO_CONTENT.into_response();
    tus_headers(response.headers_mut());
    Ok(response)
}

/// The room for, and the bytes of, one part; the offset after it. What
/// arrived before a cut is kept (fsynced) for the next part.
async fn receive_part(
    hub: &Hub,
    data: &std::path::Path,
    offset: u64,
    len: u64,
    body: Body,
) -> Result<u64, ApiError> {
    let (path, reserve) = (data.to_owned(), hub.config.min_free_space);
    let room = tokio::task::spawn_blocking(move || {
        crate::space::make_room(&path, offset, offset + len, reserve)
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|r| r)
    .map_err(|e| crate::error::HubError::io("making room for an upload", data, e))?;
    if let Err(no_room) = room {
        return Err(Refusal::new(ErrorCode::StorageFull, no_room.message("this upload")).into());
    }
    let path = data.to_owned();
    let file = tokio::task::spawn_blocking(move || {
        use std::io::Seek;
        let mut file = std::fs::OpenOptions::new().write(true).open(&path)?;
        file.seek(std::io::SeekFrom::Start(offset))?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|r| r)
    .map_err(|e| crate::error::HubError::io("opening an upload", data, e))?;
    let mut disk = DiskWriter::start(file, len, blake3::Hasher::new(), true).await;
    let received = super::upload::copy_body(
        body,
        &mut disk,
        data,
        &mut BodyLength::Exactly(len),
        hub.config.stall_timeout,
    )
    .await;
    // Whatever arrived is made durable, so that the offset told is true.
    let written = disk.finish().await;
    let released = {
        let path = data.to_owned();
        tokio::task::spawn_blocking(move || crate::space::release_unused(&path)).await
    };
    if let Ok(Err(e)) = released {
        tracing::warn!(path = %data.display(), "could not trim a resumable upload: {e}");
    }
    written.map_err(|e| crate::error::HubError::io("writing an upload", data, e))?;
    received?;
    let now = tokio::fs::metadata(data)
        .await
        .map_err(|e| crate::error::HubError::io("reading an upload", data, e))?;
    Ok(now.len())
}

/// The whole upload arrived: hashed, checked, published; the record goes.
async fn finish(
    hub: &Arc<Hub>,
    caller: &Caller,
    id: &str,
    record: &Record,
) -> Result<Response, ApiError> {
    let (data, _) = paths(hub, id);
    let path = data.clone();
    let hash: ContentHash = tokio::task::spawn_blocking(move || {
        let mut hasher = blake3::Hasher::new();
        hasher.update_reader(std::fs::File::open(&path)?)?;
        Ok::<_, std::io::Error>(hasher.finalize().into())
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|r| r)
    .map_err(|e| crate::error::HubError::io("hashing an upload", &data, e))?;
    if let Some(announced) = record.hash.as_deref().and_then(ContentHash::from_hex)
        && announced != hash
    {
        remove(hub, id).await;
        let message = format!(
            "'{}' arrived with hash {}, not the announced {}; nothing was stored",
            record.name,
            hash.short(),
            announced.short()
        );
        return Err(Refusal::new(ErrorCode::HashMismatch, message).into());
    }
    if let Err(refused) = super::auth::still_may(hub, caller, Permission::Write).await {
        remove(hub, id).await;
        return Err(refused);
    }
    let policy = super::upload::conflict_policy(Some(&record.conflict))?;
    let name = name(&record.name)?;
    let publication = publication(caller, name, record.size, policy, hash);
    let published = hub
        .publisher
        .publish(&publication, Some(&data), false)
        .await?;
    remove(hub, id).await;
    let entry = match published {
        Outcome::Done(Some((entry, _))) => entry,
        Outcome::Done(None) => unreachable!("publishing with bytes always stores them"),
        Outcome::Refused(refusal) => return Err(refusal.into()),
    };
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    tus_headers(headers);
    headers.insert("upload-offset", HeaderValue::from(record.size));
    let stored = format!(
        "/api/v1/files/{}",
        percent_encoding::utf8_percent_encode(&entry.name, PATH)
    );
    if let Ok(value) = HeaderValue::from_str(&stored) {
        headers.insert(header::CONTENT_LOCATION, value);
    }
    headers.insert(
        "ferry-hash",
        HeaderValue::from_str(&entry.hash.to_hex()).expect("hex"),
    );
    Ok(response)
}

/// What a URL path escapes of a name (its `/` stay).
const PATH: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn publication(
    caller: &Caller,
    name: FileName,
    size: u64,
    policy: ConflictPolicy,
    hash: ContentHash,
) -> Publication {
    Publication {
        name,
        size,
        hash,
        owner: caller.handle.clone(),
        policy,
        admin: caller.admin(),
        relayed: false,
    }
}

/// The caller's upload `id` and how much of it arrived; 404 for anyone
/// else's (whether it exists is theirs to know).
async fn find(hub: &Hub, caller: &Caller, id: &str) -> Result<(Record, u64), ApiError> {
    let missing = || {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such upload (it finished, was removed, or expired)",
        )
    };
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(missing());
    }
    let (data, sidecar) = paths(hub, id);
    let text = tokio::fs::read(&sidecar).await.map_err(|_| missing())?;
    let record: Record = serde_json::from_slice(&text).map_err(|_| missing())?;
    if Handle::parse(&record.owner).ok().as_ref() != Some(&caller.handle) {
        return Err(missing());
    }
    let offset = tokio::fs::metadata(&data)
        .await
        .map_err(|_| missing())?
        .len();
    Ok((record, offset))
}

/// How many uploads `owner` has open, and their bytes in all.
async fn open_uploads(hub: &Hub, owner: &Handle) -> (usize, u64) {
    let dir = hub.store.partial_dir().to_owned();
    let owner = owner.to_string();
    let counted = tokio::task::spawn_blocking(move || {
        let mut found = (0, 0u64);
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if !(name.starts_with("http-") && name.ends_with(".json")) {
                continue;
            }
            let record = std::fs::read(entry.path())
                .ok()
                .and_then(|text| serde_json::from_slice::<Record>(&text).ok());
            if let Some(record) = record.filter(|r| r.owner == owner) {
                found = (found.0 + 1, found.1.saturating_add(record.size));
            }
        }
        found
    });
    counted.await.unwrap_or((0, 0))
}

fn paths(hub: &Hub, id: &str) -> (PathBuf, PathBuf) {
    let data = hub.store.resumable_path(id);
    let sidecar = data.with_extension("json");
    (data, sidecar)
}

async fn write_record(hub: &Hub, id: &str, record: &Record) -> Result<(), ApiError> {
    let (_, sidecar) = paths(hub, id);
    let text = serde_json::to_vec(record).expect("a record serializes");
    let path = sidecar.clone();
    tokio::task::spawn_blocking(move || ferry_io::disk::write_private(&path, &text))
        .await
        .map_err(std::io::Error::other)
        .and_then(|r| r)
        .map_err(|e| crate::error::HubError::io("recording an upload", &sidecar, e))?;
    Ok(())
}

async fn remove(hub: &Hub, id: &str) {
    let (data, sidecar) = paths(hub, id);
    let _ = tokio::fs::remove_file(data).await;
    let _ = tokio::fs::remove_file(sidecar).await;
}

async fn touch(path: &std::path::Path) {
    let path = path.to_owned();
    let _ = tokio::task::spawn_blocking(move || {
        std::fs::File::options()
            .write(true)
            .open(&path)?
            .set_modified(std::time::SystemTime::now())
    })
    .await;
}

fn new_id() -> String {
    let mut bytes = [0; 16];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn tus_headers(headers: &mut HeaderMap) {
    headers.insert("tus-resumable", HeaderValue::from_static(TUS_VERSION));
}

fn speaks_tus(headers: &HeaderMap) -> Result<(), ApiError> {
    match headers.get("tus-resumable").and_then(|v| v.to_str().ok()) {
        Some(TUS_VERSION) => Ok(()),
        _ => Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "unsupported_version",
            format!("resumable uploads speak tus {TUS_VERSION}: send Tus-Resumable: {TUS_VERSION}"),
        )
        .with_header(
            http::HeaderName::from_static("tus-version"),
            HeaderValue::from_static(TUS_VERSION),
        )),
    }
}

fn number(headers: &HeaderMap, name: &str) -> Result<u64, ApiError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| ApiError::bad_request(format!("{name} must be a number of bytes")))
}

/// `Upload-Metadata`: comma-separated `key base64(value)` pairs.
fn metadata(headers: &HeaderMap) -> Result<Vec<(String, String)>, ApiError> {
    let Some(value) = headers.get("upload-metadata") else {
        return Ok(Vec::new());
    };
    let bad =
        || ApiError::bad_request("Upload-Metadata is 'key base64value' pairs, comma-separated");
    let text = value.to_str().map_err(|_| bad())?;
    text.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| {
            let mut parts = pair.trim().splitn(2, ' ');
            let key = parts.next().ok_or_else(bad)?.to_owned();
            let encoded = parts.next().unwrap_or("");
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|_| bad())?;
            Ok((key, String::from_utf8(decoded).map_err(|_| bad())?))
        })
        .collect()
}

fn metadata_value(pairs: &[(String, String)], keys: &[&str]) -> Option<String> {
    keys.iter()
        .find_map(|key| pairs.iter().find(|(k, _)| k == key))
        .map(|(_, v)| v.clone())
}
