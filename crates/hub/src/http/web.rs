//! The web page, embedded in the binary (no build step), and how a
//! browser signs in: `ferry web` asks the hub for a one-time code (valid
//! [`SIGN_IN_FOR`]), the page trades it for a session, kept as an API
//! token of its own (listed by `ferry token ls`, ended by `ferry token rm`
//! or by revoking the user) in an `HttpOnly`, `SameSite=Strict` cookie,
//! `Secure` under TLS. Requests that change anything with that cookie
//! must carry `X-Ferry-Csrf`, which no other site's page can add.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use ferry_io::Expiring;
use ferry_protocol::{ApiToken, Handle};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Deserialize;
use serde_json::json;

use super::error::ApiError;
use crate::access::credentials::Caller;
use crate::publish::unix_now;
use crate::state::Hub;

/// How long a sign-in code works.
pub const SIGN_IN_FOR: Duration = Duration::from_secs(300);
/// How long a browser stays signed in.
const SESSION_FOR: Duration = Duration::from_secs(30 * 24 * 3600);
/// Most sign-in codes outstanding at once.
const MAX_CODES: usize = 1024;
/// The session cookie's name in plaintext; under TLS it is
/// [`SECURE_COOKIE`], which browsers keep to this origin alone (no other
/// service on the host can set or read it).
pub(crate) const COOKIE: &str = "ferry_session";
/// The session cookie's name under TLS.
pub(crate) const SECURE_COOKIE: &str = "__Host-ferry_session";
/// The header the page sends with every request.
pub(crate) const CSRF_HEADER: &str = "x-ferry-csrf";

const PAGE: &str = include_str!("web/index.html");
const SCRIPT: &str = include_str!("web/app.js");
const STYLE: &str = include_str!("web/app.css");

/// What the page may load: only itself.
const PAGE_POLICY: &str = "default-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Outstanding sign-in codes, by hash, with whom they sign in: one per
/// user, so that no user can crowd the others out of the hub-wide cap (`MAX_CODES`).
pub struct SignIns {
    codes: Mutex<Codes>,
}

struct Codes {
    by_hash: Expiring<[u8; 32], Handle>,
    /// Each user's one live code.
    by_user: std::collections::HashMap<Handle, [u8; 32]>,
}

impl Default for SignIns {
    fn default() -> Self {
        Self::lasting(SIGN_IN_FOR)
    }
}

impl SignIns {
    fn lasting(lifetime: Duration) -> Self {
        let codes = Codes {
            by_hash: Expiring::new(lifetime, MAX_CODES),
            by_user: std::collections::HashMap::new(),
        };
        Self {
            codes: Mutex::new(codes),
        }
    }

    /// A new one-time code for `handle`, which replaces any it had out;
    /// `None` when too many users have one out.
    pub fn issue(&self, handle: &Handle) -> Option<ApiToken> {
        let code = ApiToken(crate::access::random_secret().ok()?.0);
        let mut codes = self.codes.lock().expect("sign-in lock is never poisoned");
        let Codes { by_hash, by_user } = &mut *codes;
        by_hash.sweep(|user| {
            by_user.remove(&user);
        });
        if let Some(earlier) = by_user.remove(handle) {
            by_hash.remove(&earlier);
        }
        by_hash.insert(code.hashed(), handle.clone(), |_| {}).ok()?;
        by_user.insert(handle.clone(), code.hashed());
        Some(code)
    }

    /// Who `code` signs in, once, while it is live.
    fn redeem(&self, code: &ApiToken) -> Option<Handle> {
        let mut codes = self.codes.lock().expect("sign-in lock is never poisoned");
        let user = codes.by_hash.remove(&code.hashed())?;
        codes.by_user.remove(&user);
        Some(user)
    }
}

/// `GET /`: the page.
pub(crate) async fn page() -> Response {
    asset(PAGE, "text/html; charset=utf-8")
}

