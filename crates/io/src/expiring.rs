//! A table whose entries expire a fixed time after they were put in, and
//! which holds at most a fixed number: the grants a hub issued, the grants
//! a peer was told to expect. Entries leave oldest first, so expiring is a
//! look at the front of a queue, never a scan of the whole table.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Entries with one lifetime and a cap on how many are live.
#[derive(Debug)]
pub struct Expiring<K, V> {
    lifetime: Duration,
    cap: usize,
    entries: HashMap<K, (Instant, V)>,
    /// Keys in the order they went in, with when they expire; a key may
    /// still be here after it was taken out (then its instant no longer
    /// matches `entries`).
    order: VecDeque<(Instant, K)>,
}

impl<K: Hash + Eq + Clone, V> Expiring<K, V> {
    /// An empty table whose entries live `lifetime` and number at most `cap`.
    pub fn new(lifetime: Duration, cap: usize) -> Self {
        Self {
            lifetime,
            cap,
            entries: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Puts `value` in under `key`, unless the table is full of live
    /// entries (then `value` comes back). Expired entries are handed to
    /// `expired` as they leave.
    pub fn insert(&mut self, key: K, value: V, expired: impl FnMut(V)) -> Result<(), V> {
        let now = Instant::now();
        self.expire(now, expired);
        if self.entries.len() >= self.cap && !self.entries.contains_key(&key) {
            return Err(value);
        }
        let expires = now + self.lifetime;
        self.entries.insert(key.clone(), (expires, value));
        self.order.push_back((expires, key));
        if self.order.len() > 2 * self.cap.max(1) {
            // Taken-out keys would otherwise pile up until they expire.
            let entries = &self.entries;
            self.order
                .retain(|(at, key)| entries.get(key).is_some_and(|(e, _)| e == at));
        }
        Ok(())
    }

    /// The live entry under `key`.
    pub fn get(&self, key: &K) -> Option<&V> {
        let (expires, value) = self.entries.get(key)?;
        (*expires > Instant::now()).then_some(value)
    }

    /// The live entry under `key`, to change.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let now = Instant::now();
        let (expires, value) = self.entries.get_mut(key)?;
        (*expires > now).then_some(value)
    }

    /// Takes out the entry under `key`, if it is still live.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let (expires, value) = self.entries.remove(key)?;
        (expires > Instant::now()).then_some(value)
    }

    /// Takes out the entry under `key`, live or expired but not yet swept.
    pub fn take(&mut self, key: &K) -> Option<V> {
        self.entries.remove(key).map(|(_, value)| value)
    }

    /// Live and not yet swept entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the table holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Takes out every expired entry, handing each to `expired`.
    pub fn sweep(&mut self, expired: impl FnMut(V)) {
        self.expire(Instant::now(), expired);
    }

    fn expire(&mut self, now: Instant, mut expired: impl FnMut(V)) {
        while let Some((at, _)) = self.order.front() {
            if *at > now {
                break;
            }
            let (at, key) = self.order.pop_front().expect("front exists");
            if self.entries.get(&key).is_some_and(|(e, _)| *e == at) {
                let (_, value) = self.entries.remove(&key).expect("checked above");
                expired(value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_table_refuses_until_something_leaves() {
        let mut table = Expiring::new(Duration::from_secs(60), 2);
        table.insert(1, "a", drop).unwrap();
        table.insert(2, "b", drop).unwrap();
        assert_eq!(table.insert(3, "c", drop), Err("c"));
        assert_eq!(table.remove(&1), Some("a"));
        table.insert(3, "c", drop).unwrap();
        assert_eq!(table.get(&3), Some(&"c"));
        assert_eq!(table.len(), 2);
    }

    #[test]
    fn entries_expire_oldest_first_and_are_handed_back() {
        let mut table = Expiring::new(Duration::ZERO, 10);
        table.insert(1, "a", drop).unwrap();
        assert_eq!(table.get(&1), None, "a zero lifetime is over at once");
        let mut gone = Vec::new();
        table.insert(2, "b", |v| gone.push(v)).unwrap();
        assert_eq!(gone, ["a"]);
        assert_eq!(table.len(), 1);
    }

    #[test]
    fn churn_does_not_grow_the_queue_past_twice_the_cap() {
        let mut table = Expiring::new(Duration::from_secs(60), 4);
        for i in 0..10_000 {
            table.insert(i, i, drop).unwrap();
            assert_eq!(table.remove(&i), Some(i));
        }
        assert!(table.order.len() <= 8);
        assert!(table.is_empty());
    }
}
