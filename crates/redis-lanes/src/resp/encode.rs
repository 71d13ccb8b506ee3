//! [`redis::Value`] → RESP bytes, for tests and fake servers.
//!
//! Each value is written in the form the decoder maps back to the same value: RESP2 forms where
//! they suffice (`$-1` for nil, `*` arrays), RESP3 where the type exists only there (maps, sets,
//! doubles, booleans, attributes, pushes, verbatim strings, big numbers).

use std::fmt;
use std::io::Write as _;

use redis::Value;

/// Appends the RESP encoding of `value` to `out`.
///
/// A simple string or error containing CR or LF cannot be sent as a line: errors then use the
/// blob-error form, simple strings are sent as they are (the caller asked for a malformed reply).
#[cfg_attr(not(test), allow(dead_code))] // used by tests and fake servers only
pub(crate) fn encode(value: &Value, out: &mut Vec<u8>) {
    match value {
        Value::Nil => out.extend_from_slice(b"$-1\r\n"),
        Value::Okay => out.extend_from_slice(b"+OK\r\n"),
        Value::Int(n) => line(out, b':', format_args!("{n}")),
        Value::SimpleString(s) => line(out, b'+', format_args!("{s}")),
        Value::BulkString(bytes) => bulk(out, b'$', bytes),
        Value::Array(items) => aggregate(out, b'*', items),
        Value::Set(items) => aggregate(out, b'~', items),
        Value::Map(pairs) => {
            line(out, b'%', format_args!("{}", pairs.len()));
            encode_pairs(pairs, out);
        }
        Value::Attribute { data, attributes } => {
            line(out, b'|', format_args!("{}", attributes.len()));
            encode_pairs(attributes, out);
            encode(data, out);
        }
        Value::Double(d) => {
            // Rust's `Debug` is the shortest text that parses back to the same bits and uses an
            // exponent only when it is shorter; only the non-finite values need RESP3 spelling.
            if d.is_nan() {
                line(out, b',', format_args!("nan"));
            } else if d.is_infinite() {
                let sign = if d.is_sign_negative() { "-" } else { "" };
                line(out, b',', format_args!("{sign}inf"));
            } else {
                line(out, b',', format_args!("{d:?}"));
            }
        }
        Value::Boolean(b) => line(out, b'#', format_args!("{}", if *b { "t" } else { "f" })),
        Value::VerbatimString { format, text } => {
            let payload = format!("{format}:{text}");
            bulk(out, b'=', payload.as_bytes());
        }
        Value::BigNumber(n) => line(out, b'(', format_args!("{n}")),
        Value::Push { kind, data } => {
            // Servers send the kind as the first element, as a bulk string.
            line(out, b'>', format_args!("{}", data.len() + 1));
            bulk(out, b'$', kind.to_string().as_bytes());
            for item in data {
                encode(item, out);
            }
        }
        Value::ServerError(err) => {
            let text = match err.details() {
                Some(details) => format!("{} {details}", err.code()),
                None => err.code().to_owned(),
            };
            if text.contains(['\r', '\n']) {
                bulk(out, b'!', text.as_bytes());
            } else {
                line(out, b'-', format_args!("{text}"));
            }
        }
        // `Value` is non-exhaustive; a variant added later has no known wire form yet.
        _ => out.extend_from_slice(b"_\r\n"),
    }
}

fn encode_pairs(pairs: &[(Value, Value)], out: &mut Vec<u8>) {
    for (key, value) in pairs {
        encode(key, out);
        encode(value, out);
    }
}

fn aggregate(out: &mut Vec<u8>, kind: u8, items: &[Value]) {
    line(out, kind, format_args!("{}", items.len()));
    for item in items {
        encode(item, out);
    }
}

fn bulk(out: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    line(out, kind, format_args!("{}", payload.len()));
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
}

/// Writes `kind`, the formatted content and CRLF.
fn line(out: &mut Vec<u8>, kind: u8, content: fmt::Arguments<'_>) {
    out.push(kind);
    // Writing into a `Vec` cannot fail.
    let _ = out.write_fmt(content);
    out.extend_from_slice(b"\r\n");
}
