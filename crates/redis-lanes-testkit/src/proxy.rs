//! A loopback TCP proxy that can stop forwarding without closing anything, for tests of
//! a server that goes silent (a dropped NAT entry, a pulled cable, a paused VM).
//!
//! Each accepted connection gets its own connection to the upstream server and two
//! pump threads, one per direction. A pump reads only while its direction forwards, so
//! when it does not, the kernel buffers fill and the peer's writes stall, as behind a
//! real black hole; bytes already read are held and sent once forwarding resumes, as
//! TCP would retransmit them.

use std::io::{ErrorKind as IoKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::Error;

/// What a proxied connection does with the bytes it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forwards both ways.
    Forward,
    /// Forwards nothing, either way, and closes nothing.
    Blackhole,
    /// Forwards requests to the server but holds its replies: a server that takes
    /// commands and never answers.
    Stall,
}

impl ProxyMode {
    fn forwards(self, to_server: bool) -> bool {
        match self {
            ProxyMode::Forward => true,
            ProxyMode::Blackhole => false,
            ProxyMode::Stall => to_server,
        }
    }
}

/// How often a pump waiting on a socket looks at its mode again.
const POLL: Duration = Duration::from_millis(20);

/// A loopback TCP proxy in front of one server. Dropping it closes every connection.
///
/// # Examples
///
/// ```
/// use redis_lanes_testkit::{Proxy, RedisServer};
///
/// # fn main() -> Result<(), redis_lanes_testkit::Error> {
/// let server = RedisServer::start()?;
/// let proxy = Proxy::start(server.addr())?;
/// assert!(proxy.url().starts_with("redis://127.0.0.1:"));
/// proxy.blackhole(); // Existing and new connections stop forwarding.
/// proxy.forward(); // And go on where they stopped.
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    /// The mode new connections start in.
    default: Mutex<ProxyMode>,
    links: Mutex<Vec<Weak<Link>>>,
    stop: AtomicBool,
    accepted: AtomicUsize,
}

