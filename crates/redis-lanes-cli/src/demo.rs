//! `redis-lanes demo`: many tasks, one client, every reply checked; blocking stream and
//! list reads on the same client are cancelled mid-call, and the run checks that no
//! cancelled call left anything behind.

mod list;
mod progress;
mod shared;
mod streams;

use std::collections::HashSet;
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis_lanes::Client;
use redis_lanes_testkit::RedisServer;

/// Options of `redis-lanes demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Server to use. Without it, a throw-away redis-server is started on a free
    /// loopback port (Debian package `redis-server`).
    #[arg(long)]
    url: Option<String>,
    /// How long the workload runs, in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Concurrent tasks sharing the one client.
    #[arg(long, default_value_t = 64)]
    tasks: usize,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Stream consumers reading the group concurrently.
const CONSUMERS: u64 = 3;

/// Runs the demo; `Ok(false)` means a check failed.
pub(crate) async fn run(args: Args) -> Result<bool, BoxError> {
    if !(args.duration > 0.0 && args.duration <= 3600.0) {
        return Err("--duration must be between 0 and 3600 seconds".into());
    }
    if args.tasks == 0 || args.tasks > 10_000 {
        return Err("--tasks must be between 1 and 10000".into());
    }
    let _server; // Kept alive for the whole run; dropping it stops the server.
    let url = match args.url {
        Some(url) => url,
        None => {
            let server = RedisServer::start()?;
            println!(
                "started redis-server {} (pid {}) for this demo",
                server.url(),
                server.pid()
            );
            let url = server.url();
            _server = server;
            url
        }
    };
    // A name of our own, so the final check finds every connection of this client
    // (shared and blocking lanes alike) and no one else's.
    let name = format!("redis-lanes-demo-{}", std::process::id());
    let client = Client::builder(&url).client_name(&name).connect().await?;
    let prefix = format!("redis-lanes-demo:{}", std::process::id());
    let stream_key = format!("{prefix}:stream");
    let list_key = format!("{prefix}:q");
    let mut conn = client.clone();
    streams::create(&mut conn, &stream_key).await?;
    println!(
        "{} tasks share one client for {:.1} s: SET/GET, INCR, 8-command pipelines;",
        args.tasks, args.duration
    );
    println!(
        "on the same client, {CONSUMERS} XREADGROUP BLOCK 2000 consumers (some cancelled and \
         deleted) and a BLPOP worker cancelled by short timeouts, while producers write"
    );

    let duration = Duration::from_secs_f64(args.duration);
    let deadline = Instant::now() + duration;
    let started = Instant::now();
    let window = Arc::new(progress::Window::new());
    let live = progress::Live::start(client.clone(), Arc::clone(&window), duration);
    let mut tasks = Vec::with_capacity(args.tasks);
    for t in 0..args.tasks {
        let conn = client.clone();
        let prefix = prefix.clone();
        let window = Arc::clone(&window);
        tasks.push(tokio::spawn(async move {
            shared::work(conn, &prefix, t, deadline, &window).await
        }));
    }
    // Bounded: a few cancels a second of run, at most 40 whatever the duration.
    let budget = Arc::new(AtomicU32::new((args.duration * 4.0).clamp(1.0, 40.0) as u32));
    let consumers: Vec<_> = (0..CONSUMERS)
        .map(|i| {
            let fut = streams::consume(
                client.clone(),
                stream_key.clone(),
                i,
                Arc::clone(&budget),
                deadline,
            );
            tokio::spawn(fut)
        })
        .collect();
    let stream_producer = tokio::spawn(streams::produce(
        client.clone(),
        stream_key.clone(),
        deadline,
    ));
    let list_producer = tokio::spawn(list::produce(client.clone(), list_key.clone(), deadline));
    let list_worker = tokio::spawn(list::work(client.clone(), list_key.clone(), deadline));

    let mut total = shared::Tally::default();
    for task in tasks {
        let tally = task.await?;
        total.ops += tally.ops;
        total.mismatches += tally.mismatches;
        total.errors += tally.errors;
        total.latencies.extend(tally.latencies);
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Producers stop at the deadline; consumers finish their last read (at most the
    // 2 s BLOCK), then whatever is left is drained so only cancelled reads' entries
    // can still be pending.
    let added = stream_producer.await??;
    let pushed = list_producer.await??;
    let mut acked = 0;
    let mut deleted = HashSet::new();
    let mut stream_cancels = 0;
    for consumer in consumers {
        let tally = consumer.await??;
        acked += tally.acked;
        stream_cancels += tally.cancels;
        deleted.extend(tally.deleted);
    }
    let worker = list_worker.await??;
    live.finish();
    acked += streams::drain(&mut conn, &stream_key).await?;
    settle(&client).await;
    let stream = streams::check(&mut conn, &stream_key, &deleted).await?;
    let list = list::check(&mut conn, &list_key, pushed, &worker.received).await?;

    total.latencies.sort_unstable();
    let pct = |p: f64| {
        let i = ((total.latencies.len() as f64 - 1.0) * p).round() as usize;
        total.latencies.get(i).copied().unwrap_or(0)
    };
    let stats = client.stats();
    println!();
    println!("| operations | ops/s | p50 | p99 | max | requests per write |");
    println!("|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | {:.0} | {} µs | {} µs | {} µs | {:.1} |",
        total.ops,
        total.ops as f64 / elapsed,
        pct(0.50),
        pct(0.99),
        pct(1.0),
        stats.written_requests as f64 / stats.written_batches.max(1) as f64
    );
    println!(
        "stream: {added} added, {acked} acked, {} pending, {stream_cancels} reads cancelled, \
         {} consumers deleted",
        stream.pending,
        deleted.len()
    );
    println!(
        "list: {pushed} pushed, {} received, {} left in the list, {} BLPOPs cancelled",
        worker.received.len(),
        list.left_in_list,
        worker.cancels
    );
    println!(
        "client: {} blocking cancels, {} orphans restored, {} reported, {} unrecoverable, \
         {} unblock fallbacks",
        stats.blocking_cancels,
        stats.orphans_restored,
        stats.orphans_reported,
        stats.orphans_unrecoverable,
        stats.unblock_fallbacks
    );

    // Clean up, close, and check from another connection that nothing is left.
    let keys: Vec<String> = conn.keys(format!("{prefix}:*")).await?;
    for chunk in keys.chunks(1000) {
        let _: () = conn.del(chunk).await?;
    }
    drop(conn);
    client.close().await;
    let left = connections_left(&url, &name).await?;

    println!();
    println!("| check | count | verdict |");
    println!("|---|---:|---|");
    let checks = [
        ("replies that did not match their request", total.mismatches),
        ("commands that failed", total.errors),
        ("deleted consumers re-created", stream.recreated),
        // Pending for a deleted consumer, or neither acknowledged nor pending at all
        // (dropped with a deleted consumer).
        (
            "stream entries orphaned",
            stream.orphaned + added.saturating_sub(acked + stream.pending),
        ),
        ("list elements lost", list.lost),
        ("list elements duplicated", list.duplicated),
        ("our connections left on the server after close()", left),
    ];
    let mut ok = true;
    for (what, count) in checks {
        let verdict = if count == 0 { "ok" } else { "FAIL" };
        ok &= count == 0;
        println!("| {what} | {count} | {verdict} |");
    }
    Ok(ok)
}

/// Waits until no blocking lane is busy (cancelled calls are recovered before their lane
/// is freed), then a little longer, so a late command would have landed by the checks.
async fn settle(client: &Client) {
    for _ in 0..50 {
        if client.stats().blocking_busy == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Counts connections named `name` in `CLIENT LIST`, seen from a separate unnamed
/// connection; polls for up to 2 s because the server notices closed sockets on its own
/// schedule.
async fn connections_left(url: &str, name: &str) -> Result<u64, BoxError> {
    let observer = Client::connect(url).await?;
    let mut obs = observer.clone();
    let needle = format!(" name={name} ");
    let mut left = 0;
    for _ in 0..20 {
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut obs)
            .await?;
        left = list.lines().filter(|l| l.contains(&needle)).count() as u64;
        if left == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(obs);
    observer.close().await;
    Ok(left)
}
