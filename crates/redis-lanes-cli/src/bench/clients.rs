//! The rows of the behaviour scenarios: a client and the setting under test. Unlike the
//! throughput table, a library can appear twice, once per setting that changes how it
//! treats blocking commands.

use fred::prelude::Blocking;

use super::targets::{with_timeout, Target};
use super::BoxError;

/// One row: a client and the setting under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Spec {
    /// The row's name in the tables.
    pub(crate) label: &'static str,
    /// A short name for the chart.
    pub(crate) short: &'static str,
    kind: Kind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Lanes,
    RedisRsNoTimeout,
    RedisRsDefault,
    Manager,
    Pool,
    FredBlock,
    FredInterrupt,
}

pub(crate) const LANES: Spec = Spec {
    label: "redis-lanes",
    short: "redis-lanes",
    kind: Kind::Lanes,
};
pub(crate) const REDIS_RS: Spec = Spec {
    label: "redis-rs `MultiplexedConnection` (response timeout off)",
    short: "redis-rs",
    kind: Kind::RedisRsNoTimeout,
};
pub(crate) const REDIS_RS_DEFAULT: Spec = Spec {
    label: "redis-rs `MultiplexedConnection` (default: 500 ms response timeout)",
    short: "redis-rs (500 ms timeout)",
    kind: Kind::RedisRsDefault,
};
pub(crate) const MANAGER: Spec = Spec {
    label: "redis-rs `ConnectionManager` (response timeout off)",
    short: "ConnectionManager",
    kind: Kind::Manager,
};
pub(crate) const POOL: Spec = Spec {
    label: "deadpool-redis (16 connections, response timeout off)",
    short: "deadpool-redis",
    kind: Kind::Pool,
};
pub(crate) const FRED_BLOCK: Spec = Spec {
    label: "fred (default: `Blocking::Block`)",
    short: "fred Block",
    kind: Kind::FredBlock,
};
pub(crate) const FRED_INTERRUPT: Spec = Spec {
    label: "fred (`Blocking::Interrupt`)",
    short: "fred Interrupt",
    kind: Kind::FredInterrupt,
};

impl Spec {
    /// A new client for this row: its own connections, so what one row leaves behind on
    /// the server (a connection still blocked) cannot slow the next.
    pub(crate) async fn connect(&self, url: &str) -> Result<Target, BoxError> {
        let connect = async {
            match self.kind {
                Kind::Lanes => Target::lanes(url).await,
                Kind::RedisRsNoTimeout => Target::redis_rs(url).await,
                Kind::RedisRsDefault => Target::redis_rs_default(url).await,
                Kind::Manager => Target::manager(url).await,
                Kind::Pool => Target::pool(url).await,
                Kind::FredBlock => Target::fred(url, Blocking::Block).await,
                Kind::FredInterrupt => Target::fred(url, Blocking::Interrupt).await,
            }
        };
        with_timeout(self.label, connect).await
    }

    /// Whether this row is redis-lanes, whose results decide the bench's exit status.
    pub(crate) fn is_lanes(&self) -> bool {
        self.kind == Kind::Lanes
    }
}
