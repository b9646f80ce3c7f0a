//! The accept loop: connection cap, one task per connection, graceful
//! shutdown (stop accepting, let sessions finish their current request within
//! the grace period, then abort what is left).

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::session;
use crate::state::Hub;

/// Serves `hub` on an already bound `listener` until `shutdown` is cancelled.
pub async fn serve(hub: Arc<Hub>, listener: TcpListener, shutdown: CancellationToken) {
    let permits = Arc::new(Semaphore::new(hub.config.max_connections));
    let mut sessions = JoinSet::new();
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
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
                let Ok(permit) = Arc::clone(&permits).try_acquire_owned() else {
                    tracing::warn!(%peer, "connection cap reached; refusing");
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (hub, token) = (Arc::clone(&hub), shutdown.clone());
                let span = tracing::info_span!("session", %peer);
                sessions.spawn(
                    async move {
                        session::serve(hub, stream, peer, token).await;
                        drop(permit);
                    }
                    .instrument(span),
                );
            }
        }
    }
    drop(listener);
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
