//! `shadowtap asn update`: installs or refreshes the default ASN database.
//!
//! The table comes from the npm package [`asndb::PACKAGE`] (CC BY 4.0, no account): the command
//! runs `npm pack <package>@latest` in a temporary folder, so npm's own configured registry,
//! proxy and certificates are used and the project names no registry; `--from FILE` takes the
//! package tarball (or its CSV, or a ready MMDB such as GeoLite2-ASN) obtained some other way,
//! for a sensor without npm or without a route out. The result is compiled
//! (`config::asndb::build`), opened and checked against known lookups, written beside its
//! destination and renamed over it, so a running sensor's next reload reads either the old file
//! or the new one, never half of one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::asndb::{self, AsnDbError};

/// Name of the notice written beside the database: its source, version and licence texts.
pub const NOTICE_FILE: &str = "asn.mmdb.LICENSE";
/// Largest file `--from` reads (the package tarball is about 19 MB, an uncompressed CSV 24 MB).
pub const MAX_INPUT_BYTES: u64 = 512 << 20;

/// What the update command was asked.
#[derive(Debug, Clone)]
pub struct UpdateOptions {
    /// Folder to install `asn.mmdb` into ([`asndb::DEFAULT_DIR`] unless `--dir`).
    pub dir: PathBuf,
    /// A package tarball, CSV table or MMDB file to install instead of fetching the package.
    pub from: Option<PathBuf>,
    /// The npm client to run (`npm`; tests point it elsewhere).
    pub npm: String,
}

impl Default for UpdateOptions {
    fn default() -> Self {
        UpdateOptions { dir: PathBuf::from(asndb::DEFAULT_DIR), from: None, npm: "npm".into() }
    }
}

/// Why an update did not install anything (the installed database, if any, is untouched).
#[derive(Debug)]
pub enum UpdateError {
    /// The npm client is not installed.
    NpmMissing,
    /// npm ran and failed (its message).
    Npm(String),
    /// Reading the input, writing the database.
    Io(PathBuf, std::io::Error),
    /// The table or database was refused.
    Data(String, AsnDbError),
}

impl std::fmt::Display for UpdateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpdateError::NpmMissing => write!(
                f,
                "npm not found: install it (Debian: apt-get install npm), or fetch the package {} elsewhere (`npm pack {}`) and install the tarball with --from FILE",
                asndb::PACKAGE,
                asndb::PACKAGE
            ),
            UpdateError::Npm(e) => write!(f, "npm pack {} failed: {e}; with no route to the registry, install a tarball fetched elsewhere with --from FILE", asndb::PACKAGE),
            UpdateError::Io(p, e) => write!(f, "{}: {e}", p.display()),
            UpdateError::Data(what, e) => write!(f, "{what}: {e}"),
        }
    }
}

impl std::error::Error for UpdateError {}

/// What was installed.
#[derive(Debug)]
pub struct Installed {
    /// The database's path.
    pub path: PathBuf,
    /// The source, in words (package and version, or the file given).
    pub source: String,
    /// Networks (search-tree nodes) and size, for the summary line.
    pub nodes: u32,
    /// Bytes written.
    pub bytes: usize,
}

/// A database ready to install: its bytes, its source in words and the notice to write beside it.
struct Prepared {
    bytes: Vec<u8>,
    source: String,
    notice: String,
}

