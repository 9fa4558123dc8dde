//! TCP cutting tricks against the engine, built in memory from curl's real ClientHello
//! (`pcaps/curl-tls13.pcap`): however the hello is cut, reordered, preceded by a decoy or put in
//! a SYN, the flow is named by the bytes the server accepted, and the record says when it is
//! suspect. The same classes as files, for other tools, are in `pcaps/evasion/`.

use std::path::Path;

use etherparse::PacketBuilder;
use shadowtap::capture::file::{FileReader, Next};
use shadowtap::decode::{self, Frame, Transport};
use shadowtap::engine::{Config, Engine, Evasion, FlowRecord};
use shadowtap::time::Timestamp;

const CLIENT: [u8; 4] = [10, 20, 0, 11];
const SERVER: [u8; 4] = [192, 0, 2, 80];
const CPORT: u16 = 40_000;
const ISN: u32 = 1_000;
const SISN: u32 = 900_000;

/// The client's first TLS record of the curl flow to web.whatsapp.com.
fn curl_hello() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/curl-tls13.pcap");
    let mut r = FileReader::open(&path).unwrap();
    loop {
        let (batch, st) = r.next_batch();
        for f in batch {
            let Ok(p) = decode::decode(f.link.unwrap(), f.data) else { continue };
            if let Transport::Tcp(t) = p.transport {
                if t.dst_port == 8443 && t.payload.first() == Some(&22) && t.payload.windows(16).any(|w| w == b"web.whatsapp.com") {
                    return t.payload.to_vec();
                }
            }
        }
        assert_eq!(st, Next::More, "no hello in the capture");
    }
}

/// The same record with its server name replaced by one of the same length.
fn with_sni(record: &[u8], name: &[u8; 16]) -> Vec<u8> {
    let at = record.windows(16).position(|w| w == b"web.whatsapp.com").unwrap();
    let mut out = record.to_vec();
    out[at..at + 16].copy_from_slice(name);
    out
}

/// One packet of the flow, as a frame.
struct Seg {
    to_server: bool,
    flags: &'static str,
    seq: u32,
    ack: u32,
    payload: Vec<u8>,
}

fn seg(to_server: bool, flags: &'static str, seq: u32, ack: u32, payload: &[u8]) -> Seg {
    Seg { to_server, flags, seq, ack, payload: payload.to_vec() }
}

fn frame(s: &Seg) -> Vec<u8> {
    let (src, dst, sp, dp) = if s.to_server { (CLIENT, SERVER, CPORT, 443) } else { (SERVER, CLIENT, 443, CPORT) };
    let mut b = PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]).ipv4(src, dst, 64).tcp(sp, dp, s.seq, 64_000);
    for f in s.flags.chars() {
        b = match f {
            'S' => b.syn(),
            'A' => b.ack(s.ack),
            'F' => b.fin(),
            'R' => b.rst(),
            'P' => b.psh(),
            _ => unreachable!("flag {f}"),
        };
    }
    let mut out = Vec::new();
    b.write(&mut out, &s.payload).unwrap();
    out
}

/// Runs the packets through a fresh engine, one per millisecond, and returns the one flow.
fn run(segs: &[Seg]) -> FlowRecord {
    let mut e = Engine::new(Config::default());
    let frames: Vec<Vec<u8>> = segs.iter().map(frame).collect();
    let batch: Vec<Frame<'_>> = frames
        .iter()
        .enumerate()
        .map(|(i, f)| Frame {
            ts: Timestamp::from_parts(1_700_000_000, i as i64 * 1000),
            data: f,
            wire_len: f.len() as u32,
            link: Some(decode::LinkType::Ethernet),
            dlt: 1,
        })
        .collect();
    for chunk in batch.chunks(32) {
        e.handle_batch(chunk);
    }
    e.finish();
    assert_eq!(e.records.len(), 1, "{:?}", e.records);
    e.records.pop().unwrap()
}

fn sni(r: &FlowRecord) -> Option<String> {
    let hello = r.details.as_ref()?.client_hello()?;
    Some(String::from_utf8_lossy(hello.sni.as_deref()?).into_owned())
}

