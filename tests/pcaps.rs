//! The captures in `pcaps/` (made with real clients by `pcaps/capture.sh`, edge cases derived by
//! `pcaps/derive.py`) through the real `shadowtap inspect` binary:
//! - every flow agrees with `pcaps/expected.json`, the ground truth the scripts wrote from what
//!   they sent (and tshark's independent JA3), not from this sensor;
//! - one snapshot per capture (insta) pins every other field;
//! - bad input gives the promised error, warning or counted drop.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use common::{inspect, root, s};
use serde_json::Value;

fn pcaps() -> PathBuf {
    root().join("pcaps")
}

fn expected() -> BTreeMap<String, Value> {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(pcaps().join("expected.json")).unwrap()).unwrap();
    v["files"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

fn tls_name(v: &str) -> String {
    // expected.json writes "TLS1.3"; the sensor writes "TLSv1.3".
    v.replacen("TLS", "TLSv", 1)
}

#[test]
fn flows_agree_with_expected_json() {
    let mut checked = 0;
    for (file, exp) in expected() {
        if file.starts_with("bad/") {
            continue;
        }
        let run = inspect(&[&pcaps().join(&file)], &[]);
        assert_eq!(run.code, Some(0), "{file}: {}", run.stderr);
        let flows = exp["flows"].as_array().unwrap();
        assert_eq!(run.records.len(), flows.len(), "{file}: flow count\n{}", run.stdout);
        for f in flows {
            let (client, server) = (s(f, "client").unwrap(), s(f, "server").unwrap());
            let r = run
                .records
                .iter()
                .find(|r| s(r, "src") == Some(client) && s(r, "dst") == Some(server))
                .unwrap_or_else(|| panic!("{file}: no flow {client} -> {server} (orientation?)\n{}", run.stdout));
            let ctx = format!("{file} {client}");
            assert_eq!(r["transport"], f["transport"], "{ctx}");
            assert_eq!(r["sni"], f["sni"], "{ctx}: sni");
            if !f["sni"].is_null() {
                assert_eq!(r["alpn"], f["alpn"], "{ctx}: alpn");
            }
            // Signals added by the QUIC/DNS/marker captures: each one the scripts recorded.
            for field in ["app", "quic_version", "http_host", "proxy_target", "marker", "stun_software", "ech_grease"] {
                if let Some(want) = f.get(field).filter(|v| !v.is_null()) {
                    assert_eq!(&r[field], want, "{ctx}: {field}");
                }
            }
            if let Some(q) = f.get("dns_queries") {
                assert_eq!(&r["dns_queries"], q, "{ctx}: dns_queries");
            }
            if let Some(name) = s(f, "dns_name") {
                let names: Vec<&str> = r["names_from_dns"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
                assert!(names.contains(&name), "{ctx}: names_from_dns {names:?} lacks {name}");
                assert_eq!(r["signal"], "dns", "{ctx}: the DNS answer names the flow");
            }
            if let Some(v) = s(f, "tls_version_offered") {
                assert_eq!(s(r, "tls_version"), Some(tls_name(v).as_str()), "{ctx}: version");
            }
            if let Some(ja3) = s(f, "ja3") {
                assert_eq!(s(r, "ja3"), Some(ja3), "{ctx}: ja3 (tshark's)");
            }
            if let Some(ech) = f["ech"].as_bool() {
                assert_eq!(r["ech"].as_bool(), Some(ech), "{ctx}: ech");
            }
            let outer_vlan = f["vlan"].as_array().and_then(|v| v.first()).cloned().unwrap_or(Value::Null);
            assert_eq!(r["vlan"], outer_vlan, "{ctx}: vlan");
            assert_eq!(r["tunnel"], f["tunnel"], "{ctx}: tunnel");
            assert!(r["packets_up"].as_u64().unwrap() > 0 && r["bytes_up"].as_u64().unwrap() > 0, "{ctx}");
            checked += 1;
        }
    }
    assert!(checked >= 70, "only {checked} flows checked");
}

#[test]
fn snapshot_per_capture() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(pcaps())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| matches!(p.extension().and_then(|x| x.to_str()), Some("pcap" | "pcapng")))
        .collect();
    files.sort();
    assert!(files.len() >= 30);
    for f in files {
        let run = inspect(&[&f], &["--stats"]);
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        let body = format!("{}\n--- stderr ---\n{}", run.stdout, run.stderr.replace(&pcaps().display().to_string(), "pcaps"));
        insta::assert_snapshot!(name, body);
    }
}

