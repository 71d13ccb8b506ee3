//! The builder options of exclusive lanes and transactions.

use std::time::Duration;

/// Options of the exclusive-lane pool and the transaction helper.
#[derive(Debug, Clone)]
pub(crate) struct ExclusiveOptions {
    pub(crate) max_lanes: usize,
    pub(crate) acquire_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_retries: u32,
}

impl Default for ExclusiveOptions {
    fn default() -> Self {
        Self {
            max_lanes: 16,
            acquire_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_retries: 16,
        }
    }
}
