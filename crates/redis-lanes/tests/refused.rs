//! Commands that would corrupt a shared connection are refused before they are sent,
//! with a message naming what to use instead, and the client keeps working.

mod common;

use redis::AsyncCommands;
use redis_lanes::ErrorKind;

#[tokio::test]
async fn state_changing_commands_are_refused_with_a_hint() {
    let server = common::server();
    let mut conn = common::client(&server).await;
    let cases: &[(&[&str], &str)] = &[
        (&["WATCH", "k"], "Client::transaction()"),
        (&["UNWATCH"], "Client::exclusive()"),
        (&["MULTI"], "pipe().atomic()"),
        (&["MULTI"], "Client::exclusive()"),
        (&["EXEC"], "pipe().atomic()"),
        (&["DISCARD"], "pipe().atomic()"),
        (&["SELECT", "2"], "Builder::db"),
        (&["SELECT", "2"], "Client::exclusive()"),
        (&["SUBSCRIBE", "c"], "Client::subscriber()"),
        (&["PSUBSCRIBE", "c*"], "subscriber"),
        (&["SSUBSCRIBE", "c"], "subscriber"),
        (&["UNSUBSCRIBE", "c"], "subscriber"),
        (&["PUNSUBSCRIBE", "c*"], "subscriber"),
        (&["SUNSUBSCRIBE", "c"], "subscriber"),
        (&["MONITOR"], "connection of its own"),
        (&["CLIENT", "REPLY", "OFF"], "reply order"),
        (&["RESET"], "Client::close"),
        (&["QUIT"], "Client::close"),
        (&["HELLO", "3"], "Builder::protocol"),
        (&["AUTH", "pw"], "Builder::username"),
        (&["select", "2"], "Builder::db"),
    ];
    for (words, hint) in cases {
        let mut cmd = redis::cmd(words[0]);
        for arg in &words[1..] {
            cmd.arg(*arg);
        }
        let err = cmd
            .query_async::<redis::Value>(&mut conn)
            .await
            .unwrap_err();
        let err = common::lanes_error(&err);
        assert_eq!(err.kind(), ErrorKind::Refused, "{words:?}");
        assert!(err.to_string().contains(hint), "{words:?}: {err}");
    }
    // Nothing was sent: the server never saw a SELECT, and the lane is healthy.
    let _: () = conn.set("still", "db0").await.unwrap();
    let mut side = common::side(&server).await;
    let v: String = side.get("still").await.unwrap();
    assert_eq!(v, "db0");
    assert_eq!(conn.stats().written_requests, 1);
}

#[tokio::test]
async fn a_pipeline_with_a_refused_command_is_refused_whole() {
    let server = common::server();
    let mut conn = common::client(&server).await;
    let err = redis::pipe()
        .set("a", 1)
        .cmd("WATCH")
        .arg("a")
        .query_async::<redis::Value>(&mut conn)
        .await
        .unwrap_err();
    assert!(common::lanes_error(&err).is_refused());
    let a: Option<i64> = conn.get("a").await.unwrap();
    assert_eq!(a, None, "part of a refused pipeline ran");
}
