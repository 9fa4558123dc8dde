//! The sensor against peers' ground truth in `../shared/corpus/expected.jsonl` (FoxIO JA4,
//! salesforce JA3, nDPI, Suricata and Zeek captures):
//! - every TLS row agrees on SNI, JA3 and JA4;
//! - every QUIC row agrees on SNI and JA4 (`q…`);
//! - every DNS row's query name is among the flow's `dns_queries`.
//!
//! Where the peer and a specification disagree (`disagreements.jsonl`: nDPI's ALPN and SNI-flag
//! renderings of JA4, FoxIO's non-ASCII ALPN, nDPI's truncated DNS names), the specification
//! wins: those rows are compared with the spec-derived value the corpus carries from tshark.
//! Skips, with a message, when the corpus is not beside the checkout.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;

use common::{corpus_dir, inspect, s};
use serde_json::Value;

struct Corpus {
    rows: Vec<Value>,
    /// (pcap, "src dst", what) where the spec-derived tshark value wins.
    spec_wins: HashSet<(String, String, String)>,
    /// (capture, sorted endpoints, transport) -> our records.
    flows: HashMap<(String, [String; 2], String), Vec<Value>>,
}

fn pair(a: &str, b: &str) -> [String; 2] {
    let mut p = [a.to_string(), b.to_string()];
    p.sort();
    p
}

fn load(dir: &Path) -> Corpus {
    let read = |f: &str| -> Vec<Value> {
        std::fs::read_to_string(dir.join(f)).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    let spec_wins = read("disagreements.jsonl")
        .iter()
        .map(|d| (s(d, "pcap").unwrap().into(), s(d, "flow").unwrap().into(), s(d, "what").unwrap().into()))
        .collect();
    let run = inspect(&[&dir.join("pcaps")], &[]);
    assert_eq!(run.code, Some(0), "inspect over the corpus failed: {}", run.stderr);
    let mut flows: HashMap<_, Vec<Value>> = HashMap::new();
    for r in run.records {
        let k = (
            s(&r, "capture").unwrap().to_string(),
            pair(s(&r, "src").unwrap(), s(&r, "dst").unwrap()),
            s(&r, "transport").unwrap().to_string(),
        );
        flows.entry(k).or_default().push(r);
    }
    Corpus { rows: read("expected.jsonl"), spec_wins, flows }
}

fn nonempty(v: Option<&str>) -> Option<String> {
    v.filter(|x| !x.is_empty()).map(str::to_string)
}

impl Corpus {
    fn rows<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.rows.iter().filter(move |r| s(r, "kind") == Some(kind))
    }

    /// Our record for a row (preferring one of `app`), or a failure message.
    fn ours(&self, row: &Value, app: &str) -> Result<&Value, String> {
        let (pcap, src, dst) = (s(row, "pcap").unwrap(), s(row, "src").unwrap(), s(row, "dst").unwrap());
        let key = (pcap.to_string(), pair(src, dst), s(row, "proto").unwrap().to_string());
        let c = self.flows.get(&key).ok_or_else(|| format!("{pcap} {src} {dst}: flow not found"))?;
        Ok(c.iter().find(|r| s(r, "app") == Some(app)).unwrap_or(&c[0]))
    }

    fn spec_wins(&self, row: &Value, what: &str) -> bool {
        let flow = format!("{} {}", s(row, "src").unwrap(), s(row, "dst").unwrap());
        self.spec_wins.contains(&(s(row, "pcap").unwrap().to_string(), flow, what.to_string()))
    }

    /// JA4 to expect: the peer's, unless the spec-derived tshark value wins or the peer gives none.
    fn want_ja4(&self, row: &Value) -> Option<String> {
        let tshark = row.get("tshark").and_then(|t| nonempty(s(t, "ja4")));
        if self.spec_wins(row, "ja4") {
            tshark
        } else {
            nonempty(s(row, "ja4")).or(tshark)
        }
    }
}

