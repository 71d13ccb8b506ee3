//! The head-of-line scenario: do commands through a client wait behind blocking
//! commands sent through clones of the same client, and what happens to those?
//!
//! Per client (see [`clients::ALL`]), a new connection: sequential GETs alone, then the
//! same GETs while clones wait in `BLPOP <empty list> 2`, then how the BLPOPs ended.

mod clients;
mod measure;
mod table;

use super::report::Section;
use super::targets::Target;
use super::{BoxError, ADMIN_TIMEOUT, VALUE};

use self::measure::{Outcome, BLPOP_SECONDS, BOUND};
use self::table::duration;

/// How many GETs and BLPOPs each row runs.
pub(crate) struct Plan {
    gets: usize,
    blockers: usize,
}

impl Plan {
    /// 1,000 GETs behind 64 BLPOPs (redis-lanes' default blocking-lane limit, so none
    /// of them queues for a lane); 200 behind 16 with `--quick`.
    pub(crate) fn new(quick: bool) -> Self {
        if quick {
            Plan {
                gets: 200,
                blockers: 16,
            }
        } else {
            Plan {
                gets: 1_000,
                blockers: 64,
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
    admin_cmd(admin, redis::cmd("SET").arg(&key).arg(VALUE.as_slice())).await?;
    let mut rows = Vec::new();
    for (i, spec) in clients::ALL.iter().enumerate() {
        // Lists of their own per row: a BLPOP a previous row's connection still has
        // queued on the server can never take this row's data, or the reverse.
        let queues: Vec<String> = (0..plan.blockers)
            .map(|b| format!("{prefix}:hol:{i}:q:{b}"))
            .collect();
        let target = spec.connect(url).await?;
        eprint!("head-of-line  {}:", spec.label);
        let outcome = measure::row(&target, admin, &key, &queues, plan).await;
        let released = release(admin, target, &queues).await;
        let outcome = match outcome {
            Ok(outcome) => outcome,
            Err(e) => {
                eprintln!();
                return Err(format!("{}: {e}", spec.label).into());
            }
        };
        released?;
        eprintln!("{}", progress(&outcome));
        rows.push((spec.label, outcome));
    }
    admin_cmd(admin, redis::cmd("DEL").arg(&key)).await?;

    Ok(Section {
        heading: "Head-of-line blocking",
        about: format!(
            "Each row times {gets} sequential GETs through one client object, first alone \
             and then while {blockers} clones of that same object wait in \
             `BLPOP <empty list> {BLPOP_SECONDS}`, showing whether blocking calls stall \
             the other commands sharing the client and how each client ends those BLPOPs \
             (normally: a nil reply after about {BLPOP_SECONDS} s; every wait is cut off \
             at {bound}).",
            gets = plan.gets,
            blockers = plan.blockers,
            bound = duration(BOUND),
        ),
        table: table::table(plan.blockers, &rows),
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
    let pushed = admin_pipe(admin, &push).await;
    // `close` bounds its own wait.
    target.close().await;
    pushed?;
    admin_cmd(admin, redis::cmd("DEL").arg(queues)).await
}

/// One admin command, bounded by [`ADMIN_TIMEOUT`].
async fn admin_cmd(admin: &redis_lanes::Client, cmd: &redis::Cmd) -> Result<(), BoxError> {
    let mut conn = admin.clone();
    tokio::time::timeout(ADMIN_TIMEOUT, cmd.query_async::<()>(&mut conn))
        .await
        .map_err(|_| "admin command: no reply")??;
    Ok(())
}

/// One admin pipeline, bounded by [`ADMIN_TIMEOUT`].
async fn admin_pipe(admin: &redis_lanes::Client, pipe: &redis::Pipeline) -> Result<(), BoxError> {
    let mut conn = admin.clone();
    tokio::time::timeout(ADMIN_TIMEOUT, pipe.query_async::<()>(&mut conn))
        .await
        .map_err(|_| "admin pipeline: no reply")??;
    Ok(())
}

/// The row's details the table leaves out: the server's view and the first errors.
fn progress(outcome: &Outcome) -> String {
    let mut line = format!(
        " alone {}, behind {} ({} of {} GETs, {} errors)",
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
