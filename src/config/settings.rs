//! The composition layer: one configuration file and everything it names (catalog directory,
//! mapping file, GeoIP databases) loaded, validated and compiled into one [`Settings`] value
//! with a part per stage. Stages never read the configuration themselves; a reload builds a
//! new `Settings` off the packet thread and hands each stage its part.
//!
//! This is the one place of the control plane that reads configuration files, so it imports
//! each stage's settings type (classifier, privacy, events, store, engine) and none of them
//! imports it.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::aggregate::{Privacy, Unanswered};
use crate::classify::addr::AddrTable;
use crate::classify::catalog::Catalog;
use crate::classify::risk;
use crate::classify::{Classifier, ExemptionRule, GeoIp, Policy, UNMAPPED};
use crate::diag::{self, Diagnostic};
use crate::report::input::{ReportInput, ServiceInfo, ServiceReference};
use crate::engine;
use crate::export::events::{EventConfig, ExemptionInfo};
use crate::store;
use crate::time::Timestamp;

use super::Loaded;

/// A configuration file and everything it names, compiled: what every stage runs with.
pub struct Settings {
    /// Where it was read from.
    pub path: PathBuf,
    /// The catalog, departments and policy.
    pub classifier: Classifier,
    /// Minimum group size, host identities, pseudonym key lifetime.
    pub privacy: Privacy,
    /// Event thresholds.
    pub events: EventConfig,
    /// Rollup store settings.
    pub store: store::Settings,
    /// Flow-table and reassembly limits (`[engine]`). They take effect at start: a reload
    /// keeps the running engine's limits (its table is not rebuilt under traffic).
    pub engine: engine::Config,
    /// Whether flows their server never answered count as use (`[engine] count_unanswered`);
    /// like the rest of `[engine]`, in force from the start of the sensor.
    pub unanswered: Unanswered,
    /// Weights of the services' risk rating (`risk`, else [`risk::BUILTIN`]).
    pub risk: risk::Weights,
    /// SHA-256 of the configuration file: the version reports cite.
    pub config_digest: String,
    /// Department display names by id (the id where none is configured).
    pub department_names: Vec<(String, String)>,
    /// Warnings that do not stop loading (absent GeoIP databases, host bits in a prefix).
    pub warnings: Vec<Diagnostic>,
    /// Notes: what was read in a way worth saying but is no problem (a lease file's skipped
    /// header row). `check --strict` does not fail on them.
    pub notes: Vec<Diagnostic>,
    /// Where the ASN signal's database came from (`geoip_asn`, the default file, none).
    pub asn_source: AsnSource,
    /// The mapping file and its modification time when read.
    mapping_file: Option<(PathBuf, Option<SystemTime>)>,
    /// The file as read (for `expired_exemptions`' line numbers).
    loaded: Loaded,
}

/// Where the ASN signal's database came from: said by `check` and at start, because the
/// default database's licence (CC BY 4.0) asks that its use be attributed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AsnSource {
    /// No database: the catalog's `asns` never match.
    Off,
    /// `geoip_asn` of the configuration (MaxMind's GeoLite2-ASN or any file of its schema).
    Configured(PathBuf),
    /// `geoip_asn` names a file that could not be opened (a warning says why): the signal is off.
    Unloadable(PathBuf),
    /// `geoip_asn` not set; the file `shadowtap asn update` installs was found.
    Default {
        /// The file.
        path: PathBuf,
        /// Its description: the attribution and the source's version.
        description: String,
    },
}

impl AsnSource {
    /// The note `check` prints and `run` logs about it (none for a configured database, which
    /// the operator chose and named).
    pub fn note(&self) -> Option<Diagnostic> {
        let (file, message) = match self {
            AsnSource::Configured(_) | AsnSource::Unloadable(_) => return None,
            AsnSource::Default { path, description } => (path.clone(), format!("ASN signal on from the default database (geoip_asn not set): {description}")),
            AsnSource::Off => (
                crate::asndb::default_path(),
                "ASN signal off: geoip_asn not set and no default database here; `shadowtap asn update` installs an openly licensed one (CC BY 4.0, no account)".to_string(),
            ),
        };
        Some(Diagnostic { file, line: None, message })
    }
}

