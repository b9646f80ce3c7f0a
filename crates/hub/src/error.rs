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
        match self {
            Self::Body(BodyError::Stalled(_)) => ErrorCode::Timeout,
            Self::Body(BodyError::Truncated { .. }) => ErrorCode::SizeMismatch,
            Self::Frame(FrameError::TooLarge { .. }) => ErrorCode::TooLarge,
            Self::Frame(_) => ErrorCode::BadRequest,
            Self::Relay(_) => ErrorCode::SizeMismatch,
            _ => ErrorCode::Internal,
        }
    }
}
