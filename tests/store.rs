//! The rollup store over `pcaps/`, against an independent count from `shadowtap inspect`.
//!
//! 1. `runtime::survey::input` over `pcaps/` with `rules/config.toml` gives, per department ×
//!    service × status, department × service × channel × status and department × category ×
//!    status (and for `_all`): flows, bytes each way and distinct client addresses; active hosts
//!    and unnamed flows per department; flows by signal, ECH flows and packets — equal to what
//!    the JSON lines of `shadowtap inspect --config rules/config.toml pcaps` say (the sketches
//!    are exact at these sizes). Flows inspect marks `answered: false` count apart, never as use.
//! 4. Spoofed SYNs into Telegram's range (`common::capture::spoofed_telegram`): no use, no
//!    active host, five flows never answered; with one real exchange beside them, only it counts.
//! 2. `shadowtap run --pcap pcaps --state-dir DIR`, stopped by SIGTERM, leaves `DIR/rollup.sqlite`
//!    whose load of the captures' period gives the same numbers; a second run into the same store
//!    doubles flows and bytes and leaves distinct hosts unchanged (the same key year).
//!    `shadowtap store backup` copies it.
//! 3. The store's files hold no client or server address and no server name of the captures.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use common::stack::{free_ports, http_get, Proc, TempDir, EXIT_TIMEOUT, READY_TIMEOUT};
use common::{inspect, root, s};
use serde_json::Value;
use shadowtap::report::input::{DepartmentRow, HostMethod, ReportInput, UsageRow, ALL_DEPARTMENTS};
use shadowtap::store::Store;

/// Label of named destinations outside the catalog (as the aggregation and the store use it).
const UNCATALOGUED: &str = "_uncatalogued";

/// The address of an `ip:port` / `[ip]:port`.
fn host_of(addr: &str) -> String {
    let h = addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr);
    h.trim_start_matches('[').trim_end_matches(']').to_string()
}

/// Flows, bytes and distinct clients of a row.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Expected {
    flows: u64,
    bytes_up: u64,
    bytes_down: u64,
    hosts: BTreeSet<String>,
}

impl Expected {
    fn add(&mut self, r: &Value) {
        self.flows += 1;
        self.bytes_up += r["bytes_up"].as_u64().unwrap_or_else(|| panic!("bytes_up in {r}"));
        self.bytes_down += r["bytes_down"].as_u64().unwrap_or_else(|| panic!("bytes_down in {r}"));
        self.hosts.insert(host_of(s(r, "src").unwrap_or_else(|| panic!("src in {r}"))));
    }
}

/// What the store must say, computed from inspect's JSON lines only.
#[derive(Debug, Default)]
struct Expectation {
    /// [department, service, status] (with `_all`).
    services: BTreeMap<Vec<String>, Expected>,
    /// [department, service, channel, status] (with `_all`).
    channels: BTreeMap<Vec<String>, Expected>,
    /// [department, category, status] (with `_all`).
    categories: BTreeMap<Vec<String>, Expected>,
    /// Active hosts per department (with `_all`): every flow's client.
    active: BTreeMap<String, BTreeSet<String>>,
    /// Unnamed flows per [department, reason] (with `_all`).
    unnamed: BTreeMap<Vec<String>, u64>,
    /// Flows never answered per [department, service label] (with `_all`): not use.
    unanswered: BTreeMap<Vec<String>, u64>,
    /// Flows by signal: the catalog match's, else the naming signal.
    named: BTreeMap<String, u64>,
    ech_flows: u64,
    /// Days of the flows' starts.
    days: BTreeSet<String>,
    /// Server names seen (for the privacy check).
    names: BTreeSet<String>,
    /// Client and server addresses seen.
    addresses: BTreeSet<String>,
}

