//! The rollup store in SQLite: schema and migrations, flush, retention, backup and load.
//!
//! Durability: WAL journal with `synchronous=NORMAL` (a crash or power loss may lose the last
//! flushes, never corrupt the file; readers, backups included, never block the writer), every
//! flush one `IMMEDIATE` transaction (counters added, sketches merged by read-modify-write
//! inside it, retention applied), so a flush is all or nothing. The schema version is
//! `PRAGMA user_version` (migrations run from 0 in order, each in its own transaction, when a
//! store is opened: a store of an earlier build is brought up to date and keeps its rows) and
//! `PRAGMA application_id` marks the file as a rollup store. Days are stored as day numbers
//! since 1970-01-01 (UTC).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, TransactionBehavior};
use time::Date;

use super::keys::{self, Keyring};
use super::rollup::Delta;
use super::sketch::{self, Sketch};
use super::{Settings, StoreError, StoreStats};
use crate::report::input::{
    Coverage, DepartmentRow, DomainRow, Exemption, HostMethod, Hosts, ReportInput, Sensor, UsageRow, Volume, Week, ALL_DEPARTMENTS,
};
use crate::aggregate::Unanswered;
use crate::time::{from_unix_day, unix_day};

/// Schema version this build writes (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = 3;

/// `PRAGMA application_id` of a rollup store ("shtp").
pub const APPLICATION_ID: i64 = 0x7368_7470;

/// How long a statement waits for another connection's lock (a backup, a second writer).
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Source named in reports loaded from a store.
pub const SOURCE: &str = "rollup store";

/// Version 0 → 1: the whole schema. Usage rows carry blobs of up to 3 KiB, so they keep rowid
/// tables; the small counter tables are `WITHOUT ROWID`.
const SCHEMA_V1: &str = "
CREATE TABLE meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE usage (
    day INTEGER NOT NULL, department TEXT NOT NULL, service TEXT NOT NULL, channel TEXT NOT NULL,
    category TEXT NOT NULL, status TEXT NOT NULL,
    flows INTEGER NOT NULL, bytes_up INTEGER NOT NULL, bytes_down INTEGER NOT NULL, hosts BLOB NOT NULL,
    PRIMARY KEY (day, department, service, channel, category, status));
CREATE TABLE active_hosts (
    day INTEGER NOT NULL, department TEXT NOT NULL, hosts BLOB NOT NULL,
    PRIMARY KEY (day, department));
CREATE TABLE unnamed (
    day INTEGER NOT NULL, department TEXT NOT NULL, reason TEXT NOT NULL, flows INTEGER NOT NULL,
    PRIMARY KEY (day, department, reason)) WITHOUT ROWID;
CREATE TABLE coverage (
    day INTEGER PRIMARY KEY, packets INTEGER NOT NULL, capture_received INTEGER NOT NULL,
    capture_dropped INTEGER NOT NULL, ech_flows INTEGER NOT NULL);
CREATE TABLE named (
    day INTEGER NOT NULL, signal TEXT NOT NULL, flows INTEGER NOT NULL,
    PRIMARY KEY (day, signal)) WITHOUT ROWID;
CREATE TABLE uptime (
    day INTEGER NOT NULL, sensor TEXT NOT NULL, seconds INTEGER NOT NULL,
    PRIMARY KEY (day, sensor)) WITHOUT ROWID;
CREATE TABLE day_keys (
    day INTEGER NOT NULL, key_id INTEGER NOT NULL,
    PRIMARY KEY (day, key_id)) WITHOUT ROWID;
CREATE TABLE configs (
    day INTEGER NOT NULL, catalog_digest TEXT NOT NULL, config_digest TEXT NOT NULL,
    min_group_size INTEGER NOT NULL,
    PRIMARY KEY (day, catalog_digest, config_digest, min_group_size)) WITHOUT ROWID;
CREATE TABLE exemptions (
    day INTEGER NOT NULL, department TEXT NOT NULL, service TEXT NOT NULL, start INTEGER NOT NULL,
    expires INTEGER NOT NULL, reference TEXT NOT NULL,
    PRIMARY KEY (day, department, service, start, expires, reference)) WITHOUT ROWID;
";

/// Version 1 → 2: flows their server never answered, counted apart per day, department and
/// service label (they are not use), and whether the configuration in force counted them as use
/// (0 for the days of earlier builds, which did not tell them apart).
const SCHEMA_V2: &str = "
CREATE TABLE unanswered (
    day INTEGER NOT NULL, department TEXT NOT NULL, service TEXT NOT NULL, flows INTEGER NOT NULL,
    PRIMARY KEY (day, department, service)) WITHOUT ROWID;
ALTER TABLE configs ADD COLUMN unanswered_as_use INTEGER NOT NULL DEFAULT 0;
";

/// Version 2 → 3: flows to named destinations outside the catalog per day and registrable
/// domain, organisation-wide, with their hosts' sketch (what reports list as destinations
/// outside the catalog). Days of earlier builds have no such rows.
const SCHEMA_V3: &str = "
CREATE TABLE uncatalogued (
    day INTEGER NOT NULL, domain TEXT NOT NULL,
    flows INTEGER NOT NULL, bytes_up INTEGER NOT NULL, bytes_down INTEGER NOT NULL, hosts BLOB NOT NULL,
    PRIMARY KEY (day, domain));
";

/// `MIGRATIONS[v]` brings a store from version `v` to `v + 1`.
const MIGRATIONS: &[&str] = &[SCHEMA_V1, SCHEMA_V2, SCHEMA_V3];

/// Every table keyed by day (what retention deletes from).
const DAY_TABLES: &[&str] =
    &["usage", "active_hosts", "unnamed", "unanswered", "uncatalogued", "coverage", "named", "uptime", "day_keys", "configs", "exemptions"];

/// What one flush did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flushed {
    /// Rows written (inserted or updated).
    pub rows: usize,
    /// Rows deleted by retention.
    pub deleted: u64,
    /// Time the flush took.
    pub elapsed: Duration,
}

/// An open rollup store.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    label: String,
    keys_path: Option<PathBuf>,
    keys: Keyring,
    settings: Settings,
    /// Counters, for metrics.
    pub stats: StoreStats,
}

/// Attaches the store's name to SQLite errors.
trait At<T> {
    fn at(self, label: &str) -> Result<T, StoreError>;
}

impl<T> At<T> for rusqlite::Result<T> {
    fn at(self, label: &str) -> Result<T, StoreError> {
        self.map_err(|source| match source.sqlite_error_code() {
            Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StoreError::NotADatabase { path: label.into(), source },
            _ => StoreError::Sqlite { path: label.into(), source },
        })
    }
}

