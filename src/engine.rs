//! The sans-IO engine: frames and their timestamps in, flow records out.
//!
//! [`Engine::handle`] runs one frame through decode → flow table → (while the flow is not yet
//! identified) reassembly → protocol probes → fingerprints. Once a flow is identified its probe
//! state is dropped and every later packet costs one hash lookup and a few counter adds
//! ("probe, then parse, then bypass"). Flows that end (timeout, close, eviction, end of capture)
//! become [`FlowRecord`]s in [`Engine::records`]; the caller drains them.
//!
//! Nothing here reads the wall clock, opens a file or logs per packet: counters live in
//! [`Stats`] and the caller exports them.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::capture::Frame;
use crate::decode::{self, DropReason, LinkType, Packet, TcpFlags, Transport, Tunnel};
use crate::fingerprint::{ja3, ja4};
use crate::flow::key::{Key, Side, TCP, UDP};
use crate::flow::reassembly::{self, GiveUp, Outcome, Stream};
use crate::flow::table::{EndReason, Expiry, Table};
use crate::flow::Direction;
use crate::proto::proxy::{self, Preamble};
use crate::proto::tls::{self, ClientHello, RecordScan, ServerHello};
use crate::time::Timestamp;

/// Engine limits and timeouts. Every field is a bound with a stated memory or time cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Flows held at once. A flow costs about [`FLOW_BYTES`] bytes plus, while it is being
    /// identified, up to twice `reassembly_limit` per direction; identified flows cost only
    /// the base. Default 262,144 (about 40 MiB of base state).
    pub max_flows: usize,
    /// Leading bytes reassembled per TCP direction while identifying a flow.
    pub reassembly_limit: usize,
    /// Idle seconds before an open TCP flow ends (Zeek's `tcp_inactivity_timeout` is 5 min).
    pub tcp_idle_secs: u64,
    /// Seconds a TCP flow is kept after FIN in both directions or RST, to count the last ACKs.
    pub tcp_closed_secs: u64,
    /// Idle seconds before a UDP flow ends.
    pub udp_idle_secs: u64,
}

/// Approximate bytes of one identified flow in the table (key, state, hash-map overhead).
pub const FLOW_BYTES: usize = 160;

impl Default for Config {
    fn default() -> Self {
        Config {
            max_flows: 262_144,
            reassembly_limit: reassembly::DEFAULT_LIMIT,
            tcp_idle_secs: 300,
            tcp_closed_secs: 5,
            udp_idle_secs: 60,
        }
    }
}

/// The application protocol a flow was identified as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum App {
    /// Not identified.
    #[default]
    Unknown,
    /// TLS over TCP.
    Tls,
    /// QUIC (long-header packets with a known version).
    Quic,
    /// DNS on port 53.
    Dns,
    /// Plain HTTP/1.x (a request line).
    Http,
    /// SSH (an `SSH-` banner).
    Ssh,
}

impl App {
    /// Label used in output and counters.
    pub fn as_str(self) -> &'static str {
        match self {
            App::Unknown => "unknown",
            App::Tls => "tls",
            App::Quic => "quic",
            App::Dns => "dns",
            App::Http => "http",
            App::Ssh => "ssh",
        }
    }
}

/// What the sensor learned from a flow's TLS handshake. Raw values; formatting happens at output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSummary {
    /// The client's hello (raw code points, GREASE kept).
    pub client: Option<ClientHello>,
    /// JA3 hash of the client hello.
    pub ja3: Option<String>,
    /// JA4 of the client hello.
    pub ja4: Option<String>,
    /// The server's hello, when seen.
    pub server: Option<ServerHello>,
}

