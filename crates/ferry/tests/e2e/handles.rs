//! Handles belong to the client that registered them.

use ferry_client::ClientError;
use ferry_protocol::{Claim, ErrorCode, FileName, Request};

use crate::support::{Home, Raw, TestHub, code_of, within};

#[tokio::test]
async fn a_registered_handle_cannot_be_used_or_taken_by_another_client() {
    within(30, async {
        let hub = TestHub::start().await;
        let (alice, mallory) = (Home::new(), Home::new());
        let mut first = alice.connect(&hub).await;
        let (alice_key, mallory_key) = (alice.credentials(), mallory.credentials());
        let reply = first
            .authenticate("Alice", &alice_key, Claim::Register)
            .await
            .unwrap();
        assert_eq!(reply.handle, "Alice", "shown as spelled when registered");
        assert!(reply.registered);

        let mut other = mallory.connect(&hub).await;
        for claim in [Claim::Register, Claim::Existing] {
            let err = other
                .authenticate("alice", &mallory_key, claim)
                .await
                .unwrap_err();
            assert_eq!(err.hub_code(), Some(ErrorCode::HandleTaken), "{err}");
        }
        // The owner logs in again from a new connection with the same secret.
        let again = alice.client(&hub, "ALICE ").await;
        drop(again);
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn unknown_and_invalid_handles_are_refused_clearly() {
    within(30, async {
        let hub = TestHub::start().await;
        let home = Home::new();
        let mut client = home.connect(&hub).await;
        let credentials = home.credentials();
        let err = client
            .authenticate("nobody", &credentials, Claim::Existing)
            .await
            .unwrap_err();
        assert_eq!(err.hub_code(), Some(ErrorCode::UnknownHandle));
        for bad in ["", "has space", "../x", "a\u{1b}[31m", &"x".repeat(40)] {
            let err = client
                .authenticate(bad, &credentials, Claim::Register)
                .await
                .unwrap_err();
            assert_eq!(err.hub_code(), Some(ErrorCode::InvalidHandle), "{bad:?}");
        }
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn commands_before_a_handle_is_established_are_refused() {
    within(30, async {
        let hub = TestHub::start().await;
        let home = Home::new();
        let mut client = home.connect(&hub).await;
        let err = client.list(None).await.unwrap_err();
        assert_eq!(err.hub_code(), Some(ErrorCode::LoginRequired));
        let name = FileName::parse("x").unwrap();
        assert!(matches!(
            client.delete(&name).await,
            Err(ClientError::Hub {
                code: ErrorCode::LoginRequired,
                ..
            })
        ));
        hub.stop().await;
    })
    .await;
}

#[tokio::test]
async fn a_second_hello_or_a_wrong_version_is_refused() {
    within(30, async {
        let hub = TestHub::start_with(|c| c.tls = false).await;
        let mut raw = Raw::logged_in(hub.addr, "eve").await;
        let again = Request::Hello {
            version: ferry_protocol::PROTOCOL_VERSION,
            agent: "x".into(),
        };
        assert_eq!(
            code_of(&raw.call(&again).await),
            Some(ErrorCode::BadRequest)
        );

        let mut old = Raw::connect(hub.addr).await;
        let reply = old
            .call(&Request::Hello {
                version: 999,
                agent: "future".into(),
            })
            .await;
        assert_eq!(code_of(&reply), Some(ErrorCode::VersionMismatch));
        assert!(old.closed_by_hub().await);
        hub.stop().await;
    })
    .await;
}
