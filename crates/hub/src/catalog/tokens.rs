//! API tokens in the catalog: stored by the hash of their secret, each
//! belonging to one handle. Whether a token lets anyone in is decided by
//! `crate::access::credentials`; this is only storage.

use ferry_protocol::token::token_id;
use ferry_protocol::{Handle, TokenInfo};
use sqlx::Row;

use super::Catalog;
use super::access::UserRecord;
use crate::error::HubError;

impl Catalog {
    /// Stores a token of `handle` whose secret hashes to `hashed`.
    pub async fn add_token(
        &self,
        handle: &Handle,
        hashed: &[u8; 32],
        label: &str,
        expires_at: Option<i64>,
        now: i64,
    ) -> Result<TokenInfo, HubError> {
        let id = token_id(hashed);
        sqlx::query(
            "INSERT INTO tokens (id, secret_hash, handle, label, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&id)
        .bind(&hashed[..])
        .bind(handle.as_str())
        .bind(label)
        .bind(now)
        .bind(expires_at)
        .execute(&self.pool)
        .await?;
        Ok(TokenInfo {
            id,
            label: label.to_owned(),
            created_at: now,
            expires_at,
        })
    }

    /// The tokens of `handle` that have not expired, oldest first.
    pub async fn tokens(&self, handle: &Handle, now: i64) -> Result<Vec<TokenInfo>, HubError> {
        let rows = sqlx::query(
            "SELECT id, label, created_at, expires_at FROM tokens \
             WHERE handle = $1 AND (expires_at IS NULL OR expires_at > $2) \
             ORDER BY created_at, id",
        )
        .bind(handle.as_str())
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(TokenInfo {
                    id: row.try_get("id")?,
                    label: row.try_get("label")?,
                    created_at: row.try_get("created_at")?,
                    expires_at: row.try_get("expires_at")?,
                })
            })
            .collect()
    }

    /// Deletes a token of `handle`; whether there was one.
    pub async fn remove_token(&self, handle: &Handle, id: &str) -> Result<bool, HubError> {
        let done = sqlx::query("DELETE FROM tokens WHERE id = $1 AND handle = $2")
            .bind(id)
            .bind(handle.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// The user a token whose secret hashes to `hashed` lets in (one that
    /// has not expired, of a user not revoked), and when it expires.
    pub async fn token_user(
        &self,
        hashed: &[u8; 32],
        now: i64,
    ) -> Result<Option<(UserRecord, Option<i64>)>, HubError> {
        let row = sqlx::query(
            "SELECT tokens.handle, tokens.expires_at FROM tokens JOIN users ON users.handle = tokens.handle \
             WHERE tokens.secret_hash = $1 AND (tokens.expires_at IS NULL OR tokens.expires_at > $2) \
             AND users.revoked = 0",
        )
        .bind(&hashed[..])
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let expires_at: Option<i64> = row.try_get("expires_at")?;
        let Ok(handle) = Handle::parse(&row.try_get::<String, _>("handle")?) else {
            return Ok(None);
        };
        let user = self.user(&handle).await?.filter(|user| !user.revoked);
        Ok(user.map(|user| (user, expires_at)))
    }

    /// Deletes every token of `handle` (its user was revoked).
    pub async fn remove_tokens_of(&self, handle: &Handle) -> Result<u64, HubError> {
        let done = sqlx::query("DELETE FROM tokens WHERE handle = $1")
            .bind(handle.as_str())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
