//! Who is online and what they offer; substring search over it.
//!
//! Presence is ephemeral: it lives in memory, is lost on restart, and peers
//! re-announce when they reconnect. A peer is present exactly while its
//! `Share` connection is open (the session removes it on close, on a missed
//! heartbeat deadline, or on shutdown).
//!
//! Memory is bounded: each peer offers at most `per_peer` files, and all
//! peers together at most `total` files whose names take at most
//! `total_bytes`, counted as the index holds them (each name once, shared
//! by the offer and the search list, plus its lowercased copy for search).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use ferry_protocol::{
    ContentHash, FileName, Fingerprint, Hit, MAX_REFUSALS_LISTED, Offered, Response, Source,
};
use tokio::sync::mpsc;

/// Messages queued for a peer's connection (`Expect`, `PushRequest`).
pub type Outbox = mpsc::Sender<Response>;

/// Bytes one offer costs besides its name's two copies: its size and hash,
/// the map node, the search list's slot and start.
const OFFER_OVERHEAD: usize = 128;

/// What the index holds for one offer of `name`.
fn cost(name: &str) -> usize {
    2 * name.len() + OFFER_OVERHEAD
}

/// How much the index takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfferLimits {
    /// Files one peer may offer.
    pub per_peer: usize,
    /// Files all peers together may offer.
    pub total: usize,
    /// Bytes all offers together may take in memory.
    pub total_bytes: usize,
}

/// A peer as the index knows it.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// Where other peers reach it.
    pub addr: SocketAddr,
    /// Its certificate.
    pub fingerprint: Fingerprint,
    /// Its connection's queue.
    pub outbox: Outbox,
    /// It lets the hub keep copies of what is relayed from it.
    pub copies: bool,
}

/// An offer's facts besides its name (the map's key).
#[derive(Debug, Clone, Copy)]
struct Facts {
    size: u64,
    hash: ContentHash,
}

struct Peer {
    session: u64,
    info: PeerInfo,
    files: BTreeMap<Arc<str>, Facts>,
    /// What `files` costs (see [`cost`]).
    bytes: usize,
    /// Rebuilt on the first search after the offers change.
    haystack: Option<Haystack>,
}

impl Peer {
    fn offered(&self, name: &Arc<str>) -> Option<Offered> {
        self.files.get(name).map(|facts| Offered {
            name: name.to_string(),
            size: facts.size,
            hash: facts.hash,
        })
    }
}

/// Every offered name of a peer, lowercased, in one buffer separated by
/// `\n` (which no valid name contains), so a search is one `memmem` pass
/// over contiguous memory instead of 100,000 pointer chases.
struct Haystack {
    text: String,
    /// Start of each name in `text`, in `files` order.
    starts: Vec<usize>,
    /// The names themselves, shared with `files`.
    names: Vec<Arc<str>>,
}

impl Haystack {
    fn build(files: &BTreeMap<Arc<str>, Facts>) -> Self {
        let mut text = String::new();
        let mut starts = Vec::with_capacity(files.len());
        for name in files.keys() {
            starts.push(text.len());
            text.push_str(&name.to_lowercase());
            text.push('\n');
        }
        Self {
            text,
            starts,
            names: files.keys().cloned().collect(),
        }
    }

    /// Names containing the needle, each once, in order.
    fn matches<'a>(
        &'a self,
        finder: &'a memchr::memmem::Finder<'_>,
    ) -> impl Iterator<Item = &'a Arc<str>> + 'a {
        let mut last = None;
        finder
            .find_iter(self.text.as_bytes())
            .filter_map(move |at| {
                let index = self.starts.partition_point(|&start| start <= at) - 1;
                (last != Some(index)).then(|| {
                    last = Some(index);
                    &self.names[index]
                })
            })
    }
}

/// Everything behind the index's lock.
#[derive(Default)]
struct State {
    peers: HashMap<String, Peer>,
    /// Offers of all peers.
    offers: usize,
    /// What they cost.
    bytes: usize,
}

impl State {
    /// Takes `handle`'s peer out of the totals and the map.
    fn remove(&mut self, handle: &str) {
        if let Some(peer) = self.peers.remove(handle) {
            self.offers -= peer.files.len();
            self.bytes -= peer.bytes;
        }
    }
}

/// The presence and offer index. Cheap to share behind an `Arc`.
pub struct Index {
    state: Mutex<State>,
    limits: OfferLimits,
}

