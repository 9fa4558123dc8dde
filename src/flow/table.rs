//! The bounded flow table.
//!
//! A hash index from [`Key`] to the engine's per-flow state, with idle timeouts driven by packet
//! time and a hard bound on the number of flows. Flows leave the table in three ways, each
//! counted: they time out ([`EndReason::Idle`]), the engine ends them (FIN/RST, port reuse:
//! [`EndReason::Closed`]), or the table is full and the least recently seen flow is evicted
//! ([`EndReason::Evicted`]). Ended flows are queued in [`Table::ended`] for the engine to report;
//! nothing leaves silently.
//!
//! Layout, built for one hash per packet:
//! - the caller hashes a key once ([`Table::hash`], a [`KeyHash`]) and passes that hash to
//!   [`Table::warm`], [`Table::find_mut`], [`Table::insert_hashed`] and [`Table::close_hashed`];
//! - the index is a `hashbrown::HashTable` of 4-byte slots into a slab of entries (key, hash,
//!   state), so growing the index moves 4-byte slots, never flow states, and never rehashes a key
//!   (each entry keeps its hash);
//! - two sets of per-second buckets hold every flow once each: by **deadline** (last seen plus its
//!   idle timeout) for expiry, and by **last-seen second** for eviction. Neither is touched by a
//!   packet of a known flow: a bucket is re-checked lazily when its second comes (expiry) or when
//!   it is the oldest (eviction), and a flow seen since it was filed is filed again where it now
//!   belongs. Removing a flow takes it out of both in O(1) (swap-remove at a recorded place).
//!
//! Timeouts are still checked every [`SWEEP_INTERVAL_SECS`] of packet time, so flows end at the
//! same packet time as with a full sweep (between sweeps a flow may outlive its timeout by at
//! most that interval), but a sweep only opens the deadline buckets whose second has come: it
//! costs O(buckets passed + flows due), not O(flows held). Eviction takes the first filed flow of
//! the oldest last-seen second in O(1) amortised: least recently seen to the second, and within
//! a second in filing order (a flow that leaves a bucket early gives its place to the last filed).
//!
//! The hasher is `ahash` with a random key per table (from the operating system's generator), so
//! an attacker choosing addresses and ports cannot aim collisions at one bucket. The key is
//! symmetric ([`Key::new`]): both directions of a conversation hash alike.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::collections::btree_map;
use std::collections::{BTreeMap, VecDeque};

use hashbrown::HashTable;
use slab::Slab;

use super::key::Key;
use crate::time::Timestamp;

/// Packet-time seconds between two timeout checks.
pub const SWEEP_INTERVAL_SECS: u64 = 5;

/// Width of one expiry or eviction bucket, in microseconds of packet time (one second).
pub const BUCKET_MICROS: i64 = 1_000_000;

/// Most flows one table can index: slots are 4-byte indices. Far above
/// `config::MAX_ENGINE_FLOWS`; [`Table::new`] clamps to it.
pub const MAX_SLOTS: usize = u32::MAX as usize;

/// What the table needs to know about a flow's state.
///
/// The table files a flow by its deadline (`last_seen` plus `idle_timeout_secs`) and re-reads
/// both lazily. `last_seen` may only grow; the timeout may grow at any time, but when it
/// **shrinks** (a TCP close, a flow found to be DNS) the owner calls [`Table::reschedule`], or the
/// flow would end late.
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

/// A key's hash under one table's hasher, computed once per packet by [`Table::hash`] and
/// reused for every lookup and insertion of that packet. Only meaningful for the table that
/// made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyHash(u64);

/// Where a flow is filed in one set of buckets: the bucket's second and the position in it.
#[derive(Debug, Clone, Copy)]
struct Place {
    sec: i64,
    at: u32,
}

/// One flow in the slab.
struct Entry<V> {
    key: Key,
    hash: u64,
    state: V,
    /// In the deadline buckets.
    due: Place,
    /// In the last-seen buckets.
    seen: Place,
}

