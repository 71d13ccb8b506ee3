//! The throughput scenario: SET and GET from N concurrent tasks sharing one client
//! object, per client, per task count.

use std::time::Duration;

use super::report::{self, Section};
use super::run::cell;
use super::targets::Target;
use super::{BoxError, Op, ADMIN_TIMEOUT};

/// How the throughput cells are run, from the command line.
pub(crate) struct Plan {
    pub(crate) window: Duration,
    pub(crate) warmup: Duration,
    pub(crate) task_counts: Vec<usize>,
    pub(crate) rounds: usize,
}

/// One line of the table: its samples per client, in `Target::connect_all` order.
pub(crate) struct Row {
    pub(crate) op: Op,
    pub(crate) tasks: usize,
    samples: [Vec<f64>; 3],
}

impl Row {
    pub(crate) fn medians(&self) -> [f64; 3] {
        self.samples.each_ref().map(|s| median(s))
    }
}

fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
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
                samples: Default::default(),
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
    for target in targets {
        target.close().await;
    }
    measured?;
    cleaned?;

    Ok(Section {
        heading: "Throughput",
        about: format!(
            "Throughput of SET and GET of 16-byte values, from N concurrent tasks sharing \
             one client object, for redis-lanes, redis-rs (`MultiplexedConnection`, \
             response timeout off) and fred (one `Client`). Clients run back to back \
             within each cell so drift on the machine hits them alike. Each cell: \
             {warmup:.2} s warm-up, then {window:.2} s counted; median of {rounds} round(s).",
            warmup = plan.warmup.as_secs_f64(),
            window = plan.window.as_secs_f64(),
            rounds = plan.rounds,
        ),
        table: report::table(&rows),
    })
}

/// Fills every row's samples: per round, per cell, the three clients back to back.
async fn measure(
    targets: &[Target],
    rows: &mut [Row],
    plan: &Plan,
    prefix: &str,
) -> Result<(), BoxError> {
    let rounds = plan.rounds;
    for round in 0..rounds {
        for row in rows.iter_mut() {
            eprint!(
                "round {}/{rounds}  {} {:>4} tasks:",
                round + 1,
                row.op,
                row.tasks
            );
            // Rotate who goes first each round, so no client always follows the same one.
            for i in 0..targets.len() {
                let which = (i + round) % targets.len();
                let target = &targets[which];
                let rate = cell(target, row.op, row.tasks, prefix, plan.warmup, plan.window).await;
                let rate = match rate {
                    Ok(rate) => rate,
                    Err(e) => {
                        eprintln!();
                        return Err(e);
                    }
                };
                eprint!("  {} {rate:.0}", target.name());
                row.samples[which].push(rate);
            }
            eprintln!(" ops/s");
        }
    }
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
