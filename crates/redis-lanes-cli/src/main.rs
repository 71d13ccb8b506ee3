//! `redis-lanes`: a demo of what redis-lanes does, and side-by-side benchmarks.

mod bench;
mod demo;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "redis-lanes", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Drive a mixed workload through one client while blocking stream and list reads are
    /// cancelled mid-call; show it live, check every reply and that nothing was lost or
    /// re-created, and shut down cleanly.
    Demo(demo::Args),
    /// Measure redis-lanes, redis-rs (MultiplexedConnection, ConnectionManager), a
    /// deadpool-redis pool and fred side by side: same process, same Tokio runtime, same
    /// server. Throughput, head-of-line blocking, cancellation and release on drop.
    Bench(bench::Args),
    /// One measurement of the bench's memory scenario, in a process of its own.
    #[command(hide = true)]
    MemoryProbe(bench::memory_probe::ProbeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    // The bench fixes the worker count so its numbers say what they were measured on.
    if let Command::Bench(args) = &cli.command {
        builder.worker_threads(args.workers());
    }
    let runtime = match builder.enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the Tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Demo(args) => demo::run(args).await,
            Command::Bench(args) => bench::run(args).await,
            Command::MemoryProbe(args) => bench::memory_probe::run(args).await,
        }
    });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
