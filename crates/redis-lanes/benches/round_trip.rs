//! A request's round trip through a client, against an in-process fake server that
//! answers at once (no `redis-server`, no other process: what is measured is the
//! client's own path), redis-lanes against redis-rs's `MultiplexedConnection`, from 1,
//! 16 and 128 tasks.
//!
//! ```sh
//! cargo bench -p redis-lanes --bench round_trip
//! ```
// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

mod support;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use tokio::runtime::Runtime;

fn round_trip(c: &mut Criterion) {
    let runtime = Runtime::new().expect("runtime");
    let (lanes, redis_rs) = runtime.block_on(async {
        let url = support::fake_server().await;
        support::clients(&url).await
    });
    let mut group = c.benchmark_group("GET round trip");
    group.throughput(Throughput::Elements(1));
    for tasks in [1u64, 16, 128] {
        group.bench_function(BenchmarkId::new("redis-lanes", tasks), |b| {
            b.to_async(&runtime)
                .iter_custom(|ops| support::gets(&lanes, tasks, ops))
        });
        group.bench_function(BenchmarkId::new("redis-rs", tasks), |b| {
            b.to_async(&runtime)
                .iter_custom(|ops| support::gets(&redis_rs, tasks, ops))
        });
    }
    group.finish();
}

criterion_group!(benches, round_trip);
criterion_main!(benches);
