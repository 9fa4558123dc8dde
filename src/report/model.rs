//! The report: what a survey states, computed from a [`ReportInput`] by [`Report::build`].
//!
//! Pure: the same input and options give the same report, field for field, so the JSON and CSV
//! renderings are byte-identical and a survey can be recomputed next year from its archived
//! input. Everything printed comes from here; the renderers only lay it out.
//!
//! **Numbers.** Counts (hosts, flows, bytes, packets) are integers as the source gave them.
//! Shares are fractions of 0..1 rounded to [`SHARE_DECIMALS`] decimals (half away from zero),
//! computed from the unrounded counts; a share is always over the active hosts of the same
//! department and period, never over a withheld denominator, and is capped at 1 (estimates of
//! a group and of its department can disagree by their error).
//!
//! **Order.** Rows are sorted by department ([`ALL_DEPARTMENTS`] first, then by id), category,
//! service, channel and status; ranked lists by their rank, with ties broken by id.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use time::{Date, Duration};

use super::display;
use super::input::{CaptureDamage, DamagedCapture, DepartmentRow, DomainRow, HostMethod, ReportInput, ServiceInfo, UsageRow, ALL_DEPARTMENTS};
use super::suppress;
use crate::classify::UNMAPPED;

/// Registrable domains outside the catalog listed at most (by devices); the others of at least
/// k devices are summarised in [`UncataloguedFolded`].
pub const TOP_UNCATALOGUED: usize = 50;

/// Decimals of every share (a fraction: 4 decimals is 0.01 percentage point).
pub const SHARE_DECIMALS: i32 = 4;

/// Length of the list of top unsanctioned services.
pub const TOP_SERVICES: usize = 10;

/// Default window, in days after the as-of date, in which an exemption counts as expiring.
pub const DEFAULT_EXPIRING_WITHIN_DAYS: u32 = 30;

/// Services named in a headline sentence at most.
const HEADLINE_SERVICES: usize = 3;

/// Share of the flows seen that went unanswered from which the methodology warns that a sensor
/// may see one direction of traffic only (or that the network carried a flood of attempts):
/// with both directions in view, ordinary traffic is almost all answered.
pub const UNANSWERED_WARN_SHARE: f64 = 0.5;

/// Share of the period below which the sensors' coverage puts a warning on page 1.
pub const COVERAGE_WARN_SHARE: f64 = 0.9;

/// Page 1 of a report whose input holds no data for the period (no packets, flows or uptime).
pub const NO_DATA_TEXT: &str = "No data for this period: no sensor reported packets, flows or uptime, so nothing can be \
     concluded about use, neither use nor its absence.";

/// What a department table says of a configured department without any traffic.
pub const NOT_OBSERVED: &str = "not observed";

/// Policy status of use that no allow-list or exemption covers.
pub const UNSANCTIONED: &str = "unsanctioned";

/// Policy status of use covered by a valid exemption.
pub const EXEMPTED: &str = "exempted";

/// What to report and how strictly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportOptions {
    /// Minimum group size asked for; the report uses the larger of this, the input's
    /// `coverage.min_group_size` and 1 (a row without a host is never usage).
    pub k: u64,
    /// Narrow the report to one department (suppression is still decided over all of them).
    pub department: Option<String>,
    /// The day exemptions are judged on (expired before it, expiring soon after it): `to` by
    /// default, so that a report does not depend on the day it is made.
    pub as_of: Date,
    /// Days after `as_of` within which an exemption counts as expiring.
    pub expiring_within_days: u32,
}

impl ReportOptions {
    /// The defaults for `input`: k of the input, every department, as of the period's last day.
    pub fn for_input(input: &ReportInput) -> ReportOptions {
        ReportOptions { k: 0, department: None, as_of: input.to, expiring_within_days: DEFAULT_EXPIRING_WITHIN_DAYS }
    }
}

/// The period reported on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Period {
    /// First day (UTC, inclusive).
    pub from: Date,
    /// Last day (UTC, inclusive).
    pub to: Date,
    /// Days in the period.
    pub days: u32,
    /// In words: `October 2026` for a calendar month, else `2026-10-01 to 2026-10-15`.
    pub label: String,
}

/// A department shown, with the denominator of its shares.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DepartmentLine {
    /// Department id, or [`ALL_DEPARTMENTS`].
    pub department: String,
    /// Distinct hosts with any flow in the period.
    pub active_hosts: u64,
    /// Whether `active_hosts` is exact.
    pub hosts_exact: bool,
    /// False for a configured department without any traffic in the period (0 devices, "not
    /// observed"): not the same as a department that was seen and had no use.
    pub observed: bool,
}

/// One usage row as shown: a group of at least k hosts with its share of its department.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageLine {
    /// Department id, or [`ALL_DEPARTMENTS`].
    pub department: String,
    /// Category of the service.
    pub category: String,
    /// Service id; empty in category rows.
    pub service: String,
    /// Channel id; empty unless the row is per channel.
    pub channel: String,
    /// Policy status.
    pub status: String,
    /// Distinct hosts.
    pub hosts: u64,
    /// Whether `hosts` is exact.
    pub hosts_exact: bool,
    /// `hosts` over the department's active hosts.
    pub share: f64,
    /// Flows.
    pub flows: u64,
    /// Bytes client → server.
    pub bytes_up: u64,
    /// Bytes server → client.
    pub bytes_down: u64,
}

/// The survey tables: who used what, per department and organisation-wide.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Survey {
    /// Department × category × status.
    pub categories: Vec<UsageLine>,
    /// Department × service × status.
    pub services: Vec<UsageLine>,
    /// Department × service × channel × status.
    pub channels: Vec<UsageLine>,
}

/// A finding in the auditor's phrasing, per category of unsanctioned use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Headline {
    /// Category.
    pub category: String,
    /// Policy status the finding is about ([`UNSANCTIONED`]).
    pub status: String,
    /// Share of the scope's active hosts that used the category with this status, when shown.
    pub share: Option<f64>,
    /// Departments shown that used it (at least k of their hosts did); organisation reports.
    pub departments_using: Option<u64>,
    /// Departments shown (without `unmapped`); organisation reports.
    pub departments_total: Option<u64>,
    /// The most used services of the category (by hosts, then flows), at most three.
    pub services: Vec<String>,
    /// The sentence.
    pub text: String,
}

/// A week of the trend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeekLine {
    /// The Monday that starts the week.
    pub start: Date,
    /// Days of the week inside the period (1..7: the first and last weeks may be partial).
    pub days_in_period: u32,
    /// Active hosts of the scope (department or organisation) that week, when shown.
    pub active_hosts: Option<u64>,
}

/// A category row of one week.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrendLine {
    /// The Monday that starts the week.
    pub week: Date,
    /// Department id, or [`ALL_DEPARTMENTS`].
    pub department: String,
    /// Category.
    pub category: String,
    /// Policy status.
    pub status: String,
    /// Distinct hosts that week.
    pub hosts: u64,
    /// Whether `hosts` is exact.
    pub hosts_exact: bool,
    /// `hosts` over the department's active hosts that week.
    pub share: f64,
    /// Flows that week.
    pub flows: u64,
}

/// The weekly trend per category.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Trend {
    /// Weeks, oldest first.
    pub weeks: Vec<WeekLine>,
    /// Category rows of every week.
    pub lines: Vec<TrendLine>,
}

/// A service in the list of the most used unsanctioned services.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopService {
    /// 1 for the most used.
    pub rank: u32,
    /// Service id.
    pub service: String,
    /// Category.
    pub category: String,
    /// Distinct hosts (scope-wide).
    pub hosts: u64,
    /// Whether `hosts` is exact.
    pub hosts_exact: bool,
    /// `hosts` over the scope's active hosts.
    pub share: f64,
    /// Flows.
    pub flows: u64,
    /// Bytes client → server.
    pub bytes_up: u64,
    /// Bytes server → client.
    pub bytes_down: u64,
    /// Departments shown that used it unsanctioned.
    pub departments: u64,
}

/// A registrable domain outside the catalog that at least k devices used: a candidate service
/// for the catalog.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DomainLine {
    /// 1 for the most used.
    pub rank: u32,
    /// Registrable domain (`example.co.uk`).
    pub domain: String,
    /// Distinct devices over the period, organisation-wide.
    pub devices: u64,
    /// Whether `devices` is exact.
    pub devices_exact: bool,
    /// Flows.
    pub flows: u64,
    /// Bytes both ways.
    pub bytes: u64,
    /// Bytes client → server.
    pub bytes_up: u64,
    /// Bytes server → client.
    pub bytes_down: u64,
}

/// What the list of destinations outside the catalog does not name, counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct UncataloguedFolded {
    /// Domains of at least k devices beyond the first [`TOP_UNCATALOGUED`].
    pub beyond_top_domains: u64,
    /// Their flows.
    pub beyond_top_flows: u64,
    /// Domains used by fewer than k devices: never named.
    pub below_k_domains: u64,
    /// Their flows.
    pub below_k_flows: u64,
}

/// Where an exemption stands on the as-of date.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExemptionState {
    /// Its last day is before the as-of date.
    Expired,
    /// It ends within the expiring window.
    Expiring,
    /// Valid beyond the expiring window.
    Valid,
    /// Its first day is after the as-of date.
    NotStarted,
}

impl ExemptionState {
    /// The state's id (as in JSON and CSV).
    pub fn as_str(self) -> &'static str {
        match self {
            ExemptionState::Expired => "expired",
            ExemptionState::Expiring => "expiring",
            ExemptionState::Valid => "valid",
            ExemptionState::NotStarted => "not_started",
        }
    }
}

