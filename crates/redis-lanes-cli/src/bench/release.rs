//! Release after the last handle is dropped: a client connects, runs a `GET` and a short
//! `BLPOP` (so redis-lanes opens a blocking lane too), and every handle is dropped
//! without a close call. How long until the server no longer lists its connections?

use std::collections::HashSet;
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

/// The rows; fred's blocking policy plays no part here.
const ROWS: [Spec; 5] = [
    clients::LANES,
    clients::REDIS_RS,
    clients::MANAGER,
    clients::POOL,
    clients::FRED_BLOCK,
];

/// Rounds per client, and how long to wait for the connections to go.
pub(crate) struct Plan {
    rounds: usize,
    cap: Duration,
}

impl Plan {
    /// 3 rounds, 5 s each at most; 1 round of at most 2 s with `--quick`.
    pub(crate) fn new(quick: bool) -> Self {
        if quick {
            Plan {
                rounds: 1,
                cap: Duration::from_secs(2),
            }
        } else {
            Plan {
                rounds: 3,
                cap: Duration::from_secs(5),
            }
        }
    }
}

/// One round: how many connections the client opened, and when they were all gone.
struct Round {
    opened: usize,
    released: Option<Duration>,
}

struct Row {
    spec: Spec,
    rounds: Vec<Round>,
}

/// Measures every client; `Err` when the run itself cannot go on.
pub(crate) async fn run(
    url: &str,
    admin: &redis_lanes::Client,
    prefix: &str,
    plan: &Plan,
) -> Result<Section, BoxError> {
    let bar = progress::bar("release", ROWS.len() * plan.rounds);
    let key = format!("{prefix}:release");
    server::query::<()>(
        admin,
        redis::cmd("SET").arg(&key).arg(super::VALUE.as_slice()),
    )
    .await?;
    let mut rows = Vec::new();
    for spec in ROWS {
        bar.set_message(spec.label);
        let mut rounds = Vec::new();
        for _ in 0..plan.rounds {
            match round(url, admin, &key, &spec, plan).await {
                Ok(round) => rounds.push(round),
                Err(e) => {
                    bar.abandon();
                    return Err(format!("{}: {e}", spec.label).into());
                }
            }
            bar.inc(1);
        }
        let row = Row { spec, rounds };
        progress::note(
            &bar,
            &format!("release  {}: {}", spec.label, cell(&row, plan)),
        );
        rows.push(row);
    }
    bar.finish_and_clear();
    server::query::<()>(admin, redis::cmd("DEL").arg(&key)).await?;

    let mut failures = Vec::new();
    for row in rows.iter().filter(|r| r.spec.is_lanes()) {
        if row.rounds.iter().any(|r| r.released.is_none()) {
            failures.push(
                "release: redis-lanes left connections open after its last handle was dropped"
                    .to_owned(),
            );
        }
    }
    Ok(Section {
        heading: "Release after the last handle is dropped",
        about: format!(
            "Each round connects a new client, runs `GET` and `BLPOP <empty list> 0.05` \
             through it, then drops every handle without calling any close or quit \
             method, and polls `CLIENT LIST` from another connection until none of the \
             connections the client opened is listed. {rounds} round(s) per client, each \
             cut off at {cap}; connections still open then are closed with `CLIENT KILL`.",
            rounds = plan.rounds,
            cap = duration(plan.cap),
        ),
        table: table(&rows, plan),
        panels: vec![panel(&rows, plan)],
        failures,
    })
}

async fn round(
    url: &str,
    admin: &redis_lanes::Client,
    key: &str,
    spec: &Spec,
    plan: &Plan,
) -> Result<Round, BoxError> {
    let before = server::ids(admin).await?;
    let mut target = spec.connect(url).await?;
    target.get_len(key).await?;
    // On a key holding a string, BLPOP fails at once with WRONGTYPE; a list key of
    // its own (never pushed to) makes it wait its 50 ms.
    target.pop(&format!("{key}:list"), 0.05).await?;
    let ours: HashSet<i64> = server::ids(admin)
        .await?
        .difference(&before)
        .copied()
        .collect();
    drop(target);
    let dropped = Instant::now();
    let released = loop {
        let listed = server::ids(admin).await?;
        if ours.is_disjoint(&listed) {
            break Some(dropped.elapsed());
        }
        if dropped.elapsed() >= plan.cap {
            // Closed from the server's side, so they do not linger through the run.
            let left: Vec<i64> = ours.intersection(&listed).copied().collect();
            server::kill(admin, &left).await?;
            break None;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    };
    Ok(Round {
        opened: ours.len(),
        released,
    })
}

/// `released after 1.2 ms (median)`, or `still open after 5.00 s`.
fn cell(row: &Row, plan: &Plan) -> String {
    let times: Vec<Duration> = row.rounds.iter().filter_map(|r| r.released).collect();
    let kept = row.rounds.len() - times.len();
    let mut text = String::new();
    if let Some(median) = percentile(&times, 0.5) {
        let _ = write!(text, "released after {} (median)", duration(median));
    }
    if kept > 0 {
        if !text.is_empty() {
            text.push_str("; ");
        }
        let _ = write!(
            text,
            "**not released**: still open after {} in {kept} of {} rounds",
            duration(plan.cap),
            row.rounds.len()
        );
    }
    text
}

fn table(rows: &[Row], plan: &Plan) -> String {
    let mut out = String::from(
        "| client | connections opened | after the last handle is dropped |\n|---|---:|---|\n",
    );
    for row in rows {
        let opened: Vec<String> = row.rounds.iter().map(|r| r.opened.to_string()).collect();
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            row.spec.label,
            opened.join(", "),
            cell(row, plan)
        );
    }
    out
}

fn panel(rows: &[Row], plan: &Plan) -> Panel {
    let bars = rows
        .iter()
        .map(|row| {
            let times: Vec<Duration> = row.rounds.iter().filter_map(|r| r.released).collect();
            let all_released = times.len() == row.rounds.len();
            let (value, text) = match percentile(&times, 0.5) {
                Some(median) if all_released => (median.as_secs_f64(), duration(median)),
                _ => (
                    plan.cap.as_secs_f64(),
                    format!("not released after {}", duration(plan.cap)),
                ),
            };
            Bar {
                label: row.spec.short.to_owned(),
                value,
                text,
                ours: row.spec.is_lanes(),
            }
        })
        .collect();
    Panel {
        title: "Connections closed after the last handle is dropped (less is better)".to_owned(),
        bars,
    }
}
