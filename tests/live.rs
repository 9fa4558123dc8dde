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