/// Fetches (or reads `--from`), compiles, verifies and installs; prints the summary and the
/// attribution to `out`.
///
/// # Errors
/// See [`UpdateError`]; nothing is installed then.
pub fn update(opts: &UpdateOptions, out: &mut impl Write) -> Result<Installed, UpdateError> {
    let prepared = match &opts.from {
        Some(f) => prepare_file(f)?,
        None => prepare_npm(&opts.npm)?,
    };
    let db = asndb::verify(prepared.bytes.clone()).map_err(|e| UpdateError::Data(prepared.source.clone(), e))?;
    let nodes = db.metadata().node_count;
    let path = opts.dir.join(asndb::DEFAULT_FILE);
    std::fs::create_dir_all(&opts.dir).map_err(|e| UpdateError::Io(opts.dir.clone(), e))?;
    install(&path, &prepared.bytes)?;
    install(&opts.dir.join(NOTICE_FILE), prepared.notice.as_bytes())?;
    let _ = writeln!(out, "installed {} ({} bytes, {} search-tree nodes) from {}", path.display(), prepared.bytes.len(), nodes, prepared.source);
    let _ = writeln!(out, "verified: {}", asndb::KNOWN.map(|(a, n)| format!("{a} -> AS{n}")).join(", "));
    let _ = writeln!(out, "attribution: {}", asndb::describe(&db));
    let _ = writeln!(out, "the sensor uses it when geoip_asn is not configured (shadowtap check says so; SIGHUP or a restart loads it)");
    Ok(Installed { path, source: prepared.source, nodes, bytes: prepared.bytes.len() })
}

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames it over `path`.
fn install(path: &Path, bytes: &[u8]) -> Result<(), UpdateError> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        UpdateError::Io(path.to_path_buf(), e)
    })
}

/// Seconds since the epoch, for the database's `build_epoch`.
fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The description stored in the database: the attribution and where it came from.
fn description(source: &str) -> String {
    format!("{} (source: {source})", asndb::ATTRIBUTION)
}

/// Compiles a package tarball's table.
fn from_package(bytes: &[u8], what: &str) -> Result<Prepared, UpdateError> {
    let pkg = asndb::read_package(bytes).map_err(|e| UpdateError::Data(what.to_string(), e))?;
    let source = format!("{}@{}", asndb::PACKAGE, pkg.version.as_deref().unwrap_or("unknown version"));
    let bytes = asndb::build(&pkg.ranges, &description(&source), now()).map_err(|e| UpdateError::Data(source.clone(), e))?;
    let mut notice = format!("{}\nSource: {source}, {} ranges, compiled by shadowtap asn update.\n", asndb::ATTRIBUTION, pkg.ranges.len());
    for (name, text) in &pkg.licences {
        notice.push_str(&format!("\n== {name}\n{}\n", text.trim_end()));
    }
    Ok(Prepared { bytes, source, notice })
}

/// `--from FILE`: a package tarball (gzip), a MaxMind DB file or a CSV table, told by content.
fn prepare_file(f: &Path) -> Result<Prepared, UpdateError> {
    let meta = std::fs::metadata(f).map_err(|e| UpdateError::Io(f.to_path_buf(), e))?;
    if meta.len() > MAX_INPUT_BYTES {
        return Err(UpdateError::Data(f.display().to_string(), AsnDbError::TooLarge));
    }
    let bytes = std::fs::read(f).map_err(|e| UpdateError::Io(f.to_path_buf(), e))?;
    let what = f.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    if bytes.starts_with(&[0x1f, 0x8b]) {
        return from_package(&bytes, &what);
    }
    if asndb::is_mmdb(&bytes) {
        let notice = format!("Installed from {what} as given: its licence is that of its publisher.\n");
        return Ok(Prepared { bytes, source: what, notice });
    }
    let text = String::from_utf8(bytes).map_err(|_| UpdateError::Data(what.clone(), AsnDbError::Invalid("neither a tarball, an MMDB file nor a UTF-8 CSV table".into())))?;
    let mut ranges = Vec::new();
    asndb::parse_csv(&text, &mut ranges).map_err(|e| UpdateError::Data(what.clone(), e))?;
    let bytes = asndb::build(&ranges, &description(&what), now()).map_err(|e| UpdateError::Data(what.clone(), e))?;
    let notice = format!("{}\nSource: {what}, {} ranges, compiled by shadowtap asn update.\n", asndb::ATTRIBUTION, ranges.len());
    Ok(Prepared { bytes, source: what, notice })
}

