//! Exclusive lanes: leased dedicated connections, reset before they are reused.
//!
//! Reuse is proven by `CLIENT ID` with `max_exclusive_lanes(1)`: the next lease is the
//! same server connection, so whatever the previous lease left behind would show.

mod common;

use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis_lanes::{Client, Exclusive, Protocol};
use redis_lanes_testkit::RedisServer;

const SETTLE: Duration = Duration::from_secs(5);

/// A server without `RESET`, as before Redis 6.2: leases are reset step by step.
fn server_without_reset() -> RedisServer {
    common::server_with(&["--rename-command", "RESET", ""])
}

async fn one_lane(url: &str) -> Client {
    Client::builder(url)
        .max_exclusive_lanes(1)
        .connect()
        .await
        .unwrap()
}

/// `CLIENT INFO` of the lease's own connection, as `field=value` pairs.
async fn info(conn: &mut Exclusive) -> Vec<(String, String)> {
    let line: String = redis::cmd("CLIENT")
        .arg("INFO")
        .query_async(conn)
        .await
        .unwrap();
    line.split_whitespace()
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

async fn field(conn: &mut Exclusive, name: &str) -> String {
    info(conn)
        .await
        .into_iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v)
        .unwrap_or_default()
}

/// The next lease after `previous` (whose id it was) on a one-lane pool: the same
/// connection, reset.
async fn next_lease(client: &Client, previous: Option<i64>) -> Exclusive {
    let conn = tokio::time::timeout(SETTLE, client.exclusive())
        .await
        .expect("the reset finished")
        .unwrap();
    assert_eq!(conn.client_id(), previous, "the same connection");
    assert!(previous.is_some());
    conn
}

async fn watch_then_drop(server: &RedisServer) {
    let client = one_lane(&server.url()).await;
    let mut side = common::side(server).await;
    let mut conn = client.exclusive().await.unwrap();
    let id = conn.client_id();
    redis::cmd("WATCH")
        .arg("k")
        .exec_async(&mut conn)
        .await
        .unwrap();
    drop(conn);
    // Changed after the WATCH: EXEC on the next lease would abort if the watch were left.
    side.set::<_, _, ()>("k", "theirs").await.unwrap();
    let mut conn = next_lease(&client, id).await;
    let (set,): (String,) = redis::pipe()
        .atomic()
        .set("k", "mine")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(set, "OK");
    redis::cmd("MULTI").exec_async(&mut conn).await.unwrap();
    redis::cmd("SET")
        .arg("k")
        .arg("mine2")
        .exec_async(&mut conn)
        .await
        .unwrap();
    let exec: Option<(String,)> = redis::cmd("EXEC").query_async(&mut conn).await.unwrap();
    assert_eq!(exec, Some(("OK".to_owned(),)), "EXEC was not aborted");
    assert_eq!(side.get::<_, String>("k").await.unwrap(), "mine2");
}

#[test]
fn a_lease_can_move_between_tasks() {
    fn assert<T: Send + Sync + 'static>() {}
    assert::<Exclusive>();
}

#[tokio::test]
async fn a_watch_does_not_outlive_its_lease() {
    watch_then_drop(&common::server()).await;
}

#[tokio::test]
async fn a_watch_does_not_outlive_its_lease_without_reset() {
    watch_then_drop(&server_without_reset()).await;
}

/// `SELECT 5` and `CLIENT SETNAME` on a lease; the next lease is back on the configured
/// database and name, still authenticated and on the configured protocol.
async fn select_and_name_then_drop(url: &str, protocol: Protocol) {
    let client = Client::builder(url)
        .db(2)
        .client_name("configured")
        .protocol(protocol)
        .max_exclusive_lanes(1)
        .connect()
        .await
        .unwrap();
    let mut conn = client.exclusive().await.unwrap();
    let id = conn.client_id();
    redis::cmd("SELECT")
        .arg(5)
        .exec_async(&mut conn)
        .await
        .unwrap();
    redis::cmd("CLIENT")
        .arg("SETNAME")
        .arg("renamed")
        .exec_async(&mut conn)
        .await
        .unwrap();
    use redis::aio::ConnectionLike;
    assert_eq!(conn.get_db(), 5);
    conn.set::<_, _, ()>("in5", 1).await.unwrap();
    assert_eq!(field(&mut conn, "db").await, "5");
    drop(conn);

    let mut conn = next_lease(&client, id).await;
    assert_eq!(conn.get_db(), 2);
    assert_eq!(field(&mut conn, "db").await, "2");
    assert_eq!(field(&mut conn, "name").await, "configured");
    let resp = if protocol == Protocol::Resp3 {
        "3"
    } else {
        "2"
    };
    assert_eq!(field(&mut conn, "resp").await, resp);
    assert!(!conn.exists::<_, bool>("in5").await.unwrap(), "not in db 5");
    // Still authenticated: a command that needs it works.
    conn.set::<_, _, ()>("in2", 1).await.unwrap();
}

