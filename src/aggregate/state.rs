//! Saving and restoring the aggregation, so that a restart neither resets a 30-day window nor
//! loses counts (beyond the last save interval after a crash).
//!
//! The state file (`state.json` in the state directory) holds counters, revealed groups and the
//! host sets as pseudonyms with their last-seen times — never addresses. It is written to a
//! temporary file, flushed and renamed over the old one, so a crash mid-write leaves the previous
//! save intact. The pseudonym key itself is not in it (it is never written in clear): after a
//! restart a new key is drawn, the restored host sets keep their old pseudonyms, and a host seen
//! both before and after the restart can count twice in a window that spans it. That is said in
//! the file (`key_continuity: false`) and exported as a metric.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Aggregator, GroupKey, GroupStatus, Hosts};
use crate::intern::Sym;
use crate::time::Timestamp;

/// File name of the saved state inside the state directory.
pub const STATE_FILE: &str = "state.json";

/// Format version written and accepted.
pub const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
struct SavedGroup {
    key: (String, String, String, String, String),
    flows: u64,
    bytes_up: u64,
    bytes_down: u64,
}

#[derive(Serialize, Deserialize)]
struct SavedHosts {
    key: Vec<String>,
    hosts: Vec<(u64, i64)>,
    full: bool,
}

/// The saved form.
#[derive(Serialize, Deserialize)]
pub struct Saved {
    version: u32,
    /// Packet time of the newest flow when saved (microseconds).
    now_micros: i64,
    /// Whether the pseudonyms in this file can be linked to the next run's (never, today).
    key_continuity: bool,
    totals: Vec<SavedGroup>,
    revealed: Vec<(String, String, String, String, String)>,
    group_hosts: Vec<SavedHosts>,
    department_hosts: Vec<SavedHosts>,
    unnamed: Vec<(String, String, u64)>,
    /// Real-ECH flows per department (absent in files of earlier builds).
    #[serde(default)]
    ech: Vec<(String, u64)>,
    /// Unanswered flows per (department, service label) (absent in files of earlier builds).
    #[serde(default)]
    unanswered: Vec<(String, String, u64)>,
    /// (department, service) pairs of unanswered flows named for good.
    #[serde(default)]
    unanswered_revealed: Vec<(String, String)>,
    /// Host sets of the pairs not named yet (key: department, service).
    #[serde(default)]
    unanswered_pending: Vec<SavedHosts>,
}

// The file holds names, never ids: ids are numbered per process, in the order names were
// first seen, so they mean nothing to the next run. Saving resolves them; restoring interns.

fn tuple(k: &GroupKey) -> (String, String, String, String, String) {
    let [d, s, c, cat, st] = k.labels().map(str::to_string);
    (d, s, c, cat, st)
}

fn key((department, service, channel, category, status): (String, String, String, String, String)) -> Result<GroupKey, String> {
    let status = GroupStatus::parse(&status).ok_or_else(|| format!("unknown group status {status:?}"))?;
    Ok(GroupKey {
        department: Sym::intern(&department),
        service: Sym::intern(&service),
        channel: Sym::intern(&channel),
        category: Sym::intern(&category),
        status,
    })
}

fn name(s: Sym) -> String {
    s.as_str().to_string()
}

fn hosts_of(h: &Hosts) -> Vec<(u64, i64)> {
    let mut v: Vec<(u64, i64)> = h.last_seen.iter().map(|(p, t)| (*p, *t)).collect();
    v.sort_unstable();
    v
}

impl Aggregator {
    /// The state as saved.
    pub fn to_saved(&self) -> Saved {
        let mut totals: Vec<SavedGroup> = self
            .totals
            .iter()
            .map(|(k, t)| SavedGroup { key: tuple(k), flows: t.flows, bytes_up: t.bytes_up, bytes_down: t.bytes_down })
            .collect();
        totals.sort_by(|a, b| a.key.cmp(&b.key));
        let mut revealed: Vec<_> = self.revealed.iter().filter(|(_, r)| **r).map(|(k, _)| tuple(k)).collect();
        revealed.sort();
        let mut group_hosts: Vec<SavedHosts> = self
            .group_hosts
            .iter()
            .map(|(k, h)| {
                let t = tuple(k);
                SavedHosts { key: vec![t.0, t.1, t.2, t.3, t.4], hosts: hosts_of(h), full: h.full }
            })
            .collect();
        group_hosts.sort_by(|a, b| a.key.cmp(&b.key));
        let mut department_hosts: Vec<SavedHosts> = self
            .department_hosts
            .iter()
            .map(|(d, h)| SavedHosts { key: vec![name(*d)], hosts: hosts_of(h), full: h.full })
            .collect();
        department_hosts.sort_by(|a, b| a.key.cmp(&b.key));
        let mut unnamed: Vec<_> = self.unnamed.iter().map(|((d, r), n)| (name(*d), r.to_string(), *n)).collect();
        unnamed.sort();
        let mut ech: Vec<_> = self.ech.iter().map(|(d, n)| (name(*d), *n)).collect();
        ech.sort();
        let mut unanswered: Vec<_> = self.unanswered.iter().map(|((d, s), n)| (name(*d), name(*s), *n)).collect();
        unanswered.sort();
        let mut unanswered_revealed: Vec<_> = self.unanswered_revealed.iter().map(|(d, s)| (name(*d), name(*s))).collect();
        unanswered_revealed.sort();
        let mut unanswered_pending: Vec<SavedHosts> = self
            .unanswered_pending
            .iter()
            .map(|((d, svc), h)| SavedHosts { key: vec![name(*d), name(*svc)], hosts: hosts_of(h), full: h.full })
            .collect();
        unanswered_pending.sort_by(|a, b| a.key.cmp(&b.key));
        Saved {
            version: VERSION,
            now_micros: self.now.0,
            key_continuity: false,
            totals,
            revealed,
            group_hosts,
            department_hosts,
            unnamed,
            ech,
            unanswered,
            unanswered_revealed,
            unanswered_pending,
        }
    }