fn int(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The Monday (as a day number) of the week of `day`; 1970-01-01 was a Thursday.
fn monday(day: i64) -> i64 {
    day - (day + 3).rem_euclid(7)
}

impl Store {
    /// Opens (creating if needed) the store at `path`, and its key file `<path>.keys`.
    ///
    /// # Errors
    /// [`StoreError::NotADatabase`] for a file that is not SQLite or is damaged,
    /// [`StoreError::Foreign`] for another application's database, [`StoreError::NewerSchema`],
    /// [`StoreError::KeyFile`] for an unreadable key file, or the SQLite error.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let label = path.display().to_string();
        let conn = Connection::open(path).at(&label)?;
        Self::setup(conn, label, Some(keys::path_for(path)))
    }

    /// Opens an existing store to read it (never creates one: for backups and reports). The
    /// key file is not read: reading needs no key, so a report can be made from a backup
    /// (which has none) and a damaged key file does not stop a backup.
    ///
    /// # Errors
    /// As [`Store::open`], and the SQLite error when the file does not exist.
    pub fn open_existing(path: &Path) -> Result<Store, StoreError> {
        let label = path.display().to_string();
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(path, flags).at(&label)?;
        Self::setup(conn, label, None)
    }

    /// A store in memory (a survey that leaves nothing behind): keys are never written.
    ///
    /// # Errors
    /// The SQLite error.
    pub fn open_in_memory() -> Result<Store, StoreError> {
        let label = ":memory:".to_string();
        let conn = Connection::open_in_memory().at(&label)?;
        Self::setup(conn, label, None)
    }

    fn setup(mut conn: Connection, label: String, keys_path: Option<PathBuf>) -> Result<Store, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT).at(&label)?;
        // The first statement that reads the file: a non-database fails here.
        let _mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0)).at(&label)?;
        conn.pragma_update(None, "synchronous", "NORMAL").at(&label)?;
        let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0)).at(&label)?;
        let app: i64 = conn.query_row("PRAGMA application_id", [], |r| r.get(0)).at(&label)?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::NewerSchema { path: label, found: version, supported: SCHEMA_VERSION });
        }
        if version == 0 {
            let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0)).at(&label)?;
            if tables > 0 {
                return Err(StoreError::Foreign { path: label });
            }
        } else if app != APPLICATION_ID {
            return Err(StoreError::Foreign { path: label });
        }
        for v in version..SCHEMA_VERSION {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).at(&label)?;
            tx.execute_batch(MIGRATIONS[v as usize]).at(&label)?;
            tx.pragma_update(None, "user_version", v + 1).at(&label)?;
            tx.pragma_update(None, "application_id", APPLICATION_ID).at(&label)?;
            tx.commit().at(&label)?;
        }
        let mut stats = StoreStats::default();
        let keys = match &keys_path {
            Some(p) => match keys::read(p)? {
                Some(k) => k,
                None => {
                    let used: i64 = conn.query_row("SELECT count(*) FROM day_keys", [], |r| r.get(0)).at(&label)?;
                    stats.keys_lost = u64::from(used > 0);
                    Keyring::default()
                }
            },
            None => Keyring::default(),
        };
        Ok(Store { conn, label, keys_path, keys, settings: Settings::default(), stats })
    }

    /// The keys on disk, for the [`super::Rollup`] that fills this store.
    pub fn keyring(&self) -> Keyring {
        self.keys.clone()
    }

    /// The settings in force.
    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// Changes the settings (a reloaded configuration); retention applies at the next flush.
    pub fn set_settings(&mut self, s: Settings) {
        self.settings = s;
    }

    /// The SQLite journal mode (`wal` for a file, `memory` in memory).
    ///
    /// # Errors
    /// The SQLite error.
    pub fn journal_mode(&self) -> Result<String, StoreError> {
        self.conn.query_row("PRAGMA journal_mode", [], |r| r.get(0)).at(&self.label)
    }

    /// The first and last day with flows stored.
    ///
    /// # Errors
    /// The SQLite error.
    pub fn days(&self) -> Result<Option<(Date, Date)>, StoreError> {
        let (lo, hi): (Option<i64>, Option<i64>) =
            self.conn.query_row("SELECT min(day), max(day) FROM day_keys", [], |r| Ok((r.get(0)?, r.get(1)?))).at(&self.label)?;
        Ok(lo.zip(hi).and_then(|(a, b)| Some((from_unix_day(a)?, from_unix_day(b)?))))
    }

    /// Every day with data, oldest first: a flow (used, unnamed or unanswered), an active
    /// host, a processed packet or a sensor's uptime. Days that hold only configurations or
    /// exemptions are not data: a report of them would read as "no use".
    ///
    /// # Errors
    /// The SQLite error, [`StoreError::Corrupt`] for a day this build cannot have written.
    pub fn data_days(&self) -> Result<Vec<Date>, StoreError> {
        let l = self.label.as_str();
        let mut st = self
            .conn
            .prepare(
                "SELECT day FROM usage WHERE flows > 0
                 UNION SELECT day FROM active_hosts
                 UNION SELECT day FROM unnamed WHERE flows > 0
                 UNION SELECT day FROM unanswered WHERE flows > 0
                 UNION SELECT day FROM coverage WHERE packets > 0 OR capture_received > 0
                 UNION SELECT day FROM uptime WHERE seconds > 0
                 ORDER BY day",
            )
            .at(l)?;
        let days = st.query_map([], |r| r.get::<_, i64>(0)).at(l)?;
        let mut out = Vec::new();
        for d in days {
            let d = d.at(l)?;
            out.push(from_unix_day(d).ok_or_else(|| StoreError::Corrupt { path: l.into(), table: "usage", what: format!("day {d} out of range") })?);
        }
        Ok(out)
    }

    /// Writes a delta in one transaction: counters added, sketches merged, configurations and
    /// key ids recorded, days older than `retention_days` before the newest day deleted. A new
    /// keyring is written to the key file first, so no sketch is ever committed without its key.
    ///
    /// # Errors
    /// The SQLite, key-file or corrupt-value error; nothing of the delta is then written.
    pub fn flush(&mut self, delta: &Delta) -> Result<Flushed, StoreError> {
        let result = self.flush_inner(delta);
        match &result {
            Ok(f) => {
                self.stats.flushes[0] += 1;
                self.stats.rows_deleted += f.deleted;
                self.stats.last_flush_unix = crate::time::Timestamp::wall_clock().secs();
            }
            Err(_) => self.stats.flushes[1] += 1,
        }
        result
    }

    fn flush_inner(&mut self, delta: &Delta) -> Result<Flushed, StoreError> {
        let started = Instant::now();
        if let Some(ring) = delta.keys.as_ref().filter(|r| **r != self.keys) {
            if let Some(p) = &self.keys_path {
                keys::write(p, ring)?;
            }
            self.keys = ring.clone();
        }
        let label = self.label.clone();
        let l = label.as_str();
        let corrupt = |table: &'static str, what: String| StoreError::Corrupt { path: label.clone(), table, what };
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate).at(l)?;
        let mut rows = 0usize;
        {
            let mut get_usage = tx
                .prepare_cached("SELECT hosts FROM usage WHERE day=?1 AND department=?2 AND service=?3 AND channel=?4 AND category=?5 AND status=?6")
                .at(l)?;
            let mut put_usage = tx
                .prepare_cached(
                    "INSERT INTO usage (day, department, service, channel, category, status, flows, bytes_up, bytes_down, hosts)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                     ON CONFLICT (day, department, service, channel, category, status) DO UPDATE SET
                     flows = flows + excluded.flows, bytes_up = bytes_up + excluded.bytes_up,
                     bytes_down = bytes_down + excluded.bytes_down, hosts = excluded.hosts",
                )
                .at(l)?;
            let mut get_domain = tx.prepare_cached("SELECT hosts FROM uncatalogued WHERE day=?1 AND domain=?2").at(l)?;
            let mut put_domain = tx
                .prepare_cached(
                    "INSERT INTO uncatalogued (day, domain, flows, bytes_up, bytes_down, hosts) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                     ON CONFLICT (day, domain) DO UPDATE SET
                     flows = flows + excluded.flows, bytes_up = bytes_up + excluded.bytes_up,
                     bytes_down = bytes_down + excluded.bytes_down, hosts = excluded.hosts",
                )
                .at(l)?;
            let mut get_active = tx.prepare_cached("SELECT hosts FROM active_hosts WHERE day=?1 AND department=?2").at(l)?;
            let mut put_active = tx
                .prepare_cached(
                    "INSERT INTO active_hosts (day, department, hosts) VALUES (?1, ?2, ?3)
                     ON CONFLICT (day, department) DO UPDATE SET hosts = excluded.hosts",
                )
                .at(l)?;
            let mut put_unnamed = tx
                .prepare_cached(
                    "INSERT INTO unnamed (day, department, reason, flows) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (day, department, reason) DO UPDATE SET flows = flows + excluded.flows",
                )
                .at(l)?;
            let mut put_unanswered = tx
                .prepare_cached(
                    "INSERT INTO unanswered (day, department, service, flows) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (day, department, service) DO UPDATE SET flows = flows + excluded.flows",
                )
                .at(l)?;
            let mut put_coverage = tx
                .prepare_cached(
                    "INSERT INTO coverage (day, packets, capture_received, capture_dropped, ech_flows) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (day) DO UPDATE SET packets = packets + excluded.packets,
                     capture_received = capture_received + excluded.capture_received,
                     capture_dropped = capture_dropped + excluded.capture_dropped, ech_flows = ech_flows + excluded.ech_flows",
                )
                .at(l)?;
            let mut put_named = tx
                .prepare_cached(
                    "INSERT INTO named (day, signal, flows) VALUES (?1, ?2, ?3)
                     ON CONFLICT (day, signal) DO UPDATE SET flows = flows + excluded.flows",
                )
                .at(l)?;
            let mut put_uptime = tx
                .prepare_cached(
                    "INSERT INTO uptime (day, sensor, seconds) VALUES (?1, ?2, ?3)
                     ON CONFLICT (day, sensor) DO UPDATE SET seconds = seconds + excluded.seconds",
                )
                .at(l)?;
            let mut put_key = tx.prepare_cached("INSERT OR IGNORE INTO day_keys (day, key_id) VALUES (?1, ?2)").at(l)?;
            // The same file can be in force with either rule for unanswered flows on one day (it
            // applies from a start, not a reload): a day where any flow counted them as use says so.
            let mut put_config = tx
                .prepare_cached(
                    "INSERT INTO configs (day, catalog_digest, config_digest, min_group_size, unanswered_as_use) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (day, catalog_digest, config_digest, min_group_size) DO UPDATE SET
                     unanswered_as_use = max(unanswered_as_use, excluded.unanswered_as_use)",
                )
                .at(l)?;
            let mut put_exemption = tx
                .prepare_cached(
                    "INSERT OR IGNORE INTO exemptions (day, department, service, start, expires, reference) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .at(l)?;
            let merged = |old: Option<Vec<u8>>, new: &Sketch, table: &'static str| -> Result<Vec<u8>, StoreError> {
                match old {
                    None => Ok(new.to_blob()),
                    Some(b) => {
                        let mut s = Sketch::from_blob(&b).map_err(|e| corrupt(table, e.to_string()))?;
                        s.merge(new);
                        Ok(s.to_blob())
                    }
                }
            };
            for (date, d) in &delta.days {
                let day = unix_day(*date);
                for (k, u) in &d.usage {
                    // Names, never ids: ids are numbered per process.
                    let [department, service, channel, category, status] = k.labels();
                    let key = params![day, department, service, channel, category, status];
                    let old: Option<Vec<u8>> = get_usage.query_row(key, |r| r.get(0)).optional().at(l)?;
                    let blob = merged(old, &u.hosts, "usage")?;
                    put_usage
                        .execute(params![
                            day,
                            department,
                            service,
                            channel,
                            category,
                            status,
                            int(u.flows),
                            int(u.bytes_up),
                            int(u.bytes_down),
                            blob
                        ])
                        .at(l)?;
                }
                for (domain, u) in &d.uncatalogued {
                    let old: Option<Vec<u8>> = get_domain.query_row(params![day, domain], |r| r.get(0)).optional().at(l)?;
                    let blob = merged(old, &u.hosts, "uncatalogued")?;
                    put_domain.execute(params![day, domain, int(u.flows), int(u.bytes_up), int(u.bytes_down), blob]).at(l)?;
                }
                for (dept, s) in &d.active {
                    let dept = dept.as_str();
                    let old: Option<Vec<u8>> = get_active.query_row(params![day, dept], |r| r.get(0)).optional().at(l)?;
                    put_active.execute(params![day, dept, merged(old, s, "active_hosts")?]).at(l)?;
                }
                for ((dept, reason), n) in &d.unnamed {
                    put_unnamed.execute(params![day, dept.as_str(), reason, int(*n)]).at(l)?;
                }
                for ((dept, service), n) in &d.unanswered {
                    put_unanswered.execute(params![day, dept.as_str(), service.as_str(), int(*n)]).at(l)?;
                }
                let c = &d.coverage;
                put_coverage
                    .execute(params![day, int(c.packets), int(c.capture_received), int(c.capture_dropped), int(c.ech_flows)])
                    .at(l)?;
                for (signal, n) in &c.named_by_signal {
                    put_named.execute(params![day, signal, int(*n)]).at(l)?;
                }
                for (sensor, secs) in &d.uptime {
                    put_uptime.execute(params![day, sensor, int(*secs)]).at(l)?;
                }
                for id in &d.key_ids {
                    put_key.execute(params![day, *id as i64]).at(l)?;
                }
                for cf in &d.configs {
                    let as_use = cf.unanswered == Unanswered::AsUse;
                    put_config.execute(params![day, cf.catalog_digest, cf.config_digest, int(cf.min_group_size), as_use]).at(l)?;
                    for e in &cf.exemptions {
                        let start = e.start.map(unix_day).unwrap_or(i64::MIN);
                        let reference = e.reference.clone().unwrap_or_default();
                        put_exemption.execute(params![day, e.department, e.service, start, unix_day(e.expires), reference]).at(l)?;
                    }
                }
                rows += d.rows();
            }
        }
        // Retention, counted back from the newest day ever stored.
        let stored: Option<i64> =
            tx.query_row("SELECT value FROM meta WHERE name = 'newest_day'", [], |r| r.get(0)).optional().at(l)?;
        let newest = stored.into_iter().chain(delta.days.keys().next_back().map(|d| unix_day(*d))).max();
        let mut deleted = 0u64;
        if let Some(newest) = newest {
            let cutoff = newest - i64::from(self.settings.retention_days.max(1)) + 1;
            for t in DAY_TABLES {
                deleted += tx.execute(&format!("DELETE FROM {t} WHERE day < ?1"), [cutoff]).at(l)? as u64;
            }
            tx.execute(
                "INSERT INTO meta (name, value) VALUES ('newest_day', ?1) ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                [newest],
            )
            .at(l)?;
        }
        tx.commit().at(l)?;
        Ok(Flushed { rows, deleted, elapsed: started.elapsed() })
    }

    /// Copies the database to `to` while the store stays in use (SQLite's online backup, in one
    /// step: a consistent snapshot; writers go on in WAL mode). The copy is a single file in
    /// rollback-journal mode, written beside `to` and renamed into place. The key file is not
    /// copied: a backup alone cannot test addresses against sketches (copy `<store>.keys` too,
    /// securely, to keep distinct counts continuous across a restore).
    ///
    /// # Errors
    /// [`StoreError::Exists`] when `to` exists, or the SQLite / I/O error.
    pub fn backup(&self, to: &Path) -> Result<(), StoreError> {
        if to.exists() {
            return Err(StoreError::Exists { path: to.display().to_string() });
        }
        let mut partial = to.as_os_str().to_os_string();
        partial.push(".partial");
        let partial = PathBuf::from(partial);
        let tl = partial.display().to_string();
        let io = |source| StoreError::Io { path: to.display().to_string(), source };
        match std::fs::remove_file(&partial) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(e)),
        }
        let result = (|| {
            let mut dst = Connection::open(&partial).at(&tl)?;
            {
                let b = rusqlite::backup::Backup::new(&self.conn, &mut dst).at(&tl)?;
                loop {
                    match b.step(-1).at(&tl)? {
                        rusqlite::backup::StepResult::Done => break,
                        _ => std::thread::sleep(Duration::from_millis(20)),
                    }
                }
            }
            let _: String = dst.query_row("PRAGMA journal_mode=DELETE", [], |r| r.get(0)).at(&tl)?;
            dst.close().map_err(|(_, e)| e).at(&tl)?;
            std::fs::File::open(&partial).and_then(|f| f.sync_all()).map_err(io)?;
            std::fs::rename(&partial, to).map_err(io)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        result
    }

    /// Everything a report of `from..=to` needs: usage rows per department (only `department`'s
    /// when given) and for [`ALL_DEPARTMENTS`], distinct hosts as the union of the daily
    /// sketches, unnamed and unanswered flows per department, weekly trend (Monday weeks, every
    /// week of the period, clipped to it), exemptions, coverage and the counting method. Rows are not k-suppressed (see the module
    /// documentation of [`super`]).
    ///
    /// # Errors
    /// The SQLite error, [`StoreError::Corrupt`] for a value this build cannot have written, or
    /// [`StoreError::Period`] when `to` is before `from`.
    pub fn load(&self, from: Date, to: Date, department: Option<&str>) -> Result<ReportInput, StoreError> {
        if to < from {
            return Err(StoreError::Period { from, to });
        }
        let l = self.label.as_str();
        let (lo, hi) = (unix_day(from), unix_day(to));
        let keep = |d: &str| department.is_none_or(|x| x == d);
        let corrupt = |table: &'static str, what: String| StoreError::Corrupt { path: l.into(), table, what };
        let count = |v: i64, table: &'static str| u64::try_from(v).map_err(|_| corrupt(table, format!("negative count {v}")));
        let blob = |b: Vec<u8>, table: &'static str| Sketch::from_blob(&b).map_err(|e| corrupt(table, e.to_string()));

        // Usage: per (week, department, service, channel, category, status), merged over days.
        type Key = (String, String, String, String, String);
        let mut weekly: BTreeMap<(i64, Key), Acc> = BTreeMap::new();
        let mut st = self
            .conn
            .prepare("SELECT day, department, service, channel, category, status, flows, bytes_up, bytes_down, hosts FROM usage WHERE day BETWEEN ?1 AND ?2")
            .at(l)?;
        let mut q = st.query([lo, hi]).at(l)?;
        while let Some(r) = q.next().at(l)? {
            let day: i64 = r.get(0).at(l)?;
            let key: Key = (r.get(1).at(l)?, r.get(2).at(l)?, r.get(3).at(l)?, r.get(4).at(l)?, r.get(5).at(l)?);
            let acc = Acc {
                volume: Volume {
                    flows: count(r.get(6).at(l)?, "usage")?,
                    bytes_up: count(r.get(7).at(l)?, "usage")?,
                    bytes_down: count(r.get(8).at(l)?, "usage")?,
                },
                hosts: blob(r.get(9).at(l)?, "usage")?,
            };
            add(&mut weekly, (monday(day), key), &acc);
        }
        // Destinations outside the catalog, organisation-wide, merged over the period.
        let mut domains: BTreeMap<String, Acc> = BTreeMap::new();
        let mut st = self
            .conn
            .prepare("SELECT domain, flows, bytes_up, bytes_down, hosts FROM uncatalogued WHERE day BETWEEN ?1 AND ?2")
            .at(l)?;
        let mut q = st.query([lo, hi]).at(l)?;
        while let Some(r) = q.next().at(l)? {
            let acc = Acc {
                volume: Volume {
                    flows: count(r.get(1).at(l)?, "uncatalogued")?,
                    bytes_up: count(r.get(2).at(l)?, "uncatalogued")?,
                    bytes_down: count(r.get(3).at(l)?, "uncatalogued")?,
                },
                hosts: blob(r.get(4).at(l)?, "uncatalogued")?,
            };
            add(&mut domains, r.get::<_, String>(0).at(l)?, &acc);
        }
        let uncatalogued = domains.into_iter().map(|(domain, a)| DomainRow { domain, volume: a.volume, hosts: hosts_of(&a.hosts) }).collect();

        // Active hosts and unnamed flows per (week, department).
        let mut active: BTreeMap<(i64, String), Sketch> = BTreeMap::new();
        let mut st = self.conn.prepare("SELECT day, department, hosts FROM active_hosts WHERE day BETWEEN ?1 AND ?2").at(l)?;
        let mut q = st.query([lo, hi]).at(l)?;
        while let Some(r) = q.next().at(l)? {
            let (day, dept): (i64, String) = (r.get(0).at(l)?, r.get(1).at(l)?);
            active.entry((monday(day), dept)).or_default().merge(&blob(r.get(2).at(l)?, "active_hosts")?);
        }
        let mut unnamed: BTreeMap<(i64, String, String), u64> = BTreeMap::new();
        let mut st = self.conn.prepare("SELECT day, department, reason, flows FROM unnamed WHERE day BETWEEN ?1 AND ?2").at(l)?;
        let mut q = st.query([lo, hi]).at(l)?;
        while let Some(r) = q.next().at(l)? {
            let day: i64 = r.get(0).at(l)?;
            *unnamed.entry((monday(day), r.get(1).at(l)?, r.get(2).at(l)?)).or_default() += count(r.get(3).at(l)?, "unnamed")?;
        }
        let mut unanswered: BTreeMap<(i64, String, String), u64> = BTreeMap::new();
        let mut st = self.conn.prepare("SELECT day, department, service, flows FROM unanswered WHERE day BETWEEN ?1 AND ?2").at(l)?;
        let mut q = st.query([lo, hi]).at(l)?;
        while let Some(r) = q.next().at(l)? {
            let day: i64 = r.get(0).at(l)?;
            *unanswered.entry((monday(day), r.get(1).at(l)?, r.get(2).at(l)?)).or_default() += count(r.get(3).at(l)?, "unanswered")?;
        }

        // The period: channels from weeks, services from channels, categories from services;
        // the organisation from departments.
        let mut channels: BTreeMap<Key, Acc> = BTreeMap::new();
        let mut week_categories: BTreeMap<(i64, Key), Acc> = BTreeMap::new();
        for ((week, (d, s, c, cat, status)), acc) in &weekly {
            add(&mut channels, (d.clone(), s.clone(), c.clone(), cat.clone(), status.clone()), acc);
            add(&mut week_categories, (*week, (d.clone(), String::new(), String::new(), cat.clone(), status.clone())), acc);
        }
        let mut services: BTreeMap<Key, Acc> = BTreeMap::new();
        for ((d, s, _, cat, status), acc) in &channels {
            add(&mut services, (d.clone(), s.clone(), String::new(), cat.clone(), status.clone()), acc);
        }
        let mut categories: BTreeMap<Key, Acc> = BTreeMap::new();
        for ((d, _, _, cat, status), acc) in &services {
            add(&mut categories, (d.clone(), String::new(), String::new(), cat.clone(), status.clone()), acc);
        }
        let rows = |map: &BTreeMap<Key, Acc>| -> Vec<UsageRow> {
            let mut out: Vec<UsageRow> = map.iter().filter(|(k, _)| keep(&k.0)).map(|(k, a)| a.row(k.clone())).collect();
            let mut all: BTreeMap<Key, Acc> = BTreeMap::new();
            for ((_, s, c, cat, status), acc) in map {
                add(&mut all, (ALL_DEPARTMENTS.into(), s.clone(), c.clone(), cat.clone(), status.clone()), acc);
            }
            out.extend(all.into_iter().map(|(k, a)| a.row(k)));
            out.sort_by(|a, b| row_key(a).cmp(&row_key(b)));
            out
        };
        // Keys start with the week, so one week is a range.
        let weeks_of = |week: Option<i64>| match week {
            Some(w) => (w, w + 1),
            None => (i64::MIN, i64::MAX),
        };
        let departments_of = |week: Option<i64>| -> Vec<DepartmentRow> {
            let (a, b) = weeks_of(week);
            let mut hosts: BTreeMap<String, Sketch> = BTreeMap::new();
            for ((_, d), s) in active.range((a, String::new())..(b, String::new())) {
                hosts.entry(d.clone()).or_default().merge(s);
                hosts.entry(ALL_DEPARTMENTS.into()).or_default().merge(s);
            }
            let per_department = |map: &BTreeMap<(i64, String, String), u64>| {
                let mut flows: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
                for ((_, d, label), n) in map.range((a, String::new(), String::new())..(b, String::new(), String::new())) {
                    *flows.entry(d.clone()).or_default().entry(label.clone()).or_default() += n;
                    *flows.entry(ALL_DEPARTMENTS.into()).or_default().entry(label.clone()).or_default() += n;
                }
                flows
            };
            let (mut flows, mut apart) = (per_department(&unnamed), per_department(&unanswered));
            let names: BTreeSet<String> = hosts.keys().chain(flows.keys()).chain(apart.keys()).cloned().collect();
            names
                .into_iter()
                .filter(|d| d == ALL_DEPARTMENTS || keep(d))
                .map(|d| DepartmentRow {
                    active_hosts: hosts.get(&d).map_or(Hosts { count: 0, exact: true }, hosts_of),
                    unnamed_flows: flows.remove(&d).unwrap_or_default(),
                    unanswered_flows: apart.remove(&d).unwrap_or_default(),
                    department: d,
                })
                .collect()
        };
        let mut weeks = Vec::new();
        let mut week = monday(lo);
        while week <= hi {
            let of_week: BTreeMap<Key, Acc> =
                week_categories.range((week, Key::default())..(week + 1, Key::default())).map(|((_, k), a)| (k.clone(), a.clone())).collect();
            if let Some(start) = from_unix_day(week) {
                weeks.push(Week { start, categories: rows(&of_week), departments: departments_of(Some(week)) });
            }
            week += 7;
        }

        // Exemptions, coverage, method.
        let mut exemptions = Vec::new();
        let mut st = self
            .conn
            .prepare("SELECT DISTINCT department, service, start, expires, reference FROM exemptions WHERE day BETWEEN ?1 AND ?2 ORDER BY 1, 2, 3, 4, 5")
            .at(l)?;
        let mut q = st.query([lo, hi]).at(l)?;
        while let Some(r) = q.next().at(l)? {
            let dept: String = r.get(0).at(l)?;
            if !keep(&dept) {
                continue;
            }
            let (start, expires, reference): (i64, i64, String) = (r.get(2).at(l)?, r.get(3).at(l)?, r.get(4).at(l)?);
            exemptions.push(Exemption {
                department: dept,
                service: r.get(1).at(l)?,
                start: from_unix_day(start),
                expires: from_unix_day(expires).ok_or_else(|| corrupt("exemptions", format!("day {expires}")))?,
                reference: (!reference.is_empty()).then_some(reference),
            });
        }
        let mut coverage = Coverage::default();
        let mut st = self.conn.prepare("SELECT sensor, sum(seconds) FROM uptime WHERE day BETWEEN ?1 AND ?2 GROUP BY sensor ORDER BY sensor").at(l)?;
        let mut q = st.query([lo, hi]).at(l)?;
        while let Some(r) = q.next().at(l)? {
            coverage.sensors.push(Sensor { name: r.get(0).at(l)?, uptime_secs: count(r.get(1).at(l)?, "uptime")? });
        }
        let sums: [Option<i64>; 4] = self
            .conn
            .query_row(
                "SELECT sum(packets), sum(capture_received), sum(capture_dropped), sum(ech_flows) FROM coverage WHERE day BETWEEN ?1 AND ?2",
                [lo, hi],
                |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?]),
            )
            .at(l)?;
        let [packets, received, dropped, ech] = sums.map(|v| count(v.unwrap_or(0), "coverage"));
        (coverage.packets, coverage.capture_received, coverage.capture_dropped, coverage.ech_flows) = (packets?, received?, dropped?, ech?);
        let mut st = self.conn.prepare("SELECT signal, sum(flows) FROM named WHERE day BETWEEN ?1 AND ?2 GROUP BY signal").at(l)?;
        let mut q = st.query([lo, hi]).at(l)?;
        while let Some(r) = q.next().at(l)? {
            coverage.named_by_signal.insert(r.get(0).at(l)?, count(r.get(1).at(l)?, "named")?);
        }
        let mut catalogs = BTreeSet::new();
        let mut configs = BTreeSet::new();
        let mut st = self
            .conn
            .prepare("SELECT catalog_digest, config_digest, min_group_size, unanswered_as_use FROM configs WHERE day BETWEEN ?1 AND ?2")
            .at(l)?;
        let mut q = st.query([lo, hi]).at(l)?;
        while let Some(r) = q.next().at(l)? {
            catalogs.insert(r.get::<_, String>(0).at(l)?);
            configs.insert(r.get::<_, String>(1).at(l)?);
            coverage.min_group_size = coverage.min_group_size.max(count(r.get(2).at(l)?, "configs")?);
            coverage.unanswered_as_use |= r.get::<_, bool>(3).at(l)?;
        }
        coverage.catalog_digests = catalogs.into_iter().collect();
        coverage.config_digests = configs.into_iter().collect();
        let key_epochs: i64 =
            self.conn.query_row("SELECT count(DISTINCT key_id) FROM day_keys WHERE day BETWEEN ?1 AND ?2", [lo, hi], |r| r.get(0)).at(l)?;

        Ok(ReportInput {
            from,
            to,
            source: SOURCE.into(),
            host_method: HostMethod::Sketch {
                relative_error: sketch::RELATIVE_ERROR,
                exact_below: sketch::EXACT_BELOW,
                key_epochs: u32::try_from(key_epochs).unwrap_or(u32::MAX),
            },
            services: rows(&services),
            channels: rows(&channels),
            categories: rows(&categories),
            departments: departments_of(None),
            weeks,
            exemptions,
            coverage,
            damaged_captures: Vec::new(),
            departments_configured: Vec::new(),
            department_names: Default::default(),
            service_catalog: Vec::new(),
            risk_weights: None,
            uncatalogued,
        })
    }
}

