//! The demo's live view: a bar over the run with the last second's shared-lane
//! throughput and p99, the blocking lanes busy and idle, cancels, and recovered data.
//!
//! indicatif draws on stderr and hides the bar when stderr is not a terminal (a CI log, a
//! pipe); the same figures are then printed as one line a second, so a log still shows
//! the run as it went.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use redis_lanes::Client;

/// Exact below this many microseconds; above, [`SUB_BUCKETS`] buckets per power of two.
const LINEAR: u64 = 16;
/// Buckets per power of two above [`LINEAR`]: a bucket is at most 1/8 of its value wide.
const SUB_BUCKETS: u64 = 8;
/// Enough buckets for any `u64` number of microseconds.
const BUCKETS: usize = (LINEAR + (64 - 4) * SUB_BUCKETS) as usize;

/// A latency histogram that every shared-lane task records into without a lock, read and
/// reset once a second for the live p99. Buckets are log-linear (as in HdrHistogram with
/// one significant digit), so a percentile is exact to within 12.5 %.
pub(super) struct Window {
    buckets: [AtomicU64; BUCKETS],
}

impl Window {
    pub(super) fn new() -> Self {
        Self {
            buckets: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }

    /// Counts one operation that took `micros`.
    pub(super) fn record(&self, micros: u64) {
        self.buckets[bucket(micros)].fetch_add(1, Ordering::Relaxed);
    }

    /// Operations recorded since the last call, and their 99th percentile in
    /// microseconds (the upper edge of its bucket); empties the window.
    pub(super) fn take(&self) -> (u64, u64) {
        let counts: Vec<u64> = self
            .buckets
            .iter()
            .map(|b| b.swap(0, Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        // The smallest value with at least 99 % of the operations at or below it.
        let rank = total - total / 100;
        let mut seen = 0;
        for (index, count) in counts.iter().enumerate() {
            seen += count;
            if total > 0 && seen >= rank {
                return (total, upper_edge(index));
            }
        }
        (total, 0)
    }
}

/// The bucket of a value: itself below [`LINEAR`], else its power of two and the next
/// three bits.
fn bucket(micros: u64) -> usize {
    if micros < LINEAR {
        return micros as usize;
    }
    let exponent = u64::from(63 - micros.leading_zeros()); // >= 4
    let sub = (micros >> (exponent - 3)) & (SUB_BUCKETS - 1);
    (LINEAR + (exponent - 4) * SUB_BUCKETS + sub) as usize
}

/// The largest value that falls into bucket `index`.
fn upper_edge(index: usize) -> u64 {
    let index = index as u64;
    if index < LINEAR {
        return index;
    }
    let exponent = (index - LINEAR) / SUB_BUCKETS + 4;
    let sub = (index - LINEAR) % SUB_BUCKETS;
    let width = 1u64 << (exponent - 3);
    ((SUB_BUCKETS + sub) * width).saturating_add(width - 1)
}

/// The live view while the workload runs; [`Live::finish`] takes it down before the
/// final tables are printed.
pub(super) struct Live {
    bar: ProgressBar,
    task: tokio::task::JoinHandle<()>,
}

impl Live {
    /// Starts updating once a second from `window` and the client's stats.
    pub(super) fn start(client: Client, window: Arc<Window>, duration: Duration) -> Self {
        let bar = ProgressBar::new(duration.as_secs().max(1));
        // The template is a constant; should it ever fail to parse, the default style is
        // still a working bar.
        if let Ok(style) =
            ProgressStyle::with_template("{spinner} {elapsed:>4} [{bar:20}] {wide_msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.enable_steady_tick(Duration::from_millis(120));
        let task = tokio::spawn(update(bar.clone(), client, window));
        Self { bar, task }
    }

    /// Stops the updates and removes the bar.
    pub(super) fn finish(self) {
        drop(self);
    }
}

/// Also taken down when the demo ends early on an error, so no update is printed after
/// (or into) the error message.
impl Drop for Live {
    fn drop(&mut self) {
        self.task.abort();
        self.bar.finish_and_clear();
    }
}

async fn update(bar: ProgressBar, client: Client, window: Arc<Window>) {
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    window.take(); // only what happens from now on
    loop {
        tick.tick().await;
        let (ops, p99) = window.take();
        let stats = client.stats();
        let line = format!(
            "shared {ops:>7} ops/s p99 {:>8} | blocking lanes {} busy {} idle | \
             {} cancels | {} recovered",
            if ops == 0 {
                "-".to_owned()
            } else {
                micros(p99)
            },
            stats.blocking_busy,
            stats.blocking_idle,
            stats.blocking_cancels,
            stats.orphans_restored + stats.orphans_reported,
        );
        if bar.is_hidden() {
            println!("  {:>3.0} s  {line}", started.elapsed().as_secs_f64());
        } else {
            bar.set_position(started.elapsed().as_secs());
            bar.set_message(line);
        }
    }
}

/// `850 µs`, `1.9 ms`.
fn micros(us: u64) -> String {
    if us < 1000 {
        format!("{us} µs")
    } else {
        format!("{:.1} ms", us as f64 / 1000.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_cover_their_values_within_an_eighth() {
        for value in (0..100_000u64).chain([u64::MAX / 3, u64::MAX]) {
            let index = bucket(value);
            let upper = upper_edge(index);
            assert!(index < BUCKETS, "{value}");
            assert!(upper >= value, "{value} -> bucket {index} ends at {upper}");
            assert!(
                upper - value <= value / 8,
                "{value}: bucket too wide ({upper})"
            );
            if index > 0 {
                assert!(
                    upper_edge(index - 1) < value,
                    "{value} fits an earlier bucket"
                );
            }
        }
    }

    #[test]
    fn p99_of_a_window_and_the_window_empties() {
        let window = Window::new();
        for _ in 0..990 {
            window.record(100);
        }
        for _ in 0..10 {
            window.record(5_000);
        }
        let (count, p99) = window.take();
        assert_eq!(count, 1000);
        assert!((100..=112).contains(&p99), "p99 {p99}");
        window.record(5_000);
        let (count, p99) = window.take();
        assert_eq!(count, 1);
        assert!((5_000..=5_625).contains(&p99), "p99 {p99}");
        assert_eq!(window.take(), (0, 0));
    }
}
