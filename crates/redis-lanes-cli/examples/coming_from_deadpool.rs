//! Coming from deadpool-redis (docs/COMING_FROM.md): ordinary commands need no
//! checkout, and the work that needs a connection of its own takes a leased exclusive
//! lane, which is reset before anyone else gets it.
//!
//! Connects to `REDIS_URL` if set, otherwise starts a throw-away `redis-server`.
//!
//! ```sh
//! cargo run -p redis-lanes-cli --example coming_from_deadpool
//! ```

use redis::AsyncCommands;
use redis_lanes_testkit::Target;

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

const PREFIX: &str = "example:from-deadpool";

#[tokio::main]
async fn main() -> Result<()> {
    let target = Target::from_env_or_start("REDIS_URL")?;
    let url = target.url().to_owned();
    let counter = format!("{PREFIX}:hits");
    let stock = format!("{PREFIX}:stock");

    // Before: a pool, and a checkout for every command.
    let pool = deadpool_redis::Config::from_url(url.as_str())
        .create_pool(Some(deadpool_redis::Runtime::Tokio1))?;
    {
        let mut conn = pool.get().await?;
        let _: () = conn.set(&counter, 0).await?;
        let _: () = conn.set(&stock, 10).await?;
        let _: i64 = conn.incr(&counter, 1).await?;
        // A WATCH transaction on a pooled connection: the pool hands the connection
        // back as it is, so the code must finish (or UNWATCH) on every path.
        let _: () = redis::cmd("WATCH")
            .arg(&stock)
            .query_async(&mut *conn)
            .await?;
        let left: i64 = conn.get(&stock).await?;
        let _: Option<(i64,)> = redis::pipe()
            .atomic()
            .set(&stock, left - 1)
            .ignore()
            .get(&stock)
            .query_async(&mut *conn)
            .await?;
    }

    // After: one client; clones are the "connections", and there is no checkout.
    let client = redis_lanes::Client::connect(&url).await?;
    let mut conn = client.clone();
    let hits: i64 = conn.incr(&counter, 1).await?;
    assert_eq!(hits, 2);

    // The WATCH transaction: `transaction()` leases an exclusive lane, runs the body
    // again when a watched key changed, and resets the lane afterwards.
    let left: i64 = client
        .transaction(&[&stock], async |conn, pipe| {
            let left: i64 = conn.get(&stock).await?;
            pipe.set(&stock, left - 1).ignore().get(&stock);
            let done: Option<(i64,)> = pipe.query_async(conn).await?;
            Ok::<_, redis::RedisError>(done.map(|(value,)| value))
        })
        .await?;
    assert_eq!(left, 8);
    println!("two orders taken, {left} left in stock");

    // Anything else that needs a connection of its own (SELECT, CLIENT SETNAME, a
    // hand-written WATCH/MULTI/EXEC): lease one, as `pool.get()` did. Whatever the
    // lease changed is reset before the lane is lent again.
    let mut lease = client.exclusive().await?;
    let _: () = redis::cmd("SELECT").arg(2).query_async(&mut lease).await?;
    let _: () = lease.set(format!("{PREFIX}:in-db-2"), 1).await?;
    drop(lease);
    let mut lease = client.exclusive().await?;
    let db: i64 = redis::cmd("CLIENT")
        .arg("INFO")
        .query_async::<String>(&mut lease)
        .await?
        .split(' ')
        .find_map(|field| field.strip_prefix("db="))
        .and_then(|db| db.parse().ok())
        .unwrap_or(-1);
    println!("the next lease is back on db {db}");
    assert_eq!(db, 0, "a lease starts on the client's database");
    drop(lease);

    // The pool size becomes `max_exclusive_lanes` (leases) and `max_blocking_lanes`
    // (blocking commands, which need no checkout at all: see the BLPOP below).
    let mut worker = client.clone();
    let popped: Option<(String, String)> = worker.blpop(format!("{PREFIX}:jobs"), 0.05).await?;
    assert_eq!(popped, None);

    client.close().await;
    pool.close();
    Ok(())
}
