//! `shadowtap run`: the long-lived sensor. A packet thread runs the [`Pipeline`] (captures
//! replayed as fast as possible or at their recorded pace, then live interfaces) into the
//! [`Sensor`] sink, which attributes every finished flow, aggregates it, raises events and
//! rolls it up by day on a thread of its own (fed through [`super::handoff`], a bounded
//! channel); a writer thread ([`writer`]) does the store flushes, state saves and
//! event writes; a tokio runtime on the main thread serves `/metrics`, `/healthz` and
//! `/readyz` from the state the packet thread publishes about once a second.
//!
//! A requested source that cannot be opened at start is fatal (exit 1: systemd restarts the
//! unit and its failure shows); one that fails later marks the sensor not ready and shows in
//! `shadowtap_sources{state="failed"}`. After a replay the sensor keeps serving, saving and
//! reloading until stopped.
//!
//! Signals: SIGTERM/SIGINT stop cleanly (flows in progress are accounted, the final state is
//! published, saved and flushed, the HTTP server drains); SIGHUP reloads the configuration
//! (all or nothing, built on the reload thread) and records the new one in the store.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::control::{Control, Reload};
use super::pipeline::{self, Origin, Pipeline, Sink, SystemClock, View};
use super::handoff::{Handoff, HandoffStats};
use super::writer::{self, Job};
use crate::export::metrics::WriterDrop as Dropped;
use crate::aggregate::Aggregator;
use crate::capture::{CaptureStats, LiveOptions};
use crate::config::Settings;
use crate::engine::FlowRecord;
use crate::export::events::{self, Events, ExemptionInfo};
use crate::export::metrics::State;
use crate::store::{self, Counters, Delta, Rollup};

/// Default listen address: loopback, on a port of Prometheus's exporter range.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9842";

/// How often the packet thread publishes its state for scrapes.
pub const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// What `run` reads and serves.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Configuration file.
    pub config: PathBuf,
    /// Capture files or directories replayed first.
    pub pcaps: Vec<PathBuf>,
    /// Live interfaces read after the replay.
    pub live: Vec<LiveOptions>,
    /// HTTP listen address.
    pub listen: SocketAddr,
    /// Replay captures at their recorded pace instead of as fast as possible.
    pub realtime: bool,
    /// BPF filter applied to every source.
    pub filter: Option<String>,
    /// Directory of the saved aggregation (restored at start, saved periodically and at stop).
    pub state_dir: Option<PathBuf>,
    /// Seconds between saves: what a crash can lose at most.
    pub save_every: Duration,
    /// User to switch to once the captures are open (running as root).
    pub user: Option<String>,
    /// Where security events go as JSON lines (`-` for standard output).
    pub events: Option<PathBuf>,
    /// TLS and basic authentication of the HTTP side (exporter-toolkit web config file).
    pub web_config: Option<PathBuf>,
    /// Rollup store file (default: `rollup.sqlite` in `state_dir`, if one is given).
    pub store: Option<PathBuf>,
    /// Name of this sensor in the store's uptime record (default: the machine's host name).
    pub sensor_name: Option<String>,
    /// Engine workers for the replayed files (0: the default; one with a live interface).
    pub workers: usize,
}

/// The machine's host name, naming the sensor (not a monitored host) in the store.
pub fn host_name() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).filter(|h| !h.is_empty()).unwrap_or_else(|| "sensor".into())
}

/// Packet-time seconds between the periodic event checks (exemptions, capture loss).
pub const EVENT_TICK_SECS: i64 = 60;

/// Time the daemon has to end after SIGINT/SIGTERM before it exits regardless: the final flush
/// may wait [`store::sqlite::BUSY_TIMEOUT`] for a locked store, twice (a kept delta, then the
/// last one), and the state save needs an fsync.
pub const STOP_GRACE: Duration = Duration::from_secs(30);

