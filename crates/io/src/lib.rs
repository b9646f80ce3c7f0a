//! # What both ends of Ferry do with bytes
//!
//! The [`ferry_protocol`] crate says what goes on the wire; this crate moves
//! it: control frames over any async byte stream, file bodies with stall
//! deadlines and hashing on the way, and the disk work behind them (a
//! blocking thread per transfer that reads ahead or writes direct, durable
//! writes, private key files). Hub and client both build on it, so a
//! transfer behaves the same on either end.
//!
//! | module | what it holds |
//! | --- | --- |
//! | [`framed`] | [`FrameReader`] / [`FrameWriter`]: frames plus raw body bytes |
//! | [`beneath`] | [`Folder`]: the one way a user's files are opened, never through a link |
//! | [`body`] | streaming bodies with hashing and stall deadlines |
//! | [`disk`] | bodies to and from files, flushing, private files |
//! | [`disk_writer`] | [`DiskWriter`]: a file written and hashed on a disk thread |
//! | [`expiring`] | [`Expiring`]: a capped table whose entries expire, oldest first |
//! | [`rewind`] | [`rewind::Rewound`]: a stream with its first byte put back |
//! | [`source`] | what a sender sends from: bytes, or a file to stream |
//! | [`sources`] | [`Sources`]: connection slots per source address |
//! | [`watched`] | [`watched::Watched`]: a stream that fails when idle or stalled |
//! | [`tls`] | the TLS settings both ends share |
//!
//! The private `sink` module owns direct (`O_DIRECT`) writes.

pub mod beneath;
pub mod body;
pub mod disk;
pub mod disk_writer;
pub mod expiring;
pub mod framed;
pub mod rewind;
mod sink;
pub mod source;
pub mod sources;
pub mod tls;
pub mod watched;

pub use beneath::{FileIdentity, Folder};
pub use disk_writer::DiskWriter;
pub use expiring::Expiring;
pub use framed::{FrameReader, FrameWriter, Transport};
pub use sources::{Slot, Sources};
