//! The Ferry client library: talk to a hub, move files both ways with
//! verification and resume.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`hub_client`] | [`HubClient`]: connect, log in, list, delete, subscribe |
//! | [`transfer`] | pipelined uploads; the result types of transfers |
//! | [`download`] | pipelined, resumable, verified downloads |
//! | [`scan`] | which local files an upload sends, hashed |
//! | [`local`] | partial files and no-clobber placement on local disk |
//! | [`tls`] | fingerprint pinning ([`KnownHubs`]) |
//! | [`identity`] | the client's secret |
//! | [`progress`] | hooks for progress display |
//! | [`error`] | [`ClientError`] |

mod admin;
pub mod discovery;
pub mod download;
pub mod error;
mod file_hash;
pub mod hub_client;
pub mod identity;
pub mod local;
pub mod peer;
pub mod progress;
pub mod scan;
pub mod tls;
pub mod transfer;

pub use error::ClientError;
pub use hub_client::{ConnectOptions, EventFeed, HubClient, HubInfo, LoggedIn};
pub use progress::{Progress, TransferEvent};
pub use scan::{LocalFile, collect_uploads, prepare_each, prepare_upload, prepare_uploads};
pub use tls::KnownHubs;
pub use transfer::{FileResult, Transferred, UploadItem};