/// Switches to `name`'s user and group (and only that group), for a sensor started as root to
/// open its capture devices. With capabilities instead of root (systemd `AmbientCapabilities=
/// CAP_NET_RAW`), no switch is needed.
///
/// # Errors
/// An unknown user, or a switch the OS refused.
pub fn drop_privileges(name: &str) -> anyhow::Result<()> {
    use nix::unistd::{getuid, setgid, setgroups, setuid, User};
    let user = User::from_name(name)?.ok_or_else(|| anyhow::anyhow!("no user {name:?}"))?;
    if getuid() == user.uid {
        return Ok(());
    }
    setgroups(&[user.gid]).map_err(|e| anyhow::anyhow!("setgroups: {e}"))?;
    setgid(user.gid).map_err(|e| anyhow::anyhow!("setgid: {e}"))?;
    setuid(user.uid).map_err(|e| anyhow::anyhow!("setuid: {e}"))?;
    if nix::unistd::setuid(nix::unistd::Uid::from_raw(0)).is_ok() && !user.uid.is_root() {
        anyhow::bail!("privileges could be regained after switching to {name}");
    }
    eprintln!("running as {name} (uid {}, gid {})", user.uid, user.gid);
    Ok(())
}


/// Why `run` did not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Neither `--pcap` nor `--interface`.
    #[error("no source: give --pcap PATH (replay) or -i INTERFACE (live)")]
    NoSource,
    /// The configuration has errors (each already printed).
    #[error("{path}: configuration has {count} error(s); `shadowtap check` lists them")]
    Config {
        /// The file.
        path: PathBuf,
        /// How many.
        count: usize,
    },
    /// A requested source could not be opened (each already printed): a sensor must not start
    /// blind.
    #[error("{0} requested source(s) cannot be read; not starting blind")]
    Sources(usize),
    /// Anything else at start (listen address, state, store, privileges, web config).
    #[error("{0:#}")]
    Start(anyhow::Error),
}

impl RunError {
    /// The process exit code: 2 for a command line that cannot work, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            RunError::NoSource => 2,
            _ => 1,
        }
    }
}

impl From<anyhow::Error> for RunError {
    fn from(e: anyhow::Error) -> Self {
        RunError::Start(e)
    }
}

impl From<std::io::Error> for RunError {
    fn from(e: std::io::Error) -> Self {
        RunError::Start(e.into())
    }
}

/// The daemon's sink: attribution, aggregation, events and the daily rollup of every finished
/// flow, publication for scrapes, and hand-off of everything that writes to the writer thread.
pub struct Sensor {
    settings: Settings,
    aggregator: Aggregator,
    events: Events,
    exemptions: Vec<ExemptionInfo>,
    rollup: Option<Rollup>,
    /// A delta the writer's queue had no room for: merged into the next one.
    deferred: Option<Delta>,
    writer: writer::Handle,
    state: Arc<Mutex<State>>,
    reloads: [u64; 2],
    last_reload_unix: i64,
    /// libpcap totals of the live interfaces (received, dropped), for the capture-loss check;
    /// None without live interfaces.
    capture: Option<(u64, u64)>,
    last_publish: Instant,
    save_every: Duration,
    last_save: Instant,
    saving_state: bool,
    /// The replay was seen to end (it is saved once then).
    replay_seen: bool,
    last_event_tick: i64,
    /// Wall-clock time up to which uptime was recorded in the store.
    uptime_until: i64,
    /// Signals and reloads.
    control: Control,
    /// What the hand-off from the packet thread counted (published as metrics).
    handoff: Arc<HandoffStats>,
}

