//! `redis-lanes bench`: redis-lanes, redis-rs and fred side by side in one process, one
//! runtime, against one server. Two scenarios: SET/GET throughput, and head-of-line
//! blocking (GETs while other callers of the same client wait in BLPOP).

mod hol;
mod report;
mod run;
mod targets;
mod throughput;

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
    /// [default: 3, or 0.5 with --quick].
    #[arg(long)]
    seconds: Option<f64>,
    /// A short run for CI: 0.5 s per throughput cell, 1 and 16 tasks only; 200 GETs
    /// behind 16 BLPOPs in the head-of-line scenario.
    #[arg(long)]
    quick: bool,
    /// Run one scenario only [default: both, throughput first].
    #[arg(long, value_enum)]
    only: Option<Scenario>,
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
    /// Also write the tables, with a header describing the run, to this file (for
    /// example docs/BENCHMARKS.md).
    #[arg(long)]
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
    /// Sequential GETs alone, then behind BLPOPs sent through the same client.
    Hol,
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

/// Runs the chosen scenarios; any client error ends the run with `Err`.
pub(crate) async fn run(args: Args) -> Result<bool, BoxError> {
    let wanted = |scenario| args.only.is_none_or(|only| only == scenario);
    // Check every option before starting a server.
    let throughput_plan = if wanted(Scenario::Throughput) {
        Some(throughput_plan(&args)?)
    } else {
        None
    };
    let hol_plan = wanted(Scenario::Hol).then(|| hol::Plan::new(args.quick));

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

    // A separate client for set-up and clean-up, so the measured ones do only the work.
    let admin = redis_lanes::Client::connect(&url).await?;
    let prefix = format!("redis-lanes-bench:{}", std::process::id());
    let outcome = scenarios(&url, &admin, &prefix, throughput_plan, hol_plan).await;
    admin.close().await;
    let (server_version, sections) = outcome?;

    if let Some(path) = &args.out {
        let context = report::Context {
            server_version,
            server_origin: origin,
            workers: args.workers(),
        };
        std::fs::write(path, report::document(&context, &sections))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(true)
}

/// The throughput cells the options ask for.
fn throughput_plan(args: &Args) -> Result<throughput::Plan, BoxError> {
    let window_secs = args.seconds.unwrap_or(if args.quick { 0.5 } else { 3.0 });
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
    })
}

/// Runs the planned scenarios in order, printing each table as soon as it is measured
/// (the head-of-line scenario takes a while); returns the server's version and the
/// sections for `--out`.
async fn scenarios(
    url: &str,
    admin: &redis_lanes::Client,
    prefix: &str,
    throughput_plan: Option<throughput::Plan>,
    hol_plan: Option<hol::Plan>,
) -> Result<(String, Vec<report::Section>), BoxError> {
    let server_version = tokio::time::timeout(ADMIN_TIMEOUT, server_version(admin))
        .await
        .map_err(|_| "INFO server: no reply")??;
    let mut sections = Vec::new();
    if let Some(plan) = throughput_plan {
        let section = throughput::run(url, admin, prefix, &plan).await?;
        print!("{}", section.table);
        sections.push(section);
    }
    if let Some(plan) = hol_plan {
        let section = hol::run(url, admin, prefix, &plan).await?;
        if !sections.is_empty() {
            println!();
        }
        print!("{}", section.table);
        sections.push(section);
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
