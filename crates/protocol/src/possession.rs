//! Proof of possession: a hash is not a key.
//!
//! A negotiated upload whose hash the store already holds would need no
//! bytes. Before it is listed, the hub asks the client to prove it has the
//! bytes, not just their hash (which `ls --json` shows to anyone): it sends
//! a fresh random nonce and byte ranges it picked from it, and the client
//! answers with BLAKE3 keyed by the nonce over those ranges of its file. The
//! hub computes the same over the stored blob; only a match creates the
//! entry. A claimant without the file would have to guess every byte of
//! every range.

use serde::{Deserialize, Serialize};

/// Ranges a challenge asks for.
pub const PROOF_RANGES: usize = 16;

/// Bytes in one range.
pub const PROOF_RANGE_LEN: u32 = 4096;

/// A span of a file.
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ByteRange {
    /// First byte.
    pub offset: u64,
    /// Number of bytes.
    pub len: u32,
}

/// The answer to a challenge: keyed BLAKE3 over the ranges asked for.
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PossessionProof(pub [u8; 32]);

/// The ranges a challenge with `nonce` asks of a file of `size` bytes:
/// [`PROOF_RANGES`] spans of [`PROOF_RANGE_LEN`] at offsets drawn from the
/// nonce (the whole file, when it is that small).
pub fn challenge_ranges(nonce: &[u8; 32], size: u64) -> Vec<ByteRange> {
    let len = u64::from(PROOF_RANGE_LEN);
    if size <= len * PROOF_RANGES as u64 {
        return vec![ByteRange {
            offset: 0,
            len: u32::try_from(size).expect("at most 64 KiB"),
        }];
    }
    let mut draws = blake3::Hasher::new_derive_key("ferry possession ranges v1");
    draws.update(nonce);
    let mut reader = draws.finalize_xof();
    (0..PROOF_RANGES)
        .map(|_| {
            let mut word = [0; 8];
            reader.fill(&mut word);
            ByteRange {
                offset: u64::from_le_bytes(word) % (size - len + 1),
                len: PROOF_RANGE_LEN,
            }
        })
        .collect()
}

/// Whether `ranges` is a challenge a client should answer for a file of
/// `size` bytes: the whole of a small file, or no more ranges than a
/// challenge holds, each inside the file and no longer than
/// [`PROOF_RANGE_LEN`], so a hub cannot make a client read much.
pub fn ranges_are_reasonable(ranges: &[ByteRange], size: u64) -> bool {
    let whole_small = u64::from(PROOF_RANGE_LEN) * PROOF_RANGES as u64;
    if let [only] = ranges
        && only.offset == 0
        && u64::from(only.len) == size
        && size <= whole_small
    {
        return true;
    }
    ranges.len() <= PROOF_RANGES
        && ranges.iter().all(|r| {
            r.len <= PROOF_RANGE_LEN
                && r.offset
                    .checked_add(u64::from(r.len))
                    .is_some_and(|end| end <= size)
        })
}

/// Computes a [`PossessionProof`]: feed it each range's bytes in order.
#[derive(Debug, Clone)]
pub struct Prover(blake3::Hasher);

impl Prover {
    /// A proof for the challenge `nonce`.
    pub fn new(nonce: &[u8; 32]) -> Self {
        Self(blake3::Hasher::new_keyed(nonce))
    }

    /// Adds the bytes of `range`.
    pub fn range(&mut self, range: ByteRange, bytes: &[u8]) {
        self.0.update(&range.offset.to_le_bytes());
        self.0.update(&range.len.to_le_bytes());
        self.0.update(bytes);
    }

    /// The proof.
    pub fn finish(&self) -> PossessionProof {
        PossessionProof(*self.0.finalize().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prove(nonce: &[u8; 32], data: &[u8]) -> PossessionProof {
        let mut prover = Prover::new(nonce);
        for r in challenge_ranges(nonce, data.len() as u64) {
            let start = usize::try_from(r.offset).unwrap();
            prover.range(r, &data[start..start + r.len as usize]);
        }
        prover.finish()
    }

    #[test]
    fn only_the_bytes_prove_and_each_nonce_asks_anew() {
        let data: Vec<u8> = (0..(3 << 20)).map(|i| (i * 7 % 251) as u8).collect();
        let (a, b) = ([1; 32], [2; 32]);
        assert_eq!(prove(&a, &data), prove(&a, &data));
        assert_ne!(
            prove(&a, &data),
            prove(&b, &data),
            "a proof cannot be replayed"
        );
        let ranges = challenge_ranges(&a, data.len() as u64);
        assert_eq!(ranges.len(), PROOF_RANGES);
        assert!(ranges_are_reasonable(&ranges, data.len() as u64));
        let mut other = data.clone();
        let hit = usize::try_from(ranges[5].offset).unwrap();
        other[hit] ^= 1;
        assert_ne!(prove(&a, &data), prove(&a, &other));
        let small = challenge_ranges(&a, 100);
        assert_eq!(
            small,
            [ByteRange {
                offset: 0,
                len: 100
            }]
        );
        assert!(!ranges_are_reasonable(
            &[ByteRange {
                offset: 0,
                len: 101
            }],
            100
        ));
        let greedy = [ByteRange {
            offset: 0,
            len: 1 << 20,
        }];
        assert!(!ranges_are_reasonable(&greedy, 2 << 20), "no big reads");
        let wide = [ByteRange {
            offset: 0,
            len: 64 << 10,
        }; PROOF_RANGES];
        assert!(!ranges_are_reasonable(&wide, 2 << 20), "nor many long ones");
    }
}
