//! The default ASN database: an openly licensed IP-to-ASN table compiled into a MaxMind DB file.
//!
//! The ASN signal needs an address → autonomous system table. MaxMind's GeoLite2-ASN needs an
//! account; the table of the `ip-location-db` project (RouteViews' BGP table, the five RIRs'
//! delegations as published by the NRO, DB-IP's IP to ASN Lite; CC BY 4.0) is published in the
//! npm registry as the package [`PACKAGE`], as CSV ranges (`first,last,asn,organisation`). The
//! classifier reads its ASN database through `maxminddb` (`autonomous_system_number`, the
//! GeoLite2-ASN schema), so the CSV is compiled here into an MMDB file of that schema: a
//! configured GeoLite2-ASN (`geoip_asn`) and the default file take the same path, and the
//! classifier does not change. `runtime::asn` obtains the package, and `config::settings` uses
//! [`default_path`] when `geoip_asn` is not set.
//!
//! Pure: bytes in, bytes out; the caller reads and writes the files.

use std::collections::HashMap;
use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

/// The npm package the table comes from (CSV, updated by its publisher; `shadowtap asn update`
/// fetches `@latest` through npm's own configured registry).
pub const PACKAGE: &str = "@ip-location-db/asn";
/// Where `shadowtap asn update` installs the database and where the sensor looks for it when
/// `geoip_asn` is not configured: the daemon's state directory (docs/deploy/shadowtap.service).
pub const DEFAULT_DIR: &str = "/var/lib/shadowtap";
/// The database's file name in [`DEFAULT_DIR`].
pub const DEFAULT_FILE: &str = "asn.mmdb";
/// The attribution the CC BY 4.0 licences of the table's sources ask for: printed by the update
/// command, stored in the database's description, named by `check` and by reports whose flows the
/// ASN signal attributed.
pub const ATTRIBUTION: &str = "IP to ASN data by RouteViews (routeviews.org), the NRO (nro.net) and DB-IP (IP Geolocation by DB-IP, https://db-ip.com), \
licensed under CC BY 4.0 (https://creativecommons.org/licenses/by/4.0/), merged by the ip-location-db project";
/// `database_type` of the files compiled here (MaxMind's are `GeoLite2-ASN`).
pub const DATABASE_TYPE: &str = "shadowtap-ASN";
/// Lookups every ASN database must answer to be installed: two anycast resolvers whose
/// origin AS has not changed in a decade. A truncated or foreign file fails them.
pub const KNOWN: [(Ipv4Addr, u32); 2] = [(Ipv4Addr::new(1, 1, 1, 1), 13335), (Ipv4Addr::new(8, 8, 8, 8), 15169)];
/// Largest file of a package read into memory (the IPv4 CSV is about 24 MB).
pub const MAX_ENTRY_BYTES: u64 = 256 << 20;
/// Most ranges compiled (the package has about 515,000).
pub const MAX_RANGES: usize = 4_000_000;
/// Longest CSV line accepted.
pub const MAX_LINE_BYTES: usize = 4096;
/// The package's CSV files compiled (the `-num` variants hold the same ranges as integers).
pub const CSV_FILES: [&str; 2] = ["asn-ipv4.csv", "asn-ipv6.csv"];

/// Bits per search-tree record: 32 leaves room for any node count the data can produce.
const RECORD_BITS: u16 = 32;
/// Zero bytes between the search tree and the data section (MaxMind DB format 2.0).
const DATA_SEPARATOR: usize = 16;
/// Start of the metadata section.
const METADATA_MARKER: &[u8] = b"\xAB\xCD\xEFMaxMind.com";

/// The default database's path.
pub fn default_path() -> PathBuf {
    PathBuf::from(DEFAULT_DIR).join(DEFAULT_FILE)
}

