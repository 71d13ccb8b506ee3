//! The bound on requests in flight on one lane, in count and in bytes: backpressure
//! without a lock on the hot path.
//!
//! A Tokio `Semaphore` would do the job, but it takes its waiter-list mutex on every
//! release, and here every request releases once, from the driver's thread, while
//! callers acquire from others. This limit is an atomic counter; only callers that find
//! the lane full touch the `Notify`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use tokio::sync::Notify;

use crate::stats::Waiting;

#[derive(Debug)]
pub(crate) struct Limit {
    used: AtomicUsize,
    max: usize,
    /// Bytes of the requests holding slots, and their bound. A request larger than the
    /// bound alone is let through when nothing else holds bytes, so it cannot wait
    /// forever.
    bytes: AtomicUsize,
    max_bytes: usize,
    /// Callers currently waiting for room; releases only notify when this is non-zero.
    waiters: AtomicUsize,
    notify: Notify,
    closed: AtomicBool,
}

/// One slot, returned to the limit when dropped.
#[derive(Debug)]
pub(crate) struct Permit {
    limit: Arc<Limit>,
    bytes: usize,
    /// Set for a request under a response timeout: whichever of the caller (timing out)
    /// and the driver (answering) gets there first returns the slot.
    early: Option<Arc<AtomicBool>>,
}

impl Permit {
    /// Lets the caller return the slot before the request is answered (see `early`):
    /// the returned handle does it with [`release_early`].
    pub(crate) fn shared(&mut self) -> Arc<AtomicBool> {
        Arc::clone(self.early.get_or_insert_with(Default::default))
    }
}

/// Returns the slot of a permit made [`Permit::shared`], unless that was done already.
pub(crate) fn release_early(limit: &Limit, early: &AtomicBool, bytes: usize) {
    if !early.swap(true, SeqCst) {
        limit.release(bytes);
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        match &self.early {
            Some(early) => release_early(&self.limit, early, self.bytes),
            None => self.limit.release(self.bytes),
        }
    }
}

/// The limit was closed: the lane has ended.
#[derive(Debug)]
pub(crate) struct Closed;

impl Limit {
    pub(crate) fn new(max: usize, max_bytes: usize) -> Self {
        Self {
            used: AtomicUsize::new(0),
            max,
            bytes: AtomicUsize::new(0),
            max_bytes,
            waiters: AtomicUsize::new(0),
            notify: Notify::new(),
            closed: AtomicBool::new(false),
        }
    }

    fn try_take(&self, bytes: usize) -> bool {
        let mut used = self.used.load(SeqCst);
        loop {
            if used >= self.max {
                return false;
            }
            match self
                .used
                .compare_exchange_weak(used, used + 1, SeqCst, SeqCst)
            {
                Ok(_) => break,
                Err(actual) => used = actual,
            }
        }
        let mut held = self.bytes.load(SeqCst);
        loop {
            let fits = held == 0 || held.saturating_add(bytes) <= self.max_bytes;
            if !fits {
                // Give the count back without a notification: that would wake this very
                // caller, if it is a waiter, into a busy loop. A waiter refused a count
                // meanwhile is woken by the release of the bytes that refused this one.
                self.used.fetch_sub(1, SeqCst);
                return false;
            }
            match self
                .bytes
                .compare_exchange_weak(held, held + bytes, SeqCst, SeqCst)
            {
                Ok(_) => return true,
                Err(actual) => held = actual,
            }
        }
    }

    /// Takes a slot for a request of `bytes` if one is free now, without waiting.
    pub(crate) fn try_acquire(self: &Arc<Self>, bytes: usize) -> Option<Permit> {
        if self.closed.load(SeqCst) || !self.try_take(bytes) {
            return None;
        }
        Some(Permit {
            limit: Arc::clone(self),
            bytes,
            early: None,
        })
    }

