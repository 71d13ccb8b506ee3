//! Passwords never leave through `Debug`, `Display`, errors or tracing events.
//!
//! Every test here uses passwords no other text contains, and searches everything the
//! library printed, formatted or traced for them.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::StreamExt;
use redis::AsyncCommands;
use redis_lanes::{Client, ErrorKind, Protocol};
use redis_lanes_testkit::RedisServer;

/// The password of the ACL user `alice`.
const ALICE_PW: &str = "alice-s3cr3t-pw";
/// The `default` user's password (`requirepass`).
const DEFAULT_PW: &str = "default-s3cr3t-pw";
/// A password the server refuses.
const WRONG_PW: &str = "wrong-s3cr3t-pw";
/// Also searched for: a password that is percent-encoded in its URL (`%2F` is `/`).
const ENCODED_PW: &str = "enc-s3cr3t%2Fpw";
const DECODED_PW: &str = "enc-s3cr3t/pw";
const SECRETS: [&str; 5] = [ALICE_PW, DEFAULT_PW, WRONG_PW, ENCODED_PW, DECODED_PW];
/// Every secret above contains this; nothing else the tests print does.
const MARK: &str = "s3cr3t";

fn assert_no_secret(what: &str, text: &str) {
    assert!(!text.contains(MARK), "{what} shows a password: {text}");
    for secret in SECRETS {
        assert!(!text.contains(secret), "{what} shows {secret:?}: {text}");
    }
}

/// A server where `alice` (all commands) and `default` need a password.
fn server() -> RedisServer {
    RedisServer::builder()
        .args(["--requirepass", DEFAULT_PW])
        .args(["--user", "alice", "on"])
        .arg(format!(">{ALICE_PW}"))
        .args(["~*", "&*", "+@all"])
        .start()
        .unwrap_or_else(|e| panic!("starting redis-server: {e}"))
}

fn alice_url(server: &RedisServer) -> String {
    format!("redis://alice:{ALICE_PW}@127.0.0.1:{}", server.port())
}

#[tokio::test]
async fn debug_output_never_shows_the_password() {
    let server = server();
    let url = alice_url(&server);

    let builder = Client::builder(&url).client_name("secrets-debug");
    let shown = format!("{builder:?}");
    assert_no_secret("Builder", &shown);
    assert!(shown.contains("alice") && shown.contains("***"), "{shown}");

    for (what, builder) in [
        (
            "Builder::password",
            Client::builder(&server.url()).password(DEFAULT_PW),
        ),
        (
            "a ?password= query",
            Client::builder(&format!("{}/?password={DEFAULT_PW}", server.url())),
        ),
        (
            "an invalid URL",
            Client::builder(&format!("redis://alice:{ALICE_PW}@127.0.0.1:1/notadb")),
        ),
        (
            "a TLS builder with a client key",
            Client::builder(&format!("rediss://alice:{ALICE_PW}@127.0.0.1:1")).tls_client_cert_pem(
                "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "-----BEGIN PRIVATE KEY-----\nkey-s3cr3t-material\n-----END PRIVATE KEY-----\n",
            ),
        ),
    ] {
        assert_no_secret(what, &format!("{builder:?}"));
    }

    let client = Client::builder(&url)
        .client_name("secrets-debug")
        .connect()
        .await
        .expect("alice connects");
    assert_no_secret("Client", &format!("{client:?}"));
    assert_no_secret("Stats", &format!("{:?}", client.stats()));
    let lease = client.exclusive().await.expect("a lease");
    assert_no_secret("Exclusive", &format!("{lease:?}"));
    drop(lease);
    let sub = client.subscriber().await.expect("a subscriber");
    assert_no_secret("Subscriber", &format!("{sub:?}"));
    let (lane, driver) = Client::builder(&url).pair().await.expect("a lane");
    assert_no_secret("Lane", &format!("{lane:?}"));
    assert_no_secret("LaneDriver", &format!("{driver:?}"));
}

#[tokio::test]
async fn invalid_url_errors_never_show_the_password() {
    let urls = [
        format!("redis://alice:{ALICE_PW}@127.0.0.1:99999"),
        format!("redis://alice:{ALICE_PW}@127.0.0.1/notadb"),
        format!("redis://alice:{ALICE_PW}@127.0.0.1?colour=red"),
        format!("redis://alice:{ALICE_PW}@127.0.0.1?protocol=9"),
        format!("http://alice:{ALICE_PW}@127.0.0.1"),
        format!("alice:{ALICE_PW}@127.0.0.1:6379"),
        format!("unix://alice:{ALICE_PW}@/tmp/redis.sock?db=x"),
        format!("redis://127.0.0.1/?password={DEFAULT_PW}&db=x"),
        format!("rediss://alice:{ALICE_PW}@127.0.0.1#insecure"),
        format!("redis://alice:{ENCODED_PW}@127.0.0.1/notadb"),
        format!("redis://alice:{ALICE_PW}@[::1/0"),
    ];
    for url in &urls {
        let err = Client::connect(url).await.expect_err(url);
        assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{url}: {err}");
        assert_no_secret(&format!("Display of the error for {url}"), &err.to_string());
        assert_no_secret(
            &format!("Debug of the error for {url}"),
            &format!("{err:?}"),
        );
        let through_redis = redis::RedisError::from(err);
        assert_no_secret(
            "a RedisError",
            &format!("{through_redis} {through_redis:?}"),
        );
    }
}

