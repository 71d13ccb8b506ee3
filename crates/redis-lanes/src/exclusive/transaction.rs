//! Optimistic transactions: `WATCH` the keys, read, then `MULTI` ... `EXEC`; run again
//! when a watched key changed in between and `EXEC` aborted.

use std::sync::atomic::Ordering::Relaxed;

use redis::{Pipeline, RedisError, ToRedisArgs, Value};

use super::Exclusive;
use crate::error::{Error, ErrorKind};
#[cfg(doc)] // For the documentation's links.
use crate::Client;

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
        run_transaction(self, keys, body, true).await
    }
}

/// The transaction loop of [`Client::transaction`](crate::Client::transaction) and
/// [`Exclusive::transaction`]; `unwatch` clears the watches at the end.
pub(crate) async fn run_transaction<K, T, E, F>(
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
    let max_retries = conn.core.config().exclusive.max_retries;
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
        let state = conn.core.exclusives();
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
