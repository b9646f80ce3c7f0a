//! Grants the hub has issued and relays waiting for their bytes.
//!
//! A grant lets one requester fetch one offered file from one peer, once.
//! The peer enforces single use for direct transfers; the hub enforces it
//! for relays by taking the grant out of the table when a relay starts.
//!
//! Outstanding grants are bounded: at most [`MAX_GRANTS`] in all,
//! [`MAX_GRANTS_PER_REQUESTER`] for one requester and
//! [`MAX_GRANTS_PER_OWNER`] on one peer, each living [`GRANT_LIFETIME`].

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use ferry_io::Expiring;
use ferry_protocol::{GRANT_LIFETIME, Offered, Token};
use tokio::sync::{mpsc, oneshot};

/// Grants outstanding on the whole hub.
pub const MAX_GRANTS: usize = 65_536;

/// Grants one requester may hold at once. A direct fetch uses its grant
/// on the peer, out of the hub's sight, so a used grant still counts here
/// until it expires: this is also how many peer files one requester may
/// fetch per [`GRANT_LIFETIME`].
pub const MAX_GRANTS_PER_REQUESTER: usize = 2_048;

/// Grants outstanding on one sharing peer (counted as above).
pub const MAX_GRANTS_PER_OWNER: usize = 16_384;

/// A grant as the hub remembers it.
#[derive(Debug, Clone)]
pub struct Issued {
    /// Who may use it.
    pub requester: String,
    /// Who serves it.
    pub owner: String,
    /// What it is for.
    pub file: Offered,
    /// Whether it still counts against requester and owner (a grant the
    /// owner served directly does not, though it stays usable for a relay
    /// until it expires, should the requester not have got every byte).
    pub counted: bool,
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

/// Issued grants and how many each requester and owner holds.
struct Issuance {
    grants: Expiring<Token, Issued>,
    per_requester: HashMap<String, usize>,
    per_owner: HashMap<String, usize>,
}

impl Issuance {
    /// Whether `requester` may hold one more grant on `owner`, once the
    /// expired ones are counted out.
    fn has_room(&mut self, requester: &str, owner: &str) -> bool {
        let Self {
            grants,
            per_requester,
            per_owner,
        } = self;
        grants.sweep(|old| Self::forget(per_requester, per_owner, &old));
        let held = |counts: &HashMap<String, usize>, who: &str| counts.get(who).copied();
        held(&self.per_requester, requester).unwrap_or(0) < MAX_GRANTS_PER_REQUESTER
            && held(&self.per_owner, owner).unwrap_or(0) < MAX_GRANTS_PER_OWNER
    }

    /// Counts `grant` out of the per-handle totals, unless it is already.
    fn forget(
        per_requester: &mut HashMap<String, usize>,
        per_owner: &mut HashMap<String, usize>,
        grant: &Issued,
    ) {
        if !grant.counted {
            return;
        }
        for (counts, who) in [(per_requester, &grant.requester), (per_owner, &grant.owner)] {
            if let Some(n) = counts.get_mut(who) {
                *n -= 1;
                if *n == 0 {
                    counts.remove(who);
                }
            }
        }
    }
}

/// The tables.
pub struct Grants {
    acks: Mutex<HashMap<Token, oneshot::Sender<()>>>,
    issued: Mutex<Issuance>,
    relays: Mutex<HashMap<Token, Waiting>>,
}

impl Default for Grants {
    fn default() -> Self {
        Self {
            acks: Mutex::default(),
            issued: Mutex::new(Issuance {
                grants: Expiring::new(GRANT_LIFETIME, MAX_GRANTS),
                per_requester: HashMap::new(),
                per_owner: HashMap::new(),
            }),
            relays: Mutex::default(),
        }
    }
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

    /// Whether `requester` may get another grant on `owner` now.
    pub fn has_room(&self, requester: &str, owner: &str) -> bool {
        let mut issued = self.issued.lock().expect("grant lock");
        issued.has_room(requester, owner) && issued.grants.len() < MAX_GRANTS
    }

    /// Records an issued grant; `false` if a limit is reached.
    pub fn issue(&self, token: Token, requester: &str, owner: &str, file: Offered) -> bool {
        let mut issued = self.issued.lock().expect("grant lock");
        if !issued.has_room(requester, owner) {
            return false;
        }
        let grant = Issued {
            requester: requester.to_owned(),
            owner: owner.to_owned(),
            file,
            counted: true,
        };
        let Issuance {
            grants,
            per_requester,
            per_owner,
        } = &mut *issued;
        let stored = grants.insert(token, grant, |old| {
            Issuance::forget(per_requester, per_owner, &old);
        });
        if stored.is_err() {
            return false;
        }
        *per_requester.entry(requester.to_owned()).or_default() += 1;
        *per_owner.entry(owner.to_owned()).or_default() += 1;
        true
    }

    /// Takes a live grant for a relay by `requester`; `None` if there is none
    /// (never issued, expired, already relayed, or someone else's).
    pub fn take_for_relay(&self, token: &Token, requester: &str) -> Option<Issued> {
        let mut issued = self.issued.lock().expect("grant lock");
        if issued.grants.get(token)?.requester != requester {
            return None;
        }
        // Live a moment ago: taken even if it expires right now, so that
        // the counts below always see it leave.
        let grant = issued.grants.take(token)?;
        let Issuance {
            per_requester,
            per_owner,
            ..
        } = &mut *issued;
        Issuance::forget(per_requester, per_owner, &grant);
        Some(grant)
    }

    /// `owner` served the grant `token` directly: it stops counting (a
    /// claim by anyone but the grant's owner is ignored), but a relay may
    /// still use it until it expires, in case the requester did not get
    /// every byte the owner sent.
    pub fn used(&self, token: &Token, owner: &str) {
        let mut issued = self.issued.lock().expect("grant lock");
        let Issuance {
            grants,
            per_requester,
            per_owner,
        } = &mut *issued;
        let Some(grant) = grants.get_mut(token) else {
            return;
        };
        if grant.owner != owner {
            return;
        }
        Issuance::forget(per_requester, per_owner, grant);
        grant.counted = false;
    }

    /// Grants `requester` holds now.
    pub fn held_by(&self, requester: &str) -> usize {
        let issued = self.issued.lock().expect("grant lock");
        issued.per_requester.get(requester).copied().unwrap_or(0)
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
