//! The rollup in memory, sans-IO: finished flows in, per-day deltas out.
//!
//! [`Rollup::add`] counts a flow the way the daemon's aggregation does (the shared
//! [`crate::aggregate::place`]: department × service × channel × category × status, with
//! `_uncatalogued` for named destinations outside the catalog and unnamed flows per department
//! and reason), on the UTC day of the flow's first packet. Every flow's client also counts as an
//! active host of its department. A flow its server never answered ([`FlowRecord::answered`]) is
//! not use: it is counted apart per department and service label
//! ([`crate::aggregate::unanswered_service`]) and adds no active host, no group and no coverage
//! (unless the configuration in force counts unanswered flows as use: [`ConfigFacts::unanswered`]).
//! Hosts enter sketches as keyed hashes ([`super::keys`]); no
//! address is kept. Beside usage, each day collects coverage facts (packets, capture statistics,
//! flows by naming signal, ECH flows), sensor uptime, which key ids hashed it and which
//! configurations were in force. [`Rollup::take`] hands the accumulated [`Delta`] to the store.
//!
//! A flow counted under `_uncatalogued` is also counted under the registrable domain of the
//! name it was named by ([`crate::classify::domain::flow_domain`]), organisation-wide, with its
//! hosts in a sketch like a group's: what the report lists as destinations outside the catalog.
//! A day holds at most [`MAX_UNCATALOGUED_DOMAINS`] domains; flows of further domains are
//! counted in [`RollupStats::uncatalogued_dropped`] only.

use std::collections::{BTreeMap, BTreeSet};

use time::Date;

use super::keys::Keyring;
use super::sketch::Sketch;
use crate::aggregate::{place, unanswered_service, GroupKey, Placement, Unanswered};
use crate::classify::catalog::Catalog;
use crate::classify::Attribution;
use crate::engine::FlowRecord;
use crate::intern::Sym;
use crate::report::input::Exemption;
use crate::time::Timestamp;

/// Registrable domains outside the catalog counted per day at most, the aggregation's bound
/// (each costs a row with a sketch of at most 3 KiB, so about 30 MiB for a day at the bound).
pub use crate::aggregate::MAX_UNCATALOGUED_DOMAINS;

/// Counters and hosts of one group on one day.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Usage {
    /// Flows.
    pub flows: u64,
    /// Bytes client → server.
    pub bytes_up: u64,
    /// Bytes server → client.
    pub bytes_down: u64,
    /// Distinct hosts.
    pub hosts: Sketch,
}

impl Usage {
    fn count(&mut self, r: &FlowRecord, host: Option<u64>) {
        self.flows += 1;
        self.bytes_up += r.bytes_up;
        self.bytes_down += r.bytes_down;
        if let Some(h) = host {
            self.hosts.insert(h);
        }
    }

    fn merge(&mut self, o: &Usage) {
        self.flows += o.flows;
        self.bytes_up += o.bytes_up;
        self.bytes_down += o.bytes_down;
        self.hosts.merge(&o.hosts);
    }
}

/// What a day says about the sensor's view, for the report's methodology.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayCoverage {
    /// Packets the sensor processed.
    pub packets: u64,
    /// Packets the capture layer received (live interfaces).
    pub capture_received: u64,
    /// Packets dropped before the sensor saw them (kernel and interface).
    pub capture_dropped: u64,
    /// Flows with real ECH (not GREASE).
    pub ech_flows: u64,
    /// Flows by the signal that named or attributed them: the catalog match's signal (`sni`,
    /// `quic_sni`, `http_host`, `connect`, `dns`, `marker`, `ja4`, `cidr`, `association`, `asn`), or for a
    /// named destination outside the catalog the naming signal.
    pub named_by_signal: BTreeMap<String, u64>,
}

/// The configuration in force, as reports cite it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFacts {
    /// SHA-256 of the service catalog.
    pub catalog_digest: String,
    /// SHA-256 of the configuration file.
    pub config_digest: String,
    /// Minimum group size k.
    pub min_group_size: u64,
    /// Whether unanswered flows counted as use (`[engine] count_unanswered`): what the rollup
    /// applies from [`Rollup::set_config`] on, and what reports say about the period.
    pub unanswered: Unanswered,
    /// Exemptions as configured.
    pub exemptions: Vec<Exemption>,
}

