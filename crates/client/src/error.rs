//! The client's error type.

use std::io;
use std::path::PathBuf;

use ferry_io::body::BodyError;
use ferry_protocol::{ErrorCode, Fingerprint, FrameError, NameError};

/// What went wrong on the client side, or what the hub refused.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// TCP connect failed or timed out.
    #[error("cannot connect to {addr}: {reason}")]
    Connect {
        /// Address tried.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The TLS handshake failed for a reason other than the fingerprint.
    #[error("TLS handshake with {addr} failed: {reason} (is the hub running with --plaintext?)")]
    Tls {
        /// Address tried.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The hub's certificate differs from the one pinned on first use.
    #[error(
        "the hub at {addr} presented certificate {presented}, but {pinned} was pinned for it on first use.\n\
         This can mean someone is intercepting the connection, or the hub was reinstalled.\n\
         If you trust the new certificate, run `ferry forget {addr}` (or delete its line in {}) and connect again.",
        known_hubs.display()
    )]
    FingerprintChanged {
        /// Address tried.
        addr: String,
        /// Fingerprint on record.
        pinned: Fingerprint,
        /// Fingerprint presented now.
        presented: Fingerprint,
        /// The file holding the pin.
        known_hubs: PathBuf,
    },
    /// The hub's certificate is not signed by the authority `--cacert` names.
    #[error(
        "the hub at {addr} is not vouched for by the certificate authority in {}: {reason}.\n\
         Check that --cacert names the authority that signed the hub's certificate, \
         or leave it out to pin the hub's own certificate on first use.",
        ca_file.display()
    )]
    NotVouchedFor {
        /// Address tried.
        addr: String,
        /// The authority's certificate file.
        ca_file: PathBuf,
        /// What the verification said.
        reason: String,
    },
    /// The `--cacert` file could not be read as PEM certificates.
    #[error("cannot use {} as certificate authorities: {reason}", path.display())]
    BadCaFile {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The hub answered a request with an error.
    #[error("{message}")]
    Hub {
        /// Machine-readable kind.
        code: ErrorCode,
        /// The hub's message (escape before printing).
        message: String,
    },
    /// The hub sent something the protocol does not allow here.
    #[error("unexpected reply from the hub: {0}")]
    Protocol(String),
    /// The hub closed the connection.
    #[error("the hub closed the connection")]
    Closed,
    /// Reading or writing a frame failed.
    #[error("connection error: {0}")]
    Frame(#[from] FrameError),
    /// A file body transfer failed.
    #[error("transfer interrupted: {0}")]
    Body(#[from] BodyError),
    /// A name was refused before sending.
    #[error("invalid name '{name}': {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// Why.
        reason: NameError,
    },
    /// A local file operation failed.
    #[error("{what} {}: {source}", path.display())]
    Local {
        /// The step.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The download target exists and the policy is to refuse.
    #[error("{} already exists; use --overwrite to replace it or --rename to keep both", path.display())]
    LocalConflict {
        /// The existing file.
        path: PathBuf,
    },
    /// Downloaded bytes do not match the hub's hash; nothing was kept.
    #[error(
        "'{name}' failed verification (expected {expected}, got {actual}); the partial file was deleted"
    )]
    Corrupt {
        /// The file.
        name: String,
        /// Hash announced.
        expected: String,
        /// Hash received.
        actual: String,
    },
    /// A deadline passed.
    #[error("timed out: {0}")]
    Timeout(String),
}

impl ClientError {
    /// A [`ClientError::Local`].
    pub fn local(what: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        Self::Local {
            what,
            path: path.into(),
            source,
        }
    }

    /// The hub's error code, if the hub refused.
    pub fn hub_code(&self) -> Option<ErrorCode> {
        match self {
            Self::Hub { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether the connection can still be used after this error.
    pub fn connection_usable(&self) -> bool {
        matches!(
            self,
            Self::Hub { .. }
                | Self::InvalidName { .. }
                | Self::LocalConflict { .. }
                | Self::Corrupt { .. }
        )
    }
}
