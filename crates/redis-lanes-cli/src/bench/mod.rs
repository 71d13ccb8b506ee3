//! `redis-lanes bench`: SET/GET throughput of redis-lanes, redis-rs and fred, side by
//! side in one process, one runtime, against one server.

mod report;
mod run;
mod targets;

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use redis_lanes_testkit::RedisServer;

use self::targets::Target;

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The value every SET writes and every GET checks: 16 bytes.
pub(crate) const VALUE: &[u8; 16] = b"0123456789abcdef";

/// How long the set-up and clean-up commands may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Options of `redis-lanes bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Server to use. Without it, a throw-away redis-server is started on a free
    /// loopback port (Debian package `redis-server`).
    #[arg(long)]
    url: Option<String>,
    /// Counted seconds per cell (one client, one op, one task count) [default: 3, or
    /// 0.5 with --quick].
    #[arg(long)]
    seconds: Option<f64>,
    /// A short run for CI: 0.5 s per cell and 1 and 16 tasks only.
    #[arg(long)]
    quick: bool,
    /// Concurrent task counts, comma-separated [default: 1,16,128,512, or 1,16 with
    /// --quick].
    #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u16).range(1..=10_000))]
    tasks: Vec<u16>,
    /// Repeat every cell this many times and report the median.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=100))]
    rounds: u16,
    /// Worker threads of the multi-thread Tokio runtime all three clients share.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=256))]
    workers: u16,
    /// Also write the table, with a header describing the run, to this file (for
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

/// The operation a cell measures.
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

/// One line of the table: its samples per client, in `Target::connect_all` order.
pub(crate) struct Row {
    op: Op,
    tasks: usize,
    samples: [Vec<f64>; 3],
}

impl Row {
    fn medians(&self) -> [f64; 3] {
        self.samples.each_ref().map(|s| median(s))
    }
}

fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Runs the benchmark; any client error ends it with `Err`.
pub(crate) async fn run(args: Args) -> Result<bool, BoxError> {
    let window_secs = args.seconds.unwrap_or(if args.quick { 0.5 } else { 3.0 });
    if !(window_secs > 0.0 && window_secs <= 600.0) {
        return Err("--seconds must be between 0 and 600".into());
    }
    let window = Duration::from_secs_f64(window_secs);
    // Long enough for the connections to reach a steady batch size, short next to the
    // window.
    let warmup = (window / 4).min(Duration::from_millis(500));
    let task_counts: Vec<usize> = match (args.tasks.is_empty(), args.quick) {
        (false, _) => args.tasks.iter().map(|&t| usize::from(t)).collect(),
        (true, true) => vec![1, 16],
        (true, false) => vec![1, 16, 128, 512],
    };
    let rounds = usize::from(args.rounds);
    let workers = args.workers();

    let _server; // Kept alive for the whole run; dropping it stops the server.
    let (url, origin) = match args.url {
        Some(url) => (url, "the server given with --url"),
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
    let server_version = tokio::time::timeout(ADMIN_TIMEOUT, server_version(&admin))
        .await
        .map_err(|_| "INFO server: no reply")??;
    let targets = Target::connect_all(&url).await?;
    let prefix = format!("redis-lanes-bench:{}", std::process::id());

    let mut rows = Vec::new();
    for op in [Op::Set, Op::Get] {
        for &tasks in &task_counts {
            rows.push(Row {
                op,
                tasks,
                samples: Default::default(),
            });
        }
    }
    let measured = measure(&targets, &mut rows, rounds, &prefix, warmup, window).await;

    // Clean up even after a failure; the measured error is the one worth reporting.
    let max_tasks = task_counts.iter().copied().max().unwrap_or(0);
    let cleaned = tokio::time::timeout(ADMIN_TIMEOUT, delete_keys(&admin, &prefix, max_tasks))
        .await
        .map_err(|_| BoxError::from("deleting the benchmark keys: no reply"))
        .and_then(|r| r);
    for target in targets {
        target.close().await;
    }
    admin.close().await;
    measured?;
    cleaned?;

    let table = report::table(&rows);
    print!("{table}");
    if let Some(path) = args.out {
        let context = report::Context {
            server_version,
            server_origin: origin,
            workers,
            window_secs,
            warmup_secs: warmup.as_secs_f64(),
            rounds,
        };
        std::fs::write(&path, report::document(&context, &table))
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        eprintln!("wrote {}", path.display());
    }
    Ok(true)
}

/// Fills every row's samples: per round, per cell, the three clients back to back.
async fn measure(
    targets: &[Target],
    rows: &mut [Row],
    rounds: usize,
    prefix: &str,
    warmup: Duration,
    window: Duration,
) -> Result<(), BoxError> {
    for round in 0..rounds {
        for row in rows.iter_mut() {
            eprint!(
                "round {}/{rounds}  {} {:>4} tasks:",
                round + 1,
                row.op,
                row.tasks
            );
            // Rotate who goes first each round, so no client always follows the same one.
            for i in 0..targets.len() {
                let which = (i + round) % targets.len();
                let target = &targets[which];
                let rate = run::cell(target, row.op, row.tasks, prefix, warmup, window).await;
                let rate = match rate {
                    Ok(rate) => rate,
                    Err(e) => {
                        eprintln!();
                        return Err(e);
                    }
                };
                eprint!("  {} {rate:.0}", target.name());
                row.samples[which].push(rate);
            }
            eprintln!(" ops/s");
        }
    }
    Ok(())
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

async fn delete_keys(
    admin: &redis_lanes::Client,
    prefix: &str,
    tasks: usize,
) -> Result<(), BoxError> {
    let mut conn = admin.clone();
    let keys: Vec<String> = (0..tasks).map(|t| format!("{prefix}:{t}")).collect();
    for chunk in keys.chunks(1000) {
        let _: () = redis::cmd("DEL").arg(chunk).query_async(&mut conn).await?;
    }
    Ok(())
}
