//! Redis Cluster: redis-lanes' `ClusterClient` against redis-rs `cluster_async` and fred
//! clustered, on throw-away local clusters (3 masters, 1 replica each): throughput on
//! keys spread over every slot, errors callers see while slots move, and the time to
//! recover from a master killed with `kill -9`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fred::prelude::{ClientLike, KeysInterface};
use redis_lanes_testkit::RedisCluster;
use tokio::time::Instant;

use super::chart::{Bar, Panel};
use super::progress;
use super::report::Section;
use super::summary::{duration, median, ratio};
use super::BoxError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Lanes,
    RedisRs,
    Fred,
}

const KINDS: [Kind; 3] = [Kind::Lanes, Kind::RedisRs, Kind::Fred];

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Lanes => "redis-lanes `ClusterClient`",
            Kind::RedisRs => "redis-rs `cluster_async` (defaults)",
            Kind::Fred => "fred clustered (defaults)",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Kind::Lanes => "redis-lanes",
            Kind::RedisRs => "redis-rs",
            Kind::Fred => "fred",
        }
    }
}

/// One connected cluster client; clones share its connections.
#[derive(Clone)]
enum Client {
    Lanes(redis_lanes::ClusterClient),
    RedisRs(redis::cluster_async::ClusterConnection),
    Fred(fred::prelude::Client),
}

impl Client {
    async fn connect(kind: Kind, seeds: &[String]) -> Result<Client, BoxError> {
        let connect = async {
            Ok::<_, BoxError>(match kind {
                Kind::Lanes => {
                    let seeds: Vec<&str> = seeds.iter().map(String::as_str).collect();
                    Client::Lanes(redis_lanes::ClusterClient::connect(&seeds).await?)
                }
                Kind::RedisRs => Client::RedisRs(
                    redis::cluster::ClusterClient::new(seeds.to_vec())?
                        .get_async_connection()
                        .await?,
                ),
                Kind::Fred => {
                    let first = seeds.first().ok_or("no seed")?;
                    let url = first.replacen("redis://", "redis-cluster://", 1);
                    let config = fred::prelude::Config::from_url(&url)?;
                    let client = fred::prelude::Builder::from_config(config).build()?;
                    let _task = client.init().await?;
                    Client::Fred(client)
                }
            })
        };
        tokio::time::timeout(Duration::from_secs(20), connect)
            .await
            .map_err(|_| format!("{}: no connection after 20 s", kind.label()))?
    }

    async fn set(&mut self, key: &str, value: &str) -> Result<(), BoxError> {
        match self {
            Client::Lanes(c) => redis::cmd("SET").arg(key).arg(value).exec_async(c).await?,
            Client::RedisRs(c) => redis::cmd("SET").arg(key).arg(value).exec_async(c).await?,
            Client::Fred(c) => c.set::<(), _, _>(key, value, None, None, false).await?,
        }
        Ok(())
    }

    async fn get(&mut self, key: &str) -> Result<Option<String>, BoxError> {
        Ok(match self {
            Client::Lanes(c) => redis::cmd("GET").arg(key).query_async(c).await?,
            Client::RedisRs(c) => redis::cmd("GET").arg(key).query_async(c).await?,
            Client::Fred(c) => c.get::<Option<String>, _>(key).await?,
        })
    }

    async fn close(self) {
        match self {
            Client::Lanes(c) => c.close().await,
            Client::RedisRs(c) => drop(c),
            Client::Fred(c) => {
                let _ = tokio::time::timeout(Duration::from_secs(5), c.quit()).await;
            }
        }
    }
}

/// What the scenario measures, from the command line.
pub(crate) struct Plan {
    task_counts: Vec<usize>,
    window: Duration,
    rounds: usize,
    /// Clients whose failover recovery is measured (each on a cluster of its own).
    failover: Vec<Kind>,
    horizon: Duration,
}