fn corpus() -> Option<Corpus> {
    match corpus_dir() {
        Some(dir) => Some(load(&dir)),
        None => {
            eprintln!("skipping: ../shared/corpus not found (set SHADOWTAP_CORPUS to point at it)");
            None
        }
    }
}

fn check(failures: &mut Vec<String>, row: &Value, field: &str, want: Option<String>, got: Option<&str>) {
    if want.as_deref() != got {
        failures.push(format!(
            "{} {} {}: {field} want {want:?} got {got:?}",
            s(row, "pcap").unwrap(),
            s(row, "src").unwrap(),
            s(row, "dst").unwrap()
        ));
    }
}

impl Corpus {
    /// Runs `check_row` on every row of `kind` with our record for it (preferring `app`), and
    /// fails with every disagreement if any; `at_least` guards against an emptied corpus.
    fn compare(&self, kind: &str, app: &str, at_least: usize, check_row: impl Fn(&Value, &Value, &mut Vec<String>)) {
        let (mut failures, mut n) = (Vec::new(), 0);
        for row in self.rows(kind) {
            n += 1;
            match self.ours(row, app) {
                Ok(ours) => check_row(row, ours, &mut failures),
                Err(e) => failures.push(e),
            }
        }
        assert!(n >= at_least, "only {n} {kind} rows");
        assert!(failures.is_empty(), "{} disagreements:\n{}", failures.len(), failures.join("\n"));
    }
}

#[test]
fn tls_rows_agree_with_peers() {
    let Some(c) = corpus() else { return };
    c.compare("tls", "tls", 249, |row, ours, failures| {
        check(failures, row, "sni", nonempty(s(row, "sni")), s(ours, "sni"));
        let ja3 = nonempty(s(row, "ja3")).or_else(|| row.get("tshark").and_then(|t| nonempty(s(t, "ja3"))));
        if ja3.is_some() {
            check(failures, row, "ja3", ja3, s(ours, "ja3"));
        }
        if let Some(ja4) = c.want_ja4(row) {
            check(failures, row, "ja4", Some(ja4), s(ours, "ja4"));
        }
    });
}

#[test]
fn quic_rows_agree_with_peers() {
    let Some(c) = corpus() else { return };
    c.compare("quic", "quic", 59, |row, ours, failures| {
        check(failures, row, "sni", nonempty(s(row, "sni")), s(ours, "sni"));
        check(failures, row, "app", Some("quic".into()), s(ours, "app"));
        if let Some(ja4) = c.want_ja4(row) {
            check(failures, row, "ja4", Some(ja4), s(ours, "ja4"));
        }
    });
}

