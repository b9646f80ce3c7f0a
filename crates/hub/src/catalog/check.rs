//! Is the catalog file sound? Checked before the hub uses it, so a
//! damaged database is refused with its name instead of read silently as
//! an emptier one.

use std::path::Path;

use rusqlite::{Connection, OpenFlags};

use crate::error::HubError;

/// Runs SQLite's `quick_check` on the database at `path` (if it exists):
/// every page readable, every b-tree well formed. Any finding, or a file
/// SQLite cannot read as a database at all, is [`HubError::Damaged`].
pub(super) fn quick_check(path: &Path) -> Result<(), HubError> {
    if !path.exists() {
        return Ok(());
    }
    let damaged = |detail: String| HubError::Damaged {
        path: path.to_owned(),
        detail,
    };
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let connection =
        Connection::open_with_flags(path, flags).map_err(|e| damaged(e.to_string()))?;
    let findings: Vec<String> = connection
        .prepare("PRAGMA quick_check(20)")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| row.get::<_, String>(0))?
                .collect::<Result<_, _>>()
        })
        .map_err(|e| damaged(e.to_string()))?;
    if findings == ["ok"] {
        return Ok(());
    }
    Err(damaged(findings.join("; ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sound_database_passes_and_a_scribbled_one_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.db");
        let db = Connection::open(&path).unwrap();
        db.execute_batch(
            "CREATE TABLE t (k TEXT PRIMARY KEY, v BLOB); \
             WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) \
             INSERT INTO t SELECT 'key' || i, randomblob(100) FROM n;",
        )
        .unwrap();
        drop(db);
        quick_check(&path).unwrap();

        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle..middle + 4096].fill(0xA5);
        std::fs::write(&path, bytes).unwrap();
        let err = quick_check(&path).unwrap_err();
        assert!(err.to_string().contains("c.db"), "{err}");
    }
}