/// Counters and hosts of a row being summed.
#[derive(Debug, Clone, Default)]
struct Acc {
    volume: Volume,
    hosts: Sketch,
}

impl Acc {
    fn row(&self, (department, service, channel, category, status): (String, String, String, String, String)) -> UsageRow {
        UsageRow { department, service, channel, category, status, volume: self.volume, hosts: hosts_of(&self.hosts) }
    }
}

fn add<K: Ord>(map: &mut BTreeMap<K, Acc>, key: K, acc: &Acc) {
    let e = map.entry(key).or_default();
    e.volume.flows += acc.volume.flows;
    e.volume.bytes_up += acc.volume.bytes_up;
    e.volume.bytes_down += acc.volume.bytes_down;
    e.hosts.merge(&acc.hosts);
}

fn hosts_of(s: &Sketch) -> Hosts {
    Hosts { count: s.estimate(), exact: s.is_exact() }
}

fn row_key(r: &UsageRow) -> (&str, &str, &str, &str, &str) {
    (&r.department, &r.service, &r.channel, &r.category, &r.status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::tests_support::{catalog, flow, wa};
    use crate::classify::catalog::Catalog;
    use crate::classify::Attribution;
    use crate::engine::FlowRecord;
    use crate::store::{ConfigFacts, Counters, Rollup, Writer};
    use time::macros::date;

    const DAY: i64 = 86_400;
    /// 2026-03-02, a Monday.
    const MONDAY: i64 = 20_514 * DAY;

    struct Dir(PathBuf);

    impl Dir {
        fn new(name: &str) -> Dir {
            let d = std::env::temp_dir().join(format!("shadowtap-store-{name}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d).unwrap();
            Dir(d)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn add(r: &mut Rollup, c: &Catalog, flows: &[(&str, i64, &str)]) {
        for (client, secs, dept) in flows {
            r.add(&flow(client, *secs), &wa(dept), c);
        }
    }

    fn row<'a>(rows: &'a [UsageRow], dept: &str, service: &str) -> &'a UsageRow {
        rows.iter().find(|r| r.department == dept && r.service == service).unwrap_or_else(|| panic!("no row {dept} {service} in {rows:?}"))
    }

    fn dept<'a>(rows: &'a [DepartmentRow], d: &str) -> &'a DepartmentRow {
        rows.iter().find(|r| r.department == d).unwrap()
    }

    #[test]
    fn uncatalogued_domains_are_stored_per_day_and_their_hosts_merged() {
        use crate::aggregate::tests_support::{named, outside};
        let c = catalog();
        let mut w = Writer::new(Store::open_in_memory().unwrap(), "s");
        w.rollup.add(&named("10.0.0.1:1", MONDAY, "www.newshare.example.co.uk"), &outside("finance"), &c);
        w.rollup.add(&named("10.0.0.2:1", MONDAY, "cdn.example.co.uk."), &outside("legal"), &c);
        w.rollup.add(&named("10.0.0.3:1", MONDAY, "10.1.2.3"), &outside("legal"), &c);
        w.flush().unwrap();
        // The same host the next day, under another name of the domain.
        w.rollup.add(&named("10.0.0.1:2", MONDAY + DAY, "api.EXAMPLE.co.uk"), &outside("finance"), &c);
        w.rollup.add(&named("10.0.0.1:3", MONDAY + DAY, "x.other.example.org"), &outside("finance"), &c);
        // A catalogued flow is no domain of this list.
        w.rollup.add(&flow("10.0.0.4:1", MONDAY + DAY), &wa("finance"), &c);
        w.flush().unwrap();
        let input = w.store.load(date!(2026 - 03 - 02), date!(2026 - 03 - 08), None).unwrap();
        let got: Vec<(&str, u64, u64, u64)> = input.uncatalogued.iter().map(|d| (d.domain.as_str(), d.volume.flows, d.volume.bytes_up, d.hosts.count)).collect();
        assert_eq!(got, vec![("example.co.uk", 3, 300, 2), ("example.org", 1, 100, 1)], "no address, hosts unioned over days");
        let monday = w.store.load(date!(2026 - 03 - 02), date!(2026 - 03 - 02), None).unwrap();
        assert_eq!(monday.uncatalogued.len(), 1);
        assert_eq!(row(&input.services, ALL_DEPARTMENTS, crate::aggregate::UNCATALOGUED).volume.flows, 5, "still in the uncatalogued group");
    }

    #[test]
    fn a_day_counts_at_most_the_bound_of_domains() {
        use crate::aggregate::tests_support::{named, outside};
        use crate::store::rollup::MAX_UNCATALOGUED_DOMAINS;
        let c = catalog();
        let mut r = Rollup::new(Keyring::default(), "s", 30);
        for i in 0..MAX_UNCATALOGUED_DOMAINS + 3 {
            r.add(&named("10.0.0.1:1", MONDAY, &format!("www.d{i}.com")), &outside("finance"), &c);
        }
        assert_eq!(r.stats.uncatalogued_dropped, 3);
        let delta = r.take();
        assert_eq!(delta.days.values().next().unwrap().uncatalogued.len(), MAX_UNCATALOGUED_DOMAINS);
    }

    #[test]
    fn two_flushes_add_counters_and_merge_hosts_across_days() {
        let c = catalog();
        let mut w = Writer::new(Store::open_in_memory().unwrap(), "s");
        add(&mut w.rollup, &c, &[("10.0.0.1:1", MONDAY, "finance"), ("10.0.0.2:1", MONDAY + 60, "finance")]);
        w.flush().unwrap();
        // The same two hosts the next day, and again the first day, plus a third host.
        add(&mut w.rollup, &c, &[("10.0.0.1:2", MONDAY + DAY, "finance"), ("10.0.0.2:2", MONDAY + 100, "finance"), ("10.0.0.3:1", MONDAY + DAY, "legal")]);
        let f = w.flush().unwrap();
        assert!(f.rows > 0);
        let input = w.store.load(date!(2026 - 03 - 02), date!(2026 - 03 - 08), None).unwrap();
        let fin = row(&input.services, "finance", "whatsapp");
        assert_eq!((fin.volume.flows, fin.volume.bytes_up, fin.volume.bytes_down), (4, 400, 4000));
        assert_eq!(fin.hosts, Hosts { count: 2, exact: true }, "hosts seen on two days count once");
        let all = row(&input.services, ALL_DEPARTMENTS, "whatsapp");
        assert_eq!((all.volume.flows, all.hosts.count), (5, 3));
        assert_eq!(row(&input.channels, "finance", "whatsapp").channel, "default");
        let cat = input.categories.iter().find(|r| r.department == "finance").unwrap();
        assert_eq!((cat.service.as_str(), cat.category.as_str(), cat.volume.flows), ("", "messaging", 4));
        assert_eq!(dept(&input.departments, "finance").active_hosts.count, 2);
        assert_eq!(dept(&input.departments, ALL_DEPARTMENTS).active_hosts.count, 3);
        assert_eq!(input.host_method, HostMethod::Sketch { relative_error: sketch::RELATIVE_ERROR, exact_below: 129, key_epochs: 1 });
        assert_eq!(input.source, SOURCE);
        // One day alone.
        let tuesday = w.store.load(date!(2026 - 03 - 03), date!(2026 - 03 - 03), None).unwrap();
        assert_eq!(row(&tuesday.services, "finance", "whatsapp").volume.flows, 1);
        let keys: Vec<_> = [&input.services, &input.channels, &input.categories].iter().flat_map(|v| v.iter().map(row_key)).collect();
        assert!(keys.windows(2).all(|w| w[0] != w[1]), "no duplicate rows");
        let mut sorted = input.services.clone();
        sorted.sort_by(|a, b| row_key(a).cmp(&row_key(b)));
        assert_eq!(sorted, input.services, "rows sorted by key");
    }

    #[test]
    fn weeks_start_on_monday_and_are_clipped_to_the_period() {
        let c = catalog();
        let mut w = Writer::new(Store::open_in_memory().unwrap(), "s");
        add(
            &mut w.rollup,
            &c,
            &[
                ("10.0.0.1:1", MONDAY, "finance"),            // Mon 2 March: before the period
                ("10.0.0.2:1", MONDAY + 2 * DAY, "finance"),  // Wed 4 March
                ("10.0.0.3:1", MONDAY + 8 * DAY, "finance"),  // Tue 10 March
                ("10.0.0.2:1", MONDAY + 9 * DAY, "finance"),  // Wed 11 March
                ("10.0.0.4:1", MONDAY + 10 * DAY, "finance"), // Thu 12 March: after the period
            ],
        );
        w.flush().unwrap();
        let input = w.store.load(date!(2026 - 03 - 04), date!(2026 - 03 - 11), None).unwrap();
        assert_eq!(input.weeks.iter().map(|w| w.start).collect::<Vec<_>>(), vec![date!(2026 - 03 - 02), date!(2026 - 03 - 09)]);
        let first = row(&input.weeks[0].categories, "finance", "");
        assert_eq!((first.volume.flows, first.hosts.count), (1, 1), "Monday 2 March is outside the period");
        let second = row(&input.weeks[1].categories, "finance", "");
        assert_eq!((second.volume.flows, second.hosts.count), (2, 2), "Thursday 12 March is outside the period");
        assert_eq!(dept(&input.weeks[1].departments, "finance").active_hosts.count, 2);
        assert_eq!(row(&input.services, "finance", "whatsapp").hosts.count, 2, "10.0.0.2 counted once over both weeks");
        assert!(matches!(w.store.load(date!(2026 - 03 - 04), date!(2026 - 03 - 03), None), Err(StoreError::Period { .. })));
        // A week without data is still in the trend.
        let long = w.store.load(date!(2026 - 03 - 02), date!(2026 - 03 - 25), None).unwrap();
        assert_eq!(long.weeks.len(), 4);
        assert!(long.weeks[3].categories.is_empty());
    }

    #[test]
    fn unnamed_coverage_configs_and_department_filter() {
        let c = catalog();
        let mut w = Writer::new(Store::open_in_memory().unwrap(), "sensor-1");
        let ex = Exemption {
            department: "legal".into(),
            service: "whatsapp".into(),
            start: Some(date!(2026 - 01 - 01)),
            expires: date!(2026 - 12 - 31),
            reference: Some("EXC-1".into()),
        };
        let other = Exemption { department: "finance".into(), reference: None, ..ex.clone() };
        w.rollup.set_config(ConfigFacts { catalog_digest: "cat1".into(), config_digest: "cfg1".into(), min_group_size: 5, unanswered: Unanswered::Apart, exemptions: vec![ex.clone(), other.clone()] });
        add(&mut w.rollup, &c, &[("10.0.0.1:1", MONDAY, "finance"), ("10.0.0.9:1", MONDAY, "legal")]);
        let mut f: FlowRecord = flow("10.0.0.5:1", MONDAY + 5);
        f.unnamed = Some(crate::engine::Unnamed::Ech);
        let a = Attribution { target: None, status: Some(crate::classify::Status::Unknown), ..wa("finance") };
        w.rollup.add(&f, &a, &c);
        w.rollup.observe(Counters { packets: 40, capture_received: 50, capture_dropped: 2 });
        w.rollup.add_uptime(MONDAY, MONDAY + 3600);
        w.flush().unwrap();
        w.rollup.set_config(ConfigFacts { catalog_digest: "cat2".into(), config_digest: "cfg1".into(), min_group_size: 3, unanswered: Unanswered::Apart, exemptions: vec![] });
        add(&mut w.rollup, &c, &[("10.0.0.1:1", MONDAY + DAY, "finance")]);
        w.flush().unwrap();
        let input = w.store.load(date!(2026 - 03 - 02), date!(2026 - 03 - 03), None).unwrap();
        let fin = dept(&input.departments, "finance");
        assert_eq!(fin.unnamed_flows.get("ech"), Some(&1));
        assert_eq!(fin.active_hosts.count, 2, "the unnamed flow's client is active");
        assert_eq!(dept(&input.departments, ALL_DEPARTMENTS).unnamed_flows.get("ech"), Some(&1));
        let cov = &input.coverage;
        assert_eq!(cov.sensors, vec![Sensor { name: "sensor-1".into(), uptime_secs: 3600 }]);
        assert_eq!((cov.packets, cov.capture_received, cov.capture_dropped), (40, 50, 2));
        assert_eq!(cov.catalog_digests, vec!["cat1".to_string(), "cat2".to_string()]);
        assert_eq!(cov.config_digests, vec!["cfg1".to_string()]);
        assert_eq!(cov.min_group_size, 5, "the largest k in force");
        assert_eq!(input.exemptions, vec![other, ex.clone()]);
        // One department: its rows and the organisation's.
        let legal = w.store.load(date!(2026 - 03 - 02), date!(2026 - 03 - 03), Some("legal")).unwrap();
        let depts: BTreeSet<&str> = legal.services.iter().chain(&legal.categories).map(|r| r.department.as_str()).collect();
        assert_eq!(depts, BTreeSet::from([ALL_DEPARTMENTS, "legal"]));
        assert_eq!(legal.departments.iter().map(|d| d.department.as_str()).collect::<Vec<_>>(), vec![ALL_DEPARTMENTS, "legal"]);
        assert_eq!(row(&legal.services, ALL_DEPARTMENTS, "whatsapp").volume.flows, 3);
        assert_eq!(legal.exemptions, vec![ex]);
        // Tuesday alone: only the second configuration.
        let tue = w.store.load(date!(2026 - 03 - 03), date!(2026 - 03 - 03), None).unwrap();
        assert_eq!((tue.coverage.catalog_digests.len(), tue.coverage.min_group_size), (1, 3));
        assert!(tue.exemptions.is_empty());
    }

    #[test]
    fn unanswered_flows_are_stored_apart_and_load_per_department() {
        use crate::aggregate::tests_support::unanswered;
        let c = catalog();
        let mut w = Writer::new(Store::open_in_memory().unwrap(), "s");
        for i in 1..=5 {
            w.rollup.add(&unanswered(&format!("10.0.0.{i}:1"), MONDAY + i), &wa("finance"), &c);
        }
        w.flush().unwrap();
        let only = w.store.load(date!(2026 - 03 - 02), date!(2026 - 03 - 02), None).unwrap();
        assert!(only.services.is_empty() && only.categories.is_empty(), "no use: {:?}", only.services);
        assert_eq!(dept(&only.departments, "finance").active_hosts.count, 0);
        assert_eq!(dept(&only.departments, ALL_DEPARTMENTS).active_hosts.count, 0);
        assert_eq!(dept(&only.departments, "finance").unanswered_flows, BTreeMap::from([("whatsapp".to_string(), 5)]));
        assert!(!only.coverage.unanswered_as_use);
        // Plus one answered flow, in a second flush: counters add up, only that flow is use.
        for i in 1..=5 {
            w.rollup.add(&unanswered(&format!("10.0.0.{i}:1"), MONDAY + DAY + i), &wa("finance"), &c);
        }
        w.rollup.add(&flow("10.0.0.9:1", MONDAY + DAY), &wa("finance"), &c);
        w.flush().unwrap();
        let input = w.store.load(date!(2026 - 03 - 02), date!(2026 - 03 - 03), None).unwrap();
        let r = row(&input.services, "finance", "whatsapp");
        assert_eq!((r.volume.flows, r.hosts.count), (1, 1));
        assert_eq!(dept(&input.departments, "finance").active_hosts.count, 1);
        assert_eq!(dept(&input.departments, ALL_DEPARTMENTS).unanswered_flows["whatsapp"], 10);
        assert_eq!(dept(&input.weeks[0].departments, "finance").unanswered_flows["whatsapp"], 10);
        let legal = w.store.load(date!(2026 - 03 - 02), date!(2026 - 03 - 03), Some("legal")).unwrap();
        assert!(legal.departments.iter().all(|d| d.department != "finance"), "another department's rows stay out");
    }

    #[test]
    fn a_store_of_schema_1_is_migrated_and_keeps_its_rows() {
        let dir = Dir::new("v1");
        let path = dir.0.join("rollup.sqlite");
        {
            // What a build before unanswered flows wrote: schema 1, one day of use.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(SCHEMA_V1).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.pragma_update(None, "application_id", APPLICATION_ID).unwrap();
            let blob = {
                let mut s = Sketch::new();
                s.insert(7);
                s.to_blob()
            };
            conn.execute(
                "INSERT INTO usage VALUES (20514, 'finance', 'whatsapp', 'default', 'messaging', 'unsanctioned', 3, 30, 300, ?1)",
                [&blob],
            )
            .unwrap();
            conn.execute("INSERT INTO active_hosts VALUES (20514, 'finance', ?1)", [&blob]).unwrap();
            conn.execute("INSERT INTO configs VALUES (20514, 'cat', 'cfg', 5)", []).unwrap();
            conn.execute("INSERT INTO day_keys VALUES (20514, 1)", []).unwrap();
        }
        let before = Store::open_existing(&path).unwrap().load(date!(2026 - 03 - 02), date!(2026 - 03 - 02), None).unwrap();
        assert_eq!(row(&before.services, "finance", "whatsapp").volume.flows, 3, "the old rows load");
        assert!(dept(&before.departments, "finance").unanswered_flows.is_empty());
        assert!(!before.coverage.unanswered_as_use, "old days did not tell unanswered flows apart");
        let version: i64 = Connection::open(&path).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        // And new days go in beside them.
        let c = catalog();
        let mut w = Writer::new(Store::open(&path).unwrap(), "s");
        w.rollup.set_config(ConfigFacts { catalog_digest: "cat".into(), config_digest: "cfg2".into(), min_group_size: 5, unanswered: Unanswered::AsUse, exemptions: vec![] });
        w.rollup.add(&crate::aggregate::tests_support::unanswered("10.0.0.1:1", MONDAY + DAY), &wa("finance"), &c);
        w.flush().unwrap();
        let after = w.store.load(date!(2026 - 03 - 02), date!(2026 - 03 - 03), None).unwrap();
        assert_eq!(row(&after.services, "finance", "whatsapp").volume.flows, 4, "counted as use under count_unanswered");
        assert_eq!(dept(&after.departments, "finance").unanswered_flows["whatsapp"], 1, "and apart");
        assert!(after.coverage.unanswered_as_use);
    }

    #[test]
    fn a_store_of_schema_2_is_migrated_and_gets_domains_beside_its_rows() {
        use crate::aggregate::tests_support::{named, outside};
        let dir = Dir::new("v2");
        let path = dir.0.join("rollup.sqlite");
        {
            // What a build before discovery wrote: schema 2, one day of uncatalogued use.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(SCHEMA_V1).unwrap();
            conn.execute_batch(SCHEMA_V2).unwrap();
            conn.pragma_update(None, "user_version", 2).unwrap();
            conn.pragma_update(None, "application_id", APPLICATION_ID).unwrap();
            let mut s = Sketch::new();
            s.insert(7);
            conn.execute(
                "INSERT INTO usage VALUES (20514, 'finance', '_uncatalogued', '_uncatalogued', '_uncatalogued', '_uncatalogued', 2, 20, 200, ?1)",
                [&s.to_blob()],
            )
            .unwrap();
        }
        let before = Store::open_existing(&path).unwrap().load(date!(2026 - 03 - 02), date!(2026 - 03 - 02), None).unwrap();
        assert_eq!(row(&before.services, "finance", crate::aggregate::UNCATALOGUED).volume.flows, 2, "the old rows load");
        assert!(before.uncatalogued.is_empty(), "old days have no domains");
        let version: i64 = Connection::open(&path).unwrap().query_row("PRAGMA user_version", [], |r| r.get(0)).unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let c = catalog();
        let mut w = Writer::new(Store::open(&path).unwrap(), "s");
        w.rollup.add(&named("10.0.0.1:1", MONDAY + DAY, "www.example.com"), &outside("finance"), &c);
        w.flush().unwrap();
        let after = w.store.load(date!(2026 - 03 - 02), date!(2026 - 03 - 03), None).unwrap();
        assert_eq!(after.uncatalogued.iter().map(|d| (d.domain.as_str(), d.volume.flows)).collect::<Vec<_>>(), vec![("example.com", 1)]);
        assert_eq!(row(&after.services, "finance", crate::aggregate::UNCATALOGUED).volume.flows, 3);
    }

    #[test]
    fn retention_deletes_old_days_in_the_flush() {
        let c = catalog();
        let mut store = Store::open_in_memory().unwrap();
        store.set_settings(Settings { retention_days: 2, key_grace_days: 7 });
        let mut w = Writer::new(store, "s");
        add(&mut w.rollup, &c, &[("10.0.0.1:1", MONDAY, "finance"), ("10.0.0.1:1", MONDAY + DAY, "finance")]);
        assert_eq!(w.flush().unwrap().deleted, 0);
        add(&mut w.rollup, &c, &[("10.0.0.1:1", MONDAY + 2 * DAY, "finance")]);
        let f = w.flush().unwrap();
        assert!(f.deleted >= 4, "Monday's usage, active hosts, coverage, key and config rows: {f:?}");
        assert_eq!(w.store.stats.rows_deleted, f.deleted);
        assert_eq!(w.store.days().unwrap(), Some((date!(2026 - 03 - 03), date!(2026 - 03 - 04))));
        let input = w.store.load(date!(2026 - 03 - 01), date!(2026 - 03 - 31), None).unwrap();
        assert_eq!(row(&input.services, "finance", "whatsapp").volume.flows, 2);
    }

    #[test]
    fn data_days_lists_the_days_with_flows_packets_or_uptime() {
        let c = catalog();
        let mut w = Writer::new(Store::open_in_memory().unwrap(), "s");
        assert_eq!(w.store.data_days().unwrap(), Vec::<Date>::new());
        add(&mut w.rollup, &c, &[("10.0.0.1:1", MONDAY, "finance"), ("10.0.0.1:1", MONDAY + 3 * DAY, "finance")]);
        w.flush().unwrap();
        assert_eq!(w.store.data_days().unwrap(), vec![date!(2026 - 03 - 02), date!(2026 - 03 - 05)]);
        // A sensor that ran and saw nothing: its uptime makes the day one with data.
        w.rollup.add_uptime(MONDAY + 5 * DAY, MONDAY + 5 * DAY + 60);
        w.flush().unwrap();
        assert_eq!(w.store.data_days().unwrap(), vec![date!(2026 - 03 - 02), date!(2026 - 03 - 05), date!(2026 - 03 - 07)]);
    }

    #[test]
    fn reopened_store_keeps_data_keys_and_wal_mode() {
        let dir = Dir::new("reopen");
        let path = dir.0.join("rollup.sqlite");
        let c = catalog();
        let mut w = Writer::new(Store::open(&path).unwrap(), "s");
        assert_eq!(w.store.journal_mode().unwrap(), "wal");
        add(&mut w.rollup, &c, &[("10.0.0.1:1", MONDAY, "finance")]);
        w.flush().unwrap();
        let keys = w.store.keyring();
        assert_eq!(keys.len(), 1);
        drop(w);
        let mut w = Writer::new(Store::open(&path).unwrap(), "s");
        assert_eq!(w.store.keyring(), keys, "the key file was read back");
        assert_eq!(w.store.stats.keys_lost, 0);
        add(&mut w.rollup, &c, &[("10.0.0.1:2", MONDAY + DAY, "finance"), ("10.0.0.2:1", MONDAY + DAY, "finance")]);
        w.flush().unwrap();
        let input = w.store.load(date!(2026 - 03 - 02), date!(2026 - 03 - 03), None).unwrap();
        let r = row(&input.services, "finance", "whatsapp");
        assert_eq!((r.volume.flows, r.hosts.count), (3, 2), "same key across the restart: 10.0.0.1 counts once");
        assert_eq!(Store::open_existing(&path).unwrap().journal_mode().unwrap(), "wal");
    }

    #[test]
    fn a_lost_key_file_is_counted_and_only_costs_continuity() {
        let dir = Dir::new("lost");
        let path = dir.0.join("rollup.sqlite");
        let c = catalog();
        let mut w = Writer::new(Store::open(&path).unwrap(), "s");
        add(&mut w.rollup, &c, &[("10.0.0.1:1", MONDAY, "finance")]);
        w.flush().unwrap();
        drop(w);
        std::fs::remove_file(keys::path_for(&path)).unwrap();
        let mut w = Writer::new(Store::open(&path).unwrap(), "s");
        assert_eq!(w.store.stats.keys_lost, 1);
        add(&mut w.rollup, &c, &[("10.0.0.1:1", MONDAY + DAY, "finance")]);
        w.flush().unwrap();
        let input = w.store.load(date!(2026 - 03 - 02), date!(2026 - 03 - 03), None).unwrap();
        assert_eq!(row(&input.services, "finance", "whatsapp").hosts.count, 2, "counted twice across the loss (an upper bound)");
        assert!(matches!(input.host_method, HostMethod::Sketch { key_epochs: 2, .. }));
    }

    #[test]
    fn key_file_is_private_and_no_key_or_address_reaches_the_database() {
        let dir = Dir::new("private");
        let path = dir.0.join("rollup.sqlite");
        let c = catalog();
        let mut w = Writer::new(Store::open(&path).unwrap(), "s");
        let clients = ["10.20.33.44:5000", "[2001:db8:1234:5678:9abc:def0:1357:2468]:443", "172.16.254.3:1"];
        for (i, client) in clients.iter().enumerate() {
            w.rollup.add(&flow(client, MONDAY + i as i64), &wa("finance"), &c);
        }
        w.flush().unwrap();
        let key_path = keys::path_for(&path);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&key_path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        let ring = w.store.keyring();
        let key = ring.keys().next().unwrap();
        let mut bytes = Vec::new();
        for f in std::fs::read_dir(&dir.0).unwrap() {
            let f = f.unwrap().path();
            if f != key_path {
                bytes.extend(std::fs::read(&f).unwrap());
            }
        }
        assert!(bytes.len() > 4096, "the database and its WAL were read");
        let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        let hex: String = key.secret().iter().map(|b| format!("{b:02x}")).collect();
        assert!(!contains(key.secret()), "the key is not in the database");
        assert!(!contains(hex.as_bytes()));
        for client in clients {
            let ip: std::net::SocketAddr = client.parse().unwrap();
            assert!(!contains(ip.ip().to_string().as_bytes()), "{client} as text");
            match ip.ip() {
                std::net::IpAddr::V4(a) => assert!(!contains(&a.octets()), "{client} in binary"),
                std::net::IpAddr::V6(a) => assert!(!contains(&a.octets()), "{client} in binary"),
            }
        }
    }

    #[test]
    fn backup_while_another_connection_writes() {
        let dir = Dir::new("backup");
        let path = dir.0.join("rollup.sqlite");
        let c = catalog();
        let mut w = Writer::new(Store::open(&path).unwrap(), "s");
        add(&mut w.rollup, &c, &[("10.0.0.1:1", MONDAY, "finance")]);
        w.flush().unwrap();
        let writer_path = path.clone();
        let writer = std::thread::spawn(move || {
            let c = catalog();
            let mut w = Writer::new(Store::open(&writer_path).unwrap(), "s");
            for i in 0..50 {
                add(&mut w.rollup, &c, &[("10.0.0.2:1", MONDAY + i * DAY, "finance")]);
                w.flush().unwrap();
            }
        });
        let reader = Store::open_existing(&path).unwrap();
        let mut copies = Vec::new();
        for i in 0..5 {
            let to = dir.0.join(format!("copy-{i}.sqlite"));
            reader.backup(&to).unwrap();
            copies.push(to);
        }
        writer.join().unwrap();
        assert!(matches!(reader.backup(&copies[0]), Err(StoreError::Exists { .. })));
        for to in copies {
            let header = std::fs::read(&to).unwrap();
            assert_eq!((header[18], header[19]), (1, 1), "a backup is one self-contained file (rollback journal, no WAL)");
            let copy = Store::open_existing(&to).unwrap();
            let ok: String = copy.conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
            assert_eq!(ok, "ok");
            let input = copy.load(date!(2026 - 03 - 02), date!(2026 - 04 - 30), None).unwrap();
            assert!(row(&input.services, "finance", "whatsapp").volume.flows >= 1);
            assert!(!keys::path_for(&to).exists(), "the key file is not part of a backup");
            assert_eq!(copy.stats.keys_lost, 0, "reading a store needs no key");
        }
    }

    #[test]
    fn corrupt_foreign_and_newer_files_are_clear_errors() {
        let dir = Dir::new("corrupt");
        let garbage = dir.0.join("garbage.sqlite");
        std::fs::write(&garbage, vec![0x5a; 8192]).unwrap();
        let e = Store::open(&garbage).unwrap_err();
        assert!(matches!(e, StoreError::NotADatabase { .. }), "{e}");
        assert!(e.to_string().contains("garbage.sqlite"), "{e}");
        let foreign = dir.0.join("foreign.sqlite");
        Connection::open(&foreign).unwrap().execute_batch("CREATE TABLE t (x)").unwrap();
        assert!(matches!(Store::open(&foreign), Err(StoreError::Foreign { .. })));
        let newer = dir.0.join("newer.sqlite");
        drop(Store::open(&newer).unwrap());
        Connection::open(&newer).unwrap().pragma_update(None, "user_version", SCHEMA_VERSION + 1).unwrap();
        assert!(matches!(Store::open(&newer), Err(StoreError::NewerSchema { .. })));
        assert!(Store::open_existing(&dir.0.join("absent.sqlite")).is_err());
        assert!(!dir.0.join("absent.sqlite").exists(), "open_existing never creates");
        // A damaged page: header intact, the rest overwritten.
        let damaged = dir.0.join("damaged.sqlite");
        {
            let mut w = Writer::new(Store::open(&damaged).unwrap(), "s");
            add(&mut w.rollup, &catalog(), &[("10.0.0.1:1", MONDAY, "finance")]);
            w.flush().unwrap();
            w.store.conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
        }
        let mut bytes = std::fs::read(&damaged).unwrap();
        for b in &mut bytes[100..] {
            *b = 0xa5;
        }
        std::fs::write(&damaged, &bytes).unwrap();
        let result = Store::open(&damaged).and_then(|s| s.load(date!(2026 - 03 - 02), date!(2026 - 03 - 02), None));
        assert!(matches!(result, Err(StoreError::NotADatabase { .. })), "{result:?}");
    }

    #[test]
    fn a_failed_flush_keeps_its_delta_for_the_next() {
        let dir = Dir::new("retry");
        let path = dir.0.join("rollup.sqlite");
        let c = catalog();
        let mut w = Writer::new(Store::open(&path).unwrap(), "s");
        add(&mut w.rollup, &c, &[("10.0.0.1:1", MONDAY, "finance")]);
        w.flush().unwrap();
        // Damage the stored sketch: merging into it must fail, and roll the flush back.
        let raw = Connection::open(&path).unwrap();
        raw.execute("UPDATE usage SET hosts = x'0109'", []).unwrap();
        add(&mut w.rollup, &c, &[("10.0.0.2:1", MONDAY, "finance"), ("10.0.0.3:1", MONDAY + DAY, "legal")]);
        let e = w.flush().unwrap_err();
        assert!(matches!(e, StoreError::Corrupt { table: "usage", .. }), "{e}");
        assert!(w.pending_rows() > 0);
        assert_eq!(w.store.stats.flushes, [1, 1]);
        let tuesday: i64 = raw.query_row("SELECT count(*) FROM usage WHERE day = 20515", [], |r| r.get(0)).unwrap();
        assert_eq!(tuesday, 0, "nothing of the failed flush was written");
        let e = w.store.load(date!(2026 - 03 - 02), date!(2026 - 03 - 02), None).unwrap_err();
        assert!(e.to_string().contains("sketch blob kind 9"), "{e}");
        raw.execute("DELETE FROM usage", []).unwrap();
        w.flush().unwrap();
        assert_eq!(w.pending_rows(), 0);
        let input = w.store.load(date!(2026 - 03 - 02), date!(2026 - 03 - 03), None).unwrap();
        assert_eq!(row(&input.services, "finance", "whatsapp").volume.flows, 1, "the kept delta was written");
        assert_eq!(row(&input.services, "legal", "whatsapp").volume.flows, 1);
    }
}
