//! Layer 5: [`Builder`], every option of a client, and the checks that turn them into
//! the layers' own options (`node::Config`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::blocking::{BlockingOptions, Orphan};
use crate::client::Client;
use crate::connect::{ConnectOptions, Pem, TcpOptions, TlsOptions};
use crate::error::{Error, ErrorKind};
use crate::lane::{self, HealthOptions, Lane, LaneDriver, LaneOptions};
use crate::node::Config;
use crate::pubsub::OverflowPolicy;
use crate::reconnect::ReconnectOptions;
use crate::resp::Limits;
use crate::url::{self, ConnectInfo, Protocol};
#[cfg(doc)] // For the documentation's links.
use crate::Subscriber;

/// Options for a [`Client`], starting from a connection URL.
///
/// Created by [`Client::builder`]. URLs: `redis://`, `rediss://` (TLS), `redis+unix://`
/// and `unix://`, or Valkey's spellings of the same, `valkey://`, `valkeys://` and
/// `valkey+unix://`. The URL is checked when the builder connects, so a
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
    max_in_flight_bytes: usize,
    max_in_flight_wait: Option<Duration>,
    close_timeout: Duration,
    limits: Limits,
    push_sender: Option<mpsc::Sender<redis::PushInfo>>,
    blocking: BlockingOptions,
    exclusive: crate::exclusive::ExclusiveOptions,
    pubsub: crate::pubsub::SubscriberOptions,
    reconnect: ReconnectOptions,
    tls: TlsOptions,
    tcp: TcpOptions,
    health: HealthOptions,
    #[cfg(feature = "metrics")]
    metrics_interval: Duration,
}

