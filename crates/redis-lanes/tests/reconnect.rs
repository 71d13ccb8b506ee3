//! The shared lane reconnects: in-flight requests fail with an outcome-unknown error and
//! are never re-sent, requests issued while disconnected wait (or fail fast), refusals
//! end the client, and dedicated lanes from before the break are not reused.

mod common;

use std::time::{Duration, Instant};

use redis::{AsyncCommands, Value};
use redis_lanes::{Builder, Client, ErrorKind};
use redis_lanes_testkit::RedisServer;

const GENEROUS: Duration = Duration::from_secs(10);

/// Kills the shared connection from inside: `CLIENT KILL ID <own id>` and `other` go out
/// in one write, so the server runs the kill, closes the connection and never runs
/// `other`, whose outcome is then unknown to the client.
async fn kill_self_with<T, F>(client: &Client, other: F) -> T
where
    F: std::future::Future<Output = T>,
{
    let id = client.client_id().expect("CLIENT ID known");
    let mut killer = client.clone();
    let kill = async move {
        redis::cmd("CLIENT")
            .arg("KILL")
            .arg("ID")
            .arg(id)
            .arg("SKIPME")
            .arg("no")
            .query_async::<Value>(&mut killer)
            .await
    };
    let (killed, other) = tokio::join!(kill, other);
    assert_eq!(killed.expect("the kill is answered"), Value::Int(1));
    other
}

async fn until_connected(client: &Client) {
    let back = common::eventually(GENEROUS, || {
        let client = client.clone();
        async move { client.stats().connected }
    })
    .await;
    assert!(back, "the client did not reconnect");
}

async fn until_disconnected(client: &Client) {
    let down = common::eventually(GENEROUS, || {
        let client = client.clone();
        async move { !client.stats().connected }
    })
    .await;
    assert!(down, "the client did not notice the server is gone");
}

/// A client (fast backoff, plus `options`) whose server has just been killed: the
/// client has noticed and is reconnecting.
async fn client_with_server_down(
    server: &mut RedisServer,
    options: impl FnOnce(Builder) -> Builder,
) -> Client {
    let builder = Client::builder(&server.url())
        .reconnect_backoff(Duration::from_millis(20), Duration::from_millis(200));
    let client = options(builder).connect().await.unwrap();
    server.stop();
    until_disconnected(&client).await;
    client
}

#[tokio::test]
async fn an_in_flight_command_fails_as_outcome_unknown_and_is_never_resent() {
    let server = common::server();
    let client = common::client(&server).await;
    let before = client.client_id();
    let mut conn = client.clone();
    let incr = kill_self_with(&client, conn.incr::<_, _, i64>("n", 1)).await;
    let err = common::lanes_error(&incr.expect_err("the connection broke under INCR"));
    assert_eq!(err.kind(), ErrorKind::ConnectionLost, "{err}");
    assert!(err.is_outcome_unknown(), "{err:?}");
    assert!(!err.is_retry_safe(), "{err:?}");

    // The client is usable again, on a new connection, and the INCR never ran: not on
    // the old connection (the server closed it first) and not re-sent on the new one.
    let n: i64 = tokio::time::timeout(GENEROUS, conn.incr("n", 1))
        .await
        .expect("no hang after the reconnect")
        .unwrap();
    assert_eq!(n, 1);
    let stats = client.stats();
    assert_eq!(stats.reconnects, 1);
    assert!(stats.connected);
    assert!(!client.is_closed());
    assert_ne!(client.client_id(), before, "a new connection has a new id");
}

#[tokio::test]
async fn read_only_commands_are_retried_when_opted_in_and_writes_never() {
    let server = common::server();
    let client = Client::builder(&server.url())
        .retry_read_only(true)
        .connect()
        .await
        .unwrap();
    let mut conn = client.clone();
    conn.set::<_, _, ()>("k", "v").await.unwrap();

    let get = kill_self_with(&client, conn.get::<_, String>("k")).await;
    assert_eq!(
        get.unwrap(),
        "v",
        "the read went out again on the new connection"
    );

    let mut pipe = redis::pipe();
    pipe.get("k").strlen("k");
    let reads = kill_self_with(&client, pipe.query_async::<(String, i64)>(&mut conn)).await;
    assert_eq!(reads.unwrap(), ("v".to_owned(), 1));

    let incr = kill_self_with(&client, conn.incr::<_, _, i64>("n", 1)).await;
    let err = common::lanes_error(&incr.expect_err("a write is never retried"));
    assert!(err.is_outcome_unknown(), "{err:?}");
    let n: Option<i64> = conn.get("n").await.unwrap();
    assert_eq!(n, None, "the INCR ran nowhere");
    assert_eq!(client.stats().reconnects, 3);
}

