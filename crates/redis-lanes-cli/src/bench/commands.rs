//! The commands the scenarios send, through each client's own API.
//!
//! The clients built on the `redis` crate (redis-lanes, redis-rs, its
//! `ConnectionManager`, deadpool-redis) all send a `redis::Cmd`; fred has its own API.

use fred::bytes::Bytes;
use fred::prelude::{KeysInterface, ListInterface, StreamsInterface};
use redis::{Cmd, FromRedisValue};

use super::targets::Target;
use super::BoxError;

impl Target {
    /// Sends `cmd` through a client built on the `redis` crate. A pool lends a
    /// connection for the one command.
    async fn query<T: FromRedisValue>(&mut self, cmd: &Cmd) -> Result<T, BoxError> {
        Ok(match self {
            Target::Lanes(c) => cmd.query_async(c).await?,
            Target::RedisRs(c) => cmd.query_async(c).await?,
            Target::Manager(c) => cmd.query_async(c).await?,
            Target::Pool(pool) => cmd.query_async(&mut pool.get().await?).await?,
            Target::Fred(_) => return Err("fred does not take a redis::Cmd".into()),
        })
    }

    /// `SET key value`.
    pub(crate) async fn set(&mut self, key: &str, value: &'static [u8]) -> Result<(), BoxError> {
        if let Target::Fred(c) = self {
            let value = Bytes::from_static(value);
            return Ok(c.set::<(), _, _>(key, value, None, None, false).await?);
        }
        self.query(redis::cmd("SET").arg(key).arg(value)).await
    }

    /// `GET key`, returning the value's length so the caller can check it. Each client
    /// reads into its own cheapest byte type.
    pub(crate) async fn get_len(&mut self, key: &str) -> Result<usize, BoxError> {
        if let Target::Fred(c) = self {
            return Ok(c.get::<Bytes, _>(key).await?.len());
        }
        Ok(self
            .query::<Vec<u8>>(redis::cmd("GET").arg(key))
            .await?
            .len())
    }

    /// `BLPOP key seconds`, expected to time out on the server: `Ok` when the reply is
    /// nil (however the client spells it). Nothing is pushed to `key` while it waits,
    /// so a popped value is an error.
    pub(crate) async fn blpop(&mut self, key: &str, seconds: u32) -> Result<(), BoxError> {
        match self.pop(key, f64::from(seconds)).await? {
            Some(_) => Err(format!("BLPOP {key} popped a value nobody pushed").into()),
            None => Ok(()),
        }
    }

    /// `BLPOP key seconds`: the popped element, or `None` when the server-side timeout
    /// passed first.
    pub(crate) async fn pop(
        &mut self,
        key: &str,
        seconds: f64,
    ) -> Result<Option<String>, BoxError> {
        if let Target::Fred(c) = self {
            return match c.blpop::<Option<(String, String)>, _>(key, seconds).await {
                Ok(popped) => Ok(popped.map(|(_, element)| element)),
                // fred 10 reports BLPOP's nil reply (the server-side timeout) as
                // `ErrorKind::Timeout` ("Request timed out."). fred's own command
                // timeout, the only other source of that kind, is off by default and
                // here, so this is the normal end, not a failure.
                Err(e) if *e.kind() == fred::error::ErrorKind::Timeout => Ok(None),
                Err(e) => Err(e.into()),
            };
        }
        let popped: Option<(String, String)> = self
            .query(redis::cmd("BLPOP").arg(key).arg(seconds))
            .await?;
        Ok(popped.map(|(_, element)| element))
    }

    /// `XREADGROUP GROUP group consumer COUNT 1 BLOCK millis STREAMS key >`; the reply
    /// is not looked at (the scenarios cancel this call).
    pub(crate) async fn read_group(
        &mut self,
        key: &str,
        group: &str,
        consumer: &str,
        millis: u64,
    ) -> Result<(), BoxError> {
        if let Target::Fred(c) = self {
            let key = key.to_owned();
            let _: fred::types::Value = c
                .xreadgroup(group, consumer, Some(1), Some(millis), false, key, ">")
                .await?;
            return Ok(());
        }
        let mut cmd = redis::cmd("XREADGROUP");
        cmd.arg("GROUP")
            .arg(group)
            .arg(consumer)
            .arg("COUNT")
            .arg(1);
        cmd.arg("BLOCK")
            .arg(millis)
            .arg("STREAMS")
            .arg(key)
            .arg(">");
        self.query::<redis::Value>(&cmd).await.map(drop)
    }

    /// `XGROUP DELCONSUMER key group consumer`: how many pending entries the deleted
    /// consumer had.
    pub(crate) async fn delete_consumer(
        &mut self,
        key: &str,
        group: &str,
        consumer: &str,
    ) -> Result<u64, BoxError> {
        if let Target::Fred(c) = self {
            return Ok(c.xgroup_delconsumer(key, group, consumer).await?);
        }
        let mut cmd = redis::cmd("XGROUP");
        cmd.arg("DELCONSUMER").arg(key).arg(group).arg(consumer);
        self.query(&cmd).await
    }
}
