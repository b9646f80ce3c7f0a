//! Being a peer: offering a folder ([`shelf`]), serving other peers
//! ([`serve`]), fetching from them ([`fetch`]), and the connection to the
//! hub that keeps offers current and answers its commands ([`agent`]).

pub mod agent;
pub mod fetch;
pub mod serve;
pub mod shelf;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ferry_protocol::{Fingerprint, Token};

/// How long a grant the hub announced stays usable.
const EXPECT_LIFETIME: Duration = Duration::from_secs(120);

/// A requester the hub told us to expect.
#[derive(Debug, Clone)]
pub struct Expected {
    /// The offered name it may fetch.
    pub name: String,
    /// Its handle.
    pub requester: String,
    /// Its certificate.
    pub fingerprint: Fingerprint,
    expires: Instant,
}

/// Grants this peer will honour, each once.
#[derive(Debug, Clone, Default)]
pub struct Expectations(Arc<Mutex<HashMap<Token, Expected>>>);

impl Expectations {
    /// Remembers a grant announced by the hub.
    pub fn insert(&self, token: Token, name: String, requester: String, fingerprint: Fingerprint) {
        let mut map = self.0.lock().expect("expectations lock");
        let now = Instant::now();
        map.retain(|_, e| e.expires > now);
        map.insert(
            token,
            Expected {
                name,
                requester,
                fingerprint,
                expires: now + EXPECT_LIFETIME,
            },
        );
    }

    /// Uses up a grant; `None` if unknown, expired or already used.
    pub fn take(&self, token: &Token) -> Option<Expected> {
        let expected = self.0.lock().expect("expectations lock").remove(token)?;
        (expected.expires > Instant::now()).then_some(expected)
    }
}