impl Index {
    /// An empty index within `limits`.
    pub fn new(limits: OfferLimits) -> Self {
        Self {
            state: Mutex::new(State::default()),
            limits,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("index lock is never poisoned")
    }

    /// Marks `handle` online for `session`, replacing an older session of
    /// the same handle (a reconnecting peer).
    pub fn join(&self, handle: &str, session: u64, info: PeerInfo) {
        let peer = Peer {
            session,
            info,
            files: BTreeMap::new(),
            bytes: 0,
            haystack: None,
        };
        let mut state = self.lock();
        state.remove(handle);
        state.peers.insert(handle.to_owned(), peer);
    }

    /// Marks `handle` offline if `session` is still the current one.
    /// Returns whether it was.
    pub fn leave(&self, handle: &str, session: u64) -> bool {
        let mut state = self.lock();
        if state
            .peers
            .get(handle)
            .is_some_and(|p| p.session == session)
        {
            state.remove(handle);
            return true;
        }
        false
    }

    /// Adds offers; invalid names and offers past a limit are refused.
    /// Returns the number now offered and the refusals.
    pub fn offer(
        &self,
        handle: &str,
        files: Vec<Offered>,
        replace_all: bool,
    ) -> (u32, Vec<String>) {
        let limits = self.limits;
        let mut guard = self.lock();
        let state = &mut *guard;
        let Some(peer) = state.peers.get_mut(handle) else {
            return (0, vec!["not sharing".into()]);
        };
        peer.haystack = None;
        if replace_all {
            state.offers -= peer.files.len();
            state.bytes -= peer.bytes;
            peer.files.clear();
            peer.bytes = 0;
        }
        let mut refused = Vec::new();
        for file in files {
            if let Err(e) = FileName::parse(&file.name) {
                refused.push(format!(
                    "{:?}: {e}",
                    file.name.chars().take(64).collect::<String>()
                ));
                continue;
            }
            let facts = Facts {
                size: file.size,
                hash: file.hash,
            };
            if let Some(held) = peer.files.get_mut(file.name.as_str()) {
                *held = facts;
                continue;
            }
            let full = if peer.files.len() >= limits.per_peer {
                Some(format!(
                    "this hub takes at most {} offers per peer",
                    limits.per_peer
                ))
            } else if state.offers >= limits.total
                || state.bytes + cost(&file.name) > limits.total_bytes
            {
                Some("this hub's index is full; try again when other peers offer less".into())
            } else {
                None
            };
            if let Some(reason) = full {
                refused.push(format!("{}: {reason}", file.name));
                continue;
            }
            let bytes = cost(&file.name);
            peer.files.insert(Arc::from(file.name), facts);
            peer.bytes += bytes;
            state.offers += 1;
            state.bytes += bytes;
        }
        if refused.len() > MAX_REFUSALS_LISTED {
            let rest = refused.len() - MAX_REFUSALS_LISTED;
            refused.truncate(MAX_REFUSALS_LISTED);
            refused.push(format!("and {rest} more refused"));
        }
        (count(peer.files.len()), refused)
    }

    /// Removes offers; returns the number still offered.
    pub fn withdraw(&self, handle: &str, names: &[String]) -> u32 {
        let mut guard = self.lock();
        let state = &mut *guard;
        let Some(peer) = state.peers.get_mut(handle) else {
            return 0;
        };
        peer.haystack = None;
        for name in names {
            if peer.files.remove(name.as_str()).is_some() {
                peer.bytes -= cost(name);
                state.offers -= 1;
                state.bytes -= cost(name);
            }
        }
        count(peer.files.len())
    }

    /// Offers whose lowercased name contains `term_lower`, up to `limit`;
    /// also says whether more matched.
    pub fn search(&self, term_lower: &str, limit: usize) -> (Vec<Hit>, bool) {
        if term_lower.contains('\n') {
            return (Vec::new(), false);
        }
        // One searcher per query: building it per name costs more than the scan.
        let finder = memchr::memmem::Finder::new(term_lower.as_bytes());
        let mut state = self.lock();
        let mut handles: Vec<String> = state.peers.keys().cloned().collect();
        handles.sort();
        let mut hits = Vec::new();
        for handle in handles {
            let peer = state.peers.get_mut(&handle).expect("handle listed above");
            let haystack = peer
                .haystack
                .take()
                .unwrap_or_else(|| Haystack::build(&peer.files));
            let addr = peer.info.addr.to_string();
            let mut full = false;
            for name in haystack.matches(&finder) {
                if hits.len() == limit {
                    full = true;
                    break;
                }
                let Some(file) = peer.offered(name) else {
                    continue;
                };
                hits.push(Hit {
                    file,
                    source: Source::Peer {
                        handle: handle.clone(),
                        addr: addr.clone(),
                    },
                });
            }
            peer.haystack = Some(haystack);
            if full {
                return (hits, true);
            }
        }
        (hits, false)
    }

    /// The offer `name` of `owner`, with how to reach the owner.
    pub fn lookup(&self, owner: &str, name: &str) -> Option<(Offered, PeerInfo)> {
        let state = self.lock();
        let peer = state.peers.get(owner)?;
        let (name, facts) = peer.files.get_key_value(name)?;
        let file = Offered {
            name: name.to_string(),
            size: facts.size,
            hash: facts.hash,
        };
        Some((file, peer.info.clone()))
    }

    /// Whether `owner` is online and lets the hub keep relayed copies.
    pub fn allows_copies(&self, owner: &str) -> bool {
        self.lock().peers.get(owner).is_some_and(|p| p.info.copies)
    }

    /// The queue of `owner`'s connection, if online.
    pub fn outbox(&self, owner: &str) -> Option<Outbox> {
        self.lock().peers.get(owner).map(|p| p.info.outbox.clone())
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_protocol::ContentHash;

    fn offered(name: &str) -> Offered {
        Offered {
            name: name.into(),
            size: 1,
            hash: ContentHash::of(name.as_bytes()),
        }
    }

    fn info() -> PeerInfo {
        PeerInfo {
            addr: "127.0.0.1:1".parse().unwrap(),
            fingerprint: Fingerprint::of_certificate(b"c"),
            outbox: mpsc::channel(1).0,
            copies: false,
        }
    }

    /// `per_peer` files each, room for ten such peers, 256 MiB.
    fn per_peer(per_peer: usize) -> OfferLimits {
        OfferLimits {
            per_peer,
            total: per_peer * 10,
            total_bytes: 256 << 20,
        }
    }

    #[test]
    fn search_is_case_insensitive_literal_and_bounded() {
        let index = Index::new(per_peer(100));
        index.join("bob", 1, info());
        let (total, refused) = index.offer(
            "bob",
            vec![offered("Holiday.JPG"), offered("notes%_.txt"), offered("x")],
            false,
        );
        assert_eq!((total, refused.len()), (3, 0));
        assert_eq!(index.search("holiday", 10).0.len(), 1);
        assert_eq!(index.search("%_", 10).0.len(), 1, "wildcards are literal");
        assert_eq!(index.search("", 10).0.len(), 3);
        let (hits, truncated) = index.search("", 2);
        assert_eq!((hits.len(), truncated), (2, true));
    }

    #[test]
    fn search_sees_offers_and_withdrawals_made_after_an_earlier_search() {
        let index = Index::new(per_peer(100));
        index.join("bob", 1, info());
        index.offer("bob", vec![offered("a.txt"), offered("b.txt")], false);
        assert_eq!(index.search("txt", 10).0.len(), 2);
        index.withdraw("bob", &["a.txt".to_owned()]);
        let names: Vec<_> = index
            .search("txt", 10)
            .0
            .into_iter()
            .map(|h| h.file.name)
            .collect();
        assert_eq!(names, ["b.txt"]);
        index.offer("bob", vec![offered("c.TXT")], false);
        assert_eq!(index.search("c.t", 10).0.len(), 1);
        assert!(
            index.search("txt\nb", 10).0.is_empty(),
            "a match never spans two names"
        );
    }

    #[test]
    fn hostile_names_and_floods_are_refused_per_offer() {
        let index = Index::new(per_peer(2));
        index.join("eve", 1, info());
        let (total, refused) = index.offer(
            "eve",
            vec![
                offered("../etc/passwd"),
                offered("a\x1bb"),
                offered("ok1"),
                offered("ok2"),
                offered("ok3"),
            ],
            false,
        );
        assert_eq!(total, 2);
        assert_eq!(refused.len(), 3);
        assert!(index.lookup("eve", "../etc/passwd").is_none());
    }

    #[test]
    fn only_the_current_session_can_take_a_peer_offline() {
        let index = Index::new(per_peer(10));
        index.join("bob", 1, info());
        index.join("bob", 2, info());
        assert!(
            !index.leave("bob", 1),
            "a stale session does not remove the new one"
        );
        assert!(index.outbox("bob").is_some());
        assert!(index.leave("bob", 2));
        assert!(index.outbox("bob").is_none());
    }

    #[test]
    fn the_hub_wide_budget_holds_across_peers_and_is_given_back() {
        let limits = OfferLimits {
            per_peer: 10,
            total: 15,
            total_bytes: usize::MAX,
        };
        let index = Index::new(limits);
        index.join("a", 1, info());
        index.join("b", 2, info());
        let many = |p: &str| (0..10).map(|i| offered(&format!("{p}{i}"))).collect();
        assert_eq!(index.offer("a", many("a"), false), (10, vec![]));
        let (total, refused) = index.offer("b", many("b"), false);
        assert_eq!((total, refused.len()), (5, 5));
        assert!(refused[0].contains("index is full"), "{refused:?}");
        // Replacing an offer costs nothing more; leaving gives room back.
        assert_eq!(
            index.offer("b", vec![offered("b0")], false).1,
            Vec::<String>::new()
        );
        assert!(index.leave("a", 1));
        assert_eq!(index.offer("b", many("b"), true), (10, vec![]));
        index.withdraw("b", &["b1".to_owned(), "nope".to_owned()]);
        assert_eq!(index.lock().offers, 9);
        assert_eq!(index.lock().bytes, 9 * cost("b0"));
    }

    #[test]
    fn the_byte_budget_refuses_what_would_pass_it() {
        let limits = OfferLimits {
            per_peer: 100,
            total: 100,
            total_bytes: 3 * cost("x0"),
        };
        let index = Index::new(limits);
        index.join("a", 1, info());
        let names = (0..5).map(|i| offered(&format!("x{i}"))).collect();
        let (total, refused) = index.offer("a", names, false);
        assert_eq!((total, refused.len()), (3, 2));
    }
}
