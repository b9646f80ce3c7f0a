//! What is checked before a WebDAV request reaches dav-server, and added
//! to what it answers: rules dav-server cannot know (only a file's owner
//! or an admin may lock, delete, move or annotate it; a folder only if
//! every file in it is the caller's, so that nothing is half deleted while
//! the client is told it worked), and headers that keep a stored page from
//! running as the hub's own (it is always a download).

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use dav_server::davpath::DavPath;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};

use super::PREFIX;
use super::fs::raw_name;
use crate::access::credentials::Caller;
use crate::http::error::ApiError;
use crate::state::Hub;

/// Most files a folder may hold for its ownership to be checked at once;
/// past it, dav-server goes file by file (and reports each refusal).
const MAX_CHECKED: usize = 100_000;

/// Largest PROPPATCH body taken.
pub(crate) const MAX_PROPPATCH: u64 = 64 << 10;

/// The refusal for `method` on the request's target, if any.
pub(crate) async fn refuse(
    hub: &Arc<Hub>,
    caller: &Caller,
    method: &Method,
    headers: &HeaderMap,
    uri: &http::Uri,
) -> Option<Response> {
    if let Some(value) = headers.get("if")
        && !if_header_is_closed(value.as_bytes())
    {
        return Some(ApiError::bad_request("the If header does not parse").into_response());
    }
    let changes = matches!(
        method.as_str(),
        "LOCK" | "UNLOCK" | "DELETE" | "MOVE" | "COPY" | "PROPPATCH"
    );
    if matches!(method.as_str(), "MOVE" | "COPY") && !same_host(headers, uri) {
        let message =
            "the Destination is on another server; the hub moves and copies only within itself";
        return Some(
            ApiError::new(StatusCode::BAD_GATEWAY, "bad_destination", message).into_response(),
        );
    }
    if method.as_str() == "PROPPATCH" && content_length(headers).is_none_or(|n| n > MAX_PROPPATCH) {
        let message =
            format!("a PROPPATCH is at most {MAX_PROPPATCH} bytes, with a Content-Length");
        return Some(
            ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", message).into_response(),
        );
    }
    if !changes || caller.admin() {
        return None;
    }
    // A copy reads its source (anyone may); everything else changes it.
    let mut targets = if method.as_str() == "COPY" {
        vec![]
    } else {
        vec![uri.clone()]
    };
    if matches!(method.as_str(), "MOVE" | "COPY")
        && let Some(destination) = headers.get("destination").and_then(|v| v.to_str().ok())
        && let Ok(destination) = destination.parse::<http::Uri>()
    {
        // What a move or copy would replace is changed too.
        targets.push(destination);
    }
    for target in &targets {
        if let Some(refused) = refuse_target(hub, caller, method, target).await {
            return Some(refused);
        }
    }
    None
}

async fn refuse_target(
    hub: &Hub,
    caller: &Caller,
    method: &Method,
    uri: &http::Uri,
) -> Option<Response> {
    // As dav-server reads it: percent-decoded, `.`, `..` and `//` resolved
    // (reading the raw bytes let `%72eport.txt` pass for a stranger's
    // name). What does not parse is refused: dav-server would not act on
    // it as this check understood it.
    let unreadable = || Some(ApiError::bad_request("the path does not parse").into_response());
    let Ok(mut path) = DavPath::new(uri.path()) else {
        return unreadable();
    };
    if path.set_prefix(PREFIX).is_err() {
        return unreadable();
    }
    let Ok(raw) = raw_name(&path) else {
        return unreadable();
    };
    match theirs(hub, caller, &raw).await {
        Ok(None) => None,
        Ok(Some(owner)) => {
            let message = format!(
                "not allowed: '{raw}' holds files of {owner}; only their owner or an admin may {} them",
                method.as_str().to_lowercase()
            );
            Some(ApiError::new(StatusCode::FORBIDDEN, "permission_denied", message).into_response())
        }
        Err(e) => Some(e.into_response()),
    }
}

/// Someone other than the caller whose file `raw` is or holds, if any.
async fn theirs(hub: &Hub, caller: &Caller, raw: &str) -> Result<Option<String>, ApiError> {
    if raw.is_empty() {
        return Ok(Some("everyone".to_owned()));
    }
    let Ok(name) = ferry_protocol::FileName::parse(raw) else {
        return Ok(None);
    };
    let mine = |owner: &str| owner == caller.handle.as_str();
    let accounts = &hub.publisher.accounts;
    if let Some(entry) = hub.catalog.get(&name).await? {
        return Ok((!mine(&entry.owner)).then(|| accounts.spelled(&entry.owner)));
    }
    let inside = hub.catalog.files_inside(raw, MAX_CHECKED).await?;
    Ok(inside.and_then(|files| {
        files
            .iter()
            .find(|f| !mine(&f.owner))
            .map(|f| accounts.spelled(&f.owner))
    }))
}

/// Longest a WebDAV lock lasts without being refreshed. A client that
/// asks for longer, or for ever (cadaver does, and dav-server's default
/// is infinite), gets this: a client that dies holding a lock must not
/// keep everyone out until the hub restarts. Clients refresh locks they
/// still need (RFC 4918 lets the server pick the timeout).
const MAX_LOCK: u64 = 3600;

