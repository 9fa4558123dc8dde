//! The fuzz targets: one `pub fn name(data: &[u8])` per parser of untrusted bytes, each driving
//! the public API the way the engine does.
//!
//! This file is included (`#[path]`) by the afl binaries in `tests/fuzz/src/bin/` and by the
//! replay test `tests/fuzz_corpus.rs`, so what is fuzzed and what CI replays are the same code.
//! A target returns nothing: its only contract is that no input panics, hangs or grows memory
//! without bound. Input layouts (the seeds in `corpus/<target>/` follow them, see `seed.py`):
//!
//! | target | input |
//! |---|---|
//! | `decode` | byte 0 picks the [`LinkType`] (modulo [`LINKS`]), the rest is one frame |
//! | `tls_hello` | byte 0: low 4 bits = log2 of the piece size fed to `HandshakeReader`, bit 7 = slide past read records; the rest is one direction of a TCP stream |
//! | `dns` | one DNS message, and the same bytes as a DNS-over-TCP stream |
//! | `quic` | datagrams, each behind a 2-byte big-endian header: bit 15 = sent by the server, the low 15 bits = its length (the last one runs to the end) |
//! | `proxy_marker` | the first bytes of a client stream (or one UDP payload; also cut into 24-byte datagrams for the RTP tracker) |
//! | `pcap_reader` | a pcap or pcapng file |
//! | `engine` | byte 0: low 4 bits pick the [`LinkType`], bit 4 = tight limits; then frames, each as `[seconds since the previous frame: u8][length: u16 BE][bytes]` |

use std::io::Cursor;

use shadowtap::capture::file::{FileReader, Next};
use shadowtap::decode::{self, LinkType, Transport};
use shadowtap::engine::{Config, Engine};
use shadowtap::export::jsonl;
use shadowtap::fingerprint::{ja3, ja4};
use shadowtap::flow::key::{Key, TCP, UDP};
use shadowtap::proto::{dns, http, marker, proxy, quic, rtp, tls};
use shadowtap::time::Timestamp;

/// A fuzz target: any bytes in, nothing out; it must not panic.
pub type Target = fn(&[u8]);

/// Every target by name, in the order of the table above (the corpus directories' names).
pub const TARGETS: &[(&str, Target)] = &[
    ("decode", decode),
    ("tls_hello", tls_hello),
    ("dns", dns),
    ("quic", quic),
    ("proxy_marker", proxy_marker),
    ("pcap_reader", pcap_reader),
    ("engine", engine),
];

/// Link types selected by an input's first byte (the order `seed.py` writes, which is
/// `LinkType::ALL`'s).
pub const LINKS: [LinkType; 10] = LinkType::ALL;

fn link(selector: u8) -> LinkType {
    LINKS[usize::from(selector) % LINKS.len()]
}

/// `decode::decode` on one frame, then the flow key the engine would build from it.
pub fn decode(data: &[u8]) {
    let Some((&sel, frame)) = data.split_first() else { return };
    let Ok(pkt) = decode::decode(link(sel), frame) else { return };
    let (sport, dport, proto) = match pkt.transport {
        Transport::Tcp(t) => {
            assert!(t.payload.len() as u64 <= u64::from(t.payload_len), "captured payload beyond the declared length");
            (t.src_port, t.dst_port, TCP)
        }
        Transport::Udp(u) => (u.src_port, u.dst_port, UDP),
        Transport::Other { .. } | Transport::Fragment(_) => return,
    };
    let (key, side) = Key::new(pkt.src, sport, pkt.dst, dport, proto);
    let _ = (key.endpoint(side), key.endpoint(side.other()));
}

/// A complete handshake message as the engine reads it: ClientHello (with its partial fallback
/// and fingerprints) or ServerHello.
fn handshake_message(msg: &[u8]) {
    match msg.first() {
        Some(&tls::HANDSHAKE_CLIENT_HELLO) => match tls::ClientHello::parse(msg) {
            Ok(ch) => fingerprint(&ch, ja4::Protocol::Tcp),
            Err(_) => {
                if let Some(ch) = tls::ClientHello::parse_partial(msg) {
                    fingerprint(&ch, ja4::Protocol::Tcp);
                }
            }
        },
        Some(&tls::HANDSHAKE_SERVER_HELLO) => {
            let _ = tls::ServerHello::parse(msg);
        }
        _ => {}
    }
}

fn fingerprint(ch: &tls::ClientHello, protocol: ja4::Protocol) {
    let _ = (ch.max_version(), ja3::ja3(ch), ja4::ja4(ch, protocol), ja4::ja4_raw(ch, protocol));
}

