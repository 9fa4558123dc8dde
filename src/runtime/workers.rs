//! `--workers N`: the packet path over N engine shards, each on its own thread, with the same
//! output as one engine.
//!
//! ```text
//!  pipeline thread (reader)                       shard threads (N)
//!  source batch ─► engine::shard::Splitter ──┬─► SyncSender<Batch> (SHARD_QUEUE) ─► Engine::handle_shard
//!     decode to the flow key, IP reassembly, │                                          │
//!     global frame numbers, copies           └─ ... one per shard                       │
//!                                                                                        ▼
//!  engine::resolve::Resolver ◄── Receiver<Batch> (events, records, marks; the batch ◄────┘
//!     DNS cache, ECH names, flow numbers,          comes back empty for reuse)
//!     naming, in global order
//!        ▼
//!  records to the Sink (in the order one engine would end them)
//! ```
//!
//! One worker on one core (the process's affinity mask) runs its shard on the reader's thread:
//! the same code (`shard_step`), without a second thread to switch to, and each source batch is
//! handled at once, in place ([`Carry::InPlace`]): the frames are not copied.
//!
//! Bounds: each shard's input queue holds [`SHARD_QUEUE`] batches of at most
//! [`SHARD_BATCH_ITEMS`] items; a full queue blocks the reader (files: backpressure, nothing is
//! dropped; live capture runs one worker, see [`Workers::new`]). The way back is an unbounded
//! channel, but the reader drains it after every batch it sends, so it holds at most what the
//! shards made of the batches in flight (and, at a capture's end, its remaining records once).
//! Each shard gets `max_flows / N` flows and `memory_budget / N` bytes of the memory budget
//! (both at least 1); the DNS cache is the resolver's, one for all.

use std::collections::VecDeque;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::decode::Frame;
use crate::engine::resolve::{Pos, Resolver};
use crate::engine::shard::{Batch, Carry, Splitter};
use crate::engine::{self, Counters, Engine, FlowRecord, Stats};
use crate::time::Timestamp;

/// Most workers `--workers` takes (and the default's cap).
pub const MAX_WORKERS: usize = 16;

/// Batches queued for one shard before the reader waits.
pub const SHARD_QUEUE: usize = 4;

/// Items (one per frame of the run, owned or not) gathered for each shard before they are
/// sent: fewer, larger messages (a thread wake-up costs microseconds).
pub const SHARD_BATCH_ITEMS: usize = 512;

/// Records drained at a capture's end that a shard sends back per message.
pub const FINISH_CHUNK: usize = 1024;

/// How often the shards' counters are asked for (`/metrics`, `--stats` read them); always at a
/// capture's end.
pub const COUNTERS_EVERY: Duration = Duration::from_secs(1);

/// The most workers the default takes: every shard is told about every frame (its sweeps), so
/// each one more costs the reader, and the reader is the ceiling (docs/benchmarks.md).
pub const DEFAULT_MAX_WORKERS: usize = 4;

/// The default number of workers: the cores available but one (the reader is a thread of its
/// own, busy for more than half of the work), at least 1, at most [`DEFAULT_MAX_WORKERS`]. On
/// two cores one worker is faster than two (0.73 s against 0.79 s on the reference capture).
pub fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()).saturating_sub(1).clamp(1, DEFAULT_MAX_WORKERS)
}

/// Where a shard runs.
enum Shard {
    /// On a thread of its own, over two channels (`to` is dropped to stop it).
    Thread { to: Option<SyncSender<Batch>>, from: Receiver<Batch>, thread: Option<JoinHandle<()>> },
    /// On the reader's thread (one worker, one core); its answers wait in `inbox`.
    Inline { engine: Box<Engine>, inbox: VecDeque<Batch> },
}

/// A shard and the batches in circulation with it.
struct Link {
    shard: Shard,
    free: Vec<Batch>,
    /// Batches sent and not yet back.
    in_flight: usize,
}

impl Link {
    fn new(shard: Shard) -> Link {
        Link { shard, free: Vec::new(), in_flight: 0 }
    }