#[tokio::test]
async fn commands_issued_while_the_server_is_down_wait_for_it() {
    let mut server = common::server();
    let client = client_with_server_down(&mut server, |b| b.disconnected_wait(GENEROUS)).await;

    let mut conn = client.clone();
    let waiting = tokio::spawn(async move {
        conn.set::<_, _, ()>("k", "after").await?;
        conn.get::<_, String>("k").await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished(), "it should wait for the server");

    server.restart().unwrap();
    let back = Instant::now();
    let value = tokio::time::timeout(GENEROUS, waiting)
        .await
        .expect("the waiting command completes once the server is back")
        .unwrap()
        .unwrap();
    assert_eq!(value, "after");
    // Within the backoff cap plus connect time, generously.
    assert!(
        back.elapsed() < Duration::from_secs(3),
        "{:?}",
        back.elapsed()
    );
    assert!(client.stats().reconnects >= 1);
}

#[tokio::test]
async fn fail_fast_fails_at_once_while_disconnected() {
    let mut server = common::server();
    let client = client_with_server_down(&mut server, |b| b.fail_fast()).await;

    let mut conn = client.clone();
    let started = Instant::now();
    let err = conn.get::<_, Option<String>>("k").await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    let err = common::lanes_error(&err);
    assert_eq!(err.kind(), ErrorKind::ConnectionLost, "{err}");
    assert!(err.is_retry_safe(), "never sent: {err:?}");

    server.restart().unwrap();
    let works = common::eventually(GENEROUS, || {
        let mut conn = client.clone();
        async move { conn.set::<_, _, ()>("k", 1).await.is_ok() }
    })
    .await;
    assert!(works, "the client did not come back");
}

#[tokio::test]
async fn a_request_waits_no_longer_than_disconnected_wait() {
    let mut server = common::server();
    let client = client_with_server_down(&mut server, |b| {
        b.disconnected_wait(Duration::from_millis(300))
    })
    .await;

    let mut conn = client.clone();
    let started = Instant::now();
    let err = tokio::time::timeout(GENEROUS, conn.get::<_, Option<String>>("k"))
        .await
        .expect("the deadline must end the wait")
        .unwrap_err();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    let err = common::lanes_error(&err);
    assert_eq!(err.kind(), ErrorKind::ConnectionLost, "{err}");
    assert!(err.is_retry_safe(), "{err:?}");
    assert!(!client.is_closed(), "still reconnecting");
}

#[tokio::test]
async fn reconnecting_gives_up_after_max_attempts() {
    let mut server = common::server();
    let client = Client::builder(&server.url())
        .reconnect_max_attempts(Some(3))
        .reconnect_backoff(Duration::from_millis(10), Duration::from_millis(20))
        .connect()
        .await
        .unwrap();
    server.stop();
    let ended = common::eventually(GENEROUS, || {
        let client = client.clone();
        async move { client.is_closed() }
    })
    .await;
    assert!(ended, "the client kept trying past its attempt limit");
    let mut conn = client.clone();
    let err = conn.get::<_, Option<String>>("k").await.unwrap_err();
    let err = common::lanes_error(&err);
    assert_eq!(err.kind(), ErrorKind::ConnectionLost, "{err}");
    assert!(err.to_string().contains("gave up"), "{err}");
    // Coming back later does not revive it: the client said it gave up.
    server.restart().unwrap();
    assert!(client.is_closed());
}

#[tokio::test]
async fn credentials_that_stop_working_end_the_client_with_an_auth_error() {
    let server = common::server_with(&["--requirepass", "first-pass"]);
    let url = format!("redis://:first-pass@{}", server.addr());
    let client = Client::connect(&url).await.unwrap();
    let mut side = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg("second-pass")
        .query_async(&mut side)
        .await
        .unwrap();
    common::kill_client(&mut side, client.client_id().unwrap()).await;

    let ended = common::eventually(GENEROUS, || {
        let client = client.clone();
        async move { client.is_closed() }
    })
    .await;
    assert!(ended, "a refused reconnect must end the client, not loop");
    let mut conn = client.clone();
    let err = conn.get::<_, Option<String>>("k").await.unwrap_err();
    let err = common::lanes_error(&err);
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    assert!(!err.to_string().contains("first-pass"), "{err}");
}

/// The ids of this client's connections other than the shared one.
async fn dedicated_ids(
    side: &mut redis::aio::MultiplexedConnection,
    name: &str,
    shared: i64,
) -> Vec<i64> {
    common::named(side, name)
        .await
        .iter()
        .filter_map(|line| {
            line.split(' ')
                .find_map(|f| f.strip_prefix("id="))
                .and_then(|id| id.parse().ok())
        })
        .filter(|id| *id != shared)
        .collect()
}

#[tokio::test]
async fn dedicated_lanes_from_before_a_break_are_closed_not_reused() {
    let server = common::server();
    let client = Client::builder(&server.url())
        .client_name("generations")
        .connect()
        .await
        .unwrap();
    let mut side = common::side(&server).await;
    let mut conn = client.clone();
    // One blocking lane and one exclusive lane, both idle in their pools afterwards.
    conn.rpush::<_, _, ()>("q", "a").await.unwrap();
    let _: (String, String) = conn.blpop("q", 1.0).await.unwrap();
    let exclusive = client.exclusive().await.unwrap();
    let old_exclusive = exclusive.client_id().unwrap();
    drop(exclusive);
    let old_shared = client.client_id().unwrap();
    let settled = common::eventually(GENEROUS, || {
        let client = client.clone();
        async move {
            let s = client.stats();
            s.blocking_idle == 1 && s.exclusive_idle == 1
        }
    })
    .await;
    assert!(settled, "{:?}", client.stats());
    let old = dedicated_ids(&mut side, "generations", old_shared).await;
    assert_eq!(old.len(), 2, "{old:?}");

    let killed = common::kill_client(&mut side, old_shared).await;
    assert_eq!(killed, 1);
    until_connected(&client).await;
    assert!(
        common::eventually(GENEROUS, || {
            let client = client.clone();
            async move { client.stats().reconnects == 1 }
        })
        .await
    );

    conn.rpush::<_, _, ()>("q", "b").await.unwrap();
    let _: (String, String) = conn.blpop("q", 1.0).await.unwrap();
    let exclusive = client.exclusive().await.unwrap();
    let new_exclusive = exclusive.client_id().unwrap();
    assert_ne!(
        new_exclusive, old_exclusive,
        "an exclusive lane from before the break"
    );
    drop(exclusive);
    let new_shared = client.client_id().unwrap();
    let replaced = common::eventually(GENEROUS, || {
        let old = old.clone();
        let mut side = side.clone();
        async move {
            let now = dedicated_ids(&mut side, "generations", new_shared).await;
            now.len() == 2 && now.iter().all(|id| !old.contains(id))
        }
    })
    .await;
    assert!(
        replaced,
        "old dedicated lanes still open: {:?} (old {old:?})",
        common::named(&mut side, "generations").await
    );
}

#[tokio::test]
async fn a_blocking_call_pending_when_the_server_dies_fails_and_is_never_resent() {
    let mut server = common::server();
    let client = common::client(&server).await;
    let mut conn = client.clone();
    let pending = tokio::spawn(async move { conn.blpop::<_, Value>("jobs", 0.0).await });
    let side = common::side(&server).await;
    let blocked = common::eventually(GENEROUS, || {
        let mut side = side.clone();
        async move {
            let list: String = redis::cmd("CLIENT")
                .arg("LIST")
                .query_async(&mut side)
                .await
                .unwrap_or_default();
            list.contains("cmd=blpop")
        }
    })
    .await;
    assert!(blocked);
    drop(side);

    server.stop();
    let err = tokio::time::timeout(GENEROUS, pending)
        .await
        .expect("a pending blocking call must not hang when the server dies")
        .unwrap()
        .unwrap_err();
    let err = common::lanes_error(&err);
    assert_eq!(err.kind(), ErrorKind::ConnectionLost, "{err}");
    assert!(err.is_outcome_unknown(), "{err:?}");

    server.restart().unwrap();
    let mut side = common::side(&server).await;
    until_connected(&client).await;
    let _: () = side.rpush("jobs", "j1").await.unwrap();
    // Nothing re-sent the BLPOP: the job stays for whoever asks next.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let len: i64 = side.llen("jobs").await.unwrap();
    assert_eq!(len, 1);
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut side)
        .await
        .unwrap();
    assert!(!list.contains("cmd=blpop"), "{list}");
}

