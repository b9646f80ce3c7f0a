//! Brokering one file from an online peer, for every way in: the owner is
//! told to expect a token for the requester and answers (`introduce`),
//! then, for a relay, asked to push the bytes through the hub (`pushed`).
//! A Ferry client is handed the grant and connects directly when it can;
//! an HTTP client cannot reach a peer, so the hub fetches for it.

use ferry_protocol::{ErrorCode, Fingerprint, Handle, Offered, Response, Token};
use tokio::time::timeout;

use crate::error::HubError;
use crate::grants::{Issued, RelayChunks};
use crate::index::PeerInfo;
use crate::outcome::Refusal;
use crate::state::Hub;

/// A grant the owner agreed to, for `file` of `peer`.
pub(crate) struct Introduced {
    pub(crate) token: Token,
    pub(crate) file: Offered,
    pub(crate) peer: PeerInfo,
    /// The owner's handle (lowercase key).
    pub(crate) owner: String,
}

/// Introduces `requester` to `owner` (any spelling) for `name`: tells the
/// owner to expect a token, waits for its answer, and issues the grant.
pub(crate) async fn introduce(
    hub: &Hub,
    requester: &Handle,
    owner: &str,
    name: &str,
    fingerprint: Fingerprint,
) -> Result<Result<Introduced, Refusal>, HubError> {
    // Peers are known by their key; a handle may come spelled ("User1").
    let owner = Handle::parse(owner).map_or_else(|_| owner.to_owned(), |h| h.to_string());
    let Some((file, peer)) = hub.index.lookup(&owner, name) else {
        let message = format!("'{owner}' is not online or does not offer '{name}'");
        return Ok(Err(Refusal::new(ErrorCode::NotFound, message)));
    };
    if !hub.grants.has_room(requester.as_str(), &owner) {
        let message = format!(
            "too many grants outstanding for you or for '{owner}'; use or let some expire \
             (they last {}s)",
            ferry_protocol::GRANT_LIFETIME.as_secs()
        );
        return Ok(Err(Refusal::new(ErrorCode::Busy, message)));
    }
    let token = random_token()?;
    let acked = hub.grants.await_ack(token);
    // Dropped with this future too (an HTTP client that left): the wait
    // for an answer is forgotten either way.
    let waiting = Forget(|| hub.grants.drop_ack(&token));
    let expect = Response::Expect {
        token,
        name: file.name.clone(),
        requester: hub.publisher.accounts.spelled(requester.as_str()),
        fingerprint,
    };
    let answered = peer.outbox.try_send(expect).is_ok()
        && matches!(timeout(hub.config.grant_timeout, acked).await, Ok(Ok(())));
    drop(waiting);
    if !answered {
        let message = format!("'{owner}' did not answer; try again later");
        return Ok(Err(Refusal::new(ErrorCode::Timeout, message)));
    }
    if !hub
        .grants
        .issue(token, requester.as_str(), &owner, file.clone())
    {
        let message = "too many grants outstanding; try again later";
        return Ok(Err(Refusal::new(ErrorCode::Busy, message)));
    }
    Ok(Ok(Introduced {
        token,
        file,
        peer,
        owner,
    }))
}

/// Asks the owner of `grant` to push its bytes from `offset` through the
/// hub; the bytes as they come, or `None` if it does not start in time.
pub(crate) async fn pushed(
    hub: &Hub,
    grant: &Issued,
    token: Token,
    offset: u64,
) -> Option<RelayChunks> {
    let outbox = hub.index.outbox(&grant.owner)?;
    let delivered = hub
        .grants
        .wait_for_push(token, &grant.owner, offset, grant.file.size);
    // A relay the owner claimed is no longer waiting: forgetting it then
    // does nothing; one never claimed (timed out, or the asker left) goes.
    let _waiting = Forget(|| hub.grants.cancel_push(&token));
    let ask = Response::PushRequest {
        token,
        name: grant.file.name.clone(),
        offset,
    };
    match outbox.try_send(ask) {
        Ok(()) => timeout(hub.config.relay_timeout, delivered)
            .await
            .ok()
            .and_then(Result::ok),
        Err(_) => None,
    }
}

/// Runs its closure when dropped: cleanup that must happen however the
/// future holding it ends.
struct Forget<F: FnMut()>(F);

impl<F: FnMut()> Drop for Forget<F> {
    fn drop(&mut self) {
        (self.0)();
    }
}

fn random_token() -> Result<Token, HubError> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| HubError::Relay("no randomness available".into()))?;
    Ok(Token(bytes))
}