fn evasion(r: &FlowRecord) -> Evasion {
    r.details.as_ref().map(|d| d.evasion).unwrap_or_default()
}

fn handshake() -> Vec<Seg> {
    vec![seg(true, "S", ISN, 0, b""), seg(false, "SA", SISN, ISN + 1, b""), seg(true, "A", ISN + 1, SISN + 1, b"")]
}

/// The server's answer once it has `len` bytes of client data.
fn answer(len: u32) -> Vec<Seg> {
    vec![seg(false, "A", SISN + 1, ISN + 1 + len, b""), seg(false, "PA", SISN + 1, ISN + 1 + len, b"\x16\x03\x03\x00\x01\x02")]
}

/// Cuts `data` (starting at stream offset 0) into pieces of `size` bytes.
fn pieces(data: &[u8], size: usize) -> Vec<(u32, Vec<u8>)> {
    data.chunks(size).enumerate().map(|(i, c)| ((i * size) as u32, c.to_vec())).collect()
}

/// A deterministic shuffle (xorshift).
fn shuffle<T>(v: &mut [T], mut seed: u64) {
    for i in (1..v.len()).rev() {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.swap(i, (seed % (i as u64 + 1)) as usize);
    }
}

fn client_data(p: &[(u32, Vec<u8>)]) -> Vec<Seg> {
    p.iter().map(|(off, b)| seg(true, "PA", ISN + 1 + off, SISN + 1, b)).collect()
}

#[test]
fn tiny_segments_in_any_order_are_read() {
    let hello = curl_hello();
    for (size, seed) in [(1, 0), (8, 0), (1, 11), (8, 12), (37, 13)] {
        let mut p = pieces(&hello, size);
        if seed != 0 {
            shuffle(&mut p, seed);
        }
        let mut segs = handshake();
        segs.extend(client_data(&p));
        segs.extend(answer(hello.len() as u32));
        let r = run(&segs);
        assert_eq!(sni(&r).as_deref(), Some("web.whatsapp.com"), "size {size} seed {seed}");
        assert!(evasion(&r).is_empty());
    }
}

#[test]
fn midstream_start_with_the_first_two_segments_swapped() {
    let hello = curl_hello();
    let p = pieces(&hello, 300);
    let mut segs = vec![seg(true, "PA", ISN + 1 + p[1].0, SISN + 1, &p[1].1), seg(true, "PA", ISN + 1, SISN + 1, &p[0].1)];
    segs.extend(answer(hello.len() as u32));
    let r = run(&segs);
    assert_eq!(sni(&r).as_deref(), Some("web.whatsapp.com"));
}

/// The hello re-framed as one TLS record per byte, after a padding extension made it `pad`
/// bytes longer, so that the stream (6 bytes per hello byte) exceeds the 16 KiB window.
fn one_byte_records(record: &[u8], pad: usize) -> Vec<u8> {
    let mut msg = record[5..].to_vec();
    // Body: version 2, random 32, session id, ciphers, compression, then the extensions length.
    let mut at = 4 + 2 + 32;
    at += 1 + msg[at] as usize;
    at += 2 + u16::from_be_bytes([msg[at], msg[at + 1]]) as usize;
    at += 1 + msg[at] as usize;
    let ext_len = u16::from_be_bytes([msg[at], msg[at + 1]]) as usize + 4 + pad;
    msg[at..at + 2].copy_from_slice(&(ext_len as u16).to_be_bytes());
    msg.extend_from_slice(&21u16.to_be_bytes());
    msg.extend_from_slice(&(pad as u16).to_be_bytes());
    msg.extend(std::iter::repeat_n(0u8, pad));
    let body = (msg.len() - 4) as u32;
    msg[1..4].copy_from_slice(&body.to_be_bytes()[1..]);
    msg.iter().flat_map(|b| [22, 3, 1, 0, 1, *b]).collect()
}

#[test]
fn hello_in_one_byte_records_beyond_the_window_is_read() {
    let stream = one_byte_records(&curl_hello(), 2600);
    assert!(stream.len() > 16 * 1024, "{}", stream.len());
    let mut segs = handshake();
    segs.extend(client_data(&pieces(&stream, 1400)));
    segs.extend(answer(stream.len() as u32));
    let r = run(&segs);
    assert_eq!(sni(&r).as_deref(), Some("web.whatsapp.com"));
    assert!(r.details.as_ref().unwrap().client_hello().unwrap().ja4.is_some());
}