/// Slots filed by second. Every slot is in exactly one bucket and knows its [`Place`].
#[derive(Debug, Default)]
struct Buckets {
    map: BTreeMap<i64, Bucket>,
    /// Queues of emptied seconds, kept for the next seconds (at most [`SPARE_BUCKETS`]): a new
    /// second then costs no allocation.
    spare: Vec<VecDeque<u32>>,
}

/// Emptied bucket queues kept for reuse, per bucket set.
const SPARE_BUCKETS: usize = 64;

/// The slots of one second, in filing order (taken from the front when evicting). A place's
/// `at` is absolute: its index in the queue plus `head`, the number taken from the front so far,
/// so taking from the front moves no other place.
#[derive(Debug, Default)]
struct Bucket {
    head: u32,
    slots: VecDeque<u32>,
}

impl Buckets {
    /// Keeps an emptied queue for a later second.
    fn recycle(&mut self, mut q: VecDeque<u32>) {
        if self.spare.len() < SPARE_BUCKETS {
            q.clear();
            self.spare.push(q);
        }
    }

    fn push(&mut self, sec: i64, slot: u32) -> Place {
        let spare = &mut self.spare;
        let b = self.map.entry(sec).or_insert_with(|| Bucket { head: 0, slots: spare.pop().unwrap_or_default() });
        let at = b.head.wrapping_add(u32::try_from(b.slots.len()).unwrap_or(u32::MAX));
        b.slots.push_back(slot);
        Place { sec, at }
    }

    /// Takes the slot at `place` out; returns the slot that took its position (its place's `at`
    /// becomes `place.at`).
    fn remove(&mut self, place: Place) -> Option<u32> {
        let btree_map::Entry::Occupied(mut e) = self.map.entry(place.sec) else { return None };
        let b = e.get_mut();
        let i = place.at.wrapping_sub(b.head) as usize;
        if i >= b.slots.len() {
            return None;
        }
        b.slots.swap_remove_back(i);
        let moved = b.slots.get(i).copied();
        if b.slots.is_empty() {
            let q = e.remove().slots;
            self.recycle(q);
        }
        moved
    }
}

/// The bucket second of a packet time.
#[inline]
fn second(ts: Timestamp) -> i64 {
    ts.0.div_euclid(BUCKET_MICROS)
}

/// Microseconds of `secs` seconds (saturating).
#[inline]
fn micros(secs: u64) -> u64 {
    secs.saturating_mul(1_000_000)
}

/// The second of a flow's deadline: it is over at any time after `last_seen + timeout`.
#[inline]
fn due_second<V: Expiry>(v: &V) -> i64 {
    let timeout = i64::try_from(micros(v.idle_timeout_secs())).unwrap_or(i64::MAX);
    second(Timestamp(v.last_seen().0.saturating_add(timeout)))
}

/// Whether a flow is past its idle timeout at `now` (the rule of every sweep).
#[inline]
fn is_over<V: Expiry>(v: &V, now: Timestamp) -> bool {
    now.micros_since(v.last_seen()) > micros(v.idle_timeout_secs())
}

/// Which bucket set a removal leaves alone (the caller holds that bucket already).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Keep {
    Neither,
    Due,
    Seen,
    /// Both sets were dropped (a drain in progress).
    Both,
}

/// A bounded flow table.
pub struct Table<V> {
    hasher: ahash::RandomState,
    index: HashTable<u32>,
    slab: Slab<Entry<V>>,
    due: Buckets,
    seen: Buckets,
    max_flows: usize,
    last_sweep: Option<Timestamp>,
    /// Flows that left the table and were not yet taken by the engine.
    pub ended: Vec<Ended<V>>,
    /// Counters.
    pub stats: TableStats,
}