/// One day's delta.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Day {
    /// Per group.
    pub usage: BTreeMap<GroupKey, Usage>,
    /// Active hosts per department.
    pub active: BTreeMap<Sym, Sketch>,
    /// Unnamed flows per (department, reason).
    pub unnamed: BTreeMap<(Sym, &'static str), u64>,
    /// Flows their server never answered per (department, service label): not use.
    pub unanswered: BTreeMap<(Sym, Sym), u64>,
    /// Flows to named destinations outside the catalog, per registrable domain
    /// (organisation-wide, at most [`MAX_UNCATALOGUED_DOMAINS`]).
    pub uncatalogued: BTreeMap<String, Usage>,
    /// Coverage.
    pub coverage: DayCoverage,
    /// Seconds of uptime per sensor name.
    pub uptime: BTreeMap<String, u64>,
    /// Ids of the keys that hashed the day's hosts.
    pub key_ids: BTreeSet<u64>,
    /// Configurations in force.
    pub configs: Vec<ConfigFacts>,
}

impl Day {
    /// Rows this day writes (what the pending bound counts).
    pub fn rows(&self) -> usize {
        self.usage.len()
            + self.active.len()
            + self.unnamed.len()
            + self.unanswered.len()
            + self.uncatalogued.len()
            + self.uptime.len()
            + self.key_ids.len()
            + self.configs.iter().map(|c| 1 + c.exemptions.len()).sum::<usize>()
            + self.coverage.named_by_signal.len()
            + 1
    }

    fn merge(&mut self, o: Day) {
        for (k, u) in o.usage {
            self.usage.entry(k).or_default().merge(&u);
        }
        for (d, s) in o.active {
            self.active.entry(d).or_default().merge(&s);
        }
        for (k, n) in o.unnamed {
            *self.unnamed.entry(k).or_default() += n;
        }
        for (k, n) in o.unanswered {
            *self.unanswered.entry(k).or_default() += n;
        }
        for (domain, u) in o.uncatalogued {
            // Two deltas of one day can hold more domains together than one day may: the
            // further ones are left out (their flows stay in the `_uncatalogued` group).
            if let Some(mine) = self.uncatalogued.get_mut(&domain) {
                mine.merge(&u);
            } else if self.uncatalogued.len() < MAX_UNCATALOGUED_DOMAINS {
                self.uncatalogued.insert(domain, u);
            }
        }
        let (c, oc) = (&mut self.coverage, o.coverage);
        c.packets += oc.packets;
        c.capture_received += oc.capture_received;
        c.capture_dropped += oc.capture_dropped;
        c.ech_flows += oc.ech_flows;
        for (s, n) in oc.named_by_signal {
            *c.named_by_signal.entry(s).or_default() += n;
        }
        for (s, n) in o.uptime {
            *self.uptime.entry(s).or_default() += n;
        }
        self.key_ids.extend(o.key_ids);
        for cf in o.configs {
            self.note_config(&cf);
        }
    }

    fn note_config(&mut self, c: &ConfigFacts) {
        if !self.configs.contains(c) {
            self.configs.push(c.clone());
        }
    }
}

/// What a flush writes: days, and the keyring when it changed (new or expired keys).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Delta {
    /// Per UTC day.
    pub days: BTreeMap<Date, Day>,
    /// The whole keyring, when it changed since the last take.
    pub keys: Option<Keyring>,
}

impl Delta {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.days.is_empty() && self.keys.is_none()
    }

    /// Rows it writes.
    pub fn rows(&self) -> usize {
        self.days.values().map(Day::rows).sum()
    }

    /// Adds `newer` (taken after `self`) to this delta.
    pub fn merge(&mut self, newer: Delta) {
        for (day, d) in newer.days {
            self.days.entry(day).or_default().merge(d);
        }
        if newer.keys.is_some() {
            self.keys = newer.keys;
        }
    }

    /// Drops the oldest days until at most `max_rows` rows remain; returns the rows dropped.
    pub fn truncate(&mut self, max_rows: usize) -> u64 {
        let mut rows = self.rows();
        let mut dropped = 0;
        while rows > max_rows {
            let Some((_, d)) = self.days.pop_first() else { break };
            rows -= d.rows();
            dropped += d.rows() as u64;
        }
        dropped
    }
}

/// Cumulative counters of the sensor, observed now and then; their increase is attributed to
/// the day of the newest flow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Packets processed.
    pub packets: u64,
    /// Packets received by the capture layer.
    pub capture_received: u64,
    /// Packets dropped before the sensor saw them.
    pub capture_dropped: u64,
}

