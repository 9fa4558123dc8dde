//! Security events for a SIEM: JSON lines with ECS-style field names.
//!
//! [`Events`] is sans-IO like the rest of the pipeline: the daemon hands it finished, attributed
//! flows ([`Events::on_flow`]) and a periodic tick ([`Events::on_tick`]), each with its packet
//! time, and gets back the [`Event`]s to emit; [`write()`] turns one into one JSON line. Replaying a
//! capture twice gives the same events.
//!
//! # What counts
//! Only use reaches [`Events::on_flow`]: the daemon does not hand it a flow its server never
//! answered (`FlowRecord::answered`: a spoofed or blocked connection attempt into a service's
//! published range), unless the configuration counts unanswered flows as use
//! (`[engine] count_unanswered`). So no "first use" and no upload volume comes from packets
//! anyone could forge without an answer.
//!
//! # Privacy
//! The API takes no host address, host name, SNI or pseudonym, so no event can carry one, whatever
//! `reveal_hosts` says. What an event names is a department, a service, a category, a status, and
//! counts and byte totals, under the same minimum group size k as the metrics:
//! - "first use" fires only for a (department, service, channel, status) group the aggregator has
//!   revealed (at least k distinct hosts), and shows its 24 h host count only when that count is at
//!   least k (the aggregator withholds smaller window counts too);
//! - the upload volume of a department sums the bytes of revealed groups only: bytes of a group
//!   with fewer than k hosts would single those hosts out, so they never count towards an alert.
//!   The sum is therefore what the metrics already show, per category, over a sliding 24 h.
//!
//! # Memory
//! Every map is bounded by a named constant ([`MAX_FIRST_USE_KEYS`], [`MAX_UPLOAD_PAIRS`],
//! [`MAX_EXEMPTIONS`]) whose doc states its cost; about 3 MiB in all when every bound is reached.
//! Hitting a bound is counted in [`Stats`], never logged.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;

use serde::Serialize;

use crate::classify::Status;
use crate::intern::Sym;
use crate::time::Timestamp;

/// Seconds in a bucket of "first use" and upload deduplication, and in the upload window.
pub const DAY_SECS: i64 = 86_400;

/// Seconds in one slot of the upload ring.
pub const HOUR_SECS: i64 = 3_600;

/// Hourly slots of the upload ring: the sliding window is 24 h.
pub const UPLOAD_HOURS: usize = 24;

/// Categories whose upload volume is watched (data leaving the organisation).
pub const UPLOAD_CATEGORIES: [&str; 4] = ["file-sharing", "generative-ai", "translation", "paste"];

/// `event.dataset` of every event.
pub const DATASET: &str = "shadowtap.events";

/// (department, service) pairs remembered for "first use" deduplication at most: about 100 bytes
/// each with their strings, so 1.6 MiB at the bound. Departments and services come from the
/// configuration and the catalog, so the bound is reached only by a very large deployment; entries
/// of past buckets are dropped first, and a pair that still finds no room does not fire (counted in
/// [`Stats::first_use_full`]).
pub const MAX_FIRST_USE_KEYS: usize = 16_384;

/// (department, category) upload rings at most: 24 hourly slots of bytes and flows (384 bytes)
/// plus the key, about 450 bytes each, so 0.5 MiB at the bound. Rings whose whole window has
/// passed are dropped first; a pair that still finds no room is not summed (counted in
/// [`Stats::upload_full`]).
pub const MAX_UPLOAD_PAIRS: usize = 1_024;

/// Exemptions whose warnings are remembered at most: about 120 bytes each, so 0.5 MiB at the
/// bound. Exemptions no longer in the configuration are forgotten at each tick; one beyond the
/// bound is not warned about (counted in [`Stats::exemptions_full`]).
pub const MAX_EXEMPTIONS: usize = 4_096;

const MIB: u64 = 1024 * 1024;

/// Event thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventConfig {
    /// Bytes client → server per department and category over a sliding 24 h above which an
    /// upload-volume event fires (categories [`UPLOAD_CATEGORIES`]). Default 100 MiB.
    pub upload_threshold_bytes: u64,
    /// Share of packets dropped by the capture between two ticks above which a capture-loss event
    /// fires. Default 0.01.
    pub capture_loss_ratio: f64,
    /// Days before an exemption's end at which it is announced as expiring. Default 14.
    pub exemption_warn_days: u64,
    /// Minimum group size k of the privacy settings (`privacy.min_group_size`): host counts below
    /// it are not shown. Default 5, as [`crate::aggregate::Privacy`].
    pub min_group_size: usize,
}