/// One proxied connection.
#[derive(Debug)]
struct Link {
    mode: Mutex<ProxyMode>,
    changed: Condvar,
    client: TcpStream,
    server: TcpStream,
    closed: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Proxy {
    /// Listens on a free port of `127.0.0.1` and forwards every connection to
    /// `upstream`.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Io`](crate::ErrorKind::Io) when the listener cannot be set up.
    pub fn start(upstream: SocketAddr) -> Result<Proxy, Error> {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(|e| Error::io("could not bind the proxy's listener", e))?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::io("could not read the proxy's address", e))?;
        let shared = Arc::new(Shared {
            upstream,
            default: Mutex::new(ProxyMode::Forward),
            links: Mutex::new(Vec::new()),
            stop: AtomicBool::new(false),
            accepted: AtomicUsize::new(0),
        });
        let accept = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("testkit-proxy".into())
                .spawn(move || accept_loop(&listener, &shared))
                .map_err(|e| Error::io("could not start the proxy's thread", e))?
        };
        Ok(Proxy {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    /// The proxy's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `redis://127.0.0.1:<port>` of the proxy.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Every connection, open and future, forwards both ways again.
    pub fn forward(&self) {
        self.set_all(ProxyMode::Forward, true);
    }

    /// Every connection, open and future, stops forwarding; nothing is closed.
    pub fn blackhole(&self) {
        self.set_all(ProxyMode::Blackhole, true);
    }

    /// Every connection, open and future, forwards requests but holds replies.
    pub fn stall(&self) {
        self.set_all(ProxyMode::Stall, true);
    }

    /// The connections open now stop forwarding for good, while new ones work: a NAT
    /// entry lost without a trace.
    pub fn freeze_existing(&self) {
        self.set_all(ProxyMode::Blackhole, false);
    }

    /// Closes every open connection abruptly (a TCP reset where the platform allows),
    /// on both sides. New connections are accepted in the current mode.
    pub fn reset(&self) {
        for link in self.live_links() {
            link.close(true);
        }
    }

    /// Connections accepted so far, open or not.
    pub fn accepted(&self) -> usize {
        self.shared.accepted.load(SeqCst)
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.live_links().len()
    }

    fn set_all(&self, mode: ProxyMode, future_too: bool) {
        if future_too {
            *lock(&self.shared.default) = mode;
        }
        for link in self.live_links() {
            *lock(&link.mode) = mode;
            link.changed.notify_all();
        }
    }

    fn live_links(&self) -> Vec<Arc<Link>> {
        let mut links = lock(&self.shared.links);
        links.retain(|weak| weak.upgrade().is_some_and(|l| !l.closed.load(SeqCst)));
        links.iter().filter_map(Weak::upgrade).collect()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, SeqCst);
        // Wakes the accept loop.
        let _ = TcpStream::connect(self.addr);
        for link in self.live_links() {
            link.close(false);
        }
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stop.load(SeqCst) {
            return;
        }
        let Ok(client) = client else { continue };
        shared.accepted.fetch_add(1, SeqCst);
        let Ok(server) = TcpStream::connect(shared.upstream) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = client.set_nodelay(true);
        let _ = server.set_nodelay(true);
        let (Ok(client_read), Ok(server_read)) = (client.try_clone(), server.try_clone()) else {
            continue;
        };
        let link = Arc::new(Link {
            mode: Mutex::new(*lock(&shared.default)),
            changed: Condvar::new(),
            client,
            server,
            closed: AtomicBool::new(false),
        });
        lock(&shared.links).push(Arc::downgrade(&link));
        for (from, to_server) in [(client_read, true), (server_read, false)] {
            let pumped = Arc::clone(&link);
            let spawned = std::thread::Builder::new()
                .name("testkit-proxy-pump".into())
                .spawn(move || pump(&pumped, from, to_server));
            if spawned.is_err() {
                link.close(false);
            }
        }
    }
}

/// Copies one direction of `link` while its mode lets it.
fn pump(link: &Link, mut from: TcpStream, to_server: bool) {
    let mut to = match if to_server {
        link.server.try_clone()
    } else {
        link.client.try_clone()
    } {
        Ok(to) => to,
        Err(_) => return link.close(false),
    };
    if from.set_read_timeout(Some(POLL)).is_err() {
        return link.close(false);
    }
    let mut buf = vec![0u8; 64 * 1024];
    while !link.closed.load(SeqCst) {
        if !link.wait_forwarding(to_server) {
            continue;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => return link.close(false),
            Ok(n) => n,
            Err(e) if matches!(e.kind(), IoKind::WouldBlock | IoKind::TimedOut) => continue,
            Err(_) => return link.close(false),
        };
        // Bytes read just before the mode changed are held until it forwards again.
        while !link.wait_forwarding(to_server) {
            if link.closed.load(SeqCst) {
                return;
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            return link.close(false);
        }
    }
}

impl Link {
    /// Waits up to one poll period for the mode to forward this direction; whether it
    /// does.
    fn wait_forwarding(&self, to_server: bool) -> bool {
        let mode = lock(&self.mode);
        if mode.forwards(to_server) {
            return true;
        }
        let (mode, _) = self
            .changed
            .wait_timeout(mode, POLL)
            .unwrap_or_else(PoisonError::into_inner);
        mode.forwards(to_server)
    }

    fn close(&self, reset: bool) {
        if self.closed.swap(true, SeqCst) {
            return;
        }
        for stream in [&self.client, &self.server] {
            if reset {
                // A zero linger makes the close send RST instead of FIN.
                let _ = socket2::SockRef::from(stream).set_linger(Some(Duration::ZERO));
            }
            let _ = stream.shutdown(Shutdown::Both);
        }
        self.changed.notify_all();
    }
}
