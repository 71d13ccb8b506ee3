//! The `metrics` feature: latency histograms recorded per request, and the client's
//! [`Stats`] published as counters and gauges through the `metrics` facade, so that any
//! exporter the service already runs (Prometheus, OpenTelemetry, statsd) picks them up.
//!
//! Counters and gauges are published as *differences* from what this server's core
//! published last: every client adds its own share, so two clients of the same server
//! sum instead of overwriting each other, and a closed client takes its gauges back to
//! zero. They are published every `metrics_interval` by a task that ends with the core,
//! and once more when the core is dropped.
//!
//! Handles are registered when the client connects, so the recorder must be installed
//! before that (as for every user of the `metrics` facade).

use std::sync::Mutex;
use std::time::Duration;

use metrics::{Counter, Gauge, Histogram, Label, Unit};
use tokio::sync::oneshot;

use super::Kind;
use crate::stats::Stats;

/// How a request ended, as the latency histogram labels it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome {
    Ok,
    Error,
    Cancelled,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Cancelled => "cancelled",
        }
    }
}

const KINDS: [Kind; 3] = [Kind::Shared, Kind::Blocking, Kind::Exclusive];
const OUTCOMES: [Outcome; 3] = [Outcome::Ok, Outcome::Error, Outcome::Cancelled];

const LATENCY: &str = "redis_lanes_request_duration_seconds";
const REFUSALS: &str = "redis_lanes_refusals_total";
const REDIRECTS: &str = "redis_lanes_cluster_redirects_total";

type Read = fn(&Stats) -> u64;

/// A metric fed from [`Stats`]: its name, extra labels, help text and field.
struct FromStats {
    name: &'static str,
    labels: &'static [(&'static str, &'static str)],
    help: &'static str,
    read: Read,
}

const COUNTERS: &[FromStats] = &[
    FromStats {
        name: "redis_lanes_reconnects_total",
        labels: &[],
        help: "Times the shared connection was re-established after it broke.",
        read: |s| s.reconnects,
    },
    FromStats {
        name: "redis_lanes_connection_errors_total",
        labels: &[],
        help: "Connections that ended with an I/O or protocol error.",
        read: |s| s.connection_errors,
    },
    FromStats {
        name: "redis_lanes_timeouts_total",
        labels: &[],
        help: "Requests failed by the response timeout.",
        read: |s| s.timeouts,
    },
    FromStats {
        name: "redis_lanes_backpressure_total",
        labels: &[],
        help: "Callers refused because a lane stayed full for max_in_flight_wait.",
        read: |s| s.backpressure,
    },
    FromStats {
        name: "redis_lanes_blocking_cancels_total",
        labels: &[],
        help: "Blocking calls whose caller gave up, cancelled on the server.",
        read: |s| s.blocking_cancels,
    },
    FromStats {
        name: "redis_lanes_unblock_fallbacks_total",
        labels: &[],
        help: "Cancels where CLIENT UNBLOCK was impossible, so the lane was closed.",
        read: |s| s.unblock_fallbacks,
    },
    FromStats {
        name: "redis_lanes_recovered_replies_total",
        labels: &[("outcome", "restored")],
        help: "Replies of cancelled blocking calls that raced the cancel, by what became of their data.",
        read: |s| s.orphans_restored,
    },
    FromStats {
        name: "redis_lanes_recovered_replies_total",
        labels: &[("outcome", "reported")],
        help: "",
        read: |s| s.orphans_reported,
    },
    FromStats {
        name: "redis_lanes_recovered_replies_total",
        labels: &[("outcome", "unrecoverable")],
        help: "",
        read: |s| s.orphans_unrecoverable,
    },
    FromStats {
        name: "redis_lanes_health_checks_total",
        labels: &[],
        help: "Liveness probes sent because a connection was quiet for a health-check interval.",
        read: |s| s.health_checks,
    },
    FromStats {
        name: "redis_lanes_health_check_failures_total",
        labels: &[],
        help: "Connections declared dead because their server stayed silent.",
        read: |s| s.dead_connections,
    },
    FromStats {
        name: "redis_lanes_exclusive_discards_total",
        labels: &[],
        help: "Exclusive lanes closed instead of reused when their lease ended.",
        read: |s| s.exclusive_discards,
    },
    FromStats {
        name: "redis_lanes_transaction_retries_total",
        labels: &[],
        help: "Optimistic transactions run again because a watched key changed.",
        read: |s| s.transaction_retries,
    },
    FromStats {
        name: "redis_lanes_subscriber_messages_total",
        labels: &[],
        help: "Pub/sub messages received by this client's subscribers.",
        read: |s| s.subscriber_messages,
    },
    FromStats {
        name: "redis_lanes_subscriber_dropped_total",
        labels: &[],
        help: "Pub/sub messages dropped by the subscribers' overflow policy.",
        read: |s| s.subscriber_dropped,
    },
];

