//! The one capture → engine loop of every command: capture files in turn (each its own
//! capture: its flows end with it), then live interfaces, in batches, until the sources end or
//! a stop is asked. What happens to finished flows is the [`Sink`]'s business: ordered JSON
//! lines (`inspect`), the rollup of a survey, or attribution, aggregation and hand-off to the
//! background writer (`run`).
//!
//! The packet path runs on [`Workers`]: this loop reads, splits the frames over the engine
//! shards (`--workers`) and hands the resolved records to the sink.
//!
//! The loop owns the engine and the state of every source (what `/readyz` and
//! `shadowtap_sources` show); it does no blocking I/O besides reading packets, and it measures
//! its own longest stall (the time between two reads), so a sink that blocks shows in a
//! metric.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::capture::file::{self, FileReader};
use crate::capture::{self, CaptureStats, LiveOptions, LiveStatus, OfflineFilter, Source};
use super::workers::Workers;
use crate::engine::{self, Counters, FlowRecord};
use crate::export::metrics::{SourceKind, SourceState, SourceStatus};
use crate::time::Timestamp;

/// The wall clock, injected into the pipeline: live packets carry wall-clock timestamps, so a
/// quiet link still ends its idle flows on it; tests drive it by hand.
pub trait Clock: Send + Sync {
    /// Now, as a packet timestamp.
    fn now(&self) -> Timestamp;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::wall_clock()
    }
}

/// What the pipeline reads and how.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Capture files or directories (`-` = standard input), read in turn first.
    pub inputs: Vec<PathBuf>,
    /// Live interfaces, read together after the files.
    pub live: Vec<LiveOptions>,
    /// BPF filter applied to every source.
    pub filter: Option<String>,
    /// Replay files at their recorded pace instead of as fast as possible.
    pub realtime: bool,
    /// Stop reading an interface after this many frames.
    pub max_frames: Option<u64>,
    /// Once every source has ended, keep calling the sink's `tick` until a stop is asked (the
    /// daemon keeps serving, reloading and saving after a replay).
    pub linger: bool,
    /// Engine shards, each on its own thread (0: [`super::workers::default_workers`]). With a
    /// live interface, one: the kernel does not split a live capture by flow here (no
    /// `PACKET_FANOUT`), and one reader copying every frame would not go faster; asking for
    /// more says so on the log.
    pub workers: usize,
}

/// Where a finished flow came from.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The capture's name as records show it (a file name, or an interface).
    pub name: Arc<str>,
    /// From a live interface: write it at once (no later flow can start before it).
    pub live: bool,
}

/// What the pipeline shows its sink at every tick.
pub struct View<'a> {
    /// The engine's counters, summed over its shards (the shards' part as of their last report,
    /// about every second; exact after each capture).
    pub engine: &'a Counters,
    /// Frames read so far (exact).
    pub frames: u64,
    /// Engine shards in use.
    pub workers: usize,
    /// Every source asked for, with its state.
    pub sources: &'a [SourceStatus],
    /// libpcap statistics of the live interfaces.
    pub capture: &'a [(String, CaptureStats)],
    /// Every file has been read.
    pub replay_done: bool,
    /// Longest time between two reads of packets so far.
    pub longest_stall: Duration,
}

/// The stage behind the engine.
pub trait Sink {
    /// A flow ended.
    ///
    /// # Errors
    /// An output error stops the pipeline (a closed pipe under `inspect`).
    fn flow(&mut self, record: FlowRecord, origin: &Origin) -> std::io::Result<()>;