/// What the rollup could not do, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RollupStats {
    /// Keys drawn (first use of a year).
    pub keys_drawn: u64,
    /// Keys deleted (years past their grace).
    pub keys_expired: u64,
    /// Flows whose host could not be hashed (no key could be drawn): counted without a host.
    pub key_failures: u64,
    /// Flows with a timestamp outside the calendar (corrupt records): not counted.
    pub out_of_range: u64,
    /// Flows to a domain outside the catalog that a day could not count per domain (it already
    /// held [`MAX_UNCATALOGUED_DOMAINS`]): still in the `_uncatalogued` group.
    pub uncatalogued_dropped: u64,
}

/// The in-memory rollup.
#[derive(Debug)]
pub struct Rollup {
    keys: Keyring,
    keys_dirty: bool,
    key_grace_days: u32,
    sensor: String,
    config: Option<ConfigFacts>,
    days: BTreeMap<Date, Day>,
    newest: Option<Timestamp>,
    seen: Counters,
    /// Counters.
    pub stats: RollupStats,
}

impl Rollup {
    /// A rollup hashing hosts under `keys` (the store's: [`super::Store::keyring`]), for the
    /// sensor named `sensor`; keys of years ended more than `key_grace_days` before the newest
    /// flow are deleted at the next [`Rollup::take`].
    pub fn new(keys: Keyring, sensor: impl Into<String>, key_grace_days: u32) -> Rollup {
        Rollup {
            keys,
            keys_dirty: false,
            key_grace_days,
            sensor: sensor.into(),
            config: None,
            days: BTreeMap::new(),
            newest: None,
            seen: Counters::default(),
            stats: RollupStats::default(),
        }
    }

    /// The configuration in force from now on (recorded on every day that gets data).
    pub fn set_config(&mut self, facts: ConfigFacts) {
        self.config = Some(facts);
    }

    /// Changes the key grace (a reloaded configuration).
    pub fn set_key_grace_days(&mut self, days: u32) {
        self.key_grace_days = days;
    }

    fn day(&mut self, date: Date) -> &mut Day {
        let d = self.days.entry(date).or_default();
        if let Some(c) = &self.config {
            d.note_config(c);
        }
        d
    }

    /// Counts one finished flow with its attribution.
    pub fn add(&mut self, r: &FlowRecord, a: &Attribution, catalog: &Catalog) {
        let Some(date) = r.ts_start.utc_date() else {
            self.stats.out_of_range += 1;
            return;
        };
        self.newest = Some(self.newest.map_or(r.ts_start, |n| n.max(r.ts_start)));
        let placement = place(r, a, catalog);
        let sensor = &self.sensor;
        let counts_as_use = self.config.as_ref().map(|c| c.unanswered).unwrap_or_default().counts_as_use(r);
        let d = self.days.entry(date).or_default();
        if let Some(c) = &self.config {
            d.note_config(c);
        }
        // A sensor that contributed flows to a day is listed for it, even with no uptime yet.
        if !d.uptime.contains_key(sensor) {
            d.uptime.insert(sensor.clone(), 0);
        }
        if !r.answered() {
            *d.unanswered.entry((a.department, unanswered_service(&placement))).or_default() += 1;
        }
        if !counts_as_use {
            // No host of it is hashed: it is nobody's use.
            return;
        }
        let hashed = match self.keys.get_or_draw(date.year()) {
            Ok((key, drawn)) => {
                if drawn {
                    self.keys_dirty = true;
                    self.stats.keys_drawn += 1;
                }
                Some((key.id, key.hash(r.client.ip())))
            }
            Err(_) => {
                self.stats.key_failures += 1;
                None
            }
        };
        let d = self.days.entry(date).or_default();
        if let Some((id, h)) = hashed {
            d.key_ids.insert(id);
            if let Some(s) = d.active.get_mut(&a.department) {
                s.insert(h);
            } else {
                let mut s = Sketch::new();
                s.insert(h);
                d.active.insert(a.department, s);
            }
        }
        let details = r.details.as_deref();
        if details.is_some_and(|d| d.client_hello().is_some_and(|h| h.ech) && !d.ech_grease) {
            d.coverage.ech_flows += 1;
        }
        let signal = match (a.target, a.signal) {
            (Some(_), Some(s)) => Some(s.as_str()),
            _ => r.signal.map(|s| s.as_str()),
        };
        if let Some(s) = signal {
            // The label is allocated once a day, not once a flow.
            match d.coverage.named_by_signal.get_mut(s) {
                Some(n) => *n += 1,
                None => {
                    d.coverage.named_by_signal.insert(s.to_string(), 1);
                }
            }
        }
        match placement {
            Placement::Unnamed(reason) => *d.unnamed.entry((a.department, reason)).or_default() += 1,
            Placement::Group(key) => {
                let uncatalogued = key.service == Sym::UNCATALOGUED;
                let u = d.usage.entry(key).or_default();
                u.flows += 1;
                u.bytes_up += r.bytes_up;
                u.bytes_down += r.bytes_down;
                if let Some((_, h)) = hashed {
                    u.hosts.insert(h);
                }
                if let Some(domain) = uncatalogued.then(|| crate::classify::domain::flow_domain(r)).flatten() {
                    let full = d.uncatalogued.len() >= MAX_UNCATALOGUED_DOMAINS;
                    match d.uncatalogued.get_mut(&domain) {
                        Some(u) => u.count(r, hashed.map(|x| x.1)),
                        None if full => self.stats.uncatalogued_dropped += 1,
                        None => d.uncatalogued.entry(domain).or_default().count(r, hashed.map(|x| x.1)),
                    }
                }
            }
        }
    }

