//! Per-department aggregation with privacy by design: what `shadowtap run` exports.
//!
//! Every finished flow with its [`Attribution`] is added to a group (department × service ×
//! channel × category × status): flows, bytes each way, and the distinct hosts that used it,
//! held as keyed pseudonyms ([`pseudonym`]) with the packet time each was last seen. Distinct
//! counts over the 1 h, 24 h, 7 d and 30 d windows are exact: a window counts the pseudonyms
//! last seen inside it. Memory: 16 bytes per (group, host) pair, bounded by
//! [`MAX_HOSTS_PER_GROUP`] (a group that reaches it stops adding hosts and is flagged); pairs not
//! seen for 30 days are dropped.
//!
//! Minimum group size k: a group's own series appear only once it has k distinct hosts in the
//! 30-day window ("revealed", and revealed for good, so counters stay monotonic); until then its
//! flows and bytes are added to its department's `_suppressed` series and its host counts are not
//! exported. A department with fewer than k active hosts has no active-host series. Suppressions
//! are counted. Addresses never leave this module; with `reveal_hosts` off they are not even kept.
//!
//! Use needs an exchange: a flow its server never answered ([`FlowRecord::answered`]: a spoofed
//! or blocked connection attempt, a scan) adds no active host and nothing to any group. It is
//! counted apart per department and service ([`Snapshot::unanswered`]) under the same minimum
//! group size: a (department, service) pair is named once k distinct hosts sent it unanswered
//! flows within 30 days, and is folded into `_suppressed` until then. A sensor that sees one
//! direction of traffic only sees every flow unanswered; [`Unanswered::AsUse`] then counts them
//! as use too (and still apart, so that it shows).
//!
//! Discovery: a flow counted under [`UNCATALOGUED`] is also counted under the registrable domain
//! of its name ([`crate::classify::domain::flow_domain`]), organisation-wide, with the hosts that
//! used it over the last 24 h ([`UNCATALOGUED_WINDOW`]). The snapshot names the
//! [`UNCATALOGUED_TOP`] domains with the most hosts, each with at least k of them, and nothing
//! of the others. Memory: at most [`MAX_UNCATALOGUED_DOMAINS`] domains of at most
//! [`MAX_HOSTS_PER_DOMAIN`] hosts (16 bytes each: 40 MiB at the bound); a flow of a further
//! domain is counted in [`Snapshot::uncatalogued_dropped`] only. Not kept in the saved state: the
//! window fills again after a restart.

pub mod pseudonym;
pub mod state;

use std::collections::{HashMap, HashSet};

use pseudonym::{Pseudonym, Pseudonymizer};

use crate::classify::catalog::Catalog;
use crate::classify::{Attribution, Status};
use crate::engine::FlowRecord;
use crate::intern::Sym;
use crate::time::Timestamp;

/// Window lengths, with their label.
pub const WINDOWS: [(&str, u64); 4] = [("1h", 3600), ("24h", 86_400), ("7d", 7 * 86_400), ("30d", 30 * 86_400)];

/// Distinct hosts remembered per group at most (1 MiB per group at 16 bytes a host).
pub const MAX_HOSTS_PER_GROUP: usize = 65_536;

/// Registrable domains outside the catalog tracked at once (over [`UNCATALOGUED_WINDOW`]).
pub const MAX_UNCATALOGUED_DOMAINS: usize = 10_000;

/// Distinct hosts remembered per domain outside the catalog: the top list's counts stop there
/// (4 KiB per domain at 16 bytes a host).
pub const MAX_HOSTS_PER_DOMAIN: usize = 256;

/// The window (label and seconds) over which hosts of domains outside the catalog are counted.
pub const UNCATALOGUED_WINDOW: (&str, u64) = WINDOWS[1];

/// Domains outside the catalog named by the snapshot at most (the top of the list by hosts).
pub const UNCATALOGUED_TOP: usize = 20;

/// Label value of groups folded for privacy.
pub const SUPPRESSED: &str = "_suppressed";

/// Label value of flows whose named destination is not in the catalog.
pub const UNCATALOGUED: &str = "_uncatalogued";

/// Service label of an unanswered flow whose destination stayed unnamed (and matched no
/// catalog range): in `shadowtap_unanswered_flows_total` and the store's unanswered rows.
pub const UNNAMED: &str = "_unnamed";

/// What a flow its server never answered ([`FlowRecord::answered`]) counts toward.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Unanswered {
    /// Counted apart, never as use: no active host, no group, no event. The default, since
    /// anyone can send a SYN from any address to any service's published range.
    #[default]
    Apart,
    /// Counted as use as well as apart: for a sensor that sees one direction of traffic only
    /// (asymmetric routing, a one-direction tap), where every flow looks unanswered
    /// (`[engine] count_unanswered = true`).
    AsUse,
}

impl Unanswered {
    /// Whether `r` counts as use under this rule.
    pub fn counts_as_use(self, r: &FlowRecord) -> bool {
        r.answered() || self == Unanswered::AsUse
    }
}

/// The service label an unanswered flow is counted under: its group's service (a catalogued
/// service id or [`UNCATALOGUED`]), or [`UNNAMED`] for a destination that stayed unnamed.
pub fn unanswered_service(p: &Placement) -> Sym {
    match p {
        Placement::Group(k) => k.service,
        Placement::Unnamed(_) => Sym::UNNAMED,
    }
}

