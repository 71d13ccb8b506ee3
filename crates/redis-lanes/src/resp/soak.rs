//! A long randomized run of the decoder, ignored by default (see `docs/FUZZING.md`):
//!
//! ```sh
//! PROPTEST_CASES=200000 cargo test --release -p redis-lanes --lib resp::soak -- --ignored
//! ```
//!
//! Streams of valid frames of every type, some mutated, split at random points, must
//! decode without a panic and exactly as the whole buffer decodes at once; unmutated
//! streams must decode to exactly the values that were encoded.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, TestRunner};
use redis::Value;

use super::encode::encode;
use super::tests::{assert_within, decode_chunks, decode_whole, value_strategy, SMALL};
use super::{Frame, Limits};

/// Cases when `PROPTEST_CASES` is not set: a few minutes in a debug build.
const DEFAULT_CASES: u32 = 50_000;

/// One byte-level edit of an encoded stream.
#[derive(Debug, Clone)]
enum Edit {
    Replace(Index, u8),
    Insert(Index, u8),
    Remove(Index),
    Truncate(Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<Index>(), any::<u8>()).prop_map(|(at, b)| Edit::Replace(at, b)),
        (any::<Index>(), any::<u8>()).prop_map(|(at, b)| Edit::Insert(at, b)),
        any::<Index>().prop_map(Edit::Remove),
        any::<Index>().prop_map(Edit::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
    match *edit {
        Edit::Replace(at, b) if !bytes.is_empty() => {
            let i = at.index(bytes.len());
            bytes[i] = b;
        }
        Edit::Insert(at, b) => bytes.insert(at.index(bytes.len() + 1), b),
        Edit::Remove(at) if !bytes.is_empty() => {
            bytes.remove(at.index(bytes.len()));
        }
        Edit::Truncate(at) => bytes.truncate(at.index(bytes.len() + 1)),
        _ => {}
    }
}

/// Cuts `bytes` at the given points (in any order, repeats allowed).
fn split<'a>(bytes: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
    points.sort_unstable();
    let mut chunks = Vec::with_capacity(points.len() + 1);
    let mut from = 0;
    for to in points.into_iter().chain([bytes.len()]) {
        chunks.push(&bytes[from..to]);
        from = to;
    }
    chunks
}

#[test]
#[ignore = "long: run on demand, see docs/FUZZING.md"]
fn split_mutated_streams_agree_with_whole_buffer_decoding() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let mut runner = TestRunner::new(Config {
        cases,
        // Shrinking a failure of this size can take longer than finding it.
        max_shrink_iters: 2048,
        ..Config::default()
    });
    let input = (
        vec(value_strategy(), 1..6),
        vec(edit(), 0..4),
        vec(any::<Index>(), 0..12),
        any::<bool>(),
    );
    let result = runner.run(&input, |(values, edits, cuts, small)| {
        let mut bytes = Vec::new();
        for value in &values {
            encode(value, &mut bytes);
        }
        let limits = if small { SMALL } else { Limits::default() };
        if edits.is_empty() && !small {
            let expected: Vec<Frame> = values
                .iter()
                .map(|v| match v {
                    Value::Push { .. } => Frame::Push(v.clone()),
                    _ => Frame::Reply(v.clone()),
                })
                .collect();
            let (frames, err) = decode_chunks(split(&bytes, &cuts), limits);
            prop_assert_eq!(err, None);
            prop_assert_eq!(frames, expected);
        }
        for edit in &edits {
            apply(&mut bytes, edit);
        }
        let whole = decode_whole(&bytes, limits);
        let chunked = decode_chunks(split(&bytes, &cuts), limits);
        prop_assert_eq!(format!("{:?}", whole.0), format!("{:?}", chunked.0));
        prop_assert_eq!(
            whole.1.is_some(),
            chunked.1.is_some(),
            "{:?} / {:?}",
            whole.1,
            chunked.1
        );
        for frame in &whole.0 {
            if let Frame::Reply(value) | Frame::Push(value) = frame {
                assert_within(value, limits);
            }
        }
        Ok(())
    });
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
