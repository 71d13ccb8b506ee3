//! Owning a lane's driver yourself with `Builder::pair()`.
//!
//! `Client::connect` spawns the task that drives its connection. `pair()` instead hands
//! back the two halves of one connection: a `Lane` (the cloneable handle that sends
//! commands) and its `LaneDriver` (the future that owns the socket). Nothing moves until
//! the driver is polled, and the driver completes by itself when the last `Lane` is
//! dropped, so the connection lives exactly as long as its handles.
//!
//! 1. The driver polled by `tokio::select!` next to the work, in the same task.
//! 2. The driver spawned on a `LocalSet`, next to `!Send` work on the same thread.
//! 3. A dropped driver: the socket closes and the handle's commands fail at once.
//!
//! A bare lane is one connection, with none of `Client`'s other lanes: blocking commands
//! would wait on it in line, so send those through a `Client`.
//!
//! Connects to `REDIS_URL` if set, otherwise starts a throw-away `redis-server`.
//!
//! ```sh
//! cargo run -p redis-lanes --example own_driver
//! ```

use std::rc::Rc;
use std::time::Duration;

use redis::AsyncCommands;
use redis_lanes::{Client, Lane, LaneDriver};
use redis_lanes_testkit::Target;
use tokio::task::LocalSet;

type Result<T, E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

const NAME: &str = "example-own-driver";
const KEY: &str = "example:own_driver:counter";

/// One connection, both halves, named so `CLIENT LIST` can find it.
async fn pair(url: &str) -> Result<(Lane, LaneDriver)> {
    Ok(Client::builder(url).client_name(NAME).pair().await?)
}

/// How many connections named [`NAME`] the server lists, seen from `observer`. Polls
/// briefly when `expect_none`, since the server notices a closed socket on its own time.
async fn connections(observer: &Client, expect_none: bool) -> Result<usize> {
    let mut conn = observer.clone();
    let needle = format!(" name={NAME} ");
    let mut count = 0;
    for _ in 0..50 {
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut conn)
            .await?;
        count = list.lines().filter(|line| line.contains(&needle)).count();
        if count == 0 || !expect_none {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(count)
}

/// Part 1: the work and the driver in one task, side by side.
async fn with_select(url: &str, observer: &Client) -> Result<()> {
    let (lane, driver) = pair(url).await?;
    let work = async move {
        let mut lane = lane; // moved in: dropped when the work is done
        let mut tasks = Vec::new();
        for i in 0..10 {
            let mut lane = lane.clone(); // clones share the connection
            tasks.push(async move { lane.incr::<_, _, i64>(KEY, i).await });
        }
        // Concurrent requests of one task still go out together in one write.
        for result in futures_util::future::join_all(tasks).await {
            result?;
        }
        let total: i64 = lane.get(KEY).await?;
        Ok::<_, redis::RedisError>(total)
    };
    tokio::pin!(driver);
    let total = tokio::select! {
        () = &mut driver => return Err("the driver ended before the work was done".into()),
        total = work => total?,
    };
    println!("select!: 10 concurrent INCRs -> {total}");
    // The work future dropped the last `Lane`: the driver finishes on its own.
    tokio::time::timeout(Duration::from_secs(2), driver)
        .await
        .map_err(|_| "the driver kept running after the last Lane was dropped")?;
    let left = connections(observer, true).await?;
    println!("select!: last Lane dropped, driver ended, {left} connections left");
    if total != 45 || left != 0 {
        return Err(format!("expected 45 and no connection left, got {total}, {left}").into());
    }
    Ok(())
}

/// Part 2: the driver spawned on a `LocalSet` (it needs no other thread), with work that
/// is not `Send` (an `Rc`) spawned beside it.
async fn on_local_set(url: &str, observer: &Client) -> Result<()> {
    let (lane, driver) = pair(url).await?;
    let local = LocalSet::new();
    local
        .run_until(async move {
            let driver = tokio::task::spawn_local(driver);
            let lane = Rc::new(lane);
            let mut workers = Vec::new();
            for i in 0..4 {
                let lane = Rc::clone(&lane);
                workers.push(tokio::task::spawn_local(async move {
                    let mut conn = Lane::clone(&lane);
                    conn.incr::<_, _, i64>(KEY, i).await
                }));
            }
            for worker in workers {
                worker.await??;
            }
            let listed = connections(observer, false).await?;
            println!("LocalSet: 4 local tasks done; the lane's connection is listed: {listed}");
            drop(lane);
            tokio::time::timeout(Duration::from_secs(2), driver)
                .await
                .map_err(|_| "the driver kept running after the last Lane was dropped")??;
            let left = connections(observer, true).await?;
            println!("LocalSet: last Lane dropped, driver task finished, {left} connections left");
            if listed != 1 || left != 0 {
                return Err(
                    format!("expected 1 connection, then none; got {listed}, {left}").into(),
                );
            }
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(())
        })
        .await
}

/// Part 3: dropping the driver closes the connection under the handle.
async fn dropped_driver(url: &str) -> Result<()> {
    let (mut lane, driver) = pair(url).await?;
    drop(driver);
    let err = lane
        .get::<_, i64>(KEY)
        .await
        .err()
        .ok_or("a command on a lane without a driver should fail")?;
    let closed = redis_lanes::Error::from_redis(&err).is_some_and(|e| e.is_closed());
    println!("driver dropped: the next command fails at once (closed: {closed}): {err}");
    if !closed {
        return Err("expected ErrorKind::Closed".into());
    }
    Ok(())
}

#[tokio::main]
async fn main() -> Result<()> {
    let target = Target::from_env_or_start("REDIS_URL")?;
    let url = target.url().to_owned();
    // An ordinary client to look at the server from outside, and to clean up.
    let observer = Client::connect(&url).await?;
    let mut conn = observer.clone();
    conn.del::<_, ()>(KEY).await?;

    with_select(&url, &observer).await?;
    on_local_set(&url, &observer).await?;
    dropped_driver(&url).await?;

    let total: i64 = conn.get(KEY).await?;
    println!("counter: {total}");
    if total != 45 + 6 {
        return Err(format!("expected 51, got {total}").into());
    }
    conn.del::<_, ()>(KEY).await?;
    drop(conn);
    observer.close().await;
    Ok(())
}
