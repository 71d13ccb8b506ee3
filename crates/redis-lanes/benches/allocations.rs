//! Heap allocations per `GET` on the hot path, counted by a counting global allocator
//! (`dhat`'s), redis-lanes against redis-rs's `MultiplexedConnection`, both against the
//! in-process fake server (which allocates nothing per request).
//!
//! ```sh
//! cargo bench -p redis-lanes --bench allocations
//! ```

mod support;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

/// GETs counted per measurement, after as many uncounted to warm every buffer up.
const OPS: u64 = 20_000;

fn main() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let url = support::fake_server().await;
        let (lanes, redis_rs) = support::clients(&url).await;
        println!(
            "| tasks | redis-lanes, `AsyncCommands::get` | redis-rs, `AsyncCommands::get` | \
             redis-lanes, `Client::send` of a built `Cmd` |"
        );
        println!("|---:|---:|---:|---:|");
        for tasks in [1u64, 16, 128] {
            let ours = per_get(&lanes, tasks).await;
            let theirs = per_get(&redis_rs, tasks).await;
            let sent = per_send(&lanes, tasks).await;
            println!("| {tasks} | {ours:.2} | {theirs:.2} | {sent:.2} |");
        }
        lanes.close().await;
    });
}

/// Allocations per GET sent with `Client::send` from `tasks` tasks, each reusing one
/// `Cmd`: what the lane itself allocates, plus the reply's value.
async fn per_send(client: &redis_lanes::Client, tasks: u64) -> f64 {
    let run = || async {
        let mut handles = Vec::new();
        for _ in 0..tasks {
            let client = client.clone();
            handles.push(tokio::spawn(async move {
                let cmd = redis::cmd("GET").arg("key").clone();
                for _ in 0..OPS / tasks {
                    let value = client.send(&cmd).await.expect("GET");
                    assert!(
                        matches!(&value, redis::Value::BulkString(v) if v == support::VALUE),
                        "{value:?}"
                    );
                }
            }));
        }
        for handle in handles {
            handle.await.expect("task");
        }
    };
    run().await;
    let before = dhat::HeapStats::get().total_blocks;
    run().await;
    let after = dhat::HeapStats::get().total_blocks;
    (after - before) as f64 / (OPS / tasks * tasks) as f64
}

/// Allocations per GET from `tasks` tasks, spawning included (one task per 20,000 GETs
/// adds nothing visible).
async fn per_get<C>(conn: &C, tasks: u64) -> f64
where
    C: redis::aio::ConnectionLike + Clone + Send + Sync + 'static,
{
    support::gets(conn, tasks, OPS).await;
    let before = dhat::HeapStats::get().total_blocks;
    support::gets(conn, tasks, OPS).await;
    let after = dhat::HeapStats::get().total_blocks;
    (after - before) as f64 / OPS as f64
}