/// Why a table or a database was refused.
#[derive(Debug, thiserror::Error)]
pub enum AsnDbError {
    /// A CSV line that is not `first,last,asn,organisation`.
    #[error("line {line}: {reason}")]
    Csv {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The tarball is not a gzip'd tar archive, or is cut short.
    #[error("not a readable package tarball: {0}")]
    Tar(String),
    /// The tarball holds none of [`CSV_FILES`].
    #[error("the package holds none of {}", CSV_FILES.join(", "))]
    NoTable,
    /// More than [`MAX_RANGES`] ranges, or a file larger than [`MAX_ENTRY_BYTES`].
    #[error("table too large (more than {MAX_RANGES} ranges or {MAX_ENTRY_BYTES} bytes)")]
    TooLarge,
    /// No range at all.
    #[error("no address range in the table")]
    Empty,
    /// The file is not a MaxMind DB that can be read.
    #[error("not a readable MaxMind DB file: {0}")]
    Invalid(String),
    /// A known address is missing or maps to another AS: not an ASN database, or a damaged one.
    #[error("{addr} {}, expected AS{expected}: not a usable ASN database", lookup_found(.found))]
    Lookup {
        /// The address looked up.
        addr: Ipv4Addr,
        /// Its AS.
        expected: u32,
        /// What the database said.
        found: Option<u32>,
    },
}


/// What a verification lookup found, for [`AsnDbError::Lookup`]'s message.
fn lookup_found(found: &Option<u32>) -> String {
    match found {
        Some(n) => format!("maps to AS{n}"),
        None => "has no AS number".to_string(),
    }
}

/// One inclusive address range of one autonomous system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// First address.
    pub first: IpAddr,
    /// Last address (same family, not below `first`).
    pub last: IpAddr,
    /// Autonomous system number.
    pub asn: u32,
    /// Its organisation's name.
    pub org: String,
}

/// A package's table and what it says about itself.
#[derive(Debug, Default)]
pub struct Package {
    /// Ranges of every CSV file found.
    pub ranges: Vec<Range>,
    /// `version` of its package.json (the publisher's build date), when present.
    pub version: Option<String>,
    /// Its licence files (name, text), for the installed notice.
    pub licences: Vec<(String, String)>,
}

/// Parses CSV lines `first,last,asn,organisation` (organisation possibly quoted, `""` for a
/// quote) into `out`. Empty lines are skipped.
///
/// # Errors
/// The first bad line, by number.
pub fn parse_csv(text: &str, out: &mut Vec<Range>) -> Result<(), AsnDbError> {
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            continue;
        }
        let bad = |reason| AsnDbError::Csv { line: i + 1, reason };
        if line.len() > MAX_LINE_BYTES {
            return Err(bad("line too long"));
        }
        let mut f = line.splitn(4, ',');
        let (Some(a), Some(b), Some(n), Some(org)) = (f.next(), f.next(), f.next(), f.next()) else {
            return Err(bad("expected first,last,asn,organisation"));
        };
        let first: IpAddr = a.parse().map_err(|_| bad("first address unreadable"))?;
        let last: IpAddr = b.parse().map_err(|_| bad("last address unreadable"))?;
        if first.is_ipv4() != last.is_ipv4() || bits(first) > bits(last) {
            return Err(bad("range ends before it starts or mixes families"));
        }
        let asn: u32 = n.parse().map_err(|_| bad("AS number unreadable"))?;
        let org = match org.strip_prefix('"') {
            Some(q) => q.strip_suffix('"').ok_or_else(|| bad("unterminated quote"))?.replace("\"\"", "\""),
            None => org.to_string(),
        };
        if out.len() >= MAX_RANGES {
            return Err(AsnDbError::TooLarge);
        }
        out.push(Range { first, last, asn, org });
    }
    Ok(())
}