const GAUGES: &[FromStats] = &[
    FromStats {
        name: "redis_lanes_in_flight_requests",
        labels: &[],
        help: "Requests written to the shared lane and awaiting their reply.",
        read: |s| s.in_flight,
    },
    FromStats {
        name: "redis_lanes_queued_requests",
        labels: &[],
        help: "Requests accepted by the shared lane but not yet written.",
        read: |s| s.queued,
    },
    FromStats {
        name: "redis_lanes_connected",
        labels: &[],
        help: "Shared lanes whose connection is up.",
        read: |s| u64::from(s.connected),
    },
    FromStats {
        name: "redis_lanes_blocking_lanes",
        labels: &[("state", "busy")],
        help: "Blocking lanes, busy (running a command) or idle.",
        read: |s| s.blocking_busy,
    },
    FromStats {
        name: "redis_lanes_blocking_lanes",
        labels: &[("state", "idle")],
        help: "",
        read: |s| s.blocking_idle,
    },
    FromStats {
        name: "redis_lanes_blocking_waiters",
        labels: &[],
        help: "Callers waiting for a blocking lane because all are busy.",
        read: |s| s.blocking_waiters,
    },
    FromStats {
        name: "redis_lanes_exclusive_lanes",
        labels: &[("state", "busy")],
        help: "Exclusive lanes, on loan or idle.",
        read: |s| s.exclusive_busy,
    },
    FromStats {
        name: "redis_lanes_exclusive_lanes",
        labels: &[("state", "idle")],
        help: "",
        read: |s| s.exclusive_idle,
    },
    FromStats {
        name: "redis_lanes_exclusive_waiters",
        labels: &[],
        help: "Callers waiting for an exclusive lane because all are on loan.",
        read: |s| s.exclusive_waiters,
    },
];

/// One server's registered metric handles and what was published of its stats.
pub(crate) struct Handles {
    server: String,
    /// Indexed by `kind * OUTCOMES.len() + outcome`.
    latency: Vec<Histogram>,
    counters: Vec<(Counter, Read)>,
    gauges: Vec<(Gauge, Read)>,
    published: Mutex<Stats>,
    /// Dropped with the core, which ends the publishing task at once.
    stop: Mutex<Option<oneshot::Sender<()>>>,
}

impl std::fmt::Debug for Handles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handles")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

impl Handles {
    /// Registers every metric of the server at `server` (`host:port` or a socket path).
    pub(crate) fn new(server: &str) -> Handles {
        describe();
        let label = |extra: &[(&'static str, &'static str)]| {
            let mut labels = vec![Label::new("server", server.to_owned())];
            labels.extend(extra.iter().map(|&(k, v)| Label::new(k, v)));
            labels
        };
        let mut latency = Vec::with_capacity(KINDS.len() * OUTCOMES.len());
        for kind in KINDS {
            for outcome in OUTCOMES {
                let labels = label(&[("lane", kind.as_str()), ("outcome", outcome.as_str())]);
                latency.push(metrics::histogram!(LATENCY, labels));
            }
        }
        Handles {
            server: server.to_owned(),
            latency,
            counters: COUNTERS
                .iter()
                .map(|m| (metrics::counter!(m.name, label(m.labels)), m.read))
                .collect(),
            gauges: GAUGES
                .iter()
                .map(|m| (metrics::gauge!(m.name, label(m.labels)), m.read))
                .collect(),
            published: Mutex::new(Stats::default()),
            stop: Mutex::new(None),
        }
    }

