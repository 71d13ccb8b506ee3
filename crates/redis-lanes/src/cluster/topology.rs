//! The cluster's slot map, read from `CLUSTER SHARDS` (Redis 7+) or `CLUSTER SLOTS`
//! (older servers): which shard serves which slots, and where its nodes are.
//!
//! A [`SlotMap`] is immutable: a refresh builds a new one and swaps it in whole, so a
//! request routes on one consistent snapshot and never waits for a refresh.

use redis::Value;

use super::slot::SLOTS;
use super::value::{entries as pairs, int, list, text};
use crate::error::Error;

/// Where a node listens, as the cluster announces it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct NodeAddr {
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl std::fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// One shard: a master and its replicas, serving some slot ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Shard {
    /// Inclusive ranges.
    pub(crate) slots: Vec<(u16, u16)>,
    pub(crate) master: NodeAddr,
    /// Replicas the server reports healthy (`CLUSTER SLOTS` lists no health: all).
    pub(crate) replicas: Vec<NodeAddr>,
}

/// Which shard serves each slot.
#[derive(Debug, Clone)]
pub(crate) struct SlotMap {
    shards: Vec<Shard>,
    /// Shard index per slot; `NONE` for a slot no shard serves.
    owner: Box<[u16]>,
}

const NONE: u16 = u16::MAX;