impl Builder {
    pub(crate) fn new(url: &str) -> Self {
        Self {
            info: url::parse(url),
            connect_timeout: Some(Duration::from_secs(10)),
            response_timeout: None,
            max_in_flight: 8192,
            max_in_flight_bytes: 256 << 20,
            max_in_flight_wait: Some(Duration::from_secs(10)),
            close_timeout: Duration::from_secs(10),
            limits: Limits::default(),
            push_sender: None,
            blocking: BlockingOptions::default(),
            exclusive: Default::default(),
            pubsub: Default::default(),
            reconnect: Default::default(),
            tls: Default::default(),
            tcp: TcpOptions::default(),
            health: HealthOptions::default(),
            #[cfg(feature = "metrics")]
            metrics_interval: Duration::from_secs(1),
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
    /// reached, callers wait for room, for at most
    /// [`max_in_flight_wait`](Builder::max_in_flight_wait). Default: 8192.
    pub fn max_in_flight(mut self, max: usize) -> Self {
        self.max_in_flight = max;
        self
    }

    /// Bounds the bytes of the requests queued or awaiting a reply on one lane, as
    /// [`max_in_flight`](Builder::max_in_flight) bounds their number. A single request
    /// larger than the bound is let through when nothing else is in flight, so it
    /// cannot wait forever. Default: 256 MiB.
    pub fn max_in_flight_bytes(mut self, bytes: usize) -> Self {
        self.max_in_flight_bytes = bytes;
        self
    }

    /// How long a caller waits for room when a lane is full (see
    /// [`max_in_flight`](Builder::max_in_flight)) before it fails with
    /// [`ErrorKind::Backpressure`]; nothing is sent then. Default: 10 s. Takes a
    /// `Duration` or an `Option<Duration>`; `None` waits as long as it takes.
    ///
    /// A request that times out under
    /// [`response_timeout`](Builder::response_timeout) gives its room back at once; its
    /// late reply is still read and discarded.
    pub fn max_in_flight_wait(mut self, wait: impl Into<Option<Duration>>) -> Self {
        self.max_in_flight_wait = wait.into();
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
        self.blocking.hook = Some(Arc::new(hook));
        self
    }

    /// Checks every option and builds what each layer takes.
    pub(crate) fn build(self) -> Result<Config, Error> {
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
        if self.max_in_flight_bytes == 0 {
            return invalid("max_in_flight_bytes must be at least 1");
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
        let max_exclusive = self.exclusive.max_lanes;
        if max_exclusive == 0 || max_exclusive > tokio::sync::Semaphore::MAX_PERMITS {
            return invalid("max_exclusive_lanes must be at least 1");
        }
        self.reconnect.validate()?;
        if self.health.interval.is_some_and(|every| every.is_zero())
            || self.health.timeout.is_zero()
        {
            return invalid("health_check intervals and timeouts must be longer than zero");
        }
        #[cfg(feature = "metrics")]
        if self.metrics_interval.is_zero() {
            return invalid("metrics_interval must be longer than zero");
        }
        let connect =
            ConnectOptions::new(info, self.tls, self.limits, self.connect_timeout, self.tcp)?;
        Ok(Config {
            lane: Arc::new(LaneOptions {
                connect: Arc::new(connect),
                max_in_flight: self.max_in_flight,
                max_in_flight_bytes: self.max_in_flight_bytes,
                max_in_flight_wait: self.max_in_flight_wait,
                response_timeout: self.response_timeout,
                close_timeout: self.close_timeout,
                reconnect: self.reconnect,
                push_sender: self.push_sender,
                health: self.health,
            }),
            blocking: self.blocking,
            exclusive: self.exclusive,
            pubsub: self.pubsub,
            #[cfg(feature = "metrics")]
            metrics_interval: self.metrics_interval,
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
        Client::from_config(self.build()?).await
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
        lane::open(self.build()?.lane, Arc::default()).await
    }
}

/// Finding a server that went silent without closing anything (a dropped NAT entry, a
/// pulled cable, a paused VM): see "When the server goes silent" in the crate
/// documentation.
impl Builder {
    /// How long a connection may stay quiet before it must prove its server is alive.
    /// Default: 2 s. Takes a `Duration` or an `Option<Duration>`; `None` turns the check
    /// off.
    ///
    /// After an interval in which nothing was read, the shared lane and the subscriber
    /// send `PING` (in line: reply order is kept), an idle blocking lane does too, and a
    /// lane busy with a blocking command is looked up from the shared lane with
    /// `CLIENT LIST ID`. A server that sends nothing within
    /// [`health_check_timeout`](Builder::health_check_timeout) after that is declared
    /// dead: the connection is closed, callers in flight get
    /// [`ErrorKind::ConnectionLost`] (outcome unknown), and the shared lane reconnects.
    /// A silent server is so found within `2 × interval + timeout` (8 s by default).
    ///
    /// A blocking command that waits legitimately (`BLPOP k 0`) is never cut short: the
    /// server lists its connection as blocked. A server busy for longer than the limit
    /// without sending a byte (a long script, `DEBUG SLEEP`) cannot be told from a dead
    /// one; raise the timeout for such workloads.
    ///
    /// Under a paused Tokio clock (`tokio::time::pause()`), turn it off, as the connect
    /// timeout: a paused clock jumps to the next timer while a reply is still on its way,
    /// and the check would find the server silent.
    pub fn health_check(mut self, interval: impl Into<Option<Duration>>) -> Self {
        self.health.interval = interval.into();
        self
    }

    /// How often the client's counters and gauges (the fields of [`Stats`]) are published
    /// to the `metrics` recorder. Default: 1 s. Latency histograms are recorded per
    /// request, whatever this says. Only with the `metrics` feature; see the crate docs'
    /// section on observability.
    ///
    /// [`Stats`]: crate::Stats
    #[cfg(feature = "metrics")]
    pub fn metrics_interval(mut self, interval: Duration) -> Self {
        self.metrics_interval = interval;
        self
    }

    /// How long a server may stay silent after a health check's probe before its
    /// connection is declared dead. Default: 4 s. See [`Builder::health_check`].
    pub fn health_check_timeout(mut self, timeout: Duration) -> Self {
        self.health.timeout = timeout;
        self
    }

    /// TCP keepalive: the idle time before the operating system probes a quiet
    /// connection. Probes follow every `idle / 2` (at least 1 s), and 3 unanswered ones
    /// close it. Default: 10 s, so a dead peer on an idle connection is found within
    /// 25 s even where no health check can run (a blocking lane's socket during
    /// `BLPOP k 0`). `None` turns keepalive off. Applies to TCP and TLS, not to Unix
    /// sockets (whose peer is local).
    pub fn tcp_keepalive(mut self, idle: impl Into<Option<Duration>>) -> Self {
        self.tcp.keepalive = idle.into();
        self
    }

    /// `TCP_USER_TIMEOUT` (Linux): how long written data may stay unacknowledged before
    /// the operating system closes the connection. Default: 20 s (the system's own
    /// limit is about 15 minutes of retransmissions). `None` keeps the system's. Ignored
    /// on other platforms.
    pub fn tcp_user_timeout(mut self, timeout: impl Into<Option<Duration>>) -> Self {
        self.tcp.user_timeout = timeout.into();
        self
    }
}

/// TLS (`rediss://`).
impl Builder {
    /// Trusts the CA certificate(s) in `pem` to sign the server's certificate, instead of
    /// the built-in web roots (Mozilla's, from the `webpki-roots` crate). Use it for a
    /// private CA or a self-signed server certificate. Calling it again (or
    /// [`Builder::tls_ca_file`]) adds more CAs.
    ///
    /// Needs a `rediss://` URL, as every `tls_*` option: on any other URL,
    /// [`Builder::connect`] fails with [`ErrorKind::InvalidConfig`] rather than silently
    /// connecting without TLS.
    ///
    /// PEM that holds no certificate, or a certificate that cannot be parsed, makes
    /// [`Builder::connect`] fail with [`ErrorKind::InvalidConfig`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let ca = std::fs::read("/etc/redis/tls/ca.crt")?;
    /// let client = redis_lanes::Client::builder("rediss://cache.internal:6380")
    ///     .tls_ca_pem(&ca)
    ///     .connect()
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn tls_ca_pem(mut self, pem: impl AsRef<[u8]>) -> Self {
        self.tls.ca.push(Pem::Bytes(pem.as_ref().into()));
        self
    }

    /// Like [`Builder::tls_ca_pem`], with the PEM read from the file at `path` when the
    /// builder connects. A file that cannot be read is an [`ErrorKind::InvalidConfig`]
    /// error of [`Builder::connect`].
    pub fn tls_ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.tls.ca.push(Pem::File(path.into()));
        self
    }

    /// Presents a client certificate for mutual TLS (a server run with
    /// `tls-auth-clients yes`). `cert_chain` holds the client's certificate, optionally
    /// followed by intermediates; `key` its private key (PKCS#8, PKCS#1 or SEC1 PEM).
    ///
    /// The key is never shown by `Debug`. PEM that cannot be parsed, or a key that does
    /// not match the certificate, makes [`Builder::connect`] fail with
    /// [`ErrorKind::InvalidConfig`].
    pub fn tls_client_cert_pem(
        mut self,
        cert_chain: impl AsRef<[u8]>,
        key: impl AsRef<[u8]>,
    ) -> Self {
        self.tls.client_auth = Some((
            Pem::Bytes(cert_chain.as_ref().into()),
            Pem::Bytes(key.as_ref().into()),
        ));
        self
    }

    /// Like [`Builder::tls_client_cert_pem`], with both read from files when the builder
    /// connects.
    pub fn tls_client_cert_files(
        mut self,
        cert_chain: impl Into<PathBuf>,
        key: impl Into<PathBuf>,
    ) -> Self {
        self.tls.client_auth = Some((Pem::File(cert_chain.into()), Pem::File(key.into())));
        self
    }

    /// Checks the server's certificate against `name` (and sends it as SNI) instead of
    /// the URL's host: for connecting by IP address, or through a tunnel, to a server
    /// whose certificate was issued for a DNS name. `name` may also be an IP address.
    ///
    /// A name that is neither a valid DNS name nor an IP address makes
    /// [`Builder::connect`] fail with [`ErrorKind::InvalidConfig`].
    pub fn tls_server_name(mut self, name: impl Into<String>) -> Self {
        self.tls.server_name = Some(name.into());
        self
    }
}

/// Reconnect. The shared lane (and a [`Lane`](crate::Lane) from [`Builder::pair`])
/// reconnects on its own when its connection breaks; dedicated lanes (blocking,
/// exclusive) are never reconnected: they are discarded and the pool opens new ones.
impl Builder {
    /// Turns automatic reconnect of the shared connection on (the default) or off.
    /// Off, a broken connection ends the client: every later call fails with
    /// [`ErrorKind::ConnectionLost`].
    pub fn reconnect(mut self, enabled: bool) -> Self {
        self.reconnect.enabled = enabled;
        self
    }

    /// The pause between reconnect attempts grows from `min` to `max`, doubling per
    /// failed attempt, with random jitter. The first attempt after a break is made at
    /// once, unless the previous connection broke within a second of being made.
    /// Default: 50 ms to 5 s.
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect.min_delay = min;
        self.reconnect.max_delay = max;
        self
    }

    /// Gives up after this many failed attempts in a row; the client then fails every
    /// call with [`ErrorKind::ConnectionLost`]. Default: `None`, never give up.
    pub fn reconnect_max_attempts(mut self, attempts: Option<u32>) -> Self {
        self.reconnect.max_attempts = attempts;
        self
    }

    /// How long a command issued while the connection is down waits for it to come
    /// back before it fails with [`ErrorKind::ConnectionLost`] (marked
    /// [retry-safe](crate::Error::is_retry_safe): it was never sent). Zero fails at once;
    /// see [`Builder::fail_fast`]. Default: 5 s.
    pub fn disconnected_wait(mut self, wait: Duration) -> Self {
        self.reconnect.wait = wait;
        self
    }

    /// Commands issued while the connection is down fail at once instead of waiting
    /// for it to come back. Same as `disconnected_wait(Duration::ZERO)`.
    pub fn fail_fast(self) -> Self {
        self.disconnected_wait(Duration::ZERO)
    }

    /// Opt-in: a command known to be read-only (`GET`, `HGETALL`, `XRANGE`, ...; a
    /// pipeline only if all its commands are) whose connection broke while it was in
    /// flight is sent once more after the reconnect, instead of failing with an
    /// outcome-unknown error. Other commands are never re-sent. Default: off.
    pub fn retry_read_only(mut self, enabled: bool) -> Self {
        self.reconnect.retry_read_only = enabled;
        self
    }
}

/// Exclusive lanes and transactions.
impl Builder {
    /// Bounds the dedicated connections [`Client::exclusive`](crate::Client::exclusive)
    /// (and [`Client::transaction`](crate::Client::transaction)) lease out. When all are
    /// on loan, further callers wait their turn (first come, first served) for up to
    /// [`Builder::exclusive_acquire_timeout`]. Must be at least 1. Default: 16.
    pub fn max_exclusive_lanes(mut self, max: usize) -> Self {
        self.exclusive.max_lanes = max;
        self
    }

    /// How long [`Client::exclusive`](crate::Client::exclusive) waits for a free
    /// exclusive lane before it fails with
    /// [`ErrorKind::PoolTimeout`](crate::ErrorKind::PoolTimeout). Default: 10 s.
    pub fn exclusive_acquire_timeout(mut self, timeout: Duration) -> Self {
        self.exclusive.acquire_timeout = timeout;
        self
    }

    /// Closes exclusive lanes left idle this long. Default: 60 s.
    pub fn exclusive_idle_timeout(mut self, idle: Duration) -> Self {
        self.exclusive.idle_timeout = idle;
        self
    }

    /// How many times [`Client::transaction`](crate::Client::transaction) runs its body
    /// again after the first attempt, when a watched key changed (or the body returned
    /// `Ok(None)`), before it gives up with
    /// [`ErrorKind::TransactionConflict`](crate::ErrorKind::TransactionConflict).
    /// `0` means a single attempt. Default: 16.
    pub fn transaction_max_retries(mut self, retries: u32) -> Self {
        self.exclusive.max_retries = retries;
        self
    }
}

/// The subscriber.
impl Builder {
    /// How many messages a [`Subscriber`] buffers for a consumer that is behind, before
    /// its [`OverflowPolicy`] applies. Must be at least 1
    /// ([`Client::subscriber`] fails with [`ErrorKind::InvalidConfig`] otherwise).
    /// Default: 4096.
    ///
    /// The bound is in messages; [`Builder::subscriber_buffer_bytes`] bounds their size.
    ///
    /// [`ErrorKind::InvalidConfig`]: crate::ErrorKind::InvalidConfig
    pub fn subscriber_buffer(mut self, messages: usize) -> Self {
        self.pubsub.buffer = messages;
        self
    }

    /// Bounds the bytes a [`Subscriber`] buffers (channel, pattern and payload of each
    /// message, plus 64 bytes of bookkeeping), under the same [`OverflowPolicy`] as
    /// [`Builder::subscriber_buffer`]: a message that would go over it is dropped, or
    /// evicts the oldest, or disconnects. A single message larger than the bound is
    /// still taken into an empty buffer. Default: 64 MiB.
    pub fn subscriber_buffer_bytes(mut self, bytes: usize) -> Self {
        self.pubsub.buffer_bytes = bytes;
        self
    }

    /// What a [`Subscriber`] does with a message that arrives while its buffer is full.
    /// Default: [`OverflowPolicy::DropNewest`].
    pub fn subscriber_overflow(mut self, policy: OverflowPolicy) -> Self {
        self.pubsub.overflow = policy;
        self
    }
}