impl Default for EventConfig {
    fn default() -> Self {
        EventConfig {
            upload_threshold_bytes: 100 * MIB,
            capture_loss_ratio: 0.01,
            exemption_warn_days: 14,
            min_group_size: crate::aggregate::Privacy::default().min_group_size,
        }
    }
}

/// What happened: `event.action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A department used an unsanctioned service for the first time in a UTC day.
    FirstUse,
    /// A department's uploads to a watched category crossed the threshold over 24 h.
    UploadVolume,
    /// An exemption ends within the warning period.
    ExemptionExpiring,
    /// An exemption has ended.
    ExemptionExpired,
    /// The capture dropped more packets than the threshold allows.
    CaptureLoss,
}

impl Kind {
    /// Every kind, in declaration order.
    pub const ALL: [Kind; 5] = [Kind::FirstUse, Kind::UploadVolume, Kind::ExemptionExpiring, Kind::ExemptionExpired, Kind::CaptureLoss];

    /// Label used as `event.action` and in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::FirstUse => "first-use",
            Kind::UploadVolume => "upload-volume",
            Kind::ExemptionExpiring => "exemption-expiring",
            Kind::ExemptionExpired => "exemption-expired",
            Kind::CaptureLoss => "capture-loss",
        }
    }

    /// `event.kind`, `event.category`, `event.type` and `event.severity` (ECS) of this kind.
    fn ecs(self) -> (&'static str, &'static [&'static str], &'static [&'static str], u8) {
        match self {
            Kind::FirstUse => ("alert", &["network"], &["info"], 3),
            Kind::UploadVolume => ("alert", &["network"], &["info"], 5),
            Kind::ExemptionExpiring => ("event", &["configuration"], &["info"], 2),
            Kind::ExemptionExpired => ("event", &["configuration"], &["change"], 3),
            Kind::CaptureLoss => ("event", &["network"], &["error"], 4),
        }
    }
}

impl Serialize for Kind {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The `event` object (ECS).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Meta {
    /// `alert` for policy findings, `event` for configuration and sensor health.
    pub kind: &'static str,
    /// ECS categories.
    pub category: &'static [&'static str],
    /// ECS types.
    #[serde(rename = "type")]
    pub types: &'static [&'static str],
    /// What happened.
    pub action: Kind,
    /// Always [`DATASET`].
    pub dataset: &'static str,
    /// Higher is more severe (2 to 5).
    pub severity: u8,
}

impl Meta {
    fn of(kind: Kind) -> Meta {
        let (k, category, types, severity) = kind.ecs();
        Meta { kind: k, category, types, action: kind, dataset: DATASET, severity }
    }
}

/// The `organization` object: the department concerned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Organization {
    /// Department id.
    pub department: String,
}

/// The `service` object: the catalog service concerned (fields absent when not known).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Service {
    /// Catalog service id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Catalog category.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Channel id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Policy status label.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<&'static str>,
}

/// `shadowtap.exemption`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExemptionFacts {
    /// Reference of the exemption (ticket, approval).
    pub reference: String,
    /// End of its last day.
    pub expires: Timestamp,
}

/// `shadowtap.capture`: libpcap totals of the interval since the previous tick.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CaptureFacts {
    /// Packets received by the filter in the interval (on Linux this includes the dropped ones).
    pub received: u64,
    /// Packets dropped in the interval.
    pub dropped: u64,
    /// dropped / received, in [0, 1].
    pub ratio: f64,
}

/// The `shadowtap` object: the figures behind an event (fields absent when not relevant).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Facts {
    /// Window the figures cover (`24h`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window: Option<&'static str>,
    /// Start of the UTC day of a "first use".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub window_start: Option<Timestamp>,
    /// Distinct hosts of the group over 24 h (only when at least k).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hosts: Option<u64>,
    /// Flows summed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flows: Option<u64>,
    /// Bytes client → server summed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_up: Option<u64>,
    /// Threshold crossed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold_bytes: Option<u64>,
    /// The exemption concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exemption: Option<ExemptionFacts>,
    /// Capture statistics.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture: Option<CaptureFacts>,
}

/// One security event, serialized as one JSON object (see [`write()`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// Packet time at which it fired.
    #[serde(rename = "@timestamp")]
    pub timestamp: Timestamp,
    /// What happened.
    pub event: Meta,
    /// Department concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<Organization>,
    /// Service concerned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<Service>,
    /// The host whose flow raised the event: only set by the daemon while `privacy.reveal_hosts`
    /// is on (an investigation), never otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// Figures.
    pub shadowtap: Facts,
    /// One human-readable sentence.
    pub message: String,
}

/// ECS `source`: the client of the flow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Source {
    /// Client address.
    pub ip: String,
}

