//! The hub's WebDAV lock store: dav-server's in-memory one, with the
//! expiry enforced. `MemLs` records when each lock turns stale but never
//! looks: a lock a client died holding stayed until a restart, keeping
//! out every change through WebDAV, the API and the CLI. Here a lock past
//! its time is unlocked whenever it stands in the way or is listed.

use std::time::{Duration, SystemTime};

use dav_server::davpath::DavPath;
use dav_server::ls::{DavLock, DavLockSystem, LsFuture};
use futures_util::FutureExt;

/// [`dav_server::memls::MemLs`], with locks that expire.
#[derive(Debug, Clone)]
pub(crate) struct ExpiringLocks {
    inner: Box<dyn DavLockSystem>,
}

impl ExpiringLocks {
    pub(crate) fn boxed() -> Box<dyn DavLockSystem> {
        Box::new(Self {
            inner: dav_server::memls::MemLs::new(),
        })
    }

    /// Unlocks `lock` if its time has passed; whether it went.
    async fn expired(&self, lock: &DavLock) -> bool {
        let passed = lock.timeout_at.is_some_and(|at| at <= SystemTime::now());
        passed && self.inner.unlock(&lock.path, &lock.token).await.is_ok()
    }
}

impl DavLockSystem for ExpiringLocks {
    fn lock(
        &'_ self,
        path: &DavPath,
        principal: Option<&str>,
        owner: Option<&xmltree::Element>,
        timeout: Option<Duration>,
        shared: bool,
        deep: bool,
    ) -> LsFuture<'_, Result<DavLock, DavLock>> {
        let (path, principal, owner) = (path.clone(), principal.map(str::to_owned), owner.cloned());
        async move {
            loop {
                let (principal, owner) = (principal.as_deref(), owner.as_ref());
                let locked = self
                    .inner
                    .lock(&path, principal, owner, timeout, shared, deep);
                match locked.await {
                    // Each pass removes a lock: this ends.
                    Err(conflict) if self.expired(&conflict).await => {}
                    locked => return locked,
                }
            }
        }
        .boxed()
    }

    fn unlock(&'_ self, path: &DavPath, token: &str) -> LsFuture<'_, Result<(), ()>> {
        self.inner.unlock(path, token)
    }

    fn refresh(
        &'_ self,
        path: &DavPath,
        token: &str,
        timeout: Option<Duration>,
    ) -> LsFuture<'_, Result<DavLock, ()>> {
        self.inner.refresh(path, token, timeout)
    }

    fn check(
        &'_ self,
        path: &DavPath,
        principal: Option<&str>,
        ignore_principal: bool,
        deep: bool,
        submitted_tokens: &[String],
    ) -> LsFuture<'_, Result<(), DavLock>> {
        let (path, principal) = (path.clone(), principal.map(str::to_owned));
        let tokens = submitted_tokens.to_vec();
        async move {
            loop {
                let checked =
                    self.inner
                        .check(&path, principal.as_deref(), ignore_principal, deep, &tokens);
                match checked.await {
                    Err(conflict) if self.expired(&conflict).await => {}
                    checked => return checked,
                }
            }
        }
        .boxed()
    }

    fn discover(&'_ self, path: &DavPath) -> LsFuture<'_, Vec<DavLock>> {
        let path = path.clone();
        async move {
            let mut live = Vec::new();
            for lock in self.inner.discover(&path).await {
                if !self.expired(&lock).await {
                    live.push(lock);
                }
            }
            live
        }
        .boxed()
    }

    fn delete(&'_ self, path: &DavPath) -> LsFuture<'_, Result<(), ()>> {
        self.inner.delete(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lock_past_its_time_stands_in_no_ones_way() {
        let locks = ExpiringLocks::boxed();
        let path = DavPath::new("/report.txt").unwrap();
        let short = Some(Duration::from_millis(50));
        let held = locks
            .lock(&path, Some("alice"), None, short, false, false)
            .await;
        let held = held.expect("locked");
        assert!(locks.check(&path, None, false, false, &[]).await.is_err());
        assert!(
            locks
                .lock(&path, Some("bob"), None, short, false, false)
                .await
                .is_err(),
            "while it lasts"
        );
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(
            locks.discover(&path).await.is_empty(),
            "not listed once stale"
        );
        assert!(locks.check(&path, None, false, false, &[]).await.is_ok());
        let again = locks
            .lock(&path, Some("bob"), None, None, false, false)
            .await;
        assert!(again.is_ok(), "bob may lock it now");
        assert!(
            locks.unlock(&path, &held.token).await.is_err(),
            "alice's is gone"
        );
    }
}
