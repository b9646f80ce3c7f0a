//! Users, invites, folder owners and settings in the catalog. The rules
//! (who may do what) are `crate::access`'s; this is only storage, each
//! change in one statement or one `IMMEDIATE` transaction.

use ferry_protocol::access::invite_id;
use ferry_protocol::{Handle, InviteInfo, InviteTerms, PublicKey, Role, UserInfo};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::Catalog;
use crate::error::HubError;

/// A user as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Handle (the lowercase key).
    pub handle: String,
    /// The handle as its user typed it when registering, for display.
    pub spelling: String,
    /// The login key (`None`: registered before keys, not yet moved).
    pub key: Option<PublicKey>,
    /// BLAKE3 of the pre-key secret (empty once moved to a key).
    pub secret_hash: Vec<u8>,
    /// Role.
    pub role: Role,
    /// Its quota.
    pub quota: QuotaSetting,
    /// Last login.
    pub last_seen: Option<i64>,
    /// No more logins.
    pub revoked: bool,
}

impl UserRecord {
    /// What admins see, given the bytes the user's files take.
    pub fn info(&self, used: u64, default_quota: Option<u64>) -> UserInfo {
        let quota = self.quota.effective(default_quota);
        UserInfo {
            handle: self.spelling.clone(),
            role: self.role,
            used,
            quota,
            last_seen: self.last_seen,
            revoked: self.revoked,
        }
    }
}

/// A user's quota as set: stored as NULL (the hub's default), -1
/// (unlimited) or a number of bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaSetting {
    /// The hub's `default_quota`.
    Default,
    /// No limit, whatever the default.
    Unlimited,
    /// This many bytes.
    Bytes(u64),
}

impl QuotaSetting {
    /// The quota in force given the hub's default (`None`: unlimited).
    pub fn effective(self, default_quota: Option<u64>) -> Option<u64> {
        match self {
            Self::Default => default_quota,
            Self::Unlimited => None,
            Self::Bytes(n) => Some(n),
        }
    }

    fn stored(self) -> Option<i64> {
        match self {
            Self::Default => None,
            Self::Unlimited => Some(-1),
            Self::Bytes(n) => Some(to_i64(n)),
        }
    }

    fn from_stored(value: Option<i64>) -> Self {
        match value {
            None => Self::Default,
            Some(n) if n < 0 => Self::Unlimited,
            Some(n) => Self::Bytes(to_u64(n)),
        }
    }
}

/// Only invites whose maker may still make them: the hub itself, or an
/// unrevoked owner, or an unrevoked admin for anything short of owner.
macro_rules! usable_invite {
    () => {
        "uses_left > 0 AND (expires_at IS NULL OR expires_at > $2) AND (created_by IS NULL OR EXISTS ( \
         SELECT 1 FROM users maker WHERE maker.handle = invites.created_by AND maker.revoked = 0 \
         AND (maker.role = 'owner' OR (maker.role = 'admin' AND invites.role != 'owner'))))"
    };
}

/// What redeeming an invite did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Redeemed {
    /// A new user, with the invite's terms.
    Joined(UserRecord),
    /// The key's own existing handle now has the invite's (higher) role.
    Raised(UserRecord),
    /// The key's own existing handle already had that role or more: the
    /// invite was not used.
    Unchanged(UserRecord),
    /// No usable invite with that secret.
    Invalid,
    /// The handle belongs to another key (the invite was not used).
    Taken,
}

/// `SELECT` of every user column, followed by the rest of the statement.
macro_rules! select_user {
    ($rest:literal) => {
        concat!(
            "SELECT handle, COALESCE(spelling, handle) AS spelling, public_key, secret_hash, \
             role, quota, last_seen, revoked FROM users ",
            $rest
        )
    };
}

impl Catalog {
    /// The user called `handle`, if any.
    pub async fn user(&self, handle: &Handle) -> Result<Option<UserRecord>, HubError> {
        let row = sqlx::query(select_user!("WHERE handle = $1"))
            .bind(handle.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| user_from_row(&row)).transpose()
    }

