//! Typed calls for managing a hub: invites, users, folders, usage, audit.
//! The hub decides who may make them; these only ask.

use ferry_protocol::{
    ApiToken, InviteInfo, InviteSecret, InviteTerms, Request, Response, TokenInfo, UserChange,
    UserInfo,
};

use crate::error::ClientError;
use crate::hub_client::{HubClient, unexpected};

impl HubClient {
    /// Makes an invite; its secret is in the answer only.
    pub async fn create_invite(
        &mut self,
        terms: InviteTerms,
    ) -> Result<(InviteInfo, InviteSecret), ClientError> {
        match self.call(&Request::CreateInvite { terms }).await? {
            Response::InviteCreated { invite, secret } => Ok((invite, secret)),
            other => Err(unexpected(&other)),
        }
    }

    /// Makes an API token for HTTP clients; its secret is in the answer only.
    pub async fn create_token(
        &mut self,
        label: &str,
        expires_at: Option<i64>,
    ) -> Result<(TokenInfo, ApiToken), ClientError> {
        let request = Request::CreateToken {
            label: label.to_owned(),
            expires_at,
        };
        match self.call(&request).await? {
            Response::TokenCreated { token, secret } => Ok((token, secret)),
            other => Err(unexpected(&other)),
        }
    }

    /// A one-time code that signs a browser in, and when it expires.
    pub async fn web_link(&mut self) -> Result<(ApiToken, i64), ClientError> {
        match self.call(&Request::CreateWebLink).await? {
            Response::WebLink { code, expires_at } => Ok((code, expires_at)),
            other => Err(unexpected(&other)),
        }
    }

    /// This handle's API tokens.
    pub async fn tokens(&mut self) -> Result<Vec<TokenInfo>, ClientError> {
        match self.call(&Request::ListTokens).await? {
            Response::Tokens { tokens } => Ok(tokens),
            other => Err(unexpected(&other)),
        }
    }

    /// Withdraws one of this handle's API tokens.
    pub async fn remove_token(&mut self, id: &str) -> Result<(), ClientError> {
        let request = Request::RemoveToken { id: id.to_owned() };
        match self.call(&request).await? {
            Response::TokenRemoved { .. } => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// The outstanding invites.
    pub async fn invites(&mut self) -> Result<Vec<InviteInfo>, ClientError> {
        match self.call(&Request::ListInvites).await? {
            Response::Invites { invites } => Ok(invites),
            other => Err(unexpected(&other)),
        }
    }

    /// Withdraws the invite `id`.
    pub async fn remove_invite(&mut self, id: &str) -> Result<(), ClientError> {
        let request = Request::RemoveInvite { id: id.to_owned() };
        match self.call(&request).await? {
            Response::InviteRemoved { .. } => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// Every user.
    pub async fn users(&mut self) -> Result<Vec<UserInfo>, ClientError> {
        match self.call(&Request::ListUsers).await? {
            Response::Users { users } => Ok(users),
            other => Err(unexpected(&other)),
        }
    }

    /// Changes (or revokes) the user `handle`.
    pub async fn change_user(
        &mut self,
        handle: &str,
        change: UserChange,
    ) -> Result<UserInfo, ClientError> {
        let request = Request::ChangeUser {
            handle: handle.to_owned(),
            change,
        };
        match self.call(&request).await? {
            Response::UserChanged { user } => Ok(user),
            other => Err(unexpected(&other)),
        }
    }

    /// This handle's use and quota.
    pub async fn usage(&mut self) -> Result<UserInfo, ClientError> {
        match self.call(&Request::Usage).await? {
            Response::Usage { user } => Ok(user),
            other => Err(unexpected(&other)),
        }
    }

    /// Lets `handle` add files to the top-level `folder`.
    pub async fn allow(&mut self, handle: &str, folder: &str) -> Result<(), ClientError> {
        let request = Request::Allow {
            handle: handle.to_owned(),
            folder: folder.to_owned(),
        };
        match self.call(&request).await? {
            Response::Allowed { .. } => Ok(()),
            other => Err(unexpected(&other)),
        }
    }

    /// The newest `limit` lines of the audit log.
    pub async fn audit(&mut self, limit: u32) -> Result<Vec<String>, ClientError> {
        match self.call(&Request::Audit { limit }).await? {
            Response::AuditLines { lines } => Ok(lines),
            other => Err(unexpected(&other)),
        }
    }
}