impl Sensor {
    fn account(&mut self, r: &FlowRecord) {
        let c = &self.settings.classifier;
        let a = c.attribute(r);
        let view = self.aggregator.add(r, &a, &c.catalog);
        if let Some(rollup) = &mut self.rollup {
            rollup.add(r, &a, &c.catalog);
        }
        let cat = &c.catalog;
        let service = a.target.map(|t| (cat.service_sym(t), cat.service(t).category_sym, cat.channel_sym(t)));
        // Only use reaches the detectors: a flow its server never answered is no use (unless
        // `count_unanswered`), so it fires no "first use" and adds no upload volume.
        let mut evs = if self.aggregator.unanswered_rule().counts_as_use(r) {
            let (revealed, hosts) = view.unwrap_or((false, 0));
            self.events.on_flow(r.ts_end, a.department, service, a.status, r.bytes_up, revealed, hosts)
        } else {
            Vec::new()
        };
        if self.aggregator.privacy().reveal_hosts {
            // An investigation: the operator turned host identities on (and the metric says so).
            for e in &mut evs {
                e.source = Some(events::Source { ip: r.client.ip().to_string() });
            }
        }
        let now = r.ts_end.secs();
        if now - self.last_event_tick >= EVENT_TICK_SECS {
            self.last_event_tick = now;
            let capture = self.capture;
            evs.extend(self.events.on_tick(r.ts_end, &self.exemptions, capture));
        }
        if !evs.is_empty() {
            let _ = self.writer.send(Job::Events(evs));
        }
    }

    /// Puts a reloaded configuration in force (between two flows) and records it in the store.
    fn apply(&mut self, reload: Reload, log: &mut dyn Write) -> std::io::Result<()> {
        match reload {
            Reload::Loaded(s, why) => {
                writeln!(log, "{}: configuration reloaded ({}): config {}, {} departments", s.path.display(), why.as_str(), short(&s.config_digest), s.classifier.department_ids().len())?;
                // Engine limits (and with them what unanswered flows count toward), privacy and
                // event thresholds take effect at the next start.
                let mut s = *s;
                s.unanswered = self.settings.unanswered;
                if let Some(rollup) = &mut self.rollup {
                    rollup.set_config(s.facts());
                    rollup.set_key_grace_days(s.store.key_grace_days);
                }
                let _ = self.writer.send(Job::Settings(s.store));
                self.exemptions = s.exemption_infos();
                (s.engine, s.privacy, s.events) = (self.settings.engine, self.settings.privacy, self.settings.events);
                self.settings = s;
                self.reloads[0] += 1;
                self.last_reload_unix = crate::time::Timestamp::wall_clock().secs();
            }
            Reload::Rejected(diags, why) => {
                for d in &diags {
                    writeln!(log, "error: {d}")?;
                }
                writeln!(log, "error: {}: reload ({}) rejected; the previous configuration stays in force", self.settings.path.display(), why.as_str())?;
                self.reloads[1] += 1;
            }
        }
        Ok(())
    }

    fn publish(&mut self, view: &View<'_>) {
        self.last_publish = Instant::now();
        self.aggregator.prune();
        let w = self.writer.stats();
        let mut snapshot = self.aggregator.snapshot();
        if let Some(rollup) = &self.rollup {
            snapshot.uncatalogued_dropped += rollup.stats.uncatalogued_dropped;
        }
        let st = State {
            snapshot,
            engine: view.engine.stats.clone(),
            table: view.engine.table_stats(),
            memory: view.engine.memory(),
            active_flows: view.engine.active_flows() as u64,
            capture: view.capture.to_vec(),
            ruleset: (self.settings.classifier.catalog.digest.clone(), self.settings.classifier.catalog.services.len()),
            config_digest: self.settings.config_digest.clone(),
            reloads: self.reloads,
            last_reload_unix: self.last_reload_unix,
            privacy: self.aggregator.privacy(),
            keys_drawn: self.aggregator.keys_drawn(),
            replay_done: view.replay_done,
            state_saves: [w.saves.ok, w.saves.failed],
            state_restored: self.aggregator.was_restored(),
            exemptions: self.exemptions.iter().map(|e| (e.department.clone(), e.service.clone(), e.expires_end)).collect(),
            events: self.events.stats.emitted.clone(),
            events_written: [w.events_written.ok, w.events_written.failed],
            store: w.store,
            sources: view.sources.to_vec(),
            longest_stall: view.longest_stall,
            handoff_dropped_flows: self.handoff.dropped_flows.load(Ordering::Relaxed),
            handoff_waits: self.handoff.waits.load(Ordering::Relaxed),
            writer_dropped: w.dropped,
            workers: view.workers as u64,
        };
        if let Ok(mut s) = self.state.lock() {
            *s = st;
        }
    }

