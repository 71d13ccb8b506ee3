//! Latency under load, open loop: GETs are *scheduled* at a fixed rate, whatever the
//! client does, and each one's latency runs from its scheduled time to its reply. A
//! client that stalls therefore pays for every request that should have gone out
//! meanwhile (no coordinated omission), as a service's callers would.
//!
//! [`WORKERS`] tasks share the schedule: worker `k` sends requests `k`, `k + WORKERS`,
//! ... each at its time, or at once when it is already late. A client keeps up with a
//! rate when its replies stay on schedule; one that cannot falls further behind with
//! every request, which the table reports instead of its percentiles.

use std::fmt::Write as _;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::chart::{Bar, Panel};
use super::progress;
use super::report::Section;
use super::summary::percentile;
use super::targets::{with_timeout, Target};
use super::{BoxError, VALUE};

/// Concurrent senders: more than any client here has in flight at the highest rate
/// while it keeps up (200k/s × 1 ms).
const WORKERS: usize = 512;

/// A client keeps up when its last reply comes at most this long after the last
/// scheduled send.
const BEHIND: Duration = Duration::from_millis(100);

/// The clients compared, by name and how to connect them.
const CLIENTS: [&str; 4] = ["redis-lanes", "redis-rs", "ConnectionManager", "fred"];

pub(crate) struct Plan {
    rates: Vec<u32>,
    window: Duration,
}

impl Plan {
    /// 25k, 50k, 100k and 200k GETs/s for 2 s each; 25k and 100k for 0.3 s with `--quick`.
    pub(crate) fn new(quick: bool) -> Self {
        if quick {
            Plan {
                rates: vec![25_000, 100_000],
                window: Duration::from_millis(300),
            }
        } else {
            Plan {
                rates: vec![25_000, 50_000, 100_000, 200_000],
                window: Duration::from_secs(2),
            }
        }
    }
}

/// One client at one rate.
struct Cell {
    /// Latencies from the scheduled time, sorted.
    latencies: Vec<Duration>,
    /// Whether the replies kept up with the schedule.
    kept_up: bool,
}

impl Cell {
    fn p(&self, p: f64) -> Duration {
        percentile(&self.latencies, p).unwrap_or_default()
    }
}

pub(crate) async fn run(url: &str, prefix: &str, plan: &Plan) -> Result<Section, BoxError> {
    let key = format!("{prefix}:latency");
    let bar = progress::bar("latency", plan.rates.len() * CLIENTS.len());
    let mut rows: Vec<(u32, Vec<Cell>)> = Vec::new();
    for &rate in &plan.rates {
        let mut cells = Vec::new();
        // A fresh client per cell: what one rate left queued never reaches the next.
        for name in CLIENTS {
            bar.set_message(format!("{name} at {}k/s", rate / 1000));
            let target = connect(name, url).await?;
            let cell = open_loop(&target, &key, rate, plan.window).await;
            target.close().await;
            cells.push(cell?);
            bar.inc(1);
        }
        rows.push((rate, cells));
    }
    bar.finish_and_clear();

    let mut table = String::from("| GET/s scheduled |");
    for name in CLIENTS {
        write!(table, " {name} p50 / p99 / p99.9 |")?;
    }
    table.push_str("\n|---|");
    table.push_str(&"---|".repeat(CLIENTS.len()));
    table.push('\n');
    for (rate, cells) in &rows {
        write!(table, "| {}k |", rate / 1000)?;
        for cell in cells {
            if cell.kept_up {
                write!(
                    table,
                    " {} / {} / {} |",
                    micros(cell.p(0.5)),
                    micros(cell.p(0.99)),
                    micros(cell.p(0.999))
                )?;
            } else {
                write!(table, " falls behind (p50 {}) |", micros(cell.p(0.5)))?;
            }
        }
        table.push('\n');
    }
    Ok(Section {
        heading: "Latency under load (open loop)",
        about: format!(
            "GETs of a {len}-byte value scheduled at a fixed rate for {window:?} per cell, \
             sent by {WORKERS} tasks sharing one client; latency runs from each request's \
             scheduled time to its reply, so time a client spends stalled counts against \
             every request it delayed (coordinated omission corrected). The scheduler \
             wakes on Tokio's millisecond timer, which adds up to 1 ms to every client \
             alike. A client falls behind when its last reply comes more than {behind:?} \
             after the last scheduled send. One fresh client per cell, the clients in \
             turn at each rate; µs.",
            len = VALUE.len(),
            window = plan.window,
            behind = BEHIND,
        ),
        table,
        panels: vec![panel(&rows)],
        // Reported, not failed on: one short run on a shared VM is too noisy to gate on.
        failures: Vec::new(),
    })
}