/// An exemption and its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExemptionLine {
    /// Department id.
    pub department: String,
    /// Service id.
    pub service: String,
    /// First day of validity, when set.
    pub start: Option<Date>,
    /// Last day of validity.
    pub expires: Date,
    /// Reference (ticket), when set.
    pub reference: Option<String>,
    /// State on the as-of date.
    pub state: ExemptionState,
    /// Days from the as-of date to the last day of validity (negative once expired).
    pub days_left: i64,
}

/// Use of a service together with the exemption it relates to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExemptionUse {
    /// The usage row (services table).
    #[serde(flatten)]
    pub usage: UsageLine,
    /// Last day of the department's exemption for the service (the latest one), when known.
    pub expires: Option<Date>,
    /// Its reference, when set.
    pub reference: Option<String>,
}

/// Exemptions: use under them, and those expired or about to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exemptions {
    /// The day states are judged on.
    pub as_of: Date,
    /// The expiring window, in days.
    pub expiring_within_days: u32,
    /// Every exemption of the scope.
    pub list: Vec<ExemptionLine>,
    /// Use with status `exempted` (per department).
    pub in_use: Vec<ExemptionUse>,
    /// Unsanctioned use of a service whose exemption for the department ended before the
    /// period's last day.
    pub after_expiry: Vec<ExemptionUse>,
}

/// A sensor with its uptime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SensorLine {
    /// Sensor name.
    pub name: String,
    /// Seconds it ran (or was scraped up) during the period.
    pub uptime_secs: u64,
    /// `uptime_secs` over the period's length.
    pub uptime_share: f64,
}

/// Flows of a naming signal or an unnamed reason, with their share of all flows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FlowShare {
    /// Signal (`sni`, `dns`...) or reason (`ech`, `tls_no_sni`...).
    pub name: String,
    /// Flows.
    pub flows: u64,
    /// Share of all flows, when there were any.
    pub share: Option<f64>,
}

/// What was withheld for the minimum group size.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Withheld {
    /// Departments (fewer than k active hosts, or secondary suppression).
    pub departments: u64,
    /// Rows per table: `survey_categories`, `survey_services`, `survey_channels`, `trend`.
    pub rows: BTreeMap<String, u64>,
}

/// Methodology and coverage: what an auditor needs to repeat the survey and judge it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Methodology {
    /// Where the facts come from.
    pub source: String,
    /// How hosts were counted, as the source stated it.
    pub host_method: HostMethod,
    /// The host-counting method in words.
    pub host_method_text: String,
    /// Its error in words.
    pub host_error_text: String,
    /// Sensors that contributed, with their uptime.
    pub sensors: Vec<SensorLine>,
    /// Packets the sensors processed.
    pub packets: u64,
    /// Packets the capture layer received.
    pub capture_received: u64,
    /// Packets dropped before the sensors saw them.
    pub capture_dropped: u64,
    /// `capture_dropped` over `capture_received`; none when nothing was captured live.
    pub capture_loss: Option<f64>,
    /// Flows counted as use, named and unnamed.
    pub flows: u64,
    /// Flows whose destination was named.
    pub named_flows: u64,
    /// `named_flows` over `flows`.
    pub named_share: Option<f64>,
    /// Named flows by the signal that named them.
    pub named_by_signal: Vec<FlowShare>,
    /// Flows with real ECH (the inner name hidden).
    pub ech_flows: u64,
    /// `ech_flows` over `flows`.
    pub ech_share: Option<f64>,
    /// Unnamed flows over `flows`.
    pub unnamed_share: Option<f64>,
    /// Unnamed flows by reason.
    pub unnamed_by_reason: Vec<FlowShare>,
    /// Flows their server never answered (spoofed or blocked connection attempts, scans): not
    /// use, so in none of the figures above unless `unanswered_as_use`.
    pub unanswered_flows: u64,
    /// `unanswered_flows` over every flow seen (those counted as use and those not).
    pub unanswered_share: Option<f64>,
    /// The sensors' configuration counted unanswered flows as use (`[engine] count_unanswered`).
    pub unanswered_as_use: bool,
    /// At least [`UNANSWERED_WARN_SHARE`] of the flows seen went unanswered: a sensor may see
    /// one direction of traffic only (said in the notes).
    pub mostly_unanswered: bool,
    /// Catalog digests in force.
    pub catalog_digests: Vec<String>,
    /// Configuration digests in force.
    pub config_digests: Vec<String>,
    /// Minimum group size applied.
    pub k: u64,
    /// Minimum group size asked for on the command line.
    pub k_requested: u64,
    /// Minimum group size of the sensors (from the input).
    pub k_input: u64,
    /// What was withheld.
    pub withheld: Withheld,
    /// Definitions, in words.
    pub notes: Vec<String>,
    /// What the method cannot see or tell apart, with this period's figures. Absent from
    /// reports saved by earlier builds.
    #[serde(default)]
    pub limitations: Limitations,
    /// Capture files of a survey that were damaged: skipped (with the reason) or truncated
    /// (used up to the cut). Absent when none was.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub damaged_captures: Vec<DamagedCapture>,
    /// The weights of the services' risk rating, when the source recorded them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub risk_weights: Option<crate::classify::risk::Weights>,
}

/// A figure of a limitation: a count or a share (a fraction, rounded like every share).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Figure {
    /// A count.
    Count(u64),
    /// A share.
    Share(f64),
}

/// One limitation of the method: its sentence (with the figures in words) and its figures.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Limitation {
    /// The limitation in words, figures included.
    pub text: String,
    /// The figures the sentence states, by stable name; empty when it states none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub figures: BTreeMap<String, Figure>,
}

/// The method's limitations (Methodology, "Limitations"), under stable keys, in the order
/// the reports list them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Limitations {
    /// A device is a client address (DHCP churn, NAT, VDI, proxies, VPN concentrators).
    pub device_definition: Limitation,
    /// Only traffic that crosses a sensor is seen.
    pub placement: Limitation,
    /// Flows the sensor could not name (ECH among them): counted as unnamed, not as use.
    pub unnamed: Limitation,
    /// Connection attempts never answered are not use.
    pub unanswered: Limitation,
    /// The error of the store's distinct-count sketches; absent unless the source is a store.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sketch: Option<Limitation>,
}

impl Limitations {
    /// The limitations in the order the reports list them, each with its key.
    pub fn list(&self) -> Vec<(&'static str, &Limitation)> {
        let mut v = vec![("device_definition", &self.device_definition), ("placement", &self.placement), ("unnamed", &self.unnamed), ("unanswered", &self.unanswered)];
        if let Some(x) = &self.sketch {
            v.push(("sketch", x));
        }
        v
    }
}

/// The sentence on what a device is (also the test's anchor in every format).
pub const DEVICE_DEFINITION_TEXT: &str = "A device is a client address: over a long period, DHCP churn gives one device \
     several addresses and over-counts devices; NAT, VDI, proxies or a VPN concentrator in front of the sensor collapse \
     many devices into one.";

/// The sentence of limitation `key` with its figures, each written by `fig` (the renderers
/// mark them; the model writes them in words). The words are the same in every format.
pub fn limitation_text(key: &str, figures: &BTreeMap<String, Figure>, fig: &dyn Fn(&str, Figure) -> String) -> String {
    let f = |name: &str| figures.get(name).map(|&x| fig(name, x));
    match key {
        "device_definition" => DEVICE_DEFINITION_TEXT.into(),
        "placement" => "Only traffic that crosses a sensor is seen: phones on mobile data, home networks and traffic \
                        of a split-tunnel VPN never do, and their use is in no figure."
            .into(),
        "unnamed" => match (f("unnamed_share"), f("unnamed_flows"), f("ech_share"), f("ech_flows")) {
            (Some(us), Some(un), Some(es), Some(en)) => format!(
                "The sensor could not name the destination of {us} of the flows ({un}); {es} of the flows ({en}) \
                 carried real ECH, which hides the server name. Flows no signal named are counted as unnamed, not as \
                 use of any service."
            ),
            _ => "No flow was counted this period. Flows the sensor cannot name (real ECH hides the server name) are \
                  counted as unnamed, not as use of any service."
                .into(),
        },
        "unanswered" => match f("unanswered_flows") {
            Some(n) => format!(
                "Unanswered connection attempts are not use: {n} this period, under Never answered, which says how \
                 they were counted."
            ),
            None => "Unanswered connection attempts are not use.".into(),
        },
        "sketch" => match (f("exact_below"), f("relative_error")) {
            (Some(b), Some(e)) => format!(
                "Device counts of {b} or more in a group are estimates of the store's distinct-count sketches, with \
                 a standard error of about {e} of the count."
            ),
            _ => String::new(),
        },
        _ => String::new(),
    }
}

/// Figures in words, as Markdown and CSV show them.
pub fn figure_words(_name: &str, x: Figure) -> String {
    match x {
        Figure::Count(n) => display::count(n),
        Figure::Share(x) => display::percent(x),
    }
}

fn limitation(key: &str, figures: Vec<(&str, Figure)>) -> Limitation {
    let figures: BTreeMap<String, Figure> = figures.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    Limitation { text: limitation_text(key, &figures, &figure_words), figures }
}

/// The limitations of this period's method.
fn limitations(input: &ReportInput, flows: u64, unnamed_flows: u64, unanswered_flows: u64) -> Limitations {
    let c = &input.coverage;
    let mut unnamed = vec![];
    if let (Some(us), Some(es)) = (share(unnamed_flows, flows), share(c.ech_flows, flows)) {
        unnamed = vec![("unnamed_flows", Figure::Count(unnamed_flows)), ("unnamed_share", Figure::Share(us)), ("ech_flows", Figure::Count(c.ech_flows)), ("ech_share", Figure::Share(es))];
    }
    let unanswered = vec![("unanswered_flows", Figure::Count(unanswered_flows))];
    Limitations {
        device_definition: limitation("device_definition", vec![]),
        placement: limitation("placement", vec![]),
        unnamed: limitation("unnamed", unnamed),
        unanswered: limitation("unanswered", unanswered),
        sketch: match &input.host_method {
            HostMethod::Sketch { relative_error, exact_below, .. } => Some(limitation(
                "sketch",
                vec![("exact_below", Figure::Count(*exact_below)), ("relative_error", Figure::Share(round_share(*relative_error)))],
            )),
            HostMethod::PrometheusWindow { .. } => None,
        },
    }
}