    /// Records the sensor's cumulative counters: their increase since the last observation goes
    /// to the day of the newest flow (kept for later while no flow has been seen). A counter
    /// that went down (a restarted source) counts from zero.
    pub fn observe(&mut self, now: Counters) {
        let Some(date) = self.newest.and_then(|t| t.utc_date()) else { return };
        let inc = |new: u64, old: u64| if new >= old { new - old } else { new };
        let (p, r, dr) = (
            inc(now.packets, self.seen.packets),
            inc(now.capture_received, self.seen.capture_received),
            inc(now.capture_dropped, self.seen.capture_dropped),
        );
        self.seen = now;
        if p == 0 && r == 0 && dr == 0 {
            return;
        }
        let c = &mut self.day(date).coverage;
        c.packets += p;
        c.capture_received += r;
        c.capture_dropped += dr;
    }

    /// Adds the sensor's running time from `from` to `to` (Unix seconds, wall clock for a
    /// daemon, capture span for a survey), split across UTC days.
    pub fn add_uptime(&mut self, from: i64, to: i64) {
        let mut t = from;
        while t < to {
            let day_end = (t.div_euclid(86_400) + 1).saturating_mul(86_400);
            let until = day_end.min(to);
            if let Some(date) = crate::time::from_unix_day(t.div_euclid(86_400)) {
                let sensor = self.sensor.clone();
                *self.day(date).uptime.entry(sensor).or_default() += (until - t) as u64;
            }
            t = until;
        }
    }

    /// Rows waiting for the next take.
    pub fn pending_rows(&self) -> usize {
        self.days.values().map(Day::rows).sum()
    }

    /// The first and last day with data since the last take.
    pub fn span(&self) -> Option<(Date, Date)> {
        Some((*self.days.first_key_value()?.0, *self.days.last_key_value()?.0))
    }

