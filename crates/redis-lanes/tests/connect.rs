//! Connecting: URL forms, credentials, databases, names, and clear errors for bad input.

mod common;

use std::time::Duration;

use redis::AsyncCommands;
use redis_lanes::{Client, ErrorKind, Protocol};

#[tokio::test]
async fn bad_urls_are_config_errors() {
    for url in [
        "",
        "localhost:6379",
        "http://h",
        "redis://h/x",
        "redis://h?nope=1",
    ] {
        let err = Client::connect(url).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidConfig, "{url}: {err}");
        assert!(err.is_retry_safe());
    }
    // TLS is supported (tests/tls.rs), but never with verification turned off, and TLS
    // options never quietly apply to a plain URL.
    let err = Client::connect("rediss://127.0.0.1:6379#insecure")
        .await
        .unwrap_err();
    assert!(err.is_config());
    assert!(err.to_string().contains("verification"), "{err}");
    let err = Client::builder("redis://127.0.0.1:6379")
        .tls_server_name("localhost")
        .connect()
        .await
        .unwrap_err();
    assert!(err.is_config());
    assert!(err.to_string().contains("rediss://"), "{err}");
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error() {
    // Bind then release a port so nothing listens on it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let err = Client::connect(&format!("redis://127.0.0.1:{port}"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    assert!(err.is_connection());
}

