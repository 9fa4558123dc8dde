//! A sink on a thread of its own: the packet thread hands finished flows over a bounded channel
//! and goes back to reading; attribution, aggregation, events and the rollup (`run`'s
//! [`super::run::Sensor`]) run behind it.
//!
//! Why: with `--workers`, the reader thread is the ceiling of the packet path (it reads,
//! splits, resolves); every microsecond the sink spends per flow is taken from it. The channel
//! is bounded ([`HANDOFF_QUEUE`] messages of up to [`HANDOFF_BATCH`] flows), so memory is too.
//! When it is full:
//! - flows of a **live** interface are dropped and counted ([`HandoffStats::dropped_flows`],
//!   `shadowtap_handoff_dropped_flows_total`): the packet thread never waits, since waiting
//!   would lose packets in the kernel instead, uncounted;
//! - flows of a **capture file** wait for room (counted in [`HandoffStats::waits`]): a replay
//!   loses nothing by waiting.
//!
//! Ticks are forwarded at most every [`TICK_EVERY`] (and whenever the replay ends), with an
//! owned copy of the pipeline's [`View`]; the sink's own clocks (publish every second, save every
//! `save_every`) are unchanged by that. [`Handoff::finish`] delivers what is left, stops the
//! thread and gives the sink back.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::pipeline::{Origin, Sink, View};
use crate::capture::CaptureStats;
use crate::engine::{Counters, FlowRecord};
use crate::export::metrics::SourceStatus;
use crate::time::Timestamp;

/// Flows per message.
pub const HANDOFF_BATCH: usize = 256;

/// Messages in flight: at most this many batches wait for the sink.
pub const HANDOFF_QUEUE: usize = 64;

/// Least time between two ticks forwarded to the sink (a batch of flows waits at most this long).
pub const TICK_EVERY: Duration = Duration::from_millis(100);

/// What the hand-off counted, shared with the sink (which publishes it).
#[derive(Debug, Default)]
pub struct HandoffStats {
    /// Flows of a live interface dropped because the queue was full.
    pub dropped_flows: AtomicU64,
    /// Times a capture file's flows waited for room in the queue.
    pub waits: AtomicU64,
}

/// An owned copy of a [`View`], for the sink's thread.
struct Snapshot {
    engine: Counters,
    frames: u64,
    workers: usize,
    sources: Vec<SourceStatus>,
    capture: Vec<(String, CaptureStats)>,
    replay_done: bool,
    longest_stall: Duration,
}

impl Snapshot {
    fn of(v: &View<'_>) -> Snapshot {
        Snapshot {
            engine: v.engine.clone(),
            frames: v.frames,
            workers: v.workers,
            sources: v.sources.to_vec(),
            capture: v.capture.to_vec(),
            replay_done: v.replay_done,
            longest_stall: v.longest_stall,
        }
    }

    fn view(&self) -> View<'_> {
        View {
            engine: &self.engine,
            frames: self.frames,
            workers: self.workers,
            sources: &self.sources,
            capture: &self.capture,
            replay_done: self.replay_done,
            longest_stall: self.longest_stall,
        }
    }
}

enum Msg {
    Flows(Vec<(FlowRecord, Origin)>),
    Tick(Box<Snapshot>),
    CaptureDone(Option<(Timestamp, Timestamp)>),
    Times(Vec<Timestamp>),
}

/// The packet thread's side: a [`Sink`] that forwards to `S` on its own thread.
pub struct Handoff<S: Sink + Send + 'static> {
    tx: Option<SyncSender<Msg>>,
    batch: Vec<(FlowRecord, Origin)>,
    thread: Option<JoinHandle<(S, std::io::Result<()>)>>,
    stats: Arc<HandoffStats>,
    last_tick: Option<Instant>,
    replay_done: bool,
    /// The sink reads packet times (asked once: it is on its thread afterwards).
    times: bool,
}

