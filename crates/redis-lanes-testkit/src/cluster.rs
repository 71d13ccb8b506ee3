//! A throw-away Redis Cluster: N masters with M replicas each, every node a
//! [`RedisServer`] of its own on a free loopback port.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind};
use crate::RedisServer;

/// How long forming the cluster may take (about 6 s on a 2-core machine).
const FORM_TIMEOUT: Duration = Duration::from_secs(60);

/// A running local cluster. Dropping it stops every node.
///
/// # Examples
///
/// ```no_run
/// use redis_lanes_testkit::RedisCluster;
///
/// # fn main() -> Result<(), redis_lanes_testkit::Error> {
/// let cluster = RedisCluster::start(3, 1)?;
/// assert_eq!(cluster.nodes().len(), 6);
/// let seed = &cluster.urls()[0];
/// assert!(seed.starts_with("redis://127.0.0.1:"));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
    /// Replicas the cluster was made with, in total.
    replicas: usize,
}

impl RedisCluster {
    /// Starts `masters` masters with `replicas` replicas each (`--cluster-node-timeout
    /// 1000`, so a failover takes seconds), forms the cluster with `redis-cli --cluster
    /// create`, and waits until every node reports `cluster_state:ok` with the same slot
    /// assignment.
    ///
    /// # Errors
    ///
    /// As [`RedisServer::start`]; [`ErrorKind::MissingBinary`] when `redis-cli` is not
    /// found (Debian package `redis-tools`); [`ErrorKind::Startup`] when the cluster does
    /// not form within a minute.
    pub fn start(masters: usize, replicas: usize) -> Result<RedisCluster, Error> {
        if masters < 3 {
            return Err(Error::new(
                ErrorKind::Startup,
                "a Redis Cluster needs at least 3 masters",
            ));
        }
        let mut nodes = Vec::new();
        for _ in 0..masters * (1 + replicas) {
            nodes.push(
                RedisServer::builder()
                    .args([
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "1000",
                    ])
                    .start()?,
            );
        }
        let cluster = RedisCluster {
            nodes,
            replicas: masters * replicas,
        };
        cluster.create(replicas)?;
        cluster.wait_until_formed(FORM_TIMEOUT)?;
        Ok(cluster)
    }

    fn create(&self, replicas: usize) -> Result<(), Error> {
        let cli = redis_cli();
        let mut command = Command::new(&cli);
        command.arg("--cluster").arg("create");
        for node in &self.nodes {
            command.arg(node.addr().to_string());
        }
        command
            .arg("--cluster-replicas")
            .arg(replicas.to_string())
            .arg("--cluster-yes");
        let output = command.output().map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::new(
                    ErrorKind::MissingBinary,
                    format!(
                        "`{}` not found: install it with `apt-get install redis-tools`",
                        cli.display()
                    ),
                )
            } else {
                Error::io("could not run redis-cli --cluster create", e)
            }
        })?;
        if !output.status.success() {
            return Err(Error::new(
                ErrorKind::Startup,
                format!(
                    "redis-cli --cluster create failed: {}{}",
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr)
                ),
            ));
        }
        Ok(())
    }

    /// Waits until every running node says `cluster_state:ok`, all of them agree on
    /// which node serves which slots, and every replica is in sync with its master.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Startup`] when that does not happen within `timeout`.
    pub fn wait_until_formed(&self, timeout: Duration) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.is_formed() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::new(
                    ErrorKind::Startup,
                    format!("the cluster did not form within {timeout:?}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn is_formed(&self) -> bool {
        let mut maps = Vec::new();
        let mut synced = 0;
        for node in &self.nodes {
            let Ok(info) = node.command(&["CLUSTER", "INFO"]) else {
                continue; // A stopped node.
            };
            if !info.contains("cluster_state:ok") {
                return false;
            }
            let Ok(replication) = node.command(&["INFO", "replication"]) else {
                return false;
            };
            if replication.contains("role:slave") {
                if !replication.contains("master_link_status:up") {
                    return false;
                }
                synced += 1;
            }
            let Ok(nodes) = node.command(&["CLUSTER", "NODES"]) else {
                return false;
            };
            maps.push(slot_owners(&nodes));
        }
        // After a failover or a stopped node there may be fewer; at the start, all.
        let replicas_ok = synced >= self.replicas.min(self.running_replicas_hint());
        replicas_ok && !maps.is_empty() && maps.windows(2).all(|pair| pair[0] == pair[1])
    }

    /// How many replicas can be expected now: all of them, less one per stopped node.
    fn running_replicas_hint(&self) -> usize {
        let stopped = self
            .nodes
            .iter()
            .filter(|node| node.command(&["PING"]).is_err())
            .count();
        self.replicas.saturating_sub(stopped)
    }

    /// Every node, in the order they were started.
    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    /// Node `index`, to stop, restart or query.
    ///
    /// # Panics
    ///
    /// When `index` is out of range.
    pub fn node_mut(&mut self, index: usize) -> &mut RedisServer {
        &mut self.nodes[index]
    }

    /// A `redis://` URL for every node, usable as seeds.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    /// The indexes of the nodes that are masters now, as the first answering node sees
    /// it.
    ///
    /// # Errors
    ///
    /// When no node answers.
    pub fn masters(&self) -> Result<Vec<usize>, Error> {
        let text = self
            .nodes
            .iter()
            .find_map(|node| node.command(&["CLUSTER", "NODES"]).ok())
            .ok_or_else(|| Error::new(ErrorKind::Startup, "no cluster node answers"))?;
        let mut masters = Vec::new();
        for line in text.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let (Some(addr), Some(flags)) = (fields.get(1), fields.get(2)) else {
                continue;
            };
            if !flags.split(',').any(|f| f == "master") || flags.contains("fail") {
                continue;
            }
            if let Some(index) = self.index_of(addr) {
                masters.push(index);
            }
        }
        masters.sort_unstable();
        Ok(masters)
    }
}

