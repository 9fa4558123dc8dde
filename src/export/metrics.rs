//! The Prometheus exposition of `shadowtap run`, built with the `prometheus` crate from a
//! published [`State`] at each scrape. Names follow the Prometheus conventions (`shadowtap_`
//! prefix, `_total` counters, base units); label values come from the catalog and the department
//! list, so cardinality is bounded by configuration, never by traffic.

use prometheus::{Encoder, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::aggregate::{Privacy, Snapshot};
use crate::capture::CaptureStats;
use crate::decode::DropReason;
use crate::engine::Stats;
use crate::flow::defrag::GiveUp;
use crate::flow::table::TableStats;

/// Everything the exporter shows, published by the packet thread.
#[derive(Debug, Default, Clone)]
pub struct State {
    /// Aggregation, privacy rules applied.
    pub snapshot: Snapshot,
    /// Engine counters.
    pub engine: Stats,
    /// Flow table counters.
    pub table: TableStats,
    /// Flows held now.
    pub active_flows: u64,
    /// Bytes held by flows being identified, and the memory budget for them.
    pub memory: (usize, usize),
    /// Kernel/interface statistics per live interface.
    pub capture: Vec<(String, CaptureStats)>,
    /// Catalog digest and number of services.
    pub ruleset: (String, usize),
    /// Configuration digest.
    pub config_digest: String,
    /// Reloads that took effect / were rejected.
    pub reloads: [u64; 2],
    /// Unix time of the last successful (re)load.
    pub last_reload_unix: i64,
    /// Privacy settings in force.
    pub privacy: Privacy,
    /// Pseudonym keys drawn (1 + rotations).
    pub keys_drawn: u64,
    /// Every input has been read (pcap replay finished).
    pub replay_done: bool,
    /// State saves that succeeded / failed.
    pub state_saves: [u64; 2],
    /// The aggregation continued from a saved state.
    pub state_restored: bool,
    /// Exemptions of the configuration: (department, service, end of validity).
    pub exemptions: Vec<(String, String, crate::time::Timestamp)>,
    /// Events raised, by kind.
    pub events: std::collections::BTreeMap<&'static str, u64>,
    /// Events written / not written to the events sink.
    pub events_written: [u64; 2],
    /// Rollup store counters (None without a store).
    pub store: Option<crate::store::StoreStats>,
    /// Every capture source the sensor was asked to read, with what it is doing now.
    pub sources: Vec<SourceStatus>,
    /// Longest time the packet loop went without reading packets (work between two reads).
    pub longest_stall: std::time::Duration,
    /// Jobs the background writer's queue could not take: store rows, state saves, event
    /// batches.
    pub writer_dropped: [u64; 3],
    /// Engine workers in use (`--workers`; one with a live interface).
    pub workers: u64,
    /// Flows of a live interface the full hand-off queue to the sensor's thread could not take.
    pub handoff_dropped_flows: u64,
    /// Times a replay's flows waited for room in that queue.
    pub handoff_waits: u64,
}

/// What the daemon's background writer could not take, as labelled in
/// `shadowtap_writer_dropped_total{what}`; the discriminant indexes [`State::writer_dropped`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriterDrop {
    /// Rollup rows beyond the pending bound.
    Store = 0,
    /// A state save (the next one supersedes it).
    State = 1,
    /// A batch of events.
    Events = 2,
}

impl WriterDrop {
    /// Every kind, in index order.
    pub const ALL: [WriterDrop; 3] = [WriterDrop::Store, WriterDrop::State, WriterDrop::Events];

    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            WriterDrop::Store => "store",
            WriterDrop::State => "state",
            WriterDrop::Events => "events",
        }
    }
}

/// Kind of a capture source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    /// A capture file (replayed).
    File,
    /// A live interface.
    Interface,
}

impl SourceKind {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::File => "file",
            SourceKind::Interface => "interface",
        }
    }
}

/// What a capture source is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceState {
    /// Not read yet (a file waiting for its turn).
    Pending,
    /// Being read.
    Reading,
    /// Read to its end (files only).
    Done,
    /// Could not be opened, or failed while being read: the sensor is blind to it.
    Failed,
}

