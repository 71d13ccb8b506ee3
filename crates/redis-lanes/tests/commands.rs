//! The `redis` command API through a `Client`: commands, pipelines, scripts, big and
//! deep replies, RESP3.

mod common;

use redis::{AsyncCommands, Value};
use redis_lanes::{Client, Protocol};

#[tokio::test]
async fn async_commands_work_unchanged() {
    let server = common::server();
    let mut conn = common::client(&server).await;
    let _: () = conn.set("k", "v").await.unwrap();
    let got: String = conn.get("k").await.unwrap();
    assert_eq!(got, "v");
    let missing: Option<String> = conn.get("nope").await.unwrap();
    assert_eq!(missing, None);
    let n: i64 = conn.incr("n", 5).await.unwrap();
    assert_eq!(n, 5);
    let _: () = conn
        .hset_multiple("h", &[("a", 1), ("b", 2)])
        .await
        .unwrap();
    let mut all: Vec<(String, i64)> = conn.hgetall("h").await.unwrap();
    all.sort();
    assert_eq!(all, vec![("a".into(), 1), ("b".into(), 2)]);
    let id: String = conn.xadd("s", "*", &[("f", "v")]).await.unwrap();
    assert!(id.contains('-'));
}

#[tokio::test]
async fn server_errors_reach_the_caller_and_the_lane_goes_on() {
    let server = common::server();
    let mut conn = common::client(&server).await;
    let _: () = conn.set("str", "x").await.unwrap();
    let err = conn.lpush::<_, _, i64>("str", "y").await.unwrap_err();
    assert_eq!(err.code(), Some("WRONGTYPE"), "{err:?}");
    assert!(redis_lanes::Error::from_redis(&err).is_none());
    // Raw send keeps the error as a value.
    let raw = conn.send(redis::cmd("NOSUCHCOMMAND").arg(1)).await.unwrap();
    assert!(matches!(raw, Value::ServerError(_)), "{raw:?}");
    let got: String = conn.get("str").await.unwrap();
    assert_eq!(got, "x");
    assert_eq!(conn.stats().server_errors, 2);
}

