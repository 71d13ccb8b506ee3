//! Tests against the real `redis-server` (installed as the Debian package `redis-server`).

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use redis_lanes_testkit::{ClientAuth, Error, ErrorKind, RedisServer};

/// Sends a raw RESP `PING` without going through the kit, so the kit's own helper is not
/// what is being trusted, and returns the first reply line.
fn raw_ping<S: std::io::Read + Write>(mut stream: S) -> String {
    stream.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).unwrap();
    line.trim_end().to_owned()
}

fn tcp(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}

/// Polls `condition` for up to five seconds.
fn eventually(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        thread::sleep(Duration::from_millis(20));
    }
    condition()
}

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn start_answers_ping() {
    let mut server = RedisServer::start().unwrap();
    assert_eq!(raw_ping(tcp(server.addr())), "+PONG");
    assert_eq!(server.command(&["PING"]).unwrap(), "PONG");
    assert!(server.is_running());
    assert_eq!(server.url(), format!("redis://127.0.0.1:{}", server.port()));
    assert_eq!(server.addr().port(), server.port());
    assert!(server.addr().ip().is_loopback());
    assert!(server.dir().is_dir());
    assert!(process_exists(server.pid()));
    assert!(server.unix_socket_path().is_none());
    assert!(server.unix_url().is_none());
}

#[test]
fn persistence_is_off() {
    let server = RedisServer::start().unwrap();
    // `command` does not decode arrays, so read the exact `CONFIG GET` replies raw.
    let config_get = |name: &str, expected: &[u8]| {
        let mut stream = tcp(server.addr());
        let request = format!(
            "*3\r\n$6\r\nCONFIG\r\n$3\r\nGET\r\n${}\r\n{name}\r\n",
            name.len()
        );
        stream.write_all(request.as_bytes()).unwrap();
        let mut reply = vec![0; expected.len()];
        std::io::Read::read_exact(&mut stream, &mut reply).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&reply),
            String::from_utf8_lossy(expected)
        );
    };
    config_get("save", b"*2\r\n$4\r\nsave\r\n$0\r\n\r\n");
    config_get("appendonly", b"*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n");
    // Nothing but the log and the captured output: no dump.rdb, no appendonlydir.
    assert_eq!(server.command(&["SET", "k", "v"]).unwrap(), "OK");
    let mut names: Vec<_> = std::fs::read_dir(server.dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["redis.log", "redis.out"]);
}

#[test]
fn two_servers_get_different_ports() {
    let first = RedisServer::start().unwrap();
    let second = RedisServer::start().unwrap();
    assert_ne!(first.port(), second.port());
    assert_ne!(first.dir(), second.dir());
    assert_eq!(raw_ping(tcp(first.addr())), "+PONG");
    assert_eq!(raw_ping(tcp(second.addr())), "+PONG");
}

#[test]
fn extra_args_are_applied() {
    let server = RedisServer::builder()
        .args(["--requirepass", "x"])
        .start()
        .unwrap();
    assert!(raw_ping(tcp(server.addr())).starts_with("-NOAUTH"));
    let error = server.command(&["PING"]).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ServerReply);
    assert!(error.to_string().starts_with("NOAUTH"), "{error}");
    assert_eq!(server.command(&["AUTH", "x"]).unwrap(), "OK");

    let server = RedisServer::builder()
        .arg("--databases")
        .arg("1")
        .start()
        .unwrap();
    let error = server.command(&["SELECT", "1"]).unwrap_err();
    assert!(error.to_string().contains("out of range"), "{error}");
}

#[test]
fn restart_keeps_port_and_starts_a_new_process() {
    let mut server = RedisServer::builder().unix_socket(true).start().unwrap();
    let (port, pid, socket) = (
        server.port(),
        server.pid(),
        server.unix_socket_path().unwrap().to_owned(),
    );
    server.command(&["SET", "k", "v"]).unwrap();

    server.restart().unwrap();
    assert_eq!(server.port(), port);
    assert_ne!(server.pid(), pid);
    assert!(eventually(|| !process_exists(pid)));
    assert_eq!(server.unix_socket_path(), Some(socket.as_path()));
    assert_eq!(raw_ping(tcp(server.addr())), "+PONG");
    assert_eq!(
        raw_ping(std::os::unix::net::UnixStream::connect(&socket).unwrap()),
        "+PONG"
    );
    // Persistence is off, so the restarted server starts empty.
    assert_eq!(server.command(&["GET", "k"]).unwrap(), "");
}

