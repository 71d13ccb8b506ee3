//! Memory per request: how far each client's resident set grows for requests queued on
//! a stalled server, and for one large value written and read.
//!
//! Every measurement runs in a process of its own (`memory_probe.rs`): within one
//! process, memory freed by one client stays with the allocator and would hide the next
//! client's growth. The server is stalled by a loopback proxy that stops forwarding
//! (`redis_lanes_testkit::Proxy`), so queued requests stay in the client.

use std::fmt::Write as _;
use std::process::Stdio;
use std::time::Duration;

use redis_lanes_testkit::Proxy;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::memory_probe::{Case, Which};
use super::progress;
use super::report::Section;
use super::silent;
use super::BoxError;

const CLIENTS: [(Which, &str); 4] = [
    (Which::Lanes, "redis-lanes"),
    (Which::RedisRs, "redis-rs"),
    (Which::Manager, "ConnectionManager"),
    (Which::Fred, "fred"),
];

/// The longest one probe may take.
const PROBE_LIMIT: Duration = Duration::from_secs(120);

pub(crate) struct Plan {
    /// Requests queued, and the value each one sets.
    count: usize,
    value: usize,
    /// The large value written and read.
    large: usize,
}

impl Plan {
    /// 10,000 queued `SET`s of 10 KB and a 256 MiB value; 1,000 and 16 MiB with `--quick`.
    pub(crate) fn new(quick: bool) -> Self {
        if quick {
            Plan {
                count: 1_000,
                value: 10_000,
                large: 16 << 20,
            }
        } else {
            Plan {
                count: 10_000,
                value: 10_000,
                large: 256 << 20,
            }
        }
    }
}

pub(crate) async fn run(url: &str, plan: &Plan) -> Result<Section, BoxError> {
    let bar = progress::bar("memory", CLIENTS.len() * 3);
    let mut rows = Vec::new();
    for (which, name) in CLIENTS {
        bar.set_message(name);
        let queued = probe(url, which, Case::Queued, plan.value, plan.count).await?;
        bar.inc(1);
        let set = probe(url, which, Case::Set, plan.large, 1).await?;
        bar.inc(1);
        let get = probe(url, which, Case::Get, plan.large, 1).await?;
        bar.inc(1);
        rows.push((name, queued, set, get));
    }
    bar.finish_and_clear();

    let mut table = format!(
        "| client | per queued {} B SET | × value | SET {} MiB: peak over the value | × value | GET {} MiB: peak | × value |\n|---|---:|---:|---:|---:|---:|---:|\n",
        plan.value,
        plan.large >> 20,
        plan.large >> 20,
    );
    let mut failures = Vec::new();
    #[allow(clippy::cast_precision_loss)]
    for (name, queued, set, get) in &rows {
        let per_request = *queued as f64 / plan.count as f64;
        let of = |bytes: f64, payload: usize| bytes / payload as f64;
        writeln!(
            table,
            "| {name} | {:.1} KB | {:.2} | {:.0} MiB | {:.2} | {:.0} MiB | {:.2} |",
            per_request / 1e3,
            of(per_request, plan.value),
            *set as f64 / f64::from(1 << 20),
            of(*set as f64, plan.large),
            *get as f64 / f64::from(1 << 20),
            of(*get as f64, plan.large),
        )?;
        // What redis-lanes keeps per large value: the `Cmd` the `redis` API builds and
        // the packed request for a SET, the value itself for a GET. More is a copy
        // that should not be there.
        if *name == "redis-lanes" {
            if of(*set as f64, plan.large) > 2.3 {
                failures.push(format!(
                    "redis-lanes: SET peaked at {set} bytes over the value"
                ));
            }
            if of(*get as f64, plan.large) > 1.3 {
                failures.push(format!("redis-lanes: GET peaked at {get} bytes"));
            }
        }
    }
    Ok(Section {
        heading: "Memory per request",
        about: format!(
            "Growth of the resident set (peak RSS over a baseline taken just before, the \
             kernel's mark reset through `/proc/self/clear_refs`), each measurement in a \
             fresh process. Queued: {count} tasks each `SET` a {value}-byte value through \
             one client while a proxy holds the server's socket still, once the resident \
             set stops growing; divided by the number of requests. SET: one value of \
             {large} bytes that the caller already holds. GET: one value of that size, \
             which the reply hands over (so 1.00 is the least possible). The clients built \
             on the `redis` crate take the value through its API, which copies it into a \
             `Cmd`; fred takes `Bytes`.",
            count = plan.count,
            value = plan.value,
            large = plan.large,
        ),
        table,
        panels: Vec::new(),
        failures,
    })
}

/// Runs one probe process and returns its `peak` figure.
async fn probe(
    url: &str,
    which: Which,
    case: Case,
    size: usize,
    count: usize,
) -> Result<u64, BoxError> {
    let proxy = match case {
        Case::Queued => Some(Proxy::start(silent::upstream(url)?)?),
        Case::Set | Case::Get => None,
    };
    let target = match &proxy {
        Some(proxy) => silent::through(url, proxy)?,
        None => url.to_owned(),
    };
    let client = which_arg(which);
    let case_arg = match case {
        Case::Queued => "queued",
        Case::Set => "set",
        Case::Get => "get",
    };
    let mut child = tokio::process::Command::new(std::env::current_exe()?)
        .args([
            "memory-probe",
            "--url",
            &target,
            "--client",
            client,
            "--case",
            case_arg,
        ])
        .args(["--size", &size.to_string(), "--count", &count.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()?;
    let mut stdin = child.stdin.take().ok_or("no stdin for the probe")?;
    let stdout = child.stdout.take().ok_or("no stdout for the probe")?;
    let mut lines = BufReader::new(stdout).lines();
    let read = async {
        let mut peak = None;
        while let Some(line) = lines.next_line().await? {
            if line == "ready" {
                if let Some(proxy) = &proxy {
                    proxy.blackhole();
                }
                stdin.write_all(b"go\n").await?;
                stdin.flush().await?;
            } else if let Some(bytes) = line.strip_prefix("peak ") {
                peak = Some(bytes.trim().parse::<u64>()?);
                break;
            }
        }
        peak.ok_or_else(|| BoxError::from(format!("the {client} {case_arg} probe said nothing")))
    };
    let peak = tokio::time::timeout(PROBE_LIMIT, read)
        .await
        .map_err(|_| format!("the {client} {case_arg} probe took over {PROBE_LIMIT:?}"))??;
    // A queued probe leaves requests on a stalled server: it is ended, not awaited.
    let _ = child.kill().await;
    drop(proxy);
    Ok(peak)
}

fn which_arg(which: Which) -> &'static str {
    match which {
        Which::Lanes => "lanes",
        Which::RedisRs => "redis-rs",
        Which::Manager => "manager",
        Which::Fred => "fred",
    }
}
