//! The shared lane's reconnect policy: backoff with jitter, an attempt limit, how long
//! requests wait for the connection to come back, and the opt-in read-only retry.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use crate::error::{Error, ErrorKind};

/// Reconnect settings, set through [`Builder`] methods.
#[derive(Debug, Clone)]
pub(crate) struct ReconnectOptions {
    pub(crate) enabled: bool,
    pub(crate) min_delay: Duration,
    pub(crate) max_delay: Duration,
    /// `None`: keep trying for as long as the client has handles.
    pub(crate) max_attempts: Option<u32>,
    /// How long a request waits for a disconnected lane; zero fails fast.
    pub(crate) wait: Duration,
    pub(crate) retry_read_only: bool,
}

impl Default for ReconnectOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            min_delay: Duration::from_millis(50),
            max_delay: Duration::from_secs(5),
            max_attempts: None,
            wait: Duration::from_secs(5),
            retry_read_only: false,
        }
    }
}

impl ReconnectOptions {
    pub(crate) fn validate(&self) -> Result<(), Error> {
        if self.min_delay.is_zero() || self.min_delay > self.max_delay {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                "reconnect_backoff needs 0 < min <= max",
            ));
        }
        if self.max_attempts == Some(0) {
            return Err(Error::new(
                ErrorKind::InvalidConfig,
                "reconnect_max_attempts must be at least 1 (use reconnect(false) to turn reconnect off)",
            ));
        }
        Ok(())
    }

    /// The pause before reconnect attempt `attempt` (1 for the first retry): exponential
    /// from `min_delay`, capped at `max_delay`, with "equal jitter" (half fixed, half
    /// random) so that many clients cut off together do not return in lockstep, and no
    /// pause is ever near zero.
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        let base = self
            .min_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay);
        let half = base / 2;
        let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
        let jitter = if nanos == 0 {
            0
        } else {
            random_u64() % (nanos + 1)
        };
        half + Duration::from_nanos(jitter)
    }

    /// Whether a failed reconnect attempt ends the lane instead of being retried: the
    /// server refused the credentials or the handshake, which trying again cannot fix.
    pub(crate) fn is_final(err: &Error) -> bool {
        matches!(
            err.kind(),
            ErrorKind::Auth | ErrorKind::Handshake | ErrorKind::InvalidConfig
        )
    }
}

/// A random number for jitter. `RandomState` is seeded randomly per thread, which is
/// all jitter needs; no dependency for it.
fn random_u64() -> u64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(0x9e37_79b9_7f4a_7c15);
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters() {
        let opts = ReconnectOptions {
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            ..ReconnectOptions::default()
        };
        for _ in 0..200 {
            let first = opts.backoff(1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = opts.backoff(3);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            let late = opts.backoff(40);
            assert!(late >= Duration::from_millis(500) && late <= Duration::from_secs(1));
        }
        let samples: std::collections::HashSet<_> = (0..50).map(|_| opts.backoff(5)).collect();
        assert!(samples.len() > 10, "jitter should spread the pauses");
    }

    #[test]
    fn invalid_policies_are_config_errors() {
        let bad = ReconnectOptions {
            min_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(1),
            ..ReconnectOptions::default()
        };
        assert!(bad.validate().is_err_and(|e| e.is_config()));
        let zero = ReconnectOptions {
            max_attempts: Some(0),
            ..ReconnectOptions::default()
        };
        assert!(zero.validate().is_err_and(|e| e.is_config()));
        assert!(ReconnectOptions::default().validate().is_ok());
    }

    #[test]
    fn only_refusals_are_final() {
        assert!(ReconnectOptions::is_final(&Error::new(
            ErrorKind::Auth,
            "x"
        )));
        assert!(ReconnectOptions::is_final(&Error::new(
            ErrorKind::Handshake,
            "x"
        )));
        assert!(!ReconnectOptions::is_final(&Error::new(
            ErrorKind::Connect,
            "x"
        )));
        assert!(!ReconnectOptions::is_final(&Error::protocol("x")));
    }
}
