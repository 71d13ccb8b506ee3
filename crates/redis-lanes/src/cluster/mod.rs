//! Redis Cluster: hash slots, the slot map, and where a command's keys are.
//!
//! - `slot.rs`: CRC16 (XMODEM) mod 16384, with hash tags.
//! - `topology.rs`: the slot map from `CLUSTER SHARDS` or `CLUSTER SLOTS`.
//! - `commands.rs`: where a command's keys are, and the request/response policies, from
//!   the server's `COMMAND` reply.
//!
//! The cluster client that routes on these is being built on the per-node `Core`; until
//! it is, only this module's tests use them.
#![cfg_attr(not(test), allow(dead_code))]

pub(crate) mod commands;
pub(crate) mod slot;
pub(crate) mod topology;
