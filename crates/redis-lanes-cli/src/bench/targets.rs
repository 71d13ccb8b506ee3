//! The three clients under test, behind one enum with `set`, `get` and `blpop`.
//!
//! An enum rather than a trait object: the dispatch is one `match` per operation, the
//! same for every client, and `async fn` needs no boxing.

use std::time::Duration;

use fred::bytes::Bytes;
use fred::prelude::{Blocking, ClientLike, KeysInterface, ListInterface};
use redis::AsyncCommands;

use super::BoxError;

/// How long connecting may take before the run gives up on a client.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// One connected client. Clones share its connection; each benchmark task gets a clone.
#[derive(Clone)]
pub(crate) enum Target {
    /// `redis_lanes::Client`, driven through `redis::AsyncCommands`.
    Lanes(redis_lanes::Client),
    /// redis-rs's multiplexed connection (response timeout off, unless made with
    /// [`Target::redis_rs_default`]).
    RedisRs(redis::aio::MultiplexedConnection),
    /// A single fred client (one connection, fred's own pipelining).
    Fred(fred::prelude::Client),
}

impl Target {
    /// Connects all three clients to `url`, in table order.
    pub(crate) async fn connect_all(url: &str) -> Result<Vec<Target>, BoxError> {
        Ok(vec![
            with_timeout("redis-lanes", Self::lanes(url)).await?,
            with_timeout("redis-rs", Self::redis_rs(url)).await?,
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

    /// A redis-rs multiplexed connection with the response timeout off.
    pub(crate) async fn redis_rs(url: &str) -> Result<Target, BoxError> {
        // redis-rs times responses out by default; redis-lanes and fred do not, so turn
        // it off to compare the same work.
        let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
        let conn = redis::Client::open(url)?
            .get_multiplexed_async_connection_with_config(&config)
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

    /// The client's name as the table shows it.
    pub(crate) fn name(&self) -> &'static str {
        match self {
            Target::Lanes(_) => "redis-lanes",
            Target::RedisRs(_) => "redis-rs",
            Target::Fred(_) => "fred",
        }
    }

    /// `SET key value`.
    pub(crate) async fn set(&mut self, key: &str, value: &'static [u8]) -> Result<(), BoxError> {
        match self {
            Target::Lanes(c) => c.set::<_, _, ()>(key, value).await?,
            Target::RedisRs(c) => c.set::<_, _, ()>(key, value).await?,
            Target::Fred(c) => {
                c.set::<(), _, _>(key, Bytes::from_static(value), None, None, false)
                    .await?
            }
        }
        Ok(())
    }

    /// `GET key`, returning the value's length so the caller can check it. Each client
    /// reads into its own cheapest byte type.
    pub(crate) async fn get_len(&mut self, key: &str) -> Result<usize, BoxError> {
        Ok(match self {
            Target::Lanes(c) => c.get::<_, Vec<u8>>(key).await?.len(),
            Target::RedisRs(c) => c.get::<_, Vec<u8>>(key).await?.len(),
            Target::Fred(c) => c.get::<Bytes, _>(key).await?.len(),
        })
    }

    /// `BLPOP key seconds`, expected to time out on the server: `Ok` when the reply is
    /// nil (however the client spells it). Nothing is pushed to `key` while it waits, so a popped value is an error.
    pub(crate) async fn blpop(&mut self, key: &str, seconds: u32) -> Result<(), BoxError> {
        let popped = match self {
            Target::Lanes(c) => blpop_redis(c, key, seconds).await?,
            Target::RedisRs(c) => blpop_redis(c, key, seconds).await?,
            Target::Fred(c) => {
                match c
                    .blpop::<Option<(String, Bytes)>, _>(key, f64::from(seconds))
                    .await
                {
                    Ok(popped) => popped.is_some(),
                    // fred 10 reports BLPOP's nil reply (the server-side timeout) as
                    // `ErrorKind::Timeout` ("Request timed out."). fred's own command
                    // timeout, the only other source of that kind, is off by default and
                    // here, so this is the normal end, not a failure.
                    Err(e) if *e.kind() == fred::error::ErrorKind::Timeout => false,
                    Err(e) => return Err(e.into()),
                }
            }
        };
        if popped {
            return Err(format!("BLPOP {key} popped a value nobody pushed").into());
        }
        Ok(())
    }

    /// Closes the connection; errors are ignored, as the numbers are already in.
    pub(crate) async fn close(self) {
        match self {
            Target::Lanes(c) => c.close().await,
            // The socket closes when the last clone is dropped.
            Target::RedisRs(c) => drop(c),
            Target::Fred(c) => {
                let _ = tokio::time::timeout(CONNECT_TIMEOUT, c.quit()).await;
            }
        }
    }
}

/// `BLPOP` through anything redis-rs can send on; `true` if it popped a value.
async fn blpop_redis(
    conn: &mut impl redis::aio::ConnectionLike,
    key: &str,
    seconds: u32,
) -> Result<bool, BoxError> {
    let reply: Option<(String, Vec<u8>)> = redis::cmd("BLPOP")
        .arg(key)
        .arg(seconds)
        .query_async(conn)
        .await?;
    Ok(reply.is_some())
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
