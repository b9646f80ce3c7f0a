//! Metadata: registered handles and the store's file listing, in an embedded
//! SQLite database (WAL, `synchronous=FULL`). The SQL sticks to what SQLite
//! and PostgreSQL both accept, so a PostgreSQL arm can join this one.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ferry_protocol::{ContentHash, FileEntry, FileName};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{QueryBuilder, Row, SqlSafeStr, Sqlite, SqliteConnection, SqlitePool};

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

mod access;
mod answers;
mod check;
pub mod dav;
mod reads;
mod tokens;

pub use access::{QuotaSetting, Redeemed, UserRecord};

/// Handle to the metadata database.
#[derive(Debug, Clone)]
pub struct Catalog {
    pool: SqlitePool,
    readers: Arc<reads::Readers>,
}

impl Catalog {
    /// Opens (creating if needed) the database at `path` and migrates it.
    pub async fn open(path: &Path) -> Result<Self, HubError> {
        check::quick_check(path)?;
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .pragma("cache_size", "-1024");
        // Each connection is a worker thread, and every query a round trip
        // to one; with WAL, readers run side by side. In the many-clients
        // benchmark two connections gave 4,307 requests/s and eight 7,238
        // (bench/results/20261122-223059 and -230227); 32 did no better in
        // a shorter check. Connections open on demand.
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        migrator().run(&pool).await?;
        let readers = Arc::new(reads::Readers::open(path)?);
        Ok(Self { pool, readers })
    }

    /// The entry called `name`, if any.
    pub async fn get(&self, name: &FileName) -> Result<Option<FileEntry>, HubError> {
        self.readers.get(name.as_str())
    }

    /// One page of entries in name order: those equal to or inside `prefix`,
    /// after the cursor `after`. Also says whether more follow.
    pub async fn list(
        &self,
        prefix: Option<&FileName>,
        after: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<FileEntry>, bool), HubError> {
        let prefix = prefix.map(FileName::as_str);
        let rows = self.readers.list(prefix, after, i64::from(limit) + 1)?;
        Ok(page(rows, limit))
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
        let rows = self
            .readers
            .search(&format!("%{escaped}%"), i64::from(limit) + 1)?;
        Ok(page(rows, limit))
    }

    /// Inserts or replaces the entry with `entry.name`; returns the one replaced.
    pub async fn put(&self, entry: &FileEntry) -> Result<Option<FileEntry>, HubError> {
        let mut previous = self.put_many(std::slice::from_ref(entry)).await?;
        Ok(previous.pop().flatten())
    }

    /// The entries called any of `names`, by name (kept answers first).
    pub async fn get_many(&self, names: &[&str]) -> Result<HashMap<String, FileEntry>, HubError> {
        self.readers.get_many(names)
    }

