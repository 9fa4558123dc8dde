//! The HTTP side of `shadowtap run` under abuse, with the real binary under systemd's default
//! descriptor limit (`prlimit --nofile=1024`): with 1,100 idle connections open, `/metrics`
//! still answers, and the connection cap shows what it did; a client that sends its request
//! head one byte a second is cut off by the header-read timeout, and an oversized head is
//! refused.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use common::root;
use common::stack::{free_ports, http_get, on_path, sample, Proc, TempDir, READY_TIMEOUT};

/// Idle connections opened against the sensor: more than its descriptor limit.
const IDLE_CONNECTIONS: usize = 1_100;

fn start(tmp: &TempDir, port: u16) -> Proc {
    let prlimit = on_path("prlimit").expect("prlimit (util-linux) is needed to run the sensor under a descriptor limit");
    let mut cmd = Command::new(prlimit);
    cmd.current_dir(root())
        .args(["--nofile=1024:1024", env!("CARGO_BIN_EXE_shadowtap"), "run", "--config", "rules/config.toml", "--pcap", "pcaps"])
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"));
    let mut p = Proc::spawn("shadowtap", cmd, tmp.0.join("sensor.log"));
    let t = Instant::now();
    while !http_get(port, "/readyz").is_ok_and(|r| r.status == 200) {
        p.assert_running("replaying pcaps/");
        assert!(t.elapsed() < READY_TIMEOUT, "not ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    p
}

#[test]
fn metrics_answer_with_more_idle_connections_than_descriptors() {
    let tmp = TempDir::new();
    let [port] = free_ports::<1>();
    let mut sensor = start(&tmp, port);
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    // This process needs more than 1,100 descriptors itself: raise its soft limit if it can
    // (a no-op where it is already higher).
    let _ = Command::new(on_path("prlimit").unwrap()).args(["--pid", &std::process::id().to_string(), "--nofile=4096:"]).status();
    let mut idle = Vec::with_capacity(IDLE_CONNECTIONS);
    let opening = Instant::now();
    for _ in 0..IDLE_CONNECTIONS {
        if let Ok(s) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            idle.push(s);
        }
    }
    eprintln!("{} of {IDLE_CONNECTIONS} idle connections opened in {:?}", idle.len(), opening.elapsed());
    assert_eq!(idle.len(), IDLE_CONNECTIONS, "this test needs 1,100 connections of its own: raise `ulimit -n` above 1,200");
    sensor.assert_running("holding idle connections");
    let t = Instant::now();
    let scrape = http_get(port, "/metrics").expect("/metrics answers with 1,100 idle connections open");
    let took = t.elapsed();
    eprintln!("scrape with {} idle connections open: {took:?}", idle.len());
    assert_eq!(scrape.status, 200);
    assert!(scrape.body.contains("shadowtap_flows_total"), "{}", scrape.body);
    let evicted = sample(&scrape.body, "shadowtap_http_connections_total", &[("event", "evicted")]).unwrap_or(0.0);
    assert_eq!(sample(&scrape.body, "shadowtap_http_connections_total", &[("event", "rejected")]), Some(0.0), "idle connections make room; none is refused");
    let open = sample(&scrape.body, "shadowtap_http_connections_open", &[]).unwrap_or(f64::MAX);
    assert!(evicted as usize + 256 >= IDLE_CONNECTIONS, "the cap evicted {evicted}");
    assert!(open <= 256.0, "{open} connections open beyond the cap");
    drop(idle);
}

#[test]
fn a_slow_request_head_is_cut_off() {
    let tmp = TempDir::new();
    let [port] = free_ports::<1>();
    let _sensor = start(&tmp, port);
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(900))).unwrap();
    let head = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: a-very-slow-client\r\n\r\n";
    let t = Instant::now();
    let mut closed = false;
    for b in head.iter().take(head.len() - 4) {
        if s.write_all(&[*b]).is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 256];
        match s.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Ok(_) => panic!("the server answered an incomplete head"),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {}
            Err(_) => {
                closed = true;
                break;
            }
        }
        assert!(t.elapsed() < Duration::from_secs(30), "still open after 30 s");
    }
    assert!(closed, "the slow head was read to its end without the connection being closed");
    eprintln!("slow head cut off after {:?}", t.elapsed());
    let body = http_get(port, "/metrics").unwrap().body;
    assert!(sample(&body, "shadowtap_http_connections_total", &[("event", "timed_out")]).unwrap_or(0.0) >= 1.0, "{body}");

    // A head beyond 16 KiB is refused, not buffered.
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let big = format!("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: {}\r\n\r\n", "a".repeat(64 * 1024));
    let _ = s.write_all(big.as_bytes());
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(!answer.starts_with("HTTP/1.1 200"), "a 64 KiB head was served: {}", &answer[..answer.len().min(200)]);
}
