//! `shadowtap run`: the long-lived sensor. A packet thread reads captures (files, replayed as
//! fast as possible or at their recorded pace, then live interfaces), runs the engine, attributes
//! every finished flow and aggregates it; a tokio runtime on the main thread serves `/metrics`,
//! `/healthz` and `/readyz` from the state the packet thread publishes about once a second.
//!
//! With a rollup store (`--store`, or `rollup.sqlite` in `--state-dir`), every finished flow also
//! goes to a [`crate::store::Rollup`], flushed to the store on the state-save schedule and at a
//! clean stop.
//!
//! Signals: SIGTERM/SIGINT stop cleanly (flows in progress are accounted, the final state is
//! published and the store flushed, the HTTP server drains); SIGHUP reloads the configuration
//! (all or nothing) and records the new one in the store.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::aggregate::Aggregator;
use crate::capture::file::{self, FileReader};
use crate::capture::{self, LiveOptions, Next, Source};
use crate::classify::Classifier;
use crate::engine::{self, Engine, FlowRecord};
use crate::export::events::{self, Events};
use crate::export::metrics::State;
use crate::store::{self, ConfigFacts, Counters, Writer};

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
    /// Engine limits.
    pub engine: engine::Config,
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
}

/// The machine's host name, naming the sensor (not a monitored host) in the store.
pub fn host_name() -> String {
    nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).filter(|h| !h.is_empty()).unwrap_or_else(|| "sensor".into())
}

/// Packet-time seconds between the periodic event checks (exemptions, capture loss).
pub const EVENT_TICK_SECS: i64 = 60;

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

