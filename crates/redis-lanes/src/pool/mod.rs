//! A bounded pool of dedicated lanes: the blocking lanes, and any other kind of lane a
//! caller must have to itself.
//!
//! Lanes are opened lazily, at most `max` at a time. A lane goes back to the pool only
//! through [`Lease::release`], which callers use once the reply of everything they sent
//! was read, so a lane is never handed out still blocked on the server or with a stale
//! reply in its socket.

mod idle;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::error::{Error, ErrorKind};
use crate::lane::{self, Lane, LaneKind, LaneOptions};
use crate::stats::Waiting;
use idle::IdleLanes;

/// Pool settings, from the client's builder.
#[derive(Debug, Clone)]
pub(crate) struct PoolConfig {
    /// What a lane of this pool is, for error messages ("blocking lane").
    pub(crate) what: &'static str,
    /// The builder option that sets `max_lanes`, for error messages.
    pub(crate) limit_name: &'static str,
    pub(crate) max_lanes: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) acquire_timeout: Duration,
    /// What its lanes are for (when they may check their peer by themselves).
    pub(crate) kind: LaneKind,
}

#[derive(Debug)]
pub(crate) struct Pool {
    /// The lanes' own options: the shared lane's, with the response timeout off (a
    /// dedicated
    /// lane's user decides how long to wait) and no push sender.
    lane_config: Arc<LaneOptions>,
    config: PoolConfig,
    /// One permit per lane that may exist; FIFO, so waiters are served in order.
    permits: Arc<Semaphore>,
    idle: IdleLanes,
    waiters: AtomicUsize,
    /// The shared lane's connection generation. A lane opened under an older one
    /// predates a reconnect (perhaps a restarted or failed-over server): it is closed,
    /// never handed out again.
    generation: Arc<AtomicU64>,
    /// Cancelled when the pool closes or is dropped: the reaper ends at once rather
    /// than at its next tick.
    reaper_stop: CancellationToken,
}

/// A lane on loan. Give it back with [`Lease::release`] once its reply was read;
/// dropping it instead closes the lane, because its state is unknown.
#[derive(Debug)]
pub(crate) struct Lease {
    lane: Option<Lane>,
    pool: Arc<Pool>,
    _permit: OwnedSemaphorePermit,
}

impl Pool {
    pub(crate) fn new(
        lane_config: &LaneOptions,
        config: PoolConfig,
        generation: Arc<AtomicU64>,
    ) -> Arc<Self> {
        let pool = Arc::new(Self {
            lane_config: Arc::new(lane_config.dedicated()),
            permits: Arc::new(Semaphore::new(config.max_lanes)),
            config,
            idle: IdleLanes::default(),
            waiters: AtomicUsize::new(0),
            generation,
            reaper_stop: CancellationToken::new(),
        });
        spawn_reaper(&pool);
        pool
    }

