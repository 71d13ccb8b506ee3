//! [`ClusterClient`]: one [`Core`] per node, routed by an immutable slot map that a
//! background task refreshes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::commands::{Commands, ResponsePolicy};
use super::plan::{self, Plan, Split};
use super::redirect::{redirect, Redirect};
use super::topology::{self, NodeAddr, SlotMap};
use crate::builder::Builder;
use crate::error::{Error, ErrorKind};
use crate::node::{Config, Core};
use crate::stats::Stats;
use crate::url::{self, Addr};

/// A Redis Cluster client: the contract of [`Client`](crate::Client) on every node.
///
/// Each node gets its own shared lane, blocking-lane pool and exclusive-lane pool (a
/// per-node `Core`), so a blocking command blocks only a lane of the node that owns its
/// key, and is cancelled there when dropped. Requests route on an immutable snapshot of
/// the slot map that a background task refreshes (after a `MOVED`, on a timer); a
/// request never waits for a refresh unless its own node is gone.
///
/// Cheap to clone; implements [`redis::aio::ConnectionLike`], so the `redis` command API
/// works unchanged. Multi-key commands whose keys span slots (`MGET`, `MSET`, `DEL`,
/// `EXISTS`, ...) are split by slot and merged in the caller's order; keyless commands
/// go to one node or to all, as the server's command tips say (`DBSIZE` is summed); any
/// other command whose keys span slots fails with a `CROSSSLOT` error before it is sent.
///
/// # Examples
///
/// ```no_run
/// use redis::AsyncCommands;
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let cluster = redis_lanes::ClusterClient::connect(&["redis://10.0.0.1:7000"]).await?;
/// let mut conn = cluster.clone();
/// conn.set::<_, _, ()>("{user1}:name", "Ada").await?;
/// let (a, b): (Option<String>, Option<String>) =
///     redis::pipe().get("{user1}:name").get("other").query_async(&mut conn).await?;
/// # Ok(()) }
/// ```
///
/// # Drop behavior
///
/// As for [`Client`](crate::Client): dropping the last handle closes every connection
/// to every node and ends the refresh task.
#[derive(Clone)]
pub struct ClusterClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ClusterClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterClient")
            .field("nodes", &self.inner.lock_nodes().len())
            .field("closed", &self.is_closed())
            .finish()
    }
}

/// Options for a [`ClusterClient`]. Made by [`ClusterClient::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until `connect` is called"]
pub struct ClusterBuilder {
    seeds: Vec<String>,
    node: Builder,
    max_redirects: u32,
    refresh_interval: Duration,
}

impl ClusterBuilder {
    /// The options of every node's connections, as for one server: credentials,
    /// timeouts, pools, TLS. The first seed's URL is the starting point.
    pub fn configure(mut self, configure: impl FnOnce(Builder) -> Builder) -> Self {
        self.node = configure(self.node);
        self
    }

    /// How many `MOVED`/`ASK`/`TRYAGAIN` answers one request follows before it returns
    /// the last one as its reply. Default: 5.
    pub fn max_redirects(mut self, redirects: u32) -> Self {
        self.max_redirects = redirects;
        self
    }

    /// How often the slot map is refreshed when nothing asks for it. Default: 30 s.
    pub fn refresh_interval(mut self, interval: Duration) -> Self {
        self.refresh_interval = interval;
        self
    }

    /// Connects to the first seed that answers, reads the slot map and the server's
    /// command table, and starts the refresh task.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::InvalidConfig`] for no seeds, a seed that is not a TCP URL, or a
    /// database other than 0; the last seed's connect error when none answers;
    /// [`ErrorKind::Protocol`] for a topology this client cannot read.
    pub async fn connect(self) -> Result<ClusterClient, Error> {
        ClusterClient::from_builder(self).await
    }
}

