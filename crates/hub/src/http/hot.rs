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

/// Bytes kept in all. Small against the hub's other memory, and enough for
/// a few hundred of the files a page or a script fetches over and over.
const CAPACITY: usize = 8 << 20;

/// Small blobs' verified bytes, by hash, up to [`CAPACITY`] bytes in all.
#[derive(Debug, Default)]
pub(crate) struct HotBlobs {
    kept: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    blobs: HashMap<ContentHash, Bytes>,
    bytes: usize,
}

impl HotBlobs {
    /// The bytes of the blob `hash`, if they are kept.
    pub(crate) fn get(&self, hash: &ContentHash) -> Option<Bytes> {
        self.lock().blobs.get(hash).cloned()
    }

    /// Keeps `bytes`, which hash to `hash`, making room by dropping others
    /// (whichever the map yields first: random replacement, which costs no
    /// bookkeeping per hit and does nearly as well as LRU for a cache this
    /// size).
    pub(crate) fn keep(&self, hash: ContentHash, bytes: Bytes) {
        if bytes.len() > CAPACITY / 16 {
            return;
        }
        let mut kept = self.lock();
        while kept.bytes + bytes.len() > CAPACITY {
            let Some(victim) = kept.blobs.keys().next().copied() else {
                break;
            };
            let dropped = kept.blobs.remove(&victim).map_or(0, |b| b.len());
            kept.bytes -= dropped;
        }
        let size = bytes.len();
        if let Some(old) = kept.blobs.insert(hash, bytes) {
            kept.bytes -= old.len();
        }
        kept.bytes += size;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u32) -> ContentHash {
        ContentHash::from(blake3::hash(&n.to_le_bytes()))
    }

    #[test]
    fn keeps_what_fits_and_makes_room_for_more() {
        let hot = HotBlobs::default();
        let blob = Bytes::from(vec![7; 64 << 10]);
        let fits = CAPACITY / blob.len();
        for n in 0..fits as u32 * 2 {
            hot.keep(hash(n), blob.clone());
            assert!(hot.lock().bytes <= CAPACITY);
        }
        assert_eq!(hot.lock().blobs.len(), fits);
        assert_eq!(hot.get(&hash(fits as u32 * 2 - 1)), Some(blob.clone()));
        // Keeping the same blob twice counts it once.
        hot.keep(hash(0), blob.clone());
        hot.keep(hash(0), blob);
        let kept = hot.lock();
        assert_eq!(kept.bytes, kept.blobs.len() * (64 << 10));
    }

    #[test]
    fn large_blobs_are_not_kept() {
        let hot = HotBlobs::default();
        hot.keep(hash(1), Bytes::from(vec![0; CAPACITY / 16 + 1]));
        assert_eq!(hot.get(&hash(1)), None);
    }
}
