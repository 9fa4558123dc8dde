//! The facts a report is computed from, whatever holds them: the local rollup store
//! (`crate::store`), a Prometheus server's HTTP API, or a survey of captures.
//!
//! Every source fills the same [`ReportInput`] for a period; `report::model` turns it into the
//! report (shares, trends, top lists, k-suppression) and the renderers print it. The input is
//! already aggregated: no host identity, no address, no name beyond department and service ids.
//! Rows are sorted by their key so that the same inputs give byte-identical CSV and JSON.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::Date;

use crate::classify::risk::{Rating, Weights};

/// Department value of rows that cover the whole organisation (every department together).
pub const ALL_DEPARTMENTS: &str = "_all";

/// How distinct hosts were counted, stated in the methodology section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HostMethod {
    /// Mergeable distinct-count sketches of keyed pseudonyms, one per day and group, merged
    /// over the period: `relative_error` is the sketch's standard error (exact below
    /// `exact_below` hosts); `key_epochs` > 1 means the period spans pseudonym keys, and a host
    /// seen under two keys counts twice (an upper bound).
    Sketch {
        /// Relative standard error of an estimate above `exact_below` (0.01 = 1%).
        relative_error: f64,
        /// Counts below this many hosts are exact.
        exact_below: u64,
        /// Pseudonym keys in force during the period (1 = no rotation inside it).
        key_epochs: u32,
    },
    /// Prometheus: the sensors' `shadowtap_hosts` gauges over their largest window that covers
    /// the period (`window`), channels folded by max (a lower bound per service and category).
    PrometheusWindow {
        /// The window label (`30d`, `7d`...).
        window: String,
    },
}

/// Distinct hosts of a row.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Hosts {
    /// Distinct hosts (estimate, rounded).
    pub count: u64,
    /// Whether `count` is exact (small sets are kept exactly by the sketch).
    pub exact: bool,
}

/// Counters of one row over the period.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Flows.
    pub flows: u64,
    /// Bytes client → server.
    pub bytes_up: u64,
    /// Bytes server → client.
    pub bytes_down: u64,
}

/// One usage row: a department (or [`ALL_DEPARTMENTS`]) and a service or category with its
/// policy status, over the period or one week.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageRow {
    /// Department id, or [`ALL_DEPARTMENTS`].
    pub department: String,
    /// Service id; empty in category rows.
    pub service: String,
    /// Channel id (chat, files, calls, web...); empty unless the row is per channel.
    pub channel: String,
    /// Category of the service (messaging, file-sharing, ...).
    pub category: String,
    /// Policy status: sanctioned, unsanctioned, exempted, ...
    pub status: String,
    /// Flows and bytes.
    pub volume: Volume,
    /// Distinct hosts (union over days, channels and, in category rows, services).
    pub hosts: Hosts,
}

/// Active hosts of a department (or the organisation) over the period or a week: the
/// denominator of every share.
///
/// The [`ALL_DEPARTMENTS`] row holds the organisation's totals, departments below the minimum
/// group size included: the report takes its unnamed flows as the organisation's (and sums the
/// departments' only when that row is absent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DepartmentRow {
    /// Department id, or [`ALL_DEPARTMENTS`].
    pub department: String,
    /// Distinct hosts that had any flow.
    pub active_hosts: Hosts,
    /// Flows whose destination stayed unnamed, by reason.
    pub unnamed_flows: BTreeMap<String, u64>,
    /// Flows their server never answered, by the service label of their destination (a service
    /// id, `_uncatalogued`, `_unnamed`, or `_suppressed` from sensors that folded it): not use,
    /// so in no other figure (unless [`Coverage::unanswered_as_use`]). Absent from inputs saved
    /// by earlier builds, which counted them as use.
    #[serde(default)]
    pub unanswered_flows: BTreeMap<String, u64>,
}

/// One week of the trend (weeks start on Monday, UTC).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Week {
    /// The Monday that starts the week.
    pub start: Date,
    /// Category rows of the week (per department and [`ALL_DEPARTMENTS`]).
    pub categories: Vec<UsageRow>,
    /// Active hosts of the week.
    pub departments: Vec<DepartmentRow>,
}

/// An exemption as configured (from the store's record of configurations or the config file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Exemption {
    /// Department id.
    pub department: String,
    /// Service id.
    pub service: String,
    /// First day of validity, when set.
    pub start: Option<Date>,
    /// Last day of validity.
    pub expires: Date,
    /// Reference (ticket) of the exemption, when set.
    pub reference: Option<String>,
}

/// A sensor that contributed to the period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sensor {
    /// Sensor name (its `--sensor-name`, host name or Prometheus `instance`).
    pub name: String,
    /// Seconds of the period during which it was running (or scraped up).
    pub uptime_secs: u64,
}

