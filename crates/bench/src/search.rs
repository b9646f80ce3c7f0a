//! Search latency with a big catalogue: waits until the hub lists the last
//! of the offers (so a sharing peer has finished announcing), then times
//! searches one at a time over one connection.

use std::time::{Duration, Instant};

use anyhow::bail;

use crate::client::{Target, connect};
use crate::stats::{millis, quantile};

/// Arguments of `ferry-bench search`.
#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    target: Target,
    /// A name that is searchable once every offer has arrived.
    #[arg(long)]
    ready_when: String,
    /// How many offers the peer makes (printed with the result).
    #[arg(long)]
    offers: usize,
    /// How many searches to time.
    #[arg(long, default_value_t = 2000)]
    count: usize,
}

/// A mix of terms: an exact name, no match, a fragment matching a few
/// hundred names, one matching thousands (cut at the limit), a folder.
const TERMS: [&str; 5] = [
    "file-000042",
    "nothing-matches",
    "7777",
    "FILE-09",
    "dir-042/",
];

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let home = tempfile::tempdir()?;
    let mut client = connect(&args.target.options(home.path()), "searcher").await?;
    let waiting = Instant::now();
    while client.search(&args.ready_when, 1).await?.0.is_empty() {
        if waiting.elapsed() > Duration::from_secs(300) {
            bail!("'{}' never became searchable", args.ready_when);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("offers searchable after {:.1?}", waiting.elapsed());
    let mut times = Vec::with_capacity(args.count);
    for i in 0..args.count {
        let sent = Instant::now();
        client.search(TERMS[i % TERMS.len()], 100).await?;
        times.push(sent.elapsed());
    }
    times.sort();
    let section = "search";
    let offers = args.offers;
    for (name, p) in [("p50", 0.5), ("p99", 0.99), ("max", 1.0)] {
        let value = quantile(&times, p).map_or(f64::NAN, millis);
        println!("metric\t{section}\t{name} over {offers} offers\t{value:.2}\tms");
    }
    client.close().await;
    Ok(())
}