    /// Called after every batch and every idle read (at least every
    /// [`capture::LIVE_READ_TIMEOUT_MS`] on a live link, every [`LINGER_TICK`] after the
    /// sources ended): publish, hand off, apply a reload (diagnostics go to `log`). It must
    /// not block.
    ///
    /// # Errors
    /// As [`Sink::flow`].
    fn tick(&mut self, view: &View<'_>, log: &mut dyn Write) -> std::io::Result<()>;

    /// Every flow of a capture file has been delivered (records held for ordering can go);
    /// `span` is the time of its first and last frame, if it had any.
    ///
    /// # Errors
    /// As [`Sink::flow`].
    fn capture_done(&mut self, span: Option<(Timestamp, Timestamp)>) -> std::io::Result<()> {
        let _ = span;
        Ok(())
    }

    /// The timestamps of a batch of frames read from a capture file (after `--filter`), for a
    /// sink that measures the time that holds packets (a survey's coverage). Ignored by default.
    fn packet_times(&mut self, times: &mut dyn Iterator<Item = Timestamp>) {
        let _ = times;
    }

    /// Whether [`Sink::packet_times`] does anything: the pipeline skips the call otherwise
    /// (a sink behind a thread would pay for copying the times over).
    fn wants_packet_times(&self) -> bool {
        false
    }
}

/// Pause between two ticks once every source has ended (`Options::linger`).
pub const LINGER_TICK: Duration = Duration::from_millis(100);

/// How often the live interfaces' libpcap statistics are read for the sink.
pub const CAPTURE_STATS_EVERY: Duration = Duration::from_secs(1);

/// Longest single sleep of `--realtime` pacing: a stop is noticed within it.
pub const MAX_PACING_SLEEP: Duration = Duration::from_secs(1);

/// How a run ended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Sources that could not be opened or failed (each already reported).
    pub failed: usize,
    /// Files that ended mid-record (what they held was used).
    pub truncated: usize,
    /// Frames read.
    pub frames: u64,
}

/// One capture → engine loop over a set of sources.
pub struct Pipeline {
    /// The packet path: splitter, engine shards, resolver.
    workers: Workers,
    /// Every source asked for: files first (in reading order), then interfaces.
    pub sources: Vec<SourceStatus>,
    files: Vec<(usize, PathBuf)>,
    live: Vec<(usize, Source)>,
    capture: Vec<(String, CaptureStats)>,
    /// Name of the flows ended at a stop (the interface's, when there is one).
    live_origin: Origin,
    opts: Options,
    stop: Arc<AtomicBool>,
    clock: Arc<dyn Clock>,
    outcome: Outcome,
    replay_done: bool,
    longest_stall: Duration,
    /// Files that ended mid-record, in reading order: the path as given and why (what they
    /// held before the cut was used).
    pub truncated: Vec<(String, String)>,
}

impl Pipeline {
    /// Opens the live interfaces (they may need privileges: the caller gives them up after
    /// this) and lists the files. What cannot be opened is reported on `log`, marked failed and
    /// counted; the caller decides whether that is fatal ([`Pipeline::failed`]).
    /// `config` bounds the whole engine; with several workers each shard gets its share.
    ///
    /// # Errors
    /// An error writing `log`, or a worker thread that cannot be started.
    pub fn open(config: engine::Config, opts: Options, stop: Arc<AtomicBool>, clock: Arc<dyn Clock>, log: &mut dyn Write) -> std::io::Result<Pipeline> {
        let mut n = match opts.workers {
            0 => super::workers::default_workers(),
            n => n,
        };
        if n > 1 && !opts.live.is_empty() {
            if opts.workers > 1 {
                writeln!(log, "warning: --workers {n}: a live capture runs one engine worker (no PACKET_FANOUT); using 1")?;
            }
            n = 1;
        }
        let mut p = Pipeline {
            workers: Workers::new(config, n)?,
            sources: Vec::new(),
            files: Vec::new(),
            live: Vec::new(),
            capture: Vec::new(),
            live_origin: Origin { name: Arc::from("-"), live: true },
            stop,
            clock,
            outcome: Outcome::default(),
            replay_done: false,
            longest_stall: Duration::ZERO,
            truncated: Vec::new(),
            opts,
        };
        for input in p.opts.inputs.clone() {
            match capture::expand_inputs(std::slice::from_ref(&input)) {
                Ok(files) => {
                    for f in files {
                        // A path that does not exist fails now, not after the files before it
                        // (a FIFO is not opened here: that would wait for its writer).
                        let missing = if f.as_os_str() == "-" { None } else { std::fs::metadata(&f).err() };
                        if let Some(e) = missing {
                            let e = capture::CaptureError::Open { source_name: f.display().to_string(), reason: e.to_string(), hint: String::new() };
                            writeln!(log, "error: {e}")?;
                            p.fail_new(SourceKind::File, f.display().to_string(), e.to_string());
                            continue;
                        }
                        p.files.push((p.sources.len(), f.clone()));
                        p.sources.push(status(SourceKind::File, f.display().to_string(), SourceState::Pending));
                    }
                }
                Err(e) => {
                    writeln!(log, "error: {e}")?;
                    p.fail_new(SourceKind::File, input.display().to_string(), e.to_string());
                }
            }
        }
        for l in p.opts.live.clone() {
            let opened = Source::open_live(&l).and_then(|mut s| {
                if let Some(f) = &p.opts.filter {
                    s.set_filter(f)?;
                }
                Ok(s)
            });
            match opened {
                Ok(s) => {
                    if s.link.is_none() {
                        writeln!(log, "warning: {}: link type {} is not supported; its frames are counted as unsupported_link", s.name, s.dlt)?;
                    }
                    p.live.push((p.sources.len(), s));
                    p.sources.push(status(SourceKind::Interface, l.interface.clone(), SourceState::Pending));
                }
                Err(e) => {
                    writeln!(log, "error: {e}")?;
                    p.fail_new(SourceKind::Interface, l.interface.clone(), e.to_string());
                }
            }
        }
        Ok(p)
    }