    /// Every user, by handle.
    pub async fn users(&self) -> Result<Vec<UserRecord>, HubError> {
        let rows = sqlx::query(select_user!("ORDER BY handle"))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(user_from_row).collect()
    }

    /// Registers `handle` for `key` if nobody has it; whether it did.
    pub async fn register(
        &self,
        handle: &Handle,
        spelling: &str,
        key: &PublicKey,
        role: Role,
        quota: QuotaSetting,
        now: i64,
    ) -> Result<bool, HubError> {
        let inserted = sqlx::query(
            "INSERT INTO users (handle, secret_hash, created_at, public_key, role, quota, last_seen, spelling) \
             VALUES ($1, x'', $2, $3, $4, $5, $2, $6) ON CONFLICT (handle) DO NOTHING",
        )
        .bind(handle.as_str())
        .bind(now)
        .bind(&key.0[..])
        .bind(role.as_str())
        .bind(quota.stored())
        .bind(spelling)
        .execute(&self.pool)
        .await?;
        Ok(inserted.rows_affected() == 1)
    }

    /// Moves a pre-key handle onto `key`: its old secret no longer counts.
    /// Whether it moved (another login may have moved it first).
    pub async fn adopt_key(&self, handle: &Handle, key: &PublicKey) -> Result<bool, HubError> {
        let moved = sqlx::query(
            "UPDATE users SET public_key = $2, secret_hash = x'' \
             WHERE handle = $1 AND public_key IS NULL",
        )
        .bind(handle.as_str())
        .bind(&key.0[..])
        .execute(&self.pool)
        .await?;
        Ok(moved.rows_affected() == 1)
    }

