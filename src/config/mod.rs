//! The sensor's configuration file (TOML): where the catalog is, departments, policy,
//! exemptions and tenants. Paths in it are relative to the file's own folder.
//!
//! Loading never panics: every problem becomes a [`Diagnostic`] with file and line, and
//! `shadowtap check` prints them all at once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::diag::{self, Diagnostic};
use crate::engine;

pub mod settings;

pub use settings::Settings;

/// Where `shadowtap run`, `check`, `explain` and `survey` look for the configuration unless
/// told otherwise (the Debian package installs it there).
pub const DEFAULT_PATH: &str = "/etc/shadowtap/config.toml";

/// A department: the hosts whose addresses fall in its prefixes (VPN pools included).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Department {
    /// Stable id (`finance`), used in metrics and policy.
    pub id: Spanned<String>,
    /// Display name.
    #[serde(default)]
    pub name: String,
    /// IPv4 and IPv6 prefixes.
    #[serde(default)]
    pub cidrs: Vec<Spanned<String>>,
}

/// Department-wide settings.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Departments {
    /// CSV of `address,department` lines (DHCP or VPN lease exports); entries override the
    /// prefixes; re-read when the file changes.
    pub mapping_file: Option<String>,
}

/// Services allowed for one scope.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allow {
    /// Sanctioned service ids.
    #[serde(default)]
    pub sanctioned: Vec<Spanned<String>>,
}

/// The allow-lists.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// Sanctioned for everyone.
    #[serde(default)]
    pub sanctioned: Vec<Spanned<String>>,
    /// Sanctioned per department id.
    #[serde(default)]
    pub departments: BTreeMap<String, Allow>,
}

/// A time-limited exemption for one service in one department.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Exemption {
    /// Department id.
    pub department: Spanned<String>,
    /// Service id.
    pub service: Spanned<String>,
    /// Why it was granted.
    pub reason: String,
    /// Who approved it.
    pub approver: String,
    /// Ticket or decision reference.
    #[serde(default)]
    pub reference: String,
    /// First day it applies (UTC).
    pub start: Spanned<toml::value::Datetime>,
    /// Last day it applies (UTC): it stops counting at the end of this day.
    pub expires: Spanned<toml::value::Datetime>,
}

/// Privacy settings (`[privacy]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacyDef {
    /// Minimum distinct hosts of a department before a group is shown (k; default 5).
    #[serde(default = "default_k")]
    pub min_group_size: usize,
    /// Collect host identities for an investigation (exported as `shadowtap_privacy_reveal_hosts`).
    #[serde(default)]
    pub reveal_hosts: bool,
    /// Days a pseudonym key lives before it is replaced (default 30, the longest window).
    #[serde(default = "default_rotation_days")]
    pub key_rotation_days: u64,
}

fn default_k() -> usize {
    5
}

fn default_rotation_days() -> u64 {
    30
}

impl Default for PrivacyDef {
    fn default() -> Self {
        PrivacyDef { min_group_size: default_k(), reveal_hosts: false, key_rotation_days: default_rotation_days() }
    }
}

/// Event thresholds (`[events]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsDef {
    /// MiB uploaded per department to file sharing, generative AI, translation or paste sites
    /// over 24 h before an event.
    #[serde(default = "default_upload_mib")]
    pub upload_threshold_mib: u64,
    /// Percent of packets lost by the capture between two checks before an event.
    #[serde(default = "default_loss_percent")]
    pub capture_loss_percent: f64,
    /// Days before an exemption's end at which it is announced as expiring.
    #[serde(default = "default_warn_days")]
    pub exemption_warn_days: u64,
}

fn default_upload_mib() -> u64 {
    100
}

fn default_loss_percent() -> f64 {
    1.0
}

fn default_warn_days() -> u64 {
    14
}

impl Default for EventsDef {
    fn default() -> Self {
        EventsDef { upload_threshold_mib: default_upload_mib(), capture_loss_percent: default_loss_percent(), exemption_warn_days: default_warn_days() }
    }
}

