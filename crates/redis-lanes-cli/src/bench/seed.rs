//! The seed scenario: a stream consumer's `XREADGROUP ... BLOCK` is cancelled, then the
//! consumer is deleted with `XGROUP DELCONSUMER` through the same client, and an entry
//! arrives. A read still blocked on the server is served that entry and re-creates the
//! consumer it was deleted as, with the entry pending for a consumer nobody runs.

use std::fmt::Write as _;
use std::time::Duration;

use redis::streams::StreamInfoConsumersReply;
use tokio::time::Instant;

use super::chart::{Bar, Panel};
use super::clients::{self, Spec};
use super::progress;
use super::report::Section;
use super::server;
use super::summary::{duration, percentile};
use super::BoxError;

/// The rows. fred's `Interrupt` differs here: the `DELCONSUMER` sent while the read is
/// blocked interrupts the read first.
const ROWS: [Spec; 6] = [
    clients::LANES,
    clients::REDIS_RS,
    clients::MANAGER,
    clients::POOL,
    clients::FRED_BLOCK,
    clients::FRED_INTERRUPT,
];

const GROUP: &str = "bench-group";

/// Consumers per client, and their reads' `BLOCK`.
pub(crate) struct Plan {
    rounds: usize,
    block: Duration,
}

impl Plan {
    /// 10 consumers reading with `BLOCK 2000`; 2 with `BLOCK 500` with `--quick`.
    pub(crate) fn new(quick: bool) -> Self {
        if quick {
            Plan {
                rounds: 2,
                block: Duration::from_millis(500),
            }
        } else {
            Plan {
                rounds: 10,
                block: Duration::from_secs(2),
            }
        }
    }

    /// How long a `DELCONSUMER` may take before it counts as failed.
    fn delete_cap(&self) -> Duration {
        self.block + Duration::from_secs(2)
    }
}

#[derive(Default)]
struct Row {
    deleted: u64,
    recreated: u64,
    /// Entries pending for re-created consumers: delivered to a consumer nobody runs.
    stuck: u64,
    delete_times: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
    /// Reads that never showed up blocked on the server before they were cancelled.
    never_blocked: u64,
}

/// Measures every client; `Err` when the run itself cannot go on.
pub(crate) async fn run(
    url: &str,
    admin: &redis_lanes::Client,
    prefix: &str,
    plan: &Plan,
) -> Result<Section, BoxError> {
    let bar = progress::bar("seed", ROWS.len() * plan.rounds);
    let mut rows = Vec::new();
    for (i, spec) in ROWS.iter().enumerate() {
        bar.set_message(spec.label);
        let key = format!("{prefix}:seed:{i}");
        let row = match measure(url, admin, &key, spec, plan, &bar).await {
            Ok(row) => row,
            Err(e) => {
                bar.abandon();
                return Err(format!("{}: {e}", spec.label).into());
            }
        };
        let mut line = format!(
            "seed  {}: {} deleted, {} re-created ({} entries stuck), DELCONSUMER {}",
            spec.label,
            row.deleted,
            row.recreated,
            row.stuck,
            delete_cell(&row)
        );
        if let Some(e) = &row.first_error {
            let _ = write!(line, "\n    first error: {e}");
        }
        progress::note(&bar, &line);
        rows.push((*spec, row));
    }
    bar.finish_and_clear();

    let mut failures = Vec::new();
    for (_, row) in rows.iter().filter(|(spec, _)| spec.is_lanes()) {
        if row.recreated > 0 || row.errors > 0 {
            failures.push(format!(
                "seed: redis-lanes let {} deleted consumers be re-created ({} errors)",
                row.recreated, row.errors
            ));
        }
    }
    Ok(Section {
        heading: "Seed scenario: cancelled stream reads and deleted consumers",
        about: format!(
            "Per client, {rounds} rounds on a stream with a consumer group: start \
             `XREADGROUP GROUP g consumer-N COUNT 1 BLOCK {block} STREAMS key >` in a \
             task, wait until `CLIENT LIST` shows it blocked, abort the task (and await it, so \
             the read's future is dropped), delete the consumer with `XGROUP DELCONSUMER` through the same client (timed; cut off \
             at {cap}), then add one entry from another connection. After the rounds \
             and {settle} more, `XINFO CONSUMERS` lists any deleted consumer a read \
             still blocked on the server brought back, with the entry it was served \
             pending for nobody.",
            rounds = plan.rounds,
            block = plan.block.as_millis(),
            cap = duration(plan.delete_cap()),
            settle = duration(settle(plan)),
        ),
        table: table(&rows),
        panels: vec![recreated_panel(&rows), delete_panel(&rows)],
        failures,
    })
}

/// After the last round: long enough for any read still blocked to time out.
fn settle(plan: &Plan) -> Duration {
    plan.block + Duration::from_millis(200)
}

