//! A stream consumer group with a clean shutdown.
//!
//! Four consumers read one group with `XREADGROUP ... BLOCK` (each read runs on a blocking
//! lane, so the shared connection keeps serving `XADD`/`XACK` meanwhile) while a producer
//! adds entries. Every consumer listens to a cancellation signal: when it fires, the
//! consumer drops its read mid-block and returns. redis-lanes turns that drop into a
//! `CLIENT UNBLOCK` queued before anything the client sends next, so the read is gone
//! from the server before the consumer is deleted.
//!
//! Halfway through, two consumers are retired. Entries their cancelled reads may have
//! been served stay pending for them (Redis's at-least-once rule); the survivors pick
//! those up with `XAUTOCLAIM` once they have been idle for a while, and only then is each
//! retired consumer deleted with `XGROUP DELCONSUMER`. The producer keeps adding entries
//! afterwards: a read still blocked on the server would be served one and re-create the
//! deleted consumer. At the end the survivors are cancelled and deleted too, and the run
//! checks that every entry was acknowledged exactly once, that nothing is pending, and
//! that no deleted consumer came back.
//!
//! Connects to `REDIS_URL` if set, otherwise starts a throw-away `redis-server`.
//!
//! ```sh
//! cargo run -p redis-lanes --example stream_group
//! ```

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::streams::{
    StreamAutoClaimOptions, StreamAutoClaimReply, StreamId, StreamInfoConsumersReply,
    StreamPendingCountReply, StreamPendingReply, StreamReadOptions, StreamReadReply,
};
use redis::AsyncCommands;
use redis_lanes::Client;
use redis_lanes_testkit::Target;
use tokio_util::sync::CancellationToken;

type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

const STREAM: &str = "example:stream_group:events";
const GROUP: &str = "workers";
const CONSUMERS: usize = 4;
/// Consumers `2` and `3` are retired halfway through.
const RETIRED: [usize; 2] = [2, 3];
const ENTRIES: u64 = 300;
/// Entries pending this long belong to a consumer that is gone (a live one acknowledges
/// within milliseconds); `XAUTOCLAIM` hands them to whoever asks.
const MIN_IDLE: Duration = Duration::from_millis(300);
/// Bounds every wait, so a stuck step fails the example instead of hanging it.
const DEADLINE: Duration = Duration::from_secs(20);

fn consumer_name(n: usize) -> String {
    format!("consumer-{n}")
}

/// Entry ids acknowledged so far (by any consumer), and acknowledgements of an id that
/// was already acknowledged, which must never happen.
#[derive(Default)]
struct Acked {
    ids: Mutex<HashSet<String>>,
    twice: AtomicU64,
}

impl Acked {
    fn count(&self) -> usize {
        self.ids.lock().map(|ids| ids.len()).unwrap_or(0)
    }
}

/// "Processes" entries, then acknowledges them. `XACK` answers how many were still
/// pending, so an entry handled twice (claimed by two consumers) would show up here.
async fn process(conn: &mut Client, entries: Vec<StreamId>, acked: &Acked) -> Result<()> {
    for entry in entries {
        let first: u64 = conn.xack(STREAM, GROUP, &[&entry.id]).await?;
        let new = acked
            .ids
            .lock()
            .map_err(|_| "poisoned")?
            .insert(entry.id.clone());
        if first != 1 || !new {
            acked.twice.fetch_add(1, Relaxed);
        }
    }
    Ok(())
}

/// One consumer: claims entries abandoned by others, then reads new ones with
/// `BLOCK 2000`, until `stop` fires.
async fn consume(
    mut conn: Client,
    name: String,
    stop: CancellationToken,
    acked: Arc<Acked>,
) -> Result<()> {
    let read_options = StreamReadOptions::default()
        .group(GROUP, &name)
        .count(16)
        .block(2000);
    let min_idle = MIN_IDLE.as_millis() as u64;
    loop {
        let claimed: StreamAutoClaimReply = conn
            .xautoclaim_options(
                STREAM,
                GROUP,
                &name,
                min_idle,
                "0-0",
                StreamAutoClaimOptions::default().count(100),
            )
            .await?;
        if !claimed.claimed.is_empty() {
            println!(
                "  {name} claimed {} abandoned entries",
                claimed.claimed.len()
            );
        }
        process(&mut conn, claimed.claimed, &acked).await?;

        let read =
            conn.xread_options::<_, _, Option<StreamReadReply>>(&[STREAM], &[">"], &read_options);
        let reply = tokio::select! {
            // Checked first, so a consumer told to stop sends no new read.
            biased;
            () = stop.cancelled() => {
                // Dropping `read` here is the cancel: if it was sent, redis-lanes unblocks
                // it on the server before this client's next command.
                return Ok(());
            }
            reply = read => reply?,
        };
        let entries = reply
            .into_iter()
            .flat_map(|r| r.keys)
            .flat_map(|k| k.ids)
            .collect();
        process(&mut conn, entries, &acked).await?;
    }
}

/// Adds `ENTRIES` entries, one every 2 ms, counting them in `added`.
async fn produce(mut conn: Client, added: Arc<AtomicU64>) -> Result<()> {
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    for n in 0..ENTRIES {
        tick.tick().await;
        conn.xadd::<_, _, _, _, String>(STREAM, "*", &[("n", n)])
            .await?;
        added.fetch_add(1, Relaxed);
    }
    Ok(())
}

