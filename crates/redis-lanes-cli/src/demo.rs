//! `redis-lanes demo`: many tasks, one client, every reply checked.

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
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Concurrent tasks sharing the one client.
    #[arg(long, default_value_t = 64)]
    tasks: usize,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What one task did.
#[derive(Default)]
struct Tally {
    ops: u64,
    mismatches: u64,
    errors: u64,
    /// Latency of every operation, in microseconds.
    latencies: Vec<u32>,
}

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
    let client = Client::builder(&url)
        .client_name("redis-lanes-demo")
        .connect()
        .await?;
    let id = client.client_id();
    let prefix = format!("redis-lanes-demo:{}", std::process::id());
    println!(
        "{} tasks share one client for {:.1} s: SET/GET, INCR, 8-command pipelines",
        args.tasks, args.duration
    );

    let deadline = Instant::now() + Duration::from_secs_f64(args.duration);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(args.tasks);
    for t in 0..args.tasks {
        let conn = client.clone();
        let prefix = prefix.clone();
        tasks.push(tokio::spawn(async move {
            work(conn, &prefix, t, deadline).await
        }));
    }
    let progress = tokio::spawn(report_progress(client.clone(), deadline));
    let mut total = Tally::default();
    for task in tasks {
        let tally = task.await?;
        total.ops += tally.ops;
        total.mismatches += tally.mismatches;
        total.errors += tally.errors;
        total.latencies.extend(tally.latencies);
    }
    progress.abort();
    let elapsed = started.elapsed().as_secs_f64();
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

    // Clean up, close, and check from another connection that nothing is left.
    let mut conn = client.clone();
    let keys: Vec<String> = conn.keys(format!("{prefix}:*")).await?;
    for chunk in keys.chunks(1000) {
        let _: () = conn.del(chunk).await?;
    }
    drop(conn);
    client.close().await;
    let observer = Client::connect(&url).await?;
    let mut obs = observer.clone();
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut obs)
        .await?;
    let left = id.is_some_and(|id| list.lines().any(|l| l.starts_with(&format!("id={id} "))));
    observer.close().await;

    println!();
    let checks = [
        ("replies that did not match their request", total.mismatches),
        ("commands that failed", total.errors),
        (
            "connections left on the server after close()",
            u64::from(left),
        ),
    ];
    let mut ok = true;
    for (what, count) in checks {
        let verdict = if count == 0 { "ok" } else { "FAIL" };
        ok &= count == 0;
        println!("{verdict:>4}  {what}: {count}");
    }
    Ok(ok)
}

async fn work(mut conn: Client, prefix: &str, task: usize, deadline: Instant) -> Tally {
    let mut tally = Tally::default();
    let counter = format!("{prefix}:counter:{task}");
    let mut expected = 0i64;
    let mut i = 0u64;
    while Instant::now() < deadline {
        i += 1;
        let key = format!("{prefix}:{task}:{}", i % 1000);
        let value = format!("{task}:{i}");
        let begun = Instant::now();
        let ok = match i % 4 {
            0 => {
                let set: redis::RedisResult<()> = conn.set(&key, &value).await;
                match set {
                    Ok(()) => conn.get::<_, String>(&key).await.map(|v| v == value),
                    Err(e) => Err(e),
                }
            }
            1 => {
                expected += 1;
                conn.incr::<_, _, i64>(&counter, 1)
                    .await
                    .map(|n| n == expected)
            }
            2 => {
                let mut pipe = redis::pipe();
                for n in 0..8 {
                    pipe.cmd("ECHO").arg(format!("{value}:{n}"));
                }
                pipe.query_async::<Vec<String>>(&mut conn)
                    .await
                    .map(|echoes| {
                        echoes
                            .iter()
                            .enumerate()
                            .all(|(n, e)| *e == format!("{value}:{n}"))
                    })
            }
            _ => conn.exists::<_, bool>(&counter).await,
        };
        tally
            .latencies
            .push(begun.elapsed().as_micros().min(u32::MAX as u128) as u32);
        tally.ops += 1;
        match ok {
            Ok(true) => {}
            Ok(false) => tally.mismatches += 1,
            Err(e) => {
                tally.errors += 1;
                eprintln!("task {task}: {e}");
                break;
            }
        }
    }
    tally
}

async fn report_progress(client: Client, deadline: Instant) {
    let mut last = client.stats().replies;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    while Instant::now() < deadline {
        tick.tick().await;
        let stats = client.stats();
        println!(
            "  {:>9} replies/s, {:>5} in flight",
            stats.replies - last,
            stats.in_flight
        );
        last = stats.replies;
    }
}
