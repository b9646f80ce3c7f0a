//! WebDAV at `/dav/`, so that rclone, davfs2, Finder, Explorer, Nautilus
//! and cadaver can use the hub as a drive. `dav-server` speaks the
//! protocol; `fs::StoreFs` backs it with the store, for the caller of
//! each request, through the same policy and publisher as the API. Locks
//! live in one lock store for the hub (in memory: a restart drops them,
//! as clients expect of a server restart).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use dav_server::DavHandler;
use dav_server::fs::FsError;
use dav_server::ls::DavLockSystem;
use ferry_protocol::{ErrorCode, FileName};

use super::auth;
use super::error::ApiError;
use crate::error::HubError;
use crate::outcome::Refusal;
use crate::state::Hub;

mod file;
mod fs;
mod guard;
mod locks;
mod meta;

/// Where WebDAV is mounted.
pub(crate) const PREFIX: &str = "/dav";

/// WebDAV state that outlives a request: the hub's one lock store.
pub struct DavState {
    locks: Box<dyn DavLockSystem>,
}

impl Default for DavState {
    fn default() -> Self {
        Self {
            locks: locks::ExpiringLocks::boxed(),
        }
    }
}

impl DavState {
    /// Who holds a WebDAV lock on `name`, on a folder above it, or (`deep`)
    /// on anything inside it, if anyone. Changes through the API and the
    /// protocol have no way to show a lock token, so a lock keeps them out
    /// as it keeps out a WebDAV client without the token: the file is open
    /// somewhere.
    pub(crate) async fn locked_by(&self, name: &FileName, deep: bool) -> Option<String> {
        let encoded: Vec<String> = name
            .as_str()
            .split('/')
            .map(|part| {
                percent_encoding::utf8_percent_encode(part, percent_encoding::NON_ALPHANUMERIC)
                    .to_string()
            })
            .collect();
        let path = dav_server::davpath::DavPath::new(&format!("/{}", encoded.join("/"))).ok()?;
        let lock = self
            .locks
            .check(&path, None, false, deep, &[])
            .await
            .err()?;
        Some(lock.principal.unwrap_or_else(|| "someone".to_owned()))
    }

    /// [`Self::locked_by`] as the API's answer: 423.
    pub(crate) async fn refuse_if_locked(
        &self,
        name: &FileName,
        deep: bool,
    ) -> Result<(), ApiError> {
        match self.locked_by(name, deep).await {
            None => Ok(()),
            Some(by) => Err(ApiError::new(
                http::StatusCode::LOCKED,
                "locked",
                locked(name, &by),
            )),
        }
    }

    /// [`Self::locked_by`] as the protocol's refusal (busy: try again later).
    pub(crate) async fn lock_refusal(&self, name: &FileName, deep: bool) -> Option<Refusal> {
        let by = self.locked_by(name, deep).await?;
        Some(Refusal::new(ErrorCode::Busy, locked(name, &by)))
    }
}

fn locked(name: &FileName, by: &str) -> String {
    format!(
        "'{name}' is locked through WebDAV by {by} (it is open in a WebDAV client); \
         try again once it is closed, or unlock it from that client"
    )
}

/// Serves one WebDAV request for the caller its Basic (or Bearer)
/// credential names; without one, a Basic challenge, which makes clients
/// ask for a user name and password.
pub(crate) async fn serve(State(hub): State<Arc<Hub>>, request: Request) -> Response {
    let caller = match auth::authenticate(
        request.method(),
        request.headers(),
        request.extensions(),
        &hub,
    )
    .await
    {
        Ok(Ok(caller)) => caller,
        Ok(Err(why)) => {
            let challenge = "Basic realm=\"ferry\", charset=\"UTF-8\"";
            return auth::unauthorized(why, challenge).into_response();
        }
        Err(e) => return e.into_response(),
    };
    let method = request.method().clone();
    let mut request = request;
    if method.as_str() == "LOCK" {
        guard::cap_lock_timeout(request.headers_mut());
    }
    if let Some(refused) =
        guard::refuse(&hub, &caller, &method, request.headers(), request.uri()).await
    {
        return refused;
    }
    let handler = DavHandler::builder()
        .filesystem(Box::new(fs::StoreFs {
            hub: Arc::clone(&hub),
        }))
        .locksystem(hub.dav.locks.clone())
        .strip_prefix(PREFIX)
        .build_handler();
    let principal = caller.handle.to_string();
    let handled = std::panic::AssertUnwindSafe(handler.handle_guarded(request, principal, caller));
    match futures_util::FutureExt::catch_unwind(handled).await {
        Ok(response) => {
            let mut response = response.map(Body::new);
            guard::harden(&method, &mut response);
            response
        }
        Err(_) => {
            tracing::error!("the WebDAV handler panicked on a request; it was answered 500");
            http::StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

/// What a hub failure is to a WebDAV client (logged unless it is a full disk).
fn fs_error(error: &HubError) -> FsError {
    if error.is_storage_full() {
        return FsError::InsufficientStorage;
    }
    tracing::warn!("WebDAV request failed: {error}");
    FsError::GeneralFailure
}

/// What a refusal is to a WebDAV client.
fn refusal_error(refusal: &Refusal) -> FsError {
    tracing::debug!("WebDAV request refused: {}", refusal.message);
    match refusal.code {
        ErrorCode::NotFound => FsError::NotFound,
        ErrorCode::Conflict => FsError::Exists,
        ErrorCode::QuotaExceeded | ErrorCode::StorageFull => FsError::InsufficientStorage,
        ErrorCode::TooLarge => FsError::TooLarge,
        ErrorCode::PermissionDenied | ErrorCode::InvalidName => FsError::Forbidden,
        _ => FsError::GeneralFailure,
    }
}