impl SlotMap {
    /// Builds the map from shards (with their master known).
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Protocol`] for a slot outside `0..16384` or a range given twice.
    pub(crate) fn new(shards: Vec<Shard>) -> Result<SlotMap, Error> {
        let mut owner = vec![NONE; usize::from(SLOTS)].into_boxed_slice();
        for (index, shard) in shards.iter().enumerate() {
            let index = u16::try_from(index).map_err(|_| bad("more shards than slots"))?;
            for &(start, end) in &shard.slots {
                if start > end || end >= SLOTS {
                    return Err(bad(&format!("slot range {start}-{end}")));
                }
                for slot in start..=end {
                    let cell = &mut owner[usize::from(slot)];
                    if *cell != NONE {
                        return Err(bad(&format!("slot {slot} served by two shards")));
                    }
                    *cell = index;
                }
            }
        }
        Ok(SlotMap { shards, owner })
    }

    /// The shard serving `slot`, if any.
    pub(crate) fn shard(&self, slot: u16) -> Option<&Shard> {
        let index = *self.owner.get(usize::from(slot))?;
        self.shards.get(usize::from(index))
    }

    /// The index (in [`SlotMap::shards`]) of the shard serving `slot`, if any.
    pub(crate) fn shard_index(&self, slot: u16) -> Option<usize> {
        let index = *self.owner.get(usize::from(slot))?;
        (index != NONE).then_some(usize::from(index))
    }

    /// The master serving `slot`, if any.
    pub(crate) fn master(&self, slot: u16) -> Option<&NodeAddr> {
        self.shard(slot).map(|shard| &shard.master)
    }

    /// Every shard.
    pub(crate) fn shards(&self) -> &[Shard] {
        &self.shards
    }

    /// Slots no shard serves.
    pub(crate) fn uncovered(&self) -> usize {
        self.owner.iter().filter(|&&o| o == NONE).count()
    }
}

fn bad(what: &str) -> Error {
    Error::protocol(format!("unexpected cluster topology: {what}"))
}

/// Reads a `CLUSTER SHARDS` reply. `seed_host` stands in for nodes that announce no
/// usable endpoint (`?`, or empty).
///
/// # Errors
///
/// [`ErrorKind::Protocol`] for a reply of another shape.
pub(crate) fn from_shards(reply: &Value, seed_host: &str) -> Result<SlotMap, Error> {
    let Some(items) = list(reply) else {
        return Err(bad("CLUSTER SHARDS is not an array"));
    };
    let mut shards = Vec::new();
    for item in items {
        let fields = pairs(item).ok_or_else(|| bad("a shard is not a map"))?;
        let mut slots = Vec::new();
        let mut master = None;
        let mut replicas = Vec::new();
        for (key, value) in fields {
            match key.as_str() {
                "slots" => {
                    let Value::Array(bounds) = value else {
                        return Err(bad("shard slots are not an array"));
                    };
                    for pair in bounds.chunks(2) {
                        let [start, end] = pair else {
                            return Err(bad("an odd number of slot bounds"));
                        };
                        slots.push((slot_number(start)?, slot_number(end)?));
                    }
                }
                "nodes" => {
                    let Value::Array(nodes) = value else {
                        return Err(bad("shard nodes are not an array"));
                    };
                    for node in nodes {
                        let node = shard_node(node, seed_host)?;
                        match (node.role.as_str(), node.healthy) {
                            ("master", _) => master = Some(node.addr),
                            (_, true) => replicas.push(node.addr),
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        // A shard without slots (a master being emptied, or a spare) serves nothing.
        if slots.is_empty() {
            continue;
        }
        let master = master.ok_or_else(|| bad("a shard with slots and no master"))?;
        shards.push(Shard {
            slots,
            master,
            replicas,
        });
    }
    SlotMap::new(shards)
}

struct ShardNode {
    addr: NodeAddr,
    role: String,
    healthy: bool,
}

fn shard_node(node: &Value, seed_host: &str) -> Result<ShardNode, Error> {
    let fields = pairs(node).ok_or_else(|| bad("a shard node is not a map"))?;
    let (mut endpoint, mut ip, mut port, mut tls_port) = (None, None, None, None);
    let (mut role, mut healthy) = (String::new(), true);
    for (key, value) in fields {
        match key.as_str() {
            "endpoint" => endpoint = text(value),
            "ip" => ip = text(value),
            "port" => port = int(value),
            "tls-port" => tls_port = int(value),
            "role" => role = text(value).unwrap_or_default(),
            "health" => healthy = text(value).is_some_and(|h| h == "online"),
            _ => {}
        }
    }
    let host = [endpoint, ip]
        .into_iter()
        .flatten()
        .find(|h| !h.is_empty() && h != "?")
        .unwrap_or_else(|| seed_host.to_owned());
    // With TLS on every port the server announces only `tls-port`.
    let port = port
        .or(tls_port)
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| bad("a shard node without a port"))?;
    Ok(ShardNode {
        addr: NodeAddr { host, port },
        role,
        healthy,
    })
}

/// Reads a `CLUSTER SLOTS` reply: `[start, end, master, replica...]` per range, each
/// node `[host, port, id, ...]`.
///
/// # Errors
///
/// [`ErrorKind::Protocol`] for a reply of another shape.
pub(crate) fn from_slots(reply: &Value, seed_host: &str) -> Result<SlotMap, Error> {
    let Value::Array(ranges) = reply else {
        return Err(bad("CLUSTER SLOTS is not an array"));
    };
    let mut shards: Vec<Shard> = Vec::new();
    for range in ranges {
        let Value::Array(fields) = range else {
            return Err(bad("a slot range is not an array"));
        };
        let [start, end, master, replicas @ ..] = fields.as_slice() else {
            return Err(bad("a slot range without a master"));
        };
        let range = (slot_number(start)?, slot_number(end)?);
        let master = slots_node(master, seed_host)?;
        let replicas = replicas
            .iter()
            .map(|r| slots_node(r, seed_host))
            .collect::<Result<Vec<_>, _>>()?;
        // One entry per range: ranges of the same master form one shard.
        match shards.iter_mut().find(|s| s.master == master) {
            Some(shard) => shard.slots.push(range),
            None => shards.push(Shard {
                slots: vec![range],
                master,
                replicas,
            }),
        }
    }
    SlotMap::new(shards)
}

fn slots_node(node: &Value, seed_host: &str) -> Result<NodeAddr, Error> {
    let Value::Array(fields) = node else {
        return Err(bad("a node is not an array"));
    };
    let host = fields
        .first()
        .and_then(text)
        .filter(|h| !h.is_empty() && h != "?")
        .unwrap_or_else(|| seed_host.to_owned());
    let port = fields
        .get(1)
        .and_then(int)
        .and_then(|p| u16::try_from(p).ok())
        .ok_or_else(|| bad("a node without a port"))?;
    Ok(NodeAddr { host, port })
}

fn slot_number(value: &Value) -> Result<u16, Error> {
    int(value)
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| bad("a slot that is not a number"))
}

#[cfg(test)]
#[path = "topology_tests.rs"]
mod tests;
