//! Slowing guesses without locking anyone out: each failed login or invite
//! from a source makes that source's next attempts wait longer (doubling,
//! up to [`MAX_DELAY`]), whether they are right or wrong, so parallel
//! guessing gains nothing; the right credential is still accepted after
//! the wait. Failures are forgotten [`MEMORY`] after the last one.
//!
//! Registrations on open hubs are limited per source the same way: at most
//! [`REGISTRATIONS_PER_WINDOW`] per [`MEMORY`].

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Duration;

use ferry_io::Expiring;
use ferry_io::sources::source_of;

/// How long a source's failures (and registrations) are remembered.
pub const MEMORY: Duration = Duration::from_secs(600);
/// The longest wait before an attempt is answered.
pub const MAX_DELAY: Duration = Duration::from_secs(8);
/// The wait after the first failure; it doubles with each further one.
pub const FIRST_DELAY: Duration = Duration::from_millis(250);
/// Handles one source may register per [`MEMORY`] on an open hub.
pub const REGISTRATIONS_PER_WINDOW: u32 = 300;
/// Sources remembered at once (past it, the oldest are forgotten early
/// rather than letting a spray of addresses grow the table).
const MAX_SOURCES: usize = 65_536;

/// Failures and registrations per source.
#[derive(Debug)]
pub struct Attempts {
    failures: Mutex<Expiring<IpAddr, u32>>,
    registrations: Mutex<Expiring<IpAddr, u32>>,
}

impl Default for Attempts {
    fn default() -> Self {
        Self {
            failures: Mutex::new(Expiring::new(MEMORY, MAX_SOURCES)),
            registrations: Mutex::new(Expiring::new(MEMORY, MAX_SOURCES)),
        }
    }
}

impl Attempts {
    /// How long an attempt from `ip` waits before it is checked.
    pub fn delay(&self, ip: IpAddr) -> Duration {
        let failures = lock(&self.failures);
        match failures.get(&source_of(ip)).copied() {
            None | Some(0) => Duration::ZERO,
            Some(n) => FIRST_DELAY
                .saturating_mul(1 << (n - 1).min(10))
                .min(MAX_DELAY),
        }
    }

    /// Counts a failed attempt from `ip`.
    pub fn failed(&self, ip: IpAddr) {
        bump(&self.failures, ip);
    }

    /// Whether `ip` may register another handle; counts it if so.
    pub fn may_register(&self, ip: IpAddr) -> bool {
        let so_far = lock(&self.registrations)
            .get(&source_of(ip))
            .copied()
            .unwrap_or(0);
        so_far < REGISTRATIONS_PER_WINDOW && {
            bump(&self.registrations, ip);
            true
        }
    }
}

fn bump(table: &Mutex<Expiring<IpAddr, u32>>, ip: IpAddr) {
    let source = source_of(ip);
    let mut table = lock(table);
    let count = table.remove(&source).unwrap_or(0).saturating_add(1);
    // Full of other sources: this one goes uncounted rather than evicting.
    let _ = table.insert(source, count, |_| {});
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().expect("attempt tables are never poisoned")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_per_source_and_cap() {
        let attempts = Attempts::default();
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        assert_eq!(attempts.delay(a), Duration::ZERO);
        let mut last = Duration::ZERO;
        for _ in 0..8 {
            attempts.failed(a);
            let now = attempts.delay(a);
            assert!(now >= last && now <= MAX_DELAY);
            last = now;
        }
        assert_eq!(last, MAX_DELAY);
        assert_eq!(attempts.delay(b), Duration::ZERO);
    }

    #[test]
    fn registrations_are_limited_per_source() {
        let attempts = Attempts::default();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let allowed = (0..1000).filter(|_| attempts.may_register(a)).count();
        assert_eq!(allowed, REGISTRATIONS_PER_WINDOW as usize);
        assert!(attempts.may_register("10.0.0.2".parse().unwrap()));
    }
}