async fn connect(name: &str, url: &str) -> Result<Target, BoxError> {
    match name {
        "redis-lanes" => with_timeout(name, Target::lanes(url)).await,
        "redis-rs" => with_timeout(name, Target::redis_rs(url)).await,
        "ConnectionManager" => with_timeout(name, Target::manager(url)).await,
        _ => with_timeout(name, Target::fred(url, fred::prelude::Blocking::Block)).await,
    }
}

/// Runs the schedule against `target` and returns every request's latency.
async fn open_loop(
    target: &Target,
    key: &str,
    rate: u32,
    window: Duration,
) -> Result<Cell, BoxError> {
    let mut setup = target.clone();
    setup.set(key, VALUE).await?;
    let total = (f64::from(rate) * window.as_secs_f64()) as usize;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate));
    // Long enough for every worker to be spawned and asleep before the first send.
    let start = Instant::now() + Duration::from_millis(50);
    let last = start + interval * u32::try_from(total).unwrap_or(u32::MAX);
    let mut workers = JoinSet::new();
    for first in 0..WORKERS.min(total) {
        let mut client = target.clone();
        let key = key.to_owned();
        workers.spawn(async move {
            let mut latencies = Vec::with_capacity(total / WORKERS + 1);
            for i in (first..total).step_by(WORKERS) {
                let scheduled = start + interval * u32::try_from(i).unwrap_or(u32::MAX);
                tokio::time::sleep_until(scheduled).await;
                let len = client.get_len(&key).await?;
                if len != VALUE.len() {
                    return Err(BoxError::from(format!("GET returned {len} bytes")));
                }
                latencies.push(scheduled.elapsed());
            }
            Ok(latencies)
        });
    }
    let mut latencies = Vec::with_capacity(total);
    // A client that stalls for good must not hang the bench.
    let deadline = last + Duration::from_secs(30);
    let joined = tokio::time::timeout_at(deadline, async {
        while let Some(joined) = workers.join_next().await {
            latencies.extend(joined??);
        }
        Ok::<_, BoxError>(())
    })
    .await;
    let finished = Instant::now();
    match joined {
        Ok(result) => result?,
        Err(_) => {
            return Err(
                format!("{}: replies missing 30 s after the schedule", target.name()).into(),
            )
        }
    }
    latencies.sort_unstable();
    Ok(Cell {
        latencies,
        kept_up: finished <= last + BEHIND,
    })
}

fn micros(d: Duration) -> String {
    format!("{}", d.as_micros())
}

/// p99 per client at the highest rate redis-rs kept up with.
fn panel(rows: &[(u32, Vec<Cell>)]) -> Panel {
    let chosen = rows
        .iter()
        .rev()
        .find(|(_, cells)| cells.get(1).is_some_and(|c| c.kept_up))
        .or(rows.first());
    let (rate, bars) = match chosen {
        Some((rate, cells)) => (
            *rate,
            CLIENTS
                .iter()
                .zip(cells)
                .map(|(name, cell)| {
                    let p99 = cell.p(0.99);
                    Bar {
                        label: (*name).to_owned(),
                        value: p99.as_secs_f64(),
                        text: if cell.kept_up {
                            format!("{} µs", p99.as_micros())
                        } else {
                            "falls behind".to_owned()
                        },
                        ours: *name == "redis-lanes",
                    }
                })
                .collect(),
        ),
        None => (0, Vec::new()),
    };
    Panel {
        title: format!(
            "GET p99 latency at {}k/s scheduled, open loop (less is better)",
            rate / 1000
        ),
        bars,
    }
}
