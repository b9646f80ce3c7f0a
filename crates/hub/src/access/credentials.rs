//! Who an HTTP request comes from: its API token, looked up once and
//! remembered briefly. HTTP clients send their credential with every
//! request (a WebDAV client a few hundred times to copy a folder), so each
//! verified token is kept for [`REMEMBERED_FOR`]; revoking, demoting or
//! changing a user's quota forgets its tokens at once (`forget`), so a
//! change never waits for the cache.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ferry_protocol::{ApiToken, Handle, Role};

use crate::catalog::Catalog;
use crate::error::HubError;
use crate::publish::unix_now;

/// How long a verified token is believed without asking the catalog.
pub const REMEMBERED_FOR: Duration = Duration::from_secs(10);

/// Most tokens remembered at once; past it the cache starts over (a
/// flood of distinct valid tokens costs catalog reads, never memory).
const MAX_REMEMBERED: usize = 4096;

/// A user an HTTP request acts for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The handle (lowercase key).
    pub handle: Handle,
    /// Its role now.
    pub role: Role,
    /// Its quota in force (`None`: unlimited).
    pub quota: Option<u64>,
}

/// Verified tokens, by the hash of their secret, each with when it stops
/// being believed.
#[derive(Debug, Default)]
pub struct Credentials {
    remembered: Mutex<HashMap<[u8; 32], (Caller, Instant)>>,
    /// Bumped by every `forget`: a lookup that began before one is not
    /// remembered (it may have read the user before the change).
    forgotten: AtomicU64,
}

impl Credentials {
    /// The caller `token` lets in, if any.
    pub async fn verify(
        &self,
        catalog: &Catalog,
        token: &ApiToken,
        default_quota: Option<u64>,
    ) -> Result<Option<Caller>, HubError> {
        let hashed = token.hashed();
        if let Some(caller) = self.remembered(&hashed) {
            return Ok(Some(caller));
        }
        let generation = self.forgotten.load(Ordering::SeqCst);
        let now = unix_now();
        let Some((user, expires_at)) = catalog.token_user(&hashed, now).await? else {
            return Ok(None);
        };
        let Ok(handle) = Handle::parse(&user.handle) else {
            return Ok(None);
        };
        // Token use is use: an open hub does not expire this handle.
        catalog.seen(&handle, now).await?;
        let caller = Caller {
            handle,
            role: user.role,
            quota: user.quota.effective(default_quota),
        };
        let left = expires_at.map_or(REMEMBERED_FOR, |at| {
            Duration::from_secs(u64::try_from(at - now).unwrap_or(0)).min(REMEMBERED_FOR)
        });
        let mut remembered = self.lock();
        if self.forgotten.load(Ordering::SeqCst) != generation {
            return Ok(Some(caller));
        }
        if remembered.len() >= MAX_REMEMBERED {
            remembered.clear();
        }
        remembered.insert(hashed, (caller.clone(), Instant::now() + left));
        Ok(Some(caller))
    }

    /// Forgets every remembered token of `handle` (lowercase key).
    pub fn forget(&self, handle: &str) {
        let mut remembered = self.lock();
        self.forgotten.fetch_add(1, Ordering::SeqCst);
        remembered.retain(|_, (caller, _)| caller.handle.as_str() != handle);
    }

    fn remembered(&self, hashed: &[u8; 32]) -> Option<Caller> {
        let mut remembered = self.lock();
        match remembered.get(hashed) {
            Some((caller, until)) if Instant::now() < *until => Some(caller.clone()),
            Some(_) => {
                remembered.remove(hashed);
                None
            }
            None => None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], (Caller, Instant)>> {
        self.remembered
            .lock()
            .expect("credentials lock is never poisoned")
    }
}