/// One finished flow: the `inspect` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowRecord {
    /// Order of the flow's first packet in the run (0-based).
    pub seq: u64,
    /// First packet.
    pub ts_start: Timestamp,
    /// Last packet.
    pub ts_end: Timestamp,
    /// Client endpoint.
    pub client: SocketAddr,
    /// Server endpoint.
    pub server: SocketAddr,
    /// IP protocol number (6 TCP, 17 UDP).
    pub proto: u8,
    /// Application protocol.
    pub app: App,
    /// TLS details, for TLS flows whose hello was read.
    pub tls: Option<Box<TlsSummary>>,
    /// Explicit proxy (HTTP CONNECT, SOCKS) the flow went through.
    pub proxy: Option<Box<ProxyInfo>>,
    /// Packets client → server.
    pub packets_up: u64,
    /// Packets server → client.
    pub packets_down: u64,
    /// IP bytes client → server (as the IP headers declare them).
    pub bytes_up: u64,
    /// IP bytes server → client.
    pub bytes_down: u64,
    /// Outermost VLAN id.
    pub vlan: Option<u16>,
    /// Outermost tunnel.
    pub tunnel: Option<Tunnel>,
    /// Why the flow ended.
    pub end: EndReason,
}

/// Engine counters. Plain integers, owned here, read by the exporter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames handed to the engine.
    pub frames: u64,
    /// Bytes of those frames on the wire.
    pub frame_bytes: u64,
    /// Frames of a link type the decoder does not support.
    pub unsupported_link: u64,
    /// Frames not decoded, by [`DropReason::index`].
    pub decode_drops: Vec<u64>,
    /// IP packets that are neither TCP nor UDP (ICMP, ESP, ...): counted, no flow.
    pub other_transport: u64,
    /// Flows whose reassembly gave up, by reason (`gap`, `too_many_pending`, `limit`).
    pub reassembly_giveups: BTreeMap<&'static str, u64>,
    /// Retransmitted bytes that disagreed with bytes already reassembled (possible evasion).
    pub inconsistent_overlaps: u64,
    /// TLS handshakes that could not be read, by [`tls::TlsError`] label.
    pub tls_errors: BTreeMap<&'static str, u64>,
    /// Client hellos read.
    pub client_hellos: u64,
    /// Server hellos read.
    pub server_hellos: u64,
    /// Flows whose client/server orientation was corrected by the handshake's content.
    pub orientation_fixed: u64,
    /// Flows ended, by [`EndReason::as_str`].
    pub flows_ended: BTreeMap<&'static str, u64>,
}

/// TCP connection progress bits.
mod tcp_bits {
    pub const FIN_CLIENT: u8 = 1;
    pub const FIN_SERVER: u8 = 2;
    pub const RST: u8 = 4;
}

/// Identification work still to do for a flow; dropped once the flow is identified.
#[derive(Debug)]
struct Probe {
    /// Reassembled first bytes, by [`Direction::index`].
    streams: [Option<Stream>; 2],
    /// This direction needs no more bytes.
    done: [bool; 2],
    /// Bytes of proxy preamble to skip before the tunnelled stream, by direction.
    skip: [usize; 2],
}

/// An explicit proxy the flow goes through, and the destination the client asked it for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyInfo {
    /// Proxy protocol.
    pub kind: proxy::Kind,
    /// `host:port` requested by the client.
    pub target: Option<Vec<u8>>,
}

/// Per-flow state. `repr(C)` keeps the fields every packet touches (the first 56 bytes) in one
/// cache line; [`Table::warm`] touches that line before the packet is handled.
#[derive(Debug)]
#[repr(C)]
struct FlowState {
    // Hot: read or written by every packet.
    last: Timestamp,
    packets: [u64; 2],
    bytes: [u64; 2],
    probe: Option<Box<Probe>>,
    idle_secs: u32,
    client: Side,
    tcp: u8,
    app: App,
    // Cold: set at creation or when the flow is identified.
    seq: u64,
    first: Timestamp,
    client_isn: Option<u32>,
    vlan: Option<u16>,
    tunnel: Option<Tunnel>,
    tls: Option<Box<TlsSummary>>,
    proxy: Option<Box<ProxyInfo>>,
}

