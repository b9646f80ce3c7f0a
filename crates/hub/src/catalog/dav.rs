//! What WebDAV needs of the catalog beyond files: folders as a tree
//! (children of a folder, whether one exists), collections made empty with
//! MKCOL, and dead properties. Folders with files in them need no row: a
//! name `a/b/c` makes `a` and `a/b` folders.

use ferry_protocol::FileEntry;
use sqlx::Row;

use super::Catalog;
use crate::error::HubError;

/// The children of one folder.
#[derive(Debug, Default)]
pub struct Children {
    /// Files directly inside.
    pub files: Vec<FileEntry>,
    /// Folders directly inside (full names).
    pub folders: Vec<String>,
}

/// A dead property: its namespace, local name, prefix and raw XML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadProp {
    /// XML namespace (`""`: none).
    pub namespace: String,
    /// Local name.
    pub local: String,
    /// The prefix it was set with.
    pub prefix: Option<String>,
    /// The element as sent.
    pub xml: Option<Vec<u8>>,
}

/// The first name after every name inside `folder/` (none of ours
/// contains the last code point, and SQLite orders text by its bytes).
fn past(folder: &str) -> String {
    format!("{folder}/\u{10FFFF}")
}

impl Catalog {
    /// Whether `name` is a folder: an empty collection, or a prefix of a file.
    pub async fn is_folder(&self, name: &str) -> Result<bool, HubError> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM collections WHERE name = $1 \
             UNION ALL SELECT 1 FROM (SELECT 1 FROM files WHERE name > $2 AND name < $3 LIMIT 1) \
             UNION ALL SELECT 1 FROM (SELECT 1 FROM collections WHERE name > $2 AND name < $3 LIMIT 1) \
             LIMIT 1",
        )
        .bind(name)
        .bind(format!("{name}/"))
        .bind(past(name))
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }

    /// What is directly inside `folder` (`""`: the root), at most `max` of
    /// each kind. A subfolder costs one query however many files it holds.
    pub async fn children(&self, folder: &str, max: usize) -> Result<Children, HubError> {
        let start = if folder.is_empty() {
            String::new()
        } else {
            format!("{folder}/")
        };
        let end = if folder.is_empty() {
            "\u{10FFFF}".to_owned()
        } else {
            past(folder)
        };
        let mut children = Children::default();
        let mut after = start.clone();
        while children.files.len() + children.folders.len() < max {
            let row = sqlx::query(
                "SELECT name, size, hash, owner, modified FROM files \
                 WHERE name > $1 AND name < $2 ORDER BY name LIMIT 1",
            )
            .bind(&after)
            .bind(&end)
            .fetch_optional(&self.pool)
            .await?;
            let Some(row) = row else { break };
            let entry = super::entry_from_row(&row)?;
            let rest = &entry.name[start.len()..];
            match rest.split_once('/') {
                Some((sub, _)) => {
                    let sub = format!("{start}{sub}");
                    after = past(&sub);
                    children.folders.push(sub);
                }
                None => {
                    after.clone_from(&entry.name);
                    children.files.push(entry);
                }
            }
        }
        let empty: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM collections WHERE name > $1 AND name < $2 ORDER BY name LIMIT $3",
        )
        .bind(&start)
        .bind(&end)
        .bind(i64::try_from(max).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        for name in empty {
            if !name[start.len()..].contains('/') && !children.folders.contains(&name) {
                children.folders.push(name);
            }
        }
        Ok(children)
    }

    /// Every file inside `folder`, at most `max` (`None`: more than that).
    pub async fn files_inside(
        &self,
        folder: &str,
        max: usize,
    ) -> Result<Option<Vec<FileEntry>>, HubError> {
        let rows = sqlx::query(
            "SELECT name, size, hash, owner, modified FROM files \
             WHERE name > $1 AND name < $2 ORDER BY name LIMIT $3",
        )
        .bind(format!("{folder}/"))
        .bind(past(folder))
        .bind(i64::try_from(max + 1).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await?;
        if rows.len() > max {
            return Ok(None);
        }
        rows.iter()
            .map(super::entry_from_row)
            .collect::<Result<_, _>>()
            .map(Some)
    }

    /// Records an empty collection; `false` if it was there.
    pub async fn add_collection(
        &self,
        name: &str,
        owner: &str,
        now: i64,
    ) -> Result<bool, HubError> {
        let done = sqlx::query(
            "INSERT INTO collections (name, owner, created_at) VALUES ($1, $2, $3) \
             ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(owner)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Forgets the collection `name` and every one inside it, with their
    /// properties.
    pub async fn remove_collections(&self, name: &str) -> Result<(), HubError> {
        let mut tx = self.pool.begin().await?;
        for table in ["collections", "dead_props"] {
            let sql = format!("DELETE FROM {table} WHERE name = $1 OR (name > $2 AND name < $3)");
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(name)
                .bind(format!("{name}/"))
                .bind(past(name))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Moves the collections and properties at and inside `from` to `to`.
    pub async fn move_collections(&self, from: &str, to: &str) -> Result<(), HubError> {
        let mut tx = self.pool.begin().await?;
        for table in ["collections", "dead_props"] {
            let sql = format!(
                "UPDATE {table} SET name = $4 || substr(name, length($1) + 1) \
                 WHERE name = $1 OR (name > $2 AND name < $3)"
            );
            sqlx::query(sqlx::AssertSqlSafe(sql))
                .bind(from)
                .bind(format!("{from}/"))
                .bind(past(from))
                .bind(to)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The dead properties of `name`.
    pub async fn dead_props(&self, name: &str) -> Result<Vec<DeadProp>, HubError> {
        let rows = sqlx::query(
            "SELECT namespace, local, prefix, xml FROM dead_props WHERE name = $1 ORDER BY namespace, local",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(DeadProp {
                    namespace: row.try_get("namespace")?,
                    local: row.try_get("local")?,
                    prefix: row.try_get("prefix")?,
                    xml: row.try_get("xml")?,
                })
            })
            .collect()
    }

    /// Sets (`Some`) or removes (`None`) dead properties of `name`, in one
    /// transaction.
    pub async fn patch_dead_props(
        &self,
        name: &str,
        patch: &[(DeadProp, bool)],
    ) -> Result<(), HubError> {
        let mut tx = self.pool.begin().await?;
        for (prop, set) in patch {
            if *set {
                sqlx::query(
                    "INSERT INTO dead_props (name, namespace, local, prefix, xml) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (name, namespace, local) DO UPDATE SET prefix = excluded.prefix, xml = excluded.xml",
                )
                .bind(name)
                .bind(&prop.namespace)
                .bind(&prop.local)
                .bind(&prop.prefix)
                .bind(&prop.xml)
                .execute(&mut *tx)
                .await?;
            } else {
                sqlx::query(
                    "DELETE FROM dead_props WHERE name = $1 AND namespace = $2 AND local = $3",
                )
                .bind(name)
                .bind(&prop.namespace)
                .bind(&prop.local)
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// Copies the dead properties of `from` to `to` (replacing `to`'s).
    pub async fn copy_dead_props(&self, from: &str, to: &str) -> Result<(), HubError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM dead_props WHERE name = $1")
            .bind(to)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO dead_props (name, namespace, local, prefix, xml) \
             SELECT $2, namespace, local, prefix, xml FROM dead_props WHERE name = $1",
        )
        .bind(from)
        .bind(to)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