    /// Hands the rollup's delta (with uptime and the sensor's counters) and a snapshot of the
    /// aggregation to the writer.
    fn save(&mut self, view: &View<'_>) {
        self.last_save = Instant::now();
        if let Some(rollup) = &mut self.rollup {
            let now = crate::time::Timestamp::wall_clock().secs();
            rollup.add_uptime(self.uptime_until, now);
            self.uptime_until = now;
            let (received, dropped) = capture_totals(view.capture);
            rollup.observe(Counters { packets: view.frames, capture_received: received, capture_dropped: dropped });
            let mut delta = self.deferred.take().unwrap_or_default();
            delta.merge(rollup.take());
            if let Err(back) = self.writer.send(Job::Flush(Box::new(delta))) {
                let mut back = *back;
                let lost = back.truncate(store::MAX_PENDING_ROWS);
                if lost > 0 {
                    self.writer.count_dropped(Dropped::Store, lost);
                }
                self.deferred = Some(back);
            }
        }
        if self.saving_state {
            let _ = self.writer.send(Job::Save(Box::new(self.aggregator.to_saved())));
        }
    }
}

impl Sink for Sensor {
    fn flow(&mut self, r: FlowRecord, _: &Origin) -> std::io::Result<()> {
        self.account(&r);
        Ok(())
    }

    fn tick(&mut self, view: &View<'_>, log: &mut dyn Write) -> std::io::Result<()> {
        if !view.capture.is_empty() {
            self.capture = Some(capture_totals(view.capture));
        }
        while let Some(reload) = self.control.try_reload() {
            self.apply(reload, log)?;
        }
        // The end of a replay is saved and shown at once: a replay-only run's numbers are final.
        let replay_ended = view.replay_done && !self.replay_seen;
        self.replay_seen = view.replay_done;
        if replay_ended || self.last_save.elapsed() >= self.save_every {
            self.save(view);
        }
        if replay_ended || self.last_publish.elapsed() >= PUBLISH_EVERY {
            self.publish(view);
        }
        Ok(())
    }
}

