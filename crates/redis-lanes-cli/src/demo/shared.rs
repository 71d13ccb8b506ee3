//! The shared-lane workload: SET/GET, INCR, pipelines, EXISTS, every reply checked.

use std::time::Instant;

use redis::AsyncCommands;
use redis_lanes::Client;

use super::progress::Window;

/// What one task did.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) ops: u64,
    pub(super) mismatches: u64,
    pub(super) errors: u64,
    /// Latency of every operation, in microseconds.
    pub(super) latencies: Vec<u32>,
}

/// Runs one task's share until `deadline`; every operation is also recorded in `window`,
/// the live view's last second.
pub(super) async fn work(
    mut conn: Client,
    prefix: &str,
    task: usize,
    deadline: Instant,
    window: &Window,
) -> Tally {
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
        let micros = begun.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
        tally.latencies.push(micros);
        tally.ops += 1;
        window.record(u64::from(micros));
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
