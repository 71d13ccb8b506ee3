//! The bound on requests in flight on one lane: backpressure without a lock on the hot
//! path.
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
    /// Callers currently waiting for room; releases only notify when this is non-zero.
    waiters: AtomicUsize,
    notify: Notify,
    closed: AtomicBool,
}

/// One slot, returned to the limit when dropped.
#[derive(Debug)]
pub(crate) struct Permit {
    limit: Arc<Limit>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limit.release();
    }
}

/// The limit was closed: the lane has ended.
#[derive(Debug)]
pub(crate) struct Closed;

impl Limit {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            used: AtomicUsize::new(0),
            max,
            waiters: AtomicUsize::new(0),
            notify: Notify::new(),
            closed: AtomicBool::new(false),
        }
    }

    fn try_take(&self) -> bool {
        let mut used = self.used.load(SeqCst);
        while used < self.max {
            match self
                .used
                .compare_exchange_weak(used, used + 1, SeqCst, SeqCst)
            {
                Ok(_) => return true,
                Err(actual) => used = actual,
            }
        }
        false
    }

    /// Takes a slot, waiting for one when the lane is full. Waiters are woken in the
    /// order they started waiting, but a caller arriving just as a slot frees may take
    /// it first; the woken waiter then waits again (no slot is lost, no waiter hangs).
    ///
    /// # Cancel safety
    ///
    /// Dropping the future gives up the place in line; no slot is lost.
    pub(crate) async fn acquire(self: &Arc<Self>) -> Result<Permit, Closed> {
        loop {
            if self.closed.load(SeqCst) {
                return Err(Closed);
            }
            if self.try_take() {
                return Ok(Permit {
                    limit: Arc::clone(self),
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
            if self.try_take() {
                return Ok(Permit {
                    limit: Arc::clone(self),
                });
            }
            notified.await;
        }
    }

    fn release(&self) {
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
        let limit = Arc::new(Limit::new(2));
        let a = limit.acquire().await.unwrap();
        let _b = limit.acquire().await.unwrap();
        assert_eq!(limit.in_use(), 2);
        let waiter = {
            let limit = Arc::clone(&limit);
            tokio::spawn(async move { limit.acquire().await.map(|_| ()) })
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
        let limit = Arc::new(Limit::new(1));
        let _a = limit.acquire().await.unwrap();
        let waiter = {
            let limit = Arc::clone(&limit);
            tokio::spawn(async move { limit.acquire().await.is_err() })
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
        let limit = Arc::new(Limit::new(3));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..16 {
            let limit = Arc::clone(&limit);
            let peak = Arc::clone(&peak);
            tasks.push(tokio::spawn(async move {
                for _ in 0..200 {
                    let permit = limit.acquire().await.unwrap();
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
}