impl SourceState {
    /// Every state, in label order.
    pub const ALL: [SourceState; 4] = [SourceState::Pending, SourceState::Reading, SourceState::Done, SourceState::Failed];

    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceState::Pending => "pending",
            SourceState::Reading => "reading",
            SourceState::Done => "done",
            SourceState::Failed => "failed",
        }
    }
}

/// One capture source as the exporter shows it (its name only in `/readyz`'s text, never in a
/// label: interface names are bounded, file names are not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceStatus {
    /// File or interface.
    pub kind: SourceKind,
    /// Path or interface name.
    pub name: String,
    /// What it is doing.
    pub state: SourceState,
    /// Why it failed.
    pub error: Option<String>,
}

impl State {
    /// Whether the sensor sees what it was asked to see: `Err` with the reason while a replay
    /// is still running or when any source has failed (a blind sensor must never look ready).
    ///
    /// # Errors
    /// The reason it is not ready, one line.
    pub fn readiness(&self) -> Result<(), String> {
        let failed: Vec<String> = self
            .sources
            .iter()
            .filter(|s| s.state == SourceState::Failed)
            .map(|s| format!("{} {}: {}", s.kind.as_str(), s.name, s.error.as_deref().unwrap_or("failed")))
            .collect();
        if !failed.is_empty() {
            return Err(format!("blind: {}", failed.join("; ")));
        }
        if !self.replay_done {
            return Err("replaying".into());
        }
        Ok(())
    }
}

/// `shadowtap_ready`: 1 when `/readyz` would answer 200 (see [`State::readiness`]).
fn g1_ready(r: &Registry, s: &State) -> prometheus::Result<()> {
    gauge(r, "shadowtap_ready", "1 when every requested source is being read (or was read to its end) and the replay is over; 0 while replaying or blind.", &[])?
        .with_label_values(&[] as &[&str])
        .set(s.readiness().is_ok() as i64);
    Ok(())
}

/// `shadowtap_unanswered_counted_as_use`: 1 when `[engine] count_unanswered` makes unanswered
/// flows count as use (a sensor that sees one direction of traffic only).
fn g1_unanswered_as_use(r: &Registry, s: &State) -> prometheus::Result<()> {
    gauge(r, "shadowtap_unanswered_counted_as_use", "1 when flows their server never answered count as use (engine.count_unanswered, for a sensor that sees one direction of traffic only); 0 when they are only counted apart.", &[])?
        .with_label_values(&[] as &[&str])
        .set(i64::from(s.snapshot.unanswered_rule == crate::aggregate::Unanswered::AsUse));
    Ok(())
}

fn gauge_f(r: &Registry, name: &str, help: &str, v: f64) -> prometheus::Result<()> {
    let g = prometheus::Gauge::new(name, help)?;
    r.register(Box::new(g.clone()))?;
    g.set(v);
    Ok(())
}

fn counter(r: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntCounterVec> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(c.clone()))?;
    Ok(c)
}

