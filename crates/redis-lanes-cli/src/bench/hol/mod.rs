//! The head-of-line scenario: do commands through a client wait behind blocking
//! commands sent through clones of the same client, and what happens to those?
//!
//! Per client, a new connection: sequential GETs alone, then the same GETs while clones
//! wait in `BLPOP <empty list> N`, then how the BLPOPs ended.

mod measure;
mod table;

use std::time::Duration;

use super::clients::{self, Spec};
use super::progress;
use super::report::Section;
use super::server;
use super::summary::duration;
use super::targets::Target;
use super::{BoxError, VALUE};

use self::measure::Outcome;

/// The rows, in table order.
const ROWS: [Spec; 7] = [
    clients::LANES,
    clients::REDIS_RS,
    clients::REDIS_RS_DEFAULT,
    clients::MANAGER,
    clients::POOL,
    clients::FRED_BLOCK,
    clients::FRED_INTERRUPT,
];

/// How many GETs and BLPOPs each row runs, and for how long.
pub(crate) struct Plan {
    gets: usize,
    blockers: usize,
    /// The server-side timeout of every BLPOP: each should end with a nil reply after
    /// this long.
    blpop_seconds: u32,
    /// The longest any phase may take: the GETs of one phase, or the BLPOPs from their
    /// start. A client still busy then is cut off and reported, not waited for.
    bound: Duration,
}

impl Plan {
    /// 1,000 GETs behind 64 `BLPOP 2` (redis-lanes' default blocking-lane limit, so
    /// none of them queues for a lane), cut off at 10 s; 100 behind 8 `BLPOP 1`, cut
    /// off at 2 s, with `--quick`.
    pub(crate) fn new(quick: bool) -> Self {
        if quick {
            Plan {
                gets: 100,
                blockers: 8,
                blpop_seconds: 1,
                bound: Duration::from_secs(2),
            }
        } else {
            Plan {
                gets: 1_000,
                blockers: 64,
                blpop_seconds: 2,
                bound: Duration::from_secs(10),
            }
        }
    }
}

/// Measures every client and returns the table. A client that errors or stalls is a
/// result; `Err` means the run itself could not go on (no connection, admin failing).
pub(crate) async fn run(
    url: &str,
    admin: &redis_lanes::Client,
    prefix: &str,
    plan: &Plan,
) -> Result<Section, BoxError> {
    let key = format!("{prefix}:hol:k");
    server::query::<()>(admin, redis::cmd("SET").arg(&key).arg(VALUE.as_slice())).await?;
    let bar = progress::bar("head-of-line", ROWS.len());
    let mut rows = Vec::new();
    for (i, spec) in ROWS.iter().enumerate() {
        bar.set_message(spec.label);
        // Lists of their own per row: a BLPOP a previous row's connection still has
        // queued on the server can never take this row's data, or the reverse.
        let queues: Vec<String> = (0..plan.blockers)
            .map(|b| format!("{prefix}:hol:{i}:q:{b}"))
            .collect();
        let target = spec.connect(url).await?;
        let outcome = measure::row(&target, admin, &key, &queues, plan).await;
        let released = release(admin, target, &queues).await;
        bar.inc(1);
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(e) => {
                bar.abandon();
                return Err(format!("{}: {e}", spec.label).into());
            }
        };
        released?;
        progress::note(&bar, &progress_line(spec, &outcome));
        rows.push((*spec, outcome));
    }
    bar.finish_and_clear();
    server::query::<()>(admin, redis::cmd("DEL").arg(&key)).await?;

    let mut failures = Vec::new();
    if let Some((_, lanes)) = rows.iter().find(|(spec, _)| spec.is_lanes()) {
        if !lanes.behind.finished() || lanes.behind.errors > 0 || lanes.blpops.failed() > 0 {
            failures.push(
                "head-of-line: redis-lanes' GETs or BLPOPs did not all end normally".to_owned(),
            );
        }
    }
    Ok(Section {
        heading: "Head-of-line blocking",
        about: format!(
            "Each row times {gets} sequential GETs through one client object, first alone \
             and then while {blockers} clones of that same object wait in \
             `BLPOP <empty list> {secs}`, showing whether blocking calls stall the other \
             commands sharing the client and how each client ends those BLPOPs \
             (normally: a nil reply after about {secs} s; every wait is cut off at \
             {bound}). The deadpool-redis pool lends one of its connections per command, \
             so BLPOPs beyond its size wait for a connection, and so do the GETs.",
            gets = plan.gets,
            blockers = plan.blockers,
            secs = plan.blpop_seconds,
            bound = duration(plan.bound),
        ),
        table: table::table(plan, &rows),
        panels: vec![table::panel(plan, &rows)],
        failures,
    })
}

/// Ends whatever the row left waiting, then closes its client and deletes its lists.
///
/// A client that queued the BLPOPs one after another on its connection may still have
/// dozens waiting on the server; a value in every list lets them all return at once,
/// so the close below is quick and the next row starts on a quiet server.
async fn release(
    admin: &redis_lanes::Client,
    target: Target,
    queues: &[String],
) -> Result<(), BoxError> {
    let mut push = redis::pipe();
    for queue in queues {
        push.cmd("RPUSH").arg(queue).arg("release").ignore();
    }
    let pushed = server::pipe(admin, &push).await;
    // `close` bounds its own wait.
    target.close().await;
    pushed?;
    server::query(admin, redis::cmd("DEL").arg(queues)).await
}

/// The row's details the table leaves out: the server's view and the first errors.
fn progress_line(spec: &Spec, outcome: &Outcome) -> String {
    let mut line = format!(
        "head-of-line  {}: alone {}, behind {} ({} of {} GETs, {} errors)",
        spec.label,
        duration(outcome.alone.total),
        duration(outcome.behind.total),
        outcome.behind.done,
        outcome.behind.planned,
        outcome.behind.errors,
    );
    let blpops = &outcome.blpops;
    line += &format!(
        "; BLPOP {} normal / {} failed",
        blpops.normal,
        blpops.failed()
    );
    if let Some(first) = blpops.first_end {
        line += &format!(", first ended after {}", duration(first));
    }
    if let Some(blocked) = outcome.blocked_on_server {
        line += &format!("; blocked on server: {blocked}");
    }
    if let Some(e) = &outcome.behind.first_error {
        line += &format!("\n    first GET error: {e}");
    }
    if let Some(e) = &blpops.sample_error {
        line += &format!("\n    a BLPOP error: {e}");
    }
    line
}
