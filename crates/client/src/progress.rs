//! Progress reporting hooks. The library reports; the binary draws bars.

use ferry_protocol::FileEntry;

use crate::error::ClientError;

/// Something that happened during a transfer.
#[derive(Debug)]
pub enum TransferEvent<'a> {
    /// `n` more bytes were hashed, sent or received (or skipped by resuming).
    Bytes(u64),
    /// A file continues from `offset` bytes a previous attempt left.
    Resumed {
        /// The file.
        name: &'a str,
        /// Bytes already there.
        offset: u64,
    },
    /// A file finished.
    Done {
        /// The entry as the hub has it.
        entry: &'a FileEntry,
        /// The hub already had the bytes: none were sent.
        deduplicated: bool,
    },
    /// A file failed; the others go on.
    Failed {
        /// The file.
        name: &'a str,
        /// Why.
        error: &'a ClientError,
    },
}

/// Receives [`TransferEvent`]s. Implementations must be cheap: they are
/// called from the transfer loop.
pub trait Progress: Sync {
    /// Called for every event.
    fn event(&self, event: TransferEvent<'_>);
}

/// Ignores everything.
impl Progress for () {
    fn event(&self, _event: TransferEvent<'_>) {}
}
