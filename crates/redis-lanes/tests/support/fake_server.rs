//! A fake Redis server on 127.0.0.1, for faults a real server cannot produce.
//!
//! It answers the handshake (`HELLO`, `AUTH`, `CLIENT SETNAME`, `SELECT`, `CLIENT ID`)
//! the way Redis does for RESP2 or RESP3, then answers every command with a reply derived
//! from the request (`ECHO x` gives `x`, `GET k` gives `v:k`, `BLPOP k .. t` pops
//! `popped:k`), so a reply that reaches the wrong caller is visible. A per-connection
//! [`Script`] replaces chosen replies with raw bytes (garbage, a cut frame, a giant
//! header, ...) and may close the socket. Connections without a script behave normally,
//! so a client that reconnects finds a working server.
//!
//! It records, per connection, the commands it answered and who closed the socket: a
//! test can wait for the client to drop a connection it no longer trusts.

use std::collections::HashMap;
use std::io::ErrorKind as IoKind;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::wire::{self, Command};

/// What to do instead of (or after) the normal reply to one command.
#[derive(Debug, Clone)]
pub(crate) enum Fault {
    /// Send these bytes instead of the reply, and keep the connection open.
    Instead(Vec<u8>),
    /// Send the reply, then these bytes, and keep the connection open.
    After(Vec<u8>),
    /// Send these bytes instead of the reply, then close the connection.
    InsteadThenClose(Vec<u8>),
    /// Send the reply, then these bytes, then close the connection.
    AfterThenClose(Vec<u8>),
}

/// How one connection deviates from a well-behaved server.
#[derive(Debug, Clone, Default)]
pub(crate) struct Script {
    /// Keyed by command number on the connection, counted from 1 after the handshake.
    faults: HashMap<usize, Fault>,
    /// Sent in the same write as the handshake's last reply.
    greeting: Vec<u8>,
    /// Sent unprompted, this long after the handshake.
    later: Option<(Duration, Vec<u8>)>,
}

impl Script {
    /// A connection that behaves.
    pub(crate) fn normal() -> Self {
        Self::default()
    }

    /// On the `nth` command after the handshake (counted from 1), apply `fault`.
    pub(crate) fn on(mut self, nth: usize, fault: Fault) -> Self {
        self.faults.insert(nth, fault);
        self
    }

    /// Sends `bytes` right behind the handshake's last reply, in the same write, so
    /// the client reads them together with its handshake.
    pub(crate) fn greet(mut self, bytes: &[u8]) -> Self {
        self.greeting = bytes.to_vec();
        self
    }

    /// Sends `bytes` unprompted, `delay` after the handshake.
    pub(crate) fn later(mut self, delay: Duration, bytes: &[u8]) -> Self {
        self.later = Some((delay, bytes.to_vec()));
        self
    }
}

/// What the server saw on one connection.
#[derive(Debug, Clone, Default)]
pub(crate) struct ConnLog {
    /// Commands after the handshake, in the order they arrived.
    pub(crate) commands: Vec<Command>,
    /// The client closed (or reset) the connection.
    pub(crate) closed_by_client: bool,
    /// The server closed it, as its script said.
    pub(crate) closed_by_server: bool,
    /// The script's unprompted bytes ([`Script::later`]) were written.
    pub(crate) sent_later: bool,
}

#[derive(Debug, Default)]
struct State {
    conns: Vec<ConnLog>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    changed: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, conn: usize, f: impl FnOnce(&mut ConnLog)) {
        f(&mut self.lock().conns[conn]);
        self.changed.notify_waiters();
    }
}

