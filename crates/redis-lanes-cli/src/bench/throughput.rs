//! The throughput scenario: SET and GET from N concurrent tasks sharing one client
//! object, per client, per task count.

use std::fmt::Write as _;
use std::time::Duration;

use super::chart::{Bar, Panel};
use super::limit;
use super::progress;
use super::report::Section;
use super::run::cell;
use super::summary::{median, ratio};
use super::targets::{Target, POOL_SIZE};
use super::{BoxError, Op, ADMIN_TIMEOUT};

/// How the throughput cells are run, from the command line.
pub(crate) struct Plan {
    pub(crate) window: Duration,
    pub(crate) warmup: Duration,
    pub(crate) task_counts: Vec<usize>,
    pub(crate) rounds: usize,
    /// Whether `redis-benchmark` runs cut down too.
    pub(crate) quick: bool,
}

/// One line of the table: its samples per client, in `Target::connect_all` order.
struct Row {
    op: Op,
    tasks: usize,
    samples: Vec<Vec<f64>>,
}

impl Row {
    fn medians(&self) -> Vec<f64> {
        self.samples.iter().map(|s| median(s)).collect()
    }
}

/// Measures every cell and returns the table; any client error ends it with `Err`.
pub(crate) async fn run(
    url: &str,
    admin: &redis_lanes::Client,
    prefix: &str,
    plan: &Plan,
) -> Result<Section, BoxError> {
    let targets = Target::connect_all(url).await?;
    let mut rows = Vec::new();
    for op in [Op::Set, Op::Get] {
        for &tasks in &plan.task_counts {
            rows.push(Row {
                op,
                tasks,
                samples: vec![Vec::new(); targets.len()],
            });
        }
    }
    let measured = measure(&targets, &mut rows, plan, prefix).await;

    // Clean up even after a failure; the measured error is the one worth reporting.
    let max_tasks = plan.task_counts.iter().copied().max().unwrap_or(0);
    let cleaned = tokio::time::timeout(ADMIN_TIMEOUT, delete_keys(admin, prefix, max_tasks))
        .await
        .map_err(|_| BoxError::from("deleting the benchmark keys: no reply"))
        .and_then(|r| r);
    let names: Vec<&str> = targets.iter().map(Target::name).collect();
    for target in targets {
        target.close().await;
    }
    measured?;
    cleaned?;
    let mut limits = Vec::new();
    for op in [Op::Get, Op::Set] {
        let (url, quick) = (url.to_owned(), plan.quick);
        if let Some(limit) =
            tokio::task::spawn_blocking(move || limit::measure(&url, op, quick)).await??
        {
            limits.push((op, limit));
        }
    }

    Ok(Section {
        heading: "Throughput",
        about: format!(
            "Throughput of SET and GET of 16-byte values, from N concurrent tasks sharing \
             one client object: redis-lanes; redis-rs's `MultiplexedConnection` and \
             `ConnectionManager` (response timeout off); a deadpool-redis pool of \
             {POOL_SIZE} connections (response timeout off; every operation takes a \
             connection from the pool); fred (one `Client`). Clients run back to back \
             within each cell so drift on the machine hits them alike. Each cell: \
             {warmup:.2} s warm-up, then {window:.2} s counted; median of {rounds} round(s).",
            warmup = plan.warmup.as_secs_f64(),
            window = plan.window.as_secs_f64(),
            rounds = plan.rounds,
        ),
        table: table(&names, &rows) + &limit_table(&names, &rows, &limits),
        panels: [Op::Get, Op::Set]
            .into_iter()
            .map(|op| panel(op, &names, &rows))
            .collect(),
        failures: Vec::new(),
    })
}

/// The results table, one line per (op, tasks), medians over the rounds: ops/s per
/// client, then redis-lanes (the first client) over each other client.
fn table(names: &[&str], rows: &[Row]) -> String {
    let mut out = String::from("| op | tasks |");
    for name in names {
        let _ = write!(out, " {name} ops/s |");
    }
    for name in &names[1..] {
        let _ = write!(out, " lanes / {name} |");
    }
    out.push_str("\n|---|---:|");
    out.push_str(&"---:|".repeat(2 * names.len() - 1));
    out.push('\n');
    for row in rows {
        let medians = row.medians();
        // Writing to a String cannot fail.
        let _ = write!(out, "| {} | {} |", row.op, row.tasks);
        for rate in &medians {
            let _ = write!(out, " {rate:.0} |");
        }
        for other in &medians[1..] {
            let _ = write!(out, " {} |", ratio(medians[0], *other));
        }
        out.push('\n');
    }
    out
}