impl<V: Expiry> Table<V> {
    /// A table holding at most `max_flows` flows (at least 1, at most [`MAX_SLOTS`]).
    pub fn new(max_flows: usize) -> Self {
        Table {
            hasher: ahash::RandomState::new(),
            index: HashTable::new(),
            slab: Slab::new(),
            due: Buckets::default(),
            seen: Buckets::default(),
            max_flows: max_flows.clamp(1, MAX_SLOTS),
            last_sweep: None,
            ended: Vec::new(),
            stats: TableStats::default(),
        }
    }

    /// Number of flows held.
    pub fn len(&self) -> usize {
        self.slab.len()
    }

    /// True when no flow is held.
    pub fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }

    /// The hash of `key` for this table: compute it once per packet and pass it on.
    #[inline]
    pub fn hash(&self, key: &Key) -> KeyHash {
        KeyHash(self.hasher.hash_one(key))
    }

    #[inline]
    fn slot_of(&self, key: &Key, hash: KeyHash) -> Option<u32> {
        let slab = &self.slab;
        self.index.find(hash.0, |&s| slab.get(s as usize).is_some_and(|e| e.key == *key)).copied()
    }

    /// The flow for `key`, if present (hashes the key: prefer [`Table::find_mut`] on the packet
    /// path).
    #[inline]
    pub fn get_mut(&mut self, key: &Key) -> Option<&mut V> {
        let hash = self.hash(key);
        self.find_mut(key, hash)
    }

    /// The flow for `key`, whose hash is `hash`, if present.
    #[inline]
    pub fn find_mut(&mut self, key: &Key, hash: KeyHash) -> Option<&mut V> {
        let slot = self.slot_of(key, hash)?;
        self.slab.get_mut(slot as usize).map(|e| &mut e.state)
    }

    /// Looks `key` up without using the result, so that its index slot and entry are in cache
    /// when the flow is handled a moment later. Looking up a batch of packets' flows back to back
    /// lets the CPU overlap the cache misses instead of paying them one after another.
    #[inline]
    pub fn warm(&self, key: &Key, hash: KeyHash) {
        let slot = self.slot_of(key, hash);
        std::hint::black_box(slot.and_then(|s| self.slab.get(s as usize)).map(|e| e.state.last_seen()));
    }

    /// Inserts a new flow (hashing its key), evicting the least recently seen flow first if the
    /// table is full.
    pub fn insert(&mut self, key: Key, state: V) -> &mut V {
        let hash = self.hash(&key);
        self.insert_hashed(key, hash, state)
    }

    /// Inserts a new flow for `key` (not present), whose hash is `hash`, evicting the least
    /// recently seen flow first if the table is full.
    pub fn insert_hashed(&mut self, key: Key, hash: KeyHash, state: V) -> &mut V {
        while self.slab.len() >= self.max_flows && self.evict_oldest() {}
        self.stats.created += 1;
        self.stats.peak = self.stats.peak.max(self.slab.len() as u64 + 1);
        let slot = self.slab.vacant_key();
        let s32 = u32::try_from(slot).unwrap_or(u32::MAX);
        let slab = &self.slab;
        self.index.insert_unique(hash.0, s32, |&s| slab.get(s as usize).map_or(0, |e| e.hash));
        let due = self.due.push(due_second(&state), s32);
        let seen = self.seen.push(second(state.last_seen()), s32);
        let entry = self.slab.vacant_entry().insert(Entry { key, hash: hash.0, state, due, seen });
        &mut entry.state
    }

    /// Ends a flow on the engine's request (close, reuse).
    pub fn close(&mut self, key: &Key) {
        let hash = self.hash(key);
        self.close_hashed(key, hash);
    }

    /// Ends the flow of `key`, whose hash is `hash`, on the engine's request (close, reuse).
    pub fn close_hashed(&mut self, key: &Key, hash: KeyHash) {
        if let Some(e) = self.slot_of(key, hash).and_then(|s| self.take(s, Keep::Neither)) {
            self.stats.closed += 1;
            self.ended.push(Ended { key: e.key, state: e.state, reason: EndReason::Closed });
        }
    }

    /// Files the flow of `key` again by its deadline: call it when its idle timeout shrank.
    pub fn reschedule(&mut self, key: &Key, hash: KeyHash) {
        let Some(slot) = self.slot_of(key, hash) else { return };
        let Some(place) = self.slab.get(slot as usize).map(|e| e.due) else { return };
        if let Some(moved) = self.due.remove(place) {
            if let Some(m) = self.slab.get_mut(moved as usize) {
                m.due.at = place.at;
            }
        }
        if let Some(e) = self.slab.get_mut(slot as usize) {
            e.due = self.due.push(due_second(&e.state), slot);
        }
    }

    /// Takes the flow in `slot` out of the slab, the index and the buckets (but `keep`).
    fn take(&mut self, slot: u32, keep: Keep) -> Option<Entry<V>> {
        let e = self.slab.try_remove(slot as usize)?;
        if let Ok(found) = self.index.find_entry(e.hash, |&s| s == slot) {
            found.remove();
        }
        if !matches!(keep, Keep::Due | Keep::Both) {
            if let Some(moved) = self.due.remove(e.due) {
                if let Some(m) = self.slab.get_mut(moved as usize) {
                    m.due.at = e.due.at;
                }
            }
        }
        if !matches!(keep, Keep::Seen | Keep::Both) {
            if let Some(moved) = self.seen.remove(e.seen) {
                if let Some(m) = self.slab.get_mut(moved as usize) {
                    m.seen.at = e.seen.at;
                }
            }
        }
        Some(e)
    }

    /// Checks timeouts if [`SWEEP_INTERVAL_SECS`] of packet time passed since the last check.
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

    /// Ends every flow idle for longer than its timeout at `now`: opens the deadline buckets up
    /// to `now`'s second, ends their flows that are over and files the others again by their
    /// current deadline.
    pub fn sweep(&mut self, now: Timestamp) {
        let n = second(now);
        let before = self.ended.len();
        while let Some(first) = self.due.map.first_entry() {
            let sec = *first.key();
            if sec > n {
                break;
            }
            let mut slots = first.remove().slots;
            for slot in slots.drain(..) {
                let Some(e) = self.slab.get(slot as usize) else { continue };
                if is_over(&e.state, now) {
                    if let Some(e) = self.take(slot, Keep::Due) {
                        let reason = if e.state.is_closed() { EndReason::Closed } else { EndReason::Idle };
                        self.ended.push(Ended { key: e.key, state: e.state, reason });
                    }
                } else {
                    // Not over: its deadline is at or after `now`, so in second `n` or later.
                    let sec = due_second(&e.state).max(n);
                    let place = self.due.push(sec, slot);
                    if let Some(e) = self.slab.get_mut(slot as usize) {
                        e.due = place;
                    }
                }
            }
            self.due.recycle(slots);
            if sec == n {
                // Refiled flows of this second wait for the next sweep.
                break;
            }
        }
        self.stats.expired += (self.ended.len() - before) as u64;
    }

    /// Evicts one flow of the oldest last-seen second; false if none is held. Flows seen since
    /// they were filed move to their current second on the way.
    fn evict_oldest(&mut self) -> bool {
        while let Some(mut first) = self.seen.map.first_entry() {
            let sec = *first.key();
            let b = first.get_mut();
            // The first filed of the oldest second.
            let Some(slot) = b.slots.pop_front() else {
                let q = first.remove().slots;
                self.seen.recycle(q);
                continue;
            };
            b.head = b.head.wrapping_add(1);
            if b.slots.is_empty() {
                let q = first.remove().slots;
                self.seen.recycle(q);
            }
            let Some(now_sec) = self.slab.get(slot as usize).map(|e| second(e.state.last_seen())) else { continue };
            if now_sec > sec {
                let place = self.seen.push(now_sec, slot);
                if let Some(e) = self.slab.get_mut(slot as usize) {
                    e.seen = place;
                }
                continue;
            }
            if let Some(e) = self.take(slot, Keep::Seen) {
                self.stats.evicted += 1;
                self.ended.push(Ended { key: e.key, state: e.state, reason: EndReason::Evicted });
                return true;
            }
        }
        false
    }

    /// Ends every flow (the capture is over), one at a time in the order of `order`, so that
    /// the caller can report each before the next is taken out: nothing is held twice. The
    /// buckets are dropped at once rather than flow by flow; if the iterator is dropped before
    /// the end, the flows left are filed again and the table works on as before.
    pub fn drain_in_order<K: Ord>(&mut self, order: impl Fn(&V) -> K) -> impl Iterator<Item = Ended<V>> + '_ {
        let mut slots: Vec<(K, u32)> =
            self.slab.iter().map(|(s, e)| (order(&e.state), u32::try_from(s).unwrap_or(u32::MAX))).collect();
        slots.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let slots: Vec<u32> = slots.into_iter().map(|(_, s)| s).collect();
        self.due.map.clear();
        self.seen.map.clear();
        DrainInOrder { table: self, slots: slots.into_iter() }
    }

    /// Files every flow again in both bucket sets (after an interrupted drain).
    fn refile_all(&mut self) {
        self.due.map.clear();
        self.seen.map.clear();
        for (slot, e) in self.slab.iter_mut() {
            let slot = u32::try_from(slot).unwrap_or(u32::MAX);
            e.due = self.due.push(due_second(&e.state), slot);
            e.seen = self.seen.push(second(e.state.last_seen()), slot);
        }
    }

    /// Ends every flow (the capture is over).
    pub fn drain_all(&mut self) {
        self.index.clear();
        self.due.map.clear();
        self.seen.map.clear();
        self.ended.extend(
            self.slab.drain().map(|e| Ended { key: e.key, state: e.state, reason: EndReason::CaptureEnd }),
        );
    }
}

