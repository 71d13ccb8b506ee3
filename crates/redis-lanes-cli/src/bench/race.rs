//! Cancel-race loss: a worker's `BLPOP`s are cancelled by short timeouts while a
//! producer pushes numbered elements. An element the server pops for a call whose
//! caller has given up is lost, unless the client puts it back.

use std::fmt::Write as _;
use std::time::Duration;

use tokio::time::Instant;

use super::chart::{Bar, Panel};
use super::clients::{self, Spec};
use super::progress;
use super::report::Section;
use super::server;
use super::summary::duration;
use super::BoxError;

/// The rows. fred's `Interrupt` differs here: the worker's next BLPOP interrupts the
/// one it gave up on.
const ROWS: [Spec; 6] = [
    clients::LANES,
    clients::REDIS_RS,
    clients::MANAGER,
    clients::POOL,
    clients::FRED_BLOCK,
    clients::FRED_INTERRUPT,
];

/// The producer pushes one element this often.
const PUSH_EVERY: Duration = Duration::from_millis(2);
/// The BLPOP's own timeout, in seconds; the worker gives up long before it.
const BLPOP_SECONDS: f64 = 1.0;
/// After the producer stops, time for calls still running to end before the client
/// is closed.
const SETTLE: Duration = Duration::from_millis(300);

/// How long each client's worker runs.
pub(crate) struct Plan {
    run: Duration,
}

impl Plan {
    /// 3 s per client; 0.5 s with `--quick`.
    pub(crate) fn new(quick: bool) -> Self {
        Plan {
            run: Duration::from_millis(if quick { 500 } else { 3_000 }),
        }
    }
}

#[derive(Default)]
struct Row {
    pushed: u64,
    received: u64,
    left: u64,
    lost: u64,
    duplicated: u64,
    cancelled: u64,
    errors: u64,
    first_error: Option<String>,
}

/// Measures every client; `Err` when the run itself cannot go on.
pub(crate) async fn run(
    url: &str,
    admin: &redis_lanes::Client,
    prefix: &str,
    plan: &Plan,
) -> Result<Section, BoxError> {
    let bar = progress::bar("cancel race", ROWS.len());
    let mut rows = Vec::new();
    for (i, spec) in ROWS.iter().enumerate() {
        bar.set_message(spec.label);
        let key = format!("{prefix}:race:{i}");
        let row = match measure(url, admin, &key, spec, plan).await {
            Ok(row) => row,
            Err(e) => {
                bar.abandon();
                return Err(format!("{}: {e}", spec.label).into());
            }
        };
        bar.inc(1);
        let mut line = format!(
            "cancel race  {}: {} pushed, {} received, {} left, {} lost, {} duplicated, {} \
             cancelled",
            spec.label, row.pushed, row.received, row.left, row.lost, row.duplicated, row.cancelled
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
        if row.lost > 0 || row.duplicated > 0 || row.errors > 0 {
            failures.push(format!(
                "cancel race: redis-lanes lost {} and duplicated {} elements ({} errors)",
                row.lost, row.duplicated, row.errors
            ));
        }
    }
    Ok(Section {
        heading: "Cancel-race loss",
        about: format!(
            "For {run} per client, a producer on another connection pushes a numbered \
             element every {every}, and a worker calls `BLPOP <list> {BLPOP_SECONDS}` \
             through the client under a 1–20 ms timeout, so most calls are dropped, some \
             just as the server pops an element for them. Then {settle} for calls still \
             running to end, the client is closed (connections still open are closed \
             with `CLIENT KILL`), and every number is looked for among the elements the \
             worker received and those left in the list: a number in neither was popped \
             for nobody.",
            run = duration(plan.run),
            every = duration(PUSH_EVERY),
            settle = duration(SETTLE),
        ),
        table: table(&rows),
        panels: vec![panel(&rows)],
        failures,
    })
}

async fn measure(
    url: &str,
    admin: &redis_lanes::Client,
    key: &str,
    spec: &Spec,
    plan: &Plan,
) -> Result<Row, BoxError> {
    server::query::<()>(admin, redis::cmd("DEL").arg(key)).await?;
    let before = server::ids(admin).await?;
    let mut target = spec.connect(url).await?;
    let deadline = Instant::now() + plan.run;
    let producer = tokio::spawn(produce(admin.clone(), key.to_owned(), deadline));

    let mut row = Row::default();
    let mut received = Vec::new();
    let mut i = 0u64;
    while Instant::now() < deadline {
        i += 1;
        let give_up = Duration::from_millis(1 + (i * 7) % 20);
        match tokio::time::timeout(give_up, target.pop(key, BLPOP_SECONDS)).await {
            Ok(Ok(popped)) => received.extend(popped),
            Ok(Err(e)) => {
                row.errors += 1;
                row.first_error.get_or_insert_with(|| e.to_string());
                // A client that fails at once must not spin.
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(_) => row.cancelled += 1,
        }
    }
    row.pushed = producer.await??;
    tokio::time::sleep(SETTLE).await;
    // `close` waits for redis-lanes' recoveries; the others' closes are bounded too.
    let _ = tokio::time::timeout(Duration::from_secs(2), target.close()).await;
    let ours: Vec<i64> = server::ids(admin)
        .await?
        .difference(&before)
        .copied()
        .collect();
    server::kill(admin, &ours).await?;

    let left: Vec<String> =
        server::query(admin, redis::cmd("LRANGE").arg(key).arg(0).arg(-1)).await?;
    server::query::<()>(admin, redis::cmd("DEL").arg(key)).await?;
    let mut seen = vec![0u32; row.pushed as usize];
    for element in received.iter().chain(&left) {
        match element.parse::<usize>().ok().and_then(|n| seen.get_mut(n)) {
            Some(count) => {
                *count += 1;
                row.duplicated += u64::from(*count > 1);
            }
            None => row.duplicated += 1,
        }
    }
    row.lost = seen.iter().filter(|&&c| c == 0).count() as u64;
    row.received = received.len() as u64;
    row.left = left.len() as u64;
    Ok(row)
}

/// Pushes `0, 1, 2, ...` every [`PUSH_EVERY`] until `deadline`; returns how many.
async fn produce(
    admin: redis_lanes::Client,
    key: String,
    deadline: Instant,
) -> Result<u64, BoxError> {
    let mut pushed = 0u64;
    let mut tick = tokio::time::interval(PUSH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while Instant::now() < deadline {
        tick.tick().await;
        server::query::<()>(&admin, redis::cmd("RPUSH").arg(&key).arg(pushed)).await?;
        pushed += 1;
    }
    Ok(pushed)
}

fn table(rows: &[(Spec, Row)]) -> String {
    let mut out = String::from(
        "| client | pushed | received | left in the list | **lost** | duplicated | BLPOPs \
         cancelled | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (spec, row) in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | **{}** | {} | {} | {} |",
            spec.label,
            row.pushed,
            row.received,
            row.left,
            row.lost,
            row.duplicated,
            row.cancelled,
            row.errors
        );
    }
    out
}

fn panel(rows: &[(Spec, Row)]) -> Panel {
    let bars = rows
        .iter()
        .map(|(spec, row)| Bar {
            label: spec.short.to_owned(),
            value: row.lost as f64,
            text: format!("{} of {}", row.lost, row.pushed),
            ours: spec.is_lanes(),
        })
        .collect();
    Panel {
        title: "Cancelled BLPOPs: elements lost (fewer is better)".to_owned(),
        bars,
    }
}
