//! Who a request comes from: an API token (`ferry token create`), sent as
//! `Authorization: Bearer TOKEN`, or as the password of HTTP Basic with the
//! handle as user name (what WebDAV clients send). No credential, or one
//! that lets no one in, is a 401; what the caller may do is then
//! [`crate::access::policy`]'s to say, as for the protocol.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use base64::Engine;
use ferry_protocol::ApiToken;
use http::request::Parts;
use http::{HeaderMap, HeaderValue, StatusCode, header};

use super::error::ApiError;
use crate::access::credentials::Caller;
use crate::access::policy::{self, Permission};
use crate::state::Hub;

impl FromRequestParts<Arc<Hub>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, hub: &Arc<Hub>) -> Result<Self, ApiError> {
        authenticate(&parts.method, &parts.headers, &parts.extensions, hub)
            .await?
            .map_err(|why| unauthorized(why, "Bearer realm=\"ferry\""))
    }
}

/// The caller the `Authorization` header lets in, or why none.
pub(crate) async fn authenticate(
    method: &http::Method,
    headers: &HeaderMap,
    extensions: &http::Extensions,
    hub: &Hub,
) -> Result<Result<Caller, &'static str>, ApiError> {
    let caller = if headers.contains_key(header::AUTHORIZATION) {
        verify(headers, hub).await?
    } else if let Some(session) = super::web::session_cookie(headers) {
        // A browser's cookie goes with any request to the hub, from any
        // site: one that changes something must come from our page.
        let reads = matches!(method.as_str(), "GET" | "HEAD" | "OPTIONS" | "PROPFIND");
        if !reads && !headers.contains_key(super::web::CSRF_HEADER) {
            return Err(super::web::cross_site());
        }
        let access = &hub.access.credentials;
        match access
            .verify(&hub.catalog, &session, hub.config.default_quota)
            .await?
        {
            Some(caller) => Ok(caller),
            None => Err(
                "this browser's session ended (signed out, expired, or its user was revoked); run `ferry web` for a new link",
            ),
        }
    } else {
        verify(headers, hub).await?
    };
    if caller.is_ok()
        && let Some(connection) = extensions.get::<Arc<super::Connection>>()
    {
        connection.verified();
    }
    Ok(caller)
}

async fn verify(headers: &HeaderMap, hub: &Hub) -> Result<Result<Caller, &'static str>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(Err(
            "this needs an API token: make one with `ferry token create` and send it as \
             'Authorization: Bearer TOKEN' (or as the password of HTTP Basic, with your handle as user)",
        ));
    };
    let Some((user, token)) = credential(value) else {
        return Ok(Err(
            "the Authorization header holds no Ferry token (ferry_ and 64 hex digits, as `ferry token create` prints it)",
        ));
    };
    let access = &hub.access.credentials;
    let caller = access
        .verify(&hub.catalog, &token, hub.config.default_quota)
        .await?;
    Ok(match caller {
        Some(caller) if user.is_none_or(|u| u.eq_ignore_ascii_case(caller.handle.as_str())) => {
            Ok(caller)
        }
        Some(_) => Err("that token belongs to another handle than the Basic user name"),
        None => Err(
            "that token lets no one in: it expired, was removed, or its user was revoked; \
             make a new one with `ferry token create`",
        ),
    })
}

impl Caller {
    /// Whether this caller's role has `permission`; if not, the 403.
    pub(crate) fn may(&self, permission: Permission) -> Result<(), ApiError> {
        if policy::allows(self.role, permission) {
            return Ok(());
        }
        Err(policy::denied(self.handle.as_str(), self.role, permission).into())
    }

    /// Whether this caller manages the hub (any file is theirs to change).
    pub(crate) fn admin(&self) -> bool {
        policy::allows(self.role, Permission::Manage)
    }
}

/// Whether `caller` still has `permission` now (a long upload may outlast
/// its user's rights: checked again before it is published).
pub(crate) async fn still_may(
    hub: &Hub,
    caller: &Caller,
    permission: Permission,
) -> Result<(), ApiError> {
    let user = hub.catalog.user(&caller.handle).await?;
    match user {
        Some(user) if !user.revoked && policy::allows(user.role, permission) => Ok(()),
        Some(user) if !user.revoked => {
            Err(policy::denied(caller.handle.as_str(), user.role, permission).into())
        }
        _ => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "revoked",
            format!("'{}' was revoked; nothing was stored", caller.handle),
        )),
    }
}

/// The user name (Basic only) and token an `Authorization` value carries.
fn credential(value: &HeaderValue) -> Option<(Option<String>, ApiToken)> {
    let value = value.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some((None, ApiToken::parse(rest)?));
    }
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let decoded = String::from_utf8(decoded).ok()?;
    let (user, password) = decoded.split_once(':')?;
    Some((Some(user.to_owned()), ApiToken::parse(password)?))
}

/// A 401 with `challenge` (Bearer for the API, Basic for WebDAV, whose
/// clients then ask for a user name and password).
pub(crate) fn unauthorized(message: &str, challenge: &'static str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).with_header(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_and_basic_carry_a_token_and_nothing_else_does() {
        let token = ApiToken([9; 32]);
        let bearer = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
        assert_eq!(credential(&bearer), Some((None, token)));
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("Alice:{token}"));
        let basic = HeaderValue::from_str(&format!("basic {basic}")).unwrap();
        assert_eq!(credential(&basic), Some((Some("Alice".into()), token)));
        for bad in [
            "Bearer",
            "Bearer nope",
            "Digest x",
            "Basic !!!",
            "Basic YWxpY2U=",
        ] {
            assert_eq!(credential(&HeaderValue::from_static(bad)), None, "{bad}");
        }
    }
}
