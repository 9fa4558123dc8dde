//! The crafted evasion captures in `pcaps/evasion/` (written by `pcaps/evasion/make.py` from real
//! ClientHellos, with the ground truth in `pcaps/evasion/expected.json`) through the real
//! `shadowtap inspect` binary:
//! - every flow of every file agrees with `expected.json`: `expect` fields equal (`evasion` as a
//!   set), `expect_contains` lists contain the values; all mismatches are reported together,
//!   naming file, flow and field, before the test fails;
//! - spoofed SYNs to Telegram's range from five hosts are not use: `shadowtap survey` over that
//!   file reports no Telegram and no active device.

mod common;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;

use common::{inspect, root, s};
use serde_json::Value;

fn dir() -> PathBuf {
    root().join("pcaps").join("evasion")
}

fn expected() -> Vec<Value> {
    let text = std::fs::read_to_string(dir().join("expected.json")).unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    v["files"].as_array().unwrap().clone()
}

/// `evasion` is a set: its order is the sensor's, not part of the contract.
fn same(field: &str, got: &Value, want: &Value) -> bool {
    match (field, got.as_array(), want.as_array()) {
        ("evasion", Some(g), Some(w)) => {
            let set = |v: &Vec<Value>| v.iter().map(Value::to_string).collect::<BTreeSet<_>>();
            set(g) == set(w)
        }
        _ => got == want,
    }
}

#[test]
fn evasion_captures_agree_with_expected_json() {
    let files = expected();
    assert!(files.len() >= 30, "only {} files in expected.json", files.len());
    let mut problems = String::new();
    let mut failed_files = BTreeSet::new();
    let mut checked = 0;
    for entry in &files {
        let file = s(entry, "file").unwrap();
        let mut fail = |msg: String| {
            failed_files.insert(file.to_string());
            writeln!(problems, "{file}: {msg}").unwrap();
        };
        let run = inspect(&[&dir().join(file)], &[]);
        if run.code != Some(0) {
            fail(format!("exit {:?}: {}", run.code, run.stderr.trim()));
            continue;
        }
        let flows = entry["flows"].as_array().unwrap();
        if run.records.len() != flows.len() {
            fail(format!("{} flows, expected {}: {}", run.records.len(), flows.len(), run.stdout.trim()));
        }
        for f in flows {
            let (client, server) = (s(f, "client").unwrap(), s(f, "server").unwrap());
            let Some(r) = run.records.iter().find(|r| s(r, "src") == Some(client) && s(r, "dst") == Some(server)) else {
                let seen: Vec<String> =
                    run.records.iter().map(|r| format!("{} -> {}", s(r, "src").unwrap_or("?"), s(r, "dst").unwrap_or("?"))).collect();
                fail(format!("no flow {client} -> {server} (seen: {})", seen.join(", ")));
                continue;
            };
            checked += 1;
            if r["transport"] != f["transport"] {
                fail(format!("{client}: transport = {}, expected {}", r["transport"], f["transport"]));
            }
            for (field, want) in f["expect"].as_object().unwrap() {
                let got = r.get(field).unwrap_or(&Value::Null);
                if !same(field, got, want) {
                    fail(format!("{client}: {field} = {got}, expected {want}"));
                }
            }
            if let Some(contains) = f.get("expect_contains").and_then(Value::as_object) {
                for (field, want) in contains {
                    let got = r.get(field).and_then(Value::as_array).cloned().unwrap_or_default();
                    for w in want.as_array().unwrap() {
                        if !got.contains(w) {
                            fail(format!("{client}: {field} = {got:?} lacks {w}"));
                        }
                    }
                }
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {} evasion captures disagree with pcaps/evasion/expected.json ({checked} flows found):\n{problems}",
        failed_files.len(),
        files.len()
    );
}

/// A survey over the five spoofed SYNs (10.20.0.11-15 to 149.154.167.50:443, never answered):
/// no exchange, so no use of Telegram and no active device.
#[test]
fn spoofed_syns_to_telegram_are_no_use_in_a_survey() {
    let entry = expected().into_iter().find(|e| e.get("survey").is_some()).expect("a file with a survey expectation");
    let file = dir().join(s(&entry, "file").unwrap());
    let department = s(&entry["survey"], "config_department").unwrap();

    let tmp = std::env::temp_dir().join(format!("shadowtap-evasion-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let config = tmp.join("config.toml");
    let catalog = root().join("rules").join("services");
    std::fs::write(
        &config,
        format!(
            "catalog = {:?}\n\n[[department]]\nid = \"finance\"\nname = \"Finance\"\ncidrs = [{department:?}]\n\n\
             [privacy]\nmin_group_size = 1\n",
            catalog.display().to_string()
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
        .args(["survey", "--config"])
        .arg(&config)
        .arg(&file)
        .args(["--format", "json"])
        .output()
        .unwrap();
    std::fs::remove_dir_all(&tmp).ok();
    assert!(out.status.success(), "survey: {}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();

    let mut problems = Vec::new();
    for section in ["categories", "services", "channels"] {
        for row in report["survey"][section].as_array().into_iter().flatten() {
            if s(row, "service") == Some("telegram") || s(row, "category") == Some("messaging") {
                problems.push(format!("survey.{section} row {row}"));
            }
        }
    }
    for h in report["headlines"].as_array().into_iter().flatten() {
        if h.to_string().contains("telegram") {
            problems.push(format!("headline {h}"));
        }
    }
    for d in report["departments"].as_array().into_iter().flatten() {
        if d["active_hosts"].as_u64() != Some(0) {
            problems.push(format!("department {}: active_hosts {}", d["department"], d["active_hosts"]));
        }
    }
    for w in report["trend"]["weeks"].as_array().into_iter().flatten() {
        if w["active_hosts"].as_u64().unwrap_or(0) != 0 {
            problems.push(format!("trend week {}: active_hosts {}", w["start"], w["active_hosts"]));
        }
    }
    let want = &entry["survey"];
    assert_eq!(want["telegram_hosts"], 0);
    assert_eq!(want["active_devices"], 0);
    assert!(problems.is_empty(), "{}: SYNs without an answer counted as use:\n{}", file.display(), problems.join("\n"));
}