fn gauge(r: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<IntGaugeVec> {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
    r.register(Box::new(g.clone()))?;
    Ok(g)
}

/// Encodes `s` in the Prometheus text format.
///
/// # Errors
/// A registry error (only on a programming mistake such as a duplicate metric name).
pub fn encode(s: &State) -> prometheus::Result<Vec<u8>> {
    let r = Registry::new();
    const GROUP: &[&str] = &["department", "service", "channel", "category", "status"];
    let flows = counter(&r, "shadowtap_flows_total", "Flows by department and attributed service, channel, category and policy status (groups smaller than the minimum group size folded into service=\"_suppressed\").", GROUP)?;
    let bytes = counter(&r, "shadowtap_bytes_total", "IP bytes of those flows, by direction (up = client to server).", &[GROUP, &["direction"]].concat())?;
    for (k, t) in &s.snapshot.totals {
        let l = k.labels();
        flows.with_label_values(&l).inc_by(t.flows);
        bytes.with_label_values(&[&l[..], &["up"]].concat()).inc_by(t.bytes_up);
        bytes.with_label_values(&[&l[..], &["down"]].concat()).inc_by(t.bytes_down);
    }
    let hosts = gauge(&r, "shadowtap_hosts", "Distinct hosts (pseudonymous) of a group over a sliding window of packet time.", &[GROUP, &["window"]].concat())?;
    for (k, w, n) in &s.snapshot.hosts {
        let [d, s, c, cat, st] = k.labels();
        hosts.with_label_values(&[d, s, c, cat, st, w]).set(*n as i64);
    }
    let active = gauge(&r, "shadowtap_department_active_hosts", "Distinct hosts of a department seen in any flow over the window: the denominator of usage shares.", &["department", "window"])?;
    for (d, w, n) in &s.snapshot.department_hosts {
        active.with_label_values(&[d.as_str(), w]).set(*n as i64);
    }
    let unnamed = counter(&r, "shadowtap_unnamed_flows_total", "Flows whose destination stayed unnamed, by department and reason.", &["department", "reason"])?;
    for (d, reason, n) in &s.snapshot.unnamed {
        unnamed.with_label_values(&[d.as_str(), reason]).inc_by(*n);
    }
    let unanswered = counter(
        &r,
        "shadowtap_unanswered_flows_total",
        "Flows their server never answered (spoofed or blocked connection attempts, scans), by department and the service of their destination (_uncatalogued, _unnamed; pairs with fewer than the minimum group size of hosts folded into service=\"_suppressed\"): counted apart, not as use.",
        &["department", "service"],
    )?;
    for (d, svc, n) in &s.snapshot.unanswered {
        unanswered.with_label_values(&[d.as_str(), svc.as_str()]).inc_by(*n);
    }
    g1_unanswered_as_use(&r, s)?;
    let top = gauge(
        &r,
        "shadowtap_uncatalogued_top_hosts",
        &format!(
            "Distinct hosts (pseudonymous, counted up to {}) over the last {} of packet time of the registrable domains outside the catalog that the most hosts used: at most the top {}, each with at least the minimum group size of hosts; a domain leaves the series when it drops out of the top. Candidates for the service catalog.",
            crate::aggregate::MAX_HOSTS_PER_DOMAIN,
            crate::aggregate::UNCATALOGUED_WINDOW.0,
            crate::aggregate::UNCATALOGUED_TOP
        ),
        &["domain"],
    )?;
    for (domain, n) in &s.snapshot.uncatalogued_top {
        top.with_label_values(&[domain.as_str()]).set(*n as i64);
    }
    counter(
        &r,
        "shadowtap_uncatalogued_domains_dropped_total",
        &format!(
            "Flows to a registrable domain outside the catalog that were not counted per domain because the bound of {} domains was reached (in the 24 h window of shadowtap_uncatalogued_top_hosts or in a day of the rollup store); they are still counted under service=\"_uncatalogued\".",
            crate::aggregate::MAX_UNCATALOGUED_DOMAINS
        ),
        &[],
    )?
    .with_label_values(&[] as &[&str])
    .inc_by(s.snapshot.uncatalogued_dropped);
    let ech = counter(&r, "shadowtap_ech_flows_total", "Flows whose ClientHello used real (not GREASE) ECH, named or not, by department.", &["department"])?;
    for (d, n) in &s.snapshot.ech {
        ech.with_label_values(&[d.as_str()]).inc_by(*n);
    }
    let e = &s.engine;
    let single = |name: &str, help: &str, v: u64| -> prometheus::Result<()> {
        counter(&r, name, help, &[])?.with_label_values(&[] as &[&str]).inc_by(v);
        Ok(())
    };
    single("shadowtap_packets_total", "Frames read from all sources.", e.frames)?;
    single("shadowtap_packet_bytes_total", "Bytes of those frames on the wire.", e.frame_bytes)?;
    single("shadowtap_flows_evicted_total", "Flows evicted because the flow table was full.", s.table.evicted)?;
    single("shadowtap_memory_budget_giveups_total", "Flows whose identification was given up to keep the memory budget (oldest parked first); they end unnamed.", e.memory_giveups)?;
    single("shadowtap_associated_flows_total", "Unnamed STUN flows given the names of their client's open signalling flows (association; the catalog then decides whose calls they are).", e.associated)?;
    single("shadowtap_association_clients_dropped_total", "Named flows whose client was not tracked for association because the client table was full (engine::resolve::MAX_ASSOCIATION_CLIENTS).", e.association_clients_dropped)?;
    gauge(&r, "shadowtap_flow_memory_bytes", "Bytes the flows being identified hold in buffers (reassembly, TLS records, QUIC CRYPTO data, IP fragments).", &[])?.with_label_values(&[] as &[&str]).set(s.memory.0 as i64);
    gauge(&r, "shadowtap_memory_budget_bytes", "The memory budget for those buffers ([engine] memory_budget_mib).", &[])?.with_label_values(&[] as &[&str]).set(s.memory.1 as i64);
    gauge(&r, "shadowtap_engine_workers", "Engine worker threads in use (--workers; 1 with a live interface, which runs one).", &[])?.with_label_values(&[] as &[&str]).set(s.workers as i64);
    single("shadowtap_inconsistent_overlaps_total", "Retransmitted TCP bytes that disagreed with bytes already reassembled.", e.inconsistent_overlaps)?;
    let drops = counter(&r, "shadowtap_decode_drops_total", "Frames not decoded, by reason.", &["reason"])?;
    for reason in DropReason::ALL {
        drops.with_label_values(&[reason.as_str()]).inc_by(e.decode_drops.get(reason.index()).copied().unwrap_or(0));
    }
    drops.with_label_values(&["unsupported_link"]).inc_by(e.unsupported_link);
    let d = &e.defrag;
    single("shadowtap_ip_fragments_total", "IP fragments (IPv4, IPv6 Fragment header) handed to reassembly.", d.fragments)?;
    single("shadowtap_ip_reassembled_total", "IP datagrams reassembled from fragments.", d.reassembled)?;
    single("shadowtap_ip_reassembly_conflicts_total", "Reassembled IP datagrams whose overlapping fragments carried different bytes (the first were kept; the flow is marked fragment_overlap).", d.conflicts)?;
    let giveups = counter(&r, "shadowtap_ip_reassembly_giveups_total", "IP datagrams given up before they were complete, by reason (timeout, too_many_fragments, too_many_datagrams, memory, too_large, bad_length).", &["reason"])?;
    for reason in GiveUp::ALL {
        giveups.with_label_values(&[reason.as_str()]).inc_by(d.giveup(reason));
    }
    for (name, help, map) in [
        ("shadowtap_reassembly_giveups_total", "TCP reassemblies given up, by reason.", &e.reassembly_giveups),
        ("shadowtap_quic_giveups_total", "QUIC Initials not read, by reason.", &e.quic_giveups),
        ("shadowtap_tls_errors_total", "TLS handshakes not read, by reason.", &e.tls_errors),
        ("shadowtap_dns_errors_total", "DNS messages not parsed, by reason.", &e.dns_errors),
        ("shadowtap_evasion_flows_total", "Flows that ended with a sign of evasion (overlap_conflict, syn_data_unacked, decoy_hello, decoy_initial, fragment_overlap, quic_junk), by sign.", &e.evasions),
    ] {
        let c = counter(&r, name, help, &["reason"])?;
        for (k, v) in map {
            c.with_label_values(&[*k]).inc_by(*v);
        }
    }
    let cap = counter(&r, "shadowtap_capture_dropped_packets_total", "Packets dropped before the sensor saw them (libpcap statistics), by interface and where.", &["interface", "where"])?;
    let recv = counter(&r, "shadowtap_capture_received_packets_total", "Packets received by the capture filter (libpcap statistics).", &["interface"])?;
    for (iface, c) in &s.capture {
        cap.with_label_values(&[iface.as_str(), "kernel"]).inc_by(c.dropped);
        cap.with_label_values(&[iface.as_str(), "interface"]).inc_by(c.if_dropped);
        recv.with_label_values(&[iface.as_str()]).inc_by(c.received);
    }
    let sources = gauge(&r, "shadowtap_sources", "Capture sources the sensor was asked to read, by kind (file, interface) and state (pending, reading, done, failed); a failed one means the sensor is blind to it.", &["kind", "state"])?;
    for kind in [SourceKind::File, SourceKind::Interface] {
        for state in SourceState::ALL {
            let n = s.sources.iter().filter(|x| x.kind == kind && x.state == state).count();
            sources.with_label_values(&[kind.as_str(), state.as_str()]).set(n as i64);
        }
    }
    g1_ready(&r, s)?;
    gauge_f(&r, "shadowtap_packet_loop_stall_seconds_max", "Longest time the packet thread spent between two reads of packets since start (processing, hand-offs, reloads): what a blocking step would cost in kernel drops on a live link.", s.longest_stall.as_secs_f64())?;
    let hd = counter(&r, "shadowtap_handoff_dropped_flows_total", "Finished flows of a live interface that the bounded queue from the packet thread to the sensor's thread (attribution, aggregation, events, rollup) could not take: counted, not accounted. The packet thread never waits on that queue for a live interface.", &[])?;
    hd.with_label_values(&[] as &[&str]).inc_by(s.handoff_dropped_flows);
    let hw = counter(&r, "shadowtap_handoff_waits_total", "Times a replay's finished flows waited for room in that queue (nothing is lost; the replay slows down).", &[])?;
    hw.with_label_values(&[] as &[&str]).inc_by(s.handoff_waits);
    let wd = counter(&r, "shadowtap_writer_dropped_total", "Work the background writer's bounded queue could not take, by what: store rows beyond the pending bound, state saves (superseded by the next), event batches.", &["what"])?;
    for what in WriterDrop::ALL {
        wd.with_label_values(&[what.as_str()]).inc_by(s.writer_dropped[what as usize]);
    }
    let g1 = |name: &str, help: &str, v: i64| -> prometheus::Result<()> {
        gauge(&r, name, help, &[])?.with_label_values(&[] as &[&str]).set(v);
        Ok(())
    };
    g1("shadowtap_flows_active", "Flows held in the flow table.", s.active_flows as i64)?;
    g1("shadowtap_ip_reassembly_pending_datagrams", "IP datagrams waiting for more fragments.", s.engine.defrag.pending as i64)?;
    g1("shadowtap_ip_reassembly_held_bytes", "Bytes IP reassembly holds (fragments and per-datagram overhead; at most 8 MiB by default).", s.engine.defrag.held_bytes as i64)?;
    g1("shadowtap_privacy_reveal_hosts", "1 while host identities are collected for an investigation (privacy.reveal_hosts).", s.privacy.reveal_hosts as i64)?;
    g1("shadowtap_privacy_min_group_size", "Minimum distinct hosts before a group's series are shown.", s.privacy.min_group_size as i64)?;
    g1("shadowtap_privacy_suppressed_series", "Series withheld because their group has fewer hosts than the minimum group size.", s.snapshot.suppressed_series as i64)?;
    g1("shadowtap_privacy_pseudonym_keys", "Pseudonym keys drawn since start (1 + rotations).", s.keys_drawn as i64)?;
    g1("shadowtap_replay_done", "1 once every capture file has been read.", s.replay_done as i64)?;
    g1("shadowtap_config_last_reload_success_timestamp_seconds", "Unix time of the last successful configuration load.", s.last_reload_unix)?;
    let ex = gauge(&r, "shadowtap_exemption_expiry_timestamp_seconds", "End of an exemption's validity (Unix time), per department and service: use after it counts as unsanctioned.", &["department", "service"])?;
    for (d, svc, until) in &s.exemptions {
        ex.with_label_values(&[d.as_str(), svc]).set(until.secs());
    }
    let evs = counter(&r, "shadowtap_events_total", "Security events raised, by kind.", &["kind"])?;
    for (k, v) in &s.events {
        evs.with_label_values(&[*k]).inc_by(*v);
    }
    let ew = counter(&r, "shadowtap_events_written_total", "Events written to the events sink, by result.", &["result"])?;
    ew.with_label_values(&["success"]).inc_by(s.events_written[0]);
    ew.with_label_values(&["failure"]).inc_by(s.events_written[1]);
    g1("shadowtap_state_restored", "1 when the aggregation continued from a saved state (pseudonyms of the previous run are not linkable to this run's).", s.state_restored as i64)?;
    let saves = counter(&r, "shadowtap_state_saves_total", "Saves of the aggregation state, by result.", &["result"])?;
    saves.with_label_values(&["success"]).inc_by(s.state_saves[0]);
    saves.with_label_values(&["failure"]).inc_by(s.state_saves[1]);
    if let Some(st) = &s.store {
        let flushes = counter(&r, "shadowtap_store_flushes_total", "Flushes of the rollup store, by result (a failed flush keeps its rows for the next).", &["result"])?;
        flushes.with_label_values(&["success"]).inc_by(st.flushes[0]);
        flushes.with_label_values(&["failure"]).inc_by(st.flushes[1]);
        single("shadowtap_store_rows_deleted_total", "Rows of the rollup store deleted by retention (store.retention_days).", st.rows_deleted)?;
        single("shadowtap_store_dropped_rows_total", "Rows lost because failed flushes of the rollup store kept more than the pending bound.", st.dropped_rows)?;
        single("shadowtap_store_keys_lost_total", "Times the store's key file was missing at start while the store had used keys (distinct hosts then count twice across the loss).", st.keys_lost)?;
        g1("shadowtap_store_last_flush_timestamp_seconds", "Unix time of the last committed flush of the rollup store (0: none yet).", st.last_flush_unix)?;
    }
    let reloads = counter(&r, "shadowtap_config_reloads_total", "Configuration reloads, by result.", &["result"])?;
    reloads.with_label_values(&["success"]).inc_by(s.reloads[0]);
    reloads.with_label_values(&["failure"]).inc_by(s.reloads[1]);
    gauge(&r, "shadowtap_build_info", "Build of the sensor.", &["version"])?.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    gauge(&r, "shadowtap_ruleset_info", "The loaded service catalog: SHA-256 digest and number of services.", &["digest", "services", "config_digest"])?
        .with_label_values(&[s.ruleset.0.as_str(), &s.ruleset.1.to_string(), &s.config_digest])
        .set(1);
    let mut out = Vec::new();
    TextEncoder::new().encode(&r.gather(), &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::tests_support::{catalog, named, outside};
    use crate::aggregate::{Aggregator, UNCATALOGUED_TOP};
    use crate::time::Timestamp;

    fn top_series(text: &str) -> Vec<(String, i64)> {
        text.lines()
            .filter_map(|l| l.strip_prefix("shadowtap_uncatalogued_top_hosts{domain=\""))
            .map(|l| {
                let (domain, rest) = l.split_once("\"}").unwrap();
                (domain.to_string(), rest.trim().parse().unwrap())
            })
            .collect()
    }

    #[test]
    fn the_uncatalogued_top_is_bounded_and_drops_domains_that_leave_it() {
        let c = catalog();
        let mut a = Aggregator::new(Privacy { min_group_size: 2, ..Privacy::default() }).unwrap();
        let t = 1_000_000;
        // 30 domains of 2 hosts each, one of 3 hosts, one of 1 host (below k).
        for i in 0..30 {
            for host in 1..=2 {
                a.add(&named(&format!("10.0.1.{host}:1"), t + i, &format!("www.site{i:02}.com")), &outside("finance"), &c);
            }
        }
        for host in 1..=3 {
            a.add(&named(&format!("10.0.2.{host}:1"), t + 40, "files.busy.org"), &outside("legal"), &c);
        }
        a.add(&named("10.0.3.1:1", t + 41, "lonely.example.net"), &outside("legal"), &c);
        let text = String::from_utf8(encode(&State { snapshot: a.snapshot(), ..State::default() }).unwrap()).unwrap();
        let top = top_series(&text);
        assert_eq!(top.len(), UNCATALOGUED_TOP, "bounded: {top:?}");
        assert!(top.contains(&("busy.org".to_string(), 3)), "{top:?}");
        assert!(!text.contains("example.net"), "below k: never a label");
        assert!(!text.contains("10.0."), "never an address");
        assert!(text.contains("# HELP shadowtap_uncatalogued_top_hosts Distinct hosts"));
        assert!(text.contains("shadowtap_uncatalogued_domains_dropped_total 0"));

        // A day later only a new domain was used: the old labels are gone.
        for host in 1..=2 {
            a.add(&named(&format!("10.0.4.{host}:1"), t + 2 * 86_400, "new.example.io"), &outside("legal"), &c);
        }
        a.prune();
        let s = a.snapshot();
        assert_eq!(s.now, Timestamp::from_parts(t + 2 * 86_400, 0));
        let text = String::from_utf8(encode(&State { snapshot: s, ..State::default() }).unwrap()).unwrap();
        assert_eq!(top_series(&text), vec![("example.io".to_string(), 2)]);
    }
}
