//! The clients the head-of-line scenario compares: one row each. Unlike the throughput
//! table, a library can appear twice, once per setting that changes how it treats
//! blocking commands.

use fred::prelude::Blocking;

use super::super::targets::{with_timeout, Target};
use super::super::BoxError;

/// One row of the table: a client and the setting under test.
#[derive(Clone, Copy)]
pub(crate) struct Spec {
    /// The row's name in the table.
    pub(crate) label: &'static str,
    kind: Kind,
}

#[derive(Clone, Copy)]
enum Kind {
    Lanes,
    RedisRsNoTimeout,
    RedisRsDefault,
    FredBlock,
    FredInterrupt,
}

/// Every row, in table order.
pub(crate) const ALL: [Spec; 5] = [
    Spec {
        label: "redis-lanes",
        kind: Kind::Lanes,
    },
    Spec {
        label: "redis-rs (response timeout off)",
        kind: Kind::RedisRsNoTimeout,
    },
    Spec {
        label: "redis-rs (default: 500 ms response timeout)",
        kind: Kind::RedisRsDefault,
    },
    Spec {
        label: "fred (default: `Blocking::Block`)",
        kind: Kind::FredBlock,
    },
    Spec {
        label: "fred (`Blocking::Interrupt`)",
        kind: Kind::FredInterrupt,
    },
];

impl Spec {
    /// A new client for this row: its own connections, so what one row leaves behind on
    /// the server (a connection still blocked) cannot slow the next.
    pub(crate) async fn connect(&self, url: &str) -> Result<Target, BoxError> {
        match self.kind {
            Kind::Lanes => with_timeout(self.label, Target::lanes(url)).await,
            Kind::RedisRsNoTimeout => with_timeout(self.label, Target::redis_rs(url)).await,
            Kind::RedisRsDefault => with_timeout(self.label, Target::redis_rs_default(url)).await,
            Kind::FredBlock => with_timeout(self.label, Target::fred(url, Blocking::Block)).await,
            Kind::FredInterrupt => {
                with_timeout(self.label, Target::fred(url, Blocking::Interrupt)).await
            }
        }
    }
}