/// The slot ranges of each node line of `CLUSTER NODES`, by node id, sorted: what every
/// node must agree on.
fn slot_owners(nodes: &str) -> Vec<(String, Vec<String>)> {
    let mut owners: Vec<(String, Vec<String>)> = nodes
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let id = (*fields.first()?).to_owned();
            let slots: Vec<String> = fields.iter().skip(8).map(|s| (*s).to_owned()).collect();
            (!slots.is_empty()).then_some((id, slots))
        })
        .collect();
    owners.sort();
    owners
}

/// `redis-cli` next to the `redis-server` the kit runs, or from `PATH`.
fn redis_cli() -> PathBuf {
    if let Some(server) = std::env::var_os("REDIS_SERVER_BIN").filter(|v| !v.is_empty()) {
        let beside = PathBuf::from(server).with_file_name("redis-cli");
        if beside.exists() {
            return beside;
        }
    }
    PathBuf::from("redis-cli")
}

/// A slot on its way from one master to another, moved key by key as `redis-cli
/// --cluster reshard` does: while it lasts, the source answers `ASK` for keys already
/// moved.
#[derive(Debug)]
pub struct SlotMigration {
    slot: u16,
    from: usize,
    to: usize,
    to_id: String,
}

impl RedisCluster {
    /// The index of the node serving `slot` now.
    ///
    /// # Errors
    ///
    /// When no node answers, or none serves the slot.
    pub fn owner(&self, slot: u16) -> Result<usize, Error> {
        let text = self
            .nodes
            .iter()
            .find_map(|node| node.command(&["CLUSTER", "NODES"]).ok())
            .ok_or_else(|| Error::new(ErrorKind::Startup, "no cluster node answers"))?;
        for line in text.lines() {
            let fields: Vec<&str> = line.split(' ').collect();
            let serves = fields.iter().skip(8).any(|range| {
                let mut bounds = range.split('-').map(|b| b.parse::<u16>().ok());
                match (bounds.next().flatten(), bounds.next()) {
                    (Some(start), None) => start == slot,
                    (Some(start), Some(Some(end))) => (start..=end).contains(&slot),
                    _ => false,
                }
            });
            if serves {
                if let Some(index) = self.index_of(fields.get(1).copied().unwrap_or_default()) {
                    return Ok(index);
                }
            }
        }
        Err(Error::new(
            ErrorKind::Startup,
            format!("no node serves slot {slot}"),
        ))
    }

