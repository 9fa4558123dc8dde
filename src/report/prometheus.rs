//! A [`ReportInput`] from a Prometheus server's HTTP API (`/api/v1/query`), so that an
//! organisation with many sensors reports across all of them from the system that already
//! holds their series.
//!
//! **Period.** From `from` 00:00 UTC to the end of `to` (24:00), or to now when that is
//! earlier; every query is an instant query at the period's end (`time=`) over a range of the
//! period's exact length in seconds.
//!
//! **Counters** (flows, bytes, unnamed flows, packets, capture counters), per series:
//! the last value in the period minus the last value at its start (looked up over
//! [`START_LOOKBACK`] before it), **or minus 0 when the series did not exist then**. A sensor
//! creates a group's series at its first flow (or when the group reaches k hosts), so its
//! first scrape can already hold a large value; `increase()` needs two samples and would give
//! 0 for it, which is why the alert rules use `X unless X offset 1h` too. A series that was
//! reset inside the period (a sensor restarted without its `--state-dir`) falls back to
//! Prometheus's `increase()`, which is extrapolated to the range's ends: approximate.
//!
//! **Hosts** are the sensors' `shadowtap_hosts` and `shadowtap_department_active_hosts`
//! gauges over the smallest window at least as long as the period ([`window_for`]), their last
//! value in the period. Sensors are added up (each host is assumed to be seen by one sensor);
//! channels of a service, and services of a category, are folded by their largest group, a
//! lower bound (a host is counted once per group, and the gauges cannot be unioned). Groups
//! with no flow in the period are left out: the window can reach back before it. Organisation
//! rows are sums over departments. Groups the sensors folded for privacy
//! (`service="_suppressed"`) keep their flows but have no hosts, so the report withholds them.
//!
//! **Weeks** are the same queries at each week's end with the 7-day window.
//!
//! **Coverage.** Sensors are the `instance`s with `shadowtap_build_info` in the period;
//! uptime is `avg_over_time(up[period])` times the time from the first scrape in the period to
//! its end (found by a subquery of [`FIRST_SCRAPE_STEPS`] steps, so to within a step: a
//! 1440th of the period, and at least a minute). Capture loss comes from the libpcap counters, named flows from
//! `shadowtap_flows_total` (which has no signal label: reported as `unrecorded`), unnamed ones
//! from `shadowtap_unnamed_flows_total` (ECH: `shadowtap_ech_flows_total`, every real-ECH flow),
//! flows never answered from `shadowtap_unanswered_flows_total` (and whether they counted as use
//! from `shadowtap_unanswered_counted_as_use`), digests
//! from `shadowtap_ruleset_info`, k from `shadowtap_privacy_min_group_size`, exemptions from
//! `shadowtap_exemption_expiry_timestamp_seconds` (without start or reference).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use time::{Date, OffsetDateTime};

use super::input::{
    Coverage, DepartmentRow, Exemption, HostMethod, Hosts, ReportInput, Sensor, UsageRow, Volume, Week, ALL_DEPARTMENTS,
};

/// Time allowed to connect (TCP and TLS).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Time allowed for one query, response included.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(120);

/// Largest response body read (a query's result); beyond it the query fails.
pub const MAX_RESPONSE_BYTES: u64 = 64 << 20;

/// How far before the period's start a counter's last value is looked up.
pub const START_LOOKBACK: &str = "1d";

/// Label value of the single "signal" of named flows (Prometheus does not record signals).
pub const UNRECORDED: &str = "unrecorded";

/// Window labels of the sensors' host gauges, with their length in days.
const WINDOWS: [(&str, i64); 2] = [("7d", 7), ("30d", 30)];

/// Points of the subquery that finds a sensor's first scrape in the period (its resolution).
const FIRST_SCRAPE_STEPS: i64 = 1440;

/// Where the server is and how to log in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Base URL (`http://prometheus:9090`, or with a path prefix), without credentials.
    pub url: String,
    /// Basic-auth user, if any.
    pub user: Option<String>,
    /// Basic-auth password (from the environment, never the command line).
    pub password: Option<String>,
}