impl Event {
    fn new(at: Timestamp, kind: Kind, message: String) -> Event {
        Event { timestamp: at, event: Meta::of(kind), organization: None, service: None, source: None, shadowtap: Facts::default(), message }
    }

    /// What happened.
    pub fn kind(&self) -> Kind {
        self.event.action
    }
}

/// An exemption of the configuration, as [`Events::on_tick`] checks it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ExemptionInfo {
    /// Department id.
    pub department: String,
    /// Service id.
    pub service: String,
    /// Reference of the exemption (ticket, approval).
    pub reference: String,
    /// End of the expiry day: the first instant the exemption no longer covers.
    pub expires_end: Timestamp,
}

/// Counters of the event stage, read by the exporter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Events returned, by [`Kind::as_str`].
    pub emitted: BTreeMap<&'static str, u64>,
    /// "First use" checks skipped because [`MAX_FIRST_USE_KEYS`] was reached.
    pub first_use_full: u64,
    /// Flows not summed because [`MAX_UPLOAD_PAIRS`] was reached.
    pub upload_full: u64,
    /// Flows not summed because they are older than the 24 h window of their ring.
    pub upload_late: u64,
    /// Exemptions not checked because [`MAX_EXEMPTIONS`] was reached.
    pub exemptions_full: u64,
}

/// Bytes and flows per hour over the last 24 h of one (department, category).
#[derive(Debug, Clone)]
struct Ring {
    /// Absolute hour (packet time / 3600) of the newest slot.
    head: i64,
    bytes: [u64; UPLOAD_HOURS],
    flows: [u64; UPLOAD_HOURS],
    /// Day bucket of the last event fired.
    fired: Option<i64>,
}

impl Ring {
    fn new(hour: i64) -> Ring {
        Ring { head: hour, bytes: [0; UPLOAD_HOURS], flows: [0; UPLOAD_HOURS], fired: None }
    }

    fn slot(hour: i64) -> usize {
        hour.rem_euclid(UPLOAD_HOURS as i64) as usize
    }

    /// Moves the window so that it ends at `hour`, clearing the slots that fall out.
    fn advance(&mut self, hour: i64) {
        if hour <= self.head {
            return;
        }
        let steps = (hour - self.head).min(UPLOAD_HOURS as i64);
        for h in hour - steps + 1..=hour {
            self.bytes[Ring::slot(h)] = 0;
            self.flows[Ring::slot(h)] = 0;
        }
        self.head = hour;
    }

    /// The window covers `hour`.
    fn covers(&self, hour: i64) -> bool {
        hour <= self.head && hour > self.head - UPLOAD_HOURS as i64
    }

