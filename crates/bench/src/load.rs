//! Many clients on one hub: `clients` connections are opened and held;
//! `active` of them issue `ls`, `search` and a small `get` in turn, each
//! waiting for its answer before the next request, until the time is up.
//! That is one round; the same connections work several rounds, and the
//! medians over rounds are printed (requests per second, latency
//! quantiles), with each round's p99, since one stall of this shared
//! machine moves a single round's tail. Also prints how many connections
//! were still served at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use ferry_client::{ConnectOptions, HubClient};
use ferry_protocol::FileName;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::client::{Target, connect};
use crate::stats::{median, millis, quantile};

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
    /// How long the active clients work in each round.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// Rounds, on the same connections.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
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
    let mut active: Vec<Option<HubClient>> = clients.into_iter().map(Some).collect();
    let seconds = Duration::from_secs_f64(args.seconds);
    let mut rounds = Vec::with_capacity(args.rounds.max(1));
    for _ in 0..args.rounds.max(1) {
        rounds.push(run_round(&mut active, &file, &args.term, seconds).await?);
    }
    let active_held = active.iter().flatten().count();
    for client in active.into_iter().flatten() {
        client.close().await;
    }
    let held = still_served(idle).await + active_held;
    print_results(&args, &rounds, held);
    Ok(())
}

/// What one round measured, over all active clients.
struct Round {
    rate: f64,
    errors: u64,
    /// p50 and p99 over all requests, in milliseconds.
    p50: f64,
    p99: f64,
    /// p99 of each request kind, in the order of [`KINDS`].
    kind_p99: [f64; 3],
}

/// Lets every client still working send requests for `seconds`; a client
/// whose connection broke is left out of later rounds.
async fn run_round(
    active: &mut [Option<HubClient>],
    file: &FileName,
    term: &str,
    seconds: Duration,
) -> anyhow::Result<Round> {
    let deadline = Instant::now() + seconds;
    let started = Instant::now();
    let mut workers = JoinSet::new();
    for (i, slot) in active.iter_mut().enumerate() {
        if let Some(client) = slot.take() {
            workers.spawn(work(client, i, file.clone(), term.to_owned(), deadline));
        }
    }
    let mut total = Tally::default();
    while let Some(done) = workers.join_next().await {
        let (index, client, tally) = done?;
        active[index] = client;
        total.errors += tally.errors;
        for (all, mine) in total.latencies.iter_mut().zip(tally.latencies) {
            all.extend(mine);
        }
    }
    let elapsed = started.elapsed();
    let ms = |sorted: &[Duration], p| quantile(sorted, p).map_or(f64::NAN, millis);
    let mut kind_p99 = [f64::NAN; 3];
    for (p99, latencies) in kind_p99.iter_mut().zip(total.latencies.iter_mut()) {
        latencies.sort();
        *p99 = ms(latencies, 0.99);
    }
    let mut all: Vec<Duration> = total.latencies.iter().flatten().copied().collect();
    all.sort();
    Ok(Round {
        rate: all.len() as f64 / elapsed.as_secs_f64(),
        errors: total.errors,
        p50: ms(&all, 0.5),
        p99: ms(&all, 0.99),
        kind_p99,
    })
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

/// One client's requests until `deadline`; gives the client back unless
/// its connection broke.
async fn work(
    mut client: HubClient,
    index: usize,
    file: FileName,
    term: String,
    deadline: Instant,
) -> (usize, Option<HubClient>, Tally) {
    let mut tally = Tally::default();
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
                    return (index, None, tally);
                }
            }
        }
    }
    (index, Some(client), tally)
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
fn print_results(args: &Args, rounds: &[Round], held: usize) {
    let section = "many clients";
    let middle = |value: &dyn Fn(&Round) -> f64| {
        let values: Vec<f64> = rounds.iter().map(value).collect();
        median(&values).unwrap_or(f64::NAN)
    };
    println!(
        "metric\t{section}\tclients held\t{held}\tof {}",
        args.clients
    );
    let rate = middle(&|r| r.rate);
    let n = rounds.len();
    println!("metric\t{section}\trequests per second, median of {n}\t{rate:.0}\treq/s");
    let errors: u64 = rounds.iter().map(|r| r.errors).sum();
    println!("metric\t{section}\terrors\t{errors}\trequests");
    println!(
        "metric\t{section}\tlatency p50\t{:.2}\tms",
        middle(&|r| r.p50)
    );
    println!(
        "metric\t{section}\tlatency p99\t{:.2}\tms",
        middle(&|r| r.p99)
    );
    let each: Vec<String> = rounds.iter().map(|r| format!("{:.2}", r.p99)).collect();
    println!(
        "metric\t{section}\tlatency p99 of each round\t{}\tms",
        each.join(" / ")
    );
    for (i, kind) in KINDS.iter().enumerate() {
        let p99 = middle(&|r| r.kind_p99[i]);
        println!("metric\t{section}\t{kind} p99\t{p99:.2}\tms");
    }
}
