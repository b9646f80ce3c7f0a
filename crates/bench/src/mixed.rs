//! Many brand-new users writing at once: each of `clients` connections
//! registers a handle of its own, puts one file everyone may fetch, then
//! until the time is up cycles through put, ls, search, get of its own
//! file, get of another user's file, and rm. Every byte that comes back is
//! checked against what was put; a wrong byte counts as an error. Prints
//! errors (the target is none), requests per second and latency quantiles.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_client::{ConnectOptions, HubClient, prepare_upload};
use ferry_protocol::{ConflictPolicy, FileName};
use tokio::sync::{Barrier, Semaphore};
use tokio::task::JoinSet;

use crate::client::{Target, connect};
use crate::stats::{millis, quantile};

/// Arguments of `ferry-bench mixed`.
#[derive(clap::Args)]
pub(crate) struct Args {
    #[command(flatten)]
    target: Target,
    /// Users, each with its own connection and new handle.
    #[arg(long, default_value_t = 200)]
    clients: usize,
    /// How long they work.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
}

/// The request kinds, in the order each client cycles through them.
const KINDS: [&str; 6] = ["put", "ls", "search", "get own", "get shared", "rm"];

/// What one client measured.
#[derive(Default)]
struct Tally {
    latencies: [Vec<Duration>; KINDS.len()],
    errors: u64,
}

pub(crate) async fn run(args: Args) -> anyhow::Result<()> {
    let home = tempfile::tempdir()?;
    let options = args.target.options(home.path());
    // One connection first pins the certificate for all the others.
    connect(&options, &handle(0, 0)).await?.close().await;
    let run_id = std::process::id();
    let start = Arc::new(Barrier::new(args.clients));
    let gate = Arc::new(Semaphore::new(32));
    let seconds = Duration::from_secs_f64(args.seconds);
    let mut users = JoinSet::new();
    for i in 0..args.clients {
        let (options, start, gate) = (options.clone(), Arc::clone(&start), Arc::clone(&gate));
        let dir = home.path().join(format!("u{i}"));
        users.spawn(async move {
            let user = User::new(i, run_id, args.clients, dir);
            user.run(&options, &start, &gate, seconds).await
        });
    }
    let started = Instant::now();
    let mut total = Tally::default();
    while let Some(done) = users.join_next().await {
        let tally = done?;
        total.errors += tally.errors;
        for (all, mine) in total.latencies.iter_mut().zip(tally.latencies) {
            all.extend(mine);
        }
    }
    print_results(&args, &mut total, started.elapsed());
    // Correctness is part of the result: a benchmark run with failed or
    // wrong answers fails (the log says which).
    anyhow::ensure!(total.errors == 0, "{} requests failed", total.errors);
    Ok(())
}

/// A handle unique to this run and user.
fn handle(run: u32, user: usize) -> String {
    format!("mx{run:x}u{user}")
}

/// Deterministic contents for (user, file number), 1 byte to 48 KiB, as
/// `mkfiles` makes its data (a BLAKE3 stream from a seed): anyone can
/// check them.
fn contents(user: usize, n: u64) -> Vec<u8> {
    let mut seed = blake3::Hasher::new();
    seed.update(&(user as u64).to_le_bytes())
        .update(&n.to_le_bytes());
    let mut stream = seed.finalize_xof();
    let mut len = [0u8; 2];
    stream.fill(&mut len);
    let mut bytes = vec![0u8; 1 + usize::from(u16::from_le_bytes(len)) % (48 << 10)];
    stream.fill(&mut bytes);
    bytes
}

/// One user's state.
struct User {
    index: usize,
    run: u32,
    users: usize,
    dir: PathBuf,
    tally: Tally,
}

impl User {
    fn new(index: usize, run: u32, users: usize, dir: PathBuf) -> Self {
        Self {
            index,
            run,
            users,
            dir,
            tally: Tally::default(),
        }
    }

    /// Registers, shares one file, waits for everyone, then works until
    /// `seconds` have passed.
    async fn run(
        mut self,
        options: &ConnectOptions,
        start: &Barrier,
        gate: &Semaphore,
        seconds: Duration,
    ) -> Tally {
        let _ = std::fs::create_dir_all(&self.dir);
        let permit = gate.acquire().await.expect("never closed");
        let connected = connect(options, &handle(self.run, self.index)).await;
        drop(permit);
        let shared = self.shared_name(self.index);
        let mut client = match connected {
            Ok(mut client) => match self.put(&mut client, &shared, u64::MAX).await {
                Ok(()) => Some(client),
                Err(e) => self.failed("put shared", &e),
            },
            Err(e) => self.failed("register", &e),
        };
        // A user whose request failed stops: its connection may be broken.
        start.wait().await;
        let deadline = Instant::now() + seconds;
        let mut n = 0u64;
        while let Some(c) = client.as_mut()
            && Instant::now() < deadline
        {
            let kind = (n % KINDS.len() as u64) as usize;
            let sent = Instant::now();
            match self.step(c, kind, n).await {
                Ok(()) => self.tally.latencies[kind].push(sent.elapsed()),
                Err(e) => client = self.failed(KINDS[kind], &e),
            }
            n += 1;
        }
        if let Some(client) = client {
            client.close().await;
        }
        self.tally
    }