/// Why the Prometheus source failed. Messages name the URL, never a credential.
#[derive(Debug, thiserror::Error)]
pub enum PromError {
    /// The URL is not usable.
    #[error("Prometheus URL {url:?}: {why}")]
    Url {
        /// The URL as given (it holds no credentials: those are refused).
        url: String,
        /// What is wrong with it.
        why: &'static str,
    },
    /// Connecting, sending or receiving failed (includes timeouts).
    #[error("{url}: {source}")]
    Transport {
        /// The query endpoint.
        url: String,
        /// The client's error.
        source: Box<ureq::Error>,
    },
    /// The server answered with an HTTP error.
    #[error("{url}: HTTP {status}: {message}")]
    Status {
        /// The query endpoint.
        url: String,
        /// HTTP status code.
        status: u16,
        /// The API's error message, or the start of the body.
        message: String,
    },
    /// The response was larger than [`MAX_RESPONSE_BYTES`].
    #[error("{url}: response larger than {limit} bytes")]
    TooLarge {
        /// The query endpoint.
        url: String,
        /// The limit.
        limit: u64,
    },
    /// The body is not a Prometheus API response.
    #[error("{url}: not a Prometheus API response: {why}")]
    Malformed {
        /// The query endpoint.
        url: String,
        /// What did not parse.
        why: String,
    },
    /// The API refused the query.
    #[error("{url}: query {query:?} failed ({kind}): {message}")]
    Query {
        /// The query endpoint.
        url: String,
        /// The PromQL.
        query: String,
        /// The API's `errorType`.
        kind: String,
        /// The API's `error`.
        message: String,
    },
    /// The period begins after now: there is nothing to query.
    #[error("the period {from} to {to} has not begun")]
    NotBegun {
        /// First day.
        from: Date,
        /// Last day.
        to: Date,
    },
}

/// One element of an instant vector.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// Labels, `__name__` included when the query keeps it.
    pub labels: BTreeMap<String, String>,
    /// The value.
    pub value: f64,
}

impl Sample {
    fn label(&self, name: &str) -> &str {
        self.labels.get(name).map(String::as_str).unwrap_or("")
    }
}

/// Instant queries: the HTTP API, or a fake in tests.
pub trait Api {
    /// Evaluates `promql` at Unix time `at`; the elements of the resulting instant vector.
    ///
    /// # Errors
    /// Transport, HTTP, API or parse errors, naming the URL.
    fn query(&self, promql: &str, at: i64) -> Result<Vec<Sample>, PromError>;
}

/// The Prometheus HTTP API over ureq.
pub struct Http {
    agent: ureq::Agent,
    endpoint: String,
    authorization: Option<String>,
}

