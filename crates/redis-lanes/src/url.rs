//! Connection URL parsing: `redis://`, `rediss://` (TLS), `redis+unix://` and `unix://`,
//! and their Valkey spellings `valkey://`, `valkeys://` and `valkey+unix://`.

use std::path::PathBuf;

use crate::error::{Error, ErrorKind};

/// The RESP protocol version a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Protocol {
    /// RESP2, understood by every Redis server. The default.
    #[default]
    Resp2,
    /// RESP3 (`HELLO 3`, Redis 6 and later): typed replies, and out-of-band push frames,
    /// which redis-lanes keeps apart from replies.
    Resp3,
}

/// Where a lane connects to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Addr {
    Tcp { host: String, port: u16 },
    Unix(PathBuf),
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            // IPv6 literals keep their brackets so the text is a valid `host:port`.
            Addr::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            Addr::Tcp { host, port } => write!(f, "{host}:{port}"),
            Addr::Unix(path) => write!(f, "{}", path.display()),
        }
    }
}

/// Everything a URL can say about a connection.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ConnectInfo {
    pub(crate) addr: Addr,
    /// `rediss://`: the TCP connection is wrapped in TLS.
    pub(crate) tls: bool,
    pub(crate) username: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) db: i64,
    pub(crate) protocol: Protocol,
    pub(crate) client_name: Option<String>,
}

/// Written by hand so the password never reaches a log: `Builder`, the lane config and
/// the pools all print this through their own `Debug`.
impl std::fmt::Debug for ConnectInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectInfo")
            .field("addr", &self.addr)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| REDACTED))
            .field("db", &self.db)
            .field("protocol", &self.protocol)
            .field("client_name", &self.client_name)
            .finish()
    }
}

/// What is shown in place of a secret.
pub(crate) const REDACTED: &str = "***";

const DEFAULT_PORT: u16 = 6379;
const QUERY_KEYS: &str = "db, protocol, user, pass, password, client_name";

fn invalid(url: &str, why: impl std::fmt::Display) -> Error {
    Error::new(
        ErrorKind::InvalidConfig,
        format!("invalid URL {url:?}: {why}"),
    )
}

/// Parses a connection URL.
///
/// Accepted forms: `redis://[user[:password]@]host[:port][/db][?query]`, the same with
/// `rediss://` for TLS, `redis+unix:///path[?query]` and `unix:///path[?query]`. Valkey's
/// schemes mean the same: `valkey://`, `valkeys://` (TLS) and `valkey+unix://`. Query
/// keys: `db`, `protocol` (`resp2`/`resp3`), `user`, `pass`/`password`, `client_name`.
pub(crate) fn parse(input: &str) -> Result<ConnectInfo, Error> {
    // The URL text is kept out of error messages when it carries a password.
    let shown = redact(input);
    let url = url::Url::parse(input).map_err(|e| invalid(&shown, e))?;
    let mut info = match url.scheme() {
        "redis" | "valkey" => tcp_info(&url, &shown)?,
        "rediss" | "valkeys" => {
            // redis-rs spells "skip certificate verification" as a `#insecure` fragment.
            // Refused rather than ignored, so nobody believes it took effect.
            if url.fragment() == Some("insecure") {
                return Err(invalid(
                    &shown,
                    "#insecure is not supported: certificate verification cannot be \
                     turned off; trust the server's CA with Builder::tls_ca_pem instead",
                ));
            }
            ConnectInfo {
                tls: true,
                ..tcp_info(&url, &shown)?
            }
        }
        "redis+unix" | "valkey+unix" | "unix" => unix_info(&url, &shown)?,
        other => {
            return Err(invalid(
                &shown,
                format!(
                    "unknown scheme {other:?} (expected redis, rediss, redis+unix, unix, \
                     valkey, valkeys or valkey+unix)"
                ),
            ))
        }
    };
    for (key, value) in url.query_pairs() {
        match key.as_ref() {
            "db" => info.db = parse_db(&value).map_err(|why| invalid(&shown, why))?,
            "protocol" => {
                info.protocol = match value.to_ascii_lowercase().as_str() {
                    "2" | "resp2" => Protocol::Resp2,
                    "3" | "resp3" => Protocol::Resp3,
                    _ => {
                        return Err(invalid(
                            &shown,
                            format!("protocol {value:?} is not resp2 or resp3"),
                        ))
                    }
                }
            }
            "user" | "username" => info.username = Some(value.into_owned()),
            "pass" | "password" => info.password = Some(value.into_owned()),
            "client_name" => info.client_name = Some(value.into_owned()),
            other => {
                return Err(invalid(
                    &shown,
                    format!("unknown query key {other:?} (known: {QUERY_KEYS})"),
                ))
            }
        }
    }
    Ok(info)
}