/// Each client's peak (its best median over the task counts) as a fraction of what
/// `redis-benchmark` did on one connection and on 50, both pipelining 16 deep.
fn limit_table(names: &[&str], rows: &[Row], limits: &[(Op, limit::Limit)]) -> String {
    if limits.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "\nThe server's limit, `redis-benchmark -P 16` in the same run, and each client's \
         peak as a fraction of it (of 1 connection / of 50 connections):\n\n\
         | op | -c 1 -P 16 | -c 50 -P 16 |",
    );
    for name in names {
        let _ = write!(out, " {name} peak |");
    }
    out.push_str("\n|---|---:|---:|");
    out.push_str(&"---:|".repeat(names.len()));
    out.push('\n');
    for (op, limit) in limits {
        let _ = write!(
            out,
            "| {op} | {:.0}k | {:.0}k |",
            limit.one_connection / 1e3,
            limit.fifty_connections / 1e3
        );
        for client in 0..names.len() {
            let peak = rows
                .iter()
                .filter(|row| row.op == *op)
                .map(|row| row.medians()[client])
                .fold(0.0, f64::max);
            let _ = write!(
                out,
                " {:.0}k ({} / {}) |",
                peak / 1e3,
                ratio(peak, limit.one_connection),
                ratio(peak, limit.fifty_connections)
            );
        }
        out.push('\n');
    }
    out
}

/// The chart's panel for one op: a bar per (task count, client).
fn panel(op: Op, names: &[&str], rows: &[Row]) -> Panel {
    let mut bars = Vec::new();
    for row in rows.iter().filter(|r| r.op == op) {
        for (i, rate) in row.medians().into_iter().enumerate() {
            bars.push(Bar {
                label: format!(
                    "{} task{} · {}",
                    row.tasks,
                    if row.tasks == 1 { "" } else { "s" },
                    names[i]
                ),
                value: rate,
                text: format!("{:.0}k", rate / 1e3),
                ours: i == 0,
            });
        }
    }
    Panel {
        title: format!("{op} throughput, ops/s (more is better)"),
        bars,
    }
}

/// Fills every row's samples: per round, per cell, the three clients back to back.
async fn measure(
    targets: &[Target],
    rows: &mut [Row],
    plan: &Plan,
    prefix: &str,
) -> Result<(), BoxError> {
    let rounds = plan.rounds;
    let bar = progress::bar("throughput", rounds * rows.len() * targets.len());
    for round in 0..rounds {
        for row in rows.iter_mut() {
            let mut line = format!(
                "round {}/{rounds}  {} {:>4} tasks:",
                round + 1,
                row.op,
                row.tasks
            );
            // Rotate who goes first each round, so no client always follows the same one.
            for i in 0..targets.len() {
                let which = (i + round) % targets.len();
                let target = &targets[which];
                bar.set_message(format!("{} {} tasks: {}", row.op, row.tasks, target.name()));
                let rate = cell(target, row.op, row.tasks, prefix, plan.warmup, plan.window).await;
                bar.inc(1);
                let rate = match rate {
                    Ok(rate) => rate,
                    Err(e) => {
                        bar.abandon();
                        return Err(e);
                    }
                };
                let _ = write!(line, "  {} {rate:.0}", target.name());
                row.samples[which].push(rate);
            }
            progress::note(&bar, &format!("{line} ops/s"));
        }
    }
    bar.finish_and_clear();
    Ok(())
}

async fn delete_keys(
    admin: &redis_lanes::Client,
    prefix: &str,
    tasks: usize,
) -> Result<(), BoxError> {
    let mut conn = admin.clone();
    let keys: Vec<String> = (0..tasks).map(|t| format!("{prefix}:{t}")).collect();
    for chunk in keys.chunks(1000) {
        let _: () = redis::cmd("DEL").arg(chunk).query_async(&mut conn).await?;
    }
    Ok(())
}