fn expectation(records: &[Value]) -> Expectation {
    let mut e = Expectation::default();
    for r in records {
        let dept = s(r, "department").unwrap_or_else(|| panic!("department in {r}")).to_string();
        let client = host_of(s(r, "src").unwrap());
        e.addresses.insert(client.clone());
        e.addresses.insert(host_of(s(r, "dst").unwrap()));
        e.days.insert(s(r, "ts_start").unwrap()[..10].to_string());
        let answered = r["answered"].as_bool().unwrap_or_else(|| panic!("answered in {r}"));
        if answered {
            for d in [dept.as_str(), ALL_DEPARTMENTS] {
                e.active.entry(d.to_string()).or_default().insert(client.clone());
            }
        }
        for field in ["sni", "http_host", "proxy_target"] {
            if let Some(n) = s(r, field) {
                e.names.insert(n.to_string());
            }
        }
        for field in ["dns_queries", "names_from_dns"] {
            for n in r[field].as_array().into_iter().flatten().filter_map(Value::as_str) {
                e.names.insert(n.trim_end_matches('.').to_string());
            }
        }
        if !answered {
            let label = match (s(r, "service"), s(r, "status")) {
                (Some(service), _) => service,
                (None, Some("unknown")) => "_unnamed",
                (None, _) => UNCATALOGUED,
            };
            for d in [dept.as_str(), ALL_DEPARTMENTS] {
                *e.unanswered.entry(vec![d.to_string(), label.to_string()]).or_default() += 1;
            }
            continue;
        }
        if r["ech"].as_bool() == Some(true) && r["ech_grease"].as_bool() != Some(true) {
            e.ech_flows += 1;
        }
        let signal = if s(r, "service").is_some() { s(r, "service_signal") } else { s(r, "signal") };
        if let Some(sig) = signal {
            *e.named.entry(sig.to_string()).or_default() += 1;
        }
        let status = s(r, "status");
        if s(r, "service").is_none() && status == Some("unknown") {
            let reason = s(r, "unnamed").unwrap_or("unknown").to_string();
            for d in [dept.as_str(), ALL_DEPARTMENTS] {
                *e.unnamed.entry(vec![d.to_string(), reason.clone()]).or_default() += 1;
            }
            continue;
        }
        let service = s(r, "service").unwrap_or(UNCATALOGUED).to_string();
        let channel = s(r, "channel").unwrap_or(UNCATALOGUED).to_string();
        let category = s(r, "category").unwrap_or(UNCATALOGUED).to_string();
        let status = status.unwrap_or(UNCATALOGUED).to_string();
        for d in [dept.as_str(), ALL_DEPARTMENTS] {
            e.services.entry(vec![d.into(), service.clone(), status.clone()]).or_default().add(r);
            e.channels.entry(vec![d.into(), service.clone(), channel.clone(), status.clone()]).or_default().add(r);
            e.categories.entry(vec![d.into(), category.clone(), status.clone()]).or_default().add(r);
        }
    }
    e
}

/// Rows of the input as `key → (flows, up, down, hosts)`; every host count must be exact.
fn got(rows: &[UsageRow], key: impl Fn(&UsageRow) -> Vec<String>) -> BTreeMap<Vec<String>, (u64, u64, u64, u64)> {
    let mut out = BTreeMap::new();
    for r in rows {
        assert!(r.hosts.exact, "sketches are exact at these sizes: {r:?}");
        let prev = out.insert(key(r), (r.volume.flows, r.volume.bytes_up, r.volume.bytes_down, r.hosts.count));
        assert!(prev.is_none(), "duplicate row {r:?}");
    }
    out
}

fn want(rows: &BTreeMap<Vec<String>, Expected>, times: u64) -> BTreeMap<Vec<String>, (u64, u64, u64, u64)> {
    rows.iter().map(|(k, e)| (k.clone(), (times * e.flows, times * e.bytes_up, times * e.bytes_down, e.hosts.len() as u64))).collect()
}

/// Active hosts per department (those with any), unnamed flows per [department, reason],
/// unanswered flows per [department, service].
type DepartmentFacts = (BTreeMap<String, u64>, BTreeMap<Vec<String>, u64>, BTreeMap<Vec<String>, u64>);

fn departments(rows: &[DepartmentRow]) -> DepartmentFacts {
    let mut active = BTreeMap::new();
    let mut unnamed = BTreeMap::new();
    let mut unanswered = BTreeMap::new();
    for d in rows {
        assert!(d.active_hosts.exact);
        if d.active_hosts.count > 0 {
            active.insert(d.department.clone(), d.active_hosts.count);
        }
        for (reason, n) in &d.unnamed_flows {
            unnamed.insert(vec![d.department.clone(), reason.clone()], *n);
        }
        for (service, n) in &d.unanswered_flows {
            unanswered.insert(vec![d.department.clone(), service.clone()], *n);
        }
    }
    (active, unnamed, unanswered)
}

