//! The service catalog: `rules/services/*.toml` loaded, validated and compiled into indexes.
//!
//! Matching is compiled once per load: names go into a hash map of suffixes (a name is looked
//! up label by label from its full form to its registrable tail, so the longest listed suffix
//! wins), address ranges into a longest-prefix table, ASNs, JA4s and markers into small maps.
//! Every definition error is a [`Diagnostic`] with file and line; a catalog with errors is not
//! used.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

use super::addr::AddrTable;
use crate::diag::{self, Diagnostic};
use crate::intern::Sym;

/// Service categories (the `category` key).
pub const CATEGORIES: &[&str] = &[
    "messaging",
    "file-sharing",
    "personal-mail",
    "conferencing",
    "social",
    "generative-ai",
    "remote-access",
    "vpn-proxy",
    "dns-bypass",
    "corporate-suite",
    "translation",
    "collaboration",
    "code-hosting",
    "paste",
    "other",
];

/// Markers a service may list (see `proto::marker::Marker::as_str`).
pub const MARKERS: &[&str] = &["whatsapp-noise", "stun", "dot", "doq", "dropbox-lansync", "rtp", "discord-voice", "stun-microsoft", "stun-google", "stun-whatsapp", "stun-zoom", "zoom-media", "telegram-call", "viber-udp"];

