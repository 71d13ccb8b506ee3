//! Shared helpers for the integration tests: a real server from the test kit and a
//! side connection (plain redis-rs) to observe the server independently of the client
//! under test.
#![allow(dead_code)] // Each test file uses a different subset.

use std::future::Future;
use std::time::{Duration, Instant};

use redis_lanes_testkit::RedisServer;

/// A server for one test. `DEBUG SLEEP` is enabled: it is how tests hold a reply in
/// flight for a known time.
pub(crate) fn server() -> RedisServer {
    server_with(&[])
}

pub(crate) fn server_with(args: &[&str]) -> RedisServer {
    let mut builder = RedisServer::builder().args(["--enable-debug-command", "yes"]);
    for arg in args {
        builder = builder.arg(*arg);
    }
    builder
        .start()
        .unwrap_or_else(|e| panic!("starting redis-server: {e}"))
}

/// A connection that is not the client under test, for checking what the server saw.
pub(crate) async fn side(server: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis::Client::open(server.url())
        .expect("side client")
        .get_multiplexed_async_connection()
        .await
        .expect("side connection")
}

pub(crate) async fn client(server: &RedisServer) -> redis_lanes::Client {
    redis_lanes::Client::connect(&server.url())
        .await
        .expect("connect")
}

/// `CLIENT LIST` as (id, name) pairs.
pub(crate) async fn client_ids(side: &mut redis::aio::MultiplexedConnection) -> Vec<i64> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(side)
        .await
        .expect("CLIENT LIST");
    list.lines()
        .filter_map(|line| {
            line.split(' ')
                .find_map(|field| field.strip_prefix("id="))
                .and_then(|id| id.parse().ok())
        })
        .collect()
}

/// `CLIENT LIST` lines of the connections named `name`.
pub(crate) async fn named(side: &mut redis::aio::MultiplexedConnection, name: &str) -> Vec<String> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(side)
        .await
        .expect("CLIENT LIST");
    list.lines()
        .filter(|l| l.contains(&format!(" name={name} ")))
        .map(str::to_owned)
        .collect()
}

/// Polls `check` until it returns true or `limit` passes; returns whether it did.
pub(crate) async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `CLIENT KILL ID <id>` from `side`; returns how many connections were killed.
pub(crate) async fn kill_client(side: &mut redis::aio::MultiplexedConnection, id: i64) -> i64 {
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(id)
        .query_async(side)
        .await
        .expect("CLIENT KILL")
}

/// The redis-lanes error inside a `RedisError` returned through the `redis` API.
pub(crate) fn lanes_error(err: &redis::RedisError) -> redis_lanes::Error {
    redis_lanes::Error::from_redis(err)
        .unwrap_or_else(|| panic!("not a redis-lanes error: {err:?}"))
}

pub(crate) mod load;

/// Waits until the server shows a client blocked in `cmd` (`CLIENT LIST`: `flags=b`
/// and `cmd=<cmd>`, lower case); returns whether it did within 10 s.
pub(crate) async fn until_blocked(side: &redis::aio::MultiplexedConnection, cmd: &str) -> bool {
    let wanted = format!(" cmd={cmd} ");
    eventually(Duration::from_secs(10), || {
        let mut side = side.clone();
        let wanted = wanted.clone();
        async move {
            let list: String = redis::cmd("CLIENT")
                .arg("LIST")
                .query_async(&mut side)
                .await
                .expect("CLIENT LIST");
            list.lines()
                .any(|l| l.contains(&wanted) && l.contains(" flags=b "))
        }
    })
    .await
}

/// Waits until the server stops answering at once: a `DEBUG SLEEP` sent elsewhere is
/// running. Returns whether it did within 10 s.
pub(crate) async fn until_server_busy(side: &redis::aio::MultiplexedConnection) -> bool {
    eventually(Duration::from_secs(10), || {
        let mut side = side.clone();
        async move {
            let ping = redis::cmd("PING");
            tokio::time::timeout(
                Duration::from_millis(200),
                ping.query_async::<String>(&mut side),
            )
            .await
            .is_err()
        }
    })
    .await
}

/// Waits until `stats()` counts more than `before` requests taken for writing;
/// returns whether it did within 10 s.
pub(crate) async fn until_written(stats: impl Fn() -> redis_lanes::Stats, before: u64) -> bool {
    eventually(Duration::from_secs(10), || {
        let written = stats().written_requests;
        async move { written > before }
    })
    .await
}

/// `ECHO`es `tag` and checks the reply is that tag: a reply that reached the wrong
/// caller shows.
pub(crate) async fn echo_own(conn: &mut redis_lanes::Client, tag: String) {
    let echoed: String = redis::cmd("ECHO")
        .arg(&tag)
        .query_async(conn)
        .await
        .expect("ECHO");
    assert_eq!(echoed, tag, "a reply reached the wrong caller");
}

/// Awaits every task, each within 10 s: none may hang or panic.
pub(crate) async fn join_all<T>(tasks: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        let result = tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("no task hangs")
            .expect("no task panics");
        results.push(result);
    }
    results
}
