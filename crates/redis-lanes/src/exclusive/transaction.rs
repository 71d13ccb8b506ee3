//! Optimistic transactions: `WATCH` the keys, read, then `MULTI` ... `EXEC`; run again
//! when a watched key changed in between and `EXEC` aborted.

use std::sync::atomic::Ordering::Relaxed;

use redis::{Pipeline, RedisError, ToRedisArgs, Value};

use super::Exclusive;
use crate::client::Client;
use crate::error::{Error, ErrorKind};

impl Client {
    /// Runs an optimistic transaction on an exclusive lane, the way `redis::transaction`
    /// does on a connection of its own: `WATCH keys`, then `body`, again and again until
    /// it returns `Ok(Some(value))`.
    ///
    /// `body` gets the leased connection, for reading the watched keys, and an atomic
    /// pipeline (`pipe().atomic()`, fresh for every attempt) for the writes. Run the
    /// pipeline with `pipe.query_async(conn)`: it answers `Ok(None)` when `EXEC` aborted
    /// because a watched key changed, and returning that `None` runs the body again.
    /// Retries are bounded by
    /// [`Builder::transaction_max_retries`](crate::Builder::transaction_max_retries) and
    /// counted in [`Stats::transaction_retries`](crate::Stats::transaction_retries).
    ///
    /// The error type is the body's: anything that can hold a redis-lanes [`Error`] and
    /// a [`redis::RedisError`] (`redis::RedisError` itself, `anyhow::Error`, `Box<dyn
    /// Error>`...). With `redis::RedisError`, [`Error::from_redis`] finds the kind.
    ///
    /// # Examples
    ///
    /// ```
    /// use redis::AsyncCommands;
    /// # #[tokio::main]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let server = redis_lanes_testkit::RedisServer::start()?;
    /// # let url = server.url();
    /// let client = redis_lanes::Client::connect(&url).await?;
    /// // Doubles a counter without losing a concurrent write.
    /// let doubled: i64 = client
    ///     .transaction(&["counter"], async |conn, pipe| {
    ///         let now: i64 = conn.get::<_, Option<i64>>("counter").await?.unwrap_or(1);
    ///         pipe.set("counter", now * 2).ignore().get("counter");
    ///         // `None` (EXEC aborted): the body runs again.
    ///         let done: Option<(i64,)> = pipe.query_async(conn).await?;
    ///         Ok::<_, redis::RedisError>(done.map(|(value,)| value))
    ///     })
    ///     .await?;
    /// assert_eq!(doubled, 2);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::TransactionConflict`] when `body` asked for another attempt more
    /// than `transaction_max_retries` times; whatever `body` returns; the errors of
    /// [`Client::exclusive`] and [`Exclusive::send`]; a server error reply to `WATCH`
    /// as a [`redis::RedisError`].
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the lease as any [`Exclusive`]: what was sent is
    /// answered, an open `MULTI` is discarded with everything queued in it, the watches
    /// are cleared, and the connection is reset before it is reused.
    pub async fn transaction<K, T, E, F>(&self, keys: &[K], body: F) -> Result<T, E>
    where
        K: ToRedisArgs,
        F: AsyncFnMut(&mut Exclusive, &mut Pipeline) -> Result<Option<T>, E>,
        E: From<Error> + From<RedisError>,
    {
        let mut conn = self.exclusive().await?;
        // The lease's reset clears the watches when it is dropped; no UNWATCH needed.
        run(&mut conn, keys, body, false).await
    }
}

impl Exclusive {
    /// [`Client::transaction`] on this lease: the same loop, then `UNWATCH` (as
    /// `redis::transaction` does), so the lease can go on without stale watches.
    ///
    /// # Errors
    ///
    /// As for [`Client::transaction`].
    ///
    /// # Cancel safety
    ///
    /// A dropped future leaves the lease as far as it got (watches set, possibly inside
    /// `MULTI`); dropping the lease resets it.
    pub async fn transaction<K, T, E, F>(&mut self, keys: &[K], body: F) -> Result<T, E>
    where
        K: ToRedisArgs,
        F: AsyncFnMut(&mut Exclusive, &mut Pipeline) -> Result<Option<T>, E>,
        E: From<Error> + From<RedisError>,
    {
        run(self, keys, body, true).await
    }
}

async fn run<K, T, E, F>(
    conn: &mut Exclusive,
    keys: &[K],
    mut body: F,
    unwatch: bool,
) -> Result<T, E>
where
    K: ToRedisArgs,
    F: AsyncFnMut(&mut Exclusive, &mut Pipeline) -> Result<Option<T>, E>,
    E: From<Error> + From<RedisError>,
{
    let mut watch = redis::cmd("WATCH");
    watch.arg(keys);
    // `WATCH` without keys is a syntax error; without keys nothing can abort EXEC.
    let watching = watch.args_iter().nth(1).is_some();
    let max_retries = conn.client.lane_config().exclusive.max_retries;
    let mut retries = 0;
    loop {
        if watching {
            conn.send(&watch).await?.extract_error()?;
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        if let Some(value) = body(&mut *conn, &mut pipe).await? {
            if unwatch {
                finish_watch::<E>(conn).await?;
            }
            return Ok(value);
        }
        let state = conn.client.exclusive_state();
        if retries >= max_retries {
            state.conflicts.fetch_add(1, Relaxed);
            if unwatch {
                finish_watch::<E>(conn).await?;
            }
            return Err(Error::new(
                ErrorKind::TransactionConflict,
                format!(
                    "gave up after {max_retries} retries: a watched key changed before every \
                     EXEC (transaction_max_retries)"
                ),
            )
            .into());
        }
        retries += 1;
        state.retries.fetch_add(1, Relaxed);
        tracing::debug!(
            retries,
            "transaction aborted by a watched key; running it again"
        );
    }
}

/// `UNWATCH`, for a lease that goes on after the transaction.
async fn finish_watch<E>(conn: &mut Exclusive) -> Result<(), E>
where
    E: From<Error> + From<RedisError>,
{
    let reply: Value = conn.send(&redis::cmd("UNWATCH")).await?;
    reply.extract_error()?;
    Ok(())
}
