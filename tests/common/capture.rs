//! Captures written by a test, packet by packet: classic pcap (microseconds, little-endian),
//! `LINKTYPE_RAW` (101: each record is an IPv4 packet), TCP segments with valid IP and TCP
//! checksums. A test then states exactly the traffic its case is about: a spoofed SYN is one
//! 40-byte record, an answered connection a handshake, one exchange and a close.
#![allow(dead_code)]

use std::net::SocketAddrV4;
use std::path::Path;

/// TCP flags.
pub const FIN: u8 = 0x01;
pub const SYN: u8 = 0x02;
pub const PSH: u8 = 0x08;
pub const ACK: u8 = 0x10;

/// 2026-03-02 00:00:00 UTC, a Monday: where test captures start unless told otherwise.
pub const MONDAY_2026_03_02: i64 = 20_514 * 86_400;

/// A classic pcap being written in memory.
pub struct Pcap {
    bytes: Vec<u8>,
}

impl Default for Pcap {
    fn default() -> Self {
        Self::new()
    }
}

/// RFC 1071 ones' complement sum, folded.
fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    for part in parts {
        let mut chunks = part.chunks_exact(2);
        for c in &mut chunks {
            sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            sum += u32::from(*last) << 8;
        }
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A 20-byte IPv4 header (DF, TTL 64) for a packet of `total` bytes of protocol `proto`.
fn ipv4_header(total: usize, proto: u8, src: SocketAddrV4, dst: SocketAddrV4) -> Vec<u8> {
    let mut ip = Vec::with_capacity(20);
    ip.extend_from_slice(&[0x45, 0]);
    ip.extend_from_slice(&(total as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 1, 0x40, 0, 64, proto, 0, 0]);
    ip.extend_from_slice(&src.ip().octets());
    ip.extend_from_slice(&dst.ip().octets());
    let c = checksum(&[&ip]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    ip
}

impl Pcap {
    /// An empty capture: the 24-byte global header (snaplen 65535, link type 101).
    pub fn new() -> Pcap {
        let mut bytes = Vec::with_capacity(4096);
        bytes.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes());
        bytes.extend_from_slice(&2u16.to_le_bytes());
        bytes.extend_from_slice(&4u16.to_le_bytes());
        bytes.extend_from_slice(&0i32.to_le_bytes());
        bytes.extend_from_slice(&0u32.to_le_bytes());
        bytes.extend_from_slice(&65_535u32.to_le_bytes());
        bytes.extend_from_slice(&101u32.to_le_bytes());
        Pcap { bytes }
    }

    /// One TCP segment from `src` to `dst` at `micros` (Unix time in microseconds).
    #[allow(clippy::too_many_arguments)]
    pub fn tcp(&mut self, micros: i64, src: SocketAddrV4, dst: SocketAddrV4, flags: u8, seq: u32, ack: u32, payload: &[u8]) -> &mut Pcap {
        let ip = ipv4_header(20 + 20 + payload.len(), 6, src, dst);
        let mut tcp = Vec::with_capacity(20 + payload.len());
        tcp.extend_from_slice(&src.port().to_be_bytes());
        tcp.extend_from_slice(&dst.port().to_be_bytes());
        tcp.extend_from_slice(&seq.to_be_bytes());
        tcp.extend_from_slice(&ack.to_be_bytes());
        tcp.extend_from_slice(&[5 << 4, flags, 0xff, 0xff, 0, 0, 0, 0]);
        tcp.extend_from_slice(payload);
        let mut pseudo = Vec::with_capacity(12);
        pseudo.extend_from_slice(&src.ip().octets());
        pseudo.extend_from_slice(&dst.ip().octets());
        pseudo.extend_from_slice(&[0, 6]);
        pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
        let c = checksum(&[&pseudo, &tcp]);
        tcp[16..18].copy_from_slice(&c.to_be_bytes());
        self.record(micros, &[&ip, &tcp])
    }

    /// One record at `micros` holding `parts` back to back.
    fn record(&mut self, micros: i64, parts: &[&[u8]]) -> &mut Pcap {
        let len = parts.iter().map(|p| p.len()).sum::<usize>() as u32;
        self.bytes.extend_from_slice(&(micros.div_euclid(1_000_000) as u32).to_le_bytes());
        self.bytes.extend_from_slice(&(micros.rem_euclid(1_000_000) as u32).to_le_bytes());
        self.bytes.extend_from_slice(&len.to_le_bytes());
        self.bytes.extend_from_slice(&len.to_le_bytes());
        for p in parts {
            self.bytes.extend_from_slice(p);
        }
        self
    }

    /// One UDP datagram from `src` to `dst` at `micros` (checksum 0: none, as IPv4 allows).
    pub fn udp(&mut self, micros: i64, src: SocketAddrV4, dst: SocketAddrV4, payload: &[u8]) -> &mut Pcap {
        let ip = ipv4_header(20 + 8 + payload.len(), 17, src, dst);
        let mut udp = Vec::with_capacity(8);
        udp.extend_from_slice(&src.port().to_be_bytes());
        udp.extend_from_slice(&dst.port().to_be_bytes());
        udp.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        self.record(micros, &[&ip, &udp, payload])
    }

    /// A SYN nobody answers: one 40-byte packet (what a spoofed connection attempt is).
    pub fn syn(&mut self, micros: i64, src: SocketAddrV4, dst: SocketAddrV4) -> &mut Pcap {
        self.tcp(micros, src, dst, SYN, 1000, 0, &[])
    }

    /// An answered connection: handshake, `request` and `response`, then FIN both ways, one
    /// millisecond apart from `micros` on.
    pub fn connection(&mut self, micros: i64, client: SocketAddrV4, server: SocketAddrV4, request: &[u8], response: &[u8]) -> &mut Pcap {
        let (c, s) = (5000u32, 9000u32);
        let (q, r) = (request.len() as u32, response.len() as u32);
        let ms = |n: i64| micros + n * 1000;
        self.tcp(ms(0), client, server, SYN, c, 0, &[])
            .tcp(ms(1), server, client, SYN | ACK, s, c + 1, &[])
            .tcp(ms(2), client, server, ACK, c + 1, s + 1, &[])
            .tcp(ms(3), client, server, PSH | ACK, c + 1, s + 1, request)
            .tcp(ms(4), server, client, PSH | ACK, s + 1, c + 1 + q, response)
            .tcp(ms(5), client, server, FIN | ACK, c + 1 + q, s + 1 + r, &[])
            .tcp(ms(6), server, client, FIN | ACK, s + 1 + r, c + 2 + q, &[])
            .tcp(ms(7), client, server, ACK, c + 2 + q, s + 2 + r, &[])
    }

    /// Writes the capture to `path`.
    pub fn write(&self, path: &Path) {
        std::fs::write(path, &self.bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    }
}

/// `a.b.c.d:port`.
pub fn at(addr: &str) -> SocketAddrV4 {
    addr.parse().unwrap_or_else(|e| panic!("{addr}: {e}"))
}

/// Five SYNs from five Finance addresses of `rules/config.toml` (10.20.0.1 to .5) into
/// Telegram's published range (149.154.160.0/20), nobody answering: what a spoofer sends to
/// make a department look like it uses Telegram. With `answered`, also one real exchange from
/// 10.20.0.9 to the same server.
pub fn spoofed_telegram(answered: bool) -> Pcap {
    let mut p = Pcap::new();
    let server = at("149.154.167.50:443");
    let t = MONDAY_2026_03_02 * 1_000_000 + 36_000_000_000;
    for i in 1..=5u16 {
        p.syn(t + i64::from(i) * 1000, at(&format!("10.20.0.{i}:{}", 40_000 + i)), server);
    }
    if answered {
        p.connection(t + 100_000, at("10.20.0.9:41000"), server, b"hello telegram", b"hello client");
    }
    p
}

/// A minimal TLS 1.2-style ClientHello record naming `sni` (one cipher, no other extension).
pub fn client_hello(sni: &str) -> Vec<u8> {
    let name = sni.as_bytes();
    let mut sni_ext = Vec::new();
    sni_ext.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
    sni_ext.push(0);
    sni_ext.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sni_ext.extend_from_slice(name);
    let mut exts = vec![0, 0];
    exts.extend_from_slice(&(sni_ext.len() as u16).to_be_bytes());
    exts.extend_from_slice(&sni_ext);
    let mut body = vec![3, 3];
    body.extend_from_slice(&[7; 32]);
    body.push(0);
    body.extend_from_slice(&[0, 2, 0xc0, 0x2f, 1, 0]);
    body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
    body.extend_from_slice(&exts);
    let mut hs = vec![1, 0];
    hs.extend_from_slice(&(body.len() as u16).to_be_bytes());
    hs.extend_from_slice(&body);
    let mut rec = vec![22, 3, 1];
    rec.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    rec.extend_from_slice(&hs);
    rec
}

/// A STUN Binding request (RFC 8489) with transaction id bytes `tx`, no attributes.
pub fn stun_binding(tx: u8) -> Vec<u8> {
    let mut m = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
    m.extend_from_slice(&[tx; 12]);
    m
}