    fn fail_new(&mut self, kind: SourceKind, name: String, error: String) {
        self.outcome.failed += 1;
        self.sources.push(SourceStatus { kind, name, state: SourceState::Failed, error: Some(error) });
    }

    fn fail(&mut self, i: usize, error: String) {
        self.outcome.failed += 1;
        if let Some(s) = self.sources.get_mut(i) {
            s.state = SourceState::Failed;
            s.error = Some(error);
        }
    }

    fn set(&mut self, i: usize, state: SourceState) {
        if let Some(s) = self.sources.get_mut(i) {
            s.state = state;
        }
    }

    /// Sources that could not be opened or failed so far.
    pub fn failed(&self) -> usize {
        self.outcome.failed
    }

    /// Reads every source to its end (or until a stop is asked), then, with
    /// [`Options::linger`], keeps ticking until a stop is asked. Flows still in progress at a
    /// stop are ended and delivered.
    ///
    /// # Errors
    /// An error of the sink or of `log` (a closed pipe).
    pub fn run(&mut self, sink: &mut dyn Sink, log: &mut dyn Write) -> std::io::Result<Outcome> {
        let files = std::mem::take(&mut self.files);
        for (i, path) in &files {
            if self.stopped() {
                break;
            }
            self.read_file(*i, path, sink, log)?;
        }
        self.replay_done = true;
        self.tick(sink, log)?;
        if !self.live.is_empty() {
            self.read_live(sink, log)?;
        }
        while self.opts.linger && !self.stopped() {
            std::thread::sleep(LINGER_TICK);
            self.tick(sink, log)?;
        }
        let origin = self.live_origin.clone();
        self.finish(sink, &origin)?;
        Ok(self.outcome)
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// What the sink is shown now.
    pub fn view(&self) -> View<'_> {
        View {
            engine: self.workers.counters(),
            frames: self.workers.frames(),
            workers: self.workers.len(),
            sources: &self.sources,
            capture: &self.capture,
            replay_done: self.replay_done,
            longest_stall: self.longest_stall,
        }
    }

    fn tick(&mut self, sink: &mut dyn Sink, log: &mut dyn Write) -> std::io::Result<()> {
        sink.tick(&self.view(), log)
    }

    /// The engine's counters (see [`View::engine`]).
    pub fn counters(&self) -> &Counters {
        self.workers.counters()
    }

    /// Engine shards in use.
    pub fn workers(&self) -> usize {
        self.workers.len()
    }

    /// Hands the finished records to the sink.
    fn deliver(&mut self, sink: &mut dyn Sink, origin: &Origin) -> std::io::Result<()> {
        let records = self.workers.records();
        while let Some(r) = records.pop_front() {
            sink.flow(r, origin)?;
        }
        Ok(())
    }

    /// Ends every flow still held and delivers it; the capture's DNS answers are forgotten.
    fn finish(&mut self, sink: &mut dyn Sink, origin: &Origin) -> std::io::Result<()> {
        self.deliver(sink, origin)?;
        self.workers.finish(|r| sink.flow(r, origin))
    }

