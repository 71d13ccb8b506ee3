//! The `redis::aio::ConnectionLike` contract as the `redis` crate defines it, run against
//! redis-rs's own `MultiplexedConnection` (the control) and `redis_lanes::Client`, in
//! RESP2 and RESP3. Each scenario renders what the `redis` API returned (values, and for
//! errors their kind, `is_timeout()`, `is_connection_dropped()`, `is_io_error()`,
//! `retry_method()` and code); the two renderings must be equal. A scenario where the
//! control passes and redis-lanes differs is a bug, unless redis-lanes refuses the
//! command by design: those are tested on their own at the end, and listed in the
//! README's "Coming from redis-rs".

mod common;

use std::fmt::Debug;
use std::time::Duration;

use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::streams::{StreamRangeReply, StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, RedisResult, Value};
use redis_lanes::{Client, Protocol};
use redis_lanes_testkit::RedisServer;

const GENEROUS: Duration = Duration::from_secs(10);

/// One scenario's rendering, named.
type Rows = Vec<(&'static str, String)>;

/// What a `redis` API call returned, in a form two clients can be compared by.
fn show<T: Debug>(result: RedisResult<T>) -> String {
    match result {
        Ok(value) => format!("ok {value:?}"),
        Err(err) => show_err(&err),
    }
}

fn show_err(err: &redis::RedisError) -> String {
    format!(
        "err kind={:?} timeout={} dropped={} io={} refusal={} retry={:?} code={:?}",
        err.kind(),
        err.is_timeout(),
        err.is_connection_dropped(),
        err.is_io_error(),
        err.is_connection_refusal(),
        err.retry_method(),
        err.code(),
    )
}

fn url(server: &RedisServer, protocol: Protocol, path: &str) -> String {
    let query = match protocol {
        Protocol::Resp3 => "?protocol=resp3",
        _ => "",
    };
    format!("{}{path}{query}", server.url())
}

async fn control(server: &RedisServer, protocol: Protocol) -> MultiplexedConnection {
    redis::Client::open(url(server, protocol, ""))
        .expect("control client")
        .get_multiplexed_async_connection()
        .await
        .expect("control connection")
}

async fn lanes(server: &RedisServer, protocol: Protocol) -> Client {
    Client::builder(&server.url())
        .protocol(protocol)
        .connect()
        .await
        .expect("redis-lanes client")
}

/// Compares the two renderings row by row and fails with every difference at once.
fn assert_same(protocol: Protocol, control: &Rows, ours: &Rows) {
    assert_eq!(control.len(), ours.len(), "{protocol:?}: scenarios differ");
    let differences: Vec<String> = control
        .iter()
        .zip(ours)
        .filter(|(c, o)| c != o)
        .map(|((name, c), (_, o))| format!("{name}:\n  redis-rs:    {c}\n  redis-lanes: {o}"))
        .collect();
    assert!(
        differences.is_empty(),
        "{protocol:?}: redis-lanes differs from redis-rs in {} of {} rows:\n{}",
        differences.len(),
        control.len(),
        differences.join("\n")
    );
}

/// Runs every scenario against both clients on one server, each with its own keys.
async fn run_both<F, Fut>(scenarios: F)
where
    F: Fn(Target, String) -> Fut,
    Fut: std::future::Future<Output = Rows>,
{
    for protocol in [Protocol::Resp2, Protocol::Resp3] {
        let server = common::server();
        let control_rows = scenarios(
            Target::Control(control(&server, protocol).await),
            "ctl".to_owned(),
        )
        .await;
        let our_rows = scenarios(
            Target::Lanes(lanes(&server, protocol).await),
            "lanes".to_owned(),
        )
        .await;
        assert_same(protocol, &control_rows, &our_rows);
    }
}

/// The connection under test.
enum Target {
    Control(MultiplexedConnection),
    Lanes(Client),
}

/// Calls `$body` with the target's connection as `$c`, whichever type it is.
macro_rules! with_conn {
    ($target:expr, $c:ident => $body:expr) => {
        match $target {
            Target::Control($c) => $body,
            Target::Lanes($c) => $body,
        }
    };
}

async fn request_shapes<C: ConnectionLike + Send + Sync>(c: &mut C, p: &str) -> Rows {
    let k = |name: &str| format!("{p}:{name}");
    let mut rows = Rows::new();
    let r = redis::cmd("SET")
        .arg(k("nr"))
        .arg("v")
        .set_no_response(true)
        .exec_async(c)
        .await;
    rows.push(("set_no_response", show(r)));
    rows.push((
        "after set_no_response",
        show(c.get::<_, String>(k("nr")).await),
    ));
    rows.push((
        "empty command",
        show(redis::Cmd::new().query_async::<Value>(c).await),
    ));
    rows.push((
        "empty pipeline",
        show(redis::pipe().query_async::<Value>(c).await),
    ));
    rows.push((
        "empty atomic pipeline",
        show(redis::pipe().atomic().query_async::<Value>(c).await),
    ));
    let r = redis::pipe()
        .set(k("p"), 1)
        .ignore()
        .get(k("p"))
        .incr(k("p"), 2)
        .query_async::<(String, i64)>(c)
        .await;
    rows.push(("pipeline with ignore", show(r)));
    let r = redis::pipe()
        .atomic()
        .set(k("a"), 1)
        .ignore()
        .incr(k("a"), 1)
        .get(k("a"))
        .query_async::<(i64, String)>(c)
        .await;
    rows.push(("atomic pipeline with ignore", show(r)));
    let r = redis::pipe()
        .atomic()
        .cmd("SET")
        .arg(k("q"))
        .get(k("q"))
        .query_async::<Value>(c)
        .await;
    rows.push(("atomic, error at queue time", show(r)));
    let r = redis::pipe()
        .atomic()
        .set(k("x"), "text")
        .incr(k("x"), 1)
        .query_async::<Value>(c)
        .await;
    rows.push(("atomic, error at exec time", show(r)));
    let r = redis::pipe()
        .set(k("y"), "text")
        .incr(k("y"), 1)
        .get(k("y"))
        .query_async::<Value>(c)
        .await;
    rows.push(("pipeline with a server error", show(r)));
    let r = redis::pipe()
        .set(k("y"), "text")
        .incr(k("y"), 1)
        .get(k("y"))
        .ignore_errors()
        .query_async::<Value>(c)
        .await;
    rows.push(("pipeline with ignore_errors", show(r)));
    let _: RedisResult<()> = redis::pipe()
        .hset(k("h"), "f", "v")
        .rpush(k("l"), &[1, 2, 3])
        .zadd(k("z"), "m", 1.5)
        .cmd("XADD")
        .arg(k("s"))
        .arg("1-1")
        .arg("f")
        .arg("v")
        .query_async(c)
        .await;
    let r = redis::pipe()
        .hgetall(k("h"))
        .lrange(k("l"), 0, -1)
        .zrange_withscores(k("z"), 0, -1)
        .cmd("XRANGE")
        .arg(k("s"))
        .arg("-")
        .arg("+")
        .query_async::<Value>(c)
        .await;
    rows.push(("nested replies", show(r)));
    let r = redis::pipe()
        .atomic()
        .hgetall(k("h"))
        .lrange(k("l"), 0, -1)
        .query_async::<Value>(c)
        .await;
    rows.push(("nested replies in a transaction", show(r)));
    rows.push(("get_db", format!("{}", c.get_db())));
    rows
}

async fn scripts<C: ConnectionLike + Send + Sync>(c: &mut C, p: &str) -> Rows {
    let mut rows = Rows::new();
    let key = format!("{p}:script");
    let script = redis::Script::new(
        "redis.call('SET', KEYS[1], ARGV[1]); return redis.call('GET', KEYS[1])",
    );
    let flushed: RedisResult<()> = redis::cmd("SCRIPT").arg("FLUSH").query_async(c).await;
    rows.push(("SCRIPT FLUSH", show(flushed)));
    // The first call finds no script (NOSCRIPT), loads it and runs it; the second runs
    // it by hash.
    for round in ["NOSCRIPT then EVAL", "EVALSHA"] {
        let r = script.key(&key).arg(round).invoke_async::<String>(c).await;
        rows.push((round, show(r)));
    }
    let r = redis::Script::new("return redis.error_reply('MYERR custom')")
        .invoke_async::<_, Value>(c)
        .await;
    rows.push(("script error", show(r)));
    rows
}

async fn data_types<C: ConnectionLike + Send + Sync>(c: &mut C, p: &str) -> Rows {
    let k = |name: &str| format!("{p}:{name}");
    let mut rows = Rows::new();
    // Strings.
    rows.push(("set", show(c.set::<_, _, ()>(k("s"), "hello").await)));
    rows.push((
        "append",
        show(c.append::<_, _, i64>(k("s"), " world").await),
    ));
    rows.push((
        "getrange",
        show(c.getrange::<_, String>(k("s"), 0, 4).await),
    ));
    rows.push(("incr", show(c.incr::<_, _, i64>(k("n"), 5).await)));
    rows.push(("incr float", show(c.incr::<_, _, f64>(k("f"), 1.5).await)));
    rows.push((
        "mget",
        show(c.mget::<_, Vec<Option<String>>>(&[k("s"), k("none")]).await),
    ));
    rows.push(("set_ex", show(c.set_ex::<_, _, ()>(k("e"), 1, 100).await)));
    rows.push(("ttl", show(c.ttl::<_, i64>(k("e")).await)));
    // Lists.
    rows.push((
        "rpush",
        show(c.rpush::<_, _, i64>(k("l"), &[1, 2, 3, 4]).await),
    ));
    rows.push(("lrange", show(c.lrange::<_, Vec<i64>>(k("l"), 0, -1).await)));
    rows.push((
        "lpop count",
        show(
            c.lpop::<_, Vec<i64>>(k("l"), std::num::NonZeroUsize::new(2))
                .await,
        ),
    ));
    rows.push(("llen", show(c.llen::<_, i64>(k("l")).await)));
    // Hashes.
    rows.push((
        "hset_multiple",
        show(
            c.hset_multiple::<_, _, _, ()>(k("h"), &[("a", 1), ("b", 2)])
                .await,
        ),
    ));
    rows.push((
        "hincr",
        show(c.hincr::<_, _, _, i64>(k("h"), "a", 10).await),
    ));
    rows.push((
        "hgetall",
        show(
            c.hgetall::<_, std::collections::BTreeMap<String, i64>>(k("h"))
                .await,
        ),
    ));
    // Sets.
    rows.push((
        "sadd",
        show(c.sadd::<_, _, i64>(k("set"), &["x", "y"]).await),
    ));
    rows.push((
        "smembers",
        show(
            c.smembers::<_, std::collections::BTreeSet<String>>(k("set"))
                .await,
        ),
    ));
    rows.push((
        "sismember",
        show(c.sismember::<_, _, bool>(k("set"), "x").await),
    ));
    // Sorted sets.
    rows.push((
        "zadd_multiple",
        show(
            c.zadd_multiple::<_, _, _, i64>(k("z"), &[(1.0, "a"), (2.5, "b")])
                .await,
        ),
    ));
    rows.push((
        "zincr",
        show(c.zincr::<_, _, _, f64>(k("z"), "a", 0.25).await),
    ));
    rows.push((
        "zrange_withscores",
        show(
            c.zrange_withscores::<_, Vec<(String, f64)>>(k("z"), 0, -1)
                .await,
        ),
    ));
    rows.push((
        "zscore",
        show(c.zscore::<_, _, Option<f64>>(k("z"), "b").await),
    ));
    // Geo, bitmaps, HyperLogLog.
    rows.push((
        "geo_add",
        show(
            c.geo_add::<_, _, i64>(
                k("g"),
                &[
                    (redis::geo::Coord::lon_lat(13.361389, 38.115556), "Palermo"),
                    (redis::geo::Coord::lon_lat(15.087269, 37.502669), "Catania"),
                ],
            )
            .await,
        ),
    ));
    rows.push((
        "geo_dist",
        show(
            c.geo_dist::<_, _, _, Option<f64>>(
                k("g"),
                "Palermo",
                "Catania",
                redis::geo::Unit::Kilometers,
            )
            .await
            .map(|d| d.map(|d| d.round())),
        ),
    ));
    rows.push(("setbit", show(c.setbit::<_, bool>(k("b"), 7, true).await)));
    rows.push(("bitcount", show(c.bitcount::<_, i64>(k("b")).await)));
    rows.push((
        "pfadd",
        show(c.pfadd::<_, _, bool>(k("hll"), &["a", "b", "c"]).await),
    ));
    rows.push(("pfcount", show(c.pfcount::<_, i64>(k("hll")).await)));
    // Streams, without blocking (blocking reads are compared in `blocking_commands`).
    for id in ["1-1", "1-2", "1-3"] {
        let r = c.xadd::<_, _, _, _, String>(k("x"), id, &[("f", id)]).await;
        rows.push(("xadd", show(r)));
    }
    rows.push(("xlen", show(c.xlen::<_, i64>(k("x")).await)));
    rows.push((
        "xrange",
        show(
            c.xrange_all::<_, StreamRangeReply>(k("x"))
                .await
                .map(|r| r.ids.into_iter().map(|e| e.id).collect::<Vec<_>>()),
        ),
    ));
    rows.push((
        "xgroup_create",
        show(c.xgroup_create::<_, _, _, ()>(k("x"), "g", "0").await),
    ));
    let opts = StreamReadOptions::default().group("g", "c").count(2);
    let read = c
        .xread_options::<_, _, StreamReadReply>(&[k("x")], &[">"], &opts)
        .await
        .map(|r| {
            r.keys
                .into_iter()
                .flat_map(|key| key.ids.into_iter().map(|e| e.id))
                .collect::<Vec<_>>()
        });
    rows.push(("xreadgroup", show(read)));
    rows.push((
        "xack",
        show(c.xack::<_, _, _, i64>(k("x"), "g", &["1-1"]).await),
    ));
    rows.push((
        "xpending count",
        show(
            c.xpending::<_, _, redis::streams::StreamPendingReply>(k("x"), "g")
                .await
                .map(|r| r.count()),
        ),
    ));
    // Server errors and conversion errors.
    rows.push(("WRONGTYPE", show(c.lpush::<_, _, i64>(k("s"), 1).await)));
    rows.push(("not an integer", show(c.incr::<_, _, i64>(k("s"), 1).await)));
    rows.push((
        "unknown command",
        show(redis::cmd("NOSUCHCOMMAND").query_async::<Value>(c).await),
    ));
    rows.push(("FromRedisValue error", show(c.get::<_, i64>(k("s")).await)));
    rows.push((
        "FromRedisValue error in a tuple",
        show(c.hgetall::<_, (i64, i64, i64)>(k("h")).await),
    ));
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_shapes_match_redis_rs() {
    run_both(|target, p| async move {
        with_conn!(target, c => { let mut c = c; request_shapes(&mut c, &p).await })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_match_redis_rs() {
    run_both(|target, p| async move {
        with_conn!(target, c => { let mut c = c; scripts(&mut c, &p).await })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_commands_match_redis_rs() {
    run_both(|target, p| async move {
        with_conn!(target, c => { let mut c = c; data_types(&mut c, &p).await })
    })
    .await;
}

/// Blocking commands give the same replies (redis-lanes runs them on a blocking lane).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_commands_match_redis_rs() {
    run_both(|target, p| async move {
        with_conn!(target, c => {
            let mut c = c;
            let k = |name: &str| format!("{p}:{name}");
            let mut rows = Rows::new();
            let _: () = c.rpush(k("l"), &[1, 2]).await.expect("RPUSH");
            rows.push(("blpop ready", show(c.blpop::<_, Option<(String, i64)>>(k("l"), 1.0).await.map(|r| r.map(|(_, v)| v)))));
            rows.push(("blpop timeout", show(c.blpop::<_, Option<(String, i64)>>(k("none"), 0.05).await)));
            rows.push(("blmove", show(c.blmove::<_, _, Option<i64>>(k("l"), k("m"), redis::Direction::Left, redis::Direction::Right, 1.0).await)));
            let _: String = c.xadd(k("x"), "1-1", &[("f", "v")]).await.expect("XADD");
            let opts = StreamReadOptions::default().block(50);
            let read = c
                .xread_options::<_, _, Option<StreamReadReply>>(&[k("x")], &["0"], &opts)
                .await
                .map(|r| r.map(|r| r.keys.len()));
            rows.push(("xread block, ready", show(read)));
            let read = c
                .xread_options::<_, _, Option<StreamReadReply>>(&[k("x")], &["$"], &opts)
                .await
                .map(|r| r.map(|r| r.keys.len()));
            rows.push(("xread block, times out", show(read)));
            rows.push(("wait", show(redis::cmd("WAIT").arg(0).arg(10).query_async::<i64>(&mut c).await)));
            rows
        })
    })
    .await;
}

/// Failures both clients can be made to see: a response timeout, a connection killed
/// under an in-flight command, refused credentials, a refused connection, an ACL
/// denial. The error's kind and predicates must agree.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_kinds_match_redis_rs() {
    for protocol in [Protocol::Resp2, Protocol::Resp3] {
        let mut control_rows = Rows::new();
        let mut our_rows = Rows::new();

        // A response timeout.
        let server = common::server();
        let config = redis::AsyncConnectionConfig::new()
            .set_response_timeout(Some(Duration::from_millis(100)));
        let mut ctl = redis::Client::open(url(&server, protocol, ""))
            .expect("client")
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .expect("control");
        let mut ours = Client::builder(&server.url())
            .protocol(protocol)
            .response_timeout(Some(Duration::from_millis(100)))
            .connect()
            .await
            .expect("connect");
        let slow = || redis::cmd("DEBUG").arg("SLEEP").arg(0.3).clone();
        control_rows.push(("timeout", show(slow().query_async::<Value>(&mut ctl).await)));
        our_rows.push((
            "timeout",
            show(slow().query_async::<Value>(&mut ours).await),
        ));

        // The connection killed while a command is in flight on it.
        for (rows, name) in [(&mut control_rows, "ctl"), (&mut our_rows, "lanes")] {
            let server = common::server();
            let mut side = common::side(&server).await;
            let kill = async {
                let shown = common::until_blocked(&side, "blpop").await;
                assert!(shown, "the BLPOP never blocked");
                let _: i64 = redis::cmd("CLIENT")
                    .arg("KILL")
                    .arg("TYPE")
                    .arg("normal")
                    .arg("SKIPME")
                    .arg("yes")
                    .query_async(&mut side)
                    .await
                    .expect("KILL");
            };
            let pop = redis::cmd("BLPOP").arg(name).arg(0).clone();
            let result = if name == "ctl" {
                let mut c = control(&server, protocol).await;
                let (r, ()) = tokio::join!(pop.query_async::<Value>(&mut c), kill);
                r
            } else {
                let mut c = lanes(&server, protocol).await;
                let (r, ()) = tokio::join!(pop.query_async::<Value>(&mut c), kill);
                r
            };
            rows.push(("connection killed mid-command", show(result)));
        }

        // Refused credentials, at connect.
        let server = common::server_with(&["--requirepass", "secret"]);
        let wrong = format!("redis://:wrong@{}", server.addr());
        let wrong_url = match protocol {
            Protocol::Resp3 => format!("{wrong}/?protocol=resp3"),
            _ => wrong.clone(),
        };
        let ctl_err = redis::Client::open(wrong_url)
            .expect("client")
            .get_multiplexed_async_connection()
            .await
            .map(|_| ());
        let our_err = Client::builder(&wrong)
            .protocol(protocol)
            .connect()
            .await
            .map(|_| ())
            .map_err(redis::RedisError::from);
        if protocol == Protocol::Resp3 {
            // Intended difference: redis-rs passes the server's WRONGPASS from `HELLO 3
            // AUTH` through as an extension error (in RESP2 it says AuthenticationFailed);
            // redis-lanes says AuthenticationFailed in both.
            let ctl_err = ctl_err.expect_err("refused");
            assert_eq!(ctl_err.code(), Some("WRONGPASS"));
            let our_err = our_err.expect_err("refused");
            assert_eq!(our_err.kind(), redis::ErrorKind::AuthenticationFailed);
        } else {
            control_rows.push(("wrong password", show(ctl_err)));
            our_rows.push(("wrong password", show(our_err)));
        }

        // A refused connection.
        let closed_port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("addr").port()
        };
        let nowhere = format!("redis://127.0.0.1:{closed_port}");
        let ctl_err = redis::Client::open(nowhere.as_str())
            .expect("client")
            .get_multiplexed_async_connection()
            .await
            .map(|_| ());
        control_rows.push(("connection refused", show(ctl_err)));
        let our_err = Client::builder(&nowhere)
            .reconnect(false)
            .connect()
            .await
            .map(|_| ())
            .map_err(redis::RedisError::from);
        our_rows.push(("connection refused", show(our_err)));

        // An ACL denial of one command.
        let server = common::server();
        let mut admin = common::side(&server).await;
        let _: () = redis::cmd("ACL")
            .arg("SETUSER")
            .arg("limited")
            .arg("on")
            .arg(">pw")
            .arg("~*")
            .arg("+@all")
            .arg("-debug")
            .query_async(&mut admin)
            .await
            .expect("ACL SETUSER");
        let limited = format!("redis://limited:pw@{}", server.addr());
        let mut ctl = redis::Client::open(limited.as_str())
            .expect("client")
            .get_multiplexed_async_connection()
            .await
            .expect("control");
        let mut ours = Client::connect(&limited).await.expect("connect");
        let denied = || redis::cmd("DEBUG").arg("SLEEP").arg(0).clone();
        control_rows.push((
            "NOPERM",
            show(denied().query_async::<Value>(&mut ctl).await),
        ));
        our_rows.push((
            "NOPERM",
            show(denied().query_async::<Value>(&mut ours).await),
        ));

        assert_same(protocol, &control_rows, &our_rows);
        for (name, row) in &our_rows {
            assert!(row.starts_with("err "), "{name} did not fail: {row}");
        }
    }
}

/// Client-side caching invalidations reach the push channel of both, as pushes of the
/// same kind and data, in RESP3.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracking_invalidations_match_redis_rs() {
    let server = common::server();
    let mut side = common::side(&server).await;
    let (ctl_tx, mut ctl_pushes) = tokio::sync::mpsc::unbounded_channel();
    let config = redis::AsyncConnectionConfig::new().set_push_sender(ctl_tx);
    let mut ctl = redis::Client::open(url(&server, Protocol::Resp3, ""))
        .expect("client")
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .expect("control");
    let (our_tx, mut our_pushes) = tokio::sync::mpsc::channel(16);
    let mut ours = Client::builder(&server.url())
        .protocol(Protocol::Resp3)
        .push_sender(our_tx)
        .connect()
        .await
        .expect("connect");
    let tracking = || redis::cmd("CLIENT").arg("TRACKING").arg("ON").clone();
    assert_eq!(
        show(tracking().query_async::<Value>(&mut ctl).await),
        show(tracking().query_async::<Value>(&mut ours).await)
    );
    let _: Option<String> = ctl.get("tracked:ctl").await.expect("GET");
    let _: Option<String> = ours.get("tracked:lanes").await.expect("GET");
    let _: () = side.set("tracked:ctl", 1).await.expect("SET");
    let _: () = side.set("tracked:lanes", 1).await.expect("SET");
    let ctl_push = tokio::time::timeout(GENEROUS, ctl_pushes.recv())
        .await
        .expect("control push")
        .expect("open");
    let our_push = tokio::time::timeout(GENEROUS, our_pushes.recv())
        .await
        .expect("redis-lanes push")
        .expect("open");
    assert_eq!(ctl_push.kind, redis::PushKind::Invalidate);
    assert_eq!(our_push.kind, ctl_push.kind);
    let keys = |push: &redis::PushInfo| {
        format!("{:?}", push.data)
            .replace("ctl", "KEY")
            .replace("lanes", "KEY")
    };
    assert_eq!(keys(&our_push), keys(&ctl_push));
}

/// The intended differences (README, "Coming from redis-rs"): commands that would change
/// the state of a connection every clone shares are refused before anything is sent,
/// with an error that names the API to use. The control runs them.
#[tokio::test]
async fn state_changing_commands_are_refused_where_redis_rs_runs_them() {
    let server = common::server();
    let mut ctl = control(&server, Protocol::Resp2).await;
    let mut ours = lanes(&server, Protocol::Resp2).await;
    let cases: [(redis::Cmd, &str); 5] = [
        (redis::cmd("SELECT").arg(1).clone(), "exclusive()"),
        (redis::cmd("WATCH").arg("k").clone(), "transaction()"),
        (redis::cmd("MULTI"), "pipe().atomic()"),
        (
            redis::cmd("CLIENT").arg("REPLY").arg("ON").clone(),
            "reply order",
        ),
        (redis::cmd("HELLO").arg(2).clone(), "Builder::protocol"),
    ];
    for (cmd, hint) in cases {
        let theirs = cmd.query_async::<Value>(&mut ctl).await;
        assert!(theirs.is_ok(), "redis-rs runs it: {theirs:?}");
        if theirs.as_ref().is_ok_and(|v| *v == Value::Okay) {
            // Undo what the control just did to its own connection.
            let _: RedisResult<Value> = redis::cmd("DISCARD").query_async(&mut ctl).await;
            let _: RedisResult<Value> = redis::cmd("UNWATCH").query_async(&mut ctl).await;
        }
        let err = cmd
            .query_async::<Value>(&mut ours)
            .await
            .expect_err("refused");
        assert_eq!(err.kind(), redis::ErrorKind::Client, "{err}");
        let lanes_err = common::lanes_error(&err);
        assert!(lanes_err.is_refused(), "{lanes_err}");
        assert!(err.to_string().contains(hint), "{err} names {hint}");
    }
}
