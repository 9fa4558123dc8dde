//! The sensor against peers' ground truth: every TLS row of `../shared/corpus/expected.jsonl`
//! (FoxIO JA4, salesforce JA3, nDPI, Suricata, Zeek captures) must agree on SNI, JA3 and JA4.
//!
//! Where the peer and the JA4 specification disagree (`disagreements.jsonl`: nDPI's ALPN and
//! SNI-flag renderings, FoxIO's non-ASCII ALPN), the specification wins: those rows are compared
//! with the spec-derived value the corpus carries in `tshark.ja4`. Skips, with a message, when the
//! corpus is not beside the checkout.

mod common;

use std::collections::{HashMap, HashSet};

use common::{corpus_dir, inspect, s};
use serde_json::Value;

/// Rows deliberately not compared, with the reason. (pcap, client, server, field)
const EXCEPTIONS: &[(&str, &str, &str, &str, &str)] = &[];

#[test]
fn tls_rows_agree_with_peers() {
    let Some(dir) = corpus_dir() else {
        eprintln!("skipping: ../shared/corpus not found (set SHADOWTAP_CORPUS to point at it)");
        return;
    };
    let rows: Vec<Value> = std::fs::read_to_string(dir.join("expected.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let spec_wins: HashSet<(String, String)> = std::fs::read_to_string(dir.join("disagreements.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|d| s(d, "what") == Some("ja4"))
        .map(|d| (s(&d, "pcap").unwrap().to_string(), s(&d, "flow").unwrap().to_string()))
        .collect();

    let run = inspect(&[&dir.join("pcaps")], &[]);
    assert_eq!(run.code, Some(0), "inspect over the corpus failed: {}", run.stderr);
    // (capture, unordered endpoint pair, transport) -> records
    let mut flows: HashMap<(String, [String; 2], String), Vec<&Value>> = HashMap::new();
    for r in &run.records {
        let mut pair = [s(r, "src").unwrap().to_string(), s(r, "dst").unwrap().to_string()];
        pair.sort();
        let k = (s(r, "capture").unwrap().to_string(), pair, s(r, "transport").unwrap().to_string());
        flows.entry(k).or_default().push(r);
    }

    let mut failures = Vec::new();
    let mut checked = [0usize; 3];
    for row in rows.iter().filter(|r| s(r, "kind") == Some("tls")) {
        let pcap = s(row, "pcap").unwrap();
        let (src, dst) = (s(row, "src").unwrap(), s(row, "dst").unwrap());
        let mut pair = [src.to_string(), dst.to_string()];
        pair.sort();
        let key = (pcap.to_string(), pair, s(row, "proto").unwrap().to_string());
        let Some(candidates) = flows.get(&key) else {
            failures.push(format!("{pcap} {src} {dst}: flow not found"));
            continue;
        };
        let ours = candidates.iter().find(|r| s(r, "app") == Some("tls")).unwrap_or(&candidates[0]);
        let tshark = row.get("tshark");
        let nonempty = |v: Option<&str>| v.filter(|x| !x.is_empty()).map(str::to_string);
        let want_sni = nonempty(s(row, "sni"));
        let want_ja3 = nonempty(s(row, "ja3")).or_else(|| tshark.and_then(|t| nonempty(s(t, "ja3"))));
        let want_ja4 = if spec_wins.contains(&(pcap.to_string(), format!("{src} {dst}"))) {
            tshark.and_then(|t| nonempty(s(t, "ja4")))
        } else {
            nonempty(s(row, "ja4")).or_else(|| tshark.and_then(|t| nonempty(s(t, "ja4"))))
        };
        for (i, (field, want)) in [("sni", want_sni), ("ja3", want_ja3), ("ja4", want_ja4)].into_iter().enumerate() {
            if EXCEPTIONS.iter().any(|e| e.0 == pcap && e.1 == src && e.2 == dst && e.3 == field) {
                continue;
            }
            if field != "sni" && want.is_none() {
                continue;
            }
            checked[i] += 1;
            let got = s(ours, field).map(str::to_string);
            if got != want {
                failures.push(format!("{pcap} {src} {dst}: {field} want {want:?} got {got:?}"));
            }
        }
    }
    eprintln!("compared sni {} ja3 {} ja4 {}", checked[0], checked[1], checked[2]);
    assert!(checked[0] >= 249, "too few TLS rows compared");
    assert!(failures.is_empty(), "{} disagreements:\n{}", failures.len(), failures.join("\n"));
}