    /// Notes the time since the last read as a stall candidate, and restarts the count.
    fn read_starts(&mut self, since: &mut Instant) {
        self.longest_stall = self.longest_stall.max(since.elapsed());
    }

    fn read_file(&mut self, i: usize, path: &std::path::Path, sink: &mut dyn Sink, log: &mut dyn Write) -> std::io::Result<()> {
        let mut reader = match FileReader::open(path) {
            Ok(r) => r,
            Err(e) => {
                writeln!(log, "error: {e}")?;
                self.fail(i, e.to_string());
                return self.tick(sink, log);
            }
        };
        self.set(i, SourceState::Reading);
        let origin = Origin { name: display_name(&path.display().to_string()), live: false };
        let mut filter = self.opts.filter.as_deref().map(OfflineFilter::new);
        let path_text = path.display().to_string();
        // The vector of the last batch, for the next one.
        let mut spare = Vec::new();
        let (mut frames, mut warned) = (0u64, 0usize);
        let mut span: Option<(Timestamp, Timestamp)> = None;
        // Pacing of --realtime: wall time at which the file's first frame is "now".
        let mut pace: Option<(Instant, Timestamp)> = None;
        let mut last_read = Instant::now();
        let mut ended = SourceState::Done;
        loop {
            if self.stopped() {
                break;
            }
            self.read_starts(&mut last_read);
            let (mut batch, status) = reader.next_batch_in(std::mem::take(&mut spare));
            if self.opts.realtime {
                if let Some(first) = batch.first() {
                    pace_wait(&mut pace, first.ts);
                }
            }
            last_read = Instant::now();
            if let Some(f) = filter.as_mut() {
                // In place: the batch's vector goes back to the reader (no allocation per batch).
                let mut failed = None;
                batch.retain(|fr| {
                    if failed.is_some() {
                        return false;
                    }
                    f.matches(&path_text, fr).unwrap_or_else(|e| {
                        failed = Some(e);
                        false
                    })
                });
                if let Some(e) = failed {
                    writeln!(log, "error: {e}")?;
                    self.fail(i, e.to_string());
                    return self.finish_capture(sink, &origin, span, log);
                }
            }
            frames += batch.len() as u64;
            if let (Some(first), Some(last)) = (batch.first(), batch.last()) {
                span = Some((span.map_or(first.ts, |s| s.0), last.ts));
                if sink.wants_packet_times() {
                    sink.packet_times(&mut batch.iter().map(|f| f.ts));
                }
            }
            self.workers.handle_batch(&batch);
            if self.opts.realtime {
                // At the recorded pace, a flow's record should not wait for more frames.
                self.workers.flush();
            }
            spare = crate::capture::file::recycle(batch);
            self.deliver(sink, &origin)?;
            if reader.unsupported_dlts.len() > warned {
                for dlt in &reader.unsupported_dlts[warned..] {
                    writeln!(log, "warning: {}: link type {dlt} is not supported; its frames are counted as unsupported_link", path.display())?;
                }
                warned = reader.unsupported_dlts.len();
            }
            match status {
                file::Next::More => {}
                file::Next::End => break,
                file::Next::Truncated(msg) => {
                    writeln!(log, "warning: {}: truncated capture ({msg}); used the {frames} frames before the cut", path.display())?;
                    self.outcome.truncated += 1;
                    self.truncated.push((path.display().to_string(), msg.to_string()));
                    break;
                }
                file::Next::Failed(msg) => {
                    writeln!(log, "error: {}: corrupt after {frames} frames: {msg}", path.display())?;
                    self.fail(i, format!("corrupt after {frames} frames: {msg}"));
                    ended = SourceState::Failed;
                    break;
                }
            }
            self.tick(sink, log)?;
        }
        self.outcome.frames += frames;
        if ended == SourceState::Done {
            self.set(i, SourceState::Done);
        }
        self.finish_capture(sink, &origin, span, log)
    }

    /// End of a capture file: its flows end with it, and so do its DNS answers.
    fn finish_capture(&mut self, sink: &mut dyn Sink, origin: &Origin, span: Option<(Timestamp, Timestamp)>, log: &mut dyn Write) -> std::io::Result<()> {
        self.finish(sink, origin)?;
        sink.capture_done(span)?;
        self.tick(sink, log)
    }

