//! Second pass: a complete frame, already delimited and limit-checked by the scanner, becomes a
//! [`redis::Value`].
//!
//! The common types are built here directly. The rare ones (errors, blob errors, verbatim
//! strings, big numbers, pushes) are handed to [`redis::parse_redis_value`] on their exact
//! sub-slice, so their shapes (error-code mapping, push kinds, ...) are precisely what the
//! `redis` crate itself produces. That parser is several times slower than this one, which is
//! acceptable for types that are rare on the request/reply path.
//!
//! Nesting is handled with an explicit stack of open aggregates rather than recursion: a
//! recursive parser was measured at 2.4–4 KiB of stack per level in debug builds, so the 512 levels
//! the scanner allows would overflow a 2 MiB thread stack. The stack is kept by the caller and
//! reused, so steady-state parsing allocates nothing but the `Value`s themselves.
//!
//! Even though the scanner vetted the frame, nothing here trusts it: every access is checked and
//! anything unexpected becomes a [`ProtocolError`], never a panic.

use redis::Value;

use super::scan::{bulk_payload, element_end, parse_i64, parse_len, read_line};
use super::{ProtocolError, Reason};

/// Upper bound on the elements reserved up front for one aggregate. The scanner has verified
/// the counts of the frames we parse, but a cap keeps a lying count from ever turning into a
/// huge allocation should this be called on unvetted bytes.
const PREALLOC_CAP: usize = 1024;

/// An aggregate whose elements are still being parsed.
#[derive(Debug)]
enum Open {
    Array {
        items: Vec<Value>,
        left: usize,
    },
    Set {
        items: Vec<Value>,
        left: usize,
    },
    Map {
        pairs: Vec<(Value, Value)>,
        key: Option<Value>,
        left: usize,
    },
    /// `left` counts pairs; once they are in, the next value is the annotated `data`.
    Attribute {
        pairs: Vec<(Value, Value)>,
        key: Option<Value>,
        left: usize,
    },
}

impl Open {
    /// Opens the aggregate of type `kind` announcing `count` (pairs for `%` and `|`).
    fn new(kind: u8, count: usize) -> Self {
        let cap = count.min(PREALLOC_CAP);
        match kind {
            b'*' => Self::Array {
                items: Vec::with_capacity(cap),
                left: count,
            },
            b'~' => Self::Set {
                items: Vec::with_capacity(cap),
                left: count,
            },
            b'%' => Self::Map {
                pairs: Vec::with_capacity(cap),
                key: None,
                left: count,
            },
            _ => Self::Attribute {
                pairs: Vec::with_capacity(cap),
                key: None,
                left: count,
            },
        }
    }

    /// Adds the next element; returns the finished aggregate when that was the last one.
    fn push(&mut self, value: Value) -> Option<Value> {
        use std::mem::take;
        match self {
            Self::Array { items, left } => {
                items.push(value);
                *left = left.saturating_sub(1);
                (*left == 0).then(|| Value::Array(take(items)))
            }
            Self::Set { items, left } => {
                items.push(value);
                *left = left.saturating_sub(1);
                (*left == 0).then(|| Value::Set(take(items)))
            }
            Self::Map { pairs, key, left } => {
                push_pair(pairs, key, left, value);
                (*left == 0).then(|| Value::Map(take(pairs)))
            }
            Self::Attribute { pairs, key, left } => {
                if *left > 0 {
                    push_pair(pairs, key, left, value);
                    return None;
                }
                Some(Value::Attribute {
                    data: Box::new(value),
                    attributes: take(pairs),
                })
            }
        }
    }
}

/// Stores `value` as the pending key, or pairs it with the pending key.
fn push_pair(
    pairs: &mut Vec<(Value, Value)>,
    key: &mut Option<Value>,
    left: &mut usize,
    value: Value,
) {
    match key.take() {
        None => *key = Some(value),
        Some(k) => {
            pairs.push((k, value));
            *left = left.saturating_sub(1);
        }
    }
}

/// Reusable parsing state: the stack of open aggregates, kept between frames so that parsing
/// nested replies does not allocate it anew each time.
#[derive(Debug, Default)]
pub(crate) struct ParseStack(Vec<Open>);

/// Parses the single complete frame `frame`, which must span the whole slice.
///
/// `max_depth` bounds the nesting (the scanner enforces the same limit).
#[inline]
pub(crate) fn parse_frame(
    frame: &[u8],
    max_depth: usize,
    stack: &mut ParseStack,
) -> Result<Value, ProtocolError> {
    let mut parser = Parser { buf: frame, pos: 0 };
    let value = match frame.first() {
        Some(b'*' | b'~' | b'%' | b'|') => {
            stack.0.clear();
            let parsed = parser.run(max_depth, &mut stack.0);
            // After an error the stack still holds partial values; don't keep them alive.
            stack.0.clear();
            parsed?
        }
        // Most replies are a single scalar: skip the aggregate machinery.
        _ => parser.leaf(0)?,
    };
    if parser.pos != frame.len() {
        return Err(ProtocolError::new(parser.pos, Reason::TrailingBytes));
    }
    Ok(value)
}

