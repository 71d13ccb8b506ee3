//! Async Redis connections managed the way they should be.
//!
//! A [`Client`] is a cheap, cloneable handle. Every clone's ordinary commands are
//! auto-pipelined on one shared connection (a *lane*): the lane's driver drains
//! everything queued into one write, reads in large chunks and decodes every complete
//! reply before it yields. Blocking commands (`BLPOP`, `BLMOVE`, `BZPOPMIN`,
//! `XREAD`/`XREADGROUP` with `BLOCK`, `WAIT`, ...), recognised by their arguments, run on
//! dedicated *blocking lanes* from a bounded pool, so the shared lane never waits. `Client` implements [`redis::aio::ConnectionLike`], so the
//! `redis` crate's command API works on it unchanged.
//!
//! ```no_run
//! use redis::AsyncCommands;
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = redis_lanes::Client::connect("redis://127.0.0.1:6379").await?;
//! let mut conn = client.clone();
//! conn.set::<_, _, ()>("k", 1).await?;
//! let (a, b): (i64, i64) = redis::pipe().incr("k", 1).incr("k", 1).query_async(&mut conn).await?;
//! assert_eq!((a, b), (2, 3));
//! client.close().await;
//! # Ok(()) }
//! ```
//!
//! # Layout
//!
//! Layers, each importing only those below it (`docs/DESIGN.md`, "Layers"):
//!
//! 0. Pure: [`Error`] (`error.rs`), `resp/` (an incremental RESP2/RESP3 decoder with
//!    limits), `route/` (which commands share a connection, which block, which are
//!    refused), `url.rs` (URLs, [`Protocol`]), [`Stats`] (`stats.rs`), `reconnect.rs`
//!    (the backoff policy).
//! 1. `connect/`: transport (TCP, TLS, Unix), handshake, behind one `open()`.
//! 2. `lane/`: one connection, a cloneable [`Lane`] and the [`LaneDriver`] that owns
//!    the socket, as hyper splits `SendRequest` from `Connection`
//!    ([`Builder::pair`] hands out both).
//! 3. `pool/`: a bounded pool of dedicated lanes.
//! 4. `node.rs`: one server's `Core` (shared lane, pools, generation, counters) and the
//!    services built on it: `blocking/` (blocking lanes, the cancel guard, recovery of
//!    raced data), `exclusive/` ([`Exclusive`] leases, transactions), `pubsub/` (the
//!    [`Subscriber`]).
//! 5. [`Client`] (`client.rs`), a handle over one `Core`, and [`Builder`] (`builder.rs`);
//!    [`ClusterClient`] (`cluster/`), a handle over one `Core` per node, routed by hash
//!    slot (`cluster/slot.rs`, `topology.rs`, `commands.rs`, `plan.rs`).
//!
//! # Redis Cluster
//!
//! [`ClusterClient`] keeps the whole contract on every node: each node has its own
//! shared lane, blocking-lane pool (a dropped blocking call is cancelled on *that* node,
//! ordered before the next command sent there) and exclusive-lane pool. Keys are located
//! with the server's `COMMAND` key specifications; multi-key commands over several
//! slots are split and merged, keyless ones fanned out by their request and response
//! policies, and any other cross-slot command refused (`CROSSSLOT`) before it is sent.
//! `MOVED`, `ASK` (with `ASKING` in the same pipeline) and `TRYAGAIN` are followed
//! within [`ClusterBuilder::max_redirects`]; a refresh task keeps the slot map; a request
//! for a dead master's slot waits for the promoted replica rather than for the dead node.
//!
//! # TLS
//!
//! A `rediss://[user[:password]@]host[:port][/db]` URL connects every lane with TLS
//! (rustls). The server's certificate is always verified: against Mozilla's roots, or
//! against the CAs given with [`Builder::tls_ca_pem`] or [`Builder::tls_ca_file`], which
//! replace them. [`Builder::tls_client_cert_pem`] presents a client certificate (mutual
//! TLS) and [`Builder::tls_server_name`] checks the certificate against another name than
//! the URL's host. These options on a URL that is not `rediss://` are an
//! [`ErrorKind::InvalidConfig`] error rather than a plain-text connection.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = redis_lanes::Client::builder("rediss://app:secret@10.0.0.5:6380/0")
//!     .tls_ca_file("/etc/redis/tls/ca.crt")
//!     .tls_client_cert_files("/etc/redis/tls/client.crt", "/etc/redis/tls/client.key")
//!     .tls_server_name("redis.internal")
//!     .connect()
//!     .await?;
//! # Ok(()) }
//! ```
//!
//! A certificate that fails verification (unknown issuer, name mismatch, expired) or a
//! refused client certificate is an [`ErrorKind::Connect`] error whose message says
//! which. Passwords are never shown by `Debug`, in errors or in tracing events.
//!
//! # Cancel safety
//!
//! Every request future can be dropped at any `.await` (timeouts, `select!`, aborted
//! tasks):
//!
//! - a request dropped **before it is written** is never written;
//! - an ordinary request dropped **after it is written** runs on the server; its late
//!   reply is read and discarded, so replies never shift onto the wrong caller;
//! - a **blocking** command dropped after it is written is cancelled on the server: the
//!   drop itself queues `CLIENT UNBLOCK <id>` on the shared lane, so anything the client
//!   (or a clone) sends afterwards runs after the unblock. If the command was still on
//!   its way to the server when the unblock arrived, the client's later commands wait
//!   (for one network hop, typically) until it is known to be released or answered, so
//!   they never run before it. The late reply is read before
//!   the blocking lane is reused, and data it carries is put back where it came from
//!   (list pops to the same end, sorted-set pops with their scores, `BLMOVE` moved back if
//!   the element is still there), left pending (`XREADGROUP`) or handed to the
//!   [`Builder::on_orphan`] hook. See [`Orphan`] and the counters in [`Stats`].
//!
//! A blocking command's client-side deadline is its own timeout plus
//! [`Builder::blocking_grace`]; `0` waits forever. The response timeout of
//! [`Builder::response_timeout`] never applies to blocking commands.
//!
//! # Drop behavior
//!
//! Dropping the last [`Client`] clone closes its sockets and ends its tasks at once
//! (drivers, blocking lanes, pool reapers, and recoveries of cancelled blocking calls,
//! which count what they could not finish as unrecoverable); no task outlives the
//! handles. [`Client::close`] closes
//! gracefully instead: new commands are refused, blocking calls in flight are cancelled
//! on the server (their callers get [`ErrorKind::Closed`], raced data is recovered),
//! ordinary commands already sent are answered, then the sockets close.
//!
//! # When the connection breaks
//!
//! The shared lane reconnects on its own, with exponential backoff and jitter
//! ([`Builder::reconnect_backoff`], [`Builder::reconnect_max_attempts`]). Nothing is
//! silently sent twice:
//!
//! - a request that was **written** when the connection broke fails with
//!   [`ErrorKind::ConnectionLost`] and [`Error::is_outcome_unknown`]: the server may or
//!   may not have run it. Only with [`Builder::retry_read_only`] is a command known to be
//!   read-only (`GET`, `HGETALL`, ...) sent once more;
//! - a request that was **not written** yet waits for the new connection, up to
//!   [`Builder::disconnected_wait`] (or fails at once with [`Builder::fail_fast`]), and
//!   then fails marked [retry-safe](Error::is_retry_safe). Blocking and exclusive calls
//!   wait the same way for their dedicated lane to open;
//! - a refusal on reconnect (credentials that stopped working, a database that is gone)
//!   ends the client with that error ([`ErrorKind::Auth`], [`ErrorKind::Handshake`]),
//!   never an endless retry loop; `maxclients` or `LOADING` are retried;
//! - blocking and exclusive lanes opened before the break are never reused: each is
//!   stamped with the shared lane's connection generation, and a pool closes lanes from
//!   an older one. A blocking call pending when its connection dies gets an error and is
//!   not re-sent; `CLIENT UNBLOCK` is only ever sent on the connection generation its
//!   target was opened under;
//! - a [`Subscriber`] reconnects too, restores its subscriptions, and its stream reports
//!   the gap with one `Err` item.
//!
//! [`Stats::reconnects`] counts the reconnects and [`Stats::connected`] tells whether the
//! shared lane is up.
//!
//! # When the server goes silent
//!
//! A server can stop answering without closing anything: a dropped NAT entry, a pulled
//! cable, a paused VM. No error ever arrives, so redis-lanes looks for signs of life,
//! with defaults that find a silent server within 8 seconds:
//!
//! - **Health checks** ([`Builder::health_check`], 2 s; [`Builder::health_check_timeout`],
//!   4 s). A connection from which nothing was read for an interval proves its server is
//!   alive: the shared lane and the [`Subscriber`] send `PING` in line (reply order is
//!   kept), an idle blocking lane too. A blocking lane busy with `BLPOP k 0` cannot, so
//!   the shared lane asks the server whether it still lists that connection
//!   (`CLIENT LIST ID`); an exclusive lease's pending command is watched the same way. A
//!   server that sends nothing within the timeout is declared dead: the connection is
//!   closed, callers in flight get [`ErrorKind::ConnectionLost`] (outcome unknown), and
//!   the shared lane reconnects as above. A legitimate long wait is never cut short: the
//!   server lists the blocked connection.
//! - **TCP keepalive and `TCP_USER_TIMEOUT`** on every TCP socket
//!   ([`Builder::tcp_keepalive`], 10 s idle then 3 probes 5 s apart;
//!   [`Builder::tcp_user_timeout`], 20 s): the operating system's own check, which also
//!   covers what the health checks cannot see, such as a path dead for one busy blocking
//!   lane while the server still lists it.
//! - **Bounded waits.** A caller that finds its lane full (`max_in_flight` requests or
//!   [`max_in_flight_bytes`](Builder::max_in_flight_bytes) of them) waits at most
//!   [`Builder::max_in_flight_wait`] (10 s), then fails with
//!   [`ErrorKind::Backpressure`], unsent. A request that times out under
//!   [`Builder::response_timeout`] gives its room back at once. The subscriber's buffer is
//!   bounded in bytes as well ([`Builder::subscriber_buffer_bytes`]).
//!
//! [`Stats::health_checks`] and [`Stats::dead_connections`] count the probes and the
//! connections declared dead; [`Stats::backpressure`] the callers refused for a full
//! lane.
//!
//! # Observability
//!
//! **Spans.** Every command and pipeline gets a `tracing` span at `DEBUG` level under
//! the target `redis_lanes::command`, so nothing is opened unless a subscriber enables
//! that target (`RUST_LOG=info,redis_lanes::command=debug`, or an `EnvFilter` to the same
//! effect); with it off, a request pays one cached interest check. The fields follow the
//! OpenTelemetry database conventions, which `tracing-opentelemetry` exports as they are:
//! `db.system.name` (`redis`), `db.operation.name` (`GET`, `CLIENT UNBLOCK`; `PIPELINE` or
//! `MULTI` for a pipeline), `db.operation.batch.size`, `db.namespace` (the database
//! index), `server.address`, `server.port`, `redis_lanes.lane` (`shared`, `blocking` or
//! `exclusive`), `otel.name`, `otel.kind`, and on failure `otel.status_code`, `error.type`
//! (the error kind, the server's error code, or `cancelled` when the caller gave up) and
//! `db.response.status_code`. Only command names are recorded, never keys, values or
//! passwords. A cluster client opens one span per node a request went to.
//!
//! **Metrics** (feature `metrics`). Through the [`metrics`](https://docs.rs/metrics)
//! facade, so any exporter the application installs receives them; install it before
//! connecting, since the client registers its metrics then. Every metric has a `server`
//! label (`host:port`):
//!
//! - `redis_lanes_request_duration_seconds`, a histogram labelled `lane` and `outcome`
//!   (`ok`, `error`, `cancelled`);
//! - counters: `redis_lanes_reconnects_total`, `redis_lanes_blocking_cancels_total`,
//!   `redis_lanes_recovered_replies_total{outcome=restored|reported|unrecoverable}`,
//!   `redis_lanes_refusals_total{reason}`, `redis_lanes_health_checks_total`,
//!   `redis_lanes_health_check_failures_total`, `redis_lanes_timeouts_total`,
//!   `redis_lanes_backpressure_total`, `redis_lanes_connection_errors_total`,
//!   `redis_lanes_unblock_fallbacks_total`, `redis_lanes_exclusive_discards_total`,
//!   `redis_lanes_transaction_retries_total`, `redis_lanes_subscriber_messages_total`,
//!   `redis_lanes_subscriber_dropped_total`, and for a cluster
//!   `redis_lanes_cluster_redirects_total{kind=moved|ask|retry}`;
//! - gauges: `redis_lanes_in_flight_requests`, `redis_lanes_queued_requests`,
//!   `redis_lanes_connected`, `redis_lanes_blocking_lanes{state=busy|idle}`,
//!   `redis_lanes_blocking_waiters`, `redis_lanes_exclusive_lanes{state=busy|idle}`,
//!   `redis_lanes_exclusive_waiters`.
//!
//! Latencies are recorded per request; counters and gauges are the fields of [`Stats`],
//! published every `Builder::metrics_interval` (1 s) and once more when the client is
//! dropped, which takes its gauges back to zero. Clients of the same server add up.
//! `examples/prometheus.rs` renders them in the Prometheus text format. [`Client::stats`]
//! stays as the dependency-free snapshot.
//!
//! # Refused commands
//!
//! Commands that change connection state would corrupt a shared connection and are
//! refused before they are sent, with an error of kind [`ErrorKind::Refused`] whose
//! message names what to use instead: `WATCH`/`UNWATCH`, a bare `MULTI`/`EXEC`/`DISCARD`
//! (`redis::pipe().atomic()` is fine), `SELECT`, the `SUBSCRIBE` family, `MONITOR`,
//! `CLIENT REPLY`, `RESET`, `QUIT`, `HELLO` and `AUTH`.
#![warn(clippy::unwrap_used, clippy::expect_used)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

