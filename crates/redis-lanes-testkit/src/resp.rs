//! Just enough RESP over `std::net` to probe readiness and send side-channel commands,
//! so the test kit needs no Redis client.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::error::{Error, ErrorKind};

/// Short, because the readiness loop polls and a refused or hanging attempt should not eat
/// much of the startup budget.
const PROBE_TIMEOUT: Duration = Duration::from_millis(250);
/// Generous, so `DEBUG SLEEP` and slow CI machines do not trip it, but still bounded so a
/// wedged server fails the test instead of hanging it.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(10);

/// Whether something on `addr` answers `PING` the way a started Redis does.
///
/// `+PONG` obviously counts. Any error reply counts too: a server started with
/// `--requirepass` answers `-NOAUTH`, which still proves it is up and accepting commands.
/// The exception is `-LOADING`, which means the server is still reading a dataset.
pub(crate) fn answers_ping(addr: SocketAddr) -> bool {
    let reply =
        send(addr, b"*1\r\n$4\r\nPING\r\n", PROBE_TIMEOUT).and_then(|mut r| read_line(&mut r));
    match reply {
        Ok(line) => {
            line.starts_with('+') || (line.starts_with('-') && !line.starts_with("-LOADING"))
        }
        Err(_) => false,
    }
}

/// Sends one command on a fresh connection and decodes a simple reply; see
/// [`RedisServer::command`](crate::RedisServer::command) for the contract.
pub(crate) fn command(addr: SocketAddr, args: &[&str]) -> Result<String, Error> {
    if args.is_empty() {
        return Err(Error::new(
            ErrorKind::Protocol,
            "a command needs at least one argument",
        ));
    }
    let io_error = |e| {
        Error::io(
            format!("could not send {:?} to redis-server at {addr}", args[0]),
            e,
        )
    };
    let mut reader = send(addr, &encode(args), COMMAND_TIMEOUT).map_err(io_error)?;
    let line = read_line(&mut reader).map_err(io_error)?;
    if let Some(count) = line.strip_prefix('*') {
        // A flat array (`CLUSTER GETKEYSINSLOT`, `KEYS`): its elements, one per line.
        let Ok(count) = count.parse::<i64>() else {
            return Err(Error::new(
                ErrorKind::Protocol,
                format!("bad array length in reply {line:?}"),
            ));
        };
        let mut items = Vec::new();
        for _ in 0..count.max(0) {
            let line = read_line(&mut reader).map_err(io_error)?;
            items.push(element(&mut reader, &line).map_err(|e| match e {
                Element::Io(e) => io_error(e),
                Element::Bad(e) => e,
            })?);
        }
        return Ok(items.join("\n"));
    }
    element(&mut reader, &line).map_err(|e| match e {
        Element::Io(e) => io_error(e),
        Element::Bad(e) => e,
    })
}

enum Element {
    Io(io::Error),
    Bad(Error),
}

/// One simple reply whose first line is `line`.
fn element(reader: &mut BufReader<TcpStream>, line: &str) -> Result<String, Element> {
    let (prefix, rest) = line.split_at(line.chars().next().map_or(0, char::len_utf8));
    match prefix {
        "+" | ":" => Ok(rest.to_owned()),
        "-" => Err(Element::Bad(Error::new(ErrorKind::ServerReply, rest))),
        // RESP3's null `_` cannot arrive on a fresh (RESP2) connection, so only `$-1` is nil.
        "$" => {
            let Ok(len) = rest.parse::<i64>() else {
                return Err(Element::Bad(Error::new(
                    ErrorKind::Protocol,
                    format!("bad bulk length in reply {line:?}"),
                )));
            };
            let Ok(len) = usize::try_from(len) else {
                return Ok(String::new());
            };
            let mut payload = vec![0; len + 2];
            reader.read_exact(&mut payload).map_err(Element::Io)?;
            payload.truncate(len);
            Ok(String::from_utf8_lossy(&payload).into_owned())
        }
        _ => Err(Element::Bad(Error::new(
            ErrorKind::Protocol,
            format!(
                "reply {line:?} is not a simple string, error, integer, bulk string or flat \
                 array of those"
            ),
        ))),
    }
}

/// Encodes `args` as a RESP array of bulk strings.
fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        out.extend_from_slice(arg.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Connects, applies `timeout` to every step, and writes `request`.
fn send(addr: SocketAddr, request: &[u8], timeout: Duration) -> io::Result<BufReader<TcpStream>> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(request)?;
    Ok(BufReader::new(stream))
}

/// Reads one CRLF-terminated line, without the terminator.
fn read_line(reader: &mut BufReader<TcpStream>) -> io::Result<String> {
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line)?;
    if !line.ends_with(b"\r\n") {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed mid-reply",
        ));
    }
    line.truncate(line.len() - 2);
    Ok(String::from_utf8_lossy(&line).into_owned())
}
