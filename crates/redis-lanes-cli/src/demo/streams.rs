//! Stream consumers whose blocking group reads are cancelled mid-block, after which the
//! consumer is deleted: the contract says the cancelled `XREADGROUP` is unblocked on the
//! server before `XGROUP DELCONSUMER` runs, so it can never re-create the consumer.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::streams::{
    StreamInfoConsumersReply, StreamPendingCountReply, StreamReadOptions, StreamReadReply,
};
use redis::{AsyncCommands, RedisResult};
use redis_lanes::Client;

/// The group every consumer reads.
pub(super) const GROUP: &str = "demo-group";

/// What one consumer did.
#[derive(Default)]
pub(super) struct ConsumerTally {
    pub(super) acked: u64,
    pub(super) cancels: u64,
    /// Consumers this task deleted after cancelling their read.
    pub(super) deleted: Vec<String>,
}

/// What the stream looks like once everything has settled.
pub(super) struct StreamCheck {
    /// Deleted consumers that exist again (a late `XREADGROUP` re-created them).
    pub(super) recreated: u64,
    /// Entries pending for a deleted consumer name.
    pub(super) orphaned: u64,
    pub(super) pending: u64,
}

/// Creates the stream and its group, so consumers can start reading new entries.
pub(super) async fn create(conn: &mut Client, key: &str) -> RedisResult<()> {
    conn.xgroup_create_mkstream::<_, _, _, ()>(key, GROUP, "$")
        .await
}

/// Adds an entry every 5 ms until `deadline`; returns how many were added.
pub(super) async fn produce(mut conn: Client, key: String, deadline: Instant) -> RedisResult<u64> {
    let mut added = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while Instant::now() < deadline {
        tick.tick().await;
        conn.xadd::<_, _, _, _, String>(&key, "*", &[("n", added)])
            .await?;
        added += 1;
    }
    Ok(added)
}

/// Reads the group with `BLOCK 2000` until `deadline`, acknowledging what it gets. One
/// read in four, while the shared `budget` lasts, is cancelled after a few milliseconds
/// (so it is usually blocked on the server by then) and the consumer is deleted.
pub(super) async fn consume(
    mut conn: Client,
    key: String,
    index: u64,
    budget: Arc<AtomicU32>,
    deadline: Instant,
) -> RedisResult<ConsumerTally> {
    let mut tally = ConsumerTally::default();
    let mut generation = 0u32;
    let mut name = format!("consumer-{index}-{generation}");
    let mut reads = 0u64;
    let (keys, ids) = ([key.as_str()], [">"]);
    while Instant::now() < deadline {
        reads += 1;
        let options = StreamReadOptions::default()
            .group(GROUP, &name)
            .count(16)
            .block(2000);
        let read = conn.xread_options::<_, _, Option<StreamReadReply>>(&keys, &ids, &options);
        let cancel = reads.is_multiple_of(4)
            && budget
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| b.checked_sub(1))
                .is_ok();
        let reply = if cancel {
            // 1 to 15 ms, varied so the cancel lands at different points of the call:
            // before it is written, while it blocks, or just as an entry is served.
            let after = Duration::from_millis(1 + (reads * 7 + index * 3) % 15);
            match tokio::time::timeout(after, read).await {
                Ok(reply) => reply?,
                Err(_) => {
                    tally.cancels += 1;
                    // A read served just before its cancel landed leaves its entries
                    // pending for this consumer (redis-lanes reports them; a group read
                    // cannot be undone). Handle them before the consumer goes, as an
                    // application must, or DELCONSUMER drops them.
                    tally.acked += settle_own(&mut conn, &key, &name).await?;
                    conn.xgroup_delconsumer::<_, _, _, i64>(&key, GROUP, &name)
                        .await?;
                    tally.deleted.push(name);
                    generation += 1;
                    name = format!("consumer-{index}-{generation}");
                    continue;
                }
            }
        } else {
            read.await?
        };
        tally.acked += ack(&mut conn, &key, reply).await?;
    }
    Ok(tally)
}

/// Reads `consumer`'s own pending entries back (ID `0`: its history, no `BLOCK`, so on
/// the shared lane, after the cancelled read's unblock) and acknowledges them.
async fn settle_own(conn: &mut Client, key: &str, consumer: &str) -> RedisResult<u64> {
    let options = StreamReadOptions::default()
        .group(GROUP, consumer)
        .count(100);
    let mut acked = 0;
    for _ in 0..1_000 {
        let reply: Option<StreamReadReply> = conn.xread_options(&[key], &["0"], &options).await?;
        let n = ack(conn, key, reply).await?;
        if n == 0 {
            break;
        }
        acked += n;
    }
    Ok(acked)
}

/// Reads whatever new entries are left (without `BLOCK`, so on the shared lane) with a
/// consumer of its own and acknowledges them; bounded in rounds.
pub(super) async fn drain(conn: &mut Client, key: &str) -> RedisResult<u64> {
    let options = StreamReadOptions::default()
        .group(GROUP, "drain")
        .count(100);
    let mut acked = 0;
    for _ in 0..10_000 {
        let reply: Option<StreamReadReply> = conn.xread_options(&[key], &[">"], &options).await?;
        let n = ack(conn, key, reply).await?;
        if n == 0 {
            break;
        }
        acked += n;
    }
    Ok(acked)
}

async fn ack(conn: &mut Client, key: &str, reply: Option<StreamReadReply>) -> RedisResult<u64> {
    let ids: Vec<String> = reply
        .into_iter()
        .flat_map(|r| r.keys)
        .flat_map(|k| k.ids)
        .map(|entry| entry.id)
        .collect();
    if ids.is_empty() {
        return Ok(0);
    }
    conn.xack::<_, _, _, u64>(key, GROUP, &ids).await
}

/// Looks for deleted consumers in `XINFO CONSUMERS` and their entries in `XPENDING`.
pub(super) async fn check(
    conn: &mut Client,
    key: &str,
    deleted: &HashSet<String>,
) -> RedisResult<StreamCheck> {
    let consumers: StreamInfoConsumersReply = conn.xinfo_consumers(key, GROUP).await?;
    let recreated = consumers
        .consumers
        .iter()
        .filter(|c| deleted.contains(&c.name))
        .count() as u64;
    // Everything still pending; the run adds far fewer entries than this bound.
    let pending: StreamPendingCountReply =
        conn.xpending_count(key, GROUP, "-", "+", 100_000).await?;
    let orphaned = pending
        .ids
        .iter()
        .filter(|p| deleted.contains(&p.consumer))
        .count() as u64;
    Ok(StreamCheck {
        recreated,
        orphaned,
        pending: pending.ids.len() as u64,
    })
}
