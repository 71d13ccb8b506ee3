//! What a cluster node's error reply asks the client to do.

use redis::Value;

use super::topology::NodeAddr;

/// A cluster error reply that calls for another attempt. In every case the command was
/// not executed, so sending it again is safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Redirect {
    /// `MOVED <slot> <host:port>`: the slot lives there now.
    Moved { slot: u16, to: NodeAddr },
    /// `ASK <slot> <host:port>`: this key is being imported there; send `ASKING` and the
    /// command there, once.
    Ask { slot: u16, to: NodeAddr },
    /// `TRYAGAIN` (a multi-key command during a migration) or `CLUSTERDOWN`: later.
    Later,
}

/// The redirect in `reply`, if it is one. `seed_host` stands in for an empty host
/// (`MOVED 1 :6380`, as servers without an announced address send).
pub(crate) fn redirect(reply: &Value, seed_host: &str) -> Option<Redirect> {
    let Value::ServerError(err) = reply else {
        return None;
    };
    match err.code() {
        "MOVED" | "ASK" => {
            let mut parts = err.details()?.split_whitespace();
            let slot = parts.next()?.parse().ok()?;
            let to = node_addr(parts.next()?, seed_host)?;
            Some(if err.code() == "MOVED" {
                Redirect::Moved { slot, to }
            } else {
                Redirect::Ask { slot, to }
            })
        }
        "TRYAGAIN" | "CLUSTERDOWN" => Some(Redirect::Later),
        _ => None,
    }
}

/// `host:port`, `[v6]:port`, or `:port`.
fn node_addr(text: &str, seed_host: &str) -> Option<NodeAddr> {
    let (host, port) = text.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some(NodeAddr {
        host: if host.is_empty() { seed_host } else { host }.to_owned(),
        port: port.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(text: &str) -> Value {
        // Parsed the way the decoder does: an error line.
        let mut decoder = crate::resp::Decoder::new(crate::resp::Limits::default());
        let mut buf = bytes::BytesMut::from(format!("-{text}\r\n").as_bytes());
        match decoder.decode(&mut buf) {
            Ok(Some(crate::resp::Frame::Reply(value))) => value,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reads_every_redirect() {
        assert_eq!(
            redirect(&error("MOVED 3999 127.0.0.1:6381"), "seed"),
            Some(Redirect::Moved {
                slot: 3999,
                to: NodeAddr {
                    host: "127.0.0.1".into(),
                    port: 6381
                }
            })
        );
        assert_eq!(
            redirect(&error("ASK 12 [::1]:7000"), "seed"),
            Some(Redirect::Ask {
                slot: 12,
                to: NodeAddr {
                    host: "::1".into(),
                    port: 7000
                }
            })
        );
        assert_eq!(
            redirect(&error("MOVED 1 :6380"), "seed"),
            Some(Redirect::Moved {
                slot: 1,
                to: NodeAddr {
                    host: "seed".into(),
                    port: 6380
                }
            })
        );
        assert_eq!(
            redirect(
                &error("TRYAGAIN Multiple keys request during rehashing of slot"),
                "s"
            ),
            Some(Redirect::Later)
        );
        assert_eq!(
            redirect(&error("CLUSTERDOWN The cluster is down"), "s"),
            Some(Redirect::Later)
        );
        assert_eq!(redirect(&error("ERR nope"), "s"), None);
        assert_eq!(redirect(&error("MOVED garbage"), "s"), None);
        assert_eq!(redirect(&Value::Okay, "s"), None);
    }
}