#[tokio::test]
async fn a_silent_peer_hits_the_connect_timeout() {
    // Accepts the TCP connection but never answers the handshake.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let _keep = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let started = std::time::Instant::now();
    let err = Client::builder(&format!("redis://{addr}"))
        .connect_timeout(Duration::from_millis(200))
        .connect()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Connect, "{err}");
    assert!(err.to_string().contains("timed out"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn passwords_and_acl_users() {
    let server = common::server_with(&["--requirepass", "s3cret"]);
    let base = format!("redis://127.0.0.1:{}", server.port());

    let err = Client::connect(&base).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "no password: {err}");
    let err = Client::connect(&format!("redis://:wrong@127.0.0.1:{}", server.port()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "wrong password: {err}");
    assert!(!err.to_string().contains("wrong"), "password leaked: {err}");

    let mut ok = Client::connect(&format!("redis://:s3cret@127.0.0.1:{}", server.port()))
        .await
        .unwrap();
    let _: () = ok
        .send(
            &redis::cmd("ACL")
                .arg("SETUSER")
                .arg("alice")
                .arg("on")
                .arg(">pw")
                .arg("~*")
                .arg("+@all")
                .clone(),
        )
        .await
        .map(|_| ())
        .unwrap();
    let _: () = ok.set("k", 1).await.unwrap();

    let mut alice = Client::connect(&format!("redis://alice:pw@127.0.0.1:{}", server.port()))
        .await
        .unwrap();
    let who: String = redis::cmd("ACL")
        .arg("WHOAMI")
        .query_async(&mut alice)
        .await
        .unwrap();
    assert_eq!(who, "alice");
    let err = Client::connect(&format!("redis://alice:nope@127.0.0.1:{}", server.port()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");

    // The same credentials through RESP3's HELLO.
    let mut resp3 = Client::builder(&base)
        .username("alice")
        .password("pw")
        .protocol(Protocol::Resp3)
        .connect()
        .await
        .unwrap();
    let who: String = redis::cmd("ACL")
        .arg("WHOAMI")
        .query_async(&mut resp3)
        .await
        .unwrap();
    assert_eq!(who, "alice");
    let err = Client::builder(&base)
        .password("bad")
        .protocol(Protocol::Resp3)
        .connect()
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
}

#[tokio::test]
async fn an_acl_denial_of_a_command_is_a_server_error_not_a_dead_lane() {
    let server = common::server();
    let admin = common::client(&server).await;
    let _: redis::Value = admin
        .send(
            &redis::cmd("ACL")
                .arg("SETUSER")
                .arg("ro")
                .arg("on")
                .arg(">pw")
                .arg("~*")
                .arg("+@read")
                .arg("+client")
                .clone(),
        )
        .await
        .unwrap();
    let mut ro = Client::connect(&format!("redis://ro:pw@127.0.0.1:{}", server.port()))
        .await
        .unwrap();
    let err = ro.set::<_, _, ()>("k", 1).await.unwrap_err();
    assert_eq!(err.code(), Some("NOPERM"), "{err:?}");
    let v: Option<String> = ro.get("k").await.unwrap();
    assert_eq!(v, None);
}

#[tokio::test]
async fn database_from_url_and_builder() {
    let server = common::server();
    let mut db3 = Client::connect(&format!("{}/3", server.url()))
        .await
        .unwrap();
    let _: () = db3.set("where", "three").await.unwrap();
    let mut db0 = common::client(&server).await;
    let none: Option<String> = db0.get("where").await.unwrap();
    assert_eq!(none, None);
    let mut again = Client::builder(&server.url())
        .db(3)
        .connect()
        .await
        .unwrap();
    let v: String = again.get("where").await.unwrap();
    assert_eq!(v, "three");
    assert_eq!(redis::aio::ConnectionLike::get_db(&again), 3);

    let err = Client::connect(&format!("{}/999", server.url()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Handshake, "{err}");
    assert!(err.to_string().contains("SELECT 999"), "{err}");
}

#[tokio::test]
async fn client_name_is_set() {
    let server = common::server();
    for protocol in [Protocol::Resp2, Protocol::Resp3] {
        let mut client = Client::builder(&server.url())
            .client_name("lanes-test")
            .protocol(protocol)
            .connect()
            .await
            .unwrap();
        let name: String = redis::cmd("CLIENT")
            .arg("GETNAME")
            .query_async(&mut client)
            .await
            .unwrap();
        assert_eq!(name, "lanes-test");
    }
}

#[tokio::test]
async fn unix_sockets() {
    let server = redis_lanes_testkit::RedisServer::builder()
        .unix_socket(true)
        .start()
        .unwrap();
    let path = server.unix_socket_path().unwrap().display().to_string();
    for url in [
        format!("redis+unix://{path}"),
        format!("unix://{path}?db=2"),
    ] {
        let mut client = Client::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("{url}: {e}"));
        let _: () = client.set("u", &url).await.unwrap();
        let back: String = client.get("u").await.unwrap();
        assert_eq!(back, url);
    }
    let mut db2 = Client::connect(&format!("{}/2", server.url()))
        .await
        .unwrap();
    let v: String = db2.get("u").await.unwrap();
    assert!(v.contains("db=2"));
}

#[test]
fn outside_a_runtime_is_an_error_not_a_panic() {
    let server = common::server();
    let err = futures_lite_block_on(Client::connect(&server.url())).unwrap_err();
    assert!(err.is_config(), "{err}");
    assert!(err.to_string().contains("Tokio runtime"), "{err}");
}

/// Polls a future to completion on the current thread without any runtime.
fn futures_lite_block_on<F: std::future::Future>(fut: F) -> F::Output {
    use std::sync::Arc;
    use std::task::{Context, Poll, Wake};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(std::thread::current())).into();
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::park_timeout(Duration::from_millis(10));
    }
}

#[tokio::test]
async fn a_user_without_client_id_permission_still_connects() {
    let server = common::server();
    let admin = common::client(&server).await;
    let _: redis::Value = admin
        .send(
            redis::cmd("ACL")
                .arg("SETUSER")
                .arg("app")
                .arg("on")
                .arg(">pw")
                .arg("~*")
                .arg("&*")
                .arg("+@read")
                .arg("+@write")
                .arg("+@blocking"),
        )
        .await
        .unwrap();
    let mut app = Client::connect(&format!("redis://app:pw@127.0.0.1:{}", server.port()))
        .await
        .expect("CLIENT ID denied by the ACL must not fail the connection");
    assert_eq!(app.client_id(), None);
    let _: () = app.set("k", 1).await.unwrap();
    // Without a CLIENT ID, a cancelled blocking call falls back to closing its lane.
    let cancelled = tokio::time::timeout(
        Duration::from_millis(100),
        app.blpop::<_, Option<(String, String)>>("q", 0.0),
    )
    .await;
    assert!(cancelled.is_err());
    let fell_back = common::eventually(Duration::from_secs(10), || {
        let app = app.clone();
        async move { app.stats().unblock_fallbacks == 1 }
    })
    .await;
    assert!(fell_back, "{:?}", app.stats());
    let v: i64 = app.get("k").await.unwrap();
    assert_eq!(v, 1);
}

#[tokio::test]
async fn an_acl_denial_in_the_handshake_is_an_auth_error_at_connect() {
    let server = common::server();
    let mut admin = common::side(&server).await;
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "bob", "on", ">pw", "~*", "+@all", "-select"])
        .query_async(&mut admin)
        .await
        .unwrap();
    let url = format!("redis://bob:pw@127.0.0.1:{}/2", server.port());
    let started = std::time::Instant::now();
    let err = Client::connect(&url).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
    assert!(err.to_string().contains("NOPERM"), "{err}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "no retry loop"
    );
    // A disabled user is refused the same way.
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "bob", "off"])
        .query_async(&mut admin)
        .await
        .unwrap();
    let err = Client::connect(&format!("redis://bob:pw@127.0.0.1:{}", server.port()))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Auth, "{err}");
}
