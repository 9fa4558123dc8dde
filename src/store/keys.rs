//! Store keys: the secrets under which host addresses are hashed into the sketches.
//!
//! One key per UTC calendar year (the key epoch), so that distinct hosts over any period up to
//! a year — the longest report — are counted under one key. A year's key is drawn from the
//! operating system on first use. Keys live in a file beside the database (`<store>.keys`,
//! mode 0600, written atomically), never in the database: a copy or backup of the database alone
//! cannot be used to test whether an address is in a sketch. Once a year has ended more than
//! `key_grace_days` ago (by packet time), its key is deleted: from then on nobody, the sensor
//! included, can test that year's sketches against an address (forward privacy); their counts
//! stay readable. A flow of that year arriving later (a late replay) draws a new key, which the
//! store records as one more key epoch.
//!
//! Losing the key file costs only continuity: new writes of the year draw a new key (with a new
//! id), so a host seen before and after the loss counts twice in a period that spans it. The
//! store records which key ids each day used, and reports say how many keys a period spans.
//!
//! File format (JSON): `{"format":"shadowtap-store-keys","version":1,"keys":[{"year":2026,
//! "id":"<16 hex>","key":"<64 hex>"}]}`.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use time::Date;

use super::StoreError;

/// Format name written in the key file.
pub const FORMAT: &str = "shadowtap-store-keys";

/// Key file version written and read.
pub const VERSION: u32 = 1;

/// Default days after the end of a year before its key is deleted.
pub const DEFAULT_GRACE_DAYS: u32 = 7;

/// One year's key.
#[derive(Clone, PartialEq, Eq)]
pub struct StoreKey {
    /// The UTC calendar year it hashes.
    pub year: i32,
    /// A random identifier (not derived from the secret), recorded in the database per day.
    pub id: u64,
    secret: [u8; 32],
}

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreKey {{ year: {}, id: {:016x} }}", self.year, self.id)
    }
}

impl StoreKey {
    /// A new random key for `year`.
    ///
    /// # Errors
    /// The operating system's random source failed.
    pub fn draw(year: i32) -> Result<StoreKey, getrandom::Error> {
        let mut secret = [0u8; 32];
        getrandom::fill(&mut secret)?;
        let mut id = [0u8; 8];
        getrandom::fill(&mut id)?;
        Ok(StoreKey { year, id: u64::from_le_bytes(id), secret })
    }

    /// The hash of `addr` under this key (see [`super::sketch::host_hash`]).
    pub fn hash(&self, addr: IpAddr) -> u64 {
        super::sketch::host_hash(&self.secret, addr)
    }

    /// The secret, for tests that check it never reaches the database.
    #[cfg(test)]
    pub(crate) fn secret(&self) -> &[u8; 32] {
        &self.secret
    }
}

/// The keys of the years in use.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Keyring {
    keys: BTreeMap<i32, StoreKey>,
}

impl Keyring {
    /// The key of `year`, drawing one if there is none yet (the bool says whether it is new).
    ///
    /// # Errors
    /// No key could be drawn.
    pub fn get_or_draw(&mut self, year: i32) -> Result<(&StoreKey, bool), getrandom::Error> {
        match self.keys.entry(year) {
            std::collections::btree_map::Entry::Occupied(e) => Ok((e.into_mut(), false)),
            std::collections::btree_map::Entry::Vacant(e) => Ok((e.insert(StoreKey::draw(year)?), true)),
        }
    }

    /// Deletes the keys of years that ended more than `grace_days` before `newest`; returns
    /// those years.
    pub fn expire(&mut self, newest: Date, grace_days: u32) -> Vec<i32> {
        let expired: Vec<i32> = self.keys.keys().copied().filter(|&y| year_expired(y, newest, grace_days)).collect();
        for y in &expired {
            self.keys.remove(y);
        }
        expired
    }

    /// Keys held, oldest year first.
    pub fn keys(&self) -> impl Iterator<Item = &StoreKey> {
        self.keys.values()
    }

