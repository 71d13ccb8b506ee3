//! A harness for profiling one client alone: `TASKS` tasks (default 16) send `GET`s of a
//! 16-byte value through one client for `SECS` seconds (default 3), and the rate is
//! printed. Meant to run under `perf stat` / `perf record`, which see only this process:
//!
//! ```sh
//! cargo build --release -p redis-lanes-cli --example profile
//! CLIENT=lanes TASKS=16 perf stat -e task-clock,context-switches,raw_syscalls:sys_enter \
//!     target/release/examples/profile
//! CLIENT=redis-rs TASKS=16 perf stat ... # the same for redis-rs's MultiplexedConnection
//! ```
//!
//! `REDIS_URL` picks the server; without it a throw-away `redis-server` is started. The
//! runtime has two worker threads, as in `redis-lanes bench`.

use std::time::{Duration, Instant};

use redis::aio::ConnectionLike;
use redis::AsyncCommands;
use redis_lanes_testkit::Target;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn setting<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<()> {
    let tasks: usize = setting("TASKS", 16);
    let secs: u64 = setting("SECS", 3);
    let client: String = setting("CLIENT", "lanes".to_owned());
    let target = Target::from_env_or_start("REDIS_URL")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let window = Duration::from_secs(secs);
    let ops = runtime.block_on(async {
        match client.as_str() {
            "lanes" => {
                let client = redis_lanes::Client::connect(target.url()).await?;
                let ops = gets(client.clone(), tasks, window).await?;
                let stats = client.stats();
                #[allow(clippy::cast_precision_loss)]
                let per_write = stats.written_requests as f64 / stats.written_batches.max(1) as f64;
                println!("redis-lanes wrote {per_write:.1} requests per write");
                Ok(ops)
            }
            "redis-rs" => {
                let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
                let conn = redis::Client::open(target.url())?
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                gets(conn, tasks, window).await
            }
            other => Err(format!("CLIENT must be lanes or redis-rs, not {other}").into()),
        }
    })?;
    println!("{client}, {tasks} tasks: {ops:.0} GET/s");
    Ok(())
}

/// GETs from `tasks` clones of `conn` for `window`; returns the rate.
async fn gets<C>(conn: C, tasks: usize, window: Duration) -> Result<f64>
where
    C: ConnectionLike + Clone + Send + Sync + 'static,
{
    let key = "redis-lanes-profile:key";
    let _: () = conn.clone().set(key, "0123456789abcdef").await?;
    let deadline = Instant::now() + window;
    let mut handles = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let mut conn = conn.clone();
        handles.push(tokio::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < deadline {
                let _: Vec<u8> = conn.get(key).await?;
                done += 1;
            }
            Ok::<_, redis::RedisError>(done)
        }));
    }
    let mut total = 0;
    for handle in handles {
        total += handle.await??;
    }
    let _: () = conn.clone().del(key).await?;
    #[allow(clippy::cast_precision_loss)]
    Ok(total as f64 / window.as_secs_f64())
}
