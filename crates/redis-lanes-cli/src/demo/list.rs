//! A `BLPOP` worker cancelled over and over while a producer pushes numbered elements:
//! an element popped by a cancelled call must be put back, never lost or duplicated.

use std::time::{Duration, Instant};

use redis::{AsyncCommands, RedisResult};
use redis_lanes::Client;

/// What the worker did.
#[derive(Default)]
pub(super) struct WorkerTally {
    pub(super) received: Vec<String>,
    pub(super) cancels: u64,
}

/// What the list looks like once everything has settled.
pub(super) struct ListCheck {
    pub(super) lost: u64,
    /// Elements seen more than once, or that the producer never pushed.
    pub(super) duplicated: u64,
    pub(super) left_in_list: u64,
}

/// Pushes `0, 1, 2, ...` every 2 ms until `deadline`; returns how many were pushed.
pub(super) async fn produce(mut conn: Client, key: String, deadline: Instant) -> RedisResult<u64> {
    let mut pushed = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while Instant::now() < deadline {
        tick.tick().await;
        conn.rpush::<_, _, i64>(&key, pushed).await?;
        pushed += 1;
    }
    Ok(pushed)
}

/// `BLPOP key 1` under a 1 to 20 ms timeout until `deadline`: most calls are cancelled,
/// some while an element is being served, which is the race the recovery handles.
pub(super) async fn work(
    mut conn: Client,
    key: String,
    deadline: Instant,
) -> RedisResult<WorkerTally> {
    let mut tally = WorkerTally::default();
    let mut i = 0u64;
    while Instant::now() < deadline {
        i += 1;
        let after = Duration::from_millis(1 + (i * 7) % 20);
        match tokio::time::timeout(after, conn.blpop::<_, Option<(String, String)>>(&key, 1.0))
            .await
        {
            Ok(popped) => tally.received.extend(popped?.map(|(_, element)| element)),
            Err(_) => tally.cancels += 1,
        }
    }
    Ok(tally)
}

/// Counts every number in `0..pushed` across what was received and what is still in
/// the list.
pub(super) async fn check(
    conn: &mut Client,
    key: &str,
    pushed: u64,
    received: &[String],
) -> RedisResult<ListCheck> {
    let left: Vec<String> = conn.lrange(key, 0, -1).await?;
    let mut seen = vec![0u32; pushed as usize];
    let mut duplicated = 0u64;
    for element in received.iter().chain(&left) {
        let slot = element.parse::<usize>().ok().and_then(|n| seen.get_mut(n));
        match slot {
            Some(count) => {
                *count += 1;
                duplicated += u64::from(*count > 1);
            }
            None => duplicated += 1,
        }
    }
    Ok(ListCheck {
        lost: seen.iter().filter(|&&c| c == 0).count() as u64,
        duplicated,
        left_in_list: left.len() as u64,
    })
}
