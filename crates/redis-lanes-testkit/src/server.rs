//! The running test server: launching, readiness, restart and cleanup.

use std::ffi::OsString;
use std::fs::OpenOptions;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::binary::Binary;
use crate::builder::ServerBuilder;
use crate::error::{Error, ErrorKind};
use crate::tls::{ClientAuth, TlsCerts};
use crate::{log, port, resp};

/// The server's own log, written because of `--logfile`.
const LOG_FILE: &str = "redis.log";
/// The server's stdout and stderr. Needed because configuration errors are printed to
/// stderr before the log file is opened.
const OUTPUT_FILE: &str = "redis.out";
const SOCKET_FILE: &str = "redis.sock";
/// How many fresh ports `start` tries when another process grabs the chosen one first.
const START_ATTEMPTS: u32 = 5;
/// `restart` must reuse its port, so it can only wait for a transient holder to let go.
const RESTART_ATTEMPTS: u32 = 5;
const RESTART_BACKOFF: Duration = Duration::from_millis(100);
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Lines of each output file quoted in startup errors.
const ERROR_TAIL_LINES: usize = 20;
/// What Redis logs (via `strerror`) when it cannot bind its port.
const ADDR_IN_USE: &str = "Address already in use";

/// A throw-away `redis-server` process on a free port of `127.0.0.1`, with its working
/// directory in a fresh temporary directory and persistence turned off.
///
/// Start one with [`RedisServer::start`] or configure it first with
/// [`RedisServer::builder`]. The server is started with `--bind 127.0.0.1`,
/// `--daemonize no`, `--save ""` and `--appendonly no` (nothing is ever written to disk
/// except its log, and its TLS certificates when [`ServerBuilder::tls`] asks for them),
/// and `--dir` / `--logfile` pointing into the temporary directory.
///
/// # Drop behavior
///
/// Dropping the value kills the child process it started, by that process's handle
/// ([`Child::kill`], which sends `SIGKILL` on Unix, then [`Child::wait`] so no zombie is
/// left), and then deletes the temporary directory with its log and socket. It never signals
/// any other process and never looks processes up by name. A server kept in a `static` is
/// never dropped, so it outlives the test binary.
#[derive(Debug)]
pub struct RedisServer {
    binary: Binary,
    args: Vec<OsString>,
    startup_timeout: Duration,
    port: u16,
    unix_socket: Option<PathBuf>,
    /// The TLS listener, when the builder asked for one.
    tls: Option<TlsListener>,
    child: Option<Child>,
    pid: u32,
    /// Absolute form of `_temp_dir`'s path: Redis changes into `--dir` before it opens other
    /// paths, so a relative `TMPDIR` would otherwise point somewhere else.
    dir: PathBuf,
    /// Held only for its `Drop`, which deletes the directory. Declared last so that happens
    /// after `Drop::drop` has stopped the process.
    _temp_dir: TempDir,
}

impl RedisServer {
    /// Starts a server with the default configuration and waits until it answers.
    ///
    /// Shorthand for `RedisServer::builder().start()`.
    ///
    /// # Errors
    ///
    /// See [`ServerBuilder::start`].
    pub fn start() -> Result<Self, Error> {
        Self::builder().start()
    }

    /// Returns a builder for extra server arguments, a Unix socket and other options.
    pub fn builder() -> ServerBuilder {
        ServerBuilder::new()
    }

    pub(crate) fn start_with(builder: ServerBuilder) -> Result<Self, Error> {
        let temp_dir = tempfile::Builder::new()
            .prefix("redis-lanes-")
            .tempdir()
            .map_err(|e| Error::io("could not create a temporary directory for redis-server", e))?;
        let dir = std::path::absolute(temp_dir.path())
            .map_err(|e| Error::io("could not resolve the temporary directory's path", e))?;
        let tls = match builder.tls {
            Some(setup) => Some(TlsListener {
                port: 0,
                client_auth: setup.client_auth,
                certs: TlsCerts::generate(&dir, &setup.server_names)?,
            }),
            None => None,
        };
        let mut server = Self {
            binary: Binary::resolve(builder.binary),
            args: builder.args,
            startup_timeout: builder.startup_timeout,
            port: 0,
            unix_socket: builder.unix_socket.then(|| dir.join(SOCKET_FILE)),
            tls,
            child: None,
            pid: 0,
            dir,
            _temp_dir: temp_dir,
        };
        // On failure `server` is dropped here, which removes the temporary directory; the
        // error already quotes the logs.
        let mut attempt = 1;
        loop {
            server.port = port::free_loopback_port()
                .map_err(|e| Error::io("could not find a free port on 127.0.0.1", e))?;
            if let Some(tls) = &mut server.tls {
                tls.port = port::free_loopback_port()
                    .map_err(|e| Error::io("could not find a free port on 127.0.0.1", e))?;
            }
            match server.launch() {
                Ok(()) => return Ok(server),
                Err(failure) if failure.port_in_use && attempt < START_ATTEMPTS => attempt += 1,
                Err(failure) => return Err(failure.error),
            }
        }
    }

