//! A server that goes silent without closing anything. Each client runs 8 tasks, each
//! sending one `GET` every 10 ms, through a loopback proxy of its own
//! (`redis_lanes_testkit::Proxy`) that then stops forwarding. Measured: the time from
//! the silence to the first error, the calls still hanging at the end, and the time
//! from the network coming back to the first success of a call started after it.
//! Clients run side by side, each behind its own proxy, so a variant takes one
//! horizon whatever the number of clients.

use std::fmt::Write as _;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis_lanes_testkit::Proxy;
use tokio::time::Instant;

use super::chart::{Bar, Panel};
use super::clients::{self, Spec};
use super::progress;
use super::report::Section;
use super::server;
use super::summary::duration;
use super::BoxError;

const ROWS: [Spec; 5] = [
    clients::LANES,
    clients::REDIS_RS_DEFAULT,
    clients::REDIS_RS,
    clients::MANAGER,
    clients::FRED_BLOCK,
];

const TASKS: usize = 8;
const PACE: Duration = Duration::from_millis(10);
/// A call in flight at the end that began this long before counts as hanging.
const HANGING: Duration = Duration::from_secs(10);

/// How the network fails.
#[derive(Clone, Copy, Debug)]
enum Variant {
    /// Black for a while, then forwarding again (the old connections too).
    BlackThenForward(Duration),
    /// Black for a while, then every old connection is reset and new ones forward.
    BlackThenReset(Duration),
    /// The connections open now freeze for good; new connections get through.
    FrozenForGood,
}

impl Variant {
    fn name(self) -> String {
        match self {
            Variant::BlackThenForward(d) => format!("black {}, then forwarding", duration(d)),
            Variant::BlackThenReset(d) => format!("black {}, then reset", duration(d)),
            Variant::FrozenForGood => "frozen for good, new connections pass".to_owned(),
        }
    }
}

/// The variants and how long each is watched.
pub(crate) struct Plan {
    variants: Vec<Variant>,
    horizon: Duration,
}

impl Plan {
    /// Black 5 s, black 30 s then reset, frozen; 40 s each. With `--quick`: 3 s, 4 s,
    /// frozen; 15 s each.
    pub(crate) fn new(quick: bool) -> Self {
        if quick {
            Plan {
                variants: vec![
                    Variant::BlackThenForward(Duration::from_secs(3)),
                    Variant::BlackThenReset(Duration::from_secs(4)),
                    Variant::FrozenForGood,
                ],
                horizon: Duration::from_secs(15),
            }
        } else {
            Plan {
                variants: vec![
                    Variant::BlackThenForward(Duration::from_secs(5)),
                    Variant::BlackThenReset(Duration::from_secs(30)),
                    Variant::FrozenForGood,
                ],
                horizon: Duration::from_secs(40),
            }
        }
    }
}

/// What one client did in one variant.
#[derive(Debug, Default)]
struct Outcome {
    first_error: Option<Duration>,
    hanging: usize,
    /// From the network coming back (the freeze, for `FrozenForGood`) to the first
    /// success of a call started after it.
    recovered: Option<Duration>,
    /// How long `close()` took afterwards (redis-lanes only).
    close: Option<Duration>,
}

/// One call's record, shared between a task and the watcher.
#[derive(Default)]
struct Calls {
    /// When the call in flight began.
    in_flight: Vec<Option<Instant>>,
    first_error: Option<Instant>,
    /// The first success of a call started at or after `since`.
    first_ok_after: Option<Instant>,
    since: Option<Instant>,
}

