//! Coming from redis-rs `MultiplexedConnection` or `ConnectionManager`
//! (docs/COMING_FROM.md): the same code runs on a redis-lanes `Client`, and the few
//! commands a shared connection must not run have named replacements.
//!
//! Connects to `REDIS_URL` if set, otherwise starts a throw-away `redis-server`.
//!
//! ```sh
//! cargo run -p redis-lanes-cli --example coming_from_redis_rs
//! ```

use std::time::{Duration, Instant};

use redis::aio::ConnectionLike;
use redis::AsyncCommands;
use redis_lanes::ErrorKind;
use redis_lanes_testkit::Target;

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

const PREFIX: &str = "example:from-redis-rs";

/// Application code written against `ConnectionLike`: it runs unchanged on a redis-rs
/// connection and on a redis-lanes client. Returns the order count after this order.
async fn place_order<C: ConnectionLike + Send + Sync>(
    conn: &mut C,
    order: u32,
) -> redis::RedisResult<i64> {
    let key = format!("{PREFIX}:order:{order}");
    let _: () = conn
        .hset_multiple(&key, &[("status", "paid"), ("items", "3")])
        .await?;
    let (count,): (i64,) = redis::pipe()
        .expire(&key, 60)
        .ignore()
        .incr(format!("{PREFIX}:orders"), 1)
        .query_async(conn)
        .await?;
    Ok(count)
}

#[tokio::main]
async fn main() -> Result<()> {
    let target = Target::from_env_or_start("REDIS_URL")?;
    let url = target.url().to_owned();
    let mut side = redis::Client::open(url.as_str())?
        .get_multiplexed_async_connection()
        .await?;
    let _: () = side.del(format!("{PREFIX}:orders")).await?;

    // Before: redis-rs.
    let redis_client = redis::Client::open(url.as_str())?;
    let mut multiplexed = redis_client.get_multiplexed_async_connection().await?;
    let mut manager = redis::aio::ConnectionManager::new(redis_client).await?;
    place_order(&mut multiplexed, 1).await?;
    place_order(&mut manager, 2).await?;

    // After: one redis-lanes client; clones share its connections.
    let client = redis_lanes::Client::connect(&url).await?;
    let mut conn = client.clone();
    let count = place_order(&mut conn, 3).await?;
    assert_eq!(count, 3, "the same code, the same results");
    println!("place_order ran on MultiplexedConnection, ConnectionManager and redis-lanes");

    // What changes: state-changing commands are refused on the shared lane, before
    // anything is sent, with the replacement in the message.
    for (what, cmd) in [
        ("SELECT 1", redis::cmd("SELECT").arg(1).clone()),
        ("MULTI", redis::cmd("MULTI")),
        ("WATCH", redis::cmd("WATCH").arg("k").clone()),
    ] {
        let err = cmd.query_async::<()>(&mut conn).await.unwrap_err();
        let kind = redis_lanes::Error::from_redis(&err).map(|e| e.kind());
        assert_eq!(kind, Some(ErrorKind::Refused), "{what}: {err}");
        println!("{what} refused: {err}");
    }
    // ... and their replacements: the database in the URL (or `Builder::db`), an
    // atomic pipeline for MULTI/EXEC, `transaction()` for WATCH.
    let db1 = redis_lanes::Client::builder(&url).db(1).connect().await?;
    let _: () = db1.clone().set(format!("{PREFIX}:in-db-1"), 1).await?;
    let (a, b): (i64, i64) = redis::pipe()
        .atomic()
        .incr(format!("{PREFIX}:a"), 1)
        .incr(format!("{PREFIX}:b"), 1)
        .query_async(&mut conn)
        .await?;
    println!("atomic pipeline: {a} {b}");
    let balance_key = format!("{PREFIX}:balance");
    let balance: i64 = client
        .transaction(&[&balance_key], async |conn, pipe| {
            let now: i64 = conn
                .get::<_, Option<i64>>(&balance_key)
                .await?
                .unwrap_or(100);
            pipe.set(&balance_key, now - 30).ignore().get(&balance_key);
            let done: Option<(i64,)> = pipe.query_async(conn).await?;
            Ok::<_, redis::RedisError>(done.map(|(value,)| value))
        })
        .await?;
    assert_eq!(balance, 70);
    println!("WATCH/MULTI/EXEC through transaction(): balance {balance}");

    // What is gained: a blocking command no longer stalls the connection. With redis-rs
    // this BLPOP would hold the multiplexed connection (and fail at its default 500 ms
    // response timeout); here it runs on a blocking lane while GETs go on.
    let mut blocked = client.clone();
    let pop = tokio::spawn(async move {
        blocked
            .blpop::<_, Option<(String, String)>>(format!("{PREFIX}:queue"), 1.0)
            .await
    });
    let start = Instant::now();
    for _ in 0..100 {
        let _: Option<String> = conn.get(format!("{PREFIX}:a")).await?;
    }
    let gets = start.elapsed();
    assert!(pop.await?.is_ok());
    assert!(gets < Duration::from_millis(900), "GETs waited: {gets:?}");
    println!("100 GETs beside a 1 s BLPOP took {gets:?}");

    // Pub/sub: `redis::Client::get_async_pubsub()` becomes `client.subscriber()`.
    let subscriber = client.subscriber().await?;
    subscriber.subscribe(format!("{PREFIX}:events")).await?;
    drop(subscriber);

    // Shutdown: `close()` finishes what is in flight; dropping the last clone closes
    // every connection too.
    db1.close().await;
    client.close().await;
    Ok(())
}