/// Opens the ASN database: the configured one, else the default file when it exists. A file
/// that cannot be opened is a warning and leaves the signal off; a configured one is never
/// replaced by the default (MaxMind stays the operator's choice).
fn open_asn(configured: Option<PathBuf>, default: &Path, warnings: &mut Vec<Diagnostic>) -> (Option<maxminddb::Reader<Vec<u8>>>, AsnSource) {
    let (path, is_default) = match configured {
        Some(p) => (p, false),
        None if default.exists() => (default.to_path_buf(), true),
        None => return (None, AsnSource::Off),
    };
    match maxminddb::Reader::open_readfile(&path) {
        Ok(r) if is_default => {
            let description = crate::asndb::describe(&r);
            (Some(r), AsnSource::Default { path, description })
        }
        Ok(r) => (Some(r), AsnSource::Configured(path)),
        Err(e) => {
            warnings.push(Diagnostic { file: path.clone(), line: None, message: format!("ASN database not loaded ({e}); the ASN signal is off") });
            (None, AsnSource::Unloadable(path))
        }
    }
}

impl Settings {
    /// Reads the configuration at `path` and everything it names, and compiles it.
    ///
    /// # Errors
    /// Every problem found, each with file and line.
    pub fn load(path: &Path) -> Result<Settings, Vec<Diagnostic>> {
        let overflows = crate::intern::overflows();
        let loaded = Loaded::read(path)?;
        let catalog = read_catalog_dir(&loaded.resolve(&loaded.config.catalog))?;
        let mapping_file = loaded.config.departments.mapping_file.as_ref().map(|f| loaded.resolve(f));
        let mapping_text = match &mapping_file {
            Some(p) => Some(std::fs::read_to_string(p).map_err(|e| vec![Diagnostic { file: p.clone(), line: None, message: e.to_string() }])?),
            None => None,
        };
        let mut warnings = Vec::new();
        let mut open_db = |p: &Option<String>, what: &str| {
            let p = loaded.resolve(p.as_deref()?);
            match maxminddb::Reader::open_readfile(&p) {
                Ok(r) => Some(r),
                Err(e) => {
                    warnings.push(Diagnostic { file: p, line: None, message: format!("{what} database not loaded ({e}); the {what} signal is off") });
                    None
                }
            }
        };
        let country = open_db(&loaded.config.geoip_country, "country");
        let (asn, asn_source) = open_asn(loaded.config.geoip_asn.as_deref().map(|p| loaded.resolve(p)), &crate::asndb::default_path(), &mut warnings);
        let geoip = GeoIp { asn, country };
        let mapping_file = mapping_file.map(|p| {
            let t = modified(&p);
            (p, t)
        });
        let risk = match &loaded.config.risk {
            Some(f) => {
                let p = loaded.resolve(f);
                let text = std::fs::read_to_string(&p).map_err(|e| vec![Diagnostic { file: p.clone(), line: None, message: e.to_string() }])?;
                Some(risk::Weights::parse(&text).map_err(|e| vec![Diagnostic { file: p, line: None, message: e.to_string() }])?)
            }
            None => None,
        };
        let mut s = Self::compile(loaded, catalog, mapping_file.as_ref().map(|(p, _)| p.as_path()).zip(mapping_text.as_deref()), geoip)?;
        s.mapping_file = mapping_file;
        if let Some(w) = risk {
            s.risk = w;
        }
        s.warnings.splice(0..0, warnings);
        if let Some(n) = asn_source.note() {
            s.notes.insert(0, n);
        }
        s.asn_source = asn_source;
        if crate::intern::overflows() > overflows {
            // Ids are never reused (groups kept across reloads hold them), so a process that
            // has seen too many distinct names refuses the configuration rather than merge
            // its new names under one label.
            let message = format!(
                "more than {} distinct department, service, channel and category names since the sensor started; restart it to load this configuration",
                crate::intern::MAX_SYMS
            );
            return Err(vec![Diagnostic { file: path.to_path_buf(), line: None, message }]);
        }
        Ok(s)
    }

