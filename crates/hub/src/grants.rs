//! Grants the hub has issued and relays waiting for their bytes.
//!
//! A grant lets one requester fetch one offered file from one peer, once.
//! The peer enforces single use for direct transfers; the hub enforces it
//! for relays by taking the grant out of the table when a relay starts.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ferry_protocol::{Offered, Token};
use tokio::sync::{mpsc, oneshot};

/// How long an issued grant stays usable for a relay.
const GRANT_LIFETIME: Duration = Duration::from_secs(300);

/// A grant as the hub remembers it.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Who may use it.
    pub requester: String,
    /// Who serves it.
    pub owner: String,
    /// What it is for.
    pub file: Offered,
    expires: Instant,
}

/// The owner's side of a relay: chunks of the file, in order.
pub type RelayChunks = mpsc::Receiver<Bytes>;

/// A relay waiting for its owner to push.
struct Waiting {
    owner: String,
    offset: u64,
    size: u64,
    deliver: oneshot::Sender<RelayChunks>,
}

/// What a pushing owner needs to know.
#[derive(Debug)]
pub struct PushSlot {
    /// First byte to send.
    pub offset: u64,
    /// Whole size of the file.
    pub size: u64,
    /// Where to hand the chunks over.
    pub deliver: oneshot::Sender<RelayChunks>,
}

/// The tables.
#[derive(Default)]
pub struct Grants {
    acks: Mutex<HashMap<Token, oneshot::Sender<()>>>,
    issued: Mutex<HashMap<Token, Issued>>,
    relays: Mutex<HashMap<Token, Waiting>>,
}

impl Grants {
    /// Waits for the owner to acknowledge `token` (see `GrantReady`).
    pub fn await_ack(&self, token: Token) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        self.acks.lock().expect("grant lock").insert(token, tx);
        rx
    }

    /// The owner acknowledged `token`.
    pub fn ack(&self, token: &Token) {
        if let Some(tx) = self.acks.lock().expect("grant lock").remove(token) {
            let _ = tx.send(());
        }
    }

    /// Forgets an ack nobody gave.
    pub fn drop_ack(&self, token: &Token) {
        self.acks.lock().expect("grant lock").remove(token);
    }

    /// Records an issued grant.
    pub fn issue(&self, token: Token, requester: &str, owner: &str, file: Offered) {
        let mut issued = self.issued.lock().expect("grant lock");
        let now = Instant::now();
        issued.retain(|_, grant| grant.expires > now);
        let grant = Issued {
            requester: requester.to_owned(),
            owner: owner.to_owned(),
            file,
            expires: now + GRANT_LIFETIME,
        };
        issued.insert(token, grant);
    }

    /// Takes a live grant for a relay by `requester`; `None` if there is none
    /// (never issued, expired, already relayed, or someone else's).
    pub fn take_for_relay(&self, token: &Token, requester: &str) -> Option<Issued> {
        let mut issued = self.issued.lock().expect("grant lock");
        let grant = issued.get(token)?;
        if grant.requester != requester || grant.expires <= Instant::now() {
            return None;
        }
        issued.remove(token)
    }

    /// Registers a relay waiting for `owner` to push from `offset`.
    pub fn wait_for_push(
        &self,
        token: Token,
        owner: &str,
        offset: u64,
        size: u64,
    ) -> oneshot::Receiver<RelayChunks> {
        let (deliver, rx) = oneshot::channel();
        let waiting = Waiting {
            owner: owner.to_owned(),
            offset,
            size,
            deliver,
        };
        self.relays
            .lock()
            .expect("grant lock")
            .insert(token, waiting);
        rx
    }

    /// Gives up on a relay (the requester timed out or left).
    pub fn cancel_push(&self, token: &Token) {
        self.relays.lock().expect("grant lock").remove(token);
    }

    /// Claims the waiting relay for `token` on behalf of `pusher`, who must
    /// be the grant's owner.
    pub fn claim_push(&self, token: &Token, pusher: &str) -> Option<PushSlot> {
        let mut relays = self.relays.lock().expect("grant lock");
        if relays.get(token)?.owner != pusher {
            return None;
        }
        let waiting = relays.remove(token)?;
        Some(PushSlot {
            offset: waiting.offset,
            size: waiting.size,
            deliver: waiting.deliver,
        })
    }
}
