//! Sockets and tasks live exactly as long as their handles; `close()` is graceful and
//! bounded; `pair()` hands the driver to the caller.

mod common;

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Wake};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis_lanes::{Client, ErrorKind};

const GENEROUS: Duration = Duration::from_secs(10);

#[tokio::test]
async fn dropping_the_last_handle_closes_the_connection() {
    let server = common::server();
    let mut side = common::side(&server).await;
    let client = common::client(&server).await;
    let id = client.client_id().expect("CLIENT ID recorded at handshake");
    assert!(common::client_ids(&mut side).await.contains(&id));

    let clone = client.clone();
    drop(client);
    // A clone still holds the lane.
    let mut still = clone.clone();
    let _: () = still.set("k", 1).await.unwrap();
    assert!(common::client_ids(&mut side).await.contains(&id));

    drop(still);
    drop(clone);
    let gone = common::eventually(GENEROUS, || {
        let mut side = side.clone();
        async move { !common::client_ids(&mut side).await.contains(&id) }
    })
    .await;
    assert!(
        gone,
        "connection {id} still listed after the last handle was dropped"
    );
}

#[tokio::test]
async fn close_finishes_in_flight_commands_then_refuses() {
    let server = common::server();
    let client = common::client(&server).await;
    let id = client.client_id().unwrap();
    let mut slow = client.clone();
    let written = client.stats().written_requests;
    // DEBUG SLEEP holds the reply for a while: it is in flight when close() starts.
    let in_flight = tokio::spawn(async move {
        redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(0.3)
            .query_async::<()>(&mut slow)
            .await
    });
    // Taken for writing: it is ahead of everything sent from here on.
    assert!(common::until_written(|| client.stats(), written).await);
    let started = Instant::now();
    client.close().await;
    assert!(client.is_closed());
    assert!(started.elapsed() < GENEROUS);
    in_flight
        .await
        .unwrap()
        .expect("the in-flight command is answered, not cut off");

    let mut conn = client.clone();
    let err = conn.get::<_, Option<String>>("k").await.unwrap_err();
    let err = common::lanes_error(&err);
    assert_eq!(err.kind(), ErrorKind::Closed);
    assert!(err.is_retry_safe());
    client.close().await; // idempotent

    let mut side = common::side(&server).await;
    assert!(!common::client_ids(&mut side).await.contains(&id));
}

#[tokio::test]
async fn close_is_bounded_by_its_timeout() {
    let server = common::server();
    let client = Client::builder(&server.url())
        .close_timeout(Duration::from_millis(200))
        .connect()
        .await
        .unwrap();
    let mut slow = client.clone();
    let written = client.stats().written_requests;
    let in_flight = tokio::spawn(async move {
        redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(3)
            .query_async::<()>(&mut slow)
            .await
    });
    // Taken for writing: it is ahead of everything sent from here on.
    assert!(common::until_written(|| client.stats(), written).await);
    let started = Instant::now();
    client.close().await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "close took {took:?}");
    let err = in_flight.await.unwrap().unwrap_err();
    assert_eq!(common::lanes_error(&err).kind(), ErrorKind::Closed);
}

#[tokio::test]
async fn commands_racing_close_are_all_answered() {
    let server = common::server();
    let client = common::client(&server).await;
    let mut tasks = Vec::new();
    for t in 0..32 {
        let mut conn = client.clone();
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            for i in 0..200 {
                match conn.set::<_, _, ()>(format!("{t}:{i}"), i).await {
                    Ok(()) => ok += 1,
                    Err(e) => {
                        assert_eq!(common::lanes_error(&e).kind(), ErrorKind::Closed);
                        break;
                    }
                }
            }
            ok
        }));
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    client.close().await;
    let mut written = 0;
    for task in tasks {
        written += tokio::time::timeout(GENEROUS, task)
            .await
            .expect("no caller hangs")
            .unwrap();
    }
    // Every command reported as done really is on the server.
    let mut side = common::side(&server).await;
    let keys: i64 = redis::cmd("DBSIZE").query_async(&mut side).await.unwrap();
    assert_eq!(keys, written);
}

#[tokio::test]
async fn pair_hands_out_the_driver() {
    let server = common::server();
    let (lane, driver) = Client::builder(&server.url()).pair().await.unwrap();
    let driver = tokio::spawn(driver);
    let mut conn = lane.clone();
    let _: () = conn.set("k", "v").await.unwrap();
    let v: String = conn.get("k").await.unwrap();
    assert_eq!(v, "v");
    drop(conn);
    drop(lane);
    tokio::time::timeout(GENEROUS, driver)
        .await
        .expect("driver completes when its last handle is dropped")
        .unwrap();
}