    /// Compiles a read configuration against a catalog, the mapping file's text (with its path,
    /// for diagnostics) and opened GeoIP databases. Pure: no file is read.
    ///
    /// # Errors
    /// Every problem found, each with file and line.
    pub fn compile(loaded: Loaded, catalog: Catalog, mapping: Option<(&Path, &str)>, geoip: GeoIp) -> Result<Settings, Vec<Diagnostic>> {
        use sha2::Digest;
        let cfg = &loaded.config;
        let mut errors = Vec::new();
        let mut warnings = catalog.warnings.clone();
        let mut notes = Vec::new();
        let mut policy = Policy { departments: AddrTable::default(), ..Policy::default() };
        let mut department_names = Vec::new();
        for d in &cfg.department {
            let id = d.id.get_ref();
            if policy.department_ids.contains(id) || id == UNMAPPED {
                errors.push(loaded.diag(&d.id, format!("duplicate or reserved department id {id:?}")));
                continue;
            }
            policy.department_ids.push(id.clone());
            department_names.push((id.clone(), if d.name.is_empty() { id.clone() } else { d.name.clone() }));
            for c in &d.cidrs {
                match c.get_ref().parse::<ipnet::IpNet>() {
                    Ok(net) => {
                        if let Some(w) = crate::classify::addr::host_bits_warning(c.get_ref(), &net) {
                            warnings.push(loaded.diag(c, format!("{id}: {w}")));
                        }
                        if let Some(prev) = policy.departments.insert(net, policy.department_ids.len() - 1) {
                            errors.push(loaded.diag(c, format!("{net} is already in department {}", policy.department_ids[prev])));
                        }
                    }
                    Err(_) => errors.push(loaded.diag(c, format!("{id}: invalid CIDR {:?}", c.get_ref()))),
                }
            }
        }
        let service = |s: &toml::Spanned<String>, errors: &mut Vec<Diagnostic>| {
            let found = catalog.find(s.get_ref());
            if found.is_none() {
                errors.push(loaded.diag(s, format!("unknown service {:?}{}", s.get_ref(), diag::did_you_mean(s.get_ref(), catalog.services.iter().map(|x| x.id.as_str())))));
            }
            found
        };
        policy.sanctioned = cfg.policy.sanctioned.iter().filter_map(|s| service(s, &mut errors)).collect();
        for (dept, allow) in &cfg.policy.departments {
            if !policy.department_ids.contains(dept) {
                errors.push(Diagnostic { file: loaded.path.clone(), line: None, message: format!("policy names unknown department {dept:?}{}", diag::did_you_mean(dept, policy.department_ids.iter().map(String::as_str))) });
            }
            let set: HashSet<usize> = allow.sanctioned.iter().filter_map(|s| service(s, &mut errors)).collect();
            policy.sanctioned_by_department.insert(dept.clone(), set);
        }
        for e in &cfg.exemption {
            if !policy.department_ids.contains(e.department.get_ref()) {
                errors.push(loaded.diag(&e.department, format!("unknown department {:?}{}", e.department.get_ref(), diag::did_you_mean(e.department.get_ref(), policy.department_ids.iter().map(String::as_str)))));
            }
            let svc = service(&e.service, &mut errors);
            let (Some(from), Some(until)) = (day_start(e.start.get_ref()), day_start(e.expires.get_ref())) else {
                errors.push(loaded.diag(&e.start, "start and expires must be dates (YYYY-MM-DD)"));
                continue;
            };
            let until = until.plus_secs(86_400);
            if until <= from {
                errors.push(loaded.diag(&e.expires, "exemption expires before it starts"));
            }
            if let Some(service) = svc {
                policy.exemptions.push(ExemptionRule { department: e.department.get_ref().clone(), service, from, until, reference: e.reference.clone() });
            }
        }
        for (sid, tenants) in &cfg.tenants {
            match catalog.find(sid) {
                Some(i) => {
                    policy.own_tenants.insert(i, tenants.iter().map(|t| t.to_ascii_lowercase()).collect());
                }
                None => errors.push(Diagnostic { file: loaded.path.clone(), line: None, message: format!("tenants: unknown service {sid:?}{}", diag::did_you_mean(sid, catalog.services.iter().map(|x| x.id.as_str()))) }),
            }
        }
        if let Some((path, text)) = mapping {
            match parse_mapping(path, text, &policy.department_ids) {
                Ok((m, header)) => {
                    policy.mapping = m;
                    notes.extend(header);
                }
                Err(mut e) => errors.append(&mut e),
            }
        }
        if cfg.store.retention_days == 0 {
            errors.push(Diagnostic { file: loaded.path.clone(), line: None, message: "store.retention_days must be at least 1".into() });
        }
        let engine = match cfg.engine.compile() {
            Ok(e) => e,
            Err(m) => {
                errors.push(Diagnostic { file: loaded.path.clone(), line: None, message: m });
                engine::Config::default()
            }
        };
        let risk = match risk::Weights::parse(risk::BUILTIN) {
            Ok(w) => Some(w),
            Err(e) => {
                errors.push(Diagnostic { file: "risk.toml (built in)".into(), line: None, message: e.to_string() });
                None
            }
        };
        let (Some(risk), true) = (risk, errors.is_empty()) else {
            return Err(errors);
        };
        let k = cfg.privacy.min_group_size.max(1);
        Ok(Settings {
            path: loaded.path.clone(),
            privacy: Privacy {
                min_group_size: k,
                reveal_hosts: cfg.privacy.reveal_hosts,
                key_rotation_secs: cfg.privacy.key_rotation_days.max(1).saturating_mul(86_400),
            },
            events: EventConfig {
                upload_threshold_bytes: cfg.events.upload_threshold_mib.saturating_mul(1 << 20),
                capture_loss_ratio: (cfg.events.capture_loss_percent / 100.0).clamp(0.0, 1.0),
                exemption_warn_days: cfg.events.exemption_warn_days,
                min_group_size: k,
            },
            store: store::Settings { retention_days: cfg.store.retention_days, key_grace_days: cfg.store.key_grace_days },
            engine,
            unanswered: cfg.engine.unanswered(),
            risk,
            config_digest: format!("{:x}", sha2::Sha256::digest(loaded.text.as_bytes())),
            classifier: Classifier::build(catalog, policy, geoip),
            department_names,
            warnings,
            notes,
            asn_source: AsnSource::Off,
            mapping_file: None,
            loaded,
        })
    }