impl Plan {
    /// 1, 16 and 128 tasks, 1 s windows, 5 rounds, failover for every client; with
    /// `--quick`, 1 and 16 tasks, 0.3 s, 1 round, failover for redis-lanes only.
    pub(crate) fn new(quick: bool) -> Self {
        if quick {
            Plan {
                task_counts: vec![1, 16],
                window: Duration::from_millis(300),
                rounds: 1,
                failover: vec![Kind::Lanes],
                horizon: Duration::from_secs(15),
            }
        } else {
            Plan {
                task_counts: vec![1, 16, 128],
                window: Duration::from_secs(1),
                rounds: 5,
                failover: KINDS.to_vec(),
                horizon: Duration::from_secs(15),
            }
        }
    }
}

pub(crate) async fn run(plan: &Plan) -> Result<Section, BoxError> {
    let bar = progress::bar("cluster", 3);
    bar.set_message("forming a local cluster");
    let cluster = Arc::new(tokio::task::spawn_blocking(|| RedisCluster::start(3, 1)).await??);
    let seeds = cluster.urls();
    let mut clients = Vec::new();
    for kind in KINDS {
        clients.push((kind, Client::connect(kind, &seeds).await?));
    }
    bar.set_message("throughput");
    let throughput = throughput(&clients, plan).await?;
    bar.inc(1);
    bar.set_message("resharding");
    let mut reshard = Vec::new();
    for (round, (kind, client)) in clients.iter().enumerate() {
        reshard.push((*kind, resharding(&cluster, client, round).await?));
    }
    for (_, client) in clients {
        client.close().await;
    }
    bar.inc(1);
    bar.set_message("failover");
    let mut failover = Vec::new();
    for &kind in &plan.failover {
        failover.push((kind, failover_recovery(kind, plan.horizon).await?));
    }
    bar.finish_and_clear();

    let mut failures = Vec::new();
    for (kind, outcome) in &reshard {
        if *kind == Kind::Lanes && (outcome.errors > 0 || outcome.wrong > 0) {
            failures.push(format!(
                "cluster: redis-lanes saw {} errors and {} wrong replies while slots moved",
                outcome.errors, outcome.wrong
            ));
        }
    }
    for (kind, outcome) in &failover {
        if *kind == Kind::Lanes && (outcome.recovered.is_none() || outcome.hanging > 0) {
            failures.push(format!(
                "cluster: redis-lanes did not recover from a master's death ({} hanging)",
                outcome.hanging
            ));
        }
    }
    Ok(Section {
        heading: "Redis Cluster",
        about: format!(
            "A throw-away local cluster (3 masters, 1 replica each, `cluster-node-timeout \
             1000`). *Throughput*: SET and GET of short values on keys spread over every \
             slot, from N tasks sharing one client; clients interleaved within each cell, \
             {window} counted, median of {rounds} round(s). *Resharding*: 8 tasks SET and \
             GET their own keys on 16 hash tags while each of those 16 slots moves to \
             another master key by key (a pause midway, so `ASK` is answered); errors and \
             replies that are not the value last written. *Failover*: 8 tasks on a cluster \
             of their own; a master is killed with `kill -9`; from its replica's \
             promotion to every task's next success (cut off at {horizon}), and calls in \
             flight for longer than 10 s then.",
            window = duration(plan.window),
            rounds = plan.rounds,
            horizon = duration(plan.horizon),
        ),
        table: table(&throughput, &reshard, &failover),
        panels: vec![panel(&throughput)],
        failures,
    })
}

