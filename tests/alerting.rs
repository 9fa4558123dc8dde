//! The Prometheus rules of `rules/prometheus/` with real components (Debian packages
//! `prometheus` and `prometheus-alertmanager`, installed by `.ci/test`):
//!
//! 1. `promtool check rules` accepts `recording.yml` and `alerts.yml`, and `promtool test rules`
//!    passes every unit test file of `rules/prometheus/tests/`. Every alert has a unit test in
//!    which it fires and one in which it stays silent, carries `severity`, `summary`,
//!    `description` and `runbook_url`, and its runbook anchor (`docs/runbook.md#<alert name in
//!    lower case>`) is a `###` heading of `docs/runbook.md`.
//! 2. End to end: `shadowtap run` replays `pcaps/` (unsanctioned WhatsApp in department
//!    finance); Prometheus scrapes it every second, evaluates the rules every second and sends
//!    alerts to an Alertmanager, which posts them to a webhook receiver of this test. The
//!    webhook must receive `ShadowtapUnsanctionedMessaging` for `department="finance"`, with
//!    its severity and runbook annotation, although the replay's counters were at their final
//!    value from the first scrape (`increase()` alone would see nothing). Every rule evaluates
//!    without error on the real series, and no health alert (sensor down, capture loss,
//!    reload failure, failed source, not ready) is even pending on a healthy replay.
//!
//! Everything the test starts is stopped, and its temporary directory removed, by guards, also
//! when an assertion fails (the processes' logs are printed then). Only 127.0.0.1 is used.

mod common;

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::root;
use common::stack::*;
use serde_json::Value;

/// From Prometheus's first successful scrape to the webhook's notification.
const ALERT_TIMEOUT: Duration = Duration::from_secs(60);

/// The runbook: one `### <alert>` section per alert, the target of every `runbook_url`.
const RUNBOOK: &str = "docs/runbook.md";

fn rules_dir() -> PathBuf {
    root().join("rules").join("prometheus")
}

fn tool(name: &str) -> PathBuf {
    on_path(name).unwrap_or_else(|| {
        panic!(
            "`{name}` must be on PATH for this test: run .ci/test, which installs the Debian packages \
             `prometheus` (prometheus, promtool) and `prometheus-alertmanager`"
        )
    })
}

/// Runs promtool in the repository root; panics with its output unless it exits 0.
fn promtool(args: &[&str]) -> String {
    let out = Command::new(tool("promtool")).current_dir(root()).args(args).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {} failed ({}):\n{text}", args.join(" "), out.status);
    text
}

/// The unit test files, relative to the repository root, sorted.
fn unit_test_files() -> Vec<String> {
    let mut files: Vec<String> = std::fs::read_dir(rules_dir().join("tests"))
        .expect("rules/prometheus/tests/")
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".yml") || n.ends_with(".yaml"))
        .map(|n| format!("rules/prometheus/tests/{n}"))
        .collect();
    files.sort();
    files
}

/// `key: value` of a YAML line, quotes removed.
fn yaml_value<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let rest = line.trim().trim_start_matches("- ").strip_prefix(key)?.strip_prefix(':')?;
    Some(rest.trim().trim_matches('"').trim_matches('\''))
}

/// The anchor a Markdown renderer gives a heading (GitHub style, for the simple headings of
/// the runbook: lower case, spaces to dashes, punctuation dropped).
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