    /// A watch on the mapping file as it was read (None without one), for the thread that
    /// reloads when it changes.
    pub fn mapping_watch(&self) -> Option<MappingWatch> {
        self.mapping_file.as_ref().map(|(path, modified)| MappingWatch { path: path.clone(), modified: *modified })
    }

    /// Describes a report's input from this configuration: the configured departments (so that
    /// one without traffic is listed as not observed) and their display names, and the catalog's
    /// description and risk rating of every service the input names, with the weights.
    /// Sources that do not record the configuration (the store, Prometheus) get it from here.
    pub fn describe(&self, input: &mut ReportInput) {
        use std::collections::BTreeSet;
        input.departments_configured = self.department_names.iter().map(|(id, _)| id.clone()).collect();
        input.department_names = self.department_names.iter().filter(|(id, name)| id != name).cloned().collect();
        let used: BTreeSet<&str> = [&input.services, &input.channels]
            .into_iter()
            .flatten()
            .map(|r| r.service.as_str())
            .chain(input.exemptions.iter().map(|e| e.service.as_str()))
            .collect();
        let mut table: Vec<ServiceInfo> = self
            .classifier
            .catalog
            .services
            .iter()
            .filter(|s| used.contains(s.id.as_str()))
            .map(|s| ServiceInfo {
                id: s.id.clone(),
                name: s.name.clone(),
                category: s.category.clone(),
                vendor: s.vendor.clone(),
                vendor_country: s.vendor_country.clone(),
                data_location: s.data_location.clone(),
                e2ee: s.e2ee,
                disappearing_messages: s.disappearing_messages,
                references: s
                    .references
                    .iter()
                    .map(|r| ServiceReference { what: r.what.clone(), source: r.source.clone(), checked: r.checked.clone(), verified: r.verified })
                    .collect(),
                risk: Some(self.risk.rate(s.into())),
            })
            .collect();
        table.sort_by(|a, b| a.id.cmp(&b.id));
        input.service_catalog = table;
        input.risk_weights = Some(self.risk.clone());
    }

    /// The configuration's facts recorded with the rollup store (digests, k, exemptions).
    pub fn facts(&self) -> store::ConfigFacts {
        let c = &self.classifier;
        store::ConfigFacts {
            catalog_digest: c.catalog.digest.clone(),
            config_digest: self.config_digest.clone(),
            min_group_size: self.privacy.min_group_size as u64,
            unanswered: self.unanswered,
            exemptions: c
                .exemptions()
                .iter()
                .filter_map(|e| {
                    Some(crate::report::input::Exemption {
                        department: e.department.clone(),
                        service: c.catalog.services[e.service].id.clone(),
                        start: Some(e.from.utc_date()?),
                        // `until` is the end of the last day.
                        expires: Timestamp(e.until.0 - 1).utc_date()?,
                        reference: (!e.reference.is_empty()).then(|| e.reference.clone()),
                    })
                })
                .collect(),
        }
    }

