//! Client options and their builder.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::blocking::{Orphan, OrphanHook};
use crate::client::Client;
use crate::error::{Error, ErrorKind};
use crate::lane::{self, Lane, LaneDriver};
use crate::resp::Limits;
use crate::route::BlockingCommands;
use crate::url::{self, ConnectInfo};

/// The RESP protocol version a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Protocol {
    /// RESP2, understood by every Redis server. The default.
    #[default]
    Resp2,
    /// RESP3 (`HELLO 3`, Redis 6 and later): typed replies, and out-of-band push frames,
    /// which redis-lanes keeps apart from replies.
    Resp3,
}

/// Settings shared by every lane of one client. Built by [`Builder`].
#[derive(Debug, Clone)]
pub(crate) struct LaneConfig {
    pub(crate) info: ConnectInfo,
    /// `None`: connecting waits as long as the operating system does.
    pub(crate) connect_timeout: Option<Duration>,
    pub(crate) response_timeout: Option<Duration>,
    pub(crate) max_in_flight: usize,
    pub(crate) close_timeout: Duration,
    pub(crate) limits: Limits,
    pub(crate) push_sender: Option<mpsc::Sender<redis::PushInfo>>,
    pub(crate) blocking: BlockingOptions,
    pub(crate) exclusive: crate::exclusive::Options,
    pub(crate) pubsub: crate::pubsub::Options,
    pub(crate) reconnect: crate::reconnect::ReconnectOptions,
    /// The TLS connector for a `rediss://` URL, built once and shared by every lane.
    pub(crate) tls: Option<Arc<crate::tls::Tls>>,
}

/// Options of the blocking-lane pool.
#[derive(Clone)]
pub(crate) struct BlockingOptions {
    pub(crate) max_lanes: usize,
    pub(crate) idle_timeout: Duration,
    pub(crate) acquire_timeout: Duration,
    pub(crate) grace: Duration,
    pub(crate) declared: BlockingCommands,
    pub(crate) hook: Option<OrphanHook>,
}

impl std::fmt::Debug for BlockingOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockingOptions")
            .field("max_lanes", &self.max_lanes)
            .field("idle_timeout", &self.idle_timeout)
            .field("acquire_timeout", &self.acquire_timeout)
            .field("grace", &self.grace)
            .field("declared", &self.declared)
            .field("hook", &self.hook.is_some())
            .finish()
    }
}

impl Default for BlockingOptions {
    fn default() -> Self {
        Self {
            max_lanes: 64,
            idle_timeout: Duration::from_secs(60),
            acquire_timeout: Duration::from_secs(10),
            grace: Duration::from_secs(2),
            declared: BlockingCommands::new(),
            hook: None,
        }
    }
}

/// Options for a [`Client`], starting from a connection URL.
///
/// Created by [`Client::builder`]. The URL is checked when the builder connects, so a
/// bad URL is reported by [`Builder::connect`] as an error of kind
/// [`ErrorKind::InvalidConfig`].
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// # async fn run() -> Result<(), redis_lanes::Error> {
/// let client = redis_lanes::Client::builder("redis://127.0.0.1:6379/0")
///     .client_name("billing-worker")
///     .response_timeout(Some(Duration::from_secs(2)))
///     .max_in_flight(10_000)
///     .connect()
///     .await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `connect` is called"]
pub struct Builder {
    info: Result<ConnectInfo, Error>,
    connect_timeout: Option<Duration>,
    response_timeout: Option<Duration>,
    max_in_flight: usize,
    close_timeout: Duration,
    limits: Limits,
    push_sender: Option<mpsc::Sender<redis::PushInfo>>,
    blocking: BlockingOptions,
    /// Set by `impl Builder` blocks in `exclusive/`.
    pub(crate) exclusive: crate::exclusive::Options,
    /// Set by `impl Builder` blocks in `pubsub/`.
    pub(crate) pubsub: crate::pubsub::Options,
    /// Set by the `impl Builder` block in `reconnect.rs`.
    pub(crate) reconnect: crate::reconnect::ReconnectOptions,
    /// Set by the `impl Builder` block in `tls.rs`.
    pub(crate) tls: crate::tls::TlsOptions,
}

impl Builder {
    pub(crate) fn new(url: &str) -> Self {
        Self {
            info: url::parse(url),
            connect_timeout: Some(Duration::from_secs(10)),
            response_timeout: None,
            max_in_flight: 8192,
            close_timeout: Duration::from_secs(10),
            limits: Limits::default(),
            push_sender: None,
            blocking: BlockingOptions::default(),
            exclusive: Default::default(),
            pubsub: Default::default(),
            reconnect: Default::default(),
            tls: Default::default(),
        }
    }

    fn info_mut(&mut self) -> Option<&mut ConnectInfo> {
        self.info.as_mut().ok()
    }

