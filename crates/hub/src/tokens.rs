//! API tokens, for a [`Session`]: a logged-in user makes, lists and
//! withdraws its own. A token carries whatever role its user has when it
//! is used, so a demotion or revocation reaches it at once.

use ferry_protocol::{ApiToken, ErrorCode, Response};

use crate::error::HubError;
use crate::outcome::Refusal;
use crate::publish::unix_now;
use crate::session::{Flow, Session};

/// Longest label a token may have.
const MAX_LABEL: usize = 100;
/// Most live tokens one user may hold.
const MAX_TOKENS: usize = 100;

impl Session {
    pub(crate) async fn create_token(
        &mut self,
        label: String,
        expires_at: Option<i64>,
    ) -> Result<Flow, HubError> {
        let handle = self.handle.clone().expect("logged in");
        let now = unix_now();
        if label.chars().count() > MAX_LABEL || label.chars().any(char::is_control) {
            let message = format!("a token's label is at most {MAX_LABEL} printable characters");
            return self
                .refuse_continue(Refusal::new(ErrorCode::BadRequest, message))
                .await;
        }
        if expires_at.is_some_and(|at| at <= now) {
            let message = "that expiry is already past";
            return self
                .refuse_continue(Refusal::new(ErrorCode::BadRequest, message))
                .await;
        }
        if self.hub.catalog.tokens(&handle, now).await?.len() >= MAX_TOKENS {
            let message =
                format!("you hold {MAX_TOKENS} tokens; remove some first (ferry token rm ID)");
            return self
                .refuse_continue(Refusal::new(ErrorCode::TooLarge, message))
                .await;
        }
        let secret = ApiToken(crate::access::random_secret()?.0);
        let token = self
            .hub
            .catalog
            .add_token(&handle, &secret.hashed(), &label, expires_at, now)
            .await?;
        self.audit("token.create", &token.id, None);
        self.writer
            .send(&Response::TokenCreated { token, secret })
            .await?;
        Ok(Flow::Continue)
    }

    pub(crate) async fn create_web_link(&mut self) -> Result<Flow, HubError> {
        let handle = self.handle.clone().expect("logged in");
        let Some(code) = self.hub.web.issue(&handle) else {
            let message = "too many sign-in links are out; try again in a few minutes";
            return self
                .refuse_continue(Refusal::new(ErrorCode::Busy, message))
                .await;
        };
        let lifetime = i64::try_from(crate::http::web::SIGN_IN_FOR.as_secs()).unwrap_or(0);
        self.audit("web.link", &code.id(), None);
        let expires_at = unix_now() + lifetime;
        self.writer
            .send(&Response::WebLink { code, expires_at })
            .await?;
        Ok(Flow::Continue)
    }

    pub(crate) async fn list_tokens(&mut self) -> Result<Flow, HubError> {
        let handle = self.handle.clone().expect("logged in");
        let tokens = self.hub.catalog.tokens(&handle, unix_now()).await?;
        self.writer.send(&Response::Tokens { tokens }).await?;
        Ok(Flow::Continue)
    }

    pub(crate) async fn remove_token(&mut self, id: &str) -> Result<Flow, HubError> {
        let handle = self.handle.clone().expect("logged in");
        if id.len() > MAX_LABEL || !self.hub.catalog.remove_token(&handle, id).await? {
            let refusal = Refusal::new(ErrorCode::NotFound, "no such token (see ferry token ls)");
            return self.refuse_continue(refusal).await;
        }
        self.hub.access.credentials.forget(handle.as_str());
        self.audit("token.remove", id, None);
        let id = id.to_owned();
        self.writer.send(&Response::TokenRemoved { id }).await?;
        Ok(Flow::Continue)
    }
}
