//! Round trips against a real server: the blocking command runs for real (on data that
//! is already there, so it answers at once), its reply goes through `plan`, the restore
//! command runs, and the data must read back exactly as before. Every test runs once over
//! RESP2 and once over RESP3, whose reply shapes differ.

use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::Value;
use redis_lanes_testkit::RedisServer;

use super::super::{outcome_of, plan, OrphanOutcome, RestorePlan};

const PROTOCOLS: [(&str, &str); 2] = [("", "resp=2"), ("?protocol=resp3", "resp=3")];

fn server() -> RedisServer {
    RedisServer::start().unwrap_or_else(|e| panic!("starting redis-server: {e}"))
}

/// A connection in the given protocol, checked so a silent fallback to RESP2 cannot make
/// the RESP3 half of a test a repeat of the RESP2 half.
async fn connect(server: &RedisServer, (query, resp): (&str, &str)) -> MultiplexedConnection {
    let client = redis::Client::open(format!("{}{query}", server.url())).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let info = run(&mut con, &["CLIENT", "INFO"]).await;
    let info: String = redis::from_redis_value(info).unwrap();
    assert!(info.contains(resp), "{info}");
    run(&mut con, &["FLUSHALL"]).await;
    con
}

async fn run(con: &mut MultiplexedConnection, words: &[&str]) -> Value {
    let mut cmd = redis::cmd(words[0]);
    cmd.arg(&words[1..]);
    cmd.query_async(con)
        .await
        .unwrap_or_else(|e| panic!("{words:?}: {e}"))
}

/// Runs a blocking command for real and returns its reply and the plan for it.
async fn pop(con: &mut MultiplexedConnection, words: &[&str]) -> (Value, RestorePlan) {
    let reply = run(con, words).await;
    let args: Vec<&[u8]> = words.iter().map(|w| w.as_bytes()).collect();
    let planned = plan(super::kind_of(&args), &args, &reply);
    (reply, planned)
}

/// Runs a blocking command, then its restore, and returns the restore's outcome.
async fn pop_and_restore(con: &mut MultiplexedConnection, words: &[&str]) -> OrphanOutcome {
    let (reply, planned) = pop(con, words).await;
    restore(con, planned, &reply).await
}

async fn restore(
    con: &mut MultiplexedConnection,
    planned: RestorePlan,
    reply: &Value,
) -> OrphanOutcome {
    let RestorePlan::Restore { cmd, conditional } = planned else {
        panic!("expected a restore for {reply:?}, got {planned:?}");
    };
    let restore_reply: Value = cmd.query_async(con).await.unwrap();
    outcome_of(conditional, &restore_reply)
}

/// A list's or sorted set's full contents, scores as the server's own text: read through
/// a script, whose calls always see RESP2, so `-0` and `0` or two nearby doubles differ.
async fn contents(con: &mut MultiplexedConnection, key: &str) -> Value {
    const READ: &str = "if redis.call('TYPE', KEYS[1]).ok == 'zset' then \
         return redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES') end \
         return redis.call('LRANGE', KEYS[1], 0, -1)";
    run(con, &["EVAL", READ, "1", key]).await
}

#[tokio::test]
async fn list_pops_are_restored_in_order() {
    let server = server();
    let pops: &[&[&str]] = &[
        &["BLPOP", "l", "1"],
        &["brpop", "l", "1"],
        &["BLPOP", "empty", "l", "1"],
        &["BLMPOP", "1", "1", "l", "LEFT", "COUNT", "3"],
        &["BLMPOP", "1", "1", "l", "RIGHT", "COUNT", "3"],
        &["blmpop", "1", "2", "empty", "l", "left", "COUNT", "5"],
        &["BLMPOP", "1", "1", "l", "RIGHT"],
    ];
    for protocol in PROTOCOLS {
        let mut con = connect(&server, protocol).await;
        run(&mut con, &["RPUSH", "l", "a", "b", "c", "d", "e"]).await;
        let before = contents(&mut con, "l").await;
        for words in pops {
            let outcome = pop_and_restore(&mut con, words).await;
            assert_eq!(outcome, OrphanOutcome::Restored, "{protocol:?} {words:?}");
            assert_eq!(
                contents(&mut con, "l").await,
                before,
                "{protocol:?} {words:?}"
            );
        }
    }
}

