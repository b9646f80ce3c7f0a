//! Metadata: registered handles and the store's file listing, in an embedded
//! SQLite database (WAL, `synchronous=FULL`). The SQL sticks to what SQLite
//! and PostgreSQL both accept, so a PostgreSQL arm can join this one.

use std::path::Path;
use std::time::Duration;

use ferry_protocol::{ContentHash, FileEntry, FileName, Handle};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlSafeStr, SqlitePool};

use crate::error::HubError;

/// `SELECT` of every file column, followed by the rest of the statement.
macro_rules! select_file {
    ($rest:literal) => {
        concat!(
            "SELECT name, size, hash, owner, modified FROM files ",
            $rest
        )
    };
}

/// Result of a login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginOutcome {
    /// The secret matches the handle's owner.
    Existing,
    /// The handle was free and now belongs to this secret.
    Registered,
    /// Nobody has the handle and registration was not asked for.
    Unknown,
    /// The handle belongs to another secret.
    Taken,
}

/// Handle to the metadata database.
#[derive(Debug, Clone)]
pub struct Catalog {
    pool: SqlitePool,
}

impl Catalog {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub async fn open(path: &Path) -> Result<Self, HubError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .pragma("cache_size", "-1024");
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await?;
        migrator().run(&pool).await?;
        Ok(Self { pool })
    }

    /// Logs `handle` in with a secret's hash, registering it if asked and free.
    pub async fn login(
        &self,
        handle: &Handle,
        secret_hash: &[u8; 32],
        register: bool,
        now: i64,
    ) -> Result<LoginOutcome, HubError> {
        let mut registered = false;
        if register {
            let inserted = sqlx::query(
                "INSERT INTO users (handle, secret_hash, created_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (handle) DO NOTHING",
            )
            .bind(handle.as_str())
            .bind(&secret_hash[..])
            .bind(now)
            .execute(&self.pool)
            .await?;
            registered = inserted.rows_affected() == 1;
        }
        let stored: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT secret_hash FROM users WHERE handle = $1")
                .bind(handle.as_str())
                .fetch_optional(&self.pool)
                .await?;
        Ok(match stored {
            None => LoginOutcome::Unknown,
            Some(hash) if hash != secret_hash[..] => LoginOutcome::Taken,
            Some(_) if registered => LoginOutcome::Registered,
            Some(_) => LoginOutcome::Existing,
        })
    }

    /// The entry called `name`, if any.
    pub async fn get(&self, name: &FileName) -> Result<Option<FileEntry>, HubError> {
        let row = sqlx::query(select_file!("WHERE name = $1"))
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| entry_from_row(&row)).transpose()
    }

    /// One page of entries in name order: those equal to or inside `prefix`,
    /// after the cursor `after`. Also says whether more follow.
    pub async fn list(
        &self,
        prefix: Option<&FileName>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<FileEntry>, bool), HubError> {
        // Names inside folder `p` sort between "p/" and "p0" ('0' follows '/').
        let sql = select_file!(
            "WHERE ($1 IS NULL OR name = $1 OR (name > $1 || '/' AND name < $1 || '0')) \
             AND ($2 IS NULL OR name > $2) ORDER BY name LIMIT $3"
        );
        let rows = sqlx::query(sql)
            .bind(prefix.map(FileName::as_str))
            .bind(after)
            .bind(i64::from(limit) + 1)
            .fetch_all(&self.pool)
            .await?;
        page(&rows, limit)
    }

    /// Entries whose lowercased name contains `term_lower` literally, up to
    /// `limit`; also says whether more matched.
    pub async fn search(
        &self,
        term_lower: &str,
        limit: u32,
    ) -> Result<(Vec<FileEntry>, bool), HubError> {
        let escaped: String = term_lower
            .chars()
            .flat_map(|c| match c {
                '%' | '_' | '\\' => vec!['\\', c],
                c => vec![c],
            })
            .collect();
        let rows = sqlx::query(select_file!(
            "WHERE lower(name) LIKE $1 ESCAPE '\\' ORDER BY name LIMIT $2"
        ))
        .bind(format!("%{escaped}%"))
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.pool)
        .await?;
        page(&rows, limit)
    }

    /// Inserts or replaces the entry with `entry.name`; returns the one replaced.
    pub async fn put(&self, entry: &FileEntry) -> Result<Option<FileEntry>, HubError> {
        let mut previous = self.put_many(std::slice::from_ref(entry)).await?;
        Ok(previous.pop().flatten())
    }

    /// Inserts or replaces every entry in one transaction (one disk flush);
    /// returns what each replaced.
    pub async fn put_many(
        &self,
        entries: &[FileEntry],
    ) -> Result<Vec<Option<FileEntry>>, HubError> {
        let mut tx = self.pool.begin().await?;
        let mut replaced = Vec::with_capacity(entries.len());
        for entry in entries {
            let previous = sqlx::query(select_file!("WHERE name = $1"))
                .bind(&entry.name)
                .fetch_optional(&mut *tx)
                .await?
                .map(|row| entry_from_row(&row))
                .transpose()?;
            sqlx::query(
                "INSERT INTO files (name, size, hash, owner, modified) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (name) DO UPDATE SET size = excluded.size, hash = excluded.hash, \
                 owner = excluded.owner, modified = excluded.modified",
            )
            .bind(&entry.name)
            .bind(
                i64::try_from(entry.size)
                    .map_err(|_| sqlx::Error::Protocol("size overflows".into()))?,
            )
            .bind(&entry.hash.0[..])
            .bind(&entry.owner)
            .bind(entry.modified)
            .execute(&mut *tx)
            .await?;
            replaced.push(previous);
        }
        tx.commit().await?;
        Ok(replaced)
    }

    /// Removes the entry called `name`; returns it.
    pub async fn delete(&self, name: &FileName) -> Result<Option<FileEntry>, HubError> {
        let row = sqlx::query(
            "DELETE FROM files WHERE name = $1 RETURNING name, size, hash, owner, modified",
        )
        .bind(name.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| entry_from_row(&row)).transpose()
    }

    /// Whether any entry still refers to the blob `hash`.
    pub async fn hash_in_use(&self, hash: &ContentHash) -> Result<bool, HubError> {
        let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM files WHERE hash = $1 LIMIT 1")
            .bind(&hash.0[..])
            .fetch_optional(&self.pool)
            .await?;
        Ok(found.is_some())
    }

    /// Closes the pool, checkpointing the WAL.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Rows fetched with `LIMIT limit + 1` as one page, and whether more follow.
fn page(rows: &[sqlx::sqlite::SqliteRow], limit: u32) -> Result<(Vec<FileEntry>, bool), HubError> {
    let mut entries = rows
        .iter()
        .map(entry_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let more = entries.len() > limit as usize;
    entries.truncate(limit as usize);
    Ok((entries, more))
}

fn entry_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<FileEntry, HubError> {
    let hash: Vec<u8> = row.try_get("hash")?;
    let hash = <[u8; 32]>::try_from(hash.as_slice())
        .map_err(|_| sqlx::Error::Decode("stored hash is not 32 bytes".into()))?;
    let size: i64 = row.try_get("size")?;
    Ok(FileEntry {
        name: row.try_get("name")?,
        size: u64::try_from(size).map_err(|_| sqlx::Error::Decode("negative size".into()))?,
        hash: ContentHash(hash),
        owner: row.try_get("owner")?,
        modified: row.try_get("modified")?,
    })
}

fn migrator() -> Migrator {
    let init = Migration::new(
        1,
        "init".into(),
        MigrationType::Simple,
        include_str!("../migrations/sqlite/0001_init.sql").into_sql_str(),
        false,
    );
    Migrator::with_migrations(vec![init])
}
