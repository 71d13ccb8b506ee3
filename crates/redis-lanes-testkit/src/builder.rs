//! Configuration for a test server before it starts.

use std::ffi::{OsStr, OsString};
use std::path::PathBuf;
use std::time::Duration;

use crate::error::Error;
use crate::server::RedisServer;
use crate::tls::{ClientAuth, DEFAULT_SERVER_NAMES};

/// Long enough for a loaded CI machine; a healthy server answers within milliseconds.
const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// Configures a [`RedisServer`] before starting it; made by [`RedisServer::builder`].
///
/// # Examples
///
/// ```
/// use redis_lanes_testkit::RedisServer;
///
/// # fn main() -> Result<(), redis_lanes_testkit::Error> {
/// let server = RedisServer::builder()
///     .args(["--requirepass", "secret"])
///     .unix_socket(true)
///     .start()?;
/// assert!(server.unix_url().is_some());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `start` is called"]
pub struct ServerBuilder {
    pub(crate) args: Vec<OsString>,
    pub(crate) unix_socket: bool,
    pub(crate) binary: Option<PathBuf>,
    pub(crate) startup_timeout: Duration,
    /// `Some` when the server also listens for TLS.
    pub(crate) tls: Option<TlsSetup>,
}

/// How a TLS listener is set up.
#[derive(Debug, Clone)]
pub(crate) struct TlsSetup {
    pub(crate) client_auth: ClientAuth,
    pub(crate) server_names: Vec<String>,
}

impl Default for TlsSetup {
    fn default() -> Self {
        Self {
            client_auth: ClientAuth::default(),
            server_names: DEFAULT_SERVER_NAMES
                .iter()
                .map(|n| (*n).to_owned())
                .collect(),
        }
    }
}

impl Default for ServerBuilder {
    fn default() -> Self {
        Self {
            args: Vec::new(),
            unix_socket: false,
            binary: None,
            startup_timeout: DEFAULT_STARTUP_TIMEOUT,
            tls: None,
        }
    }
}

impl ServerBuilder {
    /// Same as [`RedisServer::builder`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends one command-line argument for `redis-server`, such as `"--requirepass"`.
    ///
    /// Extra arguments come after the kit's own, so for single-valued settings they win;
    /// overriding `--port`, `--bind`, `--dir` or `--unixsocket` breaks the kit's
    /// bookkeeping and is not supported. The readiness check sends `PING` to the plain TCP
    /// port, so that port must stay enabled.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Appends several command-line arguments; see [`ServerBuilder::arg`].
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|arg| arg.as_ref().to_owned()));
        self
    }

    /// Whether the server also listens on a Unix socket inside its temporary directory
    /// (off by default). See [`RedisServer::unix_socket_path`].
    pub fn unix_socket(mut self, enabled: bool) -> Self {
        self.unix_socket = enabled;
        self
    }

    /// Whether the server also listens for TLS on a second port (off by default).
    ///
    /// On start the kit makes a CA, a server certificate for `localhost` and `127.0.0.1`
    /// (see [`ServerBuilder::tls_server_names`]) and a client certificate, writes them into
    /// the server's temporary directory and passes `--tls-port`, `--tls-cert-file`,
    /// `--tls-key-file`, `--tls-ca-cert-file` and `--tls-auth-clients` (`no` unless
    /// [`ServerBuilder::tls_auth_clients`] says otherwise). Connect the client under test
    /// to [`RedisServer::tls_url`] and trust [`TlsCerts::ca_pem`](crate::TlsCerts::ca_pem).
    ///
    /// The plain port stays open on `127.0.0.1`: it is the kit's side channel
    /// ([`RedisServer::command`], the readiness probe, [`RedisServer::url`] for a second,
    /// independent client). A client connecting to the TLS port gets TLS or nothing.
    ///
    /// `redis-server` must be built with TLS (Debian's is); one without it exits at start,
    /// and [`start`](ServerBuilder::start) reports its output.
    pub fn tls(mut self, enabled: bool) -> Self {
        if enabled {
            self.tls.get_or_insert_with(TlsSetup::default);
        } else {
            self.tls = None;
        }
        self
    }

    /// Whether the TLS listener requires client certificates (`--tls-auth-clients`).
    /// Turns TLS on.
    pub fn tls_auth_clients(mut self, auth: ClientAuth) -> Self {
        self.tls.get_or_insert_with(TlsSetup::default).client_auth = auth;
        self
    }

    /// The DNS names and IP addresses the server certificate is issued for, instead of
    /// `localhost` and `127.0.0.1`; e.g. only `"redis.test"`, to test a client that
    /// connects by address and names the server with an SNI override. Turns TLS on.
    pub fn tls_server_names<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tls.get_or_insert_with(TlsSetup::default).server_names =
            names.into_iter().map(Into::into).collect();
        self
    }

    /// Runs this executable instead of looking for `redis-server`.
    ///
    /// Without this, the `REDIS_SERVER_BIN` environment variable is used if set and
    /// non-empty, and otherwise `redis-server` is looked up on `PATH`. Prefer this method
    /// over setting the variable from a test: the environment is shared by every thread of
    /// the test binary.
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// How long [`start`](ServerBuilder::start) and [`RedisServer::restart`] wait for the
    /// server to answer (10 seconds by default).
    pub fn startup_timeout(mut self, timeout: Duration) -> Self {
        self.startup_timeout = timeout;
        self
    }

    /// Starts the server and waits until it answers `PING`.
    ///
    /// # Errors
    ///
    /// - [`ErrorKind::MissingBinary`](crate::ErrorKind::MissingBinary) if the executable
    ///   cannot be found; the message says how to install it.
    /// - [`ErrorKind::Io`](crate::ErrorKind::Io) if the temporary directory cannot be created
    ///   or the process cannot be spawned.
    /// - [`ErrorKind::Startup`](crate::ErrorKind::Startup) if the server exits early (for
    ///   example on a bad argument) or does not answer within the startup timeout; the
    ///   message includes the end of its log and of its stdout/stderr.
    /// - [`ErrorKind::Certificate`](crate::ErrorKind::Certificate) if the TLS test
    ///   certificates cannot be generated (for example, a server name that is neither a
    ///   DNS name nor an IP address).
    pub fn start(self) -> Result<RedisServer, Error> {
        RedisServer::start_with(self)
    }
}