/// A report, ready to render.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The period.
    pub period: Period,
    /// The department reported on, or [`ALL_DEPARTMENTS`].
    pub scope: String,
    /// Where the facts come from.
    pub source: String,
    /// Minimum group size applied.
    pub k: u64,
    /// The input holds no data for the period ([`ReportInput::has_data`]): page 1 says that
    /// nothing can be concluded ([`NO_DATA_TEXT`]) and there are no findings.
    pub no_data: bool,
    /// Share of the period the sensors covered: the least covered sensor's uptime over the
    /// period (0 without a sensor).
    pub coverage_share: f64,
    /// Page 1's warning when `coverage_share` is below [`COVERAGE_WARN_SHARE`] (and there is
    /// data): the share covered, and that every figure is a lower bound.
    pub coverage_warning: Option<String>,
    /// Findings in words.
    pub headlines: Vec<Headline>,
    /// Departments shown, with their active hosts ([`ALL_DEPARTMENTS`] first).
    pub departments: Vec<DepartmentLine>,
    /// The survey tables.
    pub survey: Survey,
    /// The weekly trend.
    pub trend: Trend,
    /// The most used unsanctioned services of the scope.
    pub top_unsanctioned: Vec<TopService>,
    /// Registrable domains outside the catalog used by at least k devices, organisation-wide
    /// (empty in a department's report): most devices first, then flows, then domain; at most
    /// [`TOP_UNCATALOGUED`]. Absent from reports saved by earlier builds.
    #[serde(default)]
    pub uncatalogued: Vec<DomainLine>,
    /// What `uncatalogued` leaves out, counted (domains below k are never named).
    #[serde(default)]
    pub uncatalogued_folded: UncataloguedFolded,
    /// Exemptions.
    pub exemptions: Exemptions,
    /// Methodology and coverage.
    pub methodology: Methodology,
    /// The catalog's description of every service in the report (survey tables, top list,
    /// exemptions), sorted by id; services the input does not describe are not listed.
    pub service_table: Vec<ServiceInfo>,
    /// The same figures in an earlier period (`--compare`), when asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison: Option<Comparison>,
    /// Display names for HTML and Markdown (JSON and CSV keep ids).
    #[serde(skip)]
    pub names: Names,
}

/// Display names of departments and services, by id; an id without a name is shown as is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Names {
    /// Department id → configured display name.
    pub departments: BTreeMap<String, String>,
    /// Service id → catalog name.
    pub services: BTreeMap<String, String>,
}

impl Names {
    /// The names an input carries.
    pub fn of(input: &ReportInput) -> Names {
        Names {
            departments: input.department_names.clone(),
            services: input.service_catalog.iter().map(|s| (s.id.clone(), s.name.clone())).collect(),
        }
    }

    /// A department's display name, else its id; hosts in no configured department are
    /// "Unmapped addresses".
    pub fn department<'a>(&'a self, id: &'a str) -> &'a str {
        match self.departments.get(id) {
            Some(name) => name,
            None if id == crate::classify::UNMAPPED => "Unmapped addresses",
            None => id,
        }
    }

    /// A service's display name, else its id.
    pub fn service<'a>(&'a self, id: &'a str) -> &'a str {
        self.services.get(id).map_or(id, String::as_str)
    }
}

impl Report {
    /// Computes the report of `input` (pure; see the module documentation for rounding, order
    /// and the minimum group size).
    pub fn build(input: &ReportInput, opts: &ReportOptions) -> Report {
        let k = opts.k.max(input.coverage.min_group_size).max(1);
        let scope = opts.department.clone().unwrap_or_else(|| ALL_DEPARTMENTS.to_string());
        let in_scope = |d: &str| match &opts.department {
            Some(dept) => d == dept,
            None => true,
        };
        let period = period(input.from, input.to);
        let mut withheld = Withheld::default();

        let depts = suppress::departments(&input.departments, k);
        // A department whose every flow went unanswered had no use: nothing of it is withheld.
        let no_use = |d: &str| {
            input.departments.iter().any(|r| {
                r.department == d && r.active_hosts.count == 0 && r.unnamed_flows.is_empty() && !r.unanswered_flows.is_empty()
            })
        };
        withheld.departments = depts.withheld.iter().filter(|d| **d != ALL_DEPARTMENTS && in_scope(d) && !no_use(d)).count() as u64;
        let mut table = |name: &str, rows: &[UsageRow]| -> Vec<UsageLine> {
            let sel = suppress::usage(rows, &depts, k);
            let n = sel.withheld.iter().filter(|r| in_scope(&r.department)).count() as u64;
            *withheld.rows.entry(name.to_string()).or_default() += n;
            lines(&sel.shown, &depts.shown, &in_scope)
        };
        let survey = Survey {
            categories: table("survey_categories", &input.categories),
            services: table("survey_services", &input.services),
            channels: table("survey_channels", &input.channels),
        };
        let mut departments = department_lines(&depts.shown, &in_scope);
        // Configured departments without any traffic: listed, 0 devices, not observed.
        let seen = |d: &str| {
            input.departments.iter().any(|r| {
                r.department == d
                    && (r.active_hosts.count > 0 || r.unnamed_flows.values().any(|&n| n > 0) || r.unanswered_flows.values().any(|&n| n > 0))
            })
        };
        let configured: BTreeSet<&str> = input.departments_configured.iter().map(String::as_str).collect();
        for d in configured {
            if d != ALL_DEPARTMENTS && in_scope(d) && !seen(d) && !departments.iter().any(|l| l.department == d) {
                departments.push(DepartmentLine { department: d.to_string(), active_hosts: 0, hosts_exact: true, observed: false });
            }
        }
        departments.sort_by(|a, b| department_order(&a.department).cmp(&department_order(&b.department)));
        let trend = trend(input, k, &scope, &in_scope, &mut withheld);
        let top_unsanctioned = top_unsanctioned(&survey.services, &scope);
        let (uncatalogued, uncatalogued_folded) = if scope == ALL_DEPARTMENTS { uncatalogued(&input.uncatalogued, k) } else { Default::default() };
        let no_data = !input.has_data();
        let names = Names::of(input);
        let headlines = if no_data { Vec::new() } else { headlines(&survey, &departments, &scope, &period, &names) };
        let coverage_share = coverage_share(input, &period);
        let coverage_warning = (!no_data && coverage_share < COVERAGE_WARN_SHARE).then(|| coverage_warning(coverage_share));
        let exemptions = exemptions(input, opts, &survey.services, &in_scope);
        let methodology = methodology(input, opts.k, k, withheld, &period);
        let shown: BTreeSet<&str> = [&survey.services, &survey.channels]
            .into_iter()
            .flatten()
            .map(|l| l.service.as_str())
            .chain(top_unsanctioned.iter().map(|t| t.service.as_str()))
            .chain(exemptions.list.iter().map(|x| x.service.as_str()))
            .collect();
        let mut service_table: Vec<ServiceInfo> = input.service_catalog.iter().filter(|s| shown.contains(s.id.as_str())).cloned().collect();
        service_table.sort_by(|a, b| a.id.cmp(&b.id));
        Report {
            period,
            scope,
            source: input.source.clone(),
            k,
            no_data,
            coverage_share,
            coverage_warning,
            headlines,
            departments,
            survey,
            trend,
            top_unsanctioned,
            uncatalogued,
            uncatalogued_folded,
            exemptions,
            methodology,
            service_table,
            comparison: None,
            names,
        }
    }
}

impl Report {
    /// Page 1's sentence when the report is of one department that the configuration has but
    /// that had no traffic in the period: its absence of findings is no evidence of no use.
    pub fn scope_not_observed(&self) -> Option<String> {
        let d = self.departments.iter().find(|d| d.department == self.scope && self.scope != ALL_DEPARTMENTS)?;
        (!d.observed).then(|| {
            format!("Department {} had no traffic in this period ({NOT_OBSERVED}): nothing can be concluded about its use.", self.names.department(&d.department))
        })
    }
}

/// `n / d` rounded to [`SHARE_DECIMALS`] decimals, capped at 1; none when `d` is 0.
pub fn share(n: u64, d: u64) -> Option<f64> {
    if d == 0 {
        return None;
    }
    Some(round_share((n as f64 / d as f64).min(1.0)))
}

/// Rounds a fraction to [`SHARE_DECIMALS`] decimals (half away from zero).
pub fn round_share(x: f64) -> f64 {
    let scale = 10f64.powi(SHARE_DECIMALS);
    (x * scale).round() / scale
}

/// A category id in words, for sentences (`file-sharing` → `file sharing`).
pub fn category_label(category: &str) -> String {
    match category {
        "file-sharing" => "personal file sharing".into(),
        "personal-mail" => "personal mail".into(),
        "generative-ai" => "generative AI".into(),
        "vpn-proxy" => "VPNs and proxies".into(),
        "dns-bypass" => "DNS bypass".into(),
        "social" => "social media".into(),
        "corporate-suite" => "corporate suites".into(),
        "translation" => "online translation".into(),
        "collaboration" => "collaboration tools".into(),
        "code-hosting" => "code hosting".into(),
        "paste" => "paste sites".into(),
        other => other.replace(['-', '_'], " "),
    }
}

/// The least covered sensor's uptime over the period (0 without a sensor or a period).
fn coverage_share(input: &ReportInput, period: &Period) -> f64 {
    let period_secs = u64::from(period.days) * 86_400;
    input.coverage.sensors.iter().map(|s| share(s.uptime_secs, period_secs).unwrap_or(0.0)).reduce(f64::min).unwrap_or(0.0)
}

