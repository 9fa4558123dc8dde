//! The bounded flow table.
//!
//! A hash map from [`Key`] to the engine's per-flow state, with idle timeouts driven by packet
//! time and a hard bound on the number of flows. Flows leave the table in three ways, each
//! counted: they time out ([`EndReason::Idle`]), the engine ends them (FIN/RST, port reuse:
//! [`EndReason::Closed`]), or the table is full and the least recently seen flows are evicted
//! ([`EndReason::Evicted`]). Ended flows are queued in [`Table::ended`] for the engine to report;
//! nothing leaves silently.
//!
//! Timeouts are checked by a sweep every [`SWEEP_INTERVAL_SECS`] of packet time, which costs one
//! pass over the table; between sweeps a flow may outlive its timeout by at most that interval.
//! The hasher is `ahash` with a per-process random key, so an attacker choosing addresses and
//! ports cannot aim collisions at one bucket.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::collections::HashMap;

use super::key::Key;
use crate::time::Timestamp;

/// Packet-time seconds between two timeout sweeps.
pub const SWEEP_INTERVAL_SECS: u64 = 5;

/// Share of the table evicted at once when it is full (1/8): amortises the eviction pass.
pub const EVICT_FRACTION: usize = 8;

/// What the table needs to know about a flow's state.
pub trait Expiry {
    /// Packet time of the flow's last packet.
    fn last_seen(&self) -> Timestamp;
    /// Idle seconds after which the flow is over (may depend on TCP state).
    fn idle_timeout_secs(&self) -> u64;
    /// The connection was closed (FIN both ways or RST) and only waits out its timeout: its end
    /// is reported as [`EndReason::Closed`] rather than [`EndReason::Idle`].
    fn is_closed(&self) -> bool {
        false
    }
}

/// Why a flow left the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// No packet for the flow's idle timeout.
    Idle,
    /// The connection closed (FIN both ways, RST) or its 5-tuple was reused by a new SYN.
    Closed,
    /// Evicted because the table was full.
    Evicted,
    /// Still open when the capture ended.
    CaptureEnd,
}

impl EndReason {
    /// Label used in counters and output.
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Idle => "idle",
            EndReason::Closed => "closed",
            EndReason::Evicted => "evicted",
            EndReason::CaptureEnd => "capture_end",
        }
    }
}

/// A flow that left the table, waiting to be reported.
#[derive(Debug)]
pub struct Ended<V> {
    /// Its key.
    pub key: Key,
    /// Its final state.
    pub state: V,
    /// Why it ended.
    pub reason: EndReason,
}

/// Table counters (read by the exporter).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct TableStats {
    /// Flows created.
    pub created: u64,
    /// Flows ended by their timeout (idle, or the short wait after a close).
    pub expired: u64,
    /// Flows evicted because the table was full.
    pub evicted: u64,
    /// Flows ended by the engine (close, reuse).
    pub closed: u64,
    /// Highest number of flows held at once.
    pub peak: u64,
}

/// A bounded flow table.
pub struct Table<V> {
    map: HashMap<Key, V, ahash::RandomState>,
    max_flows: usize,
    last_sweep: Option<Timestamp>,
    /// Flows that left the table and were not yet taken by the engine.
    pub ended: Vec<Ended<V>>,
    /// Counters.
    pub stats: TableStats,
}

impl<V: Expiry> Table<V> {
    /// A table holding at most `max_flows` flows (at least 1).
    pub fn new(max_flows: usize) -> Self {
        Table {
            map: HashMap::with_hasher(ahash::RandomState::new()),
            max_flows: max_flows.max(1),
            last_sweep: None,
            ended: Vec::new(),
            stats: TableStats::default(),
        }
    }

    /// Number of flows held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when no flow is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// The flow for `key`, if present.
    #[inline]
    pub fn get_mut(&mut self, key: &Key) -> Option<&mut V> {
        self.map.get_mut(key)
    }

    /// Looks `key` up without using the result, so that its table slot is in cache when the
    /// flow is handled a moment later. Looking up a batch of packets' flows back to back lets
    /// the CPU overlap the cache misses instead of paying them one after another.
    #[inline]
    pub fn warm(&self, key: &Key) {
        std::hint::black_box(self.map.get(key).map(|v| v.last_seen()));
    }

    /// Inserts a new flow, evicting the least recently seen flows first if the table is full.
    pub fn insert(&mut self, key: Key, state: V) -> &mut V {
        if self.map.len() >= self.max_flows {
            self.evict_oldest();
        }
        self.stats.created += 1;
        self.stats.peak = self.stats.peak.max(self.map.len() as u64 + 1);
        self.map.entry(key).insert_entry(state).into_mut()
    }

    /// Ends a flow on the engine's request (close, reuse).
    pub fn close(&mut self, key: &Key) {
        if let Some(state) = self.map.remove(key) {
            self.stats.closed += 1;
            self.ended.push(Ended { key: *key, state, reason: EndReason::Closed });
        }
    }

