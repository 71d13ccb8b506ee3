//! Reading the server's replies about the cluster (`CLUSTER SHARDS`, `COMMAND`): maps that
//! are RESP3 maps or RESP2 flat arrays, lists that are arrays or RESP3 sets, text that may
//! be bulk, simple or verbatim.

use redis::Value;

/// A map's entries, from a RESP3 map or a RESP2 flat array of keys and values.
pub(super) fn entries(value: &Value) -> Option<Vec<(String, &Value)>> {
    match value {
        Value::Map(entries) => entries.iter().map(|(k, v)| Some((text(k)?, v))).collect(),
        Value::Array(flat) if flat.len() % 2 == 0 => flat
            .chunks(2)
            .map(|kv| Some((text(&kv[0])?, &kv[1])))
            .collect(),
        _ => None,
    }
}

/// The items of an array, or of a RESP3 set.
pub(super) fn list(value: &Value) -> Option<&[Value]> {
    match value {
        Value::Array(items) | Value::Set(items) => Some(items),
        _ => None,
    }
}

/// Text, lossily decoded.
pub(super) fn text(value: &Value) -> Option<String> {
    bytes(value).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// The bytes of a string reply of any kind.
pub(super) fn bytes(value: &Value) -> Option<Vec<u8>> {
    match value {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.as_bytes().to_vec()),
        Value::VerbatimString { text, .. } => Some(text.as_bytes().to_vec()),
        _ => None,
    }
}

/// An integer, or text holding one.
pub(super) fn int(value: &Value) -> Option<i64> {
    match value {
        Value::Int(n) => Some(*n),
        other => text(other)?.parse().ok(),
    }
}