    /// Hands the shard a batch (split in place from `frames`, when given: an inline shard
    /// only); false when it has stopped.
    fn send(&mut self, b: Batch, frames: Option<&[Frame<'_>]>) -> bool {
        match &mut self.shard {
            Shard::Inline { engine, inbox } => shard_step(engine, b, frames, &mut |x| {
                inbox.push_back(x);
                true
            }),
            Shard::Thread { to, .. } => {
                let sent = to.as_ref().is_some_and(|to| to.send(b).is_ok());
                if !sent {
                    *to = None;
                }
                sent
            }
        }
    }

    /// The next answer, waiting for it.
    fn recv(&mut self) -> Result<Batch, mpsc::RecvError> {
        match &mut self.shard {
            Shard::Inline { inbox, .. } => inbox.pop_front().ok_or(mpsc::RecvError),
            Shard::Thread { from, .. } => from.recv(),
        }
    }

    /// The next answer, if one is there.
    fn try_recv(&mut self) -> Result<Batch, TryRecvError> {
        match &mut self.shard {
            Shard::Inline { inbox, .. } => inbox.pop_front().ok_or(TryRecvError::Empty),
            Shard::Thread { from, .. } => from.try_recv(),
        }
    }
}

/// The reader's side of the shards (see the module docs).
pub struct Workers {
    splitter: Splitter,
    resolver: Resolver,
    /// What the splitter and the resolver count.
    stats: Stats,
    links: Vec<Link>,
    filling: Vec<Batch>,
    shard_counters: Vec<Counters>,
    counters: Counters,
    last_counters: Instant,
    /// A shard stopped (a bug): what it held is lost.
    broken: bool,
}

impl Workers {
    /// Starts `n` shard threads (1 ≤ n ≤ [`MAX_WORKERS`]), each an engine with its share of
    /// `config`'s flow and memory bounds.
    ///
    /// # Errors
    /// A thread that cannot be started.
    pub fn new(config: engine::Config, n: usize) -> std::io::Result<Workers> {
        let one_core = std::thread::available_parallelism().map_or(true, |c| c.get() == 1);
        Workers::build(config, n, n == 1 && one_core)
    }

    /// [`Workers::new`], with the one shard on the reader's thread when `inline`.
    fn build(config: engine::Config, n: usize, inline: bool) -> std::io::Result<Workers> {
        let n = n.clamp(1, MAX_WORKERS);
        let inline = inline && n == 1;
        let share = engine::Config {
            max_flows: (config.max_flows / n).max(1),
            memory_budget: (config.memory_budget / n).max(1),
            ..config
        };
        let mut links = Vec::with_capacity(n);
        if inline {
            // One worker on one core (the affinity mask says so) runs on the reader's thread: a
            // second thread would only add context switches for the same work. With more cores
            // a thread of its own lets it run beside the reader.
            links.push(Link::new(Shard::Inline { engine: Box::new(Engine::shard(share)), inbox: VecDeque::new() }));
        }
        for i in 0..n.saturating_sub(usize::from(inline)) {
            let (to, input) = mpsc::sync_channel::<Batch>(SHARD_QUEUE);
            let (back, from) = mpsc::channel::<Batch>();
            let thread = std::thread::Builder::new()
                .name(format!("shard-{i}"))
                .spawn(move || shard_thread(Engine::shard(share), &input, &back))?;
            links.push(Link::new(Shard::Thread { to: Some(to), from, thread: Some(thread) }));
        }
        let mut w = Workers {
            splitter: Splitter::new(n),
            resolver: Resolver::new(n, config.dns_cache_addrs),
            stats: Stats::new(),
            links,
            filling: (0..n).map(|_| Batch::default()).collect(),
            shard_counters: vec![Counters::default(); n],
            counters: Counters::default(),
            last_counters: Instant::now(),
            broken: false,
        };
        w.counters.memory.1 = share.memory_budget * n;
        Ok(w)
    }

    /// Shards.
    pub fn len(&self) -> usize {
        self.links.len()
    }

    /// Never empty (at least one shard).
    pub fn is_empty(&self) -> bool {
        self.links.is_empty()
    }

    /// Frames read so far (exact at any time, unlike [`Workers::counters`]).
    pub fn frames(&self) -> u64 {
        self.stats.frames
    }

    /// The counters summed over the reader and the shards: the shards' part as of their last
    /// report (about every [`COUNTERS_EVERY`], and exact after a capture's end).
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Records ready for the sink, in order.
    pub fn records(&mut self) -> &mut VecDeque<FlowRecord> {
        &mut self.resolver.records
    }

