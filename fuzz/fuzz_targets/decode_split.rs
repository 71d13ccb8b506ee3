//! Arbitrary bytes, split at arbitrary points, through the RESP decoder: no panic, no
//! hang, and the same frames (and the same verdict) as decoding the whole buffer at once.
//!
//! Input layout: one control byte (low 4 bits: how many split points; bit 4: small
//! limits), then two bytes per split point (little-endian, taken modulo the data's
//! length), then the data.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use redis_lanes::fuzzing::{Decoded, Decoder};

/// Small enough that the fuzzer hits every limit quickly.
const SMALL: (usize, usize, usize) = (16, 3, 128);

struct Outcome {
    frames: Vec<Decoded>,
    error: Option<String>,
}

/// Feeds `chunks` one after the other, decoding every complete frame after each, as the
/// lane's driver does after each read; stops at the first error.
fn run<'a>(mut decoder: Decoder, chunks: impl IntoIterator<Item = &'a [u8]>) -> Outcome {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for chunk in chunks {
        buf.extend_from_slice(chunk);
        loop {
            let before = buf.len();
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    assert!(buf.len() < before, "a frame consumed no bytes");
                    frames.push(frame);
                }
                Ok(None) => {
                    // Only the payload of a bulk over the length limit is dropped before
                    // its frame is complete; nothing else may change.
                    assert!(buf.len() <= before, "an incomplete decode added bytes");
                    break;
                }
                Err(error) => {
                    assert!(error.starts_with("RESP protocol error at byte "), "{error}");
                    return Outcome {
                        frames,
                        error: Some(error),
                    };
                }
            }
        }
    }
    Outcome {
        frames,
        error: None,
    }
}

fuzz_target!(|input: &[u8]| {
    let Some((&control, rest)) = input.split_first() else {
        return;
    };
    let splits = usize::from(control & 0x0f);
    let small = control & 0x10 != 0;
    let (cuts, data) = rest.split_at((splits * 2).min(rest.len()));
    let mut points: Vec<usize> = cuts
        .chunks(2)
        .map(|c| {
            let raw = u16::from_le_bytes([c[0], c.get(1).copied().unwrap_or(0)]);
            usize::from(raw) % (data.len() + 1)
        })
        .collect();
    points.sort_unstable();
    points.dedup();

    let decoder = || match small {
        true => Decoder::with_limits(SMALL.0, SMALL.1, SMALL.2),
        false => Decoder::with_default_limits(),
    };
    let whole = run(decoder(), [data]);
    let mut chunks = Vec::with_capacity(points.len() + 1);
    let mut from = 0;
    for &to in points.iter().chain([&data.len()]) {
        chunks.push(&data[from..to]);
        from = to;
    }
    let split = run(decoder(), chunks);

    // `Debug` rather than `==`: a decoded NaN double never equals itself.
    assert_eq!(
        format!("{:?}", whole.frames),
        format!("{:?}", split.frames),
        "split at {points:?}"
    );
    // An error may be caught at another byte (a size limit trips while a chunk is still
    // incomplete), but it is caught either way.
    assert_eq!(
        whole.error.is_some(),
        split.error.is_some(),
        "split at {points:?}: {:?} / {:?}",
        whole.error,
        split.error
    );
});
