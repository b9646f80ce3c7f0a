//! Hard limits shared by both ends. Every length read from the network is
//! checked against one of these before anything is allocated.

use std::time::Duration;

/// Version of the wire protocol carried in `Hello`/`Welcome`. Bump it when an
/// existing message changes shape, or when an older peer would be sent what
/// it cannot handle (3: a deduplicated upload is answered with `Prove`);
/// appending a variant only the newer side sends does not need it.
pub const PROTOCOL_VERSION: u32 = 3;

/// Largest control frame (length prefix excluded). File bytes never travel in
/// frames, so 1 MiB leaves ample room for a page of listings.
pub const MAX_FRAME_LEN: usize = 1024 * 1024;

/// Longest file name, in bytes, including `/` separators.
pub const MAX_NAME_LEN: usize = 1024;

/// Longest single path component, in bytes (the usual `NAME_MAX`).
pub const MAX_COMPONENT_LEN: usize = 255;

/// Longest handle, in bytes.
pub const MAX_HANDLE_LEN: usize = 32;

/// Longest free-text string (agent names, error messages) accepted in a frame.
pub const MAX_TEXT_LEN: usize = 4096;

/// Largest frame a hub reads before login: room for a `Hello` with the
/// longest agent string, or a `Login`, and no more. Every connection may
/// hold one unfinished frame, so this is what a connection that has proved
/// nothing can make the hub buffer.
pub const MAX_PRE_LOGIN_FRAME_LEN: usize = MAX_TEXT_LEN + 256;

/// Longest peer address the hub puts in a hit or grant: a `SocketAddr`'s
/// text, at most `[` + 39 + `%` + 10 + `]:` + 5 = 58 bytes for IPv6 with a
/// scope id.
pub const MAX_ADDR_LEN: usize = 64;

/// Most bytes postcard spends on one `u64` or `i64` (a varint).
const MAX_VARINT_LEN: usize = 10;

/// Bytes postcard spends on a string of at most `len` bytes: its length as
/// a varint (7 bits a byte), then the bytes.
const fn encoded_str(len: usize) -> usize {
    let mut prefix = 1;
    while len >> (7 * prefix) != 0 {
        prefix += 1;
    }
    prefix + len
}

/// Room a page spends besides its items: the message's tag, the item
/// count, flags. Generous, so that a page of the largest legal items can
/// never pass [`MAX_FRAME_LEN`].
const PAGE_OVERHEAD: usize = 64;

/// Largest encoded `FileEntry`: the longest name, any size, a hash, the
/// longest handle, any time.
pub const MAX_ENCODED_ENTRY: usize =
    encoded_str(MAX_NAME_LEN) + MAX_VARINT_LEN + 32 + encoded_str(MAX_HANDLE_LEN) + MAX_VARINT_LEN;

/// Largest encoded `Offered`: the longest name, any size, a hash.
pub const MAX_ENCODED_OFFER: usize = encoded_str(MAX_NAME_LEN) + MAX_VARINT_LEN + 32;

/// Largest encoded `Hit`: an offer plus the larger source (a peer's handle
/// and address).
pub const MAX_ENCODED_HIT: usize =
    MAX_ENCODED_OFFER + 1 + encoded_str(MAX_HANDLE_LEN) + encoded_str(MAX_ADDR_LEN);

/// Most entries the hub puts in one `Listing` page: as many of the largest
/// legal entries as fit one frame, so that no set of names, however long,
/// can make a page the hub cannot send.
pub const MAX_LIST_PAGE: u32 = ((MAX_FRAME_LEN - PAGE_OVERHEAD) / MAX_ENCODED_ENTRY) as u32;

/// Size of the buffers used to stream file bodies: small enough that bytes
/// copied out of the page cache are still in the core's cache when they
/// are encrypted or hashed (a 1 GiB put's client spent 1.0 s of system
/// time with 256 KiB reads, 0.65 s with 64 KiB).
pub const CHUNK_LEN: usize = 64 * 1024;

/// Uploads at most this large are sent eagerly (header and bytes without
/// waiting for the hub), so many small files pipeline with no round trip each.
pub const EAGER_UPLOAD_MAX: u64 = 1024 * 1024;

