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
    for job in rx {
        let update: Box<dyn FnOnce(&mut Stats)> = match job {
            Job::Flush(delta) => {
                let Some(w) = t.store.as_mut() else { continue };
                let r = w.flush_delta(*delta);
                if let Err(e) = &r {
                    eprintln!("error: rollup store not flushed ({} rows kept for the next flush): {e}", w.pending_rows());
                }
                let st = w.store.stats;
                Box::new(move |s| s.store = Some(st))
            }
            Job::Settings(settings) => {
                if let Some(w) = t.store.as_mut() {
                    w.store.set_settings(settings);
                }
                continue;
            }
            Job::Save(saved) => {
                let Some(dir) = &t.state_dir else { continue };
                let r = state::write(dir, &saved);
                if let Err(e) = &r {
                    eprintln!("error: {}: state not saved: {e}", dir.display());
                }
                Box::new(move |s| s.saves.count(&r))
            }
            Job::Events(evs) => {
                let Some(sink) = t.events.as_mut() else { continue };
                let results: Vec<std::io::Result<()>> = evs.iter().map(|e| events::write(sink, e)).collect();
                if !evs.is_empty() {
                    let _ = sink.flush();
                }
                Box::new(move |s| results.iter().for_each(|r| s.events_written.count(r)))
            }
        };
        if let Ok(mut s) = stats.lock() {
            update(&mut s);
        }
    }
}
