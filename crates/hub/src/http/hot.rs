//! The verified bytes of small blobs sent lately, kept in memory.
//!
//! A small GET used to open, read and hash its blob every time: with the
//! page cache warm that was still 15% of the hub's CPU under wrk (an
//! `openat2`, two reads and a close per request). Blobs are named by their
//! hash and never change, so bytes once checked against that hash stay
//! right for as long as they are kept: nothing has to be invalidated. A
//! deleted file is not served from here, because the catalog is asked
//! first; a blob that rots on disk after it was read is served as it was
//! when it was good.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use bytes::Bytes;
use ferry_protocol::ContentHash;

/// Memory kept in all, entries' bookkeeping included. Small against the
/// hub's other memory, and enough for a few hundred of the files a page
/// or a script fetches over and over.
const CAPACITY: usize = 8 << 20;

/// What an entry costs beyond its bytes: the map's slot, the list's, the
/// shared buffer's header and the allocator's rounding. Counted so that
/// a flood of tiny files cannot hold more than [`CAPACITY`].
const ENTRY_COST: usize = 128;

/// The largest blob kept: one that size leaves room for 15 others.
const LARGEST: usize = CAPACITY / 16;

/// Small blobs' verified bytes, by hash, up to [`CAPACITY`] in all.
#[derive(Debug, Default)]
pub(crate) struct HotBlobs {
    kept: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    /// Each blob's bytes and its place in `order`.
    blobs: HashMap<ContentHash, (Bytes, usize)>,
    /// The kept hashes, for picking one at random to drop.
    order: Vec<ContentHash>,
    cost: usize,
    /// State of the generator that picks what to drop.
    dice: u64,
}

impl HotBlobs {
    /// The bytes of the blob `hash`, if they are kept.
    pub(crate) fn get(&self, hash: &ContentHash) -> Option<Bytes> {
        self.lock().blobs.get(hash).map(|(bytes, _)| bytes.clone())
    }

    /// Keeps `bytes`, which hash to `hash`, making room by dropping others
    /// at random (random replacement costs no bookkeeping per hit and does
    /// nearly as well as LRU for a cache this size).
    pub(crate) fn keep(&self, hash: ContentHash, bytes: Bytes) {
        if bytes.len() > LARGEST {
            return;
        }
        let mut kept = self.lock();
        if kept.blobs.contains_key(&hash) {
            return;
        }
        let cost = bytes.len() + ENTRY_COST;
        while kept.cost + cost > CAPACITY && !kept.order.is_empty() {
            let victim = kept.roll() % kept.order.len();
            kept.drop_at(victim);
        }
        let at = kept.order.len();
        kept.blobs.insert(hash, (bytes, at));
        kept.order.push(hash);
        kept.cost += cost;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Kept {
    /// The next number of a linear congruential generator (Knuth's
    /// MMIX constants): plenty for choosing what to evict.
    fn roll(&mut self) -> usize {
        self.dice = self
            .dice
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.dice >> 33) as usize
    }

    /// Drops the entry at `at` in `order`, moving the last one into its place.
    fn drop_at(&mut self, at: usize) {
        let hash = self.order.swap_remove(at);
        if let Some((bytes, _)) = self.blobs.remove(&hash) {
            self.cost -= bytes.len() + ENTRY_COST;
        }
        if let Some(moved) = self.order.get(at).copied()
            && let Some((_, place)) = self.blobs.get_mut(&moved)
        {
            *place = at;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u32) -> ContentHash {
        ContentHash::from(blake3::hash(&n.to_le_bytes()))
    }

    fn consistent(kept: &Kept) {
        assert_eq!(kept.blobs.len(), kept.order.len());
        for (at, hash) in kept.order.iter().enumerate() {
            assert_eq!(kept.blobs[hash].1, at);
        }
        let cost: usize = kept.blobs.values().map(|(b, _)| b.len() + ENTRY_COST).sum();
        assert_eq!(kept.cost, cost);
        assert!(kept.cost <= CAPACITY);
    }

    #[test]
    fn keeps_what_fits_and_makes_room_for_more() {
        let hot = HotBlobs::default();
        let blob = Bytes::from(vec![7; 64 << 10]);
        let fits = CAPACITY / (blob.len() + ENTRY_COST);
        for n in 0..fits as u32 * 3 {
            hot.keep(hash(n), blob.clone());
            consistent(&hot.lock());
        }
        assert_eq!(hot.lock().blobs.len(), fits);
        let newest = hash(fits as u32 * 3 - 1);
        assert_eq!(hot.get(&newest), Some(blob.clone()));
        // Keeping the same blob twice counts it once.
        hot.keep(newest, blob);
        consistent(&hot.lock());
        // Those dropped were picked across the whole cache, not from one end.
        let survivors = (0..fits as u32 * 2)
            .filter(|&n| hot.get(&hash(n)).is_some())
            .count();
        assert!(survivors > 0, "older entries survive random replacement");
    }

    #[test]
    fn tiny_blobs_are_counted_with_their_bookkeeping() {
        let hot = HotBlobs::default();
        for n in 0..(CAPACITY / ENTRY_COST) as u32 + 10 {
            hot.keep(hash(n), Bytes::from_static(b"x"));
        }
        let kept = hot.lock();
        consistent(&kept);
        assert!(kept.blobs.len() < CAPACITY / ENTRY_COST);
    }

    #[test]
    fn large_blobs_are_not_kept() {
        let hot = HotBlobs::default();
        hot.keep(hash(1), Bytes::from(vec![0; LARGEST + 1]));
        assert_eq!(hot.get(&hash(1)), None);
    }
}