/// TLS record defragmentation and hello parsing: `first_handshake` on the whole stream,
/// `HandshakeReader::advance` on a stream that grows piece by piece (sliding past read records
/// as the engine does when its window fills), and the hello parsers on the raw bytes too.
pub fn tls_hello(data: &[u8]) {
    let Some((&sel, stream)) = data.split_first() else { return };
    let _ = tls::looks_like_tls(stream);

    let mut out = Vec::new();
    let whole = tls::first_handshake(stream, &mut out);
    if let tls::RecordScan::Complete { msg_len } = whole {
        assert_eq!(out.len(), msg_len, "first_handshake: message length");
        handshake_message(&out);
    }

    let piece = 1usize << (sel & 0x0f);
    let slide = sel & 0x80 != 0;
    let mut reader = tls::HandshakeReader::default();
    let (mut base, mut end) = (0, 0);
    loop {
        end = (end + piece).min(stream.len());
        let scan = reader.advance(&stream[base..end]);
        match scan {
            tls::RecordScan::NeedMore if end < stream.len() => {
                if slide && reader.scanned() > 0 {
                    let n = reader.scanned();
                    reader.slide(n);
                    base += n;
                }
            }
            tls::RecordScan::Complete { .. } => {
                // Fed in pieces or whole, the same stream gives the same message.
                assert_eq!(whole, scan, "advance in pieces vs first_handshake");
                assert_eq!(reader.message(), &out[..]);
                handshake_message(reader.message());
                break;
            }
            _ => break,
        }
    }

    let _ = tls::ClientHello::parse(stream).map(|ch| fingerprint(&ch, ja4::Protocol::Tcp));
    let _ = tls::ClientHello::parse_partial(stream).map(|ch| fingerprint(&ch, ja4::Protocol::Dtls));
    let _ = tls::ServerHello::parse(stream);
}

/// What the engine and the DNS cache take from a parsed message.
fn dns_message(msg: &[u8]) {
    let Ok(m) = dns::Message::parse(msg) else { return };
    for q in &m.questions {
        let _ = (q.name.to_string(), q.name.to_lowercase_bytes(), q.name.is_root(), dns::type_str(q.qtype));
    }
    for r in &m.answers {
        let _ = (r.name.to_string(), dns::type_str(r.rtype));
        if let dns::RData::Https(s) | dns::RData::Svcb(s) = &r.data {
            let _ = s.target.to_string();
        }
    }
    let _ = m.resolved_addresses();
    // The view the engine reads through gives the same answers.
    let Ok(v) = dns::MessageView::parse(msg) else { unreachable!("the owned parse succeeded") };
    let mut addrs = Vec::new();
    v.resolved_addresses(|a, t| addrs.push((a, t)));
    assert_eq!(addrs, m.resolved_addresses());
    let mut buf = Vec::new();
    for (r, owned) in v.answers().zip(&m.answers) {
        buf.clear();
        r.name.write_into(&mut buf);
        assert_eq!(&buf[..], owned.name.as_bytes());
        assert!(r.name.eq_ignore_case(&r.name));
    }
}

/// DNS: the input as one message (UDP), as a DNS-over-TCP stream pushed in two pieces, and as
/// an ECHConfigList.
pub fn dns(data: &[u8]) {
    dns_message(data);
    let mut framer = dns::TcpFramer::new();
    let (a, b) = data.split_at(data.len() / 2);
    for mut piece in [a, b] {
        while !piece.is_empty() {
            let took = framer.push(piece);
            piece = &piece[took..];
            while let Some(m) = framer.next_message() {
                if let Ok(m) = m {
                    dns_message(&m);
                }
            }
            if took == 0 {
                break;
            }
        }
    }
    let _ = framer.buffered();
    let _ = dns::ech_public_name(data);
}

/// Splits `data` into datagrams behind 2-byte headers (see the module docs).
fn datagrams(mut data: &[u8]) -> impl Iterator<Item = (bool, &[u8])> {
    std::iter::from_fn(move || {
        let (&[hi, lo], rest) = data.split_first_chunk::<2>()?;
        let server = hi & 0x80 != 0;
        let len = usize::from(u16::from_be_bytes([hi & 0x7f, lo])).min(rest.len());
        let (dgram, rest) = rest.split_at(len);
        data = rest;
        Some((server, dgram))
    })
}

