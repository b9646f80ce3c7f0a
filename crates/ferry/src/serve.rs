//! `ferry serve`: open the hub's state, print how to reach it, serve until
//! Ctrl-C or SIGTERM, then shut down gracefully.

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cli::ServeArgs;
use crate::settings::ServeSettings;

/// Runs a hub until a signal asks it to stop.
pub(crate) async fn run(args: &ServeArgs) -> Result<()> {
    let settings = ServeSettings::resolve(args)?;
    let data_dir = settings.hub.data_dir.clone();
    let hub = ferry_hub::Hub::open(settings.hub)
        .await
        .with_context(|| format!("opening hub data in {}", data_dir.display()))?;
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("listening on {}", settings.listen))?;
    let addr = listener.local_addr().context("reading the bound address")?;
    println!("Ferry hub listening on {addr}");
    println!("  data:        {}", data_dir.display());
    match hub.fingerprint() {
        Some(fp) => println!(
            "  fingerprint: {fp}\n  (clients pin it on first connect and refuse a different one later)"
        ),
        None => println!(
            "  WARNING: --plaintext: traffic is NOT encrypted and the hub is NOT authenticated.\n  \
             Use it only on a network you trust; clients must pass --plaintext too."
        ),
    }
    let shutdown = CancellationToken::new();
    let signals = tokio::spawn(stop_on_signal(shutdown.clone()));
    ferry_hub::serve(hub, listener, shutdown).await;
    signals.abort();
    println!("Hub stopped.");
    Ok(())
}

async fn stop_on_signal(shutdown: CancellationToken) {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(e) => {
            tracing::warn!("cannot watch SIGTERM: {e}");
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    println!("Stopping: no new connections; running transfers get time to finish.");
    shutdown.cancel();
}