    /// Sets the ACL user name, overriding the URL's.
    pub fn username(mut self, username: impl Into<String>) -> Self {
        if let Some(info) = self.info_mut() {
            info.username = Some(username.into());
        }
        self
    }

    /// Sets the password, overriding the URL's. It is sent only in the handshake
    /// (`AUTH`, or `HELLO 3 AUTH`) and never shown: `Debug` of the builder, the client
    /// and their errors print `***` in its place.
    pub fn password(mut self, password: impl Into<String>) -> Self {
        if let Some(info) = self.info_mut() {
            info.password = Some(password.into());
        }
        self
    }

    /// Selects a database, overriding the URL's. Every lane runs `SELECT` in its handshake.
    pub fn db(mut self, db: i64) -> Self {
        if let Some(info) = self.info_mut() {
            info.db = db;
        }
        self
    }

    /// Names every connection (`CLIENT SETNAME`), so it can be told apart in `CLIENT LIST`.
    pub fn client_name(mut self, name: impl Into<String>) -> Self {
        if let Some(info) = self.info_mut() {
            info.client_name = Some(name.into());
        }
        self
    }

    /// Chooses RESP2 (the default) or RESP3.
    pub fn protocol(mut self, protocol: Protocol) -> Self {
        if let Some(info) = self.info_mut() {
            info.protocol = protocol;
        }
        self
    }