    fn sums(&self) -> (u64, u64) {
        (self.bytes.iter().fold(0u64, |a, b| a.saturating_add(*b)), self.flows.iter().fold(0u64, |a, b| a.saturating_add(*b)))
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Warned {
    expiring: bool,
    expired: bool,
}

/// The event state: see the module documentation for what it keeps and its bounds.
#[derive(Debug)]
pub struct Events {
    cfg: EventConfig,
    /// (department, service) → day bucket of the last "first use".
    first_use: HashMap<(Sym, Sym), i64>,
    /// (department, category) → upload ring.
    uploads: HashMap<(Sym, Sym), Ring>,
    /// [`UPLOAD_CATEGORIES`], interned.
    upload_categories: Vec<Sym>,
    /// Exemptions already warned about.
    exemptions: HashMap<ExemptionInfo, Warned>,
    /// libpcap totals at the previous tick.
    capture: Option<(u64, u64)>,
    /// Counters.
    pub stats: Stats,
}

fn day(at: Timestamp) -> i64 {
    at.secs().div_euclid(DAY_SECS)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / MIB as f64
}

impl Events {
    /// Empty state with these thresholds.
    pub fn new(cfg: EventConfig) -> Self {
        // Interned here, at configuration time, so that a flow never takes the interner's lock.
        let upload_categories = UPLOAD_CATEGORIES.iter().map(|c| Sym::intern(c)).collect();
        Events {
            cfg,
            first_use: HashMap::new(),
            uploads: HashMap::new(),
            upload_categories,
            exemptions: HashMap::new(),
            capture: None,
            stats: Stats::default(),
        }
    }

    /// The thresholds in force.
    pub fn config(&self) -> EventConfig {
        self.cfg
    }

    fn count(&mut self, out: &[Event]) {
        for e in out {
            *self.stats.emitted.entry(e.kind().as_str()).or_default() += 1;
        }
    }

    /// A finished, attributed flow that counts as use (see the module documentation: never one
    /// its server left unanswered) at packet time `at`: `service` is its (id, category, channel)
    /// when catalogued, `status` its policy status, `bytes_up` its bytes client → server.
    /// `group_revealed`: the aggregator shows this (department, service, channel, status) group
    /// (it has at least k hosts); `hosts`: the group's distinct hosts over 24 h (shown only when
    /// revealed and at least k). Returns the events to emit (usually none).
    ///
    /// "First use" fires the first time in a UTC day (bucket = packet time / 24 h) that the
    /// department uses an unsanctioned service through a revealed group, and never again for that
    /// (department, service) in that day; a flow of an earlier day arriving late does not fire.
    /// Upload volume fires when the bytes of revealed groups of a watched category over the last
    /// 24 h go from below the threshold to at or above it, at most once per day bucket.
    #[allow(clippy::too_many_arguments)]
    pub fn on_flow(
        &mut self,
        at: Timestamp,
        department: Sym,
        service: Option<(Sym, Sym, Sym)>,
        status: Option<Status>,
        bytes_up: u64,
        group_revealed: bool,
        hosts: usize,
    ) -> Vec<Event> {
        let mut out = Vec::new();
        let Some((id, category, channel)) = service else { return out };
        if !group_revealed {
            return out;
        }
        if status == Some(Status::Unsanctioned) {
            if let Some(e) = self.first_use(at, department, id, category, channel, hosts) {
                out.push(e);
            }
        }
        if self.upload_categories.contains(&category) {
            if let Some(e) = self.upload(at, department, category, bytes_up) {
                out.push(e);
            }
        }
        self.count(&out);
        out
    }

    fn first_use(&mut self, at: Timestamp, department: Sym, id: Sym, category: Sym, channel: Sym, hosts: usize) -> Option<Event> {
        let bucket = day(at);
        let key = (department, id);
        match self.first_use.get_mut(&key) {
            Some(last) if *last >= bucket => return None,
            Some(last) => *last = bucket,
            None => {
                if self.first_use.len() >= MAX_FIRST_USE_KEYS {
                    self.first_use.retain(|_, b| *b >= bucket);
                }
                if self.first_use.len() >= MAX_FIRST_USE_KEYS {
                    self.stats.first_use_full += 1;
                    return None;
                }
                self.first_use.insert(key, bucket);
            }
        }
        let window_start = Timestamp::from_parts(bucket.saturating_mul(DAY_SECS), 0);
        let mut e = Event::new(
            at,
            Kind::FirstUse,
            format!("First use of unsanctioned {id} ({channel}) by {department} in the UTC day starting {window_start}"),
        );
        e.organization = Some(Organization { department: department.as_str().to_string() });
        e.service = Some(Service {
            id: Some(id.as_str().to_string()),
            category: Some(category.as_str().to_string()),
            channel: Some(channel.as_str().to_string()),
            status: Some(Status::Unsanctioned.as_str()),
        });
        e.shadowtap.window = Some("24h");
        e.shadowtap.window_start = Some(window_start);
        e.shadowtap.hosts = (hosts >= self.cfg.min_group_size.max(1)).then_some(hosts as u64);
        Some(e)
    }

    fn upload(&mut self, at: Timestamp, department: Sym, category: Sym, bytes_up: u64) -> Option<Event> {
        let hour = at.secs().div_euclid(HOUR_SECS);
        let key = (department, category);
        if !self.uploads.contains_key(&key) {
            if self.uploads.len() >= MAX_UPLOAD_PAIRS {
                // Rings whose newest hour left the window hold nothing any more.
                self.uploads.retain(|_, r| r.head > hour - UPLOAD_HOURS as i64);
            }
            if self.uploads.len() >= MAX_UPLOAD_PAIRS {
                self.stats.upload_full += 1;
                return None;
            }
            self.uploads.insert(key, Ring::new(hour));
        }
        let ring = self.uploads.get_mut(&key)?;
        ring.advance(hour);
        if !ring.covers(hour) {
            self.stats.upload_late += 1;
            return None;
        }
        let (before, _) = ring.sums();
        let s = Ring::slot(hour);
        ring.bytes[s] = ring.bytes[s].saturating_add(bytes_up);
        ring.flows[s] = ring.flows[s].saturating_add(1);
        let (after, flows) = ring.sums();
        let threshold = self.cfg.upload_threshold_bytes;
        let bucket = day(at);
        if !(before < threshold && after >= threshold) || ring.fired.is_some_and(|f| f >= bucket) {
            return None;
        }
        ring.fired = Some(bucket);
        let mut e = Event::new(
            at,
            Kind::UploadVolume,
            format!(
                "{department} uploaded {:.1} MiB to {category} services in the last 24h (threshold {:.1} MiB)",
                mib(after),
                mib(threshold)
            ),
        );
        e.organization = Some(Organization { department: department.as_str().to_string() });
        e.service = Some(Service { category: Some(category.as_str().to_string()), ..Service::default() });
        e.shadowtap.window = Some("24h");
        e.shadowtap.flows = Some(flows);
        e.shadowtap.bytes_up = Some(after);
        e.shadowtap.threshold_bytes = Some(threshold);
        Some(e)
    }

    /// Periodic check at packet time `now` (the daemon calls it about once a minute): each
    /// exemption of the configuration that ends within `exemption_warn_days` is announced once,
    /// and once more when it has ended (an exemption found already ended gets only the second);
    /// `capture` holds libpcap's running (received, dropped) totals, and a capture-loss event
    /// fires when the share dropped since the previous tick exceeds `capture_loss_ratio` (the
    /// first tick measures from the opening of the capture; totals that went backwards, as after
    /// a reopened interface, count from zero).
    pub fn on_tick(&mut self, now: Timestamp, exemptions: &[ExemptionInfo], capture: Option<(u64, u64)>) -> Vec<Event> {
        let mut out = Vec::new();
        self.check_exemptions(now, exemptions, &mut out);
        if let Some(totals) = capture {
            if let Some(e) = self.check_capture(now, totals) {
                out.push(e);
            }
        }
        self.count(&out);
        out
    }

    fn check_exemptions(&mut self, now: Timestamp, exemptions: &[ExemptionInfo], out: &mut Vec<Event>) {
        let current: HashSet<&ExemptionInfo> = exemptions.iter().collect();
        self.exemptions.retain(|k, _| current.contains(k));
        let warn_micros = i64::try_from(self.cfg.exemption_warn_days.saturating_mul(DAY_SECS as u64 * 1_000_000)).unwrap_or(i64::MAX);
        for x in exemptions {
            let expired = now >= x.expires_end;
            let expiring = !expired && now.0 >= x.expires_end.0.saturating_sub(warn_micros);
            if !expired && !expiring {
                continue;
            }
            if !self.exemptions.contains_key(x) && self.exemptions.len() >= MAX_EXEMPTIONS {
                self.stats.exemptions_full += 1;
                continue;
            }
            let w = self.exemptions.entry(x.clone()).or_default();
            let kind = if expired && !w.expired {
                w.expired = true;
                w.expiring = true;
                Kind::ExemptionExpired
            } else if expiring && !w.expiring {
                w.expiring = true;
                Kind::ExemptionExpiring
            } else {
                continue;
            };
            let message = match kind {
                Kind::ExemptionExpired => {
                    format!("Exemption {} for {} in {} ended at {}", x.reference, x.service, x.department, x.expires_end)
                }
                _ => {
                    let days = x.expires_end.micros_since(now).div_ceil(DAY_SECS as u64 * 1_000_000);
                    format!("Exemption {} for {} in {} ends at {} (in {days} day(s))", x.reference, x.service, x.department, x.expires_end)
                }
            };
            let mut e = Event::new(now, kind, message);
            e.organization = Some(Organization { department: x.department.clone() });
            e.service = Some(Service { id: Some(x.service.clone()), ..Service::default() });
            e.shadowtap.exemption = Some(ExemptionFacts { reference: x.reference.clone(), expires: x.expires_end });
            out.push(e);
        }
    }

    fn check_capture(&mut self, now: Timestamp, (received, dropped): (u64, u64)) -> Option<Event> {
        let (r0, d0) = self.capture.replace((received, dropped)).unwrap_or((0, 0));
        // Totals that went backwards were reset: the new totals are the interval's.
        let (r0, d0) = if received < r0 || dropped < d0 { (0, 0) } else { (r0, d0) };
        let (dr, dd) = (received - r0, dropped - d0);
        if dd == 0 {
            return None;
        }
        // libpcap's received count includes the dropped packets on Linux; max() keeps the ratio
        // in [0, 1] where it does not.
        let ratio = dd as f64 / dr.max(dd) as f64;
        if ratio <= self.cfg.capture_loss_ratio {
            return None;
        }
        let mut e = Event::new(
            now,
            Kind::CaptureLoss,
            format!("Capture dropped {dd} of {} packets ({:.2}%) since the previous check", dr.max(dd), ratio * 100.0),
        );
        e.shadowtap.capture = Some(CaptureFacts { received: dr, dropped: dd, ratio });
        Some(e)
    }
}

/// Writes `e` as one JSON object followed by a newline.
///
/// # Errors
/// The writer's error.
pub fn write(out: &mut impl io::Write, e: &Event) -> io::Result<()> {
    serde_json::to_writer(&mut *out, e)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_000_000 - 1_795_000_000 % DAY_SECS; // midnight UTC, 2026-11-18

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_parts(T0 + secs, 0)
    }

    const WA: Option<(&str, &str, &str)> = Some(("whatsapp", "messaging", "chat"));
    const WT: Option<(&str, &str, &str)> = Some(("wetransfer", "file-sharing", "web"));

    fn cfg() -> EventConfig {
        EventConfig { upload_threshold_bytes: 1_000, min_group_size: 3, ..EventConfig::default() }
    }

    /// [`Events::on_flow`] with names (interned here, as configuration would have).
    #[allow(clippy::too_many_arguments)]
    fn flow(ev: &mut Events, at: Timestamp, dept: &str, svc: Option<(&str, &str, &str)>, st: Option<Status>, up: u64, revealed: bool, hosts: usize) -> Vec<Event> {
        ev.on_flow(at, dept.into(), svc.map(|(a, b, c)| (a.into(), b.into(), c.into())), st, up, revealed, hosts)
    }

    fn kinds(v: &[Event]) -> Vec<Kind> {
        v.iter().map(Event::kind).collect()
    }

    #[test]
    fn first_use_fires_once_per_department_service_and_day() {
        let mut ev = Events::new(cfg());
        let u = Some(Status::Unsanctioned);
        let e = flow(&mut ev, at(100), "finance", WA, u, 10, true, 4);
        assert_eq!(kinds(&e), [Kind::FirstUse]);
        assert_eq!(e[0].shadowtap.hosts, Some(4));
        assert_eq!(e[0].organization.as_ref().unwrap().department, "finance");
        assert!(flow(&mut ev, at(200), "finance", WA, u, 10, true, 5).is_empty(), "same day");
        assert!(flow(&mut ev, at(300), "finance", Some(("whatsapp", "messaging", "calls")), u, 10, true, 5).is_empty(), "another channel, same service");
        assert_eq!(kinds(&flow(&mut ev, at(400), "legal", WA, u, 10, true, 2)), [Kind::FirstUse], "another department");
        assert_eq!(flow(&mut ev, at(400), "hr", WA, u, 10, true, 2)[0].shadowtap.hosts, None, "fewer than k hosts in 24 h: not shown");
        assert_eq!(kinds(&flow(&mut ev, at(DAY_SECS + 1), "finance", WA, u, 10, true, 5)), [Kind::FirstUse], "next day");
        assert!(flow(&mut ev, at(500), "finance", WA, u, 10, true, 5).is_empty(), "a late flow of an earlier day does not fire");
        assert_eq!(ev.stats.emitted.get("first-use"), Some(&4));
    }

    #[test]
    fn first_use_ignores_sanctioned_exempted_unrevealed_and_uncatalogued() {
        let mut ev = Events::new(cfg());
        assert!(flow(&mut ev, at(1), "finance", WA, Some(Status::Sanctioned), 10, true, 5).is_empty());
        assert!(flow(&mut ev, at(2), "finance", WA, Some(Status::Exempted), 10, true, 5).is_empty());
        assert!(flow(&mut ev, at(3), "finance", WA, Some(Status::Unsanctioned), 10, false, 1).is_empty(), "group below k");
        assert!(flow(&mut ev, at(4), "finance", None, None, 10, true, 5).is_empty());
        assert_eq!(kinds(&flow(&mut ev, at(5), "finance", WA, Some(Status::Unsanctioned), 10, true, 5)), [Kind::FirstUse], "revealed now");
    }

    #[test]
    fn upload_crossing_fires_once_per_day_and_old_hours_fall_out() {
        let mut ev = Events::new(cfg());
        let s = Some(Status::Sanctioned);
        assert!(flow(&mut ev, at(HOUR_SECS), "finance", WT, s, 600, true, 5).is_empty());
        assert!(flow(&mut ev, at(2 * HOUR_SECS), "finance", WT, s, 300, false, 1).is_empty(), "unrevealed bytes do not count");
        let e = flow(&mut ev, at(3 * HOUR_SECS), "finance", WT, s, 400, true, 5);
        assert_eq!(kinds(&e), [Kind::UploadVolume]);
        assert_eq!((e[0].shadowtap.bytes_up, e[0].shadowtap.flows, e[0].shadowtap.threshold_bytes), (Some(1_000), Some(2), Some(1_000)));
        assert_eq!(e[0].service.as_ref().unwrap().category.as_deref(), Some("file-sharing"));
        assert!(flow(&mut ev, at(4 * HOUR_SECS), "finance", WT, s, 5_000, true, 5).is_empty(), "still above");
        assert!(flow(&mut ev, at(4 * HOUR_SECS), "legal", WA, s, 5_000, true, 5).is_empty(), "messaging is not watched");
        // Hour 28 (day 2): hours 1 to 4 left the window, the sum starts again below.
        assert!(flow(&mut ev, at(28 * HOUR_SECS), "finance", WT, s, 900, true, 5).is_empty(), "old hours fell out");
        let e = flow(&mut ev, at(29 * HOUR_SECS), "finance", WT, s, 100, true, 5);
        assert_eq!(kinds(&e), [Kind::UploadVolume], "a crossing in the next day fires");
        assert_eq!(e[0].shadowtap.bytes_up, Some(1_000));
        assert_eq!(
            kinds(&flow(&mut ev, at(4 * HOUR_SECS), "finance", Some(("chatgpt", "generative-ai", "web")), s, 2_000, true, 5)),
            [Kind::UploadVolume],
            "categories are summed apart"
        );
        // A second crossing in the same day does not fire; one in the next day does.
        let ops = |ev: &mut Events, hour: i64, bytes: u64| kinds(&flow(ev, at(hour * HOUR_SECS), "ops", WT, s, bytes, true, 5));
        assert!(ops(&mut ev, 20, 900).is_empty());
        assert_eq!(ops(&mut ev, 25, 200), [Kind::UploadVolume], "day 1");
        assert!(ops(&mut ev, 45, 100).is_empty(), "hour 20 fell out: 300 bytes");
        assert!(ops(&mut ev, 46, 800).is_empty(), "crossed again, still day 1");
        assert_eq!(ops(&mut ev, 49, 100), [Kind::UploadVolume], "hour 25 fell out, crossed again in day 2");
        // A flow older than its ring's window is counted, not summed.
        assert!(flow(&mut ev, at(HOUR_SECS), "finance", WT, s, 5_000, true, 5).is_empty());
        assert_eq!(ev.stats.upload_late, 1);
    }

    #[test]
    fn translation_and_paste_uploads_are_watched_collaboration_is_not() {
        let mut ev = Events::new(cfg());
        let s = Some(Status::Unsanctioned);
        for (svc, cat) in [("deepl", "translation"), ("pastebin", "paste")] {
            let e = flow(&mut ev, at(HOUR_SECS), "legal", Some((svc, cat, "default")), s, 2_000, true, 5);
            assert!(kinds(&e).contains(&Kind::UploadVolume), "{cat}: {:?}", kinds(&e));
        }
        let e = flow(&mut ev, at(HOUR_SECS), "legal", Some(("slack", "collaboration", "default")), s, 2_000, true, 5);
        assert!(!kinds(&e).contains(&Kind::UploadVolume), "collaboration is not an upload category");
    }

    #[test]
    fn upload_rings_are_bounded() {
        let mut ev = Events::new(cfg());
        for i in 0..MAX_UPLOAD_PAIRS {
            flow(&mut ev, at(0), format!("d{i}").as_str(), WT, None, 1, true, 5);
        }
        flow(&mut ev, at(1), "one-too-many", WT, None, 1, true, 5);
        assert_eq!((ev.uploads.len(), ev.stats.upload_full), (MAX_UPLOAD_PAIRS, 1));
        flow(&mut ev, at(2 * DAY_SECS), "later", WT, None, 1, true, 5);
        assert_eq!(ev.uploads.len(), 1, "rings whose window passed make room");
    }

    #[test]
    fn exemptions_warn_once_expiring_and_once_expired() {
        let mut ev = Events::new(cfg());
        let x = ExemptionInfo { department: "legal".into(), service: "wetransfer".into(), reference: "CHG-42".into(), expires_end: at(30 * DAY_SECS) };
        let old = ExemptionInfo { reference: "CHG-1".into(), expires_end: at(-DAY_SECS), ..x.clone() };
        let list = [x.clone(), old];
        let e = ev.on_tick(at(0), &list, None);
        assert_eq!(kinds(&e), [Kind::ExemptionExpired], "already ended: only the second");
        assert_eq!(e[0].shadowtap.exemption.as_ref().unwrap().reference, "CHG-1");
        assert!(ev.on_tick(at(15 * DAY_SECS), &list, None).is_empty(), "16 days left");
        let e = ev.on_tick(at(16 * DAY_SECS), &list, None);
        assert_eq!(kinds(&e), [Kind::ExemptionExpiring]);
        assert!(e[0].message.contains("in 14 day(s)"), "{}", e[0].message);
        assert!(ev.on_tick(at(20 * DAY_SECS), &list, None).is_empty());
        assert_eq!(kinds(&ev.on_tick(at(30 * DAY_SECS), &list, None)), [Kind::ExemptionExpired]);
        assert!(ev.on_tick(at(31 * DAY_SECS), &list, None).is_empty());
        ev.on_tick(at(31 * DAY_SECS), &[], None);
        assert!(ev.exemptions.is_empty(), "exemptions gone from the configuration are forgotten");
    }

    #[test]
    fn capture_loss_ratio_per_interval() {
        let mut ev = Events::new(cfg());
        assert!(ev.on_tick(at(0), &[], Some((10_000, 50))).is_empty(), "0.5% since opening");
        let e = ev.on_tick(at(60), &[], Some((20_000, 250)));
        assert_eq!(kinds(&e), [Kind::CaptureLoss]);
        assert_eq!(e[0].shadowtap.capture, Some(CaptureFacts { received: 10_000, dropped: 200, ratio: 0.02 }));
        assert!(ev.on_tick(at(120), &[], Some((30_000, 250))).is_empty(), "no drops in this interval");
        assert!(ev.on_tick(at(180), &[], Some((30_000, 250))).is_empty(), "nothing at all");
        let e = ev.on_tick(at(240), &[], Some((100, 100)));
        assert_eq!(e[0].shadowtap.capture.unwrap().ratio, 1.0, "reset totals count from zero");
        assert_eq!(ev.on_tick(at(300), &[], Some((100, 150)))[0].shadowtap.capture.unwrap().ratio, 1.0, "ratio stays in [0, 1]");
    }

    /// A token of `s` reads as an IPv4 address (four dot-separated digit runs) or an IPv6 address
    /// (parses as one, or holds `::`).
    fn looks_like_address(s: &str) -> bool {
        s.split(|c: char| !(c.is_ascii_hexdigit() || c == '.' || c == ':')).any(|tok| {
            let v4 = tok.split('.').collect::<Vec<_>>().windows(4).any(|w| w.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())));
            let v6 = tok.contains("::") || (tok.matches(':').count() >= 2 && tok.trim_matches('.').parse::<std::net::Ipv6Addr>().is_ok());
            v4 || v6
        })
    }

    fn strings(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) => out.push(s.clone()),
            serde_json::Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
            serde_json::Value::Object(m) => m.iter().for_each(|(k, x)| {
                out.push(k.clone());
                strings(x, out)
            }),
            other => out.push(other.to_string()),
        }
    }

    #[test]
    fn json_lines_have_ecs_keys_and_no_address() {
        assert!(looks_like_address("from 10.0.0.1 to") && looks_like_address("fe80::1") && looks_like_address("2001:db8:0:0:0:0:0:1"));
        assert!(!looks_like_address("2026-11-23T06:21:12.779868Z") && !looks_like_address("12.5 MiB"));
        let mut ev = Events::new(cfg());
        let mut all = flow(&mut ev, at(12), "finance", WA, Some(Status::Unsanctioned), 10, true, 5);
        all.extend(flow(&mut ev, at(13), "finance", WT, Some(Status::Unsanctioned), 5_000, true, 5));
        let x = ExemptionInfo { department: "legal".into(), service: "wetransfer".into(), reference: "CHG-42".into(), expires_end: at(DAY_SECS) };
        all.extend(ev.on_tick(at(60), std::slice::from_ref(&x), Some((1_000, 500))));
        all.extend(ev.on_tick(at(DAY_SECS), &[x], None));
        assert_eq!(all.iter().map(|e| e.kind()).collect::<HashSet<_>>().len(), Kind::ALL.len(), "every kind is exercised");
        let mut buf = Vec::new();
        for e in &all {
            write(&mut buf, e).unwrap();
        }
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(text.lines().count(), all.len());
        for (line, e) in text.lines().zip(&all) {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["@timestamp"], e.timestamp.to_string());
            assert_eq!(v["event"]["action"], e.kind().as_str());
            assert_eq!(v["event"]["dataset"], DATASET);
            assert!(v["event"]["category"].is_array() && v["event"]["type"].is_array());
            assert!(v["message"].is_string());
            if e.kind() != Kind::CaptureLoss {
                assert!(v["organization"]["department"].is_string(), "{line}");
            }
            let mut s = Vec::new();
            strings(&v, &mut s);
            assert!(!s.iter().any(|s| looks_like_address(s)), "{line}");
        }
        let first = serde_json::from_str::<serde_json::Value>(text.lines().next().unwrap()).unwrap();
        assert_eq!(first["service"]["status"], "unsanctioned");
        assert_eq!(first["event"]["kind"], "alert");
        assert_eq!(first["@timestamp"], "2026-11-18T00:00:12.000000Z");
    }
}