#[test]
fn syn_data_counts_only_when_the_syn_ack_acknowledges_it() {
    let real = curl_hello();
    let decoy = with_sni(&real, b"teams.office.com");
    let n = decoy.len() as u32;
    // Refused: the SYN-ACK acknowledges the SYN alone; the client sends its real hello.
    let segs = vec![
        seg(true, "S", ISN, 0, &decoy),
        seg(false, "SA", SISN, ISN + 1, b""),
        seg(true, "A", ISN + 1, SISN + 1, b""),
        seg(true, "PA", ISN + 1, SISN + 1, &real),
    ];
    let mut segs = segs;
    segs.extend(answer(real.len() as u32));
    let r = run(&segs);
    assert_eq!(sni(&r).as_deref(), Some("web.whatsapp.com"));
    assert!(evasion(&r).contains(Evasion::SYN_DATA_UNACKED));

    // Accepted (TCP Fast Open): the SYN's hello is the flow's.
    let mut segs = vec![seg(true, "S", ISN, 0, &decoy), seg(false, "SA", SISN, ISN + 1 + n, b""), seg(true, "A", ISN + 1 + n, SISN + 1, b"")];
    segs.push(seg(false, "PA", SISN + 1, ISN + 1 + n, b"\x16\x03\x03\x00\x01\x02"));
    let r = run(&segs);
    assert_eq!(sni(&r).as_deref(), Some("teams.office.com"));
    assert!(evasion(&r).is_empty());
}

#[test]
fn a_decoy_hello_before_the_servers_ack_loses_to_the_real_one() {
    let real = curl_hello();
    let decoy = with_sni(&real, b"teams.office.com");
    let mut segs = handshake();
    segs.push(seg(true, "PA", ISN + 1, SISN + 1, &decoy));
    segs.push(seg(true, "PA", ISN + 1, SISN + 1, &real));
    segs.extend(answer(real.len() as u32));
    let r = run(&segs);
    assert_eq!(sni(&r).as_deref(), Some("web.whatsapp.com"));
    let e = evasion(&r);
    assert!(e.contains(Evasion::DECOY_HELLO) && e.contains(Evasion::OVERLAP_CONFLICT), "{e:?}");
}

#[test]
fn bytes_the_server_acknowledged_are_not_replaced() {
    let real = curl_hello();
    let late = with_sni(&real, b"teams.office.com");
    let mut segs = handshake();
    segs.push(seg(true, "PA", ISN + 1, SISN + 1, &real));
    segs.extend(answer(real.len() as u32));
    segs.push(seg(true, "PA", ISN + 1, SISN + 1, &late));
    let r = run(&segs);
    assert_eq!(sni(&r).as_deref(), Some("web.whatsapp.com"));
}

#[test]
fn flows_without_payload_are_no_payload() {
    let cases: Vec<(&str, Vec<Seg>)> = vec![
        ("syn only", vec![seg(true, "S", ISN, 0, b"")]),
        ("handshake then fin", {
            let mut s = handshake();
            s.push(seg(true, "FA", ISN + 1, SISN + 1, b""));
            s.push(seg(false, "FA", SISN + 1, ISN + 2, b""));
            s
        }),
        ("syn then rst", vec![seg(true, "S", ISN, 0, b""), seg(false, "RA", 0, ISN + 1, b"")]),
    ];
    for (what, segs) in cases {
        let r = run(&segs);
        assert_eq!(r.unnamed.map(|u| u.as_str()), Some("no_payload"), "{what}");
    }
}

