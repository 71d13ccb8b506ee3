//! Commands known to be read-only: the only ones the opt-in retry may send twice.
//!
//! The list is deliberately short and explicit. A command missing from it is simply not
//! retried; a command wrongly on it could be executed twice, so anything that can write
//! in any form (`SORT ... STORE`, `GEORADIUS ... STORE`, `GETEX`, `SPOP`, `XREADGROUP`,
//! `EVAL`) stays off.

use redis::{Cmd, Pipeline};

use super::{cmd_args, upper};

/// `true` when `cmd` is a command known never to change data.
pub(crate) fn is_read_only_cmd(cmd: &Cmd) -> bool {
    let Some(name) = cmd_args(cmd).next().and_then(upper) else {
        return false;
    };
    READ_ONLY.contains(&name.as_bytes())
}

/// `true` when every command of `pipe` is read-only (an empty pipeline is not retried).
pub(crate) fn is_read_only_pipeline(pipe: &Pipeline) -> bool {
    let mut any = false;
    for cmd in pipe.cmd_iter() {
        if !is_read_only_cmd(cmd) {
            return false;
        }
        any = true;
    }
    any
}

const READ_ONLY: &[&[u8]] = &[
    // strings and keys
    b"GET",
    b"MGET",
    b"GETRANGE",
    b"SUBSTR",
    b"STRLEN",
    b"LCS",
    b"EXISTS",
    b"TYPE",
    b"TTL",
    b"PTTL",
    b"EXPIRETIME",
    b"PEXPIRETIME",
    b"DUMP",
    b"RANDOMKEY",
    b"KEYS",
    b"SCAN",
    b"DBSIZE",
    b"GETBIT",
    b"BITCOUNT",
    b"BITPOS",
    b"BITFIELD_RO",
    // hashes
    b"HGET",
    b"HMGET",
    b"HGETALL",
    b"HKEYS",
    b"HVALS",
    b"HLEN",
    b"HEXISTS",
    b"HSTRLEN",
    b"HSCAN",
    b"HRANDFIELD",
    // lists
    b"LRANGE",
    b"LLEN",
    b"LINDEX",
    b"LPOS",
    // sets
    b"SMEMBERS",
    b"SISMEMBER",
    b"SMISMEMBER",
    b"SCARD",
    b"SRANDMEMBER",
    b"SSCAN",
    b"SINTER",
    b"SUNION",
    b"SDIFF",
    b"SINTERCARD",
    // sorted sets
    b"ZRANGE",
    b"ZREVRANGE",
    b"ZRANGEBYSCORE",
    b"ZREVRANGEBYSCORE",
    b"ZRANGEBYLEX",
    b"ZREVRANGEBYLEX",
    b"ZSCORE",
    b"ZMSCORE",
    b"ZCARD",
    b"ZCOUNT",
    b"ZLEXCOUNT",
    b"ZRANK",
    b"ZREVRANK",
    b"ZSCAN",
    b"ZRANDMEMBER",
    b"ZINTER",
    b"ZUNION",
    b"ZDIFF",
    b"ZINTERCARD",
    // streams (XREAD with BLOCK never reaches the shared lane)
    b"XRANGE",
    b"XREVRANGE",
    b"XLEN",
    b"XREAD",
    b"XPENDING",
    b"XINFO",
    // HyperLogLog, geo, sort, scripts declared read-only
    b"PFCOUNT",
    b"GEOPOS",
    b"GEODIST",
    b"GEOHASH",
    b"GEOSEARCH",
    b"GEORADIUS_RO",
    b"GEORADIUSBYMEMBER_RO",
    b"SORT_RO",
    b"EVAL_RO",
    b"EVALSHA_RO",
    b"FCALL_RO",
    // connection
    b"PING",
    b"ECHO",
    b"TIME",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_are_read_only_and_writes_are_not() {
        for name in ["GET", "get", "HGetAll", "XRANGE", "ping", "EVAL_RO"] {
            assert!(is_read_only_cmd(&redis::cmd(name)), "{name}");
        }
        for name in [
            "SET",
            "GETEX",
            "GETDEL",
            "SPOP",
            "SORT",
            "GEORADIUS",
            "EVAL",
            "XREADGROUP",
            "INCR",
            "DEL",
            "BLPOP",
            "LMOVE",
            "ZRANGESTORE",
            "PFADD",
            "",
        ] {
            assert!(!is_read_only_cmd(&redis::cmd(name)), "{name}");
        }
    }

    #[test]
    fn a_pipeline_is_read_only_only_if_every_command_is() {
        let mut reads = redis::pipe();
        reads.get("a").hgetall("h").cmd("PING");
        assert!(is_read_only_pipeline(&reads));
        let mut mixed = redis::pipe();
        mixed.get("a").incr("n", 1);
        assert!(!is_read_only_pipeline(&mixed));
        assert!(!is_read_only_pipeline(&redis::pipe()));
    }
}