/// Declares a definition struct with the signal keys every service and channel accepts, so that
/// both stay in step (serde's `flatten` cannot be combined with `deny_unknown_fields`).
macro_rules! with_signals {
    ($(#[$m:meta])* struct $name:ident { $($(#[$fm:meta])* $field:ident: $ty:ty,)* }) => {
        $(#[$m])*
        #[derive(Debug, Deserialize)]
        #[serde(deny_unknown_fields)]
        struct $name {
            $($(#[$fm])* $field: $ty,)*
            #[serde(default)]
            domains: Vec<Spanned<String>>,
            #[serde(default)]
            hosts: Vec<Spanned<String>>,
            #[serde(default)]
            cidrs: Vec<Spanned<String>>,
            #[serde(default)]
            asns: Vec<u32>,
            #[serde(default)]
            ja4: Vec<Spanned<String>>,
            #[serde(default)]
            markers: Vec<Spanned<String>>,
            #[serde(default)]
            ports: Vec<Spanned<String>>,
            #[serde(default)]
            stun_software: Vec<String>,
        }

        impl $name {
            fn signals(&self) -> Signals<'_> {
                Signals {
                    domains: &self.domains,
                    hosts: &self.hosts,
                    cidrs: &self.cidrs,
                    asns: &self.asns,
                    ja4: &self.ja4,
                    markers: &self.markers,
                    ports: &self.ports,
                    stun_software: &self.stun_software,
                }
            }
        }
    };
}

/// The signal lists of one service or channel, borrowed from its definition.
struct Signals<'a> {
    domains: &'a [Spanned<String>],
    hosts: &'a [Spanned<String>],
    cidrs: &'a [Spanned<String>],
    asns: &'a [u32],
    ja4: &'a [Spanned<String>],
    markers: &'a [Spanned<String>],
    ports: &'a [Spanned<String>],
    stun_software: &'a [String],
}

with_signals! {
    /// A `[[service.channel]]`.
    struct ChannelDef {
        id: Spanned<String>,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReferenceDef {
    what: String,
    source: String,
    checked: String,
    #[serde(default = "yes")]
    verified: bool,
}

fn yes() -> bool {
    true
}

with_signals! {
    /// A `[[service]]`; its own signals are its `default` channel.
    struct ServiceDef {
        id: Spanned<String>,
        name: String,
        vendor: String,
        #[serde(default)]
        vendor_country: Option<Spanned<String>>,
        category: Spanned<String>,
        #[serde(default)]
        e2ee: bool,
        #[serde(default)]
        disappearing_messages: bool,
        #[serde(default)]
        data_location: String,
        #[serde(default)]
        corporate: bool,
        #[serde(default)]
        tenant_suffixes: Vec<String>,
        #[serde(default)]
        channel: Vec<ChannelDef>,
        #[serde(default)]
        reference: Vec<ReferenceDef>,
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDef {
    #[serde(default)]
    service: Vec<ServiceDef>,
}

/// Where a service's data came from, and when it was checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reference {
    /// Which list.
    pub what: String,
    /// Its source, in words.
    pub source: String,
    /// Date checked (ISO 8601); with `verified` false, the date the entry was compiled.
    pub checked: String,
    /// Whether the list was read against the named source on that date (`verified = false`:
    /// compiled from the vendor's published names without re-reading the source; reports say
    /// so).
    pub verified: bool,
}

/// A service of the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Stable id (`whatsapp`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Vendor.
    pub vendor: String,
    /// Vendor's country (ISO 3166-1 alpha-2; empty for a generic service of many vendors).
    pub vendor_country: String,
    /// Category (one of [`CATEGORIES`]).
    pub category: String,
    /// End-to-end encrypted by default.
    pub e2ee: bool,
    /// Messages can disappear.
    pub disappearing_messages: bool,
    /// Where data is held, as the vendor states it.
    pub data_location: String,
    /// Deployed by organisations themselves (suites).
    pub corporate: bool,
    /// Name suffixes whose next label names a tenant.
    pub tenant_suffixes: Vec<String>,
    /// Channel ids; index 0 is `default` (the service's own signals).
    pub channels: Vec<String>,
    /// `id`, interned: what the aggregation and the rollup key groups by.
    pub sym: Sym,
    /// `category`, interned.
    pub category_sym: Sym,
    /// `channels`, interned (same indices).
    pub channel_syms: Vec<Sym>,
    /// Sources of the lists.
    pub references: Vec<Reference>,
}

/// A (service, channel) pair, as indexes into [`Catalog::services`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    /// Service index.
    pub service: u16,
    /// Channel index within the service.
    pub channel: u16,
}

/// A name match: the target and the listed pattern that matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameHit {
    /// The matched service and channel.
    pub target: Target,
    /// The listed domain (suffix) or host that matched.
    pub pattern: String,
}

/// The STUN/TURN port (RFC 8489 §9): a channel that lists it on UDP carries calls.
pub const STUN_PORT: u16 = 3478;

/// A port signal: transport and an inclusive range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRule {
    /// `tcp` (6) or `udp` (17).
    pub proto: u8,
    /// First port.
    pub from: u16,
    /// Last port.
    pub to: u16,
    /// Who lists it.
    pub target: Target,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pattern {
    target: Target,
    exact: bool,
}

/// The compiled catalog.
#[derive(Clone, Default)]
pub struct Catalog {
    /// Services, in file order.
    pub services: Vec<Service>,
    names: HashMap<String, Vec<Pattern>>,
    addrs: AddrTable<Target>,
    asns: HashMap<u32, Target>,
    /// Ranges and ASNs of channels that list markers: they count only together with one of
    /// the channel's markers (Meta's ranges say "WhatsApp call" only when the flow is STUN).
    marker_addrs: AddrTable<Target>,
    marker_asns: HashMap<u32, Target>,
    ja4: HashMap<String, Target>,
    markers: HashMap<String, Vec<Target>>,
    stun_software: Vec<(String, Target)>,
    /// Port rules (weakest signal, used only to confirm).
    pub ports: Vec<PortRule>,
    /// The files read, sorted.
    pub files: Vec<PathBuf>,
    /// SHA-256 over the files' names and contents: the catalog version reports cite.
    pub digest: String,
    /// Warnings that do not stop loading (host bits set in a range), with file and line.
    pub warnings: Vec<Diagnostic>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog")
            .field("services", &self.services.len())
            .field("names", &self.names.len())
            .field("ranges", &self.addrs.len())
            .field("digest", &self.digest)
            .finish()
    }
}

/// Lowercases and strips one trailing dot: names are matched case-insensitively. A name that
/// is already lower-case UTF-8 (the common case) is borrowed, not copied.
pub fn normalize(name: &[u8]) -> std::borrow::Cow<'_, str> {
    use std::borrow::Cow;
    let n = name.strip_suffix(b".").unwrap_or(name);
    match String::from_utf8_lossy(n) {
        Cow::Borrowed(s) if !s.bytes().any(|b| b.is_ascii_uppercase()) => Cow::Borrowed(s),
        s => Cow::Owned(s.to_ascii_lowercase()),
    }
}

