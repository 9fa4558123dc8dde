//! End to end with a real Prometheus (Debian package `prometheus`, installed by `.ci/test`):
//! `shadowtap run` replays `pcaps/` and serves `/metrics`; `promtool check metrics` accepts the
//! exposition; a Prometheus server scrapes it every second; and PromQL over the scraped series
//! agrees with an independent count made from `shadowtap inspect` JSON lines (flows and bytes
//! per department, service and status, distinct client hosts per department and service in every
//! window). Every sample of `/metrics` must reach Prometheus. Then `shadowtap run` must exit 0
//! on SIGTERM. Everything the test starts is stopped, and its temporary directory removed, by
//! guards, also when an assertion fails (the processes' logs are printed then).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::stack::*;
use common::{inspect, root, s};

const WINDOWS: [&str; 4] = ["1h", "24h", "7d", "30d"];

/// The client's address of an `ip:port` / `[ip]:port`.
fn host_of(addr: &str) -> &str {
    addr.rsplit_once(':').map(|(h, _)| h).unwrap_or(addr)
}

/// Sample lines of a text exposition, counted per metric name.
fn exposition_series(text: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let name = line.split(['{', ' ']).next().unwrap().to_string();
        *out.entry(name).or_insert(0) += 1;
    }
    out
}

/// One row of the printed comparison table.
struct Row {
    what: String,
    labels: String,
    want: String,
    got: String,
    ok: bool,
}

fn fmt_num(v: Option<f64>) -> String {
    v.map_or("(none)".to_string(), |v| format!("{v}"))
}

// ---------------------------------------------------------------------------------------------