    /// The index of a replica of master `master`, as the first answering node sees it.
    ///
    /// # Errors
    ///
    /// When no node answers, or the master has no replica.
    pub fn replica_of(&self, master: usize) -> Result<usize, Error> {
        let id = self.nodes[master].command(&["CLUSTER", "MYID"])?;
        let text = self
            .nodes
            .iter()
            .find_map(|node| node.command(&["CLUSTER", "NODES"]).ok())
            .ok_or_else(|| Error::new(ErrorKind::Startup, "no cluster node answers"))?;
        text.lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                let replica =
                    fields.get(2)?.contains("slave") && fields.get(3) == Some(&id.as_str());
                replica.then(|| self.index_of(fields.get(1)?)).flatten()
            })
            .next()
            .ok_or_else(|| Error::new(ErrorKind::Startup, format!("node {master} has no replica")))
    }

    /// Makes replica `replica` take over from its master with `CLUSTER FAILOVER` (the
    /// coordinated kind: the master hands over once the replica has caught up), and waits
    /// until it says it is a master.
    ///
    /// # Errors
    ///
    /// When the node refuses, or has not taken over within `timeout`.
    pub fn failover(&self, replica: usize, timeout: Duration) -> Result<(), Error> {
        self.nodes[replica].command(&["CLUSTER", "FAILOVER"])?;
        let deadline = Instant::now() + timeout;
        while !self.is_master(replica) {
            if Instant::now() >= deadline {
                return Err(Error::new(
                    ErrorKind::Startup,
                    format!("node {replica} did not take over within {timeout:?}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Whether node `index` is a master now, by its own account (`INFO replication`).
    pub fn is_master(&self, index: usize) -> bool {
        self.nodes[index]
            .command(&["INFO", "replication"])
            .is_ok_and(|info| info.contains("role:master"))
    }

    /// The node whose `CLUSTER NODES` address (`ip:port@cport`) is `addr`.
    fn index_of(&self, addr: &str) -> Option<usize> {
        let port = addr
            .split('@')
            .next()
            .and_then(|a| a.rsplit(':').next())
            .and_then(|p| p.parse::<u16>().ok())?;
        self.nodes.iter().position(|n| n.port() == port)
    }

    /// Starts moving `slot` to node `to` (a master): the target imports it, the source
    /// migrates it; no key has moved yet.
    ///
    /// # Errors
    ///
    /// When a node refuses a step.
    pub fn start_migration(&self, slot: u16, to: usize) -> Result<SlotMigration, Error> {
        let from = self.owner(slot)?;
        let from_id = self.nodes[from].command(&["CLUSTER", "MYID"])?;
        let to_id = self.nodes[to].command(&["CLUSTER", "MYID"])?;
        let slot_text = slot.to_string();
        self.nodes[to].command(&["CLUSTER", "SETSLOT", &slot_text, "IMPORTING", &from_id])?;
        self.nodes[from].command(&["CLUSTER", "SETSLOT", &slot_text, "MIGRATING", &to_id])?;
        Ok(SlotMigration {
            slot,
            from,
            to,
            to_id,
        })
    }

    /// Moves `slot` to node `to` in one go; see [`RedisCluster::start_migration`].
    ///
    /// # Errors
    ///
    /// When a node refuses a step.
    pub fn migrate_slot(&self, slot: u16, to: usize) -> Result<(), Error> {
        let migration = self.start_migration(slot, to)?;
        while migration.move_keys(self, 100)? > 0 {}
        migration.finish(self)
    }
}

impl SlotMigration {
    /// Moves up to `count` keys of the slot; returns how many moved (0 once none is left).
    ///
    /// # Errors
    ///
    /// When a node refuses a step.
    pub fn move_keys(&self, cluster: &RedisCluster, count: usize) -> Result<usize, Error> {
        let source = &cluster.nodes[self.from];
        let target = &cluster.nodes[self.to];
        let listed = source.command(&[
            "CLUSTER",
            "GETKEYSINSLOT",
            &self.slot.to_string(),
            &count.to_string(),
        ])?;
        let keys: Vec<&str> = listed.lines().filter(|k| !k.is_empty()).collect();
        if keys.is_empty() {
            return Ok(0);
        }
        let port = target.port().to_string();
        let mut args = vec!["MIGRATE", "127.0.0.1", &port, "", "0", "5000", "KEYS"];
        args.extend(keys.iter().copied());
        source.command(&args)?;
        Ok(keys.len())
    }

    /// Moves the keys left, then gives the slot to the target on every master.
    ///
    /// # Errors
    ///
    /// When a node refuses a step.
    pub fn finish(&self, cluster: &RedisCluster) -> Result<(), Error> {
        while self.move_keys(cluster, 100)? > 0 {}
        let slot = self.slot.to_string();
        // The target first, then the source, then everyone else, as `redis-cli` does.
        let mut order = vec![self.to, self.from];
        order.extend((0..cluster.nodes.len()).filter(|i| *i != self.to && *i != self.from));
        for index in order {
            let node = &cluster.nodes[index];
            if node.command(&["PING"]).is_err() {
                continue;
            }
            let role = node.command(&["INFO", "replication"]).unwrap_or_default();
            if role.contains("role:master") {
                node.command(&["CLUSTER", "SETSLOT", &slot, "NODE", &self.to_id])?;
            }
        }
        Ok(())
    }

    /// The slot being moved.
    pub fn slot(&self) -> u16 {
        self.slot
    }
}
