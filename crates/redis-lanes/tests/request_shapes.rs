//! Request shapes of the `redis` crate that a shared connection must answer exactly as
//! redis-rs does, or one caller's reply goes to another: `set_no_response`, empty
//! commands and pipelines, and atomic pipelines the server discards at queue time.

mod common;

use std::time::Duration;

use redis::{AsyncCommands, ErrorKind, ServerErrorKind, Value};

const GENEROUS: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_command_sent_without_waiting_for_its_reply_does_not_shift_replies() {
    let server = common::server();
    let client = common::client(&server).await;
    let mut conn = client.clone();
    for i in 0..50 {
        redis::cmd("SET")
            .arg("k")
            .arg(format!("v{i}"))
            .set_no_response(true)
            .exec_async(&mut conn)
            .await
            .expect("queued");
        let got: String = conn.get("k").await.expect("GET");
        assert_eq!(got, format!("v{i}"), "round {i}: a reply shifted");
    }
    // Concurrent callers around fire-and-forget commands each get their own reply.
    let mut tasks = Vec::new();
    for t in 0..8 {
        let mut conn = client.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..100 {
                let key = format!("t{t}");
                redis::cmd("INCR")
                    .arg(&key)
                    .set_no_response(true)
                    .exec_async(&mut conn)
                    .await
                    .expect("queued");
                common::echo_own(&mut conn, format!("{t}-{i}")).await;
            }
        }));
    }
    common::join_all(tasks).await;
    let count: i64 = conn.get("t3").await.expect("GET");
    assert_eq!(count, 100, "every fire-and-forget INCR ran once");
    // Their replies were read: nothing is left in flight.
    assert!(
        common::eventually(GENEROUS, || async { client.stats().in_flight == 0 }).await,
        "{:?}",
        client.stats()
    );
}

#[tokio::test]
async fn an_empty_command_is_refused_without_taking_anyone_elses_reply() {
    let server = common::server();
    let client = common::client(&server).await;
    let mut conn = client.clone();
    let mut control = common::side(&server).await;

    let err = redis::Cmd::new()
        .query_async::<Value>(&mut conn)
        .await
        .expect_err("nothing to send");
    let expected = redis::Cmd::new()
        .query_async::<Value>(&mut control)
        .await
        .expect_err("redis-rs refuses it too");
    assert_eq!(err.kind(), expected.kind());
    assert_eq!(err.kind(), ErrorKind::Client);
    let lanes = common::lanes_error(&err);
    assert_eq!(lanes.kind(), redis_lanes::ErrorKind::InvalidCommand);

    // Interleaved with other callers, nobody's reply is taken.
    let mut tasks = Vec::new();
    for t in 0..8 {
        let mut conn = client.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..50 {
                assert!(redis::Cmd::new()
                    .query_async::<Value>(&mut conn)
                    .await
                    .is_err());
                common::echo_own(&mut conn, format!("{t}-{i}")).await;
            }
        }));
    }
    common::join_all(tasks).await;
}

#[tokio::test]
async fn an_empty_pipeline_fails_as_in_redis_rs() {
    let server = common::server();
    let mut conn = common::client(&server).await;
    let mut control = common::side(&server).await;
    let ours = redis::pipe().query_async::<Value>(&mut conn).await;
    let theirs = redis::pipe().query_async::<Value>(&mut control).await;
    let (ours, theirs) = (ours.expect_err("empty"), theirs.expect_err("empty"));
    assert_eq!(ours.kind(), theirs.kind());

    // An empty atomic pipeline is MULTI + EXEC: an empty transaction.
    let ours: Value = redis::pipe()
        .atomic()
        .query_async(&mut conn)
        .await
        .expect("ok");
    let theirs: Value = redis::pipe()
        .atomic()
        .query_async(&mut control)
        .await
        .expect("ok");
    assert_eq!(ours, Value::Array(Vec::new()));
    assert_eq!(ours, theirs);

    // A pipeline holding an empty command would wait for a reply the server never
    // sends; it is refused before anything is written.
    let mut pipe = redis::pipe();
    pipe.get("a").add_command(redis::Cmd::new());
    let err = pipe
        .query_async::<Value>(&mut conn)
        .await
        .expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::Client);
    let got: Option<String> = conn.get("a").await.expect("the lane is in step");
    assert_eq!(got, None);
}

#[tokio::test]
async fn an_atomic_pipeline_discarded_at_queue_time_says_why() {
    for protocol in [redis_lanes::Protocol::Resp2, redis_lanes::Protocol::Resp3] {
        let server = common::server();
        let mut conn = redis_lanes::Client::builder(&server.url())
            .protocol(protocol)
            .connect()
            .await
            .expect("connect");
        let mut control = common::side(&server).await;
        let pipe = || {
            let mut pipe = redis::pipe();
            // SET with a missing argument is refused while queueing.
            pipe.atomic().cmd("SET").arg("k").get("k");
            pipe
        };
        let ours = pipe().query_async::<Value>(&mut conn).await;
        let theirs = pipe().query_async::<Value>(&mut control).await;
        let (ours, theirs) = (ours.expect_err("aborted"), theirs.expect_err("aborted"));
        assert_eq!(ours.kind(), ErrorKind::Server(ServerErrorKind::ExecAbort));
        assert_eq!(ours.kind(), theirs.kind(), "{ours} / {theirs}");
        assert!(
            ours.to_string().contains("wrong number of arguments"),
            "the queued command's error is named: {ours}"
        );
        // An error at exec time is the failing command's, as in redis-rs.
        let exec_time = || {
            let mut pipe = redis::pipe();
            pipe.atomic().set("s", "text").incr("s", 1);
            pipe
        };
        let ours = exec_time().query_async::<Value>(&mut conn).await;
        let theirs = exec_time().query_async::<Value>(&mut control).await;
        let (ours, theirs) = (
            ours.expect_err("INCR fails"),
            theirs.expect_err("INCR fails"),
        );
        assert_eq!(ours.kind(), theirs.kind(), "{ours} / {theirs}");
        assert_eq!(ours.to_string(), theirs.to_string());
        let got: String = conn.get("s").await.expect("the lane is in step");
        assert_eq!(got, "text");
    }
}