#[tokio::test]
async fn a_refused_password_is_not_in_the_error() {
    let server = server();
    let port = server.port();
    let cases = [
        (
            "default user, RESP2",
            Client::builder(&format!("redis://:{WRONG_PW}@127.0.0.1:{port}")),
        ),
        (
            "alice, RESP2",
            Client::builder(&format!("redis://alice:{WRONG_PW}@127.0.0.1:{port}")),
        ),
        (
            "alice, RESP3 (HELLO AUTH)",
            Client::builder(&format!("redis://alice:{WRONG_PW}@127.0.0.1:{port}"))
                .protocol(Protocol::Resp3),
        ),
        (
            "Builder::password",
            Client::builder(&server.url())
                .username("alice")
                .password(WRONG_PW),
        ),
        (
            "a percent-encoded password",
            Client::builder(&format!("redis://alice:{ENCODED_PW}@127.0.0.1:{port}")),
        ),
    ];
    for (what, builder) in cases {
        let err = builder.connect().await.expect_err(what);
        assert_eq!(err.kind(), ErrorKind::Auth, "{what}: {err}");
        let text = err.to_string();
        assert!(text.contains("WRONGPASS"), "{what}: {text}");
        assert_no_secret(what, &text);
        assert_no_secret(what, &format!("{err:?}"));
        let through_redis = redis::RedisError::from(err);
        assert_no_secret(what, &format!("{through_redis} {through_redis:?}"));
    }
}

/// Everything tracing formats, at every level, from every thread.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Capture {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

/// One process-wide subscriber: the library's tasks run on runtime threads, where a
/// thread-local default would not see them. The other tests' events land here too.
fn capture() -> &'static Capture {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(capture.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");
        capture
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tracing_events_never_show_the_password() {
    let capture = capture();
    tracing::info!("secrets-probe: the capture works");
    let server = server();
    let client = Client::builder(&alice_url(&server))
        .protocol(Protocol::Resp3)
        .client_name("secrets-trace")
        .blocking_grace(Duration::from_millis(200))
        .connect()
        .await
        .expect("alice connects");
    let mut conn = client.clone();
    conn.set::<_, _, ()>("k", "v").await.unwrap();
    let _: (String, i64) = redis::pipe()
        .get("k")
        .incr("n", 1)
        .query_async(&mut conn)
        .await
        .unwrap();

    // A blocking lane (its own handshake), cancelled mid-block (the recovery path).
    let cancelled = tokio::time::timeout(
        Duration::from_millis(100),
        conn.blpop::<_, Option<(String, String)>>("jobs", 5.0),
    )
    .await;
    assert!(cancelled.is_err());
    conn.rpush::<_, _, ()>("jobs", "j").await.unwrap();

    // An exclusive lease that changes state: its reset replays the handshake (HELLO AUTH).
    {
        let mut lease = client.exclusive().await.unwrap();
        redis::cmd("SELECT")
            .arg(3)
            .query_async::<()>(&mut lease)
            .await
            .unwrap();
    }
    let mut lease = client.exclusive().await.unwrap();
    let _: Option<String> = lease.get("k").await.unwrap();
    drop(lease);

    // A subscriber, with a message.
    let mut sub = client.subscriber().await.unwrap();
    sub.subscribe("news").await.unwrap();
    conn.publish::<_, _, i64>("news", "hello").await.unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), sub.next()).await;

    // A refused password.
    let refused = Client::builder(&format!(
        "redis://alice:{WRONG_PW}@127.0.0.1:{}",
        server.port()
    ))
    .connect()
    .await;
    assert!(refused.is_err_and(|e| e.is_auth()));

    // A connection that dies under the client: its lanes report why.
    let mut server = server;
    server.stop();
    let lane_failed = common::eventually(Duration::from_secs(5), || async {
        capture.text().contains("lane failed")
    })
    .await;
    drop((sub, conn));
    client.close().await;

    let text = capture.text();
    assert!(text.contains("secrets-probe"), "nothing was captured");
    assert!(
        lane_failed,
        "the library's own events were not captured: {text}"
    );
    assert_no_secret("the tracing output", &text);
}
