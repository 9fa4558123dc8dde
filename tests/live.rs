//! Live capture through libpcap on the loopback interface (real kernel, real libpcap): an
//! interface that cannot be opened says why, and a DNS query sent over loopback comes out as a
//! DNS flow. The capture test skips, with a message, where capturing is not permitted.

use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn shadowtap() -> Command {
    Command::new(env!("CARGO_BIN_EXE_shadowtap"))
}

#[test]
fn unknown_interface_is_an_error_that_says_why() {
    let out = shadowtap().args(["inspect", "-i", "nosuchif0"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nosuchif0: cannot open"), "{err}");
    assert!(err.contains("ip link") || err.contains("CAP_NET_RAW"), "a hint is given: {err}");
}

/// A DNS query for `name` with id 0x1234.
fn dns_query(name: &str) -> Vec<u8> {
    let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
    for label in name.split('.') {
        q.push(label.len() as u8);
        q.extend_from_slice(label.as_bytes());
    }
    q.extend_from_slice(&[0, 0, 1, 0, 1]);
    q
}

#[test]
fn loopback_capture_reads_a_dns_query() {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    let filter = format!("udp and src port {port}");
    let child = shadowtap()
        .args(["inspect", "-i", "lo", "--no-promisc", "-c", "3", "-f", &filter])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let query = dns_query("web.whatsapp.com");
    let started = Instant::now();
    let pid = child.id();
    // Send until the sensor has seen its three frames and exited (it may start after the first
    // sends); bounded to 20 s.
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    while !waiter.is_finished() && started.elapsed() < Duration::from_secs(20) {
        let _ = sock.send_to(&query, "127.0.0.1:53");
        std::thread::sleep(Duration::from_millis(100));
    }
    if !waiter.is_finished() {
        let _ = Command::new("kill").arg(pid.to_string()).status();
    }
    let out = waiter.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if err.contains("cannot open") {
        eprintln!("skipping: capturing on lo is not permitted here: {err}");
        return;
    }
    assert!(out.status.success(), "{err}");
    let text = String::from_utf8(out.stdout).unwrap();
    let rec: serde_json::Value = serde_json::from_str(text.lines().next().expect("one record")).unwrap();
    assert_eq!(rec["src"], format!("127.0.0.1:{port}"));
    assert_eq!(rec["dst"], "127.0.0.1:53");
    assert_eq!(rec["app"], "dns");
    assert_eq!(rec["dns_queries"][0], "web.whatsapp.com");
    assert_eq!(rec["capture"], "lo");
    assert!(rec["packets_up"].as_u64().unwrap() >= 3);
    assert!(err.contains("lo: received"), "capture statistics are reported: {err}");
}

/// Live records are written as their flows end, not held in an output buffer: with no frame
/// limit, the record of a finished DNS flow is on standard output while `inspect` still runs.
#[test]
fn live_records_are_written_as_flows_end() {
    use std::io::BufRead;
    let dir = std::env::temp_dir().join(format!("shadowtap-live-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    // A configuration whose DNS flows end after 1 idle second.
    let cfg = std::fs::read_to_string(root.join("rules/config.toml")).unwrap();
    let cfg = cfg.replace("catalog = \"services\"", &format!("catalog = \"{}\"", root.join("rules/services").display()));
    let cfg = cfg.replace("risk = \"risk.toml\"", &format!("risk = \"{}\"", root.join("rules/risk.toml").display()));
    std::fs::write(dir.join("config.toml"), format!("{cfg}\n[engine]\ndns_idle_secs = 1\n")).unwrap();
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = sock.local_addr().unwrap().port();
    let mut child = shadowtap()
        .args(["inspect", "-i", "lo", "--no-promisc", "-f", &format!("udp and src port {port}"), "--config"])
        .arg(dir.join("config.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let started = Instant::now();
    let mut line = None;
    while line.is_none() && started.elapsed() < Duration::from_secs(20) && child.try_wait().unwrap().is_none() {
        if started.elapsed() < Duration::from_secs(3) {
            let _ = sock.send_to(&dns_query("web.whatsapp.com"), "127.0.0.1:53");
        }
        line = rx.recv_timeout(Duration::from_millis(200)).ok();
    }
    let running = child.try_wait().unwrap().is_none();
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    std::fs::remove_dir_all(&dir).unwrap();
    if err.contains("cannot open") {
        eprintln!("skipping: capturing on lo is not permitted here: {err}");
        return;
    }
    let line = line.unwrap_or_else(|| panic!("no record while inspect ran\n{err}"));
    assert!(running, "the record came from a running inspect");
    let rec: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(rec["src"], format!("127.0.0.1:{port}"));
    assert_eq!(rec["app"], "dns", "{rec}");
    assert_eq!(rec["end"], "idle", "{rec}");
    assert!(rec["department"].is_string(), "attributed with the configuration: {rec}");
}
