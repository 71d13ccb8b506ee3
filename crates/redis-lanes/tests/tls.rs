//! TLS (`rediss://`) against a real `redis-server` with a TLS port and certificates the
//! test kit makes per server: every kind of lane goes through TLS, the server is verified
//! by default, and each way of getting it wrong is a clear error.

mod common;

use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use redis_lanes::{Builder, Client, ErrorKind};
use redis_lanes_testkit::{ClientAuth, RedisServer, ServerBuilder};

const SETTLE: Duration = Duration::from_secs(5);

fn start(builder: ServerBuilder) -> RedisServer {
    builder
        .start()
        .unwrap_or_else(|e| panic!("starting a TLS redis-server: {e}"))
}

fn tls_server() -> RedisServer {
    start(RedisServer::builder().tls(true))
}

fn tls_url(server: &RedisServer) -> String {
    server.tls_url().expect("the server has a TLS port")
}

/// A builder for the server's TLS URL that trusts the kit's CA.
fn trusting(server: &RedisServer) -> Builder {
    let ca = server.tls_certs().expect("TLS certificates").ca_pem();
    Client::builder(&tls_url(server)).tls_ca_pem(ca)
}

/// `CLIENT LIST` lines of connections named `name` that came in through the TLS port.
async fn tls_connections(
    side: &mut redis::aio::MultiplexedConnection,
    server: &RedisServer,
    name: &str,
) -> (usize, Vec<String>) {
    let port = server.tls_port().expect("TLS port");
    let lines = common::named(side, name).await;
    let tls = lines
        .iter()
        .filter(|l| l.contains(&format!(" laddr=127.0.0.1:{port} ")))
        .count();
    (tls, lines)
}

#[tokio::test]
async fn commands_and_pipelines_run_over_tls() {
    let server = tls_server();
    let client = trusting(&server)
        .client_name("tls-basic")
        .connect()
        .await
        .expect("connect over TLS");
    let mut conn = client.clone();
    conn.set::<_, _, ()>("greeting", "hello").await.unwrap();
    assert_eq!(conn.get::<_, String>("greeting").await.unwrap(), "hello");
    let (a, b): (i64, i64) = redis::pipe()
        .atomic()
        .incr("n", 1)
        .incr("n", 2)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!((a, b), (1, 3));
    let many: Vec<i64> = {
        let mut pipe = redis::pipe();
        for i in 0..100 {
            pipe.incr("m", i);
        }
        pipe.query_async(&mut conn).await.unwrap()
    };
    assert_eq!(many.last(), Some(&4950));

    // The connection really is the TLS port's, not the side channel's plain port.
    let mut side = common::side(&server).await;
    let (tls, lines) = tls_connections(&mut side, &server, "tls-basic").await;
    assert_eq!((tls, lines.len()), (1, 1), "{lines:?}");

    client.close().await;
    let gone = common::eventually(SETTLE, || {
        let mut side = side.clone();
        async move { common::named(&mut side, "tls-basic").await.is_empty() }
    })
    .await;
    assert!(gone, "the TLS connection outlived close()");
}

#[tokio::test]
async fn credentials_db_and_a_ca_file_in_a_rediss_url() {
    let server = start(
        RedisServer::builder()
            .tls(true)
            .args(["--requirepass", "tls-pw"]),
    );
    let certs = server.tls_certs().expect("certs");
    let url = format!(
        "rediss://default:tls-pw@localhost:{}/3",
        server.tls_port().expect("port")
    );
    let client = Client::builder(&url)
        .tls_ca_file(certs.ca_path())
        .connect()
        .await
        .expect("connect with credentials over TLS, by name");
    let mut conn = client.clone();
    conn.set::<_, _, ()>("in-db-3", "yes").await.unwrap();

    let mut side = redis::Client::open(format!("redis://:tls-pw@127.0.0.1:{}/3", server.port()))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    assert_eq!(side.get::<_, String>("in-db-3").await.unwrap(), "yes");
}