impl<S: Sink + Send + 'static> Handoff<S> {
    /// Starts `sink`'s thread; `log` receives what its ticks write (reload diagnostics).
    ///
    /// # Errors
    /// The thread could not be started.
    pub fn start(sink: S, stats: Arc<HandoffStats>, log: impl Write + Send + 'static) -> std::io::Result<Handoff<S>> {
        let times = sink.wants_packet_times();
        let (tx, rx) = sync_channel(HANDOFF_QUEUE);
        let thread = std::thread::Builder::new().name("shadowtap-sink".into()).spawn(move || serve(sink, rx, log))?;
        Ok(Handoff { tx: Some(tx), batch: Vec::with_capacity(HANDOFF_BATCH), thread: Some(thread), stats, last_tick: None, replay_done: false, times })
    }

    /// Sends a message; a full queue drops live flows (counted) and makes the rest wait.
    fn send(&mut self, msg: Msg) -> std::io::Result<()> {
        let Some(tx) = &self.tx else { return Err(gone()) };
        match tx.try_send(msg) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(Msg::Flows(flows))) if flows.iter().any(|(_, o)| o.live) => {
                self.stats.dropped_flows.fetch_add(flows.len() as u64, Ordering::Relaxed);
                Ok(())
            }
            Err(TrySendError::Full(msg)) => {
                self.stats.waits.fetch_add(1, Ordering::Relaxed);
                tx.send(msg).map_err(|_| gone())
            }
            Err(TrySendError::Disconnected(_)) => Err(gone()),
        }
    }

    fn flush_flows(&mut self) -> std::io::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let flows = std::mem::replace(&mut self.batch, Vec::with_capacity(HANDOFF_BATCH));
        self.send(Msg::Flows(flows))
    }

    /// Delivers what is left, stops the thread and gives the sink back with the first error
    /// it met.
    ///
    /// # Errors
    /// The sink's thread panicked.
    pub fn finish(mut self) -> std::io::Result<(S, std::io::Result<()>)> {
        let flushed = self.flush_flows();
        self.tx = None;
        let thread = self.thread.take().ok_or_else(gone)?;
        let (sink, result) = thread.join().map_err(|_| std::io::Error::other("the sink's thread panicked"))?;
        Ok((sink, result.and(flushed)))
    }
}

impl<S: Sink + Send + 'static> Sink for Handoff<S> {
    fn flow(&mut self, record: FlowRecord, origin: &Origin) -> std::io::Result<()> {
        // A batch goes when full, or at the next forwarded tick (within TICK_EVERY).
        self.batch.push((record, origin.clone()));
        if self.batch.len() >= HANDOFF_BATCH {
            self.flush_flows()?;
        }
        Ok(())
    }

    fn tick(&mut self, view: &View<'_>, _: &mut dyn Write) -> std::io::Result<()> {
        let due = self.last_tick.is_none_or(|t| t.elapsed() >= TICK_EVERY);
        let ended = view.replay_done && !self.replay_done;
        if !(due || ended) {
            return Ok(());
        }
        self.replay_done = view.replay_done;
        self.last_tick = Some(Instant::now());
        self.flush_flows()?;
        self.send(Msg::Tick(Box::new(Snapshot::of(view))))
    }

    fn capture_done(&mut self, span: Option<(Timestamp, Timestamp)>) -> std::io::Result<()> {
        self.flush_flows()?;
        self.send(Msg::CaptureDone(span))
    }

    fn wants_packet_times(&self) -> bool {
        self.times
    }

    fn packet_times(&mut self, times: &mut dyn Iterator<Item = Timestamp>) {
        let times: Vec<Timestamp> = times.collect();
        if !times.is_empty() {
            let _ = self.send(Msg::Times(times));
        }
    }
}

fn gone() -> std::io::Error {
    std::io::Error::other("the sink's thread has stopped")
}