    /// Number of keys held.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Whether `year` ended more than `grace_days` before `newest`.
pub fn year_expired(year: i32, newest: Date, grace_days: u32) -> bool {
    match Date::from_ordinal_date(year.saturating_add(1), 1) {
        Ok(next) => newest.to_julian_day() - next.to_julian_day() >= grace_days as i32,
        Err(_) => false,
    }
}

/// The key file of a store file: `<store>.keys`.
pub fn path_for(store: &Path) -> PathBuf {
    let mut s = store.as_os_str().to_os_string();
    s.push(".keys");
    PathBuf::from(s)
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileKey {
    year: i32,
    id: String,
    key: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    format: String,
    version: u32,
    keys: Vec<FileKey>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// Reads the key file at `path`; `None` when there is none.
///
/// # Errors
/// [`StoreError::KeyFile`] when it exists but cannot be read or is not a key file.
pub fn read(path: &Path) -> Result<Option<Keyring>, StoreError> {
    let bad = |message: String| StoreError::KeyFile { path: path.display().to_string(), message };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(bad(e.to_string())),
    };
    let file: File = serde_json::from_slice(&bytes).map_err(|e| bad(format!("not a key file: {e}")))?;
    if file.format != FORMAT || file.version != VERSION {
        return Err(bad(format!("format {:?} version {} (this build reads {FORMAT:?} version {VERSION})", file.format, file.version)));
    }
    let mut ring = Keyring::default();
    for k in file.keys {
        let (Some(id), Some(secret)) = (unhex::<8>(&k.id), unhex::<32>(&k.key)) else {
            return Err(bad(format!("malformed key of year {}", k.year)));
        };
        if ring.keys.insert(k.year, StoreKey { year: k.year, id: u64::from_be_bytes(id), secret }).is_some() {
            return Err(bad(format!("two keys for year {}", k.year)));
        }
    }
    Ok(Some(ring))
}

/// Writes `ring` to `path` atomically (a temporary file with mode 0600, synced, renamed over
/// the old one), so that a crash leaves either the old or the new keys.
///
/// # Errors
/// [`StoreError::KeyFile`] with the I/O error.
pub fn write(path: &Path, ring: &Keyring) -> Result<(), StoreError> {
    let bad = |e: std::io::Error| StoreError::KeyFile { path: path.display().to_string(), message: e.to_string() };
    let file = File {
        format: FORMAT.into(),
        version: VERSION,
        keys: ring.keys().map(|k| FileKey { year: k.year, id: hex(&k.id.to_be_bytes()), key: hex(&k.secret) }).collect(),
    };
    let text = serde_json::to_vec_pretty(&file).map_err(|e| bad(e.into()))?;
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    // A leftover temporary file may have other permissions: start from none.
    let _ = std::fs::remove_file(&tmp);
    let mut f = open_private(&tmp).map_err(bad)?;
    f.write_all(&text).map_err(bad)?;
    f.sync_all().map_err(bad)?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(bad)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The rename is durable once the directory is synced (best effort where unsupported).
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

#[cfg(unix)]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)
}

#[cfg(not(unix))]
fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new().write(true).create_new(true).open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("shadowtap-keys-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn one_key_per_year_drawn_once() {
        let mut ring = Keyring::default();
        let (a, new) = ring.get_or_draw(2026).unwrap();
        let a = a.clone();
        assert!(new);
        let (b, new) = ring.get_or_draw(2026).unwrap();
        assert!(!new);
        assert_eq!(&a, b);
        let (c, _) = ring.get_or_draw(2025).unwrap();
        assert_ne!(a.hash("10.0.0.1".parse().unwrap()), c.hash("10.0.0.1".parse().unwrap()));
        assert!(!format!("{ring:?}").contains(&hex(a.secret())), "Debug never prints a secret");
    }

    #[test]
    fn keys_expire_after_the_grace_days() {
        assert!(!year_expired(2025, date!(2026 - 01 - 07), 7));
        assert!(year_expired(2025, date!(2026 - 01 - 08), 7));
        assert!(year_expired(2025, date!(2026 - 01 - 01), 0));
        assert!(!year_expired(2026, date!(2026 - 12 - 31), 0));
        let mut ring = Keyring::default();
        ring.get_or_draw(2024).unwrap();
        ring.get_or_draw(2025).unwrap();
        ring.get_or_draw(2026).unwrap();
        assert_eq!(ring.expire(date!(2026 - 03 - 01), 7), vec![2024, 2025]);
        assert_eq!(ring.keys().map(|k| k.year).collect::<Vec<_>>(), vec![2026]);
    }

    #[test]
    fn file_round_trip_private_and_atomic() {
        let dir = temp("file");
        let path = path_for(&dir.join("rollup.sqlite"));
        assert!(path.to_string_lossy().ends_with("rollup.sqlite.keys"));
        assert_eq!(read(&path).unwrap(), None);
        let mut ring = Keyring::default();
        ring.get_or_draw(2026).unwrap();
        ring.get_or_draw(2027).unwrap();
        write(&path, &ring).unwrap();
        assert_eq!(read(&path).unwrap(), Some(ring.clone()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        ring.expire(date!(2028 - 02 - 01), 7);
        write(&path, &ring).unwrap();
        assert_eq!(read(&path).unwrap().unwrap().len(), 0);
        assert!(!path.with_extension("keys.tmp").exists());
        std::fs::write(&path, b"{\"format\": 1}").unwrap();
        assert!(matches!(read(&path), Err(StoreError::KeyFile { .. })));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