impl Expiry for FlowState {
    fn last_seen(&self) -> Timestamp {
        self.last
    }
    fn idle_timeout_secs(&self) -> u64 {
        self.idle_secs as u64
    }
    fn is_closed(&self) -> bool {
        self.tcp & tcp_bits::RST != 0
            || self.tcp & (tcp_bits::FIN_CLIENT | tcp_bits::FIN_SERVER)
                == tcp_bits::FIN_CLIENT | tcp_bits::FIN_SERVER
    }
}

/// Ports that are almost always the server side (used when no SYN tells the orientation).
fn is_service_port(port: u16) -> bool {
    port < 1024
        || matches!(
            port,
            1080 | 1194 | 1433 | 1723 | 1883 | 3128 | 3306 | 3478 | 3479 | 3544 | 4244 | 4433 | 4443
                | 5060 | 5061 | 5222 | 5223 | 5228 | 5242 | 5349 | 5432 | 5938 | 6379 | 7443 | 8000
                | 8008 | 8080 | 8081 | 8443 | 8883 | 8888 | 9443
        )
}

/// The sensor's packet path.
pub struct Engine {
    config: Config,
    table: Table<FlowState>,
    next_seq: u64,
    scratch: Vec<u8>,
    /// Finished flows, oldest end first; the caller drains this.
    pub records: Vec<FlowRecord>,
    /// Counters.
    pub stats: Stats,
}

impl Engine {
    /// An engine with `config`'s limits.
    pub fn new(config: Config) -> Self {
        Engine {
            config,
            table: Table::new(config.max_flows),
            next_seq: 0,
            scratch: Vec::new(),
            records: Vec::new(),
            stats: Stats { decode_drops: vec![0; DropReason::ALL.len()], ..Stats::default() },
        }
    }

    /// Flows currently held.
    pub fn active_flows(&self) -> usize {
        self.table.len()
    }

    /// The flow table's counters.
    pub fn table_stats(&self) -> crate::flow::table::TableStats {
        self.table.stats
    }

    /// Handles one frame of link type `link` (None: a link type the decoder does not know).
    pub fn handle(&mut self, ts: Timestamp, link: Option<LinkType>, frame: &[u8], wire_len: u32) {
        if let Some(pkt) = self.decode(link, frame, wire_len) {
            let key = flow_key(&pkt);
            self.packet(ts, &pkt, key);
        }
        self.table.tick(ts);
        self.collect_ended();
    }

    /// Handles a batch of frames: decodes them all, looks their flows up back to back (so the
    /// cache misses of the lookups overlap), then handles each. Same results as [`Engine::handle`]
    /// on each frame in turn.
    pub fn handle_batch(&mut self, frames: &[Frame<'_>]) {
        // Two parallel arrays rather than one of tuples: elements stay small enough to be
        // copied inline instead of through memcpy calls.
        let mut pkts: Vec<(Timestamp, Packet<'_>)> = Vec::with_capacity(frames.len());
        let mut keys: Vec<Option<(Key, Side)>> = Vec::with_capacity(frames.len());
        for f in frames {
            if let Some(p) = self.decode(f.link, f.data, f.wire_len) {
                keys.push(flow_key(&p));
                pkts.push((f.ts, p));
            }
        }
        // A tight loop of independent lookups: the CPU keeps several misses in flight.
        for (k, _) in keys.iter().flatten() {
            self.table.warm(k);
        }
        for ((ts, p), key) in pkts.iter().zip(keys) {
            self.packet(*ts, p, key);
            self.table.tick(*ts);
        }
        if let Some(f) = frames.last() {
            self.table.tick(f.ts);
        }
        self.collect_ended();
    }

    fn decode<'a>(&mut self, link: Option<LinkType>, frame: &'a [u8], wire_len: u32) -> Option<Packet<'a>> {
        self.stats.frames += 1;
        self.stats.frame_bytes += wire_len as u64;
        let Some(link) = link else {
            self.stats.unsupported_link += 1;
            return None;
        };
        match decode::decode(link, frame) {
            Ok(pkt) => Some(pkt),
            Err(reason) => {
                self.stats.decode_drops[reason.index()] += 1;
                None
            }
        }
    }

