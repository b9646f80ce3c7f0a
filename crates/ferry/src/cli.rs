//! Command-line grammar (clap derive). The shell parses its lines with the
//! same [`ClientCommand`] enum, so the two cannot drift apart.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use ferry_protocol::{ConflictPolicy, Role};

use crate::units::{parse_duration, parse_size, parse_wait};

/// Ferry: fast, safe file sharing through a hub.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about, before_help = START_HERE, after_help = EXIT_CODES)]
pub(crate) struct Cli {
    /// Options shared by every command.
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    /// What to do; without one, the commands to start with.
    #[command(subcommand)]
    pub(crate) command: Option<TopCommand>,
}

/// What a newcomer needs first: shown by `ferry` alone and atop `--help`.
pub(crate) const START_HERE: &str = "\
Start here:
  ferry serve                  run a hub (it prints the line others use to join)
  ferry join LINK              join a hub with the invite link you were given
  ferry put FILE...            store files on the hub;  ferry ls, ferry get NAME
  ferry share DIR              offer a folder; others find it with ferry search
  ferry shell                  all of it, interactively";

/// Exit codes, shown under `--help`.
pub(crate) const EXIT_CODES: &str = "Exit codes: 0 ok, 1 error, 2 usage, 3 not found, 4 name conflict, \
5 permission or handle refused, 6 network or hub unreachable, 7 integrity check failed, \
8 hub certificate changed, 9 hub storage full, 10 quota exceeded";

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
    /// Trust the hub only if the certificate authority in FILE (PEM) signed
    /// its certificate, as curl's --cacert (else the config file's `cacert`;
    /// without either, a hub reached by name may be vouched for by the
    /// system's authorities, and any other is pinned on first use).
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) cacert: Option<std::path::PathBuf>,
    /// Machine-readable output.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Log lines as plain text, or one JSON object a line (for log
    /// collectors). Logs go to stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub(crate) log_format: LogFormat,
    /// More log detail: -v debug, -vv trace (RUST_LOG, if set, decides).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub(crate) verbose: u8,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub(crate) enum LogFormat {
    /// Plain text (coloured only on a terminal).
    #[default]
    Text,
    /// One JSON object a line.
    Json,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub(crate) enum TopCommand {
    /// Run a hub.
    Serve(ServeArgs),
    /// Interactive shell (reads commands from stdin when it is not a terminal).
    Shell {
        /// Port other peers fetch your offered files from (0 picks a free one).
        #[arg(long, default_value_t = 0)]
        peer_port: u16,
        /// UDP port discovery answers come back to (0 picks a free one).
        #[arg(long, default_value_t = 0)]
        udp_port: u16,
    },
    /// Join a hub with an invite link (ferry://HOST:PORT/#…); --name picks
    /// your handle. Afterwards other commands need neither --hub nor --name.
    Join {
        /// The invite link.
        invite: String,
    },
    /// Print a shell completion script: `ferry completions bash >
    /// ~/.local/share/bash-completion/completions/ferry`.
    Completions {
        /// For which shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff): `ferry man | man -l -`.
    Man,
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
    /// Who may register: `invite` (default for a new data dir) or `open`
    /// (anyone who connects, as the older designs did).
    #[arg(long, value_enum)]
    pub(crate) admission: Option<AdmissionArg>,
}

/// `--admission`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum AdmissionArg {
    /// Only whoever holds an invite.
    Invite,
    /// Anyone who connects.
    Open,
}

/// A role on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum RoleArg {
    /// List, search and get only.
    Reader,
    /// Read everything, write and delete own files, share.
    Member,
    /// Everything, including users and invites.
    Admin,
    /// An admin other admins cannot touch.
    Owner,
}

impl From<RoleArg> for Role {
    fn from(role: RoleArg) -> Self {
        match role {
            RoleArg::Reader => Self::Reader,
            RoleArg::Member => Self::Member,
            RoleArg::Admin => Self::Admin,
            RoleArg::Owner => Self::Owner,
        }
    }
}

/// `ferry invite`: make one, or list or withdraw them.
#[derive(Debug, Clone, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct InviteArgs {
    /// `ls` or `rm ID`; without one, make an invite.
    #[command(subcommand)]
    pub(crate) action: Option<InviteAction>,
    /// Role of whoever joins with it.
    #[arg(long, value_enum, default_value = "member")]
    pub(crate) role: RoleArg,
    /// How many people may join with it.
    #[arg(long, default_value_t = 1)]
    pub(crate) uses: u32,
    /// How long it stays valid (30m, 12h, 7d, 2w).
    #[arg(long, value_parser = parse_duration, default_value = "7d")]
    pub(crate) expires: u64,
    /// Quota of whoever joins with it (500MB, 10GB; default: the hub's).
    #[arg(long, value_parser = parse_size)]
    pub(crate) quota: Option<u64>,
    /// The hub's address as newcomers reach it (default: the one you use).
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) addr: Option<String>,
}

/// `ferry invite ls|rm`.
#[derive(Debug, Clone, Subcommand)]
pub(crate) enum InviteAction {
    /// The outstanding invites.
    Ls,
    /// Withdraw an invite.
    Rm {
        /// Its id (from `ferry invite ls`).
        id: String,
    },
}