#[tokio::test]
async fn a_blocking_command_runs_on_a_tls_lane_and_is_cancelled_on_the_server() {
    let server = tls_server();
    let client = trusting(&server)
        .client_name("tls-blocking")
        .connect()
        .await
        .unwrap();
    let mut side = common::side(&server).await;

    // A BLPOP that gets its element.
    let waiter = {
        let mut conn = client.clone();
        tokio::spawn(async move { conn.blpop::<_, Option<(String, String)>>("jobs", 5.0).await })
    };
    let blocked = common::eventually(SETTLE, || {
        let mut side = side.clone();
        async move {
            common::named(&mut side, "tls-blocking")
                .await
                .iter()
                .any(|l| l.contains("flags=b"))
        }
    })
    .await;
    assert!(blocked, "the BLPOP never blocked");
    side.rpush::<_, _, ()>("jobs", "job-1").await.unwrap();
    let got = tokio::time::timeout(SETTLE, waiter)
        .await
        .expect("the BLPOP returns")
        .unwrap()
        .unwrap();
    assert_eq!(got, Some(("jobs".to_owned(), "job-1".to_owned())));
    // Two connections now: the shared lane and the blocking lane, both TLS.
    let (tls, lines) = tls_connections(&mut side, &server, "tls-blocking").await;
    assert_eq!((tls, lines.len()), (2, 2), "{lines:?}");

    // A BLPOP dropped mid-block: unblocked on the server before the next command.
    let mut conn = client.clone();
    let cancelled = tokio::time::timeout(
        Duration::from_millis(150),
        conn.blpop::<_, Option<(String, String)>>("jobs", 5.0),
    )
    .await;
    assert!(cancelled.is_err(), "the BLPOP should still be waiting");
    conn.rpush::<_, _, ()>("jobs", "job-2").await.unwrap();
    let unblocked = common::eventually(SETTLE, || {
        let mut side = side.clone();
        async move {
            !common::named(&mut side, "tls-blocking")
                .await
                .iter()
                .any(|l| l.contains("flags=b"))
        }
    })
    .await;
    assert!(unblocked, "the cancelled BLPOP still blocks on the server");
    // Its recovery is over once the blocking lane is back (or closed).
    let recovered = common::eventually(SETTLE, || {
        let busy = client.stats().blocking_busy;
        async move { busy == 0 }
    })
    .await;
    assert!(recovered, "{:?}", client.stats());
    assert_eq!(
        side.lrange::<_, Vec<String>>("jobs", 0, -1).await.unwrap(),
        ["job-2"],
        "the push after the cancel was taken by the cancelled BLPOP"
    );
    assert!(client.stats().blocking_cancels >= 1, "{:?}", client.stats());
}

#[tokio::test]
async fn exclusive_leases_and_transactions_run_over_tls() {
    let server = tls_server();
    let client = trusting(&server)
        .client_name("tls-exclusive")
        .connect()
        .await
        .unwrap();
    let mut side = common::side(&server).await;
    {
        let mut lease = client.exclusive().await.expect("an exclusive lane");
        redis::cmd("SELECT")
            .arg(5)
            .query_async::<()>(&mut lease)
            .await
            .unwrap();
        lease.set::<_, _, ()>("leased", 1).await.unwrap();
        let id = lease.client_id().expect("CLIENT ID");
        let port = server.tls_port().expect("port");
        let list: String = redis::cmd("CLIENT")
            .arg("LIST")
            .query_async(&mut side)
            .await
            .unwrap();
        let line = list
            .lines()
            .find(|l| l.starts_with(&format!("id={id} ")))
            .unwrap_or_else(|| panic!("lease {id} not in {list}"));
        assert!(
            line.contains(&format!(" laddr=127.0.0.1:{port} ")),
            "{line}"
        );
    }
    let total: i64 = client
        .transaction(&["balance"], async |conn, pipe| {
            let now: Option<i64> = conn.get("balance").await?;
            pipe.set("balance", now.unwrap_or(0) + 10)
                .ignore()
                .get("balance");
            Ok::<_, redis::RedisError>(
                pipe.query_async::<Option<(i64,)>>(conn)
                    .await?
                    .map(|(b,)| b),
            )
        })
        .await
        .unwrap();
    assert_eq!(total, 10);
    let mut db5 = redis::Client::open(format!("{}/5", server.url()))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    assert_eq!(db5.get::<_, i64>("leased").await.unwrap(), 1);
    let (tls, lines) = tls_connections(&mut side, &server, "tls-exclusive").await;
    assert_eq!(tls, lines.len(), "a connection bypassed TLS: {lines:?}");
    assert!(tls >= 2, "{lines:?}");
}

#[tokio::test]
async fn a_subscriber_receives_over_tls() {
    let server = tls_server();
    let client = trusting(&server)
        .client_name("tls-sub")
        .connect()
        .await
        .unwrap();
    let mut sub = client.subscriber().await.expect("a TLS subscriber");
    sub.subscribe("news").await.unwrap();
    let mut conn = client.clone();
    assert_eq!(conn.publish::<_, _, i64>("news", "hello").await.unwrap(), 1);
    let message = tokio::time::timeout(SETTLE, sub.next())
        .await
        .expect("a message in time")
        .expect("the stream is open")
        .expect("a message, not an error");
    assert_eq!(message.payload(), b"hello");
    let mut side = common::side(&server).await;
    let (tls, lines) = tls_connections(&mut side, &server, "tls-sub").await;
    assert_eq!((tls, lines.len()), (2, 2), "{lines:?}");
}