/// Page 1's sentence on a coverage below [`COVERAGE_WARN_SHARE`].
pub fn coverage_warning(covered: f64) -> String {
    format!(
        "Partial coverage: the sensors covered {} of the period (the least covered sensor's uptime). Use while a sensor \
         was down was not seen, so every figure in this report is a lower bound.",
        display::percent(covered)
    )
}

fn period(from: Date, to: Date) -> Period {
    let days = (to - from).whole_days().saturating_add(1).clamp(0, u32::MAX as i64) as u32;
    let whole_month = from.day() == 1
        && to.month() == from.month()
        && to.year() == from.year()
        && to.day() == from.month().length(from.year());
    let label = if whole_month {
        format!("{} {}", from.month(), from.year())
    } else if from == to {
        from.to_string()
    } else {
        format!("{from} to {to}")
    };
    Period { from, to, days, label }
}

/// Sort key of a department: the organisation first, then by id.
fn department_order(d: &str) -> (bool, &str) {
    (d != ALL_DEPARTMENTS, d)
}

fn lines(rows: &[&UsageRow], depts: &BTreeMap<&str, &DepartmentRow>, in_scope: &dyn Fn(&str) -> bool) -> Vec<UsageLine> {
    let mut out: Vec<UsageLine> = rows
        .iter()
        .filter(|r| in_scope(&r.department))
        .filter_map(|r| {
            let active = depts.get(r.department.as_str())?.active_hosts.count;
            Some(UsageLine {
                department: r.department.clone(),
                category: r.category.clone(),
                service: r.service.clone(),
                channel: r.channel.clone(),
                status: r.status.clone(),
                hosts: r.hosts.count,
                hosts_exact: r.hosts.exact,
                share: share(r.hosts.count, active)?,
                flows: r.volume.flows,
                bytes_up: r.volume.bytes_up,
                bytes_down: r.volume.bytes_down,
            })
        })
        .collect();
    out.sort_by(|a, b| {
        (department_order(&a.department), &a.category, &a.service, &a.channel, &a.status).cmp(&(
            department_order(&b.department),
            &b.category,
            &b.service,
            &b.channel,
            &b.status,
        ))
    });
    out.dedup_by(|a, b| (&a.department, &a.category, &a.service, &a.channel, &a.status) == (&b.department, &b.category, &b.service, &b.channel, &b.status));
    out
}

fn department_lines(shown: &BTreeMap<&str, &DepartmentRow>, in_scope: &dyn Fn(&str) -> bool) -> Vec<DepartmentLine> {
    let mut out: Vec<DepartmentLine> = shown
        .values()
        .filter(|r| in_scope(&r.department))
        .map(|r| DepartmentLine {
            department: r.department.clone(),
            active_hosts: r.active_hosts.count,
            hosts_exact: r.active_hosts.exact,
            observed: true,
        })
        .collect();
    out.sort_by(|a, b| department_order(&a.department).cmp(&department_order(&b.department)));
    out
}

fn trend(input: &ReportInput, k: u64, scope: &str, in_scope: &dyn Fn(&str) -> bool, withheld: &mut Withheld) -> Trend {
    let mut weeks: Vec<&super::input::Week> = input.weeks.iter().collect();
    weeks.sort_by_key(|w| w.start);
    weeks.dedup_by_key(|w| w.start);
    let mut out = Trend::default();
    for w in weeks {
        let end = w.start.saturating_add(Duration::days(6));
        let (first, last) = (w.start.max(input.from), end.min(input.to));
        if last < first {
            continue;
        }
        let depts = suppress::departments(&w.departments, k);
        let sel = suppress::usage(&w.categories, &depts, k);
        *withheld.rows.entry("trend".into()).or_default() += sel.withheld.iter().filter(|r| in_scope(&r.department)).count() as u64;
        out.weeks.push(WeekLine {
            start: w.start,
            days_in_period: ((last - first).whole_days() + 1) as u32,
            active_hosts: depts.shown.get(scope).map(|r| r.active_hosts.count),
        });
        out.lines.extend(lines(&sel.shown, &depts.shown, in_scope).into_iter().map(|l| TrendLine {
            week: w.start,
            department: l.department,
            category: l.category,
            status: l.status,
            hosts: l.hosts,
            hosts_exact: l.hosts_exact,
            share: l.share,
            flows: l.flows,
        }));
    }
    out
}

/// Orders usage by hosts, then flows (both descending), then service id.
fn by_use(a: &UsageLine, b: &UsageLine) -> std::cmp::Ordering {
    b.hosts.cmp(&a.hosts).then(b.flows.cmp(&a.flows)).then(a.service.cmp(&b.service))
}

/// The domains of at least `k` devices, ranked and capped at [`TOP_UNCATALOGUED`], and what is
/// left out, counted.
fn uncatalogued(rows: &[DomainRow], k: u64) -> (Vec<DomainLine>, UncataloguedFolded) {
    let mut folded = UncataloguedFolded::default();
    let mut named: Vec<&DomainRow> = Vec::new();
    for r in rows {
        if r.hosts.count >= k.max(1) {
            named.push(r);
        } else {
            folded.below_k_domains += 1;
            folded.below_k_flows = folded.below_k_flows.saturating_add(r.volume.flows);
        }
    }
    named.sort_by(|a, b| b.hosts.count.cmp(&a.hosts.count).then(b.volume.flows.cmp(&a.volume.flows)).then(a.domain.cmp(&b.domain)));
    for r in named.iter().skip(TOP_UNCATALOGUED) {
        folded.beyond_top_domains += 1;
        folded.beyond_top_flows = folded.beyond_top_flows.saturating_add(r.volume.flows);
    }
    let lines = named
        .into_iter()
        .take(TOP_UNCATALOGUED)
        .zip(1..)
        .map(|(r, rank)| DomainLine {
            rank,
            domain: r.domain.clone(),
            devices: r.hosts.count,
            devices_exact: r.hosts.exact,
            flows: r.volume.flows,
            bytes: r.volume.bytes_up.saturating_add(r.volume.bytes_down),
            bytes_up: r.volume.bytes_up,
            bytes_down: r.volume.bytes_down,
        })
        .collect();
    (lines, folded)
}

fn top_unsanctioned(services: &[UsageLine], scope: &str) -> Vec<TopService> {
    let mut top: Vec<&UsageLine> = services.iter().filter(|l| l.department == scope && l.status == UNSANCTIONED).collect();
    top.sort_by(|a, b| by_use(a, b));
    top.into_iter()
        .take(TOP_SERVICES)
        .zip(1..)
        .map(|(l, rank)| TopService {
            rank,
            service: l.service.clone(),
            category: l.category.clone(),
            hosts: l.hosts,
            hosts_exact: l.hosts_exact,
            share: l.share,
            flows: l.flows,
            bytes_up: l.bytes_up,
            bytes_down: l.bytes_down,
            departments: if scope == ALL_DEPARTMENTS {
                services
                    .iter()
                    .filter(|o| o.department != ALL_DEPARTMENTS && o.service == l.service && o.status == UNSANCTIONED)
                    .map(|o| &o.department)
                    .collect::<BTreeSet<_>>()
                    .len() as u64
            } else {
                1
            },
        })
        .collect()
}

fn headlines(survey: &Survey, departments: &[DepartmentLine], scope: &str, period: &Period, names: &Names) -> Vec<Headline> {
    let org = scope == ALL_DEPARTMENTS;
    let counted = |d: &str| d != ALL_DEPARTMENTS && d != UNMAPPED;
    let total = departments.iter().filter(|d| d.observed && counted(&d.department)).count() as u64;
    let categories: BTreeSet<&str> =
        survey.categories.iter().filter(|l| l.status == UNSANCTIONED).map(|l| l.category.as_str()).collect();
    let mut out: Vec<Headline> = Vec::new();
    for category in categories {
        let rows = survey.categories.iter().filter(|l| l.category == category && l.status == UNSANCTIONED);
        let share = rows.clone().find(|l| l.department == scope).map(|l| l.share);
        let using = rows.filter(|l| counted(&l.department)).map(|l| &l.department).collect::<BTreeSet<_>>().len() as u64;
        let mut services: Vec<&UsageLine> = survey
            .services
            .iter()
            .filter(|l| l.department == scope && l.category == category && l.status == UNSANCTIONED)
            .collect();
        services.sort_by(|a, b| by_use(a, b));
        let services: Vec<String> = services.iter().take(HEADLINE_SERVICES).map(|l| l.service.clone()).collect();
        let label = category_label(category);
        let shown: Vec<&str> = services.iter().map(|s| names.service(s)).collect();
        let named = if shown.is_empty() { String::new() } else { format!(" ({})", shown.join(", ")) };
        let where_ = if org { "the organisation".to_string() } else { names.department(scope).to_string() };
        // "In October 2026", "On 3 October 2026", "From 3 to 9 October 2026".
        let when = display::period_phrase(period.from, period.to);
        let mut text = match share {
            Some(s) => format!("{when}, {} of active devices in {where_} used unsanctioned {label}{named}", display::percent(s)),
            None => format!("{when}, unsanctioned {label} was used{named}"),
        };
        if org {
            text.push_str(&format!("; {} of {} did", display::count(using), display::counted(total, "department", "departments")));
        }
        text.push('.');
        out.push(Headline {
            category: category.to_string(),
            status: UNSANCTIONED.into(),
            share,
            departments_using: org.then_some(using),
            departments_total: org.then_some(total),
            services,
            text,
        });
    }
    out.sort_by(|a, b| {
        let s = |h: &Headline| h.share.unwrap_or(-1.0);
        s(b).total_cmp(&s(a)).then(b.departments_using.cmp(&a.departments_using)).then(a.category.cmp(&b.category))
    });
    out
}

