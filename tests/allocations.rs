//! Allocations on the packet path, counted by a counting global allocator around the system's:
//! how many a TLS flow costs from SYN to FIN, and how many a DNS answer costs. Every flow of
//! `pcaps/curl-tls13.pcap` (five TLS 1.3 handshakes by curl) and every exchange of
//! `pcaps/dns-udp.pcap` is replayed many times under other client ports, and the cost per flow
//! is the difference between 1 and 1 + N replays divided by N, so one-off costs (the table's
//! first growth, the engine's buffers) are not charged to flows.
//!
//! The throughput issue's budget: at most [`TLS_FLOW_BUDGET`] allocations per TLS flow and
//! none per DNS answer beyond the flow's own record: at most [`DNS_EXCHANGE_BUDGET`] per DNS
//! exchange, whatever its number of answers ([`no_allocation_per_dns_answer`] compares one
//! answer with many), and none at all for reading a message ([`dns_view_reads_without_allocating`]).
//! The figures are printed either way. Reading a capture file whose batches' vectors are handed
//! back ([`reading_a_capture_allocates_nothing_per_batch`]) allocates nothing per batch.
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

std::thread_local! {
    /// Allocations of this thread, for measures that must not see the test harness's threads.
    static THREAD_ALLOCS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

fn count() {
    ALLOCS.fetch_add(1, Ordering::Relaxed);
    // A const-initialised cell needs no allocation; during thread teardown it may be gone.
    let _ = THREAD_ALLOCS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: forwards every call to the system allocator unchanged; only counts.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract is System's.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        count();
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

/// Allocations allowed per DNS exchange (one UDP flow: a query and its response) of
/// `pcaps/dns-udp.pcap`, 12.6 measured (29.6 when every answer copied its names). All of them
/// are the flow's, none an answer's (see [`no_allocation_per_dns_answer`]): the flow's details
/// and DNS summary (its box, name arena, query and answer entries), one copy of the question
/// name shared by the events of all the addresses answered, the record the flow ends with, and,
/// since this capture's answers give the DNS server's own address (127.0.0.1), the names the
/// cache already holds for the flow's server (`names_from_dns`).
const DNS_EXCHANGE_BUDGET: f64 = 14.0;

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
    per_flow_of(&frames(name), server_port, n)
}

/// [`per_flow`] of frames built here.
fn per_flow_of(f: &[Owned], server_port: u16, n: u16) -> f64 {
    let (one, flows_one) = allocations(f, server_port, 1);
    let (many, flows_many) = allocations(f, server_port, 1 + n);
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
    assert!(dns <= DNS_EXCHANGE_BUDGET, "{dns:.1} allocations per DNS exchange, budget {DNS_EXCHANGE_BUDGET}");
}

/// A UDP frame from `src` to `dst` (Ethernet, IPv4 without options), in the link type and at
/// the time of the first frame of `pcaps/dns-udp.pcap`, `micros` later.
fn udp_frame(template: &Owned, micros: i64, src: ([u8; 4], u16), dst: ([u8; 4], u16), payload: &[u8]) -> Owned {
    let mut d = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    let ip_len = (20 + 8 + payload.len()) as u16;
    d.extend_from_slice(&[0x45, 0, ip_len.to_be_bytes()[0], ip_len.to_be_bytes()[1], 0, 1, 0x40, 0, 64, 17, 0, 0]);
    d.extend_from_slice(&src.0);
    d.extend_from_slice(&dst.0);
    d.extend_from_slice(&src.1.to_be_bytes());
    d.extend_from_slice(&dst.1.to_be_bytes());
    d.extend_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    d.extend_from_slice(&[0, 0]);
    d.extend_from_slice(payload);
    let len = d.len() as u32;
    (Timestamp(template.0 .0 + micros), template.1, d, len)
}

/// Query for `cdn.example.com` A.
const QUERY: &[u8] = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03cdn\x07example\x03com\x00\x00\x01\x00\x01";

/// One DNS exchange over UDP: [`QUERY`], then a response with `answers` A records for
/// `cdn.example.com`, each a different address (the owner a pointer to the question).
fn dns_exchange(answers: u8) -> Vec<Owned> {
    let template = &frames("dns-udp.pcap")[0];
    let mut response = QUERY.to_vec();
    response[2] = 0x81;
    response[3] = 0x80;
    response[7] = answers;
    for i in 0..answers {
        response.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x01, 0x2c, 0, 4, 198, 51, 100, i]);
    }
    let (client, server) = (([10, 0, 0, 1], 40000), ([10, 0, 0, 53], 53));
    vec![udp_frame(template, 0, client, server, QUERY), udp_frame(template, 1000, server, client, &response)]
}

/// Answers in the large response of [`no_allocation_per_dns_answer`].
const MANY_ANSWERS: u8 = 24;

