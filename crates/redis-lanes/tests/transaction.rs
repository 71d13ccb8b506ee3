//! The optimistic-transaction helper: WATCH / read / MULTI...EXEC, retried when a
//! watched key changed.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;

use redis::AsyncCommands;
use redis_lanes::Client;

#[tokio::test]
async fn a_conflict_aborts_exec_and_the_body_runs_again() {
    let server = common::server();
    let client = common::client(&server).await;
    let side = common::side(&server).await;
    let mut shared = client.clone();
    shared.set::<_, _, ()>("balance", 10).await.unwrap();
    let attempts = AtomicUsize::new(0);
    let result: i64 = client
        .transaction(&["balance"], async |conn, pipe| {
            let attempt = attempts.fetch_add(1, SeqCst);
            let balance: i64 = conn.get("balance").await?;
            if attempt == 0 {
                // Another connection writes between our read and our EXEC.
                side.clone().incr::<_, _, ()>("balance", 5).await?;
            }
            pipe.set("balance", balance * 2).ignore().get("balance");
            let done: Option<(i64,)> = pipe.query_async(conn).await?;
            Ok::<_, redis::RedisError>(done.map(|(value,)| value))
        })
        .await
        .unwrap();
    assert_eq!(
        attempts.load(SeqCst),
        2,
        "EXEC aborted once, then succeeded"
    );
    assert_eq!(result, 30, "the retry read the other connection's write");
    assert_eq!(shared.get::<_, i64>("balance").await.unwrap(), 30);
    let stats = client.stats();
    assert_eq!(stats.transaction_retries, 1, "{stats:?}");
    assert_eq!(stats.transaction_conflicts, 0, "{stats:?}");
}

#[tokio::test]
async fn running_out_of_retries_is_a_conflict_error() {
    let server = common::server();
    let client = Client::builder(&server.url())
        .transaction_max_retries(2)
        .connect()
        .await
        .unwrap();
    let side = common::side(&server).await;
    let attempts = AtomicUsize::new(0);
    let err = client
        .transaction(&["hot"], async |conn, pipe| {
            attempts.fetch_add(1, SeqCst);
            let _: Option<i64> = conn.get("hot").await?;
            side.clone().incr::<_, _, ()>("hot", 1).await?;
            pipe.incr("hot", 100);
            let done: Option<(i64,)> = pipe.query_async(conn).await?;
            Ok::<_, redis::RedisError>(done)
        })
        .await
        .unwrap_err();
    let err = common::lanes_error(&err);
    assert!(err.is_transaction_conflict(), "{err:?}");
    assert!(err.to_string().contains("transaction_max_retries"), "{err}");
    assert_eq!(attempts.load(SeqCst), 3, "one attempt and two retries");
    // None of the aborted EXECs took effect.
    let mut shared = client.clone();
    assert_eq!(shared.get::<_, i64>("hot").await.unwrap(), 3);
    let stats = client.stats();
    assert_eq!(
        (stats.transaction_retries, stats.transaction_conflicts),
        (2, 1)
    );
}

/// Many tasks increment one key through transactions on a few lanes: no increment is
/// lost, and the helper's future can be spawned.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transactions_lose_no_update() {
    let server = common::server();
    let client = Client::builder(&server.url())
        .max_exclusive_lanes(4)
        .transaction_max_retries(1_000)
        .connect()
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..10 {
                let _: i64 = client
                    .transaction(&["counter"], async |conn, pipe| {
                        let now: Option<i64> = conn.get("counter").await?;
                        // Yield so transactions interleave and conflict.
                        tokio::task::yield_now().await;
                        pipe.set("counter", now.unwrap_or(0) + 1).ignore();
                        pipe.get("counter");
                        let done: Option<(i64,)> = pipe.query_async(conn).await?;
                        Ok::<_, redis::RedisError>(done.map(|(v,)| v))
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut shared = client.clone();
    assert_eq!(shared.get::<_, i64>("counter").await.unwrap(), 80);
    eprintln!("{} retries", client.stats().transaction_retries);
}

#[tokio::test]
async fn a_body_error_is_returned_as_is() {
    let server = common::server();
    let client = common::client(&server).await;
    let attempts = Arc::new(AtomicUsize::new(0));
    let err = client
        .transaction(&["k"], async |_conn, _pipe| {
            attempts.fetch_add(1, SeqCst);
            Err::<Option<()>, Box<dyn std::error::Error + Send + Sync>>("insufficient funds".into())
        })
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "insufficient funds");
    assert_eq!(attempts.load(SeqCst), 1);
}

#[tokio::test]
async fn without_keys_it_is_a_plain_multi_exec() {
    let server = common::server();
    let client = common::client(&server).await;
    let keys: &[&str] = &[];
    let (a, b): (i64, i64) = client
        .transaction(keys, async |conn, pipe| {
            pipe.incr("a", 1).incr("b", 2);
            pipe.query_async(conn).await
        })
        .await
        .unwrap();
    assert_eq!((a, b), (1, 2));
}

#[tokio::test]
async fn a_lease_transaction_leaves_no_watch_behind() {
    let server = common::server();
    let client = common::client(&server).await;
    let mut side = common::side(&server).await;
    let mut conn = client.exclusive().await.unwrap();
    let value: String = conn
        .transaction(&["w"], async |conn, _pipe| {
            // Finishes without EXEC, which would otherwise have cleared the watch.
            let now: Option<String> = conn.get("w").await?;
            Ok::<_, redis::RedisError>(Some(now.unwrap_or_else(|| "none".into())))
        })
        .await
        .unwrap();
    assert_eq!(value, "none");
    side.set::<_, _, ()>("w", "changed").await.unwrap();
    let done: Option<(String,)> = redis::pipe()
        .atomic()
        .set("w", "mine")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(done.is_some(), "EXEC aborted by a leftover watch");
}
