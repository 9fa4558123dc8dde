//! The Grafana dashboards of `dashboards/` (see dashboards/README.md), checked in two steps.
//!
//! 1. `dashboards_lint` (no external tools): every `dashboards/*.json` is valid JSON with a
//!    `schemaVersion`; panel ids are unique per dashboard (rows and the panels nested in
//!    collapsed rows included) and uids unique across dashboards; every `datasource` anywhere in
//!    a dashboard (panels, rows, targets, variables) is the templated Prometheus datasource
//!    `${datasource}`, never a hard-coded uid; every `$var` / `${var}` of a query is a defined
//!    template variable (or a Grafana built-in interval), every variable but `datasource` is used
//!    by some panel query, and multi-value variables are only matched with `=~`; the tables
//!    below name existing panels; the provisioning files and the README are coherent.
//! 2. `dashboard_queries_return_data` (needs the Debian package `prometheus`, like
//!    tests/prometheus.rs): two `shadowtap run` replay `pcaps/`, a real Prometheus scrapes both
//!    every second and evaluates `rules/prometheus/recording.yml`, and every
//!    variable query and every panel query, its variables substituted as Grafana would with
//!    "All" selected, runs through `/api/v1/query`. Each must be accepted, and return at least
//!    one series unless the panel is listed in `EXPECTED_EMPTY` (with the reason). The panels of
//!    `SUMS_ACROSS_SENSORS` must show, with every sensor selected, the sum of each sensor's own
//!    value. A table of dashboard, panel, result count or reason is printed.
//!
//! Processes and the temporary directory are stopped and removed by guards, also on failure.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::root;
use common::stack::*;
use serde_json::Value;

/// The dashboards that must exist (others in the folder are checked too).
const DASHBOARDS: [&str; 5] = [
    "shadowtap-overview.json",
    "shadowtap-department.json",
    "shadowtap-service.json",
    "shadowtap-policy.json",
    "shadowtap-health.json",
];

/// Panels whose queries return nothing on the bundled captures, and why (dashboard uid, panel
/// title, reason). Their queries still run and must be valid PromQL.
const EXPECTED_EMPTY: &[(&str, &str, &str)] = &[
    ("shadowtap-health", "Kernel and interface drops", "pcap replay: libpcap capture statistics exist only for live interfaces"),
    ("shadowtap-health", "Received by interface", "pcap replay: libpcap capture statistics exist only for live interfaces"),
    ("shadowtap-health", "Capture loss ratio", "pcap replay: libpcap capture statistics exist only for live interfaces"),
    ("shadowtap-health", "QUIC give-ups", "no QUIC Initial of pcaps/ is given up; the counter has series only for reasons seen"),
];

/// Panels that read the recording rules of `rules/prometheus/recording.yml` (dashboard uid,
/// panel title): the lint checks the list, so that a dashboard's dependence on the rules is
/// visible here and in dashboards/README.md.
const NEEDS_RECORDING_RULES: &[(&str, &str)] = &[
    ("shadowtap-overview", "Flows by policy status"),
    ("shadowtap-overview", "Messaging and file sharing share over weeks"),
    ("shadowtap-department", "Share of devices per service (30 days)"),
    ("shadowtap-service", "Upload rate, 5-minute average"),
    ("shadowtap-health", "Unnamed flow ratio, 5-minute average"),
];

/// The recording rules the dashboards may use (written in rules/prometheus/recording.yml).
const RECORDING_RULES: [&str; 7] = [
    "shadowtap:department_service_host_share:7d",
    "shadowtap:department_service_host_share:30d",
    "shadowtap:department_category_host_share:7d",
    "shadowtap:flows:rate5m",
    "shadowtap:upload_bytes:rate5m",
    "shadowtap:unnamed_flow_ratio:rate5m",
    "shadowtap:capture_loss_ratio:rate5m",
];

/// Grafana's built-in variables that may appear in queries, and what the test puts in their place.
const BUILTINS: [(&str, &str); 5] =
    [("__rate_interval", "1m"), ("__interval", "1m"), ("__range", "1h"), ("__range_s", "3600"), ("__interval_ms", "60000")];