/// Checks a base URL: http or https, no credentials, no query; returns it without the
/// trailing slash.
///
/// # Errors
/// [`PromError::Url`] saying what is wrong.
pub fn base_url(url: &str) -> Result<String, PromError> {
    let bad = |why| PromError::Url { url: if url.contains('@') { "(withheld: it holds credentials)".into() } else { url.to_string() }, why };
    let rest = url.strip_prefix("http://").or_else(|| url.strip_prefix("https://")).ok_or_else(|| bad("expected http:// or https://"))?;
    let authority = rest.split('/').next().unwrap_or("");
    if authority.contains('@') {
        return Err(bad("credentials in the URL are refused: use --prometheus-user and the password variable"));
    }
    if authority.is_empty() {
        return Err(bad("no host"));
    }
    if url.contains(['?', '#']) {
        return Err(bad("a query or fragment is not a base URL"));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// `host:port` of a base URL, for the report's source line (no scheme, path or credentials).
pub fn display_host(base: &str) -> String {
    let rest = base.split_once("://").map(|(_, r)| r).unwrap_or(base);
    rest.split('/').next().unwrap_or(rest).rsplit('@').next().unwrap_or("").to_string()
}

impl Http {
    /// A client for `server`, with the timeouts and size limit of this module.
    ///
    /// # Errors
    /// [`PromError::Url`] for an unusable URL.
    pub fn new(server: &Server) -> Result<Http, PromError> {
        let base = base_url(&server.url)?;
        let config = ureq::Agent::config_builder()
            .timeout_connect(Some(CONNECT_TIMEOUT))
            .timeout_global(Some(QUERY_TIMEOUT))
            .http_status_as_error(false)
            .build();
        let authorization = server.user.as_ref().map(|user| {
            let pair = format!("{user}:{}", server.password.as_deref().unwrap_or(""));
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(pair))
        });
        Ok(Http { agent: config.into(), endpoint: format!("{base}/api/v1/query"), authorization })
    }
}

impl Api for Http {
    fn query(&self, promql: &str, at: i64) -> Result<Vec<Sample>, PromError> {
        let mut req = self.agent.get(&self.endpoint).query("query", promql).query("time", at.to_string());
        if let Some(a) = &self.authorization {
            req = req.header("Authorization", a);
        }
        let transport = |e: ureq::Error| match e {
            ureq::Error::BodyExceedsLimit(_) => PromError::TooLarge { url: self.endpoint.clone(), limit: MAX_RESPONSE_BYTES },
            e => PromError::Transport { url: self.endpoint.clone(), source: Box::new(e) },
        };
        let mut resp = req.call().map_err(transport)?;
        let status = resp.status().as_u16();
        let body = resp.body_mut().with_config().limit(MAX_RESPONSE_BYTES).lossy_utf8(true).read_to_string().map_err(transport)?;
        parse_response(&self.endpoint, promql, status, &body)
    }
}

#[derive(Deserialize)]
struct Envelope {
    status: String,
    #[serde(default)]
    data: Option<Data>,
    #[serde(default, rename = "errorType")]
    error_type: Option<String>,
    #[serde(default)]
    error: Option<String>,
}

#[derive(Deserialize)]
struct Data {
    #[serde(rename = "resultType")]
    result_type: String,
    result: serde_json::Value,
}

#[derive(Deserialize)]
struct VectorElement {
    #[serde(default)]
    metric: BTreeMap<String, String>,
    value: (f64, String),
}

/// Parses an API response of a query that must return an instant vector.
///
/// # Errors
/// HTTP errors, API errors and malformed bodies, naming `url`.
pub fn parse_response(url: &str, promql: &str, status: u16, body: &str) -> Result<Vec<Sample>, PromError> {
    let envelope: Result<Envelope, _> = serde_json::from_str(body);
    if let Ok(Envelope { status: s, error_type, error, .. }) = &envelope {
        if s == "error" {
            return Err(PromError::Query {
                url: url.into(),
                query: promql.into(),
                kind: error_type.clone().unwrap_or_default(),
                message: error.clone().unwrap_or_default(),
            });
        }
    }
    if status != 200 {
        let message: String = body.chars().take(200).collect();
        return Err(PromError::Status { url: url.into(), status, message: message.trim().to_string() });
    }
    let malformed = |why: String| PromError::Malformed { url: url.into(), why };
    let envelope = envelope.map_err(|e| malformed(e.to_string()))?;
    let data = envelope.data.ok_or_else(|| malformed("no data".into()))?;
    if data.result_type != "vector" {
        return Err(malformed(format!("query {promql:?} gave a {}, not a vector", data.result_type)));
    }
    let elements: Vec<VectorElement> = serde_json::from_value(data.result).map_err(|e| malformed(e.to_string()))?;
    elements
        .into_iter()
        .map(|e| {
            let value = parse_value(&e.value.1).ok_or_else(|| malformed(format!("sample value {:?}", e.value.1)))?;
            Ok(Sample { labels: e.metric, value })
        })
        .collect()
}

/// A sample value as Prometheus writes it (`1`, `2.5e+06`, `NaN`, `+Inf`).
fn parse_value(text: &str) -> Option<f64> {
    match text {
        "NaN" => Some(f64::NAN),
        "+Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        t => t.parse().ok(),
    }
}

/// A count from a sample value: rounded, negative and non-finite values as 0.
fn count(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        v.round().min(u64::MAX as f64) as u64
    } else {
        0
    }
}

/// The smallest host window of the sensors at least `days` long (30 days at most), and
/// whether the period is longer than it.
pub fn window_for(days: i64) -> (&'static str, bool) {
    if days <= 1 {
        return ("24h", false);
    }
    for (label, len) in WINDOWS {
        if days <= len {
            return (label, false);
        }
    }
    (WINDOWS[WINDOWS.len() - 1].0, true)
}

fn unix(d: Date) -> i64 {
    d.midnight().assume_utc().unix_timestamp()
}

/// Labels of a series without its name: its identity across queries.
fn series_key(s: &Sample) -> BTreeMap<String, String> {
    let mut l = s.labels.clone();
    l.remove("__name__");
    l
}

/// A series' labels (see [`series_key`]) and a count for it.
type SeriesCount = (BTreeMap<String, String>, u64);

/// Each series' increase of counter `metric` (a selector) between `start` and `end`; see the
/// module documentation for series that appear or reset inside the range.
fn counter_deltas(api: &dyn Api, metric: &str, start: i64, end: i64) -> Result<Vec<SeriesCount>, PromError> {
    let range = (end - start).max(1);
    let last = api.query(&format!("last_over_time({metric}[{range}s])"), end)?;
    let first: BTreeMap<_, f64> =
        api.query(&format!("last_over_time({metric}[{START_LOOKBACK}])"), start)?.iter().map(|s| (series_key(s), s.value)).collect();
    let reset: BTreeSet<_> = api.query(&format!("resets({metric}[{range}s]) > 0"), end)?.iter().map(series_key).collect();
    let increase: BTreeMap<_, f64> = if reset.is_empty() {
        BTreeMap::new()
    } else {
        api.query(&format!("increase({metric}[{range}s])"), end)?.iter().map(|s| (series_key(s), s.value)).collect()
    };
    Ok(last
        .iter()
        .map(|s| {
            let key = series_key(s);
            let delta = if reset.contains(&key) {
                count(increase.get(&key).copied().unwrap_or(0.0))
            } else {
                count(s.value - first.get(&key).copied().unwrap_or(0.0))
            };
            (key, delta)
        })
        .collect())
}

