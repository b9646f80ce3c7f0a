//! The accept loop: connection caps (in all and per source), one task per
//! connection, graceful shutdown (stop accepting, let sessions finish their
//! current request within the grace period, then abort what is left).

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::front;
use crate::state::Hub;
use ferry_io::sources::{Full, Sources};

/// Refused connections are counted and logged together at most this often:
/// a line each would let anyone fill the log for free.
const REFUSAL_REPORT_EVERY: Duration = Duration::from_secs(10);

/// Idle time before TCP keepalive probes a connection, so that a client
/// that vanished without a word (a subscriber, a sharing peer waiting for
/// requests) gives its slot back.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);

/// Serves `hub` on an already bound `listener` until `shutdown` is cancelled.
pub async fn serve(hub: Arc<Hub>, listener: TcpListener, shutdown: CancellationToken) {
    let discovery = start_discovery(&hub, &listener, &shutdown);
    let permits = Arc::new(Semaphore::new(hub.config.max_connections));
    let sources = Sources::new(
        hub.config.max_connections_per_source,
        hub.config.max_unverified_per_source,
    );
    let mut refusals = Refusals::default();
    let mut sessions = JoinSet::new();
    let mut sweep = tokio::time::interval(sweep_every(hub.config.partial_ttl));
    sweep.tick().await; // the store swept at open
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            _ = sweep.tick() => {
                let store_hub = Arc::clone(&hub);
                let ttl = hub.config.partial_ttl;
                let swept = tokio::task::spawn_blocking(move || store_hub.store.sweep_partials(ttl));
                let idle_hub = Arc::clone(&hub);
                sessions.spawn(async move {
                    if let Ok(Err(e)) = swept.await {
                        tracing::warn!("sweeping abandoned partial uploads: {e}");
                    }
                    expire_idle_handles(&idle_hub).await;
                });
            }
            Some(_) = sessions.join_next(), if !sessions.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Usually out of file descriptors: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let slot = match sources.admit(peer.ip()) {
                    Ok(slot) => slot,
                    Err(full) => {
                        refusals.count(full.into());
                        continue;
                    }
                };
                let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                    refusals.count(Refused::Hub);
                    continue;
                };
                tune(&stream);
                let (hub, token) = (Arc::clone(&hub), shutdown.clone());
                let span = tracing::info_span!("session", %peer);
                sessions.spawn(
                    async move {
                        front::serve(hub, stream, peer, slot, token).await;
                        drop(permit);
                    }
                    .instrument(span),
                );
            }
        }
    }
    drop(listener);
    if let Some(discovery) = discovery {
        let _ = discovery.await;
    }
    let grace = hub.config.shutdown_grace;
    let drained = timeout(grace, async {
        while sessions.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            left = sessions.len(),
            "transfers still running after {grace:?}; aborting them"
        );
        sessions.shutdown().await;
    }
    hub.catalog.close().await;
}

/// Starts answering discovery probes, unless the hub says not to; a port
/// that cannot be had (another hub on this machine) is logged, not fatal.
fn start_discovery(
    hub: &Arc<Hub>,
    listener: &TcpListener,
    shutdown: &CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    let port = hub.config.discovery?;
    let listening = listener.local_addr().ok()?;
    let serving = listening.port();
    let local = listening.ip().is_loopback();
    // Asked at each reply: a certificate reloaded on SIGHUP is the one told.
    let hub = Arc::clone(hub);
    let beacon = move || ferry_protocol::discovery::HubBeacon {
        port: serving,
        fingerprint: hub.fingerprint(),
    };
    match crate::discovery::bind(port, local) {
        Ok(socket) => {
            tracing::info!(port, local, "answering discovery probes (UDP)");
            let shutdown = shutdown.clone();
            Some(tokio::spawn(crate::discovery::answer(
                socket, beacon, shutdown,
            )))
        }
        Err(e) => {
            tracing::warn!(port, "discovery is off: UDP port {port}: {e}");
            None
        }
    }
}

/// How often abandoned partial uploads are looked for while running: a
/// few times per lifetime, at most hourly.
/// On an open hub, removes handles that never uploaded or shared and were
/// not seen for `idle_handle_ttl` (one host once registered 20,000 in 10 s).
async fn expire_idle_handles(hub: &Hub) {
    if hub.access.admission != crate::access::Admission::Open {
        return;
    }
    let ttl = i64::try_from(hub.config.idle_handle_ttl.as_secs()).unwrap_or(i64::MAX);
    let before = crate::publish::unix_now().saturating_sub(ttl);
    match hub.catalog.expire_idle(before).await {
        Ok(0) => {}
        Ok(n) => tracing::info!("removed {n} handles that never stored or shared anything"),
        Err(e) => tracing::warn!("expiring idle handles: {e}"),
    }
}

fn sweep_every(partial_ttl: Duration) -> Duration {
    (partial_ttl / 4).clamp(Duration::from_secs(1), Duration::from_secs(3600))
}

/// Socket options for an accepted connection.
fn tune(stream: &tokio::net::TcpStream) {
    let _ = stream.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_IDLE / 6)
        .with_retries(4);
    let _ = socket2::SockRef::from(stream).set_tcp_keepalive(&keepalive);
}

/// Which cap refused a connection.
#[derive(Debug, Clone, Copy)]
enum Refused {
    Hub,
    Source,
    Unverified,
}

impl From<Full> for Refused {
    fn from(full: Full) -> Self {
        match full {
            Full::Source => Self::Source,
            Full::Unverified => Self::Unverified,
        }
    }
}

/// Refused connections since the last report.
#[derive(Debug, Default)]
struct Refusals {
    hub: u64,
    source: u64,
    unverified: u64,
    last_report: Option<tokio::time::Instant>,
}

impl Refusals {
    fn count(&mut self, refused: Refused) {
        match refused {
            Refused::Hub => self.hub += 1,
            Refused::Source => self.source += 1,
            Refused::Unverified => self.unverified += 1,
        }
        let now = tokio::time::Instant::now();
        if self
            .last_report
            .is_some_and(|last| now - last < REFUSAL_REPORT_EVERY)
        {
            return;
        }
        tracing::warn!(
            hub_full = self.hub,
            source_full = self.source,
            source_not_logged_in = self.unverified,
            "refused connections at the caps (max_connections, max_connections_per_source, \
             max_unverified_per_source)"
        );
        *self = Self {
            last_report: Some(now),
            ..Self::default()
        };
    }
}