/// The sink's thread: applies messages in order until the packet thread hangs up; after an
/// error it keeps draining (so the packet thread never blocks on a dead sink) and reports the
/// first error at the end.
fn serve<S: Sink>(mut sink: S, rx: Receiver<Msg>, mut log: impl Write) -> (S, std::io::Result<()>) {
    let mut result = Ok(());
    for msg in rx {
        if result.is_err() {
            continue;
        }
        result = match msg {
            Msg::Flows(flows) => flows.into_iter().try_for_each(|(r, o)| sink.flow(r, &o)),
            Msg::Tick(s) => sink.tick(&s.view(), &mut log),
            Msg::CaptureDone(span) => sink.capture_done(span),
            Msg::Times(t) => {
                sink.packet_times(&mut t.into_iter());
                Ok(())
            }
        };
    }
    (sink, result)
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc::{channel, Sender};
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::engine::FlowRecord;

    /// Records what it gets; `gate` (when set) holds the thread at the first flow.
    struct Recorder {
        seen: Arc<Mutex<Vec<String>>>,
        gate: Option<std::sync::mpsc::Receiver<()>>,
        started: Option<Sender<()>>,
    }

    impl Sink for Recorder {
        fn flow(&mut self, r: FlowRecord, o: &Origin) -> std::io::Result<()> {
            if let Some(s) = self.started.take() {
                let _ = s.send(());
            }
            if let Some(g) = self.gate.take() {
                let _ = g.recv();
            }
            self.seen.lock().unwrap().push(format!("flow {} {}", r.seq, o.name));
            Ok(())
        }
        fn tick(&mut self, v: &View<'_>, _: &mut dyn Write) -> std::io::Result<()> {
            self.seen.lock().unwrap().push(format!("tick {}", v.frames));
            Ok(())
        }
        fn capture_done(&mut self, _: Option<(Timestamp, Timestamp)>) -> std::io::Result<()> {
            self.seen.lock().unwrap().push("done".into());
            Ok(())
        }
    }

    fn record(seq: u64) -> FlowRecord {
        FlowRecord { seq, ..crate::aggregate::tests_support::flow("10.0.0.1:40000", 0) }
    }

    fn view_with(frames: u64, f: impl FnOnce(&View<'_>)) {
        let counters = Counters::default();
        f(&View { engine: &counters, frames, workers: 1, sources: &[], capture: &[], replay_done: false, longest_stall: Duration::ZERO });
    }

    #[test]
    fn flows_ticks_and_captures_arrive_in_order_and_the_sink_comes_back() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stats = Arc::new(HandoffStats::default());
        let mut h = Handoff::start(Recorder { seen: Arc::clone(&seen), gate: None, started: None }, Arc::clone(&stats), std::io::sink()).unwrap();
        let file = Origin { name: "a.pcap".into(), live: false };
        for seq in 0..(HANDOFF_BATCH as u64 + 3) {
            h.flow(record(seq), &file).unwrap();
        }
        view_with(7, |v| h.tick(v, &mut std::io::sink()).unwrap());
        h.capture_done(None).unwrap();
        let (_, result) = h.finish().unwrap();
        result.unwrap();
        let seen = seen.lock().unwrap();
        let flows: Vec<&String> = seen.iter().filter(|s| s.starts_with("flow")).collect();
        assert_eq!(flows.len(), HANDOFF_BATCH + 3);
        assert!(flows.iter().enumerate().all(|(i, s)| **s == format!("flow {i} a.pcap")), "in order");
        let tail: Vec<&str> = seen.iter().skip(HANDOFF_BATCH + 3).map(String::as_str).collect();
        assert_eq!(tail, ["tick 7", "done"]);
        assert_eq!(stats.dropped_flows.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_full_queue_drops_live_flows_and_counts_them_but_file_flows_wait() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stats = Arc::new(HandoffStats::default());
        let (open, gate) = channel();
        let (started, running) = channel();
        let sink = Recorder { seen: Arc::clone(&seen), gate: Some(gate), started: Some(started) };
        let mut h = Handoff::start(sink, Arc::clone(&stats), std::io::sink()).unwrap();
        let live = Origin { name: "eth0".into(), live: true };
        // The sink takes the first batch and blocks on it; then the queue fills.
        for seq in 0..HANDOFF_BATCH as u64 {
            h.flow(record(seq), &live).unwrap();
        }
        running.recv().unwrap();
        let batches = HANDOFF_QUEUE + 3;
        for seq in 0..(batches * HANDOFF_BATCH) as u64 {
            h.flow(record(1_000_000 + seq), &live).unwrap();
        }
        let dropped = stats.dropped_flows.load(Ordering::Relaxed);
        assert_eq!(dropped, 3 * HANDOFF_BATCH as u64, "what the queue could not hold is dropped and counted");
        open.send(()).unwrap();
        let (_, result) = h.finish().unwrap();
        result.unwrap();
        let flows = seen.lock().unwrap().len() as u64;
        assert_eq!(flows + dropped, ((batches + 1) * HANDOFF_BATCH) as u64, "every flow delivered or counted");
    }
}