/// Privacy settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Privacy {
    /// Minimum distinct hosts before a group's series are shown.
    pub min_group_size: usize,
    /// Host identities are collected for an investigation (exported as a metric).
    pub reveal_hosts: bool,
    /// Pseudonym key lifetime in seconds.
    pub key_rotation_secs: u64,
}

impl Default for Privacy {
    fn default() -> Self {
        Privacy { min_group_size: 5, reveal_hosts: false, key_rotation_secs: pseudonym::DEFAULT_ROTATION_SECS }
    }
}

/// A group's status label: the policy status, or what stands in for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GroupStatus {
    /// A catalogued service's policy status.
    Policy(Status),
    /// A named destination outside the catalog ([`UNCATALOGUED`]).
    Uncatalogued,
    /// A group folded for privacy ([`SUPPRESSED`]).
    Suppressed,
}

impl GroupStatus {
    /// Label used in output, metrics and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupStatus::Policy(s) => s.as_str(),
            GroupStatus::Uncatalogued => UNCATALOGUED,
            GroupStatus::Suppressed => SUPPRESSED,
        }
    }

    /// The status of a label written by [`GroupStatus::as_str`].
    pub fn parse(label: &str) -> Option<GroupStatus> {
        Some(match label {
            UNCATALOGUED => GroupStatus::Uncatalogued,
            SUPPRESSED => GroupStatus::Suppressed,
            _ => GroupStatus::Policy(
                [Status::Sanctioned, Status::Exempted, Status::Unsanctioned, Status::Unknown].into_iter().find(|s| s.as_str() == label)?,
            ),
        })
    }
}

/// A group's labels, as small `Copy` ids: building one for a flow allocates nothing. Their
/// names ([`GroupKey::labels`]) are made only where they are written. `Ord` follows the ids;
/// output sorted by name sorts by [`GroupKey::labels`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GroupKey {
    /// Department id.
    pub department: Sym,
    /// Service id (or [`SUPPRESSED`]).
    pub service: Sym,
    /// Channel id.
    pub channel: Sym,
    /// Category.
    pub category: Sym,
    /// Status.
    pub status: GroupStatus,
}

impl GroupKey {
    /// The department's folded group ([`SUPPRESSED`] in every other label).
    pub fn suppressed(department: Sym) -> GroupKey {
        GroupKey { department, service: Sym::SUPPRESSED, channel: Sym::SUPPRESSED, category: Sym::SUPPRESSED, status: GroupStatus::Suppressed }
    }

    /// The labels as text: department, service, channel, category, status.
    pub fn labels(&self) -> [&'static str; 5] {
        [self.department.as_str(), self.service.as_str(), self.channel.as_str(), self.category.as_str(), self.status.as_str()]
    }
}

#[derive(Debug, Default, Clone)]
struct Hosts {
    last_seen: HashMap<Pseudonym, i64>,
    full: bool,
}

impl Hosts {
    fn see(&mut self, p: Pseudonym, secs: i64) {
        self.see_up_to(p, secs, MAX_HOSTS_PER_GROUP);
    }

    fn see_up_to(&mut self, p: Pseudonym, secs: i64, max: usize) {
        if let Some(t) = self.last_seen.get_mut(&p) {
            *t = (*t).max(secs);
        } else if self.last_seen.len() < max {
            self.last_seen.insert(p, secs);
        } else {
            self.full = true;
        }
    }

    fn count_since(&self, since: i64) -> usize {
        self.last_seen.values().filter(|&&t| t >= since).count()
    }

    fn prune(&mut self, before: i64) {
        self.last_seen.retain(|_, t| *t >= before);
    }
}

/// Where a flow is counted: the one grouping shared by the daemon's aggregation and the rollup
/// store, so that both count the same flows in the same rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// A group: a catalogued service, or [`UNCATALOGUED`] for a named destination (or a DNS
    /// flow) outside the catalog.
    Group(GroupKey),
    /// The destination stayed unnamed: counted per department and this reason.
    Unnamed(&'static str),
}

/// The group of a finished flow, or the reason its destination stayed unnamed.
pub fn place(r: &FlowRecord, a: &Attribution, catalog: &Catalog) -> Placement {
    if let (None, Some(Status::Unknown)) = (a.target, a.status) {
        return Placement::Unnamed(r.unnamed.map(|u| u.as_str()).unwrap_or("unknown"));
    }
    let (service, channel, category) = match a.target {
        Some(t) => (catalog.service_sym(t), catalog.channel_sym(t), catalog.service(t).category_sym),
        None => (Sym::UNCATALOGUED, Sym::UNCATALOGUED, Sym::UNCATALOGUED),
    };
    let status = a.status.map_or(GroupStatus::Uncatalogued, GroupStatus::Policy);
    Placement::Group(GroupKey { department: a.department, service, channel, category, status })
}

/// Counters of one group.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Flows.
    pub flows: u64,
    /// Bytes client → server.
    pub bytes_up: u64,
    /// Bytes server → client.
    pub bytes_down: u64,
}