#[test]
fn stop_is_idempotent_and_restart_revives() {
    let mut server = RedisServer::start().unwrap();
    let pid = server.pid();
    server.stop();
    server.stop();
    assert!(!server.is_running());
    assert!(!process_exists(pid));
    assert_eq!(server.command(&["PING"]).unwrap_err().kind(), ErrorKind::Io);
    assert!(server.log_tail(50).contains("eady to accept connections"));

    server.restart().unwrap();
    assert!(server.is_running());
    assert_eq!(server.command(&["PING"]).unwrap(), "PONG");
}

#[test]
fn restart_fails_cleanly_when_the_port_is_taken() {
    let mut server = RedisServer::start().unwrap();
    server.stop();
    // std's listener, not a Redis: if the kit mistook it for the server, `restart` would
    // hang on the PING reply instead of reporting the bind failure.
    let squatter = std::net::TcpListener::bind(server.addr()).unwrap();
    let error = server.restart().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Startup);
    let message = error.to_string();
    assert!(message.contains("Address already in use"), "{message}");
    assert!(!server.is_running());

    drop(squatter);
    server.restart().unwrap();
    assert_eq!(server.command(&["PING"]).unwrap(), "PONG");
}

#[test]
fn drop_kills_the_process_and_removes_the_dir() {
    let server = RedisServer::builder().unix_socket(true).start().unwrap();
    let (pid, dir) = (server.pid(), server.dir().to_owned());
    assert!(process_exists(pid));
    drop(server);
    assert!(eventually(|| !process_exists(pid)), "pid {pid} still alive");
    assert!(!dir.exists(), "{} still exists", dir.display());
}

#[test]
fn missing_binary_is_reported_with_the_package_name() {
    let error = RedisServer::builder()
        .binary("/nonexistent/redis-server")
        .start()
        .unwrap_err();
    assert!(error.is_missing_binary(), "{error:?}");
    assert_eq!(error.kind(), ErrorKind::MissingBinary);
    let message = error.to_string();
    assert!(message.contains("/nonexistent/redis-server"), "{message}");
    assert!(
        message.contains("apt-get install redis-server"),
        "{message}"
    );
    assert!(std::error::Error::source(&error).is_some());
}

#[test]
fn early_exit_reports_the_servers_output() {
    let error = RedisServer::builder()
        .arg("--no-such-directive")
        .start()
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Startup);
    let message = error.to_string();
    assert!(message.contains("exited"), "{message}");
    assert!(message.contains("no-such-directive"), "{message}");
}

