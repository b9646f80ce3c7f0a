//! Many clients on one hub: `clients` connections are opened and held;
//! `active` of them issue `ls`, `search` and a small `get` in turn, each
//! waiting for its answer before the next request, until the time is up.
//! Prints requests per second, latency quantiles, and how many of the idle
//! connections were still served at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ferry_client::{ConnectOptions, HubClient};
use ferry_protocol::FileName;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::client::{Target, connect};
use crate::stats::{millis, quantile};

/// Arguments of `ferry-bench load`.
#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    target: Target,
    /// Connections opened and held.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
    /// How many of them send requests.
    #[arg(long, default_value_t = 100)]
    active: usize,
    /// How long the active clients work.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// A small file in the store, for the `get` requests.
    #[arg(long)]
    file: String,
    /// What the `search` requests look for.
    #[arg(long, default_value = "load")]
    term: String,
}

/// The three request kinds, in the order each client cycles through them.
const KINDS: [&str; 3] = ["ls", "search", "get"];

/// What one active client measured.
#[derive(Default)]
struct Tally {
    latencies: [Vec<Duration>; 3],
    errors: u64,
    /// The connection still worked when the time was up.
    alive: bool,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let home = tempfile::tempdir()?;
    let options = args.target.options(home.path());
    // The first connection pins the certificate; the rest verify against it.
    let first = connect(&options, "load-0000").await?;
    let started = Instant::now();
    let mut clients = connect_all(&options, args.clients.saturating_sub(1)).await?;
    clients.insert(0, first);
    eprintln!(
        "{} clients connected in {:.1?}",
        clients.len(),
        started.elapsed()
    );
    let idle = clients.split_off(args.active.min(clients.len()));
    let file = FileName::parse(&args.file).context("--file")?;
    let deadline = Instant::now() + Duration::from_secs_f64(args.seconds);
    let started = Instant::now();
    let mut workers = JoinSet::new();
    for (i, client) in clients.into_iter().enumerate() {
        workers.spawn(work(client, i, file.clone(), args.term.clone(), deadline));
    }
    let mut total = Tally::default();
    let mut active_held = 0;
    while let Some(tally) = workers.join_next().await {
        let tally = tally?;
        active_held += usize::from(tally.alive);
        total.errors += tally.errors;
        for (all, mine) in total.latencies.iter_mut().zip(tally.latencies) {
            all.extend(mine);
        }
    }
    let elapsed = started.elapsed();
    let held = still_served(idle).await + active_held;
    print_results(&args, &mut total, elapsed, held);
    Ok(())
}

/// Opens `count` connections, a few dozen handshakes at a time.
async fn connect_all(options: &ConnectOptions, count: usize) -> anyhow::Result<Vec<HubClient>> {
    let gate = Arc::new(Semaphore::new(32));
    let mut pending = JoinSet::new();
    for i in 1..=count {
        let (options, gate) = (options.clone(), Arc::clone(&gate));
        pending.spawn(async move {
            let _permit = gate.acquire_owned().await?;
            connect(&options, &format!("load-{i:04}")).await
        });
    }
    let mut clients = Vec::with_capacity(count);
    while let Some(client) = pending.join_next().await {
        clients.push(client??);
    }
    Ok(clients)
}

async fn work(
    mut client: HubClient,
    index: usize,
    file: FileName,
    term: String,
    deadline: Instant,
) -> Tally {
    let mut tally = Tally {
        alive: true,
        ..Tally::default()
    };
    let mut sink = tokio::io::sink();
    let mut turn = index;
    while Instant::now() < deadline {
        let kind = turn % KINDS.len();
        turn += 1;
        let sent = Instant::now();
        let outcome = match kind {
            0 => client.list(None).await.map(drop),
            1 => client.search(&term, 100).await.map(drop),
            _ => client.read_into(&file, &mut sink).await.map(drop),
        };
        match outcome {
            Ok(()) => tally.latencies[kind].push(sent.elapsed()),
            Err(e) => {
                tally.errors += 1;
                eprintln!("client {index}: {e}");
                if !e.connection_usable() {
                    tally.alive = false;
                    break;
                }
            }
        }
    }
    client.close().await;
    tally
}

/// How many of the held connections still answer a request.
async fn still_served(idle: Vec<HubClient>) -> usize {
    let mut checks = JoinSet::new();
    for mut client in idle {
        checks.spawn(async move { client.list(None).await.is_ok() });
    }
    let mut served = 0;
    while let Some(ok) = checks.join_next().await {
        served += usize::from(ok.unwrap_or(false));
    }
    served
}

/// `held`: connections, idle or active, that still worked at the end.
fn print_results(args: &Args, total: &mut Tally, elapsed: Duration, held: usize) {
    let section = "many clients";
    let mut all: Vec<Duration> = total.latencies.iter().flatten().copied().collect();
    all.sort();
    let rate = all.len() as f64 / elapsed.as_secs_f64();
    println!(
        "metric\t{section}\tclients held\t{held}\tof {}",
        args.clients
    );
    println!("metric\t{section}\trequests per second\t{rate:.0}\treq/s");
    println!("metric\t{section}\terrors\t{}\trequests", total.errors);
    for (name, p) in [("p50", 0.5), ("p99", 0.99)] {
        let value = quantile(&all, p).map_or(f64::NAN, millis);
        println!("metric\t{section}\tlatency {name}\t{value:.2}\tms");
    }
    for (kind, latencies) in KINDS.iter().zip(total.latencies.iter_mut()) {
        latencies.sort();
        let p99 = quantile(latencies, 0.99).map_or(f64::NAN, millis);
        println!("metric\t{section}\t{kind} p99\t{p99:.2}\tms");
    }
}