/// What the exporter reads: every value already filtered by the privacy rules.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    /// Counters per revealed group, plus one `_suppressed` group per department.
    pub totals: Vec<(GroupKey, Totals)>,
    /// Distinct hosts per revealed group and window.
    pub hosts: Vec<(GroupKey, &'static str, usize)>,
    /// Active hosts per department and window (departments with at least k hosts).
    pub department_hosts: Vec<(Sym, &'static str, usize)>,
    /// Unnamed flows per department and reason.
    pub unnamed: Vec<(Sym, &'static str, u64)>,
    /// Flows with real ECH per department (named or not): how much of the traffic hides its
    /// name from the wire.
    pub ech: Vec<(Sym, u64)>,
    /// Flows their server never answered, per department and service label (a service id,
    /// [`UNCATALOGUED`], [`UNNAMED`], or [`SUPPRESSED`] until k hosts sent them): counted
    /// apart from use.
    pub unanswered: Vec<(Sym, Sym, u64)>,
    /// Whether unanswered flows count as use too.
    pub unanswered_rule: Unanswered,
    /// Series withheld because their group is smaller than k.
    pub suppressed_series: u64,
    /// Groups whose host set hit its bound.
    pub saturated_groups: u64,
    /// The [`UNCATALOGUED_TOP`] registrable domains outside the catalog with the most distinct
    /// hosts over [`UNCATALOGUED_WINDOW`], each with at least k (counted up to
    /// [`MAX_HOSTS_PER_DOMAIN`]): most hosts first, then by domain.
    pub uncatalogued_top: Vec<(String, usize)>,
    /// Flows to a domain outside the catalog that could not be counted per domain (the bound
    /// [`MAX_UNCATALOGUED_DOMAINS`] was reached); the daemon adds the rollup's.
    pub uncatalogued_dropped: u64,
    /// Newest packet time seen.
    pub now: Timestamp,
}

/// The aggregation state.
pub struct Aggregator {
    privacy: Privacy,
    pseudonyms: Pseudonymizer,
    totals: HashMap<GroupKey, Totals>,
    group_hosts: HashMap<GroupKey, Hosts>,
    revealed: HashMap<GroupKey, bool>,
    department_hosts: HashMap<Sym, Hosts>,
    unnamed: HashMap<(Sym, &'static str), u64>,
    ech: HashMap<Sym, u64>,
    unanswered_rule: Unanswered,
    /// Unanswered flows per (department, service label or [`SUPPRESSED`]).
    unanswered: HashMap<(Sym, Sym), u64>,
    /// (department, service) pairs of unanswered flows named for good (k hosts reached).
    unanswered_revealed: HashSet<(Sym, Sym)>,
    /// Hosts of the pairs not named yet: fewer than k each (in 30 days), so at most k
    /// pseudonyms per (department, service) pair of the configuration and catalog.
    unanswered_pending: HashMap<(Sym, Sym), Hosts>,
    /// Hosts per registrable domain outside the catalog (at most [`MAX_UNCATALOGUED_DOMAINS`]).
    uncatalogued: HashMap<String, Hosts>,
    uncatalogued_dropped: u64,
    now: Timestamp,
    restored: bool,
}

impl Aggregator {
    /// An empty aggregation with these privacy settings.
    ///
    /// # Errors
    /// No pseudonym key could be drawn from the operating system.
    pub fn new(privacy: Privacy) -> Result<Self, getrandom::Error> {
        Ok(Aggregator {
            privacy,
            pseudonyms: Pseudonymizer::new(privacy.key_rotation_secs)?,
            totals: HashMap::new(),
            group_hosts: HashMap::new(),
            revealed: HashMap::new(),
            department_hosts: HashMap::new(),
            unnamed: HashMap::new(),
            ech: HashMap::new(),
            unanswered_rule: Unanswered::default(),
            unanswered: HashMap::new(),
            unanswered_revealed: HashSet::new(),
            unanswered_pending: HashMap::new(),
            uncatalogued: HashMap::new(),
            uncatalogued_dropped: 0,
            now: Timestamp::default(),
            restored: false,
        })
    }

    /// The privacy settings in force.
    pub fn privacy(&self) -> Privacy {
        self.privacy
    }

    /// Keys drawn by the pseudonymizer (1 + rotations).
    pub fn keys_drawn(&self) -> u64 {
        self.pseudonyms.keys_drawn
    }

    /// What unanswered flows count toward from now on ([`Unanswered::Apart`] unless set).
    pub fn set_unanswered(&mut self, rule: Unanswered) {
        self.unanswered_rule = rule;
    }

    /// The rule in force for unanswered flows.
    pub fn unanswered_rule(&self) -> Unanswered {
        self.unanswered_rule
    }

    /// Adds one finished flow. For a catalogued flow that counts as use, returns whether its
    /// group is revealed (has at least k hosts) and its distinct hosts over 24 h, for events;
    /// a flow its server never answered is counted apart and returns None (under
    /// [`Unanswered::Apart`]), so that it raises no event either.
    pub fn add(&mut self, r: &FlowRecord, a: &Attribution, catalog: &Catalog) -> Option<(bool, usize)> {
        let at = r.ts_start.max(r.ts_end);
        if at > self.now {
            self.now = at;
        }
        let secs = r.ts_end.secs();
        let host = self.pseudonyms.pseudonym(r.client.ip(), r.ts_start);
        let placement = place(r, a, catalog);
        if !r.answered() {
            self.add_unanswered(a.department, unanswered_service(&placement), host, secs);
        }
        if !self.unanswered_rule.counts_as_use(r) {
            return None;
        }
        self.department_hosts.entry(a.department).or_default().see(host, secs);
        if r.details.as_deref().is_some_and(crate::engine::Details::real_ech) {
            *self.ech.entry(a.department).or_default() += 1;
        }
        let key = match placement {
            Placement::Group(key) => key,
            Placement::Unnamed(reason) => {
                *self.unnamed.entry((a.department, reason)).or_default() += 1;
                return None;
            }
        };
        if key.service == Sym::UNCATALOGUED {
            self.see_domain(r, host, secs);
        }
        let hosts = self.group_hosts.entry(key).or_default();
        hosts.see(host, secs);
        let since = self.now.secs() - WINDOWS[3].1 as i64;
        let hosts_24h = hosts.count_since(self.now.secs() - WINDOWS[1].1 as i64);
        let revealed = self.revealed.entry(key).or_insert(false);
        if !*revealed && hosts.count_since(since) >= self.privacy.min_group_size {
            *revealed = true;
        }
        let view = (*revealed, hosts_24h);
        let bucket = if *revealed { key } else { GroupKey::suppressed(key.department) };
        let t = self.totals.entry(bucket).or_default();
        t.flows += 1;
        t.bytes_up += r.bytes_up;
        t.bytes_down += r.bytes_down;
        a.target.map(|_| view)
    }

    /// Counts an unanswered flow of `department` to `service`: under its own label once k
    /// distinct hosts sent such flows within the longest window (for good, like a group), under
    /// [`SUPPRESSED`] until then.
    fn add_unanswered(&mut self, department: Sym, service: Sym, host: Pseudonym, secs: i64) {
        let key = (department, service);
        let revealed = self.unanswered_revealed.contains(&key) || {
            let hosts = self.unanswered_pending.entry(key).or_default();
            hosts.see(host, secs);
            let reached = hosts.count_since(self.now.secs() - WINDOWS[3].1 as i64) >= self.privacy.min_group_size;
            if reached {
                self.unanswered_pending.remove(&key);
                self.unanswered_revealed.insert(key);
            }
            reached
        };
        let bucket = if revealed { key } else { (department, Sym::SUPPRESSED) };
        *self.unanswered.entry(bucket).or_default() += 1;
    }

    /// Counts `host` under the registrable domain of an uncatalogued flow's name, if it has one.
    fn see_domain(&mut self, r: &FlowRecord, host: Pseudonym, secs: i64) {
        let Some(domain) = crate::classify::domain::flow_domain(r) else { return };
        if let Some(h) = self.uncatalogued.get_mut(&domain) {
            h.see_up_to(host, secs, MAX_HOSTS_PER_DOMAIN);
        } else if self.uncatalogued.len() < MAX_UNCATALOGUED_DOMAINS {
            self.uncatalogued.entry(domain).or_default().see_up_to(host, secs, MAX_HOSTS_PER_DOMAIN);
        } else {
            self.uncatalogued_dropped += 1;
        }
    }

    /// Drops host memories older than the longest window.
    pub fn prune(&mut self) {
        let before = self.now.secs() - WINDOWS[3].1 as i64;
        for h in self.group_hosts.values_mut().chain(self.department_hosts.values_mut()) {
            h.prune(before);
        }
        for h in self.unanswered_pending.values_mut() {
            h.prune(before);
        }
        self.unanswered_pending.retain(|_, h| !h.last_seen.is_empty());
        let before = self.now.secs() - UNCATALOGUED_WINDOW.1 as i64;
        for h in self.uncatalogued.values_mut() {
            h.prune(before);
        }
        self.uncatalogued.retain(|_, h| !h.last_seen.is_empty());
    }

    /// The exportable view at the newest packet time.
    pub fn snapshot(&self) -> Snapshot {
        let k = self.privacy.min_group_size;
        let now = self.now.secs();
        let mut s = Snapshot { now: self.now, ..Default::default() };
        s.totals = self.totals.iter().map(|(k, t)| (*k, *t)).collect();
        // By name, as before ids: the order of the exposition and of tests.
        s.totals.sort_by_cached_key(|(k, _)| k.labels());
        for (key, hosts) in &self.group_hosts {
            if hosts.full {
                s.saturated_groups += 1;
            }
            if !self.revealed.get(key).copied().unwrap_or(false) {
                s.suppressed_series += WINDOWS.len() as u64;
                continue;
            }
            for (label, len) in WINDOWS {
                let n = hosts.count_since(now - len as i64);
                if n >= k || n == 0 {
                    s.hosts.push((*key, label, n));
                } else {
                    s.suppressed_series += 1;
                }
            }
        }
        s.hosts.sort_by_cached_key(|(k, w, _)| (k.labels(), *w));
        for (dept, hosts) in &self.department_hosts {
            for (label, len) in WINDOWS {
                let n = hosts.count_since(now - len as i64);
                if n >= k || n == 0 {
                    s.department_hosts.push((*dept, label, n));
                } else {
                    s.suppressed_series += 1;
                }
            }
        }
        // Ids, sorted by name: the exporter writes the names.
        s.department_hosts.sort_by_cached_key(|&(d, w, _)| (d.as_str(), w));
        s.unnamed = self.unnamed.iter().map(|(&(d, r), &n)| (d, r, n)).collect();
        s.unnamed.sort_by_cached_key(|&(d, r, _)| (d.as_str(), r));
        s.ech = self.ech.iter().map(|(&d, &n)| (d, n)).collect();
        s.ech.sort_by_cached_key(|&(d, _)| d.as_str());
        s.unanswered = self.unanswered.iter().map(|(&(d, svc), &n)| (d, svc, n)).collect();
        s.unanswered.sort_by_cached_key(|&(d, svc, _)| (d.as_str(), svc.as_str()));
        s.unanswered_rule = self.unanswered_rule;
        // A pair not named yet withholds its one series.
        s.suppressed_series += self.unanswered_pending.len() as u64;
        let since = now - UNCATALOGUED_WINDOW.1 as i64;
        let mut top: Vec<(String, usize)> = self
            .uncatalogued
            .iter()
            .map(|(d, h)| (d, h.count_since(since)))
            .filter(|&(_, n)| n >= k.max(1))
            .map(|(d, n)| (d.clone(), n))
            .collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(UNCATALOGUED_TOP);
        s.uncatalogued_top = top;
        s.uncatalogued_dropped = self.uncatalogued_dropped;
        s
    }
}

#[cfg(test)]
pub(crate) mod tests_support {
    use super::*;
    use crate::classify::catalog::Target;
    use crate::engine::{App, FlowRecord};
    use crate::flow::table::EndReason;

    pub(crate) fn catalog() -> Catalog {
        let text = "[[service]]\nid = \"whatsapp\"\nname = \"WhatsApp\"\nvendor = \"Meta\"\nvendor_country = \"US\"\ncategory = \"messaging\"\ndomains = [\"whatsapp.net\"]\n";
        Catalog::from_texts(&[("t.toml".into(), text.into())]).unwrap()
    }

    pub(crate) fn flow(client: &str, secs: i64) -> FlowRecord {
        FlowRecord {
            seq: 0,
            ts_start: Timestamp::from_parts(secs, 0),
            ts_end: Timestamp::from_parts(secs, 0),
            client: client.parse().unwrap(),
            server: "157.240.1.1:443".parse().unwrap(),
            proto: 6,
            app: App::Tls,
            details: None,
            signal: None,
            unnamed: None,
            packets_up: 1,
            packets_down: 1,
            bytes_up: 100,
            bytes_down: 1000,
            vlan: None,
            tunnel: None,
            end: EndReason::Closed,
        }
    }

    /// `flow` as a SYN nobody answered: one 40-byte packet up, nothing down.
    pub(crate) fn unanswered(client: &str, secs: i64) -> FlowRecord {
        FlowRecord { packets_up: 1, packets_down: 0, bytes_up: 40, bytes_down: 0, unnamed: Some(crate::engine::Unnamed::NoPayload), ..flow(client, secs) }
    }

    /// `flow` named by the SNI `sni`.
    pub(crate) fn named(client: &str, secs: i64, sni: &str) -> FlowRecord {
        use crate::engine::record::{Details, Hello, TlsSummary};
        let hello = Hello { sni: Some(sni.as_bytes().into()), ..Hello::default() };
        let details = Details { tls: Some(TlsSummary { client: Some(hello), ..TlsSummary::default() }), ..Details::default() };
        FlowRecord { signal: Some(crate::engine::Signal::Sni), details: Some(Box::new(details)), ..flow(client, secs) }
    }

    /// A named destination outside the catalog, from a host of `dept`.
    pub(crate) fn outside(dept: &str) -> Attribution {
        Attribution { target: None, status: None, ..wa(dept) }
    }

    pub(crate) fn wa(dept: &str) -> Attribution {
        Attribution {
            target: Some(Target { service: 0, channel: 0 }),
            signal: None,
            rule: None,
            tenant: None,
            department: dept.into(),
            status: Some(Status::Unsanctioned),
            server_country: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::tests_support::*;
    use super::*;

    #[test]
    fn fixed_ids_carry_the_labels() {
        assert_eq!(Sym::UNCATALOGUED.as_str(), UNCATALOGUED);
        assert_eq!(Sym::SUPPRESSED.as_str(), SUPPRESSED);
        assert_eq!(Sym::UNNAMED.as_str(), UNNAMED);
        assert_eq!(crate::classify::UNMAPPED_SYM.as_str(), crate::classify::UNMAPPED);
        for label in ["sanctioned", "exempted", "unsanctioned", "unknown", UNCATALOGUED, SUPPRESSED] {
            assert_eq!(GroupStatus::parse(label).map(GroupStatus::as_str), Some(label));
        }
        assert_eq!(GroupStatus::parse("nonsense"), None);
    }

    #[test]
    fn small_groups_are_folded_and_counters_stay_monotonic() {
        let c = catalog();
        let mut a = Aggregator::new(Privacy { min_group_size: 3, ..Privacy::default() }).unwrap();
        a.add(&flow("10.0.0.1:1000", 1_000_000), &wa("finance"), &c);
        a.add(&flow("10.0.0.2:1000", 1_000_010), &wa("finance"), &c);
        let s = a.snapshot();
        assert_eq!(s.totals.len(), 1);
        assert_eq!(s.totals[0].0.service, SUPPRESSED);
        assert_eq!(s.totals[0].1.flows, 2);
        assert!(s.hosts.is_empty(), "two hosts are fewer than k = 3");
        assert!(s.department_hosts.iter().all(|(_, _, n)| *n == 0 || *n >= 3));
        a.add(&flow("10.0.0.3:1000", 1_000_020), &wa("finance"), &c);
        let s = a.snapshot();
        let wa_total = s.totals.iter().find(|(k, _)| k.service == "whatsapp").unwrap().1;
        assert_eq!(wa_total.flows, 1, "revealed from the flow that reached k");
        assert_eq!(s.totals.iter().find(|(k, _)| k.service == SUPPRESSED).unwrap().1.flows, 2, "the folded part never decreases");
        assert!(s.hosts.iter().any(|(k, w, n)| k.service == "whatsapp" && *w == "30d" && *n == 3));
        assert!(s.department_hosts.contains(&("finance".into(), "30d", 3)));
    }

    #[test]
    fn real_ech_flows_are_counted_per_department_and_grease_is_not() {
        use crate::engine::record::{Details, Hello, TlsSummary};
        let c = catalog();
        let mut a = Aggregator::new(Privacy { min_group_size: 1, ..Privacy::default() }).unwrap();
        let with_ech = |grease: bool| {
            let mut f = flow("10.0.0.1:1000", 1_000_000);
            let hello = Hello { ech: true, ..Hello::default() };
            let tls = TlsSummary { client: Some(hello), ..TlsSummary::default() };
            f.details = Some(Box::new(Details { tls: Some(tls), ech_grease: grease, ..Details::default() }));
            f
        };
        a.add(&with_ech(false), &wa("finance"), &c);
        a.add(&with_ech(true), &wa("finance"), &c);
        a.add(&flow("10.0.0.2:1000", 1_000_001), &wa("finance"), &c);
        assert_eq!(a.snapshot().ech, vec![(Sym::from("finance"), 1)]);
    }

    #[test]
    fn unanswered_flows_are_not_use_and_are_counted_apart_under_k() {
        let c = catalog();
        let mut a = Aggregator::new(Privacy { min_group_size: 3, ..Privacy::default() }).unwrap();
        for i in 1..=5 {
            let view = a.add(&unanswered(&format!("10.0.0.{i}:1000"), 1_000_000 + i), &wa("finance"), &c);
            assert_eq!(view, None, "no group view, so no event");
            let s = a.snapshot();
            let folded = s.unanswered.iter().find(|(_, svc, _)| svc == SUPPRESSED).map(|x| x.2);
            let named = s.unanswered.iter().find(|(_, svc, _)| svc == "whatsapp").map(|x| x.2);
            // Two hosts are fewer than k = 3: their flows are folded; the third names the pair.
            assert_eq!((folded, named), (Some(2.min(i as u64)), (i >= 3).then(|| i as u64 - 2)), "after {i} flows: {:?}", s.unanswered);
        }
        let s = a.snapshot();
        assert!(s.totals.is_empty(), "no group: {:?}", s.totals);
        assert!(s.hosts.is_empty());
        assert!(s.department_hosts.iter().all(|(_, _, n)| *n == 0), "no active host: {:?}", s.department_hosts);
        assert!(s.unnamed.is_empty(), "an unanswered flow is not an unnamed one either");
        assert_eq!(s.unanswered_rule, Unanswered::Apart);

        // The same plus one answered flow: only that one counts.
        a.add(&flow("10.0.0.9:1000", 1_000_100), &wa("finance"), &c);
        let s = a.snapshot();
        assert_eq!(s.totals.iter().map(|(_, t)| t.flows).sum::<u64>(), 1);
        assert_eq!(s.unanswered.iter().map(|x| x.2).sum::<u64>(), 5);
    }

    #[test]
    fn an_unnamed_unanswered_flow_is_counted_under_unnamed() {
        let c = catalog();
        let mut a = Aggregator::new(Privacy { min_group_size: 1, ..Privacy::default() }).unwrap();
        let unknown = Attribution { target: None, status: Some(Status::Unknown), ..wa("legal") };
        a.add(&unanswered("10.0.0.1:1000", 1_000_000), &unknown, &c);
        let s = a.snapshot();
        assert_eq!(s.unanswered, vec![(Sym::from("legal"), Sym::UNNAMED, 1)]);
        assert!(s.unnamed.is_empty() && s.department_hosts.iter().all(|(_, _, n)| *n == 0));
    }

    #[test]
    fn as_use_counts_unanswered_flows_as_use_and_still_apart() {
        let c = catalog();
        let mut a = Aggregator::new(Privacy { min_group_size: 1, ..Privacy::default() }).unwrap();
        a.set_unanswered(Unanswered::AsUse);
        let view = a.add(&unanswered("10.0.0.1:1000", 1_000_000), &wa("finance"), &c);
        assert_eq!(view, Some((true, 1)));
        let s = a.snapshot();
        assert_eq!(s.totals.iter().find(|(k, _)| k.service == "whatsapp").map(|(_, t)| t.flows), Some(1));
        assert!(s.department_hosts.contains(&("finance".into(), "30d", 1)));
        assert_eq!(s.unanswered, vec![(Sym::from("finance"), Sym::from("whatsapp"), 1)]);
        assert_eq!(s.unanswered_rule, Unanswered::AsUse);
        assert!(Unanswered::AsUse.counts_as_use(&unanswered("10.0.0.1:1", 1)));
        assert!(!Unanswered::Apart.counts_as_use(&unanswered("10.0.0.1:1", 1)));
        assert!(Unanswered::Apart.counts_as_use(&flow("10.0.0.1:1", 1)));
    }

    fn uncatalogued(sni: &str) -> (FlowRecord, Attribution) {
        (named("10.0.0.1:1", 0, sni), outside("legal"))
    }

    #[test]
    fn uncatalogued_domains_are_named_from_k_hosts_bounded_and_leave_with_the_window() {
        let c = catalog();
        let mut a = Aggregator::new(Privacy { min_group_size: 2, ..Privacy::default() }).unwrap();
        let t = 1_000_000;
        let (mut f, attr) = uncatalogued("www.newshare.example.co.uk");
        for (i, client) in ["10.0.0.1:1", "10.0.0.2:1", "10.0.0.2:2"].iter().enumerate() {
            f.client = client.parse().unwrap();
            f.ts_start = Timestamp::from_parts(t + i as i64, 0);
            f.ts_end = f.ts_start;
            a.add(&f, &attr, &c);
        }
        let (mut g, _) = uncatalogued("chat.lonely.example.org");
        g.ts_start = Timestamp::from_parts(t + 5, 0);
        g.ts_end = g.ts_start;
        a.add(&g, &attr, &c);
        let s = a.snapshot();
        assert_eq!(s.uncatalogued_top, vec![("example.co.uk".to_string(), 2)], "one host is fewer than k = 2: not named");
        // Past the bound, new domains are counted as dropped, never kept.
        for i in 0..MAX_UNCATALOGUED_DOMAINS + 5 {
            let (mut h, _) = uncatalogued(&format!("d{i}.example.net.bound{i}.com"));
            h.ts_start = Timestamp::from_parts(t + 10, 0);
            h.ts_end = h.ts_start;
            a.add(&h, &attr, &c);
        }
        assert!(a.uncatalogued.len() <= MAX_UNCATALOGUED_DOMAINS);
        let s = a.snapshot();
        assert!(s.uncatalogued_dropped >= 5, "{}", s.uncatalogued_dropped);
        assert!(s.uncatalogued_top.len() <= UNCATALOGUED_TOP);
        // A day later every host left the window: the domain is gone from the top and the map.
        let (mut late, _) = uncatalogued("x.example.com");
        late.ts_start = Timestamp::from_parts(t + 2 * 86_400, 0);
        late.ts_end = late.ts_start;
        a.add(&late, &attr, &c);
        a.prune();
        assert!(a.snapshot().uncatalogued_top.is_empty());
        assert!(a.uncatalogued.is_empty(), "the late flow found the map full; the prune emptied it");
        a.add(&late, &attr, &c);
        assert_eq!(a.uncatalogued.len(), 1, "room again after the prune");
    }

    #[test]
    fn windows_count_hosts_last_seen_inside_them() {
        let c = catalog();
        let mut a = Aggregator::new(Privacy { min_group_size: 1, ..Privacy::default() }).unwrap();
        let day = 86_400;
        a.add(&flow("10.0.0.1:1", 10 * day), &wa("legal"), &c);
        a.add(&flow("10.0.0.2:1", 20 * day), &wa("legal"), &c);
        a.add(&flow("10.0.0.3:1", 29 * day), &wa("legal"), &c);
        a.add(&flow("10.0.0.3:2", 30 * day - 10), &wa("legal"), &c);
        let s = a.snapshot();
        let n = |w: &str| s.hosts.iter().find(|(_, win, _)| *win == w).unwrap().2;
        assert_eq!((n("1h"), n("24h"), n("7d"), n("30d")), (1, 1, 1, 3));
        a.add(&flow("10.0.0.4:1", 41 * day), &wa("legal"), &c);
        a.prune();
        let s = a.snapshot();
        assert_eq!(s.hosts.iter().find(|(_, w, _)| *w == "30d").unwrap().2, 3, "the host of day 10 left the 30-day window");
    }
}

#[cfg(test)]
mod state_tests {
    use super::tests_support::*;
    use super::*;

    #[test]
    fn save_and_restore_continue_counts_and_windows() {
        let c = catalog();
        let mut a = Aggregator::new(Privacy { min_group_size: 1, ..Privacy::default() }).unwrap();
        a.add(&flow("10.0.0.1:1", 1_000_000), &wa("finance"), &c);
        a.add(&flow("10.0.0.2:1", 1_000_100), &wa("finance"), &c);
        let dir = std::env::temp_dir().join(format!("shadowtap-state-{}", std::process::id()));
        state::save(&dir, &a).unwrap();
        let text = std::fs::read_to_string(dir.join(state::STATE_FILE)).unwrap();
        assert!(!text.contains("10.0.0."), "no address in the saved state");
        let mut b = Aggregator::new(Privacy { min_group_size: 1, ..Privacy::default() }).unwrap();
        b.restore(state::load(&dir).unwrap().unwrap()).unwrap();
        assert!(b.was_restored());
        b.add(&flow("10.0.0.3:1", 1_000_200), &wa("finance"), &c);
        let s = b.snapshot();
        let t = s.totals.iter().find(|(k, _)| k.service == "whatsapp").unwrap().1;
        assert_eq!(t.flows, 3, "counts continue across the restart");
        assert!(s.hosts.iter().any(|(_, w, n)| *w == "30d" && *n == 3), "the window keeps the hosts seen before");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A state file as the build before typed ids wrote it (names on disk, same format).
    const SAVED_BY_PREVIOUS_BUILD: &str = r#"{"version":1,"now_micros":1000100000000,"key_continuity":false,"totals":[{"key":["finance","_suppressed","_suppressed","_suppressed","_suppressed"],"flows":2,"bytes_up":200,"bytes_down":2000},{"key":["finance","whatsapp","default","messaging","unsanctioned"],"flows":3,"bytes_up":300,"bytes_down":3000},{"key":["legal","_uncatalogued","_uncatalogued","_uncatalogued","_uncatalogued"],"flows":1,"bytes_up":100,"bytes_down":1000}],"revealed":[["finance","whatsapp","default","messaging","unsanctioned"]],"group_hosts":[{"key":["finance","whatsapp","default","messaging","unsanctioned"],"hosts":[[11,1000000],[12,1000050],[13,1000100]],"full":false},{"key":["legal","_uncatalogued","_uncatalogued","_uncatalogued","_uncatalogued"],"hosts":[[14,1000000]],"full":false}],"department_hosts":[{"key":["finance"],"hosts":[[11,1000000],[12,1000050],[13,1000100]],"full":false},{"key":["legal"],"hosts":[[14,1000000]],"full":false}],"unnamed":[["legal","tls_no_sni",4]],"ech":[["finance",1]],"unanswered":[["finance","_suppressed",1],["legal","_unnamed",2]],"unanswered_revealed":[["legal","_unnamed"]],"unanswered_pending":[{"key":["finance","whatsapp"],"hosts":[[15,1000000]],"full":false}]}"#;

    #[test]
    fn a_state_saved_by_the_previous_build_restores_and_saves_the_same() {
        let c = catalog();
        let saved: state::Saved = serde_json::from_str(SAVED_BY_PREVIOUS_BUILD).unwrap();
        let mut a = Aggregator::new(Privacy { min_group_size: 3, ..Privacy::default() }).unwrap();
        a.restore(saved).unwrap();
        // Names on disk again, in the same order: the file format did not change.
        assert_eq!(serde_json::to_string(&a.to_saved()).unwrap(), SAVED_BY_PREVIOUS_BUILD);
        let s = a.snapshot();
        let labels: Vec<_> = s.totals.iter().map(|(k, t)| (k.labels(), t.flows)).collect();
        assert_eq!(
            labels,
            [
                (["finance", SUPPRESSED, SUPPRESSED, SUPPRESSED, SUPPRESSED], 2),
                (["finance", "whatsapp", "default", "messaging", "unsanctioned"], 3),
                (["legal", UNCATALOGUED, UNCATALOGUED, UNCATALOGUED, UNCATALOGUED], 1),
            ]
        );
        assert_eq!(s.unnamed, vec![(Sym::from("legal"), "tls_no_sni", 4)]);
        // New flows count into the restored groups: the ids the catalog gives are the ids the
        // restored names got.
        a.add(&flow("10.0.0.9:1", 1_000_200), &wa("finance"), &c);
        let s = a.snapshot();
        assert_eq!(s.totals.iter().find(|(k, _)| k.service == "whatsapp").map(|(_, t)| t.flows), Some(4));
        // A status label this build does not know is refused, not guessed.
        let bad = SAVED_BY_PREVIOUS_BUILD.replacen("\"unsanctioned\"", "\"nonsense\"", 1);
        let mut b = Aggregator::new(Privacy::default()).unwrap();
        assert!(b.restore(serde_json::from_str(&bad).unwrap()).is_err());
    }

    #[test]
    fn unanswered_counts_and_pending_hosts_survive_a_restart() {
        let c = catalog();
        let privacy = Privacy { min_group_size: 2, ..Privacy::default() };
        let mut a = Aggregator::new(privacy).unwrap();
        a.add(&unanswered("10.0.0.1:1", 1_000_000), &wa("finance"), &c);
        let dir = std::env::temp_dir().join(format!("shadowtap-state-unanswered-{}", std::process::id()));
        state::save(&dir, &a).unwrap();
        let mut b = Aggregator::new(privacy).unwrap();
        b.restore(state::load(&dir).unwrap().unwrap()).unwrap();
        assert_eq!(b.snapshot().unanswered, vec![(Sym::from("finance"), Sym::SUPPRESSED, 1)]);
        // The host seen before the restart still counts toward k (under its old pseudonym).
        b.add(&unanswered("10.0.0.2:1", 1_000_100), &wa("finance"), &c);
        let s = b.snapshot();
        assert!(s.unanswered.contains(&(Sym::from("finance"), Sym::from("whatsapp"), 1)), "{:?}", s.unanswered);
        std::fs::remove_dir_all(&dir).unwrap();
        // A state file of an earlier build (no unanswered keys) still loads.
        let mut old: serde_json::Value = serde_json::to_value(a.to_saved()).unwrap();
        for k in ["unanswered", "unanswered_revealed", "unanswered_pending"] {
            old.as_object_mut().unwrap().remove(k);
        }
        let saved: state::Saved = serde_json::from_value(old).unwrap();
        Aggregator::new(privacy).unwrap().restore(saved).unwrap();
    }
}