/// The daemon's diagnostics: standard error, whose failure (a restarted journal) must never
/// stop packet processing, so it is ignored.
struct Log;

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let _ = std::io::stderr().write_all(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture_totals(capture: &[(String, CaptureStats)]) -> (u64, u64) {
    capture.iter().fold((0, 0), |(r, d), (_, c)| (r + c.received, d + c.dropped + c.if_dropped))
}

/// "3 files, interfaces eth0, eth1", as logged at start (file names can be many).
fn describe_sources(sources: &[crate::export::metrics::SourceStatus]) -> String {
    use crate::export::metrics::SourceKind;
    let files = sources.iter().filter(|s| s.kind == SourceKind::File).count();
    let ifaces: Vec<&str> = sources.iter().filter(|s| s.kind == SourceKind::Interface).map(|s| s.name.as_str()).collect();
    match (files, ifaces.is_empty()) {
        (0, _) => format!("interfaces {}", ifaces.join(", ")),
        (n, true) => format!("{n} capture file(s)"),
        (n, false) => format!("{n} capture file(s), then interfaces {}", ifaces.join(", ")),
    }
}

/// The first 12 hex digits of a digest, as logged.
fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

/// Runs the daemon until SIGTERM/SIGINT.
///
/// # Errors
/// See [`RunError`]: nothing to read, an invalid configuration, a source that cannot be
/// opened, an unusable listen address, state or store, or an I/O failure of the server.
pub fn run(opts: RunOptions) -> Result<(), RunError> {
    if opts.pcaps.is_empty() && opts.live.is_empty() {
        return Err(RunError::NoSource);
    }
    let mut log = Log;
    let settings = match Settings::load(&opts.config) {
        Ok(s) => s,
        Err(diags) => {
            for d in &diags {
                eprintln!("error: {d}");
            }
            return Err(RunError::Config { path: opts.config.clone(), count: diags.len() });
        }
    };
    for w in &settings.warnings {
        eprintln!("warning: {w}");
    }
    if let Some(n) = settings.asn_source.note() {
        eprintln!("note: {n}");
    }
    let control = Control::start(Some((settings.path.clone(), settings.mapping_watch())), STOP_GRACE)?;
    let stop = Arc::clone(&control.stop);
    let web = match &opts.web_config {
        Some(p) => crate::serve::web::WebConfig::read(p).map_err(|e| anyhow::anyhow!(e))?,
        None => crate::serve::web::WebConfig::default(),
    };
    let listener = std::net::TcpListener::bind(opts.listen).map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", opts.listen))?;
    listener.set_nonblocking(true)?;

    // Capture devices first (they may need root or CAP_NET_RAW), then give privileges up
    // before the first packet is read.
    let popts = pipeline::Options {
        inputs: opts.pcaps.clone(),
        live: opts.live.clone(),
        filter: opts.filter.clone(),
        realtime: opts.realtime,
        max_frames: None,
        linger: true,
        workers: opts.workers,
    };
    let pipe = Pipeline::open(settings.engine, popts, Arc::clone(&control.stop), Arc::new(SystemClock), &mut log)?;
    if pipe.failed() > 0 {
        return Err(RunError::Sources(pipe.failed()));
    }
    if let Some(user) = &opts.user {
        drop_privileges(user)?;
    }

    let mut aggregator = Aggregator::new(settings.privacy).map_err(|e| anyhow::anyhow!("no pseudonym key: {e}"))?;
    aggregator.set_unanswered(settings.unanswered);
    if let Some(dir) = &opts.state_dir {
        match crate::aggregate::state::load(dir) {
            Ok(Some(saved)) => match aggregator.restore(saved) {
                Ok(()) => eprintln!(
                    "{}: state restored (the pseudonym key is new: a host seen before and after the restart may count twice in a window spanning it)",
                    dir.display()
                ),
                Err(e) => return Err(anyhow::anyhow!("{}: state not restored: {e}", dir.display()).into()),
            },
            Ok(None) => {}
            Err(e) => return Err(anyhow::anyhow!("state not restored: {e}").into()),
        }
    }
    let event_sink: Option<Box<dyn Write + Send>> = match &opts.events {
        None => None,
        Some(p) if p.as_os_str() == "-" => Some(Box::new(std::io::stdout())),
        Some(p) => Some(Box::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| anyhow::anyhow!("{}: cannot open the events file: {e}", p.display()))?,
        )),
    };
    let (store_writer, rollup) = match store::path_for_run(opts.store.as_deref(), opts.state_dir.as_deref()) {
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
            }
            let mut s = store::Store::open(&path).map_err(anyhow::Error::from)?;
            s.set_settings(settings.store);
            if s.stats.keys_lost > 0 {
                eprintln!(
                    "warning: {}: the key file is missing: new keys are drawn, and a host seen before and after counts twice in a period spanning the loss",
                    store::keys::path_for(&path).display()
                );
            }
            let sensor = opts.sensor_name.clone().unwrap_or_else(host_name);
            eprintln!("{}: rollup store (sensor {sensor})", path.display());
            let mut rollup = Rollup::new(s.keyring(), sensor.clone(), settings.store.key_grace_days);
            rollup.set_config(settings.facts());
            (Some(store::Writer::new(s, sensor)), Some(rollup))
        }
        None => (None, None),
    };
    let writer = writer::Handle::spawn(writer::Targets { store: store_writer, state_dir: opts.state_dir.clone(), events: event_sink })?;
    let scheme = if web.tls_server_config.is_some() { "https" } else { "http" };
    eprintln!(
        "shadowtap {} starting: config {} ({}), {} departments, k {}, sources {}; serving /metrics on {scheme}://{}",
        env!("CARGO_PKG_VERSION"),
        short(&settings.config_digest),
        settings.path.display(),
        settings.classifier.department_ids().len(),
        settings.privacy.min_group_size,
        describe_sources(&pipe.sources),
        listener.local_addr()?
    );
    let state = Arc::new(Mutex::new(State { sources: pipe.sources.clone(), ..State::default() }));
    let now = crate::time::Timestamp::wall_clock().secs();
    let sensor = Sensor {
        events: Events::new(settings.events),
        exemptions: settings.exemption_infos(),
        settings,
        aggregator,
        rollup,
        deferred: None,
        writer,
        state: Arc::clone(&state),
        reloads: [0; 2],
        last_reload_unix: now,
        capture: None,
        last_publish: Instant::now(),
        save_every: opts.save_every,
        last_save: Instant::now(),
        saving_state: opts.state_dir.is_some(),
        replay_seen: false,
        last_event_tick: i64::MIN / 2,
        uptime_until: now,
        control,
        handoff: Arc::new(HandoffStats::default()),
    };
    let ended = Arc::clone(&stop);
    let packets = std::thread::Builder::new().name("packets".into()).spawn(move || {
        let r = packet_thread(pipe, sensor);
        // Without its packet thread the sensor must not pretend to run: stop serving.
        ended.store(true, Ordering::Relaxed);
        r
    })?;
    let rt = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build()?;
    let served = rt.block_on(crate::serve::serve(listener, state, Arc::clone(&stop), web));
    // Without its HTTP side the sensor must not go on unseen: stop the packet thread too.
    stop.store(true, Ordering::Relaxed);
    let packets = packets.join().map_err(|_| anyhow::anyhow!("the packet thread failed"))?;
    served?;
    packets.map_err(RunError::from)
}

