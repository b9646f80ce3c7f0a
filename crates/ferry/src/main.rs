//! The `ferry` binary: parse arguments, set up logging, run one command (or
//! the hub, or the shell), and turn failures into meaningful exit codes.

mod cli;
mod commands;
mod copies;
mod legacy_args;
mod manage;
mod output;
mod peers;
mod progress;
mod remembered;
mod serve;
mod session;
mod settings;
mod share;
mod shell;
mod status;
mod tokens;
mod units;

use std::process::ExitCode;

use clap::Parser;
use ferry_client::ClientError;
use ferry_protocol::ErrorCode;

use crate::cli::{Cli, LogFormat, TopCommand};
use crate::commands::BatchFailed;
use crate::session::Session;
use crate::settings::ClientSettings;

fn main() -> ExitCode {
    copies::prefer_vector_copies();
    // Crash and fault tests only (a build without the feature has none).
    let _failpoints = ferry_hub::faults::from_env();
    let cli = Cli::parse_from(legacy_args::rewrite(std::env::args_os().collect()));
    init_logging(&cli.global);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {}", Session::describe(&error));
            ExitCode::from(exit_code(&error))
        }
    }
}

/// Logs to stderr: plain text (colour only for a person at a terminal,
/// never in a log file) or JSON lines; `RUST_LOG` if set, else info, or
/// more with `-v`.
fn init_logging(global: &cli::GlobalArgs) {
    let default = match global.verbose {
        0 => "ferry=info,ferry_hub=info,ferry_client=info,warn",
        1 => "ferry=debug,ferry_hub=debug,ferry_client=debug,ferry_io=debug,info",
        _ => "trace",
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match global.log_format {
        LogFormat::Json => logs.json().with_current_span(false).init(),
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let Some(command) = cli.command else {
        println!(
            "Ferry: fast, safe file sharing through a hub.\n\n{}",
            cli::START_HERE
        );
        println!("\nEvery command: ferry --help; one command: ferry COMMAND --help; ferry man.");
        return Ok(());
    };
    match command {
        TopCommand::Completions { shell } => {
            use clap::CommandFactory;
            let mut command = Cli::command();
            clap_complete::generate(shell, &mut command, "ferry", &mut std::io::stdout());
            Ok(())
        }
        TopCommand::Man => {
            use clap::CommandFactory;
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(())
        }
        TopCommand::Serve(args) => serve::run(&args).await,
        TopCommand::Shell {
            peer_port,
            udp_port,
        } => shell::run(ClientSettings::resolve(&cli.global)?, peer_port, udp_port).await,
        TopCommand::Join { invite } => {
            let mut session = Session::new(ClientSettings::resolve(&cli.global)?);
            let result = manage::join(&mut session, &invite, cli.global.name.as_deref()).await;
            session.close().await;
            result
        }
        TopCommand::Client(command) => {
            let mut session = Session::new(ClientSettings::resolve(&cli.global)?);
            let result = commands::run(&mut session, command).await;
            session.close().await;
            result
        }
    }
}

/// Exit codes documented in `--help` (see [`cli::EXIT_CODES`]).
fn exit_code(error: &anyhow::Error) -> u8 {
    let client_error = error
        .downcast_ref::<ClientError>()
        .or_else(|| error.downcast_ref::<BatchFailed>().map(|b| &b.first));
    let Some(client_error) = client_error else {
        return 1;
    };
    match client_error {
        ClientError::Hub { code, .. } => match code {
            ErrorCode::NotFound => 3,
            ErrorCode::Conflict => 4,
            ErrorCode::PermissionDenied
            | ErrorCode::HandleTaken
            | ErrorCode::UnknownHandle
            | ErrorCode::InvalidHandle
            | ErrorCode::LoginRequired
            | ErrorCode::InviteRequired
            | ErrorCode::InviteInvalid
            | ErrorCode::Revoked
            | ErrorCode::LegacySecretNeeded => 5,
            ErrorCode::QuotaExceeded => 10,
            ErrorCode::HashMismatch | ErrorCode::SizeMismatch => 7,
            ErrorCode::Timeout | ErrorCode::Busy => 6,
            ErrorCode::StorageFull => 9,
            _ => 1,
        },
        ClientError::LocalConflict { .. } => 4,
        ClientError::Connect { .. }
        | ClientError::Tls { .. }
        | ClientError::Closed
        | ClientError::Timeout(_) => 6,
        ClientError::Frame(_) | ClientError::Body(_) => 6,
        ClientError::Corrupt { .. } => 7,
        ClientError::FingerprintChanged { .. } | ClientError::NotVouchedFor { .. } => 8,
        _ => 1,
    }
}
