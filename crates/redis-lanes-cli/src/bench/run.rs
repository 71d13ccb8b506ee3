//! One cell: N tasks hammer one client with SET or GET for a fixed window.

use std::time::Duration;

use tokio::task::JoinSet;
use tokio::time::Instant;

use super::targets::Target;
use super::{BoxError, Op, VALUE};

/// Extra time a cell may take past its window before it counts as hung: every loop
/// stops at the deadline, but a request already sent has to come back first.
const GRACE: Duration = Duration::from_secs(10);

/// Runs `tasks` tasks on clones of `target` and returns completed operations per second
/// within `window`, after `warmup`.
///
/// Each task first sets its own key (so a GET always has the value to check), loops
/// uncounted until the warm-up ends, then counts the operations that complete inside
/// the window. Counting completions by time, not by task, keeps tasks that start late
/// or finish early from skewing the rate.
pub(crate) async fn cell(
    target: &Target,
    op: Op,
    tasks: usize,
    prefix: &str,
    warmup: Duration,
    window: Duration,
) -> Result<f64, BoxError> {
    let start = Instant::now() + warmup;
    let end = start + window;
    let mut set = JoinSet::new();
    for t in 0..tasks {
        let client = target.clone();
        let key = format!("{prefix}:{t}");
        set.spawn(task(client, op, key, start, end));
    }
    let mut total = 0u64;
    // Dropping the JoinSet on the error or timeout path aborts the tasks still running.
    let joined = tokio::time::timeout_at(end + GRACE, async {
        while let Some(joined) = set.join_next().await {
            total += joined??;
        }
        Ok::<_, BoxError>(())
    })
    .await;
    match joined {
        Ok(Ok(())) => Ok(total as f64 / window.as_secs_f64()),
        Ok(Err(e)) => Err(format!("{}: {op}: {e}", target.name()).into()),
        Err(_) => Err(format!(
            "{}: {op}: replies still missing {GRACE:?} after the window closed",
            target.name()
        )
        .into()),
    }
}

/// One task's loop; returns the operations it completed inside `[start, end)`.
async fn task(
    mut client: Target,
    op: Op,
    key: String,
    start: Instant,
    end: Instant,
) -> Result<u64, BoxError> {
    client.set(&key, VALUE).await?;
    let mut done = 0u64;
    loop {
        match op {
            Op::Set => client.set(&key, VALUE).await?,
            Op::Get => {
                let len = client.get_len(&key).await?;
                if len != VALUE.len() {
                    return Err(format!(
                        "GET {key} returned {len} bytes, expected {}",
                        VALUE.len()
                    )
                    .into());
                }
            }
        }
        let now = Instant::now();
        if now >= end {
            return Ok(done);
        }
        if now >= start {
            done += 1;
        }
    }
}
