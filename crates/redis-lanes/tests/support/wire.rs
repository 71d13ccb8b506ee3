//! The fake server's side of RESP: reading the client's commands and writing replies.
//!
//! The client only ever sends arrays of bulk strings, so that is all this reads; anything
//! else is a bug in the client and fails the test loudly.

/// One command as the client sent it: name first, then the arguments.
pub(crate) type Command = Vec<Vec<u8>>;

/// Takes the first complete command off the front of `buf`. `Ok(None)` when it has not
/// fully arrived yet.
pub(crate) fn take_command(buf: &mut Vec<u8>) -> Result<Option<Command>, String> {
    let mut pos = 0;
    let Some(count) = header(buf, &mut pos, b'*')? else {
        return Ok(None);
    };
    let mut args = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let Some(len) = header(buf, &mut pos, b'$')? else {
            return Ok(None);
        };
        let Some(arg) = buf.get(pos..pos + len) else {
            return Ok(None);
        };
        if buf.get(pos + len..pos + len + 2).is_none() {
            return Ok(None);
        }
        if &buf[pos + len..pos + len + 2] != b"\r\n" {
            return Err(format!("bulk argument not followed by CRLF at byte {pos}"));
        }
        args.push(arg.to_vec());
        pos += len + 2;
    }
    buf.drain(..pos);
    Ok(Some(args))
}

/// Reads a `<kind><digits>\r\n` line at `pos`, advancing past it.
fn header(buf: &[u8], pos: &mut usize, kind: u8) -> Result<Option<usize>, String> {
    let Some(&first) = buf.get(*pos) else {
        return Ok(None);
    };
    if first != kind {
        return Err(format!(
            "expected {:?} at byte {pos}, got {:?}",
            kind as char, first as char
        ));
    }
    let rest = &buf[*pos + 1..];
    let Some(lf) = rest.iter().position(|&b| b == b'\n') else {
        return Ok(None);
    };
    let line = rest[..lf]
        .strip_suffix(b"\r")
        .ok_or_else(|| format!("bare LF at byte {pos}"))?;
    let n = std::str::from_utf8(line)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad length line {line:?}"))?;
    *pos += 1 + lf + 1;
    Ok(Some(n))
}

/// A bulk string reply.
pub(crate) fn bulk(bytes: &[u8]) -> Vec<u8> {
    let mut out = format!("${}\r\n", bytes.len()).into_bytes();
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
    out
}

/// An array (`*`) or push (`>`) header followed by its already encoded elements.
pub(crate) fn aggregate(kind: u8, items: &[Vec<u8>]) -> Vec<u8> {
    let mut out = format!("{}{}\r\n", kind as char, items.len()).into_bytes();
    for item in items {
        out.extend_from_slice(item);
    }
    out
}

/// An integer reply.
pub(crate) fn int(n: i64) -> Vec<u8> {
    format!(":{n}\r\n").into_bytes()
}

/// A published message as the server delivers it on a subscribed connection.
pub(crate) fn message(resp3: bool, channel: &[u8], payload: &[u8]) -> Vec<u8> {
    let kind = if resp3 { b'>' } else { b'*' };
    aggregate(kind, &[bulk(b"message"), bulk(channel), bulk(payload)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_come_off_the_front_whole() {
        let mut buf = b"*2\r\n$4\r\nECHO\r\n$2\r\nhi\r\n*1\r\n$4\r\nPI".to_vec();
        assert_eq!(
            take_command(&mut buf),
            Ok(Some(vec![b"ECHO".to_vec(), b"hi".to_vec()]))
        );
        assert_eq!(take_command(&mut buf), Ok(None));
        buf.extend_from_slice(b"NG\r\n");
        assert_eq!(take_command(&mut buf), Ok(Some(vec![b"PING".to_vec()])));
        assert!(buf.is_empty());
    }
}
