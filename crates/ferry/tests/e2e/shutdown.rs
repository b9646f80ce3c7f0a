//! Graceful shutdown: stop accepting, finish running transfers, exit.

use ferry_client::HubClient;
use ferry_protocol::ConflictPolicy;

use crate::support::{Home, TestHub, local_file, pattern, within};

#[tokio::test]
async fn shutdown_lets_a_running_transfer_finish_and_refuses_new_clients() {
    within(60, async {
        let hub = TestHub::start().await;
        let addr = hub.addr;
        let home = Home::new();
        let src = tempfile::tempdir().unwrap();
        let item = local_file(src.path(), "big.bin", &pattern(64 << 20, 3)).await;
        let mut client = home.client(&hub, "alice").await;

        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let upload = tokio::spawn(async move {
            let progress = FirstBytes(std::sync::Mutex::new(Some(started_tx)));
            let result = client
                .upload(&[item], ConflictPolicy::Refuse, &progress)
                .await;
            (client, result)
        });
        started_rx.await.unwrap();
        let dir = hub.stop().await;

        let (_client, result) = upload.await.unwrap();
        let stored = result
            .expect("the transfer in flight completed")
            .remove(0)
            .unwrap();
        assert_eq!(stored.entry.size, 64 << 20);
        let refused = HubClient::connect(&home.options(addr, true)).await;
        assert!(refused.is_err(), "nothing listens after shutdown");

        // The upload is durable: a new hub on the same data lists it.
        let again = TestHub::start_in(dir, |_| {}).await;
        let mut client = home.client(&again, "alice").await;
        assert_eq!(client.list(None).await.unwrap()[0].hash, stored.entry.hash);
        again.stop().await;
    })
    .await;
}

/// Signals once the first bytes of a transfer have moved.
struct FirstBytes(std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>);

impl ferry_client::Progress for FirstBytes {
    fn event(&self, event: ferry_client::TransferEvent<'_>) {
        if let ferry_client::TransferEvent::Bytes(_) = event
            && let Some(tx) = self.0.lock().unwrap().take()
        {
            let _ = tx.send(());
        }
    }
}