    /// Ends every flow (end of a capture) and turns them into records.
    pub fn finish(&mut self) {
        self.table.drain_all();
        self.collect_ended();
    }

    fn packet(&mut self, ts: Timestamp, pkt: &Packet<'_>, key: Option<(Key, Side)>) {
        let Some((key, side)) = key else {
            self.stats.other_transport += 1;
            return;
        };
        let (sport, dport, proto) = match &pkt.transport {
            Transport::Tcp(t) => (t.src_port, t.dst_port, TCP),
            Transport::Udp(u) => (u.src_port, u.dst_port, UDP),
            Transport::Other { .. } => return,
        };
        let syn_only = matches!(&pkt.transport, Transport::Tcp(t)
            if t.flags.contains(TcpFlags::SYN) && !t.flags.contains(TcpFlags::ACK));

        // Port reuse: a new SYN with another ISN on a finished or finishing connection.
        if syn_only {
            if let (Some(f), Transport::Tcp(t)) = (self.table.get_mut(&key), &pkt.transport) {
                if f.client_isn.is_some_and(|isn| isn != t.seq) || f.tcp != 0 {
                    self.table.close(&key);
                }
            }
        }

        let config = self.config;
        let flow = match self.table.get_mut(&key) {
            Some(f) => f,
            None => {
                let client = Self::client_side(pkt, side, sport, dport);
                let seq = self.next_seq;
                self.next_seq += 1;
                let idle = if proto == TCP { config.tcp_idle_secs } else { config.udp_idle_secs };
                let idle = idle.min(u32::MAX as u64) as u32;
                let state = FlowState {
                    seq,
                    client,
                    first: ts,
                    last: ts,
                    packets: [0; 2],
                    bytes: [0; 2],
                    tcp: 0,
                    client_isn: None,
                    vlan: pkt.vlan,
                    tunnel: pkt.tunnel,
                    app: App::Unknown,
                    probe: Some(Box::new(Probe { streams: [None, None], done: [false; 2], skip: [0; 2] })),
                    tls: None,
                    proxy: None,
                    idle_secs: idle,
                };
                self.table.insert(key, state)
            }
        };

        let dir = if side == flow.client { Direction::ToServer } else { Direction::ToClient };
        let d = dir.index();
        flow.packets[d] += 1;
        flow.bytes[d] += pkt.ip_len as u64;
        if ts > flow.last {
            flow.last = ts;
        }

        if let Transport::Tcp(t) = &pkt.transport {
            if syn_only && dir == Direction::ToServer && flow.client_isn.is_none() {
                flow.client_isn = Some(t.seq);
            }
            let before = flow.tcp;
            if t.flags.contains(TcpFlags::RST) {
                flow.tcp |= tcp_bits::RST;
            }
            if t.flags.contains(TcpFlags::FIN) {
                flow.tcp |= if dir == Direction::ToServer {
                    tcp_bits::FIN_CLIENT
                } else {
                    tcp_bits::FIN_SERVER
                };
            }
            if flow.tcp != before
                && (flow.tcp & tcp_bits::RST != 0
                    || flow.tcp & (tcp_bits::FIN_CLIENT | tcp_bits::FIN_SERVER)
                        == tcp_bits::FIN_CLIENT | tcp_bits::FIN_SERVER)
            {
                flow.idle_secs = config.tcp_closed_secs.min(u32::MAX as u64) as u32;
            }
        }

        // Bypass: an identified flow costs nothing more.
        if flow.probe.is_none() {
            return;
        }
        match &pkt.transport {
            Transport::Tcp(t) => {
                Self::probe_tcp(flow, dir, t, &config, &mut self.scratch, &mut self.stats)
            }
            Transport::Udp(u) => Self::probe_udp(flow, dir, u.src_port, u.dst_port, u.payload),
            Transport::Other { .. } => {}
        }
    }