async fn measure(
    url: &str,
    admin: &redis_lanes::Client,
    key: &str,
    spec: &Spec,
    plan: &Plan,
    bar: &indicatif::ProgressBar,
) -> Result<Row, BoxError> {
    server::query::<()>(admin, redis::cmd("DEL").arg(key)).await?;
    let mut create = redis::cmd("XGROUP");
    create
        .arg("CREATE")
        .arg(key)
        .arg(GROUP)
        .arg("$")
        .arg("MKSTREAM");
    server::query::<()>(admin, &create).await?;
    let before = server::ids(admin).await?;
    let mut target = spec.connect(url).await?;
    let mut row = Row::default();
    let block = plan.block.as_millis() as u64;
    for round in 0..plan.rounds {
        let consumer = format!("consumer-{round}");
        let mut reader = target.clone();
        let (k, c) = (key.to_owned(), consumer.clone());
        let read = tokio::spawn(async move { reader.read_group(&k, GROUP, &c, block).await });
        let limit = Duration::from_secs(2);
        if !server::wait_blocked(admin, &before, "xreadgroup", limit).await? {
            row.never_blocked += 1;
        }
        read.abort();
        // `abort()` only asks: the read's future is dropped when a worker next gets to
        // the task, perhaps after the next line has run. The cancel happens at that
        // drop, so "through the same client, after the cancel" starts once it is done.
        let _ = read.await;

        let started = Instant::now();
        let deleted = tokio::time::timeout(
            plan.delete_cap(),
            target.delete_consumer(key, GROUP, &consumer),
        )
        .await;
        row.delete_times.push(started.elapsed());
        match deleted {
            Ok(Ok(_)) => row.deleted += 1,
            Ok(Err(e)) => {
                row.errors += 1;
                row.first_error.get_or_insert_with(|| e.to_string());
            }
            Err(_) => {
                row.errors += 1;
                row.first_error.get_or_insert_with(|| {
                    format!(
                        "DELCONSUMER: no reply within {}",
                        duration(plan.delete_cap())
                    )
                });
            }
        }
        // The producer's next entry, on another connection. A read still blocked on the
        // server is served it at once; otherwise it is read and acknowledged here, so
        // the next round's read has nothing new and blocks.
        server::query::<()>(
            admin,
            redis::cmd("XADD").arg(key).arg("*").arg("n").arg(round),
        )
        .await?;
        drain(admin, key).await?;
        bar.inc(1);
    }
    tokio::time::sleep(settle(plan)).await;

    let consumers: StreamInfoConsumersReply = server::query(
        admin,
        redis::cmd("XINFO").arg("CONSUMERS").arg(key).arg(GROUP),
    )
    .await?;
    for consumer in consumers
        .consumers
        .iter()
        .filter(|c| c.name.starts_with("consumer-"))
    {
        row.recreated += 1;
        row.stuck += consumer.pending as u64;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), target.close()).await;
    let ours: Vec<i64> = server::ids(admin)
        .await?
        .difference(&before)
        .copied()
        .collect();
    server::kill(admin, &ours).await?;
    server::query::<()>(admin, redis::cmd("DEL").arg(key)).await?;
    Ok(row)
}

/// Reads what no consumer was served, as consumer `drain` (not blocking), and
/// acknowledges it.
async fn drain(admin: &redis_lanes::Client, key: &str) -> Result<(), BoxError> {
    let mut read = redis::cmd("XREADGROUP");
    read.arg("GROUP")
        .arg(GROUP)
        .arg("drain")
        .arg("COUNT")
        .arg(100);
    read.arg("STREAMS").arg(key).arg(">");
    let reply: Option<redis::streams::StreamReadReply> = server::query(admin, &read).await?;
    let ids: Vec<String> = reply
        .into_iter()
        .flat_map(|r| r.keys)
        .flat_map(|k| k.ids)
        .map(|entry| entry.id)
        .collect();
    if !ids.is_empty() {
        server::query::<()>(admin, redis::cmd("XACK").arg(key).arg(GROUP).arg(&ids)).await?;
    }
    Ok(())
}

/// `median 0.4 ms, max 1.1 ms`.
fn delete_cell(row: &Row) -> String {
    match (
        percentile(&row.delete_times, 0.5),
        percentile(&row.delete_times, 1.0),
    ) {
        (Some(median), Some(max)) => format!("median {}, max {}", duration(median), duration(max)),
        _ => "n/a".to_owned(),
    }
}

fn table(rows: &[(Spec, Row)]) -> String {
    let mut out = String::from(
        "| client | consumers deleted | **re-created** | entries pending for re-created \
         consumers | `XGROUP DELCONSUMER` took | errors |\n|---|---:|---:|---:|---|---:|\n",
    );
    for (spec, row) in rows {
        let mut errors = row.errors.to_string();
        if row.never_blocked > 0 {
            let _ = write!(errors, " ({} reads never blocked)", row.never_blocked);
        }
        let _ = writeln!(
            out,
            "| {} | {} | **{}** | {} | {} | {errors} |",
            spec.label,
            row.deleted,
            row.recreated,
            row.stuck,
            delete_cell(row)
        );
    }
    out
}

fn recreated_panel(rows: &[(Spec, Row)]) -> Panel {
    let bars = rows
        .iter()
        .map(|(spec, row)| Bar {
            label: spec.short.to_owned(),
            value: row.recreated as f64,
            text: format!("{} of {}", row.recreated, row.delete_times.len()),
            ours: spec.is_lanes(),
        })
        .collect();
    Panel {
        title: "Deleted stream consumers re-created by a cancelled read (fewer is better)"
            .to_owned(),
        bars,
    }
}

/// The other half of the story: a client that avoids re-creating the consumer by
/// running the delete only after the blocked read ends makes the delete wait.
fn delete_panel(rows: &[(Spec, Row)]) -> Panel {
    let bars = rows
        .iter()
        .map(|(spec, row)| {
            let median = percentile(&row.delete_times, 0.5).unwrap_or_default();
            Bar {
                label: spec.short.to_owned(),
                value: median.as_secs_f64(),
                text: duration(median),
                ours: spec.is_lanes(),
            }
        })
        .collect();
    Panel {
        title: "XGROUP DELCONSUMER after the cancelled read, median time (less is better)"
            .to_owned(),
        bars,
    }
}