/// Polls `done` every 10 ms until it holds, failing with `what` after [`DEADLINE`].
async fn wait_until(what: &str, mut done: impl AsyncFnMut() -> Result<bool>) -> Result<()> {
    let give_up = tokio::time::Instant::now() + DEADLINE;
    while !done().await? {
        if tokio::time::Instant::now() >= give_up {
            return Err(format!("timed out waiting until {what}").into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// Entries pending for `consumer`, at most 1000.
async fn pending_for(conn: &mut Client, consumer: &str) -> Result<usize> {
    let reply: StreamPendingCountReply = conn
        .xpending_consumer_count(STREAM, GROUP, "-", "+", 1000, consumer)
        .await?;
    Ok(reply.ids.len())
}

/// Deletes `consumer` once nothing is pending for it; returns what `DELCONSUMER` says
/// it dropped (0 here: nothing is deleted with entries still owed).
async fn delete_consumer(conn: &mut Client, consumer: &str) -> Result<usize> {
    let mut check = conn.clone();
    wait_until(&format!("{consumer} owes no entries"), async || {
        Ok(pending_for(&mut check, consumer).await? == 0)
    })
    .await?;
    Ok(conn.xgroup_delconsumer(STREAM, GROUP, consumer).await?)
}

#[tokio::main]
async fn main() -> Result<()> {
    let target = Target::from_env_or_start("REDIS_URL")?;
    let url = target.url().to_owned();
    let client = Client::connect(&url).await?;
    let mut conn = client.clone();
    conn.del::<_, ()>(STREAM).await?;
    conn.xgroup_create_mkstream::<_, _, _, ()>(STREAM, GROUP, "$")
        .await?;

    // One signal for the survivors, a child of it for each consumer to retire early:
    // cancelling the parent would stop everyone.
    let shutdown = CancellationToken::new();
    let acked = Arc::new(Acked::default());
    let mut consumers = Vec::new();
    let mut retire = Vec::new();
    for n in 0..CONSUMERS {
        let stop = shutdown.child_token();
        if RETIRED.contains(&n) {
            retire.push((n, stop.clone()));
        }
        let task = consume(client.clone(), consumer_name(n), stop, Arc::clone(&acked));
        consumers.push(Some(tokio::spawn(task)));
    }
    let added = Arc::new(AtomicU64::new(0));
    let producer = tokio::spawn(produce(client.clone(), Arc::clone(&added)));
    println!(
        "{CONSUMERS} consumers read group {GROUP:?} with XREADGROUP BLOCK; a producer adds \
         {ENTRIES} entries"
    );

    // Halfway: retire two consumers while they wait in XREADGROUP, hand over what they
    // may owe, delete them. The producer keeps going.
    wait_until("a third of the entries are added", async || {
        Ok(added.load(Relaxed) >= ENTRIES / 3)
    })
    .await?;
    let mut deleted = Vec::new();
    for (n, stop) in retire {
        stop.cancel();
        let task = consumers[n].take().ok_or("consumer already joined")?;
        task.await??;
        let name = consumer_name(n);
        let dropped = delete_consumer(&mut conn, &name).await?;
        println!("retired {name} mid-read and deleted it ({dropped} pending entries dropped)");
        deleted.push(name);
    }

    producer.await??;
    wait_until("every entry is acknowledged", async || {
        Ok(acked.count() as u64 >= ENTRIES)
    })
    .await?;

    // Clean shutdown: one signal stops every survivor mid-read; then they are deleted.
    shutdown.cancel();
    for (n, task) in consumers.iter_mut().enumerate() {
        if let Some(task) = task.take() {
            task.await??;
            delete_consumer(&mut conn, &consumer_name(n)).await?;
            deleted.push(consumer_name(n));
        }
    }
    // One more entry after every consumer is gone: a read still blocked on the server
    // would take it and bring its consumer back.
    conn.xadd::<_, _, _, _, String>(STREAM, "*", &[("n", "late")])
        .await?;
    tokio::time::sleep(Duration::from_millis(200)).await;

    let consumers_now: StreamInfoConsumersReply = conn.xinfo_consumers(STREAM, GROUP).await?;
    let recreated: Vec<&str> = consumers_now
        .consumers
        .iter()
        .map(|c| c.name.as_str())
        .filter(|name| deleted.iter().any(|d| d == name))
        .collect();
    let pending: StreamPendingReply = conn.xpending(STREAM, GROUP).await?;
    let stats = client.stats();
    println!(
        "{} entries acknowledged ({} twice); {} consumers deleted, re-created: {recreated:?}; \
         pending: {}",
        acked.count(),
        acked.twice.load(Relaxed),
        deleted.len(),
        pending.count()
    );
    println!(
        "client: {} blocking reads cancelled, {} raced entries reported (left pending, then \
         claimed)",
        stats.blocking_cancels, stats.orphans_reported
    );
    if acked.count() as u64 != ENTRIES || acked.twice.load(Relaxed) != 0 {
        return Err("every entry must be acknowledged exactly once".into());
    }
    if !recreated.is_empty() {
        return Err(format!("deleted consumers came back: {recreated:?}").into());
    }
    if pending.count() != 0 {
        return Err(format!("{} entries left pending", pending.count()).into());
    }

    conn.del::<_, ()>(STREAM).await?;
    drop(conn);
    client.close().await;
    println!("closed");
    Ok(())
}