    /// Bounds connecting plus the handshake, for every connection the client opens
    /// (reconnects and dedicated lanes too). Default: 10 s. Takes a `Duration` or an
    /// `Option<Duration>`; `None` turns the bound off, leaving it to the operating
    /// system's own connect timeout (as code running under `tokio::time::pause()` needs).
    pub fn connect_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.connect_timeout = timeout.into();
        self
    }

    /// Fails a request whose reply has not arrived within `timeout`. Default: `None`.
    ///
    /// Off by default on purpose: a global timeout must never be what fails a legitimate
    /// long-running command. A request that times out before it was written is never
    /// written; one that was written still runs on the server, and its late reply is
    /// read and discarded so the connection stays in step.
    pub fn response_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Bounds the requests queued or awaiting a reply on one lane. When the bound is
    /// reached, callers wait for room; they do not get an error. Default: 8192.
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = max;
        self
    }

    /// Bounds how long [`Client::close`] waits for in-flight requests before it cuts them
    /// off. Default: 10 s.
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Largest bulk string accepted from the server. Default: 512 MiB, the server's own
    /// `proto-max-bulk-len`. A reply holding a larger one fails its own request with
    /// [`ErrorKind::ResponseTooLarge`]: its payload is skipped as it arrives, never
    /// buffered, and the connection and every other caller's reply are untouched. (A
    /// length over [`Builder::max_frame_len`] is a protocol error instead: no reply can
    /// be that large, so the peer is broken.)
    pub fn max_bulk_len(mut self, bytes: usize) -> Self {
        self.limits.max_bulk_len = bytes;
        self
    }

    /// Deepest nesting of aggregate replies accepted. Default: 512. Deeper replies close
    /// the connection with a protocol error as soon as the offending header arrives.
    ///
    /// RESP3 push frames, and aggregates inside them, are parsed by the `redis` crate,
    /// which stops at 100 levels whatever this is set to.
    pub fn max_nesting_depth(mut self, depth: usize) -> Self {
        self.limits.max_depth = depth;
        self
    }

    /// Largest complete reply accepted, in bytes. Default: 1 GiB. Checked while the
    /// reply is still arriving, and against headers: a bulk length or an aggregate count
    /// that could not fit (every element takes at least 3 bytes) is refused at once, so
    /// no header makes the client reserve memory it announces.
    pub fn max_frame_len(mut self, bytes: usize) -> Self {
        self.limits.max_frame_len = bytes;
        self
    }

    /// Delivers RESP3 push frames (e.g. client-side caching invalidations) to `sender`.
    ///
    /// Push frames are never taken for replies. Without a sender they are counted in
    /// [`Stats`](crate::Stats) and dropped; when the channel is full, the newest push is
    /// dropped and counted, so a slow consumer never stalls the connection.
    ///
    /// When the connection is lost, the channel gets a push of kind
    /// [`redis::PushKind::Disconnection`] (delivered once there is room, never dropped),
    /// as redis-rs sends it: whatever was set up on the connection, such as `CLIENT
    /// TRACKING`, is gone, and the client has reconnected (or is reconnecting) without
    /// it. The channel closes when the client and its lanes are gone.
    pub fn push_sender(mut self, sender: mpsc::Sender<redis::PushInfo>) -> Self {
        self.push_sender = Some(sender);
        self
    }

    /// Bounds the dedicated connections blocking commands run on. When all are busy,
    /// further blocking calls wait their turn (first come, first served) for up to
    /// [`Builder::blocking_acquire_timeout`]. Default: 64.
    pub fn max_blocking_lanes(mut self, max: usize) -> Self {
        self.blocking.max_lanes = max;
        self
    }

    /// Closes blocking lanes left idle this long. Default: 60 s.
    pub fn blocking_idle_timeout(mut self, idle: Duration) -> Self {
        self.blocking.idle_timeout = idle;
        self
    }

    /// How long a blocking call waits for a free blocking lane before it fails with
    /// [`ErrorKind::PoolTimeout`]. Default: 10 s.
    pub fn blocking_acquire_timeout(mut self, timeout: Duration) -> Self {
        self.blocking.acquire_timeout = timeout;
        self
    }

    /// Added to a blocking command's own timeout (`BLPOP k 5`: 5 s) to make its
    /// client-side deadline, so a reply that is on its way is not cut off. A command
    /// that blocks forever (`0`) has no deadline. Default: 2 s.
    pub fn blocking_grace(mut self, grace: Duration) -> Self {
        self.blocking.grace = grace;
        self
    }

    /// Declares a command (e.g. a module's) as blocking, so it runs on a blocking lane
    /// and is cancelled on the server when its caller gives up. Case-insensitive. For a
    /// single call, [`Client::send_blocking`] does the same.
    pub fn blocking_command(mut self, name: &str) -> Self {
        self.blocking.declared.insert(name);
        self
    }

    /// Hands replies that raced a cancel to `hook` instead of the default restore.
    ///
    /// By default, data popped by a cancelled blocking command is put back where it came
    /// from (list pops to the same end, sorted-set pops with their scores, `BLMOVE`
    /// moved back if the element is still where it was put). With a hook, the hook gets
    /// the [`Orphan`] and the data is not restored. Events that could not be inspected
    /// (the lane had to be closed) reach the hook too. Either way they are counted in
    /// [`Stats`](crate::Stats) and traced.
    ///
    /// The hook runs on a runtime thread: keep it short and do not block.
    pub fn on_orphan(mut self, hook: impl Fn(&Orphan) + Send + Sync + 'static) -> Self {
        self.blocking.hook = Some(std::sync::Arc::new(hook));
        self
    }

    pub(crate) fn build(self) -> Result<LaneConfig, Error> {
        let info = self.info?;
        let invalid = |what: &str| Err(Error::new(ErrorKind::InvalidConfig, what.to_owned()));
        if info.db < 0 {
            return invalid("db must not be negative");
        }
        if self.max_in_flight == 0 {
            return invalid("max_in_flight must be at least 1");
        }
        if self.max_in_flight > tokio::sync::Semaphore::MAX_PERMITS {
            return invalid("max_in_flight is larger than the runtime supports");
        }
        if self.limits.max_bulk_len == 0
            || self.limits.max_depth == 0
            || self.limits.max_frame_len == 0
        {
            return invalid("decoder limits must be at least 1");
        }
        if self.blocking.max_lanes == 0
            || self.blocking.max_lanes > tokio::sync::Semaphore::MAX_PERMITS
        {
            return invalid("max_blocking_lanes must be at least 1");
        }
        self.reconnect.validate()?;
        let tls = crate::tls::build(&info, self.tls)?;
        Ok(LaneConfig {
            info,
            connect_timeout: self.connect_timeout,
            response_timeout: self.response_timeout,
            max_in_flight: self.max_in_flight,
            close_timeout: self.close_timeout,
            limits: self.limits,
            push_sender: self.push_sender,
            blocking: self.blocking,
            exclusive: self.exclusive,
            pubsub: self.pubsub,
            reconnect: self.reconnect,
            tls,
        })
    }

    /// Connects and returns a [`Client`] whose shared lane runs on a spawned task.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] for a bad URL or option (including TLS options on a
    /// URL that is not `rediss://`, and PEM that cannot be read or parsed) or when called
    /// outside a Tokio runtime, [`ErrorKind::Connect`] when the server cannot be reached
    /// within the connect timeout or its TLS certificate fails verification, [`ErrorKind::Auth`] when it refuses the credentials and
    /// [`ErrorKind::Handshake`] when it refuses the database, name or protocol.
    pub async fn connect(self) -> Result<Client, Error> {
        Client::from_config(Arc::new(self.build()?)).await
    }

    /// Connects one lane and returns its handle with its driver, unspawned.
    ///
    /// For users who own their tasks: the driver is a future that must be polled (e.g.
    /// `tokio::spawn(driver)`) for the lane to make progress. See [`LaneDriver`].
    ///
    /// # Errors
    ///
    /// As for [`Builder::connect`].
    pub async fn pair(self) -> Result<(Lane, LaneDriver), Error> {
        lane::open(Arc::new(self.build()?), Arc::default()).await
    }
}
