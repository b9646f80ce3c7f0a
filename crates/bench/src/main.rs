//! `ferry-bench`: the Rust half of `bench/run.sh`.
//!
//! The shell script installs the peer tools, starts the servers and times
//! whole commands; this binary does what a script should not: make test
//! data quickly, drive a thousand TLS clients at once, time searches one by
//! one, and turn the raw timings into the results table.

mod client;
mod load;
mod mixed;
mod mkfiles;
mod report;
mod search;
mod stats;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ferry-bench",
    about = "Benchmark tools for Ferry (used by bench/run.sh)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write COUNT files of SIZE pseudo-random bytes under DIR.
    Mkfiles(mkfiles::Args),
    /// Hold many connections to a hub while some of them work flat out.
    Load(load::Args),
    /// Many new users putting, listing, searching, getting and deleting.
    Mixed(mixed::Args),
    /// Time searches one by one against a hub with many offers.
    Search(search::Args),
    /// Turn the raw timings file into the Markdown results table.
    Report {
        /// The raw timings, as written by bench/run.sh.
        raw: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Mkfiles(args) => mkfiles::run(&args),
        Command::Load(args) => runtime()?.block_on(load::run(args)),
        Command::Search(args) => runtime()?.block_on(search::run(args)),
        Command::Mixed(args) => runtime()?.block_on(mixed::run(args)),
        Command::Report { raw } => {
            let text = std::fs::read_to_string(&raw)?;
            print!("{}", report::render(&report::parse(&text)?));
            Ok(())
        }
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
}
