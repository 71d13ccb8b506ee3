//! The RESP decoder on typical replies, against the `redis` crate's own parser:
//! frames per second for replies of many small frames, bytes per second for a large one.
//!
//! ```sh
//! cargo bench -p redis-lanes --features fuzzing --bench decode
//! ```
//!
//! The decoder is crate-private; the `fuzzing` feature exposes the same decoder the
//! lanes run, for the fuzz targets and for this bench.
// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use redis_lanes::fuzzing::{Decoded, Decoder};

/// `count` copies of `frame`, as a read buffer holds them.
fn repeated(frame: &[u8], count: usize) -> Vec<u8> {
    frame.repeat(count)
}

/// The inputs: (name, bytes, frames in them).
fn inputs() -> Vec<(&'static str, Vec<u8>, usize)> {
    let value = [b'v'; 16];
    let get = [b"$16\r\n".as_slice(), &value, b"\r\n"].concat();
    let mut mget = b"*10\r\n".to_vec();
    for _ in 0..10 {
        mget.extend_from_slice(b"$100\r\n");
        mget.extend_from_slice(&[b'x'; 100]);
        mget.extend_from_slice(b"\r\n");
    }
    let resp3_map = b"%2\r\n+field\r\n:42\r\n+other\r\n,3.5\r\n".to_vec();
    vec![
        ("SET +OK", repeated(b"+OK\r\n", 1000), 1000),
        ("GET 16-byte bulk", repeated(&get, 1000), 1000),
        ("INCR integer", repeated(b":123456\r\n", 1000), 1000),
        ("MGET 10 x 100-byte bulks", repeated(&mget, 100), 100),
        ("RESP3 map", repeated(&resp3_map, 1000), 1000),
    ]
}

fn ours(input: &[u8], frames: usize) {
    let mut decoder = Decoder::with_default_limits();
    let mut buf = BytesMut::from(input);
    for _ in 0..frames {
        match decoder.decode(&mut buf) {
            Ok(Some(Decoded::Reply(value))) => {
                std::hint::black_box(value);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn redis_crate(input: &[u8], frames: usize) {
    let mut parser = redis::Parser::new();
    let mut reader = input;
    for _ in 0..frames {
        let value = parser.parse_value(&mut reader).expect("a valid reply");
        std::hint::black_box(value);
    }
}

fn frames(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode frames");
    for (name, input, count) in inputs() {
        group.throughput(Throughput::Elements(count as u64));
        group.bench_with_input(BenchmarkId::new("redis-lanes", name), &input, |b, input| {
            b.iter(|| ours(input, count))
        });
        group.bench_with_input(BenchmarkId::new("redis crate", name), &input, |b, input| {
            b.iter(|| redis_crate(input, count))
        });
    }
    group.finish();
}

fn large_bulk(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode bytes");
    let len = 1 << 20;
    let input = [format!("${len}\r\n").as_bytes(), &vec![b'b'; len], b"\r\n"].concat();
    group.throughput(Throughput::Bytes(input.len() as u64));
    group.bench_function(BenchmarkId::new("redis-lanes", "1 MiB bulk"), |b| {
        b.iter(|| ours(&input, 1))
    });
    group.bench_function(BenchmarkId::new("redis crate", "1 MiB bulk"), |b| {
        b.iter(|| redis_crate(&input, 1))
    });
    group.finish();
}

criterion_group!(benches, frames, large_bulk);
criterion_main!(benches);