    /// The TCP port the server listens on. It stays the same across
    /// [`restart`](RedisServer::restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's TCP address, `127.0.0.1:`[`port`](RedisServer::port).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// A connection URL for the TCP address, such as `redis://127.0.0.1:40123`.
    ///
    /// It carries no password: add one yourself if you passed `--requirepass`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr())
    }

    /// The TLS port, if the server was built with [`tls`](ServerBuilder::tls). It stays
    /// the same across [`restart`](RedisServer::restart).
    pub fn tls_port(&self) -> Option<u16> {
        self.tls.as_ref().map(|tls| tls.port)
    }

    /// A `rediss://127.0.0.1:PORT` URL for the TLS port, if there is one.
    ///
    /// Like [`url`](RedisServer::url) it carries no password. The server certificate is
    /// signed by the kit's own CA: trust [`TlsCerts::ca_pem`] in the client.
    pub fn tls_url(&self) -> Option<String> {
        self.tls.as_ref().map(|tls| {
            format!(
                "rediss://{}",
                SocketAddr::from((Ipv4Addr::LOCALHOST, tls.port))
            )
        })
    }

    /// The certificates made for the TLS listener (the CA to trust, a client
    /// certificate and key), if there is one. They stay the same across restarts.
    pub fn tls_certs(&self) -> Option<&TlsCerts> {
        self.tls.as_ref().map(|tls| &tls.certs)
    }

    /// The Unix socket path, if the server was built with
    /// [`unix_socket(true)`](ServerBuilder::unix_socket).
    pub fn unix_socket_path(&self) -> Option<&Path> {
        self.unix_socket.as_deref()
    }

    /// A `redis+unix:///path/to/redis.sock` URL for the Unix socket, if there is one.
    pub fn unix_url(&self) -> Option<String> {
        // The path is absolute, so it supplies the third slash.
        self.unix_socket
            .as_ref()
            .map(|path| format!("redis+unix://{}", path.display()))
    }

    /// The process id of the most recently started server process.
    ///
    /// It changes on [`restart`](RedisServer::restart) and is kept after
    /// [`stop`](RedisServer::stop), when it no longer names a live process.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The temporary directory holding the server's log (and socket, if any). It is
    /// deleted when the server is dropped.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The last `lines` lines of the server log (all runs, including before restarts), or an
    /// empty string if it cannot be read. Handy in assertion messages.
    pub fn log_tail(&self, lines: usize) -> String {
        log::tail(&self.dir.join(LOG_FILE), 0, lines)
    }

    /// Whether the server process is still alive (it may have crashed or been stopped).
    ///
    /// Takes `&mut self` because checking reaps the process if it has exited.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Kills the server process and waits for it to exit. Does nothing if it is not
    /// running, so it can be called any number of times.
    ///
    /// The temporary directory stays until the value is dropped, so the log can still be
    /// read and [`restart`](RedisServer::restart) can bring the server back.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGKILL rather than a graceful SHUTDOWN: there is no data worth saving, and
            // SHUTDOWN would need a working connection and possibly a password. An error
            // only means the process has already exited, which `wait` then reaps.
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server (if running) and starts it again on the same port, with the same
    /// arguments and Unix socket path, then waits until it answers.
    ///
    /// All data is lost, since persistence is off; [`pid`](RedisServer::pid) changes.
    ///
    /// # Errors
    ///
    /// Same as [`ServerBuilder::start`]. If some other process takes the port while the
    /// server is down, a few short retries are made and then an
    /// [`ErrorKind::Startup`] error is returned; the server is left stopped.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.stop();
        let mut attempt = 1;
        loop {
            match self.launch() {
                Ok(()) => return Ok(()),
                Err(failure) if failure.port_in_use && attempt < RESTART_ATTEMPTS => {
                    attempt += 1;
                    thread::sleep(RESTART_BACKOFF);
                }
                Err(failure) => return Err(failure.error),
            }
        }
    }

    /// Sends one command on a fresh TCP connection and returns the reply as text, so tests
    /// can inspect or poke the server without a Redis client.
    ///
    /// Simple strings come back without the `+`, integers as their digits, bulk strings as
    /// their (lossily UTF-8 decoded) payload, and a nil bulk string as `""`, so nil and empty
    /// cannot be told apart here. A flat array of those (`KEYS`, `CLUSTER GETKEYSINSLOT`)
    /// comes back as its elements joined by newlines. The connection is not authenticated, so on a server with
    /// `--requirepass` every command except `AUTH` and `HELLO` gets `NOAUTH`. Reads and
    /// writes time out after 10 seconds.
    ///
    /// # Errors
    ///
    /// - [`ErrorKind::ServerReply`] if the server answers with an error; the message is
    ///   the server's text, such as `NOAUTH Authentication required.`.
    /// - [`ErrorKind::Io`] if connecting, writing or reading fails or times out.
    /// - [`ErrorKind::Protocol`] if `args` is empty or the reply is a nested array, map or
    ///   other aggregate this helper does not decode.
    ///
    /// # Examples
    ///
    /// ```
    /// use redis_lanes_testkit::RedisServer;
    ///
    /// # fn main() -> Result<(), redis_lanes_testkit::Error> {
    /// let server = RedisServer::start()?;
    /// assert_eq!(server.command(&["SET", "k", "v"])?, "OK");
    /// assert_eq!(server.command(&["GET", "k"])?, "v");
    /// assert_eq!(server.command(&["INCR", "n"])?, "1");
    /// # Ok(())
    /// # }
    /// ```
    pub fn command(&self, args: &[&str]) -> Result<String, Error> {
        resp::command(self.addr(), args)
    }

    /// Spawns the server on `self.port` and waits until it answers. On failure the process
    /// is gone (killed if needed) and `self.child` is `None`.
    fn launch(&mut self) -> Result<(), LaunchFailure> {
        let log_path = self.dir.join(LOG_FILE);
        let output_path = self.dir.join(OUTPUT_FILE);
        // The files are appended to across retries and restarts; only this launch's part
        // is quoted in errors, so an old "address in use" cannot trigger a retry.
        let offsets = Offsets {
            log: log::len(&log_path),
            output: log::len(&output_path),
        };
        let stdout = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&output_path)
            .map_err(|e| Error::io("could not create the redis-server output file", e))?;
        let stderr = stdout
            .try_clone()
            .map_err(|e| Error::io("could not create the redis-server output file", e))?;

        let mut command = Command::new(&self.binary.path);
        command
            .arg("--port")
            .arg(self.port.to_string())
            .args(["--bind", "127.0.0.1"])
            .args(["--daemonize", "no"])
            // No RDB snapshots and no AOF: nothing to write, so no disk I/O and no fork for
            // background saves.
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log_path);
        if let Some(socket) = &self.unix_socket {
            command
                .arg("--unixsocket")
                .arg(socket)
                .args(["--unixsocketperm", "700"]);
        }
        if let Some(tls) = &self.tls {
            command
                .arg("--tls-port")
                .arg(tls.port.to_string())
                .arg("--tls-cert-file")
                .arg(&tls.certs.server_cert_path)
                .arg("--tls-key-file")
                .arg(&tls.certs.server_key_path)
                .arg("--tls-ca-cert-file")
                .arg(tls.certs.ca_path())
                .args(["--tls-auth-clients", tls.client_auth.as_arg()]);
        }
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);

        let child = command.spawn().map_err(|e| self.binary.spawn_error(e))?;
        self.pid = child.id();
        self.child = Some(child);
        self.wait_until_ready(&offsets)
    }

    /// Polls until the server answers `PING`, exits, or the startup timeout passes.
    fn wait_until_ready(&mut self, offsets: &Offsets) -> Result<(), LaunchFailure> {
        let deadline = Instant::now() + self.startup_timeout;
        loop {
            // Checked before probing: if another process holds our port, Redis exits at
            // once, and that process must not be mistaken for our server.
            let exited = match self.child.as_mut().map(Child::try_wait) {
                Some(Ok(None)) => None,
                Some(Ok(Some(status))) => Some(format!("exited with {status}")),
                Some(Err(e)) => Some(format!("could not be waited for ({e})")),
                None => Some("is not running".to_owned()),
            };
            if let Some(what) = exited {
                // Reaps it; also kills it in the unlikely case `try_wait` itself failed.
                self.stop();
                return Err(self.startup_failure(&what, offsets));
            }
            if resp::answers_ping(self.addr()) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.stop();
                let what = format!(
                    "did not answer PING within {:?} and was killed",
                    self.startup_timeout
                );
                return Err(self.startup_failure(&what, offsets));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    fn startup_failure(&self, what: &str, offsets: &Offsets) -> LaunchFailure {
        let log = log::tail(&self.dir.join(LOG_FILE), offsets.log, ERROR_TAIL_LINES);
        let output = log::tail(
            &self.dir.join(OUTPUT_FILE),
            offsets.output,
            ERROR_TAIL_LINES,
        );
        let mut message = format!(
            "redis-server `{}` (pid {}, port {}) {what}",
            self.binary.path.display(),
            self.pid,
            self.port
        );
        for (name, text) in [(LOG_FILE, &log), ("stdout/stderr", &output)] {
            if !text.is_empty() {
                message.push_str(&format!("\n--- {name} (last lines) ---\n{text}"));
            }
        }
        LaunchFailure {
            port_in_use: log.contains(ADDR_IN_USE) || output.contains(ADDR_IN_USE),
            error: Error::new(ErrorKind::Startup, message),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        // `_temp_dir` is dropped after this, deleting the directory.
    }
}

/// A TLS listener's port and certificates.
#[derive(Debug)]
struct TlsListener {
    port: u16,
    client_auth: ClientAuth,
    certs: TlsCerts,
}

/// Where this launch's output starts in each file.
struct Offsets {
    log: u64,
    output: u64,
}

/// A failed launch, marking the one failure worth retrying.
struct LaunchFailure {
    error: Error,
    port_in_use: bool,
}

impl From<Error> for LaunchFailure {
    fn from(error: Error) -> Self {
        Self {
            error,
            port_in_use: false,
        }
    }
}
