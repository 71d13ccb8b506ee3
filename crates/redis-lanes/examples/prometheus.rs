//! Metrics in the Prometheus text format: the `metrics` feature records through the
//! `metrics` facade, and `metrics-exporter-prometheus` renders what it recorded. A
//! service would serve `handle.render()` on its `/metrics` endpoint (or let the
//! exporter's own HTTP listener do it).
//!
//! Connects to `REDIS_URL` if set, otherwise starts a throw-away `redis-server`.
//!
//! ```sh
//! cargo run -p redis-lanes --features metrics --example prometheus
//! ```

use std::time::Duration;

use metrics_exporter_prometheus::PrometheusBuilder;
use redis::AsyncCommands;
use redis_lanes_testkit::Target;

type Result<T, E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

#[tokio::main]
async fn main() -> Result<()> {
    // The recorder first: the client registers its metrics when it connects.
    let handle = PrometheusBuilder::new().install_recorder()?;

    let target = Target::from_env_or_start("REDIS_URL")?;
    let client = redis_lanes::Client::builder(target.url())
        .metrics_interval(Duration::from_millis(100))
        .connect()
        .await?;
    let mut conn = client.clone();
    for i in 0..100 {
        let _: () = conn.set(format!("example:prometheus:{i}"), i).await?;
    }
    // A blocking call that times out on the server, and one given up on by its caller.
    let _: Option<(String, String)> = conn.blpop("example:prometheus:queue", 0.05).await?;
    let _ = tokio::time::timeout(
        Duration::from_millis(50),
        conn.blpop::<_, Option<(String, String)>>("example:prometheus:queue", 5.0),
    )
    .await;
    // Counters and gauges are published every `metrics_interval`.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let text = handle.render();
    for line in text.lines().filter(|line| line.contains("redis_lanes_")) {
        println!("{line}");
    }
    for expected in [
        "redis_lanes_request_duration_seconds",
        "redis_lanes_blocking_cancels_total",
        "redis_lanes_connected",
    ] {
        if !text.contains(expected) {
            return Err(format!("{expected} missing from the rendered metrics").into());
        }
    }
    client.close().await;
    Ok(())
}