/// Reads an npm package tarball (gzip'd ustar, files under `package/`): the ranges of
/// [`CSV_FILES`], the version and the licence files.
///
/// # Errors
/// A damaged archive, a bad CSV line (named with its file), a package without a table.
pub fn read_package(tgz: impl Read) -> Result<Package, AsnDbError> {
    let tar_err = |e: std::io::Error| AsnDbError::Tar(e.to_string());
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tgz));
    let mut pkg = Package::default();
    let mut found = false;
    for entry in archive.entries().map_err(tar_err)? {
        let mut entry = entry.map_err(tar_err)?;
        let path = entry.path().map_err(tar_err)?.to_string_lossy().into_owned();
        let file = path.strip_prefix("package/").unwrap_or(&path).to_string();
        let wanted = entry.header().entry_type().is_file() && (CSV_FILES.contains(&file.as_str()) || file == "package.json" || file.ends_with("LICENSE"));
        // An entry not read is skipped by the archive.
        if !wanted {
            continue;
        }
        if entry.size() > MAX_ENTRY_BYTES {
            return Err(AsnDbError::TooLarge);
        }
        let mut body = Vec::new();
        entry.read_to_end(&mut body).map_err(|e| AsnDbError::Tar(format!("{file}: {e}")))?;
        let text = String::from_utf8(body).map_err(|_| AsnDbError::Tar(format!("{file} is not UTF-8")))?;
        if CSV_FILES.contains(&file.as_str()) {
            found = true;
            parse_csv(&text, &mut pkg.ranges).map_err(|e| match e {
                AsnDbError::Csv { line, reason } => AsnDbError::Tar(format!("{file} line {line}: {reason}")),
                e => e,
            })?;
        } else if file == "package.json" {
            pkg.version = serde_json::from_str::<serde_json::Value>(&text).ok().and_then(|v| v.get("version")?.as_str().map(str::to_string));
        } else {
            pkg.licences.push((file, text));
        }
    }
    if !found {
        return Err(AsnDbError::NoTable);
    }
    Ok(pkg)
}

/// An address as a 128-bit number in the IPv6 tree (IPv4 at `::a.b.c.d`, where MaxMind DB
/// readers look an IPv4 address up in an IPv6 database).
fn bits(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(v) => u128::from(u32::from(v)),
        IpAddr::V6(v) => u128::from(v),
    }
}

/// The prefixes (network bits, length) that cover `first..=last` exactly.
fn prefixes(first: u128, last: u128) -> Vec<(u128, u8)> {
    let mask = |k: u32| if k >= 128 { u128::MAX } else { (1u128 << k) - 1 };
    let mut out = Vec::new();
    let mut cur = first;
    loop {
        let mut k = cur.trailing_zeros();
        while k > 0 && cur | mask(k) > last {
            k -= 1;
        }
        let end = cur | mask(k);
        out.push((cur, (128 - k) as u8));
        if end >= last {
            return out;
        }
        cur = end + 1;
    }
}

/// A search-tree record while the tree is built.
#[derive(Clone, Copy)]
enum Rec {
    Empty,
    Node(u32),
    Data(u32),
}