    /// The exemptions as the event stage checks them.
    pub fn exemption_infos(&self) -> Vec<ExemptionInfo> {
        let c = &self.classifier;
        c.exemptions()
            .iter()
            .map(|e| ExemptionInfo {
                department: e.department.clone(),
                service: c.catalog.services[e.service].id.clone(),
                reference: e.reference.clone(),
                expires_end: e.until,
            })
            .collect()
    }

    /// Exemptions that have expired by `now`, as problems for `check` (with their line).
    pub fn expired_exemptions(&self, now: Timestamp) -> Vec<Diagnostic> {
        let l = &self.loaded;
        l.config
            .exemption
            .iter()
            .filter(|e| day_start(e.expires.get_ref()).is_some_and(|t| t.plus_secs(86_400) <= now))
            .map(|e| l.diag(&e.expires, format!("exemption for {} in {} has expired", e.service.get_ref(), e.department.get_ref())))
            .collect()
    }
}

/// The mapping file (DHCP or VPN lease export) and its modification time when last seen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MappingWatch {
    /// The file.
    pub path: PathBuf,
    modified: Option<SystemTime>,
}

impl MappingWatch {
    /// True once when the file changed since the last call (or since it was read). It stats a
    /// file: call it off the packet thread.
    pub fn changed(&mut self) -> bool {
        let now = modified(&self.path);
        let changed = now != self.modified;
        self.modified = now;
        changed
    }
}

/// Converts a TOML date to the start of that day (UTC).
fn day_start(d: &toml::value::Datetime) -> Option<Timestamp> {
    let date = d.date?;
    let month = time::Month::try_from(date.month).ok()?;
    let day = time::Date::from_calendar_date(date.year as i32, month, date.day).ok()?;
    Some(Timestamp::from_parts(day.midnight().assume_utc().unix_timestamp(), 0))
}

fn modified(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Reads every `*.toml` file of `dir` (sorted by name) and compiles the catalog.
///
/// # Errors
/// Every problem found, each with file and line; the catalog is not returned if there is any.
pub fn read_catalog_dir(dir: &Path) -> Result<Catalog, Vec<Diagnostic>> {
    let io = |e: std::io::Error| vec![Diagnostic { file: dir.to_path_buf(), line: None, message: e.to_string() }];
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(vec![Diagnostic { file: dir.to_path_buf(), line: None, message: "no .toml service files".into() }]);
    }
    let mut texts = Vec::new();
    for f in &files {
        match std::fs::read_to_string(f) {
            Ok(t) => texts.push((f.clone(), t)),
            Err(e) => return Err(vec![Diagnostic { file: f.clone(), line: None, message: e.to_string() }]),
        }
    }
    Catalog::from_texts(&texts)
}

/// A mapping file as parsed: address → department index, and the note of a skipped header.
type Mapping = (HashMap<IpAddr, usize>, Option<Diagnostic>);