pub(crate) async fn run(
    url: &str,
    admin: &redis_lanes::Client,
    prefix: &str,
    plan: &Plan,
) -> Result<Section, BoxError> {
    let upstream = upstream(url)?;
    let key = format!("{prefix}:silent");
    server::query::<()>(
        admin,
        redis::cmd("SET").arg(&key).arg(super::VALUE.as_slice()),
    )
    .await?;
    let bar = progress::bar("silent", plan.variants.len());
    let mut results = Vec::new();
    for &variant in &plan.variants {
        bar.set_message(variant.name());
        // Side by side, each client on a task of its own.
        let runs: Vec<_> = ROWS
            .iter()
            .map(|&spec| {
                let (url, key, horizon) = (url.to_owned(), key.clone(), plan.horizon);
                tokio::spawn(async move {
                    one(&url, upstream, spec, &key, variant, horizon)
                        .await
                        .map_err(|e| e.to_string())
                })
            })
            .collect();
        let mut row = Vec::new();
        for (spec, run) in ROWS.iter().zip(runs) {
            let outcome = run
                .await
                .map_err(|e| format!("{}: {e}", spec.label))?
                .map_err(|e| format!("{}: {e}", spec.label))?;
            progress::note(
                &bar,
                &format!(
                    "silent  {} / {}: {}",
                    variant.name(),
                    spec.label,
                    cells(&outcome)
                ),
            );
            row.push((*spec, outcome));
        }
        results.push((variant, row));
        bar.inc(1);
    }
    bar.finish_and_clear();
    server::query::<()>(admin, redis::cmd("DEL").arg(&key)).await?;

    let mut failures = Vec::new();
    for (variant, row) in &results {
        for (spec, outcome) in row.iter().filter(|(s, _)| s.is_lanes()) {
            let name = format!("silent ({}): {}", variant.name(), spec.label);
            if outcome.hanging > 0 {
                failures.push(format!("{name}: {} calls hanging", outcome.hanging));
            }
            if outcome
                .first_error
                .is_some_and(|t| t > Duration::from_secs(10))
            {
                failures.push(format!("{name}: first error after more than 10 s"));
            }
            if outcome
                .recovered
                .is_none_or(|t| t > Duration::from_secs(10))
            {
                failures.push(format!("{name}: not recovered within 10 s"));
            }
            if outcome.close.is_none_or(|t| t > Duration::from_secs(11)) {
                failures.push(format!("{name}: close() took longer than its bound"));
            }
        }
    }
    Ok(Section {
        heading: "A server that goes silent",
        about: format!(
            "Each client runs {TASKS} tasks sending one `GET` every {pace} through a \
             loopback proxy of its own, which then stops forwarding in both directions \
             without closing anything. Clients run side by side, every one with its \
             defaults (redis-rs also with its response timeout off). *first error*: from \
             the silence to the first failed call; *hanging*: calls in flight at the end \
             ({horizon} after the silence) that began more than {hanging} earlier; \
             *recovered*: from the network coming back (for a freeze, from the freeze) \
             to the first success of a call started after it. `none` means it never \
             happened within the horizon.",
            pace = duration(PACE),
            horizon = duration(plan.horizon),
            hanging = duration(HANGING),
        ),
        table: table(&results),
        panels: vec![panel(&results, plan.horizon)],
        failures,
    })
}

/// The server's address from `url`, for the proxies to forward to.
pub(crate) fn upstream(url: &str) -> Result<SocketAddr, BoxError> {
    let parsed = redis::parse_redis_url(url).ok_or("the silent scenario needs a redis:// URL")?;
    let host = parsed.host_str().ok_or("the URL has no host")?;
    let port = parsed.port().unwrap_or(6379);
    (host, port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| format!("{host}:{port} does not resolve").into())
}

/// `url` with its host and port replaced by the proxy's.
pub(crate) fn through(url: &str, proxy: &Proxy) -> Result<String, BoxError> {
    let mut parsed = redis::parse_redis_url(url).ok_or("not a redis:// URL")?;
    let addr = proxy.addr();
    parsed
        .set_host(Some(&addr.ip().to_string()))
        .map_err(|e| format!("cannot point the URL at the proxy: {e}"))?;
    parsed
        .set_port(Some(addr.port()))
        .map_err(|()| "cannot point the URL at the proxy")?;
    Ok(parsed.to_string())
}

