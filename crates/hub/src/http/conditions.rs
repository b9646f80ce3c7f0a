//! Conditional requests (RFC 9110 §13) against a stored file: its `ETag`
//! is its BLAKE3 hash, so it changes exactly when the bytes do, and its
//! `Last-Modified` is its upload time.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ferry_protocol::FileEntry;
use http::{HeaderMap, HeaderValue, Method, header};

/// The `ETag` of a stored file, quoted: the first 128 bits of its hash
/// (as unique as a tag needs; the whole hash is in `Ferry-Hash`). Short
/// enough for clients that build `If:` headers in fixed buffers (litmus).
pub(crate) fn etag(entry: &FileEntry) -> String {
    format!("\"{}\"", tag(entry))
}

/// The unquoted `ETag` of a stored file.
pub(crate) fn tag(entry: &FileEntry) -> String {
    entry.hash.to_hex()[..32].to_owned()
}

/// `Last-Modified` of a stored file.
pub(crate) fn last_modified(entry: &FileEntry) -> HeaderValue {
    let at = UNIX_EPOCH + Duration::from_secs(u64::try_from(entry.modified).unwrap_or(0));
    HeaderValue::from_str(&httpdate::fmt_http_date(at)).expect("an HTTP date is a valid header")
}

/// What the preconditions of a request on a file come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Go on.
    Proceed,
    /// 304: the client's copy is current.
    NotModified,
    /// 412: a precondition failed.
    Failed,
}

/// Evaluates `If-Match`, `If-Unmodified-Since`, `If-None-Match` and
/// `If-Modified-Since`, in the RFC's order, for `entry` (`None`: no file).
pub(crate) fn evaluate(headers: &HeaderMap, method: &Method, entry: Option<&FileEntry>) -> Verdict {
    let tag = entry.map(etag);
    let modified = entry.map(|e| e.modified);
    let read = *method == Method::GET || *method == Method::HEAD;
    if let Some(wanted) = text(headers, header::IF_MATCH) {
        if !matches(wanted, tag.as_deref(), false) {
            return Verdict::Failed;
        }
    } else if let (Some(since), Some(modified)) =
        (date(headers, header::IF_UNMODIFIED_SINCE), modified)
        && modified > since
    {
        return Verdict::Failed;
    }
    if let Some(wanted) = text(headers, header::IF_NONE_MATCH) {
        if matches(wanted, tag.as_deref(), true) {
            return if read {
                Verdict::NotModified
            } else {
                Verdict::Failed
            };
        }
    } else if read
        && let (Some(since), Some(modified)) = (date(headers, header::IF_MODIFIED_SINCE), modified)
        && modified <= since
    {
        return Verdict::NotModified;
    }
    Verdict::Proceed
}

/// Whether a `Range` should be honoured given `If-Range`: only if the
/// client's `ETag` is still the file's (else it gets the whole file). A
/// date is never enough: two versions stored within one second share
/// it, and a resume from the wrong one would splice two files.
pub(crate) fn range_applies(headers: &HeaderMap, entry: &FileEntry) -> bool {
    text(headers, header::IF_RANGE).is_none_or(|validator| validator == etag(entry))
}

fn text(headers: &HeaderMap, name: header::HeaderName) -> Option<&str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn date(headers: &HeaderMap, name: header::HeaderName) -> Option<i64> {
    text(headers, name)
        .and_then(|t| httpdate::parse_http_date(t).ok())
        .map(unix)
}

fn unix(at: SystemTime) -> i64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Whether a list of entity tags (or `*`) names `tag`; `weak` compares
/// without the `W/` prefix (If-None-Match), else a weak tag never matches.
fn matches(list: &str, tag: Option<&str>, weak: bool) -> bool {
    let Some(tag) = tag else {
        return false;
    };
    list.split(',').map(str::trim).any(|candidate| {
        if candidate == "*" {
            return true;
        }
        match candidate.strip_prefix("W/") {
            Some(stripped) => weak && stripped == tag,
            None => candidate == tag,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_protocol::ContentHash;

    fn entry() -> FileEntry {
        FileEntry {
            name: "a".into(),
            size: 1,
            hash: ContentHash([1; 32]),
            owner: "alice".into(),
            modified: 1_700_000_000,
        }
    }

    fn headers(pairs: &[(header::HeaderName, String)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(n, v)| (n.clone(), HeaderValue::from_str(v).unwrap()))
            .collect()
    }

    #[test]
    fn tags_and_dates_decide_in_the_rfcs_order() {
        let e = entry();
        let tag = etag(&e);
        let get = Method::GET;
        let put = Method::PUT;
        let check = |pairs: &[(header::HeaderName, String)], method: &Method| {
            evaluate(&headers(pairs), method, Some(&e))
        };
        assert_eq!(check(&[], &get), Verdict::Proceed);
        assert_eq!(
            check(&[(header::IF_NONE_MATCH, tag.clone())], &get),
            Verdict::NotModified
        );
        assert_eq!(
            check(&[(header::IF_NONE_MATCH, format!("W/{tag}"))], &get),
            Verdict::NotModified
        );
        assert_eq!(
            check(&[(header::IF_NONE_MATCH, "*".into())], &put),
            Verdict::Failed
        );
        assert_eq!(
            check(&[(header::IF_MATCH, "\"other\"".into())], &get),
            Verdict::Failed
        );
        assert_eq!(
            check(&[(header::IF_MATCH, format!("W/{tag}"))], &get),
            Verdict::Failed
        );
        assert_eq!(
            check(&[(header::IF_MATCH, format!("\"x\", {tag}"))], &put),
            Verdict::Proceed
        );
        let later = "Wed, 15 Nov 2023 00:00:00 GMT".to_owned();
        let earlier = "Mon, 13 Nov 2023 00:00:00 GMT".to_owned();
        assert_eq!(
            check(&[(header::IF_MODIFIED_SINCE, later.clone())], &get),
            Verdict::NotModified
        );
        assert_eq!(
            check(&[(header::IF_MODIFIED_SINCE, earlier.clone())], &get),
            Verdict::Proceed
        );
        assert_eq!(
            check(&[(header::IF_UNMODIFIED_SINCE, earlier)], &get),
            Verdict::Failed
        );
        // If-None-Match wins over If-Modified-Since.
        let pairs = [
            (header::IF_NONE_MATCH, "\"x\"".into()),
            (header::IF_MODIFIED_SINCE, later),
        ];
        assert_eq!(check(&pairs, &get), Verdict::Proceed);
        // No file: If-Match fails, If-None-Match: * lets a create through.
        let none = |pairs: &[(header::HeaderName, String)]| evaluate(&headers(pairs), &put, None);
        assert_eq!(none(&[(header::IF_MATCH, "*".into())]), Verdict::Failed);
        assert_eq!(
            none(&[(header::IF_NONE_MATCH, "*".into())]),
            Verdict::Proceed
        );
    }

    #[test]
    fn if_range_keeps_a_range_only_for_the_same_etag() {
        let e = entry();
        let with = |v: &str| headers(&[(header::IF_RANGE, v.into())]);
        assert!(range_applies(&HeaderMap::new(), &e));
        assert!(range_applies(&with(&etag(&e)), &e));
        assert!(!range_applies(&with("\"other\""), &e));
        assert!(!range_applies(&with("Tue, 14 Nov 2023 22:13:20 GMT"), &e));
    }
}