    /// Who is the client of a new flow: SYN tells; else the side talking to a service port;
    /// else the sender of the first packet.
    fn client_side(pkt: &Packet<'_>, sender: Side, sport: u16, dport: u16) -> Side {
        let receiver = sender.other();
        if let Transport::Tcp(t) = &pkt.transport {
            if t.flags.contains(TcpFlags::SYN) {
                return if t.flags.contains(TcpFlags::ACK) { receiver } else { sender };
            }
        }
        match (is_service_port(sport), is_service_port(dport)) {
            (true, false) => receiver,
            (false, true) => sender,
            (true, true) if sport < dport => receiver,
            _ => sender,
        }
    }

    fn probe_udp(flow: &mut FlowState, dir: Direction, sport: u16, dport: u16, payload: &[u8]) {
        if dir != Direction::ToServer && !(sport == 53 || dport == 53) {
            return;
        }
        flow.app = if sport == 53 || dport == 53 {
            App::Dns
        } else if looks_like_quic(payload) {
            App::Quic
        } else {
            App::Unknown
        };
        flow.probe = None;
    }

    fn probe_tcp(
        flow: &mut FlowState,
        dir: Direction,
        t: &decode::TcpSegment<'_>,
        config: &Config,
        scratch: &mut Vec<u8>,
        stats: &mut Stats,
    ) {
        let Some(probe) = flow.probe.as_mut() else { return };
        let d = dir.index();
        let o = dir.reverse().index();
        let syn = t.flags.contains(TcpFlags::SYN);

        // The peer's ACK tells whether bytes we are waiting for were lost to the capture.
        if t.flags.contains(TcpFlags::ACK) && !probe.done[o] {
            if let Some(s) = probe.streams[o].as_mut() {
                if let Outcome::GaveUp(why) = s.peer_ack(t.ack) {
                    Self::give_up(stats, why);
                    probe.done[o] = true;
                }
            }
        }
        if !probe.done[d] && (syn || !t.payload.is_empty()) {
            let stream = probe.streams[d].get_or_insert_with(|| Stream::new(config.reassembly_limit));
            if syn {
                stream.syn(t.seq);
            }
            let seq = if syn { t.seq.wrapping_add(1) } else { t.seq };
            let before = stream.inconsistent_overlaps;
            let outcome = stream.segment(seq, t.payload);
            stats.inconsistent_overlaps += (stream.inconsistent_overlaps - before) as u64;
            match outcome {
                Outcome::Progress => Self::inspect_stream(flow, dir, scratch, stats),
                Outcome::GaveUp(why) => {
                    Self::give_up(stats, why);
                    probe.done[d] = true;
                }
                Outcome::NoProgress => {}
            }
        }
        Self::maybe_finish_probe(flow);
    }

    fn give_up(stats: &mut Stats, why: GiveUp) {
        *stats.reassembly_giveups.entry(why.as_str()).or_default() += 1;
    }