/// Batches far larger than the socket buffers, read slowly by the server, and many
/// large writers at once: TLS under write pressure. (The exact case of ciphertext left in
/// rustls after the driver's last write is forced, deterministically, by the unit test in
/// `src/transport_tests.rs`; here timing decides whether it happens.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_batches_over_tls_complete() {
    let server = start(
        RedisServer::builder()
            .tls(true)
            .args(["--enable-debug-command", "yes"]),
    );
    let client = trusting(&server).connect().await.unwrap();
    let value = "x".repeat(256 * 1024);
    let mut pipe = redis::pipe();
    // 16 MiB, more than the socket buffers hold, read by a server that pauses after every
    // value: the client's last write lands in a full socket.
    for i in 0..64 {
        pipe.set(format!("big:{i}"), &value).ignore();
        pipe.cmd("DEBUG").arg("SLEEP").arg(0.01).ignore();
    }
    pipe.get("big:63");
    let mut conn = client.clone();
    let (last,): (String,) =
        tokio::time::timeout(Duration::from_secs(30), pipe.query_async(&mut conn))
            .await
            .expect("the pipeline finished")
            .unwrap();
    assert_eq!(last.len(), value.len());
    // Many callers at once, each with a large value, so writes pile up too.
    let mut tasks = Vec::new();
    for i in 0..16 {
        let mut conn = client.clone();
        let value = value.clone();
        tasks.push(tokio::spawn(async move {
            conn.set::<_, _, ()>(format!("par:{i}"), &value).await?;
            conn.get::<_, String>(format!("par:{i}")).await
        }));
    }
    for task in tasks {
        let got = tokio::time::timeout(Duration::from_secs(30), task)
            .await
            .expect("the task finished")
            .unwrap()
            .unwrap();
        assert_eq!(got.len(), value.len());
    }
}

#[tokio::test]
async fn the_default_roots_reject_a_private_ca() {
    let server = tls_server();
    let err = Client::connect(&tls_url(&server))
        .await
        .expect_err("the kit's CA is not a web root");
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    assert!(err.is_connection());
    let text = err.to_string();
    assert!(text.contains("TLS verification"), "{text}");
    assert!(text.contains("certificate"), "{text}");
    assert!(text.contains("unknown issuer"), "{text}");

    // Another CA is no better than none.
    let other = tls_server();
    let err = Client::builder(&tls_url(&server))
        .tls_ca_pem(other.tls_certs().expect("certs").ca_pem())
        .connect()
        .await
        .expect_err("a CA that did not sign the certificate");
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    assert!(err.to_string().contains("unknown issuer"), "{err}");
}

#[tokio::test]
async fn a_name_mismatch_is_rejected_unless_the_server_name_is_set() {
    let server = start(RedisServer::builder().tls_server_names(["redis.test"]));
    // By IP address, to a certificate issued only for a name.
    let err = trusting(&server)
        .connect()
        .await
        .expect_err("127.0.0.1 is not in the certificate");
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    let text = err.to_string();
    assert!(text.contains("TLS verification"), "{text}");
    assert!(text.contains("name mismatch"), "{text}");
    assert!(text.contains("redis.test"), "{text}");

    let err = trusting(&server)
        .tls_server_name("other.test")
        .connect()
        .await
        .expect_err("the wrong name");
    assert!(err.to_string().contains("name mismatch"), "{err}");

    let client = trusting(&server)
        .tls_server_name("redis.test")
        .connect()
        .await
        .expect("the name the certificate was issued for");
    let mut conn = client.clone();
    assert_eq!(
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .unwrap(),
        "PONG"
    );
}

#[tokio::test]
async fn required_client_certificates_are_presented() {
    let server = start(RedisServer::builder().tls_auth_clients(ClientAuth::Yes));
    let certs = server.tls_certs().expect("certs").clone();

    let err = trusting(&server)
        .connect()
        .await
        .expect_err("no client certificate");
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    assert!(err.to_string().contains("client certificate"), "{err}");

    // A certificate from another CA is refused too.
    let stranger = tls_server();
    let stranger = stranger.tls_certs().expect("certs");
    let err = trusting(&server)
        .tls_client_cert_pem(stranger.client_cert_pem(), stranger.client_key_pem())
        .connect()
        .await
        .expect_err("a client certificate the server does not trust");
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");

    for builder in [
        trusting(&server).tls_client_cert_pem(certs.client_cert_pem(), certs.client_key_pem()),
        trusting(&server).tls_client_cert_files(certs.client_cert_path(), certs.client_key_path()),
    ] {
        let client = builder
            .connect()
            .await
            .expect("with the client certificate");
        let mut conn = client.clone();
        conn.set::<_, _, ()>("mtls", 1).await.unwrap();
        // A blocking lane opens its own connection, with the same certificate.
        let popped: Option<(String, String)> = {
            conn.rpush::<_, _, ()>("q", "x").await.unwrap();
            conn.blpop("q", 1.0).await.unwrap()
        };
        assert_eq!(popped, Some(("q".to_owned(), "x".to_owned())));
    }
}