/// The iterator of [`Table::drain_in_order`].
struct DrainInOrder<'a, V: Expiry> {
    table: &'a mut Table<V>,
    slots: std::vec::IntoIter<u32>,
}

impl<V: Expiry> Iterator for DrainInOrder<'_, V> {
    type Item = Ended<V>;

    fn next(&mut self) -> Option<Ended<V>> {
        for slot in self.slots.by_ref() {
            if let Some(e) = self.table.take(slot, Keep::Both) {
                return Some(Ended { key: e.key, state: e.state, reason: EndReason::CaptureEnd });
            }
        }
        None
    }
}

impl<V: Expiry> Drop for DrainInOrder<'_, V> {
    fn drop(&mut self) {
        if !self.table.slab.is_empty() {
            self.table.refile_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::key::TCP;
    use std::collections::BTreeMap;

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
        t.insert(key(101), F(Timestamp::from_parts(101, 0), 600));
        assert_eq!(t.len(), 16);
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

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_parts(secs, 0)
    }

    fn ports(ended: &[Ended<F>]) -> Vec<u16> {
        ended.iter().map(|e| e.key.lo().port()).collect()
    }

    #[test]
    fn flow_touched_late_is_not_expired_early() {
        let mut t = Table::new(10);
        t.insert(key(1), F(at(0), 60));
        t.insert(key(2), F(at(0), 60));
        // Seen again at 50 s: filed by its first deadline (60 s), it must be refiled, not ended.
        t.get_mut(&key(1)).unwrap().0 = at(50);
        t.sweep(at(100));
        assert_eq!(ports(&t.ended), vec![2]);
        t.sweep(at(110));
        assert_eq!(t.len(), 1, "110 s is exactly 60 s after 50 s: not yet over");
        t.sweep(Timestamp(110_000_001));
        assert_eq!(ports(&t.ended), vec![2, 1]);
        assert_eq!(t.stats.expired, 2);
        assert!(t.is_empty());
    }

    #[test]
    fn shortened_timeout_is_rescheduled() {
        let mut t = Table::new(10);
        let k = key(1);
        let h = t.hash(&k);
        t.insert_hashed(k, h, F(at(0), 300));
        t.find_mut(&k, h).unwrap().1 = 5;
        t.reschedule(&k, h);
        t.sweep(at(6));
        assert_eq!(ports(&t.ended), vec![1]);
    }

    #[test]
    fn expiry_order_across_many_buckets() {
        let mut t = Table::new(1000);
        // Flow p is last seen at p/4 s with a timeout of 10 + (p % 7) s.
        for p in 0..200u16 {
            t.insert(key(p), F(Timestamp(p as i64 * 250_000), 10 + (p % 7) as u64));
        }
        let mut now = at(0);
        t.tick(now);
        let mut seen = Vec::new();
        while !t.is_empty() {
            now = now.plus_secs(1);
            t.tick(now);
            for e in t.ended.drain(..) {
                let p = e.key.lo().port();
                let over = Timestamp(p as i64 * 250_000 + (10 + (p % 7) as i64) * 1_000_000);
                // Ended at the first check after its deadline, not before, not later.
                assert!(now > over, "{p} ended early");
                assert!(now.micros_since(over) <= SWEEP_INTERVAL_SECS * 1_000_000, "{p} ended late");
                seen.push(p);
            }
        }
        seen.sort();
        assert_eq!(seen, (0..200).collect::<Vec<_>>());
        assert_eq!(t.stats.expired, 200);
    }

    #[test]
    fn eviction_picks_the_least_recently_seen() {
        let mut t = Table::new(8);
        for p in 0..8u16 {
            t.insert(key(p), F(at(p as i64), 600));
        }
        // 0 and 1 are seen again last: 2 is now the least recently seen, then 3, ...
        t.get_mut(&key(0)).unwrap().0 = at(20);
        t.get_mut(&key(1)).unwrap().0 = at(21);
        for p in 100..108u16 {
            t.insert(key(p), F(at(30 + p as i64), 600));
        }
        assert_eq!(ports(&t.ended), vec![2, 3, 4, 5, 6, 7, 0, 1]);
        assert_eq!(t.stats.evicted, 8);
        assert_eq!(t.len(), 8);
    }

    #[test]
    fn eviction_within_one_second_goes_by_arrival() {
        // A busy link fills the table within one second: the first flows go first, not the
        // newest (which would end every new flow at once).
        let mut t = Table::new(8);
        for p in 0..8u16 {
            t.insert(key(p), F(Timestamp(p as i64 * 1_000), 600));
        }
        t.close(&key(3));
        t.ended.clear();
        for p in 100..106u16 {
            t.insert(key(p), F(Timestamp(10_000 + p as i64), 600));
        }
        // 3 left early: its place went to the last filed of that second (7), which is the one
        // exception to arrival order.
        assert_eq!(ports(&t.ended), vec![0, 1, 2, 7, 4]);
        check_invariants(&t);
    }

    #[test]
    fn one_hash_serves_warm_find_insert_and_close() {
        let mut t = Table::new(4);
        let (k, _) = Key::new("10.0.0.9".parse().unwrap(), 5000, "10.0.0.2".parse().unwrap(), 443, TCP);
        let (back, _) = Key::new("10.0.0.2".parse().unwrap(), 443, "10.0.0.9".parse().unwrap(), 5000, TCP);
        let h = t.hash(&k);
        assert_eq!(h, t.hash(&back), "both directions hash alike");
        t.warm(&k, h);
        assert!(t.find_mut(&k, h).is_none());
        t.insert_hashed(k, h, F(at(3), 60));
        t.warm(&k, h);
        assert_eq!(t.find_mut(&k, h).map(|f| f.0), Some(at(3)));
        assert_eq!(t.get_mut(&back).map(|f| f.0), Some(at(3)), "same result as hashing again");
        t.insert(key(7), F(at(4), 60));
        assert_eq!(t.find_mut(&key(7), t.hash(&key(7))).map(|f| f.0), Some(at(4)));
        t.close_hashed(&k, h);
        assert!(t.find_mut(&k, h).is_none() && t.get_mut(&k).is_none());
        assert_eq!(t.stats.closed, 1);
        assert_eq!(t.len(), 1);
        // Another table has another hasher key.
        let other: Table<F> = Table::new(4);
        let same = (0..64u16).filter(|&p| other.hash(&key(p)) == t.hash(&key(p))).count();
        assert!(same < 64);
    }

    #[test]
    fn drain_in_order_follows_the_order_and_empties_everything() {
        let mut t = Table::new(64);
        for p in 0..40u16 {
            t.insert(key(p), F(at(p as i64 % 5), 60 + p as u64));
        }
        let order: Vec<u16> = t.drain_in_order(|f| std::cmp::Reverse(f.1)).map(|e| e.key.lo().port()).collect();
        assert_eq!(order, (0..40).rev().collect::<Vec<_>>());
        assert!(t.is_empty() && t.due.map.is_empty() && t.seen.map.is_empty());
        assert_eq!(t.index.len(), 0);
    }

    #[test]
    fn interrupted_drain_leaves_a_working_table() {
        let mut t = Table::new(64);
        for p in 0..10u16 {
            t.insert(key(p), F(at(p as i64), 10));
        }
        let first: Vec<u16> = t.drain_in_order(|f| f.0).take(4).map(|e| e.key.lo().port()).collect();
        assert_eq!(first, vec![0, 1, 2, 3]);
        assert_eq!(t.len(), 6);
        check_invariants(&t);
        t.sweep(Timestamp(16_000_001));
        assert_eq!(ports(&t.ended), vec![4, 5, 6]);
        assert_eq!(t.len(), 3);
        check_invariants(&t);
    }

    #[test]
    fn entry_overhead_stays_small() {
        // docs/architecture.md "Memory per flow": key, hash and two places around the state.
        assert!(std::mem::size_of::<Entry<[u64; 13]>>() <= 104 + 80);
    }

    /// A tiny deterministic generator (xorshift64*): no crate for the property test.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    /// The reference: a `BTreeMap` and linear scans, the way the table used to work.
    #[derive(Default)]
    struct Model {
        flows: BTreeMap<Key, (Timestamp, u64)>,
    }

    impl Model {
        fn expired(&mut self, now: Timestamp) -> Vec<Key> {
            let over: Vec<Key> = self
                .flows
                .iter()
                .filter(|(_, (last, timeout))| now.micros_since(*last) > timeout * 1_000_000)
                .map(|(k, _)| *k)
                .collect();
            for k in &over {
                self.flows.remove(k);
            }
            over
        }
        fn oldest_second(&self) -> Option<i64> {
            self.flows.values().map(|(last, _)| last.0.div_euclid(1_000_000)).min()
        }
    }

    /// Every bucket entry points at a live slot that knows its place; every flow is in each set
    /// once and in no bucket after its real deadline second.
    fn check_invariants(t: &Table<F>) {
        let mut due = 0;
        for (sec, b) in &t.due.map {
            assert!(!b.slots.is_empty());
            for (i, &s) in b.slots.iter().enumerate() {
                let e = t.slab.get(s as usize).expect("live slot");
                assert_eq!((e.due.sec, e.due.at), (*sec, b.head.wrapping_add(i as u32)));
                assert!(*sec <= due_second(&e.state), "filed after its deadline");
                due += 1;
            }
        }
        let mut seen = 0;
        for (sec, b) in &t.seen.map {
            assert!(!b.slots.is_empty());
            for (i, &s) in b.slots.iter().enumerate() {
                let e = t.slab.get(s as usize).expect("live slot");
                assert_eq!((e.seen.sec, e.seen.at), (*sec, b.head.wrapping_add(i as u32)));
                assert!(*sec <= second(e.state.last_seen()));
                seen += 1;
            }
        }
        assert_eq!((due, seen, t.index.len()), (t.len(), t.len(), t.len()));
    }

    #[test]
    fn behaves_like_a_map_with_linear_scans() {
        for seed in 1..=4u64 {
            let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ seed);
            let max = 16;
            let mut t: Table<F> = Table::new(max);
            let mut m = Model::default();
            let mut now = Timestamp::from_parts(1_700_000_000, 0);
            for step in 0..3000 {
                match rng.below(10) {
                    // A packet: an existing flow is seen again, maybe with a longer or (rescheduled)
                    // shorter timeout; a new one is created, evicting if full.
                    0..=5 => {
                        let k = key(rng.below(96) as u16);
                        let h = t.hash(&k);
                        let timeout = [1, 5, 10, 60, 300][rng.below(5) as usize];
                        if let Some(f) = t.find_mut(&k, h) {
                            let (last, old) = m.flows.get_mut(&k).expect("model has it");
                            // Last seen only grows (the engine ignores an older timestamp).
                            f.0 = f.0.max(now);
                            *last = f.0;
                            if rng.below(4) == 0 {
                                f.1 = timeout;
                                *old = timeout;
                                t.reschedule(&k, h);
                            }
                        } else {
                            assert!(!m.flows.contains_key(&k), "step {step}: the model holds {k:?}");
                            let full = m.flows.len() >= max;
                            let oldest = m.oldest_second();
                            t.insert_hashed(k, h, F(now, timeout));
                            if full {
                                let e = t.ended.pop().expect("an eviction");
                                assert_eq!(e.reason, EndReason::Evicted);
                                let (last, _) = m.flows.remove(&e.key).expect("evicted a held flow");
                                assert_eq!(Some(last.0.div_euclid(1_000_000)), oldest, "not the oldest second");
                            }
                            m.flows.insert(k, (now, timeout));
                        }
                    }
                    6 => {
                        let k = key(rng.below(96) as u16);
                        t.close(&k);
                        match (m.flows.remove(&k), t.ended.pop()) {
                            (Some(_), Some(e)) => assert_eq!((e.key, e.reason), (k, EndReason::Closed)),
                            (None, None) => {}
                            other => panic!("step {step}: close disagrees: {:?}", other.0),
                        }
                    }
                    // Time passes (sometimes a lot, sometimes backwards a little), the table ticks.
                    _ => {
                        let jump = match rng.below(8) {
                            0 => rng.below(400_000_000) as i64,
                            1 => -(rng.below(2_000_000) as i64),
                            _ => rng.below(3_000_000) as i64,
                        };
                        now = Timestamp(now.0 + jump);
                        let sweeps = t.last_sweep.is_some_and(|l| now.micros_since(l) >= SWEEP_INTERVAL_SECS * 1_000_000);
                        t.tick(now);
                        let mut got: Vec<Key> = t.ended.drain(..).map(|e| e.key).collect();
                        got.sort();
                        let want = if sweeps { m.expired(now) } else { Vec::new() };
                        assert_eq!(got, want, "step {step}: different flows expired at {now}");
                    }
                }
                assert_eq!(t.len(), m.flows.len());
                if step % 64 == 0 {
                    check_invariants(&t);
                }
            }
            check_invariants(&t);
            assert!(t.stats.evicted > 0 && t.stats.expired > 0 && t.stats.closed > 0, "{:?}", t.stats);
            let mut rest: Vec<Key> = t.drain_in_order(|f| f.0).map(|e| e.key).collect();
            rest.sort();
            assert_eq!(rest, m.flows.keys().copied().collect::<Vec<_>>());
        }
    }
}