    /// Records a login.
    pub async fn seen(&self, handle: &Handle, now: i64) -> Result<(), HubError> {
        sqlx::query("UPDATE users SET last_seen = $2 WHERE handle = $1")
            .bind(handle.as_str())
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records an upload or a share (handles that never do either expire
    /// on open hubs).
    pub async fn active(&self, handle: &Handle, now: i64) -> Result<(), HubError> {
        sqlx::query("UPDATE users SET active_at = $2 WHERE handle = $1 AND active_at IS NULL")
            .bind(handle.as_str())
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Removes members that never uploaded or shared and were last seen
    /// before `seen_before` (never a revoked one: its handle stays taken),
    /// with the folders they were allowed into; returns how many.
    pub async fn expire_idle(&self, seen_before: i64) -> Result<u64, HubError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let done = sqlx::query(
            "DELETE FROM users WHERE role = 'member' AND revoked = 0 AND active_at IS NULL \
             AND coalesce(last_seen, created_at) < $1 \
             AND NOT EXISTS (SELECT 1 FROM files WHERE files.owner = users.handle)",
        )
        .bind(seen_before)
        .execute(&mut *tx)
        .await?;
        // Whoever registers a freed handle must not inherit its tokens.
        for table in ["folder_writers", "tokens"] {
            let sql = format!(
                "DELETE FROM {table} WHERE NOT EXISTS \
                 (SELECT 1 FROM users WHERE users.handle = {table}.handle)"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// Sets a user's role, quota or revocation, if its role is still
    /// `was` (another admin may have changed it since it was read). A user
    /// revoked or demoted below admin loses the invites it made. `None`:
    /// the user changed (or went) in between; nothing was done.
    pub async fn change_user(
        &self,
        handle: &Handle,
        was: Role,
        role: Option<Role>,
        quota: Option<QuotaSetting>,
        revoke: bool,
    ) -> Result<Option<UserRecord>, HubError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let changed = sqlx::query(
            "UPDATE users SET role = coalesce($2, role), \
             quota = CASE WHEN $3 THEN $4 ELSE quota END, \
             revoked = CASE WHEN $5 THEN 1 ELSE revoked END WHERE handle = $1 AND role = $6",
        )
        .bind(handle.as_str())
        .bind(role.map(Role::as_str))
        .bind(quota.is_some())
        .bind(quota.and_then(QuotaSetting::stored))
        .bind(revoke)
        .bind(was.as_str())
        .execute(&mut *tx)
        .await?;
        if changed.rows_affected() == 0 {
            return Ok(None);
        }
        if revoke {
            sqlx::query("DELETE FROM tokens WHERE handle = $1")
                .bind(handle.as_str())
                .execute(&mut *tx)
                .await?;
        }
        if revoke || role.is_some_and(|r| r < Role::Admin) {
            sqlx::query("DELETE FROM invites WHERE created_by = $1")
                .bind(handle.as_str())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.user(handle).await
    }

    /// Whether any user holds the owner role.
    pub async fn has_owner(&self) -> Result<bool, HubError> {
        let owners: i64 =
            sqlx::query_scalar("SELECT count(*) FROM users WHERE role = 'owner' AND revoked = 0")
                .fetch_one(&self.pool)
                .await?;
        Ok(owners > 0)
    }

    /// Stores an invite whose secret hashes to `hashed`.
    pub async fn add_invite(
        &self,
        hashed: &[u8; 32],
        terms: &InviteTerms,
        created_by: Option<&Handle>,
        now: i64,
    ) -> Result<InviteInfo, HubError> {
        let id = invite_id(hashed);
        sqlx::query(
            "INSERT INTO invites (id, secret_hash, role, quota, uses_left, expires_at, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&id)
        .bind(&hashed[..])
        .bind(terms.role.as_str())
        .bind(terms.quota.map(to_i64))
        .bind(i64::from(terms.uses))
        .bind(terms.expires_at)
        .bind(created_by.map(Handle::as_str))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(InviteInfo {
            id,
            terms: *terms,
            created_by: created_by.map(ToString::to_string),
            created_at: now,
        })
    }

    /// Invites that can still be used, oldest first.
    pub async fn invites(&self, now: i64) -> Result<Vec<InviteInfo>, HubError> {
        let rows = sqlx::query(concat!(
            "SELECT id, role, quota, uses_left, expires_at, created_by, created_at FROM invites \
                 WHERE $1 = $1 AND ",
            usable_invite!(),
            " ORDER BY created_at, id"
        ))
        .bind(0)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(invite_from_row).collect()
    }

    /// Whether an invite with this hashed secret can still be used.
    pub async fn invite_usable(&self, hashed: &[u8; 32], now: i64) -> Result<bool, HubError> {
        let found: Option<String> = sqlx::query_scalar(concat!(
            "SELECT id FROM invites WHERE secret_hash = $1 AND ",
            usable_invite!()
        ))
        .bind(&hashed[..])
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }

    /// Deletes an invite; whether there was one.
    pub async fn remove_invite(&self, id: &str) -> Result<bool, HubError> {
        let done = sqlx::query("DELETE FROM invites WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Redeems the invite whose secret hashes to `hashed` for `handle` and
    /// `key`, in one transaction: a use is spent only if it admits someone.
    pub async fn redeem(
        &self,
        hashed: &[u8; 32],
        handle: &Handle,
        spelling: &str,
        key: &PublicKey,
        now: i64,
    ) -> Result<Redeemed, HubError> {
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let invite = sqlx::query(concat!(
            "SELECT id, role, quota FROM invites WHERE secret_hash = $1 AND ",
            usable_invite!()
        ))
        .bind(&hashed[..])
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(invite) = invite else {
            return Ok(Redeemed::Invalid);
        };
        let id: String = invite.try_get("id")?;
        let role = role_from(&invite.try_get::<String, _>("role")?)?;
        // An invite without a quota gives the hub's default.
        let quota = invite
            .try_get::<Option<i64>, _>("quota")?
            .map_or(QuotaSetting::Default, |n| QuotaSetting::Bytes(to_u64(n)));
        let existing = sqlx::query(select_user!("WHERE handle = $1"))
            .bind(handle.as_str())
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| user_from_row(&row))
            .transpose()?;
        let outcome = match existing {
            Some(user) if user.key != Some(*key) || user.revoked => return Ok(Redeemed::Taken),
            // Only a higher role, nothing else: an invite is no way round
            // a quota an admin lowered, and is not spent on a no-op.
            Some(user) if role <= user.role => return Ok(Redeemed::Unchanged(user)),
            Some(user) => {
                sqlx::query("UPDATE users SET role = $2 WHERE handle = $1")
                    .bind(handle.as_str())
                    .bind(role.as_str())
                    .execute(&mut *tx)
                    .await?;
                Redeemed::Raised(UserRecord { role, ..user })
            }
            None => {
                sqlx::query(
                    "INSERT INTO users (handle, secret_hash, created_at, public_key, role, quota, last_seen, active_at, spelling) \
                     VALUES ($1, x'', $2, $3, $4, $5, $2, $2, $6)",
                )
                .bind(handle.as_str())
                .bind(now)
                .bind(&key.0[..])
                .bind(role.as_str())
                .bind(quota.stored())
                .bind(spelling)
                .execute(&mut *tx)
                .await?;
                Redeemed::Joined(UserRecord {
                    handle: handle.to_string(),
                    spelling: spelling.to_owned(),
                    key: Some(*key),
                    secret_hash: Vec::new(),
                    role,
                    quota,
                    last_seen: Some(now),
                    revoked: false,
                })
            }
        };
        sqlx::query("UPDATE invites SET uses_left = uses_left - 1 WHERE id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Every top-level folder's owner and the handles allowed to add to it.
    pub async fn folders(&self) -> Result<Vec<(String, String, Vec<String>)>, HubError> {
        let owners = sqlx::query("SELECT name, owner FROM folders")
            .fetch_all(&self.pool)
            .await?;
        let writers = sqlx::query("SELECT folder, handle FROM folder_writers")
            .fetch_all(&self.pool)
            .await?;
        let mut folders: Vec<(String, String, Vec<String>)> = owners
            .iter()
            .map(|row| Ok((row.try_get("name")?, row.try_get("owner")?, Vec::new())))
            .collect::<Result<_, sqlx::Error>>()?;
        folders.sort();
        for row in &writers {
            let folder: String = row.try_get("folder")?;
            if let Ok(i) = folders.binary_search_by(|f| f.0.as_str().cmp(&folder)) {
                folders[i].2.push(row.try_get("handle")?);
            }
        }
        Ok(folders)
    }

    /// Records `owner` as the owner of the top-level `folder`, unless it has one.
    pub async fn claim_folder(&self, folder: &str, owner: &str) -> Result<(), HubError> {
        sqlx::query(
            "INSERT INTO folders (name, owner) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
        )
        .bind(folder)
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Lets `handle` add to `folder`.
    pub async fn allow_writer(&self, folder: &str, handle: &Handle) -> Result<(), HubError> {
        sqlx::query(
            "INSERT INTO folder_writers (folder, handle) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(folder)
        .bind(handle.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Bytes each owner's files take (relayed copies count for no one).
    pub async fn usage(&self) -> Result<Vec<(String, u64)>, HubError> {
        let rows = sqlx::query(
            "SELECT owner, sum(size) AS used FROM files \
             WHERE name NOT IN (SELECT name FROM relayed) GROUP BY owner",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("owner")?, to_u64(row.try_get("used")?))))
            .collect()
    }

    /// Handles spelled otherwise than their key: (key, spelling).
    pub async fn spellings(&self) -> Result<Vec<(String, String)>, HubError> {
        let rows = sqlx::query(
            "SELECT handle, spelling FROM users WHERE spelling IS NOT NULL AND spelling != handle",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get("handle")?, row.try_get("spelling")?)))
            .collect()
    }

    /// A hub-wide setting.
    pub async fn setting(&self, key: &str) -> Result<Option<String>, HubError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Sets a hub-wide setting.
    pub async fn set_setting(&self, key: &str, value: &str) -> Result<(), HubError> {
        sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

fn user_from_row(row: &SqliteRow) -> Result<UserRecord, HubError> {
    let key: Option<Vec<u8>> = row.try_get("public_key")?;
    let key = key
        .map(|k| <[u8; 32]>::try_from(k.as_slice()).map(PublicKey))
        .transpose()
        .map_err(|_| sqlx::Error::Decode("stored key is not 32 bytes".into()))?;
    Ok(UserRecord {
        handle: row.try_get("handle")?,
        spelling: row.try_get("spelling")?,
        key,
        secret_hash: row.try_get("secret_hash")?,
        role: role_from(&row.try_get::<String, _>("role")?)?,
        quota: QuotaSetting::from_stored(row.try_get("quota")?),
        last_seen: row.try_get("last_seen")?,
        revoked: row.try_get::<i64, _>("revoked")? != 0,
    })
}

fn invite_from_row(row: &SqliteRow) -> Result<InviteInfo, HubError> {
    let uses: i64 = row.try_get("uses_left")?;
    Ok(InviteInfo {
        id: row.try_get("id")?,
        terms: InviteTerms {
            role: role_from(&row.try_get::<String, _>("role")?)?,
            uses: u32::try_from(uses).unwrap_or(0),
            expires_at: row.try_get("expires_at")?,
            quota: row.try_get::<Option<i64>, _>("quota")?.map(to_u64),
        },
        created_by: row.try_get("created_by")?,
        created_at: row.try_get("created_at")?,
    })
}

fn role_from(text: &str) -> Result<Role, HubError> {
    Role::parse(text)
        .ok_or_else(|| sqlx::Error::Decode(format!("unknown role '{text}'").into()).into())
}

fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn to_u64(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

impl Catalog {
    /// Deletes the invites the hub made itself (an unused owner invite).
    pub async fn remove_hub_invites(&self) -> Result<(), HubError> {
        sqlx::query("DELETE FROM invites WHERE created_by IS NULL")
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

impl Catalog {
    /// Notes that the entry `name` is a relayed copy.
    pub async fn mark_relayed(&self, name: &str, size: u64, now: i64) -> Result<(), HubError> {
        sqlx::query(
            "INSERT INTO relayed (name, size, kept_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO UPDATE SET size = excluded.size, kept_at = excluded.kept_at",
        )
        .bind(name)
        .bind(to_i64(size))
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Forgets that `name` was a relayed copy; whether it was one.
    pub async fn unmark_relayed(&self, name: &str) -> Result<bool, HubError> {
        let done = sqlx::query("DELETE FROM relayed WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Bytes the relayed copies take, and the oldest one's name.
    pub async fn relayed(&self) -> Result<(u64, Option<String>), HubError> {
        let total: Option<i64> = sqlx::query_scalar("SELECT sum(size) FROM relayed")
            .fetch_one(&self.pool)
            .await?;
        let oldest: Option<String> =
            sqlx::query_scalar("SELECT name FROM relayed ORDER BY kept_at, name LIMIT 1")
                .fetch_optional(&self.pool)
                .await?;
        Ok((total.map_or(0, to_u64), oldest))
    }
}

impl Catalog {
    /// The size of the entries that refer to the blob `hash`, if any do.
    pub async fn size_of_blob(
        &self,
        hash: &ferry_protocol::ContentHash,
    ) -> Result<Option<u64>, HubError> {
        let size: Option<i64> =
            sqlx::query_scalar("SELECT size FROM files WHERE hash = $1 LIMIT 1")
                .bind(&hash.0[..])
                .fetch_optional(&self.pool)
                .await?;
        Ok(size.map(to_u64))
    }
}