    /// Everything accumulated since the last take; expires keys past their grace first.
    pub fn take(&mut self) -> Delta {
        if let Some(newest) = self.newest.and_then(|t| t.utc_date()) {
            let expired = self.keys.expire(newest, self.key_grace_days);
            if !expired.is_empty() {
                self.stats.keys_expired += expired.len() as u64;
                self.keys_dirty = true;
            }
        }
        let keys = std::mem::take(&mut self.keys_dirty).then(|| self.keys.clone());
        Delta { days: std::mem::take(&mut self.days), keys }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::tests_support::{catalog, flow, wa};
    use crate::classify::Status;
    use crate::engine::Unnamed;

    const DAY: i64 = 86_400;
    /// 2026-03-02, a Monday.
    const MONDAY: i64 = 20_514 * DAY;

    fn unnamed(dept: &str) -> Attribution {
        Attribution { target: None, status: Some(Status::Unknown), ..wa(dept) }
    }

    #[test]
    fn groups_and_days_like_the_aggregation() {
        let c = catalog();
        let mut r = Rollup::new(Keyring::default(), "s1", 7);
        r.add(&flow("10.0.0.1:1", MONDAY + 10), &wa("finance"), &c);
        r.add(&flow("10.0.0.1:2", MONDAY + 20), &wa("finance"), &c);
        r.add(&flow("10.0.0.2:1", MONDAY + DAY - 1), &wa("finance"), &c);
        r.add(&flow("10.0.0.2:1", MONDAY + DAY), &wa("finance"), &c);
        let mut f = flow("10.0.0.3:1", MONDAY + 30);
        f.unnamed = Some(Unnamed::TlsNoSni);
        r.add(&f, &unnamed("legal"), &c);
        let uncat = Attribution { target: None, status: None, ..wa("legal") };
        r.add(&flow("10.0.0.3:1", MONDAY + 40), &uncat, &c);
        assert_eq!(r.span().map(|(a, b)| (crate::time::unix_day(a), crate::time::unix_day(b))), Some((20_514, 20_515)));
        let d = r.take();
        assert!(r.take().is_empty(), "take empties the rollup");
        let monday = &d.days[&crate::time::from_unix_day(20_514).unwrap()];
        let wa_key = |dept: &str| GroupKey {
            department: dept.into(),
            service: "whatsapp".into(),
            channel: "default".into(),
            category: "messaging".into(),
            status: crate::aggregate::GroupStatus::Policy(crate::classify::Status::Unsanctioned),
        };
        let u = &monday.usage[&wa_key("finance")];
        assert_eq!((u.flows, u.bytes_up, u.bytes_down, u.hosts.estimate()), (3, 300, 3000, 2));
        let un = monday.usage.keys().find(|k| k.service == crate::aggregate::UNCATALOGUED).unwrap();
        assert_eq!((un.department.as_str(), un.status.as_str()), ("legal", crate::aggregate::UNCATALOGUED));
        assert_eq!(monday.unnamed[&(Sym::from("legal"), "tls_no_sni")], 1);
        assert_eq!(monday.active[&Sym::from("finance")].estimate(), 2);
        assert_eq!(monday.active[&Sym::from("legal")].estimate(), 1, "an unnamed flow's client is active too");
        let tuesday = &d.days[&crate::time::from_unix_day(20_515).unwrap()];
        assert_eq!(tuesday.usage[&wa_key("finance")].flows, 1, "the day of the flow's start");
        assert_eq!(monday.key_ids, tuesday.key_ids, "one key for the year");
        assert_eq!(d.keys.as_ref().map(Keyring::len), Some(1), "the new key goes to the store");
    }

    #[test]
    fn unanswered_flows_are_counted_apart_not_as_use() {
        use crate::aggregate::tests_support::unanswered;
        let c = catalog();
        let mut r = Rollup::new(Keyring::default(), "s1", 7);
        for i in 1..=5 {
            let mut f = unanswered(&format!("10.0.0.{i}:1"), MONDAY + i);
            f.signal = Some(crate::engine::Signal::Sni);
            r.add(&f, &wa("finance"), &c);
        }
        r.add(&unanswered("10.0.0.6:1", MONDAY + 9), &unnamed("legal"), &c);
        let d = r.take();
        let monday = &d.days[&crate::time::from_unix_day(20_514).unwrap()];
        assert!(monday.usage.is_empty(), "no group: {:?}", monday.usage);
        assert!(monday.active.is_empty(), "no active host");
        assert!(monday.unnamed.is_empty() && monday.coverage.named_by_signal.is_empty() && monday.coverage.ech_flows == 0, "no coverage");
        let mut apart: Vec<_> = monday.unanswered.iter().map(|((d, s), n)| (d.as_str(), s.as_str(), *n)).collect();
        apart.sort();
        assert_eq!(apart, [("finance", "whatsapp", 5), ("legal", crate::aggregate::UNNAMED, 1)]);

        // The same plus one answered flow: only that one counts.
        for i in 1..=5 {
            r.add(&unanswered(&format!("10.0.0.{i}:1"), MONDAY + i), &wa("finance"), &c);
        }
        r.add(&flow("10.0.0.9:1", MONDAY + 20), &wa("finance"), &c);
        let d = r.take();
        let monday = &d.days[&crate::time::from_unix_day(20_514).unwrap()];
        let u: Vec<_> = monday.usage.values().map(|u| (u.flows, u.hosts.estimate())).collect();
        assert_eq!(u, [(1, 1)]);
        assert_eq!(monday.active[&Sym::from("finance")].estimate(), 1);
        assert_eq!(monday.unanswered[&(Sym::from("finance"), Sym::from("whatsapp"))], 5);
        assert_eq!(monday.rows(), 1 + 1 + 1 + 1 + 1 + 1, "usage, active, unanswered, uptime, key, coverage");

        // A configuration that counts them as use (a one-direction tap).
        r.set_config(ConfigFacts { catalog_digest: "c".into(), config_digest: "f".into(), min_group_size: 1, unanswered: Unanswered::AsUse, exemptions: vec![] });
        r.add(&unanswered("10.0.0.1:1", MONDAY + 30), &wa("finance"), &c);
        let d = r.take();
        let monday = &d.days[&crate::time::from_unix_day(20_514).unwrap()];
        assert_eq!(monday.usage.values().map(|u| u.flows).sum::<u64>(), 1);
        assert_eq!(monday.active[&Sym::from("finance")].estimate(), 1);
        assert_eq!(monday.unanswered.values().sum::<u64>(), 1, "still counted apart");
        assert_eq!(monday.configs[0].unanswered, Unanswered::AsUse);
    }

    #[test]
    fn coverage_uptime_and_configs() {
        let c = catalog();
        let mut r = Rollup::new(Keyring::default(), "sensor-a", 7);
        r.observe(Counters { packets: 5, ..Counters::default() });
        let facts = ConfigFacts { catalog_digest: "c1".into(), config_digest: "f1".into(), min_group_size: 5, unanswered: Unanswered::Apart, exemptions: vec![] };
        r.set_config(facts.clone());
        let mut f = flow("10.0.0.1:1", MONDAY + 10);
        f.signal = Some(crate::engine::Signal::Sni);
        let mut a = wa("finance");
        a.signal = Some(crate::classify::MatchSignal::Name(crate::engine::Signal::Sni));
        r.add(&f, &a, &c);
        r.observe(Counters { packets: 12, capture_received: 20, capture_dropped: 1 });
        r.add_uptime(MONDAY + DAY - 100, MONDAY + DAY + 50);
        let d = r.take();
        let monday = &d.days[&crate::time::from_unix_day(20_514).unwrap()];
        assert_eq!(monday.coverage.packets, 12, "packets seen before the first flow are kept for its day");
        assert_eq!((monday.coverage.capture_received, monday.coverage.capture_dropped), (20, 1));
        assert_eq!(monday.coverage.named_by_signal["sni"], 1);
        assert_eq!(monday.uptime["sensor-a"], 100);
        assert_eq!(d.days.len(), 2);
        assert_eq!(d.days[&crate::time::from_unix_day(20_515).unwrap()].uptime["sensor-a"], 50);
        assert_eq!(monday.configs, vec![facts]);
    }

    #[test]
    fn keys_expire_by_packet_time() {
        let c = catalog();
        let mut r = Rollup::new(Keyring::default(), "s", 7);
        let jan_2026 = 20_454 * DAY; // 2026-01-01
        r.add(&flow("10.0.0.1:1", jan_2026 - DAY), &wa("finance"), &c);
        r.add(&flow("10.0.0.1:1", jan_2026 + 3 * DAY), &wa("finance"), &c);
        assert_eq!(r.take().keys.unwrap().len(), 2, "2025 still in its grace");
        assert_eq!(r.take().keys, None, "unchanged keyring: nothing to write");
        r.add(&flow("10.0.0.1:1", jan_2026 + 7 * DAY), &wa("finance"), &c);
        let keys = r.take().keys.unwrap();
        assert_eq!(keys.keys().map(|k| k.year).collect::<Vec<_>>(), vec![2026]);
        assert_eq!(r.stats.keys_expired, 1);
    }

    #[test]
    fn deltas_merge_and_truncate_oldest_first() {
        let c = catalog();
        let mut r = Rollup::new(Keyring::default(), "s", 7);
        r.add(&flow("10.0.0.1:1", MONDAY), &wa("finance"), &c);
        let mut a = r.take();
        r.add(&flow("10.0.0.2:1", MONDAY), &wa("finance"), &c);
        r.add(&flow("10.0.0.2:1", MONDAY + DAY), &wa("finance"), &c);
        a.merge(r.take());
        let monday = &a.days[&crate::time::from_unix_day(20_514).unwrap()];
        let u = monday.usage.values().next().unwrap();
        assert_eq!((u.flows, u.hosts.estimate()), (2, 2));
        let rows = a.rows();
        let tuesday_rows = a.days.last_key_value().unwrap().1.rows();
        assert_eq!(a.truncate(tuesday_rows), (rows - tuesday_rows) as u64);
        assert_eq!(a.days.len(), 1);
        assert_eq!(crate::time::unix_day(*a.days.keys().next().unwrap()), 20_515, "the newest day is kept");
    }
}
