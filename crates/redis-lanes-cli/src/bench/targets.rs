//! The clients under test, behind one enum, and how each one connects.
//!
//! An enum rather than a trait object: the dispatch is one `match` per operation, the
//! same for every client, and `async fn` needs no boxing. The operations themselves are
//! in `commands.rs`.

use std::time::Duration;

use fred::prelude::{Blocking, ClientLike};

use super::BoxError;

/// How long connecting may take before the run gives up on a client.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections in the deadpool-redis pool: enough for every task of the 16-task cells
/// to hold one, as a pool sized for its load would be.
pub(crate) const POOL_SIZE: usize = 16;

/// Connections a new deadpool-redis pool opens before it is used (see [`Target::pool`]).
const WARM_CONNECTIONS: usize = 4;

/// One connected client. Clones share its connections; each benchmark task gets a clone.
#[derive(Clone)]
pub(crate) enum Target {
    /// `redis_lanes::Client`, driven through the `redis` command API.
    Lanes(redis_lanes::Client),
    /// redis-rs's multiplexed connection (response timeout off, unless made with
    /// [`Target::redis_rs_default`]).
    RedisRs(redis::aio::MultiplexedConnection),
    /// redis-rs's `ConnectionManager`: a multiplexed connection that reconnects.
    Manager(redis::aio::ConnectionManager),
    /// A deadpool-redis pool of [`POOL_SIZE`] multiplexed connections; every operation
    /// takes one from the pool and gives it back.
    Pool(deadpool_redis::Pool),
    /// A single fred client (one connection, fred's own pipelining).
    Fred(fred::prelude::Client),
}

impl Target {
    /// Connects one client of each library to `url`, in the throughput table's order.
    pub(crate) async fn connect_all(url: &str) -> Result<Vec<Target>, BoxError> {
        Ok(vec![
            with_timeout("redis-lanes", Self::lanes(url)).await?,
            with_timeout("redis-rs", Self::redis_rs(url)).await?,
            with_timeout("ConnectionManager", Self::manager(url)).await?,
            with_timeout("deadpool-redis", Self::pool(url)).await?,
            with_timeout("fred", Self::fred(url, Blocking::Block)).await?,
        ])
    }

    /// A `redis_lanes::Client` with its defaults, apart from the client name.
    pub(crate) async fn lanes(url: &str) -> Result<Target, BoxError> {
        let client = redis_lanes::Client::builder(url)
            .client_name("redis-lanes-bench")
            .connect()
            .await?;
        Ok(Target::Lanes(client))
    }

    /// The connection settings of every redis-rs based client here: redis-rs times
    /// responses out after 500 ms by default; redis-lanes and fred do not, so it is
    /// turned off to compare the same work (the head-of-line scenario also runs the
    /// default, see [`Target::redis_rs_default`]).
    fn redis_rs_config() -> redis::AsyncConnectionConfig {
        redis::AsyncConnectionConfig::new().set_response_timeout(None)
    }

    /// A redis-rs multiplexed connection with the response timeout off.
    pub(crate) async fn redis_rs(url: &str) -> Result<Target, BoxError> {
        let conn = redis::Client::open(url)?
            .get_multiplexed_async_connection_with_config(&Self::redis_rs_config())
            .await?;
        Ok(Target::RedisRs(conn))
    }

    /// A redis-rs multiplexed connection exactly as redis-rs configures it by default,
    /// response timeout (500 ms in redis-rs 1.x) included: what most applications run.
    pub(crate) async fn redis_rs_default(url: &str) -> Result<Target, BoxError> {
        let conn = redis::Client::open(url)?
            .get_multiplexed_async_connection()
            .await?;
        Ok(Target::RedisRs(conn))
    }

    /// A redis-rs `ConnectionManager` with its defaults, apart from the response
    /// timeout (off, as for the multiplexed connection).
    pub(crate) async fn manager(url: &str) -> Result<Target, BoxError> {
        let config = redis::aio::ConnectionManagerConfig::new().set_response_timeout(None);
        let manager =
            redis::aio::ConnectionManager::new_with_config(redis::Client::open(url)?, config)
                .await?;
        Ok(Target::Manager(manager))
    }

    /// A deadpool-redis pool of [`POOL_SIZE`] connections, response timeout off.
    ///
    /// The pool opens connections on demand. [`WARM_CONNECTIONS`] are opened here, as
    /// a pool in use has a few idle ones: which connection the next command gets (the
    /// one idle longest; deadpool is first in, first out by default) matters when one of
    /// them is still busy with a cancelled command.
    pub(crate) async fn pool(url: &str) -> Result<Target, BoxError> {
        let manager = deadpool_redis::Manager::new_with_config(url, Self::redis_rs_config())?;
        let pool = deadpool_redis::Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_redis::Runtime::Tokio1)
            .build()?;
        let mut warm = Vec::new();
        for _ in 0..WARM_CONNECTIONS {
            warm.push(pool.get().await?);
        }
        drop(warm);
        Ok(Target::Pool(pool))
    }

    /// A fred client with its defaults, apart from what it does with a command sent
    /// while its connection is blocked (`Blocking::Block` is fred's default).
    pub(crate) async fn fred(url: &str, blocking: Blocking) -> Result<Target, BoxError> {
        let config = fred::prelude::Config {
            blocking,
            ..fred::prelude::Config::from_url(url)?
        };
        let client = fred::prelude::Builder::from_config(config).build()?;
        // The connection task ends by itself after `quit`; its handle is not needed.
        let _task = client.init().await?;
        Ok(Target::Fred(client))
    }

    /// The client's name as the throughput table shows it.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Target::Lanes(_) => "redis-lanes",
            Target::RedisRs(_) => "redis-rs",
            Target::Manager(_) => "ConnectionManager",
            Target::Pool(_) => "deadpool-redis",
            Target::Fred(_) => "fred",
        }
    }

    /// Closes the connections the way each library offers; errors are ignored, as the
    /// numbers are already in.
    pub(crate) async fn close(self) {
        match self {
            Target::Lanes(c) => c.close().await,
            // The socket closes when the last clone is dropped.
            Target::RedisRs(c) => drop(c),
            Target::Manager(c) => drop(c),
            Target::Pool(p) => p.close(),
            Target::Fred(c) => {
                let _ = tokio::time::timeout(CONNECT_TIMEOUT, c.quit()).await;
            }
        }
    }
}

/// Runs `connect` for at most [`CONNECT_TIMEOUT`], naming the client in the error.
pub(crate) async fn with_timeout(
    name: &str,
    connect: impl std::future::Future<Output = Result<Target, BoxError>>,
) -> Result<Target, BoxError> {
    match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(target)) => Ok(target),
        Ok(Err(e)) => Err(format!("{name}: cannot connect: {e}").into()),
        Err(_) => Err(format!("{name}: no connection after {CONNECT_TIMEOUT:?}").into()),
    }
}