struct Worker {
    engine: Engine,
    classifier: Classifier,
    aggregator: Aggregator,
    state: Arc<Mutex<State>>,
    reloads: [u64; 2],
    last_reload_unix: i64,
    capture: Vec<(String, capture::CaptureStats)>,
    last_publish: Instant,
    state_dir: Option<PathBuf>,
    save_every: Duration,
    last_save: Instant,
    saves: [u64; 2],
    events: Events,
    event_sink: Option<Box<dyn std::io::Write + Send>>,
    last_event_tick: i64,
    events_written: [u64; 2],
    store: Option<Writer>,
    /// Wall-clock time up to which uptime was recorded in the store.
    uptime_until: i64,
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl Worker {
    fn account(&mut self, r: FlowRecord) {
        let a = self.classifier.attribute(&r);
        let view = self.aggregator.add(&r, &a, &self.classifier.catalog);
        if let Some(w) = &mut self.store {
            w.rollup.add(&r, &a, &self.classifier.catalog);
        }
        let cat = &self.classifier.catalog;
        let service = a.target.map(|t| (cat.service(t).id.as_str(), cat.service(t).category.as_str(), cat.channel(t)));
        let (revealed, hosts) = view.unwrap_or((false, 0));
        let mut evs = self.events.on_flow(r.ts_end, &a.department, service, a.status, r.bytes_up, revealed, hosts);
        if self.aggregator.privacy().reveal_hosts {
            // An investigation: the operator turned host identities on (and the metric says so).
            for e in &mut evs {
                e.source = Some(events::Source { ip: r.client.ip().to_string() });
            }
        }
        self.emit(evs);
        let now = r.ts_end.secs();
        if now - self.last_event_tick >= EVENT_TICK_SECS {
            self.last_event_tick = now;
            let capture = (!self.capture.is_empty()).then(|| {
                self.capture.iter().fold((0, 0), |(r, d), (_, c)| (r + c.received, d + c.dropped + c.if_dropped))
            });
            let evs = self.events.on_tick(r.ts_end, &self.classifier.exemptions(), capture);
            self.emit(evs);
        }
    }

    /// Writes events (when a sink is configured); write failures are counted, never fatal.
    fn emit(&mut self, evs: Vec<crate::export::events::Event>) {
        let Some(sink) = self.event_sink.as_mut() else { return };
        for e in &evs {
            match events::write(sink, e) {
                Ok(()) => self.events_written[0] += 1,
                Err(_) => self.events_written[1] += 1,
            }
        }
        if !evs.is_empty() {
            let _ = sink.flush();
        }
    }

    /// Ends every flow still in the table (end of a capture, or a clean stop) and accounts it.
    fn finish_flows(&mut self) {
        let mut ended = Vec::new();
        let _ = self.engine.finish_with(|r| -> Result<(), ()> {
            ended.push(r);
            Ok(())
        });
        for r in ended {
            self.account(r);
        }
    }

    fn drain(&mut self) {
        for r in std::mem::take(&mut self.engine.records) {
            self.account(r);
        }
    }

    fn publish(&mut self, replay_done: bool) {
        self.last_publish = Instant::now();
        self.aggregator.prune();
        let st = State {
            snapshot: self.aggregator.snapshot(),
            engine: self.engine.stats.clone(),
            table: self.engine.table_stats(),
            active_flows: self.engine.active_flows() as u64,
            capture: self.capture.clone(),
            ruleset: (self.classifier.catalog.digest.clone(), self.classifier.catalog.services.len()),
            config_digest: self.classifier.config_digest.clone(),
            reloads: self.reloads,
            last_reload_unix: self.last_reload_unix,
            privacy: self.aggregator.privacy(),
            keys_drawn: self.aggregator.keys_drawn(),
            replay_done,
            state_saves: self.saves,
            state_restored: self.aggregator.was_restored(),
            exemptions: self.classifier.exemptions().into_iter().map(|e| (e.department, e.service, e.expires_end)).collect(),
            events: self.events.stats.emitted.clone(),
            events_written: self.events_written,
            store: self.store.as_ref().map(|w| w.store.stats),
            sources: Vec::new(),
        };
        if let Ok(mut s) = self.state.lock() {
            *s = st;
        }
    }

    fn maybe_publish(&mut self, replay_done: bool) {
        if self.last_publish.elapsed() >= PUBLISH_EVERY {
            self.publish(replay_done);
        }
        if self.last_save.elapsed() >= self.save_every {
            self.save();
        }
    }

    /// Saves the aggregation (no-op without a state directory) and flushes the rollup store
    /// (no-op without one); failures are reported and counted, never fatal.
    fn save(&mut self) {
        self.last_save = Instant::now();
        self.flush_store();
        let Some(dir) = &self.state_dir else { return };
        match crate::aggregate::state::save(dir, &self.aggregator) {
            Ok(_) => self.saves[0] += 1,
            Err(e) => {
                eprintln!("error: {}: state not saved: {e}", dir.display());
                self.saves[1] += 1;
            }
        }
    }

    /// Records uptime and the sensor's counters in the rollup, then flushes it; a failed flush
    /// keeps its rows for the next one (bounded, see [`store::MAX_PENDING_ROWS`]).
    fn flush_store(&mut self) {
        let Some(w) = &mut self.store else { return };
        let now = unix_now();
        w.rollup.add_uptime(self.uptime_until, now);
        self.uptime_until = now;
        let (received, dropped) = self.capture.iter().fold((0, 0), |(r, d), (_, c)| (r + c.received, d + c.dropped + c.if_dropped));
        w.rollup.observe(Counters { packets: self.engine.stats.frames, capture_received: received, capture_dropped: dropped });
        if let Err(e) = w.flush() {
            eprintln!("error: rollup store not flushed ({} rows kept for the next flush): {e}", w.pending_rows());
        }
    }

    fn reload(&mut self, path: &std::path::Path) {
        match Classifier::load(path) {
            Ok(c) => {
                eprintln!("{}: configuration reloaded (SIGHUP)", path.display());
                if let Some(w) = &mut self.store {
                    w.rollup.set_config(ConfigFacts::of(&c));
                    w.rollup.set_key_grace_days(c.store.key_grace_days);
                    w.store.set_settings(c.store);
                }
                self.classifier = c;
                self.reloads[0] += 1;
                self.last_reload_unix = unix_now();
            }
            Err(diags) => {
                for d in &diags {
                    eprintln!("error: {d}");
                }
                eprintln!("error: {}: reload rejected; the previous configuration stays in force", path.display());
                self.reloads[1] += 1;
            }
        }
    }
}

/// The packet thread: replays files, then reads live interfaces, until `stop`.
fn packet_thread(mut w: Worker, opts: RunOptions, stop: Arc<AtomicBool>, hup: Arc<AtomicBool>) -> anyhow::Result<()> {
    // Capture devices first (they may need root or CAP_NET_RAW), then give privileges up
    // before the first packet is read.
    let mut sources = Vec::new();
    for l in &opts.live {
        match Source::open_live(l) {
            Ok(s) => sources.push(s),
            Err(e) => eprintln!("error: {e}"),
        }
    }
    if let Some(user) = &opts.user {
        drop_privileges(user)?;
    }
    let files = capture::expand_inputs(&opts.pcaps)?;
    for path in &files {
        let mut reader = match FileReader::open(path) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                continue;
            }
        };
        // Pacing of --realtime: wall time at which the file's first frame is "now".
        let mut pace: Option<(Instant, crate::time::Timestamp)> = None;
        loop {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            if hup.swap(false, Ordering::Relaxed) {
                w.reload(&opts.config);
            }
            let (batch, status) = reader.next_batch();
            if opts.realtime {
                if let Some(first) = batch.first() {
                    let (t0, p0) = *pace.get_or_insert((Instant::now(), first.ts));
                    let due = t0 + Duration::from_micros(first.ts.micros_since(p0));
                    let wait = due.saturating_duration_since(Instant::now());
                    if !wait.is_zero() {
                        std::thread::sleep(wait.min(Duration::from_secs(1)));
                    }
                }
            }
            w.engine.handle_batch(&batch);
            drop(batch);
            w.drain();
            w.maybe_publish(false);
            match status {
                file::Next::More => {}
                file::Next::End => break,
                file::Next::Truncated(m) => {
                    eprintln!("warning: {}: truncated capture ({m})", path.display());
                    break;
                }
                file::Next::Failed(m) => {
                    eprintln!("error: {}: {m}", path.display());
                    break;
                }
            }
        }
        w.finish_flows();
        w.engine.forget_dns_answers();
    }
    w.publish(opts.live.is_empty());

    while !sources.is_empty() && !stop.load(Ordering::Relaxed) {
        if hup.swap(false, Ordering::Relaxed) {
            w.reload(&opts.config);
        }
        for s in &mut sources {
            // Each read waits at most LIVE_READ_TIMEOUT_MS, so several interfaces interleave.
            for _ in 0..file::BATCH {
                match s.next() {
                    Next::Frame(f) => w.engine.handle(f.ts, f.link, f.data, f.wire_len),
                    Next::Idle | Next::End => break,
                    Next::Failed(m) => {
                        eprintln!("error: {}: {m}", s.name);
                        break;
                    }
                }
            }
        }
        // Live packets carry wall-clock timestamps: a quiet link still ends its idle flows.
        w.engine.tick(crate::time::Timestamp::from_parts(unix_now(), 0));
        w.drain();
        if w.last_publish.elapsed() >= PUBLISH_EVERY {
            w.capture = sources.iter_mut().filter_map(|s| s.stats().map(|c| (s.name.clone(), c))).collect();
        }
        w.maybe_publish(true);
    }
    // Clean stop: flows in progress are accounted before the final state is published.
    w.finish_flows();
    w.save();
    w.publish(true);
    Ok(())
}

