//! The hub's error type: what failed, with the facts a log line needs.

use std::io;
use std::path::{Path, PathBuf};

use ferry_io::body::BodyError;
use ferry_protocol::{ErrorCode, FrameError};

/// Failures inside the hub. Only [`HubError::code`] and a short message
/// ever reach a client; paths and internal details stay in the log.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// A filesystem operation failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// The step that failed.
        what: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The metadata database failed.
    #[error("catalog: {0}")]
    Catalog(#[from] sqlx::Error),
    /// A read of the metadata database failed.
    #[error("catalog read: {0}")]
    CatalogRead(#[from] rusqlite::Error),
    /// The database schema could not be brought up to date.
    #[error("catalog migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// Setting up TLS failed.
    #[error("tls: {0}")]
    Tls(String),
    /// A frame could not be read or written.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// A body transfer failed.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// A relay between two clients broke off.
    #[error("relay: {0}")]
    Relay(String),
    /// The client sent something out of turn; the connection is closed.
    #[error("protocol: {0}")]
    Protocol(&'static str),
    /// Another hub serves this data directory.
    #[error(
        "another hub is serving {} ({holder}): stop it first, or give this one its own --data",
        dir.display()
    )]
    InUse {
        /// The data directory.
        dir: PathBuf,
        /// Who holds it, as its lock file says.
        holder: String,
    },
    /// The hub's state on disk is damaged; the hub will not use it.
    #[error("{} is damaged: {detail}", path.display())]
    Damaged {
        /// The damaged file or folder.
        path: PathBuf,
        /// What was found, and what to do.
        detail: String,
    },
}

impl HubError {
    /// An [`HubError::Io`] for `path`.
    pub fn io(what: &'static str, path: &Path, source: io::Error) -> Self {
        Self::Io {
            what,
            path: path.to_owned(),
            source,
        }
    }

    /// The code a client is told.
    pub fn code(&self) -> ErrorCode {
        if self.is_storage_full() {
            return ErrorCode::StorageFull;
        }
        match self {
            Self::Body(BodyError::Stalled(_)) => ErrorCode::Timeout,
            Self::Body(BodyError::Truncated { .. }) => ErrorCode::SizeMismatch,
            Self::Frame(FrameError::TooLarge { .. }) => ErrorCode::TooLarge,
            Self::Frame(_) | Self::Protocol(_) => ErrorCode::BadRequest,
            Self::Relay(_) => ErrorCode::SizeMismatch,
            _ => ErrorCode::Internal,
        }
    }

    /// What a client is told: the kind of failure, never paths or details.
    pub fn client_message(&self) -> &'static str {
        match self.code() {
            ErrorCode::StorageFull => {
                "the hub's storage is full; nothing was stored (ask the hub's operator to free space)"
            }
            _ if matches!(self, Self::Io { .. } | Self::Body(BodyError::Disk(_))) => {
                "the hub's disk failed; nothing was stored (the hub's log says what; try again \
                 later)"
            }
            _ if matches!(self, Self::Catalog(_) | Self::CatalogRead(_)) => {
                "the hub's catalog failed; nothing was changed (the hub's log says what; try \
                 again later)"
            }
            _ => "the hub could not complete the request",
        }
    }

    /// Whether the disk (or its quota) had no room.
    pub fn is_storage_full(&self) -> bool {
        match self {
            Self::Io { source, .. } | Self::Body(BodyError::Disk(source)) => {
                crate::space::is_storage_full(source)
            }
            Self::Catalog(sqlx::Error::Database(e)) => e.code().as_deref() == Some("13"),
            Self::CatalogRead(rusqlite::Error::SqliteFailure(e, _)) => {
                e.code == rusqlite::ErrorCode::DiskFull
            }
            _ => false,
        }
    }
}
