//! Connection slots per source address, so that one host never locks out
//! another (OpenSSH's `PerSourceMaxStartups`, vsftpd's `max_per_ip`).
//!
//! Every connection holds a [`Slot`] from accept to close. A source may
//! hold at most `max_per_source` connections in all, and at most
//! `max_unverified_per_source` that have not proved anything yet (logged
//! in to a hub, presented a grant to a peer): those cost a TLS handshake
//! and a task while proving nothing. IPv6 sources are counted per /64, the
//! block one host usually has. The hub's accept loop and a sharing peer's
//! both use it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex, MutexGuard};

/// Open and not-yet-verified connections of one source.
#[derive(Debug, Default, Clone, Copy)]
struct Count {
    open: usize,
    unverified: usize,
}

/// Why a connection was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Full {
    /// The source holds its share of connections.
    Source,
    /// The source holds its share of connections that proved nothing yet.
    Unverified,
}

/// The per-source counts, shared by the accept loop and every session.
#[derive(Debug)]
pub struct Sources {
    counts: Mutex<HashMap<IpAddr, Count>>,
    max_per_source: usize,
    max_unverified_per_source: usize,
}

impl Sources {
    /// Counts for a server that admits `max_per_source` connections per
    /// source, `max_unverified_per_source` of them unverified.
    pub fn new(max_per_source: usize, max_unverified_per_source: usize) -> Arc<Self> {
        Arc::new(Self {
            counts: Mutex::new(HashMap::new()),
            max_per_source,
            max_unverified_per_source,
        })
    }

    /// A slot for a new connection from `ip`, unless its source is full.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Full> {
        let source = source_of(ip);
        let mut counts = self.lock();
        let count = counts.entry(source).or_default();
        if count.open >= self.max_per_source {
            return Err(Full::Source);
        }
        if count.unverified >= self.max_unverified_per_source {
            return Err(Full::Unverified);
        }
        count.open += 1;
        count.unverified += 1;
        Ok(Slot {
            sources: Arc::clone(self),
            source,
            verified: false,
        })
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, Count>> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    fn count(&self, ip: IpAddr) -> Option<(usize, usize)> {
        let counts = self.lock();
        counts.get(&source_of(ip)).map(|c| (c.open, c.unverified))
    }
}

/// One admitted connection; gives its place back when dropped.
#[derive(Debug)]
pub struct Slot {
    sources: Arc<Sources>,
    source: IpAddr,
    verified: bool,
}

impl Slot {
    /// The connection proved itself: it no longer counts as unverified.
    pub fn verified(&mut self) {
        if !self.verified {
            self.verified = true;
            if let Some(count) = self.sources.lock().get_mut(&self.source) {
                count.unverified -= 1;
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.sources.lock();
        if let Some(count) = counts.get_mut(&self.source) {
            count.open -= 1;
            if !self.verified {
                count.unverified -= 1;
            }
            if count.open == 0 {
                counts.remove(&self.source);
            }
        }
    }
}

/// The address a source is counted under: IPv4 as is (also when mapped
/// into IPv6), IPv6 by its /64.
pub fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = v6.to_bits() & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from_bits(prefix))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[test]
    fn a_full_source_leaves_room_for_others() {
        let sources = Sources::new(3, 2);
        let mut first = sources.admit(A).unwrap();
        let _second = sources.admit(A).unwrap();
        assert_eq!(sources.admit(A).unwrap_err(), Full::Unverified);
        first.verified();
        let _third = sources.admit(A).unwrap();
        assert_eq!(sources.admit(A).unwrap_err(), Full::Source);
        let _other = sources.admit(B).unwrap();
        assert_eq!(sources.count(A), Some((3, 2)));
    }

    #[test]
    fn closing_gives_the_place_back_and_forgets_idle_sources() {
        let sources = Sources::new(1, 1);
        let mut slot = sources.admit(A).unwrap();
        slot.verified();
        slot.verified();
        assert_eq!(sources.count(A), Some((1, 0)));
        drop(slot);
        assert_eq!(sources.count(A), None);
        drop(sources.admit(A).unwrap());
        assert_eq!(sources.count(A), None);
    }

    #[test]
    fn ipv6_hosts_count_per_64_and_mapped_ipv4_as_ipv4() {
        let sources = Sources::new(1, 1);
        let _one: Slot = sources.admit("2001:db8:0:1::1".parse().unwrap()).unwrap();
        let same_block = sources.admit("2001:db8:0:1:ffff::2".parse().unwrap());
        assert_eq!(same_block.unwrap_err(), Full::Source);
        assert!(sources.admit("2001:db8:0:2::1".parse().unwrap()).is_ok());
        let _v4 = sources.admit(A).unwrap();
        let mapped = sources.admit("::ffff:10.0.0.1".parse().unwrap());
        assert_eq!(mapped.unwrap_err(), Full::Source);
    }
}