    /// Borrows a lane, opening one if none is idle, waiting (first come, first served)
    /// when all `max_lanes` are busy.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::PoolTimeout`] when no lane frees up within the acquire timeout;
    /// [`ErrorKind::Closed`] after `close`; connect errors from opening a lane.
    pub(crate) async fn acquire(self: &Arc<Self>) -> Result<Lease, Error> {
        if self.idle.is_closed() {
            return Err(Error::closed().not_sent());
        }
        let permit = match Arc::clone(&self.permits).try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                let waiting = Waiting::new(&self.waiters);
                let waited = tokio::time::timeout(
                    self.config.acquire_timeout,
                    Arc::clone(&self.permits).acquire_owned(),
                )
                .await;
                drop(waiting);
                match waited {
                    Ok(Ok(permit)) => permit,
                    Ok(Err(_)) => return Err(Error::closed().not_sent()),
                    Err(_) => {
                        return Err(Error::new(
                            ErrorKind::PoolTimeout,
                            format!(
                                "no {} became free within {:?}: all {} ({}) are busy",
                                self.config.what,
                                self.config.acquire_timeout,
                                self.config.max_lanes,
                                self.config.limit_name
                            ),
                        )
                        .not_sent())
                    }
                }
            }
        };
        let lane = match self.pop_idle() {
            Some(lane) => lane,
            None => {
                let (lane, driver) = self.open_lane().await?;
                // The task owns only the driver: it ends when the lane's last handle
                // (held by this pool or a lease) is dropped.
                tokio::spawn(driver);
                lane
            }
        };
        Ok(Lease {
            lane: Some(lane),
            pool: Arc::clone(self),
            _permit: permit,
        })
    }

    /// Opens a lane. While the server cannot be reached, tries again with the
    /// reconnect backoff for up to `disconnected_wait`, as a shared-lane request waits
    /// for its lane to come back; a refusal (credentials, database) fails at once.
    async fn open_lane(&self) -> Result<(Lane, lane::LaneDriver), Error> {
        let options = &self.lane_config.reconnect;
        // A wait too long to add to the clock is as good as forever.
        let deadline = tokio::time::Instant::now().checked_add(options.wait);
        let mut attempt = 0;
        loop {
            let generation = self.generation.load(Relaxed);
            let err = match lane::open_dedicated(
                Arc::clone(&self.lane_config),
                generation,
                self.config.kind,
            )
            .await
            {
                Ok(opened) => return Ok(opened),
                Err(err) => err,
            };
            attempt += 1;
            let pause = options.backoff(attempt);
            let in_time = match (deadline, tokio::time::Instant::now().checked_add(pause)) {
                (None, _) => true,
                (Some(deadline), Some(resume)) => resume < deadline,
                (Some(_), None) => false,
            };
            let retry = options.enabled
                && err.kind() == ErrorKind::Connect
                && !self.idle.is_closed()
                && in_time;
            if !retry {
                return Err(err);
            }
            tracing::debug!(what = self.config.what, attempt, error = %err, "opening a lane failed; retrying");
            tokio::time::sleep(pause).await;
        }
    }

    fn pop_idle(&self) -> Option<Lane> {
        // A lane whose connection died while idle, or that predates a reconnect of the
        // shared lane, is dropped (which closes it), not handed out.
        self.idle.pop(|lane| self.is_current(lane))
    }

    fn put_back(&self, lane: Lane) {
        self.idle.put_back(lane, |lane| self.is_current(lane));
    }

    fn is_current(&self, lane: &Lane) -> bool {
        !lane.is_closed() && lane.generation() == self.generation.load(Relaxed)
    }

    /// Refuses new leases and closes every idle lane. Lanes on loan close when their
    /// lease ends.
    pub(crate) fn close(&self) {
        self.idle.close();
        self.permits.close();
        self.reaper_stop.cancel();
    }

    pub(crate) fn busy(&self) -> usize {
        self.config
            .max_lanes
            .saturating_sub(self.permits.available_permits())
    }

    pub(crate) fn idle_count(&self) -> usize {
        self.idle.len()
    }

    pub(crate) fn waiters(&self) -> usize {
        self.waiters.load(Relaxed)
    }
}

impl Lease {
    pub(crate) fn lane(&self) -> Option<&Lane> {
        self.lane.as_ref()
    }

    /// Returns the lane to the pool. Only call this once the reply of everything sent
    /// on it was read.
    pub(crate) fn release(mut self) {
        if let Some(lane) = self.lane.take() {
            self.pool.put_back(lane);
        }
    }

    /// Closes the lane's socket now instead of returning it.
    pub(crate) fn discard(mut self) {
        if let Some(lane) = self.lane.take() {
            lane.abort();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.reaper_stop.cancel();
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Not released: whatever the lane was doing, it cannot be trusted for reuse.
        if let Some(lane) = self.lane.take() {
            lane.abort();
        }
    }
}

/// Closes idle lanes in the background. Holds only a `Weak`, so it never keeps the pool
/// alive, and wakes when the pool closes or is dropped, so it ends with it.
fn spawn_reaper(pool: &Arc<Pool>) {
    let weak: Weak<Pool> = Arc::downgrade(pool);
    let stop = pool.reaper_stop.clone();
    let period = (pool.config.idle_timeout / 2).max(Duration::from_millis(50));
    tokio::spawn(async move {
        loop {
            // `sleep` (unlike `interval`) takes any period, even `Duration::MAX`.
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                () = tokio::time::sleep(period) => {}
            }
            let Some(pool) = weak.upgrade() else { return };
            if pool.idle.is_closed() {
                return;
            }
            pool.idle.reap(pool.config.idle_timeout);
        }
    });
}
