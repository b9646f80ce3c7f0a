//! The Ferry hub: accepts clients, keeps the store and its catalog.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`server`] | accept loop, connection caps, graceful shutdown |
//! | `front` | one port: tells Ferry's protocol from HTTP (ALPN, first byte) |
//! | [`http`] | the HTTP API, the web page and WebDAV |
//! | `session` | one connected client: handshake, dispatch, replies |
//! | `transfer` | uploads into the store |
//! | `download` | downloads out of the store, served in runs |
//! | [`publish`] | [`publish::Publisher`]: the one path that makes files visible or removes them, with its invariants; `publish::group` commits small uploads together |
//! | `outcome` | `Refusal` and `Outcome`: what a request comes to |
//! | `space` | room on the disk: free-space reserve, preallocation |
//! | `integrity` | start-up cross-check of catalog and store |
//! | `broker` | fetching one file from an online peer: introduce, then relay |
//! | `peer` | sharing connections, search, grants, relays |
//! | [`index`] | who is online and what they offer |
//! | [`grants`] | issued grants, relays waiting for bytes |
//! | [`state`] | [`Hub`]: shared state |
//! | [`store`] | file bytes on disk, under their hash |
//! | [`catalog`] | handles and file entries (embedded SQLite) |
//! | [`tls`] | the hub's self-signed identity |
//! | [`config`] | [`HubConfig`] |
//!
//! ```no_run
//! # async fn demo() -> Result<(), ferry_hub::HubError> {
//! let hub = ferry_hub::Hub::open(ferry_hub::HubConfig::new("ferry-data")).await?;
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:7878").await.unwrap();
//! ferry_hub::serve(hub, listener, tokio_util::sync::CancellationToken::new()).await;
//! # Ok(()) }
//! ```

pub mod access;
#[macro_use]
pub mod faults;
mod admin;
mod broker;
pub mod catalog;
pub mod config;
pub mod discovery;
mod download;
pub mod error;
mod front;
pub mod grants;
pub mod http;
pub mod index;
mod integrity;
mod login;
pub mod outcome;
mod peer;
mod possession;
pub mod publish;
mod relay_copy;
mod respell;
pub mod server;
mod session;
mod space;
pub mod state;
pub mod store;
pub mod tls;
mod tokens;
mod transfer;

pub use config::HubConfig;
pub use error::HubError;
pub use server::serve;
pub use state::Hub;
