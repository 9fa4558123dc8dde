//! The rollup store: what `shadowtap run` keeps for reports over weeks, months and years.
//!
//! Per UTC day, per department × service × channel × category × status: flows, bytes each way
//! and a distinct-host sketch; per day and department the active hosts (a sketch) and unnamed
//! flows by reason; per day, department and service the flows their server never answered
//! (counted apart: they are not use); per day the coverage facts (packets, capture statistics,
//! flows by signal, ECH flows), each sensor's uptime, the keys that hashed the day's hosts and
//! the configurations in force (catalog and config digests, k, whether unanswered flows counted
//! as use, exemptions). In SQLite ([`Store`], bundled: nothing
//! to install), written in one transaction per flush, in WAL mode, so it survives restarts and
//! crashes and can be backed up while the sensor runs.
//!
//! The stage in four parts: [`sketch`] (distinct counts that merge across days), [`keys`] (the
//! per-year keys that hash addresses, kept outside the database), [`rollup`] (sans-IO: flows in,
//! per-day deltas out) and [`sqlite`] (the database: flush, retention, backup, load).
//!
//! # Privacy
//! The store never holds an address, a host name, a server name or anything per host beyond
//! sketch registers of keyed hashes. Daily groups are stored unsuppressed, because the minimum
//! group size k must hold over the reporting period, not per day: a group of 3 hosts a day can
//! be 40 hosts over a month. [`Store::load`] therefore returns every group, and the report
//! model omits rows below k before anything is shown; the k in force is part of the record.

pub mod keys;
pub mod rollup;
pub mod sketch;
pub mod sqlite;

use std::path::PathBuf;

pub use keys::Keyring;
pub use rollup::{ConfigFacts, Counters, Delta, Rollup};
pub use sketch::Sketch;
pub use sqlite::{Flushed, Store};

/// Default days of daily rows kept: 800, so that the last full year can be compared with the
/// one before.
pub const DEFAULT_RETENTION_DAYS: u32 = 800;

/// Rows a failed flush keeps in memory for the next attempt. A row costs about 100 bytes plus
/// its sketch (8 bytes up to 2 hosts, 4 bytes a host up to 128, 3 KiB beyond): tens of MiB in
/// the common case. Beyond it the oldest days are dropped and counted
/// ([`StoreStats::dropped_rows`]).
pub const MAX_PENDING_ROWS: usize = 100_000;

/// File name of the store in a `--state-dir`.
pub const STATE_DIR_FILE: &str = "rollup.sqlite";

/// Store settings (`[store]` of the configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// Days of daily rows kept, back from the newest day.
    pub retention_days: u32,
    /// Days after a year's end before its key is deleted.
    pub key_grace_days: u32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { retention_days: DEFAULT_RETENTION_DAYS, key_grace_days: keys::DEFAULT_GRACE_DAYS }
    }
}

/// The store's counters, exported as metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Flushes that committed / failed.
    pub flushes: [u64; 2],
    /// Rows deleted by retention.
    pub rows_deleted: u64,
    /// Unix time of the last committed flush (0: none yet).
    pub last_flush_unix: i64,
    /// Rows dropped because failed flushes kept more than [`MAX_PENDING_ROWS`].
    pub dropped_rows: u64,
    /// The key file was missing while the database had used keys (counted at open).
    pub keys_lost: u64,
}

/// Why the store failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file is not an SQLite database, or is damaged.
    #[error("{path}: not a usable rollup store (not an SQLite database, or damaged): {source}")]
    NotADatabase {
        /// The file.
        path: String,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// An SQLite database, but not a rollup store.
    #[error("{path}: an SQLite database, but not a shadowtap rollup store")]
    Foreign {
        /// The file.
        path: String,
    },
    /// Made by a newer build.
    #[error("{path}: store schema version {found} is newer than this build's ({supported})")]
    NewerSchema {
        /// The file.
        path: String,
        /// Its schema version.
        found: i64,
        /// The newest this build reads.
        supported: i64,
    },
    /// An SQLite error.
    #[error("{path}: {source}")]
    Sqlite {
        /// The file (or `:memory:`).
        path: String,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A stored value that cannot be what this build wrote.
    #[error("{path}: corrupt value in table {table}: {what}")]
    Corrupt {
        /// The file.
        path: String,
        /// The table.
        table: &'static str,
        /// What is wrong.
        what: String,
    },
    /// The key file cannot be read or written.
    #[error("{path}: key file: {message}")]
    KeyFile {
        /// The key file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// A period that ends before it starts.
    #[error("the period {from} to {to} ends before it starts")]
    Period {
        /// First day asked for.
        from: time::Date,
        /// Last day asked for.
        to: time::Date,
    },
    /// A backup target that already exists.
    #[error("{path}: already exists (a backup never overwrites a file)")]
    Exists {
        /// The target.
        path: String,
    },
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A rollup and its store, with bounded retries: what the daemon and surveys write through.
#[derive(Debug)]
pub struct Writer {
    /// The store.
    pub store: Store,
    /// The rollup filling it.
    pub rollup: Rollup,
    pending: Option<Delta>,
}

impl Writer {
    /// A writer over `store`, hashing under its keys, for the sensor named `sensor`.
    pub fn new(store: Store, sensor: impl Into<String>) -> Writer {
        let rollup = Rollup::new(store.keyring(), sensor, store.settings().key_grace_days);
        Writer { store, rollup, pending: None }
    }

    /// Flushes what the rollup accumulated (and what failed flushes kept).
    ///
    /// # Errors
    /// The store's error; the delta is kept for the next flush (at most [`MAX_PENDING_ROWS`]
    /// rows, the oldest days dropped and counted beyond).
    pub fn flush(&mut self) -> Result<Flushed, StoreError> {
        let delta = self.rollup.take();
        self.flush_delta(delta)
    }

    /// Flushes `delta` (taken from a rollup kept elsewhere, e.g. on the packet thread) with
    /// what failed flushes kept.
    ///
    /// # Errors
    /// As [`Writer::flush`].
    pub fn flush_delta(&mut self, newer: Delta) -> Result<Flushed, StoreError> {
        let mut delta = self.pending.take().unwrap_or_default();
        delta.merge(newer);
        match self.store.flush(&delta) {
            Ok(f) => Ok(f),
            Err(e) => {
                self.store.stats.dropped_rows += delta.truncate(MAX_PENDING_ROWS);
                self.pending = Some(delta);
                Err(e)
            }
        }
    }

    /// Rows kept from failed flushes.
    pub fn pending_rows(&self) -> usize {
        self.pending.as_ref().map_or(0, Delta::rows)
    }
}

/// The store of a daemon: `--store FILE`, else `DIR/rollup.sqlite` of `--state-dir DIR`.
pub fn path_for_run(store: Option<&std::path::Path>, state_dir: Option<&std::path::Path>) -> Option<PathBuf> {
    store.map(PathBuf::from).or_else(|| state_dir.map(|d| d.join(STATE_DIR_FILE)))
}