    /// Inserts or replaces every entry in one transaction (one disk flush);
    /// returns what each replaced. The names must be distinct.
    pub async fn put_many(
        &self,
        entries: &[FileEntry],
    ) -> Result<Vec<Option<FileEntry>>, HubError> {
        let names: Vec<&str> = entries.iter().map(|e| e.name.as_str()).collect();
        debug_assert_eq!(
            names.iter().collect::<std::collections::HashSet<_>>().len(),
            names.len(),
            "put_many takes distinct names"
        );
        // IMMEDIATE takes the write lock before the first read. A deferred
        // transaction reads on a snapshot and then fails outright
        // (SQLITE_BUSY_SNAPSHOT, which no busy timeout retries) when
        // another writer, a registration say, committed in between.
        let mut tx = self.pool.begin_with("BEGIN IMMEDIATE").await?;
        let mut previous = entries_named(&mut tx, &names).await?;
        for chunk in entries.chunks(BATCH) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO files (name, size, hash, owner, modified) ",
            );
            let mut oversized = false;
            insert.push_values(chunk, |mut row, entry| {
                let size = i64::try_from(entry.size).unwrap_or_else(|_| {
                    oversized = true;
                    i64::MAX
                });
                row.push_bind(entry.name.clone())
                    .push_bind(size)
                    .push_bind(entry.hash.0.to_vec())
                    .push_bind(entry.owner.clone())
                    .push_bind(entry.modified);
            });
            if oversized {
                return Err(sqlx::Error::Protocol("size overflows".into()).into());
            }
            insert.push(
                " ON CONFLICT (name) DO UPDATE SET size = excluded.size, hash = excluded.hash, \
                 owner = excluded.owner, modified = excluded.modified",
            );
            insert.build().execute(&mut *tx).await?;
        }
        let committed = tx.commit().await;
        self.readers.changed();
        committed?;
        Ok(entries
            .iter()
            .map(|entry| previous.remove(&entry.name))
            .collect())
    }

    /// Removes the entry called `name`, and its WebDAV properties (however
    /// it is deleted: a file later stored under the name starts bare);
    /// returns it.
    pub async fn delete(&self, name: &FileName) -> Result<Option<FileEntry>, HubError> {
        let removed = async {
            let mut tx = self.pool.begin().await?;
            let row = sqlx::query(
                "DELETE FROM files WHERE name = $1 RETURNING name, size, hash, owner, modified",
            )
            .bind(name.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            sqlx::query("DELETE FROM dead_props WHERE name = $1")
                .bind(name.as_str())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(row)
        }
        .await;
        self.readers.changed();
        removed?.map(|row| entry_from_row(&row)).transpose()
    }

    /// Renames the entry stored as `old` (a raw name from before names had
    /// one spelling) to `new`, unless `new` is taken; whether it moved.
    pub async fn rename_raw(&self, old: &str, new: &FileName) -> Result<bool, HubError> {
        let moved = sqlx::query(
            "UPDATE files SET name = $2 WHERE name = $1 \
             AND NOT EXISTS (SELECT 1 FROM files WHERE name = $2)",
        )
        .bind(old)
        .bind(new.as_str())
        .execute(&self.pool)
        .await?;
        self.readers.changed();
        Ok(moved.rows_affected() == 1)
    }

    /// Whether any entry still refers to the blob `hash`.
    pub async fn hash_in_use(&self, hash: &ContentHash) -> Result<bool, HubError> {
        self.readers.hash_in_use(hash)
    }

    /// Which of `hashes` some entry refers to.
    pub async fn referenced(
        &self,
        hashes: &[ContentHash],
    ) -> Result<std::collections::HashSet<ContentHash>, HubError> {
        self.readers.referenced(hashes)
    }

    /// Checkpoints the write-ahead log into the database file, emptying
    /// it, then closes the pool. Committed entries then live in the
    /// database file alone, which [`Self::open`] checks; left in the log,
    /// damage to it would lose them without a word (SQLite stops reading
    /// a log at its first bad frame).
    pub async fn close(&self) {
        let checkpoint = sqlx::query_scalar::<_, i64>("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&self.pool)
            .await;
        match checkpoint {
            Ok(0) => {}
            Ok(_) => tracing::warn!("catalog checkpoint at shutdown was blocked by a reader"),
            Err(e) => tracing::warn!("catalog checkpoint at shutdown failed: {e}"),
        }
        self.pool.close().await;
    }
}

/// Names looked up, or rows inserted, per statement: well under SQLite's
/// limit of 32,766 bound values.
const BATCH: usize = 500;

/// The entries called any of `names`, on one connection (or transaction).
async fn entries_named(
    connection: &mut SqliteConnection,
    names: &[&str],
) -> Result<HashMap<String, FileEntry>, HubError> {
    let mut found = HashMap::new();
    for chunk in names.chunks(BATCH) {
        let mut select = QueryBuilder::<Sqlite>::new(select_file!("WHERE name IN ("));
        let mut list = select.separated(", ");
        for name in chunk {
            list.push_bind(name.to_string());
        }
        select.push(")");
        for row in select.build().fetch_all(&mut *connection).await? {
            let entry = entry_from_row(&row)?;
            found.insert(entry.name.clone(), entry);
        }
    }
    Ok(found)
}

/// Rows fetched with `LIMIT limit + 1` as one page, and whether more follow.
fn page(mut entries: Vec<FileEntry>, limit: u32) -> (Vec<FileEntry>, bool) {
    let more = entries.len() > limit as usize;
    entries.truncate(limit as usize);
    (entries, more)
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
    let access = Migration::new(
        2,
        "access".into(),
        MigrationType::Simple,
        include_str!("../migrations/sqlite/0002_access.sql").into_sql_str(),
        false,
    );
    let spelling = Migration::new(
        3,
        "spelling".into(),
        MigrationType::Simple,
        include_str!("../migrations/sqlite/0003_spelling.sql").into_sql_str(),
        false,
    );
    let tokens = Migration::new(
        4,
        "tokens".into(),
        MigrationType::Simple,
        include_str!("../migrations/sqlite/0004_tokens.sql").into_sql_str(),
        false,
    );
    let dav = Migration::new(
        5,
        "dav".into(),
        MigrationType::Simple,
        include_str!("../migrations/sqlite/0005_dav.sql").into_sql_str(),
        false,
    );
    Migrator::with_migrations(vec![init, access, spelling, tokens, dav])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: String, byte: u8) -> FileEntry {
        FileEntry {
            name,
            size: 1,
            hash: ContentHash([byte; 32]),
            owner: "alice".into(),
            modified: 0,
        }
    }

    /// A new catalog in `dir` where the handle "alice" is registered.
    async fn catalog_with_alice(dir: &std::path::Path) -> Catalog {
        let catalog = Catalog::open(&dir.join("c.db")).await.unwrap();
        let alice = ferry_protocol::Handle::parse("alice").unwrap();
        let key = ferry_protocol::PublicKey([1; 32]);
        let role = ferry_protocol::Role::Member;
        catalog
            .register(&alice, "Alice", &key, role, QuotaSetting::Default, 0)
            .await
            .unwrap();
        catalog
    }

    /// More entries than one statement takes, half of them replacing.
    #[tokio::test]
    async fn batches_span_statements_and_report_what_they_replace() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = catalog_with_alice(dir.path()).await;
        let names: Vec<String> = (0..BATCH * 2 + 7).map(|i| format!("f{i:04}")).collect();
        let first: Vec<_> = names
            .iter()
            .step_by(2)
            .map(|n| entry(n.clone(), 1))
            .collect();
        let replaced = catalog.put_many(&first).await.unwrap();
        assert!(replaced.iter().all(Option::is_none));

        let second: Vec<_> = names.iter().map(|n| entry(n.clone(), 2)).collect();
        let replaced = catalog.put_many(&second).await.unwrap();
        for (i, previous) in replaced.iter().enumerate() {
            let expected = (i % 2 == 0).then(|| entry(names[i].clone(), 1));
            assert_eq!(previous, &expected, "entry {i}");
        }

        let wanted: Vec<&str> = names.iter().map(String::as_str).chain(["absent"]).collect();
        let found = catalog.get_many(&wanted).await.unwrap();
        assert_eq!(found.len(), names.len());
        assert!(found.values().all(|e| e.hash == ContentHash([2; 32])));
    }

    /// Listings, searches and lookups asked before a write answer anew
    /// after it, though their earlier answers were kept.
    #[tokio::test]
    async fn reads_see_every_write() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = catalog_with_alice(dir.path()).await;
        let name = FileName::parse("docs/a.txt").unwrap();
        let folder = FileName::parse("docs").unwrap();
        let reads = async || {
            let got = catalog.get(&name).await.unwrap();
            let (listed, _) = catalog.list(Some(&folder), None, 10).await.unwrap();
            let (found, _) = catalog.search("a.t", 10).await.unwrap();
            (got, listed, found)
        };
        for _ in 0..2 {
            assert_eq!(reads().await, (None, vec![], vec![]));
        }

        let first = entry(name.to_string(), 1);
        catalog.put(&first).await.unwrap();
        let one = vec![first.clone()];
        assert_eq!(reads().await, (Some(first.clone()), one.clone(), one));

        let second = entry(name.to_string(), 2);
        catalog.put(&second).await.unwrap();
        let one = vec![second.clone()];
        assert_eq!(reads().await, (Some(second), one.clone(), one));

        catalog.delete(&name).await.unwrap();
        assert_eq!(reads().await, (None, vec![], vec![]));
    }
}