/// Cursor over one frame.
struct Parser<'a> {
    buf: &'a [u8],
    /// Start of the next element to parse.
    pos: usize,
}

impl Parser<'_> {
    /// Parses elements until the top-level one is complete.
    fn run(&mut self, max_depth: usize, stack: &mut Vec<Open>) -> Result<Value, ProtocolError> {
        loop {
            let start = self.pos;
            let mut value = match self.buf.get(start) {
                Some(&kind @ (b'*' | b'~' | b'%' | b'|')) => {
                    let (line, next) = read_line(self.buf, start)?;
                    self.pos = next;
                    match parse_len(line, start + 1, matches!(kind, b'*' | b'~'))? {
                        None => Value::Nil,
                        // Empty aggregates are complete at once (an attribute never is: the
                        // value it annotates follows even when it has no pairs).
                        Some(0) if kind == b'*' => Value::Array(Vec::new()),
                        Some(0) if kind == b'~' => Value::Set(Vec::new()),
                        Some(0) if kind == b'%' => Value::Map(Vec::new()),
                        Some(count) => {
                            if stack.len() >= max_depth {
                                let max = max_depth;
                                return Err(ProtocolError::new(start, Reason::TooDeep { max }));
                            }
                            stack.push(Open::new(kind, count));
                            continue;
                        }
                    }
                }
                _ => self.leaf(start)?,
            };
            // Hand the value to the innermost open aggregate, closing each one it completes.
            loop {
                let Some(open) = stack.last_mut() else {
                    return Ok(value);
                };
                match open.push(value) {
                    None => break,
                    Some(done) => {
                        stack.pop();
                        value = done;
                    }
                }
            }
        }
    }

    /// Parses the non-aggregate element at `start`.
    #[inline(always)]
    fn leaf(&mut self, start: usize) -> Result<Value, ProtocolError> {
        let kind = *self
            .buf
            .get(start)
            .ok_or_else(|| ProtocolError::new(start, Reason::Truncated))?;
        if matches!(kind, b'-' | b'!' | b'=' | b'(' | b'>') {
            return self.delegate(start);
        }
        let (line, next) = read_line(self.buf, start)?;
        self.pos = next;
        let at = start + 1;
        Ok(match kind {
            b'+' if line == b"OK" => Value::Okay,
            b'+' => Value::SimpleString(utf8(line, at)?.to_owned()),
            b':' => Value::Int(parse_i64(line, at)?),
            b'$' => match parse_len(line, at, true)? {
                None => Value::Nil,
                Some(len) => {
                    let (payload, end) = bulk_payload(self.buf, next, len)?;
                    self.pos = end;
                    Value::BulkString(payload.to_vec())
                }
            },
            b'_' if line.is_empty() => Value::Nil,
            b'_' => return Err(ProtocolError::new(at, Reason::BadNull)),
            b'#' => match line {
                b"t" => Value::Boolean(true),
                b"f" => Value::Boolean(false),
                _ => return Err(ProtocolError::new(at, Reason::BadBoolean)),
            },
            b',' => Value::Double(parse_double(line, at)?),
            _ => return Err(ProtocolError::new(start, Reason::UnknownType(kind))),
        })
    }

    /// Lets the `redis` crate parse the element at `start`, on exactly its bytes.
    #[cold]
    fn delegate(&mut self, start: usize) -> Result<Value, ProtocolError> {
        let end = element_end(self.buf, start)?;
        let bytes = self
            .buf
            .get(start..end)
            .ok_or_else(|| ProtocolError::new(start, Reason::Truncated))?;
        // For `-` and `!` the redis parser yields `Ok(Value::ServerError(..))`, which is what a
        // reply carries; an `Err` means it found the element malformed.
        let value = redis::parse_redis_value(bytes)
            .map_err(|e| ProtocolError::new(start, Reason::Delegated(e.to_string())))?;
        self.pos = end;
        Ok(value)
    }
}

fn utf8(bytes: &[u8], at: usize) -> Result<&str, ProtocolError> {
    std::str::from_utf8(bytes)
        .map_err(|e| ProtocolError::new(at + e.valid_up_to(), Reason::InvalidUtf8))
}

/// Parses a RESP3 double; `inf`, `-inf` and `nan` are spelled the way Rust's parser accepts.
fn parse_double(line: &[u8], at: usize) -> Result<f64, ProtocolError> {
    utf8(line, at)?
        .parse::<f64>()
        .map_err(|_| ProtocolError::new(at, Reason::BadDouble))
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
