//! Which hash slot a key belongs to: CRC16 (XMODEM) of the key, or of its hash tag, mod
//! 16384, as Redis Cluster computes it.

/// Slots in a Redis Cluster.
pub(crate) const SLOTS: u16 = 16384;

/// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0, no reflection), by table.
const TABLE: [u16; 256] = table();

const fn table() -> [u16; 256] {
    let mut table = [0u16; 256];
    let mut byte = 0;
    while byte < 256 {
        let mut crc = (byte as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[byte] = crc;
        byte += 1;
    }
    table
}

fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ TABLE[usize::from((crc >> 8) as u8 ^ b)]
    })
}

/// The part of `key` that is hashed: the content of the first `{...}` when it is not
/// empty, otherwise the whole key.
fn hashed(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    let rest = &key[open + 1..];
    match rest.iter().position(|&b| b == b'}') {
        Some(0) | None => key,
        Some(close) => &rest[..close],
    }
}

/// The slot of `key`.
pub(crate) fn slot(key: &[u8]) -> u16 {
    crc16(hashed(key)) % SLOTS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc16_is_xmodem() {
        // The standard check value of CRC-16/XMODEM.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(crc16(b""), 0);
    }

    #[test]
    fn slots_match_the_server() {
        // Values from `CLUSTER KEYSLOT` on Redis 7.
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"bar"), 5061);
        assert_eq!(slot(b"hello"), 866);
        assert_eq!(slot(b""), 0);
    }

    #[test]
    fn hash_tags() {
        let tagged = slot(b"user1000");
        assert_eq!(slot(b"{user1000}.following"), tagged);
        assert_eq!(slot(b"{user1000}.followers"), tagged);
        assert_eq!(slot(b"x{user1000}y{other}"), tagged, "the first tag counts");
        // An empty tag, or none closed, hashes the whole key.
        assert_eq!(slot(b"{}user"), crc16(b"{}user") % SLOTS);
        assert_eq!(slot(b"{user"), crc16(b"{user") % SLOTS);
        assert_eq!(slot(b"a{}{b}"), crc16(b"a{}{b}") % SLOTS);
        assert_eq!(slot(b"{{a}}"), crc16(b"{a") % SLOTS);
    }
}
