//! How a refusal reads over HTTP: its status, and a JSON body with a
//! stable code and the same line the CLI prints, saying what to do.

use axum::Json;
use axum::response::{IntoResponse, Response};
use ferry_protocol::ErrorCode;
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

use crate::error::HubError;
use crate::outcome::Refusal;

/// A request refused or failed, as an HTTP response.
#[derive(Debug)]
pub struct ApiError {
    pub(crate) status: StatusCode,
    code: &'static str,
    message: String,
    /// `WWW-Authenticate` for a 401, `Content-Range` for a 416.
    header: Option<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            header: None,
        }
    }

    pub(crate) fn with_status(mut self, status: StatusCode) -> Self {
        self.status = status;
        self
    }

    pub(crate) fn with_header(mut self, name: header::HeaderName, value: HeaderValue) -> Self {
        self.header = Some((name, value));
        self
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        Self::new(
            status_of(refusal.code),
            code_name(refusal.code),
            refusal.message,
        )
    }
}

impl From<HubError> for ApiError {
    fn from(error: HubError) -> Self {
        if error.is_storage_full() {
            return Self::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "storage_full",
                "the hub's storage is full; nothing was stored (ask the hub's operator to free space)",
            );
        }
        tracing::warn!("HTTP request failed: {error}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            error.client_message(),
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "error": self.code, "message": self.message }));
        let mut response = (self.status, body).into_response();
        if let Some((name, value)) = self.header {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

/// The status a protocol refusal becomes.
pub(crate) fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BadRequest
        | ErrorCode::VersionMismatch
        | ErrorCode::InvalidHandle
        | ErrorCode::InvalidName => StatusCode::BAD_REQUEST,
        ErrorCode::LoginRequired | ErrorCode::LegacySecretNeeded => StatusCode::UNAUTHORIZED,
        ErrorCode::PermissionDenied
        | ErrorCode::Revoked
        | ErrorCode::InviteRequired
        | ErrorCode::InviteInvalid => StatusCode::FORBIDDEN,
        ErrorCode::NotFound | ErrorCode::UnknownHandle => StatusCode::NOT_FOUND,
        ErrorCode::Conflict | ErrorCode::HandleTaken | ErrorCode::Busy => StatusCode::CONFLICT,
        ErrorCode::HashMismatch | ErrorCode::SizeMismatch => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::Timeout => StatusCode::REQUEST_TIMEOUT,
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::StorageFull | ErrorCode::QuotaExceeded => StatusCode::INSUFFICIENT_STORAGE,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
    }
}

/// The stable code in an error's JSON body.
pub(crate) fn code_name(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::BadRequest => "bad_request",
        ErrorCode::VersionMismatch => "version_mismatch",
        ErrorCode::LoginRequired => "login_required",
        ErrorCode::HandleTaken => "handle_taken",
        ErrorCode::UnknownHandle => "unknown_handle",
        ErrorCode::InvalidHandle => "invalid_handle",
        ErrorCode::InvalidName => "invalid_name",
        ErrorCode::NotFound => "not_found",
        ErrorCode::Conflict => "conflict",
        ErrorCode::PermissionDenied => "permission_denied",
        ErrorCode::HashMismatch => "hash_mismatch",
        ErrorCode::SizeMismatch => "size_mismatch",
        ErrorCode::Busy => "busy",
        ErrorCode::Timeout => "timeout",
        ErrorCode::Internal => "internal",
        ErrorCode::TooLarge => "too_large",
        ErrorCode::StorageFull => "storage_full",
        ErrorCode::QuotaExceeded => "quota_exceeded",
        ErrorCode::InviteRequired => "invite_required",
        ErrorCode::InviteInvalid => "invite_invalid",
        ErrorCode::Revoked => "revoked",
        ErrorCode::LegacySecretNeeded => "legacy_secret_needed",
        ErrorCode::PreconditionFailed => "precondition_failed",
    }
}

/// Makes every error under `/api/` the JSON the API documents: axum's own
/// rejections (a query or body that does not parse, a wrong method)
/// answer in plain text or not at all, which a script cannot read.
pub(crate) async fn as_json(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let api = request.uri().path().starts_with("/api/");
    let response = next.run(request).await;
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    if !api || json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (parts, body) = response.into_parts();
    // A rejection's text is a line; one longer than this is not read.
    let text = match axum::body::to_bytes(body, 4096).await {
        Ok(text) => String::from_utf8_lossy(&text).trim().to_owned(),
        Err(_) => status.canonical_reason().unwrap_or("refused").to_owned(),
    };
    let (code, message) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this route does not take that method; see api/openapi.yaml".to_owned(),
        ),
        StatusCode::NOT_FOUND => ("no_route", text),
        s if s.is_server_error() => ("internal", text),
        _ => ("bad_request", text),
    };
    let mut rewritten = ApiError::new(status, code, message).into_response();
    // Keep what the original said beyond its body (Allow, for a 405).
    for (name, value) in &parts.headers {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            rewritten.headers_mut().insert(name.clone(), value.clone());
        }
    }
    rewritten
}
