//! The daemon's background writer: rollup-store flushes (SQLite transactions), state saves
//! (fsync'd files) and security events, off the packet thread.
//!
//! The packet thread hands jobs over a bounded queue and never waits: a full queue defers a
//! rollup delta (the packet thread merges it into the next one, so nothing is lost while the
//! bound of [`store::MAX_PENDING_ROWS`] holds), and drops a state save (the next one supersedes
//! it) or a batch of events; every drop is counted (`shadowtap_writer_dropped_total`).

use std::io::Write;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

use crate::aggregate::state::{self, Saved};
use crate::export::events::{self, Event};
use crate::export::metrics::WriterDrop as Dropped;
use crate::store::{self, Delta, StoreStats};

/// Jobs waiting for the writer. A job is a delta, a state snapshot or a batch of events; the
/// packet thread sends at most a few per save interval, so the queue only fills while the
/// writer is blocked (a locked store, a slow disk).
pub const WRITER_QUEUE: usize = 16;

/// What the writer does.
pub enum Job {
    /// Flush a rollup delta into the store.
    Flush(Box<Delta>),
    /// New store settings (a reloaded configuration): retention applies at the next flush.
    Settings(store::Settings),
    /// Save the aggregation.
    Save(Box<Saved>),
    /// Write security events.
    Events(Vec<Event>),
}

/// Outcome of attempts, as `{result="success|failure"}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcomes {
    /// Succeeded.
    pub ok: u64,
    /// Failed.
    pub failed: u64,
}

impl Outcomes {
    fn count<T, E>(&mut self, r: &Result<T, E>) {
        match r {
            Ok(_) => self.ok += 1,
            Err(_) => self.failed += 1,
        }
    }
}

/// The writer's counters, read by the exporter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// The store's counters (None without a store).
    pub store: Option<StoreStats>,
    /// State saves.
    pub saves: Outcomes,
    /// Events written to the events sink.
    pub events_written: Outcomes,
    /// Jobs dropped, indexed by [`Dropped`].
    pub dropped: [u64; 3],
}

/// The packet thread's end of the writer.
pub struct Handle {
    tx: SyncSender<Job>,
    stats: Arc<Mutex<Stats>>,
    thread: std::thread::JoinHandle<()>,
}

/// What the writer writes to.
pub struct Targets {
    /// The rollup store.
    pub store: Option<store::Writer>,
    /// Directory of the saved aggregation.
    pub state_dir: Option<PathBuf>,
    /// Where events go.
    pub events: Option<Box<dyn Write + Send>>,
}

impl Handle {
    /// Starts the writer thread.
    ///
    /// # Errors
    /// The thread could not be started.
    pub fn spawn(targets: Targets) -> std::io::Result<Handle> {
        let stats = Arc::new(Mutex::new(Stats { store: targets.store.as_ref().map(|w| w.store.stats), ..Stats::default() }));
        let (tx, rx) = mpsc::sync_channel(WRITER_QUEUE);
        let shared = Arc::clone(&stats);
        let thread = std::thread::Builder::new().name("writer".into()).spawn(move || run(targets, &rx, &shared))?;
        Ok(Handle { tx, stats, thread })
    }

