//! A test stack of real components: temporary folders, child processes with logs, and a small
//! HTTP client for `/metrics` and Prometheus's query API (used by the Prometheus, alerting and
//! dashboard tests).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;
pub const READY_TIMEOUT: Duration = Duration::from_secs(60);
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Guards: a temporary directory and child processes, cleaned up on drop.

/// A fresh directory under the system's temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos();
        let dir = std::env::temp_dir().join(format!("shadowtap-prom-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A started process whose stdout and stderr go to `log`; killed on drop if still running (and
/// its log's tail printed when the test is failing).
pub struct Proc {
    pub name: &'static str,
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(name: &'static str, mut cmd: Command, log: PathBuf) -> Proc {
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd.spawn().unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc { name, child, log }
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// Panics, with the log, if the process has exited.
    pub fn assert_running(&mut self, doing: &str) {
        if let Some(status) = self.child.try_wait().unwrap() {
            let log = self.log_tail();
            let hint = if log.contains("unrecognized subcommand") {
                "\n`shadowtap run` does not exist in this build: this test needs the daemon command"
            } else {
                ""
            };
            panic!("{} exited ({status}) while {doing}{hint}\n--- {} log ---\n{log}", self.name, self.name);
        }
    }

    /// Sends SIGTERM (with the system's `kill`) and waits up to `timeout` for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let sent = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(sent.success(), "kill -TERM {} failed", self.name);
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- {} log (tail) ---\n{}", self.name, self.log_tail());
        }
    }
}

// ---------------------------------------------------------------------------------------------
// A minimal HTTP/1.1 client over std::net (GET, Connection: close, chunked bodies).

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub fn http_get(port: u16, target: &str) -> std::io::Result<Response> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(stream, "GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: */*\r\nConnection: close\r\n\r\n")?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("GET {target}: {what}"));
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").ok_or_else(|| bad("no end of headers"))?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad(&format!("bad status line {status_line:?}")))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.to_ascii_lowercase().contains("chunked"));
    if chunked {
        body = dechunk(&body).ok_or_else(|| bad("bad chunked body"))?;
    }
    Ok(Response { status, headers, body: String::from_utf8(body).map_err(|_| bad("body is not UTF-8"))? })
}

pub fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

pub fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Prometheus API.

/// Runs an instant query; returns `data.result` (the vector's elements).
pub fn query(port: u16, promql: &str) -> Vec<Value> {
    let resp = http_get(port, &format!("/api/v1/query?query={}", urlencode(promql)))
        .unwrap_or_else(|e| panic!("query {promql}: {e}"));
    assert_eq!(resp.status, 200, "query {promql}: {}", resp.body);
    let v: Value = serde_json::from_str(&resp.body).unwrap_or_else(|e| panic!("query {promql}: {e}: {}", resp.body));
    assert_eq!(v["status"], "success", "query {promql}: {}", resp.body);
    assert_eq!(v["data"]["resultType"], "vector", "query {promql}: {}", resp.body);
    v["data"]["result"].as_array().cloned().unwrap_or_default()
}

/// Instant query; Err with Prometheus's answer (or the connection error) unless it succeeded.
/// A scalar result comes back as one sample without labels.
pub fn try_query(port: u16, promql: &str) -> Result<Vec<Value>, String> {
    let resp = http_get(port, &format!("/api/v1/query?query={}", urlencode(promql))).map_err(|e| e.to_string())?;
    let v: Value = serde_json::from_str(&resp.body).map_err(|e| format!("{e}: {}", resp.body))?;
    if resp.status != 200 || v["status"] != "success" {
        return Err(format!("HTTP {}: {}", resp.status, v["error"].as_str().unwrap_or(&resp.body)));
    }
    match v["data"]["resultType"].as_str() {
        Some("vector") => Ok(v["data"]["result"].as_array().cloned().unwrap_or_default()),
        Some("scalar") => Ok(vec![serde_json::json!({"metric": {}, "value": v["data"]["result"]})]),
        other => Err(format!("result type {other:?}")),
    }
}

/// The value of an instant query's first sample; None while Prometheus does not answer or the
/// result is empty.
pub fn first_value(port: u16, promql: &str) -> Option<f64> {
    try_query(port, promql).ok()?.first().map(value)
}

/// Polls `check` every 200 ms until it is true or `timeout` passes, asserting that every
/// process of `procs` still runs; says whether it became true.
pub fn wait_until(timeout: Duration, procs: &mut [&mut Proc], doing: &str, mut check: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < timeout {
        for p in procs.iter_mut() {
            p.assert_running(doing);
        }
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// Prometheus (the Debian package) on 127.0.0.1:`port`: writes `prometheus.yml` into `tmp`
/// (scrape and evaluation every second, then `rest`: rule_files, alerting, scrape_configs), has
/// `promtool check config` accept it, and starts it with `extra` arguments.
pub fn start_prometheus(tmp: &TempDir, port: u16, rest: &str, extra: &[&str]) -> Proc {
    let (Some(prometheus), Some(promtool)) = (on_path("prometheus"), on_path("promtool")) else {
        panic!(
            "`prometheus` and `promtool` must be on PATH for this test: run .ci/test, which installs \
             the Debian package `prometheus` (or: apt-get install prometheus)"
        );
    };
    let yml = tmp.0.join("prometheus.yml");
    std::fs::write(&yml, format!("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n{rest}")).unwrap();
    let check = Command::new(&promtool).args(["check", "config"]).arg(&yml).output().unwrap();
    assert!(
        check.status.success(),
        "promtool check config: {}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let mut cmd = Command::new(&prometheus);
    cmd.current_dir(&tmp.0)
        .arg(format!("--config.file={}", yml.display()))
        .arg(format!("--storage.tsdb.path={}", tmp.0.join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=warn")
        .args(extra);
    Proc::spawn("prometheus", cmd, tmp.0.join("prometheus.log"))
}

/// The sample value of one element of a query result.
pub fn value(sample: &Value) -> f64 {
    let text = sample["value"][1].as_str().unwrap_or_else(|| panic!("no value in {sample}"));
    text.parse().unwrap_or_else(|e| panic!("value {text:?}: {e}"))
}

pub fn label<'a>(sample: &'a Value, name: &str) -> &'a str {
    sample["metric"][name].as_str().unwrap_or("")
}

/// Query result as label values (in the order of `by`) -> sample value.
pub fn by_labels(port: u16, promql: &str, by: &[&str]) -> BTreeMap<Vec<String>, f64> {
    let mut out = BTreeMap::new();
    for sample in query(port, promql) {
        let key: Vec<String> = by.iter().map(|l| label(&sample, l).to_string()).collect();
        assert!(out.insert(key.clone(), value(&sample)).is_none(), "{promql}: {key:?} twice");
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Small helpers.

pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|d| d.join(name)).find(|p| p.is_file())
}

/// A port that was free on 127.0.0.1 a moment ago (all asked for at once, so they differ).
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<TcpListener> = (0..N).map(|_| TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    std::array::from_fn(|i| listeners[i].local_addr().unwrap().port())
}


/// The value of the first sample of `metric` in a `/metrics` body whose labels include `labels`.
pub fn sample(body: &str, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    body.lines().filter(|l| l.starts_with(metric) && l[metric.len()..].starts_with(['{', ' '])).find_map(|l| {
        let ok = labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")));
        ok.then(|| l.rsplit(' ').next()?.parse().ok())?
    })
}