fn exemptions(input: &ReportInput, opts: &ReportOptions, services: &[UsageLine], in_scope: &dyn Fn(&str) -> bool) -> Exemptions {
    let as_of = opts.as_of;
    let soon = as_of.saturating_add(Duration::days(opts.expiring_within_days as i64));
    let mut list: Vec<ExemptionLine> = input
        .exemptions
        .iter()
        .filter(|e| in_scope(&e.department))
        .map(|e| {
            let state = if e.expires < as_of {
                ExemptionState::Expired
            } else if e.start.is_some_and(|s| s > as_of) {
                ExemptionState::NotStarted
            } else if e.expires <= soon {
                ExemptionState::Expiring
            } else {
                ExemptionState::Valid
            };
            ExemptionLine {
                department: e.department.clone(),
                service: e.service.clone(),
                start: e.start,
                expires: e.expires,
                reference: e.reference.clone(),
                state,
                days_left: (e.expires - as_of).whole_days(),
            }
        })
        .collect();
    list.sort_by(|a, b| (&a.department, &a.service, a.expires, &a.reference).cmp(&(&b.department, &b.service, b.expires, &b.reference)));
    list.dedup();
    // The latest exemption of each (department, service).
    let mut latest: BTreeMap<(&str, &str), &ExemptionLine> = BTreeMap::new();
    for e in &list {
        latest.insert((&e.department, &e.service), e);
    }
    let with = |l: &UsageLine| {
        let e = latest.get(&(l.department.as_str(), l.service.as_str()));
        ExemptionUse { usage: l.clone(), expires: e.map(|e| e.expires), reference: e.and_then(|e| e.reference.clone()) }
    };
    let departmental = services.iter().filter(|l| l.department != ALL_DEPARTMENTS);
    let in_use = departmental.clone().filter(|l| l.status == EXEMPTED).map(with).collect();
    let after_expiry = departmental
        .filter(|l| l.status == UNSANCTIONED)
        .filter(|l| latest.get(&(l.department.as_str(), l.service.as_str())).is_some_and(|e| e.expires < input.to))
        .map(with)
        .collect();
    Exemptions { as_of, expiring_within_days: opts.expiring_within_days, list, in_use, after_expiry }
}

fn flow_shares(map: &BTreeMap<String, u64>, total: u64) -> Vec<FlowShare> {
    map.iter().map(|(name, &flows)| FlowShare { name: name.clone(), flows, share: share(flows, total) }).collect()
}

/// The host-counting method and its error, in words, for a period of `days` days.
pub fn host_method_text(method: &HostMethod, days: u32) -> (String, String) {
    match method {
        HostMethod::Sketch { relative_error, exact_below, key_epochs } => {
            let pct = relative_error * 100.0;
            let mut error = format!(
                "Exact below {exact_below} devices; above, estimates with a relative standard error of {pct:.1}% \
                 (about 95% of them within {:.1}% of the true count).",
                2.0 * pct
            );
            if *key_epochs > 1 {
                let changes = key_epochs - 1;
                error.push_str(&format!(
                    " The pseudonym key changed {changes} time{} during the period: a device seen under two keys \
                     counts twice, so counts are upper bounds.",
                    if changes == 1 { "" } else { "s" }
                ));
            }
            ("Distinct devices are counted from daily distinct-count sketches of keyed pseudonyms, merged over the \
              period (per group, and per department for the denominators)."
                .into(), error)
        }
        HostMethod::PrometheusWindow { window } => {
            let reach = if window == "30d" && days > 30 {
                format!(
                    "The period is {days} days long and the sensors' longest window is 30 days: devices are counted \
                     over the period's last 30 days only, so every device count and share is a lower bound."
                )
            } else {
                format!("The {window} window may begin before the period: devices active just before it count.")
            };
            (
                format!(
                    "Distinct devices are the sensors' exact distinct-host gauges over the {window} window ending at \
                     the end of the period, added across sensors; flows and bytes are the counters' increase over the \
                     period."
                ),
                format!(
                    "Channels of a service and services of a category are folded by their largest group, so shares per \
                     service and category are lower bounds. {reach} A device seen by two sensors counts twice."
                ),
            )
        }
    }
}

fn methodology(input: &ReportInput, k_requested: u64, k: u64, withheld: Withheld, period: &Period) -> Methodology {
    let c = &input.coverage;
    let period_secs = u64::from(period.days) * 86_400;
    let mut sensors: Vec<SensorLine> = c
        .sensors
        .iter()
        .map(|s| SensorLine { name: s.name.clone(), uptime_secs: s.uptime_secs, uptime_share: share(s.uptime_secs, period_secs).unwrap_or(0.0) })
        .collect();
    sensors.sort_by(|a, b| a.name.cmp(&b.name));
    // The organisation's row, or the sum of the departments' when it is absent.
    let organisation = |of: fn(&DepartmentRow) -> &BTreeMap<String, u64>| -> BTreeMap<String, u64> {
        match input.departments.iter().find(|d| d.department == ALL_DEPARTMENTS) {
            Some(all) => of(all).clone(),
            None => {
                let mut sum = BTreeMap::new();
                for d in &input.departments {
                    for (label, n) in of(d) {
                        let e: &mut u64 = sum.entry(label.clone()).or_default();
                        *e = e.saturating_add(*n);
                    }
                }
                sum
            }
        }
    };
    let unnamed = organisation(|d| &d.unnamed_flows);
    let named_flows = c.named_by_signal.values().fold(0u64, |a, n| a.saturating_add(*n));
    let unnamed_flows = unnamed.values().fold(0u64, |a, n| a.saturating_add(*n));
    let flows = named_flows.saturating_add(unnamed_flows);
    let unanswered_flows = organisation(|d| &d.unanswered_flows).values().fold(0u64, |a, n| a.saturating_add(*n));
    // Counted as use, they are among `flows` already.
    let seen = if c.unanswered_as_use { flows.max(unanswered_flows) } else { flows.saturating_add(unanswered_flows) };
    let unanswered_share = share(unanswered_flows, seen);
    let mostly_unanswered = unanswered_share.is_some_and(|x| x >= UNANSWERED_WARN_SHARE);
    let (host_method_text, host_error_text) = host_method_text(&input.host_method, period.days);
    let rows: u64 = withheld.rows.values().sum();
    let k_devices = display::counted(k, "device", "devices");
    let devices = if k == 1 { "device" } else { "devices" };
    let mut notes = vec![
        format!(
            "Share: distinct devices of a group over the active devices of its department (or of the organisation) in \
             the same period or week, as a fraction rounded to {SHARE_DECIMALS} decimals; shown as a percentage with one \
             decimal."
        ),
        format!(
            "Minimum group size k = {k}: no group of fewer than {k_devices} is shown, nor any figure of a department with \
             fewer than {k} active {devices}. Withheld: {} and {}. Where the organisation-wide figure \
             minus the departments shown would describe fewer than {k_devices}, the smallest department figure is \
             withheld as well. An empty cell means no use or use by fewer than {k_devices}.",
            display::counted(withheld.departments, "department", "departments"),
            display::counted(rows, "row", "rows"),
        ),
        format!(
            "A department counts as using a category when {} did; `unmapped` addresses are not \
             a department.",
            if k == 1 { "one of its devices".to_string() } else { format!("at least {k} of its devices") }
        ),
        "Use after an exemption expired: unsanctioned use by a department of a service whose latest exemption for \
         it ended before the last day of the period."
            .into(),
        "Named flows: flows whose destination the sensor named (by TLS or QUIC server name, HTTP Host, proxy \
         target, DNS correlation or a protocol marker); the others are unnamed, by reason."
            .into(),
        unanswered_note(unanswered_flows, c.unanswered_as_use),
    ];
    if let Some(&asn) = c.named_by_signal.get("asn").filter(|&&n| n > 0) {
        // The default ASN database is CC BY 4.0: its use is attributed wherever results are shown.
        notes.push(format!(
            "Autonomous systems: {} attributed by the AS of the server's address (signal `asn`), looked up in the \
             sensor's ASN database: MaxMind GeoLite2-ASN where configured (`geoip_asn`), else the default one that \
             `shadowtap asn update` installs: {}.",
            display::counted(asn, "flow was", "flows were"),
            crate::asndb::ATTRIBUTION
        ));
    }
    if mostly_unanswered && !c.unanswered_as_use {
        notes.push(format!(
            "Most flows seen ({}) were never answered by their server. Either the network carried a flood of \
             connection attempts nobody answered, or a sensor sees one direction of traffic only (asymmetric \
             routing, a tap that carries one direction): then use is undercounted here, and the sensor's setting \
             `[engine] count_unanswered = true` counts those flows as use.",
            unanswered_share.map(display::percent).unwrap_or_default()
        ));
    }
    if let HostMethod::PrometheusWindow { .. } = input.host_method {
        notes.push(
            "Destinations outside the catalog are not listed: Prometheus keeps only the sensors' top list of the last \
             24 hours (`shadowtap_uncatalogued_top_hosts`), not counts over a period. A report from the rollup store or \
             a survey lists them."
                .into(),
        );
    }
    let mut damaged_captures = input.damaged_captures.clone();
    damaged_captures.sort();
    let skipped = damaged_captures.iter().filter(|d| d.damage == CaptureDamage::Skipped).count();
    let truncated = damaged_captures.len() - skipped;
    if !damaged_captures.is_empty() {
        notes.push(format!(
            "Damaged capture files: {skipped} could not be read or {was} corrupt and {was} left out from the \
             damage on (frames before the damage, if any, were used); {truncated} ended mid-record and {was_t} used up \
             to the cut. Each is listed with the reason.",
            was = if skipped == 1 { "was" } else { "were" },
            was_t = if truncated == 1 { "was" } else { "were" },
        ));
    }
    Methodology {
        source: input.source.clone(),
        host_method: input.host_method.clone(),
        host_method_text,
        host_error_text,
        sensors,
        packets: c.packets,
        capture_received: c.capture_received,
        capture_dropped: c.capture_dropped,
        capture_loss: share(c.capture_dropped, c.capture_received),
        flows,
        named_flows,
        named_share: share(named_flows, flows),
        named_by_signal: flow_shares(&c.named_by_signal, flows),
        ech_flows: c.ech_flows,
        ech_share: share(c.ech_flows, flows),
        unnamed_share: share(unnamed_flows, flows),
        unnamed_by_reason: flow_shares(&unnamed, flows),
        unanswered_flows,
        unanswered_share,
        unanswered_as_use: c.unanswered_as_use,
        mostly_unanswered,
        catalog_digests: sorted(&c.catalog_digests),
        config_digests: sorted(&c.config_digests),
        k,
        k_requested,
        k_input: c.min_group_size,
        withheld,
        notes,
        limitations: limitations(input, flows, unnamed_flows, unanswered_flows),
        damaged_captures,
        risk_weights: input.risk_weights.clone(),
    }
}