#[tokio::test]
async fn dropping_the_driver_answers_every_caller() {
    let server = common::server();
    let (lane, driver) = Client::builder(&server.url()).pair().await.unwrap();
    let mut conn = lane.clone();
    // Queued while nobody drives the lane.
    let waiting = tokio::spawn(async move { conn.get::<_, Option<String>>("k").await });
    let queued = common::eventually(GENEROUS, || {
        let queued = lane.stats().queued;
        async move { queued == 1 }
    })
    .await;
    assert!(queued, "{:?}", lane.stats());
    drop(driver);
    let err = tokio::time::timeout(GENEROUS, waiting)
        .await
        .expect("caller answered")
        .unwrap()
        .unwrap_err();
    assert_eq!(common::lanes_error(&err).kind(), ErrorKind::Closed);
    assert!(lane.is_closed());
}

#[tokio::test]
async fn a_request_dropped_before_it_is_written_is_never_written() {
    let server = common::server();
    let (lane, driver) = Client::builder(&server.url()).pair().await.unwrap();
    // The driver is not running yet, so the request can only be queued.
    let mut incr = redis::cmd("INCR");
    incr.arg("never");
    {
        let mut fut = Box::pin(lane.send(&incr));
        let waker = Arc::new(NoopWaker).into();
        let mut cx = Context::from_waker(&waker);
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert_eq!(lane.stats().queued, 1);
    } // dropped here, still unwritten
    tokio::spawn(driver);
    let n: Option<i64> = lane
        .send(redis::cmd("GET").arg("never"))
        .await
        .map(|v| redis::from_redis_value(v).unwrap())
        .unwrap();
    assert_eq!(n, None, "the cancelled INCR reached the server");
    assert_eq!(lane.stats().dropped_before_write, 1);
}

#[tokio::test]
async fn a_request_dropped_after_it_is_written_keeps_replies_in_step() {
    let server = common::server();
    let client = common::client(&server).await;
    let mut conn = client.clone();
    let mut sleeper = client.clone();
    let written = client.stats().written_requests;
    let sleep = tokio::spawn(async move {
        redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(0.2)
            .query_async::<()>(&mut sleeper)
            .await
    });
    assert!(common::until_written(|| client.stats(), written).await);
    // Written behind the sleep, then abandoned.
    let abandoned =
        tokio::time::timeout(Duration::from_millis(50), conn.incr::<_, _, i64>("late", 1)).await;
    assert!(abandoned.is_err());
    sleep.await.unwrap().unwrap();
    // The abandoned reply is read and discarded; the next reply is our own.
    let v: i64 = conn.incr("late", 10).await.unwrap();
    assert_eq!(
        v, 11,
        "the abandoned INCR ran on the server, and replies stay in step"
    );
}

#[tokio::test]
async fn response_timeout_fails_slow_replies_without_desync() {
    let server = common::server();
    let client = Client::builder(&server.url())
        .response_timeout(Some(Duration::from_millis(100)))
        .connect()
        .await
        .unwrap();
    let mut conn = client.clone();
    let err = redis::cmd("DEBUG")
        .arg("SLEEP")
        .arg(0.4)
        .query_async::<()>(&mut conn)
        .await
        .unwrap_err();
    assert!(err.is_timeout(), "{err:?}");
    assert_eq!(common::lanes_error(&err).kind(), ErrorKind::Timeout);
    // The late reply arrives while nothing else is in flight; it is read and dropped.
    let read = common::eventually(GENEROUS, || {
        let replies = client.stats().replies;
        async move { replies >= 1 }
    })
    .await;
    assert!(read, "{:?}", client.stats());
    assert_eq!(client.stats().in_flight, 0, "its slot is free again");
    let echo: String = redis::cmd("ECHO")
        .arg("mine")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(echo, "mine");
    assert_eq!(client.stats().timeouts, 1);
}

#[tokio::test]
async fn backpressure_waits_for_room_instead_of_failing() {
    let server = common::server();
    let (lane, driver) = Client::builder(&server.url())
        .max_in_flight(2)
        .pair()
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..5 {
        let mut conn = lane.clone();
        tasks.push(tokio::spawn(async move {
            conn.incr::<_, _, i64>("bp", i).await
        }));
    }
    // Without a driver nothing is written: two requests hold the two slots, the other
    // three wait for room.
    let filled = common::eventually(GENEROUS, || {
        let lane = lane.clone();
        async move { lane.stats().queued == 2 }
    })
    .await;
    assert!(filled, "{:?}", lane.stats());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(lane.stats().queued, 2, "the bound was exceeded");
    assert!(
        tasks.iter().all(|t| !t.is_finished()),
        "a caller got an error instead of waiting"
    );
    tokio::spawn(driver);
    for task in tasks {
        task.await.unwrap().expect("every waiting caller is served");
    }
    let total: i64 = lane
        .send(redis::cmd("GET").arg("bp"))
        .await
        .map(|v| redis::from_redis_value(v).unwrap())
        .unwrap();
    assert_eq!(total, 10);
}

struct NoopWaker;
impl Wake for NoopWaker {
    fn wake(self: Arc<Self>) {}
}

