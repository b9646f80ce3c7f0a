//! The audit log: `audit.log` in the data dir, append-only, one JSON object
//! a line — time, actor, action, target, source address, and `prev`, the
//! BLAKE3 hash of the line before it (64 zeros for the first). Changing,
//! removing or reordering any line breaks the chain at the next one;
//! [`verify`] (`ferry audit --verify FILE`) says where. Keep a copy of the
//! newest line's hash elsewhere to detect a log cut short at its end.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::publish::unix_now;

/// One line of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Seconds since the Unix epoch.
    pub time: i64,
    /// Who acted (a handle, or `-` before login).
    pub actor: String,
    /// What happened, e.g. `join`, `invite.create`, `refused`.
    pub action: String,
    /// What it happened to (a handle, an invite id, a file).
    pub target: String,
    /// The actor's address.
    pub source: String,
    /// Hex BLAKE3 of the previous line.
    pub prev: String,
}

/// The open log.
#[derive(Debug)]
pub struct AuditLog {
    path: PathBuf,
    state: Mutex<Tail>,
}

#[derive(Debug)]
struct Tail {
    file: File,
    last: blake3::Hash,
    /// Refusals that may still be written now (refilled over time), and
    /// those left out since the last one written.
    refusal_budget: f64,
    refilled: std::time::Instant,
    left_out: u64,
}

/// Refusals written per second at most: anyone may cause refusals, and the
/// log must not fill the disk for them.
pub const REFUSALS_PER_SECOND: f64 = 10.0;
/// Refusals written in one burst at most.
pub const REFUSAL_BURST: f64 = 100.0;

/// Where a chain broke.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// Reading failed.
    #[error("reading {path}: {source}")]
    Io {
        /// The log.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not a record or does not follow the one before it.
    #[error(
        "line {line} of the audit log does not follow the line before it ({why}): the log was changed"
    )]
    Broken {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        why: &'static str,
    },
}

const GENESIS: [u8; 32] = [0; 32];

impl AuditLog {
    /// Opens (creating, mode 0600) the log at `path`, checking its chain.
    /// A broken chain is reported, and new lines chain to the last line.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let last = match verify(path) {
            Ok((_, last)) => last,
            Err(ChainError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                blake3::Hash::from(GENESIS)
            }
            Err(ChainError::Io { source, .. }) => return Err(source),
            Err(broken) => {
                tracing::error!(
                    "{broken}; check it with `ferry audit --verify {}`",
                    path.display()
                );
                last_line_hash(path)?
            }
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)?;
        Ok(Self {
            path: path.to_owned(),
            state: Mutex::new(Tail {
                file,
                last,
                refusal_budget: REFUSAL_BURST,
                refilled: std::time::Instant::now(),
                left_out: 0,
            }),
        })
    }

    /// Appends a record of a refusal, unless refusals come faster than
    /// [`REFUSALS_PER_SECOND`]: those are counted, and the next refusal
    /// written says how many were left out.
    pub fn refusal(&self, actor: &str, action: &str, target: &str, source: Option<SocketAddr>) {
        let mut tail = self.state.lock().expect("audit lock is never poisoned");
        let now = std::time::Instant::now();
        let earned = now.duration_since(tail.refilled).as_secs_f64() * REFUSALS_PER_SECOND;
        tail.refusal_budget = (tail.refusal_budget + earned).min(REFUSAL_BURST);
        tail.refilled = now;
        if tail.refusal_budget < 1.0 {
            tail.left_out += 1;
            return;
        }
        tail.refusal_budget -= 1.0;
        let target = match std::mem::take(&mut tail.left_out) {
            0 => target.to_owned(),
            n => format!("{target} (and {n} refusals before it not logged: too many at once)"),
        };
        self.append(&mut tail, actor, action, &target, source);
    }

    /// Appends a record. A failed write is logged, never fatal: the
    /// action it records has happened.
    pub fn record(&self, actor: &str, action: &str, target: &str, source: Option<SocketAddr>) {
        let mut tail = self.state.lock().expect("audit lock is never poisoned");
        self.append(&mut tail, actor, action, target, source);
    }

    fn append(
        &self,
        tail: &mut Tail,
        actor: &str,
        action: &str,
        target: &str,
        source: Option<SocketAddr>,
    ) {
        let record = Record {
            time: unix_now(),
            actor: actor.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            source: source.map_or_else(|| "-".to_owned(), |s| s.ip().to_string()),
            prev: tail.last.to_hex().to_string(),
        };
        let line = serde_json::to_string(&record).expect("records serialize");
        match writeln!(tail.file, "{line}") {
            Ok(()) => tail.last = blake3::hash(line.as_bytes()),
            Err(e) => tracing::error!("could not write the audit log {}: {e}", self.path.display()),
        }
    }

    /// The newest `limit` lines, within `max_bytes` in all, oldest first.
    /// (Read without the writers' lock: the log only grows, and a line
    /// being written is not yet whole.)
    pub fn tail(&self, limit: usize, max_bytes: usize) -> std::io::Result<Vec<String>> {
        let mut kept = VecDeque::new();
        let mut bytes = 0;
        for line in BufReader::new(File::open(&self.path)?).lines() {
            let line = line?;
            bytes += line.len();
            kept.push_back(line);
            while kept.len() > limit || bytes > max_bytes {
                let Some(dropped) = kept.pop_front() else {
                    break;
                };
                bytes -= dropped.len();
            }
        }
        Ok(kept.into())
    }
}

/// Checks the chain of the log at `path`: the number of lines and the hash
/// of the last, or the first line that breaks it.
pub fn verify(path: &Path) -> Result<(usize, blake3::Hash), ChainError> {
    let io = |source| ChainError::Io {
        path: path.to_owned(),
        source,
    };
    let mut last = blake3::Hash::from(GENESIS);
    let mut count = 0;
    for (i, line) in BufReader::new(File::open(path).map_err(io)?)
        .lines()
        .enumerate()
    {
        let line = line.map_err(io)?;
        let line_no = i + 1;
        let record: Record = serde_json::from_str(&line).map_err(|_| ChainError::Broken {
            line: line_no,
            why: "not an audit record",
        })?;
        if record.prev != last.to_hex().as_str() {
            return Err(ChainError::Broken {
                line: line_no,
                why: "its prev is not the hash of the line before",
            });
        }
        last = blake3::hash(line.as_bytes());
        count = line_no;
    }
    Ok((count, last))
}

fn last_line_hash(path: &Path) -> std::io::Result<blake3::Hash> {
    let mut last = blake3::Hash::from(GENESIS);
    for line in BufReader::new(File::open(path)?).lines() {
        last = blake3::hash(line?.as_bytes());
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chain_verifies_and_breaks_where_a_line_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.log");
        let log = AuditLog::open(&path).unwrap();
        for n in 0..5 {
            log.record("alice", "invite.create", &format!("id{n}"), None);
        }
        drop(log);
        let reopened = AuditLog::open(&path).unwrap();
        reopened.record("alice", "users.revoke", "bob", None);
        assert_eq!(verify(&path).unwrap().0, 6);
        assert_eq!(reopened.tail(2, 1 << 20).unwrap().len(), 2);

        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, text.replacen("id2", "id9", 1)).unwrap();
        match verify(&path) {
            Err(ChainError::Broken { line, .. }) => assert_eq!(line, 4),
            other => panic!("expected a broken chain, got {other:?}"),
        }
    }
}
