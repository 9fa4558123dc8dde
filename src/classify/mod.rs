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
pub mod diag;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::Path;

use addr::AddrTable;
use catalog::{Catalog, Target};
use diag::Diagnostic;

use crate::config::Loaded;
use crate::engine::{FlowRecord, Signal};
use crate::time::Timestamp;

/// Department of hosts in no configured prefix.
pub const UNMAPPED: &str = "unmapped";

/// Policy status of an attribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
}

impl MatchSignal {
    /// Label used in output and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchSignal::Name(s) => s.as_str(),
            MatchSignal::Marker => "marker",
            MatchSignal::Ja4 => "ja4",
            MatchSignal::Cidr => "cidr",
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
    /// The client's department (or [`UNMAPPED`]).
    pub department: String,
    /// Policy status; None for a named destination that is not in the catalog.
    pub status: Option<Status>,
    /// Country of the server's address (with a country database): where the data went.
    pub server_country: Option<String>,
}

#[derive(Debug, Clone)]
struct ExemptionRule {
    department: String,
    service: usize,
    from: Timestamp,
    until: Timestamp,
    reference: String,
}

/// The catalog, departments and policy, compiled.
pub struct Classifier {
    /// The service catalog.
    pub catalog: Catalog,
    departments: AddrTable<usize>,
    department_ids: Vec<String>,
    mapping: HashMap<IpAddr, usize>,
    sanctioned: HashSet<usize>,
    sanctioned_by_department: HashMap<String, HashSet<usize>>,
    exemptions: Vec<ExemptionRule>,
    own_tenants: HashMap<usize, Vec<String>>,
    asn_db: Option<maxminddb::Reader<Vec<u8>>>,
    country_db: Option<maxminddb::Reader<Vec<u8>>>,
    /// The mapping file and its modification time when read.
    mapping_file: Option<(std::path::PathBuf, Option<std::time::SystemTime>)>,
    /// SHA-256 of the configuration file: the version reports cite.
    pub config_digest: String,
    /// Privacy settings of the configuration.
    pub privacy: crate::aggregate::Privacy,
    /// Event thresholds of the configuration.
    pub events: crate::export::events::EventConfig,
    /// Rollup store settings of the configuration.
    pub store: crate::store::Settings,
    /// Warnings that do not stop loading (absent GeoIP databases, expired exemptions).
    pub warnings: Vec<Diagnostic>,
}

/// Converts a TOML date to the start of that day (UTC).
fn day_start(d: &toml::value::Datetime) -> Option<Timestamp> {
    let date = d.date?;
    let month = time::Month::try_from(date.month).ok()?;
    let day = time::Date::from_calendar_date(date.year as i32, month, date.day).ok()?;
    Some(Timestamp::from_parts(day.midnight().assume_utc().unix_timestamp(), 0))
}

impl Classifier {
    /// Loads the configuration at `path` and everything it names.
    ///
    /// # Errors
    /// Every problem found, each with file and line.
    pub fn load(path: &Path) -> Result<Classifier, Vec<Diagnostic>> {
        let loaded = Loaded::read(path)?;
        let catalog = Catalog::load_dir(&loaded.resolve(&loaded.config.catalog))?;
        Self::build(&loaded, catalog)
    }