fn valid_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 48 && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn valid_domain(s: &str) -> bool {
    s.contains('.')
        && !s.starts_with('.')
        && !s.ends_with('.')
        && s.len() <= 253
        && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.' || b == b'_')
}

/// Parses `tcp/5222` or `udp/8801-8810`.
fn parse_port(s: &str) -> Option<(u8, u16, u16)> {
    let (proto, range) = s.split_once('/')?;
    let proto = match proto {
        "tcp" => 6,
        "udp" => 17,
        _ => return None,
    };
    let (a, b) = range.split_once('-').unwrap_or((range, range));
    let (a, b): (u16, u16) = (a.parse().ok()?, b.parse().ok()?);
    (a <= b).then_some((proto, a, b))
}

struct Builder<'a> {
    cat: Catalog,
    errors: Vec<Diagnostic>,
    file: &'a Path,
    text: &'a str,
    /// Where each name pattern was defined: (file, line), for conflict messages.
    origin: HashMap<(String, bool), (PathBuf, usize, String)>,
}

impl Builder<'_> {
    fn err(&mut self, at: Option<usize>, msg: String) {
        self.errors.push(Diagnostic::at(self.file, self.text, at, msg));
    }

    fn signals(&mut self, target: Target, sig: Signals<'_>) {
        let Signals { domains, hosts, cidrs, asns, ja4, markers, ports, stun_software } = sig;
        let sid = self.cat.services[target.service as usize].id.clone();
        for (list, exact) in [(domains, false), (hosts, true)] {
            for d in list {
                let name = d.get_ref().to_ascii_lowercase();
                if !valid_domain(&name) {
                    self.err(Some(d.span().start), format!("{sid}: {name:?} is not a domain name (lowercase, at least two labels)"));
                    continue;
                }
                let line = diag::line_of(self.text, d.span().start);
                if let Some((f, l, other)) = self.origin.get(&(name.clone(), exact)) {
                    if *other != sid {
                        let msg = format!("{sid}: {name} is already listed by {other} ({}:{l}): conflicting patterns", f.display());
                        self.err(Some(d.span().start), msg);
                    }
                    continue;
                }
                self.origin.insert((name.clone(), exact), (self.file.to_path_buf(), line, sid.clone()));
                self.cat.names.entry(name).or_default().push(Pattern { target, exact });
            }
        }
        let qualified = !markers.is_empty();
        for c in cidrs {
            match c.get_ref().parse::<IpNet>() {
                Ok(net) => {
                    if let Some(w) = super::addr::host_bits_warning(c.get_ref(), &net) {
                        self.cat.warnings.push(Diagnostic::at(self.file, self.text, Some(c.span().start), format!("{sid}: {w}")));
                    }
                    let table = if qualified { &mut self.cat.marker_addrs } else { &mut self.cat.addrs };
                    if let Some(prev) = table.insert(net, target) {
                        if prev.service != target.service {
                            let other = self.cat.services[prev.service as usize].id.clone();
                            self.err(Some(c.span().start), format!("{sid}: {net} is already listed by {other}"));
                        }
                    }
                }
                Err(_) => self.err(Some(c.span().start), format!("{sid}: invalid CIDR {:?}", c.get_ref())),
            }
        }
        for a in asns {
            if qualified {
                self.cat.marker_asns.insert(*a, target);
            } else {
                self.cat.asns.insert(*a, target);
            }
        }
        for j in ja4 {
            self.cat.ja4.insert(j.get_ref().clone(), target);
        }
        for m in markers {
            if MARKERS.contains(&m.get_ref().as_str()) {
                self.cat.markers.entry(m.get_ref().clone()).or_default().push(target);
            } else {
                self.err(Some(m.span().start), format!("{sid}: unknown marker {:?} (known: {})", m.get_ref(), MARKERS.join(", ")));
            }
        }
        for p in ports {
            match parse_port(p.get_ref()) {
                Some((proto, from, to)) => self.cat.ports.push(PortRule { proto, from, to, target }),
                None => self.err(Some(p.span().start), format!("{sid}: invalid port {:?} (tcp/5222, udp/8801-8810)", p.get_ref())),
            }
        }
        for s in stun_software {
            self.cat.stun_software.push((s.to_ascii_lowercase(), target));
        }
    }

    fn service(&mut self, def: ServiceDef) {
        let id = def.id.get_ref().clone();
        if !valid_id(&id) {
            self.err(Some(def.id.span().start), format!("invalid service id {id:?} (lowercase letters, digits, '-')"));
        }
        if self.cat.services.iter().any(|s| s.id == id) {
            self.err(Some(def.id.span().start), format!("duplicate service id {id:?}"));
            return;
        }
        if !CATEGORIES.contains(&def.category.get_ref().as_str()) {
            self.err(Some(def.category.span().start), format!("{id}: unknown category {:?}{} (known: {})", def.category.get_ref(), diag::did_you_mean(def.category.get_ref(), CATEGORIES.iter().copied()), CATEGORIES.join(", ")));
        }
        let cc = def.vendor_country.as_ref().map(|c| c.get_ref().clone()).unwrap_or_default();
        if let Some(c) = &def.vendor_country {
            if cc.len() != 2 || !cc.bytes().all(|b| b.is_ascii_uppercase()) {
                self.err(Some(c.span().start), format!("{id}: vendor_country {cc:?} is not an ISO 3166-1 alpha-2 code"));
            }
        }
        let mut channels = vec!["default".to_string()];
        for c in &def.channel {
            let cid = c.id.get_ref();
            if !valid_id(cid) || channels.contains(cid) {
                self.err(Some(c.id.span().start), format!("{id}: invalid or duplicate channel id {cid:?}"));
            }
            channels.push(cid.clone());
        }
        let service = self.cat.services.len() as u16;
        self.cat.services.push(Service {
            id: id.clone(),
            name: def.name.clone(),
            vendor: def.vendor.clone(),
            vendor_country: cc.clone(),
            category: def.category.get_ref().clone(),
            e2ee: def.e2ee,
            disappearing_messages: def.disappearing_messages,
            data_location: def.data_location.clone(),
            corporate: def.corporate,
            tenant_suffixes: def.tenant_suffixes.iter().map(|s| s.to_ascii_lowercase()).collect(),
            sym: Sym::intern(&id),
            category_sym: Sym::intern(def.category.get_ref()),
            channel_syms: channels.iter().map(|c| Sym::intern(c)).collect(),
            channels,
            references: def
                .reference
                .iter()
                .map(|r| Reference { what: r.what.clone(), source: r.source.clone(), checked: r.checked.clone(), verified: r.verified })
                .collect(),
        });
        self.signals(Target { service, channel: 0 }, def.signals());
        for (i, c) in def.channel.iter().enumerate() {
            self.signals(Target { service, channel: i as u16 + 1 }, c.signals());
        }
    }
}

