//! Allocations on the packet path, counted by a counting global allocator around the system's:
//! how many a TLS flow costs from SYN to FIN, and how many a DNS answer costs. Every flow of
//! `pcaps/curl-tls13.pcap` (five TLS 1.3 handshakes by curl) and every exchange of
//! `pcaps/dns-udp.pcap` is replayed many times under other client ports, and the cost per flow
//! is the difference between 1 and 1 + N replays divided by N, so one-off costs (the table's
//! first growth, the engine's buffers) are not charged to flows.
//!
//! The throughput issue's budget: at most [`TLS_FLOW_BUDGET`] allocations per TLS flow and
//! none per DNS answer beyond the flow's own record. The figures are printed either way.
//!
//! Past the engine, the daemon's per-flow path (`Classifier::attribute`, `Aggregator::add`,
//! `Rollup::add`) is counted the same way over the records of the TLS capture, within
//! [`ACCOUNT_BUDGET`]: the groups are keyed by interned ids, so counting a flow in groups that
//! already exist allocates nothing.

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use shadowtap::aggregate::Aggregator;
use shadowtap::capture::file::{FileReader, Next};
use shadowtap::config::Settings;
use shadowtap::engine::FlowRecord;
use shadowtap::store::keys::Keyring;
use shadowtap::store::rollup::Rollup;
use shadowtap::decode::LinkType;
use shadowtap::engine::{Config, Engine};
use shadowtap::time::Timestamp;

mod common;

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.realloc(p, l, n) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// The counter is process-wide: the tests of this file take turns.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Allocations allowed per TLS flow (the target).
const TLS_FLOW_BUDGET: u64 = 20;

/// Allocations allowed per finished flow in attribution, aggregation and the rollup.
const ACCOUNT_BUDGET: f64 = 2.0;

type Owned = (Timestamp, Option<LinkType>, Vec<u8>, u32);

fn frames(name: &str) -> Vec<Owned> {
    let mut r = FileReader::open(&Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps").join(name)).unwrap();
    let mut out = Vec::new();
    loop {
        let (batch, st) = r.next_batch();
        out.extend(batch.iter().map(|f| (f.ts, f.link, f.data.to_vec(), f.wire_len)));
        if st != Next::More {
            return out;
        }
    }
}

/// The frames with every client port (the one that is not `server_port`) moved by `shift`,
/// and times moved by `shift` seconds: Ethernet, IPv4, TCP or UDP only (the captures are).
fn replay(frames: &[Owned], server_port: u16, shift: u16) -> Vec<Owned> {
    frames
        .iter()
        .map(|(ts, link, data, len)| {
            let mut d = data.clone();
            assert_eq!(&d[12..14], &[0x08, 0x00], "IPv4 over Ethernet");
            let l4 = 14 + usize::from(d[14] & 0x0f) * 4;
            for at in [l4, l4 + 2] {
                let port = u16::from_be_bytes([d[at], d[at + 1]]);
                if port != server_port {
                    d[at..at + 2].copy_from_slice(&port.wrapping_add(shift).to_be_bytes());
                }
            }
            (ts.plus_secs(u64::from(shift)), *link, d, *len)
        })
        .collect()
}

/// Allocations made while an engine reads `times` replays of `frames` and ends their flows.
fn allocations(frames: &[Owned], server_port: u16, times: u16) -> (u64, usize) {
    let all: Vec<Owned> = (0..times).flat_map(|i| replay(frames, server_port, i * 7)).collect();
    let mut e = Engine::new(Config::default());
    let before = ALLOCS.load(Ordering::Relaxed);
    for (ts, link, data, len) in &all {
        e.handle(*ts, *link, data, *len);
    }
    e.finish();
    let after = ALLOCS.load(Ordering::Relaxed);
    (after - before, e.records.len())
}

/// Allocations per flow: (cost of 1 + n replays − cost of 1) / (flows of n replays).
fn per_flow(name: &str, server_port: u16, n: u16) -> f64 {
    let f = frames(name);
    let (one, flows_one) = allocations(&f, server_port, 1);
    let (many, flows_many) = allocations(&f, server_port, 1 + n);
    assert_eq!(flows_many, flows_one * (1 + usize::from(n)), "every replay is its own flows");
    (many - one) as f64 / (flows_many - flows_one) as f64
}

#[test]
fn allocations_per_tls_flow_and_per_dns_answer() {
    let _turn = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let tls = per_flow("curl-tls13.pcap", 8443, 200);
    let dns = per_flow("dns-udp.pcap", 53, 200);
    eprintln!("allocations per TLS flow (curl, TLS 1.3, SYN to FIN): {tls:.1}; per DNS exchange: {dns:.1}");
    assert!(tls > 0.0 && dns > 0.0, "the counter counts");
    assert!(tls <= TLS_FLOW_BUDGET as f64, "{tls:.1} allocations per TLS flow, budget {TLS_FLOW_BUDGET}");
}

/// The records of `times` replays of `frames`, in the order the engine ended them.
fn records(frames: &[Owned], server_port: u16, times: u16) -> Vec<FlowRecord> {
    let mut e = Engine::new(Config::default());
    for (ts, link, data, len) in (0..times).flat_map(|i| replay(frames, server_port, i * 7)) {
        e.handle(ts, link, &data, len);
    }
    e.finish();
    std::mem::take(&mut e.records)
}

/// Allocations made while the daemon's sink attributes, aggregates and rolls up `records`.
fn account(settings: &Settings, records: &[FlowRecord]) -> u64 {
    let mut agg = Aggregator::new(settings.privacy).unwrap();
    let mut rollup = Rollup::new(Keyring::default(), "s1", 7);
    let c = &settings.classifier;
    let before = ALLOCS.load(Ordering::Relaxed);
    for r in records {
        let a = c.attribute(r);
        agg.add(r, &a, &c.catalog);
        rollup.add(r, &a, &c.catalog);
    }
    ALLOCS.load(Ordering::Relaxed) - before
}

#[test]
fn allocations_per_flow_past_the_engine() {
    let _turn = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = std::env::temp_dir().join(format!("shadowtap-alloc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("config.toml");
    std::fs::write(&path, common::bundled_config()).unwrap();
    let settings = Settings::load(&path).unwrap_or_else(|e| panic!("{e:?}"));
    std::fs::remove_dir_all(&dir).unwrap();
    let f = frames("curl-tls13.pcap");
    let n = 200;
    let (one, many) = (records(&f, 8443, 1), records(&f, 8443, 1 + n));
    assert_eq!(many.len(), one.len() * (1 + usize::from(n)));
    let per_flow = (account(&settings, &many) - account(&settings, &one)) as f64 / (many.len() - one.len()) as f64;
    eprintln!("allocations per finished flow in attribute + aggregate + rollup: {per_flow:.2}");
    assert!(per_flow <= ACCOUNT_BUDGET, "{per_flow:.2} allocations per flow, budget {ACCOUNT_BUDGET}");
}