/// A group's labels: department, service, channel, category, status.
type GroupKey = (String, String, String, String, String);

fn group_key(l: &BTreeMap<String, String>) -> GroupKey {
    let g = |n: &str| l.get(n).cloned().unwrap_or_default();
    (g("department"), g("service"), g("channel"), g("category"), g("status"))
}

/// What a range holds per group (sensors added up) and per department.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Snapshot {
    /// Per group: volume and hosts.
    pub groups: BTreeMap<GroupKey, (Volume, u64)>,
    /// Active hosts per department.
    pub departments: BTreeMap<String, u64>,
    /// Unnamed flows per department and reason.
    pub unnamed: BTreeMap<String, BTreeMap<String, u64>>,
    /// Flows never answered per department and service label.
    pub unanswered: BTreeMap<String, BTreeMap<String, u64>>,
}

fn snapshot(api: &dyn Api, start: i64, end: i64, window: &str, bytes_and_unnamed: bool) -> Result<Snapshot, PromError> {
    let range = (end - start).max(1);
    let mut snap = Snapshot::default();
    for (labels, n) in counter_deltas(api, "shadowtap_flows_total", start, end)? {
        let v = &mut snap.groups.entry(group_key(&labels)).or_default().0;
        v.flows = v.flows.saturating_add(n);
    }
    if bytes_and_unnamed {
        for (labels, n) in counter_deltas(api, "shadowtap_bytes_total", start, end)? {
            let v = &mut snap.groups.entry(group_key(&labels)).or_default().0;
            match labels.get("direction").map(String::as_str) {
                Some("up") => v.bytes_up = v.bytes_up.saturating_add(n),
                Some("down") => v.bytes_down = v.bytes_down.saturating_add(n),
                _ => {}
            }
        }
        for (labels, n) in counter_deltas(api, "shadowtap_unnamed_flows_total", start, end)? {
            let g = |k: &str| labels.get(k).cloned().unwrap_or_default();
            let e = snap.unnamed.entry(g("department")).or_default().entry(g("reason")).or_default();
            *e = e.saturating_add(n);
        }
        for (labels, n) in counter_deltas(api, "shadowtap_unanswered_flows_total", start, end)? {
            let g = |k: &str| labels.get(k).cloned().unwrap_or_default();
            if n > 0 {
                let e = snap.unanswered.entry(g("department")).or_default().entry(g("service")).or_default();
                *e = e.saturating_add(n);
            }
        }
    }
    // Groups without a flow in the range did not use the service in it.
    snap.groups.retain(|_, (v, _)| v.flows > 0);
    for s in api.query(&format!("last_over_time(shadowtap_hosts{{window=\"{window}\"}}[{range}s])"), end)? {
        if let Some((_, hosts)) = snap.groups.get_mut(&group_key(&s.labels)) {
            *hosts = hosts.saturating_add(count(s.value));
        }
    }
    for s in api.query(&format!("last_over_time(shadowtap_department_active_hosts{{window=\"{window}\"}}[{range}s])"), end)? {
        let e = snap.departments.entry(s.label("department").to_string()).or_default();
        *e = e.saturating_add(count(s.value));
    }
    Ok(snap)
}