/// The packet thread: the pipeline into the sensor until a stop, then the final publication,
/// save and flush (waited for), and one line of what was seen.
fn packet_thread(mut pipe: Pipeline, sensor: Sensor) -> std::io::Result<()> {
    let mut log = Log;
    // The sensor's work per flow runs on a thread of its own (see `handoff`).
    let stats = Arc::clone(&sensor.handoff);
    let mut handoff = Handoff::start(sensor, stats, Log)?;
    let result = pipe.run(&mut handoff, &mut log);
    let (mut sensor, sink_result) = handoff.finish()?;
    let result = result.and_then(|o| sink_result.map(|()| o));
    // Clean stop: flows in progress were accounted by the pipeline; publish and save them.
    let view = pipe.view();
    sensor.publish(&view);
    sensor.save(&view);
    let (received, dropped) = capture_totals(view.capture);
    let Sensor { writer, .. } = sensor;
    let stats = writer.finish();
    let s = &pipe.counters().stats;
    eprintln!(
        "shadowtap stopped: {} packets, {} flows, {} decode drops, capture received {received} dropped {dropped}, store flushes {} ok {} failed, writer drops {}",
        s.frames,
        pipe.counters().table_stats().created,
        s.decode_drops.iter().sum::<u64>(),
        stats.store.map_or(0, |x| x.flushes[0]),
        stats.store.map_or(0, |x| x.flushes[1]),
        stats.dropped.iter().sum::<u64>(),
    );
    result.map(|_| ())
}