#[cfg(test)]
mod api_tests {
    /// The handle must be shareable across tasks and threads, and storable anywhere.
    #[test]
    fn handles_are_clone_send_sync_static() {
        fn assert<T: Clone + Send + Sync + 'static>() {}
        assert::<crate::Client>();
        assert::<crate::Lane>();
        assert::<crate::Error>();
        fn assert_send<T: Send + 'static>() {}
        assert_send::<crate::LaneDriver>();
    }
}

// Layer 0, pure: errors, the protocol, routing decisions, URLs, counters, policies.
mod error;
mod observe;
mod reconnect;
mod resp;
mod route;
mod stats;
mod url;
// Layer 1: opening a connection.
mod connect;
// Layer 2: one connection, its handle and its driver.
mod lane;
// Layer 3: pools of dedicated lanes.
mod pool;
// Layer 4: one server's services, built on its lanes and pools.
mod blocking;
mod exclusive;
mod node;
mod pubsub;
// Layer 5: the public handles.
mod builder;
mod client;
// Layer 5 for a cluster: pure slot and key logic, and a client over one `Core` per node.
mod cluster;

#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

pub use blocking::{Orphan, OrphanOutcome};
pub use builder::Builder;
pub use client::Client;
pub use cluster::{ClusterBuilder, ClusterClient};
pub use error::{Error, ErrorKind};
pub use exclusive::Exclusive;
pub use lane::{Lane, LaneDriver};
pub use pubsub::{Message, MessageKind, OverflowPolicy, Subscriber};
pub use stats::Stats;
pub use url::Protocol;

/// The README's examples, compiled and run as doctests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;

/// The `redis` crate this version of redis-lanes is built against, re-exported so
/// applications use the same command and value types.
pub use redis;