/// Runs the daemon until SIGTERM/SIGINT.
///
/// # Errors
/// An invalid configuration, an unusable listen address, or an I/O failure of the server.
pub fn run(opts: RunOptions) -> anyhow::Result<()> {
    let classifier = match Classifier::load(&opts.config) {
        Ok(c) => c,
        Err(diags) => {
            for d in &diags {
                eprintln!("error: {d}");
            }
            anyhow::bail!("{}: configuration has {} error(s)", opts.config.display(), diags.len());
        }
    };
    for w in &classifier.warnings {
        eprintln!("warning: {w}");
    }
    let stop = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup))?;
    let web = match &opts.web_config {
        Some(p) => crate::serve::web::WebConfig::read(p).map_err(|e| anyhow::anyhow!(e))?,
        None => crate::serve::web::WebConfig::default(),
    };
    let state = Arc::new(Mutex::new(State::default()));
    let listener = std::net::TcpListener::bind(opts.listen)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", opts.listen))?;
    listener.set_nonblocking(true)?;
    let scheme = if web.tls_server_config.is_some() { "https" } else { "http" };
    eprintln!("serving /metrics on {scheme}://{}", listener.local_addr()?);

    let mut aggregator = Aggregator::new(classifier.privacy).map_err(|e| anyhow::anyhow!("no pseudonym key: {e}"))?;
    if let Some(dir) = &opts.state_dir {
        match crate::aggregate::state::load(dir) {
            Ok(Some(saved)) => match aggregator.restore(saved) {
                Ok(()) => eprintln!(
                    "{}: state restored (the pseudonym key is new: a host seen before and after the restart may count twice in a window spanning it)",
                    dir.display()
                ),
                Err(e) => anyhow::bail!("{}: state not restored: {e}", dir.display()),
            },
            Ok(None) => {}
            Err(e) => anyhow::bail!("state not restored: {e}"),
        }
    }
    let event_sink: Option<Box<dyn std::io::Write + Send>> = match &opts.events {
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
    let writer = match store::path_for_run(opts.store.as_deref(), opts.state_dir.as_deref()) {
        Some(path) => {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?;
            }
            let mut s = store::Store::open(&path)?;
            s.set_settings(classifier.store);
            if s.stats.keys_lost > 0 {
                eprintln!(
                    "warning: {}: the key file is missing: new keys are drawn, and a host seen before and after counts twice in a period spanning the loss",
                    store::keys::path_for(&path).display()
                );
            }
            let sensor = opts.sensor_name.clone().unwrap_or_else(host_name);
            eprintln!("{}: rollup store (sensor {sensor})", path.display());
            let mut w = Writer::new(s, sensor);
            w.rollup.set_config(ConfigFacts::of(&classifier));
            Some(w)
        }
        None => None,
    };
    let events = Events::new(classifier.events);
    let worker = Worker {
        engine: Engine::new(opts.engine),
        aggregator,
        classifier,
        state: Arc::clone(&state),
        reloads: [0; 2],
        last_reload_unix: unix_now(),
        capture: Vec::new(),
        last_publish: Instant::now(),
        state_dir: opts.state_dir.clone(),
        save_every: opts.save_every,
        last_save: Instant::now(),
        saves: [0; 2],
        events,
        event_sink,
        last_event_tick: i64::MIN / 2,
        events_written: [0; 2],
        store: writer,
        uptime_until: unix_now(),
    };
    let (o, s, h) = (opts.clone(), Arc::clone(&stop), Arc::clone(&hup));
    let packets = std::thread::Builder::new().name("packets".into()).spawn(move || {
        let result = packet_thread(worker, o, Arc::clone(&s), h);
        if let Err(e) = &result {
            // Without its packet thread the sensor must not pretend to run: stop serving.
            eprintln!("error: {e:#}");
            s.store(true, Ordering::Relaxed);
        }
        result
    })?;

    let rt = tokio::runtime::Builder::new_current_thread().enable_io().enable_time().build()?;
    rt.block_on(crate::serve::serve(listener, state, Arc::clone(&stop), web))?;
    stop.store(true, Ordering::Relaxed);
    match packets.join() {
        Ok(r) => r,
        Err(_) => anyhow::bail!("the packet thread failed"),
    }
}