/// Asserts that `input` holds `times` × the expected flows and bytes, and the expected hosts.
fn assert_matches(input: &ReportInput, e: &Expectation, times: u64) {
    let services = got(&input.services, |r| vec![r.department.clone(), r.service.clone(), r.status.clone()]);
    assert_eq!(services, want(&e.services, times), "department × service × status");
    let channels = got(&input.channels, |r| vec![r.department.clone(), r.service.clone(), r.channel.clone(), r.status.clone()]);
    assert_eq!(channels, want(&e.channels, times), "department × service × channel × status");
    let categories = got(&input.categories, |r| vec![r.department.clone(), r.category.clone(), r.status.clone()]);
    assert_eq!(categories, want(&e.categories, times), "department × category × status");
    assert!(input.categories.iter().all(|r| r.service.is_empty() && r.channel.is_empty()));
    let (active, unnamed, unanswered) = departments(&input.departments);
    let want_active: BTreeMap<String, u64> = e.active.iter().map(|(d, h)| (d.clone(), h.len() as u64)).collect();
    assert_eq!(active, want_active, "active hosts per department");
    let want_unnamed: BTreeMap<Vec<String>, u64> = e.unnamed.iter().map(|(k, n)| (k.clone(), times * n)).collect();
    assert_eq!(unnamed, want_unnamed, "unnamed flows per department and reason");
    let want_unanswered: BTreeMap<Vec<String>, u64> = e.unanswered.iter().map(|(k, n)| (k.clone(), times * n)).collect();
    assert_eq!(unanswered, want_unanswered, "unanswered flows per department and service");
    let named: BTreeMap<String, u64> = e.named.iter().map(|(k, n)| (k.clone(), times * n)).collect();
    assert_eq!(input.coverage.named_by_signal, named, "flows by signal");
    assert_eq!(input.coverage.ech_flows, times * e.ech_flows, "ECH flows");
    // A key is drawn by the first flow that is use: none without.
    let key_epochs = u32::from(!e.active.is_empty());
    assert_eq!(input.host_method, HostMethod::Sketch { relative_error: 1.04 / 64.0, exact_below: 129, key_epochs });
    // One week per Monday of the period; with every flow inside it, its rows are the period's.
    assert_eq!(input.weeks.len(), 1, "the captures span one day");
    let week = &input.weeks[0];
    assert_eq!(got(&week.categories, |r| vec![r.department.clone(), r.category.clone(), r.status.clone()]), categories);
    assert_eq!(departments(&week.departments).0, active);
    // The bundled configuration's exemption and k.
    assert_eq!(input.exemptions.len(), 1, "{:?}", input.exemptions);
    let ex = &input.exemptions[0];
    assert_eq!((ex.department.as_str(), ex.service.as_str(), ex.reference.as_deref()), ("legal", "google-drive", Some("EXC-2026-014")));
    assert_eq!((ex.start.map(|d| d.to_string()), ex.expires.to_string()), (Some("2026-01-01".into()), "2030-12-31".into()));
    assert_eq!(input.coverage.min_group_size, 1);
    assert_eq!((input.coverage.catalog_digests.len(), input.coverage.config_digests.len()), (1, 1));
}

fn inspect_pcaps() -> (Vec<Value>, u64) {
    let config = root().join("rules/config.toml");
    let run = inspect(&[&root().join("pcaps")], &["--config", &config.display().to_string(), "--stats"]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let frames = run
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("frames ").and_then(|n| n.parse().ok()))
        .unwrap_or_else(|| panic!("no frames line in --stats: {}", run.stderr));
    (run.records, frames)
}

fn period(e: &Expectation) -> (time::Date, time::Date) {
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    let day = |s: &String| time::Date::parse(s, fmt).unwrap();
    (day(e.days.first().unwrap()), day(e.days.last().unwrap()))
}

#[test]
fn survey_of_pcaps_equals_a_count_from_inspect() {
    let (records, frames) = inspect_pcaps();
    let e = expectation(&records);
    assert!(e.services.len() >= 8 && e.unnamed.len() >= 2 && e.active.len() >= 3, "pcaps/ exercises every kind of row: {e:?}");
    let input = shadowtap::runtime::survey::input(&root().join("rules/config.toml"), &[root().join("pcaps")], None, None, None).unwrap();
    let (from, to) = period(&e);
    assert_eq!((input.from, input.to), (from, to), "the default period is the captures'");
    assert!(input.source.starts_with("survey of "), "{}", input.source);
    assert_matches(&input, &e, 1);
    assert_eq!(input.coverage.packets, frames, "packets: inspect --stats frames");
    assert_eq!(input.coverage.sensors.len(), 1);
    assert_eq!(input.coverage.sensors[0].name, shadowtap::runtime::survey::SURVEY_SENSOR);

    // Into a store file when asked: the same facts, and the file stays.
    let tmp = TempDir::new();
    let file = tmp.0.join("survey.sqlite");
    let kept = shadowtap::runtime::survey::input(&root().join("rules/config.toml"), &[root().join("pcaps")], Some(from), Some(to), Some(&file)).unwrap();
    assert_eq!((kept.services.clone(), kept.departments.clone()), (input.services.clone(), input.departments.clone()));
    assert_eq!(Store::open_existing(&file).unwrap().load(from, to, None).unwrap().services, input.services);
}