#[tokio::test]
async fn select_and_name_do_not_outlive_their_lease() {
    let server = common::server();
    select_and_name_then_drop(&server.url(), Protocol::Resp2).await;
}

#[tokio::test]
async fn select_and_name_do_not_outlive_their_lease_on_resp3() {
    let server = common::server();
    select_and_name_then_drop(&server.url(), Protocol::Resp3).await;
}

#[tokio::test]
async fn select_and_name_do_not_outlive_their_lease_without_reset() {
    let server = server_without_reset();
    select_and_name_then_drop(&server.url(), Protocol::Resp2).await;
}

#[tokio::test]
async fn authentication_is_restored_after_reset() {
    let server = common::server_with(&["--requirepass", "s3cret"]);
    let url = format!("redis://:s3cret@127.0.0.1:{}", server.port());
    select_and_name_then_drop(&url, Protocol::Resp2).await;
    select_and_name_then_drop(&url, Protocol::Resp3).await;
}

async fn multi_then_drop(server: &RedisServer) {
    let client = one_lane(&server.url()).await;
    let mut side = common::side(server).await;
    let mut conn = client.exclusive().await.unwrap();
    let id = conn.client_id();
    redis::cmd("MULTI").exec_async(&mut conn).await.unwrap();
    let queued: String = redis::cmd("SET")
        .arg("queued")
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(queued, "QUEUED");
    drop(conn);

    let mut conn = next_lease(&client, id).await;
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG", "answered, not queued");
    let echo: String = redis::cmd("ECHO")
        .arg("own")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(echo, "own");
    // The queued SET was discarded, never executed.
    assert!(!side.exists::<_, bool>("queued").await.unwrap());
    let exec: redis::Value = conn.send(&redis::cmd("EXEC")).await.unwrap();
    assert!(matches!(exec, redis::Value::ServerError(_)), "{exec:?}");
}

#[tokio::test]
async fn an_open_multi_is_discarded() {
    multi_then_drop(&common::server()).await;
}

#[tokio::test]
async fn an_open_multi_is_discarded_without_reset() {
    multi_then_drop(&server_without_reset()).await;
}

#[tokio::test]
async fn a_lease_dropped_mid_command_is_drained_before_reuse() {
    let server = common::server();
    let client = one_lane(&server.url()).await;
    let mut conn = client.exclusive().await.unwrap();
    let id = conn.client_id();
    // In flight behind DEBUG SLEEP: its reply, and the SET's, are still on their way.
    let sleep = redis::cmd("DEBUG").arg("SLEEP").arg("0.3").clone();
    assert!(
        tokio::time::timeout(Duration::from_millis(50), conn.send(&sleep))
            .await
            .is_err()
    );
    let mut set = redis::cmd("SET");
    set.arg("late").arg("stale");
    assert!(
        tokio::time::timeout(Duration::from_millis(10), conn.send(&set))
            .await
            .is_err()
    );
    let dropped = Instant::now();
    drop(conn);

    let mut conn = next_lease(&client, id).await;
    assert!(
        dropped.elapsed() >= Duration::from_millis(150),
        "handed out before the in-flight replies were read: {:?}",
        dropped.elapsed()
    );
    for i in 0..5 {
        let echo: String = redis::cmd("ECHO")
            .arg(i)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(echo, i.to_string(), "a stale reply");
    }
    assert_eq!(client.stats().exclusive_discards, 0);
}

#[tokio::test]
async fn a_blocking_command_blocks_on_the_lease() {
    let server = common::server();
    let client = common::client(&server).await;
    let mut side = common::side(&server).await;
    let mut conn = client.exclusive().await.unwrap();
    let pusher = tokio::spawn(async move {
        assert!(common::until_blocked(&side, "blpop").await);
        side.rpush::<_, _, ()>("jobs", "job").await.unwrap();
    });
    let got: Option<(String, String)> = conn.blpop("jobs", 5.0).await.unwrap();
    assert_eq!(got, Some(("jobs".into(), "job".into())));
    pusher.await.unwrap();
    // No blocking lane was needed: the lease is dedicated.
    assert_eq!(client.stats().blocking_idle, 0);
}