async fn one(
    url: &str,
    upstream: SocketAddr,
    spec: Spec,
    key: &str,
    variant: Variant,
    horizon: Duration,
) -> Result<Outcome, BoxError> {
    let proxy = Proxy::start(upstream)?;
    let target = spec.connect(&through(url, &proxy)?).await?;
    let calls = Arc::new(Mutex::new(Calls {
        in_flight: vec![None; TASKS],
        ..Calls::default()
    }));
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let mut target = target.clone();
        let calls = Arc::clone(&calls);
        let key = key.to_owned();
        tasks.push(tokio::spawn(async move {
            loop {
                let started = Instant::now();
                lock(&calls).in_flight[task] = Some(started);
                // Only whether it worked: the error type is not `Send`, and must not
                // live across the pause below.
                let result = target.get_len(&key).await.is_ok();
                let now = Instant::now();
                {
                    let mut calls = lock(&calls);
                    calls.in_flight[task] = None;
                    if result {
                        if calls.since.is_some_and(|since| started >= since) {
                            calls.first_ok_after.get_or_insert(now);
                        }
                    } else {
                        calls.first_error.get_or_insert(now);
                    }
                }
                tokio::time::sleep(PACE).await;
            }
        }));
    }
    // Steady load first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    lock(&calls).first_error = None;
    let silent_at = Instant::now();
    let back_at = match variant {
        Variant::BlackThenForward(black) => {
            proxy.blackhole();
            tokio::time::sleep(black).await;
            proxy.forward();
            Instant::now()
        }
        Variant::BlackThenReset(black) => {
            proxy.blackhole();
            tokio::time::sleep(black).await;
            proxy.reset();
            proxy.forward();
            Instant::now()
        }
        Variant::FrozenForGood => {
            proxy.freeze_existing();
            silent_at
        }
    };
    {
        let mut calls = lock(&calls);
        calls.since = Some(back_at);
        // Errors before the silence (none expected) are not the silence's.
        if calls.first_error.is_some_and(|t| t < silent_at) {
            calls.first_error = None;
        }
    }
    tokio::time::sleep_until(silent_at + horizon).await;
    let end = Instant::now();
    let mut outcome = {
        let calls = lock(&calls);
        Outcome {
            first_error: calls
                .first_error
                .map(|t| t.saturating_duration_since(silent_at)),
            hanging: calls
                .in_flight
                .iter()
                .flatten()
                .filter(|&&began| end.saturating_duration_since(began) > HANGING)
                .count(),
            recovered: calls
                .first_ok_after
                .map(|t| t.saturating_duration_since(back_at)),
            close: None,
        }
    };
    for task in &tasks {
        task.abort();
    }
    if let super::targets::Target::Lanes(client) = &target {
        let closing = Instant::now();
        let closed = tokio::time::timeout(Duration::from_secs(30), client.close()).await;
        outcome.close = closed.is_ok().then(|| closing.elapsed());
    }
    // Other clients are dropped, not closed: a close behind a frozen connection may
    // never return, which is not what this scenario measures.
    drop(target);
    drop(proxy);
    Ok(outcome)
}

fn lock(calls: &Mutex<Calls>) -> std::sync::MutexGuard<'_, Calls> {
    calls
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn show(value: Option<Duration>) -> String {
    value.map_or_else(|| "none".to_owned(), duration)
}

fn cells(outcome: &Outcome) -> String {
    format!(
        "first error {}, {} hanging, recovered {}",
        show(outcome.first_error),
        outcome.hanging,
        show(outcome.recovered)
    )
}

fn table(results: &[(Variant, Vec<(Spec, Outcome)>)]) -> String {
    let mut out = String::from(
        "| network | client | first error | hanging | recovered | `close()` |\n\
         |---|---|---:|---:|---:|---:|\n",
    );
    for (variant, row) in results {
        for (spec, outcome) in row {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                variant.name(),
                spec.label,
                show(outcome.first_error),
                outcome.hanging,
                show(outcome.recovered),
                outcome.close.map_or_else(|| "—".to_owned(), duration),
            );
        }
    }
    out
}

/// Time to recover after a freeze, per client (less is better; never = the horizon).
fn panel(results: &[(Variant, Vec<(Spec, Outcome)>)], horizon: Duration) -> Panel {
    let frozen = results
        .iter()
        .find(|(v, _)| matches!(v, Variant::FrozenForGood))
        .or_else(|| results.first());
    let bars = frozen
        .map(|(_, row)| {
            row.iter()
                .map(|(spec, outcome)| {
                    let (value, text) = match outcome.recovered {
                        Some(t) => (t.as_secs_f64(), duration(t)),
                        None => (
                            horizon.as_secs_f64(),
                            format!("never ({} watched)", duration(horizon)),
                        ),
                    };
                    Bar {
                        label: spec.short.to_owned(),
                        value,
                        text,
                        ours: spec.is_lanes(),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    Panel {
        title: "Back on a working connection after a connection froze for good (less is better)"
            .to_owned(),
        bars,
    }
}
