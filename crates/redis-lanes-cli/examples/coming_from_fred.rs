//! Coming from fred (docs/COMING_FROM.md): fred's typed command methods become the
//! `redis` crate's, `init()`/`quit()` become `connect()`/`close()`, and a blocking call
//! given up on is cancelled on the server instead of popping an element nobody gets.
//!
//! Connects to `REDIS_URL` if set, otherwise starts a throw-away `redis-server`.
//!
//! ```sh
//! cargo run -p redis-lanes-cli --example coming_from_fred
//! ```

use std::time::Duration;

use fred::prelude::{ClientLike, KeysInterface, ListInterface};
use redis::AsyncCommands;
use redis_lanes_testkit::Target;

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

const PREFIX: &str = "example:from-fred";

#[tokio::main]
async fn main() -> Result<()> {
    let target = Target::from_env_or_start("REDIS_URL")?;
    let url = target.url().to_owned();
    let key = format!("{PREFIX}:greeting");
    let queue = format!("{PREFIX}:queue");

    // Before: fred.
    let fred =
        fred::prelude::Builder::from_config(fred::prelude::Config::from_url(&url)?).build()?;
    let _task = fred.init().await?;
    fred.set::<(), _, _>(&key, "hello", None, None, false)
        .await?;
    let greeting: String = fred.get(&key).await?;
    let _: i64 = fred.del(&queue).await?;
    let _: i64 = fred.lpush(&queue, "first").await?;
    fred.quit().await?;

    // After: the `redis` crate's commands on a redis-lanes client.
    let client = redis_lanes::Client::connect(&url).await?;
    let mut conn = client.clone();
    let same: String = conn.get(&key).await?;
    assert_eq!(same, greeting);
    let popped: Option<(String, String)> = conn.blpop(&queue, 1.0).await?;
    assert_eq!(popped.map(|(_, element)| element).as_deref(), Some("first"));

    // A BLPOP given up on by its caller (a timeout here; `select!` or an aborted task
    // alike). fred leaves it blocked on the server, where it pops the next element for
    // nobody. redis-lanes unblocks it first, ordered before the caller's next command.
    let mut worker = client.clone();
    let given_up = tokio::time::timeout(
        Duration::from_millis(100),
        worker.blpop::<_, Option<(String, String)>>(&queue, 10.0),
    )
    .await;
    assert!(given_up.is_err());
    let _: i64 = conn.lpush(&queue, "second").await?;
    let waiting: i64 = conn.llen(&queue).await?;
    assert_eq!(
        waiting, 1,
        "the element pushed after the cancel is still there"
    );
    println!("BLPOP cancelled on the server; the next element waits in the queue");

    // fred's pools and `ExclusivePool` become clones and `client.exclusive()`; its
    // reconnect policy is built in (see `Builder::reconnect_backoff`).
    let mut lease = client.exclusive().await?;
    let _: () = redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg("from-fred")
        .query_async(&mut lease)
        .await?;
    drop(lease);

    // fred keeps its socket and task after every handle is dropped; here the last
    // clone closes everything, and `close()` does it gracefully.
    drop(worker);
    client.close().await;
    Ok(())
}
