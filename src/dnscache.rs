//! The DNS answer cache: which names resolved to an address, so that a flow with no name of its
//! own (WhatsApp's chat protocol, ECH, QUIC without a readable hello) can be attributed to the
//! name its client looked up.
//!
//! Keyed by the answered address; each entry keeps the last [`NAMES_PER_ADDR`] names, lowercased,
//! with the time their answer stops being valid (packet time: TTL, clamped to
//! [`MIN_HOLD_SECS`]..[`MAX_HOLD_SECS`], because clients keep using an answer a little past its
//! TTL and hostile TTLs must not pin entries forever). At most `max_addrs` addresses are held;
//! when full, expired entries go first, then the entries closest to expiry, and every eviction
//! is counted. Memory: about 200 bytes per address with its names.
//!
//! Also remembers the names whose HTTPS records advertised ECH, and the ECH public names those
//! configurations carry, so that a ClientHello's ECH extension can be told real or GREASE.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use crate::time::Timestamp;

/// Names remembered per address (most recent first).
pub const NAMES_PER_ADDR: usize = 4;

/// Shortest time an answer is remembered, whatever its TTL (seconds).
pub const MIN_HOLD_SECS: u64 = 60;

/// Longest time an answer is remembered (seconds).
pub const MAX_HOLD_SECS: u64 = 24 * 3600;

/// Default number of addresses held.
pub const DEFAULT_MAX_ADDRS: usize = 65_536;

/// ECH public names held at most (learned from HTTPS records).
pub const MAX_ECH_NAMES: usize = 4096;

/// Public names of large ECH deployments, known without having seen their HTTPS records.
pub const KNOWN_ECH_PUBLIC_NAMES: &[&str] = &["cloudflare-ech.com"];

#[derive(Debug, Clone)]
struct Entry {
    names: Vec<(Box<[u8]>, Timestamp)>,
}

/// Cache counters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    /// Address → name pairs inserted.
    pub inserted: u64,
    /// Addresses evicted because the cache was full.
    pub evicted: u64,
    /// Lookups that found a valid name.
    pub hits: u64,
}

/// The answer cache.
pub struct DnsCache {
    map: HashMap<IpAddr, Entry, ahash::RandomState>,
    max_addrs: usize,
    ech_public: HashSet<Box<[u8]>, ahash::RandomState>,
    /// Counters.
    pub stats: CacheStats,
}

fn lower(name: &[u8]) -> Box<[u8]> {
    name.to_ascii_lowercase().into_boxed_slice()
}

impl DnsCache {
    /// A cache of at most `max_addrs` addresses.
    pub fn new(max_addrs: usize) -> Self {
        let mut ech_public = HashSet::with_hasher(ahash::RandomState::new());
        for n in KNOWN_ECH_PUBLIC_NAMES {
            ech_public.insert(lower(n.as_bytes()));
        }
        DnsCache { map: HashMap::with_hasher(ahash::RandomState::new()), max_addrs: max_addrs.max(1), ech_public, stats: CacheStats::default() }
    }

    /// Addresses held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Records that `name` resolved to `addr` at `now` with `ttl` seconds.
    pub fn insert(&mut self, addr: IpAddr, name: &[u8], ttl: u32, now: Timestamp) {
        let until = now.plus_secs((ttl as u64).clamp(MIN_HOLD_SECS, MAX_HOLD_SECS));
        // A name the address already has (the common case: the same lookup again) moves to the
        // front with its new expiry, without being copied again. Held names are lowercase, so
        // this is the match the general path below would remove.
        if let Some(names) = self.map.get_mut(&addr).map(|e| &mut e.names) {
            if let Some(i) = names.iter().position(|(n, _)| n.eq_ignore_ascii_case(name)) {
                if let Some(head) = names.get_mut(..=i) {
                    head.rotate_right(1);
                }
                if let Some(first) = names.first_mut() {
                    first.1 = until;
                }
                self.stats.inserted += 1;
                return;
            }
        }
        let name = lower(name);
        if !self.map.contains_key(&addr) && self.map.len() >= self.max_addrs {
            self.make_room(now);
        }
        let e = self.map.entry(addr).or_insert_with(|| Entry { names: Vec::new() });
        e.names.retain(|(n, _)| *n != name);
        e.names.insert(0, (name, until));
        e.names.truncate(NAMES_PER_ADDR);
        self.stats.inserted += 1;
    }

    /// Names that resolved to `addr` and are still valid at `now`, most recent first.
    pub fn lookup(&mut self, addr: &IpAddr, now: Timestamp) -> Vec<Box<[u8]>> {
        let Some(e) = self.map.get(addr) else { return Vec::new() };
        let names: Vec<Box<[u8]>> = e.names.iter().filter(|(_, t)| *t >= now).map(|(n, _)| n.clone()).collect();
        if !names.is_empty() {
            self.stats.hits += 1;
        }
        names
    }