/// Sets a LOCK's `Timeout` to at most [`MAX_LOCK`] seconds.
pub(crate) fn cap_lock_timeout(headers: &mut HeaderMap) {
    // "Second-N" or "Infinite", best first; the first that parses counts.
    let asked = headers
        .get("timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.split(',')
                .map(str::trim)
                .find_map(|t| t.strip_prefix("Second-")?.parse::<u64>().ok())
        });
    let seconds = asked.map_or(MAX_LOCK, |s| s.min(MAX_LOCK));
    let value = HeaderValue::from_str(&format!("Second-{seconds}")).expect("ascii");
    headers.insert("timeout", value);
}

/// Whether a COPY or MOVE stays on this server: its `Destination` is a
/// path, or a URL with the request's own host. That host is its `Host`
/// header in HTTP/1.1, and its `:authority` (which lands in the request's
/// URI) in HTTP/2.
fn same_host(headers: &HeaderMap, uri: &http::Uri) -> bool {
    let Some(destination) = headers.get("destination").and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let Ok(destination) = destination.parse::<http::Uri>() else {
        return false;
    };
    let Some(authority) = destination.authority() else {
        return true;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let own = uri.authority().map(http::uri::Authority::as_str).or(host);
    own.is_some_and(|h| h.eq_ignore_ascii_case(authority.as_str()))
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Headers for every WebDAV answer; a file's bytes are always a download,
/// sandboxed, never a page of the hub.
pub(crate) fn harden(method: &Method, response: &mut Response) {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    let sends_file =
        (*method == Method::GET || *method == Method::HEAD) && response.status().is_success();
    if sends_file {
        let headers = response.headers_mut();
        crate::http::files::as_download(headers);
        headers.insert(
            header::CONTENT_DISPOSITION,
            HeaderValue::from_static("attachment"),
        );
    }
}

/// Whether every `<…>` and `[…]` of an `If` header is closed, quotes
/// honoured. dav-server 0.11 reads past the end of one that is not (and
/// panics); litmus sends such a header when its buffer cuts a long one.
fn if_header_is_closed(value: &[u8]) -> bool {
    let mut bytes = value.iter();
    while let Some(&b) = bytes.next() {
        let close = match b {
            b'<' => b'>',
            b'[' => b']',
            _ => continue,
        };
        let mut quoted = false;
        let closed = bytes.any(|&c| {
            if c == b'"' {
                quoted = !quoted;
            }
            !quoted && c == close
        });
        if !closed {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_if_header_cut_short_is_caught_before_dav_server_reads_past_it() {
        assert!(if_header_is_closed(
            b"(<urn:uuid:1> [\"a\"]) (Not <DAV:no-lock>)"
        ));
        assert!(if_header_is_closed(b"<http://h/a> ([\"x]y\"])"));
        for cut in [&b"(<urn:uuid:1> [\"abc"[..], b"(<urn:uu", b"([\"a\""] {
            assert!(
                !if_header_is_closed(cut),
                "{}",
                String::from_utf8_lossy(cut)
            );
        }
    }

    #[test]
    fn locks_last_an_hour_at_most() {
        for (asked, given) in [
            (None, "Second-3600"),
            (Some("Infinite"), "Second-3600"),
            (Some("Infinite, Second-4100000000"), "Second-3600"),
            (Some("Second-60"), "Second-60"),
            (Some("Infinite, Second-120"), "Second-120"),
            (Some("Second-99999"), "Second-3600"),
        ] {
            let mut headers = HeaderMap::new();
            if let Some(asked) = asked {
                headers.insert("timeout", HeaderValue::from_static(asked));
            }
            cap_lock_timeout(&mut headers);
            assert_eq!(headers["timeout"], given, "{asked:?}");
        }
    }

    #[test]
    fn a_destination_elsewhere_is_not_this_server() {
        let headers = |dest: &str| -> HeaderMap {
            [
                (header::HOST, "hub:7878"),
                (header::HeaderName::from_static("destination"), dest),
            ]
            .into_iter()
            .map(|(n, v)| (n, HeaderValue::from_str(v).unwrap()))
            .collect()
        };
        let path: http::Uri = "/dav/a".parse().unwrap();
        assert!(same_host(&headers("/dav/x"), &path));
        assert!(same_host(&headers("http://hub:7878/dav/x"), &path));
        assert!(!same_host(&headers("http://evil.example/dav/x"), &path));
        // HTTP/2: no Host, the authority is in the request's URI.
        let only = |dest: &str| -> HeaderMap {
            [(
                header::HeaderName::from_static("destination"),
                HeaderValue::from_str(dest).unwrap(),
            )]
            .into_iter()
            .collect()
        };
        let h2: http::Uri = "https://hub:7878/dav/a".parse().unwrap();
        assert!(same_host(&only("https://hub:7878/dav/x"), &h2));
        assert!(!same_host(&only("https://evil.example/dav/x"), &h2));
        assert!(!same_host(&only("https://hub:7878/dav/x"), &path));
    }
}