    /// Counts and logs an error; no connection to go on with.
    fn failed(&mut self, what: &str, e: &dyn std::fmt::Display) -> Option<HubClient> {
        self.tally.errors += 1;
        eprintln!("user {}: {what}: {e}", self.index);
        None
    }

    /// Each user writes in a top-level folder of its own: a folder belongs
    /// to whoever first stores in it.
    fn own_name(&self, n: u64) -> String {
        format!("{}/f{n}", handle(self.run, self.index))
    }

    fn shared_name(&self, user: usize) -> String {
        format!("{}/shared", handle(self.run, user))
    }

    /// Request `kind` of the cycle; file `n / 6` is this cycle's own file.
    async fn step(&self, client: &mut HubClient, kind: usize, n: u64) -> anyhow::Result<()> {
        let cycle = n / KINDS.len() as u64;
        let own = self.own_name(cycle);
        match kind {
            0 => self.put(client, &own, cycle).await,
            1 => {
                let prefix = FileName::parse(&handle(self.run, self.index))?;
                let listed = client.list(Some(&prefix)).await?;
                anyhow::ensure!(listed.iter().any(|e| e.name == own), "ls misses {own}");
                Ok(())
            }
            2 => {
                let (hits, _) = client
                    .search(&format!("{}/f{cycle}", handle(self.run, self.index)), 10)
                    .await?;
                anyhow::ensure!(
                    hits.iter().any(|h| h.file.name == own),
                    "search misses {own}"
                );
                Ok(())
            }
            3 => check_get(client, &own, &contents(self.index, cycle)).await,
            4 => {
                let other = (self.index + 1 + cycle as usize) % self.users;
                check_get(client, &self.shared_name(other), &contents(other, u64::MAX)).await
            }
            _ => Ok(client.delete(&FileName::parse(&own)?).await?),
        }
    }

    async fn put(&self, client: &mut HubClient, name: &str, n: u64) -> anyhow::Result<()> {
        let path = self.dir.join(format!("{n}"));
        std::fs::write(&path, contents(self.index, n))?;
        let item = prepare_upload(path.clone(), FileName::parse(name)?).await?;
        let stored = client.upload(&[item], ConflictPolicy::Refuse, &()).await?;
        let _ = std::fs::remove_file(&path);
        stored.into_iter().next().expect("one result")?;
        Ok(())
    }
}

/// Gets `name` and checks it byte for byte.
async fn check_get(client: &mut HubClient, name: &str, expected: &[u8]) -> anyhow::Result<()> {
    let mut got = Vec::new();
    client.read_into(&FileName::parse(name)?, &mut got).await?;
    anyhow::ensure!(got == expected, "{name} came back different");
    Ok(())
}

fn print_results(args: &Args, total: &mut Tally, elapsed: Duration) {
    let section = "mixed writes";
    let ms = |sorted: &[Duration], p| quantile(sorted, p).map_or(f64::NAN, millis);
    let mut all: Vec<Duration> = total.latencies.iter().flatten().copied().collect();
    all.sort();
    println!(
        "metric\t{section}\tusers, each a new handle\t{}\tclients",
        args.clients
    );
    println!("metric\t{section}\terrors\t{}\trequests", total.errors);
    println!("metric\t{section}\trequests\t{}\trequests", all.len());
    let rate = all.len() as f64 / elapsed.as_secs_f64();
    println!("metric\t{section}\trequests per second\t{rate:.0}\treq/s");
    println!("metric\t{section}\tlatency p50\t{:.2}\tms", ms(&all, 0.5));
    println!("metric\t{section}\tlatency p99\t{:.2}\tms", ms(&all, 0.99));
    for (kind, latencies) in KINDS.iter().zip(total.latencies.iter_mut()) {
        latencies.sort();
        println!(
            "metric\t{section}\t{kind} p99\t{:.2}\tms",
            ms(latencies, 0.99)
        );
    }
}
