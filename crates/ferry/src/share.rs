//! `ferry share DIR`: be a peer until Ctrl-C. Hashes the folder (progress
//! bar on first run, cache after), offers it, serves other peers, keeps the
//! offers current, and reconnects if the hub goes away.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ferry_client::identity::PeerIdentity;
use ferry_client::peer::agent::{ShareConfig, ShareEvent, share};
use ferry_client::peer::serve::Served;
use ferry_client::peer::shelf::{HashCache, Shelf};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::output::{human_size, shown};
use crate::progress::{Bar, Direction};
use crate::session::Session;

/// How often the shared folder is looked at again.
const RESCAN_EVERY: Duration = Duration::from_secs(2);

/// Runs `ferry share`.
pub(crate) async fn run(
    session: &mut Session,
    dir: &Path,
    peer_port: u16,
    advertise: Option<u16>,
    copies: Option<bool>,
) -> Result<()> {
    let dir =
        std::fs::canonicalize(dir).with_context(|| format!("cannot share {}", dir.display()))?;
    if !dir.is_dir() {
        bail!("{} is not a folder", dir.display());
    }
    let bind = session.settings.peer_bind;
    let listener = TcpListener::bind((bind, peer_port))
        .await
        .with_context(|| format!("listening on peer port {peer_port}"))?;
    let port = listener.local_addr()?.port();
    let mut config = share_config(session, advertise.unwrap_or(port))?;
    config.copies = copies;
    let shelf = Shelf::folder(dir.clone());
    let cache = Arc::new(HashCache::load(
        session.settings.state_dir.join("hash-cache.tsv"),
    ));
    let bar = Bar::new(0, Direction::Hash, session.settings.json);
    shelf.rescan(&cache, &bar).await?;
    bar.finish();
    cache.save();
    let size: u64 = shelf.offers().iter().map(|o| o.size).sum();
    println!(
        "Sharing {} files ({}) from {} as {} on port {port}. Ctrl-C to stop.",
        shelf.len(),
        human_size(size),
        dir.display(),
        shown(&config.handle)
    );
    let shutdown = CancellationToken::new();
    tokio::spawn(stop_on_ctrl_c(shutdown.clone()));
    let (events_tx, events) = mpsc::unbounded_channel();
    let printer = tokio::spawn(print_events(events));
    let mut listener = Some(listener);
    loop {
        let listening = match listener.take() {
            Some(listener) => listener,
            None => TcpListener::bind((bind, port)).await?,
        };
        let ran = share(
            config.clone(),
            listening,
            shelf.clone(),
            Arc::clone(&cache),
            Arc::new(Notify::new()),
            shutdown.clone(),
            events_tx.clone(),
        )
        .await;
        if shutdown.is_cancelled() {
            break;
        }
        let reason = ran
            .err()
            .map_or_else(|| "the hub ended the session".to_owned(), |e| e.to_string());
        eprintln!("Lost the hub ({}); reconnecting in 2 s.", shown(&reason));
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
    drop(events_tx);
    let _ = printer.await;
    println!("Stopped sharing; offers withdrawn.");
    Ok(())
}

/// The agent's settings for this session's hub and handle.
pub(crate) fn share_config(session: &Session, advertise_port: u16) -> Result<ShareConfig> {
    let addr = session
        .addr()
        .context("no hub configured: use --hub HOST:PORT or set FERRY_HUB")?;
    let handle = session
        .handle_or_name()
        .context("sharing needs a handle: pass --name HANDLE")?;
    let settings = &session.settings;
    Ok(ShareConfig {
        connect: settings.connect_options(addr),
        handle: handle.to_owned(),
        credentials: std::sync::Arc::new(settings.credentials()?),
        identity: PeerIdentity::load_or_create(&settings.state_dir)?,
        advertise_port,
        rescan_every: RESCAN_EVERY,
        copies: None,
    })
}

/// Prints what the sharing agent reports.
pub(crate) async fn print_events(mut events: mpsc::UnboundedReceiver<ShareEvent>) {
    while let Some(event) = events.recv().await {
        match event {
            ShareEvent::Online { addr } => println!("Online: peers reach you at {}", shown(&addr)),
            ShareEvent::Offered { total, refused } => {
                println!("Offering {total} files.");
                for reason in refused {
                    eprintln!("warning: the hub refused an offer: {}", shown(&reason));
                }
            }
            ShareEvent::Served(Served::Sent {
                name, requester, ..
            }) => {
                println!("Sent {} to {} (direct)", shown(&name), shown(&requester));
            }
            ShareEvent::Served(Served::Refused(reason)) => {
                eprintln!("Refused a peer: {}", shown(&reason))
            }
            ShareEvent::Pushed { name } => {
                println!("Sent {} through the hub (relay)", shown(&name))
            }
            ShareEvent::Problem(problem) => eprintln!("warning: {}", shown(&problem)),
        }
    }
}

async fn stop_on_ctrl_c(shutdown: CancellationToken) {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        Some(()) = async { term.as_mut()?.recv().await } => {}
    }
    shutdown.cancel();
}