    /// Remembers an ECH public name advertised in an HTTPS record.
    pub fn add_ech_public_name(&mut self, name: &[u8]) {
        if self.ech_public.len() < MAX_ECH_NAMES {
            self.ech_public.insert(lower(name));
        }
    }

    /// Is `sni` a known ECH public name (the outer SNI of real ECH)?
    pub fn is_ech_public_name(&self, sni: &[u8]) -> bool {
        self.ech_public.contains(&lower(sni)[..])
    }

    /// Drops expired entries; if none expired, the eighth of entries closest to expiry.
    fn make_room(&mut self, now: Timestamp) {
        let before = self.map.len();
        self.map.retain(|_, e| e.names.iter().any(|(_, t)| *t >= now));
        if self.map.len() == before {
            let n = (self.map.len() / 8).max(1);
            let mut ends: Vec<Timestamp> =
                self.map.values().map(|e| e.names.iter().map(|(_, t)| *t).max().unwrap_or_default()).collect();
            let (_, &mut cut, _) = ends.select_nth_unstable(n - 1);
            let mut budget = n;
            self.map.retain(|_, e| {
                let end = e.names.iter().map(|(_, t)| *t).max().unwrap_or_default();
                if budget > 0 && end <= cut {
                    budget -= 1;
                    false
                } else {
                    true
                }
            });
        }
        self.stats.evicted += (before - self.map.len()) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn names_expire_and_are_case_folded() {
        let mut c = DnsCache::new(10);
        let t0 = Timestamp::from_parts(1000, 0);
        c.insert(ip("157.240.1.53"), b"G.WhatsApp.net", 30, t0);
        assert_eq!(c.lookup(&ip("157.240.1.53"), t0.plus_secs(59)), vec![b"g.whatsapp.net".to_vec().into_boxed_slice()]);
        assert!(c.lookup(&ip("157.240.1.53"), t0.plus_secs(61)).is_empty(), "TTL 30 held the minimum 60 s");
        assert!(c.lookup(&ip("10.0.0.1"), t0).is_empty());
    }

    #[test]
    fn several_names_per_address_most_recent_first() {
        let mut c = DnsCache::new(10);
        let t = Timestamp::from_parts(0, 0);
        for n in ["a.example", "b.example", "c.example", "d.example", "e.example", "b.example"] {
            c.insert(ip("192.0.2.1"), n.as_bytes(), 300, t);
        }
        let got: Vec<String> = c.lookup(&ip("192.0.2.1"), t).iter().map(|n| String::from_utf8(n.to_vec()).unwrap()).collect();
        assert_eq!(got, ["b.example", "e.example", "d.example", "c.example"]);
    }

    #[test]
    fn a_name_answered_again_moves_to_the_front_with_its_new_expiry() {
        let mut c = DnsCache::new(10);
        let t0 = Timestamp::from_parts(0, 0);
        c.insert(ip("192.0.2.1"), b"A.example", 60, t0);
        c.insert(ip("192.0.2.1"), b"b.example", 60, t0);
        c.insert(ip("192.0.2.1"), b"a.EXAMPLE", 60, t0.plus_secs(50));
        assert_eq!(c.stats.inserted, 3);
        let at = |c: &mut DnsCache, secs| c.lookup(&ip("192.0.2.1"), t0.plus_secs(secs));
        assert_eq!(at(&mut c, 0), [b"a.example".to_vec().into_boxed_slice(), b"b.example".to_vec().into_boxed_slice()]);
        assert_eq!(at(&mut c, 100), [b"a.example".to_vec().into_boxed_slice()], "renewed at 50 s, b.example not");
    }

    #[test]
    fn full_cache_evicts_and_counts() {
        let mut c = DnsCache::new(16);
        let t = Timestamp::from_parts(0, 0);
        for i in 0..40u8 {
            c.insert(IpAddr::from([10, 0, 0, i]), b"x.example", 60 + i as u32 * 60, t);
        }
        assert!(c.len() <= 16);
        assert_eq!(c.stats.evicted as usize + c.len(), 40);
        assert!(!c.lookup(&IpAddr::from([10, 0, 0, 39]), t).is_empty(), "the longest-lived stays");
    }

    #[test]
    fn ech_public_names() {
        let mut c = DnsCache::new(1);
        assert!(c.is_ech_public_name(b"Cloudflare-ECH.com"));
        assert!(!c.is_ech_public_name(b"example.com"));
        c.add_ech_public_name(b"public.example");
        assert!(c.is_ech_public_name(b"public.example"));
    }
}