/// Folds a snapshot's groups into the report's tables: channels (as they are), services
/// (channels folded by max), categories (services folded by max), each with organisation rows
/// (sums over departments).
pub fn fold(snap: &Snapshot) -> (Vec<UsageRow>, Vec<UsageRow>, Vec<UsageRow>) {
    let row = |(d, s, c, cat, st): &GroupKey, v: Volume, hosts: u64, exact: bool| UsageRow {
        department: d.clone(),
        service: s.clone(),
        channel: c.clone(),
        category: cat.clone(),
        status: st.clone(),
        volume: v,
        hosts: Hosts { count: hosts, exact },
    };
    let add = |a: &mut Volume, b: &Volume| {
        a.flows = a.flows.saturating_add(b.flows);
        a.bytes_up = a.bytes_up.saturating_add(b.bytes_up);
        a.bytes_down = a.bytes_down.saturating_add(b.bytes_down);
    };
    // (volume, hosts folded by max, groups folded)
    type Acc = BTreeMap<GroupKey, (Volume, u64, u32)>;
    let mut channels = Acc::new();
    let mut services = Acc::new();
    let mut categories = Acc::new();
    for ((d, s, c, cat, st), (v, hosts)) in &snap.groups {
        let keys = [
            (&mut channels, (d.clone(), s.clone(), c.clone(), cat.clone(), st.clone())),
            (&mut services, (d.clone(), s.clone(), String::new(), cat.clone(), st.clone())),
            (&mut categories, (d.clone(), String::new(), String::new(), cat.clone(), st.clone())),
        ];
        for (acc, key) in keys {
            let e = acc.entry(key).or_default();
            add(&mut e.0, v);
            e.1 = e.1.max(*hosts);
            e.2 += 1;
        }
    }
    let finish = |acc: Acc| -> Vec<UsageRow> {
        let mut all: Acc = BTreeMap::new();
        for ((d, s, c, cat, st), (v, hosts, n)) in &acc {
            if d == ALL_DEPARTMENTS {
                continue;
            }
            let e = all.entry((ALL_DEPARTMENTS.to_string(), s.clone(), c.clone(), cat.clone(), st.clone())).or_default();
            add(&mut e.0, v);
            e.1 = e.1.saturating_add(*hosts);
            e.2 += n;
        }
        let mut rows: Vec<UsageRow> = acc.iter().chain(&all).map(|(k, (v, hosts, n))| row(k, *v, *hosts, *n == 1)).collect();
        rows.sort_by(|a, b| {
            (&a.department, &a.service, &a.channel, &a.category, &a.status).cmp(&(&b.department, &b.service, &b.channel, &b.category, &b.status))
        });
        rows
    };
    (finish(channels), finish(services), finish(categories))
}

fn department_rows(snap: &Snapshot) -> Vec<DepartmentRow> {
    let names: BTreeSet<&String> =
        snap.departments.keys().chain(snap.unnamed.keys()).chain(snap.unanswered.keys()).filter(|d| *d != ALL_DEPARTMENTS).collect();
    let mut rows: Vec<DepartmentRow> = names
        .into_iter()
        .map(|d| DepartmentRow {
            department: d.clone(),
            active_hosts: Hosts { count: snap.departments.get(d).copied().unwrap_or(0), exact: true },
            unnamed_flows: snap.unnamed.get(d).cloned().unwrap_or_default(),
            unanswered_flows: snap.unanswered.get(d).cloned().unwrap_or_default(),
        })
        .collect();
    let mut all = DepartmentRow {
        department: ALL_DEPARTMENTS.into(),
        active_hosts: Hosts { count: 0, exact: true },
        unnamed_flows: BTreeMap::new(),
        unanswered_flows: BTreeMap::new(),
    };
    for r in &rows {
        all.active_hosts.count = all.active_hosts.count.saturating_add(r.active_hosts.count);
        for (sum, part) in [(&mut all.unnamed_flows, &r.unnamed_flows), (&mut all.unanswered_flows, &r.unanswered_flows)] {
            for (label, n) in part {
                let e = sum.entry(label.clone()).or_default();
                *e = e.saturating_add(*n);
            }
        }
    }
    rows.push(all);
    rows.sort_by(|a, b| a.department.cmp(&b.department));
    rows
}

fn sum(v: &[(BTreeMap<String, String>, u64)]) -> u64 {
    v.iter().map(|(_, n)| *n).fold(0, u64::saturating_add)
}