/// Default deadline for the opening handshake (TLS plus `Hello`).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Default deadline for any single read or write of a body to make progress.
pub const STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Least a received body must move within every stall period (about
/// 2 KiB/s at the default 30 s): a deadline per read alone would let one
/// byte every few seconds keep a transfer, and its connection, for ever.
pub const MIN_BODY_PROGRESS: u64 = 64 * 1024;

/// Most search hits the hub returns for one query: as many of the largest
/// legal hits as fit one frame.
pub const MAX_SEARCH_HITS: u32 = ((MAX_FRAME_LEN - PAGE_OVERHEAD) / MAX_ENCODED_HIT) as u32;

/// Longest search term, in bytes.
pub const MAX_SEARCH_TERM: usize = 256;

/// Most offers carried in one `Offer` frame, and names in one `Withdraw`
/// (bigger sets are split): as many of the largest legal offers as fit.
pub const MAX_OFFERS_PER_FRAME: usize = (MAX_FRAME_LEN - PAGE_OVERHEAD) / MAX_ENCODED_OFFER;

/// Most refusals an `Offered` reply lists; past it, one last line counts
/// the rest.
pub const MAX_REFUSALS_LISTED: usize = 64;

/// Longest refusal line in an `Offered` reply: a name and a short reason.
pub const MAX_REFUSAL_LEN: usize = MAX_NAME_LEN + 128;

/// How long a grant stays usable, on the hub (for a relay) and on the
/// peer (for a direct fetch) alike.
pub const GRANT_LIFETIME: Duration = Duration::from_secs(120);

/// How often a peer says it is alive.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3);

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use tokio_util::codec::Encoder;

    use super::*;
    use crate::{ContentHash, FileEntry, Hit, MessageCodec, Offered, Request, Response, Source};

    fn longest(len: usize) -> String {
        "n".repeat(len)
    }

    fn largest_offer() -> Offered {
        Offered {
            name: longest(MAX_NAME_LEN),
            size: u64::MAX,
            hash: ContentHash([0xff; 32]),
        }
    }

    fn encoded_len<T: serde::Serialize>(message: &T) -> usize {
        let mut wire = BytesMut::new();
        MessageCodec::<(), T>::new()
            .encode(message, &mut wire)
            .expect("the largest legal message fits a frame");
        wire.len()
    }

    #[test]
    fn the_largest_legal_listing_page_fits_a_frame() {
        let entry = FileEntry {
            name: longest(MAX_NAME_LEN),
            size: u64::MAX,
            hash: ContentHash([0xff; 32]),
            owner: longest(MAX_HANDLE_LEN),
            modified: i64::MIN,
        };
        let entries = vec![entry; MAX_LIST_PAGE as usize];
        let len = encoded_len(&Response::Listing {
            entries,
            more: true,
        });
        assert!(len <= MAX_FRAME_LEN + 4, "{len}");
        const { assert!(MAX_LIST_PAGE >= 900, "pages stay large") };
    }

    #[test]
    fn the_largest_legal_search_page_fits_a_frame() {
        let hit = Hit {
            file: largest_offer(),
            source: Source::Peer {
                handle: longest(MAX_HANDLE_LEN),
                addr: longest(MAX_ADDR_LEN),
            },
        };
        let hits = vec![hit; MAX_SEARCH_HITS as usize];
        let len = encoded_len(&Response::SearchResults {
            hits,
            truncated: true,
        });
        assert!(len <= MAX_FRAME_LEN + 4, "{len}");
    }

    #[test]
    fn the_largest_legal_offer_and_withdrawal_fit_a_frame() {
        let files = vec![largest_offer(); MAX_OFFERS_PER_FRAME];
        let offer = encoded_len(&Request::Offer {
            files,
            replace_all: true,
        });
        let names = vec![longest(MAX_NAME_LEN); MAX_OFFERS_PER_FRAME];
        let withdraw = encoded_len(&Request::Withdraw { names });
        let refused = vec![longest(MAX_REFUSAL_LEN); MAX_REFUSALS_LISTED + 1];
        let answer = encoded_len(&Response::Offered {
            total: u32::MAX,
            refused,
        });
        for len in [offer, withdraw, answer] {
            assert!(len <= MAX_FRAME_LEN + 4, "{len}");
        }
    }

    #[test]
    fn a_string_costs_its_bytes_and_a_varint_length() {
        assert_eq!(encoded_str(0), 1);
        assert_eq!(encoded_str(127), 128);
        assert_eq!(encoded_str(128), 130);
        assert_eq!(encoded_str(MAX_NAME_LEN), MAX_NAME_LEN + 2);
    }
}