    /// Records one request's latency.
    pub(crate) fn latency(&self, kind: Kind, outcome: Outcome, elapsed: Duration) {
        let index = kind as usize * OUTCOMES.len() + outcome as usize;
        if let Some(histogram) = self.latency.get(index) {
            histogram.record(elapsed.as_secs_f64());
        }
    }

    /// Counts a command refused before it was sent, by why (`multi`, `select` ...).
    pub(crate) fn refusal(&self, reason: &'static str) {
        metrics::counter!(REFUSALS, "server" => self.server.clone(), "reason" => reason)
            .increment(1);
    }

    /// Publishes what changed in `now` since the last call.
    pub(crate) fn publish(&self, now: &Stats) {
        let Ok(mut last) = self.published.lock() else {
            return;
        };
        for (counter, read) in &self.counters {
            let delta = read(now).saturating_sub(read(&last));
            if delta > 0 {
                counter.increment(delta);
            }
        }
        for (gauge, read) in &self.gauges {
            let (new, old) = (read(now), read(&last));
            if new > old {
                gauge.increment(count(new - old));
            } else if old > new {
                gauge.decrement(count(old - new));
            }
        }
        *last = *now;
    }

    /// Publishes the last counts and takes this server's gauges back to zero.
    pub(crate) fn retire(&self, now: &Stats) {
        self.publish(now);
        // Counters never go back; only the gauges drop out.
        self.publish(&counters_only(now));
    }

    /// Starts the task that calls `publish` every `interval` until it returns `None`
    /// (its core is gone) or these handles are dropped (with the core).
    pub(crate) fn spawn_publisher(
        &self,
        runtime: &tokio::runtime::Handle,
        interval: Duration,
        publish: impl Fn() -> Option<()> + Send + 'static,
    ) {
        let (stop, mut stopped) = oneshot::channel::<()>();
        if let Ok(mut slot) = self.stop.lock() {
            *slot = Some(stop);
        }
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = &mut stopped => return,
                    _ = tick.tick() => {}
                }
                if publish().is_none() {
                    return;
                }
            }
        });
    }
}

/// `now` with every gauge at zero.
fn counters_only(now: &Stats) -> Stats {
    Stats {
        in_flight: 0,
        queued: 0,
        connected: false,
        blocking_busy: 0,
        blocking_idle: 0,
        blocking_waiters: 0,
        exclusive_busy: 0,
        exclusive_idle: 0,
        exclusive_waiters: 0,
        ..*now
    }
}

/// Counts are far below 2^53, where `f64` stops being exact.
#[allow(clippy::cast_precision_loss)]
fn count(n: u64) -> f64 {
    n as f64
}

/// Counts a cluster redirect followed (`moved`, `ask`, `retry`).
pub(crate) fn redirect(kind: &'static str) {
    metrics::counter!(REDIRECTS, "kind" => kind).increment(1);
}

/// Gives every metric its unit and help text, for exporters that show them.
fn describe() {
    metrics::describe_histogram!(
        LATENCY,
        Unit::Seconds,
        "Time from a request's start to its reply, by lane kind and outcome."
    );
    metrics::describe_counter!(
        REFUSALS,
        Unit::Count,
        "Commands refused before they were sent (state-changing commands on the shared lane)."
    );
    metrics::describe_counter!(
        REDIRECTS,
        Unit::Count,
        "Cluster redirects followed: MOVED, ASK, and TRYAGAIN/CLUSTERDOWN waited out."
    );
    for m in COUNTERS.iter().filter(|m| !m.help.is_empty()) {
        metrics::describe_counter!(m.name, Unit::Count, m.help);
    }
    for m in GAUGES.iter().filter(|m| !m.help.is_empty()) {
        metrics::describe_gauge!(m.name, Unit::Count, m.help);
    }
}