/// Coverage and provenance: what the methodology section states.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Coverage {
    /// Sensors, sorted by name.
    pub sensors: Vec<Sensor>,
    /// Packets the sensors processed.
    pub packets: u64,
    /// Packets the capture layer received / dropped (libpcap statistics; 0 for files).
    pub capture_received: u64,
    /// Packets dropped before the sensor saw them.
    pub capture_dropped: u64,
    /// Named flows by the signal that named them (sni, quic_sni, dns, http_host, ...).
    /// In the store: the catalog match's signal (also marker, ja4, cidr, association, asn), or for a named
    /// destination outside the catalog the naming signal.
    pub named_by_signal: BTreeMap<String, u64>,
    /// Flows with real ECH (the inner name hidden).
    pub ech_flows: u64,
    /// Catalog version(s) / digest(s) in force during the period (sorted, deduplicated).
    pub catalog_digests: Vec<String>,
    /// Configuration digest(s) in force during the period.
    pub config_digests: Vec<String>,
    /// Minimum group size k in force (the largest, if it changed).
    pub min_group_size: u64,
    /// Unanswered flows were counted as use as well (`[engine] count_unanswered` in force on
    /// some day of the period: a sensor that sees one direction of traffic only).
    #[serde(default)]
    pub unanswered_as_use: bool,
}

/// Everything a report is computed from.
///
/// A source fills it for every department, whatever department a report is asked for:
/// `report::model` applies the minimum group size over all departments before it narrows to
/// one, so that two reports of the same period never show two figures whose difference
/// describes fewer than k hosts. Serialised with serde as JSON (dates as `YYYY-MM-DD`), it is
/// the `--input` of `shadowtap report` and the archive of a survey.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportInput {
    /// First day of the period (UTC, inclusive).
    pub from: Date,
    /// Last day of the period (UTC, inclusive).
    pub to: Date,
    /// Where the facts come from, for the report's header ("rollup store", "Prometheus", "survey
    /// of 12 captures"): never a path of the machine that made it.
    pub source: String,
    /// How distinct hosts were counted.
    pub host_method: HostMethod,
    /// Per department × service × category × status over the period, and the same with
    /// department [`ALL_DEPARTMENTS`].
    pub services: Vec<UsageRow>,
    /// Per department × service × channel × category × status.
    /// The store and surveys add the same rows with department [`ALL_DEPARTMENTS`].
    pub channels: Vec<UsageRow>,
    /// Per department × category × status (service empty), and for [`ALL_DEPARTMENTS`].
    pub categories: Vec<UsageRow>,
    /// Active hosts per department over the period, and for [`ALL_DEPARTMENTS`].
    pub departments: Vec<DepartmentRow>,
    /// Weekly trend, oldest first.
    pub weeks: Vec<Week>,
    /// Exemptions known for the period.
    pub exemptions: Vec<Exemption>,
    /// Coverage and provenance.
    pub coverage: Coverage,
    /// Capture files of a survey that were damaged: skipped (unreadable, corrupt) or truncated
    /// (used up to the cut). Absent from inputs saved by earlier builds, and when none was.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub damaged_captures: Vec<DamagedCapture>,
    /// Department ids of the configuration in force, when the source knows it (a survey does):
    /// a configured department without any traffic is listed as not observed rather than left
    /// out. Empty when unknown (the store and Prometheus do not record it; inputs saved by
    /// earlier builds).
    #[serde(default)]
    pub departments_configured: Vec<String>,
    /// Display names of departments by id, from the configuration (a survey knows it). A
    /// department without one is shown by its id. Absent from inputs saved by earlier builds and
    /// from the store's and Prometheus' inputs, which do not record the configuration.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub department_names: BTreeMap<String, String>,
    /// The catalog's description of the services of the input, sorted by id: display name and
    /// what each means for records and data location. Empty when the source does not know the
    /// catalog (the store, Prometheus, inputs saved by earlier builds): services are then shown
    /// by their ids and the service table is empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub service_catalog: Vec<ServiceInfo>,
    /// The weights the services were rated with (`rules/risk.toml` of the configuration), cited
    /// under Methodology. Absent when the source does not know the configuration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk_weights: Option<Weights>,
    /// Named destinations outside the catalog per registrable domain, organisation-wide over the
    /// period, sorted by domain, not k-suppressed (the model names only domains of at least k
    /// devices). Empty when the source does not know them (Prometheus, stores of earlier
    /// builds' days, inputs saved by earlier builds).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub uncatalogued: Vec<DomainRow>,
}

/// Flows to one registrable domain outside the catalog (`example.co.uk`), organisation-wide.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainRow {
    /// Registrable domain (public suffix plus one label), lowercased.
    pub domain: String,
    /// Flows and bytes.
    pub volume: Volume,
    /// Distinct hosts (union over days).
    pub hosts: Hosts,
}

