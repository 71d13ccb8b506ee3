//! The measuring side of the memory scenario: `redis-lanes memory-probe`, a hidden
//! subcommand run in a process of its own per measurement, so that one client's freed
//! memory (kept by the allocator) never hides another client's peak.
//!
//! It connects one client, sets a baseline (the kernel's peak-RSS mark reset through
//! `/proc/self/clear_refs`), does one thing and prints how far the resident set grew
//! above the baseline at its peak: `peak <bytes>`.

use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use fred::bytes::Bytes;
use fred::prelude::KeysInterface;
use redis::AsyncCommands;

use fred::prelude::Blocking;

use super::targets::Target;
use super::BoxError;

/// What one probe measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Case {
    /// `count` tasks each `SET` a value of `size` bytes through one client while the
    /// server is stalled (the caller stalls it after the probe says `ready`).
    Queued,
    /// One `SET` of a value of `size` bytes.
    Set,
    /// One `GET` of a value of `size` bytes (set beforehand).
    Get,
}

/// The clients a probe can measure.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Which {
    Lanes,
    RedisRs,
    Manager,
    Fred,
}

/// Options of `redis-lanes memory-probe`.
#[derive(Debug, clap::Args)]
pub(crate) struct ProbeArgs {
    #[arg(long)]
    pub(crate) url: String,
    #[arg(long, value_enum)]
    pub(crate) client: Which,
    #[arg(long, value_enum)]
    pub(crate) case: Case,
    #[arg(long)]
    pub(crate) size: usize,
    #[arg(long, default_value_t = 1)]
    pub(crate) count: usize,
}

/// How long the resident set must stay the same before the queue counts as built.
const SETTLED: Duration = Duration::from_millis(200);
/// The longest a probe waits for that.
const SETTLE_LIMIT: Duration = Duration::from_secs(20);

/// Runs one probe and prints `peak <bytes>`. The process is meant to exit right after:
/// a queued probe leaves its requests waiting on a stalled server.
pub(crate) async fn run(args: ProbeArgs) -> Result<bool, BoxError> {
    let target = match args.client {
        Which::Lanes => Target::lanes(&args.url).await?,
        Which::RedisRs => Target::redis_rs(&args.url).await?,
        Which::Manager => Target::manager(&args.url).await?,
        Which::Fred => Target::fred(&args.url, Blocking::Block).await?,
    };
    let key = format!("redis-lanes-bench:memory:{}", std::process::id());
    let grown = match args.case {
        Case::Queued => queued(target, &key, args.size, args.count).await?,
        Case::Set => {
            // Non-zero, so every page is touched before the baseline.
            let value = vec![b'v'; args.size];
            let base = baseline()?;
            set(&target, &key, &value).await?;
            peak()?.saturating_sub(base)
        }
        Case::Get => {
            set(&target, &key, &vec![b'v'; args.size]).await?;
            let base = baseline()?;
            let len = get_len(&target, &key).await?;
            let grown = peak()?.saturating_sub(base);
            if len != args.size {
                return Err(format!("GET returned {len} bytes, not {}", args.size).into());
            }
            let _ = set(&target, &key, b"").await;
            grown
        }
    };
    println!("peak {grown}");
    std::io::stdout().flush()?;
    Ok(true)
}

/// Says `ready`, waits for the caller to stall the server, then queues the requests
/// and returns once the resident set stops growing.
async fn queued(target: Target, key: &str, size: usize, count: usize) -> Result<u64, BoxError> {
    println!("ready");
    std::io::stdout().flush()?;
    tokio::task::spawn_blocking(|| std::io::stdin().lock().read_line(&mut String::new())).await??;
    let value = Arc::new(vec![b'v'; size]);
    let fred_value = Bytes::from(value.to_vec());
    let base = baseline()?;
    let started = Arc::new(AtomicUsize::new(0));
    let target = Arc::new(target);
    for i in 0..count {
        let (target, value, fred_value) =
            (Arc::clone(&target), Arc::clone(&value), fred_value.clone());
        let started = Arc::clone(&started);
        let key = format!("{key}:{i}");
        tokio::spawn(async move {
            started.fetch_add(1, SeqCst);
            let _ = match &*target {
                Target::Fred(c) => c
                    .set::<(), _, _>(key, fred_value, None, None, false)
                    .await
                    .map_err(BoxError::from),
                _ => set(&target, &key, &value).await,
            };
        });
    }
    let deadline = Instant::now() + SETTLE_LIMIT;
    while started.load(SeqCst) < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Every task has run up to its first wait; the queue is built once nothing grows.
    let (mut last, mut since) = (rss()?, Instant::now());
    while since.elapsed() < SETTLED && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = rss()?;
        if now != last {
            (last, since) = (now, Instant::now());
        }
    }
    Ok(peak()?.saturating_sub(base))
}

/// `SET key value` through the client's own API; the `redis`-based clients copy the
/// value into a `Cmd` as their callers do, fred takes it as `Bytes`.
async fn set(target: &Target, key: &str, value: &[u8]) -> Result<(), BoxError> {
    match target {
        Target::Lanes(c) => c.clone().set::<_, _, ()>(key, value).await?,
        Target::RedisRs(c) => c.clone().set::<_, _, ()>(key, value).await?,
        Target::Manager(c) => c.clone().set::<_, _, ()>(key, value).await?,
        Target::Pool(_) => return Err("the memory probe does not measure pools".into()),
        Target::Fred(c) => {
            c.set::<(), _, _>(key, Bytes::copy_from_slice(value), None, None, false)
                .await?;
        }
    }
    Ok(())
}

/// `GET key` into each client's own byte type; returns the length.
async fn get_len(target: &Target, key: &str) -> Result<usize, BoxError> {
    Ok(match target {
        Target::Lanes(c) => c.clone().get::<_, Vec<u8>>(key).await?.len(),
        Target::RedisRs(c) => c.clone().get::<_, Vec<u8>>(key).await?.len(),
        Target::Manager(c) => c.clone().get::<_, Vec<u8>>(key).await?.len(),
        Target::Pool(_) => return Err("the memory probe does not measure pools".into()),
        Target::Fred(c) => c.get::<Bytes, _>(key).await?.len(),
    })
}

/// Resets the kernel's peak-RSS mark to the current resident set and returns it.
fn baseline() -> Result<u64, BoxError> {
    std::fs::write("/proc/self/clear_refs", "5")
        .map_err(|e| format!("resetting the peak RSS (/proc/self/clear_refs): {e}"))?;
    rss()
}

fn rss() -> Result<u64, BoxError> {
    status_kib("VmRSS:")
}

fn peak() -> Result<u64, BoxError> {
    status_kib("VmHWM:")
}

/// A `/proc/self/status` field in bytes.
fn status_kib(field: &str) -> Result<u64, BoxError> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| format!("no {field} in /proc/self/status").into())
}
