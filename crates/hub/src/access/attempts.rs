//! Slowing guesses without locking anyone out: each failed login or invite
//! from a source makes that source's next attempts wait longer (doubling,
//! up to [`MAX_DELAY`]), whether they are right or wrong; attempts made side
//! by side are counted before they wait, so parallel guessing gains
//! nothing. The right credential is still accepted after the wait.
//! Failures are forgotten [`MEMORY`] after the last one.
//!
//! Registrations on open hubs are limited per source the same way (by
//! default [`REGISTRATIONS_PER_WINDOW`] per [`MEMORY`]).

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
/// Handles one source may register per [`MEMORY`] on an open hub, by default.
pub const REGISTRATIONS_PER_WINDOW: u32 = 300;
/// Sources counted one by one; past it, the rest share one count.
const MAX_SOURCES: usize = 65_536;

/// Failures and registrations per source.
#[derive(Debug)]
pub struct Attempts {
    failures: Mutex<Table>,
    registrations: Mutex<Table>,
    registrations_per_window: u32,
}

/// Counts per source; once full, every further source shares one count
/// (so a spray of addresses is slowed as one, never let through uncounted).
#[derive(Debug)]
struct Table {
    counts: Expiring<IpAddr, u32>,
    overflow: Expiring<(), u32>,
}

impl Table {
    fn new() -> Self {
        Self {
            counts: Expiring::new(MEMORY, MAX_SOURCES),
            overflow: Expiring::new(MEMORY, 1),
        }
    }

    fn get(&self, ip: IpAddr) -> u32 {
        let source = source_of(ip);
        match self.counts.get(&source) {
            Some(n) => *n,
            None if self.counts.len() >= MAX_SOURCES => {
                self.overflow.get(&()).copied().unwrap_or(0)
            }
            None => 0,
        }
    }

    fn add(&mut self, ip: IpAddr, delta: i64) {
        let source = source_of(ip);
        let next = |n: u32| u32::try_from((i64::from(n) + delta).max(0)).unwrap_or(u32::MAX);
        let count = next(self.counts.remove(&source).unwrap_or(0));
        if self.counts.insert(source, count, |_| {}).is_err() {
            let shared = next(self.overflow.remove(&()).unwrap_or(0));
            let _ = self.overflow.insert((), shared, |_| {});
        }
    }
}

/// An attempt under way: whether it was counted as a failure in advance.
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct Attempt {
    ip: IpAddr,
    precharged: bool,
    /// How long it waits before it is checked.
    pub delay: Duration,
}

impl Attempts {
    /// Limits for a hub that lets one source register
    /// `registrations_per_window` handles per [`MEMORY`].
    pub fn new(registrations_per_window: u32) -> Self {
        Self {
            failures: Mutex::new(Table::new()),
            registrations: Mutex::new(Table::new()),
            registrations_per_window,
        }
    }

    /// Starts an attempt from `ip`. A source with recent failures has this
    /// attempt counted as one more in advance (and refunded if it works),
    /// so that attempts made side by side wait longer and longer too.
    pub fn begin(&self, ip: IpAddr) -> Attempt {
        let mut failures = lock(&self.failures);
        let so_far = failures.get(ip);
        let precharged = so_far > 0;
        if precharged {
            failures.add(ip, 1);
        }
        Attempt {
            ip,
            precharged,
            delay: delay_after(so_far),
        }
    }

    /// The attempt failed.
    pub fn failed(&self, attempt: Attempt) {
        if !attempt.precharged {
            lock(&self.failures).add(attempt.ip, 1);
        }
    }

    /// The attempt worked: it costs nothing.
    pub fn succeeded(&self, attempt: Attempt) {
        if attempt.precharged {
            lock(&self.failures).add(attempt.ip, -1);
        }
    }

    /// Whether `ip` may register another handle; counts it if so.
    pub fn may_register(&self, ip: IpAddr) -> bool {
        let mut registrations = lock(&self.registrations);
        let allowed = registrations.get(ip) < self.registrations_per_window;
        if allowed {
            registrations.add(ip, 1);
        }
        allowed
    }
}

/// The wait before an attempt after `failures` recent failures.
fn delay_after(failures: u32) -> Duration {
    match failures {
        0 => Duration::ZERO,
        n => FIRST_DELAY
            .saturating_mul(1 << (n - 1).min(10))
            .min(MAX_DELAY),
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().expect("attempt tables are never poisoned")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_per_source_and_cap() {
        let attempts = Attempts::new(REGISTRATIONS_PER_WINDOW);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let mut last = Duration::ZERO;
        for _ in 0..8 {
            let attempt = attempts.begin(a);
            assert!(attempt.delay >= last && attempt.delay <= MAX_DELAY);
            last = attempt.delay;
            attempts.failed(attempt);
        }
        assert_eq!(last, MAX_DELAY);
        assert_eq!(attempts.begin(b).delay, Duration::ZERO);
    }

    #[test]
    fn attempts_side_by_side_wait_longer_and_a_success_is_refunded() {
        let attempts = Attempts::new(REGISTRATIONS_PER_WINDOW);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        attempts.failed(attempts.begin(a));
        let parallel: Vec<_> = (0..3).map(|_| attempts.begin(a)).collect();
        let delays: Vec<_> = parallel.iter().map(|p| p.delay).collect();
        assert_eq!(delays, [FIRST_DELAY, 2 * FIRST_DELAY, 4 * FIRST_DELAY]);
        for attempt in parallel {
            attempts.succeeded(attempt);
        }
        assert_eq!(attempts.begin(a).delay, FIRST_DELAY);
    }

    #[test]
    fn registrations_are_limited_per_source() {
        let attempts = Attempts::new(20);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let allowed = (0..100).filter(|_| attempts.may_register(a)).count();
        assert_eq!(allowed, 20);
        assert!(attempts.may_register("10.0.0.2".parse().unwrap()));
    }
}
