//! From a named flow to "unsanctioned WhatsApp in Finance": the service catalog, departments
//! and policy.
//!
//! [`Classifier::attribute`] is pure: it takes a finished [`FlowRecord`] and returns an
//! [`Attribution`] — service, channel, category, which signal matched, the client's department
//! and the policy status at the flow's start time. It runs once per flow, never per packet.
//! Precedence is explicit: SNI, QUIC SNI, CONNECT target / HTTP Host, DNS-correlated name,
//! marker, JA4, address range, ASN; ports only confirm another signal.

pub mod addr;
pub mod catalog;
pub mod risk;
pub mod domain;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use addr::AddrTable;
use catalog::{Catalog, Target};

use crate::engine::{FlowRecord, Signal, Signalling};
use crate::intern::Sym;
use crate::time::Timestamp;

/// Department of hosts in no configured prefix.
pub const UNMAPPED: &str = "unmapped";

/// [`UNMAPPED`], interned (a fixed id: it never needs the interner's lock).
pub const UNMAPPED_SYM: Sym = Sym::UNMAPPED;

/// Policy status of an attribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Status {
    /// On the global or the department's allow-list (or the organisation's own tenant).
    Sanctioned,
    /// Allowed by an exemption in force at the flow's start.
    Exempted,
    /// A catalogued service that is neither sanctioned nor exempted.
    Unsanctioned,
    /// The destination stayed unnamed.
    Unknown,
}

impl Status {
    /// Label used in output and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Sanctioned => "sanctioned",
            Status::Exempted => "exempted",
            Status::Unsanctioned => "unsanctioned",
            Status::Unknown => "unknown",
        }
    }
}

/// Which signal matched a catalog entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchSignal {
    /// A name: SNI, QUIC SNI, Host, CONNECT target or DNS-correlated (see the naming signal).
    Name(Signal),
    /// A protocol marker.
    Marker,
    /// JA4 of an official client.
    Ja4,
    /// A published address range.
    Cidr,
    /// The server's autonomous system.
    Asn,
    /// A call flow without a name, associated with its client's signalling to a messaging or
    /// conferencing service (`engine::resolve`'s association).
    Association,
}

/// Categories whose services a call flow is associated with even without a call channel (see
/// [`MatchSignal::Association`]).
pub const CALL_CATEGORIES: &[&str] = &["messaging", "conferencing"];

impl MatchSignal {
    /// Label used in output and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchSignal::Name(s) => s.as_str(),
            MatchSignal::Marker => "marker",
            MatchSignal::Ja4 => "ja4",
            MatchSignal::Cidr => "cidr",
            MatchSignal::Association => "association",
            MatchSignal::Asn => "asn",
        }
    }
}

/// What a flow is, for policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribution {
    /// Matched service and channel.
    pub target: Option<Target>,
    /// The signal that matched it.
    pub signal: Option<MatchSignal>,
    /// The listed pattern, range or number that matched (for `explain` and events).
    pub rule: Option<String>,
    /// Tenant of a corporate service, when the name shows one.
    pub tenant: Option<String>,
    /// The client's department (or [`UNMAPPED_SYM`]), interned: its name is
    /// [`Sym::as_str`], made only where it is written.
    pub department: Sym,
    /// Policy status; None for a named destination that is not in the catalog.
    pub status: Option<Status>,
    /// Country of the server's address (with a country database): where the data went.
    pub server_country: Option<String>,
}

/// A time-limited exemption for one service in one department, compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExemptionRule {
    /// Department id.
    pub department: String,
    /// Service (index into the catalog).
    pub service: usize,
    /// Start of its first day.
    pub from: Timestamp,
    /// End of its last day: the first instant it no longer covers.
    pub until: Timestamp,
    /// Ticket or decision reference.
    pub reference: String,
}

/// Departments and policy, compiled and validated by `config` against the catalog (service
/// indices, parsed prefixes): [`Classifier::build`] only assembles them.
#[derive(Default)]
pub struct Policy {
    /// Department prefixes → index into `department_ids`.
    pub departments: AddrTable<usize>,
    /// Configured department ids.
    pub department_ids: Vec<String>,
    /// Mapping-file entries (address → index into `department_ids`); they override prefixes.
    pub mapping: HashMap<IpAddr, usize>,
    /// Services sanctioned for everyone.
    pub sanctioned: HashSet<usize>,
    /// Services sanctioned per department id.
    pub sanctioned_by_department: HashMap<String, HashSet<usize>>,
    /// Exemptions.
    pub exemptions: Vec<ExemptionRule>,
    /// The organisation's own tenants per corporate service (lower case).
    pub own_tenants: HashMap<usize, Vec<String>>,
}