const RULES_FILE: &str = "rules/prometheus/recording.yml";

// ---------------------------------------------------------------------------------------------
// Reading the dashboards.

struct Variable {
    name: String,
    kind: String,
    multi: bool,
    /// The selected value when single-valued.
    current: String,
    /// `label_values(...)` of a query variable.
    definition: Option<String>,
}

struct Target {
    ref_id: String,
    expr: String,
}

struct Panel {
    id: Option<i64>,
    kind: String,
    title: String,
    /// Inside a collapsed row.
    nested: bool,
    raw: Value,
    targets: Vec<Target>,
}

struct Dashboard {
    file: String,
    json: Value,
    uid: String,
    variables: Vec<Variable>,
    panels: Vec<Panel>,
}

fn dashboards_dir() -> PathBuf {
    root().join("dashboards")
}

fn load_dashboards() -> Vec<Dashboard> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dashboards_dir())
        .expect("dashboards/ exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|path| {
            let file = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(path).unwrap();
            let json: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{file}: not valid JSON: {e}"));
            let uid = json["uid"].as_str().unwrap_or("").to_string();
            let variables = json["templating"]["list"]
                .as_array()
                .unwrap_or_else(|| panic!("{file}: no templating.list"))
                .iter()
                .map(|v| Variable {
                    name: v["name"].as_str().unwrap_or_else(|| panic!("{file}: variable without name: {v}")).to_string(),
                    kind: v["type"].as_str().unwrap_or("").to_string(),
                    multi: v["multi"].as_bool().unwrap_or(false) || v["includeAll"].as_bool().unwrap_or(false),
                    current: match &v["current"]["value"] {
                        Value::String(s) => s.clone(),
                        Value::Array(a) => a.first().and_then(Value::as_str).unwrap_or("").to_string(),
                        _ => String::new(),
                    },
                    definition: v["definition"]
                        .as_str()
                        .or_else(|| v["query"]["query"].as_str())
                        .or_else(|| v["query"].as_str())
                        .filter(|_| v["type"] == "query")
                        .map(str::to_string),
                })
                .collect();
            let mut panels = Vec::new();
            collect_panels(&file, json["panels"].as_array().unwrap_or_else(|| panic!("{file}: no panels")), false, &mut panels);
            Dashboard { file, json: json.clone(), uid, variables, panels }
        })
        .collect()
}