#[test]
fn rules_pass_promtool_check_and_unit_tests() {
    let out = promtool(&["check", "rules", "rules/prometheus/recording.yml", "rules/prometheus/alerts.yml"]);
    eprintln!("{out}");
    let files = unit_test_files();
    assert!(!files.is_empty(), "no unit tests in rules/prometheus/tests/");
    let mut args = vec!["test", "rules"];
    args.extend(files.iter().map(String::as_str));
    let out = promtool(&args);
    eprintln!("{out}");

    // Every alert: labels and annotations, a runbook section, a firing and a silent unit test.
    let alerts_text = std::fs::read_to_string(rules_dir().join("alerts.yml")).unwrap();
    let mut alerts: BTreeMap<String, Vec<String>> = BTreeMap::new(); // name -> keys it has
    let mut current: Option<String> = None;
    let mut runbook_anchors: BTreeMap<String, String> = BTreeMap::new();
    for line in alerts_text.lines().filter(|l| !l.trim_start().starts_with('#')) {
        if let Some(name) = yaml_value(line, "alert") {
            alerts.insert(name.to_string(), Vec::new());
            current = Some(name.to_string());
            continue;
        }
        let Some(name) = &current else { continue };
        for key in ["severity", "summary", "description", "runbook_url"] {
            if let Some(v) = yaml_value(line, key) {
                alerts.get_mut(name).unwrap().push(key.to_string());
                if key == "runbook_url" {
                    runbook_anchors.insert(name.clone(), v.to_string());
                }
            }
        }
    }
    assert_eq!(alerts.len(), 10, "alerts.yml has the 10 alerts: {:?}", alerts.keys());

    // The `### <alert>` headings of the runbook (code blocks skipped).
    let runbook = std::fs::read_to_string(root().join(RUNBOOK)).expect(RUNBOOK);
    let mut headings: Vec<String> = Vec::new();
    let mut in_code = false;
    for line in runbook.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        } else if !in_code && line.starts_with("### ") {
            headings.push(anchor(&line[4..]));
        }
    }
    assert!(!headings.is_empty(), "{RUNBOOK} has `### <alert>` headings");

    let mut fires: BTreeMap<String, usize> = BTreeMap::new();
    let mut silent: BTreeMap<String, usize> = BTreeMap::new();
    for file in &files {
        let text = std::fs::read_to_string(root().join(file)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let Some(name) = yaml_value(line, "alertname") else { continue };
            let next = lines.get(i + 1).map(|l| l.trim()).unwrap_or("");
            if next == "exp_alerts: []" {
                *silent.entry(name.to_string()).or_default() += 1;
            } else if next == "exp_alerts:" {
                *fires.entry(name.to_string()).or_default() += 1;
            } else {
                panic!("{file}: `alertname: {name}` is not followed by exp_alerts");
            }
        }
    }

    let mut problems = Vec::new();
    for (name, keys) in &alerts {
        for key in ["severity", "summary", "description", "runbook_url"] {
            if !keys.iter().any(|k| k == key) {
                problems.push(format!("{name}: no `{key}`"));
            }
        }
        let want = format!("{RUNBOOK}#{}", name.to_lowercase());
        match runbook_anchors.get(name) {
            Some(url) if *url == want => {}
            other => problems.push(format!("{name}: runbook_url {other:?}, expected {want:?}")),
        }
        if !headings.contains(&name.to_lowercase()) {
            problems.push(format!("{name}: {RUNBOOK} has no heading `### {name}`"));
        }
        if !fires.contains_key(name) {
            problems.push(format!("{name}: no unit test in which it fires"));
        }
        if !silent.contains_key(name) {
            problems.push(format!("{name}: no unit test in which it stays silent"));
        }
    }
    for name in fires.keys().chain(silent.keys()) {
        if !alerts.contains_key(name) {
            problems.push(format!("unit tests name an unknown alert {name}"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// A webhook receiver: records the body of every POST; stopped (and joined) on drop.

struct Webhook {
    port: u16,
    bodies: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Webhook {
    fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (b, s) = (bodies.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if let Some(body) = serve_one(stream) {
                            b.lock().unwrap().push(body);
                        }
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => std::thread::sleep(Duration::from_millis(20)),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Webhook { port, bodies, stop, thread: Some(thread) }
    }

    fn bodies(&self) -> Vec<String> {
        self.bodies.lock().unwrap().clone()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Reads one HTTP/1.1 request (Content-Length or chunked body, 4 MiB at most, bounded by
/// timeouts), answers 200 and closes. Returns the body of a POST.
fn serve_one(mut stream: TcpStream) -> Option<String> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream.set_write_timeout(Some(Duration::from_secs(5))).ok()?;
    const MAX: usize = 4 << 20;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 || buf.len() > MAX {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let method = head.split(' ').next().unwrap_or("").to_string();
    let header = |name: &str| {
        head.split("\r\n")
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim().to_string())
    };
    let length: Option<usize> = header("content-length").and_then(|v| v.parse().ok());
    let chunked = header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let body_start = head_end + 4;
    let complete = |buf: &Vec<u8>| match (length, chunked) {
        (Some(n), _) => buf.len() >= body_start + n,
        (None, true) => buf[body_start..].ends_with(b"0\r\n\r\n"),
        (None, false) => true,
    };
    while !complete(&buf) {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 || buf.len() > MAX {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    let raw = &buf[body_start..];
    let body = match (length, chunked) {
        (Some(n), _) => raw[..n].to_vec(),
        (None, true) => dechunk(raw)?,
        (None, false) => Vec::new(),
    };
    (method == "POST").then(|| String::from_utf8_lossy(&body).into_owned())
}

// ---------------------------------------------------------------------------------------------

/// A path quoted for YAML (single quotes, doubled inside).
fn yaml_path(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', "''"))
}

/// Polls an instant query until it returns something (at most `READY_TIMEOUT`).
fn wait_for(port: u16, promql: &str) -> Vec<Value> {
    let started = Instant::now();
    loop {
        let result = query(port, promql);
        if !result.is_empty() {
            return result;
        }
        assert!(started.elapsed() < READY_TIMEOUT, "{promql}: no result within {READY_TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The alerts of the webhook payloads with the given alert name.
fn received(bodies: &[String], alertname: &str) -> Vec<Value> {
    bodies
        .iter()
        .filter_map(|b| serde_json::from_str::<Value>(b).ok())
        .flat_map(|v| v["alerts"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["labels"]["alertname"] == alertname)
        .collect()
}

#[test]
fn unsanctioned_messaging_reaches_the_alertmanager_webhook() {
    tool("prometheus");
    let alertmanager = tool("prometheus-alertmanager");
    let help = Command::new(env!("CARGO_BIN_EXE_shadowtap")).args(["run", "--help"]).output().unwrap();
    assert!(help.status.success(), "`shadowtap run --help` failed: {}", String::from_utf8_lossy(&help.stderr));

    let tmp = TempDir::new();
    let hook = Webhook::start();
    let [sensor_port, prometheus_port, alertmanager_port] = free_ports::<3>();

    // 1. The sensor replays pcaps/ until ready.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shadowtap"));
    cmd.current_dir(root())
        .args(["run", "--config", "rules/config.toml", "--pcap", "pcaps"])
        .arg("--listen")
        .arg(format!("127.0.0.1:{sensor_port}"));
    let mut sensor = Proc::spawn("shadowtap run", cmd, tmp.0.join("shadowtap.log"));
    let started = Instant::now();
    loop {
        sensor.assert_running("replaying pcaps/ (waiting for /readyz)");
        if matches!(http_get(sensor_port, "/readyz"), Ok(r) if r.status == 200) {
            break;
        }
        assert!(started.elapsed() < READY_TIMEOUT, "/readyz not 200 within {READY_TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    let metrics = http_get(sensor_port, "/metrics").unwrap().body;
    assert!(
        metrics.lines().any(|l| l.starts_with("shadowtap_flows_total{")
            && l.contains("department=\"finance\"")
            && l.contains("category=\"messaging\"")
            && l.contains("status=\"unsanctioned\"")),
        "the replay of pcaps/ has unsanctioned messaging in finance:\n{metrics}"
    );

    // 2. Alertmanager: everything to the webhook, at once.
    let am_yml = tmp.0.join("alertmanager.yml");
    std::fs::write(
        &am_yml,
        format!(
            "route:\n  receiver: webhook\n  group_by: ['alertname', 'department', 'service']\n  group_wait: 1s\n  \
             group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: webhook\n    webhook_configs:\n      \
             - url: 'http://127.0.0.1:{}/alerts'\n        send_resolved: false\n",
            hook.port
        ),
    )
    .unwrap();
    let mut cmd = Command::new(&alertmanager);
    cmd.current_dir(&tmp.0)
        .arg(format!("--config.file={}", am_yml.display()))
        .arg(format!("--storage.path={}", tmp.0.join("alertmanager").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{alertmanager_port}"))
        .arg("--cluster.listen-address=")
        .arg("--log.level=warn");
    let mut am = Proc::spawn("alertmanager", cmd, tmp.0.join("alertmanager.log"));
    let started = Instant::now();
    loop {
        am.assert_running("starting (waiting for /-/ready)");
        if matches!(http_get(alertmanager_port, "/-/ready"), Ok(r) if r.status == 200) {
            break;
        }
        assert!(started.elapsed() < READY_TIMEOUT, "Alertmanager not ready within {READY_TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(100));
    }

    // 3. Prometheus with the rules, scraping and evaluating every second.
    let mut prom = start_prometheus(
        &tmp,
        prometheus_port,
        &format!(
            "rule_files:\n  - {}\n  - {}\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{alertmanager_port}']\n\
             scrape_configs:\n  - job_name: shadowtap\n    static_configs:\n      - targets: ['127.0.0.1:{sensor_port}']\n",
            yaml_path(&rules_dir().join("recording.yml")),
            yaml_path(&rules_dir().join("alerts.yml")),
        ),
        &["--rules.alert.resend-delay=1s"],
    );
    let started = Instant::now();
    let up = wait_until(READY_TIMEOUT, &mut [&mut prom, &mut sensor], "waiting for up{job=\"shadowtap\"} == 1", || {
        first_value(prometheus_port, "up{job=\"shadowtap\"}") == Some(1.0)
    });
    assert!(up, "Prometheus did not scrape shadowtap within {READY_TIMEOUT:?}");
    eprintln!("prometheus scraped shadowtap after {:.1?}", started.elapsed());

    // 4. The webhook receives the alert.
    let started = Instant::now();
    let alert = loop {
        sensor.assert_running("waiting for the alert");
        am.assert_running("waiting for the alert");
        prom.assert_running("waiting for the alert");
        let bodies = hook.bodies();
        let found = received(&bodies, "ShadowtapUnsanctionedMessaging")
            .into_iter()
            .find(|a| a["labels"]["department"] == "finance");
        if let Some(a) = found {
            break a;
        }
        if started.elapsed() > ALERT_TIMEOUT {
            let alerts = query(prometheus_port, "ALERTS");
            let rules = http_get(prometheus_port, "/api/v1/rules").map(|r| r.body).unwrap_or_default();
            panic!(
                "no ShadowtapUnsanctionedMessaging for department=\"finance\" at the webhook within {ALERT_TIMEOUT:?}\n\
                 webhook bodies: {bodies:#?}\nALERTS in Prometheus: {alerts:#?}\n/api/v1/rules: {rules}"
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!("webhook received ShadowtapUnsanctionedMessaging after {:.1?}:\n{alert:#}", started.elapsed());
    assert_eq!(alert["status"], "firing", "{alert}");
    assert_eq!(alert["labels"]["severity"], "warning", "the alert carries its severity: {alert}");
    assert_eq!(alert["labels"]["service"], "whatsapp", "the alert names the service: {alert}");
    assert_eq!(
        alert["annotations"]["runbook_url"], "docs/runbook.md#shadowtapunsanctionedmessaging",
        "the alert carries its runbook: {alert}"
    );
    for key in ["summary", "description"] {
        let text = alert["annotations"][key].as_str().unwrap_or("");
        assert!(text.contains("finance") && text.contains("whatsapp"), "annotation {key} names the group: {alert}");
    }
    assert!(alert["labels"].get("instance").is_none(), "usage alerts are per department, not per sensor: {alert}");

    // 5. Every rule evaluated without error on the real series; the recording rules give
    //    values; the health alerts stay silent on a healthy replay.
    let rules: Value = serde_json::from_str(&http_get(prometheus_port, "/api/v1/rules").unwrap().body).unwrap();
    let groups = rules["data"]["groups"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = groups.iter().filter_map(|g| g["name"].as_str()).collect();
    assert!(names.contains(&"shadowtap.recording") && names.contains(&"shadowtap.alerts"), "rule groups loaded: {names:?}");
    let mut count = 0;
    for g in &groups {
        for r in g["rules"].as_array().cloned().unwrap_or_default() {
            count += 1;
            assert_eq!(r["health"], "ok", "rule {} of {} evaluates: {r:#}", r["name"], g["name"]);
        }
    }
    assert_eq!(count, 17, "7 recording rules and 10 alerts loaded: {rules:#}");

    // (The alert may come from the first scrape; a rate needs two, so wait for it.)
    let share = wait_for(
        prometheus_port,
        "shadowtap:department_category_host_share:7d{department=\"finance\",category=\"messaging\",status=\"unsanctioned\"}",
    );
    assert_eq!(share.len(), 1, "one category share for finance messaging: {share:?}");
    let v = value(&share[0]);
    assert!(v > 0.0 && v <= 1.0, "the category share is a lower bound in (0, 1]: {v}");
    let rate = wait_for(prometheus_port, "shadowtap:flows:rate5m{department=\"finance\",service=\"whatsapp\"}");
    assert!(rate.iter().all(|r| value(r) >= 0.0), "flow rates: {rate:?}");
    // ALERTS holds pending alerts too, so a `for` longer than this test does not hide a match.
    let unhealthy = query(
        prometheus_port,
        "ALERTS{alertname=~\"ShadowtapSensorDown|ShadowtapCaptureLoss|ShadowtapConfigReloadFailed|ShadowtapSourceFailed|ShadowtapNotReady\"}",
    );
    assert!(unhealthy.is_empty(), "a healthy replay raises no health alert, not even a pending one: {unhealthy:#?}");
    // A replay that is over: every source done, none failed, ready.
    for (promql, want) in [
        ("sum(shadowtap_sources{state=\"failed\"})", 0.0),
        ("sum(shadowtap_sources{state=~\"pending|reading\"})", 0.0),
        ("sum(shadowtap_sources{state=\"done\"}) > bool 0", 1.0),
        ("shadowtap_ready", 1.0),
    ] {
        let got = first_value(prometheus_port, promql);
        assert_eq!(got, Some(want), "{promql} on a finished replay");
    }

    // 6. Stop everything.
    let status = sensor.terminate(EXIT_TIMEOUT);
    assert!(status.is_some_and(|s| s.success()), "shadowtap run exits 0 on SIGTERM ({status:?})");
    for p in [&mut prom, &mut am] {
        if p.terminate(EXIT_TIMEOUT).is_none() {
            eprintln!("{} did not stop within {EXIT_TIMEOUT:?} of SIGTERM; killing it", p.name);
        }
    }
    drop(prom);
    drop(am);
    drop(sensor);
    drop(hook);
    drop(tmp);
}