#[tokio::test]
async fn zset_pops_are_restored_with_exact_scores() {
    let server = server();
    let scores = [
        "0.1",
        "0.3333333333333333",
        "-0",
        "1e300",
        "5e-324",
        "1.7976931348623157e308",
        "-2.2250738585072014e-308",
        "inf",
        "-inf",
        "123456789.12345679",
        "9007199254740993",
    ];
    for protocol in PROTOCOLS {
        let mut con = connect(&server, protocol).await;
        // One member at a time, so every score goes through BZPOPMIN and BZPOPMAX alone.
        for score in scores {
            run(&mut con, &["ZADD", "one", score, "m"]).await;
            let before = contents(&mut con, "one").await;
            for words in [["BZPOPMIN", "one", "1"], ["bzpopmax", "one", "1"]] {
                let outcome = pop_and_restore(&mut con, &words).await;
                assert_eq!(outcome, OrphanOutcome::Restored, "{protocol:?} {words:?}");
                assert_eq!(
                    contents(&mut con, "one").await,
                    before,
                    "{protocol:?} {score}"
                );
            }
            run(&mut con, &["ZADD", "z", score, score]).await;
        }
        let before = contents(&mut con, "z").await;
        let pops: &[&[&str]] = &[
            &["BZPOPMIN", "z", "1"],
            &["BZPOPMAX", "z", "1"],
            &["BZMPOP", "1", "1", "z", "MIN", "COUNT", "3"],
            &["bzmpop", "1", "1", "z", "max", "COUNT", "3"],
            &["BZMPOP", "1", "2", "empty", "z", "MIN", "COUNT", "20"],
        ];
        for words in pops {
            let outcome = pop_and_restore(&mut con, words).await;
            assert_eq!(outcome, OrphanOutcome::Restored, "{protocol:?} {words:?}");
            assert_eq!(
                contents(&mut con, "z").await,
                before,
                "{protocol:?} {words:?}"
            );
        }
        // Guards the point of the second pass: RESP3 really sent doubles.
        if protocol.1 == "resp=3" {
            let (reply, _) = pop(&mut con, &["BZPOPMIN", "z", "1"]).await;
            assert!(matches!(&reply, Value::Array(v) if matches!(v[2], Value::Double(_))));
        }
    }
}

#[tokio::test]
async fn a_member_re_added_meanwhile_keeps_its_new_score() {
    let server = server();
    for protocol in PROTOCOLS {
        let mut con = connect(&server, protocol).await;
        run(&mut con, &["ZADD", "z", "1", "a", "2", "b"]).await;
        let (reply, planned) = pop(&mut con, &["BZPOPMIN", "z", "1"]).await;
        run(&mut con, &["ZADD", "z", "7", "a"]).await;
        let outcome = restore(&mut con, planned, &reply).await;
        assert_eq!(outcome, OrphanOutcome::Restored);
        let expected = Value::Array(
            ["b", "2", "a", "7"]
                .map(|w| Value::BulkString(w.into()))
                .into(),
        );
        assert_eq!(contents(&mut con, "z").await, expected, "{protocol:?}");
    }
}

#[tokio::test]
async fn moves_are_reversed_while_the_element_is_still_there() {
    let server = server();
    let moves: &[&[&str]] = &[
        &["BLMOVE", "src", "dst", "LEFT", "LEFT", "1"],
        &["BLMOVE", "src", "dst", "LEFT", "RIGHT", "1"],
        &["blmove", "src", "dst", "right", "left", "1"],
        &["BLMOVE", "src", "dst", "RIGHT", "RIGHT", "1"],
        &["BRPOPLPUSH", "src", "dst", "1"],
        &["BLMOVE", "src", "new", "LEFT", "RIGHT", "1"],
        // Rotation within one list.
        &["BLMOVE", "src", "src", "LEFT", "RIGHT", "1"],
        &["BRPOPLPUSH", "src", "src", "1"],
    ];
    for protocol in PROTOCOLS {
        let mut con = connect(&server, protocol).await;
        run(&mut con, &["RPUSH", "src", "a", "b", "c"]).await;
        run(&mut con, &["RPUSH", "dst", "x", "y"]).await;
        let src = contents(&mut con, "src").await;
        let dst = contents(&mut con, "dst").await;
        for words in moves {
            let outcome = pop_and_restore(&mut con, words).await;
            assert_eq!(outcome, OrphanOutcome::Restored, "{protocol:?} {words:?}");
            assert_eq!(
                contents(&mut con, "src").await,
                src,
                "{protocol:?} {words:?}"
            );
            assert_eq!(
                contents(&mut con, "dst").await,
                dst,
                "{protocol:?} {words:?}"
            );
            assert_eq!(run(&mut con, &["EXISTS", "new"]).await, Value::Int(0));
        }
    }
}

#[tokio::test]
async fn moves_whose_element_moved_on_are_reported_and_left_alone() {
    let server = server();
    // What happens between the move and its reversal.
    let meanwhile: &[&[&str]] = &[
        &["LPOP", "dst"],
        &["LPUSH", "dst", "other"],
        &["LMOVE", "dst", "dst", "LEFT", "RIGHT"],
        &["SET", "dst", "string"],
        &["SET", "src", "string"],
    ];
    for protocol in PROTOCOLS {
        let mut con = connect(&server, protocol).await;
        for step in meanwhile {
            run(&mut con, &["FLUSHALL"]).await;
            run(&mut con, &["RPUSH", "src", "a", "b"]).await;
            run(&mut con, &["RPUSH", "dst", "x"]).await;
            let (reply, planned) =
                pop(&mut con, &["BLMOVE", "src", "dst", "LEFT", "LEFT", "1"]).await;
            run(&mut con, step).await;
            let (src, dst) = (
                contents_or_type(&mut con, "src").await,
                contents_or_type(&mut con, "dst").await,
            );
            let outcome = restore(&mut con, planned, &reply).await;
            assert_eq!(outcome, OrphanOutcome::Reported, "{protocol:?} {step:?}");
            assert_eq!(
                contents_or_type(&mut con, "src").await,
                src,
                "{protocol:?} {step:?}"
            );
            assert_eq!(
                contents_or_type(&mut con, "dst").await,
                dst,
                "{protocol:?} {step:?}"
            );
        }
    }
}