    /// Compiles a loaded configuration against a catalog.
    ///
    /// # Errors
    /// Every problem found, each with file and line.
    pub fn build(loaded: &Loaded, catalog: Catalog) -> Result<Classifier, Vec<Diagnostic>> {
        use sha2::Digest;
        let cfg = &loaded.config;
        let mut errors = Vec::new();
        let mut warnings = Vec::new();
        let mut departments = AddrTable::default();
        let mut department_ids = Vec::new();
        for d in &cfg.department {
            let id = d.id.get_ref();
            if department_ids.contains(id) || id == UNMAPPED {
                errors.push(loaded.diag(&d.id, format!("duplicate or reserved department id {id:?}")));
                continue;
            }
            department_ids.push(id.clone());
            for c in &d.cidrs {
                match c.get_ref().parse::<ipnet::IpNet>() {
                    Ok(net) => {
                        if let Some(prev) = departments.insert(net, department_ids.len() - 1) {
                            errors.push(loaded.diag(c, format!("{net} is already in department {}", department_ids[prev])));
                        }
                    }
                    Err(_) => errors.push(loaded.diag(c, format!("{id}: invalid CIDR {:?}", c.get_ref()))),
                }
            }
        }
        let service = |s: &toml::Spanned<String>, errors: &mut Vec<Diagnostic>| {
            let found = catalog.find(s.get_ref());
            if found.is_none() {
                errors.push(loaded.diag(s, format!("unknown service {:?}", s.get_ref())));
            }
            found
        };
        let sanctioned = cfg.policy.sanctioned.iter().filter_map(|s| service(s, &mut errors)).collect();
        let mut sanctioned_by_department = HashMap::new();
        for (dept, allow) in &cfg.policy.departments {
            if !department_ids.contains(dept) {
                errors.push(Diagnostic { file: loaded.path.clone(), line: None, message: format!("policy names unknown department {dept:?}") });
            }
            let set = allow.sanctioned.iter().filter_map(|s| service(s, &mut errors)).collect();
            sanctioned_by_department.insert(dept.clone(), set);
        }
        let mut exemptions = Vec::new();
        for e in &cfg.exemption {
            if !department_ids.contains(e.department.get_ref()) {
                errors.push(loaded.diag(&e.department, format!("unknown department {:?}", e.department.get_ref())));
            }
            let svc = service(&e.service, &mut errors);
            let (from, until) = (day_start(e.start.get_ref()), day_start(e.expires.get_ref()));
            let (Some(from), Some(until)) = (from, until) else {
                errors.push(loaded.diag(&e.start, "start and expires must be dates (YYYY-MM-DD)"));
                continue;
            };
            let until = until.plus_secs(86_400);
            if until <= from {
                errors.push(loaded.diag(&e.expires, "exemption expires before it starts"));
            }
            if let Some(service) = svc {
                exemptions.push(ExemptionRule {
                    department: e.department.get_ref().clone(),
                    service,
                    from,
                    until,
                    reference: e.reference.clone(),
                });
            }
        }
        let mut own_tenants = HashMap::new();
        for (sid, tenants) in &cfg.tenants {
            match catalog.find(sid) {
                Some(i) => {
                    own_tenants.insert(i, tenants.iter().map(|t| t.to_ascii_lowercase()).collect());
                }
                None => errors.push(Diagnostic { file: loaded.path.clone(), line: None, message: format!("tenants: unknown service {sid:?}") }),
            }
        }
        let mut mapping = HashMap::new();
        let mut mapping_file = None;
        if let Some(f) = &cfg.departments.mapping_file {
            let path = loaded.resolve(f);
            mapping_file = Some((path.clone(), modified(&path)));
            match read_mapping(&path, &department_ids) {
                Ok(m) => mapping = m,
                Err(mut e) => errors.append(&mut e),
            }
        }
        let mut open_db = |p: &Option<String>, what: &str| match p {
            Some(p) => match maxminddb::Reader::open_readfile(loaded.resolve(p)) {
                Ok(r) => Some(r),
                Err(e) => {
                    warnings.push(Diagnostic { file: loaded.resolve(p), line: None, message: format!("{what} database not loaded ({e}); the {what} signal is off") });
                    None
                }
            },
            None => None,
        };
        if cfg.store.retention_days == 0 {
            errors.push(Diagnostic { file: loaded.path.clone(), line: None, message: "store.retention_days must be at least 1".into() });
        }
        let asn_db = open_db(&cfg.geoip_asn, "ASN");
        let country_db = open_db(&cfg.geoip_country, "country");
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Classifier {
            catalog,
            departments,
            department_ids,
            mapping,
            sanctioned,
            sanctioned_by_department,
            exemptions,
            own_tenants,
            asn_db,
            country_db,
            mapping_file,
            config_digest: format!("{:x}", sha2::Sha256::digest(loaded.text.as_bytes())),
            privacy: crate::aggregate::Privacy {
                min_group_size: cfg.privacy.min_group_size.max(1),
                reveal_hosts: cfg.privacy.reveal_hosts,
                key_rotation_secs: cfg.privacy.key_rotation_days.max(1).saturating_mul(86_400),
            },
            events: crate::export::events::EventConfig {
                upload_threshold_bytes: cfg.events.upload_threshold_mib.saturating_mul(1 << 20),
                capture_loss_ratio: (cfg.events.capture_loss_percent / 100.0).clamp(0.0, 1.0),
                exemption_warn_days: cfg.events.exemption_warn_days,
                min_group_size: cfg.privacy.min_group_size.max(1),
            },
            store: crate::store::Settings { retention_days: cfg.store.retention_days, key_grace_days: cfg.store.key_grace_days },
            warnings,
        })
    }

    /// The exemptions in force or pending, for the events that warn of their expiry.
    pub fn exemptions(&self) -> Vec<crate::export::events::ExemptionInfo> {
        self.exemptions
            .iter()
            .map(|e| crate::export::events::ExemptionInfo {
                department: e.department.clone(),
                service: self.catalog.services[e.service].id.clone(),
                reference: e.reference.clone(),
                expires_end: e.until,
            })
            .collect()
    }

    /// The exemptions as configured (first and last day, reference), for the record of
    /// configurations in the rollup store.
    pub fn exemptions_configured(&self) -> Vec<crate::report::input::Exemption> {
        self.exemptions
            .iter()
            .filter_map(|e| {
                Some(crate::report::input::Exemption {
                    department: e.department.clone(),
                    service: self.catalog.services[e.service].id.clone(),
                    start: Some(e.from.utc_date()?),
                    // `until` is the end of the last day.
                    expires: Timestamp(e.until.0 - 1).utc_date()?,
                    reference: (!e.reference.is_empty()).then(|| e.reference.clone()),
                })
            })
            .collect()
    }

    /// True when the mapping file changed since it was read (the caller reloads).
    pub fn mapping_changed(&self) -> bool {
        self.mapping_file.as_ref().is_some_and(|(p, t)| modified(p) != *t)
    }

    /// Exemptions that have expired by `now`, as warnings for `check`.
    pub fn expired_exemptions(&self, loaded: &Loaded, now: Timestamp) -> Vec<Diagnostic> {
        loaded
            .config
            .exemption
            .iter()
            .filter(|e| day_start(e.expires.get_ref()).is_some_and(|t| t.plus_secs(86_400) <= now))
            .map(|e| loaded.diag(&e.expires, format!("exemption for {} in {} has expired", e.service.get_ref(), e.department.get_ref())))
            .collect()
    }

    /// The department of `addr`: a mapping-file entry, else the longest matching prefix.
    pub fn department(&self, addr: IpAddr) -> &str {
        self.mapping
            .get(&addr)
            .or_else(|| self.departments.lookup(addr).map(|(_, i)| i))
            .map(|&i| self.department_ids[i].as_str())
            .unwrap_or(UNMAPPED)
    }

    /// Configured department ids.
    pub fn department_ids(&self) -> &[String] {
        &self.department_ids
    }

    fn asn(&self, addr: IpAddr) -> Option<u32> {
        let db = self.asn_db.as_ref()?;
        let r = db.lookup(addr).ok()?;
        let asn: maxminddb::geoip2::Asn = r.decode().ok()??;
        asn.autonomous_system_number
    }

    /// Which GeoIP signals are on: (ASN, country).
    pub fn geoip(&self) -> (bool, bool) {
        (self.asn_db.is_some(), self.country_db.is_some())
    }

    /// ISO 3166-1 country of `addr` from the country database, if one is loaded.
    pub fn country(&self, addr: IpAddr) -> Option<String> {
        let r = self.country_db.as_ref()?.lookup(addr).ok()?;
        let c: maxminddb::geoip2::Country = r.decode().ok()??;
        c.country.iso_code.map(str::to_string)
    }

    /// Attributes a finished flow to a service, channel, department and status.
    pub fn attribute(&self, r: &FlowRecord) -> Attribution {
        let department = self.department(r.client.ip()).to_string();
        let (target, signal, rule, name) = self.match_flow(r);
        let tenant = match (target, &name) {
            (Some(t), Some(n)) if self.catalog.service(t).corporate => self.catalog.tenant(t, n),
            _ => None,
        };
        let status = match target {
            Some(t) => Some(self.status(t.service as usize, tenant.as_deref(), &department, r.ts_start)),
            None if r.signal.is_none() && r.unnamed.is_some() => Some(Status::Unknown),
            None => None,
        };
        let server_country = self.country(r.server.ip());
        Attribution { target, signal, rule, tenant, department, status, server_country }
    }

    fn status(&self, service: usize, tenant: Option<&str>, department: &str, at: Timestamp) -> Status {
        let foreign_tenant = tenant.is_some_and(|t| !self.own_tenants.get(&service).is_some_and(|own| own.iter().any(|o| o == t)));
        let allowed = self.sanctioned.contains(&service)
            || self.sanctioned_by_department.get(department).is_some_and(|s| s.contains(&service));
        if allowed && !foreign_tenant {
            Status::Sanctioned
        } else if self.exemptions.iter().any(|e| e.service == service && e.department == department && e.from <= at && at < e.until) {
            Status::Exempted
        } else {
            Status::Unsanctioned
        }
    }

    /// The strongest catalog match of a flow, with the name that matched (for tenants).
    fn match_flow(&self, r: &FlowRecord) -> (Option<Target>, Option<MatchSignal>, Option<String>, Option<Vec<u8>>) {
        let d = r.details.as_deref();
        let quic = r.app == crate::engine::App::Quic;
        let mut names: Vec<(Signal, &[u8])> = Vec::new();
        let dns_first = r.signal == Some(Signal::Dns);
        // A DNS flow goes to a resolver: names that resolved to the resolver's address do not
        // say what the flow is.
        let dns_names = || {
            d.filter(|_| r.app != crate::engine::App::Dns)
                .map(|d| d.names_from_dns.iter().map(|n| (Signal::Dns, &n[..])).collect::<Vec<_>>())
                .unwrap_or_default()
        };
        if dns_first {
            names.extend(dns_names());
        }
        // With real ECH the SNI is the provider's public name, not the destination.
        let real_ech = d.is_some_and(|d| d.client_hello().is_some_and(|h| h.ech) && !d.ech_grease);
        if let Some(sni) = d.and_then(|d| d.client_hello()).and_then(|h| h.sni.as_deref()).filter(|_| !real_ech) {
            names.push((if quic { Signal::QuicSni } else { Signal::Sni }, sni));
        }
        if let Some(h) = d.and_then(|d| d.proxy.as_ref()).and_then(|p| p.target.as_deref()) {
            names.push((Signal::Connect, strip_port(h)));
        }
        if let Some(h) = d.and_then(|d| d.http_host.as_deref()) {
            names.push((Signal::HttpHost, strip_port(h)));
        }
        if !dns_first {
            names.extend(dns_names());
        }
        for (signal, name) in names {
            if let Some(hit) = self.catalog.match_name(name) {
                return (Some(hit.target), Some(MatchSignal::Name(signal)), Some(hit.pattern), Some(name.to_vec()));
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
                        let own = self.own_tenants.get(&(hit.target.service as usize)).is_some_and(|o| o.contains(&t));
                        out.push(format!("tenant: {t} ({})", if own { "own" } else { "foreign" }));
                    }
                    for dept in self.department_ids.iter().map(String::as_str).chain([UNMAPPED]) {
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

fn modified(p: &Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

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

/// Reads a `address,department` CSV (lines starting with `#` and blank lines skipped).
fn read_mapping(path: &Path, departments: &[String]) -> Result<HashMap<IpAddr, usize>, Vec<Diagnostic>> {
    let text = std::fs::read_to_string(path).map_err(|e| vec![Diagnostic { file: path.to_path_buf(), line: None, message: e.to_string() }])?;
    let mut map = HashMap::new();
    let mut errors = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |m: String| Diagnostic { file: path.to_path_buf(), line: Some(n + 1), message: m };
        let Some((a, d)) = line.split_once(',') else {
            errors.push(err(format!("expected address,department: {line:?}")));
            continue;
        };
        match (a.trim().parse::<IpAddr>(), departments.iter().position(|x| x == d.trim())) {
            (Ok(ip), Some(i)) => {
                map.insert(ip, i);
            }
            (Err(_), _) => errors.push(err(format!("invalid address {:?}", a.trim()))),
            (_, None) => errors.push(err(format!("unknown department {:?}", d.trim()))),
        }
    }
    if errors.is_empty() {
        Ok(map)
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_stripped_from_targets() {
        assert_eq!(strip_port(b"drive.google.com:443"), b"drive.google.com");
        assert_eq!(strip_port(b"[2001:db8::1]:443"), b"2001:db8::1");
        assert_eq!(strip_port(b"example.com"), b"example.com");
    }
}