/// GeoIP databases, opened by `config` (each optional: without it that signal is off).
#[derive(Default)]
pub struct GeoIp {
    /// GeoLite2-ASN format.
    pub asn: Option<maxminddb::Reader<Vec<u8>>>,
    /// GeoLite2-Country format.
    pub country: Option<maxminddb::Reader<Vec<u8>>>,
}

/// The catalog, departments and policy, compiled. Pure: it reads no file; `config` loads what
/// it is built from, and a reload builds a new one off the packet thread.
pub struct Classifier {
    /// The service catalog.
    pub catalog: Catalog,
    policy: Policy,
    /// `policy.department_ids`, interned (same indices).
    department_syms: Vec<Sym>,
    geoip: GeoIp,
}

impl Classifier {
    /// Assembles a classifier from a catalog, a policy compiled against it and GeoIP readers.
    pub fn build(catalog: Catalog, policy: Policy, geoip: GeoIp) -> Classifier {
        // Interned here, where a configuration is compiled (at start or on the reload thread),
        // so that attributing a flow never takes the interner's lock.
        let department_syms = policy.department_ids.iter().map(|d| Sym::intern(d)).collect();
        Classifier { catalog, policy, department_syms, geoip }
    }

    /// The exemptions in force or pending.
    pub fn exemptions(&self) -> &[ExemptionRule] {
        &self.policy.exemptions
    }

    /// The department of `addr`: a mapping-file entry, else the longest matching prefix.
    pub fn department(&self, addr: IpAddr) -> &str {
        self.department_index(addr).map(|i| self.policy.department_ids[i].as_str()).unwrap_or(UNMAPPED)
    }

    /// [`Classifier::department`], interned.
    pub fn department_sym(&self, addr: IpAddr) -> Sym {
        self.department_index(addr).map(|i| self.department_syms[i]).unwrap_or(UNMAPPED_SYM)
    }

    fn department_index(&self, addr: IpAddr) -> Option<usize> {
        self.policy.mapping.get(&addr).or_else(|| self.policy.departments.lookup(addr).map(|(_, i)| i)).copied()
    }

    /// Configured department ids.
    pub fn department_ids(&self) -> &[String] {
        &self.policy.department_ids
    }

    fn asn(&self, addr: IpAddr) -> Option<u32> {
        let db = self.geoip.asn.as_ref()?;
        let r = db.lookup(addr).ok()?;
        let asn: maxminddb::geoip2::Asn = r.decode().ok()??;
        asn.autonomous_system_number
    }

    /// Which GeoIP signals are on: (ASN, country).
    pub fn geoip(&self) -> (bool, bool) {
        (self.geoip.asn.is_some(), self.geoip.country.is_some())
    }

    /// ISO 3166-1 country of `addr` from the country database, if one is loaded.
    pub fn country(&self, addr: IpAddr) -> Option<String> {
        let r = self.geoip.country.as_ref()?.lookup(addr).ok()?;
        let c: maxminddb::geoip2::Country = r.decode().ok()??;
        c.country.iso_code.map(str::to_string)
    }

    /// Attributes a finished flow to a service, channel, department and status.
    pub fn attribute(&self, r: &FlowRecord) -> Attribution {
        let dept = self.department_index(r.client.ip());
        let department = dept.map(|i| self.department_syms[i]).unwrap_or(UNMAPPED_SYM);
        let dept_name = dept.map(|i| self.policy.department_ids[i].as_str()).unwrap_or(UNMAPPED);
        let (target, signal, rule, name) = self.match_flow(r);
        let tenant = match (target, &name) {
            (Some(t), Some(n)) if self.catalog.service(t).corporate => self.catalog.tenant(t, n),
            _ => None,
        };
        let status = match target {
            Some(t) => Some(self.status(t.service as usize, tenant.as_deref(), dept_name, r.ts_start)),
            None if r.signal.is_none() && r.unnamed.is_some() => Some(Status::Unknown),
            None => None,
        };
        let server_country = self.country(r.server.ip());
        Attribution { target, signal, rule, tenant, department, status, server_country }
    }

