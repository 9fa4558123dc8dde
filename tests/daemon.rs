//! `shadowtap run` through its HTTP endpoints: readiness after the replay, metrics that carry no
//! host identity, the minimum group size, and a clean stop on SIGTERM.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::root;
use common::stack::sample;

struct Daemon(Child, u16);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// GET `path`; returns (status code, body).
fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let code = buf.split(' ').nth(1)?.parse().ok()?;
    Some((code, buf.split_once("\r\n\r\n").map(|x| x.1.to_string()).unwrap_or_default()))
}

fn start(config: &std::path::Path) -> Daemon {
    start_with(config, &["--pcap", "pcaps"])
}

fn start_with(config: &std::path::Path, extra: &[&str]) -> Daemon {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
        .current_dir(root())
        .args(["run", "--listen", &format!("127.0.0.1:{port}"), "--config"])
        .arg(config)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let d = Daemon(child, port);
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(60) {
        if get(port, "/readyz").is_some_and(|(c, _)| c == 200) {
            return d;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("shadowtap run did not become ready");
}

/// A copy of the bundled configuration in a temporary folder (catalog path made absolute),
/// edited by `edit`; returns (folder, config file).
fn temp_config(name: &str, edit: impl Fn(String) -> String) -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("shadowtap-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = std::fs::read_to_string(root().join("rules/config.toml")).unwrap();
    let cfg = cfg.replace("catalog = \"services\"", &format!("catalog = \"{}\"", root().join("rules/services").display()));
    let cfg = cfg.replace("risk = \"risk.toml\"", &format!("risk = \"{}\"", root().join("rules/risk.toml").display()));
    std::fs::write(dir.join("config.toml"), edit(cfg)).unwrap();
    let file = dir.join("config.toml");
    (dir, file)
}

#[test]
fn metrics_after_replay_carry_no_host_identity() {
    let mut d = start(&root().join("rules/config.toml"));
    assert_eq!(get(d.1, "/healthz").unwrap().0, 200);
    let (code, body) = get(d.1, "/metrics").unwrap();
    assert_eq!(code, 200);
    let wa = [("department", "finance"), ("service", "whatsapp"), ("channel", "default"), ("status", "unsanctioned")];
    assert!(sample(&body, "shadowtap_flows_total", &wa).unwrap() >= 1.0, "{body}");
    assert_eq!(sample(&body, "shadowtap_hosts", &[("service", "whatsapp"), ("window", "30d"), ("channel", "default")]), Some(1.0));
    assert_eq!(sample(&body, "shadowtap_privacy_reveal_hosts", &[]), Some(0.0));
    assert!(sample(&body, "shadowtap_build_info", &[]).is_some());
    // Privacy: no address or name of a host of the captures, no SNI, in any metric.
    for needle in ["127.0.0.1", "127.0.0.2", "::1", "192.0.2.", "2001:db8", "web.whatsapp.com", "www.dropbox.com", "drive.google.com"] {
        assert!(!body.contains(needle), "metrics contain {needle}");
    }
    assert!(Command::new("kill").args(["-TERM", &d.0.id().to_string()]).status().unwrap().success());
    let t = Instant::now();
    loop {
        if let Some(st) = d.0.try_wait().unwrap() {
            assert!(st.success(), "exit status {st}");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(10), "no clean stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn default_minimum_group_size_hides_single_hosts() {
    let (dir, config) = temp_config("k", |c| c.replace("min_group_size = 1", "min_group_size = 5"));
    let d = start(&config);
    let (_, body) = get(d.1, "/metrics").unwrap();
    assert!(sample(&body, "shadowtap_flows_total", &[("service", "_suppressed"), ("department", "finance")]).unwrap() > 10.0, "{body}");
    assert!(sample(&body, "shadowtap_flows_total", &[("service", "whatsapp")]).is_none(), "one host is fewer than five");
    assert!(!body.lines().any(|l| l.starts_with("shadowtap_hosts{")), "no host counts of small groups");
    assert!(!body.lines().any(|l| l.starts_with("shadowtap_department_active_hosts{") && !l.ends_with(" 0")));
    assert!(sample(&body, "shadowtap_privacy_suppressed_series", &[]).unwrap() > 0.0);
    assert_eq!(sample(&body, "shadowtap_privacy_min_group_size", &[]), Some(5.0));
    drop(d);
    std::fs::remove_dir_all(&dir).unwrap();
}

fn stop(mut d: Daemon) {
    assert!(Command::new("kill").args(["-TERM", &d.0.id().to_string()]).status().unwrap().success());
    let t = Instant::now();
    while d.0.try_wait().unwrap().is_none() {
        assert!(t.elapsed() < Duration::from_secs(10), "no clean stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn counts_and_windows_continue_across_a_clean_restart() {
    let dir = std::env::temp_dir().join(format!("shadowtap-restart-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let state = dir.to_str().unwrap().to_string();
    let cfg = root().join("rules/config.toml");
    let wa = [("department", "finance"), ("service", "whatsapp"), ("channel", "default"), ("status", "unsanctioned")];

    let d = start_with(&cfg, &["--pcap", "pcaps", "--state-dir", &state]);
    let (_, first) = get(d.1, "/metrics").unwrap();
    let flows = sample(&first, "shadowtap_flows_total", &wa).unwrap();
    assert_eq!(sample(&first, "shadowtap_state_restored", &[]), Some(0.0));
    stop(d);
    let saved = std::fs::read_to_string(dir.join("state.json")).expect("state saved at the clean stop");
    for needle in ["127.0.0.1", "::1", "web.whatsapp.com"] {
        assert!(!saved.contains(needle), "the saved state contains {needle}");
    }

    // The same captures again: counts add up on top of the restored ones.
    let d = start_with(&cfg, &["--pcap", "pcaps", "--state-dir", &state]);
    let (_, second) = get(d.1, "/metrics").unwrap();
    assert_eq!(sample(&second, "shadowtap_state_restored", &[]), Some(1.0));
    assert_eq!(sample(&second, "shadowtap_flows_total", &wa), Some(2.0 * flows));
    // The 30-day window still holds the hosts of the first run (their pseudonyms were kept).
    assert!(sample(&second, "shadowtap_department_active_hosts", &[("department", "finance"), ("window", "30d")]).unwrap() >= 1.0);
    stop(d);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn drops_privileges_after_opening_captures() {
    let uid = std::fs::read_to_string("/proc/self/status").unwrap();
    if !uid.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0")) {
        eprintln!("skipping: not running as root, nothing to drop");
        return;
    }
    // The unprivileged user reads the captures after the switch: give it a copy it can reach
    // wherever the checkout lives.
    let dir = std::env::temp_dir().join(format!("shadowtap-user-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(root().join("pcaps/curl-tls13.pcap"), dir.join("curl-tls13.pcap")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(dir.join("curl-tls13.pcap"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let d = start_with(&root().join("rules/config.toml"), &["--user", "nobody", "--pcap", dir.to_str().unwrap()]);
    let status = std::fs::read_to_string(format!("/proc/{}/status", d.0.id())).unwrap();
    let uids: Vec<&str> = status.lines().find(|l| l.starts_with("Uid:")).unwrap().split_whitespace().skip(1).collect();
    assert!(uids.iter().all(|u| *u != "0"), "still root: {uids:?}");
    let (code, body) = get(d.1, "/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(sample(&body, "shadowtap_flows_total", &[("service", "whatsapp")]).is_some());
    stop(d);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn events_are_ecs_json_lines_without_host_identity() {
    let dir = std::env::temp_dir().join(format!("shadowtap-events-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("events.jsonl");
    let d = start_with(&root().join("rules/config.toml"), &["--pcap", "pcaps", "--events", file.to_str().unwrap()]);
    let (_, body) = get(d.1, "/metrics").unwrap();
    stop(d);
    let text = std::fs::read_to_string(&file).unwrap();
    let events: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let first_use: Vec<&serde_json::Value> = events.iter().filter(|e| e["event"]["action"] == "first-use").collect();
    assert!(
        first_use.iter().any(|e| e["organization"]["department"] == "finance" && e["service"]["id"] == "whatsapp"),
        "{text}"
    );
    assert!(first_use.iter().all(|e| e["service"]["status"] == "unsanctioned"), "no first-use event for sanctioned or exempted use");
    assert_eq!(sample(&body, "shadowtap_events_total", &[("kind", "first-use")]), Some(first_use.len() as f64));
    for needle in ["127.0.0.1", "::1", "web.whatsapp.com", "www.dropbox.com"] {
        assert!(!text.contains(needle), "events contain {needle}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn tls_and_basic_auth_with_an_exporter_toolkit_web_config() {
    let dir = std::env::temp_dir().join(format!("shadowtap-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ok = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", "tls.key", "-out", "tls.crt"])
        .current_dir(&dir)
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success(), "openssl could not make a certificate");
    // bcrypt hash (cost 4) of "s3cret", in the format htpasswd -B writes.
    let web = "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\nbasic_auth_users:\n  prometheus: $2b$04$U3g5wxn6f.4DQruD3DSJEOmeEzugOm99RUEA4tQi7d3PiQCi1FQ4C\n";
    std::fs::write(dir.join("web.yml"), web).unwrap();
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_shadowtap"))
        .current_dir(root())
        .args(["run", "--config", "rules/config.toml", "--pcap", "pcaps/curl-tls13.pcap", "--listen", &format!("127.0.0.1:{port}"), "--web-config"])
        .arg(dir.join("web.yml"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let d = Daemon(child, port);
    let curl = |extra: &[&str]| -> String {
        let out = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5", "--cacert"])
            .arg(dir.join("tls.crt"))
            .args(extra)
            .arg(format!("https://127.0.0.1:{port}/metrics"))
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let t = Instant::now();
    while curl(&["-u", "prometheus:s3cret"]) != "200" {
        assert!(t.elapsed() < Duration::from_secs(30), "no HTTPS answer with the right credentials");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(curl(&[]), "401", "no credentials");
    assert_eq!(curl(&["-u", "prometheus:wrong"]), "401");
    assert!(get(port, "/metrics").is_none_or(|(c, _)| c != 200), "plain HTTP is not served");
    stop(d);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn configured_thresholds_raise_exemption_warnings() {
    // The captures are from 2026-11-23; this test's copy of Legal's exemption ends 2026-12-31,
    // 38 days later (the shipped example's ends years later).
    let (dir, config) = temp_config("warn", |c| {
        assert!(c.contains("expires = 2030-12-31"), "the shipped example exemption moved");
        c.replace("exemption_warn_days = 14", "exemption_warn_days = 60").replace("expires = 2030-12-31", "expires = 2026-12-31")
    });
    let file = dir.join("events.jsonl");
    let d = start_with(&config, &["--pcap", "pcaps", "--events", file.to_str().unwrap()]);
    stop(d);
    let text = std::fs::read_to_string(&file).unwrap();
    let warn: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|e| e["event"]["action"] == "exemption-expiring")
        .collect();
    assert_eq!(warn.len(), 1, "{text}");
    assert_eq!(warn[0]["organization"]["department"], "legal");
    assert_eq!(warn[0]["service"]["id"], "google-drive");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn reveal_hosts_is_visible_and_only_then_events_name_hosts() {
    let (dir, config) = temp_config("reveal", |c| c.replace("reveal_hosts = false", "reveal_hosts = true"));
    let file = dir.join("events.jsonl");
    let d = start_with(&config, &["--pcap", "pcaps", "--events", file.to_str().unwrap()]);
    let (_, body) = get(d.1, "/metrics").unwrap();
    stop(d);
    assert_eq!(sample(&body, "shadowtap_privacy_reveal_hosts", &[]), Some(1.0), "the investigation is itself visible");
    assert!(!body.contains("127.0.0.1"), "metrics never carry hosts");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.lines().all(|l| l.contains("\"source\":{\"ip\":")), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn spoofed_syns_are_counted_apart_and_raise_no_event() {
    let dir = std::env::temp_dir().join(format!("shadowtap-unanswered-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let capture = dir.join("spoofed-and-real.pcap");
    common::capture::spoofed_telegram(true).write(&capture);
    let events = dir.join("events.jsonl");
    // k = 1 (the bundled configuration): nothing is folded, so every count shows.
    let d = start_with(&root().join("rules/config.toml"), &["--pcap", capture.to_str().unwrap(), "--events", events.to_str().unwrap()]);
    let (_, body) = get(d.1, "/metrics").unwrap();
    stop(d);
    let fin = [("department", "finance"), ("service", "telegram")];
    assert_eq!(sample(&body, "shadowtap_unanswered_flows_total", &fin), Some(5.0), "{body}");
    assert_eq!(sample(&body, "shadowtap_flows_total", &fin), Some(1.0), "only the answered flow is use");
    assert_eq!(sample(&body, "shadowtap_hosts", &[("service", "telegram"), ("window", "30d")]), Some(1.0));
    assert_eq!(sample(&body, "shadowtap_department_active_hosts", &[("department", "finance"), ("window", "30d")]), Some(1.0));
    assert_eq!(sample(&body, "shadowtap_unanswered_counted_as_use", &[]), Some(0.0));
    assert!(sample(&body, "shadowtap_unnamed_flows_total", &[("department", "finance"), ("reason", "no_payload")]).is_none(), "an unanswered SYN is not an unnamed flow");
    let text = std::fs::read_to_string(&events).unwrap();
    let first_use: Vec<&str> = text.lines().filter(|l| l.contains("\"first-use\"")).collect();
    assert_eq!(first_use.len(), 1, "one first use, from the answered flow: {text}");

    // Only the five SYNs, under the default k = 5: five hosts name the pair, none is use.
    let (cfg_dir, config) = temp_config("unanswered-k5", |c| c.replace("min_group_size = 1", "min_group_size = 5"));
    let only = dir.join("spoofed.pcap");
    common::capture::spoofed_telegram(false).write(&only);
    let d = start_with(&config, &["--pcap", only.to_str().unwrap(), "--events", events.to_str().unwrap()]);
    let (_, body) = get(d.1, "/metrics").unwrap();
    stop(d);
    assert_eq!(sample(&body, "shadowtap_unanswered_flows_total", &[("department", "finance"), ("service", "_suppressed")]), Some(4.0), "{body}");
    assert_eq!(sample(&body, "shadowtap_unanswered_flows_total", &fin), Some(1.0), "named from the fifth host on");
    assert!(!body.lines().any(|l| l.starts_with("shadowtap_flows_total{")), "no use: {body}");
    assert!(!body.lines().any(|l| l.starts_with("shadowtap_department_active_hosts{") && !l.ends_with(" 0")), "no active host");
    assert_eq!(std::fs::read_to_string(&events).unwrap(), text, "no event from the SYNs");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_dir_all(&cfg_dir).unwrap();
}