struct Inner {
    base: Config,
    seed_host: String,
    seeds: Vec<NodeAddr>,
    max_redirects: u32,
    commands: Commands,
    map: RwLock<Arc<Snapshot>>,
    /// Slots a `MOVED` moved since the map was read; cleared by the next refresh.
    moved: Mutex<HashMap<u16, NodeAddr>>,
    /// Whether `moved` has entries: the hot path looks at this flag, not the lock.
    any_moved: AtomicBool,
    nodes: Mutex<HashMap<NodeAddr, Arc<tokio::sync::OnceCell<Arc<Core>>>>>,
    /// Asks the refresh task for a refresh now. Shared with the task, which must not
    /// hold the client while it waits.
    refresh: Arc<Notify>,
    /// Redirects followed (`MOVED`, `ASK`, later), for `stats()`.
    redirects: [AtomicU64; 3],
    /// Bumped by every refresh that read a map; waiters for one watch it.
    version: AtomicU64,
    refreshed: Notify,
    closing: AtomicBool,
    /// Ends the refresh task when the client closes or its last handle is dropped.
    stop: CancellationToken,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The slot map, and each shard's master connected: the hot path routes on this with
/// one read lock and no lookup by address.
struct Snapshot {
    map: SlotMap,
    /// By shard index; `None` where connecting failed (the slow path tries again).
    masters: Vec<Option<Arc<Core>>>,
}

impl std::ops::Deref for Snapshot {
    type Target = SlotMap;

    fn deref(&self) -> &SlotMap {
        &self.map
    }
}

/// Where one attempt of a request goes.
#[derive(Debug, Clone)]
enum Target {
    Slot(u16),
    Node(NodeAddr),
    Ask(NodeAddr),
}

impl ClusterClient {
    /// Connects with default options; see [`ClusterBuilder::connect`].
    ///
    /// # Errors
    ///
    /// As for [`ClusterBuilder::connect`].
    pub async fn connect(seeds: &[&str]) -> Result<ClusterClient, Error> {
        Self::builder(seeds).connect().await
    }

    /// A builder starting from `seeds` (`redis://` or `rediss://` URLs, credentials in
    /// the first).
    pub fn builder(seeds: &[&str]) -> ClusterBuilder {
        ClusterBuilder {
            seeds: seeds.iter().map(|s| (*s).to_owned()).collect(),
            node: crate::Client::builder(seeds.first().copied().unwrap_or_default()),
            max_redirects: 5,
            refresh_interval: Duration::from_secs(30),
        }
    }

    async fn from_builder(builder: ClusterBuilder) -> Result<ClusterClient, Error> {
        let invalid = |what: String| Error::new(ErrorKind::InvalidConfig, what);
        if builder.seeds.is_empty() {
            return Err(invalid(
                "a cluster client needs at least one seed URL".into(),
            ));
        }
        let base = builder.node.build()?;
        if base.lane.connect.info.db != 0 {
            return Err(invalid("Redis Cluster has only database 0".into()));
        }
        let mut seeds = Vec::new();
        for seed in &builder.seeds {
            match url::parse(seed)?.addr {
                Addr::Tcp { host, port } => seeds.push(NodeAddr { host, port }),
                Addr::Unix(_) => return Err(invalid("cluster seeds must be TCP URLs".into())),
            }
        }
        let seed_host = seeds[0].host.clone();
        let mut last_err = None;
        for seed in &seeds {
            match Core::connect(base.for_node(&seed.host, seed.port)).await {
                Ok(core) => match discover(&core, &seed_host).await {
                    Ok((map, commands)) => {
                        let inner = Arc::new(Inner {
                            base,
                            seed_host,
                            seeds: seeds.clone(),
                            max_redirects: builder.max_redirects,
                            commands,
                            map: RwLock::new(Arc::new(Snapshot {
                                map,
                                masters: Vec::new(),
                            })),
                            moved: Mutex::default(),
                            any_moved: AtomicBool::new(false),
                            nodes: Mutex::default(),
                            refresh: Arc::new(Notify::new()),
                            redirects: Default::default(),
                            version: AtomicU64::new(0),
                            refreshed: Notify::new(),
                            closing: AtomicBool::new(false),
                            stop: CancellationToken::new(),
                        });
                        inner.adopt(seed.clone(), core);
                        let map = inner.map().map.clone();
                        inner.swap(map).await;
                        spawn_refresher(&inner, builder.refresh_interval);
                        return Ok(ClusterClient { inner });
                    }
                    Err(err) => {
                        core.close().await;
                        last_err = Some(err);
                    }
                },
                Err(err) => last_err = Some(err),
            }
        }
        Err(last_err.unwrap_or_else(|| invalid("no seed".into())))
    }