    /// Adds a saved state to this (fresh) aggregation.
    pub fn restore(&mut self, s: Saved) -> Result<(), String> {
        if s.version != VERSION {
            return Err(format!("state format {} (this build reads {VERSION})", s.version));
        }
        self.now = self.now.max(Timestamp(s.now_micros));
        for g in s.totals {
            let t = self.totals.entry(key(g.key)?).or_default();
            t.flows += g.flows;
            t.bytes_up += g.bytes_up;
            t.bytes_down += g.bytes_down;
        }
        for k in s.revealed {
            self.revealed.insert(key(k)?, true);
        }
        for h in s.group_hosts {
            let [d, sv, c, cat, st]: [String; 5] = h.key.try_into().map_err(|_| "malformed group key".to_string())?;
            let e = self.group_hosts.entry(key((d, sv, c, cat, st))?).or_default();
            e.last_seen.extend(h.hosts.into_iter().take(super::MAX_HOSTS_PER_GROUP));
            e.full |= h.full;
        }
        for h in s.department_hosts {
            let d = h.key.into_iter().next().ok_or("malformed department key")?;
            let e = self.department_hosts.entry(Sym::intern(&d)).or_default();
            e.last_seen.extend(h.hosts.into_iter().take(super::MAX_HOSTS_PER_GROUP));
            e.full |= h.full;
        }
        for (d, r, n) in s.unnamed {
            // A reason label of the file as a `&'static str`: the interner keeps its text.
            let reason = Sym::intern(&r).as_str();
            *self.unnamed.entry((Sym::intern(&d), reason)).or_default() += n;
        }
        for (d, n) in s.ech {
            *self.ech.entry(Sym::intern(&d)).or_default() += n;
        }
        for (d, svc, n) in s.unanswered {
            *self.unanswered.entry((Sym::intern(&d), Sym::intern(&svc))).or_default() += n;
        }
        for (d, svc) in s.unanswered_revealed {
            let pair = (Sym::intern(&d), Sym::intern(&svc));
            self.unanswered_pending.remove(&pair);
            self.unanswered_revealed.insert(pair);
        }
        for h in s.unanswered_pending {
            let [d, svc]: [String; 2] = h.key.try_into().map_err(|_| "malformed unanswered key".to_string())?;
            let pair = (Sym::intern(&d), Sym::intern(&svc));
            if self.unanswered_revealed.contains(&pair) {
                continue;
            }
            let e = self.unanswered_pending.entry(pair).or_default();
            e.last_seen.extend(h.hosts.into_iter().take(super::MAX_HOSTS_PER_GROUP));
            e.full |= h.full;
        }
        self.restored = true;
        Ok(())
    }

    /// Whether state was restored from a previous run.
    pub fn was_restored(&self) -> bool {
        self.restored
    }
}

/// Writes the state atomically into `dir`.
///
/// # Errors
/// The I/O error.
pub fn save(dir: &Path, agg: &Aggregator) -> std::io::Result<PathBuf> {
    write(dir, &agg.to_saved())
}

/// Writes a saved state atomically into `dir` (temporary file, fsync, rename): what the
/// daemon's background writer does with the snapshot the packet thread took.
///
/// # Errors
/// The I/O error.
pub fn write(dir: &Path, saved: &Saved) -> std::io::Result<PathBuf> {
    use std::io::Write;
    std::fs::create_dir_all(dir)?;
    let path = dir.join(STATE_FILE);
    let tmp = dir.join(format!("{STATE_FILE}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    serde_json::to_writer(&mut f, saved)?;
    f.flush()?;
    f.sync_all()?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

/// Reads the state saved in `dir`, if any.
///
/// # Errors
/// A message naming the file when it exists but cannot be read or parsed.
pub fn load(dir: &Path) -> Result<Option<Saved>, String> {
    let path = dir.join(STATE_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}
