//! The basics: plain commands, an auto-pipelined `redis::pipe()`, an atomic
//! (`MULTI`/`EXEC`) pipeline, a Lua script, and a graceful `close()`.
//!
//! Connects to `REDIS_URL` if set, otherwise starts a throw-away `redis-server`.
//!
//! ```sh
//! cargo run -p redis-lanes --example basic
//! ```

use redis::AsyncCommands;
use redis_lanes_testkit::Target;

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

#[tokio::main]
async fn main() -> Result<()> {
    let target = Target::from_env_or_start("REDIS_URL")?;
    let url = target.url().to_owned();
    let client = redis_lanes::Client::connect(&url).await?;
    // Clones are cheap handles to the same connection; `AsyncCommands` needs `&mut`.
    let mut conn = client.clone();
    let key = "example:basic:greeting";
    let counter = "example:basic:counter";
    conn.del::<_, ()>(&[key, counter]).await?;

    // 1. Plain commands.
    conn.set::<_, _, ()>(key, "hello").await?;
    let greeting: String = conn.get(key).await?;
    assert_eq!(greeting, "hello");
    println!("GET {key} -> {greeting}");

    // 2. A pipeline: several commands, one round trip, one reply per command.
    //    `.ignore()` drops a reply from the result tuple.
    let (len, first): (usize, String) = redis::pipe()
        .strlen(key)
        .getrange(key, 0, 0)
        .append(key, " world")
        .ignore()
        .query_async(&mut conn)
        .await?;
    assert_eq!((len, first.as_str()), (5, "h"));
    let greeting: String = conn.get(key).await?;
    assert_eq!(greeting, "hello world");
    println!("pipeline -> STRLEN {len}, first letter {first:?}, now {greeting:?}");

    // 3. An atomic pipeline: wrapped in MULTI/EXEC, nothing else runs in between.
    //    (A bare MULTI/EXEC would be refused on the shared connection; this is fine.)
    let (a, b): (i64, i64) = redis::pipe()
        .atomic()
        .incr(counter, 1)
        .incr(counter, 10)
        .query_async(&mut conn)
        .await?;
    assert_eq!((a, b), (1, 11));
    println!("MULTI INCR INCR EXEC -> {a}, {b}");

    // 4. A Lua script: EVALSHA, falling back to EVAL the first time.
    let script = redis::Script::new(
        r"
        local current = tonumber(redis.call('GET', KEYS[1]) or '0')
        if current < tonumber(ARGV[1]) then
            return redis.call('INCRBY', KEYS[1], ARGV[2])
        end
        return current
        ",
    );
    let bumped: i64 = script
        .key(counter)
        .arg(100)
        .arg(5)
        .invoke_async(&mut conn)
        .await?;
    assert_eq!(bumped, 16);
    println!("script: capped increment -> {bumped}");

    conn.del::<_, ()>(&[key, counter]).await?;
    let stats = client.stats();
    println!(
        "stats: {} requests in {} socket writes",
        stats.written_requests, stats.written_batches
    );

    // 5. Graceful close: commands already sent are answered, then the socket closes.
    client.close().await;
    assert!(client.is_closed());
    let after = conn.get::<_, Option<String>>(key).await;
    assert!(after.is_err(), "commands after close() are refused");
    println!("closed");
    Ok(())
}