/// Compiles ranges into a MaxMind DB file (format 2.0, IPv6 tree, 32-bit records) whose data
/// are GeoLite2-ASN maps (`autonomous_system_number`, `autonomous_system_organization`).
/// Overlapping ranges: the later one wins where they overlap. `description` goes into the
/// metadata (the attribution and the source's version).
///
/// # Errors
/// No range, or more than fit.
pub fn build(ranges: &[Range], description: &str, build_epoch: u64) -> Result<Vec<u8>, AsnDbError> {
    if ranges.is_empty() {
        return Err(AsnDbError::Empty);
    }
    let mut data = Vec::new();
    let mut offsets: HashMap<(u32, &str), u32> = HashMap::new();
    let mut nodes: Vec<[Rec; 2]> = vec![[Rec::Empty, Rec::Empty]];
    for r in ranges {
        let off = match offsets.get(&(r.asn, r.org.as_str())) {
            Some(&o) => o,
            None => {
                let o = u32::try_from(data.len()).map_err(|_| AsnDbError::TooLarge)?;
                ctrl(&mut data, 7, 2);
                string(&mut data, "autonomous_system_number");
                uint(&mut data, 6, u64::from(r.asn));
                string(&mut data, "autonomous_system_organization");
                string(&mut data, &r.org);
                offsets.insert((r.asn, r.org.as_str()), o);
                o
            }
        };
        for (net, len) in prefixes(bits(r.first), bits(r.last)) {
            insert(&mut nodes, net, len, off).ok_or(AsnDbError::TooLarge)?;
        }
    }
    let node_count = u32::try_from(nodes.len()).map_err(|_| AsnDbError::TooLarge)?;
    let data_base = u64::from(node_count) + DATA_SEPARATOR as u64;
    if data_base + data.len() as u64 > u64::from(u32::MAX) {
        return Err(AsnDbError::TooLarge);
    }
    let mut out = Vec::with_capacity(nodes.len() * 8 + DATA_SEPARATOR + data.len() + 512);
    for node in &nodes {
        for rec in node {
            let v = match *rec {
                Rec::Empty => node_count,
                Rec::Node(n) => n,
                Rec::Data(o) => (data_base + u64::from(o)) as u32,
            };
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
    out.extend_from_slice(&[0; DATA_SEPARATOR]);
    out.extend_from_slice(&data);
    out.extend_from_slice(METADATA_MARKER);
    ctrl(&mut out, 7, 9);
    string(&mut out, "binary_format_major_version");
    uint(&mut out, 5, 2);
    string(&mut out, "binary_format_minor_version");
    uint(&mut out, 5, 0);
    string(&mut out, "build_epoch");
    uint(&mut out, 9, build_epoch);
    string(&mut out, "database_type");
    string(&mut out, DATABASE_TYPE);
    string(&mut out, "description");
    ctrl(&mut out, 7, 1);
    string(&mut out, "en");
    string(&mut out, description);
    string(&mut out, "ip_version");
    uint(&mut out, 5, 6);
    string(&mut out, "languages");
    ctrl(&mut out, 11, 0);
    string(&mut out, "node_count");
    uint(&mut out, 6, u64::from(node_count));
    string(&mut out, "record_size");
    uint(&mut out, 5, u64::from(RECORD_BITS));
    Ok(out)
}

/// Points the prefix `net/len` (of the 128-bit space) at data offset `off`, splitting a
/// shorter prefix already there. None when the tree outgrows 32-bit node numbers.
fn insert(nodes: &mut Vec<[Rec; 2]>, net: u128, len: u8, off: u32) -> Option<()> {
    if len == 0 {
        // The whole address space: both halves of the root.
        *nodes.first_mut()? = [Rec::Data(off), Rec::Data(off)];
        return Some(());
    }
    let mut node = 0usize;
    for depth in 0..len {
        let bit = ((net >> (127 - u32::from(depth))) & 1) as usize;
        let here = *nodes.get(node)?.get(bit)?;
        if depth + 1 == len {
            *nodes.get_mut(node)?.get_mut(bit)? = Rec::Data(off);
            return Some(());
        }
        node = match here {
            Rec::Node(n) => n as usize,
            other => {
                let n = nodes.len();
                // A node number must stay below the data pointers that follow it.
                if n >= (u32::MAX / 2) as usize {
                    return None;
                }
                nodes.push([other, other]);
                *nodes.get_mut(node)?.get_mut(bit)? = Rec::Node(n as u32);
                n
            }
        };
    }
    Some(())
}

/// A MaxMind DB control byte (and extended type byte and size bytes) for `kind` of `size`.
fn ctrl(out: &mut Vec<u8>, kind: u8, size: usize) {
    let (low, extra): (u8, Vec<u8>) = if size < 29 {
        (size as u8, vec![])
    } else if size < 285 {
        (29, vec![(size - 29) as u8])
    } else if size < 65_821 {
        (30, ((size - 285) as u16).to_be_bytes().to_vec())
    } else {
        (31, ((size - 65_821) as u32).to_be_bytes().get(1..).unwrap_or_default().to_vec())
    };
    if kind <= 7 {
        out.push(kind << 5 | low);
    } else {
        out.push(low);
        out.push(kind - 7);
    }
    out.extend_from_slice(&extra);
}

fn string(out: &mut Vec<u8>, s: &str) {
    ctrl(out, 2, s.len());
    out.extend_from_slice(s.as_bytes());
}

/// An unsigned integer of `kind` (5 = uint16, 6 = uint32, 9 = uint64), leading zero bytes left out.
fn uint(out: &mut Vec<u8>, kind: u8, v: u64) {
    let b = v.to_be_bytes();
    let skip = b.iter().take_while(|&&x| x == 0).count();
    let b = b.get(skip..).unwrap_or_default();
    ctrl(out, kind, b.len());
    out.extend_from_slice(b);
}

/// The AS number of `addr` in an ASN database (GeoLite2-ASN schema), as the classifier reads it.
pub fn lookup(db: &maxminddb::Reader<Vec<u8>>, addr: IpAddr) -> Option<u32> {
    let r = db.lookup(addr).ok()?;
    let asn: maxminddb::geoip2::Asn = r.decode().ok()??;
    asn.autonomous_system_number
}

/// Opens a database's bytes and checks the [`KNOWN`] lookups: what `shadowtap asn update`
/// requires before it installs a file, compiled here or given (a GeoLite2-ASN or DB-IP lite
/// ASN MMDB passes too).
///
/// # Errors
/// Not a MaxMind DB, or a known address missing or wrong.
pub fn verify(bytes: Vec<u8>) -> Result<maxminddb::Reader<Vec<u8>>, AsnDbError> {
    let db = maxminddb::Reader::from_source(bytes).map_err(|e| AsnDbError::Invalid(e.to_string()))?;
    for (addr, expected) in KNOWN {
        let found = lookup(&db, IpAddr::V4(addr));
        if found != Some(expected) {
            return Err(AsnDbError::Lookup { addr, expected, found });
        }
    }
    Ok(db)
}

/// The description of a database (its `en` description, else its type), for `check`.
pub fn describe(db: &maxminddb::Reader<Vec<u8>>) -> String {
    db.metadata().description.get("en").cloned().unwrap_or_else(|| db.metadata().database_type.clone())
}

/// Whether `bytes` look like a MaxMind DB file (the metadata marker near the end).
pub fn is_mmdb(bytes: &[u8]) -> bool {
    bytes.windows(METADATA_MARKER.len()).rev().take(128 * 1024).any(|w| w == METADATA_MARKER)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXTRACT: &str = include_str!("../tests/fixtures/asn/asn-extract.csv");

    fn extract() -> Vec<Range> {
        let mut v = Vec::new();
        parse_csv(EXTRACT, &mut v).unwrap();
        v
    }

    #[test]
    fn csv_lines_with_quotes_and_both_families() {
        let mut v = Vec::new();
        parse_csv("1.0.0.0,1.0.0.255,13335,\"Cloudflare, Inc.\"\n\n2001:200::,2001:200:ffff::,2500,\"WIDE \"\"Project\"\"\"\r\n", &mut v).unwrap();
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].org, "Cloudflare, Inc.");
        assert_eq!((v[1].asn, v[1].org.as_str()), (2500, "WIDE \"Project\""));
        for bad in ["1.0.0.0,1.0.0.255,13335", "1.0.0.9,1.0.0.1,1,x", "1.0.0.0,::1,1,x", "1.0.0.0,1.0.0.1,AS1,x", "1.0.0.0,1.0.0.1,1,\"x"] {
            assert!(matches!(parse_csv(bad, &mut Vec::new()), Err(AsnDbError::Csv { line: 1, .. })), "{bad} accepted");
        }
    }

    #[test]
    fn prefixes_cover_a_range_exactly() {
        assert_eq!(prefixes(0x0a00_0000, 0x0a00_00ff), vec![(0x0a00_0000, 120)]);
        // 10.0.0.1 - 10.0.0.6: /128 .1, /127 .2-.3, /127 .4-.5, /128 .6
        let p = prefixes(0x0a00_0001, 0x0a00_0006);
        assert_eq!(p.iter().map(|&(_, l)| l).collect::<Vec<_>>(), vec![128, 127, 127, 128]);
        assert_eq!(prefixes(0, u128::MAX), vec![(0, 0)]);
    }

    #[test]
    fn the_extract_compiles_and_answers_like_the_table() {
        let bytes = build(&extract(), ATTRIBUTION, 1_800_000_000).unwrap();
        let db = verify(bytes).unwrap();
        assert_eq!(db.metadata().database_type, DATABASE_TYPE);
        assert_eq!(describe(&db), ATTRIBUTION);
        let at = |s: &str| lookup(&db, s.parse().unwrap());
        assert_eq!(at("157.240.1.1"), Some(32934));
        assert_eq!(at("2a03:2880:f003::1"), Some(32934));
        assert_eq!(at("1.0.0.7"), Some(13335));
        // Outside every range of the extract.
        assert_eq!(at("9.9.9.9"), None);
        assert_eq!(at("2001:db8::1"), None);
        let r = db.lookup("8.8.8.8".parse().unwrap()).unwrap();
        let a: maxminddb::geoip2::Asn = r.decode().unwrap().unwrap();
        assert_eq!(a.autonomous_system_organization, Some("Google LLC"));
    }

    #[test]
    fn long_names_and_many_entries_encode() {
        // Sizes past each control-byte boundary (29, 285) read back.
        let org = "x".repeat(300);
        let mut ranges = vec![Range { first: "1.1.1.0".parse().unwrap(), last: "1.1.1.255".parse().unwrap(), asn: 13335, org: org.clone() }];
        ranges.push(Range { first: "8.8.8.0".parse().unwrap(), last: "8.8.8.255".parse().unwrap(), asn: 15169, org: "y".repeat(40) });
        let db = verify(build(&ranges, "d", 0).unwrap()).unwrap();
        let r = db.lookup("1.1.1.1".parse().unwrap()).unwrap();
        let a: maxminddb::geoip2::Asn = r.decode().unwrap().unwrap();
        assert_eq!(a.autonomous_system_organization, Some(org.as_str()));
    }

    #[test]
    fn verification_refuses_damaged_and_foreign_files() {
        let good = build(&extract(), "d", 0).unwrap();
        assert!(is_mmdb(&good));
        // Cut short: the metadata is gone.
        assert!(matches!(verify(good[..good.len() / 2].to_vec()), Err(AsnDbError::Invalid(_))));
        assert!(matches!(verify(b"1.0.0.0,1.0.0.255,13335,x\n".to_vec()), Err(AsnDbError::Invalid(_))));
        // A readable database without the known addresses.
        let other: Vec<Range> = extract().into_iter().filter(|r| r.asn != 15169).collect();
        assert!(matches!(verify(build(&other, "d", 0).unwrap()), Err(AsnDbError::Lookup { expected: 15169, found: None, .. })));
        // The search tree overwritten: lookups go nowhere or to the wrong AS.
        let mut bad = good.clone();
        bad[..64].fill(0xff);
        assert!(verify(bad).is_err());
    }

    #[test]
    fn a_package_tarball_is_read() {
        let tgz = tarball(&[("package/package.json", b"{\"version\":\"2.3.1\"}".as_slice()), ("package/DBIP-LICENSE", b"CC BY 4.0"), ("package/asn-ipv4.csv", EXTRACT.as_bytes())]);
        let p = read_package(&tgz[..]).unwrap();
        assert_eq!(p.version.as_deref(), Some("2.3.1"));
        assert_eq!(p.licences, vec![("DBIP-LICENSE".to_string(), "CC BY 4.0".to_string())]);
        assert_eq!(p.ranges, extract());
        assert!(matches!(read_package(&tarball(&[("package/README.md", b"x")])[..]), Err(AsnDbError::NoTable)));
        assert!(matches!(read_package(&tgz[..tgz.len() / 2]), Err(AsnDbError::Tar(_))));
        assert!(matches!(read_package(EXTRACT.as_bytes()), Err(AsnDbError::Tar(_))));
    }

    #[test]
    fn damaged_inputs_never_panic() {
        let mut rng = crate::testutil::XorShift(0xa5_0a5a);
        let db = build(&extract(), "d", 0).unwrap();
        let tgz = tarball(&[("package/asn-ipv4.csv", EXTRACT.as_bytes())]);
        for i in 0..300 {
            let (mut d, mut t, mut c) = (db.clone(), tgz.clone(), EXTRACT.as_bytes().to_vec());
            rng.mutate(&mut d, 1 + i % 8);
            rng.mutate(&mut t, 1 + i % 8);
            rng.mutate(&mut c, 1 + i % 8);
            if let Ok(r) = verify(d) {
                let _ = lookup(&r, "157.240.1.1".parse().unwrap());
            }
            let _ = read_package(&t[..]);
            let _ = parse_csv(&String::from_utf8_lossy(&c), &mut Vec::new());
        }
    }

    /// A gzip'd ustar archive of `files`.
    fn tarball(files: &[(&str, &[u8])]) -> Vec<u8> {
        use std::io::Write;
        let mut b = tar::Builder::new(Vec::new());
        for (name, body) in files {
            let mut h = tar::Header::new_ustar();
            h.set_size(body.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            b.append_data(&mut h, name, *body).unwrap();
        }
        let tar = b.into_inner().unwrap();
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        gz.finish().unwrap()
    }
}
