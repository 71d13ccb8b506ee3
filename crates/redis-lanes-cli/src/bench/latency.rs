//! Latency under load, open loop: GETs are *scheduled* at a fixed rate, whatever the
//! client does, and each one's latency runs from its scheduled time to its reply. A
//! client that stalls therefore pays for every request that should have gone out
//! meanwhile (no coordinated omission), as a service's callers would.
//!
//! A thread of its own keeps the schedule (the runtime's timer ticks in milliseconds,
//! too coarse for latencies of tens of µs) and each request is spawned as a task of its
//! own when it is due, so how many are in flight is up to the client. A client keeps up
//! with a rate when its replies stay on schedule; one that cannot falls further behind
//! with every request, which the table reports instead of its percentiles.

use std::fmt::Write as _;
use std::time::Duration;

use std::time::Instant;

use tokio::sync::mpsc;

use super::chart::{Bar, Panel};
use super::progress;
use super::report::Section;
use super::summary::percentile;
use super::targets::{with_timeout, Target};
use super::{BoxError, VALUE};

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
             each a task of its own spawned when due, all sharing one client; latency runs \
             from each request's scheduled time to its reply, so time a client spends \
             stalled counts against every request it delayed (coordinated omission \
             corrected). The schedule is kept by a thread of its own, to within the \
             operating system's sleep precision. A client falls behind when its last reply comes more than {behind:?} \
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
    let (due_tx, mut due) = mpsc::unbounded_channel::<Instant>();
    let pacer = std::thread::spawn(move || pace(&due_tx, total, interval));
    let (done_tx, mut done) = mpsc::unbounded_channel::<Result<Duration, BoxError>>();
    // One task per request, spawned when it is due: how many are in flight is up to
    // the client, as with independent callers.
    while let Some(scheduled) = due.recv().await {
        let mut client = target.clone();
        let key = key.to_owned();
        let done_tx = done_tx.clone();
        tokio::spawn(async move {
            let result = match client.get_len(&key).await {
                Ok(len) if len == VALUE.len() => Ok(scheduled.elapsed()),
                Ok(len) => Err(BoxError::from(format!("GET returned {len} bytes"))),
                Err(e) => Err(e),
            };
            let _ = done_tx.send(result);
        });
    }
    drop(done_tx);
    let last = pacer.join().map_err(|_| "the pacer thread panicked")?;
    let mut latencies = Vec::with_capacity(total);
    // A client that stalls for good must not hang the bench.
    let collected = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(result) = done.recv().await {
            latencies.push(result?);
        }
        Ok::<_, BoxError>(())
    })
    .await;
    let finished = Instant::now();
    match collected {
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

/// The schedule, on a thread of its own: announces each request when it is due, to
/// within the operating system's sleep precision (tens of µs), far finer than the
/// runtime's millisecond timer. Returns when the last one was due.
fn pace(due: &mpsc::UnboundedSender<Instant>, total: usize, interval: Duration) -> Instant {
    let start = Instant::now() + Duration::from_millis(10);
    let mut next = start;
    let mut sent = 0;
    while sent < total {
        let now = Instant::now();
        while next <= now && sent < total {
            if due.send(next).is_err() {
                return next;
            }
            sent += 1;
            next += interval;
        }
        if sent < total {
            std::thread::sleep((next - now).min(Duration::from_micros(200)));
        }
    }
    next
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
