//! Reads of the embedded catalog, run on the calling thread.
//!
//! sqlx runs each SQLite query on a worker thread of the connection, so
//! every query costs two thread wake-ups. Under the many-clients benchmark
//! that hand-off was the hub's biggest cost: perf put 40% of its CPU in
//! futex waits and wake-ups around sqlx's channel, for queries that take a
//! few microseconds. The reads here are bounded (point lookups, one page
//! of a listing, a substring search over a small table) and run inline on
//! read-only connections, which WAL lets run beside the writer. Writes stay
//! on sqlx, whose transaction sees its own rows.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use ferry_protocol::{ContentHash, FileEntry};
use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};

use super::answers::{Answers, Query};
use crate::error::HubError;

/// Idle connections kept for reuse; more open when needed (blocking
/// threads can read too) and the surplus closes after use.
const MAX_IDLE: usize = 4;

/// A small pool of read-only connections to the catalog file, and the
/// answers to repeated listings, searches and name lookups.
#[derive(Debug)]
pub(super) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    answers: Answers,
}

impl Readers {
    /// Readers of the database at `path`, which must already exist in WAL mode.
    pub(super) fn open(path: &Path) -> Result<Self, HubError> {
        let first = connect(path)?;
        Ok(Self {
            path: path.to_owned(),
            idle: Mutex::new(vec![first]),
            answers: Answers::default(),
        })
    }

    /// Runs `read` on an idle connection, opening one if none is free.
    fn with<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, HubError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let connection = match idle {
            Some(connection) => connection,
            None => connect(&self.path)?,
        };
        let result = read(&connection);
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_IDLE {
            idle.push(connection);
        }
        Ok(result?)
    }

    pub(super) fn get(&self, name: &str) -> Result<Option<FileEntry>, HubError> {
        let query = Query::Named(name.to_owned());
        let found = self.answers.answer(query, || {
            self.with(|c| by_name(c, name).map(Vec::from_iter))
        })?;
        Ok(found.into_iter().next())
    }

    /// Forgets the answers kept: the files table changed.
    pub(super) fn changed(&self) {
        self.answers.forget();
    }

    /// The entries called any of `names`, by name: one kept or cached
    /// point lookup each (a few microseconds), and no statement text to
    /// build per batch size.
    pub(super) fn get_many(&self, names: &[&str]) -> Result<HashMap<String, FileEntry>, HubError> {
        let mut found = HashMap::with_capacity(names.len());
        for name in names {
            if let Some(entry) = self.get(name)? {
                found.insert(entry.name.clone(), entry);
            }
        }
        Ok(found)
    }

    /// See [`super::Catalog::list`]; `limit` already includes the extra row.
    pub(super) fn list(
        &self,
        prefix: Option<&str>,
        after: Option<&str>,
        limit: i64,
    ) -> Result<Vec<FileEntry>, HubError> {
        // Names inside folder `p` sort between "p/" and "p0" ('0' follows '/').
        let sql = select_file!(
            "WHERE (?1 IS NULL OR name = ?1 OR (name > ?1 || '/' AND name < ?1 || '0')) \
             AND (?2 IS NULL OR name > ?2) ORDER BY name LIMIT ?3"
        );
        let query = Query::List {
            prefix: prefix.map(str::to_owned),
            after: after.map(str::to_owned),
            limit,
        };
        self.answers.answer(query, || {
            self.with(|c| collect(c, sql, params![prefix, after, limit]))
        })
    }

    /// Entries whose lowercased name is `LIKE` the escaped `pattern`.
    pub(super) fn search(&self, pattern: &str, limit: i64) -> Result<Vec<FileEntry>, HubError> {
        let sql = select_file!("WHERE lower(name) LIKE ?1 ESCAPE '\\' ORDER BY name LIMIT ?2");
        let query = Query::Search {
            pattern: pattern.to_owned(),
            limit,
        };
        self.answers.answer(query, || {
            self.with(|c| collect(c, sql, params![pattern, limit]))
        })
    }

    pub(super) fn hash_in_use(&self, hash: &ContentHash) -> Result<bool, HubError> {
        self.with(|c| in_use(c, hash))
    }

    /// Which of `hashes` some entry refers to.
    pub(super) fn referenced(
        &self,
        hashes: &[ContentHash],
    ) -> Result<HashSet<ContentHash>, HubError> {
        self.with(|c| {
            let mut found = HashSet::new();
            for hash in hashes {
                if !found.contains(hash) && in_use(c, hash)? {
                    found.insert(*hash);
                }
            }
            Ok(found)
        })
    }
}

fn connect(path: &Path) -> Result<Connection, HubError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection = Connection::open_with_flags(path, flags)?;
    // Readers only wait while a checkpoint resets the log; 1 MiB of page
    // cache each keeps the hub's memory small.
    connection.busy_timeout(Duration::from_secs(1))?;
    connection.pragma_update(None, "cache_size", -1024)?;
    // Without the query planner stability guarantee, binding a new value
    // to a `LIKE` pattern or a range bound expires the statement, and the
    // bundled SQLite (built with STAT4) compiled the search and listing
    // statements again on every call: 19% of the hub's CPU under load.
    connection.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(connection)
}

fn in_use(connection: &Connection, hash: &ContentHash) -> rusqlite::Result<bool> {
    connection
        .prepare_cached("SELECT 1 FROM files WHERE hash = ?1 LIMIT 1")?
        .query_row([&hash.0[..]], |_| Ok(()))
        .optional()
        .map(|found| found.is_some())
}

fn by_name(connection: &Connection, name: &str) -> rusqlite::Result<Option<FileEntry>> {
    connection
        .prepare_cached(select_file!("WHERE name = ?1"))?
        .query_row([name], entry)
        .optional()
}

fn collect(
    connection: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<Vec<FileEntry>> {
    connection
        .prepare_cached(sql)?
        .query_map(params, entry)?
        .collect()
}

/// A row of `select_file!`.
fn entry(row: &Row<'_>) -> rusqlite::Result<FileEntry> {
    let size: i64 = row.get(1)?;
    let size = u64::try_from(size).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(1, rusqlite::types::Type::Integer, e.into())
    })?;
    Ok(FileEntry {
        name: row.get(0)?,
        size,
        hash: ContentHash(row.get(2)?),
        owner: row.get(3)?,
        modified: row.get(4)?,
    })
}
