//! `shadowtap report` end to end:
//!
//! 1. The synthetic survey of `tests/fixtures/report-input.json` (see the README there) in all
//!    four formats: JSON and CSV byte-identical across runs and across a JSON round trip of the
//!    input; no group below k; the auditor's sentences.
//! 2. The HTML in headless Chromium (Debian `chromium`): every number marked with `data-key`
//!    in the rendered DOM equals the JSON report's value at its `data-ptr`, every row of the
//!    JSON is shown, and the PDF Chromium prints (read back with `pdftotext` from
//!    `poppler-utils`) shows the same numbers in the same order, on several A4 pages.
//! 3. The Prometheus source: `shadowtap run` replays `pcaps/`, a real Prometheus (Debian
//!    `prometheus`) scrapes it every second, and `shadowtap report --prometheus` gives the
//!    flows, hosts and active hosts of the sensor's own `/metrics`.
//!
//! `.ci/test` installs chromium, poppler-utils and prometheus.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::root;
use common::stack::*;
use serde_json::Value;

const FIXTURE: &str = "tests/fixtures/report-input.json";
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(120);

fn shadowtap() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_shadowtap"));
    c.current_dir(root());
    c
}

/// Runs `shadowtap report ARGS`, expecting success; returns stdout.
fn report(args: &[&str]) -> Vec<u8> {
    let out = shadowtap().arg("report").args(args).output().unwrap();
    assert!(out.status.success(), "shadowtap report {args:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Runs a command with stdout and stderr in files, killed after `timeout`.
fn run_with_timeout(mut cmd: Command, what: &str, dir: &Path, timeout: Duration) -> Output {
    let (out_path, err_path) = (dir.join(format!("{what}.out")), dir.join(format!("{what}.err")));
    cmd.stdin(Stdio::null()).stdout(std::fs::File::create(&out_path).unwrap()).stderr(std::fs::File::create(&err_path).unwrap());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let started = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} did not finish within {timeout:?}:\n{}", std::fs::read_to_string(&err_path).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output { status, stdout: std::fs::read(&out_path).unwrap(), stderr: std::fs::read(&err_path).unwrap() }
}

// ---------------------------------------------------------------------------------------------
// 1. The fixture in every format.

#[test]
fn fixture_renders_in_every_format_byte_identically() {
    let tmp = TempDir::new();
    let mut first: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    for format in ["json", "csv", "md", "html"] {
        let a = report(&["--input", FIXTURE, "--format", format]);
        let file = tmp.0.join(format!("r.{format}"));
        report(&["--input", FIXTURE, "--format", format, "-o", file.to_str().unwrap()]);
        let b = std::fs::read(&file).unwrap();
        assert!(a == b, "{format}: two runs (stdout, -o) differ");
        first.insert(format, a);
    }
    // The same input after a JSON round trip through the library's types.
    let input: shadowtap::report::input::ReportInput =
        serde_json::from_str(&std::fs::read_to_string(root().join(FIXTURE)).unwrap()).unwrap();
    let again = tmp.0.join("again.json");
    std::fs::write(&again, serde_json::to_string(&input).unwrap()).unwrap();
    for format in ["json", "csv"] {
        let b = report(&["--input", again.to_str().unwrap(), "--format", format]);
        assert!(first[format] == b, "{format}: differs after a JSON round trip of the input");
    }
    // Default format: HTML.
    assert!(report(&["--input", FIXTURE]) == first["html"]);

    let json: Value = serde_json::from_slice(&first["json"]).unwrap();
    assert_eq!(json["k"], 5);
    assert_eq!(json["period"]["label"], "October 2026");
    for table in ["categories", "services", "channels"] {
        for row in json["survey"][table].as_array().unwrap() {
            assert!(row["hosts"].as_u64().unwrap() >= 5, "{table}: a group below k is shown: {row}");
            assert_ne!(row["department"], "audit");
            assert_ne!(row["department"], "security");
        }
    }
    assert_eq!(json["methodology"]["withheld"]["departments"], 2, "audit and security have fewer than 5 devices");
    let headlines: Vec<&str> = json["headlines"].as_array().unwrap().iter().map(|h| h["text"].as_str().unwrap()).collect();
    assert!(
        headlines.contains(&"In October 2026, 30.2% of active devices in the organisation used unsanctioned messaging (whatsapp, telegram, signal); 13 of 14 departments did."),
        "{headlines:#?}"
    );
    let states: Vec<(&str, &str)> = json["exemptions"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["department"].as_str().unwrap(), e["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("communications", "expired"), ("international", "expired"), ("legal", "expiring"), ("research", "valid")]);
    let after: BTreeSet<&str> = json["exemptions"]["after_expiry"].as_array().unwrap().iter().map(|e| e["service"].as_str().unwrap()).collect();
    assert_eq!(after, BTreeSet::from(["telegram", "wetransfer"]));

    let csv = String::from_utf8(first["csv"].clone()).unwrap();
    assert!(csv.starts_with("section,department,category,service,channel,status,week,name,metric,value\r\n"));
    assert!(csv.contains("\r\nsurvey_category,finance,messaging,,,unsanctioned,,,share,0.2611\r\n"), "finance: 47 of 180 devices");
    let html = String::from_utf8(first["html"].clone()).unwrap().to_ascii_lowercase();
    for banned in ["<script", "http:", "https:", "url(", "@import", "<link", "src="] {
        assert!(!html.contains(banned), "the page is self-contained: it has {banned:?}");
    }
    let md = String::from_utf8(first["md"].clone()).unwrap();
    assert!(md.contains("## Methodology and coverage"));

    // One department: only its rows, and the same suppression as the organisation's report.
    let one: Value = serde_json::from_slice(&report(&["--input", FIXTURE, "--format", "json", "--department", "finance"])).unwrap();
    let deps: BTreeSet<&str> = one["survey"]["services"].as_array().unwrap().iter().map(|r| r["department"].as_str().unwrap()).collect();
    assert_eq!(deps, BTreeSet::from(["finance"]));
    let org: BTreeSet<String> = json["survey"]["services"].as_array().unwrap().iter().filter(|r| r["department"] == "finance").map(|r| r.to_string()).collect();
    let dep: BTreeSet<String> = one["survey"]["services"].as_array().unwrap().iter().map(|r| r.to_string()).collect();
    assert_eq!(org, dep, "a department's rows are the same in both reports");
}

#[test]
fn bad_command_lines_exit_2_and_bad_inputs_exit_1() {
    let tmp = TempDir::new();
    let code = |args: &[&str]| -> (Option<i32>, String) {
        let out = shadowtap().arg("report").args(args).output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (c, e) = code(&["--prometheus", "http://127.0.0.1:9", "--from", "2026-10-31", "--to", "2026-10-01"]);
    assert_eq!(c, Some(2), "{e}");
    assert!(e.contains("empty period"), "{e}");
    let (c, e) = code(&["--prometheus", "http://127.0.0.1:9", "--from", "2026-10-32", "--to", "2026-10-01"]);
    assert_eq!(c, Some(2), "{e}");
    assert!(e.contains("YYYY-MM-DD"), "{e}");
    let (c, _) = code(&["--from", "2026-10-01", "--to", "2026-10-31"]);
    assert_eq!(c, Some(2), "a source is required");
    let (c, _) = code(&["--input", FIXTURE, "--store", "x.db"]);
    assert_eq!(c, Some(2), "one source only");
    let (c, e) = code(&["--store", "x.db", "--from", "2026-10-01", "--to", "2026-10-31"]);
    assert_eq!(c, Some(1), "{e}");
    assert!(e.contains("x.db") && !e.contains("panicked"), "a missing store is named: {e}");
    assert!(!std::path::Path::new("x.db").exists(), "a report never creates a store");
    let corrupt = tmp.0.join("corrupt.json");
    std::fs::write(&corrupt, "{\"from\": \"2026-10-01\", \"to\": ").unwrap();
    let (c, e) = code(&["--input", corrupt.to_str().unwrap()]);
    assert_eq!(c, Some(1), "{e}");
    assert!(e.contains("not a report input") && !e.contains("panicked"), "{e}");
    let (c, e) = code(&["--prometheus", "http://user:hunter2@127.0.0.1:9", "--from", "2026-10-01", "--to", "2026-10-31"]);
    assert_eq!(c, Some(1), "{e}");
    assert!(!e.contains("hunter2"), "a credential never reaches a message: {e}");
    let [port] = free_ports::<1>();
    let url = format!("http://127.0.0.1:{port}");
    let (c, e) = code(&["--prometheus", &url, "--from", "2026-10-01", "--to", "2026-10-31"]);
    assert_eq!(c, Some(1), "{e}");
    assert!(e.contains(&format!("{url}/api/v1/query")), "the error names the URL: {e}");
}

// ---------------------------------------------------------------------------------------------
// 1a. Discovery: destinations outside the catalog, from the captures of `pcaps/` under a
// catalog of WhatsApp alone (every other name of the captures is outside it).

/// `(domain, devices, flows)` of a report's `uncatalogued` list.
fn domains(report: &Value) -> Vec<(String, u64, u64)> {
    report["uncatalogued"]
        .as_array()
        .unwrap_or_else(|| panic!("no uncatalogued list: {report}"))
        .iter()
        .map(|d| (d["domain"].as_str().unwrap().to_string(), d["devices"].as_u64().unwrap(), d["flows"].as_u64().unwrap()))
        .collect()
}

#[test]
fn survey_names_the_domains_outside_the_catalog_as_inspect_counts_them_and_none_below_k() {
    let tmp = TempDir::new();
    std::fs::create_dir_all(tmp.0.join("services")).unwrap();
    std::fs::write(
        tmp.0.join("services/messaging.toml"),
        "[[service]]\nid = \"whatsapp\"\nname = \"WhatsApp\"\nvendor = \"Meta\"\nvendor_country = \"US\"\n\
         category = \"messaging\"\ndomains = [\"whatsapp.net\", \"whatsapp.com\"]\n",
    )
    .unwrap();
    let config = tmp.0.join("config.toml");
    std::fs::write(
        &config,
        "catalog = \"services\"\n[[department]]\nid = \"finance\"\ncidrs = [\"127.0.0.0/8\", \"10.20.0.0/16\"]\n\
         [[department]]\nid = \"legal\"\ncidrs = [\"::1/128\", \"10.30.0.0/16\"]\n[privacy]\nmin_group_size = 1\n",
    )
    .unwrap();
    let pcaps = root().join("pcaps");
    let survey = |args: &[&str]| -> Value {
        let out = shadowtap().current_dir(&tmp.0).arg("survey").arg("--config").arg(&config).arg(&pcaps).args(args).output().unwrap();
        assert!(out.status.success(), "survey {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    };

    // What inspect counts, record by record: the same list.
    let run = common::inspect(&[&pcaps], &["--config", config.to_str().unwrap(), "--stats"]);
    let mut counted: Vec<(String, u64, u64)> = run
        .stderr
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.len() == 6 && f[0] == "uncatalogued_domain").then(|| (f[1].to_string(), f[5].parse().unwrap(), f[3].parse().unwrap()))
        })
        .collect();
    counted.sort_by(|a, b| b.1.cmp(&a.1).then(b.2.cmp(&a.2)).then(a.0.cmp(&b.0)));

    let json = survey(&["--format", "json", "--save-input", "facts.json", "--store", "store.sqlite"]);
    let listed = domains(&json);
    assert_eq!(listed, counted, "survey and inspect --stats count the same domains");
    assert!(listed.contains(&("google.com".to_string(), 2, 6)), "{listed:?}");
    assert!(listed.iter().any(|(d, _, _)| d == "dropbox.com"), "a service outside this catalog is a candidate: {listed:?}");
    assert!(!listed.iter().any(|(d, _, _)| d.starts_with("whatsapp")), "catalogued: not listed: {listed:?}");
    let text = json.to_string();
    assert!(!text.contains("127.0.0.1") && !text.contains("10.20."), "never an address");
    assert_eq!(json["uncatalogued_folded"]["below_k_domains"], 0);

    // Above every domain's device count: nothing named, only counted.
    let strict = survey(&["--format", "json", "--k", "3"]);
    assert_eq!(strict["uncatalogued"], Value::Array(vec![]), "no domain had 3 devices");
    assert_eq!(strict["uncatalogued_folded"]["below_k_domains"].as_u64(), Some(listed.len() as u64));
    assert!(!strict.to_string().contains("google.com"));
    let md = String::from_utf8(shadowtap().current_dir(&tmp.0).arg("survey").arg("--config").arg(&config).arg(&pcaps).args(["--format", "md", "--k", "3"]).output().unwrap().stdout).unwrap();
    assert!(md.contains("## Destinations outside the catalog") && md.contains("used by fewer than k devices"), "{md}");

    // The saved facts and the store give the same list.
    let again: Value = serde_json::from_slice(&report(&["--input", tmp.0.join("facts.json").to_str().unwrap(), "--format", "json", "--k", "1"])).unwrap();
    assert_eq!(domains(&again), listed, "report --input");
    let stored: Value = serde_json::from_slice(&report(&["--store", tmp.0.join("store.sqlite").to_str().unwrap(), "--format", "json", "--k", "1"])).unwrap();
    assert_eq!(domains(&stored), listed, "report --store");
    let html = String::from_utf8(report(&["--input", tmp.0.join("facts.json").to_str().unwrap(), "--format", "html", "--k", "1"])).unwrap();
    assert!(html.contains("<h2>Destinations outside the catalog</h2>") && html.contains("data-ptr=\"/uncatalogued/0/devices\""));
}

// ---------------------------------------------------------------------------------------------
// 1b. Use needs an exchange: `survey` over spoofed SYNs, in every format and saved.

/// `shadowtap survey --config rules/config.toml CAPTURE ARGS` in `dir`, expecting success.
fn survey_in(dir: &Path, capture: &Path, args: &[&str]) -> Vec<u8> {
    let out = shadowtap()
        .current_dir(dir)
        .arg("survey")
        .arg("--config")
        .arg(root().join("rules/config.toml"))
        .arg(capture)
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "shadowtap survey {args:?}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    out.stdout
}

#[test]
fn survey_of_spoofed_syns_finds_no_use_and_counts_them_apart() {
    let tmp = TempDir::new();
    let capture = tmp.0.join("spoofed.pcap");
    common::capture::spoofed_telegram(false).write(&capture);

    let json: Value = serde_json::from_slice(&survey_in(&tmp.0, &capture, &["--format", "json", "--save-input", "facts.json"])).unwrap();
    assert_eq!(json["headlines"], Value::Array(vec![]), "no finding from packets nobody answered: {}", json["headlines"]);
    // No active device: the configured departments without any traffic are listed as not
    // observed; finance, seen (its flows went unanswered), is neither shown nor "not observed".
    let depts: Vec<(&str, u64, bool)> = json["departments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["department"].as_str().unwrap(), d["active_hosts"].as_u64().unwrap(), d["observed"].as_bool().unwrap()))
        .collect();
    assert_eq!(depts, [("legal", 0, false), ("operations", 0, false)], "no active device");
    assert_eq!(json["no_data"], false, "packets were seen: this is no use, not no data");
    assert_eq!(json["survey"]["services"], Value::Array(vec![]));
    let m = &json["methodology"];
    assert_eq!((m["flows"].as_u64(), m["unanswered_flows"].as_u64(), m["unanswered_share"].as_f64()), (Some(0), Some(5), Some(1.0)));
    assert_eq!((m["mostly_unanswered"].as_bool(), m["unanswered_as_use"].as_bool()), (Some(true), Some(false)));
    assert_eq!(m["withheld"]["departments"], 0, "finance had no use: nothing of it is withheld");
    let notes: Vec<&str> = m["notes"].as_array().unwrap().iter().map(|n| n.as_str().unwrap()).collect();
    let note = "5 flows were never answered by their server (spoofed or blocked connection attempts, scans); they are not counted as use";
    assert!(notes.iter().any(|n| n.contains(note)), "{notes:#?}");
    assert!(notes.iter().any(|n| n.starts_with("Most flows seen (100.0%) were never answered")), "{notes:#?}");

    let md = String::from_utf8(survey_in(&tmp.0, &capture, &["--format", "md"])).unwrap();
    assert!(md.contains("| Never answered | 5 flows (100.0% of the flows seen): spoofed or blocked connection attempts, not counted as use |"), "{md}");
    assert!(md.contains(note) && !md.contains("used unsanctioned"), "{md}");
    let csv = String::from_utf8(survey_in(&tmp.0, &capture, &["--format", "csv"])).unwrap();
    assert!(csv.contains("\r\nmethodology,,,,,,,,unanswered_flows,5\r\n"), "{csv}");
    assert!(!csv.contains("\r\nheadline,"), "{csv}");
    let html = String::from_utf8(survey_in(&tmp.0, &capture, &["--format", "html"])).unwrap();
    assert!(html.contains("data-ptr=\"/methodology/unanswered_flows\" data-fmt=\"count\">5</span> flows"), "the count, marked for the Chromium check");
    assert!(html.contains(note));

    // The saved facts keep the count, and render the same report again.
    let facts: Value = serde_json::from_str(&std::fs::read_to_string(tmp.0.join("facts.json")).unwrap()).unwrap();
    let all = facts["departments"].as_array().unwrap().iter().find(|d| d["department"] == "_all").unwrap();
    assert_eq!((all["active_hosts"]["count"].as_u64(), all["unanswered_flows"]["telegram"].as_u64()), (Some(0), Some(5)));
    let again: Value = serde_json::from_slice(&report(&["--input", tmp.0.join("facts.json").to_str().unwrap(), "--format", "json", "--k", "1"])).unwrap();
    assert_eq!(again, json, "report --input of the saved facts = the survey");

    // The same plus one real exchange: only that one is use.
    let capture = tmp.0.join("spoofed-and-real.pcap");
    common::capture::spoofed_telegram(true).write(&capture);
    let json: Value = serde_json::from_slice(&survey_in(&tmp.0, &capture, &["--format", "json"])).unwrap();
    let rows: Vec<(&str, u64, u64)> = json["survey"]["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["department"].as_str().unwrap(), r["hosts"].as_u64().unwrap(), r["flows"].as_u64().unwrap()))
        .collect();
    assert_eq!(rows, [("_all", 1, 1), ("finance", 1, 1)], "one device, one flow");
    let active: Vec<u64> = json["departments"].as_array().unwrap().iter().map(|d| d["active_hosts"].as_u64().unwrap()).collect();
    assert_eq!(active, [1, 1, 0, 0], "the organisation, finance, and legal and operations not observed");
    assert_eq!(json["methodology"]["unanswered_flows"], 5);
}

// ---------------------------------------------------------------------------------------------
// 2. Chromium.

fn tool(name: &str) -> PathBuf {
    on_path(name).unwrap_or_else(|| {
        panic!(
            "`{name}` must be on PATH for this test: run .ci/test, which installs the Debian packages \
             `chromium` and `poppler-utils` (or: apt-get install chromium poppler-utils)"
        )
    })
}

fn chromium(dir: &Path, what: &str, args: &[String]) -> Output {
    let mut cmd = Command::new(tool("chromium"));
    cmd.env("HOME", dir)
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check"])
        .args(["--disable-extensions", "--hide-scrollbars"])
        .arg(format!("--user-data-dir={}", dir.join("chromium-profile").display()))
        .args(args);
    let out = run_with_timeout(cmd, what, dir, CHROMIUM_TIMEOUT);
    assert!(out.status.success(), "chromium {what}: {}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    out
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&#39;", "'").replace("&nbsp;", " ").replace("&amp;", "&")
}

/// One number the page shows.
#[derive(Debug)]
struct Shown {
    key: String,
    ptr: String,
    fmt: String,
    text: String,
}

/// Every element with a `data-key`, in document order, with its text.
fn shown_numbers(dom: &str) -> Vec<Shown> {
    let attr = |tag: &str, name: &str| -> String {
        let start = tag.find(&format!(" {name}=\"")).unwrap_or_else(|| panic!("no {name} in {tag}")) + name.len() + 3;
        unescape(&tag[start..start + tag[start..].find('"').unwrap()])
    };
    let mut out = Vec::new();
    let mut rest = dom;
    while let Some(at) = rest.find(" data-key=\"") {
        let tag_start = rest[..at].rfind('<').unwrap();
        let tag_end = at + rest[at..].find('>').unwrap();
        let tag = &rest[tag_start..tag_end];
        let text_end = tag_end + 1 + rest[tag_end + 1..].find('<').unwrap();
        out.push(Shown { key: attr(tag, "data-key"), ptr: attr(tag, "data-ptr"), fmt: attr(tag, "data-fmt"), text: unescape(&rest[tag_end + 1..text_end]).trim().to_string() });
        rest = &rest[text_end..];
    }
    out
}

/// Whether `text`, printed as `fmt`, shows `value`: exactly for counts, to the printed
/// precision for percentages (one decimal) and bytes (one decimal of the unit).
fn agrees(fmt: &str, text: &str, value: &Value) -> bool {
    match fmt {
        "count" => text.replace(',', "").parse::<u64>().ok() == value.as_u64(),
        "int" => text.parse::<i64>().ok() == value.as_i64(),
        "percent" => {
            let (Some(shown), Some(v)) = (text.strip_suffix('%').and_then(|t| t.parse::<f64>().ok()), value.as_f64()) else { return false };
            (shown / 100.0 - v).abs() <= 0.0005 + 1e-9
        }
        "bytes" => {
            let Some(v) = value.as_u64() else { return false };
            let Some((number, unit)) = text.split_once(' ') else { return false };
            let scale = match unit {
                "B" => return number.parse::<u64>().ok() == Some(v),
                "kB" => 1e3,
                "MB" => 1e6,
                "GB" => 1e9,
                "TB" => 1e12,
                "PB" => 1e15,
                "EB" => 1e18,
                _ => return false,
            };
            number.parse::<f64>().is_ok_and(|n| (v as f64 / scale - n).abs() <= 0.05 + 1e-9)
        }
        _ => false,
    }
}

/// Whether `needles` appear in `hay` in order (not necessarily adjacent).
fn in_order(hay: &[&str], needles: &[String]) -> Result<(), String> {
    let mut at = 0;
    for (i, n) in needles.iter().enumerate() {
        match hay[at..].iter().position(|t| t == n) {
            Some(p) => at += p + 1,
            None => return Err(format!("token {i} {n:?} not found after position {at} (context: {:?})", &needles[i.saturating_sub(5)..(i + 1)])),
        }
    }
    Ok(())
}

#[test]
fn html_in_chromium_shows_the_numbers_of_the_json() {
    let (_, _) = (tool("chromium"), tool("pdftotext"));
    let tmp = TempDir::new();
    let html = tmp.0.join("report.html");
    report(&["--input", FIXTURE, "--format", "html", "-o", html.to_str().unwrap()]);
    let json: Value = serde_json::from_slice(&report(&["--input", FIXTURE, "--format", "json"])).unwrap();
    let url = format!("file://{}", html.display());

    // The rendered DOM: every marked number against the JSON.
    let dom = String::from_utf8(chromium(&tmp.0, "dump-dom", &["--dump-dom".into(), url.clone()]).stdout).unwrap();
    assert!(dom.contains("Shadow-IT survey: October 2026"), "the page rendered");
    assert!(!dom.contains("<script"), "no script");
    let shown = shown_numbers(&dom);
    let mut bad = Vec::new();
    for s in &shown {
        match json.pointer(&s.ptr) {
            Some(v) if agrees(&s.fmt, &s.text, v) => {}
            other => bad.push(format!("{} ({}): shows {:?}, the JSON has {other:?}", s.key, s.ptr, s.text)),
        }
    }
    assert!(bad.is_empty(), "{} of {} numbers differ from the JSON:\n{}", bad.len(), shown.len(), bad.join("\n"));
    eprintln!("{} numbers in the rendered page agree with the JSON report", shown.len());

    // Every row of the JSON is shown, under the key its labels give.
    let keys: BTreeMap<&str, &str> = shown.iter().map(|s| (s.ptr.as_str(), s.key.as_str())).collect();
    let mut expected = 0;
    for (table, prefix) in [("categories", "cat"), ("services", "svc"), ("channels", "chan")] {
        for (i, row) in json["survey"][table].as_array().unwrap().iter().enumerate() {
            let l = |n: &str| row[n].as_str().unwrap().to_string();
            let labels = match prefix {
                "cat" => vec![l("department"), l("category"), l("status")],
                "svc" => vec![l("department"), l("service"), l("status")],
                _ => vec![l("department"), l("service"), l("channel"), l("status")],
            };
            for metric in ["hosts", "share", "flows", "bytes_up", "bytes_down"] {
                let ptr = format!("/survey/{table}/{i}/{metric}");
                let key = format!("{prefix}/{}/{metric}", labels.join("/"));
                assert_eq!(keys.get(ptr.as_str()).copied(), Some(key.as_str()), "{ptr}");
                expected += 1;
            }
        }
    }
    for (list, metrics) in [
        ("/top_unsanctioned", &["hosts", "share", "flows", "bytes_up", "bytes_down", "departments"][..]),
        ("/departments", &["active_hosts"][..]),
        ("/exemptions/list", &["days_left"][..]),
        ("/methodology/sensors", &["uptime_share"][..]),
        ("/headlines", &["share", "departments_using", "departments_total"][..]),
    ] {
        for i in 0..json.pointer(list).unwrap().as_array().unwrap().len() {
            for m in metrics {
                assert!(keys.contains_key(format!("{list}/{i}/{m}").as_str()), "{list}/{i}/{m} is not shown");
                expected += 1;
            }
        }
    }
    let scope_lines = json["trend"]["lines"].as_array().unwrap().iter().enumerate().filter(|(_, l)| l["department"] == "_all");
    for (i, _) in scope_lines {
        assert!(keys.contains_key(format!("/trend/lines/{i}/share").as_str()) && keys.contains_key(format!("/trend/lines/{i}/flows").as_str()));
        expected += 2;
    }
    assert!(shown.len() >= expected, "{} shown, {expected} expected at least", shown.len());

    // The PDF: A4 pages, the sentences, and the numbers in the order of the page.
    let pdf = tmp.0.join("report.pdf");
    chromium(&tmp.0, "print-to-pdf", &["--no-pdf-header-footer".into(), format!("--print-to-pdf={}", pdf.display()), url]);
    let info = Command::new(tool("pdfinfo")).arg(&pdf).output().unwrap();
    let info = String::from_utf8_lossy(&info.stdout).into_owned();
    let pages: u32 = info.lines().find_map(|l| l.strip_prefix("Pages:")).map(|p| p.trim().parse().unwrap()).unwrap_or(0);
    assert!(pages >= 6, "each of the six sections starts a page: {pages} pages\n{info}");
    assert!(info.contains("(A4)"), "A4 pages:\n{info}");
    let text = Command::new(tool("pdftotext")).arg("-layout").arg(&pdf).arg("-").output().unwrap();
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    for h in json["headlines"].as_array().unwrap() {
        let sentence = h["text"].as_str().unwrap();
        assert!(flat.contains(sentence), "the PDF says {sentence:?}");
    }
    // Words of the PDF without the punctuation around them ("17," in "rows: categories 17, ...").
    let tokens: Vec<&str> = text.split_whitespace().map(|t| t.trim_start_matches('(').trim_end_matches([',', ';', ')', ':'])).collect();
    let (charts, tables): (Vec<&Shown>, Vec<&Shown>) = shown.iter().partition(|s| s.key.starts_with("chart/"));
    let needles: Vec<String> = tables.iter().flat_map(|s| s.text.split_whitespace().map(str::to_string).collect::<Vec<_>>()).collect();
    if let Err(e) = in_order(&tokens, &needles) {
        panic!("the PDF does not show the page's numbers in order: {e}");
    }
    for c in charts {
        assert!(tokens.contains(&c.text.as_str()), "the chart value {} ({}) is in the PDF", c.text, c.key);
    }
    eprintln!("{pages} A4 pages; {} numbers ({} words) found in the PDF text in the page's order", tables.len(), needles.len());
}

// ---------------------------------------------------------------------------------------------
// 3. Prometheus.

/// Today's date (UTC) as `YYYY-MM-DD`, and the day before.
fn today_and_yesterday() -> (String, String) {
    let now = time::OffsetDateTime::now_utc().date();
    (now.to_string(), now.previous_day().unwrap().to_string())
}

/// Samples of a text exposition: (name, labels) → value.
fn exposition(text: &str) -> Vec<(String, BTreeMap<String, String>, f64)> {
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        let mut map = BTreeMap::new();
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once("=\"").unwrap();
            map.insert(k.trim_matches(',').to_string(), v.trim_end_matches('"').to_string());
        }
        out.push((name.to_string(), map, value.parse().unwrap()));
    }
    out
}

#[test]
fn prometheus_source_reports_what_the_sensor_exposes() {
    let tmp = TempDir::new();
    let [shadowtap_port, prometheus_port] = free_ports::<2>();
    let mut cmd = shadowtap();
    cmd.args(["run", "--config", "rules/config.toml", "--pcap", "pcaps", "--listen", &format!("127.0.0.1:{shadowtap_port}")]);
    let mut sensor = Proc::spawn("shadowtap run", cmd, tmp.0.join("shadowtap.log"));
    let started_sensor = Instant::now();
    let started = Instant::now();
    loop {
        sensor.assert_running("replaying pcaps/");
        if http_get(shadowtap_port, "/readyz").is_ok_and(|r| r.status == 200) {
            break;
        }
        assert!(started.elapsed() < READY_TIMEOUT, "/readyz not 200 within {READY_TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let mut prom = start_prometheus(
        &tmp,
        prometheus_port,
        &format!("scrape_configs:\n  - job_name: shadowtap\n    static_configs:\n      - targets: ['127.0.0.1:{shadowtap_port}']\n"),
        &[],
    );
    let scraped = wait_until(READY_TIMEOUT, &mut [&mut prom, &mut sensor], "being scraped", || {
        try_query(prometheus_port, "count(shadowtap_flows_total) > 0 and on() up == 1").is_ok_and(|r| !r.is_empty())
    });
    assert!(scraped, "Prometheus did not scrape shadowtap within {READY_TIMEOUT:?}");

    // What the sensor exposes (its counters do not move after the replay).
    let metrics = exposition(&http_get(shadowtap_port, "/metrics").unwrap().body);
    type Key = (String, String, String); // department, service, status
    let mut flows: BTreeMap<Key, u64> = BTreeMap::new();
    let mut up: BTreeMap<Key, u64> = BTreeMap::new();
    let mut hosts: BTreeMap<Key, u64> = BTreeMap::new();
    let mut active: BTreeMap<String, u64> = BTreeMap::new();
    let mut digest = String::new();
    for (name, l, v) in &metrics {
        let key = || (l["department"].clone(), l["service"].clone(), l["status"].clone());
        match name.as_str() {
            "shadowtap_flows_total" => *flows.entry(key()).or_default() += *v as u64,
            "shadowtap_bytes_total" if l["direction"] == "up" => *up.entry(key()).or_default() += *v as u64,
            "shadowtap_hosts" if l["window"] == "7d" => {
                let e = hosts.entry(key()).or_default();
                *e = (*e).max(*v as u64);
            }
            "shadowtap_department_active_hosts" if l["window"] == "7d" => {
                active.insert(l["department"].clone(), *v as u64);
            }
            "shadowtap_ruleset_info" => digest = l["digest"].clone(),
            _ => {}
        }
    }
    assert!(flows.keys().any(|k| k.0 == "finance" && k.1 == "whatsapp"), "pcaps/ has WhatsApp in finance: {flows:?}");

    let (today, yesterday) = today_and_yesterday();
    let url = format!("http://127.0.0.1:{prometheus_port}");
    let json: Value = serde_json::from_slice(&report(&["--prometheus", &url, "--from", &yesterday, "--to", &today, "--format", "json", "--k", "1"])).unwrap();
    assert_eq!(json["k"], 1, "the bundled configuration's k");
    assert_eq!(json["source"], format!("Prometheus at 127.0.0.1:{prometheus_port}"));
    assert_eq!(json["methodology"]["host_method"], serde_json::json!({"prometheus_window": {"window": "7d"}}));
    let sensors = json["methodology"]["sensors"].as_array().unwrap();
    assert_eq!(sensors.len(), 1);
    assert_eq!(sensors[0]["name"], format!("127.0.0.1:{shadowtap_port}"));
    // Up since a few seconds: the uptime counts from the first scrape (to within a step of the
    // subquery, 120 s for two days), not from the start of the period.
    let uptime = sensors[0]["uptime_secs"].as_u64().unwrap();
    assert!(uptime <= started_sensor.elapsed().as_secs() + 180, "uptime {uptime} s");
    assert_eq!(json["methodology"]["catalog_digests"], serde_json::json!([digest]));

    let mut rows = 0;
    let mut seen: BTreeSet<Key> = BTreeSet::new();
    for row in json["survey"]["services"].as_array().unwrap() {
        let key: Key = (row["department"].as_str().unwrap().into(), row["service"].as_str().unwrap().into(), row["status"].as_str().unwrap().into());
        if key.0 == "_all" {
            continue;
        }
        assert_eq!(row["flows"].as_u64(), flows.get(&key).copied(), "flows of {key:?}");
        assert_eq!(row["bytes_up"].as_u64(), up.get(&key).copied(), "bytes up of {key:?}");
        assert_eq!(row["hosts"].as_u64(), hosts.get(&key).copied(), "hosts of {key:?} (largest channel)");
        seen.insert(key);
        rows += 1;
    }
    let missing: Vec<&Key> = flows.keys().filter(|k| !seen.contains(*k) && hosts.get(*k).copied().unwrap_or(0) >= 1).collect();
    assert!(missing.is_empty(), "groups of /metrics missing from the report: {missing:?}");
    let finance_wa = json["survey"]["services"].as_array().unwrap().iter().find(|r| r["department"] == "finance" && r["service"] == "whatsapp").unwrap();
    assert!(finance_wa["flows"].as_u64().unwrap() > 0);
    for d in json["departments"].as_array().unwrap() {
        let name = d["department"].as_str().unwrap();
        let want = if name == "_all" { active.values().sum::<u64>() } else { active[name] };
        assert_eq!(d["active_hosts"].as_u64(), Some(want), "active hosts of {name}");
    }
    let named = json["methodology"]["named_by_signal"][0]["flows"].as_u64().unwrap();
    assert_eq!(named, flows.values().sum::<u64>(), "named flows: every flow of shadowtap_flows_total");
    assert!(!json["trend"]["weeks"].as_array().unwrap().is_empty());
    eprintln!("{rows} service rows of the report agree with the sensor's /metrics");

    // The same from the HTML side, and a department report.
    let html = String::from_utf8(report(&["--prometheus", &url, "--from", &yesterday, "--to", &today, "--k", "1"])).unwrap();
    assert!(html.contains("data-key=\"svc/finance/whatsapp/unsanctioned/flows\""));
    let one: Value = serde_json::from_slice(&report(&["--prometheus", &url, "--from", &today, "--to", &today, "--format", "json", "--k", "1", "--department", "finance"])).unwrap();
    assert_eq!(one["methodology"]["host_method"]["prometheus_window"]["window"], "24h");
    assert!(one["survey"]["services"].as_array().unwrap().iter().all(|r| r["department"] == "finance"));
    drop(prom);
    drop(sensor);
}

// ---------------------------------------------------------------------------------------------
// 1c. Damaged captures: a survey reads past them and names them; --strict refuses them.

#[test]
fn survey_reads_past_damaged_captures_and_names_them() {
    let tmp = TempDir::new();
    let dir = tmp.0.join("captures");
    std::fs::create_dir(&dir).unwrap();
    for good in ["curl-tls13.pcap", "dns-then-tls.pcap", "http-host.pcap"] {
        std::fs::copy(root().join("pcaps").join(good), dir.join(good)).unwrap();
    }
    // Random bytes named .pcap (a fixed generator: the same bytes every run).
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let junk: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(dir.join("random.pcap"), junk).unwrap();
    // A copy cut in the middle of its last record.
    let whole = std::fs::read(root().join("pcaps/curl-tls12.pcap")).unwrap();
    std::fs::write(dir.join("cut.pcap"), &whole[..whole.len() - 7]).unwrap();

    let survey = |format: &str, extra: &[&str]| {
        shadowtap()
            .current_dir(&tmp.0)
            .arg("survey")
            .arg("--config")
            .arg(root().join("rules/config.toml"))
            .arg(&dir)
            .args(["--format", format])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = survey("json", &["-o", "report.json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{}\n{stderr}", out.status);
    assert!(stderr.contains("random.pcap") && stderr.contains("skipped"), "{stderr}");
    assert!(stderr.contains("cut.pcap") && stderr.contains("truncated"), "{stderr}");
    let json: Value = serde_json::from_slice(&std::fs::read(tmp.0.join("report.json")).unwrap()).unwrap();
    let damaged = json["methodology"]["damaged_captures"].as_array().unwrap_or_else(|| panic!("{}", json["methodology"]));
    let named: Vec<(&str, &str)> = damaged.iter().map(|d| (d["file"].as_str().unwrap(), d["damage"].as_str().unwrap())).collect();
    assert_eq!(named, vec![("cut.pcap", "truncated"), ("random.pcap", "skipped")], "{damaged:?}");
    assert!(damaged.iter().all(|d| !d["reason"].as_str().unwrap().is_empty()));
    let text = json.to_string();
    assert!(!text.contains(&*tmp.0.display().to_string()), "no path of this machine in the report");
    assert!(json["methodology"]["flows"].as_u64().unwrap() > 0, "the good captures were read");
    // Every format names them.
    for (format, what) in [("md", "Damaged capture files"), ("html", "Damaged capture files"), ("csv", "damaged_capture,")] {
        let out = survey(format, &[]);
        assert!(out.status.success(), "{format}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains(what) && text.contains("random.pcap") && text.contains("cut.pcap"), "{format}: {text}");
    }

    // --strict: exit 1, naming them, and no report written.
    let out = survey("json", &["--strict", "-o", "strict.json"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("random.pcap") && stderr.contains("cut.pcap") && stderr.contains("--strict"), "{stderr}");
    assert!(!tmp.0.join("strict.json").exists());
}

/// Page 1 of a survey whose sensors covered half of the period, with a configured department
/// that had no traffic: Chromium shows the banner with the share (a checked number) before the
/// findings, and the department with 0 devices, "not observed".
#[test]
fn html_in_chromium_warns_of_partial_coverage_and_lists_departments_not_observed() {
    let _ = tool("chromium");
    let tmp = TempDir::new();
    let mut input: Value = serde_json::from_str(&std::fs::read_to_string(FIXTURE).unwrap()).unwrap();
    let days = 31 * 86_400;
    input["coverage"]["sensors"][1]["uptime_secs"] = Value::from(days / 2);
    let mut configured: Vec<String> = input["departments"].as_array().unwrap().iter().map(|d| d["department"].as_str().unwrap().to_string()).collect();
    configured.retain(|d| d != "_all" && d != "unmapped");
    configured.push("archives".into());
    input["departments_configured"] = Value::from(configured);
    let path = tmp.0.join("half.json");
    std::fs::write(&path, serde_json::to_vec(&input).unwrap()).unwrap();
    let html = tmp.0.join("half.html");
    report(&["--input", path.to_str().unwrap(), "--format", "html", "-o", html.to_str().unwrap()]);
    let json: Value = serde_json::from_slice(&report(&["--input", path.to_str().unwrap(), "--format", "json"])).unwrap();
    assert_eq!(json["coverage_share"], 0.5);
    let archives = json["departments"].as_array().unwrap().iter().find(|d| d["department"] == "archives").expect("listed");
    assert_eq!((archives["active_hosts"].as_u64(), archives["observed"].as_bool()), (Some(0), Some(false)));

    let dom = String::from_utf8(chromium(&tmp.0, "dump-dom", &["--dump-dom".into(), format!("file://{}", html.display())]).stdout).unwrap();
    let shown = shown_numbers(&dom);
    let bad: Vec<String> = shown
        .iter()
        .filter(|s| !json.pointer(&s.ptr).is_some_and(|v| agrees(&s.fmt, &s.text, v)))
        .map(|s| format!("{} ({}): shows {:?}", s.key, s.ptr, s.text))
        .collect();
    assert!(bad.is_empty(), "numbers differ from the JSON:\n{}", bad.join("\n"));
    assert!(shown.iter().any(|s| s.ptr == "/coverage_share" && s.text == "50.0%"), "the banner's share is a checked number");
    let findings = &dom[dom.find("id=\"findings\"").unwrap()..];
    let findings = &findings[..findings.find("</section>").unwrap()];
    let banner = findings.find("Partial coverage: the sensors covered").expect("the banner on page 1");
    assert!(findings[banner..].contains("every figure in this report is a lower bound"), "{findings}");
    assert!(banner < findings.find("<li>").unwrap(), "before the findings");
    assert!(findings.contains("<td>archives <small>(not observed)</small></td>"), "{findings}");
    let row = &findings[findings.find("<td>archives").unwrap()..];
    assert!(row[..row.find("</tr>").unwrap()].contains(">0</td>"), "0 devices: {row}");
}

// ---------------------------------------------------------------------------------------------
// Display names and the service table (issue 13).

#[test]
fn survey_shows_display_names_in_html_and_markdown_and_ids_in_json_and_csv() {
    let tmp = TempDir::new();
    let pcaps = root().join("pcaps");
    let md = String::from_utf8(survey_in(&tmp.0, &pcaps, &["--format", "md"])).unwrap();
    assert!(md.contains("| WhatsApp |"), "Markdown names the service: {md}");
    assert!(!md.contains("| whatsapp |"), "Markdown never shows the id as a cell: {md}");
    assert!(md.contains("## Services"), "{md}");
    let html = String::from_utf8(survey_in(&tmp.0, &pcaps, &["--format", "html"])).unwrap();
    assert!(html.contains("<td>WhatsApp</td>"), "HTML names the service");
    assert!(!html.contains("<td>whatsapp</td>"), "HTML never shows the id as a cell");
    assert!(html.contains("<td>Finance</td>"), "HTML names the configured department");

    let json: Value = serde_json::from_slice(&survey_in(&tmp.0, &pcaps, &["--format", "json"])).unwrap();
    let services = json["survey"]["services"].as_array().unwrap();
    assert!(services.iter().any(|s| s["service"] == "whatsapp" && s["department"] == "finance"), "JSON keeps ids");
    let wa = json["service_table"].as_array().unwrap().iter().find(|s| s["id"] == "whatsapp").expect("WhatsApp in the service table");
    assert_eq!(wa["name"], "WhatsApp");
    assert_eq!(wa["vendor"], "Meta Platforms, Inc. (WhatsApp LLC; WhatsApp Ireland Ltd. for EU users)");
    assert_eq!(wa["vendor_country"], "US");
    assert_eq!(wa["e2ee"], true);
    assert_eq!(wa["disappearing_messages"], true);

    let csv = String::from_utf8(survey_in(&tmp.0, &pcaps, &["--format", "csv"])).unwrap();
    assert!(csv.contains("\r\nsurvey_service,finance,messaging,whatsapp,"), "CSV keeps ids");
    assert!(csv.contains("\r\nservice,,messaging,whatsapp,,,,,vendor_country,US\r\n"), "{csv}");
    assert!(csv.contains("\r\nservice,,messaging,whatsapp,,,,,e2ee,true\r\n"), "{csv}");
    assert!(!csv.contains(",WhatsApp,") || csv.contains("\r\nservice,,messaging,whatsapp,,,,,name,WhatsApp\r\n"));
}

/// `report --input B --compare A`: shares now and then and the change in percentage points,
/// for the organisation and each department; a group withheld in either period stays withheld;
/// an earlier input that cannot be read is an error naming the file.
#[test]
fn compare_gives_the_change_in_points_and_keeps_withheld_groups_withheld() {
    let dir = std::env::temp_dir().join(format!("shadowtap-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let a = dir.join("a.json");
    survey_in(&dir, &root().join("pcaps"), &["--save-input", a.to_str().unwrap(), "--k", "1", "--format", "json"]);
    // B: the same survey with twice the active devices in finance and the organisation.
    let mut b: Value = serde_json::from_str(&std::fs::read_to_string(&a).unwrap()).unwrap();
    for d in b["departments"].as_array_mut().unwrap() {
        if d["department"] == "finance" || d["department"] == "_all" {
            let n = d["active_hosts"]["count"].as_u64().unwrap();
            d["active_hosts"]["count"] = (2 * n).into();
        }
    }
    let bp = dir.join("b.json");
    std::fs::write(&bp, serde_json::to_string(&b).unwrap()).unwrap();
    let v: Value = serde_json::from_slice(&report(&["--input", bp.to_str().unwrap(), "--compare", a.to_str().unwrap(), "--format", "json"])).unwrap();
    let c = &v["comparison"];
    assert_eq!(c["earlier_period"]["from"], v["period"]["from"]);
    let line = |d: &str, cat: &str| c["lines"].as_array().unwrap().iter().find(|l| l["department"] == d && l["category"] == cat).cloned().unwrap();
    let m = line("finance", "messaging");
    assert_eq!((m["now"].as_f64(), m["earlier"].as_f64(), m["delta_pp"].as_f64()), (Some(0.5), Some(1.0), Some(-50.0)), "{m}");
    let m = line("_all", "messaging");
    assert_eq!((m["now"].as_f64(), m["earlier"].as_f64(), m["delta_pp"].as_f64()), (Some(0.25), Some(0.5), Some(-25.0)), "{m}");
    // k = 2 for both: finance had 1 active device in A, so its earlier share is withheld,
    // and so is the change, whatever B shows.
    let v: Value = serde_json::from_slice(&report(&["--input", bp.to_str().unwrap(), "--compare", a.to_str().unwrap(), "--k", "2", "--format", "json"])).unwrap();
    let lines = v["comparison"]["lines"].as_array().unwrap();
    let f: Vec<&Value> = lines.iter().filter(|l| l["department"] == "finance").collect();
    assert!(!f.is_empty());
    assert!(f.iter().all(|l| l["earlier"].is_null() && l["delta_pp"].is_null()), "{f:?}");
    // CSV and Markdown carry it too.
    let csv = String::from_utf8(report(&["--input", bp.to_str().unwrap(), "--compare", a.to_str().unwrap(), "--format", "csv"])).unwrap();
    assert!(csv.contains("comparison,finance,messaging,,,unsanctioned,,,delta_pp,-50"), "{csv}");
    let md = String::from_utf8(report(&["--input", bp.to_str().unwrap(), "--compare", a.to_str().unwrap(), "--format", "md"])).unwrap();
    assert!(md.contains("## Compared with") && md.contains("-50.0 pp"), "{md}");
    // An earlier input that cannot be read names the file.
    let out = shadowtap().args(["report", "--input", bp.to_str().unwrap(), "--compare", "no-such-earlier.json"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-earlier.json"));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The risk rating: every service of the table is rated as the weights of `rules/risk.toml`
/// say (score = the capped sum of the terms, level by the thresholds), the weights are cited
/// under Methodology in every format, and a report from the store, which does not record the
/// configuration, is described by `--config` the same way a survey is.
#[test]
fn services_are_rated_by_the_open_weights_and_a_store_report_is_described_by_its_config() {
    let tmp = TempDir::new();
    let pcaps = root().join("pcaps");
    let store = tmp.0.join("rollup.db");
    let json: Value = serde_json::from_slice(&survey_in(&tmp.0, &pcaps, &["--format", "json", "--store", store.to_str().unwrap()])).unwrap();
    let weights = &json["methodology"]["risk_weights"];
    let (medium, high) = (weights["levels"]["medium"].as_i64().unwrap(), weights["levels"]["high"].as_i64().unwrap());
    let table = json["service_table"].as_array().unwrap();
    assert!(table.len() >= 3, "{table:?}");
    for s in table {
        let risk = &s["risk"];
        let terms = risk["terms"].as_array().unwrap();
        let category = format!("category:{}", s["category"].as_str().unwrap());
        assert_eq!(terms[0]["factor"], category.as_str(), "the category comes first: {s}");
        assert_eq!(terms[0]["points"], weights["category"][s["category"].as_str().unwrap()], "{s}");
        let has = |f: &str| terms.iter().any(|t| t["factor"] == f);
        assert_eq!(has("disappearing_messages"), s["disappearing_messages"] == true, "{s}");
        assert_eq!(has("not_e2ee"), s["e2ee"] == false, "{s}");
        let sum: i64 = terms.iter().map(|t| t["points"].as_i64().unwrap()).sum();
        let score = risk["score"].as_i64().unwrap();
        assert_eq!(score, sum.clamp(0, 100), "{s}");
        let level = if score >= high { "high" } else if score >= medium { "medium" } else { "low" };
        assert_eq!(risk["level"], level, "{s}");
    }
    let wa = table.iter().find(|s| s["id"] == "whatsapp").expect("WhatsApp rated");
    // Messaging 30, disappearing messages 25, a US vendor 20; end-to-end encrypted adds nothing.
    assert_eq!((wa["risk"]["score"].as_i64(), wa["risk"]["level"].as_str()), (Some(75), Some("high")));

    let md = String::from_utf8(survey_in(&tmp.0, &pcaps, &["--format", "md"])).unwrap();
    assert!(md.contains("| Risk |") && md.contains(" 75 high |"), "{md}");
    assert!(md.contains("### Risk rating\n\n- A service's risk is the sum of its category's points"), "{md}");
    assert!(md.contains("disappearing messages +25 (records are lost)"), "{md}");
    let csv = String::from_utf8(survey_in(&tmp.0, &pcaps, &["--format", "csv"])).unwrap();
    assert!(csv.contains("\r\nservice,,messaging,whatsapp,,,,,risk_score,75\r\n"), "{csv}");
    assert!(csv.contains("\r\nrisk_weight,,messaging,,,,,,points,30\r\n"), "{csv}");

    // The store records neither names nor the catalog: without a configuration the report says
    // so; with one it is described as the survey was.
    let st = store.to_str().unwrap();
    let out = shadowtap().args(["report", "--store", st, "--format", "json", "--config", "/nonexistent/none.toml"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "a configuration that cannot be read is an error: {}", String::from_utf8_lossy(&out.stderr));
    let config = root().join("rules/config.toml");
    let described: Value = serde_json::from_slice(&report(&["--store", st, "--format", "json", "--k", "1", "--config", config.to_str().unwrap()])).unwrap();
    assert_eq!(described["service_table"], json["service_table"], "the store's report describes the services as the survey did");
    assert_eq!(described["methodology"]["risk_weights"], json["methodology"]["risk_weights"]);
    let html = String::from_utf8(report(&["--store", st, "--format", "html", "--k", "1", "--config", config.to_str().unwrap()])).unwrap();
    assert!(html.contains("<td>Finance</td>") && html.contains("<td>WhatsApp</td>"), "display names from the configuration");
    assert!(html.contains("<h3>Risk rating</h3>"));
}

// ---------------------------------------------------------------------------------------------
// The screenshot in docs/report.md is of the current product.

/// `docs/screenshot.sh` renders the October fixture described by its configuration and records
/// the HTML's SHA-256 beside the PNG: the same command here must give the same HTML (else the
/// screenshot shows output the product no longer writes: run docs/screenshot.sh), and that HTML,
/// rendered by Chromium, shows page 1 with names, departments not observed and rated services.
#[test]
fn the_report_screenshot_is_of_the_current_product() {
    use sha2::{Digest, Sha256};
    let _ = tool("chromium");
    let tmp = TempDir::new();
    let html = tmp.0.join("report.html");
    let config = root().join("tests/fixtures/config.toml");
    report(&["--input", FIXTURE, "--config", config.to_str().unwrap(), "--format", "html", "-o", html.to_str().unwrap()]);
    let digest = format!("{:x}", Sha256::digest(std::fs::read(&html).unwrap()));
    let recorded = std::fs::read_to_string(root().join("docs/report.png.sha256")).unwrap();
    assert_eq!(recorded.trim(), digest, "docs/report.png shows an earlier product's report: run docs/screenshot.sh");
    let png = std::fs::read(root().join("docs/report.png")).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let width = u32::from_be_bytes(png[16..20].try_into().unwrap());
    assert_eq!(width, 1200, "the script's window width");

    let dom = String::from_utf8(chromium(&tmp.0, "dump-dom", &["--dump-dom".into(), format!("file://{}", html.display())]).stdout).unwrap();
    let findings = &dom[dom.find("id=\"findings\"").expect("page 1")..];
    let findings = &findings[..findings.find("</section>").unwrap()];
    assert!(findings.contains("<td>Finance</td>") && findings.contains("<td>Human Resources</td>"), "display names on page 1: {findings}");
    assert!(findings.contains("National Archives <small>(not observed)</small>"), "{findings}");
    let services = &dom[dom.find("id=\"services\"").expect("the service table")..];
    assert!(services.contains("<td>WhatsApp</td>") && services.contains("75 high</td>"), "rated services");
    assert!(dom.contains("<h3>Risk rating</h3>"));
}