/// Runs `shadowtap run --pcap pcaps --state-dir DIR` until ready, stops it with SIGTERM and
/// checks a clean exit.
fn run_daemon(state: &Path, log: PathBuf) {
    let mut sensor = start_daemon_until_flushed(state, log);
    let status = sensor.terminate(EXIT_TIMEOUT).expect("exit after SIGTERM");
    assert!(status.success(), "exit status {status}");
}

/// Starts `shadowtap run --pcap pcaps --state-dir DIR` and waits until it has replayed the
/// captures and flushed its store once.
fn start_daemon_until_flushed(state: &Path, log: PathBuf) -> Proc {
    let [port] = free_ports::<1>();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shadowtap"));
    cmd.current_dir(root())
        .args(["run", "--config", "rules/config.toml", "--pcap", "pcaps", "--sensor-name", "test-sensor"])
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--state-dir")
        .arg(state);
    let mut sensor = Proc::spawn("shadowtap run", cmd, log);
    let started = Instant::now();
    // Ready, and the store flushed (the packet thread flushes once the replay is over).
    loop {
        sensor.assert_running("replaying pcaps/");
        let flushed = http_get(port, "/metrics").ok().is_some_and(|r| {
            r.body.lines().any(|l| l.starts_with("shadowtap_store_flushes_total{result=\"success\"}") && !l.ends_with(" 0"))
        });
        if flushed && http_get(port, "/readyz").is_ok_and(|r| r.status == 200) {
            break;
        }
        assert!(started.elapsed() < READY_TIMEOUT, "no store flush within {READY_TIMEOUT:?}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let metrics = http_get(port, "/metrics").unwrap().body;
    assert!(metrics.contains("shadowtap_store_flushes_total{result=\"failure\"} 0"), "{metrics}");
    assert!(metrics.contains("shadowtap_store_last_flush_timestamp_seconds "), "{metrics}");
    sensor
}

#[test]
fn a_store_survives_a_killed_sensor() {
    let (records, _) = inspect_pcaps();
    let e = expectation(&records);
    let (from, to) = period(&e);
    let tmp = TempDir::new();
    let state = tmp.0.join("state");
    let mut sensor = start_daemon_until_flushed(&state, tmp.0.join("run.log"));
    // SIGKILL: no clean stop, no final flush; what was committed must be whole.
    sensor.child.kill().unwrap();
    let status = sensor.child.wait().unwrap();
    assert!(!status.success(), "killed: {status}");
    let file = state.join("rollup.sqlite");
    let store = Store::open_existing(&file).expect("a killed sensor leaves a readable store");
    let conn = rusqlite::Connection::open(&file).unwrap();
    let ok: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(ok, "ok");
    assert_matches(&store.load(from, to, None).unwrap(), &e, 1);
}

#[test]
fn run_writes_a_store_that_agrees_with_inspect_and_hides_hosts() {
    let (records, frames) = inspect_pcaps();
    let e = expectation(&records);
    let (from, to) = period(&e);
    let tmp = TempDir::new();
    let state = tmp.0.join("state");
    let file = state.join("rollup.sqlite");

    run_daemon(&state, tmp.0.join("run1.log"));
    assert!(file.is_file(), "the store is DIR/rollup.sqlite");
    let input = Store::open_existing(&file).unwrap().load(from, to, None).unwrap();
    assert_eq!(input.source, "rollup store");
    assert_matches(&input, &e, 1);
    assert_eq!(input.coverage.packets, frames);
    assert_eq!(input.coverage.sensors.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["test-sensor"]);

    // The same captures again, into the same store: counts add, hosts stay distinct.
    run_daemon(&state, tmp.0.join("run2.log"));
    let again = Store::open_existing(&file).unwrap().load(from, to, None).unwrap();
    assert_matches(&again, &e, 2);
    assert_eq!(again.coverage.packets, 2 * frames);

    // `shadowtap store backup`: a copy that loads the same, never over an existing file.
    let copy = tmp.0.join("copy.sqlite");
    let backup = |to: &Path| {
        Command::new(env!("CARGO_BIN_EXE_shadowtap")).args(["store", "backup", "--store"]).arg(&file).arg("--to").arg(to).output().unwrap()
    };
    let out = backup(&copy);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(Store::open_existing(&copy).unwrap().load(from, to, None).unwrap().services, again.services);
    let out = backup(&copy);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("already exists"));

    // Privacy: no address and no server name in any file of the store.
    let mut bytes = Vec::new();
    let mut texts = String::new();
    for f in std::fs::read_dir(&state).unwrap() {
        let f = f.unwrap().path();
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("rollup.sqlite") && !name.ends_with(".keys") {
            bytes.extend(std::fs::read(&f).unwrap());
        }
    }
    // Every text value of every table (short needles such as `::1` are checked there, where
    // random sketch bytes cannot look like them).
    texts.push_str(&text_values(&file));
    assert!(texts.contains("whatsapp") && texts.contains("finance"), "the dump reads the tables");
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    assert!(!e.addresses.is_empty() && !e.names.is_empty());
    for a in &e.addresses {
        assert!(!texts.contains(a.as_str()), "address {a} stored as text");
        if a.len() >= 7 {
            assert!(!contains(a.as_bytes()), "address {a} in the store's bytes");
        }
        match a.parse::<std::net::IpAddr>().unwrap() {
            std::net::IpAddr::V4(v4) => assert!(!contains(&v4.octets()), "address {a} in binary form"),
            // ::1 in binary is fifteen zero bytes and a one: every SQLite file has that. Other
            // IPv6 addresses are checked in binary.
            std::net::IpAddr::V6(v6) if v6.octets().iter().filter(|&&b| b == 0).count() < 8 => {
                assert!(!contains(&v6.octets()), "address {a} in binary form")
            }
            std::net::IpAddr::V6(_) => {}
        }
    }
    for n in &e.names {
        assert!(!texts.contains(n.as_str()) && !contains(n.as_bytes()), "server name {n} in the store");
    }
}

/// Every TEXT value of every table of the store, one per line.
fn text_values(file: &Path) -> String {
    let conn = rusqlite::Connection::open(file).unwrap();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(tables.len() >= 9, "{tables:?}");
    let mut out = String::new();
    for t in tables {
        let mut st = conn.prepare(&format!("SELECT * FROM {t}")).unwrap();
        let n = st.column_count();
        let mut rows = st.query([]).unwrap();
        while let Some(r) = rows.next().unwrap() {
            for i in 0..n {
                if let rusqlite::types::ValueRef::Text(t) = r.get_ref(i).unwrap() {
                    out.push_str(&String::from_utf8_lossy(t));
                    out.push('\n');
                }
            }
        }
    }
    out
}

/// `shadowtap` with these arguments in `dir`; panics with its stderr unless it exits 0.
fn shadowtap_in(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_shadowtap")).current_dir(dir).args(args).output().unwrap();
    assert!(out.status.success(), "shadowtap {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// The survey rows of a JSON report, `[section, department, category, service, channel,
/// status] → (hosts, share, flows, bytes up, bytes down)`.
fn survey_rows(report: &Value) -> BTreeMap<Vec<String>, (u64, f64, u64, u64, u64)> {
    let mut out = BTreeMap::new();
    for section in ["categories", "services", "channels"] {
        for r in report["survey"][section].as_array().unwrap_or_else(|| panic!("survey.{section} in {report}")) {
            let key = ["department", "category", "service", "channel", "status"].iter().map(|k| s(r, k).unwrap_or("").to_string());
            let key: Vec<String> = std::iter::once(section.to_string()).chain(key).collect();
            let n = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{k} in {r}"));
            let v = (n("hosts"), r["share"].as_f64().unwrap(), n("flows"), n("bytes_up"), n("bytes_down"));
            assert!(out.insert(key, v).is_none(), "duplicate survey row {r}");
        }
    }
    out
}

#[test]
fn survey_command_reports_the_shares_counted_from_inspect() {
    let (records, _) = inspect_pcaps();
    let e = expectation(&records);
    // Expected survey rows: hosts over the department's active hosts, rounded to 4 decimals
    // as the report documents; computed from inspect's records only.
    let share = |d: &str, hosts: usize| ((hosts as f64 / e.active[d].len() as f64) * 10_000.0).round() / 10_000.0;
    let mut want = BTreeMap::new();
    let row = |x: &Expected| (x.hosts.len() as u64, x.flows, x.bytes_up, x.bytes_down);
    for (k, x) in &e.categories {
        let (h, f, u, d) = row(x);
        want.insert(vec!["categories".into(), k[0].clone(), k[1].clone(), String::new(), String::new(), k[2].clone()], (h, share(&k[0], x.hosts.len()), f, u, d));
    }
    let category_of: BTreeMap<&str, &str> = records.iter().filter_map(|r| Some((s(r, "service")?, s(r, "category")?))).collect();
    let cat = |service: &str| category_of.get(service).copied().unwrap_or(UNCATALOGUED).to_string();
    for (k, x) in &e.services {
        let (h, f, u, d) = row(x);
        want.insert(vec!["services".into(), k[0].clone(), cat(&k[1]), k[1].clone(), String::new(), k[2].clone()], (h, share(&k[0], x.hosts.len()), f, u, d));
    }
    for (k, x) in &e.channels {
        let (h, f, u, d) = row(x);
        want.insert(vec!["channels".into(), k[0].clone(), cat(&k[1]), k[1].clone(), k[2].clone(), k[3].clone()], (h, share(&k[0], x.hosts.len()), f, u, d));
    }

    assert!(want.len() >= 20, "pcaps/ gives many survey rows: {want:?}");
    let tmp = TempDir::new();
    let work = tmp.0.join("work");
    std::fs::create_dir(&work).unwrap();
    let config = root().join("rules/config.toml").display().to_string();
    let pcaps = root().join("pcaps").display().to_string();
    let json = shadowtap_in(&work, &["survey", "--config", &config, &pcaps, "--format", "json", "--save-input", "facts.json"]);
    let report: Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(report["k"], 1, "the configuration's k (1) applies by default: {}", report["k"]);
    assert_eq!(survey_rows(&report), want, "survey rows = the count from inspect");
    // The auditor's path leaves nothing behind but what was asked for.
    let left: BTreeSet<String> = std::fs::read_dir(&work).unwrap().map(|f| f.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(left, BTreeSet::from(["facts.json".to_string()]), "no store left behind");

    // Repeatable: the saved facts render the same report, byte for byte, next year.
    let again = shadowtap_in(&work, &["report", "--input", "facts.json", "--format", "json", "--k", "1"]);
    assert_eq!(again, json, "report --input of the saved facts = the survey");
    let csv = |dir: &Path| shadowtap_in(dir, &["report", "--input", "facts.json", "--format", "csv", "--k", "1"]);
    assert_eq!(csv(&work), csv(&work), "CSV is byte-identical for the same input");

    // A larger k withholds every row below it, and only those.
    let k2: Value = serde_json::from_slice(&shadowtap_in(&work, &["survey", "--config", &config, &pcaps, "--format", "json", "--k", "2"])).unwrap();
    let shown = survey_rows(&k2);
    assert!(shown.values().all(|v| v.0 >= 2), "no row of fewer than k = 2 hosts: {shown:?}");
    let want_k2: BTreeSet<_> = want.iter().filter(|(_, v)| v.0 >= 2).map(|(k, _)| k.clone()).collect();
    assert!(shown.keys().all(|k| want_k2.contains(k)), "k = 2 shows only rows of at least 2 hosts");

    // Kept in a store when asked: `report --store` over the captures' days gives the same survey.
    let store = tmp.0.join("kept.sqlite").display().to_string();
    shadowtap_in(&work, &["survey", "--config", &config, &pcaps, "--format", "json", "--store", &store]);
    let (from, to) = period(&e);
    let (from, to) = (from.to_string(), to.to_string());
    let stored: Value = serde_json::from_slice(&shadowtap_in(
        &work,
        &["report", "--store", &store, "--from", &from, "--to", &to, "--format", "json", "--k", "1"],
    ))
    .unwrap();
    assert_eq!(survey_rows(&stored), want, "report --store = the survey = the count from inspect");
}

// ---------------------------------------------------------------------------------------------
// 4. Use needs an exchange.

#[test]
fn spoofed_syns_into_a_services_range_are_not_use() {
    use common::capture::spoofed_telegram;
    use shadowtap::report::model::{Report, ReportOptions};
    let tmp = TempDir::new();
    let config = root().join("rules/config.toml");

    // (a) Five SYNs from five Finance addresses into Telegram's range, nobody answering.
    let file = tmp.0.join("spoofed.pcap");
    spoofed_telegram(false).write(&file);
    let run = inspect(&[&file], &["--config", &config.display().to_string()]);
    assert_eq!(run.records.len(), 5, "{}", run.stderr);
    for r in &run.records {
        let facts = (s(r, "department"), s(r, "service"), s(r, "category"), s(r, "status"), r["answered"].as_bool());
        assert_eq!(facts, (Some("finance"), Some("telegram"), Some("messaging"), Some("unsanctioned"), Some(false)), "inspect keeps the destination's facts: {r}");
    }
    let input = shadowtap::runtime::survey::input(&config, std::slice::from_ref(&file), None, None, None).unwrap();
    assert!(input.services.is_empty() && input.channels.is_empty() && input.categories.is_empty(), "no use: {:?}", input.services);
    let (active, unnamed, unanswered) = departments(&input.departments);
    assert!(active.is_empty(), "no active host: {:?}", input.departments);
    assert!(unnamed.is_empty() && input.coverage.named_by_signal.is_empty(), "not among the flows either");
    let five = |n: u64| BTreeMap::from([(vec!["_all".to_string(), "telegram".to_string()], n), (vec!["finance".to_string(), "telegram".to_string()], n)]);
    assert_eq!(unanswered, five(5), "counted apart");
    assert_matches(&input, &expectation(&run.records), 1);
    let report = Report::build(&input, &ReportOptions::for_input(&input));
    assert!(report.headlines.is_empty(), "no finding: {:?}", report.headlines);
    // Only configured departments without traffic are listed: 0 devices, not observed.
    assert!(report.departments.iter().all(|d| !d.observed && d.active_hosts == 0 && d.department != "finance"), "{:?}", report.departments);
    assert!(report.survey.services.is_empty() && report.top_unsanctioned.is_empty());
    let m = &report.methodology;
    assert_eq!((m.flows, m.unanswered_flows, m.mostly_unanswered, m.withheld.departments), (0, 5, true, 0));

    // (b) The same plus one real exchange: only that one counts.
    let file = tmp.0.join("spoofed-and-real.pcap");
    spoofed_telegram(true).write(&file);
    let run = inspect(&[&file], &["--config", &config.display().to_string()]);
    assert_eq!(run.records.iter().filter(|r| r["answered"] == true && s(r, "service") == Some("telegram")).count(), 1, "{}", run.stdout);
    let input = shadowtap::runtime::survey::input(&config, std::slice::from_ref(&file), None, None, None).unwrap();
    let services = got(&input.services, |r| vec![r.department.clone(), r.service.clone(), r.status.clone()]);
    let real = services.get(&vec!["finance".to_string(), "telegram".to_string(), "unsanctioned".to_string()]).copied();
    assert_eq!(real.map(|(flows, _, _, hosts)| (flows, hosts)), Some((1, 1)), "{services:?}");
    let (active, _, unanswered) = departments(&input.departments);
    assert_eq!(active, BTreeMap::from([("_all".to_string(), 1), ("finance".to_string(), 1)]));
    assert_eq!(unanswered, five(5));
    assert_matches(&input, &expectation(&run.records), 1);
    let report = Report::build(&input, &ReportOptions::for_input(&input));
    let line = report.survey.services.iter().find(|l| l.department == "finance" && l.service == "telegram").unwrap();
    assert_eq!((line.hosts, line.flows, report.methodology.unanswered_flows), (1, 1, 5));
}

// 5. Survey coverage: the minutes that hold packets, not the span from first to last.

#[test]
fn survey_coverage_counts_the_minutes_that_hold_packets() {
    use common::capture::{at, Pcap, MONDAY_2026_03_02};
    use shadowtap::report::model::{Report, ReportOptions};
    let tmp = TempDir::new();
    let config = root().join("rules/config.toml");
    let (client, server) = (at("10.20.0.9:41000"), at("149.154.167.50:443"));
    let ten = MONDAY_2026_03_02 * 1_000_000 + 36_000_000_000; // Monday 10:00:00 UTC
    let hour = 3_600_000_000i64;
    // One capture with two exchanges 20 hours apart (a span of 20 hours), one 30 hours later.
    let a = tmp.0.join("a.pcap");
    Pcap::new().connection(ten + 1_000_000, client, server, b"one", b"two").connection(ten + 20 * hour + 1_000_000, client, server, b"one", b"two").write(&a);
    let b = tmp.0.join("b.pcap");
    Pcap::new().connection(ten + 30 * hour + 1_000_000, client, server, b"one", b"two").write(&b);
    let input = shadowtap::runtime::survey::input(&config, &[a, b], None, None, None).unwrap();
    assert_eq!((input.from.to_string(), input.to.to_string()), ("2026-03-02".to_string(), "2026-03-03".to_string()));
    assert_eq!(input.coverage.sensors.len(), 1);
    assert_eq!(input.coverage.sensors[0].uptime_secs, 3 * 60, "three minutes hold packets: {:?}", input.coverage.sensors);
    let report = Report::build(&input, &ReportOptions::for_input(&input));
    let share = report.methodology.sensors[0].uptime_share;
    assert!((share - 3.0 / (2.0 * 1440.0)).abs() < 1e-4, "3 minutes of 2 days, not the span: {share}");
}

// ---------------------------------------------------------------------------------------------
// 6. Truth first: a period without data is an error, the store's days and a saved input's k
//    are the defaults.

#[test]
fn report_defaults_to_the_sources_days_and_k_and_refuses_a_period_without_data() {
    let tmp = TempDir::new();
    let work = tmp.0.join("work");
    std::fs::create_dir(&work).unwrap();
    let config = root().join("rules/config.toml").display().to_string();
    let pcaps = root().join("pcaps").display().to_string();
    let store = tmp.0.join("kept.sqlite").display().to_string();
    let survey = shadowtap_in(
        &work,
        &["survey", "--config", &config, &pcaps, "--k", "1", "--format", "json", "--store", &store, "--save-input", "facts.json"],
    );
    let survey: Value = serde_json::from_slice(&survey).unwrap();
    assert_eq!(survey["k"], 1);
    let (from, to) = (survey["period"]["from"].as_str().unwrap(), survey["period"]["to"].as_str().unwrap());

    // A saved input renders with the k it records: the survey's groups, not k = 5.
    let again: Value = serde_json::from_slice(&shadowtap_in(&work, &["report", "--input", "facts.json", "--format", "json"])).unwrap();
    assert_eq!(again["k"], 1, "the input's k");
    assert_eq!(survey_rows(&again), survey_rows(&survey), "report --input shows the survey's groups");
    let k5: Value = serde_json::from_slice(&shadowtap_in(&work, &["report", "--input", "facts.json", "--format", "json", "--k", "5"])).unwrap();
    assert_eq!(k5["k"], 5, "--k still asks for more");

    // `report --store` without a period covers the store's days.
    let stored: Value = serde_json::from_slice(&shadowtap_in(&work, &["report", "--store", &store, "--format", "json", "--k", "1"])).unwrap();
    assert_eq!((stored["period"]["from"].as_str(), stored["period"]["to"].as_str()), (Some(from), Some(to)), "the store's days");
    assert_eq!(survey_rows(&stored), survey_rows(&survey), "report --store = the survey");

    // A period the store holds nothing of: an error naming the days it holds.
    let empty = ["report", "--store", &store, "--from", "2025-01-01", "--to", "2025-01-31", "--format", "json"];
    let out = Command::new(env!("CARGO_BIN_EXE_shadowtap")).current_dir(&work).args(empty).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(out.stdout.is_empty(), "no report");
    assert!(err.contains("the store holds no data from 2025-01-01 to 2025-01-31; it holds "), "{err}");
    let held = if from == to { format!("it holds {from} (1 day)") } else { format!("it holds {from}") };
    assert!(err.contains(&held) && err.contains(to) && err.contains("--allow-empty"), "{err}");
    // --allow-empty renders it anyway, and says it is empty.
    let mut allowed = empty.to_vec();
    allowed.push("--allow-empty");
    let json: Value = serde_json::from_slice(&shadowtap_in(&work, &allowed)).unwrap();
    assert_eq!((json["period"]["from"].as_str(), json["methodology"]["flows"].as_u64()), (Some("2025-01-01"), Some(0)));
    assert_eq!(json["no_data"], true, "page 1 says there is no data");
    // The HTML says so first, and draws no empty chart that would read as a measured zero.
    let html_args: Vec<&str> = allowed.iter().map(|a| if *a == "json" { "html" } else { a }).collect();
    let html = String::from_utf8(shadowtap_in(&work, &html_args)).unwrap();
    let findings = &html[html.find("id=\"findings\"").unwrap()..];
    assert!(findings.starts_with("id=\"findings\">\n<h2>Findings</h2>\n<p class=\"warn\" id=\"no-data\">No data for this period"), "{findings}");
    let trend = &html[html.find("id=\"trend\"").unwrap()..];
    assert!(!trend[..trend.find("</section>").unwrap()].contains("<svg"), "no empty chart");
    assert!(trend.contains("Nothing to chart"), "{trend}");
}
