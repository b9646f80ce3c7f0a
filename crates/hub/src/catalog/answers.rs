//! Recent answers to catalog reads, reused until the file listing changes.
//!
//! Many clients polling the same listing, search or file name would each
//! cost a SQLite read transaction: two `fcntl` lock calls and a statement
//! stepped over the rows. Under the many-clients benchmark that was a fifth
//! of the hub's CPU. Answers are kept here until the next write to the
//! files table, which this process makes (the embedded catalog has one
//! writer). A catalog shared by several hubs would have to forget answers
//! on the other hubs' writes too (through its change feed), or not keep any.
//!
//! An answer read while a write commits must not outlive the write: every
//! write ends with [`Answers::forget`], which clears the map and moves the
//! generation on, and an answer is kept only if the generation it was read
//! in is still current. A lookup between the commit and `forget` may see
//! the old answer, as if it came just before the commit; the writer's
//! caller is not told of its write before `forget` either.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};

use ferry_protocol::FileEntry;

use crate::error::HubError;

/// Bytes of answers kept at most (names and owners, plus a fixed cost per
/// entry); past it everything is dropped and the cache fills again.
const MAX_BYTES: usize = 1 << 20;

/// Entries per answer past which an answer is not kept: big pages are
/// rarely asked for twice, and would crowd out the rest.
const MAX_ENTRIES: usize = 128;

/// A read whose answer is a list of entries (zero or one for a name).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum Query {
    Named(String),
    List {
        prefix: Option<String>,
        after: Option<String>,
        limit: i64,
    },
    Search {
        pattern: String,
        limit: i64,
    },
}

/// The cache; see the module documentation.
#[derive(Debug, Default)]
pub(super) struct Answers {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Moves on at every write to the files table.
    generation: u64,
    kept: HashMap<Query, Vec<FileEntry>>,
    bytes: usize,
}

impl Answers {
    /// The answer to `query`: a kept one, else `read`'s, which is kept if
    /// no write ended while it ran.
    pub(super) fn answer(
        &self,
        query: Query,
        read: impl FnOnce() -> Result<Vec<FileEntry>, HubError>,
    ) -> Result<Vec<FileEntry>, HubError> {
        let generation = {
            let state = self.lock();
            if let Some(kept) = state.kept.get(&query) {
                return Ok(kept.clone());
            }
            state.generation
        };
        let entries = read()?;
        if entries.len() <= MAX_ENTRIES {
            self.keep(generation, query, &entries);
        }
        Ok(entries)
    }

    /// Drops every answer; called after each write to the files table.
    pub(super) fn forget(&self) {
        let mut state = self.lock();
        state.generation += 1;
        state.kept.clear();
        state.bytes = 0;
    }

    fn keep(&self, generation: u64, query: Query, entries: &[FileEntry]) {
        let cost = cost(&query, entries);
        let mut state = self.lock();
        if state.generation != generation || state.kept.contains_key(&query) {
            return; // a write ended since the read began, or a reader kept it
        }
        if state.bytes + cost > MAX_BYTES {
            state.kept.clear();
            state.bytes = 0;
        }
        state.bytes += cost;
        state.kept.insert(query, entries.to_vec());
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Approximate bytes an answer holds.
fn cost(query: &Query, entries: &[FileEntry]) -> usize {
    let key = match query {
        Query::Named(name) => name.len(),
        Query::List { prefix, after, .. } => {
            prefix.as_ref().map_or(0, String::len) + after.as_ref().map_or(0, String::len)
        }
        Query::Search { pattern, .. } => pattern.len(),
    };
    let entries: usize = entries
        .iter()
        .map(|entry| 96 + entry.name.len() + entry.owner.len())
        .sum();
    128 + key + entries
}

#[cfg(test)]
mod tests {
    use ferry_protocol::ContentHash;

    use super::*;

    fn entry(name: &str) -> FileEntry {
        FileEntry {
            name: name.into(),
            size: 1,
            hash: ContentHash([1; 32]),
            owner: "alice".into(),
            modified: 0,
        }
    }

    fn named(name: &str) -> Query {
        Query::Named(name.into())
    }

    #[test]
    fn an_answer_is_reused_until_a_write() {
        let answers = Answers::default();
        let mut reads = 0;
        let mut ask = |answers: &Answers| {
            answers
                .answer(named("a"), || {
                    reads += 1;
                    Ok(vec![entry("a")])
                })
                .unwrap()
        };
        assert_eq!(ask(&answers), vec![entry("a")]);
        assert_eq!(ask(&answers), vec![entry("a")]);
        answers.forget();
        ask(&answers);
        assert_eq!(reads, 2, "read once, then again after the write");
    }

    #[test]
    fn an_answer_read_across_a_write_is_not_kept() {
        let answers = Answers::default();
        let stale = answers
            .answer(named("a"), || {
                answers.forget(); // a write ends while the read runs
                Ok(Vec::new())
            })
            .unwrap();
        assert!(stale.is_empty());
        let fresh = answers.answer(named("a"), || Ok(vec![entry("a")]));
        assert_eq!(fresh.unwrap(), vec![entry("a")]);
    }

    #[test]
    fn failures_and_big_answers_are_not_kept_and_memory_is_bounded() {
        let answers = Answers::default();
        let failed = answers.answer(named("a"), || Err(rusqlite::Error::InvalidQuery.into()));
        assert!(failed.is_err());
        assert!(answers.lock().kept.is_empty());

        let big: Vec<_> = (0..=MAX_ENTRIES).map(|i| entry(&i.to_string())).collect();
        let query = Query::Search {
            pattern: "%".into(),
            limit: 1000,
        };
        answers.answer(query, || Ok(big)).unwrap();
        assert!(answers.lock().kept.is_empty());

        let long = "x".repeat(4000);
        for i in 0..1000 {
            let name = format!("{long}{i}");
            answers
                .answer(named(&name), || Ok(vec![entry(&name)]))
                .unwrap();
            assert!(answers.lock().bytes <= MAX_BYTES);
        }
    }
}
