//! Being a peer: offering a folder ([`shelf`]), serving other peers
//! ([`serve`]), fetching from them ([`fetch`]), and the connection to the
//! hub that keeps offers current and answers its commands ([`agent`]).

pub mod agent;
pub mod fetch;
pub mod serve;
pub mod shelf;

use std::sync::{Arc, Mutex};

use ferry_io::Expiring;
use ferry_protocol::{Fingerprint, GRANT_LIFETIME, Token};

/// Grants a peer keeps expecting at once; past it, new ones are ignored
/// (the requester is told the peer did not answer) until some are used or
/// expire.
const MAX_EXPECTED: usize = 4_096;

/// A requester the hub told us to expect.
#[derive(Debug, Clone)]
pub struct Expected {
    /// The offered name it may fetch.
    pub name: String,
    /// Its handle.
    pub requester: String,
    /// Its certificate.
    pub fingerprint: Fingerprint,
}

/// Grants this peer will honour, each once, for [`GRANT_LIFETIME`] (the
/// hub's lifetime for them too).
#[derive(Debug, Clone)]
pub struct Expectations(Arc<Mutex<Expiring<Token, Expected>>>);

impl Default for Expectations {
    fn default() -> Self {
        Self(Arc::new(Mutex::new(Expiring::new(
            GRANT_LIFETIME,
            MAX_EXPECTED,
        ))))
    }
}

impl Expectations {
    /// Remembers a grant announced by the hub; `false` if too many wait.
    pub fn insert(
        &self,
        token: Token,
        name: String,
        requester: String,
        fingerprint: Fingerprint,
    ) -> bool {
        let expected = Expected {
            name,
            requester,
            fingerprint,
        };
        let mut table = self.0.lock().expect("expectations lock");
        table.insert(token, expected, drop).is_ok()
    }

    /// Uses up a grant; `None` if unknown, expired or already used.
    pub fn take(&self, token: &Token) -> Option<Expected> {
        self.0.lock().expect("expectations lock").remove(token)
    }
}