/// The rollup store (`[store]`), used when `shadowtap run` has a `--store` or `--state-dir`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreDef {
    /// Days of daily rows kept, counted back from the newest day (default 800: a year-on-year
    /// comparison of the last full year fits).
    #[serde(default = "default_retention_days")]
    pub retention_days: u32,
    /// Days after the end of a calendar year before that year's store key is deleted (default 7).
    #[serde(default = "default_key_grace_days")]
    pub key_grace_days: u32,
}

fn default_retention_days() -> u32 {
    crate::store::DEFAULT_RETENTION_DAYS
}

fn default_key_grace_days() -> u32 {
    crate::store::keys::DEFAULT_GRACE_DAYS
}

impl Default for StoreDef {
    fn default() -> Self {
        StoreDef { retention_days: default_retention_days(), key_grace_days: default_key_grace_days() }
    }
}

/// Flow-table and reassembly limits (`[engine]`); each key defaults to
/// [`engine::Config::default`]'s value, whose documentation states its cost.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineDef {
    /// Flows held at once (the least recently seen are evicted beyond it).
    pub max_flows: Option<usize>,
    /// Leading bytes reassembled per TCP direction while a flow is being identified.
    pub reassembly_limit: Option<usize>,
    /// Idle seconds before an open TCP flow ends.
    pub tcp_idle_secs: Option<u64>,
    /// Seconds a closed TCP flow is kept for its last packets.
    pub tcp_closed_secs: Option<u64>,
    /// Idle seconds before a UDP flow ends.
    pub udp_idle_secs: Option<u64>,
    /// Idle seconds before a DNS-over-UDP flow ends.
    pub dns_idle_secs: Option<u64>,
    /// Addresses held in the DNS answer cache.
    pub dns_cache_addrs: Option<usize>,
    /// MiB all flows being identified may hold in buffers (reassembly, CRYPTO data, fragments).
    pub memory_budget_mib: Option<usize>,
    /// Count flows their server never answered as use too (default false: they are counted
    /// apart only). For a sensor that sees one direction of traffic only (asymmetric routing, a
    /// one-direction tap), where every flow looks unanswered.
    #[serde(default)]
    pub count_unanswered: bool,
}

/// Largest `engine.max_flows` accepted: 16 Mi flows are about 3.4 GiB of base state.
pub const MAX_ENGINE_FLOWS: usize = 1 << 24;

/// Largest `engine.memory_budget_mib` accepted (1 TiB: a typo, not a budget, beyond it).
pub const MAX_MEMORY_BUDGET_MIB: usize = 1 << 20;

/// Largest `engine.reassembly_limit` accepted (bytes per direction of a flow being identified).
pub const MAX_REASSEMBLY_LIMIT: usize = 1 << 20;

impl EngineDef {
    /// What unanswered flows count toward (`count_unanswered`).
    pub fn unanswered(&self) -> crate::aggregate::Unanswered {
        if self.count_unanswered {
            crate::aggregate::Unanswered::AsUse
        } else {
            crate::aggregate::Unanswered::Apart
        }
    }

    /// The engine limits, defaults filled in.
    ///
    /// # Errors
    /// A value out of its range, as a message.
    pub fn compile(&self) -> Result<engine::Config, String> {
        let d = engine::Config::default();
        let c = engine::Config {
            max_flows: self.max_flows.unwrap_or(d.max_flows),
            reassembly_limit: self.reassembly_limit.unwrap_or(d.reassembly_limit),
            tcp_idle_secs: self.tcp_idle_secs.unwrap_or(d.tcp_idle_secs),
            tcp_closed_secs: self.tcp_closed_secs.unwrap_or(d.tcp_closed_secs),
            udp_idle_secs: self.udp_idle_secs.unwrap_or(d.udp_idle_secs),
            dns_idle_secs: self.dns_idle_secs.unwrap_or(d.dns_idle_secs),
            dns_cache_addrs: self.dns_cache_addrs.unwrap_or(d.dns_cache_addrs),
            memory_budget: self.memory_budget_mib.map_or(d.memory_budget, |m| m << 20),
        };
        if self.memory_budget_mib.is_some_and(|m| !(1..=MAX_MEMORY_BUDGET_MIB).contains(&m)) {
            return Err(format!("engine.memory_budget_mib must be 1 to {MAX_MEMORY_BUDGET_MIB}"));
        }
        if !(1..=MAX_ENGINE_FLOWS).contains(&c.max_flows) {
            return Err(format!("engine.max_flows must be 1 to {MAX_ENGINE_FLOWS}"));
        }
        if !(512..=MAX_REASSEMBLY_LIMIT).contains(&c.reassembly_limit) {
            return Err(format!("engine.reassembly_limit must be 512 to {MAX_REASSEMBLY_LIMIT} bytes"));
        }
        if c.tcp_idle_secs == 0 || c.udp_idle_secs == 0 || c.dns_idle_secs == 0 {
            return Err("engine idle timeouts must be at least 1 second".into());
        }
        Ok(c)
    }
}

