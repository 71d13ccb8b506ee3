//! Optimistic transactions with `WATCH`.
//!
//! `WATCH` is connection state, so it cannot run on the shared connection (redis-lanes
//! refuses it there, naming the APIs below). Two ways to use it:
//!
//! 1. `Client::transaction(keys, body)`: leases a dedicated connection, runs `WATCH keys`
//!    and the body, and runs the body again whenever `EXEC` aborts because a watched key
//!    changed. Here eight tasks move money between two accounts at once; each transfer
//!    reads both balances, so concurrent transfers conflict and are retried, and the
//!    total never changes.
//! 2. `Client::exclusive()`: the leased connection itself, for `WATCH`/`MULTI`/`EXEC` by
//!    hand. A write from another connection between `WATCH` and `EXEC` aborts the
//!    transaction: `EXEC` answers nil and nothing queued ran.
//!
//! Connects to `REDIS_URL` if set, otherwise starts a throw-away `redis-server`.
//!
//! ```sh
//! cargo run -p redis-lanes --example transaction
//! ```

use std::time::Duration;

use redis::AsyncCommands;
use redis_lanes::{Client, Error};
use redis_lanes_testkit::Target;

type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

const ALICE: &str = "example:transaction:alice";
const BOB: &str = "example:transaction:bob";
const STOCK: &str = "example:transaction:stock";
const START_BALANCE: i64 = 1_000;
const TASKS: i64 = 8;
const TRANSFERS_PER_TASK: i64 = 10;

/// Moves `amount` from `from` to `to` if `from` can afford it; returns whether it did.
///
/// The body reads on the leased connection after `WATCH`, then queues the writes on the
/// atomic pipeline it is given. If either balance changes before `EXEC`, the pipeline
/// answers `None` and `transaction` runs the body again with fresh balances.
async fn transfer(client: &Client, from: &str, to: &str, amount: i64) -> Result<bool> {
    // Owned copies for the body: it runs once per attempt, and a future that borrows
    // from outside the closure could not be spawned (a limit of async closures today).
    let (from, to) = (from.to_owned(), to.to_owned());
    let keys = [from.clone(), to.clone()];
    let moved = client
        .transaction(&keys, async move |conn, pipe| {
            let have: i64 = conn.get(&from).await?;
            // Some work between reading and writing, as real code has: this is the window
            // in which another task's transfer can change the balance.
            tokio::time::sleep(Duration::from_millis(1)).await;
            if have < amount {
                return Ok(Some(false));
            }
            pipe.decr(&from, amount).ignore().incr(&to, amount).ignore();
            let done: Option<()> = pipe.query_async(conn).await?;
            Ok::<_, redis::RedisError>(done.map(|()| true))
        })
        .await?;
    Ok(moved)
}

/// Part 1: concurrent transfers through `Client::transaction`.
async fn concurrent_transfers(client: &Client) -> Result<()> {
    let mut conn = client.clone();
    conn.mset::<_, _, ()>(&[(ALICE, START_BALANCE), (BOB, START_BALANCE)])
        .await?;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut moved = 0;
            for i in 0..TRANSFERS_PER_TASK {
                // Half the tasks pay Alice to Bob, half the other way round.
                let (from, to) = if t % 2 == 0 {
                    (ALICE, BOB)
                } else {
                    (BOB, ALICE)
                };
                if transfer(&client, from, to, 1 + (t * 7 + i) % 50).await? {
                    moved += 1;
                }
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(moved)
        }));
    }
    let mut moved = 0;
    for task in tasks {
        moved += task.await??;
    }
    let (alice, bob): (i64, i64) = redis::pipe()
        .get(ALICE)
        .get(BOB)
        .query_async(&mut conn)
        .await?;
    let stats = client.stats();
    println!(
        "{moved} transfers by {TASKS} concurrent tasks; {} retried after a conflict; \
         balances {alice} + {bob} = {}",
        stats.transaction_retries,
        alice + bob
    );
    if alice + bob != 2 * START_BALANCE {
        return Err(format!("money was created or lost: {alice} + {bob}").into());
    }
    Ok(())
}

/// Part 2: `WATCH`/`MULTI`/`EXEC` by hand on a leased connection. We sell one item by
/// reading the stock and writing it back minus one; another connection sells one in
/// between. Without `WATCH` our write would erase that sale (a lost update); with it,
/// `EXEC` aborts and we try again with the fresh stock.
async fn manual_conflict(client: &Client) -> Result<()> {
    let mut shared = client.clone();
    shared.set::<_, _, ()>(STOCK, 5).await?;

    let mut lease = client.exclusive().await?;
    for attempt in 1..=2 {
        redis::cmd("WATCH")
            .arg(STOCK)
            .exec_async(&mut lease)
            .await?;
        let stock: i64 = lease.get(STOCK).await?;
        if attempt == 1 {
            // Someone else sells one, on another connection, before our EXEC.
            shared.decr::<_, _, ()>(STOCK, 1).await?;
        }
        redis::cmd("MULTI").exec_async(&mut lease).await?;
        // Inside MULTI the server only queues commands: each answers "QUEUED".
        let queued: String = redis::cmd("SET")
            .arg(STOCK)
            .arg(stock - 1)
            .query_async(&mut lease)
            .await?;
        let replies: Option<(String,)> = redis::cmd("EXEC").query_async(&mut lease).await?;
        match replies {
            None => println!(
                "attempt {attempt}: read stock {stock}, SET {} {queued}, EXEC aborted: the \
                 stock changed after WATCH",
                stock - 1
            ),
            Some((ok,)) => {
                println!(
                    "attempt {attempt}: read stock {stock}, SET {} {queued}, EXEC -> {ok}",
                    stock - 1
                );
                break;
            }
        }
        if attempt == 2 {
            return Err("the second attempt should not conflict".into());
        }
    }
    drop(lease); // reset (RESET or UNWATCH/DISCARD) before the connection is reused

    let stock: i64 = shared.get(STOCK).await?;
    if stock != 3 {
        return Err(format!("two sales from 5 should leave 3, found {stock}").into());
    }
    println!("stock after both sales: {stock}");

    // The shared connection refuses WATCH, naming what to use instead.
    let refused = redis::cmd("WATCH")
        .arg(STOCK)
        .exec_async(&mut shared)
        .await
        .err()
        .ok_or("WATCH on the shared connection should be refused")?;
    let refused = Error::from_redis(&refused).ok_or("not a redis-lanes error")?;
    println!("WATCH on the shared connection: {refused}");
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let target = Target::from_env_or_start("REDIS_URL")?;
    let url = target.url().to_owned();
    let client = Client::builder(&url)
        // Every transfer watches both accounts, so each commit aborts every concurrent
        // attempt; a task may lose many rounds in a row before its turn comes. The
        // default bound (16) suits ordinary contention, not eight tasks on two keys.
        .transaction_max_retries(1_000)
        .connect()
        .await?;
    let mut conn = client.clone();
    conn.del::<_, ()>(&[ALICE, BOB, STOCK]).await?;

    concurrent_transfers(&client).await?;
    manual_conflict(&client).await?;

    conn.del::<_, ()>(&[ALICE, BOB, STOCK]).await?;
    drop(conn);
    client.close().await;
    println!("closed");
    Ok(())
}