fn tcp_info(url: &url::Url, shown: &str) -> Result<ConnectInfo, Error> {
    let host = match url.host() {
        Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        _ => return Err(invalid(shown, "missing host")),
    };
    let port = url.port().unwrap_or(DEFAULT_PORT);
    let db = match url.path().trim_start_matches('/') {
        "" => 0,
        path => parse_db(path).map_err(|why| invalid(shown, why))?,
    };
    let (username, password) = userinfo(url, shown)?;
    Ok(ConnectInfo {
        addr: Addr::Tcp { host, port },
        tls: false,
        username,
        password,
        db,
        protocol: Protocol::Resp2,
        client_name: None,
    })
}

fn unix_info(url: &url::Url, shown: &str) -> Result<ConnectInfo, Error> {
    if url.host_str().is_some_and(|h| !h.is_empty()) {
        return Err(invalid(
            shown,
            "a Unix socket URL takes a path, not a host (write redis+unix:///path/to/socket)",
        ));
    }
    let path = percent(url.path(), shown)?;
    if path.is_empty() || path == "/" {
        return Err(invalid(shown, "missing socket path"));
    }
    let (username, password) = userinfo(url, shown)?;
    Ok(ConnectInfo {
        addr: Addr::Unix(PathBuf::from(path)),
        tls: false,
        username,
        password,
        db: 0,
        protocol: Protocol::Resp2,
        client_name: None,
    })
}

fn userinfo(url: &url::Url, shown: &str) -> Result<(Option<String>, Option<String>), Error> {
    let username = match url.username() {
        "" => None,
        user => Some(percent(user, shown)?),
    };
    let password = match url.password() {
        None => None,
        Some(pass) => Some(percent(pass, shown)?),
    };
    Ok((username, password))
}

fn percent(text: &str, shown: &str) -> Result<String, Error> {
    percent_encoding::percent_decode_str(text)
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| invalid(shown, "percent-encoded text is not UTF-8"))
}

fn parse_db(text: &str) -> Result<i64, String> {
    match text.parse::<i64>() {
        Ok(db) if db >= 0 => Ok(db),
        _ => Err(format!("database {text:?} is not a non-negative integer")),
    }
}