    /// Splits a batch of frames over the shards; sends when the shards' batches are full. An
    /// inline shard handles the frames at once, in place: nothing is copied.
    pub fn handle_batch(&mut self, frames: &[Frame<'_>]) {
        if self.inline() {
            self.splitter.split(frames, Carry::InPlace, &mut self.stats, &mut self.filling);
            self.send_from(false, Some(frames));
        } else {
            self.splitter.split(frames, Carry::Copied, &mut self.stats, &mut self.filling);
            if self.filling.first().is_some_and(|b| b.items.len() >= SHARD_BATCH_ITEMS) {
                self.send(false);
            }
        }
        self.poll();
    }

    /// The one shard runs on the reader's thread.
    fn inline(&self) -> bool {
        matches!(self.links.as_slice(), [Link { shard: Shard::Inline { .. }, .. }])
    }

    /// Advances time without a frame (a quiet live link), and sends what is gathered.
    pub fn tick(&mut self, now: Timestamp) {
        self.splitter.tick(now, &mut self.stats, &mut self.filling);
        self.send(false);
        self.poll();
    }

    /// Sends what is gathered (a live source: records should not wait for more frames).
    pub fn flush(&mut self) {
        if self.filling.first().is_some_and(|b| !b.items.is_empty()) {
            self.send(false);
        }
        self.poll();
    }

    /// Sends what is gathered and waits until the shards have handled everything sent: the
    /// records of the flows those frames ended are then in [`Workers::records`] (a live
    /// source: each record goes out with the interface whose frames ended it, as with one
    /// engine thread).
    pub fn sync(&mut self) {
        if self.filling.first().is_some_and(|b| !b.items.is_empty()) {
            self.send(false);
        }
        for i in 0..self.links.len() {
            while self.links.get(i).is_some_and(|l| l.in_flight > 0) {
                match self.links.get_mut(i).map(Link::recv) {
                    Some(Ok(b)) => {
                        self.absorb(i, b);
                    }
                    _ => {
                        self.broken = true;
                        if let Some(l) = self.links.get_mut(i) {
                            l.in_flight = 0;
                        }
                    }
                }
            }
        }
        self.resolver.run(&mut self.stats);
    }

    /// Sends every shard its batch (blocking while a queue is full).
    fn send(&mut self, finish: bool) {
        self.send_from(finish, None);
    }

    /// [`Workers::send`], of batches split in place from `frames` when given.
    fn send_from(&mut self, finish: bool, frames: Option<&[Frame<'_>]>) {
        let want = finish || self.last_counters.elapsed() >= COUNTERS_EVERY;
        if want {
            self.last_counters = Instant::now();
        }
        let held = self.splitter.held_bytes();
        for (link, filling) in self.links.iter_mut().zip(self.filling.iter_mut()) {
            let next = link.free.pop().unwrap_or_default();
            let mut b = std::mem::replace(filling, next);
            b.finish = finish;
            b.want_counters = want;
            b.defrag_held = held;
            if link.send(b, frames) {
                link.in_flight += 1;
            } else {
                self.broken = true;
            }
        }
    }

    /// Takes what the shards sent back, without waiting; applies what can be.
    fn poll(&mut self) {
        let mut got = false;
        for i in 0..self.links.len() {
            loop {
                let msg = match self.links.get_mut(i).map(Link::try_recv) {
                    Some(Ok(b)) => b,
                    Some(Err(TryRecvError::Disconnected)) => {
                        self.broken = true;
                        break;
                    }
                    _ => break,
                };
                got |= self.absorb(i, msg);
            }
        }
        self.resolver.run(&mut self.stats);
        if got {
            self.refresh();
        }
    }

    /// One message of shard `i`; true when it carried counters.
    fn absorb(&mut self, i: usize, mut b: Batch) -> bool {
        let mark = b.mark;
        self.resolver.push(i, b.events.drain(..), mark);
        if let (false, Some(l)) = (b.chunk, self.links.get_mut(i)) {
            l.in_flight = l.in_flight.saturating_sub(1);
        }
        let counted = match (b.counters.take(), self.shard_counters.get_mut(i)) {
            (Some(c), Some(slot)) => {
                *slot = c;
                true
            }
            _ => false,
        };
        b.clear();
        if let Some(l) = self.links.get_mut(i) {
            // Chunks of a capture's end are not kept: only the batches in circulation.
            if l.free.len() < SHARD_QUEUE + 2 {
                l.free.push(b);
            }
        }
        counted
    }

    /// Sums the counters again.
    fn refresh(&mut self) {
        let limit = self.counters.memory.1;
        let mut c = Counters { stats: self.stats.clone(), ..Counters::default() };
        for s in &self.shard_counters {
            c.add_shard(s);
        }
        c.table.peak = self.resolver.peak_flows();
        c.memory = (c.memory.0 + self.splitter.held_bytes(), limit);
        c.dns_cache = self.resolver.cache_stats();
        self.counters = c;
    }

    /// Ends every flow (the end of a capture), handing each record to `emit` in the order one
    /// engine would: the flows that ended before, then the rest in the order of their first
    /// packets. The DNS answers learned are forgotten with the capture.
    ///
    /// # Errors
    /// The first error of `emit`, or a shard that stopped (what it held is lost).
    pub fn finish(&mut self, mut emit: impl FnMut(FlowRecord) -> std::io::Result<()>) -> std::io::Result<()> {
        self.send(true);
        let mut done = vec![false; self.links.len()];
        let mut result = Ok(());
        while done.iter().any(|d| !d) {
            for i in 0..self.links.len() {
                if done.get(i).copied().unwrap_or(true) {
                    continue;
                }
                let Some(msg) = self.links.get_mut(i).map(Link::recv) else { continue };
                match msg {
                    Ok(b) => {
                        let end = b.mark == Pos::END;
                        self.absorb(i, b);
                        if end {
                            if let Some(d) = done.get_mut(i) {
                                *d = true;
                            }
                        }
                    }
                    Err(_) => {
                        self.broken = true;
                        if let Some(d) = done.get_mut(i) {
                            *d = true;
                        }
                        // What it held is lost; let the others' events through.
                        self.resolver.push(i, [], Pos::END);
                    }
                }
                self.resolver.run(&mut self.stats);
                while let Some(r) = self.resolver.records.pop_front() {
                    if result.is_ok() {
                        result = emit(r);
                    }
                }
            }
        }
        self.resolver.new_capture();
        self.resolver.forget_dns_answers();
        self.refresh();
        result?;
        if self.broken {
            return Err(std::io::Error::other("an engine shard stopped; its flows are lost"));
        }
        Ok(())
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        for l in &mut self.links {
            if let Shard::Thread { to, .. } = &mut l.shard {
                *to = None;
            }
        }
        for l in &mut self.links {
            if let Shard::Thread { thread, .. } = &mut l.shard {
                if let Some(t) = thread.take() {
                    let _ = t.join();
                }
            }
        }
    }
}

/// A shard: batches in, the same batches back with what they made.
fn shard_thread(mut engine: Engine, input: &Receiver<Batch>, back: &mpsc::Sender<Batch>) {
    while let Ok(b) = input.recv() {
        if !shard_step(&mut engine, b, None, &mut |x| back.send(x).is_ok()) {
            return;
        }
    }
}

/// What a shard does with one batch (split in place from `frames`, when given): handles it and
/// hands it back through `back` (with, at a capture's end, the drained records in chunks
/// first). False once `back` refuses.
fn shard_step(engine: &mut Engine, mut b: Batch, frames: Option<&[Frame<'_>]>, back: &mut dyn FnMut(Batch) -> bool) -> bool {
    engine.handle_shard_in(&mut b, frames);
    if b.finish {
        // The batch's own events go first, then the drained records in chunks.
        let mut chunk = std::mem::take(&mut b.events);
        let mut ok = true;
        engine.finish_shard(|ev| {
            let pos = ev.pos;
            chunk.push(ev);
            if chunk.len() >= FINISH_CHUNK {
                let part = Batch { events: std::mem::take(&mut chunk), mark: pos, chunk: true, ..Batch::default() };
                ok = back(part);
            }
            ok
        });
        b.events.append(&mut chunk);
        b.mark = Pos::END;
    }
    if b.want_counters {
        b.counters = Some(engine.counters());
    }
    back(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::file::{FileReader, Next};

    /// Every flow record of `file`, through `feed`.
    fn read(file: &str, mut feed: impl FnMut(&[Frame<'_>])) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps").join(file);
        let mut r = FileReader::open(&path).unwrap();
        loop {
            let (batch, next) = r.next_batch();
            feed(&batch);
            if !matches!(next, Next::More) {
                return;
            }
        }
    }

    #[test]
    fn three_shards_one_thread_or_one_inline_give_the_records_and_counters_of_a_standalone_engine() {
        for file in ["dns-then-tls.pcap", "dns-tcp.pcap", "ech-real.pcap", "quic-chromium.pcap"] {
            let mut engine = Engine::new(engine::Config::default());
            read(file, |b| engine.handle_batch(b));
            engine.finish();
            let alone = std::mem::take(&mut engine.records);

            for (n, inline) in [(3, false), (1, true), (1, false)] {
            let mut w = Workers::build(engine::Config::default(), n, inline).unwrap();
            let mut got = Vec::new();
            read(file, |b| {
                w.handle_batch(b);
                w.sync();
                got.extend(w.records().drain(..));
            });
            w.finish(|r| {
                got.push(r);
                Ok(())
            })
            .unwrap();
            let (mut a, mut b) = (alone.clone(), got.clone());
            a.sort_by_key(|r| r.seq);
            b.sort_by_key(|r| r.seq);
            assert_eq!(a, b, "{file}");
            let c = w.counters();
            assert_eq!(c.stats, engine.stats, "{file}");
            assert_eq!(c.table.created, engine.table_stats().created, "{file}");
            assert_eq!(c.table.peak, engine.table_stats().peak, "{file}");
            assert_eq!(c.dns_cache.0, engine.dns_cache_stats().0, "{file}");
            }
        }
    }
}