#[tokio::test]
async fn a_cancelled_blocking_command_does_not_hold_up_the_lease() {
    let server = common::server();
    let client = common::client(&server).await;
    let mut conn = client.exclusive().await.unwrap();
    let cancelled = tokio::time::timeout(
        Duration::from_millis(100),
        conn.blpop::<_, Option<(String, String)>>("nothing", 0.0),
    )
    .await;
    assert!(cancelled.is_err());
    let started = Instant::now();
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(client.stats().blocking_cancels, 1);
}

/// A lease dropped while its BLPOP blocks: unblocked on the server, then reused clean.
#[tokio::test]
async fn a_lease_dropped_mid_block_is_unblocked_and_reused_clean() {
    let server = common::server();
    let client = one_lane(&server.url()).await;
    let mut side = common::side(&server).await;
    let task = {
        let client = client.clone();
        tokio::spawn(async move {
            let mut conn = client.exclusive().await.unwrap();
            conn.blpop::<_, Option<(String, String)>>("never", 0.0)
                .await
        })
    };
    assert!(common::until_blocked(&side, "blpop").await);
    let blocked = |list: &str| list.lines().any(|l| l.contains("flags=b"));
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut side)
        .await
        .unwrap();
    assert!(blocked(&list), "the BLPOP blocks: {list}");
    task.abort();
    assert!(task.await.unwrap_err().is_cancelled());

    let mut conn = tokio::time::timeout(SETTLE, client.exclusive())
        .await
        .unwrap()
        .unwrap();
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut side)
        .await
        .unwrap();
    assert!(!blocked(&list), "still blocked: {list}");
    side.rpush::<_, _, ()>("never", "later").await.unwrap();
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG");
    assert_eq!(side.llen::<_, i64>("never").await.unwrap(), 1, "not taken");
    let stats = client.stats();
    assert_eq!(stats.blocking_cancels, 1, "{stats:?}");
    assert_eq!(stats.exclusive_discards, 0, "{stats:?}");
}

/// Pushes around the deadline of a BLPOP on a lease that is then dropped: the element
/// is delivered or back in the list, never lost, and the lease is reused clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pop_racing_a_dropped_lease_is_restored() {
    let server = common::server();
    let client = one_lane(&server.url()).await;
    let side = common::side(&server).await;
    let deadline = Duration::from_millis(40);
    let mut delivered = 0;
    const RUNS: usize = 60;
    for i in 0..RUNS {
        let key = format!("race:{i}");
        let mut pusher = side.clone();
        let k = key.clone();
        // From 10 ms before to 10 ms after the deadline.
        let at = deadline + Duration::from_millis(i as u64 % 21) - Duration::from_millis(10);
        let push = tokio::spawn(async move {
            tokio::time::sleep(at).await;
            pusher.rpush::<_, _, ()>(&k, "x").await
        });
        let mut conn = client.exclusive().await.unwrap();
        let got = tokio::time::timeout(
            deadline,
            conn.blpop::<_, Option<(String, String)>>(&key, 1.0),
        )
        .await;
        drop(conn);
        push.await.unwrap().unwrap();
        let was_delivered = matches!(got, Ok(Ok(Some(_))));
        delivered += usize::from(was_delivered);
        let expect = if was_delivered { 0 } else { 1 };
        let settled = common::eventually(SETTLE, || {
            let mut side = side.clone();
            let key = key.clone();
            async move { side.llen::<_, i64>(&key).await.unwrap() == expect }
        })
        .await;
        assert!(settled, "run {i}: delivered={was_delivered}");
        // The next lease answers its own commands.
        let mut conn = client.exclusive().await.unwrap();
        let echo: String = redis::cmd("ECHO")
            .arg(i)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(echo, i.to_string());
    }
    let stats = client.stats();
    assert!(delivered < RUNS, "the race was not exercised: {stats:?}");
    assert!(
        stats.orphans_restored > 0,
        "no pop raced the cancel: {stats:?}"
    );
    assert_eq!(stats.orphans_unrecoverable, 0, "{stats:?}");
    assert_eq!(stats.exclusive_discards, 0, "{stats:?}");
    eprintln!(
        "{delivered}/{RUNS} delivered, {} cancels, {} restored",
        stats.blocking_cancels, stats.orphans_restored
    );
}

#[tokio::test]
async fn exhaustion_names_the_limit() {
    let server = common::server();
    let client = Client::builder(&server.url())
        .max_exclusive_lanes(1)
        .exclusive_acquire_timeout(Duration::from_millis(100))
        .connect()
        .await
        .unwrap();
    let held = client.exclusive().await.unwrap();
    let started = Instant::now();
    let err = client.exclusive().await.unwrap_err();
    assert!(err.is_pool_timeout(), "{err:?}");
    assert!(err.is_retry_safe());
    assert!(err.to_string().contains("max_exclusive_lanes"), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(90));
    drop(held);
    assert!(tokio::time::timeout(SETTLE, client.exclusive())
        .await
        .unwrap()
        .is_ok());
}