fn collect_panels(file: &str, list: &[Value], nested: bool, out: &mut Vec<Panel>) {
    for p in list {
        let targets = p["targets"]
            .as_array()
            .map(|ts| {
                ts.iter()
                    .map(|t| Target {
                        ref_id: t["refId"].as_str().unwrap_or("").to_string(),
                        expr: t["expr"].as_str().unwrap_or_else(|| panic!("{file}: a target of {:?} has no expr", p["title"])).to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push(Panel {
            id: p["id"].as_i64(),
            kind: p["type"].as_str().unwrap_or("").to_string(),
            title: p["title"].as_str().unwrap_or("").to_string(),
            nested,
            raw: p.clone(),
            targets,
        });
        if let Some(inner) = p["panels"].as_array() {
            collect_panels(file, inner, true, out);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Variable references: `$name`, `${name}`, `${name:format}`, `[[name]]`.

struct VarRef {
    name: String,
    start: usize,
    end: usize,
}

fn var_refs(text: &str) -> Vec<VarRef> {
    let b = text.as_bytes();
    let ident = |from: usize| from + b[from..].iter().take_while(|c| c.is_ascii_alphanumeric() || **c == b'_').count();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'$' && b.get(i + 1) == Some(&b'{') {
            let close = text[i..].find('}').map(|c| i + c).unwrap_or_else(|| panic!("unclosed ${{ in {text:?}"));
            let inner = &text[i + 2..close];
            let name = inner.split(':').next().unwrap().to_string();
            out.push(VarRef { name, start: i, end: close + 1 });
            i = close + 1;
        } else if b[i] == b'$' && b.get(i + 1).is_some_and(|c| c.is_ascii_alphabetic() || *c == b'_') {
            let end = ident(i + 1);
            out.push(VarRef { name: text[i + 1..end].to_string(), start: i, end });
            i = end;
        } else if b[i] == b'[' && b.get(i + 1) == Some(&b'[') {
            let end = ident(i + 2);
            if text[end..].starts_with("]]") && end > i + 2 {
                out.push(VarRef { name: text[i + 2..end].to_string(), start: i, end: end + 2 });
                i = end + 2;
            } else {
                i += 1;
            }
        } else {
            i += 1;
        }
    }
    out
}

/// The query Grafana would send with "All" selected in every multi-value variable.
fn substitute(expr: &str, vars: &[Variable]) -> String {
    substitute_with(expr, vars, &[])
}

/// The query Grafana would send with the given (variable, regex) selections and "All" in every
/// other multi-value variable.
fn substitute_with(expr: &str, vars: &[Variable], selected: &[(&str, &str)]) -> String {
    let mut out = String::new();
    let mut last = 0;
    for r in var_refs(expr) {
        out.push_str(&expr[last..r.start]);
        let value = if let Some((_, v)) = BUILTINS.iter().find(|(n, _)| *n == r.name) {
            v.to_string()
        } else if let Some((_, v)) = selected.iter().find(|(n, _)| *n == r.name) {
            v.to_string()
        } else {
            let var = vars.iter().find(|v| v.name == r.name).unwrap_or_else(|| panic!("undefined ${} in {expr}", r.name));
            if var.multi { ".*".to_string() } else { var.current.clone() }
        };
        out.push_str(&value);
        last = r.end;
    }
    out.push_str(&expr[last..]);
    out
}

/// `label_values(selector, label)` -> (selector, label).
fn label_values(definition: &str) -> Option<(String, String)> {
    let inner = definition.trim().strip_prefix("label_values(")?.strip_suffix(')')?;
    let (selector, label) = inner.rsplit_once(',')?;
    Some((selector.trim().to_string(), label.trim().to_string()))
}

/// Names of recording rules (`shadowtap:...`) an expression reads.
fn rule_names(expr: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = expr;
    while let Some(i) = rest.find("shadowtap:") {
        let tail = &rest[i..];
        let end = tail.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).unwrap_or(tail.len());
        out.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    out
}

fn is_templated_datasource(v: &Value) -> bool {
    v.as_object().is_some_and(|o| {
        o.len() == 2 && o.get("type").and_then(Value::as_str) == Some("prometheus") && o.get("uid").and_then(Value::as_str) == Some("${datasource}")
    })
}

/// Every `datasource` key anywhere under `v`, with its JSON path.
fn datasources<'a>(v: &'a Value, path: String, out: &mut Vec<(String, &'a Value)>) {
    match v {
        Value::Object(o) => {
            for (k, x) in o {
                let p = format!("{path}.{k}");
                if k == "datasource" {
                    out.push((p.clone(), x));
                }
                datasources(x, p, out);
            }
        }
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                datasources(x, format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------

#[test]
fn dashboards_lint() {
    let dashboards = load_dashboards();
    let mut problems: Vec<String> = Vec::new();
    let mut bad = |d: &str, msg: String| problems.push(format!("{d}: {msg}"));

    let files: BTreeSet<&str> = dashboards.iter().map(|d| d.file.as_str()).collect();
    for want in DASHBOARDS {
        if !files.contains(want) {
            bad(want, "missing".into());
        }
    }
    let rules_text = std::fs::read_to_string(root().join(RULES_FILE)).ok();
    assert!(rules_text.is_some(), "{RULES_FILE} is missing");

    let mut uids: BTreeMap<&str, &str> = BTreeMap::new();
    let mut seen_panels: BTreeSet<(String, String)> = BTreeSet::new();
    for d in &dashboards {
        let f = d.file.as_str();
        // Top level.
        match d.json["schemaVersion"].as_i64() {
            Some(v) if v >= 39 => {}
            other => bad(f, format!("schemaVersion must be present and >= 39, is {other:?}")),
        }
        if d.uid.is_empty() || d.uid.len() > 40 {
            bad(f, format!("uid {:?}: must be 1..=40 characters", d.uid));
        }
        if let Some(other) = uids.insert(&d.uid, f) {
            bad(f, format!("uid {:?} also used by {other}", d.uid));
        }
        if d.json["title"].as_str().unwrap_or("").is_empty() {
            bad(f, "no title".into());
        }

        // Datasources everywhere: the templated one only.
        let mut ds = Vec::new();
        datasources(&d.json, String::new(), &mut ds);
        for (path, v) in ds {
            if !is_templated_datasource(v) {
                bad(f, format!("{path} = {v}: must be {{\"type\":\"prometheus\",\"uid\":\"${{datasource}}\"}}"));
            }
        }

        // Variables.
        let mut names = BTreeSet::new();
        for v in &d.variables {
            if !names.insert(v.name.as_str()) {
                bad(f, format!("variable ${} defined twice", v.name));
            }
        }
        match d.variables.iter().find(|v| v.name == "datasource") {
            Some(v) if v.kind == "datasource" => {
                let raw = d.json["templating"]["list"].as_array().unwrap().iter().find(|x| x["name"] == "datasource").unwrap();
                if raw["query"] != "prometheus" {
                    bad(f, format!("variable $datasource must query \"prometheus\", not {}", raw["query"]));
                }
            }
            _ => bad(f, "no variable `datasource` of type datasource".into()),
        }
        for (i, v) in d.variables.iter().enumerate() {
            if v.kind == "query" {
                let Some(def) = &v.definition else {
                    bad(f, format!("variable ${} has no query", v.name));
                    continue;
                };
                if label_values(def).is_none() {
                    bad(f, format!("variable ${}: {def:?} is not label_values(selector, label)", v.name));
                }
                for r in var_refs(def) {
                    // Chained variables refer to variables defined before them.
                    if !d.variables[..i].iter().any(|p| p.name == r.name) {
                        bad(f, format!("variable ${} refers to ${}, not defined before it", v.name, r.name));
                    }
                }
            }
            if v.multi {
                let raw = &d.json["templating"]["list"][i];
                if raw["allValue"] != ".*" {
                    bad(f, format!("multi-value variable ${} needs allValue \".*\" (All = any value, also new ones)", v.name));
                }
            } else if v.name != "datasource" && v.current.is_empty() {
                bad(f, format!("single-value variable ${} has no current value", v.name));
            }
        }

        // Panels.
        let mut ids = BTreeSet::new();
        let mut titles = BTreeSet::new();
        let mut used: BTreeSet<String> = BTreeSet::new();
        for p in &d.panels {
            let what = format!("panel {:?} (id {:?})", p.title, p.id);
            match p.id {
                Some(id) if ids.insert(id) => {}
                Some(id) => bad(f, format!("{what}: id {id} not unique")),
                None => bad(f, format!("{what}: no numeric id")),
            }
            if p.title.is_empty() || !titles.insert(p.title.clone()) {
                bad(f, format!("{what}: panel titles must be present and unique in a dashboard"));
            }
            if !is_templated_datasource(&p.raw["datasource"]) {
                bad(f, format!("{what}: no templated datasource"));
            }
            let grid = &p.raw["gridPos"];
            if !(grid["w"].is_u64() && grid["h"].is_u64() && grid["x"].is_u64() && grid["y"].is_u64()) {
                bad(f, format!("{what}: gridPos needs x, y, w, h"));
            }
            if p.kind == "row" {
                let inner = p.raw["panels"].as_array().map_or(0, Vec::len);
                let collapsed = p.raw["collapsed"].as_bool().unwrap_or(false);
                if p.nested || (!collapsed && inner > 0) || (collapsed && inner == 0) {
                    bad(f, format!("{what}: a row holds panels exactly when collapsed, and is never nested"));
                }
                continue;
            }
            if p.targets.is_empty() {
                bad(f, format!("{what}: no query"));
            }
            let mut refs = BTreeSet::new();
            for t in &p.targets {
                if t.ref_id.is_empty() || !refs.insert(&t.ref_id) {
                    bad(f, format!("{what}: refId {:?} missing or repeated", t.ref_id));
                }
                if t.expr.trim().is_empty() {
                    bad(f, format!("{what}: empty expr"));
                }
                for r in var_refs(&t.expr) {
                    if BUILTINS.iter().any(|(n, _)| *n == r.name) {
                        continue;
                    }
                    let Some(v) = d.variables.iter().find(|v| v.name == r.name) else {
                        bad(f, format!("{what}: ${} is not a template variable", r.name));
                        continue;
                    };
                    if v.name == "datasource" {
                        bad(f, format!("{what}: $datasource in a query"));
                    }
                    used.insert(r.name.clone());
                    // Multi-value variables become regular expressions: only `=~` / `!~` fit.
                    let before = t.expr[..r.start].trim_end();
                    if v.multi && !(before.ends_with("=~\"") || before.ends_with("!~\"")) {
                        bad(f, format!("{what}: multi-value ${} must be matched with =~\"${}\"", r.name, r.name));
                    }
                }
                for rule in rule_names(&t.expr) {
                    if !RECORDING_RULES.contains(&rule.as_str()) {
                        bad(f, format!("{what}: {rule} is not one of the recording rules"));
                    } else if let Some(text) = &rules_text {
                        if !text.contains(&format!("record: {rule}")) {
                            bad(f, format!("{what}: {rule} is not recorded in {RULES_FILE}"));
                        }
                    }
                }
            }
            let needs_rules = p.targets.iter().any(|t| !rule_names(&t.expr).is_empty());
            let listed = NEEDS_RECORDING_RULES.contains(&(d.uid.as_str(), p.title.as_str()));
            if needs_rules != listed {
                bad(f, format!("{what}: reads recording rules = {needs_rules}, listed in NEEDS_RECORDING_RULES = {listed}"));
            }
            seen_panels.insert((d.uid.clone(), p.title.clone()));
        }
        for v in &d.variables {
            if v.name != "datasource" && !used.contains(&v.name) {
                bad(f, format!("variable ${} is used by no panel query", v.name));
            }
        }
    }
    for (uid, title) in EXPECTED_EMPTY.iter().map(|(u, t, _)| (u, t)).chain(NEEDS_RECORDING_RULES.iter().map(|(u, t)| (u, t))) {
        if !seen_panels.contains(&(uid.to_string(), title.to_string())) {
            bad("tests/dashboards.rs", format!("listed panel {uid} / {title:?} does not exist"));
        }
    }

    // Provisioning and README.
    let yaml = |name: &str| -> Value {
        let text = std::fs::read_to_string(dashboards_dir().join("provisioning").join(name)).unwrap_or_else(|e| panic!("provisioning/{name}: {e}"));
        serde_norway::from_str(&text).unwrap_or_else(|e| panic!("provisioning/{name}: not YAML: {e}"))
    };
    let ds = yaml("datasource.yml");
    let prom = ds["datasources"].as_array().into_iter().flatten().find(|d| d["type"] == "prometheus");
    match prom {
        Some(p) if p["url"].as_str().is_some_and(|u| u.starts_with("http")) => {}
        _ => bad("provisioning/datasource.yml", "needs a datasource of type prometheus with a url".into()),
    }
    let dbs = yaml("dashboards.yml");
    let file_provider = dbs["providers"].as_array().into_iter().flatten().find(|p| p["type"] == "file");
    if file_provider.is_none_or(|p| p["options"]["path"].as_str().is_none_or(|s| s.is_empty())) {
        bad("provisioning/dashboards.yml", "needs a provider of type file with options.path".into());
    }
    let readme = std::fs::read_to_string(dashboards_dir().join("README.md")).unwrap_or_default();
    for d in &dashboards {
        if !readme.contains(&d.file) {
            bad("dashboards/README.md", format!("does not mention {}", d.file));
        }
        for v in &d.variables {
            if !readme.contains(&format!("`{}`", v.name)) {
                bad("dashboards/README.md", format!("does not describe the variable `{}`", v.name));
            }
        }
    }

    let count: usize = dashboards.iter().map(|d| d.panels.len()).sum();
    eprintln!("{} dashboards, {count} panels (rows included) checked", dashboards.len());
    assert!(problems.is_empty(), "{} problems:\n{}", problems.len(), problems.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// Real Prometheus.

struct Row {
    dashboard: String,
    panel: String,
    query: String,
    result: String,
    ok: bool,
}

/// Panels whose value, with every sensor selected, must be the sum of the value of each sensor
/// alone (dashboard uid, panel title): the dashboards add sensors up.
const SUMS_ACROSS_SENSORS: &[(&str, &str)] = &[
    ("shadowtap-overview", "Devices seen"),
    ("shadowtap-policy", "Devices under exemptions"),
    ("shadowtap-service", "Devices"),
    ("shadowtap-health", "Sensors up"),
];

/// Starts `shadowtap run` replaying pcaps/ on `port` and waits until it has read them all.
fn start_sensor(tmp: &TempDir, name: &'static str, port: u16) -> Proc {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_shadowtap"));
    cmd.current_dir(root())
        .args(["run", "--config", "rules/config.toml", "--pcap", "pcaps"])
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"));
    let mut sensor = Proc::spawn(name, cmd, tmp.0.join(format!("{name}.log")));
    let ready = wait_until(READY_TIMEOUT, &mut [&mut sensor], "replaying pcaps/ (waiting for /readyz)", || {
        http_get(port, "/readyz").is_ok_and(|r| r.status == 200)
    });
    assert!(ready, "{name}: /readyz not 200 within {READY_TIMEOUT:?}");
    sensor
}

#[test]
fn dashboard_queries_return_data() {
    let dashboards = load_dashboards();
    let rules = root().join(RULES_FILE);

    let tmp = TempDir::new();
    let [port_a, port_b, prometheus_port] = free_ports::<3>();

    // Two sensors on the bundled captures (as two segments of one organisation would be).
    let mut sensor_a = start_sensor(&tmp, "sensor-a", port_a);
    let mut sensor_b = start_sensor(&tmp, "sensor-b", port_b);

    // Prometheus scraping both every second and evaluating the recording rules.
    let mut prom = start_prometheus(
        &tmp,
        prometheus_port,
        &format!(
            "rule_files:\n  - '{}'\nscrape_configs:\n  - job_name: shadowtap\n    static_configs:\n      \
             - targets: ['127.0.0.1:{port_a}', '127.0.0.1:{port_b}']\n",
            rules.display()
        ),
        &[],
    );
    let first = |promql: &str| first_value(prometheus_port, promql);
    let up = wait_until(READY_TIMEOUT, &mut [&mut prom, &mut sensor_a, &mut sensor_b], "waiting for both sensors up", || {
        first("sum(up{job=\"shadowtap\"})") == Some(2.0)
    });
    assert!(up, "Prometheus did not scrape both sensors successfully within {READY_TIMEOUT:?}");
    // rate() and increase() need two samples in their range: wait for at least 6 scrapes.
    let scraped = wait_until(Duration::from_secs(30), &mut [&mut prom, &mut sensor_a, &mut sensor_b], "waiting for 6 scrapes", || {
        first("min(count_over_time(up{job=\"shadowtap\"}[1m]))").is_some_and(|n| n >= 6.0)
    });
    assert!(scraped, "Prometheus did not scrape the sensors 6 times within 30 s");
    // Rules over rate(...[5m]) have a value once their inputs have two samples.
    let evaluated = wait_until(Duration::from_secs(30), &mut [&mut prom, &mut sensor_a, &mut sensor_b], "waiting for the recording rules", || {
        first("count(shadowtap:flows:rate5m)").is_some()
    });
    assert!(evaluated, "the recording rules of {RULES_FILE} gave no shadowtap:flows:rate5m within 30 s");

    let mut rows: Vec<Row> = Vec::new();
    for d in &dashboards {
        // Variable queries: label_values(selector, label) must offer at least one value.
        for v in d.variables.iter().filter(|v| v.kind == "query") {
            let (selector, label_name) = label_values(v.definition.as_deref().unwrap()).expect("label_values (checked by the lint)");
            let promql = format!("count by ({label_name}) ({})", substitute(&selector, &d.variables));
            let (result, ok) = match try_query(prometheus_port, &promql) {
                Ok(r) if !r.is_empty() => {
                    let values: Vec<&str> = r.iter().map(|s| label(s, &label_name)).collect();
                    (format!("{} values: {}", r.len(), values.join(", ")), true)
                }
                Ok(_) => ("no values".to_string(), false),
                Err(e) => (format!("ERROR {e}"), false),
            };
            rows.push(Row { dashboard: d.uid.clone(), panel: format!("variable ${}", v.name), query: promql, result, ok });
        }
        for p in d.panels.iter().filter(|p| p.kind != "row") {
            let empty = EXPECTED_EMPTY.iter().find(|(u, t, _)| *u == d.uid && *t == p.title).map(|(_, _, why)| *why);
            for t in &p.targets {
                let promql = substitute(&t.expr, &d.variables);
                let (result, ok) = match try_query(prometheus_port, &promql) {
                    Err(e) => (format!("ERROR {e}"), false),
                    Ok(r) if r.is_empty() => match empty {
                        Some(why) => (format!("0 series, expected: {why}"), true),
                        None => ("0 series".to_string(), false),
                    },
                    Ok(r) => {
                        let first = r.first().map(value).unwrap_or(f64::NAN);
                        let note = if empty.is_some() { " (listed in EXPECTED_EMPTY)" } else { "" };
                        (format!("{} series, first {first}{note}", r.len()), true)
                    }
                };
                let panel = if p.targets.len() > 1 { format!("{} [{}]", p.title, t.ref_id) } else { p.title.clone() };
                rows.push(Row { dashboard: d.uid.clone(), panel, query: promql, result, ok });
            }
        }
    }

    // Several sensors: with every sensor selected, a summing panel shows the sum of each
    // sensor's own value (both replay the same captures, so twice either).
    for (uid, title) in SUMS_ACROSS_SENSORS {
        let d = dashboards.iter().find(|d| d.uid == *uid).unwrap_or_else(|| panic!("no dashboard {uid}"));
        let p = d.panels.iter().find(|p| p.title == *title).unwrap_or_else(|| panic!("no panel {uid} / {title}"));
        let expr = &p.targets[0].expr;
        let at = |sensor: &str| {
            let promql = substitute_with(expr, &d.variables, &[("sensor", sensor)]);
            let r = try_query(prometheus_port, &promql).unwrap_or_else(|e| panic!("{promql}: {e}"));
            assert_eq!(r.len(), 1, "{uid} / {title}: one value expected from {promql}: {r:?}");
            value(&r[0])
        };
        let (all, a, b) = (at(".*"), at(&format!("127.0.0.1:{port_a}")), at(&format!("127.0.0.1:{port_b}")));
        let ok = a > 0.0 && a == b && all == a + b;
        rows.push(Row {
            dashboard: uid.to_string(),
            panel: format!("{title} (sensors: all = a + b)"),
            query: substitute(expr, &d.variables),
            result: format!("all {all}, sensor a {a}, sensor b {b}"),
            ok,
        });
    }

    eprintln!("{:<22} {:<58} result", "dashboard", "panel");
    for r in &rows {
        eprintln!("{:<22} {:<58} {}{}", r.dashboard, r.panel, r.result, if r.ok { "" } else { "  <-- FAIL" });
    }
    let failed: Vec<String> =
        rows.iter().filter(|r| !r.ok).map(|r| format!("{} / {}: {}\n    {}", r.dashboard, r.panel, r.result, r.query)).collect();

    if prom.terminate(EXIT_TIMEOUT).is_none() {
        eprintln!("prometheus did not stop within {EXIT_TIMEOUT:?} of SIGTERM; killing it");
    }
    for s in [&mut sensor_a, &mut sensor_b] {
        if s.terminate(EXIT_TIMEOUT).is_none() {
            eprintln!("{} did not stop within {EXIT_TIMEOUT:?} of SIGTERM; killing it", s.name);
        }
    }
    assert!(failed.is_empty(), "{} of {} queries failed:\n{}", failed.len(), rows.len(), failed.join("\n"));
    drop(prom);
    drop(sensor_a);
    drop(sensor_b);
    drop(tmp);
}