#[tokio::test]
async fn the_response_timeout_also_bounds_waiting_for_an_in_flight_slot() {
    let server = common::server();
    let client = Client::builder(&server.url())
        .max_in_flight(1)
        .response_timeout(Some(Duration::from_millis(200)))
        .connect()
        .await
        .unwrap();
    let mut slow = client.clone();
    let written = client.stats().written_requests;
    // Times out at 200 ms, and gives the only slot back then, although its reply comes
    // at 1.5 s (silent.rs has the test of that).
    let sleeper = tokio::spawn(async move {
        redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(1.5)
            .query_async::<()>(&mut slow)
            .await
    });
    // Taken for writing: it is ahead of everything sent from here on.
    assert!(common::until_written(|| client.stats(), written).await);
    let started = Instant::now();
    let mut conn = client.clone();
    let err = conn.get::<_, Option<String>>("k").await.unwrap_err();
    let took = started.elapsed();
    // Timed out waiting for the slot (never sent), or sent once the sleeper gave the
    // slot back and timed out behind DEBUG SLEEP: either way within its own deadline.
    assert!(err.is_timeout(), "{err:?}");
    assert!(
        took < Duration::from_millis(1_000),
        "waited {took:?} for a slot"
    );
    assert!(sleeper.await.unwrap().unwrap_err().is_timeout());
}

#[tokio::test]
async fn dropping_the_close_future_still_closes() {
    let server = common::server();
    let client = common::client(&server).await;
    let id = client.client_id().unwrap();
    let mut slow = client.clone();
    let written = client.stats().written_requests;
    let in_flight = tokio::spawn(async move {
        redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(0.3)
            .query_async::<()>(&mut slow)
            .await
    });
    // Taken for writing: it is ahead of everything sent from here on.
    assert!(common::until_written(|| client.stats(), written).await);
    // The caller gives up on close() almost at once; the close goes on.
    let _ = tokio::time::timeout(Duration::from_millis(1), client.close()).await;
    assert!(client.is_closed());
    in_flight
        .await
        .unwrap()
        .expect("the in-flight command is still answered");
    let side = common::side(&server).await;
    let gone = common::eventually(GENEROUS, || {
        let mut side = side.clone();
        async move { !common::client_ids(&mut side).await.contains(&id) }
    })
    .await;
    assert!(
        gone,
        "the connection stayed open after an abandoned close()"
    );
}

/// Every task a client starts (drivers, pool reapers, recoveries) ends within 100 ms of
/// its last handle being dropped or its `close()` returning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_task_outlives_its_client() {
    let server = common::server();
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    for round in 0..200u32 {
        let client = common::client(&server).await;
        let mut conn = client.clone();
        let _: Option<String> = conn.get("k").await.expect("GET");
        if round % 10 == 0 {
            // A blocking lane and a lease too, so their pools have lanes to close.
            let _: () = conn.rpush("q", 1).await.expect("RPUSH");
            let _: Option<(String, i64)> = conn.blpop("q", 1.0).await.expect("BLPOP");
            drop(client.exclusive().await.expect("lease"));
        }
        if round % 2 == 0 {
            client.close().await;
        }
        drop(conn);
        drop(client);
    }
    let settled = common::eventually(Duration::from_millis(100), || async {
        metrics.num_alive_tasks() <= before
    })
    .await;
    assert!(
        settled,
        "{} tasks alive after 200 clients were dropped, {before} before",
        metrics.num_alive_tasks()
    );
}

/// A cancelled blocking call's recovery waits on the shared lane (here: behind a
/// `DEBUG SLEEP`); dropping the client must not wait for it. The recovery gives up
/// (counted as unrecoverable), and every task and connection ends at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recovery_in_progress_does_not_keep_a_dropped_client_alive() {
    let server = common::server();
    let side = common::side(&server).await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let before = metrics.num_alive_tasks();
    let client = Client::builder(&server.url())
        .client_name("held")
        .connect()
        .await
        .expect("connect");
    let mut reader = client.clone();
    let blocked = tokio::spawn(async move {
        reader
            .blpop::<_, Option<(String, String)>>("nothing", 0.0)
            .await
    });
    let shows_blocked = common::eventually(GENEROUS, || {
        let mut side = side.clone();
        async move {
            common::named(&mut side, "held")
                .await
                .iter()
                .any(|line| line.contains(" cmd=blpop "))
        }
    })
    .await;
    assert!(shows_blocked, "the BLPOP never blocked");
    // The shared lane is busy for 3 s, so the unblock queued by the cancel waits.
    let mut sleeper = client.clone();
    let written = client.stats().written_requests;
    let sleeping = tokio::spawn(async move {
        redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(3)
            .exec_async(&mut sleeper)
            .await
    });
    assert!(
        common::eventually(GENEROUS, || async {
            client.stats().written_requests > written
        })
        .await
    );
    blocked.abort();
    let _ = blocked.await;
    sleeping.abort();
    let _ = sleeping.await;
    let started = Instant::now();
    drop(client);
    let settled = common::eventually(Duration::from_secs(1), || async {
        metrics.num_alive_tasks() <= before
    })
    .await;
    assert!(
        settled,
        "{} tasks alive {:?} after the drop, {before} before",
        metrics.num_alive_tasks(),
        started.elapsed()
    );
}