#[test]
fn prometheus_scrapes_run_and_agrees_with_inspect() {
    // 0. The tools: Prometheus from the Debian package, and the `run` command.
    let Some(promtool) = on_path("promtool") else {
        panic!(
            "`prometheus` and `promtool` must be on PATH for this test: run .ci/test, which installs \
             the Debian package `prometheus` (or: apt-get install prometheus)"
        );
    };
    let help = Command::new(env!("CARGO_BIN_EXE_shadowtap")).args(["run", "--help"]).output().unwrap();
    assert!(
        help.status.success(),
        "`shadowtap run` is missing or broken (`shadowtap run --help` failed): this test drives the \
         daemon command `shadowtap run --config .. --pcap .. --listen ..` with its /metrics endpoint\n{}",
        String::from_utf8_lossy(&help.stderr)
    );

    // 1. Independent expectation from `shadowtap inspect`.
    let config = root().join("rules/config.toml");
    let run = inspect(&[&root().join("pcaps")], &["--config", &config.display().to_string()]);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    let mut flows: BTreeMap<Vec<String>, f64> = BTreeMap::new(); // [department, service, status]
    let mut bytes: BTreeMap<Vec<String>, f64> = BTreeMap::new(); // [department, service, direction]
    let mut clients: BTreeMap<Vec<String>, BTreeSet<String>> = BTreeMap::new(); // [department, service]
    for r in &run.records {
        let Some(service) = s(r, "service") else { continue };
        let department = s(r, "department").unwrap_or("unmapped").to_string();
        let status = s(r, "status").unwrap_or("").to_string();
        *flows.entry(vec![department.clone(), service.into(), status]).or_default() += 1.0;
        for (dir, field) in [("up", "bytes_up"), ("down", "bytes_down")] {
            let n = r[field].as_u64().unwrap_or_else(|| panic!("{field} in {r}"));
            *bytes.entry(vec![department.clone(), service.into(), dir.into()]).or_default() += n as f64;
        }
        let src = s(r, "src").unwrap_or_else(|| panic!("no src in {r}"));
        clients.entry(vec![department, service.into()]).or_default().insert(host_of(src).to_string());
    }
    assert!(flows.len() >= 5, "pcaps/ has flows of several services: {flows:?}");
    assert!(clients.keys().any(|k| k[0] == "finance"), "pcaps/ has flows of finance: {clients:?}");

    let tmp = TempDir::new();
    let [shadowtap_port, prometheus_port] = free_ports::<2>();

    // 2. `shadowtap run`, until ready; its exposition passes promtool.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shadowtap"));
    cmd.current_dir(root())
        .args(["run", "--config", "rules/config.toml", "--pcap", "pcaps"])
        .arg("--listen")
        .arg(format!("127.0.0.1:{shadowtap_port}"))
        .arg("--state-dir")
        .arg(tmp.0.join("state"));
    let mut sensor = Proc::spawn("shadowtap run", cmd, tmp.0.join("shadowtap.log"));
    let started = Instant::now();
    loop {
        sensor.assert_running("replaying pcaps/ (waiting for /readyz)");
        match http_get(shadowtap_port, "/readyz") {
            Ok(r) if r.status == 200 => break,
            Ok(r) => assert_eq!(r.status, 503, "/readyz answers 200 or 503, not {}: {}", r.status, r.body),
            Err(_) => {} // not listening yet
        }
        assert!(started.elapsed() < READY_TIMEOUT, "/readyz not 200 within {READY_TIMEOUT:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!("shadowtap run ready after {:.1?}", started.elapsed());
    let health = http_get(shadowtap_port, "/healthz").unwrap();
    assert_eq!(health.status, 200, "/healthz: {}", health.body);
    let metrics = http_get(shadowtap_port, "/metrics").unwrap();
    assert_eq!(metrics.status, 200, "/metrics: {}", metrics.body);
    let ctype = metrics.header("content-type").unwrap_or("");
    assert!(
        ctype.starts_with("text/plain") && ctype.contains("version=0.0.4"),
        "/metrics is the text format 0.0.4: Content-Type {ctype:?}"
    );
    let mut lint = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    lint.stdin.take().unwrap().write_all(metrics.body.as_bytes()).unwrap();
    let lint = lint.wait_with_output().unwrap();
    assert!(
        lint.status.success(),
        "promtool check metrics rejects /metrics ({}):\n{}{}",
        lint.status,
        String::from_utf8_lossy(&lint.stdout),
        String::from_utf8_lossy(&lint.stderr)
    );

    // 3. Prometheus scraping it every second.
    let mut prom = start_prometheus(
        &tmp,
        prometheus_port,
        &format!("scrape_configs:\n  - job_name: shadowtap\n    static_configs:\n      - targets: ['127.0.0.1:{shadowtap_port}']\n"),
        &[],
    );
    let started = Instant::now();
    let up = wait_until(READY_TIMEOUT, &mut [&mut prom, &mut sensor], "waiting for up{job=\"shadowtap\"} == 1", || {
        first_value(prometheus_port, "up{job=\"shadowtap\"}") == Some(1.0)
    });
    assert!(up, "Prometheus did not scrape shadowtap successfully within {READY_TIMEOUT:?}");
    eprintln!("prometheus scraped shadowtap after {:.1?}", started.elapsed());

    // 4. PromQL against the expectation.
    let mut rows: Vec<Row> = Vec::new();
    let mut compare = |what: &str, labels: String, want: Option<f64>, got: Option<f64>| {
        rows.push(Row { what: what.to_string(), labels, want: fmt_num(want), got: fmt_num(got), ok: want == got });
    };

    // Every sample of /metrics reached Prometheus (none rejected: no duplicates, no bad timestamps).
    let exposed = exposition_series(&http_get(shadowtap_port, "/metrics").unwrap().body);
    let stored = by_labels(prometheus_port, "count by (__name__) ({job=\"shadowtap\",__name__=~\"shadowtap_.+\"})", &["__name__"]);
    let names: BTreeSet<&String> =
        exposed.keys().filter(|n| n.starts_with("shadowtap_")).chain(stored.keys().map(|k| &k[0])).collect();
    for name in names {
        let want = exposed.get(name).map(|&n| n as f64);
        compare("series stored", name.clone(), want, stored.get(&vec![name.clone()]).copied());
    }

    let scalar = |promql: &str| -> Option<f64> {
        let result = query(prometheus_port, promql);
        assert!(result.len() <= 1, "{promql}: one series expected, got {result:?}");
        result.first().map(value)
    };
    compare("privacy", "min_group_size (bundled config)".into(), Some(1.0), scalar("shadowtap_privacy_min_group_size"));
    compare("privacy", "reveal_hosts".into(), Some(0.0), scalar("shadowtap_privacy_reveal_hosts"));

    // `_suppressed` (groups below the minimum group size) and `_uncatalogued` (named
    // destinations outside the catalog, DNS flows to resolvers) have no `service` in inspect.
    let got = by_labels(
        prometheus_port,
        "sum by (department,service,status) (shadowtap_flows_total{service!~\"_suppressed|_uncatalogued\"})",
        &["department", "service", "status"],
    );
    for key in flows.keys().chain(got.keys().filter(|k| !k[1].is_empty() && !flows.contains_key(*k))) {
        compare("flows", key.join(" "), Some(flows.get(key).copied().unwrap_or(0.0)), got.get(key).copied().or(Some(0.0)));
    }

    let got = by_labels(
        prometheus_port,
        "sum by (department,service,direction) (shadowtap_bytes_total{service!~\"_suppressed|_uncatalogued\"})",
        &["department", "service", "direction"],
    );
    for key in bytes.keys() {
        compare("bytes", key.join(" "), bytes.get(key).copied(), got.get(key).copied());
    }

    // The replay's newest packet is the clock: every host of pcaps/ is in every window.
    for window in WINDOWS {
        let got = by_labels(
            prometheus_port,
            &format!("max by (department,service) (shadowtap_hosts{{window=\"{window}\",service!~\"_suppressed|_uncatalogued\"}})"),
            &["department", "service"],
        );
        for (key, hosts) in &clients {
            compare(&format!("hosts {window}"), key.join(" "), Some(hosts.len() as f64), got.get(key).copied());
        }
    }

    let active = by_labels(prometheus_port, "shadowtap_department_active_hosts{window=\"30d\"}", &["department"]);
    let departments: BTreeSet<&String> = clients.keys().map(|k| &k[0]).collect();
    for department in departments {
        let got = active.get(&vec![department.clone()]).copied();
        rows.push(Row {
            what: "active hosts 30d".into(),
            labels: department.clone(),
            want: ">= 1".into(),
            got: fmt_num(got),
            ok: got.is_some_and(|v| v >= 1.0),
        });
    }

    let build = query(prometheus_port, "shadowtap_build_info");
    let version = build.first().map(|b| label(b, "version").to_string());
    rows.push(Row {
        what: "build_info".into(),
        labels: "version".into(),
        want: env!("CARGO_PKG_VERSION").into(),
        got: version.clone().unwrap_or("(none)".into()),
        ok: build.len() == 1 && version.is_some_and(|v| v.contains(env!("CARGO_PKG_VERSION"))),
    });
    let ruleset = query(prometheus_port, "shadowtap_ruleset_info");
    let digest = ruleset.first().map(|r| label(r, "digest").to_string());
    rows.push(Row {
        what: "ruleset_info".into(),
        labels: "digest".into(),
        want: "64 hex digits".into(),
        got: digest.clone().unwrap_or("(none)".into()),
        ok: ruleset.len() == 1
            && digest.is_some_and(|d| d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit())),
    });
    let services = ruleset.first().map(|r| label(r, "services").to_string());
    rows.push(Row {
        what: "ruleset_info".into(),
        labels: "services".into(),
        want: "present".into(),
        got: services.clone().unwrap_or("(none)".into()),
        ok: services.is_some_and(|s| !s.is_empty()),
    });

    eprintln!("{:<18} {:<40} {:>14} {:>14}  ok", "compared", "labels", "expected", "prometheus");
    for r in &rows {
        eprintln!("{:<18} {:<40} {:>14} {:>14}  {}", r.what, r.labels, r.want, r.got, if r.ok { "yes" } else { "NO" });
    }
    let bad: Vec<String> =
        rows.iter().filter(|r| !r.ok).map(|r| format!("{} {}: expected {}, got {}", r.what, r.labels, r.want, r.got)).collect();
    assert!(bad.is_empty(), "{} of {} comparisons differ:\n{}", bad.len(), rows.len(), bad.join("\n"));

    // 5. SIGTERM: shadowtap exits 0 in time; Prometheus is stopped.
    let status = sensor.terminate(EXIT_TIMEOUT);
    assert!(status.is_some(), "shadowtap run did not exit within {EXIT_TIMEOUT:?} of SIGTERM");
    assert_eq!(status.unwrap().code(), Some(0), "shadowtap run exits 0 on SIGTERM ({status:?})");
    if prom.terminate(EXIT_TIMEOUT).is_none() {
        eprintln!("prometheus did not stop within {EXIT_TIMEOUT:?} of SIGTERM; killing it");
    }
    drop(prom);
    drop(sensor);
    drop(tmp);
}