/// The configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Folder of the service catalog (`*.toml`).
    #[serde(default = "default_catalog")]
    pub catalog: String,
    /// Weights of the services' risk rating (`rules/risk.toml`); the weights as built when
    /// none is named.
    pub risk: Option<String>,
    /// GeoLite2-ASN format database (optional: without it the ASN signal is off).
    pub geoip_asn: Option<String>,
    /// GeoLite2-Country format database (optional).
    pub geoip_country: Option<String>,
    /// Departments.
    #[serde(default, rename = "department")]
    pub department: Vec<Department>,
    /// Department settings.
    #[serde(default)]
    pub departments: Departments,
    /// Allow-lists.
    #[serde(default)]
    pub policy: Policy,
    /// Exemptions.
    #[serde(default, rename = "exemption")]
    pub exemption: Vec<Exemption>,
    /// The organisation's own tenants per corporate service (`microsoft365 = ["contoso"]`).
    #[serde(default)]
    pub tenants: BTreeMap<String, Vec<String>>,
    /// Privacy settings.
    #[serde(default)]
    pub privacy: PrivacyDef,
    /// Event thresholds.
    #[serde(default)]
    pub events: EventsDef,
    /// Rollup store settings.
    #[serde(default)]
    pub store: StoreDef,
    /// Flow-table and reassembly limits.
    #[serde(default)]
    pub engine: EngineDef,
}

fn default_catalog() -> String {
    "services".into()
}

/// A configuration file as read: its path, text and parsed form.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its contents (for line numbers and the config digest).
    pub text: String,
    /// Parsed.
    pub config: Config,
}

impl Loaded {
    /// Reads and parses `path`.
    ///
    /// # Errors
    /// A diagnostic naming the file (and line, for syntax errors and unknown keys).
    pub fn read(path: &Path) -> Result<Loaded, Vec<Diagnostic>> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| vec![Diagnostic { file: path.to_path_buf(), line: None, message: e.to_string() }])?;
        Self::parse(path, text)
    }

    /// Parses the text of the file at `path`. A file without any setting (empty, or only
    /// comments) is an error: every host would be unmapped and every allow-list gone, which
    /// must never happen by accident (a truncated deploy, a wrong path to a template).
    ///
    /// # Errors
    /// A diagnostic naming the file (and line, for syntax errors and unknown keys).
    pub fn parse(path: &Path, text: String) -> Result<Loaded, Vec<Diagnostic>> {
        let table: toml::Table = toml::from_str(&text).map_err(|e| vec![diag::from_toml(path, &text, &e)])?;
        if table.is_empty() {
            return Err(vec![Diagnostic {
                file: path.to_path_buf(),
                line: None,
                message: "the configuration is empty (no department, no policy): refusing it".into(),
            }]);
        }
        let config = toml::from_str(&text).map_err(|e| vec![diag::from_toml(path, &text, &e)])?;
        Ok(Loaded { path: path.to_path_buf(), text, config })
    }

    /// A path named in the file, resolved against the file's folder.
    pub fn resolve(&self, p: &str) -> PathBuf {
        let p = Path::new(p);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.path.parent().unwrap_or(Path::new(".")).join(p)
        }
    }

    /// A diagnostic at a span of this file.
    pub fn diag<T>(&self, at: &Spanned<T>, message: impl Into<String>) -> Diagnostic {
        Diagnostic::at(&self.path, &self.text, Some(at.span().start), message)
    }
}