fn coverage(api: &dyn Api, start: i64, end: i64, snap: &Snapshot) -> Result<Coverage, PromError> {
    let range = (end - start).max(1);
    let mut c = Coverage::default();
    let instances: BTreeSet<String> =
        api.query(&format!("last_over_time(shadowtap_build_info[{range}s])"), end)?.iter().map(|s| s.label("instance").to_string()).collect();
    let avg: BTreeMap<String, f64> = api
        .query(&format!("avg_over_time(up[{range}s])"), end)?
        .iter()
        .filter(|s| instances.contains(s.label("instance")))
        .map(|s| (s.label("instance").to_string(), s.value))
        .collect();
    let step = (range / FIRST_SCRAPE_STEPS).max(60);
    let first: BTreeMap<String, f64> = api
        .query(&format!("min_over_time(timestamp(up)[{range}s:{step}s])"), end)?
        .iter()
        .map(|s| (s.label("instance").to_string(), s.value))
        .collect();
    for name in &instances {
        // No step saw a scrape: every scrape came after the last step.
        let seen_from = first.get(name).map(|t| *t as i64).unwrap_or(end - step).clamp(start, end);
        let up = avg.get(name).copied().filter(|v| v.is_finite()).unwrap_or(0.0).clamp(0.0, 1.0);
        c.sensors.push(Sensor { name: name.clone(), uptime_secs: count(up * (end - seen_from) as f64) });
    }
    c.packets = sum(&counter_deltas(api, "shadowtap_packets_total", start, end)?);
    c.capture_received = sum(&counter_deltas(api, "shadowtap_capture_received_packets_total", start, end)?);
    c.capture_dropped = sum(&counter_deltas(api, "shadowtap_capture_dropped_packets_total", start, end)?);
    let named = snap.groups.values().map(|(v, _)| v.flows).fold(0, u64::saturating_add);
    c.named_by_signal.insert(UNRECORDED.into(), named);
    // Every real-ECH flow, named or not (sensors before shadowtap_ech_flows_total exported only
    // those ECH left unnamed: the larger of the two).
    let ech_unnamed = snap.unnamed.values().filter_map(|m| m.get("ech")).fold(0u64, |a, n| a.saturating_add(*n));
    c.ech_flows = sum(&counter_deltas(api, "shadowtap_ech_flows_total", start, end)?).max(ech_unnamed);
    let digests = api.query(&format!("count by (digest, config_digest) (count_over_time(shadowtap_ruleset_info[{range}s]))"), end)?;
    c.catalog_digests = digests.iter().map(|s| s.label("digest").to_string()).filter(|d| !d.is_empty()).collect::<BTreeSet<_>>().into_iter().collect();
    c.config_digests = digests.iter().map(|s| s.label("config_digest").to_string()).filter(|d| !d.is_empty()).collect::<BTreeSet<_>>().into_iter().collect();
    c.min_group_size = api
        .query(&format!("max(max_over_time(shadowtap_privacy_min_group_size[{range}s]))"), end)?
        .first()
        .map(|s| count(s.value))
        .unwrap_or(0);
    c.unanswered_as_use = api
        .query(&format!("max(max_over_time(shadowtap_unanswered_counted_as_use[{range}s]))"), end)?
        .first()
        .is_some_and(|s| s.value >= 1.0);
    Ok(c)
}

fn exemptions(api: &dyn Api, start: i64, end: i64) -> Result<Vec<Exemption>, PromError> {
    let range = (end - start).max(1);
    let mut out: Vec<Exemption> = Vec::new();
    for s in api.query(&format!("max by (department, service) (last_over_time(shadowtap_exemption_expiry_timestamp_seconds[{range}s]))"), end)? {
        // The gauge holds the end of validity (the next midnight): the last day is the one before.
        if !s.value.is_finite() {
            continue;
        }
        let Ok(t) = OffsetDateTime::from_unix_timestamp((s.value as i64).saturating_sub(1)) else { continue };
        out.push(Exemption { department: s.label("department").into(), service: s.label("service").into(), start: None, expires: t.date(), reference: None });
    }
    out.sort_by(|a, b| (&a.department, &a.service).cmp(&(&b.department, &b.service)));
    Ok(out)
}

/// Reads the facts of `from`..`to` (whole UTC days) from the server behind `api`, `now`
/// being the current Unix time (the period ends then if `to` is today or later).
///
/// # Errors
/// [`PromError::NotBegun`] when `from` is after now; any query's error.
pub fn load_with(api: &dyn Api, source: &str, from: Date, to: Date, now: i64) -> Result<ReportInput, PromError> {
    let start = unix(from);
    let end = to.next_day().map(unix).unwrap_or(i64::MAX).min(now);
    if end <= start {
        return Err(PromError::NotBegun { from, to });
    }
    let days = (to - from).whole_days() + 1;
    let (window, _) = window_for(days);
    let snap = snapshot(api, start, end, window, true)?;
    let (channels, services, categories) = fold(&snap);
    let mut weeks = Vec::new();
    let mut monday = from.saturating_sub(time::Duration::days(from.weekday().number_days_from_monday() as i64));
    while monday <= to {
        let (ws, we) = (unix(monday.max(from)), unix(monday.saturating_add(time::Duration::days(7)).min(to.next_day().unwrap_or(to))).min(end));
        if we > ws {
            let w = snapshot(api, ws, we, "7d", false)?;
            weeks.push(Week { start: monday, categories: fold(&w).2, departments: department_rows(&w) });
        }
        monday = monday.saturating_add(time::Duration::days(7));
        if monday == Date::MAX {
            break;
        }
    }
    Ok(ReportInput {
        from,
        to,
        source: source.to_string(),
        host_method: HostMethod::PrometheusWindow { window: window.to_string() },
        services,
        channels,
        categories,
        departments: department_rows(&snap),
        weeks,
        exemptions: exemptions(api, start, end)?,
        coverage: coverage(api, start, end, &snap)?,
        damaged_captures: Vec::new(),
        departments_configured: Vec::new(),
        department_names: Default::default(),
        service_catalog: Vec::new(),
        risk_weights: None,
        // The sensors export only the top list of the moment, not counts over a period: the
        // report's methodology says so.
        uncatalogued: Vec::new(),
    })
}