#[test]
fn dns_rows_agree_with_peers() {
    let Some(c) = corpus() else { return };
    c.compare("dns", "dns", 118, |row, ours, failures| {
        // nDPI keeps the last ~80 characters of long names and skips the root name: there the
        // full names tshark read win (tshark writes the root name `<Root>`, zone files `.`).
        let want = if c.spec_wins(row, "dns") {
            row.get("tshark").and_then(|t| t["dns_queries"].as_array()).map(|q| {
                q.iter().map(|n| n.as_str().unwrap().replace("<Root>", ".")).collect::<Vec<_>>()
            })
        } else {
            nonempty(s(row, "sni")).map(|n| vec![n])
        };
        check(failures, row, "app", Some("dns".into()), s(ours, "app"));
        let Some(want) = want else { return };
        let got: Vec<&str> = ours["dns_queries"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        // A long-lived resolver flow keeps its first names only (MAX_DNS_NAMES_PER_FLOW): one of
        // the names the reading lists must be among them.
        if !want.iter().any(|w| got.contains(&w.as_str())) {
            failures.push(format!("{} {} {}: dns want one of {want:?} got {got:?}", s(row, "pcap").unwrap(), s(row, "src").unwrap(), s(row, "dst").unwrap()));
        }
    });
}

/// nDPI's labels of messaging and conferencing services, and the catalog's ids for them (`|`:
/// either; nDPI's Skype_Teams is the consumer or the business Teams).
const CALL_SERVICES: &[(&str, &str)] = &[
    ("WhatsApp", "whatsapp"),
    ("WhatsAppCall", "whatsapp"),
    ("Telegram", "telegram"),
    ("Signal", "signal"),
    ("Discord", "discord"),
    ("Zoom", "zoom"),
    ("KakaoTalk", "kakaotalk"),
    ("Viber", "viber"),
    ("LINE", "line"),
    ("Threema", "threema"),
    ("IMO", "imo"),
    ("Skype_Teams", "microsoft-365|teams-consumer"),
    ("Teams", "microsoft-365|teams-consumer"),
    ("Webex", "webex"),
    ("GoogleMeet", "google-meet"),
];

/// Share of the non-DNS flows nDPI labels with a messaging or conferencing service that the
/// sensor, with the bundled configuration, attributes to the same service; printed per service.
/// The targets: at least 90% over all, at least 80% per service, and no flow attributed
/// to one of these services that nDPI gives another service.
#[test]
fn messaging_and_conferencing_flows_are_attributed_as_ndpi_labels_them() {
    let Some(dir) = corpus_dir() else {
        eprintln!("skipping: ../shared/corpus not found");
        return;
    };
    let rows: Vec<Value> = std::fs::read_to_string(dir.join("expected.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let tmp = common::stack::TempDir::new();
    let config = tmp.0.join("config.toml");
    std::fs::write(&config, common::bundled_config()).unwrap();
    let run = inspect(&[&dir.join("pcaps")], &["--config", config.to_str().unwrap()]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let ours = |row: &Value| {
        let key = pair(s(row, "src").unwrap(), s(row, "dst").unwrap());
        run.records.iter().find(|r| s(r, "capture") == s(row, "pcap") && s(r, "transport") == s(row, "proto") && pair(s(r, "src").unwrap(), s(r, "dst").unwrap()) == key)
    };
    let ids: HashSet<&str> = CALL_SERVICES.iter().flat_map(|(_, id)| id.split('|')).collect();
    let (mut per, mut wrong) = (std::collections::BTreeMap::<&str, (usize, usize)>::new(), Vec::new());
    for row in rows.iter().filter(|r| s(r, "kind") != Some("dns")) {
        let label = s(row, "service").unwrap_or("");
        let got = ours(row).and_then(|r| s(r, "service"));
        match CALL_SERVICES.iter().find(|(l, _)| *l == label) {
            Some((l, id)) => {
                let e = per.entry(l).or_default();
                e.1 += 1;
                if got.is_some_and(|g| id.split('|').any(|i| i == g)) {
                    e.0 += 1;
                }
            }
            // Another service by nDPI's label: none of ours may be claimed for it.
            None if !label.is_empty() && got.is_some_and(|g| ids.contains(g)) => wrong.push(format!("{} {} {}: nDPI {label}, ours {got:?}", s(row, "pcap").unwrap(), s(row, "src").unwrap(), s(row, "dst").unwrap())),
            None => {}
        }
    }
    let (hit, all) = per.values().fold((0, 0), |(h, a), (x, n)| (h + x, a + n));
    for (label, (x, n)) in &per {
        eprintln!("{label:<14} {x}/{n}");
    }
    eprintln!("all            {hit}/{all}");
    assert!(all >= 20, "only {all} labelled flows");
    assert!(wrong.is_empty(), "false attributions:\n{}", wrong.join("\n"));
    assert!(hit * 10 >= all * 9, "{hit}/{all} attributed, the target is 90%");
    for (label, (x, n)) in &per {
        assert!(x * 5 >= n * 4, "{label}: {x}/{n} attributed, the target is 80% per service");
    }
}
