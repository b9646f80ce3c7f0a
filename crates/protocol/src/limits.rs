//! Hard limits shared by both ends. Every length read from the network is
//! checked against one of these before anything is allocated.

use std::time::Duration;

/// Version of the wire protocol carried in `Hello`/`Welcome`. Bump it when an
/// existing message changes shape; appending a new enum variant does not need it.
pub const PROTOCOL_VERSION: u32 = 1;

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

/// Most entries the hub puts in one `Listing` page.
pub const MAX_LIST_PAGE: u32 = 1000;

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

/// Most search hits the hub returns for one query.
pub const MAX_SEARCH_HITS: u32 = 1000;

/// Longest search term, in bytes.
pub const MAX_SEARCH_TERM: usize = 256;

/// Most offers carried in one `Offer` frame (bigger sets are split).
pub const MAX_OFFERS_PER_FRAME: usize = 2000;

/// How often a peer says it is alive.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(3);
