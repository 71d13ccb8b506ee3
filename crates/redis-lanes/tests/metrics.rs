//! The `metrics` feature: what a recorder sees. Run with
//! `cargo test -p redis-lanes --features metrics --test metrics`.
//!
//! One test, since the recorder is global to the process.

mod common;

use std::time::{Duration, Instant};

use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use metrics_util::{CompositeKey, MetricKind};
use redis::AsyncCommands;

/// In every value and password below; must never appear in a label.
const MARK: &str = "s3cr3t";

struct Metric {
    kind: MetricKind,
    name: String,
    labels: Vec<(String, String)>,
    value: DebugValue,
}

impl Metric {
    fn has(&self, label: &str, value: &str) -> bool {
        self.labels.iter().any(|(k, v)| k == label && v == value)
    }
}

/// Everything recorded so far. A snapshot of the debugging recorder drains what it
/// reads (a counter or gauge reads as its change since the last snapshot; the library
/// moves gauges by increments), so values are added up here across snapshots.
#[derive(Default)]
struct Seen {
    metrics: Vec<Metric>,
}

impl Seen {
    fn refresh(&mut self, snapshotter: &Snapshotter) -> &[Metric] {
        for (key, _unit, _help, value) in snapshotter.snapshot().into_vec() {
            let key: CompositeKey = key;
            let (kind, key) = key.into_parts();
            let labels: Vec<_> = key
                .labels()
                .map(|l| (l.key().to_owned(), l.value().to_owned()))
                .collect();
            let name = key.name().to_owned();
            let known = self
                .metrics
                .iter_mut()
                .find(|m| m.kind == kind && m.name == name && m.labels == labels);
            match (known, value) {
                (Some(m), value) => match (&mut m.value, value) {
                    (DebugValue::Histogram(all), DebugValue::Histogram(samples)) => {
                        all.extend(samples)
                    }
                    (DebugValue::Counter(total), DebugValue::Counter(n)) => *total += n,
                    (DebugValue::Gauge(total), DebugValue::Gauge(change)) => {
                        *total = (total.into_inner() + change.into_inner()).into()
                    }
                    (old, new) => panic!("{name} changed kind: {old:?} then {new:?}"),
                },
                (None, value) => self.metrics.push(Metric {
                    kind,
                    name,
                    labels,
                    value,
                }),
            }
        }
        &self.metrics
    }
}

/// The value of the counter or gauge `name` for `server` with `labels`; for a histogram,
/// its number of samples.
fn value(metrics: &[Metric], name: &str, server: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let metric = metrics.iter().find(|m| {
        m.name == name && m.has("server", server) && labels.iter().all(|(k, v)| m.has(k, v))
    })?;
    match &metric.value {
        DebugValue::Counter(n) => Some(*n as f64),
        DebugValue::Gauge(v) => Some(v.into_inner()),
        DebugValue::Histogram(samples) => Some(samples.len() as f64),
    }
}

/// Polls until `check` holds on a fresh snapshot (counters are published every
/// `metrics_interval`), for at most 10 s.
async fn until(
    seen: &mut Seen,
    snapshotter: &Snapshotter,
    what: &str,
    check: impl Fn(&[Metric]) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if check(seen.refresh(snapshotter)) {
            return;
        }
        assert!(Instant::now() < deadline, "never saw {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_recorder_sees_latencies_counters_and_gauges_and_never_a_value() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    recorder
        .install()
        .expect("the only recorder of this process");

    let password = "pw-s3cr3t";
    let server = common::server_with(&["--requirepass", password]);
    let address = format!("127.0.0.1:{}", server.port());
    let client = redis_lanes::Client::builder(&format!("redis://:{password}@{address}"))
        .metrics_interval(Duration::from_millis(20))
        .connect()
        .await
        .unwrap();
    let mut conn = client.clone();

    for i in 0..10 {
        let _: () = conn.set(format!("user:{i}"), "value-s3cr3t").await.unwrap();
    }
    let _: Result<(), _> = conn.lpush("user:0", "x").await; // WRONGTYPE
    let refused = redis::cmd("MULTI").query_async::<()>(&mut conn).await;
    assert!(refused.is_err());
    let _: Option<(String, String)> = conn.blpop("user:empty", 0.05).await.unwrap();
    let mut lease = client.exclusive().await.unwrap();
    let _: () = redis::cmd("SELECT")
        .arg(1)
        .query_async(&mut lease)
        .await
        .unwrap();
    drop(lease);
    // A blocking call given up on: cancelled on the server, counted.
    let blpop = conn.blpop::<_, Option<(String, String)>>("user:never", 5.0);
    assert!(tokio::time::timeout(Duration::from_millis(50), blpop)
        .await
        .is_err());

    let mut seen = Seen::default();
    until(&mut seen, &snapshotter, "the cancel counted", |m| {
        value(m, "redis_lanes_blocking_cancels_total", &address, &[]) == Some(1.0)
    })
    .await;
    let metrics = seen.refresh(&snapshotter);
    let latency = "redis_lanes_request_duration_seconds";
    let samples = |lane, outcome| {
        value(
            metrics,
            latency,
            &address,
            &[("lane", lane), ("outcome", outcome)],
        )
        .unwrap_or(0.0)
    };
    assert!(
        samples("shared", "ok") >= 10.0,
        "{}",
        samples("shared", "ok")
    );
    // WRONGTYPE, and the refused MULTI.
    assert_eq!(samples("shared", "error"), 2.0);
    assert_eq!(samples("blocking", "ok"), 1.0);
    assert_eq!(samples("blocking", "cancelled"), 1.0);
    assert_eq!(samples("exclusive", "ok"), 1.0);
    assert_eq!(
        value(
            metrics,
            "redis_lanes_refusals_total",
            &address,
            &[("reason", "multi")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(metrics, "redis_lanes_connected", &address, &[]),
        Some(1.0)
    );
    let lanes = |state| {
        value(
            metrics,
            "redis_lanes_blocking_lanes",
            &address,
            &[("state", state)],
        )
        .unwrap_or(0.0)
    };
    assert!(lanes("busy") + lanes("idle") >= 1.0);
    for metric in metrics {
        assert!(
            metric.name.starts_with("redis_lanes_"),
            "{} is not ours",
            metric.name
        );
        for (key, value) in &metric.labels {
            assert!(
                !value.contains(MARK) && !value.contains("user:"),
                "{}: {key}={value}",
                metric.name
            );
        }
    }
    assert!(metrics.iter().any(|m| m.kind == MetricKind::Histogram));

    // The last handle dropped: this client's gauges go back to zero at once.
    drop(conn);
    drop(client);
    let metrics = seen.refresh(&snapshotter);
    for name in [
        "redis_lanes_connected",
        "redis_lanes_in_flight_requests",
        "redis_lanes_blocking_lanes",
        "redis_lanes_exclusive_lanes",
    ] {
        for metric in metrics
            .iter()
            .filter(|m| m.name == name && m.has("server", &address))
        {
            assert_eq!(
                metric.value,
                DebugValue::Gauge(0.0.into()),
                "{name} {:?}",
                metric.labels
            );
        }
    }
    // Counters stay.
    assert_eq!(
        value(metrics, "redis_lanes_blocking_cancels_total", &address, &[]),
        Some(1.0)
    );
}
