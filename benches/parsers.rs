//! Criterion benchmarks of the hot stages: frame decoding, ClientHello parsing, JA3/JA4, and the
//! whole engine over a real capture held in memory (no libpcap in the timed loop).

use std::path::Path;

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};
use shadowtap::decode::{self, LinkType, Transport};
use shadowtap::engine::{Config, Engine};
use shadowtap::fingerprint::{ja3, ja4};
use shadowtap::proto::tls::{self, ClientHello, RecordScan};
use shadowtap::time::Timestamp;

struct Frames {
    link: LinkType,
    frames: Vec<(Timestamp, Vec<u8>, u32)>,
}

fn load(name: &str) -> Frames {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps").join(name);
    let mut cap = pcap::Capture::from_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let link = LinkType::from_dlt(cap.get_datalink().0).expect("supported link type");
    let mut frames = Vec::new();
    while let Ok(p) = cap.next_packet() {
        // `timeval` fields are 32 bits wide on some targets: the casts are not redundant there.
        #[allow(clippy::unnecessary_cast)]
        let ts = Timestamp::from_parts(p.header.ts.tv_sec as i64, p.header.ts.tv_usec as i64);
        frames.push((ts, p.data.to_vec(), p.header.len));
    }
    Frames { link, frames }
}

/// The first ClientHello of a capture: client payloads concatenated until the record layer says
/// the handshake message is complete (the capture's segments are in order).
fn first_hello(f: &Frames) -> Vec<u8> {
    let mut stream = Vec::new();
    let mut msg = Vec::new();
    let mut ports = None;
    for (_, data, _) in &f.frames {
        if let Ok(p) = decode::decode(f.link, data) {
            if let Transport::Tcp(t) = p.transport {
                if ports.is_none() && t.payload.starts_with(&[0x16, 0x03]) {
                    ports = Some((t.src_port, t.dst_port));
                }
                if ports == Some((t.src_port, t.dst_port)) && !t.payload.is_empty() {
                    stream.extend_from_slice(t.payload);
                    if let RecordScan::Complete { msg_len } = tls::first_handshake(&stream, &mut msg) {
                        msg.truncate(msg_len);
                        return msg;
                    }
                }
            }
        }
    }
    panic!("no ClientHello found");
}

fn benches(c: &mut Criterion) {
    let chromium = load("chromium-pq.pcap");
    let hello = first_hello(&chromium);
    let ch = ClientHello::parse(&hello).expect("hello parses");

    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(chromium.frames.len() as u64));
    g.bench_function("chromium-pq frames", |b| {
        b.iter(|| {
            for (_, data, _) in &chromium.frames {
                let _ = black_box(decode::decode(chromium.link, black_box(data)));
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("tls");
    g.throughput(Throughput::Bytes(hello.len() as u64));
    g.bench_function("ClientHello::parse chromium-pq", |b| b.iter(|| ClientHello::parse(black_box(&hello))));
    g.bench_function("ja3", |b| b.iter(|| ja3::ja3(black_box(&ch))));
    g.bench_function("ja4", |b| b.iter(|| ja4::ja4(black_box(&ch), ja4::Protocol::Tcp)));
    g.finish();

    let mut g = c.benchmark_group("engine");
    g.throughput(Throughput::Elements(chromium.frames.len() as u64));
    g.bench_function("chromium-pq capture", |b| {
        b.iter(|| {
            let mut e = Engine::new(Config::default());
            for (ts, data, len) in &chromium.frames {
                e.handle(*ts, Some(chromium.link), data, *len);
            }
            e.finish();
            black_box(e.records.len())
        })
    });
    g.finish();
}

criterion_group!(parsers, benches);
criterion_main!(parsers);
