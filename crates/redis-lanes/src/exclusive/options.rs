//! The builder options of exclusive lanes and transactions.

use std::time::Duration;

use crate::config::Builder;

/// Options of the exclusive-lane pool and the transaction helper.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub(crate) max_lanes: usize,
    pub(crate) acquire_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_retries: u32,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            max_lanes: 16,
            acquire_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_retries: 16,
        }
    }
}

impl Builder {
    /// Bounds the dedicated connections [`Client::exclusive`](crate::Client::exclusive)
    /// (and [`Client::transaction`](crate::Client::transaction)) lease out. When all are
    /// on loan, further callers wait their turn (first come, first served) for up to
    /// [`Builder::exclusive_acquire_timeout`]. Must be at least 1. Default: 16.
    pub fn max_exclusive_lanes(mut self, max: usize) -> Self {
        self.exclusive.max_lanes = max;
        self
    }

    /// How long [`Client::exclusive`](crate::Client::exclusive) waits for a free
    /// exclusive lane before it fails with
    /// [`ErrorKind::PoolTimeout`](crate::ErrorKind::PoolTimeout). Default: 10 s.
    pub fn exclusive_acquire_timeout(mut self, timeout: Duration) -> Self {
        self.exclusive.acquire_timeout = timeout;
        self
    }

    /// Closes exclusive lanes left idle this long. Default: 60 s.
    pub fn exclusive_idle_timeout(mut self, idle: Duration) -> Self {
        self.exclusive.idle_timeout = idle;
        self
    }

    /// How many times [`Client::transaction`](crate::Client::transaction) runs its body
    /// again after the first attempt, when a watched key changed (or the body returned
    /// `Ok(None)`), before it gives up with
    /// [`ErrorKind::TransactionConflict`](crate::ErrorKind::TransactionConflict).
    /// `0` means a single attempt. Default: 16.
    pub fn transaction_max_retries(mut self, retries: u32) -> Self {
        self.exclusive.max_retries = retries;
        self
    }
}