#[test]
fn no_allocation_per_dns_answer() {
    let _turn = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let one = per_flow_of(&dns_exchange(1), 53, 200);
    let many = per_flow_of(&dns_exchange(MANY_ANSWERS), 53, 200);
    eprintln!("allocations per DNS exchange with 1 answer: {one:.2}; with {MANY_ANSWERS} answers: {many:.2}");
    assert!(one > 0.0, "the counter counts");
    // One allocation per answer would add 23 per exchange; growth of the flow's vectors that is
    // not reserved up front would add a few. Neither may happen.
    assert!(
        many - one < 0.5,
        "{MANY_ANSWERS} answers cost {:.2} allocations more than 1 answer",
        many - one
    );
}

/// Reading a message through `MessageView` allocates nothing: the header, every question and
/// answer (CNAME, HTTPS with ALPN and ECH, A, AAAA), the names lowered into a reused buffer,
/// compared, and the CNAME chain walked. Counted on this thread only, and exactly.
#[test]
fn dns_view_reads_without_allocating() {
    use shadowtap::proto::dns::{MessageView, RDataRef};
    let _turn = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut msg = QUERY.to_vec();
    msg[2] = 0x81;
    msg[3] = 0x80;
    msg[7] = 4;
    // cdn.example.com CNAME edge.example.com (pointer into the question).
    msg.extend_from_slice(&[0xc0, 0x0c, 0, 5, 0, 1, 0, 0, 0, 60, 0, 7, 4, b'e', b'd', b'g', b'e', 0xc0, 0x10]);
    let edge = [0xc0, 0x2d];
    // edge HTTPS 1 . alpn=h3,h2 ech (3 bytes).
    msg.extend_from_slice(&edge);
    msg.extend_from_slice(&[0, 65, 0, 1, 0, 0, 0, 60, 0, 20, 0, 1, 0, 0, 1, 0, 6, 2, b'h', b'3', 2, b'h', b'2', 0, 5, 0, 3, 1, 2, 3]);
    msg.extend_from_slice(&edge);
    msg.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 30, 0, 4, 192, 0, 2, 1]);
    msg.extend_from_slice(&edge);
    msg.extend_from_slice(&[0, 28, 0, 1, 0, 0, 0, 30, 0, 16, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    let mut names = Vec::with_capacity(1024);
    let before = THREAD_ALLOCS.with(std::cell::Cell::get);
    let (mut answers, mut alpn, mut addrs) = (0, 0, 0);
    for _ in 0..100 {
        let m = MessageView::parse(&msg).expect("valid message");
        names.clear();
        let q = m.questions().next().expect("a question");
        q.name.write_into(&mut names);
        for r in m.answers() {
            answers += 1;
            r.name.write_into(&mut names);
            assert!(r.name.eq_ignore_case(&r.name));
            match r.data {
                RDataRef::Cname(n) => n.write_into(&mut names),
                RDataRef::Https(s) => {
                    s.target.write_into(&mut names);
                    alpn += s.alpn().count();
                }
                _ => {}
            }
        }
        m.resolved_addresses(|_, ttl| {
            assert_eq!(ttl, 30);
            addrs += 1;
        });
    }
    let allocated = THREAD_ALLOCS.with(std::cell::Cell::get) - before;
    assert_eq!(
        std::str::from_utf8(&names).unwrap(),
        "cdn.example.comcdn.example.comedge.example.comedge.example.comedge.example.comedge.example.com"
    );
    assert_eq!((answers, alpn, addrs), (400, 200, 200));
    assert_eq!(allocated, 0, "allocations while reading 100 messages through the view");
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


/// The reader's batches: with each batch's vector handed back (`capture::file::recycle`, as the
/// pipeline does), reading a capture allocates nothing after its first batch; without, one
/// vector per batch (so the measure can tell).
#[test]
fn reading_a_capture_allocates_nothing_per_batch() {
    use shadowtap::capture::file::recycle;
    let _turn = SERIAL.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps").join("curl-tls13.pcap");
    let mine = || THREAD_ALLOCS.with(std::cell::Cell::get);
    // (batches, frames, allocations after the first batch)
    let read = |reuse: bool| {
        let mut r = FileReader::open(&path).unwrap();
        let (mut batches, mut frames, mut spare, mut after_first) = (0u64, 0usize, Vec::new(), 0);
        loop {
            let (batch, next) = if reuse { r.next_batch_in(std::mem::take(&mut spare)) } else { r.next_batch() };
            batches += 1;
            frames += batch.len();
            if batches == 1 {
                after_first = mine();
            }
            if reuse {
                spare = recycle(batch);
            }
            if next != Next::More {
                return (batches, frames, mine() - after_first);
            }
        }
    };
    let (batches, frames, reused) = read(true);
    let (_, same_frames, fresh) = read(false);
    eprintln!("{batches} batches, {frames} frames: {reused} allocations after the first batch with vectors handed back, {fresh} without");
    assert!(batches > 3, "the capture spans several batches");
    assert_eq!(frames, same_frames);
    assert_eq!(reused, 0, "no allocation per batch");
    assert!(fresh >= batches - 1, "without handing back, each batch allocates (the measure counts)");
}
