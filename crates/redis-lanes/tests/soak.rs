//! A bounded soak: mixed load while random faults hit the server, then the invariants:
//! every call returned within its deadline, no reply reached the wrong caller, and no
//! write ran twice (the `INCR` counters lie between what was acknowledged and that plus
//! what was reported outcome-unknown).
//!
//! 10 s by default, so the ordinary test run stays short; `REDIS_LANES_SOAK_SECS` sets
//! the length (a minute: `REDIS_LANES_SOAK_SECS=60`; a long run:
//! `REDIS_LANES_SOAK_SECS=1800 cargo test --release -p redis-lanes --test soak -- --nocapture`)
//! and `REDIS_LANES_SOAK_SEED` replays a run's faults.

mod common;

use std::time::{Duration, Instant};

use common::load::{self, Load};
use redis_lanes_testkit::RedisServer;

/// xorshift64*: enough to pick faults, and replayable from the printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.parse().ok()
}

async fn side(server: &RedisServer) -> Option<redis::aio::MultiplexedConnection> {
    redis::Client::open(server.url())
        .ok()?
        .get_multiplexed_async_connection()
        .await
        .ok()
}

/// One random fault; returns its name for the log.
async fn inject(server: &mut RedisServer, rng: &mut Rng) -> &'static str {
    let Some(mut side) = side(server).await else {
        return "none (server not answering yet)";
    };
    let run = |args: &[&str]| {
        let mut cmd = redis::cmd(args[0]);
        for arg in &args[1..] {
            cmd.arg(*arg);
        }
        cmd
    };
    match rng.below(5) {
        0 => {
            let _ = run(&["CLIENT", "KILL", "TYPE", "normal"])
                .query_async::<redis::Value>(&mut side)
                .await;
            "CLIENT KILL TYPE normal"
        }
        1 => {
            server.stop();
            tokio::time::sleep(Duration::from_millis(rng.below(500))).await;
            server.restart().expect("restart");
            "kill -9 and restart"
        }
        2 => {
            let _ = run(&["CLIENT", "PAUSE", "300", "ALL"])
                .query_async::<redis::Value>(&mut side)
                .await;
            "CLIENT PAUSE 300"
        }
        3 => {
            // Longer than nothing, shorter than the response timeout.
            let _ = run(&["DEBUG", "SLEEP", "0.5"])
                .query_async::<redis::Value>(&mut side)
                .await;
            "DEBUG SLEEP 0.5"
        }
        _ => {
            let _ = run(&["CLIENT", "KILL", "USER", "default"])
                .query_async::<redis::Value>(&mut side)
                .await;
            "CLIENT KILL USER default"
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soak_with_random_faults() {
    let length = Duration::from_secs(env_u64("REDIS_LANES_SOAK_SECS").unwrap_or(10));
    let seed = env_u64("REDIS_LANES_SOAK_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
            | 1
    });
    eprintln!("soak: {length:?}, REDIS_LANES_SOAK_SEED={seed}");
    let mut rng = Rng(seed);
    let mut server = common::server_with(&["--appendonly", "yes", "--appendfsync", "always"]);
    let url = server.url();
    let client = load::client(&url).await;
    let running = Load::start(&client, 4, 4, 4, 2);

    let started = Instant::now();
    let mut faults = 0;
    // Faults stop a few seconds before the end, so the last stretch shows recovery.
    while started.elapsed() + Duration::from_secs(5) < length {
        tokio::time::sleep(Duration::from_millis(1_000 + rng.below(2_000))).await;
        let fault = inject(&mut server, &mut rng).await;
        faults += 1;
        eprintln!("soak: {:>5.1}s {fault}", started.elapsed().as_secs_f64());
    }
    let before_end = client.stats();
    tokio::time::sleep(length.saturating_sub(started.elapsed())).await;
    let tally = running.finish().await;
    eprintln!("soak: {faults} faults, {tally:?}");
    eprintln!("soak: {:?}", client.stats());

    load::check(&url, &tally).await;
    assert!(faults >= 1);
    let after = client.stats();
    assert!(
        after.replies > before_end.replies,
        "no progress after the last fault: {after:?}"
    );
    assert!(
        tally.ok * 2 > tally.calls,
        "most calls should succeed: {tally:?}"
    );
    client.close().await;
}