#[test]
fn a_hello_malformed_after_its_server_name_still_names_the_flow() {
    let mut hello = curl_hello();
    // The last extension's length now runs past the end of the hello.
    let n = hello.len();
    let mut at = 5 + 4 + 2 + 32;
    at += 1 + hello[at] as usize;
    at += 2 + u16::from_be_bytes([hello[at], hello[at + 1]]) as usize;
    at += 1 + hello[at] as usize;
    let end = at + 2 + u16::from_be_bytes([hello[at], hello[at + 1]]) as usize;
    assert_eq!(end, n);
    let mut ext = at + 2;
    let mut last = ext;
    while ext < end {
        last = ext;
        ext += 4 + u16::from_be_bytes([hello[ext + 2], hello[ext + 3]]) as usize;
    }
    hello[last + 2] = 0xff;
    let mut segs = handshake();
    segs.push(seg(true, "PA", ISN + 1, SISN + 1, &hello));
    segs.extend(answer(n as u32));
    let r = run(&segs);
    assert_eq!(sni(&r).as_deref(), Some("web.whatsapp.com"));
    let h = r.details.as_ref().unwrap().client_hello().unwrap();
    assert_eq!(h.error, Some("malformed"));
    assert!(h.ja3.is_none() && h.ja4.is_none());
}

#[test]
fn a_flood_of_parked_hellos_stays_within_the_memory_budget() {
    // Each flow announces a 16 KiB hello and sends 12 KB of it: it parks its window.
    let budget = 4 << 20;
    let mut e = Engine::new(Config { memory_budget: budget, ..Config::default() });
    let mut record = vec![22, 3, 1, 0x40, 0x00, 1, 0x00, 0x3f, 0xfb];
    record.resize(12_000, 0x41);
    let mut frames = Vec::new();
    for i in 0..1_000u32 {
        let port = 20_000 + i as u16;
        let mk = |flags: &'static str, to_server: bool, seq: u32, ack: u32, payload: &[u8]| {
            let (src, dst, sp, dp) = if to_server { (CLIENT, SERVER, port, 443) } else { (SERVER, CLIENT, 443, port) };
            let mut b = PacketBuilder::ethernet2([2; 6], [4; 6]).ipv4(src, dst, 64).tcp(sp, dp, seq, 64_000);
            for f in flags.chars() {
                b = match f {
                    'S' => b.syn(),
                    'A' => b.ack(ack),
                    _ => b.psh(),
                };
            }
            let mut out = Vec::new();
            b.write(&mut out, payload).unwrap();
            out
        };
        frames.push(mk("S", true, ISN, 0, b""));
        frames.push(mk("SA", false, SISN, ISN + 1, b""));
        for (k, c) in record.chunks(1400).enumerate() {
            frames.push(mk("PA", true, ISN + 1 + (k * 1400) as u32, SISN + 1, c));
        }
    }
    // Then one real flow, which must still be named.
    let mut real = handshake();
    let hello = curl_hello();
    real.push(seg(true, "PA", ISN + 1, SISN + 1, &hello));
    real.extend(answer(hello.len() as u32));
    frames.extend(real.iter().map(frame));
    let mut peak = 0;
    for (i, f) in frames.iter().enumerate() {
        e.handle(Timestamp::from_parts(1_700_000_000, i as i64), Some(decode::LinkType::Ethernet), f, f.len() as u32);
        peak = peak.max(e.memory().0);
    }
    assert!(peak <= budget, "peak {peak} over the budget {budget}");
    assert!(e.stats.memory_giveups > 500, "{}", e.stats.memory_giveups);
    e.finish();
    let named: Vec<_> = e.records.iter().filter_map(sni).collect();
    assert_eq!(named, ["web.whatsapp.com"]);
    assert_eq!(e.memory().0, 0, "every byte released when the flows end");
}

#[test]
fn a_hello_never_acknowledged_is_still_named_and_no_gap() {
    // Only the client's side was captured: the hello waits for an ACK that never comes.
    let mut e = Engine::new(Config::default());
    let hello = curl_hello();
    let segs = [seg(true, "S", ISN, 0, b""), seg(true, "PA", ISN + 1, SISN + 1, &hello)];
    for (i, s) in segs.iter().enumerate() {
        let f = frame(s);
        e.handle(Timestamp::from_parts(1_700_000_000, i as i64), Some(decode::LinkType::Ethernet), &f, f.len() as u32);
    }
    e.finish();
    assert_eq!(sni(&e.records[0]).as_deref(), Some("web.whatsapp.com"));
    assert!(e.stats.reassembly_giveups.is_empty(), "{:?}", e.stats.reassembly_giveups);
}