    /// Hands a job over without waiting. A delta that does not fit is given back (merge it
    /// into the next one); anything else that does not fit is dropped and counted.
    pub fn send(&self, job: Job) -> Result<(), Box<Delta>> {
        match self.tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(Job::Flush(d)) | TrySendError::Disconnected(Job::Flush(d))) => Err(d),
            Err(TrySendError::Full(j) | TrySendError::Disconnected(j)) => {
                let what = match j {
                    Job::Save(_) => Dropped::State,
                    _ => Dropped::Events,
                };
                self.count_dropped(what, 1);
                Ok(())
            }
        }
    }

    /// Counts `n` of `what` as dropped.
    pub fn count_dropped(&self, what: Dropped, n: u64) {
        if let Ok(mut s) = self.stats.lock() {
            s.dropped[what as usize] += n;
        }
    }

    /// The writer's counters now.
    pub fn stats(&self) -> Stats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Waits for every job handed over (the final flush and save of a clean stop) and ends
    /// the writer.
    pub fn finish(self) -> Stats {
        let Handle { tx, stats, thread } = self;
        drop(tx);
        let _ = thread.join();
        stats.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

fn run(mut t: Targets, rx: &Receiver<Job>, stats: &Mutex<Stats>) {
    // The counters are updated after each job's I/O, never held during it (the exporter reads
    // them every second).
    let update = |f: &mut dyn FnMut(&mut Stats)| {
        if let Ok(mut s) = stats.lock() {
            f(&mut s);
        }
    };
    for job in rx {
        match job {
            Job::Flush(delta) => {
                let Some(w) = t.store.as_mut() else { continue };
                if let Err(e) = w.flush_delta(*delta) {
                    eprintln!("error: rollup store not flushed ({} rows kept for the next flush): {e}", w.pending_rows());
                }
                let st = w.store.stats;
                update(&mut |s| s.store = Some(st));
            }
            Job::Settings(settings) => {
                if let Some(w) = t.store.as_mut() {
                    w.store.set_settings(settings);
                }
            }
            Job::Save(saved) => {
                let Some(dir) = &t.state_dir else { continue };
                let r = state::write(dir, &saved);
                if let Err(e) = &r {
                    eprintln!("error: {}: state not saved: {e}", dir.display());
                }
                update(&mut |s| s.saves.count(&r));
            }
            Job::Events(evs) => {
                let Some(sink) = t.events.as_mut() else { continue };
                let (mut ok, mut failed) = (0, 0);
                for e in &evs {
                    match events::write(sink, e) {
                        Ok(()) => ok += 1,
                        Err(_) => failed += 1,
                    }
                }
                if !evs.is_empty() {
                    let _ = sink.flush();
                }
                update(&mut |s| {
                    s.events_written.ok += ok;
                    s.events_written.failed += failed;
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::Status;
    use crate::export::events::{EventConfig, Events};
    use crate::time::Timestamp;
    use std::sync::mpsc::Receiver as Gate;

    /// An events sink whose first write waits until the test opens the gate: a writer blocked
    /// on a slow disk.
    struct Held {
        gate: Option<Gate<()>>,
        lines: Arc<Mutex<usize>>,
    }

    impl Write for Held {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            if let Some(g) = self.gate.take() {
                let _ = g.recv();
            }
            if let Ok(mut n) = self.lines.lock() {
                *n += buf.iter().filter(|&&b| b == b'\n').count();
            }
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn event() -> Event {
        let mut ev = Events::new(EventConfig { min_group_size: 1, ..EventConfig::default() });
        let mut e = ev.on_flow(Timestamp::from_parts(100, 0), "finance".into(), Some(("whatsapp".into(), "messaging".into(), "chat".into())), Some(Status::Unsanctioned), 10, true, 4);
        e.pop().unwrap_or_else(|| panic!("a first-use event"))
    }

    #[test]
    fn a_blocked_writer_never_blocks_the_sender_and_counts_what_it_drops() {
        let (open, gate) = mpsc::channel();
        let lines = Arc::new(Mutex::new(0));
        let sink = Held { gate: Some(gate), lines: Arc::clone(&lines) };
        let w = Handle::spawn(Targets { store: None, state_dir: None, events: Some(Box::new(sink)) }).unwrap_or_else(|e| panic!("{e}"));
        // One batch is taken and blocks in the sink; the queue then fills; the rest is dropped.
        let sent = WRITER_QUEUE + 10;
        for _ in 0..sent {
            let r = w.send(Job::Events(vec![event()]));
            assert!(r.is_ok(), "an event batch is never given back");
        }
        // A delta that does not fit comes back to be merged into the next one.
        let back = w.send(Job::Flush(Box::default()));
        assert!(back.is_err(), "a delta is deferred, not dropped");
        let dropped = w.stats().dropped[Dropped::Events as usize];
        assert!((9..=10).contains(&dropped), "{dropped} batches dropped");
        let _ = open.send(());
        let stats = w.finish();
        let written = *lines.lock().unwrap_or_else(|e| e.into_inner());
        assert_eq!(written as u64 + stats.dropped[Dropped::Events as usize], sent as u64, "every batch written or counted");
        assert_eq!(stats.events_written.ok, written as u64);
    }
}