/// Parses an `address,department` CSV (lines starting with `#` and blank lines skipped). A
/// first row whose first field is not an address is a header (`ip,department` of a lease
/// export): it is skipped, and said (the second value: a note with its line).
fn parse_mapping(path: &Path, text: &str, departments: &[String]) -> Result<Mapping, Vec<Diagnostic>> {
    let mut map = HashMap::new();
    let mut errors = Vec::new();
    let mut header = None;
    let mut first = true;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let err = |m: String| Diagnostic { file: path.to_path_buf(), line: Some(n + 1), message: m };
        if std::mem::take(&mut first) && line.split(',').next().is_some_and(|a| a.trim().parse::<IpAddr>().is_err()) {
            header = Some(err(format!("skipped 1 header line {line:?} (not an address row)")));
            continue;
        }
        let Some((a, d)) = line.split_once(',') else {
            errors.push(err(format!("expected address,department: {line:?}")));
            continue;
        };
        match (a.trim().parse::<IpAddr>(), departments.iter().position(|x| x == d.trim())) {
            (Ok(ip), Some(i)) => {
                map.insert(ip, i);
            }
            (Err(_), _) => errors.push(err(format!("invalid address {:?}", a.trim()))),
            (_, None) => errors.push(err(format!("unknown department {:?}{}", d.trim(), diag::did_you_mean(d.trim(), departments.iter().map(String::as_str))))),
        }
    }
    if errors.is_empty() {
        Ok((map, header))
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Result<T> = std::result::Result<T, String>;

    fn loaded(text: &str) -> Result<Loaded> {
        Loaded::parse(Path::new("/etc/shadowtap/config.toml"), text.to_string()).map_err(|d| format!("{d:?}"))
    }

    fn catalog() -> Result<Catalog> {
        let svc = "[[service]]\nid = \"whatsapp\"\nname = \"WhatsApp\"\ncategory = \"messaging\"\nvendor = \"Meta\"\nvendor_country = \"US\"\ndomains = [\"whatsapp.net\"]\n";
        Catalog::from_texts(&[(PathBuf::from("messaging.toml"), svc.to_string())]).map_err(|d| format!("{d:?}"))
    }

    fn ip(s: &str) -> Result<IpAddr> {
        s.parse().map_err(|e| format!("{s}: {e}"))
    }

    #[test]
    fn a_reload_keeps_the_ids_of_known_names_and_adds_ids_for_new_ones() -> Result<()> {
        let one = "[[department]]\nid = \"reload-finance\"\nname = \"Finance\"\ncidrs = [\"10.1.0.0/16\"]\n";
        let two = format!("{one}[[department]]\nid = \"reload-legal\"\nname = \"Legal\"\ncidrs = [\"10.2.0.0/16\"]\n");
        let compile = |text: &str| Settings::compile(loaded(text)?, catalog()?, None, GeoIp::default()).map_err(|d| format!("{d:?}"));
        let (before, after) = (compile(one)?, compile(&two)?);
        let finance = before.classifier.department_sym(ip("10.1.2.3")?);
        assert_eq!(after.classifier.department_sym(ip("10.1.2.3")?), finance, "the aggregator's groups stay valid");
        let legal = after.classifier.department_sym(ip("10.2.0.1")?);
        assert_ne!(legal, finance);
        assert_eq!((finance.as_str(), legal.as_str()), ("reload-finance", "reload-legal"));
        assert_eq!(before.classifier.department_sym(ip("10.2.0.1")?), crate::classify::UNMAPPED_SYM);
        let t = crate::classify::catalog::Target { service: 0, channel: 0 };
        assert_eq!(before.classifier.catalog.service_sym(t), after.classifier.catalog.service_sym(t), "a catalog built again gives the same ids");
        Ok(())
    }

    #[test]
    fn compiles_departments_policy_engine_and_mapping_without_reading_files() -> Result<()> {
        let text = "[[department]]\nid = \"finance\"\nname = \"Finance\"\ncidrs = [\"10.1.0.0/16\"]\n[policy]\nsanctioned = [\"whatsapp\"]\n[engine]\nmax_flows = 1000\n";
        let s = Settings::compile(loaded(text)?, catalog()?, Some((Path::new("map.csv"), "# lease export\n10.9.0.7,finance\n")), GeoIp::default())
            .map_err(|d| format!("{d:?}"))?;
        assert_eq!(s.classifier.department(ip("10.1.2.3")?), "finance");
        assert_eq!(s.classifier.department(ip("10.9.0.7")?), "finance");
        assert_eq!(s.classifier.department(ip("10.2.0.1")?), UNMAPPED);
        assert_eq!(s.engine.max_flows, 1000);
        assert_eq!(s.engine.reassembly_limit, engine::Config::default().reassembly_limit);
        assert_eq!((s.unanswered, s.facts().unanswered), (Unanswered::Apart, Unanswered::Apart), "unanswered flows are not use by default");
        assert_eq!(s.department_names, vec![("finance".to_string(), "Finance".to_string())]);
        assert_eq!(s.config_digest.len(), 64);
        Ok(())
    }

    #[test]
    fn every_problem_is_reported_with_its_line() -> Result<()> {
        let text = "[[department]]\nid = \"finance\"\ncidrs = [\"10.1.0.0/16\", \"nonsense\"]\n[policy]\nsanctioned = [\"nosuch\"]\n";
        let Err(errs) = Settings::compile(loaded(text)?, catalog()?, Some((Path::new("map.csv"), "10.9.0.7,sales\n")), GeoIp::default()) else {
            return Err("accepted".into());
        };
        let text: Vec<String> = errs.iter().map(|d| d.to_string()).collect();
        assert_eq!(errs.len(), 3, "{text:?}");
        assert!(text[0].contains(":3:") && text[0].contains("invalid CIDR"), "{text:?}");
        assert!(text[1].contains(":5:") && text[1].contains("unknown service"), "{text:?}");
        assert!(text[2].starts_with("map.csv:1:") && text[2].contains("unknown department"), "{text:?}");
        Ok(())
    }

    #[test]
    fn host_bits_in_a_prefix_are_a_warning_and_the_network_is_used() -> Result<()> {
        let text = "[[department]]\nid = \"finance\"\ncidrs = [\"10.1.2.3/16\", \"10.2.0.0/16\"]\n";
        let s = Settings::compile(loaded(text)?, catalog()?, None, GeoIp::default()).map_err(|d| format!("{d:?}"))?;
        let w: Vec<String> = s.warnings.iter().map(|d| d.to_string()).collect();
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("config.toml:3:") && w[0].contains("\"10.1.2.3/16\" has host bits set: used as 10.1.0.0/16"), "{w:?}");
        assert_eq!(s.classifier.department(ip("10.1.200.1")?), "finance");
        let svc = "[[service]]\nid = \"x\"\nname = \"X\"\ncategory = \"messaging\"\nvendor = \"X\"\nvendor_country = \"US\"\ncidrs = [\"192.0.2.9/24\"]\n";
        let c = Catalog::from_texts(&[(PathBuf::from("m.toml"), svc.to_string())]).map_err(|d| format!("{d:?}"))?;
        let w: Vec<String> = c.warnings.iter().map(|d| d.to_string()).collect();
        assert!(w.len() == 1 && w[0].starts_with("m.toml:7: x: \"192.0.2.9/24\" has host bits set"), "{w:?}");
        Ok(())
    }

    #[test]
    fn unknown_ids_name_the_closest_known_one() -> Result<()> {
        let text = "[[department]]\nid = \"finance\"\n[policy]\nsanctioned = [\"whatsap\"]\n[policy.departments.finanse]\nsanctioned = []\n[[exemption]]\ndepartment = \"Finance\"\nservice = \"whatsapp\"\nreason = \"r\"\napprover = \"a\"\nstart = 2026-01-01\nexpires = 2026-02-01\n[tenants]\nwhatsap = [\"x\"]\n";
        let Err(errs) = Settings::compile(loaded(text)?, catalog()?, Some((Path::new("map.csv"), "10.9.0.7,finace\n")), GeoIp::default()) else {
            return Err("accepted".into());
        };
        let text: Vec<String> = errs.iter().map(|d| d.to_string()).collect();
        assert_eq!(text.len(), 5, "{text:?}");
        assert!(text[0].contains(":4: unknown service \"whatsap\"; did you mean \"whatsapp\"?"), "{text:?}");
        assert!(text[1].contains("unknown department \"finanse\"; did you mean \"finance\"?"), "{text:?}");
        assert!(text[2].contains(":8: unknown department \"Finance\"; did you mean \"finance\"?"), "{text:?}");
        assert!(text[3].contains("tenants: unknown service \"whatsap\"; did you mean \"whatsapp\"?"), "{text:?}");
        assert!(text[4].contains("unknown department \"finace\"; did you mean \"finance\"?"), "{text:?}");
        Ok(())
    }

    #[test]
    fn a_lease_file_header_line_is_skipped_and_said() -> Result<()> {
        let text = "[[department]]\nid = \"finance\"\n";
        let lease = "# export\nip,department\n10.9.0.7,finance\n";
        let s = Settings::compile(loaded(text)?, catalog()?, Some((Path::new("map.csv"), lease)), GeoIp::default()).map_err(|d| format!("{d:?}"))?;
        assert_eq!(s.classifier.department(ip("10.9.0.7")?), "finance");
        assert!(s.warnings.is_empty(), "a header is no problem: {:?}", s.warnings);
        let w: Vec<String> = s.notes.iter().map(|d| d.to_string()).collect();
        assert!(w.len() == 1 && w[0].starts_with("map.csv:2: skipped 1 header line \"ip,department\""), "{w:?}");
        // Only the first row can be a header: a bad address further down is still an error.
        let bad = "ip,department\n10.9.0.7,finance\nnonsense,finance\n";
        let Err(e) = Settings::compile(loaded(text)?, catalog()?, Some((Path::new("map.csv"), bad)), GeoIp::default()) else {
            return Err("accepted".into());
        };
        assert!(e.len() == 1 && e[0].to_string().starts_with("map.csv:3: invalid address"), "{e:?}");
        Ok(())
    }

    #[test]
    fn count_unanswered_makes_unanswered_flows_use() -> Result<()> {
        let l = loaded("[[department]]\nid = \"a\"\n[engine]\ncount_unanswered = true\n")?;
        let s = Settings::compile(l, catalog()?, None, GeoIp::default()).map_err(|d| format!("{d:?}"))?;
        assert_eq!((s.unanswered, s.facts().unanswered), (Unanswered::AsUse, Unanswered::AsUse));
        Ok(())
    }

    #[test]
    fn engine_limits_out_of_range_are_errors() -> Result<()> {
        for bad in ["max_flows = 0", "reassembly_limit = 100", "udp_idle_secs = 0"] {
            let l = loaded(&format!("[[department]]\nid = \"a\"\n[engine]\n{bad}\n"))?;
            assert!(Settings::compile(l, catalog()?, None, GeoIp::default()).is_err(), "{bad} accepted");
        }
        Ok(())
    }

    #[test]
    fn an_empty_or_comments_only_configuration_is_refused() {
        for text in ["", "\n\n", "# all commented out\n# [[department]]\n"] {
            let Err(d) = loaded(text) else { panic!("{text:?} accepted") };
            assert!(d.contains("empty"), "{d}");
        }
    }

    #[test]
    fn a_mapping_watch_sees_a_change_once() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("shadowtap-watch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let path = dir.join("map.csv");
        std::fs::write(&path, "10.0.0.1,a\n").map_err(|e| e.to_string())?;
        let mut w = MappingWatch { modified: modified(&path), path: path.clone() };
        assert!(!w.changed());
        std::fs::remove_file(&path).map_err(|e| e.to_string())?;
        assert!(w.changed(), "a removed file is a change");
        assert!(!w.changed(), "and only once");
        std::fs::remove_dir_all(&dir).map_err(|e| e.to_string())?;
        Ok(())
    }
    #[test]
    fn the_default_asn_database_is_used_only_when_none_is_configured() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("shadowtap-asn-default-{}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let mut ranges = Vec::new();
        crate::asndb::parse_csv(include_str!("../../tests/fixtures/asn/asn-extract.csv"), &mut ranges).map_err(|e| e.to_string())?;
        let default = dir.join("asn.mmdb");
        std::fs::write(&default, crate::asndb::build(&ranges, "attribution text", 0).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        let mut w = Vec::new();
        // Nothing configured, the default file present: on, and said with its attribution.
        let (db, src) = open_asn(None, &default, &mut w);
        assert!(db.is_some() && w.is_empty());
        assert_eq!(src, AsnSource::Default { path: default.clone(), description: "attribution text".into() });
        assert!(src.note().is_some_and(|n| n.message.contains("attribution text")));
        // A configured database wins; one that cannot be opened is a warning, not the default.
        let other = dir.join("GeoLite2-ASN.mmdb");
        std::fs::copy(&default, &other).map_err(|e| e.to_string())?;
        assert_eq!(open_asn(Some(other.clone()), &default, &mut w).1, AsnSource::Configured(other));
        let missing = dir.join("missing.mmdb");
        let (db, src) = open_asn(Some(missing.clone()), &default, &mut w);
        assert!(db.is_none() && w.len() == 1);
        assert_eq!(src, AsnSource::Unloadable(missing));
        // Neither: off, and the note says how to turn it on.
        let (db, src) = open_asn(None, &dir.join("absent.mmdb"), &mut w);
        assert!(db.is_none() && src == AsnSource::Off);
        assert!(src.note().is_some_and(|n| n.message.contains("shadowtap asn update")));
        std::fs::remove_dir_all(&dir).map_err(|e| e.to_string())?;
        Ok(())
    }
}