/// QUIC: one flow's datagrams through `Initials` (client Initials opened, CRYPTO reassembled,
/// the ClientHello parsed and fingerprinted).
pub fn quic(data: &[u8]) {
    let mut initials = quic::Initials::new();
    for (server, dgram) in datagrams(data) {
        if server {
            let _ = initials.server_datagram(dgram);
            continue;
        }
        let _ = quic::looks_like_quic(dgram);
        match initials.client_datagram(dgram) {
            quic::Progress::ClientHello { msg, version, .. } => {
                let _ = quic::version_str(version);
                match tls::ClientHello::parse(&msg) {
                    Ok(ch) => fingerprint(&ch, ja4::Protocol::Quic),
                    Err(_) => {
                        if let Some(ch) = tls::ClientHello::parse_partial(&msg) {
                            fingerprint(&ch, ja4::Protocol::Quic);
                        }
                    }
                }
            }
            quic::Progress::GoogleChlo { version, .. } => {
                let _ = quic::version_str(version);
            }
            _ => {}
        }
    }
}

/// Proxy preambles (client, then the reply of the proxy it named, and every reply parser on the
/// raw bytes), the first-bytes markers and the HTTP request head.
pub fn proxy_marker(data: &[u8]) {
    if let proxy::Preamble::Done { kind, len, target } = proxy::client(data) {
        assert!(len <= data.len(), "preamble longer than its bytes");
        assert!(target.is_none_or(|t| t.len() <= proxy::MAX_TARGET_LEN));
        let _ = proxy::server(kind, &data[len..]);
    }
    for kind in [proxy::Kind::HttpConnect, proxy::Kind::Socks4, proxy::Kind::Socks5] {
        if let proxy::Preamble::Done { len, .. } = proxy::server(kind, data) {
            assert!(len <= data.len(), "reply longer than its bytes");
        }
    }
    let _ = marker::whatsapp(data);
    let _ = marker::dropbox_lansync(data);
    let _ = marker::stun(data);
    let _ = marker::discord_voice(data);
    let _ = marker::zoom_media(data);
    let _ = marker::telegram_call(data);
    let _ = marker::viber_udp(data);
    let _ = rtp::parse(data);
    let mut track = rtp::Track::default();
    for chunk in data.chunks(24) {
        let _ = track.push(chunk);
    }
    let _ = http::is_request(data);
    if let http::Request::Head { host: Some(h) } = http::request(data) {
        assert!(h.len() <= http::MAX_HOST);
    }
}

/// Batches read before a capture is abandoned (a 1 MiB input cannot hold more frames).
const MAX_BATCHES: usize = 1 << 16;

/// The pcap/pcapng reader over an in-memory file, to its end.
pub fn pcap_reader(data: &[u8]) {
    let Ok(mut reader) = FileReader::from_reader(Box::new(Cursor::new(data.to_vec())), "fuzz") else { return };
    for _ in 0..MAX_BATCHES {
        let (frames, next) = reader.next_batch();
        for f in &frames {
            assert!(f.data.len() <= shadowtap::capture::file::MAX_RECORD_LEN);
            let _ = (f.ts, f.wire_len, f.link, f.dlt);
        }
        if next != Next::More {
            return;
        }
    }
    panic!("pcap reader: no end after {MAX_BATCHES} batches of a {}-byte file", data.len());
}

/// The whole engine on frames cut from the input, then every record written as a JSON line.
pub fn engine(data: &[u8]) {
    let Some((&sel, mut rest)) = data.split_first() else { return };
    let link = link(sel & 0x0f);
    let config = if sel & 0x10 != 0 {
        // Small enough that eviction, the memory budget and short reassembly windows are reached.
        Config { max_flows: 8, reassembly_limit: 512, memory_budget: 4096, dns_cache_addrs: 4, ..Config::default() }
    } else {
        Config::default()
    };
    let mut engine = Engine::new(config);
    let mut ts = Timestamp::from_parts(1_700_000_000, 0);
    let mut frames = 0u32;
    while let Some((&[dt, hi, lo], after)) = rest.split_first_chunk::<3>() {
        let len = usize::from(u16::from_be_bytes([hi, lo])).min(after.len());
        let (frame, after) = after.split_at(len);
        rest = after;
        frames += 1;
        ts = Timestamp(ts.0 + i64::from(dt) * 1_000_000 + i64::from(frames));
        let wire_len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
        engine.handle(ts, Some(link), frame, wire_len);
    }
    engine.finish();
    let mut out = std::io::sink();
    for r in &engine.records {
        jsonl::write(&mut out, r, "fuzz", None).expect("a sink never fails");
    }
}