/// `ferry token create|ls|rm`.
#[derive(Debug, Clone, Subcommand)]
pub(crate) enum TokenAction {
    /// Make a token; it acts with your role until it expires, you remove
    /// it, or you are revoked.
    Create {
        /// What it is for, shown by `ferry token ls` (`--name` is your
        /// handle, as in every command).
        #[arg(long, default_value = "")]
        label: String,
        /// How long it works (30m, 12h, 7d, 2w; default: until removed).
        #[arg(long, value_parser = parse_duration)]
        expires: Option<u64>,
    },
    /// Your tokens.
    Ls,
    /// Withdraw a token at once.
    Rm {
        /// Its id (from `ferry token ls`).
        id: String,
    },
}

/// `ferry users set|revoke`.
#[derive(Debug, Clone, Subcommand)]
pub(crate) enum UsersAction {
    /// Change a user's role or quota.
    Set {
        /// The user.
        handle: String,
        /// New role.
        #[arg(long, value_enum)]
        role: Option<RoleArg>,
        /// New quota (500MB, 10GB, or `none` for unlimited).
        #[arg(long, value_parser = parse_quota)]
        quota: Option<Quota>,
    },
    /// End a user's sessions and logins at once (their files stay).
    Revoke {
        /// The user.
        handle: String,
    },
}

/// A quota on the command line: a size, or `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Quota(pub(crate) Option<u64>);

fn parse_quota(text: &str) -> Result<Quota, String> {
    match text {
        "none" | "unlimited" => Ok(Quota(None)),
        size => parse_size(size).map(|n| Quota(Some(n))),
    }
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
        /// Names (a folder name brings the whole folder). None: the store
        /// is listed and the name asked for (in a script, the next line).
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
        /// Let the hub keep a copy of files it relays from you (the default
        /// on open hubs).
        #[arg(long, conflicts_with = "no_copies")]
        copies: bool,
        /// Never let the hub keep copies of files it relays from you (the
        /// default on invite-only hubs).
        #[arg(long)]
        no_copies: bool,
    },
    /// Forget a hub's pinned certificate, to accept a new one on next connect.
    Forget {
        /// The hub address as you connect to it.
        hub: String,
    },
    /// Make an invite link (admins), or list (`ls`) or withdraw (`rm ID`) them.
    Invite(InviteArgs),
    /// The hub's users (admins); `set` changes one, `revoke` shuts one out.
    Users {
        /// What to do; without it, list them.
        #[command(subcommand)]
        action: Option<UsersAction>,
    },
    /// How much of your quota you use.
    Quota,
    /// API tokens for curl, scripts and WebDAV clients: `create` one (it
    /// is the last line printed), `ls` yours, `rm ID` one.
    Token {
        /// What to do.
        #[command(subcommand)]
        action: TokenAction,
    },
    /// A one-time link that signs a browser in to the hub's web page as you
    /// (it works once, for 5 minutes; a new one replaces the last).
    Web,
    /// Which hub and handle commands use, whether the hub's certificate is
    /// pinned, and whether the hub answers.
    Status,
    /// List the hubs on the local network that answer a UDP probe, with
    /// the fingerprint each claims (compare it with the hub's banner).
    Discover {
        /// How long to wait for answers (2s, 500ms).
        #[arg(long, value_parser = parse_wait, default_value = "2s")]
        wait: std::time::Duration,
        /// The UDP port hubs answer on.
        #[arg(long, default_value_t = ferry_protocol::discovery::DISCOVERY_PORT)]
        port: u16,
        /// The UDP port answers come back to (0: any free one).
        #[arg(long, default_value_t = 0)]
        reply_port: u16,
    },
    /// Let HANDLE add files to your top-level FOLDER.
    Allow {
        /// Who.
        handle: String,
        /// One of your top-level folders.
        folder: String,
    },
    /// The hub's audit log (admins), or check a copy of it (--verify FILE).
    Audit {
        /// Check the hash chain of this audit.log file instead (no hub needed).
        #[arg(long, value_name = "FILE")]
        verify: Option<PathBuf>,
        /// How many of the newest lines.
        #[arg(long, default_value_t = 50)]
        lines: u32,
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
    /// Connect to a hub: `join HOST PORT`, `join HOST:PORT`, or join one
    /// with an invite: `join ferry://… --name HANDLE`.
    Join {
        /// Host, HOST:PORT, or an invite link; none: pick a hub the local
        /// network's discovery finds.
        host: Option<String>,
        /// Port, when not part of HOST.
        port: Option<u16>,
        /// With an invite: your handle.
        #[arg(long)]
        name: Option<String>,
    },
    /// Disconnect from the hub.
    Leave,
    /// Set the folder `offer` takes files from.
    Setdir {
        /// The folder.
        dir: PathBuf,
    },
    /// Offer files from the folder set with `setdir` (else the current
    /// folder) to other peers.
    Offer {
        /// Names relative to that folder.
        #[arg(required = true)]
        files: Vec<String>,
        /// Port other peers fetch from, when sharing starts (0: any free one).
        #[arg(long)]
        peer_port: Option<u16>,
    },
    /// Withdraw every offer, leave the hub and the shell.
    Dereg,
    /// Show the commands, or one command's usage.
    #[command(alias = "?")]
    Help {
        /// A command.
        command: Option<String>,
    },
    /// Leave the shell.
    #[command(alias = "exit", alias = "bye")]
    Quit,
}
