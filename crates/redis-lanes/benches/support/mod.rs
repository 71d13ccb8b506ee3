//! An in-process fake server for the benches: it answers `GET` with a 16-byte value,
//! `PING` with `PONG`, `CLIENT ID` with `1` and everything else with `OK`, all the
//! requests of a read in one write. It allocates nothing per request, so the
//! allocation bench counts only the clients.

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// The value every `GET` returns.
pub(crate) const VALUE: &[u8] = b"0123456789abcdef";

/// Starts the fake server on a free loopback port; returns its URL.
pub(crate) async fn fake_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(serve(socket));
        }
    });
    format!("redis://{addr}")
}

async fn serve(mut socket: tokio::net::TcpStream) {
    let _ = socket.set_nodelay(true);
    let mut input = BytesMut::with_capacity(256 * 1024);
    let mut output = Vec::with_capacity(256 * 1024);
    loop {
        match socket.read_buf(&mut input).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        while let Some((used, reply)) = next_request(&input) {
            output.extend_from_slice(reply);
            input.advance(used);
        }
        if socket.write_all(&output).await.is_err() {
            return;
        }
        output.clear();
    }
}

/// The next complete request at the front of `buf`: its length, and the reply.
fn next_request(buf: &[u8]) -> Option<(usize, &'static [u8])> {
    let (count, mut at) = line_number(buf, b'*', 0)?;
    let (mut first, mut second): (&[u8], &[u8]) = (b"", b"");
    for index in 0..count {
        let (len, start) = line_number(buf, b'$', at)?;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        if buf.len() < end + 2 {
            return None;
        }
        match index {
            0 => first = &buf[start..end],
            1 => second = &buf[start..end],
            _ => {}
        }
        at = end + 2;
    }
    let reply: &'static [u8] = if first.eq_ignore_ascii_case(b"GET") {
        b"$16\r\n0123456789abcdef\r\n"
    } else if first.eq_ignore_ascii_case(b"PING") {
        b"+PONG\r\n"
    } else if first.eq_ignore_ascii_case(b"CLIENT") && second.eq_ignore_ascii_case(b"ID") {
        b":1\r\n"
    } else {
        b"+OK\r\n"
    };
    Some((at, reply))
}

/// `<marker><number>\r\n` at `at`: the number and where the next line starts.
fn line_number(buf: &[u8], marker: u8, at: usize) -> Option<(i64, usize)> {
    if *buf.get(at)? != marker {
        return None;
    }
    let end = at + buf[at..].windows(2).position(|w| w == b"\r\n")?;
    let number = std::str::from_utf8(&buf[at + 1..end]).ok()?.parse().ok()?;
    Some((number, end + 2))
}

/// A redis-lanes client and a redis-rs `MultiplexedConnection` to `url`.
pub(crate) async fn clients(url: &str) -> (redis_lanes::Client, redis::aio::MultiplexedConnection) {
    let lanes = redis_lanes::Client::builder(url)
        // Probes are not part of what is measured.
        .health_check(None)
        .connect()
        .await
        .expect("redis-lanes connects to the fake server");
    let redis_rs = redis::Client::open(url)
        .expect("URL")
        .get_multiplexed_async_connection()
        .await
        .expect("redis-rs connects to the fake server");
    (lanes, redis_rs)
}

/// Runs `ops` GETs from `tasks` tasks sharing `conn`; returns the time they took.
pub(crate) async fn gets<C>(conn: &C, tasks: u64, ops: u64) -> std::time::Duration
where
    C: redis::aio::ConnectionLike + Clone + Send + Sync + 'static,
{
    let start = std::time::Instant::now();
    let mut handles = Vec::new();
    for t in 0..tasks {
        let mut conn = conn.clone();
        let share = ops / tasks + u64::from(t < ops % tasks);
        handles.push(tokio::spawn(async move {
            for _ in 0..share {
                let value: Vec<u8> = redis::AsyncCommands::get(&mut conn, "key")
                    .await
                    .expect("GET");
                assert_eq!(value, VALUE);
            }
        }));
    }
    for handle in handles {
        handle.await.expect("task");
    }
    start.elapsed()
}
