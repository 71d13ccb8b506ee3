//! The handshake every lane runs before it carries user commands: protocol, credentials,
//! database, name, and the `CLIENT ID` the cancellation path needs.

use bytes::BytesMut;
use redis::{ServerError, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::transport::Stream;
use super::ConnectOptions;
use crate::error::{Error, ErrorKind};
use crate::resp::{Decoder, Frame};
use crate::url::{ConnectInfo, Protocol};

/// One handshake command's job. Exclusive lanes re-run the steps after `RESET` and
/// check each reply by its step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Hello,
    Auth,
    SetName,
    Select,
    ClientId,
}

/// The handshake's commands for `info`, in the order they are sent.
pub(crate) fn steps(info: &ConnectInfo) -> Vec<(Step, redis::Cmd)> {
    let mut steps = Vec::with_capacity(4);
    match info.protocol {
        Protocol::Resp3 => {
            let mut hello = redis::cmd("HELLO");
            hello.arg(3);
            if let Some(password) = &info.password {
                hello
                    .arg("AUTH")
                    .arg(info.username.as_deref().unwrap_or("default"))
                    .arg(password);
            }
            if let Some(name) = &info.client_name {
                hello.arg("SETNAME").arg(name);
            }
            steps.push((Step::Hello, hello));
        }
        Protocol::Resp2 => {
            if let Some(password) = &info.password {
                let mut auth = redis::cmd("AUTH");
                if let Some(user) = &info.username {
                    auth.arg(user);
                }
                auth.arg(password);
                steps.push((Step::Auth, auth));
            }
            if let Some(name) = &info.client_name {
                let mut setname = redis::cmd("CLIENT");
                setname.arg("SETNAME").arg(name);
                steps.push((Step::SetName, setname));
            }
        }
    }
    if info.db != 0 {
        let mut select = redis::cmd("SELECT");
        select.arg(info.db);
        steps.push((Step::Select, select));
    }
    let mut id = redis::cmd("CLIENT");
    id.arg("ID");
    steps.push((Step::ClientId, id));
    steps
}

/// Runs the handshake on a fresh stream. All steps are written in one batch and their
/// replies read in order; the first refusal decides the error.
///
/// Bytes read past the last handshake reply stay in `buf` for the driver. Returns the
/// connection's `CLIENT ID`, when the server (and the ACL) allows asking.
pub(crate) async fn run(
    stream: &mut Stream,
    config: &ConnectOptions,
    decoder: &mut Decoder,
    buf: &mut BytesMut,
) -> Result<Option<i64>, Error> {
    let steps = steps(&config.info);
    let mut packed = Vec::with_capacity(128);
    for (_, cmd) in &steps {
        cmd.write_packed_command(&mut packed);
    }
    stream
        .write_all(&packed)
        .await
        .map_err(|e| lost(config, e))?;

    let mut first_error = None;
    let mut client_id = None;
    for (step, _) in &steps {
        let value = next_reply(stream, config, decoder, buf).await?;
        match (value, *step) {
            (Value::ServerError(err), step) if first_error.is_none() && !tolerated(step, &err) => {
                first_error = Some(refusal(step, &err, config));
            }
            (Value::Int(id), Step::ClientId) => client_id = Some(id),
            _ => {}
        }
    }
    match first_error {
        Some(err) => Err(err),
        None => Ok(client_id),
    }
}

/// The connection failed before the handshake finished. Over TLS 1.3 this is where a
/// server that refuses the client's certificate says so (it checks it after the client
/// considers the TLS handshake done), so a TLS alert is explained, not just passed on.
fn lost(config: &ConnectOptions, e: std::io::Error) -> Error {
    let message = config
        .tls
        .as_deref()
        .and_then(|tls| tls.explain(&e))
        .unwrap_or_else(|| "connection failed during the handshake".to_owned());
    Error::with_source(ErrorKind::Connect, message, e)
}

async fn next_reply(
    stream: &mut Stream,
    config: &ConnectOptions,
    decoder: &mut Decoder,
    buf: &mut BytesMut,
) -> Result<Value, Error> {
    loop {
        match decoder.decode(buf) {
            Ok(Some(Frame::Reply(value))) => return Ok(value),
            // A push before the handshake is done carries nothing we asked for.
            Ok(Some(Frame::Push(_))) => continue,
            Ok(Some(Frame::TooLarge { push: true, .. })) => continue,
            Ok(Some(Frame::TooLarge { len, max, .. })) => {
                return Err(Error::protocol(format!(
                    "during the handshake: a reply of {len} bytes, over the limit of {max}"
                )))
            }
            Ok(None) => {}
            Err(e) => return Err(Error::protocol(format!("during the handshake: {e}"))),
        }
        buf.reserve(4096);
        let n = stream.read_buf(buf).await.map_err(|e| lost(config, e))?;
        if n == 0 {
            return Err(Error::new(
                ErrorKind::Connect,
                "the server closed the connection during the handshake",
            ));
        }
    }
}

/// `CLIENT ID` may be denied by an ACL; the lane still works, only server-side
/// cancellation of blocking commands falls back to closing the socket.
fn tolerated(step: Step, err: &ServerError) -> bool {
    // A least-privilege ACL answers `NOPERM` here: that is not a credentials problem.
    // A failed AUTH earlier in the batch makes this step fail with `NOAUTH`, which is.
    // A "not now" refusal (maxclients) is sent before the server reads anything, so it
    // lands on whatever step comes first, this one included.
    step == Step::ClientId && !matches!(err.code(), "NOAUTH" | "WRONGPASS") && !is_not_ready(err)
}

/// Refusals that say "not now" rather than "never": a server loading its dataset, a
/// busy script, a replica without its primary, or `maxclients` reached.
fn is_not_ready(err: &ServerError) -> bool {
    matches!(err.code(), "LOADING" | "BUSY" | "MASTERDOWN" | "TRYAGAIN")
        || (err.code() == "ERR"
            && err
                .details()
                .is_some_and(|d| d.starts_with("max number of clients reached")))
}

fn is_auth_error(err: &ServerError) -> bool {
    matches!(err.code(), "WRONGPASS" | "NOAUTH" | "NOPERM")
        || err
            .details()
            .is_some_and(|d| d.contains("invalid password") || d.contains("invalid username"))
}

fn refusal(step: Step, err: &ServerError, config: &ConnectOptions) -> Error {
    let text = match err.details() {
        Some(details) => format!("{} {details}", err.code()),
        None => err.code().to_owned(),
    };
    if is_not_ready(err) {
        // A server loading its dataset after a restart (or a replica without its
        // primary) will take the connection soon: that is worth retrying, unlike a
        // refusal of the credentials or of the database.
        return Error::new(
            ErrorKind::Connect,
            format!("the server is not ready yet: {text}"),
        );
    }
    if step == Step::Auth || is_auth_error(err) {
        let who = config.info.username.as_deref().unwrap_or("default");
        return Error::new(
            ErrorKind::Auth,
            format!("the server refused the credentials of user {who:?}: {text}"),
        );
    }
    let what = match step {
        Step::Hello => "HELLO 3 (RESP3 needs Redis 6 or later)".to_owned(),
        Step::SetName => "CLIENT SETNAME".to_owned(),
        Step::Select => format!("SELECT {}", config.info.db),
        Step::Auth | Step::ClientId => "CLIENT ID".to_owned(),
    };
    Error::new(
        ErrorKind::Handshake,
        format!("the server refused {what}: {text}"),
    )
}
