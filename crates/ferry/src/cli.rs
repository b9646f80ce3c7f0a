//! Command-line grammar (clap derive). The shell parses its lines with the
//! same [`ClientCommand`] enum, so the two cannot drift apart.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use ferry_protocol::ConflictPolicy;

/// Ferry: fast, safe file sharing through a hub.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about, after_help = EXIT_CODES)]
pub(crate) struct Cli {
    /// Options shared by every command.
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub(crate) command: TopCommand,
}

/// Exit codes, shown under `--help`.
pub(crate) const EXIT_CODES: &str = "Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 name conflict, \
5 permission or handle refused, 6 network or hub unreachable, 7 integrity check failed, \
8 hub certificate changed";

/// Options shared by every command.
#[derive(Debug, Clone, Args, Default)]
pub(crate) struct GlobalArgs {
    /// Hub address, HOST:PORT (else the config file, else $FERRY_HUB).
    #[arg(long, global = true, value_name = "HOST:PORT")]
    pub(crate) hub: Option<String>,
    /// Your handle on the hub; registered on first use.
    #[arg(long, global = true, value_name = "HANDLE")]
    pub(crate) name: Option<String>,
    /// Talk to the hub without TLS (only for a hub started with --plaintext).
    #[arg(long, global = true)]
    pub(crate) plaintext: bool,
    /// Machine-readable output.
    #[arg(long, global = true)]
    pub(crate) json: bool,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub(crate) enum TopCommand {
    /// Run a hub.
    Serve(ServeArgs),
    /// Interactive shell (reads commands from stdin when it is not a terminal).
    Shell,
    /// Client commands, also available in the shell.
    #[command(flatten)]
    Client(ClientCommand),
}

/// `ferry serve` options.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<SocketAddr>,
    /// Data directory (database, blobs, certificate).
    #[arg(long, value_name = "DIR")]
    pub(crate) data: Option<PathBuf>,
    /// Serve without TLS. Traffic is readable and forgeable by the network.
    #[arg(long)]
    pub(crate) plaintext: bool,
    /// Hub config file (TOML).
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// If the catalog lists files whose bytes are missing from the store,
    /// remove those entries (each is logged) instead of refusing to start.
    #[arg(long)]
    pub(crate) repair: bool,
}

/// Commands that talk to a hub.
#[derive(Debug, Clone, Subcommand)]
pub(crate) enum ClientCommand {
    /// Upload files or folders to the hub's store.
    #[command(visible_alias = "upload", alias = "store")]
    Put {
        /// Files and folders (folders keep their layout).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// What to do when a name is taken.
        #[command(flatten)]
        conflict: ConflictArgs,
    },
    /// Download files or folders from the hub's store.
    #[command(visible_alias = "download")]
    Get {
        /// Names (a folder name brings the whole folder).
        #[arg(required = true)]
        names: Vec<String>,
        /// Folder to download into.
        #[arg(short = 'o', long = "out", value_name = "DIR", default_value = ".")]
        out: PathBuf,
        /// What to do when a local file is in the way.
        #[command(flatten)]
        conflict: ConflictArgs,
        /// Fetch from this peer (directly, else relayed by the hub).
        #[arg(long, value_name = "HANDLE")]
        from: Option<String>,
    },
    /// List the hub's store.
    #[command(visible_alias = "dir")]
    Ls {
        /// Only this file or folder.
        prefix: Option<String>,
    },
    /// Delete files you uploaded.
    #[command(visible_alias = "delete")]
    Rm {
        /// Names to delete.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Register (claim) a handle on the hub.
    Register {
        /// The handle.
        handle: String,
    },
    /// Search the store and every online peer by part of a name.
    Search {
        /// Part of a name (case-insensitive, taken literally).
        term: String,
    },
    /// Everything available: the store and every online peer's offers.
    List,
    /// Fetch FILE from peer CLIENT (the older `request FILE CLIENT`).
    Request {
        /// The offered file.
        file: String,
        /// The peer's handle.
        client: String,
    },
    /// Be a peer: offer every file under DIR until Ctrl-C.
    Share {
        /// The folder to share.
        dir: PathBuf,
        /// Port other peers connect to (0 picks a free one).
        #[arg(long, default_value_t = 0)]
        peer_port: u16,
        /// Port to tell the hub instead of the real one (testing unreachable peers).
        #[arg(long, hide = true)]
        advertise_port: Option<u16>,
    },
    /// Forget a hub's pinned certificate, to accept a new one on next connect.
    Forget {
        /// The hub address as you connect to it.
        hub: String,
    },
}

/// Conflict policy flags.
#[derive(Debug, Clone, Copy, Args)]
pub(crate) struct ConflictArgs {
    /// Replace an existing file (hub: only your own).
    #[arg(long, conflicts_with = "rename")]
    pub(crate) overwrite: bool,
    /// Keep both: store as `name (1).ext`.
    #[arg(long)]
    pub(crate) rename: bool,
}

impl ConflictArgs {
    /// The policy these flags select.
    pub(crate) fn policy(self) -> ConflictPolicy {
        match (self.overwrite, self.rename) {
            (true, _) => ConflictPolicy::Overwrite,
            (_, true) => ConflictPolicy::Rename,
            _ => ConflictPolicy::Refuse,
        }
    }
}

/// One line of the shell.
#[derive(Debug, Parser)]
#[command(
    name = "",
    no_binary_name = true,
    disable_version_flag = true,
    disable_help_subcommand = true
)]
pub(crate) struct ShellLine {
    /// The command.
    #[command(subcommand)]
    pub(crate) command: ShellCommand,
}

/// Commands the shell accepts: every client command plus session control.
#[derive(Debug, Subcommand)]
pub(crate) enum ShellCommand {
    /// Client commands.
    #[command(flatten)]
    Client(ClientCommand),
    /// Connect to a hub: `join HOST PORT` or `join HOST:PORT`.
    Join {
        /// Host, or HOST:PORT.
        host: String,
        /// Port, when not part of HOST.
        port: Option<u16>,
    },
    /// Disconnect from the hub.
    Leave,
    /// Set the folder `offer` takes files from.
    Setdir {
        /// The folder.
        dir: PathBuf,
    },
    /// Offer files from the folder set with `setdir` to other peers.
    Offer {
        /// Names relative to that folder.
        #[arg(required = true)]
        files: Vec<String>,
    },
    /// Withdraw every offer, leave the hub and the shell.
    Dereg,
    /// Show the commands.
    #[command(alias = "?")]
    Help,
    /// Leave the shell.
    #[command(alias = "exit", alias = "bye")]
    Quit,
}