#[tokio::test]
async fn pipelines_plain_and_atomic() {
    let server = common::server();
    let mut conn = common::client(&server).await;

    let (a, b, c): (i64, i64, Option<String>) = redis::pipe()
        .incr("p", 1)
        .incr("p", 10)
        .set("ignored", 1)
        .ignore()
        .get("absent")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!((a, b, c), (1, 11, None));

    let (x, y): (i64, i64) = redis::pipe()
        .atomic()
        .incr("t", 1)
        .incr("t", 1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!((x, y), (1, 2));

    // A server error inside a plain pipeline is reported with its index.
    let _: () = conn.set("str", "x").await.unwrap();
    let err = redis::pipe()
        .get("str")
        .lpush("str", 1)
        .query_async::<Value>(&mut conn)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("Index 1"), "{err}");
    assert!(err.to_string().contains("WRONGTYPE"), "{err}");

    // An atomic pipeline whose command fails at EXEC time still keeps the lane in step.
    let results: Vec<redis::RedisResult<i64>> = redis::pipe()
        .atomic()
        .ignore_errors()
        .incr("t", 1)
        .lpush("str", 1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(results[0].as_ref().ok(), Some(&3));
    assert!(results[1].is_err());
    let t: i64 = conn.get("t").await.unwrap();
    assert_eq!(t, 3);

    // Many pipelines concurrently from clones: every reply lands with its own caller.
    let mut tasks = Vec::new();
    for task in 0..16 {
        let mut conn = conn.clone();
        tasks.push(tokio::spawn(async move {
            for round in 0..50 {
                let key = format!("pipe:{task}:{round}");
                let (set, got): ((), String) = redis::pipe()
                    .set(&key, &key)
                    .get(&key)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                let () = set;
                assert_eq!(got, key);
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test]
async fn scripts_load_on_noscript_and_run() {
    let server = common::server();
    let mut conn = common::client(&server).await;
    let script = redis::Script::new("return redis.call('INCRBY', KEYS[1], ARGV[1])");
    // First call: EVALSHA fails with NOSCRIPT, the script is loaded and retried.
    let a: i64 = script
        .key("s")
        .arg(2)
        .invoke_async(&mut conn)
        .await
        .unwrap();
    let b: i64 = script
        .key("s")
        .arg(3)
        .invoke_async(&mut conn)
        .await
        .unwrap();
    assert_eq!((a, b), (2, 5));
}

#[tokio::test]
async fn an_8_mib_value_round_trips() {
    let server = common::server();
    let mut conn = common::client(&server).await;
    let big: Vec<u8> = (0..8 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let _: () = conn.set("big", &big).await.unwrap();
    // Interleave small commands from another clone while the big value moves.
    let mut other = conn.clone();
    let small = tokio::spawn(async move {
        for i in 0..200 {
            let n: i64 = other.incr("small", 1).await.unwrap();
            assert_eq!(n, i + 1);
        }
    });
    let back: Vec<u8> = conn.get("big").await.unwrap();
    assert!(back == big, "8 MiB value corrupted");
    small.await.unwrap();
}

/// Values on both sides of the sizes where requests stop being copied into the write
/// buffer (64 KiB) and replies start being read straight into their own buffer
/// (256 KiB), from many tasks at once and in pipelines, so large and small requests and
/// replies interleave on the socket: every reply reaches its own caller, intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_and_small_values_interleave_in_order() {
    const SIZES: [usize; 8] = [
        10,
        64 * 1024 - 1,
        64 * 1024,
        256 * 1024 - 1,
        256 * 1024,
        300_001,
        1024 * 1024 + 3,
        5,
    ];
    fn value(task: usize, i: usize, len: usize) -> Vec<u8> {
        (0..len)
            .map(|j| ((task * 7 + i * 13 + j) % 251) as u8)
            .collect()
    }
    let server = common::server();
    let conn = common::client(&server).await;
    let mut tasks = Vec::new();
    for task in 0..8 {
        let mut conn = conn.clone();
        tasks.push(tokio::spawn(async move {
            for (i, &len) in SIZES.iter().enumerate() {
                let key = format!("mixed:{task}:{i}");
                let v = value(task, i, len);
                let _: () = conn.set(&key, &v).await.unwrap();
                let back: Vec<u8> = conn.get(&key).await.unwrap();
                assert!(back == v, "task {task}: {len} bytes came back wrong");
            }
            // All of them in one pipeline, each value read back right after its SET.
            let mut pipe = redis::pipe();
            for (i, &len) in SIZES.iter().enumerate() {
                let key = format!("mixed:{task}:{i}");
                pipe.set(&key, value(task, i + 1, len)).ignore().get(&key);
            }
            let back: Vec<Vec<u8>> = pipe.query_async(&mut conn).await.unwrap();
            assert_eq!(back.len(), SIZES.len());
            for (i, (b, &len)) in back.iter().zip(&SIZES).enumerate() {
                assert!(
                    *b == value(task, i + 1, len),
                    "task {task}: pipeline reply {i}"
                );
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

#[tokio::test]
async fn deeply_nested_reply() {
    let server = common::server();
    let mut conn = common::client(&server).await;
    // Lua turns nested tables into nested arrays; 100 levels is well within the
    // server's and our default limits.
    let script = redis::Script::new("local t = {'leaf'} for i = 1, 99 do t = {i, t} end return t");
    let mut value: Value = script.invoke_async(&mut conn).await.unwrap();
    let mut depth = 1;
    while let Value::Array(mut items) = value {
        if items.len() == 2 {
            value = items.pop().unwrap();
            depth += 1;
        } else {
            assert_eq!(items, vec![Value::BulkString(b"leaf".to_vec())]);
            break;
        }
    }
    assert_eq!(depth, 100);
}

#[tokio::test]
async fn nesting_beyond_the_limit_is_a_protocol_error_not_a_crash() {
    let server = common::server();
    let client = Client::builder(&server.url())
        .max_nesting_depth(8)
        .connect()
        .await
        .unwrap();
    let mut conn = client.clone();
    let script = redis::Script::new("local t = {1} for i = 1, 20 do t = {t} end return t");
    let err = script
        .invoke_async::<_, Value>(&mut conn)
        .await
        .unwrap_err();
    assert!(common::lanes_error(&err).is_protocol(), "{err:?}");
    // The reply stream could not be trusted, so the connection was reset: the client
    // works again on a new one.
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG");
    let stats = client.stats();
    assert_eq!((stats.connection_errors, stats.reconnects), (1, 1));
}

#[tokio::test]
async fn resp3_typed_replies_and_pushes_kept_apart() {
    let server = common::server();
    let (push_tx, mut pushes) = tokio::sync::mpsc::channel(16);
    let client = Client::builder(&server.url())
        .protocol(Protocol::Resp3)
        .push_sender(push_tx)
        .connect()
        .await
        .unwrap();
    let mut conn = client.clone();
    let _: () = conn.hset("h", "f", "v").await.unwrap();
    let map = conn.send(redis::cmd("HGETALL").arg("h")).await.unwrap();
    assert!(matches!(map, Value::Map(_)), "RESP3 map expected: {map:?}");
    let double = conn
        .send(redis::cmd("ZINCRBY").arg("z").arg(1.5).arg("m"))
        .await
        .unwrap();
    assert_eq!(double, Value::Double(1.5));

    // Client-side caching: the invalidation arrives as a push frame on this very
    // connection, between replies. It must not be taken for a reply.
    let on: Value = conn
        .send(redis::cmd("CLIENT").arg("TRACKING").arg("ON"))
        .await
        .unwrap();
    assert_eq!(on, Value::Okay);
    let _: Option<String> = conn.get("tracked").await.unwrap();
    let mut side = common::side(&server).await;
    let _: () = side.set("tracked", "changed").await.unwrap();
    let push = tokio::time::timeout(std::time::Duration::from_secs(5), pushes.recv())
        .await
        .expect("invalidation push within 5 s")
        .expect("push channel open");
    assert_eq!(push.kind, redis::PushKind::Invalidate);
    for i in 0..100 {
        let n: i64 = conn.incr("after", 1).await.unwrap();
        assert_eq!(n, i + 1);
    }
    assert!(client.stats().pushes >= 1);
}