#[tokio::test]
async fn blocking_and_exclusive_calls_issued_while_the_server_is_down_wait_for_it() {
    let mut server = common::server();
    let client = client_with_server_down(&mut server, |b| b.disconnected_wait(GENEROUS)).await;

    let mut conn = client.clone();
    let pop =
        tokio::spawn(async move { conn.blpop::<_, Option<(String, String)>>("q", 0.2).await });
    let ex_client = client.clone();
    let exclusive = tokio::spawn(async move {
        let mut ex = ex_client.exclusive().await?;
        ex.incr::<_, _, i64>("n", 1)
            .await
            .map_err(|e| common::lanes_error(&e))
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !pop.is_finished() && !exclusive.is_finished(),
        "they should wait"
    );
    server.restart().unwrap();
    let popped = tokio::time::timeout(GENEROUS, pop)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(popped, None);
    let n = tokio::time::timeout(GENEROUS, exclusive)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn close_while_reconnecting_ends_at_once_and_answers_the_waiting() {
    let mut server = common::server();
    let client = client_with_server_down(&mut server, |b| b.disconnected_wait(GENEROUS)).await;
    let mut conn = client.clone();
    let waiting = tokio::spawn(async move { conn.get::<_, Option<String>>("k").await });
    let parked = common::eventually(GENEROUS, || {
        let queued = client.stats().queued;
        async move { queued == 1 }
    })
    .await;
    assert!(parked, "{:?}", client.stats());
    let started = Instant::now();
    client.close().await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    let err = tokio::time::timeout(GENEROUS, waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    let err = common::lanes_error(&err);
    assert_eq!(err.kind(), ErrorKind::Closed, "{err}");
    assert!(err.is_retry_safe(), "it was never sent: {err:?}");
    // It stays closed when the server comes back.
    server.restart().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(client.is_closed());
    assert_eq!(client.stats().reconnects, 0);
}

/// As with redis-rs, a lost connection is announced on the push channel
/// (`PushKind::Disconnection`): state set up on it, such as `CLIENT TRACKING`, is gone.
#[tokio::test]
async fn a_lost_connection_is_announced_on_the_push_channel() {
    let server = common::server();
    let mut side = common::side(&server).await;
    let (push_tx, mut pushes) = tokio::sync::mpsc::channel(16);
    let client = Client::builder(&server.url())
        .protocol(redis_lanes::Protocol::Resp3)
        .push_sender(push_tx)
        .connect()
        .await
        .expect("connect");
    let mut conn = client.clone();
    let on: Value = conn
        .send(redis::cmd("CLIENT").arg("TRACKING").arg("ON"))
        .await
        .expect("TRACKING");
    assert_eq!(on, Value::Okay);
    let id = client.client_id().expect("id");
    assert_eq!(common::kill_client(&mut side, id).await, 1);
    let push = tokio::time::timeout(Duration::from_secs(5), pushes.recv())
        .await
        .expect("a push within 5 s")
        .expect("the channel is open");
    assert_eq!(push.kind, redis::PushKind::Disconnection);
    // The client reconnects as usual.
    let n: i64 = conn
        .incr("after", 1)
        .await
        .expect("INCR after the reconnect");
    assert_eq!(n, 1);
    // Once the client is gone, so is its sender: the channel closes.
    drop(conn);
    drop(client);
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(push) = pushes.recv().await {
            assert_eq!(push.kind, redis::PushKind::Disconnection);
        }
    })
    .await;
    assert!(end.is_ok(), "the push channel stayed open");
}

/// The disconnected wait and the backoff run on Tokio's clock: under a paused clock a
/// request waits exactly its `disconnected_wait` of virtual time (a minute here) while
/// reconnect attempts back off, and the test takes no real minute.
#[tokio::test(start_paused = true)]
async fn the_disconnected_wait_is_measured_on_tokios_clock() {
    let mut server = common::server();
    let client = Client::builder(&server.url())
        .connect_timeout(None)
        .health_check(None)
        .reconnect_backoff(Duration::from_secs(1), Duration::from_secs(8))
        .disconnected_wait(Duration::from_secs(60))
        .connect()
        .await
        .unwrap();
    server.stop();
    until_disconnected(&client).await;
    let wall = Instant::now();
    let started = tokio::time::Instant::now();
    let mut conn = client.clone();
    let err = conn.get::<_, Option<String>>("k").await.unwrap_err();
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(60) && waited < Duration::from_secs(61),
        "waited {waited:?} of virtual time"
    );
    assert!(
        wall.elapsed() < Duration::from_secs(30),
        "{:?}",
        wall.elapsed()
    );
    let err = common::lanes_error(&err);
    assert_eq!(err.kind(), ErrorKind::ConnectionLost, "{err}");
    assert!(err.is_retry_safe(), "{err:?}");
    assert!(!client.is_closed(), "still reconnecting");
}