/// [`load_with`] over HTTP.
///
/// # Errors
/// As [`load_with`], and [`PromError::Url`] for an unusable URL.
pub fn load(server: &Server, from: Date, to: Date, now: i64) -> Result<ReportInput, PromError> {
    let http = Http::new(server)?;
    let source = format!("Prometheus at {}", display_host(&base_url(&server.url)?));
    load_with(&http, &source, from, to, now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use time::macros::date;

    fn sample(labels: &[(&str, &str)], value: f64) -> Sample {
        Sample { labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(), value }
    }

    #[test]
    fn urls_with_credentials_are_refused_and_never_echoed() {
        assert_eq!(base_url("http://prom:9090/").unwrap(), "http://prom:9090");
        assert_eq!(base_url("https://prom.example/prefix").unwrap(), "https://prom.example/prefix");
        let e = base_url("http://user:secret@prom:9090").unwrap_err().to_string();
        assert!(!e.contains("secret") && e.contains("credentials"), "{e}");
        assert!(base_url("prom:9090").is_err());
        assert!(base_url("http:///x").is_err());
        assert!(base_url("http://prom/?x=1").is_err());
        assert_eq!(display_host("https://prom.example:9090/prefix"), "prom.example:9090");
    }

    #[test]
    fn the_window_is_the_smallest_that_covers_the_period() {
        assert_eq!(window_for(1), ("24h", false));
        assert_eq!(window_for(2), ("7d", false));
        assert_eq!(window_for(7), ("7d", false));
        assert_eq!(window_for(8), ("30d", false));
        assert_eq!(window_for(31), ("30d", true));
    }

    #[test]
    fn responses_parse_and_errors_name_the_url() {
        let ok = r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{"instance":"a"},"value":[1.5,"42"]},{"metric":{},"value":[1,"NaN"]}]}}"#;
        let v = parse_response("U", "q", 200, ok).unwrap();
        assert_eq!(v[0], sample(&[("instance", "a")], 42.0));
        assert!(v[1].value.is_nan());
        let err = r#"{"status":"error","errorType":"bad_data","error":"parse error"}"#;
        let e = parse_response("http://p/api/v1/query", "x[", 400, err).unwrap_err().to_string();
        assert!(e.contains("http://p/api/v1/query") && e.contains("bad_data") && e.contains("parse error"), "{e}");
        let e = parse_response("U", "q", 502, "<html>bad gateway</html>").unwrap_err();
        assert!(matches!(e, PromError::Status { status: 502, .. }));
        let e = parse_response("U", "q", 200, r#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#).unwrap_err();
        assert!(e.to_string().contains("matrix"));
        for junk in ["", "{", "null", "[]", r#"{"status":"success"}"#, r#"{"status":"success","data":{"resultType":"vector","result":[{"value":[1,"x"]}]}}"#] {
            assert!(parse_response("U", "q", 200, junk).is_err(), "{junk:?}");
        }
    }

    #[test]
    fn counts_from_sample_values() {
        assert_eq!(count(2.6), 3);
        assert_eq!(count(-1.0), 0);
        assert_eq!(count(f64::NAN), 0);
        assert_eq!(count(f64::INFINITY), 0);
        assert_eq!(count(1e30), u64::MAX);
    }

    /// Answers by the query's function and metric, at any time.
    struct Fake {
        answers: Vec<(&'static str, Vec<Sample>)>,
        asked: RefCell<Vec<(String, i64)>>,
    }

    impl Api for Fake {
        fn query(&self, promql: &str, at: i64) -> Result<Vec<Sample>, PromError> {
            self.asked.borrow_mut().push((promql.to_string(), at));
            Ok(self.answers.iter().find(|(prefix, _)| promql.starts_with(prefix)).map(|(_, v)| v.clone()).unwrap_or_default())
        }
    }

    #[test]
    fn counters_count_from_zero_when_they_appear_and_from_the_start_value_otherwise() {
        let a = [("instance", "s1"), ("department", "finance"), ("service", "whatsapp"), ("channel", "chat"), ("category", "messaging"), ("status", "unsanctioned")];
        let b = [("instance", "s1"), ("department", "finance"), ("service", "whatsapp"), ("channel", "calls"), ("category", "messaging"), ("status", "unsanctioned")];
        let fake = Fake {
            answers: vec![
                ("last_over_time(shadowtap_flows_total[1d])", vec![sample(&a, 100.0)]),
                ("last_over_time(shadowtap_flows_total[", vec![sample(&a, 130.0), sample(&b, 7.0)]),
            ],
            asked: RefCell::new(vec![]),
        };
        let d = counter_deltas(&fake, "shadowtap_flows_total", 1000, 5000).unwrap();
        let got: Vec<u64> = d.iter().map(|(_, n)| *n).collect();
        assert_eq!(got, [30, 7], "130 - 100, and 7 - nothing");
        let asked = fake.asked.borrow();
        assert_eq!(asked[0], ("last_over_time(shadowtap_flows_total[4000s])".to_string(), 5000));
        assert_eq!(asked[1], ("last_over_time(shadowtap_flows_total[1d])".to_string(), 1000));
    }

    #[test]
    fn groups_fold_channels_and_services_by_max_and_departments_by_sum() {
        let mut snap = Snapshot::default();
        let key = |d: &str, s: &str, c: &str, cat: &str| (d.to_string(), s.to_string(), c.to_string(), cat.to_string(), "unsanctioned".to_string());
        let vol = |f| Volume { flows: f, bytes_up: f * 10, bytes_down: f * 100 };
        snap.groups.insert(key("finance", "whatsapp", "chat", "messaging"), (vol(10), 8));
        snap.groups.insert(key("finance", "whatsapp", "calls", "messaging"), (vol(5), 6));
        snap.groups.insert(key("finance", "signal", "chat", "messaging"), (vol(2), 9));
        snap.groups.insert(key("legal", "whatsapp", "chat", "messaging"), (vol(1), 5));
        let (channels, services, categories) = fold(&snap);
        assert_eq!(channels.len(), 4 + 3);
        let find = |rows: &[UsageRow], d: &str, s: &str| rows.iter().find(|r| r.department == d && r.service == s).cloned().unwrap();
        let wa = find(&services, "finance", "whatsapp");
        assert_eq!((wa.volume.flows, wa.hosts.count, wa.hosts.exact), (15, 8, false), "max over channels, a lower bound");
        let cat = find(&categories, "finance", "");
        assert_eq!((cat.volume.flows, cat.hosts.count), (17, 9));
        let all = find(&services, "_all", "whatsapp");
        assert_eq!((all.volume.flows, all.hosts.count), (16, 13), "departments add up");
        assert_eq!(find(&categories, "_all", "").hosts.count, 14);
    }

    #[test]
    fn a_period_in_the_future_is_refused_and_one_ending_today_stops_now() {
        let fake = Fake { answers: vec![], asked: RefCell::new(vec![]) };
        let now = unix(date!(2026 - 10 - 15)) + 3600;
        assert!(matches!(load_with(&fake, "t", date!(2026 - 10 - 16), date!(2026 - 10 - 20), now), Err(PromError::NotBegun { .. })));
        let input = load_with(&fake, "t", date!(2026 - 10 - 01), date!(2026 - 10 - 31), now).unwrap();
        assert!(fake.asked.borrow().iter().all(|(_, at)| *at <= now), "no query after now");
        assert_eq!(input.host_method, HostMethod::PrometheusWindow { window: "30d".into() });
        let starts: Vec<Date> = input.weeks.iter().map(|w| w.start).collect();
        assert_eq!(starts, [date!(2026 - 09 - 28), date!(2026 - 10 - 05), date!(2026 - 10 - 12)], "weeks up to now only");
        assert_eq!(input.departments.len(), 1, "the organisation row, even empty");
    }

    #[test]
    fn unanswered_flows_are_read_per_department_and_summed_for_the_organisation() {
        let fin = [("instance", "s1"), ("department", "finance"), ("service", "telegram")];
        let legal = [("instance", "s1"), ("department", "legal"), ("service", "_suppressed")];
        let fake = Fake {
            answers: vec![
                ("last_over_time(shadowtap_unanswered_flows_total[1d])", vec![sample(&fin, 2.0)]),
                ("last_over_time(shadowtap_unanswered_flows_total[", vec![sample(&fin, 7.0), sample(&legal, 3.0)]),
                ("max(max_over_time(shadowtap_unanswered_counted_as_use[", vec![sample(&[], 0.0)]),
            ],
            asked: RefCell::new(vec![]),
        };
        let input = load_with(&fake, "t", date!(2026 - 10 - 01), date!(2026 - 10 - 31), unix(date!(2026 - 12 - 01))).unwrap();
        let row = |d: &str| input.departments.iter().find(|r| r.department == d).unwrap().unanswered_flows.clone();
        assert_eq!(row("finance"), BTreeMap::from([("telegram".to_string(), 5)]), "7 - 2");
        assert_eq!(row(ALL_DEPARTMENTS), BTreeMap::from([("_suppressed".to_string(), 3), ("telegram".to_string(), 5)]));
        assert_eq!(row("finance").len(), 1);
        assert!(!input.coverage.unanswered_as_use);
    }
}