/// Ops/s per (op, tasks), one sample list per client in `KINDS` order.
type Throughput = Vec<(&'static str, usize, Vec<Vec<f64>>)>;

async fn throughput(clients: &[(Kind, Client)], plan: &Plan) -> Result<Throughput, BoxError> {
    let mut rows: Throughput = Vec::new();
    for op in ["SET", "GET"] {
        for &tasks in &plan.task_counts {
            let mut samples = vec![Vec::new(); clients.len()];
            for _ in 0..plan.rounds {
                for (i, (_, client)) in clients.iter().enumerate() {
                    samples[i].push(ops_per_second(client, op, tasks, plan.window).await?);
                }
            }
            rows.push((op, tasks, samples));
        }
    }
    Ok(rows)
}

async fn ops_per_second(
    client: &Client,
    op: &'static str,
    tasks: usize,
    window: Duration,
) -> Result<f64, BoxError> {
    let end = Instant::now() + window;
    let mut handles = Vec::new();
    for task in 0..tasks {
        let mut client = client.clone();
        handles.push(tokio::spawn(async move {
            let mut n = 0u64;
            while Instant::now() < end {
                let key = format!("bench:cluster:{}", (task as u64 * 7919 + n) % 1000);
                let done = if op == "SET" {
                    client.set(&key, "0123456789abcdef").await
                } else {
                    client.get(&key).await.map(drop)
                };
                done.map_err(|e| e.to_string())?;
                n += 1;
            }
            Ok::<u64, String>(n)
        }));
    }
    let mut total = 0;
    for handle in handles {
        total += handle.await??;
    }
    Ok(total as f64 / window.as_secs_f64())
}

#[derive(Debug, Default)]
struct Reshard {
    calls: u64,
    errors: u64,
    wrong: u64,
}

/// 8 tasks on 16 hash tags while the tags' slots move one master along.
async fn resharding(
    cluster: &Arc<RedisCluster>,
    client: &Client,
    round: usize,
) -> Result<Reshard, BoxError> {
    const TAGS: usize = 16;
    let stop = Arc::new(AtomicBool::new(false));
    let (calls, errors, wrong) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut handles = Vec::new();
    for task in 0..8usize {
        let mut client = client.clone();
        let (stop, calls, errors, wrong) = (
            Arc::clone(&stop),
            Arc::clone(&calls),
            Arc::clone(&errors),
            Arc::clone(&wrong),
        );
        handles.push(tokio::spawn(async move {
            let mut last: Vec<Option<String>> = vec![None; TAGS];
            let mut n = 0u64;
            while !stop.load(SeqCst) && n < 10_000_000 {
                n += 1;
                let tag = (n as usize + task) % TAGS;
                let key = format!("{{r{round}t{tag}}}:{task}");
                let value = n.to_string();
                calls.fetch_add(2, SeqCst);
                match client.set(&key, &value).await {
                    Ok(()) => last[tag] = Some(value),
                    Err(_) => {
                        errors.fetch_add(1, SeqCst);
                        last[tag] = None; // Unknown now.
                    }
                }
                match client.get(&key).await {
                    Ok(seen) => {
                        if last[tag].is_some() && seen != last[tag] {
                            wrong.fetch_add(1, SeqCst);
                        }
                    }
                    Err(_) => {
                        errors.fetch_add(1, SeqCst);
                    }
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let moved = {
        let cluster = Arc::clone(cluster);
        tokio::task::spawn_blocking(move || -> Result<(), String> {
            let masters = cluster.masters().map_err(|e| e.to_string())?;
            for tag in 0..TAGS {
                let key = format!("{{r{round}t{tag}}}");
                let first = *masters.first().ok_or("no master")?;
                let slot: u16 = cluster.nodes()[first]
                    .command(&["CLUSTER", "KEYSLOT", &key])
                    .map_err(|e| e.to_string())?
                    .parse()
                    .map_err(|_| "KEYSLOT")?;
                let owner = cluster.owner(slot).map_err(|e| e.to_string())?;
                let at = masters.iter().position(|&m| m == owner).unwrap_or(0);
                let to = masters[(at + 1) % masters.len()];
                let migration = cluster
                    .start_migration(slot, to)
                    .map_err(|e| e.to_string())?;
                migration
                    .move_keys(&cluster, 3)
                    .map_err(|e| e.to_string())?;
                std::thread::sleep(Duration::from_millis(20));
                migration.finish(&cluster).map_err(|e| e.to_string())?;
            }
            Ok(())
        })
        .await?
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, SeqCst);
    for handle in handles {
        // A task stuck in a call is cut off: its calls are what they are.
        let _ = tokio::time::timeout(Duration::from_secs(10), handle).await;
    }
    moved?;
    Ok(Reshard {
        calls: calls.load(SeqCst),
        errors: errors.load(SeqCst),
        wrong: wrong.load(SeqCst),
    })
}

/// Per task: its last success, and when the call in flight began.
type TaskState = (Option<Instant>, Option<Instant>);

#[derive(Debug, Default)]
struct Failover {
    promotion: Duration,
    recovered: Option<Duration>,
    hanging: usize,
}

/// A cluster of its own; 8 tasks SET/GET; a master killed.
async fn failover_recovery(kind: Kind, horizon: Duration) -> Result<Failover, BoxError> {
    let mut cluster = tokio::task::spawn_blocking(|| RedisCluster::start(3, 1)).await??;
    let client = Client::connect(kind, &cluster.urls()).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let state: Arc<Mutex<Vec<TaskState>>> = Arc::new(Mutex::new(vec![(None, None); 8]));
    let mut handles = Vec::new();
    for task in 0..8 {
        let mut client = client.clone();
        let (stop, state) = (Arc::clone(&stop), Arc::clone(&state));
        handles.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(SeqCst) {
                n += 1;
                let key = format!("fo:{task}:{}", n % 64);
                let began = Instant::now();
                lock(&state)[task].1 = Some(began);
                let ok = client.set(&key, "v").await.is_ok() && client.get(&key).await.is_ok();
                let now = Instant::now();
                {
                    let mut state = lock(&state);
                    state[task].1 = None;
                    if ok {
                        state[task].0 = Some(now);
                    }
                }
                if !ok {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let masters = cluster.masters()?;
    let victim = *masters.first().ok_or("no master in the cluster")?;
    let replica = cluster.replica_of(victim)?;
    cluster.node_mut(victim).stop();
    let killed = Instant::now();
    let promoted = loop {
        if cluster.is_master(replica) {
            break Instant::now();
        }
        if killed.elapsed() > Duration::from_secs(30) {
            return Err("no replica was promoted within 30 s".into());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let recovered = loop {
        let all = lock(&state)
            .iter()
            .all(|(ok, _)| ok.is_some_and(|t| t > promoted));
        if all {
            break Some(promoted.elapsed());
        }
        if promoted.elapsed() > horizon {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let now = Instant::now();
    let hanging = lock(&state)
        .iter()
        .filter(|(_, began)| began.is_some_and(|b| now - b > Duration::from_secs(10)))
        .count();
    stop.store(true, SeqCst);
    for handle in &handles {
        handle.abort();
    }
    if let Client::Lanes(c) = &client {
        c.close().await;
    }
    drop(client);
    drop(cluster);
    Ok(Failover {
        promotion: promoted - killed,
        recovered,
        hanging,
    })
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn table(
    throughput: &Throughput,
    reshard: &[(Kind, Reshard)],
    failover: &[(Kind, Failover)],
) -> String {
    let mut out = String::from(
        "| op | tasks | redis-lanes ops/s | redis-rs ops/s | fred ops/s | lanes / redis-rs | lanes / fred |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for (op, tasks, samples) in throughput {
        let m: Vec<f64> = samples.iter().map(|s| median(s)).collect();
        let _ = writeln!(
            out,
            "| {op} | {tasks} | {:.0} | {:.0} | {:.0} | {} | {} |",
            m[0],
            m[1],
            m[2],
            ratio(m[0], m[1]),
            ratio(m[0], m[2])
        );
    }
    out.push_str("\n| client | calls while 16 slots moved | errors | wrong replies |\n|---|---:|---:|---:|\n");
    for (kind, r) in reshard {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            kind.label(),
            r.calls,
            r.errors,
            r.wrong
        );
    }
    out.push_str(
        "\n| client | promotion after the kill | every task back after the promotion | calls hanging |\n|---|---:|---:|---:|\n",
    );
    for (kind, f) in failover {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} |",
            kind.label(),
            duration(f.promotion),
            f.recovered.map_or_else(|| "never".to_owned(), duration),
            f.hanging
        );
    }
    out
}

fn panel(throughput: &Throughput) -> Panel {
    let best = throughput
        .iter()
        .filter(|(op, _, _)| *op == "GET")
        .max_by_key(|(_, tasks, _)| *tasks);
    let bars = best
        .map(|(_, _, samples)| {
            KINDS
                .iter()
                .zip(samples)
                .map(|(kind, s)| {
                    let m = median(s);
                    Bar {
                        label: kind.short().to_owned(),
                        value: m,
                        text: format!("{m:.0} ops/s"),
                        ours: *kind == Kind::Lanes,
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Panel {
        title: "Cluster GET throughput at the most tasks measured (more is better)".to_owned(),
        bars,
    }
}
