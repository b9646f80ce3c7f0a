//! Open sessions by handle, so that revoking a user (or changing its role
//! or quota) ends its sessions at once: each logged-in session registers
//! its cancellation token here, and the session loop, a sharing
//! connection's loop and an event feed all stop when it fires.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// Every logged-in session's token, by handle.
#[derive(Debug, Default)]
pub struct Live {
    next: AtomicU64,
    by_handle: Mutex<HashMap<String, HashMap<u64, CancellationToken>>>,
}

/// A session's place in [`Live`]; leaves it when dropped.
#[derive(Debug)]
pub struct Entered {
    live: Arc<Live>,
    handle: String,
    id: u64,
}

impl Live {
    /// Registers a session of `handle` that stops when `token` is cancelled.
    pub fn enter(self: &Arc<Self>, handle: &str, token: CancellationToken) -> Entered {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock()
            .entry(handle.to_owned())
            .or_default()
            .insert(id, token);
        Entered {
            live: Arc::clone(self),
            handle: handle.to_owned(),
            id,
        }
    }

    /// Ends every session of `handle`; returns how many there were.
    pub fn end(&self, handle: &str) -> usize {
        let sessions = self.lock().remove(handle).unwrap_or_default();
        for token in sessions.values() {
            token.cancel();
        }
        sessions.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, HashMap<u64, CancellationToken>>> {
        self.by_handle
            .lock()
            .expect("live sessions lock is never poisoned")
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        let mut by_handle = self.live.lock();
        if let Some(sessions) = by_handle.get_mut(&self.handle) {
            sessions.remove(&self.id);
            if sessions.is_empty() {
                by_handle.remove(&self.handle);
            }
        }
    }
}