    /// Takes a slot for a request of `bytes`, waiting for one when the lane is full. Waiters are woken in the
    /// order they started waiting, but a caller arriving just as a slot frees may take
    /// it first; the woken waiter then waits again (no slot is lost, no waiter hangs).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future gives up the place in line; no slot is lost.
    pub(crate) async fn acquire(self: &Arc<Self>, bytes: usize) -> Result<Permit, Closed> {
        loop {
            if self.closed.load(SeqCst) {
                return Err(Closed);
            }
            if self.try_take(bytes) {
                return Ok(Permit {
                    limit: Arc::clone(self),
                    bytes,
                    early: None,
                });
            }
            let notified = self.notify.notified();
            tokio::pin!(notified);
            // Registered before the re-check below, so a release between the check
            // and the await cannot be missed.
            notified.as_mut().enable();
            let _waiting = Waiting::new(&self.waiters);
            if self.closed.load(SeqCst) {
                return Err(Closed);
            }
            if self.try_take(bytes) {
                return Ok(Permit {
                    limit: Arc::clone(self),
                    bytes,
                    early: None,
                });
            }
            notified.await;
        }
    }

    fn release(&self, bytes: usize) {
        if bytes > 0 {
            self.bytes.fetch_sub(bytes, SeqCst);
        }
        self.used.fetch_sub(1, SeqCst);
        if self.waiters.load(SeqCst) > 0 {
            self.notify.notify_one();
        }
    }

    /// Fails every current and future `acquire`.
    pub(crate) fn close(&self) {
        self.closed.store(true, SeqCst);
        self.notify.notify_waiters();
    }

    /// Slots in use: requests queued or awaiting their reply.
    pub(crate) fn in_use(&self) -> usize {
        self.used.load(SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn bounds_and_wakes_waiters() {
        let limit = Arc::new(Limit::new(2, usize::MAX));
        let a = limit.acquire(0).await.unwrap();
        let _b = limit.acquire(0).await.unwrap();
        assert_eq!(limit.in_use(), 2);
        let waiter = {
            let limit = Arc::clone(&limit);
            tokio::spawn(async move { limit.acquire(0).await.map(|_| ()) })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "a third slot was handed out");
        drop(a);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken on release")
            .unwrap()
            .unwrap();
    }

    #[tokio::test]
    async fn close_fails_waiters() {
        let limit = Arc::new(Limit::new(1, usize::MAX));
        let _a = limit.acquire(0).await.unwrap();
        let waiter = {
            let limit = Arc::clone(&limit);
            tokio::spawn(async move { limit.acquire(0).await.is_err() })
        };
        tokio::time::sleep(Duration::from_millis(20)).await;
        limit.close();
        assert!(tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken on close")
            .unwrap());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn never_over_the_bound_under_contention() {
        let limit = Arc::new(Limit::new(3, usize::MAX));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let limit = Arc::clone(&limit);
            let peak = Arc::clone(&peak);
            tasks.push(tokio::spawn(async move {
                for _ in 0..200 {
                    let permit = limit.acquire(0).await.unwrap();
                    peak.fetch_max(limit.in_use(), SeqCst);
                    tokio::task::yield_now().await;
                    drop(permit);
                }
            }));
        }
        for task in tasks {
            tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .expect("no lost wake-up")
                .unwrap();
        }
        assert!(peak.load(SeqCst) <= 3);
        assert_eq!(limit.in_use(), 0);
    }

    #[tokio::test]
    async fn bounds_bytes_but_lets_a_lone_large_request_through() {
        let limit = Arc::new(Limit::new(100, 1000));
        let a = limit.acquire(600).await.unwrap();
        let blocked = tokio::time::timeout(Duration::from_millis(20), limit.acquire(600)).await;
        assert!(
            blocked.is_err(),
            "1200 bytes were let in under a bound of 1000"
        );
        let _small = limit.acquire(400).await.unwrap();
        drop(a);
        drop(_small);
        let huge = limit.acquire(5000).await.unwrap();
        assert_eq!(limit.in_use(), 1);
        drop(huge);
        assert_eq!(limit.bytes.load(SeqCst), 0);
    }

    #[tokio::test]
    async fn an_early_release_happens_once() {
        let limit = Arc::new(Limit::new(1, 1000));
        let mut permit = limit.acquire(10).await.unwrap();
        let early = permit.shared();
        release_early(&limit, &early, 10);
        assert_eq!(limit.in_use(), 0, "the caller gave the slot back");
        let other = limit.acquire(10).await.unwrap();
        drop(permit); // The driver answers the old request: nothing returned twice.
        assert_eq!(limit.in_use(), 1);
        drop(other);
        assert_eq!((limit.in_use(), limit.bytes.load(SeqCst)), (0, 0));
    }
}