/// The methodology's sentence on flows their server never answered.
fn unanswered_note(n: u64, as_use: bool) -> String {
    let flows = if n == 1 { "flow was" } else { "flows were" };
    if as_use {
        format!(
            "Use needs an exchange, but the sensors' configuration counted unanswered flows as use (`[engine] \
             count_unanswered = true`, for a sensor that sees one direction of traffic only): {} {flows} never \
             answered by their server, and spoofed or blocked connection attempts among them count as use.",
            display::count(n)
        )
    } else {
        format!(
            "Use needs an exchange: a flow counts only once its server answered. {} {flows} never answered by their \
             server (spoofed or blocked connection attempts, scans); they are not counted as use: not as active \
             devices, not as use of any service, and not among the flows above.",
            display::count(n)
        )
    }
}

fn sorted(v: &[String]) -> Vec<String> {
    let set: BTreeSet<&String> = v.iter().collect();
    set.into_iter().cloned().collect()
}

// The comparison with an earlier period (`--compare`): data here, built by `report::compare`,
// so that the report does not import its builder.

/// One line of the comparison: a department (or the organisation) and a category.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ComparisonLine {
    /// Department id, or `_all`.
    pub department: String,
    /// Category.
    pub category: String,
    /// Share of active devices now (0..1); `None` when withheld or not observed.
    pub now: Option<f64>,
    /// Share in the earlier period; `None` when withheld or not observed.
    pub earlier: Option<f64>,
    /// `now - earlier` in percentage points (two decimals); `None` when either is.
    pub delta_pp: Option<f64>,
}