    /// Sends one command where its keys say and returns its reply; a server error reply
    /// is returned as `Ok(Value::ServerError(..))`.
    ///
    /// # Errors
    ///
    /// As for [`Client::send`](crate::Client::send), plus [`ErrorKind::Refused`] for keys
    /// in several slots of a command that cannot be split (`CROSSSLOT`).
    ///
    /// # Cancel safety
    ///
    /// As for [`Client::send`](crate::Client::send), on the node the command went to.
    pub async fn send(&self, cmd: &Cmd) -> Result<Value, Error> {
        self.check_open()?;
        self.inner.send(cmd).await
    }

    async fn send_pipeline(
        &self,
        pipe: &Pipeline,
        offset: usize,
        count: usize,
    ) -> Result<Vec<Value>, Error> {
        self.check_open()?;
        if pipe.is_transaction() {
            return self.inner.send_atomic(pipe, offset, count).await;
        }
        let replies = self.inner.send_spread(pipe).await?;
        Ok(replies.into_iter().skip(offset).take(count).collect())
    }

    /// Closes every node's connections gracefully (see [`Client::close`](crate::Client::close))
    /// and ends the refresh task.
    pub async fn close(&self) {
        self.inner.closing.store(true, SeqCst);
        self.inner.stop.cancel();
        let cores = self.inner.cores();
        futures_util::future::join_all(cores.iter().map(|core| core.close())).await;
    }

    /// `true` once [`ClusterClient::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.inner.closing.load(SeqCst)
    }

    /// The counters of every node, added up.
    pub fn stats(&self) -> Stats {
        let mut total = Stats {
            connected: true,
            ..Stats::default()
        };
        for (_, stats) in self.node_stats() {
            total += stats;
        }
        let [moved, ask, later] = &self.inner.redirects;
        total.moved_redirects = moved.load(SeqCst);
        total.ask_redirects = ask.load(SeqCst);
        total.retried_later = later.load(SeqCst);
        total
    }

    /// The counters of each node this client is connected to, by `host:port`.
    pub fn node_stats(&self) -> Vec<(String, Stats)> {
        let nodes = self.inner.lock_nodes();
        let mut all: Vec<(String, Stats)> = nodes
            .iter()
            .filter_map(|(addr, cell)| Some((addr.to_string(), cell.get()?.stats())))
            .collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }

    /// Asks for a refresh of the slot map and waits (at most `limit`) until one was read.
    pub async fn refresh(&self, limit: Duration) -> bool {
        self.inner.refresh_and_wait(limit).await
    }

    fn check_open(&self) -> Result<(), Error> {
        if self.is_closed() {
            return Err(Error::closed().not_sent());
        }
        Ok(())
    }
}