#[test]
fn not_a_capture_is_an_error_naming_the_file() {
    let f = pcaps().join("bad/not-a-pcap.pcap");
    let run = inspect(&[&f], &[]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("not-a-pcap.pcap") && run.stderr.contains("not a pcap"), "{}", run.stderr);
    assert!(run.records.is_empty());
}

#[test]
fn corrupt_record_header_is_an_error_without_a_huge_allocation() {
    let run = inspect(&[&pcaps().join("bad/corrupt-header.pcap")], &[]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("corrupt-header.pcap") && run.stderr.contains("corrupt"), "{}", run.stderr);
}

#[test]
fn other_inputs_are_still_read_after_a_bad_one() {
    let run = inspect(&[&pcaps().join("bad/not-a-pcap.pcap"), &pcaps().join("curl-ipv6.pcap")], &[]);
    assert_eq!(run.code, Some(1));
    assert_eq!(run.records.len(), 1);
    assert_eq!(s(&run.records[0], "sni"), Some("drive.google.com"));
    assert_eq!(s(&run.records[0], "src").map(|a| a.starts_with("[::1]:")), Some(true));
}

#[test]
fn truncated_capture_gives_what_it_holds_and_a_warning() {
    let run = inspect(&[&pcaps().join("truncated.pcap")], &[]);
    assert_eq!(run.code, Some(0));
    assert!(run.stderr.contains("warning") && run.stderr.contains("truncated"), "{}", run.stderr);
    assert_eq!(run.records.len(), 1);
    assert_eq!(run.records[0]["app"], "tls", "the hello precedes the cut");
}

#[test]
fn missing_file_and_empty_directory() {
    let run = inspect(&[Path::new("does/not/exist.pcap")], &[]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("does/not/exist.pcap"), "{}", run.stderr);
    let empty = std::env::temp_dir().join(format!("shadowtap-empty-{}", std::process::id()));
    std::fs::create_dir_all(&empty).unwrap();
    let run = inspect(&[&empty], &[]);
    assert_ne!(run.code, Some(0));
    assert!(run.stderr.contains("no .pcap"), "{}", run.stderr);
    std::fs::remove_dir(&empty).unwrap();
}

#[test]
fn standard_input_is_read_with_dash() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let bytes = std::fs::read(pcaps().join("python-ssl.pcap")).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
        .args(["inspect", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 2);
    assert!(text.contains("\"sni\":\"www.dropbox.com\""));
}