/// The comparison section of a report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The earlier period.
    pub earlier_period: Period,
    /// Where the earlier facts came from.
    pub earlier_source: String,
    /// The k applied to both periods.
    pub k: u64,
    /// Lines, the organisation's first, then by department and category.
    pub lines: Vec<ComparisonLine>,
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::report::input::{Coverage, Exemption, Hosts, Sensor, Volume, Week};
    use time::macros::date;

    pub(crate) fn usage(d: &str, category: &str, service: &str, status: &str, hosts: u64, flows: u64) -> UsageRow {
        UsageRow {
            department: d.into(),
            service: service.into(),
            channel: String::new(),
            category: category.into(),
            status: status.into(),
            volume: Volume { flows, bytes_up: flows * 100, bytes_down: flows * 1000 },
            hosts: Hosts { count: hosts, exact: true },
        }
    }

    pub(crate) fn dept(d: &str, hosts: u64) -> DepartmentRow {
        DepartmentRow { department: d.into(), active_hosts: Hosts { count: hosts, exact: true }, unnamed_flows: BTreeMap::new(), unanswered_flows: BTreeMap::new() }
    }

    /// Departments of 40, 30, 3 and 3 hosts (the two small ones withheld together, so no
    /// difference singles out either); WhatsApp in finance and legal, Dropbox in tiny.
    pub(crate) fn input() -> ReportInput {
        let services = vec![
            usage("_all", "messaging", "whatsapp", "unsanctioned", 20, 900),
            usage("finance", "messaging", "whatsapp", "unsanctioned", 12, 600),
            usage("legal", "messaging", "whatsapp", "unsanctioned", 8, 300),
            usage("_all", "file-sharing", "dropbox", "unsanctioned", 3, 50),
            usage("tiny", "file-sharing", "dropbox", "unsanctioned", 3, 50),
            usage("legal", "file-sharing", "google-drive", "exempted", 6, 70),
            usage("_all", "file-sharing", "google-drive", "exempted", 6, 70),
            usage("finance", "file-sharing", "wetransfer", "unsanctioned", 5, 9),
            usage("_all", "file-sharing", "wetransfer", "unsanctioned", 5, 9),
        ];
        let categories = vec![
            usage("_all", "messaging", "", "unsanctioned", 20, 900),
            usage("finance", "messaging", "", "unsanctioned", 12, 600),
            usage("legal", "messaging", "", "unsanctioned", 8, 300),
            usage("_all", "file-sharing", "", "unsanctioned", 8, 59),
            usage("tiny", "file-sharing", "", "unsanctioned", 3, 50),
            usage("finance", "file-sharing", "", "unsanctioned", 5, 9),
            usage("legal", "file-sharing", "", "exempted", 6, 70),
            usage("_all", "file-sharing", "", "exempted", 6, 70),
        ];
        let mut all = dept("_all", 76);
        all.unnamed_flows.insert("ech".into(), 10);
        all.unnamed_flows.insert("tls_no_sni".into(), 30);
        ReportInput {
            from: date!(2026 - 10 - 01),
            to: date!(2026 - 10 - 31),
            source: "test".into(),
            host_method: HostMethod::Sketch { relative_error: 0.01, exact_below: 64, key_epochs: 1 },
            services,
            channels: vec![],
            categories: categories.clone(),
            departments: vec![all, dept("finance", 40), dept("legal", 30), dept("tiny", 3), dept("wee", 3)],
            weeks: vec![Week {
                start: date!(2026 - 09 - 28),
                categories: vec![usage("_all", "messaging", "", "unsanctioned", 10, 100)],
                departments: vec![dept("_all", 50)],
            }],
            exemptions: vec![
                Exemption { department: "legal".into(), service: "google-drive".into(), start: None, expires: date!(2026 - 11 - 15), reference: Some("EXC-1".into()) },
                Exemption { department: "finance".into(), service: "wetransfer".into(), start: None, expires: date!(2026 - 10 - 10), reference: None },
            ],
            coverage: Coverage {
                sensors: vec![Sensor { name: "s1".into(), uptime_secs: 31 * 86_400 / 2 }],
                packets: 1000,
                capture_received: 1000,
                capture_dropped: 7,
                named_by_signal: [("sni".to_string(), 150u64), ("dns".to_string(), 10)].into_iter().collect(),
                ech_flows: 12,
                catalog_digests: vec!["b".into(), "a".into(), "b".into()],
                config_digests: vec!["c".into()],
                min_group_size: 5,
                unanswered_as_use: false,
            },
            damaged_captures: vec![],
            departments_configured: vec![],
            department_names: Default::default(),
            risk_weights: None,
            service_catalog: vec![],
            uncatalogued: vec![],
        }
    }

    fn build(input: &ReportInput) -> Report {
        Report::build(input, &ReportOptions::for_input(input))
    }

    /// An input with nothing in it: no packets, no flows, no sensor uptime.
    pub(crate) fn empty_input() -> ReportInput {
        let mut i = ReportInput { services: vec![], categories: vec![], channels: vec![], departments: vec![], weeks: vec![], ..input() };
        i.coverage = Coverage { min_group_size: 5, ..Coverage::default() };
        i
    }

    #[test]
    fn no_data_is_never_read_as_no_use() {
        let i = empty_input();
        assert!(!i.has_data());
        let r = build(&i);
        assert!(r.no_data);
        assert!(r.headlines.is_empty());
        assert_eq!(r.coverage_warning, None, "no data says more than a coverage of 0%");
        let full = input();
        assert!(full.has_data());
        assert!(!build(&full).no_data);
    }

    #[test]
    fn coverage_below_90_percent_warns_on_page_one() {
        let i = input(); // one sensor up half of the period
        let r = build(&i);
        assert_eq!(r.coverage_share, 0.5);
        let w = r.coverage_warning.expect("a warning");
        assert!(w.contains("50.0% of the period") && w.contains("lower bound"), "{w}");
        let mut i = input();
        i.coverage.sensors[0].uptime_secs = 31 * 86_400 * 95 / 100;
        let r = build(&i);
        assert_eq!(r.coverage_share, 0.95);
        assert_eq!(r.coverage_warning, None);
        // The least covered sensor decides.
        i.coverage.sensors.push(Sensor { name: "s0".into(), uptime_secs: 31 * 86_400 / 4 });
        assert_eq!(build(&i).coverage_share, 0.25);
    }

    #[test]
    fn a_configured_department_without_traffic_is_listed_as_not_observed() {
        let mut i = input();
        i.departments_configured = vec!["finance".into(), "hr".into(), "legal".into(), "tiny".into()];
        let r = build(&i);
        let hr = r.departments.iter().find(|d| d.department == "hr").expect("hr listed");
        assert_eq!((hr.active_hosts, hr.observed), (0, false));
        assert!(r.departments.iter().filter(|d| d.department != "hr").all(|d| d.observed));
        assert!(!r.departments.iter().any(|d| d.department == "tiny"), "withheld for k, not 'not observed'");
        assert_eq!(r.departments.iter().map(|d| d.department.as_str()).collect::<Vec<_>>(), ["_all", "finance", "hr", "legal"]);
        assert_eq!(r.headlines[0].departments_total, Some(2), "a department not observed is not counted as one without use");
        // A department report of it says so too.
        let r = Report::build(&i, &ReportOptions { department: Some("hr".into()), ..ReportOptions::for_input(&i) });
        assert_eq!(r.departments.len(), 1);
        assert!(!r.departments[0].observed);
        assert!(r.scope_not_observed().is_some_and(|t| t.starts_with("Department hr had no traffic")));
        assert_eq!(build(&i).scope_not_observed(), None);
        // Inputs saved before the list existed still load.
        let mut v = serde_json::to_value(input()).unwrap();
        v.as_object_mut().unwrap().remove("departments_configured");
        let back: ReportInput = serde_json::from_value(v).unwrap();
        assert!(back.departments_configured.is_empty());
    }

    #[test]
    fn no_row_below_k_is_ever_shown() {
        let mut inp = input();
        for k in [1, 3, 5, 8, 13, 21, 100] {
            inp.coverage.min_group_size = 0;
            let r = Report::build(&inp, &ReportOptions { k, ..ReportOptions::for_input(&inp) });
            assert_eq!(r.k, k);
            let all = r.survey.categories.iter().chain(&r.survey.services).chain(&r.survey.channels);
            assert!(all.clone().all(|l| l.hosts >= k), "k = {k}");
            assert!(r.departments.iter().all(|d| d.active_hosts >= k));
            assert!(all.clone().all(|l| r.departments.iter().any(|d| d.department == l.department)), "no share over a withheld denominator");
            assert!(r.trend.lines.iter().all(|l| l.hosts >= k));
            assert!(r.top_unsanctioned.iter().all(|t| t.hosts >= k));
        }
    }

    #[test]
    fn k_is_the_larger_of_the_request_and_the_input() {
        let inp = input();
        let r = Report::build(&inp, &ReportOptions { k: 2, ..ReportOptions::for_input(&inp) });
        assert_eq!((r.k, r.methodology.k_requested, r.methodology.k_input), (5, 2, 5));
        let r = Report::build(&inp, &ReportOptions { k: 9, ..ReportOptions::for_input(&inp) });
        assert_eq!(r.k, 9);
    }

    #[test]
    fn shares_are_over_the_departments_active_hosts_and_rounded() {
        let r = build(&input());
        let find = |d: &str, c: &str| r.survey.categories.iter().find(|l| l.department == d && l.category == c && l.status == UNSANCTIONED).unwrap();
        assert_eq!(find("finance", "messaging").share, 0.3); // 12 / 40
        assert_eq!(find("legal", "messaging").share, 0.2667); // 8 / 30 = 0.26666...
        assert_eq!(find("_all", "messaging").share, 0.2632); // 20 / 76 = 0.263157...
        assert_eq!(share(1, 3), Some(0.3333));
        assert_eq!(share(2, 3), Some(0.6667));
        assert_eq!(share(5, 0), None);
        assert_eq!(share(7, 5), Some(1.0), "capped");
        assert_eq!(round_share(0.123_45), 0.1235, "half away from zero");
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"share\":0.2667"), "four decimals in JSON: {json}");
    }

    #[test]
    fn small_departments_are_withheld_and_counted() {
        let r = build(&input());
        assert!(r.departments.iter().all(|d| d.department != "tiny"));
        assert!(r.survey.services.iter().all(|l| l.service != "dropbox"), "3 hosts < k = 5");
        assert_eq!(r.methodology.withheld.departments, 2);
        // dropbox _all (3) and tiny (3) in services; file-sharing of tiny in categories.
        assert_eq!(r.methodology.withheld.rows["survey_services"], 2);
        assert!(r.methodology.withheld.rows["survey_categories"] >= 1);
    }

    #[test]
    fn secondary_suppression_protects_the_difference() {
        // file-sharing unsanctioned: _all 8 = finance 5 + tiny 3 (withheld): 8 - 5 = 3 < 5
        // would single out tiny's three devices, so finance's row is withheld too.
        let r = build(&input());
        let fs: Vec<&str> = r
            .survey
            .categories
            .iter()
            .filter(|l| l.category == "file-sharing" && l.status == UNSANCTIONED)
            .map(|l| l.department.as_str())
            .collect();
        assert_eq!(fs, ["_all"]);
    }

    #[test]
    fn headlines_use_the_auditors_phrasing() {
        let r = build(&input());
        let h = &r.headlines[0];
        assert_eq!(h.category, "messaging");
        assert_eq!(h.text, "In October 2026, 26.3% of active devices in the organisation used unsanctioned messaging (whatsapp); 2 of 2 departments did.");
        assert_eq!((h.departments_using, h.departments_total), (Some(2), Some(2)));
        let fs = r.headlines.iter().find(|h| h.category == "file-sharing").unwrap();
        assert_eq!(fs.text, "In October 2026, 10.5% of active devices in the organisation used unsanctioned personal file sharing (wetransfer); 0 of 2 departments did.");
        let one = Report::build(&input(), &ReportOptions { department: Some("finance".into()), ..ReportOptions::for_input(&input()) });
        assert_eq!(one.headlines[0].text, "In October 2026, 30.0% of active devices in finance used unsanctioned messaging (whatsapp).");
        assert_eq!(one.headlines[0].departments_using, None);
    }

    #[test]
    fn headlines_name_a_day_in_words() {
        let mut inp = input();
        inp.to = inp.from;
        let r = build(&inp);
        assert!(r.headlines.iter().all(|h| h.text.starts_with("On 1 October 2026, ")), "{:?}", r.headlines);
    }

    #[test]
    fn headlines_name_a_part_of_a_month_once() {
        let mut inp = input();
        inp.to = date!(2026 - 10 - 09);
        let r = build(&inp);
        assert!(r.headlines.iter().all(|h| h.text.starts_with("From 1 to 9 October 2026, ")), "{:?}", r.headlines);
    }

    #[test]
    fn methodology_counts_agree_with_their_nouns() {
        let inp = input();
        let r = Report::build(&inp, &ReportOptions { k: 1, ..ReportOptions::for_input(&inp) });
        let notes = r.methodology.notes.join(" ");
        if r.methodology.k == 1 {
            assert!(notes.contains("no group of fewer than 1 device is shown"), "{notes}");
            assert!(!notes.contains("1 devices"), "{notes}");
        }
        let r = build(&inp);
        let notes = r.methodology.notes.join(" ");
        assert!(notes.contains("no group of fewer than 5 devices is shown"), "{notes}");
        assert!(notes.contains("at least 5 of its devices did"), "{notes}");
    }

    #[test]
    fn a_department_report_shows_only_that_department() {
        let inp = input();
        let r = Report::build(&inp, &ReportOptions { department: Some("legal".into()), ..ReportOptions::for_input(&inp) });
        assert_eq!(r.scope, "legal");
        let deps: BTreeSet<&str> = r.survey.services.iter().chain(&r.survey.categories).map(|l| l.department.as_str()).collect();
        assert_eq!(deps.into_iter().collect::<Vec<_>>(), ["legal"]);
        assert_eq!(r.departments.len(), 1);
        assert_eq!(r.exemptions.list.len(), 1);
        assert_eq!(r.top_unsanctioned[0].service, "whatsapp");
    }

    #[test]
    fn exemptions_expired_expiring_and_used_after_expiry() {
        let inp = input();
        let r = build(&inp);
        let e = &r.exemptions;
        assert_eq!(e.as_of, date!(2026 - 10 - 31));
        let states: Vec<(&str, ExemptionState, i64)> = e.list.iter().map(|l| (l.department.as_str(), l.state, l.days_left)).collect();
        assert_eq!(states, [("finance", ExemptionState::Expired, -21), ("legal", ExemptionState::Expiring, 15)]);
        assert_eq!(e.in_use.len(), 1);
        assert_eq!(e.in_use[0].usage.service, "google-drive");
        assert_eq!(e.in_use[0].reference.as_deref(), Some("EXC-1"));
        // wetransfer in finance was withheld by secondary suppression? No: services rows
        // (_all 5 = finance 5) show it, and its exemption ended on 2026-10-10.
        assert_eq!(e.after_expiry.len(), 1);
        assert_eq!((e.after_expiry[0].usage.department.as_str(), e.after_expiry[0].expires), ("finance", Some(date!(2026 - 10 - 10))));
        let r = Report::build(&inp, &ReportOptions { expiring_within_days: 10, ..ReportOptions::for_input(&inp) });
        assert_eq!(r.exemptions.list[1].state, ExemptionState::Valid);
    }

    #[test]
    fn top_unsanctioned_by_hosts_then_flows() {
        let r = build(&input());
        let top: Vec<(u32, &str, u64)> = r.top_unsanctioned.iter().map(|t| (t.rank, t.service.as_str(), t.departments)).collect();
        assert_eq!(top, [(1, "whatsapp", 2), (2, "wetransfer", 1)]);
    }

    #[test]
    fn uncatalogued_names_only_domains_of_k_devices_ranked_and_capped() {
        use crate::report::input::DomainRow;
        let mut i = input();
        let row = |domain: &str, devices: u64, flows: u64| DomainRow {
            domain: domain.into(),
            volume: Volume { flows, bytes_up: 10 * flows, bytes_down: 100 * flows },
            hosts: Hosts { count: devices, exact: true },
        };
        i.uncatalogued = vec![row("alpha.example", 5, 1), row("beta.example", 9, 2), row("gamma.example", 5, 7), row("tiny.example", 4, 40), row("lone.example", 1, 3)];
        for n in 0..TOP_UNCATALOGUED {
            i.uncatalogued.push(row(&format!("many{n}.example"), 5, 1));
        }
        let r = build(&i);
        assert_eq!(r.k, 5);
        let first: Vec<(u32, &str, u64, u64)> = r.uncatalogued.iter().take(3).map(|d| (d.rank, d.domain.as_str(), d.devices, d.bytes)).collect();
        assert_eq!(first, [(1, "beta.example", 9, 220), (2, "gamma.example", 5, 770), (3, "alpha.example", 5, 110)], "devices, then flows, then domain");
        assert_eq!(r.uncatalogued.len(), TOP_UNCATALOGUED);
        assert!(r.uncatalogued.iter().all(|d| d.devices >= 5 && d.domain != "tiny.example" && d.domain != "lone.example"));
        assert_eq!(r.uncatalogued_folded, UncataloguedFolded { beyond_top_domains: 3, beyond_top_flows: 3, below_k_domains: 2, below_k_flows: 43 });
        let json = crate::report::render::json(&r);
        assert!(!json.contains("tiny.example") && !json.contains("lone.example"), "below k: never named");
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back.uncatalogued, r.uncatalogued);
        for f in [crate::report::render::Format::Html, crate::report::render::Format::Markdown, crate::report::render::Format::Csv] {
            let text = crate::report::render::render(&r, f);
            assert!(text.contains("beta.example") && !text.contains("tiny.example"), "{f:?}");
        }
        let md = crate::report::render::render(&r, crate::report::render::Format::Markdown);
        assert!(md.contains("## Destinations outside the catalog") && md.contains("2 further domains were used by fewer than k devices (43 flows): not named."), "{md}");
        // A department's report lists none.
        let dept = Report::build(&i, &ReportOptions { department: Some("finance".into()), ..ReportOptions::for_input(&i) });
        assert!(dept.uncatalogued.is_empty() && dept.uncatalogued_folded == UncataloguedFolded::default());
        // Inputs of earlier builds have no list: still read.
        let mut v: serde_json::Value = serde_json::to_value(&i).unwrap();
        v.as_object_mut().unwrap().remove("uncatalogued");
        assert!(serde_json::from_value::<ReportInput>(v).unwrap().uncatalogued.is_empty());
    }

    #[test]
    fn period_labels_read_as_a_month_a_day_or_a_range() {
        use time::macros::date;
        assert_eq!(period(date!(2026 - 10 - 01), date!(2026 - 10 - 31)).label, "October 2026");
        assert_eq!(period(date!(2026 - 10 - 03), date!(2026 - 10 - 03)).label, "2026-10-03");
        let week = period(date!(2026 - 10 - 03), date!(2026 - 10 - 09));
        assert_eq!((week.label.as_str(), week.days), ("2026-10-03 to 2026-10-09", 7));
    }

    #[test]
    fn methodology_states_coverage() {
        let r = build(&input());
        let m = &r.methodology;
        assert_eq!(m.flows, 200); // 160 named + 40 unnamed (from the _all row)
        assert_eq!(m.named_share, Some(0.8));
        assert_eq!(m.ech_share, Some(0.06));
        assert_eq!(m.unnamed_share, Some(0.2));
        assert_eq!(m.unnamed_by_reason[0], FlowShare { name: "ech".into(), flows: 10, share: Some(0.05) });
        assert_eq!(m.capture_loss, Some(0.007));
        let v = serde_json::to_value(&r).unwrap();
        let l = &v["methodology"]["limitations"];
        assert_eq!(l["unnamed"]["figures"]["unnamed_share"], 0.2, "40 unnamed of 200 flows");
        assert_eq!(l["unnamed"]["figures"]["unnamed_flows"], 40);
        assert_eq!(l["unnamed"]["figures"]["ech_share"], 0.06, "12 ECH of 200 flows");
        assert_eq!(l["unnamed"]["figures"]["ech_flows"], 12);
        assert_eq!(l["sketch"]["figures"]["exact_below"], 64, "the store's sketch");
        assert_eq!(l["sketch"]["figures"]["relative_error"], 0.01);
        assert_eq!(l["device_definition"]["text"], DEVICE_DEFINITION_TEXT);
        assert!(l["unnamed"]["text"].as_str().unwrap().contains("20.0% of the flows (40)"), "{l}");
        assert!(l["unanswered"]["figures"]["unanswered_flows"].is_u64());
        let back: Report = serde_json::from_value(v).unwrap();
        assert_eq!(back.methodology.limitations, m.limitations, "a round trip keeps the figures");
        assert_eq!(m.sensors[0].uptime_share, 0.5);
        assert_eq!(m.catalog_digests, ["a", "b"], "sorted, deduplicated");
        assert!(m.host_error_text.contains("1.0%"));
        assert_eq!(r.period.label, "October 2026");
        assert_eq!(r.period.days, 31);
    }

    #[test]
    fn flows_attributed_by_as_name_the_asn_data_source() {
        let mut inp = input();
        assert!(!build(&inp).methodology.notes.iter().any(|n| n.contains("db-ip.com")), "no ASN attribution without ASN flows");
        inp.coverage.named_by_signal.insert("asn".into(), 7);
        let r = build(&inp);
        let note = r.methodology.notes.iter().find(|n| n.starts_with("Autonomous systems: 7 flows were")).expect("the ASN note");
        assert!(note.contains("routeviews.org") && note.contains("db-ip.com") && note.contains("CC BY 4.0"), "{note}");
    }

    #[test]
    fn unanswered_flows_are_stated_apart_from_the_flows_counted_as_use() {
        let mut inp = input();
        inp.departments[0].unanswered_flows.insert("telegram".into(), 150);
        inp.departments[0].unanswered_flows.insert("_unnamed".into(), 50);
        let r = build(&inp);
        let m = &r.methodology;
        assert_eq!(m.flows, 200, "not among the flows counted as use");
        assert_eq!((m.unanswered_flows, m.unanswered_share, m.unanswered_as_use, m.mostly_unanswered), (200, Some(0.5), false, true));
        assert!(m.notes.iter().any(|n| n.contains("200 flows were never answered by their server") && n.contains("not counted as use")), "{:#?}", m.notes);
        assert!(m.notes.iter().any(|n| n.starts_with("Most flows seen (50.0%)") && n.contains("count_unanswered = true")), "{:#?}", m.notes);
        // Counted as use by the sensors' configuration: among the flows, and said so.
        inp.coverage.unanswered_as_use = true;
        let m = build(&inp).methodology;
        assert_eq!((m.unanswered_share, m.mostly_unanswered), (Some(1.0), true));
        assert!(m.notes.iter().any(|n| n.contains("counted unanswered flows as use")), "{:#?}", m.notes);
        assert!(!m.notes.iter().any(|n| n.starts_with("Most flows seen")), "no advice to set what is set");
        // None: the definition is still stated.
        let m = build(&input()).methodology;
        assert_eq!((m.unanswered_flows, m.unanswered_share, m.mostly_unanswered), (0, Some(0.0), false));
        assert!(m.notes.iter().any(|n| n.contains("0 flows were never answered")));
    }

    #[test]
    fn a_department_with_only_unanswered_flows_is_not_withheld() {
        let mut inp = input();
        let mut spoofed = dept("spoofed", 0);
        spoofed.unanswered_flows.insert("telegram".into(), 5);
        inp.departments.push(spoofed);
        let r = build(&inp);
        assert_eq!(r.methodology.withheld.departments, 2, "tiny and wee, as before");
        assert!(r.departments.iter().all(|d| d.department != "spoofed"));
    }

    #[test]
    fn inputs_saved_before_unanswered_flows_still_load() {
        let mut v = serde_json::to_value(input()).unwrap();
        for d in v["departments"].as_array_mut().unwrap() {
            d.as_object_mut().unwrap().remove("unanswered_flows");
        }
        v["coverage"].as_object_mut().unwrap().remove("unanswered_as_use");
        let back: ReportInput = serde_json::from_value(v).unwrap();
        assert_eq!(back, input());
    }

    #[test]
    fn the_method_says_when_the_window_is_shorter_than_the_period() {
        let w = HostMethod::PrometheusWindow { window: "30d".into() };
        assert!(host_method_text(&w, 92).1.contains("92 days long") && host_method_text(&w, 92).1.contains("lower bound"));
        assert!(!host_method_text(&w, 30).1.contains("days long"));
        let s = HostMethod::Sketch { relative_error: 0.0081, exact_below: 64, key_epochs: 2 };
        assert!(host_method_text(&s, 31).1.contains("changed 1 time during"));
    }

    #[test]
    fn trend_weeks_are_clipped_to_the_period() {
        let r = build(&input());
        assert_eq!(r.trend.weeks[0].days_in_period, 4); // Thu 1 .. Sun 4 October
        assert_eq!(r.trend.weeks[0].active_hosts, Some(50));
        assert_eq!(r.trend.lines[0].share, 0.2);
    }

    #[test]
    fn building_is_deterministic_whatever_the_input_order() {
        let a = input();
        let mut b = input();
        b.services.reverse();
        b.categories.reverse();
        b.departments.reverse();
        b.exemptions.reverse();
        assert_eq!(serde_json::to_string(&build(&a)).unwrap(), serde_json::to_string(&build(&b)).unwrap());
    }

    #[test]
    fn hostile_and_degenerate_inputs_do_not_panic() {
        let mut inp = input();
        inp.to = Date::MIN;
        inp.from = Date::MAX;
        inp.exemptions[0].expires = Date::MAX;
        inp.coverage.sensors[0].uptime_secs = u64::MAX;
        inp.coverage.named_by_signal.insert("x".into(), u64::MAX);
        inp.departments[0].unnamed_flows.insert("y".into(), u64::MAX);
        inp.weeks[0].start = Date::MAX;
        let r = Report::build(&inp, &ReportOptions { expiring_within_days: u32::MAX, ..ReportOptions::for_input(&inp) });
        assert_eq!(r.period.days, 0);
        let empty = ReportInput { services: vec![], categories: vec![], channels: vec![], departments: vec![], weeks: vec![], ..input() };
        let r = build(&empty);
        assert!(r.headlines.is_empty() && r.survey.services.is_empty());
    }
}