    fn status(&self, service: usize, tenant: Option<&str>, department: &str, at: Timestamp) -> Status {
        let foreign_tenant = tenant.is_some_and(|t| !self.policy.own_tenants.get(&service).is_some_and(|own| own.iter().any(|o| o == t)));
        let allowed = self.policy.sanctioned.contains(&service)
            || self.policy.sanctioned_by_department.get(department).is_some_and(|s| s.contains(&service));
        if allowed && !foreign_tenant {
            Status::Sanctioned
        } else if self.policy.exemptions.iter().any(|e| e.service == service && e.department == department && e.from <= at && at < e.until) {
            Status::Exempted
        } else {
            Status::Unsanctioned
        }
    }

    /// The strongest catalog match of a flow, with the name that matched (for tenants).
    fn match_flow<'r>(&self, r: &'r FlowRecord) -> Match<'r> {
        let d = r.details.as_deref();
        let quic = r.app == crate::engine::App::Quic;
        let dns_first = r.signal == Some(Signal::Dns);
        // A DNS flow goes to a resolver: names that resolved to the resolver's address do not
        // say what the flow is.
        let dns_names = d.filter(|_| r.app != crate::engine::App::Dns).into_iter().flat_map(|d| d.names_from_dns.iter().map(|n| (Signal::Dns, &n[..])));
        let (dns_before, dns_after) = if dns_first { (Some(dns_names), None) } else { (None, Some(dns_names)) };
        // With real ECH the SNI is the provider's public name, not the destination.
        let real_ech = d.is_some_and(|d| d.client_hello().is_some_and(|h| h.ech) && !d.ech_grease);
        let sni = d.and_then(|d| d.client_hello()).and_then(|h| h.sni.as_deref()).filter(|_| !real_ech);
        let connect = d.and_then(|d| d.proxy.as_ref()).and_then(|p| p.target.as_deref());
        let host = d.and_then(|d| d.http_host.as_deref());
        // In order of precedence, without collecting them: this runs for every flow.
        let names = dns_before
            .into_iter()
            .flatten()
            .chain(sni.map(|s| (if quic { Signal::QuicSni } else { Signal::Sni }, s)))
            .chain(connect.map(|h| (Signal::Connect, strip_port(h))))
            .chain(host.map(|h| (Signal::HttpHost, strip_port(h))))
            .chain(dns_after.into_iter().flatten());
        for (signal, name) in names {
            if let Some(hit) = self.catalog.match_name(name) {
                return (Some(hit.target), Some(MatchSignal::Name(signal)), Some(hit.pattern), Some(name));
            }
        }
        let server = r.server.ip();
        let by_addr = self.catalog.match_addr(server);
        if let Some(m) = d.and_then(|d| d.marker) {
            let claimed = self.catalog.match_marker(m.as_str());
            // A marker alone names a service when one service claims it (WhatsApp's preface);
            // STUN is everyone's, so it needs the address range or SOFTWARE to say whose.
            let by_software = d.and_then(|d| d.stun.as_ref()).and_then(|s| s.software.as_deref()).and_then(|s| self.catalog.match_stun_software(s));
            let qualified = self.catalog.match_marker_addr(server, self.asn(server));
            let pick = by_software
                .or_else(|| qualified.filter(|q| claimed.contains(q)))
                .or_else(|| by_addr.and_then(|(t, _)| claimed.iter().copied().find(|c| c.service == t.service)))
                .or_else(|| (claimed.len() == 1).then(|| claimed[0]));
            if let Some(t) = pick {
                return (Some(t), Some(MatchSignal::Marker), Some(m.as_str().to_string()), None);
            }
        }
        if let Some(ja4) = d.and_then(|d| d.client_hello()).and_then(|h| h.ja4.as_deref()) {
            if let Some(t) = self.catalog.match_ja4(ja4) {
                return (Some(t), Some(MatchSignal::Ja4), Some(ja4.to_string()), None);
            }
        }
        if let Some((t, net)) = by_addr {
            return (Some(t), Some(MatchSignal::Cidr), Some(net.to_string()), None);
        }
        // A call flow goes with the client's signalling: the most recent named flow to a
        // service that carries calls (a messaging or conferencing one, or one with a call
        // channel: Microsoft 365), on its call channel (`Catalog::call_channel`).
        // A marker counts when one service claims it (WhatsApp's chat preface).
        for signalling in d.and_then(|d| d.associated.as_deref()).into_iter().flatten() {
            let (hit, name) = match signalling {
                Signalling::Name(n) => (self.catalog.match_name(n).map(|h| (h.target, h.pattern)), Some(&n[..])),
                Signalling::Marker(m) => match self.catalog.match_marker(m.as_str()) {
                    [one] => (Some((*one, m.as_str().to_string())), None),
                    _ => (None, None),
                },
            };
            if let Some((target, pattern)) = hit {
                let calls = self.catalog.call_channel(target.service);
                if calls.is_some() || CALL_CATEGORIES.contains(&self.catalog.service(target).category.as_str()) {
                    return (Some(calls.unwrap_or(target)), Some(MatchSignal::Association), Some(pattern), name);
                }
            }
        }
        if let Some(asn) = self.asn(server) {
            if let Some(t) = self.catalog.match_asn(asn) {
                return (Some(t), Some(MatchSignal::Asn), Some(format!("AS{asn}")), None);
            }
        }
        (None, None, None, None)
    }

    /// What `query` (a host name or an IP address) matches, as lines for `shadowtap explain`,
    /// with the status each department would get at `now`.
    pub fn explain(&self, query: &str, now: Timestamp) -> Vec<String> {
        let mut out = Vec::new();
        let describe = |t: Target| {
            let s = self.catalog.service(t);
            format!("{} ({}), channel {}, category {}, vendor {} [{}]", s.id, s.name, self.catalog.channel(t), s.category, s.vendor, s.vendor_country)
        };
        if let Ok(ip) = query.parse::<IpAddr>() {
            out.push(format!("department: {}", self.department(ip)));
            match self.catalog.match_addr(ip) {
                Some((t, net)) => out.push(format!("address range {net}: {}", describe(t))),
                None => out.push("address range: no catalog range contains it".into()),
            }
            match self.asn(ip) {
                Some(asn) => match self.catalog.match_asn(asn) {
                    Some(t) => out.push(format!("AS{asn}: {}", describe(t))),
                    None => out.push(format!("AS{asn}: not in the catalog")),
                },
                None => out.push("ASN: unknown (no ASN database, or no entry)".into()),
            }
        } else {
            match self.catalog.match_name(query.as_bytes()) {
                Some(hit) => {
                    out.push(format!("name {query}: matches {:?}: {}", hit.pattern, describe(hit.target)));
                    if let Some(t) = self.catalog.tenant(hit.target, query.as_bytes()) {
                        let own = self.policy.own_tenants.get(&(hit.target.service as usize)).is_some_and(|o| o.contains(&t));
                        out.push(format!("tenant: {t} ({})", if own { "own" } else { "foreign" }));
                    }
                    for dept in self.policy.department_ids.iter().map(String::as_str).chain([UNMAPPED]) {
                        let st = self.status(hit.target.service as usize, self.catalog.tenant(hit.target, query.as_bytes()).as_deref(), dept, now);
                        out.push(format!("status in {dept}: {}", st.as_str()));
                    }
                }
                None => out.push(format!("name {query}: not in the catalog")),
            }
        }
        out
    }
}

/// A flow's catalog match: target, signal, rule, and the name that matched (borrowed from the
/// record, for tenants).
type Match<'r> = (Option<Target>, Option<MatchSignal>, Option<String>, Option<&'r [u8]>);

/// `host:port` → `host` (IPv6 literals in brackets keep their address).
fn strip_port(h: &[u8]) -> &[u8] {
    if h.first() == Some(&b'[') {
        return h.iter().position(|&b| b == b']').map(|i| &h[1..i]).unwrap_or(h);
    }
    match h.iter().rposition(|&b| b == b':') {
        Some(i) if h[i + 1..].iter().all(u8::is_ascii_digit) && h[..i].iter().filter(|&&b| b == b':').count() == 0 => &h[..i],
        _ => h,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_ids_carry_their_labels() {
        assert_eq!(UNMAPPED_SYM.as_str(), UNMAPPED);
    }

    #[test]
    fn ports_are_stripped_from_targets() {
        assert_eq!(strip_port(b"drive.google.com:443"), b"drive.google.com");
        assert_eq!(strip_port(b"[2001:db8::1]:443"), b"2001:db8::1");
        assert_eq!(strip_port(b"example.com"), b"example.com");
    }
}