#[test]
fn startup_timeout_kills_a_server_that_never_answers() {
    // `--port 0` disables TCP, so the probe can never succeed; a Unix socket keeps the
    // server otherwise happily running.
    let started = Instant::now();
    let error = RedisServer::builder()
        .args(["--port", "0"])
        .unix_socket(true)
        .startup_timeout(Duration::from_millis(500))
        .start()
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(error.kind(), ErrorKind::Startup);
    let message = error.to_string();
    assert!(message.contains("did not answer PING"), "{message}");
    let pid: u32 = message
        .split("(pid ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|pid| pid.parse().ok())
        .unwrap();
    assert!(!process_exists(pid));
}

#[test]
fn unix_socket_answers() {
    let server = RedisServer::builder().unix_socket(true).start().unwrap();
    let path = server.unix_socket_path().unwrap();
    assert!(path.starts_with(server.dir()));
    assert_eq!(
        server.unix_url().unwrap(),
        format!("redis+unix://{}", path.display())
    );
    assert!(server.unix_url().unwrap().starts_with("redis+unix:///"));
    let stream = std::os::unix::net::UnixStream::connect(path).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    assert_eq!(raw_ping(stream), "+PONG");
}

#[test]
fn command_decodes_simple_replies() {
    let server = RedisServer::start().unwrap();
    assert_eq!(
        server.command(&["SET", "k", "multi\r\nline"]).unwrap(),
        "OK"
    );
    assert_eq!(server.command(&["GET", "k"]).unwrap(), "multi\r\nline");
    assert_eq!(server.command(&["GET", "missing"]).unwrap(), "");
    assert_eq!(server.command(&["INCR", "n"]).unwrap(), "1");
    assert_eq!(server.command(&["INCR", "n"]).unwrap(), "2");
    let error = server.command(&["NOSUCHCOMMAND"]).unwrap_err();
    assert_eq!(error.kind(), ErrorKind::ServerReply);
    assert!(error.to_string().starts_with("ERR"), "{error}");
    assert_eq!(server.command(&[]).unwrap_err().kind(), ErrorKind::Protocol);
    // A flat array: its elements, one per line.
    let mut keys: Vec<String> = server
        .command(&["KEYS", "*"])
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    keys.sort();
    assert_eq!(keys, ["k", "n"]);
    // A nested one is not decoded.
    assert_eq!(
        server
            .command(&["COMMAND", "INFO", "GET"])
            .unwrap_err()
            .kind(),
        ErrorKind::Protocol
    );
}

#[test]
fn log_tail_returns_the_last_lines() {
    let server = RedisServer::start().unwrap();
    let tail = server.log_tail(3);
    assert!(!tail.is_empty());
    assert!(tail.lines().count() <= 3, "{tail}");
    assert!(server.log_tail(100).contains("eady to accept connections"));
}

#[test]
fn types_are_thread_safe() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RedisServer>();
    assert_send_sync::<Error>();
}

#[test]
fn tls_listener_has_its_own_port_and_certificates() {
    let plain = RedisServer::start().unwrap();
    assert!(plain.tls_port().is_none() && plain.tls_url().is_none());
    assert!(plain.tls_certs().is_none());

    let mut server = RedisServer::builder()
        .tls_auth_clients(ClientAuth::Optional)
        .tls_server_names(["redis.test", "10.9.8.7"])
        .start()
        .unwrap();
    let tls_port = server.tls_port().expect("a TLS port");
    assert_ne!(tls_port, server.port());
    assert_eq!(
        server.tls_url(),
        Some(format!("rediss://127.0.0.1:{tls_port}"))
    );
    // The plain port is still the side channel; the TLS port does not answer plain RESP.
    assert_eq!(server.command(&["PING"]).unwrap(), "PONG");
    let mut stream = tcp(SocketAddr::from(([127, 0, 0, 1], tls_port)));
    stream.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    let mut answer = Vec::new();
    let _ = std::io::Read::read_to_end(&mut stream, &mut answer);
    assert!(!answer.starts_with(b"+PONG"), "plain text on the TLS port");

    let certs = server.tls_certs().expect("certificates").clone();
    assert_eq!(certs.server_names(), ["redis.test", "10.9.8.7"]);
    assert!(certs.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(certs
        .client_cert_pem()
        .starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(certs.client_key_pem().contains("PRIVATE KEY-----"));
    for path in [
        certs.ca_path(),
        certs.client_cert_path(),
        certs.client_key_path(),
    ] {
        assert!(path.starts_with(server.dir()) && path.is_file(), "{path:?}");
    }
    assert!(!format!("{certs:?}").contains("PRIVATE KEY"));

    server.restart().unwrap();
    assert_eq!(server.tls_port(), Some(tls_port));
    assert_eq!(server.tls_certs().unwrap().ca_pem(), certs.ca_pem());
}

#[test]
fn a_certificate_name_that_cannot_be_issued_is_reported() {
    let error = RedisServer::builder()
        .tls_server_names(["caf\u{e9}.test"])
        .start()
        .unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Certificate, "{error:?}");
}