/// `npm pack <package>@latest` in a fresh temporary folder, then the tarball it wrote.
fn prepare_npm(npm: &str) -> Result<Prepared, UpdateError> {
    let dir = std::env::temp_dir().join(format!("shadowtap-asn-{}-{}", std::process::id(), now()));
    std::fs::create_dir_all(&dir).map_err(|e| UpdateError::Io(dir.clone(), e))?;
    let result = (|| {
        let spec = format!("{}@latest", asndb::PACKAGE);
        let run = Command::new(npm).args(["pack", "--silent", &spec]).current_dir(&dir).stdin(std::process::Stdio::null()).output();
        let run = match run {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(UpdateError::NpmMissing),
            Err(e) => return Err(UpdateError::Npm(e.to_string())),
        };
        if !run.status.success() {
            let err = String::from_utf8_lossy(&run.stderr);
            let line = err.lines().filter(|l| !l.trim().is_empty()).take(3).collect::<Vec<_>>().join("; ");
            return Err(UpdateError::Npm(if line.is_empty() { run.status.to_string() } else { line }));
        }
        let tgz = std::fs::read_dir(&dir)
            .map_err(|e| UpdateError::Io(dir.clone(), e))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "tgz"))
            .ok_or_else(|| UpdateError::Npm("it wrote no tarball".into()))?;
        let bytes = std::fs::read(&tgz).map_err(|e| UpdateError::Io(tgz.clone(), e))?;
        from_package(&bytes, &spec)
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXTRACT: &str = include_str!("../../tests/fixtures/asn/asn-extract.csv");

    fn scratch(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("shadowtap-asn-test-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn a_csv_is_compiled_verified_and_installed_with_its_attribution() {
        let d = scratch("csv");
        std::fs::write(d.join("extract.csv"), EXTRACT).unwrap();
        let opts = UpdateOptions { dir: d.join("lib"), from: Some(d.join("extract.csv")), npm: "npm".into() };
        let mut out = Vec::new();
        let got = update(&opts, &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("db-ip.com") && out.contains("CC BY 4.0"), "{out}");
        let db = asndb::verify(std::fs::read(&got.path).unwrap()).unwrap();
        assert_eq!(asndb::lookup(&db, "170.114.200.1".parse().unwrap()), Some(30103));
        assert!(std::fs::read_to_string(d.join("lib").join(NOTICE_FILE)).unwrap().contains("routeviews.org"));
        // No temporary file left beside it.
        assert_eq!(std::fs::read_dir(d.join("lib")).unwrap().count(), 2);
        // An installed MMDB is accepted as given.
        let opts2 = UpdateOptions { dir: d.join("lib2"), from: Some(got.path.clone()), npm: "npm".into() };
        update(&opts2, &mut Vec::new()).unwrap();
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_corrupt_file_installs_nothing_and_keeps_the_old_database() {
        let d = scratch("corrupt");
        std::fs::write(d.join("extract.csv"), EXTRACT).unwrap();
        let lib = d.join("lib");
        let good = update(&UpdateOptions { dir: lib.clone(), from: Some(d.join("extract.csv")), npm: "npm".into() }, &mut Vec::new()).unwrap();
        let before = std::fs::read(&good.path).unwrap();
        // A database cut in half, a CSV without the known addresses, bytes that are neither.
        std::fs::write(d.join("cut.mmdb"), &before[..before.len() - 40]).unwrap();
        let no_google: String = EXTRACT.lines().filter(|l| !l.contains(",15169,")).map(|l| format!("{l}\n")).collect();
        std::fs::write(d.join("partial.csv"), no_google).unwrap();
        std::fs::write(d.join("junk.bin"), [0xffu8, 0xfe, 0x00, 0x01]).unwrap();
        for f in ["cut.mmdb", "partial.csv", "junk.bin"] {
            let e = update(&UpdateOptions { dir: lib.clone(), from: Some(d.join(f)), npm: "npm".into() }, &mut Vec::new()).unwrap_err();
            assert!(matches!(e, UpdateError::Data(..)), "{f}: {e}");
            assert_eq!(std::fs::read(&good.path).unwrap(), before, "{f} replaced the database");
        }
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn a_missing_npm_says_how_to_go_on() {
        let d = scratch("npm");
        let e = update(&UpdateOptions { dir: d.join("lib"), from: None, npm: "/nonexistent/npm".into() }, &mut Vec::new()).unwrap_err();
        assert!(matches!(e, UpdateError::NpmMissing));
        assert!(e.to_string().contains("--from FILE"));
        assert!(!d.join("lib").join(asndb::DEFAULT_FILE).exists());
        let _ = std::fs::remove_dir_all(&d);
    }
}