#[test]
fn pcapng_and_pcap_of_the_same_traffic_agree() {
    let a = inspect(&[&pcaps().join("python-ssl.pcap")], &[]);
    let b = inspect(&[&pcaps().join("pcapng-sample.pcapng")], &[]);
    let strip = |v: &[Value]| {
        v.iter()
            .map(|r| {
                let mut r = r.clone();
                r.as_object_mut().unwrap().remove("capture");
                r
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&a.records), strip(&b.records));
}

#[test]
fn hostile_tls_is_counted_as_malformed() {
    let run = inspect(&[&pcaps().join("hostile-tls.pcap")], &["--stats"]);
    assert_eq!(run.code, Some(0));
    assert!(run.records.iter().all(|r| r["sni"].is_null()));
    assert!(run.stderr.contains("tls_error.too_long 1"), "{}", run.stderr);
    assert!(run.stderr.contains("tls_error.malformed 1"), "{}", run.stderr);
}

#[test]
fn gap_in_the_hello_is_given_up_and_counted() {
    let run = inspect(&[&pcaps().join("gap.pcap")], &["--stats"]);
    assert_eq!(run.records.len(), 1);
    assert!(run.records[0]["sni"].is_null());
    assert!(run.stderr.contains("reassembly_giveup.gap 1"), "{}", run.stderr);
}

#[test]
fn full_flow_table_evicts_and_reports_every_flow() {
    let run = inspect(&[&pcaps().join("curl-tls13.pcap")], &["--max-flows", "2", "--stats"]);
    assert_eq!(run.records.len(), 5, "evicted flows are still reported");
    assert!(run.records.iter().any(|r| r["end"] == "evicted"));
    assert!(run.stderr.contains("flows_evicted "), "{}", run.stderr);
    assert!(!run.stderr.contains("flows_evicted 0"), "{}", run.stderr);
}

#[test]
fn records_are_in_order_of_first_packet() {
    let run = inspect(&[&pcaps()], &[]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let mut last: BTreeMap<String, String> = BTreeMap::new();
    for r in &run.records {
        let cap = s(r, "capture").unwrap().to_string();
        let ts = s(r, "ts_start").unwrap().to_string();
        if let Some(prev) = last.get(&cap) {
            assert!(*prev <= ts, "{cap}: {prev} then {ts}");
        }
        last.insert(cap, ts);
    }
}

#[test]
fn table_format_has_a_header_and_a_row_per_flow() {
    use std::process::Command;
    let out = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
        .args(["inspect", "--format", "table"])
        .arg(pcaps().join("curl-tls12.pcap"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("start"));
    assert_eq!(lines.len(), 6);
    assert!(lines[1..].iter().any(|l| l.contains("mail.proton.me") && l.contains(" tls ")));
    assert!(lines[0].ends_with("notes") && lines[1..].iter().all(|l| l.ends_with(" -")), "{text}");

    // The notes column says what makes a flow suspect or not use.
    let out = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
        .args(["inspect", "--format", "table"])
        .arg(pcaps().join("evasion/tfo-decoy-unacked.pcap"))
        .arg(pcaps().join("evasion/no-payload-syn.pcap"))
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().any(|l| l.contains("web.whatsapp.com") && l.ends_with(" syn_data_unacked")), "{text}");
    assert!(text.lines().any(|l| l.ends_with(" unanswered")), "{text}");
}

#[test]
fn gzipped_captures_give_the_same_records() {
    use std::io::Write;
    let dir = std::env::temp_dir().join(format!("shadowtap-gz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let original = pcaps().join("curl-tls12.pcap");
    let gz = dir.join("curl-tls12.pcap.gz");
    let mut enc = flate2::write::GzEncoder::new(std::fs::File::create(&gz).unwrap(), flate2::Compression::default());
    enc.write_all(&std::fs::read(&original).unwrap()).unwrap();
    enc.finish().unwrap();
    let strip = |records: Vec<Value>| -> Vec<Value> {
        records
            .into_iter()
            .map(|mut r| {
                r.as_object_mut().unwrap().remove("capture");
                r
            })
            .collect()
    };
    let want = inspect(&[&original], &[]);
    assert_eq!(want.code, Some(0), "{}", want.stderr);
    assert!(!want.records.is_empty());
    let got = inspect(&[&gz], &[]);
    assert_eq!(got.code, Some(0), "{}", got.stderr);
    assert_eq!(strip(got.records), strip(want.records.clone()), "a .pcap.gz reads as its .pcap");
    // A directory lists gzipped captures too.
    let listed = inspect(&[&dir], &[]);
    assert_eq!(listed.code, Some(0), "{}", listed.stderr);
    assert_eq!(strip(listed.records), strip(want.records));
    std::fs::remove_dir_all(&dir).unwrap();
}

