//! One memory budget for everything flows hold while they are being identified: TCP
//! reassembly windows, TLS records read, SYN data, QUIC CRYPTO data (and, charged by the
//! engine beside them, IP fragments waiting for reassembly).
//!
//! Why one budget: each of those is bounded per flow, but a flood of flows that each park a
//! nearly complete hello (a record that announces 16 KiB and never completes) multiplies the
//! per-flow bound by the flow table's size: 60,000 such flows held 2.9 GiB before this
//! existed. With a budget, the oldest parked flows give up first (their probe is dropped, the
//! flow is bypassed and ends unnamed), counted in `Stats::memory_giveups`; flows that park
//! nothing are never touched.
//!
//! Cost of the bookkeeping: one ordered-map entry (about 40 bytes) per flow that holds
//! buffers, updated only when its footprint changes.

use std::collections::BTreeMap;

use crate::flow::key::Key;

/// Default budget: 256 MiB. With the default flow table (262,144 flows, about 54 MiB of base
/// state) the process stays under 512 MiB whatever the traffic parks.
pub const DEFAULT_BUDGET: usize = 256 << 20;

/// The bytes charged to the budget and the flows holding them, oldest first.
#[derive(Debug, Default)]
pub(super) struct Budget {
    limit: usize,
    held: usize,
    /// Flows holding buffers, by first-packet order (their `seq`).
    parked: BTreeMap<u64, Key>,
}

impl Budget {
    pub(super) fn new(limit: usize) -> Self {
        Budget { limit, held: 0, parked: BTreeMap::new() }
    }

    /// The flow `seq` (key `key`) now holds `now` bytes where it held `before`.
    pub(super) fn charge(&mut self, seq: u64, key: Key, before: usize, now: usize) {
        self.held = self.held - before.min(self.held) + now;
        match (before, now) {
            (0, n) if n > 0 => {
                self.parked.insert(seq, key);
            }
            (b, 0) if b > 0 => {
                self.parked.remove(&seq);
            }
            _ => {}
        }
    }

    /// Whether the bytes held, plus `extra` held elsewhere, exceed the budget.
    pub(super) fn over(&self, extra: usize) -> bool {
        self.held + extra > self.limit
    }

    /// The oldest flow holding buffers, taken off the list (the caller releases its bytes).
    pub(super) fn oldest(&mut self) -> Option<(u64, Key)> {
        self.parked.pop_first()
    }

    /// Releases `bytes` of a flow already taken off the list.
    pub(super) fn release(&mut self, bytes: usize) {
        self.held -= bytes.min(self.held);
    }

    /// Bytes held now.
    pub(super) fn held(&self) -> usize {
        self.held
    }

    /// The budget in bytes.
    pub(super) fn limit(&self) -> usize {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn key(port: u16) -> Key {
        let a = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let b = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        Key::new(a, port, b, 443, crate::flow::key::TCP).0
    }

    #[test]
    fn oldest_parked_flow_comes_first_and_bytes_balance() {
        let mut b = Budget::new(100);
        b.charge(5, key(5), 0, 40);
        b.charge(2, key(2), 0, 40);
        b.charge(9, key(9), 0, 10);
        assert!(!b.over(0));
        b.charge(9, key(9), 10, 30);
        assert!(b.over(0));
        assert_eq!(b.oldest().map(|(s, _)| s), Some(2));
        b.release(40);
        assert!(!b.over(0));
        assert!(!b.over(30) && b.over(31), "bytes held elsewhere count too");
        b.charge(5, key(5), 40, 0);
        assert_eq!(b.held(), 30);
        assert_eq!(b.oldest().map(|(s, _)| s), Some(9));
        assert_eq!(b.oldest(), None);
    }
}