async fn contents_or_type(con: &mut MultiplexedConnection, key: &str) -> Value {
    match run(con, &["TYPE", key]).await {
        Value::SimpleString(t) if t == "list" => contents(con, key).await,
        other => other,
    }
}

#[tokio::test]
async fn stream_group_entries_are_reported_and_stay_pending() {
    let server = server();
    for protocol in PROTOCOLS {
        let mut con = connect(&server, protocol).await;
        run(&mut con, &["XADD", "s", "1-1", "f", "v"]).await;
        run(&mut con, &["XADD", "s", "1-2", "f", "w"]).await;
        run(&mut con, &["XGROUP", "CREATE", "s", "g", "0"]).await;
        let read = [
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "BLOCK",
            "100",
            "STREAMS",
            "s",
            ">",
        ];
        let (_, planned) = pop(&mut con, &read).await;
        assert!(
            matches!(planned, RestorePlan::Report),
            "{protocol:?} {planned:?}"
        );
        let pending = run(&mut con, &["XPENDING", "s", "g"]).await;
        assert!(
            matches!(&pending, Value::Array(v) if v[0] == Value::Int(2)),
            "{pending:?}"
        );
        // Nothing new: the block times out with nil.
        let (reply, planned) = pop(&mut con, &read).await;
        assert!(
            matches!(planned, RestorePlan::Nothing),
            "{protocol:?} {reply:?}"
        );
        // Another consumer's empty history: one empty entry list per stream.
        let history = [
            "XREADGROUP",
            "GROUP",
            "g",
            "c2",
            "BLOCK",
            "100",
            "STREAMS",
            "s",
            "0",
        ];
        let (reply, planned) = pop(&mut con, &history).await;
        assert!(
            matches!(planned, RestorePlan::Nothing),
            "{protocol:?} {reply:?}"
        );
        // NOACK entries are reported too, but the server keeps no pending record of them.
        run(&mut con, &["XADD", "s", "1-3", "f", "x"]).await;
        let noack = [
            "XREADGROUP",
            "GROUP",
            "g",
            "c",
            "NOACK",
            "BLOCK",
            "100",
            "STREAMS",
            "s",
            ">",
        ];
        let (_, planned) = pop(&mut con, &noack).await;
        assert!(
            matches!(planned, RestorePlan::Report),
            "{protocol:?} {planned:?}"
        );
        let pending = run(&mut con, &["XPENDING", "s", "g"]).await;
        assert!(
            matches!(&pending, Value::Array(v) if v[0] == Value::Int(2)),
            "{pending:?}"
        );
    }
}

#[tokio::test]
async fn reads_without_side_effects_need_nothing() {
    let server = server();
    for protocol in PROTOCOLS {
        let mut con = connect(&server, protocol).await;
        run(&mut con, &["XADD", "s", "1-1", "f", "v"]).await;
        let commands: &[&[&str]] = &[
            &["XREAD", "BLOCK", "100", "STREAMS", "s", "0"],
            &["XREAD", "BLOCK", "100", "STREAMS", "s", "$"],
            &["WAIT", "0", "10"],
            &["BLPOP", "nothing", "0.05"],
            &["BZMPOP", "0.05", "1", "nothing", "MIN"],
            &["BLMOVE", "nothing", "dst", "LEFT", "LEFT", "0.05"],
        ];
        for words in commands {
            let (reply, planned) = pop(&mut con, words).await;
            assert!(
                matches!(planned, RestorePlan::Nothing),
                "{protocol:?} {words:?} {reply:?}"
            );
        }
    }
}

/// The race's losing side: `CLIENT UNBLOCK` landed first, the command answers nil.
#[tokio::test]
async fn an_unblocked_pop_needs_nothing() {
    let server = server();
    for protocol in PROTOCOLS {
        let mut side = connect(&server, protocol).await;
        let mut blocked = connect(&server, protocol).await;
        let id = run(&mut blocked, &["CLIENT", "ID"]).await;
        let id: i64 = redis::from_redis_value(id).unwrap();
        let waiter = tokio::spawn(async move { pop(&mut blocked, &["BLPOP", "l", "0"]).await });
        let deadline = Instant::now() + Duration::from_secs(5);
        while run(&mut side, &["CLIENT", "UNBLOCK", &id.to_string()]).await != Value::Int(1) {
            assert!(Instant::now() < deadline, "the BLPOP never blocked");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let (reply, planned) = waiter.await.unwrap();
        assert_eq!(reply, Value::Nil, "{protocol:?}");
        assert!(matches!(planned, RestorePlan::Nothing), "{protocol:?}");
    }
}