/// A running fake server; stops when dropped.
#[derive(Debug)]
pub(crate) struct FakeServer {
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeServer {
    /// Starts a server whose `n`th accepted connection (from 0) follows `scripts[n]`;
    /// later connections behave normally.
    pub(crate) async fn start(scripts: Vec<Script>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared::default());
        let accept_shared = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            let mut conns = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                let index = {
                    let mut state = accept_shared.lock();
                    state.conns.push(ConnLog::default());
                    state.conns.len() - 1
                };
                accept_shared.changed.notify_waiters();
                let script = scripts.get(index).cloned().unwrap_or_default();
                let conn = Connection {
                    index,
                    script,
                    shared: Arc::clone(&accept_shared),
                    resp3: false,
                    after_handshake: false,
                    commands: 0,
                    subscriptions: 0,
                };
                // Aborted with the accept loop (the JoinHandles drop with it): no
                // connection task outlives the server.
                conns.push(tokio_util::task::AbortOnDropHandle::new(tokio::spawn(
                    conn.run(socket),
                )));
            }
        });
        Self { addr, shared, task }
    }

    /// The URL to connect to, with `query` appended (e.g. `?protocol=resp3`).
    pub(crate) fn url(&self, query: &str) -> String {
        format!("redis://{}{query}", self.addr)
    }

    /// Connections accepted so far.
    pub(crate) fn accepted(&self) -> usize {
        self.shared.lock().conns.len()
    }

    /// What the server saw on connection `conn` (from 0).
    pub(crate) fn log(&self, conn: usize) -> ConnLog {
        self.shared
            .lock()
            .conns
            .get(conn)
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until `check` holds for the connection logs, or `limit` passes; returns
    /// whether it held.
    pub(crate) async fn wait_for(
        &self,
        limit: Duration,
        check: impl Fn(&[ConnLog]) -> bool,
    ) -> bool {
        let wait = async {
            loop {
                let changed = self.shared.changed.notified();
                if check(&self.shared.lock().conns) {
                    return;
                }
                changed.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }

    /// Waits until the server closed connection `conn` as its script said; returns
    /// whether it did in time.
    pub(crate) async fn closed_by_server(&self, conn: usize, limit: Duration) -> bool {
        self.wait_for(limit, |conns| {
            conns.get(conn).is_some_and(|c| c.closed_by_server)
        })
        .await
    }

    /// Waits until the client closed connection `conn`; returns whether it did in time.
    pub(crate) async fn closed_by_client(&self, conn: usize, limit: Duration) -> bool {
        self.wait_for(limit, |conns| {
            conns.get(conn).is_some_and(|c| c.closed_by_client)
        })
        .await
    }
}

/// One accepted connection's state.
struct Connection {
    index: usize,
    script: Script,
    shared: Arc<Shared>,
    /// `HELLO 3` was seen: replies use RESP3 types (pushes for pub/sub).
    resp3: bool,
    /// `CLIENT ID`, always the handshake's last command, was answered.
    after_handshake: bool,
    /// Commands answered after the handshake.
    commands: usize,
    /// Channels subscribed, for the counts in confirmations.
    subscriptions: i64,
}

impl Connection {
    async fn run(mut self, mut socket: TcpStream) {
        let mut buf = Vec::with_capacity(4096);
        let mut chunk = vec![0u8; 64 * 1024];
        let mut later = self.script.later.take();
        let mut later_at = None;
        loop {
            let at = later_at;
            let unprompted = async move {
                match at {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let read = tokio::select! {
                read = socket.read(&mut chunk) => Some(read),
                () = unprompted => None,
            };
            let Some(read) = read else {
                later_at = None;
                let bytes = later.take().map(|(_, bytes)| bytes).unwrap_or_default();
                if let Err(e) = socket.write_all(&bytes).await {
                    assert!(is_disconnect(&e), "fake server write failed: {e}");
                    return self.client_closed();
                }
                self.shared.update(self.index, |log| log.sent_later = true);
                continue;
            };
            let n = match read {
                Ok(0) => return self.client_closed(),
                Ok(n) => n,
                // A reset means the client closed with our bytes unread: still its close.
                Err(e) if is_disconnect(&e) => return self.client_closed(),
                Err(e) => panic!("fake server read failed: {e}"),
            };
            buf.extend_from_slice(&chunk[..n]);
            // Answer every complete command in one write, as a server answers a pipeline.
            let mut out = Vec::new();
            let mut close = false;
            let was_handshaking = !self.after_handshake;
            while let Some(command) = wire::take_command(&mut buf).expect("client sent valid RESP")
            {
                close = self.answer(command, &mut out);
                if close {
                    break;
                }
            }
            if was_handshaking && self.after_handshake {
                out.extend_from_slice(&self.script.greeting);
                later_at = later
                    .as_ref()
                    .map(|(delay, _)| tokio::time::Instant::now() + *delay);
            }
            if let Err(e) = socket.write_all(&out).await {
                assert!(is_disconnect(&e), "fake server write failed: {e}");
                return self.client_closed();
            }
            if close {
                let _ = socket.shutdown().await;
                self.shared
                    .update(self.index, |log| log.closed_by_server = true);
                return;
            }
        }
    }

    fn client_closed(&self) {
        self.shared
            .update(self.index, |log| log.closed_by_client = true);
    }

    /// Appends the answer to `command` to `out`; `true` when the connection must close.
    fn answer(&mut self, command: Command, out: &mut Vec<u8>) -> bool {
        if !self.after_handshake {
            self.handshake_reply(&command, out);
            return false;
        }
        self.commands += 1;
        let fault = self.script.faults.get(&self.commands).cloned();
        self.shared
            .update(self.index, |log| log.commands.push(command.clone()));
        match fault {
            None => self.reply(&command, out),
            Some(Fault::Instead(bytes)) => out.extend_from_slice(&bytes),
            Some(Fault::After(bytes)) => {
                self.reply(&command, out);
                out.extend_from_slice(&bytes);
            }
            Some(Fault::InsteadThenClose(bytes)) => {
                out.extend_from_slice(&bytes);
                return true;
            }
            Some(Fault::AfterThenClose(bytes)) => {
                self.reply(&command, out);
                out.extend_from_slice(&bytes);
                return true;
            }
        }
        false
    }

    fn handshake_reply(&mut self, command: &Command, out: &mut Vec<u8>) {
        let name = upper(&command[0]);
        match name.as_str() {
            "HELLO" => {
                self.resp3 = command.get(1).is_some_and(|v| v == b"3");
                // A shortened version of Redis's map; the client reads no field of it.
                out.extend_from_slice(b"%3\r\n$6\r\nserver\r\n$5\r\nredis\r\n");
                out.extend_from_slice(b"$7\r\nversion\r\n$5\r\n7.2.0\r\n");
                out.extend_from_slice(b"$5\r\nproto\r\n:3\r\n");
            }
            "CLIENT" if command.get(1).is_some_and(|s| upper(s) == "ID") => {
                out.extend_from_slice(&wire::int(self.client_id()));
                self.after_handshake = true;
            }
            // AUTH, CLIENT SETNAME, SELECT.
            _ => out.extend_from_slice(b"+OK\r\n"),
        }
    }

    /// Distinct per connection, and never 0.
    fn client_id(&self) -> i64 {
        1000 + self.index as i64
    }

    /// The reply a well-behaved server would send, derived from the request.
    fn reply(&mut self, command: &Command, out: &mut Vec<u8>) {
        let name = upper(&command[0]);
        let arg = |i: usize| command.get(i).map(Vec::as_slice).unwrap_or_default();
        match name.as_str() {
            "PING" => out.extend_from_slice(b"+PONG\r\n"),
            "ECHO" => out.extend_from_slice(&wire::bulk(arg(1))),
            "GET" => out.extend_from_slice(&wire::bulk(&[b"v:", arg(1)].concat())),
            "BLPOP" | "BRPOP" => {
                let key = arg(1);
                let popped = [b"popped:", key].concat();
                out.extend_from_slice(&wire::aggregate(
                    b'*',
                    &[wire::bulk(key), wire::bulk(&popped)],
                ));
            }
            "CLIENT" if upper(arg(1)) == "UNBLOCK" => out.extend_from_slice(&wire::int(0)),
            "SUBSCRIBE" => {
                let kind = if self.resp3 { b'>' } else { b'*' };
                for channel in &command[1..] {
                    self.subscriptions += 1;
                    out.extend_from_slice(&wire::aggregate(
                        kind,
                        &[
                            wire::bulk(b"subscribe"),
                            wire::bulk(channel),
                            wire::int(self.subscriptions),
                        ],
                    ));
                }
            }
            _ => out.extend_from_slice(b"+OK\r\n"),
        }
    }
}

fn upper(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).to_ascii_uppercase()
}

fn is_disconnect(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        IoKind::ConnectionReset
            | IoKind::BrokenPipe
            | IoKind::ConnectionAborted
            | IoKind::UnexpectedEof
    )
}
