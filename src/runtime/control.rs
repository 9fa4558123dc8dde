//! Signals and reloads, off the packet thread.
//!
//! A signal thread turns SIGINT/SIGTERM into the stop flag every loop checks, and SIGHUP into a
//! reload request. A reload thread builds a new [`Settings`] (reading the configuration,
//! catalog, mapping file and GeoIP databases, which can block) whenever SIGHUP arrives or the
//! mapping file changes, and hands the result to the packet thread over a bounded channel; the
//! packet thread only swaps values. A process that does not stop within its grace period after
//! SIGINT/SIGTERM (blocked opening a FIFO without a writer, or reading an idle standard input)
//! exits anyway, and a second signal ends it at once.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::Duration;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::config::settings::MappingWatch;
use crate::config::Settings;
use crate::diag::Diagnostic;

/// How often the reload thread looks at the mapping file's modification time.
pub const MAPPING_POLL: Duration = Duration::from_secs(1);

/// Reload results waiting for the packet thread; the reload thread waits beyond it (it is not
/// the packet thread), so none is lost.
pub const RELOAD_QUEUE: usize = 2;

/// Why a reload happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// SIGHUP.
    Sighup,
    /// The mapping file changed.
    MappingChanged,
}

impl Why {
    /// As logged.
    pub fn as_str(self) -> &'static str {
        match self {
            Why::Sighup => "SIGHUP",
            Why::MappingChanged => "mapping file changed",
        }
    }
}

/// The result of one reload, for the packet thread.
pub enum Reload {
    /// A new configuration, to put in force between two flows.
    Loaded(Box<Settings>, Why),
    /// The configuration has errors: the previous one stays in force.
    Rejected(Vec<Diagnostic>, Why),
}

/// What the drivers hold of the control threads.
pub struct Control {
    /// Set by SIGINT/SIGTERM: every loop ends, flows in progress are accounted.
    pub stop: Arc<AtomicBool>,
    reloads: Option<Receiver<Reload>>,
}

impl Control {
    /// Starts the signal thread (and, with a configuration, the reload thread watching
    /// `config` and its mapping file). After SIGINT/SIGTERM the process has `grace` to end on
    /// its own.
    ///
    /// # Errors
    /// The signal handlers or threads could not be set up.
    pub fn start(config: Option<(PathBuf, Option<MappingWatch>)>, grace: Duration) -> std::io::Result<Control> {
        let stop = Arc::new(AtomicBool::new(false));
        let (hup_tx, hup_rx) = mpsc::sync_channel::<()>(1);
        let reloads = match config {
            Some((path, watch)) => {
                let (tx, rx) = mpsc::sync_channel(RELOAD_QUEUE);
                std::thread::Builder::new().name("reload".into()).spawn(move || reload_thread(path, watch, &hup_rx, &tx))?;
                Some(rx)
            }
            None => None,
        };
        let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
        let flag = Arc::clone(&stop);
        let has_config = reloads.is_some();
        std::thread::Builder::new().name("signals".into()).spawn(move || {
            for sig in signals.forever() {
                if sig == SIGHUP {
                    if !has_config {
                        eprintln!("SIGHUP: no configuration to reload");
                    }
                    // A full queue already holds a request: this one is served by it.
                    let _ = hup_tx.try_send(());
                    continue;
                }
                if flag.swap(true, Ordering::SeqCst) {
                    eprintln!("second stop signal: exiting now");
                    std::process::exit(128 + sig);
                }
                std::thread::spawn(move || {
                    std::thread::sleep(grace);
                    eprintln!("error: still running {} s after the stop signal (blocked on a source?): exiting", grace.as_secs());
                    std::process::exit(128 + sig);
                });
            }
        })?;
        Ok(Control { stop, reloads })
    }

    /// A reload result, if one is waiting (never blocks).
    pub fn try_reload(&self) -> Option<Reload> {
        // Empty or disconnected (the reload thread ended): nothing to apply.
        self.reloads.as_ref()?.try_recv().ok()
    }
}

fn reload_thread(path: PathBuf, mut watch: Option<MappingWatch>, hup: &Receiver<()>, out: &SyncSender<Reload>) {
    loop {
        let why = match hup.recv_timeout(MAPPING_POLL) {
            Ok(()) => Why::Sighup,
            Err(RecvTimeoutError::Timeout) if watch.as_mut().is_some_and(MappingWatch::changed) => Why::MappingChanged,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        let result = match Settings::load(&path) {
            Ok(s) => {
                watch = s.mapping_watch();
                Reload::Loaded(Box::new(s), why)
            }
            Err(d) => Reload::Rejected(d, why),
        };
        if out.send(result).is_err() {
            return;
        }
    }
}