/// A service as the catalog describes it (`rules/services/*.toml`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceInfo {
    /// Service id (`whatsapp`).
    pub id: String,
    /// Display name (`WhatsApp`).
    pub name: String,
    /// Category.
    pub category: String,
    /// Vendor.
    pub vendor: String,
    /// Vendor's country (ISO 3166-1 alpha-2; empty for a generic service of many vendors).
    pub vendor_country: String,
    /// Where data is held, as the vendor states it.
    pub data_location: String,
    /// End-to-end encrypted by default.
    pub e2ee: bool,
    /// Messages can disappear.
    pub disappearing_messages: bool,
    /// Sources of the catalog's data, when it names them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<ServiceReference>,
    /// The service's risk rating under the weights of [`ReportInput::risk_weights`]. Absent
    /// from inputs saved by earlier builds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk: Option<Rating>,
}

/// Where the catalog's data of a service came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceReference {
    /// Which list.
    pub what: String,
    /// Its source, in words.
    pub source: String,
    /// Date checked (or compiled, when not verified).
    pub checked: String,
    /// Whether the list was read against the source on that date. Absent from inputs saved
    /// by earlier builds, whose references were all verified.
    #[serde(default = "verified_default", skip_serializing_if = "is_true")]
    pub verified: bool,
}

fn verified_default() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

impl std::fmt::Display for ServiceReference {
    /// As every format prints it: "what (source, checked date)".
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.verified {
            write!(f, "{} ({}, checked {})", self.what, self.source, self.checked)
        } else {
            write!(f, "{} ({}, compiled {}, not yet verified against the source)", self.what, self.source, self.checked)
        }
    }
}

impl ServiceInfo {
    /// The references in one line, "; "-separated.
    pub fn references_line(&self) -> String {
        self.references.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
    }
}

/// What became of a damaged capture file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaptureDamage {
    /// Unreadable or corrupt: left out from the damage on (frames before it, if any, were used).
    Skipped,
    /// Ended mid-record: what it held before the cut was used.
    Truncated,
}

/// A damaged capture file of a survey, named in the methodology.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DamagedCapture {
    /// The file's name (never the directories above it, which are the machine's).
    pub file: String,
    /// Skipped or truncated.
    pub damage: CaptureDamage,
    /// Why, as the reader said it.
    pub reason: String,
}

impl ReportInput {
    /// A department's display name: the configured one, else its id.
    pub fn department_name<'a>(&'a self, id: &'a str) -> &'a str {
        self.department_names.get(id).map_or(id, String::as_str)
    }

    /// A service's display name: the catalog's, else its id.
    pub fn service_name<'a>(&'a self, id: &'a str) -> &'a str {
        self.service_catalog.iter().find(|s| s.id == id).map_or(id, |s| s.name.as_str())
    }

    /// Whether the source held anything for the period: packets processed, a sensor running
    /// (uptime), or a flow in any row. An input without data renders a report that could be
    /// read as "no use": `shadowtap report` refuses it unless `--allow-empty`, and the report
    /// says so on its first page.
    pub fn has_data(&self) -> bool {
        let c = &self.coverage;
        c.packets > 0
            || c.capture_received > 0
            || c.sensors.iter().any(|s| s.uptime_secs > 0)
            || [&self.services, &self.channels, &self.categories].iter().any(|rows| rows.iter().any(|r| r.volume.flows > 0))
            || self.departments.iter().any(|d| {
                d.active_hosts.count > 0 || d.unnamed_flows.values().any(|&n| n > 0) || d.unanswered_flows.values().any(|&n| n > 0)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reference_not_yet_verified_says_so_and_old_inputs_read_as_verified() {
        let r = ServiceReference { what: "domains".into(), source: "vendor's help pages".into(), checked: "2026-12-06".into(), verified: false };
        assert_eq!(r.to_string(), "domains (vendor's help pages, compiled 2026-12-06, not yet verified against the source)");
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"verified\":false"), "{json}");
        let old: ServiceReference = serde_json::from_str(r#"{"what":"domains","source":"s","checked":"2026-11-01"}"#).unwrap();
        assert!(old.verified);
        assert_eq!(old.to_string(), "domains (s, checked 2026-11-01)");
    }

    #[test]
    fn an_input_without_packets_uptime_or_flows_has_no_data() {
        let mut input = crate::report::model::tests::input();
        assert!(input.has_data());
        input.services.clear();
        input.channels.clear();
        input.categories.clear();
        input.departments.clear();
        input.weeks.clear();
        input.coverage.packets = 0;
        input.coverage.capture_received = 0;
        input.coverage.sensors.clear();
        assert!(!input.has_data());
        input.coverage.sensors.push(Sensor { name: "s".into(), uptime_secs: 60 });
        assert!(input.has_data(), "a sensor that ran and saw nothing is data: no use");
    }
}
