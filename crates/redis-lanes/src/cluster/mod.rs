//! Redis Cluster: hash slots, the slot map, where a command's keys are, and the client
//! that routes by them.
//!
//! - `slot.rs`: CRC16 (XMODEM) mod 16384, with hash tags.
//! - `topology.rs`: the slot map from `CLUSTER SHARDS` or `CLUSTER SLOTS`.
//! - `commands.rs`: where a command's keys are, and the request/response policies, from
//!   the server's `COMMAND` reply.
//!
//! - `plan.rs`: where one command goes (a slot, any node, every node, split by slot).
//! - `value.rs`: reading map-, list- and text-shaped replies in both protocols.
//! - `redirect.rs`: what `MOVED`, `ASK`, `TRYAGAIN` and `CLUSTERDOWN` ask for.
//! - `client.rs`: [`ClusterClient`], one per-node `Core` per node, and the refresh task.

mod client;
pub(crate) mod commands;
mod plan;
mod redirect;
pub(crate) mod slot;
pub(crate) mod topology;
mod value;

pub use client::{ClusterBuilder, ClusterClient};
