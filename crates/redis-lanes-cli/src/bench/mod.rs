//! `redis-lanes bench`: redis-lanes, redis-rs (`MultiplexedConnection`,
//! `ConnectionManager`), a deadpool-redis pool and fred side by side in one process, one
//! runtime, against one server. Scenarios: SET/GET throughput; GET latency at fixed
//! request rates (open loop); head-of-line blocking
//! (GETs while other callers of the same client wait in BLPOP); how fast a cancelled
//! BLPOP stops blocking on the server; whether connections close when the last handle
//! is dropped; elements lost to cancelled BLPOPs; deleted stream consumers re-created by
//! cancelled reads; what the per-request tracing spans cost.

mod chart;
mod clients;
mod cluster;
mod commands;
mod hol;
mod latency;
mod limit;
mod memory;
pub(crate) mod memory_probe;
mod progress;
mod race;
mod release;
mod report;
mod run;
mod seed;
mod server;
mod silent;
mod spans;
mod summary;
mod targets;
mod throughput;
mod unblock;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use redis_lanes_testkit::RedisServer;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The value every SET writes and every GET checks: 16 bytes.
pub(crate) const VALUE: &[u8; 16] = b"0123456789abcdef";

/// How long the set-up and clean-up commands may take.
pub(crate) const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Options of `redis-lanes bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Server to use. Without it, a throw-away redis-server is started on a free
    /// loopback port (Debian package `redis-server`).
    #[arg(long)]
    url: Option<String>,
    /// Counted seconds per throughput cell (one client, one op, one task count)
    /// [default: 3, or 0.3 with --quick].
    #[arg(long)]
    seconds: Option<f64>,
    /// A short run for CI (well under a minute): every scenario, each cut down to a
    /// few rounds; throughput at 1 and 16 tasks only.
    #[arg(long)]
    quick: bool,
    /// Run only these scenarios, comma-separated [default: all, in the order listed].
    #[arg(long, value_enum, value_delimiter = ',')]
    only: Vec<Scenario>,
    /// Concurrent task counts, comma-separated [default: 1,16,128,512, or 1,16 with
    /// --quick].
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u16).range(1..=10_000))]
    tasks: Vec<u16>,
    /// Repeat every throughput cell this many times and report the median.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=100))]
    rounds: u16,
    /// Worker threads of the multi-thread Tokio runtime all the clients share.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: u16,
    /// Write the report (BENCHMARKS.md) and its chart (benchmarks.svg) into this
    /// directory, e.g. `docs`. The part of an existing BENCHMARKS.md below its
    /// "written by hand" marker is kept.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
}

impl Args {
    /// The runtime's worker threads; `main` builds the runtime before `run`.
    pub(crate) fn workers(&self) -> usize {
        usize::from(self.workers)
    }
}

/// A scenario `--only` can pick.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Scenario {
    /// SET/GET throughput from 1 to N concurrent tasks.
    Throughput,
    /// GET latency at fixed request rates (open loop, coordinated omission corrected).
    Latency,
    /// Sequential GETs alone, then behind BLPOPs sent through the same client.
    Hol,
    /// From dropping a blocked BLPOP until the server no longer has it blocked.
    Unblock,
    /// Elements lost by BLPOPs cancelled while a producer pushes.
    Race,
    /// Deleted stream consumers re-created by cancelled XREADGROUP BLOCK reads.
    Seed,
    /// From dropping the last handle until the server no longer lists the connections.
    Release,
    /// A server that goes silent: first error, hanging calls, recovery.
    Silent,
    /// Redis Cluster: throughput, resharding, failover, on local clusters of its own.
    Cluster,
    /// What the per-request tracing spans cost, off and on.
    Spans,
    /// Memory per queued request on a stalled server, and per large value.
    Memory,
}

/// The operation a throughput cell measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Set,
    Get,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Set => "SET",
            Op::Get => "GET",
        })
    }
}

/// Runs the chosen scenarios. `Err` when the run cannot go on; `Ok(false)` when a
/// redis-lanes result breaks one of its guarantees (the other clients' results are
/// what they are).
pub(crate) async fn run(args: Args) -> Result<bool, BoxError> {
    let wanted = |scenario| args.only.is_empty() || args.only.contains(&scenario);
    // Check every option before starting a server.
    let plan = Plan {
        throughput: if wanted(Scenario::Throughput) {
            Some(throughput_plan(&args)?)
        } else {
            None
        },
        latency: wanted(Scenario::Latency).then(|| latency::Plan::new(args.quick)),
        hol: wanted(Scenario::Hol).then(|| hol::Plan::new(args.quick)),
        unblock: wanted(Scenario::Unblock).then(|| unblock::Plan::new(args.quick)),
        race: wanted(Scenario::Race).then(|| race::Plan::new(args.quick)),
        seed: wanted(Scenario::Seed).then(|| seed::Plan::new(args.quick)),
        release: wanted(Scenario::Release).then(|| release::Plan::new(args.quick)),
        silent: wanted(Scenario::Silent).then(|| silent::Plan::new(args.quick)),
        cluster: wanted(Scenario::Cluster).then(|| cluster::Plan::new(args.quick)),
        spans: wanted(Scenario::Spans).then(|| spans::Plan::new(args.quick)),
        memory: wanted(Scenario::Memory).then(|| memory::Plan::new(args.quick)),
    };

    let _server; // Kept alive for the whole run; dropping it stops the server.
    let (url, origin) = match &args.url {
        Some(url) => (url.clone(), "the server given with --url"),
        None => {
            let server = RedisServer::start()?;
            eprintln!(
                "started redis-server {} (pid {}) for this run",
                server.url(),
                server.pid()
            );
            let url = server.url();
            _server = server;
            (url, "throw-away server on loopback")
        }
    };

    // A separate client for set-up, clean-up and watching the server, so the measured
    // ones do only the work.
    let admin = redis_lanes::Client::connect(&url).await?;
    let prefix = format!("redis-lanes-bench:{}", std::process::id());
    let started = std::time::Instant::now();
    let outcome = scenarios(&url, &admin, &prefix, plan).await;
    admin.close().await;
    let (server_version, sections) = outcome?;
    eprintln!("measured in {:.1} s", started.elapsed().as_secs_f64());

    if let Some(dir) = &args.out {
        let context = report::Context {
            server_version,
            server_origin: origin,
            workers: args.workers(),
        };
        report::write(dir, &context, &sections)?;
    }
    let failures: Vec<&String> = sections.iter().flat_map(|s| &s.failures).collect();
    for failure in &failures {
        eprintln!("FAILED: {failure}");
    }
    Ok(failures.is_empty())
}

/// The scenarios to run, each with its settings.
struct Plan {
    throughput: Option<throughput::Plan>,
    latency: Option<latency::Plan>,
    hol: Option<hol::Plan>,
    unblock: Option<unblock::Plan>,
    race: Option<race::Plan>,
    seed: Option<seed::Plan>,
    release: Option<release::Plan>,
    silent: Option<silent::Plan>,
    cluster: Option<cluster::Plan>,
    spans: Option<spans::Plan>,
    memory: Option<memory::Plan>,
}

/// The throughput cells the options ask for.
fn throughput_plan(args: &Args) -> Result<throughput::Plan, BoxError> {
    let window_secs = args.seconds.unwrap_or(if args.quick { 0.3 } else { 3.0 });
    if !(window_secs > 0.0 && window_secs <= 600.0) {
        return Err("--seconds must be between 0 and 600".into());
    }
    let window = Duration::from_secs_f64(window_secs);
    Ok(throughput::Plan {
        window,
        // Long enough for the connections to reach a steady batch size, short next to
        // the window.
        warmup: (window / 4).min(Duration::from_millis(500)),
        task_counts: match (args.tasks.is_empty(), args.quick) {
            (false, _) => args.tasks.iter().map(|&t| usize::from(t)).collect(),
            (true, true) => vec![1, 16],
            (true, false) => vec![1, 16, 128, 512],
        },
        rounds: usize::from(args.rounds),
        quick: args.quick,
    })
}

/// Runs the planned scenarios in order, printing each table as soon as it is measured;
/// returns the server's version and the sections for `--out`.
async fn scenarios(
    url: &str,
    admin: &redis_lanes::Client,
    prefix: &str,
    plan: Plan,
) -> Result<(String, Vec<report::Section>), BoxError> {
    let server_version = tokio::time::timeout(ADMIN_TIMEOUT, server_version(admin))
        .await
        .map_err(|_| "INFO server: no reply")??;
    let mut sections = Vec::new();
    let mut done = |section: report::Section| {
        if !sections.is_empty() {
            println!();
        }
        println!("## {}\n", section.heading);
        print!("{}", section.table);
        sections.push(section);
    };
    if let Some(plan) = plan.throughput {
        done(throughput::run(url, admin, prefix, &plan).await?);
    }
    if let Some(plan) = plan.latency {
        done(latency::run(url, prefix, &plan).await?);
    }
    if let Some(plan) = plan.hol {
        done(hol::run(url, admin, prefix, &plan).await?);
    }
    if let Some(plan) = plan.unblock {
        done(unblock::run(url, admin, prefix, &plan).await?);
    }
    if let Some(plan) = plan.race {
        done(race::run(url, admin, prefix, &plan).await?);
    }
    if let Some(plan) = plan.seed {
        done(seed::run(url, admin, prefix, &plan).await?);
    }
    if let Some(plan) = plan.spans {
        done(spans::run(url, prefix, &plan).await?);
    }
    if let Some(plan) = plan.memory {
        done(memory::run(url, &plan).await?);
    }
    // Last: fred keeps the connections of a dropped client open, and although this
    // scenario closes them with CLIENT KILL, nothing measured should run next to them.
    if let Some(plan) = plan.release {
        done(release::run(url, admin, prefix, &plan).await?);
    }
    // After the others: its proxies and the connections other clients leave frozen
    // must not run next to anything measured.
    if let Some(plan) = plan.silent {
        done(silent::run(url, admin, prefix, &plan).await?);
    }
    if let Some(plan) = plan.cluster {
        done(cluster::run(&plan).await?);
    }
    Ok((server_version, sections))
}

async fn server_version(admin: &redis_lanes::Client) -> Result<String, BoxError> {
    let mut conn = admin.clone();
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .map_or_else(|| "unknown".to_owned(), |v| v.trim().to_owned()))
}