    /// Looks at the reassembled bytes of one direction after they grew.
    fn inspect_stream(flow: &mut FlowState, dir: Direction, scratch: &mut Vec<u8>, stats: &mut Stats) {
        let Some(probe) = flow.probe.as_mut() else { return };
        let d = dir.index();
        let Some(stream) = probe.streams[d].as_ref() else { return };
        let full = stream.is_full();
        let all = stream.data();
        let mut data = &all[probe.skip[d].min(all.len())..];

        // An explicit proxy's plaintext preamble comes before the tunnelled handshake.
        if probe.skip[d] == 0 && data.first() != Some(&tls::CONTENT_TYPE_HANDSHAKE) {
            let preamble = match (dir, &flow.proxy) {
                (Direction::ToServer, None) => Some(proxy::client(data)),
                (Direction::ToClient, Some(p)) => Some(proxy::server(p.kind, data)),
                _ => None,
            };
            match preamble {
                Some(Preamble::NeedMore) => {
                    if full {
                        *stats.reassembly_giveups.entry("limit").or_default() += 1;
                        probe.done[d] = true;
                    }
                    return;
                }
                Some(Preamble::Done { kind, len, target }) => {
                    if dir == Direction::ToServer {
                        flow.proxy = Some(Box::new(ProxyInfo { kind, target }));
                        if kind == proxy::Kind::HttpConnect {
                            flow.app = App::Http;
                        }
                    }
                    probe.skip[d] = len;
                    data = &data[len..];
                    if data.is_empty() {
                        return;
                    }
                }
                Some(Preamble::NotProxy) | None => {}
            }
        }
        if data.first() != Some(&tls::CONTENT_TYPE_HANDSHAKE) {
            // Not a TLS handshake record: the client's first bytes name the protocol.
            if dir == Direction::ToServer && flow.app == App::Unknown {
                flow.app = sniff_plaintext(data);
            } else if dir == Direction::ToClient && data.starts_with(b"SSH-") && flow.app == App::Unknown {
                flow.app = App::Ssh;
            }
            probe.done[d] = true;
            return;
        }
        match tls::first_handshake(data, scratch) {
            RecordScan::NeedMore => {
                if full {
                    *stats.reassembly_giveups.entry("limit").or_default() += 1;
                    probe.done[d] = true;
                }
            }
            RecordScan::NotTls(e) => {
                *stats.tls_errors.entry(e.as_str()).or_default() += 1;
                probe.done[d] = true;
            }
            RecordScan::Complete { msg_len } => {
                probe.done[d] = true;
                let msg = &scratch[..msg_len];
                match msg.first() {
                    Some(1) => match ClientHello::parse(msg) {
                        Ok(ch) => {
                            stats.client_hellos += 1;
                            if dir == Direction::ToClient {
                                // The side we took for the server sent a ClientHello: a capture
                                // that started mid-connection fooled the port heuristic.
                                flow.client = flow.client.other();
                                flow.packets.swap(0, 1);
                                flow.bytes.swap(0, 1);
                                probe.streams.swap(0, 1);
                                probe.done.swap(0, 1);
                                probe.skip.swap(0, 1);
                                stats.orientation_fixed += 1;
                            }
                            flow.app = App::Tls;
                            let summary = flow.tls.get_or_insert_with(Default::default);
                            summary.ja3 = Some(ja3::ja3(&ch));
                            summary.ja4 = Some(ja4::ja4(&ch, ja4::Protocol::Tcp));
                            summary.client = Some(ch);
                        }
                        Err(e) => *stats.tls_errors.entry(e.as_str()).or_default() += 1,
                    },
                    Some(2) => match ServerHello::parse(msg) {
                        Ok(sh) => {
                            stats.server_hellos += 1;
                            flow.app = App::Tls;
                            flow.tls.get_or_insert_with(Default::default).server = Some(sh);
                        }
                        Err(e) => *stats.tls_errors.entry(e.as_str()).or_default() += 1,
                    },
                    _ => *stats.tls_errors.entry("unexpected_handshake").or_default() += 1,
                }
            }
        }
    }

    /// Drops the probe once nothing more will be learned: the flow is then bypassed.
    fn maybe_finish_probe(flow: &mut FlowState) {
        let Some(probe) = flow.probe.as_ref() else { return };
        let client_done = probe.done[Direction::ToServer.index()];
        let server_done = probe.done[Direction::ToClient.index()];
        if client_done && (server_done || flow.app != App::Tls) {
            flow.probe = None;
        }
    }

