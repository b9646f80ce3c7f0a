//! Who is online and what they offer; substring search over it.
//!
//! Presence is ephemeral: it lives in memory, is lost on restart, and peers
//! re-announce when they reconnect. A peer is present exactly while its
//! `Share` connection is open (the session removes it on close, on a missed
//! heartbeat deadline, or on shutdown).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::Mutex;

use ferry_protocol::{FileName, Fingerprint, Hit, MAX_REFUSALS_LISTED, Offered, Response, Source};
use tokio::sync::mpsc;

/// Messages queued for a peer's connection (`Expect`, `PushRequest`).
pub type Outbox = mpsc::Sender<Response>;

/// A peer as the index knows it.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// Where other peers reach it.
    pub addr: SocketAddr,
    /// Its certificate.
    pub fingerprint: Fingerprint,
    /// Its connection's queue.
    pub outbox: Outbox,
}

struct Peer {
    session: u64,
    info: PeerInfo,
    files: BTreeMap<String, Offered>,
    /// Rebuilt on the first search after the offers change.
    haystack: Option<Haystack>,
}

/// Every offered name of a peer, lowercased, in one buffer separated by
/// `\n` (which no valid name contains), so a search is one `memmem` pass
/// over contiguous memory instead of 100,000 pointer chases.
struct Haystack {
    text: String,
    /// Start of each name in `text`, in `files` order.
    starts: Vec<usize>,
    names: Vec<String>,
}

impl Haystack {
    fn build(files: &BTreeMap<String, Offered>) -> Self {
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
    ) -> impl Iterator<Item = &'a str> + 'a {
        let mut last = None;
        finder
            .find_iter(self.text.as_bytes())
            .filter_map(move |at| {
                let index = self.starts.partition_point(|&start| start <= at) - 1;
                (last != Some(index)).then(|| {
                    last = Some(index);
                    self.names[index].as_str()
                })
            })
    }
}

/// The presence and offer index. Cheap to share behind an `Arc`.
pub struct Index {
    peers: Mutex<HashMap<String, Peer>>,
    max_offers_per_peer: usize,
}

impl Index {
    /// An empty index that lets each peer offer at most `max_offers_per_peer` files.
    pub fn new(max_offers_per_peer: usize) -> Self {
        Self {
            peers: Mutex::new(HashMap::new()),
            max_offers_per_peer,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Peer>> {
        self.peers.lock().expect("index lock is never poisoned")
    }

    /// Marks `handle` online for `session`, replacing an older session of
    /// the same handle (a reconnecting peer).
    pub fn join(&self, handle: &str, session: u64, info: PeerInfo) {
        let peer = Peer {
            session,
            info,
            files: BTreeMap::new(),
            haystack: None,
        };
        self.lock().insert(handle.to_owned(), peer);
    }

    /// Marks `handle` offline if `session` is still the current one.
    /// Returns whether it was.
    pub fn leave(&self, handle: &str, session: u64) -> bool {
        let mut peers = self.lock();
        if peers.get(handle).is_some_and(|p| p.session == session) {
            peers.remove(handle);
            return true;
        }
        false
    }

    /// Adds offers; invalid names and offers past the cap are refused.
    /// Returns the number now offered and the refusals.
    pub fn offer(
        &self,
        handle: &str,
        files: Vec<Offered>,
        replace_all: bool,
    ) -> (u32, Vec<String>) {
        let mut peers = self.lock();
        let Some(peer) = peers.get_mut(handle) else {
            return (0, vec!["not sharing".into()]);
        };
        peer.haystack = None;
        if replace_all {
            peer.files.clear();
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
            if peer.files.len() >= self.max_offers_per_peer && !peer.files.contains_key(&file.name)
            {
                refused.push(format!(
                    "{}: this hub takes at most {} offers per peer",
                    file.name, self.max_offers_per_peer
                ));
                continue;
            }
            peer.files.insert(file.name.clone(), file);
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
        let mut peers = self.lock();
        let Some(peer) = peers.get_mut(handle) else {
            return 0;
        };
        peer.haystack = None;
        for name in names {
            peer.files.remove(name);
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
        let mut peers = self.lock();
        let mut handles: Vec<String> = peers.keys().cloned().collect();
        handles.sort();
        let mut hits = Vec::new();
        for handle in handles {
            let peer = peers.get_mut(&handle).expect("handle listed above");
            let haystack = peer
                .haystack
                .get_or_insert_with(|| Haystack::build(&peer.files));
            let addr = peer.info.addr.to_string();
            for name in haystack.matches(&finder) {
                if hits.len() == limit {
                    return (hits, true);
                }
                let Some(file) = peer.files.get(name).cloned() else {
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
        }
        (hits, false)
    }

    /// The offer `name` of `owner`, with how to reach the owner.
    pub fn lookup(&self, owner: &str, name: &str) -> Option<(Offered, PeerInfo)> {
        let peers = self.lock();
        let peer = peers.get(owner)?;
        let file = peer.files.get(name)?;
        Some((file.clone(), peer.info.clone()))
    }

    /// The queue of `owner`'s connection, if online.
    pub fn outbox(&self, owner: &str) -> Option<Outbox> {
        self.lock().get(owner).map(|p| p.info.outbox.clone())
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
        }
    }

    #[test]
    fn search_is_case_insensitive_literal_and_bounded() {
        let index = Index::new(100);
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
        let index = Index::new(100);
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
        let index = Index::new(2);
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
        let index = Index::new(10);
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
}
