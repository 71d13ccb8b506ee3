//! A reliable job queue: producers `LPUSH` jobs; each worker moves a job to its own
//! `processing` list with `BLMOVE` (so a crashed worker's job is never lost), does the
//! work, then `LREM`s it from that list.
//!
//! `BLMOVE` blocks, so redis-lanes runs it on a dedicated blocking lane: the shared
//! connection keeps serving `LPUSH`/`LREM` meanwhile. One impatient worker gives up on
//! its `BLMOVE` after a few milliseconds, again and again, while jobs are being pushed.
//! Each give-up is cancelled on the server (`CLIENT UNBLOCK`), and a job that the server
//! had already moved when the caller gave up is moved back to `jobs`, so at the end
//! every job was processed exactly once and every `processing` list is empty.
//!
//! One `processing` list per worker is the usual pattern, and it matters here too: the
//! move back only happens if the job is still where the move put it (the head of the
//! list). With a list shared by all workers, another worker's job may have landed on top
//! by then; redis-lanes then reports the job (`Stats::orphans_reported`, the `on_orphan`
//! hook) rather than guess, and the job waits for the application's own recovery.
//!
//! Connects to `REDIS_URL` if set, otherwise starts a throw-away `redis-server`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::{AsyncCommands, Direction};
use redis_lanes::Client;
use redis_lanes_testkit::Target;

type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

const JOBS: &str = "example:job_queue:jobs";
const WORKERS: usize = 4;

/// Worker `n`'s own processing list.
fn processing(n: usize) -> String {
    format!("example:job_queue:processing:{n}")
}
const JOB_COUNT: usize = 120;
const BATCH: usize = 3;

/// Job ids processed so far, by any worker.
type Done = Arc<Mutex<Vec<String>>>;

/// Moves the next job to `processing`, waiting up to `wait_secs` for one.
async fn take(
    conn: &mut Client,
    processing: &str,
    wait_secs: f64,
) -> redis::RedisResult<Option<String>> {
    conn.blmove(
        JOBS,
        processing,
        Direction::Right,
        Direction::Left,
        wait_secs,
    )
    .await
}

/// Does the work, then removes the job from `processing`: the acknowledgement.
async fn finish(conn: &mut Client, processing: &str, job: String, done: &Done) -> Result<()> {
    tokio::time::sleep(Duration::from_micros(200)).await; // "the work"
    let removed: usize = conn.lrem(processing, 1, &job).await?;
    assert_eq!(removed, 1, "{job} was in processing");
    done.lock().map_err(|_| "poisoned")?.push(job);
    Ok(())
}

fn all_done(done: &Done) -> bool {
    done.lock().map(|d| d.len() >= JOB_COUNT).unwrap_or(true)
}

/// A patient worker: waits up to 100 ms per `BLMOVE`, until every job is done.
async fn worker(mut conn: Client, n: usize, done: Done) -> Result<()> {
    let mine = processing(n);
    while !all_done(&done) {
        if let Some(job) = take(&mut conn, &mine, 0.1).await? {
            finish(&mut conn, &mine, job, &done).await?;
        }
    }
    Ok(())
}

/// An impatient worker: gives up on each `BLMOVE` after 3 ms (the future is dropped),
/// which redis-lanes turns into a server-side cancel. Returns how often it gave up.
async fn impatient_worker(mut conn: Client, n: usize, done: Done) -> Result<u64> {
    let mine = processing(n);
    let mut gave_up = 0;
    while !all_done(&done) {
        match tokio::time::timeout(Duration::from_millis(3), take(&mut conn, &mine, 5.0)).await {
            Ok(Ok(Some(job))) => finish(&mut conn, &mine, job, &done).await?,
            Ok(Ok(None)) => {}
            Ok(Err(e)) => return Err(e.into()),
            Err(_elapsed) => gave_up += 1,
        }
    }
    Ok(gave_up)
}

#[tokio::main]
async fn main() -> Result<()> {
    let target = Target::from_env_or_start("REDIS_URL")?;
    let url = target.url().to_owned();
    let client = Client::connect(&url).await?;
    let mut conn = client.clone();
    let mut keys: Vec<String> = (0..WORKERS).map(processing).collect();
    keys.push(JOBS.to_owned());
    conn.del::<_, ()>(&keys).await?;

    let done: Done = Arc::default();
    let mut workers = Vec::new();
    for n in 0..WORKERS - 1 {
        workers.push(tokio::spawn(worker(client.clone(), n, done.clone())));
    }
    let impatient = tokio::spawn(impatient_worker(client.clone(), WORKERS - 1, done.clone()));

    // The producer: small batches with pauses, so workers often wait on an empty list.
    for batch in 0..JOB_COUNT / BATCH {
        let jobs: Vec<String> = (0..BATCH)
            .map(|i| format!("job-{}", batch * BATCH + i))
            .collect();
        conn.lpush::<_, _, ()>(JOBS, &jobs).await?;
        tokio::time::sleep(Duration::from_millis(8)).await;
    }

    // A deadline, so a lost job fails the example instead of hanging it.
    let joined = tokio::time::timeout(Duration::from_secs(10), async {
        for w in workers {
            w.await??;
        }
        impatient.await?
    })
    .await;
    let Ok(joined) = joined else {
        let mut stuck = Vec::new();
        for n in 0..WORKERS {
            stuck.extend(conn.lrange::<_, Vec<String>>(processing(n), 0, -1).await?);
        }
        return Err(format!("jobs stuck in processing: {stuck:?}; {:?}", client.stats()).into());
    };
    let gave_up = joined?;

    // Every job exactly once, nothing left behind.
    let mut processed = done.lock().map_err(|_| "poisoned")?.clone();
    processed.sort();
    let mut expected: Vec<String> = (0..JOB_COUNT).map(|i| format!("job-{i}")).collect();
    expected.sort();
    assert_eq!(processed, expected, "each job processed exactly once");
    assert_eq!(conn.llen::<_, usize>(JOBS).await?, 0);
    for n in 0..WORKERS {
        assert_eq!(conn.llen::<_, usize>(processing(n)).await?, 0);
    }

    let stats = client.stats();
    println!("{JOB_COUNT} jobs processed exactly once; every `processing` list is empty");
    println!(
        "impatient worker gave up {gave_up} times; blocking_cancels = {}, orphans_restored = {}",
        stats.blocking_cancels, stats.orphans_restored
    );
    assert!(gave_up > 0 && stats.blocking_cancels >= gave_up);

    client.close().await;
    Ok(())
}
