//! The ASN signal end to end through the openly licensed table: `shadowtap asn update --from`
//! compiles the committed extract (`tests/fixtures/asn/`, 12 lines of the npm package's CSV)
//! into a database, and a flow with no name to an address of Dropbox's AS19679 is attributed to
//! Dropbox by the catalog's `asns = [19679]`. No network: the package itself is not fetched.

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::capture::{at, Pcap};
use common::{bundled_config, inspect, root, s};

struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn shadowtap(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_shadowtap")).args(args).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}

#[test]
fn the_openly_licensed_table_attributes_a_flow_by_its_as() {
    let dir = Dir(std::env::temp_dir().join(format!("shadowtap-asn-e2e-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let lib = dir.0.join("lib");
    let extract = root().join("tests/fixtures/asn/asn-extract.csv");
    let (code, out) = shadowtap(&["asn", "update", "--from", extract.to_str().unwrap(), "--dir", lib.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("1.1.1.1 -> AS13335") && out.contains("IP Geolocation by DB-IP") && out.contains("CC BY 4.0"), "{out}");
    let db = lib.join("asn.mmdb");

    let config = dir.0.join("config.toml");
    std::fs::write(&config, format!("geoip_asn = {:?}\n{}", db.to_str().unwrap(), bundled_config())).unwrap();
    let (code, out) = shadowtap(&["check", "--config", config.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("ASN signal on"), "{out}");

    // Finance (10.20.0.0/16 in the bundled configuration) talks to an address of AS19679 and to
    // one outside every range of the extract; neither flow carries a name.
    let pcap = dir.0.join("asn.pcap");
    let mut p = Pcap::new();
    p.connection(1_790_000_000_000_000, at("10.20.0.7:50000"), at("108.160.165.10:443"), b"\x00\x01opaque", b"\x00\x02reply");
    p.connection(1_790_000_001_000_000, at("10.20.0.7:50001"), at("9.9.9.10:443"), b"\x00\x01opaque", b"\x00\x02reply");
    p.write(&pcap);
    let run = inspect(&[&pcap], &["--config", config.to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let by_server = |a: &str| run.records.iter().find(|r| s(r, "dst").is_some_and(|x| x.starts_with(a))).unwrap_or_else(|| panic!("{a}: {}", run.stdout));
    let dropbox = by_server("108.160.165.10");
    assert_eq!((s(dropbox, "service"), s(dropbox, "service_signal")), (Some("dropbox"), Some("asn")), "{}", run.stdout);
    assert!(by_server("9.9.9.10")["service"].is_null(), "{}", run.stdout);

    // The same capture without the database: the signal is off and the flow unattributed.
    let run = inspect(&[&pcap], &["--config", root().join("rules/config.toml").to_str().unwrap()]);
    if !std::path::Path::new("/var/lib/shadowtap/asn.mmdb").exists() {
        let dropbox = run.records.iter().find(|r| s(r, "dst").is_some_and(|x| x.starts_with("108.160.165.10"))).unwrap();
        assert!(dropbox["service"].is_null(), "{}", run.stdout);
    }
}

#[test]
fn a_corrupt_table_is_refused_with_its_reason() {
    let dir = Dir(std::env::temp_dir().join(format!("shadowtap-asn-bad-{}", std::process::id())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let bad = dir.0.join("bad.csv");
    std::fs::write(&bad, "1.0.0.0,1.0.0.255,not-a-number,x\n").unwrap();
    let (code, out) = shadowtap(&["asn", "update", "--from", bad.to_str().unwrap(), "--dir", dir.0.join("lib").to_str().unwrap()]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("bad.csv: line 1: AS number unreadable"), "{out}");
    assert!(!dir.0.join("lib/asn.mmdb").exists());
}