impl Inner {
    fn lock_nodes(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<NodeAddr, Arc<tokio::sync::OnceCell<Arc<Core>>>>> {
        self.nodes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn cores(&self) -> Vec<Arc<Core>> {
        self.lock_nodes()
            .values()
            .filter_map(|cell| cell.get().cloned())
            .collect()
    }

    fn adopt(&self, addr: NodeAddr, core: Arc<Core>) {
        let cell = tokio::sync::OnceCell::new_with(Some(core));
        self.lock_nodes().insert(addr, Arc::new(cell));
    }

    fn map(&self) -> Arc<Snapshot> {
        Arc::clone(&self.map.read().unwrap_or_else(PoisonError::into_inner))
    }

    /// The hot path: the connected master of `slot` from the snapshot, when no `MOVED`
    /// overrides it. `None` sends the request down the slow path.
    fn ready_master(&self, slot: u16) -> Option<Arc<Core>> {
        if self.any_moved.load(SeqCst) {
            return None;
        }
        let snapshot = self.map.read().unwrap_or_else(PoisonError::into_inner);
        let core = snapshot
            .masters
            .get(snapshot.shard_index(slot)?)?
            .as_ref()?;
        core.is_connected().then(|| Arc::clone(core))
    }

    /// The master of `slot`, as the last `MOVED` or the map says.
    fn owner(&self, slot: u16) -> Option<NodeAddr> {
        let moved = self.moved.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(addr) = moved.get(&slot) {
            return Some(addr.clone());
        }
        drop(moved);
        self.map().master(slot).cloned()
    }

    /// The master of `slot`. When its connection is down (a master that died, say), the
    /// slot is about to move or the node to come back: this waits, for at most
    /// `disconnected_wait`, for a refreshed map that names another master or for the
    /// node to reconnect, instead of parking the request on a dead node.
    async fn live_owner(&self, slot: u16) -> Option<NodeAddr> {
        let deadline = tokio::time::Instant::now() + self.base.lane.reconnect.wait;
        loop {
            let addr = self.owner(slot)?;
            let connected = self.existing(&addr).is_none_or(|core| core.is_connected());
            let now = tokio::time::Instant::now();
            if connected || now >= deadline {
                return Some(addr);
            }
            // Each refresh takes a round trip and comes at most every 100 ms.
            let step = (deadline - now).min(Duration::from_millis(250));
            self.refresh_and_wait(step).await;
        }
    }

    /// The node at `addr` if it was connected before.
    fn existing(&self, addr: &NodeAddr) -> Option<Arc<Core>> {
        self.lock_nodes().get(addr)?.get().cloned()
    }

    /// The node at `addr`, connected on first use (once, however many callers ask).
    async fn node(&self, addr: &NodeAddr) -> Result<Arc<Core>, Error> {
        let cell = {
            let mut nodes = self.lock_nodes();
            Arc::clone(nodes.entry(addr.clone()).or_default())
        };
        let core = cell
            .get_or_try_init(|| Core::connect(self.base.for_node(&addr.host, addr.port)))
            .await?;
        Ok(Arc::clone(core))
    }

    /// Plans `cmd` and sends it where the plan says.
    async fn send(&self, cmd: &Cmd) -> Result<Value, Error> {
        // The less common plans, and the redirect paths below, are boxed: unboxed, their
        // state would size every single-key command's future, allocated per command.
        match plan::plan(cmd, &self.commands)? {
            Plan::Slot(slot) => self.send_to(Target::Slot(slot), cmd).await,
            Plan::Any => Box::pin(self.send_any(cmd)).await,
            Plan::Fanout {
                all_nodes,
                response,
            } => Box::pin(self.fanout(cmd, all_nodes, response)).await,
            Plan::Split(split) => Box::pin(self.split(split)).await,
        }
    }

    /// Sends `cmd` to `target`, following redirects up to the limit.
    async fn send_to(&self, mut target: Target, cmd: &Cmd) -> Result<Value, Error> {
        let mut attempt = 0;
        loop {
            let reply = match &target {
                Target::Slot(slot) if attempt == 0 => match self.ready_master(*slot) {
                    Some(core) => core.send(cmd).await,
                    None => Box::pin(self.to_owner(*slot, cmd)).await,
                },
                Target::Slot(slot) => Box::pin(self.to_owner(*slot, cmd)).await,
                Target::Node(addr) => Box::pin(self.attempt(addr, cmd, false)).await,
                Target::Ask(addr) => Box::pin(self.attempt(addr, cmd, true)).await,
            };
            let reply = match reply {
                Ok(reply) => reply,
                Err(err) => {
                    // A node that cannot be reached: its slots may have moved. A request
                    // that never left is retried once the map is fresh.
                    if err.is_connection() {
                        self.refresh.notify_one();
                    }
                    // Not sent, because the node was down or was closed by a refresh that
                    // dropped it from the map: route again.
                    let retry = err.is_retry_safe()
                        && (err.is_connection() || err.kind() == ErrorKind::Closed)
                        && !self.closing.load(SeqCst);
                    if retry && attempt < self.max_redirects {
                        attempt += 1;
                        Box::pin(self.refresh_and_wait(self.base.lane.reconnect.wait)).await;
                        if let Target::Node(_) | Target::Ask(_) = target {
                            target = slot_of(cmd, &self.commands).map_or(target, Target::Slot);
                        }
                        continue;
                    }
                    return Err(err);
                }
            };
            let Some(redirect) = redirect(&reply, &self.seed_host) else {
                return Ok(reply);
            };
            if attempt >= self.max_redirects {
                return Ok(reply);
            }
            attempt += 1;
            self.note(&redirect);
            target = match redirect {
                Redirect::Moved { to, .. } => Target::Node(to),
                Redirect::Ask { to, .. } => Target::Ask(to),
                Redirect::Later => {
                    tokio::time::sleep(Duration::from_millis(10 << attempt.min(6))).await;
                    match slot_of(cmd, &self.commands) {
                        Some(slot) => Target::Slot(slot),
                        None => target,
                    }
                }
            };
        }
    }

    /// One attempt on the slot's owner once it is known and reachable.
    async fn to_owner(&self, slot: u16, cmd: &Cmd) -> Result<Value, Error> {
        match self.live_owner(slot).await {
            Some(addr) => self.attempt(&addr, cmd, false).await,
            None => Err(self.uncovered(slot).await),
        }
    }

    /// Counts a redirect; a `MOVED` also updates the slot's owner until the next refresh,
    /// which it asks for.
    fn note(&self, redirect: &Redirect) {
        let counter = match redirect {
            Redirect::Moved { slot, to } => {
                self.moved
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(*slot, to.clone());
                self.any_moved.store(true, SeqCst);
                self.refresh.notify_one();
                0
            }
            Redirect::Ask { .. } => 1,
            Redirect::Later => 2,
        };
        self.redirects[counter].fetch_add(1, SeqCst);
        #[cfg(feature = "metrics")]
        crate::observe::metrics::redirect(["moved", "ask", "retry"][counter]);
    }

    /// One attempt on one node; with `asking`, `ASKING` and the command go together as
    /// one pipeline, so nothing can come between them on the connection.
    async fn attempt(&self, addr: &NodeAddr, cmd: &Cmd, asking: bool) -> Result<Value, Error> {
        let core = self.node(addr).await?;
        if !asking {
            return core.send(cmd).await;
        }
        let mut pipe = redis::pipe();
        pipe.cmd("ASKING").add_command(cmd.clone());
        let mut replies = core.send_pipeline(&pipe, 1, 1).await?;
        replies
            .pop()
            .ok_or_else(|| Error::protocol("no reply after ASKING"))
    }

    /// No node serves `slot`: the map may be stale.
    async fn uncovered(&self, slot: u16) -> Error {
        self.refresh_and_wait(self.base.lane.reconnect.wait).await;
        Error::new(
            ErrorKind::ConnectionLost,
            format!("no node serves slot {slot} (the cluster may be failing over)"),
        )
        .not_sent()
    }

    /// A command for any node: the first master of the map.
    async fn send_any(&self, cmd: &Cmd) -> Result<Value, Error> {
        let map = self.map();
        let Some(shard) = map.shards().first() else {
            return Err(self.uncovered(0).await);
        };
        let target = Target::Node(shard.master.clone());
        drop(map);
        self.send_to(target, cmd).await
    }

    /// A command for every master (or every node), the replies combined.
    async fn fanout(
        &self,
        cmd: &Cmd,
        all_nodes: bool,
        response: Option<ResponsePolicy>,
    ) -> Result<Value, Error> {
        let map = self.map();
        let mut addrs: Vec<NodeAddr> = Vec::new();
        for shard in map.shards() {
            addrs.push(shard.master.clone());
            if all_nodes {
                addrs.extend(shard.replicas.iter().cloned());
            }
        }
        drop(map);
        let sends = addrs
            .iter()
            .map(|addr| self.send_to(Target::Node(addr.clone()), cmd));
        let replies = futures_util::future::try_join_all(sends).await?;
        Ok(combine(replies, response))
    }

    /// A multi-key command split by slot; the replies merged in the caller's key order.
    async fn split(&self, split: Split) -> Result<Value, Error> {
        let Split {
            parts,
            keys,
            response,
        } = split;
        let sends = parts
            .iter()
            .map(|(slot, cmd, _)| self.send_to(Target::Slot(*slot), cmd));
        let replies = futures_util::future::try_join_all(sends).await?;
        if let Some(err) = replies.iter().find(|r| matches!(r, Value::ServerError(_))) {
            return Ok(err.clone());
        }
        if response.is_some() {
            return Ok(combine(replies, response));
        }
        // Arrays, one element per key (`MGET`): back in the caller's order.
        let mut merged = vec![Value::Nil; keys];
        for ((_, _, members), reply) in parts.iter().zip(replies) {
            let Value::Array(items) = reply else {
                return Err(Error::protocol("a split command's part was not an array"));
            };
            for (&member, item) in members.iter().zip(items) {
                if let Some(cell) = merged.get_mut(member) {
                    *cell = item;
                }
            }
        }
        Ok(Value::Array(merged))
    }

    /// An atomic pipeline: one slot, one node, sent whole.
    async fn send_atomic(
        &self,
        pipe: &Pipeline,
        offset: usize,
        count: usize,
    ) -> Result<Vec<Value>, Error> {
        let mut slot = None;
        for cmd in pipe.cmd_iter() {
            match plan::plan(cmd, &self.commands)? {
                Plan::Slot(s) if slot.is_none_or(|first| first == s) => slot = Some(s),
                Plan::Any => {}
                _ => return Err(plan::cross_slot("a transaction (MULTI/EXEC)")),
            }
        }
        let addr = match slot.and_then(|s| self.owner(s)) {
            Some(addr) => addr,
            None => match self.map().shards().first() {
                Some(shard) => shard.master.clone(),
                None => return Err(self.uncovered(slot.unwrap_or(0)).await),
            },
        };
        let core = self.node(&addr).await?;
        core.send_pipeline(pipe, offset, count).await
    }

    /// A plain pipeline: each node gets its commands as one pipeline, in parallel; the
    /// replies go back in place; a command redirected, split or sent to every node is
    /// then sent on its own.
    async fn send_spread(&self, pipe: &Pipeline) -> Result<Vec<Value>, Error> {
        let cmds: Vec<&Cmd> = pipe.cmd_iter().collect();
        let mut groups: Vec<(NodeAddr, Vec<usize>)> = Vec::new();
        let mut alone = Vec::new();
        for (index, cmd) in cmds.iter().enumerate() {
            let addr = match plan::plan(cmd, &self.commands)? {
                Plan::Slot(slot) => self.owner(slot),
                Plan::Any => self.map().shards().first().map(|s| s.master.clone()),
                Plan::Fanout { .. } | Plan::Split(_) => None,
            };
            match addr {
                Some(addr) => match groups.iter_mut().find(|(a, _)| *a == addr) {
                    Some((_, members)) => members.push(index),
                    None => groups.push((addr, vec![index])),
                },
                None => alone.push(index),
            }
        }
        let cmds = &cmds;
        let sends = groups.iter().map(|(addr, members)| async move {
            let mut part = redis::pipe();
            for &index in members {
                part.add_command(cmds[index].clone());
            }
            let core = self.node(addr).await?;
            core.send_pipeline(&part, 0, members.len()).await
        });
        let parts = futures_util::future::try_join_all(sends).await?;
        let mut replies = vec![Value::Nil; cmds.len()];
        for ((_, members), values) in groups.iter().zip(parts) {
            for (&index, value) in members.iter().zip(values) {
                if let Some(redirect) = redirect(&value, &self.seed_host) {
                    self.note(&redirect);
                    alone.push(index);
                } else {
                    replies[index] = value;
                }
            }
        }
        // Redirected commands were not executed: each is sent again on its own, and
        // follows its redirect. The rest of the pipeline has run; order between nodes was
        // never promised, only each reply in its place.
        let resends = alone.iter().map(|&index| self.send(cmds[index]));
        let resent = futures_util::future::try_join_all(resends).await?;
        for (&index, value) in alone.iter().zip(resent) {
            replies[index] = value;
        }
        Ok(replies)
    }

    /// Wakes the refresh task and waits until it has read a map, for at most `limit`.
    async fn refresh_and_wait(&self, limit: Duration) -> bool {
        let seen = self.version.load(SeqCst);
        let refreshed = self.refreshed.notified();
        tokio::pin!(refreshed);
        refreshed.as_mut().enable();
        self.refresh.notify_one();
        if self.version.load(SeqCst) != seen {
            return true;
        }
        tokio::time::timeout(limit, refreshed).await.is_ok()
    }

    /// Reads the slot map from a known master (or a seed) and swaps it in.
    async fn refresh_once(&self) {
        let map = self.map();
        let mut candidates: Vec<NodeAddr> = map.shards().iter().map(|s| s.master.clone()).collect();
        candidates.extend(map.shards().iter().flat_map(|s| s.replicas.iter().cloned()));
        candidates.extend(self.seeds.iter().cloned());
        drop(map);
        for addr in candidates {
            // A node whose connection is down would park the question until it is back.
            if self
                .existing(&addr)
                .is_some_and(|core| !core.is_connected())
            {
                continue;
            }
            let Ok(core) = self.node(&addr).await else {
                continue;
            };
            match topology_of(&core, &self.seed_host).await {
                Ok(map) => {
                    let uncovered = map.uncovered();
                    if uncovered > 0 {
                        tracing::warn!(uncovered, node = %addr, "slots without a node");
                    }
                    self.swap(map).await;
                    return;
                }
                Err(err) => tracing::debug!(node = %addr, error = %err, "topology refresh failed"),
            }
        }
        tracing::warn!("no cluster node answered a topology refresh");
    }

    /// Connects the new map's masters (those not connected yet), then swaps the map in.
    async fn swap(&self, map: SlotMap) {
        let keep: Vec<NodeAddr> = map
            .shards()
            .iter()
            .flat_map(|s| std::iter::once(s.master.clone()).chain(s.replicas.iter().cloned()))
            .chain(self.seeds.iter().cloned())
            .collect();
        let connects = map.shards().iter().map(|shard| async move {
            // Bounded, so an unreachable new master cannot hold the refresh up for a
            // whole connect timeout; it is tried again by the slow path.
            tokio::time::timeout(Duration::from_secs(1), self.node(&shard.master))
                .await
                .ok()?
                .ok()
        });
        let masters = futures_util::future::join_all(connects).await;
        *self.map.write().unwrap_or_else(PoisonError::into_inner) =
            Arc::new(Snapshot { map, masters });
        let mut moved = self.moved.lock().unwrap_or_else(PoisonError::into_inner);
        moved.clear();
        self.any_moved.store(false, SeqCst);
        drop(moved);
        // Nodes that left the map (a master that failed, a node removed) are closed: a
        // request parked on one while it reconnects gets a retry-safe error at once and
        // is routed again by the new map.
        let mut gone = Vec::new();
        self.lock_nodes().retain(|addr, cell| {
            let stays = keep.contains(addr);
            if !stays {
                gone.extend(cell.get().cloned());
            }
            stays
        });
        for core in gone {
            tokio::spawn(async move { core.close().await });
        }
        self.version.fetch_add(1, SeqCst);
        self.refreshed.notify_waiters();
    }
}

/// The slot of a single-slot command, to re-route it after a refresh.
fn slot_of(cmd: &Cmd, commands: &Commands) -> Option<u16> {
    match plan::plan(cmd, commands) {
        Ok(Plan::Slot(slot)) => Some(slot),
        _ => None,
    }
}

/// Replies from several nodes made one, as the command's response policy says; without
/// one, arrays are concatenated (`KEYS`) and anything else is the first reply.
fn combine(replies: Vec<Value>, response: Option<ResponsePolicy>) -> Value {
    if let Some(err) = replies.iter().find(|r| matches!(r, Value::ServerError(_))) {
        if response != Some(ResponsePolicy::OneSucceeded) {
            return err.clone();
        }
    }
    let ints = || {
        replies.iter().filter_map(|r| match r {
            Value::Int(n) => Some(*n),
            _ => None,
        })
    };
    match response {
        Some(ResponsePolicy::AggSum) => Value::Int(ints().sum()),
        Some(ResponsePolicy::AggMin) => ints().min().map_or(Value::Nil, Value::Int),
        Some(ResponsePolicy::AggMax) => ints().max().map_or(Value::Nil, Value::Int),
        Some(ResponsePolicy::AggLogicalAnd) => Value::Int(i64::from(ints().all(|n| n != 0))),
        Some(ResponsePolicy::AggLogicalOr) => Value::Int(i64::from(ints().any(|n| n != 0))),
        Some(ResponsePolicy::OneSucceeded) => replies
            .iter()
            .find(|r| !matches!(r, Value::ServerError(_)))
            .or(replies.first())
            .cloned()
            .unwrap_or(Value::Nil),
        Some(ResponsePolicy::AllSucceeded | ResponsePolicy::Special) => {
            replies.into_iter().next().unwrap_or(Value::Nil)
        }
        None => {
            if replies.iter().all(|r| matches!(r, Value::Array(_))) {
                Value::Array(
                    replies
                        .into_iter()
                        .flat_map(|r| match r {
                            Value::Array(items) => items,
                            _ => Vec::new(),
                        })
                        .collect(),
                )
            } else {
                replies.into_iter().next().unwrap_or(Value::Nil)
            }
        }
    }
}

/// Reads the command table and the slot map through `core`.
async fn discover(core: &Core, seed_host: &str) -> Result<(SlotMap, Commands), Error> {
    let map = topology_of(core, seed_host).await?;
    let reply = core.send(&redis::cmd("COMMAND")).await?;
    let commands = Commands::from_reply(&reply)?;
    if commands.is_empty() {
        // Every command then goes to any node and follows its MOVED: correct, slower.
        tracing::warn!("the server listed no commands; routing by redirects only");
    }
    Ok((map, commands))
}

/// `CLUSTER SHARDS`, or `CLUSTER SLOTS` where the server has no `SHARDS` (before 7.0).
async fn topology_of(core: &Core, seed_host: &str) -> Result<SlotMap, Error> {
    let mut shards = redis::cmd("CLUSTER");
    shards.arg("SHARDS");
    let reply = core.send(&shards).await?;
    if !matches!(reply, Value::ServerError(_)) {
        return topology::from_shards(&reply, seed_host);
    }
    let mut slots = redis::cmd("CLUSTER");
    slots.arg("SLOTS");
    match core.send(&slots).await? {
        Value::ServerError(err) => Err(Error::new(
            ErrorKind::Handshake,
            format!("the server is not a cluster node: CLUSTER SLOTS answered {err}"),
        )),
        reply => topology::from_slots(&reply, seed_host),
    }
}

/// The task that refreshes the map: on request (coalesced: many asks while one refresh
/// runs make one more), on a timer, when a master's connection is found down (checked
/// every `WATCH`, no network involved: a failover is noticed even while no request goes
/// to that master), and never more often than every 100 ms. It holds the client only
/// while refreshing, so dropping the last handle ends it.
fn spawn_refresher(inner: &Arc<Inner>, interval: Duration) {
    const MIN_GAP: Duration = Duration::from_millis(100);
    const WATCH: Duration = Duration::from_millis(500);
    let weak: Weak<Inner> = Arc::downgrade(inner);
    let stop = inner.stop.clone();
    let asked = Arc::clone(&inner.refresh);
    tokio::spawn(async move {
        let mut last = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = asked.notified() => {}
                () = tokio::time::sleep(WATCH) => {
                    let Some(inner) = weak.upgrade() else { return };
                    let down = inner.map().masters.iter().flatten().any(|core| !core.is_connected());
                    if !down && last.elapsed() < interval {
                        continue;
                    }
                }
            }
            let Some(inner) = weak.upgrade() else { return };
            inner.refresh_once().await;
            drop(inner);
            last = tokio::time::Instant::now();
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(MIN_GAP) => {}
            }
        }
    });
}

impl ConnectionLike for ClusterClient {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(async move { self.send(cmd).await.map_err(Into::into) })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        Box::pin(async move {
            self.send_pipeline(pipeline, offset, count)
                .await
                .map_err(Into::into)
        })
    }

    /// Always 0: a cluster has one database.
    fn get_db(&self) -> i64 {
        0
    }
}