impl Catalog {
    /// Compiles a catalog from (file name, contents) pairs.
    ///
    /// # Errors
    /// Every problem found, each with file and line; the catalog is not returned if there is any.
    pub fn from_texts(texts: &[(PathBuf, String)]) -> Result<Catalog, Vec<Diagnostic>> {
        let mut cat = Catalog::default();
        let mut errors = Vec::new();
        let mut origin = HashMap::new();
        let mut digest = Sha256::new();
        for (file, text) in texts {
            digest.update(file.file_name().map(|n| n.as_encoded_bytes()).unwrap_or_default());
            digest.update(text.as_bytes());
            let def: FileDef = match toml::from_str(text) {
                Ok(d) => d,
                Err(e) => {
                    errors.push(diag::from_toml(file, text, &e));
                    continue;
                }
            };
            let mut b = Builder { cat, errors, file, text, origin };
            for s in def.service {
                b.service(s);
            }
            (cat, errors, origin) = (b.cat, b.errors, b.origin);
            cat.files.push(file.clone());
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        cat.digest = format!("{:x}", digest.finalize());
        Ok(cat)
    }

    /// The service at `t`.
    pub fn service(&self, t: Target) -> &Service {
        &self.services[t.service as usize]
    }

    /// The channel of service `service` called `channel`, if it has one.
    pub fn channel_named(&self, service: u16, channel: &str) -> Option<Target> {
        let s = self.services.get(service as usize)?;
        let i = s.channels.iter().position(|c| c == channel)?;
        Some(Target { service, channel: u16::try_from(i).ok()? })
    }

    /// Where a service's calls go: its channel called `calls`, else the channel that lists the
    /// STUN marker, else one that lists the STUN/TURN port (UDP 3478, RFC 8489 §9); None for a
    /// service without calls.
    pub fn call_channel(&self, service: u16) -> Option<Target> {
        self.channel_named(service, "calls")
            .or_else(|| self.markers.get("stun").and_then(|ts| ts.iter().copied().find(|t| t.service == service)))
            .or_else(|| self.ports.iter().find(|p| p.proto == crate::flow::key::UDP && (p.from..=p.to).contains(&STUN_PORT) && p.target.service == service).map(|p| p.target))
    }

    /// The channel id at `t`.
    pub fn channel(&self, t: Target) -> &str {
        &self.services[t.service as usize].channels[t.channel as usize]
    }

    /// The service id at `t`, interned.
    pub fn service_sym(&self, t: Target) -> Sym {
        self.services[t.service as usize].sym
    }

    /// The channel id at `t`, interned.
    pub fn channel_sym(&self, t: Target) -> Sym {
        self.services[t.service as usize].channel_syms[t.channel as usize]
    }

    /// Looks a service up by id.
    pub fn find(&self, id: &str) -> Option<usize> {
        self.services.iter().position(|s| s.id == id)
    }

    /// The longest listed domain or exact host matching `name` (case-insensitive).
    pub fn match_name(&self, name: &[u8]) -> Option<NameHit> {
        let name = normalize(name);
        let mut at = 0;
        loop {
            let suffix = &name[at..];
            if let Some(ps) = self.names.get(suffix) {
                if let Some(p) = ps.iter().find(|p| !p.exact || at == 0) {
                    return Some(NameHit { target: p.target, pattern: suffix.to_string() });
                }
            }
            match name[at..].find('.') {
                Some(i) => at += i + 1,
                None => return None,
            }
        }
    }

    /// The listed address range containing `addr`.
    pub fn match_addr(&self, addr: std::net::IpAddr) -> Option<(Target, IpNet)> {
        self.addrs.lookup(addr).map(|(net, t)| (*t, net))
    }

    /// The marker-qualified range or ASN containing `addr`/`asn` (see [`Catalog`]).
    pub fn match_marker_addr(&self, addr: std::net::IpAddr, asn: Option<u32>) -> Option<Target> {
        self.marker_addrs.lookup(addr).map(|(_, t)| *t).or_else(|| asn.and_then(|a| self.marker_asns.get(&a).copied()))
    }

    /// The service listing autonomous system `asn`.
    pub fn match_asn(&self, asn: u32) -> Option<Target> {
        self.asns.get(&asn).copied()
    }

    /// The service whose official client has this JA4.
    pub fn match_ja4(&self, ja4: &str) -> Option<Target> {
        self.ja4.get(ja4).copied()
    }

    /// Services listing `marker`.
    pub fn match_marker(&self, marker: &str) -> &[Target] {
        self.markers.get(marker).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The service whose STUN SOFTWARE value contains a listed substring.
    pub fn match_stun_software(&self, software: &[u8]) -> Option<Target> {
        let s = String::from_utf8_lossy(software).to_ascii_lowercase();
        self.stun_software.iter().find(|(p, _)| s.contains(p.as_str())).map(|(_, t)| *t)
    }

    /// The tenant named by `name` under one of the service's tenant suffixes (the label left of
    /// the suffix, without a `-my` OneDrive marker), e.g. `contoso-my.sharepoint.com` → `contoso`.
    pub fn tenant(&self, t: Target, name: &[u8]) -> Option<String> {
        let name = normalize(name);
        self.service(t).tenant_suffixes.iter().find_map(|suf| {
            let head = name.strip_suffix(suf.as_str())?.strip_suffix('.')?;
            let label = head.rsplit('.').next()?;
            let label = label.strip_suffix("-my").unwrap_or(label);
            (!label.is_empty()).then(|| label.to_string())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat(text: &str) -> Result<Catalog, Vec<Diagnostic>> {
        Catalog::from_texts(&[(PathBuf::from("t.toml"), text.to_string())])
    }

    const BASE: &str = r#"
[[service]]
id = "whatsapp"
name = "WhatsApp"
vendor = "Meta Platforms, Inc."
vendor_country = "US"
category = "messaging"
domains = ["whatsapp.net", "whatsapp.com"]
markers = ["whatsapp-noise"]
[[service.channel]]
id = "media"
domains = ["mmg.whatsapp.net"]
[[service.channel]]
id = "calls"
markers = ["stun"]
cidrs = ["157.240.0.0/16"]

[[service]]
id = "microsoft365"
name = "Microsoft 365"
vendor = "Microsoft"
vendor_country = "US"
category = "corporate-suite"
corporate = true
tenant_suffixes = ["sharepoint.com"]
domains = ["sharepoint.com", "office.com"]
hosts = ["login.microsoftonline.com"]
ports = ["udp/3478-3481"]
"#;

    #[test]
    fn longest_suffix_and_channels() {
        let c = cat(BASE).unwrap();
        let hit = c.match_name(b"MMG.WhatsApp.net.").unwrap();
        assert_eq!((c.service(hit.target).id.as_str(), c.channel(hit.target)), ("whatsapp", "media"));
        assert_eq!(hit.pattern, "mmg.whatsapp.net");
        let hit = c.match_name(b"g.whatsapp.net").unwrap();
        assert_eq!(c.channel(hit.target), "default");
        assert!(c.match_name(b"notwhatsapp.net").is_none(), "label boundaries only");
        assert!(c.match_name(b"login.microsoftonline.com").is_some());
        assert!(c.match_name(b"x.login.microsoftonline.com").is_none(), "hosts are exact");
        // The calls channel lists a marker: its range counts only together with STUN.
        assert!(c.match_addr("157.240.1.1".parse().unwrap()).is_none());
        let t = c.match_marker_addr("157.240.1.1".parse().unwrap(), None).unwrap();
        assert_eq!(c.channel(t), "calls");
        assert_eq!(c.match_marker("whatsapp-noise").len(), 1);
        assert_eq!(c.ports[0].from, 3478);
        assert_eq!(c.digest.len(), 64);
    }

    #[test]
    fn tenants() {
        let c = cat(BASE).unwrap();
        let t = c.match_name(b"contoso-my.sharepoint.com").unwrap().target;
        assert_eq!(c.tenant(t, b"contoso-my.sharepoint.com").as_deref(), Some("contoso"));
        assert_eq!(c.tenant(t, b"fabrikam.sharepoint.com").as_deref(), Some("fabrikam"));
        assert_eq!(c.tenant(t, b"sharepoint.com"), None);
    }

    #[test]
    fn errors_name_file_and_line() {
        let bad = BASE.replace("category = \"messaging\"", "category = \"chat\"").replace("157.240.0.0/16", "157.240.0.0/33");
        let errs = cat(&bad).unwrap_err();
        let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert!(text.iter().any(|e| e.starts_with("t.toml:7:") && e.contains("unknown category")), "{text:?}");
        let typo = cat(&BASE.replace("category = \"messaging\"", "category = \"mesaging\"")).unwrap_err();
        assert!(typo[0].to_string().contains("unknown category \"mesaging\"; did you mean \"messaging\"?"), "{typo:?}");
        assert!(text.iter().any(|e| e.contains("invalid CIDR")), "{text:?}");
        let unknown = cat("[[service]]\nid = \"x\"\ncolour = 1\n").unwrap_err();
        assert!(unknown[0].to_string().contains("t.toml:3"), "{:?}", unknown);
        let dup = format!("{BASE}\n[[service]]\nid = \"whatsapp\"\nname = \"x\"\nvendor = \"x\"\nvendor_country = \"US\"\ncategory = \"other\"\n");
        assert!(cat(&dup).unwrap_err().iter().any(|e| e.message.contains("duplicate service id")));
        let conflict = format!("{BASE}\n[[service]]\nid = \"other\"\nname = \"x\"\nvendor = \"x\"\nvendor_country = \"US\"\ncategory = \"other\"\ndomains = [\"whatsapp.com\"]\n");
        let e = cat(&conflict).unwrap_err();
        assert!(e.iter().any(|e| e.message.contains("conflicting patterns") && e.message.contains("whatsapp")), "{e:?}");
        let broad = BASE.replace("\"whatsapp.com\"]", "\"com\"]");
        assert!(cat(&broad).unwrap_err().iter().any(|e| e.message.contains("not a domain name")));
    }

    /// The bundled catalog (`rules/services/`): loads clean, is large enough, every service says
    /// where its lists came from, every category has words, and well-known names land where
    /// they should (longest suffix: translate.google.com is not Google in general, gist is not
    /// GitHub).
    #[test]
    fn bundled_catalog() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/services");
        let c = crate::config::settings::read_catalog_dir(&dir).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(c.services.len() >= 200, "the catalog holds {} services", c.services.len());
        for s in &c.services {
            assert!(!s.references.is_empty(), "{} has no reference", s.id);
            assert!(s.references.iter().all(|r| !r.what.is_empty() && !r.source.is_empty() && !r.checked.is_empty()), "{}", s.id);
            assert!(CATEGORIES.contains(&s.category.as_str()), "{}", s.id);
        }
        // Words for every category (one-word categories may read as themselves).
        for cat in CATEGORIES {
            let words = crate::report::model::category_label(cat);
            assert!(!words.is_empty() && !words.contains('-'), "{cat}: {words:?}");
            assert!(words != *cat || ["messaging", "conferencing", "other"].contains(cat), "{cat} has no words of its own");
        }
        for (name, id) in [
            ("www.deepl.com", "deepl"),
            ("api-free.deepl.com", "deepl"),
            ("translate.google.com", "google-translate"),
            ("translate.googleapis.com", "google-translate"),
            ("github.com", "github"),
            ("raw.githubusercontent.com", "github"),
            ("gist.github.com", "github-gist"),
            ("copilot-proxy.githubusercontent.com", "github-copilot"),
            ("pastebin.com", "pastebin"),
            ("slack.com", "slack"),
            ("files.slack.com", "slack"),
            ("www.notion.so", "notion"),
            ("www.linkedin.com", "linkedin"),
            ("web.de", "web-de"),
            ("tuta.com", "tuta"),
            ("app.tuta.com", "tuta"),
            ("poe.com", "poe"),
            ("character.ai", "character-ai"),
            ("www.meta.ai", "meta-ai"),
            ("huggingface.co", "hugging-face"),
            ("fromsmash.com", "smash"),
            ("api.pcloud.com", "pcloud"),
            ("cloud.mail.ru", "mail-ru-cloud"),
            ("e.mail.ru", "mail-ru"),
            ("mail.icloud.com", "icloud-mail"),
            ("www.icloud.com", "icloud"),
            ("drive.proton.me", "proton-drive"),
        ] {
            let hit = c.match_name(name.as_bytes()).unwrap_or_else(|| panic!("{name} is not attributed"));
            assert_eq!(c.service(hit.target).id, id, "{name} (pattern {})", hit.pattern);
        }
        // Shared platforms stay unattributed.
        for name in ["www.google.com", "fonts.googleapis.com", "github.io", "toptal.com", "www.yandex.ru", "www.naver.com"] {
            assert!(c.match_name(name.as_bytes()).is_none(), "{name} must not be attributed");
        }
    }
}