/// Replaces the password in a URL with `***` for error messages and logs.
pub(crate) fn redact(input: &str) -> String {
    // Whatever cannot be redacted precisely is cut down to the scheme: `user:pw@host`
    // without a scheme (which parses, as scheme `user` and path `pw@host`), or a password
    // the `url` crate will not replace (an empty host, as in `unix://user:pw@/path`).
    let coarse = || match input.split_once("://") {
        Some((scheme, rest)) if rest.contains('@') => format!("{scheme}://{REDACTED}"),
        None if input.contains('@') => REDACTED.to_owned(),
        _ => input.to_owned(),
    };
    let Ok(mut url) = url::Url::parse(input) else {
        return coarse();
    };
    if url.cannot_be_a_base() && input.contains('@') {
        return coarse();
    }
    if url.password().is_some() && url.set_password(Some(REDACTED)).is_err() {
        return coarse();
    }
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "pass" || k == "password" {
                REDACTED.to_owned()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    if !pairs.is_empty() {
        url.query_pairs_mut().clear().extend_pairs(pairs);
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tcp(host: &str, port: u16) -> Addr {
        Addr::Tcp {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn accepted_forms() {
        type Case<'a> = (&'a str, Addr, Option<&'a str>, Option<&'a str>, i64);
        let cases: &[Case<'_>] = &[
            ("redis://localhost", tcp("localhost", 6379), None, None, 0),
            (
                "redis://127.0.0.1:7000/3",
                tcp("127.0.0.1", 7000),
                None,
                None,
                3,
            ),
            (
                "redis://:secret@h/1",
                tcp("h", 6379),
                None,
                Some("secret"),
                1,
            ),
            (
                "redis://alice:s%40cret@h:1",
                tcp("h", 1),
                Some("alice"),
                Some("s@cret"),
                0,
            ),
            ("redis://[::1]:6380", tcp("::1", 6380), None, None, 0),
            ("redis://h/?db=4", tcp("h", 6379), None, None, 4),
            (
                "redis+unix:///tmp/r.sock",
                Addr::Unix("/tmp/r.sock".into()),
                None,
                None,
                0,
            ),
            (
                "unix:///tmp/r.sock?db=2&user=bob&pass=pw",
                Addr::Unix("/tmp/r.sock".into()),
                Some("bob"),
                Some("pw"),
                2,
            ),
        ];
        for (url, addr, user, pass, db) in cases {
            let info = parse(url).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(&info.addr, addr, "{url}");
            assert_eq!(info.username.as_deref(), *user, "{url}");
            assert_eq!(info.password.as_deref(), *pass, "{url}");
            assert_eq!(info.db, *db, "{url}");
        }
        assert_eq!(
            parse("redis://h?protocol=resp3").map(|i| i.protocol).ok(),
            Some(Protocol::Resp3)
        );
    }

    #[test]
    fn rejected_forms_say_why() {
        let cases = [
            ("not a url", "invalid URL"),
            ("http://h", "unknown scheme"),
            ("rediss://h#insecure", "cannot be turned off"),
            ("redis://h/abc", "database"),
            ("redis://h/-1", "database"),
            ("redis://h?db=x", "database"),
            ("redis://h?protocol=4", "protocol"),
            ("redis://h?colour=red", "unknown query key"),
            ("redis+unix://", "missing socket path"),
            ("redis+unix://host/path", "not a host"),
            ("redis://h:99999", "invalid URL"),
        ];
        for (url, needle) in cases {
            let err = parse(url).expect_err(url);
            assert!(err.is_config(), "{url}: {err:?}");
            assert!(err.to_string().contains(needle), "{url}: {err}");
        }
    }

    #[test]
    fn errors_never_show_passwords() {
        let err = parse("redis://u:topsecret@h/abc").expect_err("bad db");
        assert!(!err.to_string().contains("topsecret"), "{err}");
        let err = parse("unix:///s?pass=topsecret&db=x").expect_err("bad db");
        assert!(!err.to_string().contains("topsecret"), "{err}");
        assert!(!redact("redis://u:topsecret@h:bad").contains("topsecret"));
        for url in [
            "u:topsecret@h:6379",
            "unix://u:topsecret@/s?db=x",
            "redis://u:topsecret@h/abc",
            "rediss://u:topsecret@h/x",
            "redis://h/?password=topsecret&db=x",
        ] {
            assert!(!redact(url).contains("topsecret"), "{url}: {}", redact(url));
            if let Err(err) = parse(url) {
                assert!(!err.to_string().contains("topsecret"), "{url}: {err}");
                assert!(!format!("{err:?}").contains("topsecret"), "{url}: {err:?}");
            }
        }
    }

    #[test]
    fn debug_never_shows_passwords() {
        let info = parse("rediss://alice:topsecret@h:6380/2?client_name=x").expect("valid");
        let shown = format!("{info:?}");
        assert!(!shown.contains("topsecret"), "{shown}");
        assert!(shown.contains("***") && shown.contains("alice"), "{shown}");
    }

    #[test]
    fn rediss_is_tcp_with_tls() {
        let info = parse("rediss://u:p@cache.example:6380/3").expect("valid");
        assert!(info.tls);
        assert_eq!(info.addr, tcp("cache.example", 6380));
        assert_eq!(
            (info.username.as_deref(), info.password.as_deref()),
            (Some("u"), Some("p"))
        );
        assert_eq!(info.db, 3);
        assert!(!parse("redis://h").expect("valid").tls);
    }

    #[test]
    fn valkey_schemes_mean_the_same_as_redis_ones() {
        let pairs = [
            ("valkey://u:p@h:7000/2", "redis://u:p@h:7000/2"),
            (
                "valkeys://u:p@cache.example/1",
                "rediss://u:p@cache.example/1",
            ),
            (
                "valkey+unix:///tmp/v.sock?db=3",
                "redis+unix:///tmp/v.sock?db=3",
            ),
            ("valkey://h?protocol=resp3", "redis://h?protocol=resp3"),
        ];
        for (valkey, redis) in pairs {
            let parsed = parse(valkey).unwrap_or_else(|e| panic!("{valkey}: {e}"));
            assert_eq!(parsed, parse(redis).expect(redis), "{valkey}");
        }
        assert!(parse("valkeys://h").expect("valid").tls);
        let err = parse("valkeys://h#insecure").expect_err("insecure refused");
        assert!(err.to_string().contains("cannot be turned off"), "{err}");
        let err = parse("valkey+unix://host/path").expect_err("host refused");
        assert!(err.to_string().contains("not a host"), "{err}");
        assert!(!redact("valkey://u:topsecret@h").contains("topsecret"));
    }
}