    fn collect_ended(&mut self) {
        if self.table.ended.is_empty() {
            return;
        }
        for e in self.table.ended.drain(..) {
            *self.stats.flows_ended.entry(e.reason.as_str()).or_default() += 1;
            let f = e.state;
            if let Some(p) = &f.probe {
                // A hole that never filled before the flow ended is a gap too.
                for (s, done) in p.streams.iter().zip(p.done) {
                    if s.is_some() && !done && f.app == App::Tls {
                        *self.stats.reassembly_giveups.entry(GiveUp::Gap.as_str()).or_default() += 1;
                    }
                }
            }
            let server_side = f.client.other();
            self.records.push(FlowRecord {
                seq: f.seq,
                ts_start: f.first,
                ts_end: f.last,
                client: e.key.endpoint(f.client),
                server: e.key.endpoint(server_side),
                proto: e.key.proto,
                app: f.app,
                tls: f.tls,
                proxy: f.proxy,
                packets_up: f.packets[0],
                packets_down: f.packets[1],
                bytes_up: f.bytes[0],
                bytes_down: f.bytes[1],
                vlan: f.vlan,
                tunnel: f.tunnel,
                end: e.reason,
            });
        }
    }
}

/// The flow key of a TCP or UDP packet, and which side sent it.
#[inline]
fn flow_key(pkt: &Packet<'_>) -> Option<(Key, Side)> {
    let (sport, dport, proto) = match &pkt.transport {
        Transport::Tcp(t) => (t.src_port, t.dst_port, TCP),
        Transport::Udp(u) => (u.src_port, u.dst_port, UDP),
        Transport::Other { .. } => return None,
    };
    Some(Key::new(pkt.src, sport, pkt.dst, dport, proto))
}

/// Names a plaintext protocol from a client's first bytes.
fn sniff_plaintext(data: &[u8]) -> App {
    const METHODS: &[&[u8]] = &[
        b"GET ", b"POST ", b"HEAD ", b"PUT ", b"DELETE ", b"OPTIONS ", b"CONNECT ", b"PATCH ",
        b"TRACE ",
    ];
    if METHODS.iter().any(|m| data.starts_with(m)) {
        App::Http
    } else if data.starts_with(b"SSH-") {
        App::Ssh
    } else {
        App::Unknown
    }
}

/// A QUIC long-header packet of a known version family (RFC 9000 §17.2, RFC 9369, drafts,
/// Facebook mvfst, Google QUIC Q046+ long headers). The decryption that reads the SNI is done by
/// the QUIC stage; this only names the protocol.
fn looks_like_quic(p: &[u8]) -> bool {
    if p.len() < 7 || p[0] & 0x80 == 0 {
        return false;
    }
    let v = u32::from_be_bytes([p[1], p[2], p[3], p[4]]);
    matches!(v, 0x0000_0001 | 0x6b33_43cf | 0x0000_0000)
        || v >> 8 == 0x00ff_0000
        || v & 0xffff_fff0 == 0xface_b000
        || (p[1] == b'Q' && p[2].is_ascii_digit())
        || v & 0x0f0f_0f0f == 0x0a0a_0a0a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orientation_heuristics() {
        assert!(is_service_port(443));
        assert!(is_service_port(5222));
        assert!(!is_service_port(50000));
    }

    #[test]
    fn plaintext_sniffing() {
        assert_eq!(sniff_plaintext(b"GET / HTTP/1.1\r\n"), App::Http);
        assert_eq!(sniff_plaintext(b"CONNECT example.com:443 HTTP/1.1\r\n"), App::Http);
        assert_eq!(sniff_plaintext(b"SSH-2.0-OpenSSH_9.2\r\n"), App::Ssh);
        assert_eq!(sniff_plaintext(b"\x00\x01binary"), App::Unknown);
    }

    #[test]
    fn quic_versions() {
        let mut p = [0xc3u8, 0, 0, 0, 1, 8, 0, 0];
        assert!(looks_like_quic(&p));
        p[1..5].copy_from_slice(&0x6b3343cfu32.to_be_bytes());
        assert!(looks_like_quic(&p));
        p[1..5].copy_from_slice(&0xff00001du32.to_be_bytes());
        assert!(looks_like_quic(&p));
        p[1..5].copy_from_slice(b"Q046");
        assert!(looks_like_quic(&p));
        p[0] = 0x43;
        assert!(!looks_like_quic(&p), "short header alone does not name QUIC");
    }
}
