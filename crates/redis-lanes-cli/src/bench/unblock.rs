//! Cancel-to-server-unblock latency: a task waiting in `BLPOP` on an empty list is
//! aborted; how long until the server stops holding a blocked connection for it?
//!
//! redis-lanes unblocks it with `CLIENT UNBLOCK` from the dropped call itself; the
//! others leave the command to the server, which ends it when its own timeout passes.

use std::fmt::Write as _;
use std::time::Duration;

use tokio::time::Instant;

use super::chart::{Bar, Panel};
use super::clients::{self, Spec};
use super::progress;
use super::report::Section;
use super::server;
use super::summary::{duration, percentile};
use super::BoxError;

/// The rows. fred's `Interrupt` is left out: it acts only when another command is sent
/// through the client, and this scenario sends none.
const ROWS: [Spec; 5] = [
    clients::LANES,
    clients::REDIS_RS,
    clients::MANAGER,
    clients::POOL,
    clients::FRED_BLOCK,
];

/// How many cancels per client, and the BLPOP's own timeout.
pub(crate) struct Plan {
    rounds: usize,
    blpop_seconds: f64,
}

impl Plan {
    /// 10 rounds of `BLPOP 2`; 2 rounds of `BLPOP 0.5` with `--quick`.
    pub(crate) fn new(quick: bool) -> Self {
        if quick {
            Plan {
                rounds: 2,
                blpop_seconds: 0.5,
            }
        } else {
            Plan {
                rounds: 10,
                blpop_seconds: 2.0,
            }
        }
    }

    /// A measurement stops here: the BLPOP's own timeout plus a second.
    fn cap(&self) -> Duration {
        Duration::from_secs_f64(self.blpop_seconds + 1.0)
    }
}

/// One client's rounds: the latency of each, `None` where it was still blocked at the cap.
struct Row {
    spec: Spec,
    latencies: Vec<Option<Duration>>,
}

impl Row {
    fn measured(&self) -> Vec<Duration> {
        self.latencies.iter().flatten().copied().collect()
    }
}

/// Measures every client; `Err` when the run itself cannot go on.
pub(crate) async fn run(
    url: &str,
    admin: &redis_lanes::Client,
    prefix: &str,
    plan: &Plan,
) -> Result<Section, BoxError> {
    let bar = progress::bar("cancel→unblock", ROWS.len() * plan.rounds);
    let mut rows = Vec::new();
    for (i, spec) in ROWS.iter().enumerate() {
        bar.set_message(spec.label);
        let key = format!("{prefix}:unblock:{i}");
        let row = measure(url, admin, &key, spec, plan, &bar).await;
        let row = match row {
            Ok(row) => row,
            Err(e) => {
                bar.abandon();
                return Err(format!("{}: {e}", spec.label).into());
            }
        };
        progress::note(
            &bar,
            &format!("cancel→unblock  {}: {}", spec.label, summary(&row, plan)),
        );
        rows.push(row);
    }
    bar.finish_and_clear();

    let mut failures = Vec::new();
    for row in rows.iter().filter(|r| r.spec.is_lanes()) {
        let slow = row
            .latencies
            .iter()
            .any(|l| l.is_none_or(|l| l >= Duration::from_secs(1)));
        if slow {
            failures.push(
                "cancel→unblock: a cancelled redis-lanes BLPOP stayed blocked for a second or more"
                    .to_owned(),
            );
        }
    }
    Ok(Section {
        heading: "Cancel → server unblock",
        about: format!(
            "Each round starts `BLPOP <empty list> {secs}` through the client in a task, waits \
             until `CLIENT LIST` shows the connection blocked, then aborts the task (the \
             future is dropped, as a timeout or `select!` would) and polls `CLIENT LIST` \
             from another connection until no connection of the client is blocked. \
             {rounds} rounds per client; a round stops counting at {cap}. redis-lanes \
             sends `CLIENT UNBLOCK` when the call is dropped; the others leave the BLPOP \
             on the server until its own timeout.",
            secs = plan.blpop_seconds,
            rounds = plan.rounds,
            cap = duration(plan.cap()),
        ),
        table: table(&rows, plan),
        panels: vec![panel(&rows)],
        failures,
    })
}

/// One client's rounds.
async fn measure(
    url: &str,
    admin: &redis_lanes::Client,
    key: &str,
    spec: &Spec,
    plan: &Plan,
    bar: &indicatif::ProgressBar,
) -> Result<Row, BoxError> {
    server::query::<()>(admin, redis::cmd("DEL").arg(key)).await?;
    let before = server::ids(admin).await?;
    let target = spec.connect(url).await?;
    let mut latencies = Vec::new();
    for _ in 0..plan.rounds {
        let mut client = target.clone();
        let (key, seconds) = (key.to_owned(), plan.blpop_seconds);
        let call = tokio::spawn(async move { client.pop(&key, seconds).await });
        let blocked = server::wait_blocked(admin, &before, "blpop", Duration::from_secs(2)).await?;
        if !blocked {
            call.abort();
            return Err("the BLPOP never showed up blocked on the server".into());
        }
        let cancelled = Instant::now();
        call.abort();
        latencies.push(server::wait_unblocked(admin, &before, cancelled, plan.cap()).await?);
        bar.inc(1);
        // A round cut off at the cap may leave the BLPOP waiting; the next round must
        // start on a quiet connection.
        server::wait_unblocked(admin, &before, Instant::now(), plan.cap()).await?;
    }
    target.close().await;
    Ok(Row {
        spec: *spec,
        latencies,
    })
}

/// `p50 1.2 ms, p99 2.0 ms, max 2.1 ms[, N still blocked at 3.00 s]`.
fn summary(row: &Row, plan: &Plan) -> String {
    let measured = row.measured();
    let mut text = match (
        percentile(&measured, 0.5),
        percentile(&measured, 0.99),
        percentile(&measured, 1.0),
    ) {
        (Some(p50), Some(p99), Some(max)) => format!(
            "p50 {}, p99 {}, max {}",
            duration(p50),
            duration(p99),
            duration(max)
        ),
        _ => "no round unblocked".to_owned(),
    };
    let stuck = row.latencies.len() - measured.len();
    if stuck > 0 {
        let _ = write!(text, ", {stuck} still blocked at {}", duration(plan.cap()));
    }
    text
}

fn table(rows: &[Row], plan: &Plan) -> String {
    let mut out = String::from(
        "| client | rounds | cancel → unblocked on the server (p50, p99, max) | unblocked by |\n\
         |---|---:|---|---|\n",
    );
    for row in rows {
        let by = if row.spec.is_lanes() {
            "`CLIENT UNBLOCK` sent on drop"
        } else {
            "the BLPOP's own timeout"
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {by} |",
            row.spec.label,
            row.latencies.len(),
            summary(row, plan)
        );
    }
    out
}

fn panel(rows: &[Row]) -> Panel {
    let bars = rows
        .iter()
        .map(|row| {
            let p50 = percentile(&row.measured(), 0.5);
            Bar {
                label: row.spec.short.to_owned(),
                value: p50.map_or(0.0, |d| d.as_secs_f64()),
                text: p50.map_or_else(|| "still blocked".to_owned(), duration),
                ours: row.spec.is_lanes(),
            }
        })
        .collect();
    Panel {
        title: "Cancelled BLPOP: until the server unblocks it, p50 (less is better)".to_owned(),
        bars,
    }
}