#[tokio::test]
async fn optional_client_certificates_may_be_left_out() {
    let server = start(RedisServer::builder().tls_auth_clients(ClientAuth::Optional));
    let client = trusting(&server)
        .connect()
        .await
        .expect("no certificate needed");
    let mut conn = client.clone();
    conn.set::<_, _, ()>("k", 1).await.unwrap();
}

#[tokio::test]
async fn invalid_tls_material_is_a_config_error() {
    let server = tls_server();
    let other = tls_server();
    let (certs, other) = (
        server.tls_certs().expect("certs"),
        other.tls_certs().expect("certs"),
    );
    let url = tls_url(&server);
    let cases: Vec<(&str, Builder, &str)> = vec![
        (
            "garbage CA",
            Client::builder(&url).tls_ca_pem("not PEM at all"),
            "no certificate found",
        ),
        (
            "broken CA PEM",
            Client::builder(&url)
                .tls_ca_pem("-----BEGIN CERTIFICATE-----\n%%%\n-----END CERTIFICATE-----\n"),
            "bad PEM",
        ),
        (
            "CA that is not a certificate",
            Client::builder(&url)
                .tls_ca_pem("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
            "trust anchor",
        ),
        (
            "missing CA file",
            Client::builder(&url).tls_ca_file("/nonexistent/redis-lanes/ca.crt"),
            "cannot read",
        ),
        (
            "key that is not PEM",
            trusting(&server).tls_client_cert_pem(certs.client_cert_pem(), "no key here"),
            "no private key found",
        ),
        (
            "key of another certificate",
            trusting(&server).tls_client_cert_pem(certs.client_cert_pem(), other.client_key_pem()),
            "cannot be used together",
        ),
        (
            "certificate that is not PEM",
            trusting(&server).tls_client_cert_pem("nope", certs.client_key_pem()),
            "no certificate found",
        ),
        (
            "server name that is no name",
            trusting(&server).tls_server_name("not a host name"),
            "not a valid DNS name",
        ),
        (
            "TLS options on a plain URL",
            Client::builder(&server.url()).tls_ca_pem(certs.ca_pem()),
            "rediss://",
        ),
    ];
    for (what, builder, needle) in cases {
        let err = builder.connect().await.expect_err(what);
        assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{what}: {err}");
        assert!(err.is_config());
        assert!(err.to_string().contains(needle), "{what}: {err}");
        // The key's PEM is never quoted back.
        assert!(
            !err.to_string().contains("PRIVATE KEY-----\n"),
            "{what}: {err}"
        );
    }
}

#[tokio::test]
async fn tls_to_a_plain_port_fails_clearly() {
    let server = tls_server();
    let url = format!("rediss://127.0.0.1:{}", server.port());
    let err = Client::builder(&url)
        .tls_ca_pem(server.tls_certs().expect("certs").ca_pem())
        .connect_timeout(Duration::from_secs(1))
        .connect()
        .await
        .expect_err("the plain port does not speak TLS");
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    assert!(err.to_string().contains("TLS"), "{err}");
}

#[tokio::test]
async fn a_killed_tls_connection_reconnects_over_tls() {
    let server = tls_server();
    let client = trusting(&server)
        .client_name("tls-reconnect")
        .connect()
        .await
        .unwrap();
    let mut side = common::side(&server).await;
    let old = client.client_id().unwrap();
    assert_eq!(common::kill_client(&mut side, old).await, 1);
    let mut conn = client.clone();
    let back = common::eventually(SETTLE, || {
        let mut conn = conn.clone();
        async move { conn.set::<_, _, ()>("k", 1).await.is_ok() }
    })
    .await;
    assert!(back, "{:?}", client.stats());
    let n: i64 = conn.incr("k", 1).await.unwrap();
    assert_eq!(n, 2);
    assert_eq!(client.stats().reconnects, 1);
    assert_ne!(client.client_id(), Some(old));
    let (tls, lines) = tls_connections(&mut side, &server, "tls-reconnect").await;
    assert_eq!(
        tls, 1,
        "the new connection came in through the TLS port: {lines:?}"
    );
}