    fn read_live(&mut self, sink: &mut dyn Sink, log: &mut dyn Write) -> std::io::Result<()> {
        let mut live = std::mem::take(&mut self.live);
        let origins: Vec<Origin> = live.iter().map(|(_, s)| Origin { name: display_name(&s.name), live: true }).collect();
        // Flows ended by the clock or at a stop are named after the interface when there is one.
        let all = match origins.as_slice() {
            [one] => one.clone(),
            _ => Origin { name: Arc::from("-"), live: true },
        };
        let mut frames = vec![0u64; live.len()];
        let mut open: Vec<bool> = vec![true; live.len()];
        for (i, _) in &live {
            self.set(*i, SourceState::Reading);
        }
        let mut last_read = Instant::now();
        let mut last_stats = Instant::now();
        // The vector of the last batch, for the next one (no allocation per batch).
        let mut spare = Vec::new();
        while open.iter().any(|o| *o) && !self.stopped() {
            for (n, (i, source)) in live.iter_mut().enumerate() {
                if !open[n] {
                    continue;
                }
                self.read_starts(&mut last_read);
                // Each read waits at most LIVE_READ_TIMEOUT_MS, so several interfaces interleave.
                let (batch, status) = source.next_batch_in(std::mem::take(&mut spare));
                last_read = Instant::now();
                let room = self.opts.max_frames.map_or(usize::MAX, |m| m.saturating_sub(frames[n]) as usize);
                let take = batch.len().min(room);
                self.workers.handle_batch(batch.get(..take).unwrap_or_default());
                // Wait for the shard: each record goes out with the interface that ended it.
                self.workers.sync();
                frames[n] += take as u64;
                spare = crate::capture::file::recycle(batch);
                self.deliver(sink, &origins[n])?;
                match status {
                    LiveStatus::More | LiveStatus::Idle => {}
                    LiveStatus::End => {
                        open[n] = false;
                        self.set(*i, SourceState::Done);
                    }
                    LiveStatus::Failed(msg) => {
                        writeln!(log, "error: {}: capture failed after {} frames: {msg}", source.name, frames[n])?;
                        open[n] = false;
                        self.fail(*i, format!("capture failed: {msg}"));
                    }
                }
                if self.opts.max_frames.is_some_and(|m| frames[n] >= m) {
                    open[n] = false;
                    self.set(*i, SourceState::Done);
                }
            }
            // Live packets carry wall-clock timestamps: a quiet link still ends its idle flows.
            self.workers.tick(self.clock.now());
            self.workers.sync();
            self.deliver(sink, &all)?;
            // libpcap's statistics are a system call per interface: read them about once a
            // second, not after every batch.
            if last_stats.elapsed() >= CAPTURE_STATS_EVERY || self.capture.is_empty() {
                last_stats = Instant::now();
                self.capture = live.iter_mut().filter_map(|(_, s)| s.stats().map(|c| (s.name.clone(), c))).collect();
            }
            self.tick(sink, log)?;
        }
        for (n, (_, s)) in live.iter_mut().enumerate() {
            if let Some(st) = s.stats() {
                writeln!(log, "{}: received {} dropped-by-kernel {} dropped-by-interface {}", s.name, st.received, st.dropped, st.if_dropped)?;
            }
            self.outcome.frames += frames[n];
        }
        self.live = live;
        self.live_origin = all;
        Ok(())
    }
}

fn status(kind: SourceKind, name: String, state: SourceState) -> SourceStatus {
    SourceStatus { kind, name, state, error: None }
}

/// `--realtime`: waits until a batch's first frame's recorded time has come (at most
/// [`MAX_PACING_SLEEP`] per call, so a stop is noticed).
fn pace_wait(pace: &mut Option<(Instant, Timestamp)>, next: Timestamp) {
    let (t0, p0) = *pace.get_or_insert((Instant::now(), next));
    let due = t0 + Duration::from_micros(next.micros_since(p0));
    let wait = due.saturating_duration_since(Instant::now());
    if !wait.is_zero() {
        std::thread::sleep(wait.min(MAX_PACING_SLEEP));
    }
}