/// `GET /app.js`.
pub(crate) async fn script() -> Response {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

/// `GET /app.css`.
pub(crate) async fn style() -> Response {
    asset(STYLE, "text/css; charset=utf-8")
}

fn asset(body: &'static str, kind: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(PAGE_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}

/// The body of `POST /api/v1/signin`.
#[derive(Debug, Deserialize)]
pub(crate) struct SignIn {
    code: String,
}

/// `POST /api/v1/signin`: a one-time code for a session cookie.
pub(crate) async fn sign_in(
    State(hub): State<Arc<Hub>>,
    headers: HeaderMap,
    Json(body): Json<SignIn>,
) -> Result<Response, ApiError> {
    if !headers.contains_key(CSRF_HEADER) {
        return Err(cross_site());
    }
    let refused = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "that sign-in link was used already or expired (they work once, for 5 minutes); run `ferry web` again",
        )
    };
    let code = ApiToken::parse(&body.code).ok_or_else(refused)?;
    let handle = hub.web.redeem(&code).ok_or_else(refused)?;
    let session = ApiToken(crate::access::random_secret()?.0);
    let expires_at = unix_now() + i64::try_from(SESSION_FOR.as_secs()).unwrap_or(i64::MAX);
    let label = format!(
        "browser sign-in ({})",
        headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map_or("a browser", short_agent)
    );
    hub.catalog
        .add_token(
            &handle,
            &session.hashed(),
            &label,
            Some(expires_at),
            unix_now(),
        )
        .await?;
    hub.access
        .audit
        .record(handle.as_str(), "web.signin", &session.id(), None);
    // Signing in again replaces this browser's session, and ends the old one.
    if let Some(old) = session_cookie(&headers) {
        hub.catalog.remove_token(&handle, &old.id()).await?;
    }
    let cookie = format!(
        "{}={session}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
        cookie_name(&hub),
        SESSION_FOR.as_secs()
    ) + if hub.tls().is_some() { "; Secure" } else { "" };
    let accounts = &hub.publisher.accounts;
    let mut response = Json(json!({ "handle": accounts.spelled(handle.as_str()) })).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("ascii"),
    );
    Ok(response)
}

/// `POST /api/v1/signout`: ends this browser's session.
pub(crate) async fn sign_out(
    State(hub): State<Arc<Hub>>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(session) = session_cookie(&headers) {
        hub.catalog
            .remove_token(&caller.handle, &session.id())
            .await?;
        hub.access.credentials.forget(caller.handle.as_str());
    }
    let secure = if hub.tls().is_some() { "; Secure" } else { "" };
    let cookie = format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}",
        cookie_name(&hub)
    );
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("ascii"),
    );
    Ok(response)
}

fn cookie_name(hub: &Hub) -> &'static str {
    if hub.tls().is_some() {
        SECURE_COOKIE
    } else {
        COOKIE
    }
}

/// The session token in a request's cookies, if any.
pub(crate) fn session_cookie(headers: &HeaderMap) -> Option<ApiToken> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE || *name == SECURE_COOKIE)
        .and_then(|(_, value)| ApiToken::parse(value))
}

/// The refusal of a cookie request that changes something without the header.
pub(crate) fn cross_site() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "cross_site",
        "a request that changes something with the browser's session must come from the hub's own page",
    )
}

fn short_agent(agent: &str) -> &str {
    let end = agent.char_indices().nth(40).map_or(agent.len(), |(i, _)| i);
    &agent[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sign_in_code_works_once_and_not_after_its_time() {
        let sign_ins = SignIns::lasting(Duration::from_millis(50));
        let alice = Handle::parse("alice").unwrap();
        let code = sign_ins.issue(&alice).unwrap();
        assert_eq!(sign_ins.redeem(&code), Some(alice.clone()));
        assert_eq!(sign_ins.redeem(&code), None, "once");
        let late = sign_ins.issue(&alice).unwrap();
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(
            sign_ins.redeem(&late),
            None,
            "expired, though nothing swept it"
        );
    }

    #[test]
    fn a_new_link_replaces_the_last_so_one_user_cannot_use_them_all() {
        let sign_ins = SignIns::default();
        let (alice, bob) = (
            Handle::parse("alice").unwrap(),
            Handle::parse("bob").unwrap(),
        );
        let bobs = sign_ins.issue(&bob).unwrap();
        let mut last = sign_ins.issue(&alice).unwrap();
        for _ in 0..MAX_CODES * 2 {
            let next = sign_ins
                .issue(&alice)
                .expect("never crowded out by her own");
            assert_eq!(sign_ins.redeem(&last), None, "the earlier link is void");
            last = next;
        }
        assert_eq!(sign_ins.redeem(&last), Some(alice));
        assert_eq!(sign_ins.redeem(&bobs), Some(bob), "bob's still works");
        let codes = sign_ins.codes.lock().unwrap();
        assert_eq!((codes.by_hash.len(), codes.by_user.len()), (0, 0));
    }
}
