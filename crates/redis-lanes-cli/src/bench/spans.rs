//! What the per-request tracing spans cost: redis-lanes' GET throughput with no tracing
//! subscriber, with a subscriber that leaves the spans off (a service logging at `INFO`),
//! and with the spans on (`redis_lanes::command=debug`).
//!
//! A subscriber is set per thread here, so each measurement runs on a thread of its own
//! with a current-thread runtime: every task of the client (the caller's and the
//! driver's) runs under that thread's subscriber. The three settings take turns, round
//! after round, and the table shows medians.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::SubscriberExt;

use super::progress;
use super::report::Section;
use super::summary::{median, ratio};
use super::BoxError;

/// Concurrent tasks: enough for the lane to batch, as in the throughput scenario.
const TASKS: usize = 16;

#[derive(Clone, Copy)]
enum Setting {
    NoSubscriber,
    SpansOff,
    SpansOn,
}

impl Setting {
    const ALL: [Setting; 3] = [Setting::NoSubscriber, Setting::SpansOff, Setting::SpansOn];

    fn label(self) -> &'static str {
        match self {
            Setting::NoSubscriber => "no subscriber",
            Setting::SpansOff => "subscriber at INFO (spans off)",
            Setting::SpansOn => "redis_lanes::command=debug (spans on)",
        }
    }
}

pub(crate) struct Plan {
    rounds: usize,
    window: Duration,
}

impl Plan {
    /// 5 rounds of 1 s; 1 round of 0.2 s with `--quick`.
    pub(crate) fn new(quick: bool) -> Self {
        if quick {
            Plan {
                rounds: 1,
                window: Duration::from_millis(200),
            }
        } else {
            Plan {
                rounds: 5,
                window: Duration::from_secs(1),
            }
        }
    }
}

pub(crate) async fn run(url: &str, prefix: &str, plan: &Plan) -> Result<Section, BoxError> {
    let bar = progress::bar("spans", Setting::ALL.len() * plan.rounds);
    let key = format!("{prefix}:spans");
    let mut samples = vec![Vec::new(); Setting::ALL.len()];
    for _ in 0..plan.rounds {
        for (index, setting) in Setting::ALL.into_iter().enumerate() {
            bar.set_message(setting.label());
            let (url, key, window) = (url.to_owned(), key.clone(), plan.window);
            let ops =
                tokio::task::spawn_blocking(move || measure(setting, &url, &key, window)).await??;
            samples[index].push(ops);
            bar.inc(1);
        }
    }
    bar.finish_and_clear();
    let medians: Vec<f64> = samples.iter().map(|s| median(s)).collect();
    let mut table = String::from("| | GET ops/s | over no subscriber |\n|---|---|---|\n");
    for (setting, ops) in Setting::ALL.into_iter().zip(&medians) {
        writeln!(
            table,
            "| {} | {:.0}k | {} |",
            setting.label(),
            ops / 1e3,
            ratio(*ops, medians[0])
        )?;
    }
    Ok(Section {
        heading: "Cost of tracing spans",
        about: format!(
            "redis-lanes GET throughput, {TASKS} tasks on a current-thread runtime (the \
             tracing subscriber is set per thread), under three settings that take turns: \
             no subscriber; a `tracing-subscriber` registry with a formatting layer at \
             `INFO` (the command spans are at `DEBUG`, so they stay off); and the same with \
             `redis_lanes::command=debug`, which opens a span per command. Medians of \
             {rounds} round(s) of {window:?}.",
            rounds = plan.rounds,
            window = plan.window,
        ),
        table,
        panels: Vec::new(),
        failures: Vec::new(),
    })
}

/// One measurement on the calling thread: GET ops/s under `setting`.
fn measure(setting: Setting, url: &str, key: &str, window: Duration) -> Result<f64, BoxError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let work = || runtime.block_on(gets(url, key, window));
    let level = match setting {
        Setting::NoSubscriber => return work(),
        Setting::SpansOff => LevelFilter::INFO,
        Setting::SpansOn => LevelFilter::DEBUG,
    };
    let filter = Targets::new()
        .with_default(LevelFilter::INFO)
        .with_target("redis_lanes::command", level);
    let format = tracing_subscriber::fmt::layer().with_writer(std::io::sink);
    let subscriber = tracing_subscriber::registry().with(format).with(filter);
    tracing::subscriber::with_default(subscriber, work)
}

async fn gets(url: &str, key: &str, window: Duration) -> Result<f64, BoxError> {
    let client = redis_lanes::Client::connect(url).await?;
    let mut conn = client.clone();
    let _: () = conn.set(key, "value").await?;
    let deadline = Instant::now() + window;
    let mut tasks = Vec::with_capacity(TASKS);
    for _ in 0..TASKS {
        let mut conn = client.clone();
        let key = key.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut done = 0u64;
            while Instant::now() < deadline {
                let _: Option<String> = conn.get(&key).await?;
                done += 1;
            }
            Ok::<_, redis::RedisError>(done)
        }));
    }
    let started = Instant::now();
    let mut total = 0;
    for task in tasks {
        total += task.await??;
    }
    let elapsed = started.elapsed().as_secs_f64().max(1e-9);
    client.close().await;
    #[allow(clippy::cast_precision_loss)]
    Ok(total as f64 / elapsed)
}