#[tokio::test]
async fn zero_lanes_is_invalid() {
    let server = common::server();
    let err = Client::builder(&server.url())
        .max_exclusive_lanes(0)
        .connect()
        .await
        .unwrap_err();
    assert!(err.is_config(), "{err:?}");
}

#[tokio::test]
async fn identity_and_push_commands_stay_refused() {
    let server = common::server();
    let client = common::client(&server).await;
    let mut conn = client.exclusive().await.unwrap();
    for name in ["SUBSCRIBE", "MONITOR", "RESET", "HELLO", "AUTH", "QUIT"] {
        let mut cmd = redis::cmd(name);
        if name != "MONITOR" && name != "RESET" && name != "QUIT" {
            cmd.arg("x");
        }
        let err = conn.send(&cmd).await.unwrap_err();
        assert!(err.is_refused(), "{name}: {err:?}");
    }
    let err = redis::pipe()
        .get("k")
        .cmd("SUBSCRIBE")
        .arg("c")
        .query_async::<redis::Value>(&mut conn)
        .await
        .unwrap_err();
    assert!(common::lanes_error(&err).is_refused());
    // The refusals sent nothing: the lease still works.
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG");
}

#[tokio::test]
async fn close_waits_for_pending_resets() {
    let server = common::server();
    let client = common::client(&server).await;
    let mut conn = client.exclusive().await.unwrap();
    let sleep = redis::cmd("DEBUG").arg("SLEEP").arg("0.3").clone();
    assert!(
        tokio::time::timeout(Duration::from_millis(50), conn.send(&sleep))
            .await
            .is_err()
    );
    drop(conn);
    assert_eq!(
        client.stats().exclusive_busy,
        1,
        "the reset waits for DEBUG SLEEP"
    );
    let started = Instant::now();
    client.close().await;
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
    let stats = client.stats();
    assert_eq!(stats.exclusive_busy, 0, "{stats:?}");
    assert_eq!(stats.exclusive_discards, 0, "reset, not cut off: {stats:?}");
    let err = client.exclusive().await.unwrap_err();
    assert!(err.is_closed(), "{err:?}");
}

#[tokio::test]
async fn a_lease_refuses_commands_after_close() {
    let server = common::server();
    let client = common::client(&server).await;
    let mut conn = client.exclusive().await.unwrap();
    client.close().await;
    let err = conn.send(&redis::cmd("PING")).await.unwrap_err();
    assert!(err.is_closed() && err.is_retry_safe(), "{err:?}");
}

async fn connections_named(side: &mut redis::aio::MultiplexedConnection, name: &str) -> usize {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(side)
        .await
        .unwrap();
    let needle = format!(" name={name} ");
    list.lines().filter(|line| line.contains(&needle)).count()
}

#[tokio::test]
async fn dropping_the_client_closes_exclusive_lanes() {
    let server = common::server();
    let mut side = common::side(&server).await;
    let client = Client::builder(&server.url())
        .client_name("exclusive-drop")
        .connect()
        .await
        .unwrap();
    let first = client.exclusive().await.unwrap();
    let second = client.exclusive().await.unwrap();
    assert_ne!(first.client_id(), second.client_id());
    drop((first, second));
    let idle = common::eventually(SETTLE, || {
        let client = client.clone();
        async move { client.stats().exclusive_idle == 2 }
    })
    .await;
    assert!(idle, "{:?}", client.stats());
    // The shared lane and both exclusive lanes.
    assert_eq!(connections_named(&mut side, "exclusive-drop").await, 3);
    drop(client);
    let gone = common::eventually(SETTLE, || {
        let mut side = side.clone();
        async move { connections_named(&mut side, "exclusive-drop").await == 0 }
    })
    .await;
    assert!(gone, "connections outlived the client");
}

#[tokio::test]
async fn idle_exclusive_lanes_are_closed_after_the_idle_timeout() {
    let server = common::server();
    let client = Client::builder(&server.url())
        .exclusive_idle_timeout(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    drop(client.exclusive().await.unwrap());
    let reaped = common::eventually(SETTLE, || {
        let client = client.clone();
        async move {
            let stats = client.stats();
            stats.exclusive_idle == 0 && stats.exclusive_busy == 0
        }
    })
    .await;
    assert!(reaped, "{:?}", client.stats());
}