    /// Runs a timeout sweep if [`SWEEP_INTERVAL_SECS`] of packet time passed since the last one.
    #[inline]
    pub fn tick(&mut self, now: Timestamp) {
        match self.last_sweep {
            None => self.last_sweep = Some(now),
            Some(last) if now.micros_since(last) >= SWEEP_INTERVAL_SECS * 1_000_000 => {
                self.last_sweep = Some(now);
                self.sweep(now);
            }
            Some(_) => {}
        }
    }

    /// Ends every flow idle for longer than its timeout at `now`.
    pub fn sweep(&mut self, now: Timestamp) {
        let before = self.ended.len();
        self.ended.extend(
            self.map
                .extract_if(|_, v| now.micros_since(v.last_seen()) > v.idle_timeout_secs() * 1_000_000)
                .map(|(key, state)| {
                    let reason = if state.is_closed() { EndReason::Closed } else { EndReason::Idle };
                    Ended { key, state, reason }
                }),
        );
        self.stats.expired += (self.ended.len() - before) as u64;
    }

    /// Evicts the least recently seen 1/[`EVICT_FRACTION`] of the table.
    fn evict_oldest(&mut self) {
        let n = (self.map.len() / EVICT_FRACTION).max(1);
        let mut seen: Vec<Timestamp> = self.map.values().map(|v| v.last_seen()).collect();
        let (_, &mut threshold, _) = seen.select_nth_unstable(n - 1);
        let mut budget = n;
        let before = self.ended.len();
        self.ended.extend(
            self.map
                .extract_if(|_, v| {
                    if budget > 0 && v.last_seen() <= threshold {
                        budget -= 1;
                        true
                    } else {
                        false
                    }
                })
                .map(|(key, state)| Ended { key, state, reason: EndReason::Evicted }),
        );
        self.stats.evicted += (self.ended.len() - before) as u64;
    }

    /// Ends every flow (the capture is over), one at a time in the order of `order`, so that
    /// the caller can report each before the next is taken out: nothing is held twice.
    pub fn drain_in_order<K: Ord>(&mut self, order: impl Fn(&V) -> K) -> impl Iterator<Item = Ended<V>> + '_ {
        let mut keys: Vec<(K, Key)> = self.map.iter().map(|(k, v)| (order(v), *k)).collect();
        keys.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let keys: Vec<Key> = keys.into_iter().map(|(_, k)| k).collect();
        keys.into_iter().filter_map(move |key| {
            self.map.remove(&key).map(|state| Ended { key, state, reason: EndReason::CaptureEnd })
        })
    }

    /// Ends every flow (the capture is over).
    pub fn drain_all(&mut self) {
        self.ended.extend(
            self.map.drain().map(|(key, state)| Ended { key, state, reason: EndReason::CaptureEnd }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::key::TCP;

    struct F(Timestamp, u64);
    impl Expiry for F {
        fn last_seen(&self) -> Timestamp {
            self.0
        }
        fn idle_timeout_secs(&self) -> u64 {
            self.1
        }
    }

    fn key(port: u16) -> Key {
        Key::new("10.0.0.1".parse().unwrap(), port, "10.0.0.2".parse().unwrap(), 443, TCP).0
    }

    #[test]
    fn idle_flows_expire_on_sweep() {
        let mut t = Table::new(10);
        t.insert(key(1), F(Timestamp::from_parts(0, 0), 60));
        t.insert(key(2), F(Timestamp::from_parts(50, 0), 60));
        t.tick(Timestamp::from_parts(0, 0));
        t.tick(Timestamp::from_parts(100, 0));
        assert_eq!(t.len(), 1);
        assert_eq!(t.ended.len(), 1);
        assert_eq!(t.ended[0].reason, EndReason::Idle);
        assert_eq!(t.stats.expired, 1);
    }

    #[test]
    fn full_table_evicts_least_recent() {
        let mut t = Table::new(16);
        for p in 0..16u16 {
            t.insert(key(p), F(Timestamp::from_parts(p as i64, 0), 600));
        }
        t.insert(key(100), F(Timestamp::from_parts(100, 0), 600));
        assert_eq!(t.len(), 16 - 2 + 1);
        assert_eq!(t.stats.evicted, 2);
        let mut gone: Vec<u16> = t.ended.iter().map(|e| e.key.lo().port()).collect();
        gone.sort();
        assert_eq!(gone, vec![0, 1]);
        assert!(t.ended.iter().all(|e| e.reason == EndReason::Evicted));
    }

    #[test]
    fn close_and_drain_report_everything() {
        let mut t = Table::new(4);
        t.insert(key(1), F(Timestamp(0), 1));
        t.insert(key(2), F(Timestamp(0), 1));
        t.close(&key(1));
        t.close(&key(9));
        t.drain_all();
        assert_eq!(t.ended.len(), 2);
        assert_eq!(t.stats.closed, 1);
        assert!(t.is_empty());
    }
}
