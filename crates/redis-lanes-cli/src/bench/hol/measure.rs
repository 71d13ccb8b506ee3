//! One row of the head-of-line scenario: sequential GETs through one client, alone and
//! then while clones of the same client wait in BLPOP; and how those BLPOPs end.
//!
//! Nothing here returns early on a client error or waits without a bound: a client that
//! fails or stalls is what the table is for, so errors are counted and every phase stops
//! at the plan's bound.

use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::super::server;
use super::super::targets::Target;
use super::super::{BoxError, VALUE};
use super::Plan;

/// How late after the BLPOP timeout a nil reply still counts as normal: the server
/// checks timeouts every few ms, so half a second is generous; a reply later than that
/// waited behind something else.
const LATE_AFTER: Duration = Duration::from_millis(500);

/// Time for the BLPOPs to reach the server and block before the GETs start.
const SETTLE: Duration = Duration::from_millis(100);

/// Uncounted GETs first, so the first use of a connection is not in the "alone" max.
const WARMUP_GETS: usize = 20;

/// What one run of sequential GETs did.
#[derive(Debug, Default)]
pub(crate) struct Gets {
    pub(crate) planned: usize,
    /// GETs that got an answer (a value or an error) before the bound.
    pub(crate) done: usize,
    /// Answers that were errors or the wrong value.
    pub(crate) errors: usize,
    /// The first error, for the progress line.
    pub(crate) first_error: Option<String>,
    pub(crate) total: Duration,
    /// The slowest single GET, including one cut off by the bound.
    pub(crate) max: Duration,
}

impl Gets {
    /// Whether every planned GET was answered within the bound.
    pub(crate) fn finished(&self) -> bool {
        self.done == self.planned
    }
}

/// How the BLPOPs ended, counted from when the first was started.
#[derive(Debug, Default)]
pub(crate) struct Blpops {
    /// Nil replies within the BLPOP timeout plus `LATE_AFTER`: what the caller asked for.
    pub(crate) normal: usize,
    /// Nil replies later than that: the BLPOP waited behind something.
    pub(crate) late: usize,
    /// Errors (a client-side timeout, an interrupted command, ...).
    pub(crate) errors: usize,
    /// One of the errors (the first joined), for the progress line.
    pub(crate) sample_error: Option<String>,
    /// Still running at the bound.
    pub(crate) unfinished: usize,
    pub(crate) first_end: Option<Duration>,
    pub(crate) first_failure: Option<Duration>,
}

impl Blpops {
    /// Every BLPOP that did not end normally.
    pub(crate) fn failed(&self) -> usize {
        self.late + self.errors + self.unfinished
    }

    fn failure(&mut self, after: Duration) {
        self.first_failure = Some(self.first_failure.map_or(after, |f| f.min(after)));
    }
}

/// Everything one row measured.
#[derive(Debug)]
pub(crate) struct Outcome {
    pub(crate) alone: Gets,
    pub(crate) behind: Gets,
    pub(crate) blpops: Blpops,
    /// The server's `blocked_clients` when the GETs started (a check that the BLPOPs
    /// were really waiting: one per connection they blocked).
    pub(crate) blocked_on_server: Option<u64>,
}

/// Measures one client. `Err` only if the client cannot even serve the warm-up GETs.
pub(crate) async fn row(
    target: &Target,
    admin: &redis_lanes::Client,
    key: &str,
    queues: &[String],
    plan: &Plan,
) -> Result<Outcome, BoxError> {
    let mut client = target.clone();
    for _ in 0..WARMUP_GETS {
        tokio::time::timeout(plan.bound, client.get_len(key))
            .await
            .map_err(|_| format!("warm-up GET: no reply within {:?}", plan.bound))??;
    }
    let alone = gets(target, key, plan).await;

    let started = Instant::now();
    // Dropping the set at the end of this function aborts BLPOPs still waiting.
    let mut blockers = JoinSet::new();
    for queue in queues {
        let mut client = target.clone();
        let queue = queue.clone();
        let seconds = plan.blpop_seconds;
        blockers.spawn(async move {
            let ended = client.blpop(&queue, seconds).await;
            (started.elapsed(), ended)
        });
    }
    tokio::time::sleep(SETTLE).await;
    // Only for the progress line; a slow answer must not eat into the BLPOPs' time.
    let blocked_on_server = tokio::time::timeout(Duration::from_secs(1), blocked_clients(admin))
        .await
        .ok()
        .and_then(Result::ok);
    let behind = gets(target, key, plan).await;
    let blpops = collect(&mut blockers, started, plan).await;
    Ok(Outcome {
        alone,
        behind,
        blpops,
        blocked_on_server,
    })
}

/// The plan's sequential GETs of `key`, each timed, all within the plan's bound.
async fn gets(target: &Target, key: &str, plan: &Plan) -> Gets {
    let mut client = target.clone();
    let mut out = Gets {
        planned: plan.gets,
        ..Gets::default()
    };
    let start = Instant::now();
    let deadline = start + plan.bound;
    for _ in 0..plan.gets {
        let sent = Instant::now();
        let reply = tokio::time::timeout_at(deadline, client.get_len(key)).await;
        out.max = out.max.max(sent.elapsed());
        let error = match reply {
            // Cut off: `done < planned` is how the table shows it.
            Err(_) => break,
            Ok(Ok(len)) if len == VALUE.len() => None,
            Ok(Ok(len)) => Some(format!(
                "GET returned {len} bytes, expected {}",
                VALUE.len()
            )),
            Ok(Err(e)) => Some(e.to_string()),
        };
        out.done += 1;
        if let Some(error) = error {
            out.errors += 1;
            out.first_error.get_or_insert(error);
        }
    }
    out.total = start.elapsed();
    out
}

type Ended = (Duration, Result<(), BoxError>);

/// Waits for the BLPOPs until the plan's bound after `started`, sorting how each ended.
async fn collect(blockers: &mut JoinSet<Ended>, started: Instant, plan: &Plan) -> Blpops {
    let on_time = Duration::from_secs(plan.blpop_seconds.into()) + LATE_AFTER;
    let mut out = Blpops::default();
    loop {
        // A deadline already past still collects the BLPOPs that have ended: `timeout`
        // polls the future before the timer.
        let (after, ended) =
            match tokio::time::timeout_at(started + plan.bound, blockers.join_next()).await {
                Ok(None) => break,
                Ok(Some(Ok(ended))) => ended,
                Ok(Some(Err(join))) => (started.elapsed(), Err(join.into())),
                Err(_) => {
                    out.unfinished = blockers.len();
                    out.failure(plan.bound);
                    break;
                }
            };
        out.first_end = Some(out.first_end.map_or(after, |f| f.min(after)));
        match ended {
            Ok(()) if after <= on_time => out.normal += 1,
            Ok(()) => {
                out.late += 1;
                out.failure(after);
            }
            Err(e) => {
                out.errors += 1;
                out.failure(after);
                out.sample_error.get_or_insert_with(|| e.to_string());
            }
        }
    }
    out
}

/// The server's count of clients blocked in a blocking command.
async fn blocked_clients(admin: &redis_lanes::Client) -> Result<u64, BoxError> {
    let info: String = server::query(admin, redis::cmd("INFO").arg("clients")).await?;
    info.lines()
        .find_map(|l| l.strip_prefix("blocked_clients:"))
        .ok_or("INFO clients has no blocked_clients")?
        .trim()
        .parse()
        .map_err(|e| format!("blocked_clients: {e}").into())
}
