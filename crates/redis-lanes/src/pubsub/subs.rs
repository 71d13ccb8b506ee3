//! The subscriptions a subscriber holds, by kind, and the commands that change them.

use std::collections::BTreeSet;

/// The three independent kinds of subscription Redis keeps per connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SubKind {
    /// `SUBSCRIBE` / `UNSUBSCRIBE`.
    Channel,
    /// `PSUBSCRIBE` / `PUNSUBSCRIBE`.
    Pattern,
    /// `SSUBSCRIBE` / `SUNSUBSCRIBE`.
    Shard,
}

impl SubKind {
    pub(super) const ALL: [SubKind; 3] = [SubKind::Channel, SubKind::Pattern, SubKind::Shard];

    /// The command that subscribes (`on`) or unsubscribes this kind.
    pub(super) fn command(self, on: bool) -> &'static str {
        match (self, on) {
            (SubKind::Channel, true) => "SUBSCRIBE",
            (SubKind::Pattern, true) => "PSUBSCRIBE",
            (SubKind::Shard, true) => "SSUBSCRIBE",
            (SubKind::Channel, false) => "UNSUBSCRIBE",
            (SubKind::Pattern, false) => "PUNSUBSCRIBE",
            (SubKind::Shard, false) => "SUNSUBSCRIBE",
        }
    }
}

/// The channels, patterns and shard channels the server has confirmed.
///
/// Kept by the driver from the server's own confirmations (not from what was asked),
/// so it is what the server had when a connection ends, and what a reconnection restores.
/// Sorted sets: re-subscribing happens in a stable order, which keeps logs and tests
/// deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Subscriptions {
    sets: [BTreeSet<Vec<u8>>; 3],
}

impl Subscriptions {
    fn index(kind: SubKind) -> usize {
        match kind {
            SubKind::Channel => 0,
            SubKind::Pattern => 1,
            SubKind::Shard => 2,
        }
    }

    pub(super) fn of(&self, kind: SubKind) -> &BTreeSet<Vec<u8>> {
        &self.sets[Self::index(kind)]
    }

    /// Applies one confirmation.
    pub(super) fn apply(&mut self, kind: SubKind, on: bool, name: Option<&[u8]>) {
        let Some(name) = name else { return };
        let set = &mut self.sets[Self::index(kind)];
        if on {
            set.insert(name.to_vec());
        } else {
            set.remove(name);
        }
    }

    /// The commands that restore every subscription on a new connection, with the names
    /// whose confirmations each must see, in order. Shard channels get one command each: in a cluster all
    /// channels of one `SSUBSCRIBE` must share a slot, and splitting costs nothing here.
    pub(super) fn restore_commands(&self) -> Vec<(SubKind, redis::Cmd, Vec<Vec<u8>>)> {
        let mut out = Vec::new();
        for kind in SubKind::ALL {
            let set = self.of(kind);
            if set.is_empty() {
                continue;
            }
            if kind == SubKind::Shard {
                for name in set {
                    let mut cmd = redis::cmd(kind.command(true));
                    cmd.arg(name);
                    out.push((kind, cmd, vec![name.clone()]));
                }
            } else {
                let mut cmd = redis::cmd(kind.command(true));
                for name in set {
                    cmd.arg(name);
                }
                out.push((kind, cmd, set.iter().cloned().collect()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confirmations_build_the_set_and_restore_it() {
        let mut subs = Subscriptions::default();
        subs.apply(SubKind::Channel, true, Some(b"a"));
        subs.apply(SubKind::Channel, true, Some(b"b"));
        subs.apply(SubKind::Channel, true, Some(b"a"));
        subs.apply(SubKind::Pattern, true, Some(b"p*"));
        subs.apply(SubKind::Shard, true, Some(b"s1"));
        subs.apply(SubKind::Shard, true, Some(b"s2"));
        subs.apply(SubKind::Channel, false, Some(b"b"));
        subs.apply(SubKind::Pattern, false, None);
        assert_eq!(subs.of(SubKind::Channel).len(), 1);

        let restore = subs.restore_commands();
        let packed: Vec<(SubKind, Vec<u8>, usize)> = restore
            .into_iter()
            .map(|(k, c, names)| (k, c.get_packed_command(), names.len()))
            .collect();
        assert_eq!(packed.len(), 4);
        assert_eq!(
            packed[0].1,
            redis::cmd("SUBSCRIBE").arg("a").get_packed_command()
        );
        assert_eq!(
            packed[1].1,
            redis::cmd("PSUBSCRIBE").arg("p*").get_packed_command()
        );
        assert_eq!(
            packed[2].1,
            redis::cmd("SSUBSCRIBE").arg("s1").get_packed_command()
        );
        assert_eq!(packed[3].2, 1);

        subs.apply(SubKind::Channel, false, Some(b"a"));
        subs.apply(SubKind::Pattern, false, Some(b"p*"));
        subs.apply(SubKind::Shard, false, Some(b"s1"));
        subs.apply(SubKind::Shard, false, Some(b"s2"));
        assert!(SubKind::ALL.iter().all(|&k| subs.of(k).is_empty()));
        assert!(subs.restore_commands().is_empty());
    }
}