/// The file name of a path (what the `capture` field shows).
pub fn display_name(source: &str) -> Arc<str> {
    Arc::from(
        std::path::Path::new(source)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| source.to_string()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Counts what the pipeline hands over.
    #[derive(Default)]
    struct Count {
        flows: usize,
        names: Vec<String>,
        captures: Vec<Option<(Timestamp, Timestamp)>>,
        ticks: usize,
        replay_done_seen: bool,
    }

    impl Sink for Count {
        fn flow(&mut self, _: FlowRecord, origin: &Origin) -> std::io::Result<()> {
            self.flows += 1;
            self.names.push(origin.name.to_string());
            Ok(())
        }

        fn tick(&mut self, view: &View<'_>, _: &mut dyn Write) -> std::io::Result<()> {
            self.ticks += 1;
            self.replay_done_seen |= view.replay_done;
            Ok(())
        }

        fn capture_done(&mut self, span: Option<(Timestamp, Timestamp)>) -> std::io::Result<()> {
            self.captures.push(span);
            Ok(())
        }
    }

    fn pcaps(names: &[&str]) -> Vec<PathBuf> {
        names.iter().map(|n| Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps").join(n)).collect()
    }

    fn open(inputs: Vec<PathBuf>, log: &mut Vec<u8>) -> std::io::Result<Pipeline> {
        let opts = Options { inputs, ..Options::default() };
        Pipeline::open(engine::Config::default(), opts, Arc::new(AtomicBool::new(false)), Arc::new(SystemClock), log)
    }

    #[test]
    fn every_file_is_its_own_capture_and_ends_done() -> std::io::Result<()> {
        let mut log = Vec::new();
        let mut p = open(pcaps(&["curl-tls13.pcap", "dns-udp.pcap"]), &mut log)?;
        let mut sink = Count::default();
        let out = p.run(&mut sink, &mut log)?;
        assert_eq!(out.failed, 0);
        assert!(sink.flows >= 2, "{}", sink.flows);
        assert_eq!(sink.captures.len(), 2, "one capture_done per file");
        assert!(sink.captures.iter().all(|s| s.is_some_and(|(a, b)| a <= b)));
        assert!(sink.names.iter().any(|n| n == "curl-tls13.pcap") && sink.names.iter().any(|n| n == "dns-udp.pcap"));
        assert!(p.sources.iter().all(|s| s.state == SourceState::Done && s.kind == SourceKind::File));
        assert!(sink.replay_done_seen && sink.ticks >= 2);
        assert_eq!(out.frames, p.counters().stats.frames);
        Ok(())
    }

    #[test]
    fn a_missing_file_fails_at_open_and_a_damaged_one_while_read() -> std::io::Result<()> {
        let mut log = Vec::new();
        let mut inputs = pcaps(&["no-such.pcap", "curl-tls12.pcap"]);
        inputs.push(Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/bad/not-a-pcap.pcap"));
        let mut p = open(inputs, &mut log)?;
        assert_eq!(p.failed(), 1, "the missing path fails before anything is read");
        let mut sink = Count::default();
        let out = p.run(&mut sink, &mut log)?;
        assert_eq!(out.failed, 2);
        let states: Vec<SourceState> = p.sources.iter().map(|s| s.state).collect();
        assert_eq!(states, vec![SourceState::Failed, SourceState::Done, SourceState::Failed]);
        assert!(p.sources.iter().filter(|s| s.state == SourceState::Failed).all(|s| s.error.is_some()));
        let text = String::from_utf8_lossy(&log);
        assert!(text.contains("no-such.pcap") && text.contains("not-a-pcap.pcap"), "{text}");
        assert!(sink.flows > 0, "the good file between them is read");
        Ok(())
    }

    #[test]
    fn a_stop_ends_the_run_before_the_next_file() -> std::io::Result<()> {
        let mut log = Vec::new();
        let opts = Options { inputs: pcaps(&["curl-tls13.pcap"]), linger: true, ..Options::default() };
        let stop = Arc::new(AtomicBool::new(true));
        let mut p = Pipeline::open(engine::Config::default(), opts, stop, Arc::new(SystemClock), &mut log)?;
        let mut sink = Count::default();
        p.run(&mut sink, &mut log)?;
        assert_eq!(sink.flows, 0);
        assert_eq!(p.sources[0].state, SourceState::Pending, "never read");
        Ok(())
    }
}
