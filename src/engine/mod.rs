//! The sans-IO engine: frames and their timestamps in, flow records out.
//!
//! [`Engine::handle_batch`] runs frames through decode → (IP fragments) IP reassembly → flow
//! table → (while a flow is not yet identified) TCP reassembly → protocol probes → fingerprints.
//! Once a flow is identified its probe state is dropped and every later packet costs one hash
//! lookup and a few counter adds ("probe, then parse, then bypass"). DNS flows are the
//! exception: every DNS message is read, because each answer feeds the [`DnsCache`] that names
//! later flows. Flows that end (timeout, close, eviction, end of capture) become
//! [`FlowRecord`]s in [`Engine::records`].
//!
//! Nothing here reads the wall clock, opens a file or logs per packet: counters live in
//! [`Stats`] and the caller exports them.

mod budget;
mod dns;
pub mod record;
mod tcp;
mod udp;

use crate::decode::{self, DropReason, Fragment, Frame, LinkType, Packet, TcpFlags, Transport, Tunnel};
use crate::dnscache::{self, DnsCache};
use crate::flow::defrag::{self, Defragmenter};
use crate::flow::key::{Key, Side, TCP, UDP};
use crate::flow::reassembly::{self, Stream};
use crate::flow::table::{Expiry, KeyHash, Table};
use crate::flow::Direction;
use crate::proto::tls::ClientHello;
use crate::proto::{quic, tls};
use crate::time::Timestamp;

pub use budget::DEFAULT_BUDGET;
pub use record::{
    DnsAnswer, DnsSummary, Details, Evasion, FlowRecord, ProxyInfo, Signal, Stats, TlsSummary, Unnamed,
};
use record::bump;

/// Engine limits and timeouts. Every field is a bound with a stated memory or time cost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Flows held at once. A flow costs about [`FLOW_BYTES`] bytes plus, while it is being
    /// identified, up to twice `reassembly_limit` per direction; identified flows cost only
    /// the base and their details. Default 262,144 (about 54 MiB of base state).
    pub max_flows: usize,
    /// Leading bytes reassembled per TCP direction while identifying a flow.
    pub reassembly_limit: usize,
    /// Idle seconds before an open TCP flow ends (Zeek's `tcp_inactivity_timeout` is 5 min).
    pub tcp_idle_secs: u64,
    /// Seconds a TCP flow is kept after FIN in both directions or RST, to count the last ACKs.
    pub tcp_closed_secs: u64,
    /// Idle seconds before a UDP flow ends.
    pub udp_idle_secs: u64,
    /// Idle seconds before a DNS-over-UDP flow ends (Zeek's `dns_session_timeout` is 10 s): a
    /// resolver transaction is over once answered, and holding it for the UDP timeout would
    /// keep thousands of finished lookups in the table.
    pub dns_idle_secs: u64,
    /// Addresses held in the DNS answer cache (about 200 bytes each).
    pub dns_cache_addrs: usize,
    /// Bytes all flows being identified may hold in buffers (reassembly windows, TLS records,
    /// QUIC CRYPTO data, IP fragments); beyond it the oldest parked flows give up first.
    pub memory_budget: usize,
}

/// Approximate bytes of one identified flow in the table: its slab entry (key, hash, state,
/// two bucket places: 184 bytes, plus the slab's tag), its 4-byte index slot and control byte
/// at the index's load, and its 4-byte slots in the expiry and eviction buckets.
pub const FLOW_BYTES: usize = 216;

/// DNS query names kept per flow (a resolver's flow can carry thousands).
pub const MAX_DNS_NAMES_PER_FLOW: usize = 16;

/// DNS answers kept per flow.
pub const MAX_DNS_ANSWERS_PER_FLOW: usize = 32;

/// DNS messages read per flow; later ones are counted, not parsed.
pub const MAX_DNS_MESSAGES_PER_FLOW: u32 = 256;

/// Server datagrams of a UDP flow inspected while nothing identifies it (the server may speak
/// first). Client datagrams are bounded by bytes and time instead: [`quic::MAX_PROBE_BYTES`],
/// [`MAX_UDP_PROBE_SECS`].
pub const MAX_UDP_PROBE_DATAGRAMS: u16 = 16;

/// Most bytes of one TCP direction read while identifying a flow, however they are cut: the
/// window of `reassembly_limit` bytes slides over TLS records already read (a hello cut into
/// 1-byte records is about six times its own size), up to this offset. It bounds the work one
/// flow can cause, not memory; a direction still undecided here is left alone (`limit`).
pub const MAX_PROBE_STREAM_BYTES: u64 = 128 * 1024;

/// Client segments read after a complete ClientHello while waiting for the server to
/// acknowledge it (a conflicting retransmission before that ACK replaces the hello: a decoy).
/// The server's ACK normally comes next; a capture that lacks it stops here.
pub const MAX_SEGMENTS_AFTER_HELLO: u16 = 8;

/// Data segments a direction without a SYN gets before bytes the probes do not recognise end
/// its probe: a capture that starts mid-connection may hold the first two segments swapped.
pub const MIDSTREAM_PATIENCE: u16 = 3;

/// Seconds of packet time, from a UDP flow's first packet, during which its datagrams are
/// probed (junk before a QUIC Initial, a hello over many Initials, the server's answer that
/// tells a decoy Initial from the real one). Costs the flow's probe (a few hundred bytes, plus
/// what [`quic::Initials::footprint`] reports) for at most that long.
pub const MAX_UDP_PROBE_SECS: u64 = 10;

impl Default for Config {
    fn default() -> Self {
        Config {
            max_flows: 262_144,
            reassembly_limit: reassembly::DEFAULT_LIMIT,
            tcp_idle_secs: 300,
            tcp_closed_secs: 5,
            udp_idle_secs: 60,
            dns_idle_secs: 10,
            dns_cache_addrs: dnscache::DEFAULT_MAX_ADDRS,
            memory_budget: budget::DEFAULT_BUDGET,
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
    /// DNS (UDP or TCP port 53).
    Dns,
    /// Plain HTTP/1.x (a request line).
    Http,
    /// SSH (an `SSH-` banner).
    Ssh,
    /// STUN/TURN.
    Stun,
    /// WhatsApp's chat protocol (its `WA` preface).
    WhatsApp,
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
            App::Stun => "stun",
            App::WhatsApp => "whatsapp",
        }
    }
}

/// TCP connection progress bits.
mod tcp_bits {
    pub const FIN_CLIENT: u8 = 1;
    pub const FIN_SERVER: u8 = 2;
    pub const RST: u8 = 4;
}

/// Identification work still to do for a flow; dropped once the flow is identified.
#[derive(Debug, Default)]
struct Probe {
    /// Reassembled first bytes of TCP, by [`Direction::index`].
    streams: [Option<Stream>; 2],
    /// This direction needs no more bytes.
    done: [bool; 2],
    /// Bytes consumed by earlier stages (proxy preamble, DNS messages) per direction.
    skip: [usize; 2],
    /// Data segments or datagrams inspected, per direction.
    seen: [u16; 2],
    /// QUIC Initial decryption state.
    quic: Option<Box<quic::Initials>>,
    /// TLS records read so far, per direction.
    readers: [tls::HandshakeReader; 2],
    /// A hello read but not yet acknowledged by the peer: the stream offset where it ends.
    hello_end: [Option<u64>; 2],
    /// Segments seen since that hello.
    after_hello: [u16; 2],
    /// Data of the client's SYN (its ISN and bytes), held until the SYN-ACK says whether the
    /// server took it.
    syn_data: Option<(u32, Box<[u8]>)>,
}

impl Probe {
    /// Bytes of buffers this probe holds (charged to the memory budget; the probe itself is
    /// part of the flow's base cost).
    fn footprint(&self) -> usize {
        let streams: usize = self.streams.iter().flatten().map(Stream::footprint).sum();
        let readers: usize = self.readers.iter().map(tls::HandshakeReader::footprint).sum();
        let syn = self.syn_data.as_ref().map_or(0, |(_, d)| d.len());
        let quic = self.quic.as_deref().map_or(0, quic::Initials::footprint);
        streams + readers + syn + quic
    }
}

/// Per-flow state. `repr(C)` keeps the fields every packet touches (the first 56 bytes) in one
/// cache line; `Table::warm` touches that line before the packet is handled.
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
    details: Option<Box<Details>>,
    /// Bytes of its probe's buffers charged to the memory budget.
    charged: u32,
}

impl FlowState {
    fn details(&mut self) -> &mut Details {
        self.details.get_or_insert_with(Default::default)
    }
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
                | 8008 | 8080 | 8081 | 8443 | 8801 | 8883 | 8888 | 9443 | 19302 | 19305
        )
}

/// What the probes share while handling one packet.
struct Ctx<'a> {
    config: &'a Config,
    stats: &'a mut Stats,
    cache: &'a mut DnsCache,
    now: Timestamp,
    /// The hello being read, reused from flow to flow so that its lists keep their memory.
    hello: &'a mut ClientHello,
}

/// The sensor's packet path.
pub struct Engine {
    config: Config,
    table: Table<FlowState>,
    cache: DnsCache,
    budget: budget::Budget,
    next_seq: u64,
    /// IP reassembly, before the flow lookup.
    defrag: Defragmenter,
    /// Where a completed datagram is written (reused: at most 64 KiB kept between datagrams).
    datagram: Vec<u8>,
    /// The ClientHello being read, reused (see `Ctx::hello`).
    hello: ClientHello,
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
            cache: DnsCache::new(config.dns_cache_addrs),
            budget: budget::Budget::new(config.memory_budget),
            next_seq: 0,
            defrag: Defragmenter::new(defrag::Config::default()),
            datagram: Vec::new(),
            hello: ClientHello::default(),
            records: Vec::new(),
            stats: Stats { decode_drops: vec![0; DropReason::ALL.len()], ..Stats::default() },
        }
    }

    /// Flows currently held.
    pub fn active_flows(&self) -> usize {
        self.table.len()
    }

    /// Bytes the flows being identified hold in buffers, and the budget for them.
    pub fn memory(&self) -> (usize, usize) {
        (self.budget.held() + self.defrag.held_bytes(), self.budget.limit())
    }

    /// The flow table's counters.
    pub fn table_stats(&self) -> crate::flow::table::TableStats {
        self.table.stats
    }

    /// The DNS answer cache's counters and size.
    pub fn dns_cache_stats(&self) -> (dnscache::CacheStats, usize) {
        (self.cache.stats, self.cache.len())
    }

    /// Advances time without a packet: a live capture that falls quiet still ends its idle
    /// flows. `now` must be on the packets' clock (for live capture, the wall clock).
    pub fn tick(&mut self, now: Timestamp) {
        self.expire_fragments(now);
        self.table.tick(now);
        self.collect_ended();
    }

    /// Forgets every DNS answer (between unrelated captures; counters are kept).
    pub fn forget_dns_answers(&mut self) {
        let stats = self.cache.stats;
        self.cache = DnsCache::new(self.config.dns_cache_addrs);
        self.cache.stats = stats;
    }

    /// Handles one frame of link type `link` (None: a link type the decoder does not know).
    pub fn handle(&mut self, ts: Timestamp, link: Option<LinkType>, frame: &[u8], wire_len: u32) {
        if let Some(pkt) = self.decode(link, frame, wire_len) {
            if let Transport::Fragment(frag) = &pkt.transport {
                self.fragment(ts, &pkt, frag);
            } else {
                let key = self.hashed(flow_key(&pkt));
                self.packet(ts, &pkt, key);
            }
        }
        self.expire_fragments(ts);
        self.table.tick(ts);
        self.collect_ended();
    }

    /// Handles a batch of frames: decodes them all, looks their flows up back to back (so the
    /// cache misses of the lookups overlap), then handles each. Same results as [`Engine::handle`]
    /// on each frame in turn.
    ///
    /// An IP fragment splits the batch: the packets before it are handled first, then the
    /// fragment (and the datagram it completes, if any), so packets keep their order.
    pub fn handle_batch(&mut self, frames: &[Frame<'_>]) {
        // Two parallel arrays rather than one of tuples: elements stay small enough to be
        // copied inline instead of through memcpy calls.
        let mut pkts: Vec<(Timestamp, Packet<'_>)> = Vec::with_capacity(frames.len());
        let mut keys: Vec<Option<FlowKey>> = Vec::with_capacity(frames.len());
        for f in frames {
            if let Some(p) = self.decode(f.link, f.data, f.wire_len) {
                if let Transport::Fragment(frag) = &p.transport {
                    self.packets(&mut pkts, &mut keys);
                    self.fragment(f.ts, &p, frag);
                    self.table.tick(f.ts);
                    continue;
                }
                // The one hash of this packet: warm, find and insert all reuse it.
                keys.push(self.hashed(flow_key(&p)));
                pkts.push((f.ts, p));
            }
        }
        self.packets(&mut pkts, &mut keys);
        if let Some(f) = frames.last() {
            self.expire_fragments(f.ts);
            self.table.tick(f.ts);
        }
        self.collect_ended();
    }

    /// The batch fast path: warms the flows of `pkts`, handles them in order, and empties both.
    fn packets(&mut self, pkts: &mut Vec<(Timestamp, Packet<'_>)>, keys: &mut Vec<Option<FlowKey>>) {
        // A tight loop of independent lookups: the CPU keeps several misses in flight.
        for (k, _, h) in keys.iter().flatten() {
            self.table.warm(k, *h);
        }
        for ((ts, p), key) in pkts.iter().zip(keys.drain(..)) {
            self.packet(*ts, p, key);
            self.table.tick(*ts);
        }
        pkts.clear();
    }

    /// Hands a fragment to the defragmenter; a datagram it completes is decoded and goes down
    /// the normal path at once, as one packet of the whole datagram's IP length, at the time of
    /// the fragment that completed it. A datagram whose overlapping fragments disagreed marks
    /// its flow with [`Evasion::FRAGMENT_OVERLAP`]. A datagram that turns out to hold another
    /// fragment (a fragmented tunnel carrying a fragment) goes round again; decode's
    /// encapsulation bound ends that.
    fn fragment(&mut self, ts: Timestamp, pkt: &Packet<'_>, frag: &Fragment<'_>) {
        let mut buf = std::mem::take(&mut self.datagram);
        let done = self.defrag.push(ts, pkt, frag, &mut buf);
        self.stats.defrag = self.defrag.stats;
        if let Some(done) = done {
            match decode::reassembled(&done.head, &buf) {
                Ok(whole) => match &whole.transport {
                    Transport::Fragment(inner) => self.fragment(ts, &whole, inner),
                    _ => {
                        let key = self.hashed(flow_key(&whole));
                        self.packet(ts, &whole, key);
                        if let (true, Some((key, _, _))) = (done.overlap_conflict, key) {
                            self.flag_evasion(&key, Evasion::FRAGMENT_OVERLAP);
                        }
                    }
                },
                Err(reason) => self.stats.decode_drops[reason.index()] += 1,
            }
        }
        self.datagram = buf;
    }

    /// Marks the flow of `key` (still held, or ended by the packet just handled) with `sign`.
    fn flag_evasion(&mut self, key: &Key, sign: Evasion) {
        if let Some(flow) = self.table.get_mut(key) {
            flow.details().evasion.insert(sign);
        } else if let Some(ended) = self.table.ended.iter_mut().rev().find(|e| e.key == *key) {
            ended.state.details().evasion.insert(sign);
        }
    }

    /// Gives up the datagrams whose fragments are too old at `now` (cheap when none is held).
    fn expire_fragments(&mut self, now: Timestamp) {
        if !self.defrag.is_empty() {
            self.defrag.expire(now);
            self.stats.defrag = self.defrag.stats;
        }
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

    /// Ends every flow (end of a capture), handing each record to `emit` in the order of the
    /// flows' first packets, before the next flow is taken out of the table: at the end of a
    /// large capture the records are never all in memory at once.
    ///
    /// # Errors
    /// The first error `emit` returns; the flows not yet handed over stay in the table.
    pub fn finish_with<E>(&mut self, mut emit: impl FnMut(FlowRecord) -> Result<(), E>) -> Result<(), E> {
        self.collect_ended();
        for r in self.records.drain(..) {
            emit(r)?;
        }
        let (stats, budget) = (&mut self.stats, &mut self.budget);
        for e in self.table.drain_in_order(|f| f.seq) {
            Self::release(budget, &e.state, &e.key);
            emit(record(e, stats))?;
        }
        Ok(())
    }

    /// A packet's flow key with its hash in the flow table.
    #[inline]
    fn hashed(&self, key: Option<(Key, Side)>) -> Option<FlowKey> {
        key.map(|(k, side)| (k, side, self.table.hash(&k)))
    }

    fn packet(&mut self, ts: Timestamp, pkt: &Packet<'_>, key: Option<FlowKey>) {
        let Some((key, side, hash)) = key else {
            self.stats.other_transport += 1;
            return;
        };
        let (sport, dport, proto) = match &pkt.transport {
            Transport::Tcp(t) => (t.src_port, t.dst_port, TCP),
            Transport::Udp(u) => (u.src_port, u.dst_port, UDP),
            Transport::Other { .. } | Transport::Fragment(_) => return,
        };
        let syn_only = matches!(&pkt.transport, Transport::Tcp(t)
            if t.flags.contains(TcpFlags::SYN) && !t.flags.contains(TcpFlags::ACK));

        // Port reuse: a new SYN with another ISN on a finished or finishing connection.
        if syn_only {
            if let (Some(f), Transport::Tcp(t)) = (self.table.find_mut(&key, hash), &pkt.transport) {
                if f.client_isn.is_some_and(|isn| isn != t.seq) || f.tcp != 0 {
                    self.table.close_hashed(&key, hash);
                }
            }
        }

        let config = self.config;
        let flow = match self.table.find_mut(&key, hash) {
            Some(f) => f,
            None => {
                let client = Self::client_side(pkt, side, sport, dport);
                let seq = self.next_seq;
                self.next_seq += 1;
                let idle = if proto == TCP { config.tcp_idle_secs } else { config.udp_idle_secs };
                let server = key.endpoint(client.other()).ip();
                let names = self.cache.lookup(&server, ts);
                let details = (!names.is_empty())
                    .then(|| Box::new(Details { names_from_dns: names.into_boxed_slice(), ..Default::default() }));
                let state = FlowState {
                    last: ts,
                    packets: [0; 2],
                    bytes: [0; 2],
                    probe: Some(Box::default()),
                    idle_secs: idle.min(u32::MAX as u64) as u32,
                    client,
                    tcp: 0,
                    app: App::Unknown,
                    seq,
                    first: ts,
                    client_isn: None,
                    vlan: pkt.vlan,
                    tunnel: pkt.tunnel,
                    details,
                    charged: 0,
                };
                self.table.insert_hashed(key, hash, state)
            }
        };
        // A shorter timeout (a close, a flow found to be DNS) moves the flow's deadline earlier:
        // the table must file it again (rare: once or twice per flow).
        let idle_before = flow.idle_secs;
        let idle_after = 'handled: {
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
                    flow.tcp |= if dir == Direction::ToServer { tcp_bits::FIN_CLIENT } else { tcp_bits::FIN_SERVER };
                }
                if flow.tcp != before && flow.is_closed() {
                    flow.idle_secs = config.tcp_closed_secs.min(u32::MAX as u64) as u32;
                }
            }

            // Bypass: an identified flow costs nothing more.
            if flow.probe.is_none() {
                break 'handled flow.idle_secs;
            }
            let mut ctx = Ctx {
                config: &self.config,
                stats: &mut self.stats,
                cache: &mut self.cache,
                now: ts,
                hello: &mut self.hello,
            };
            match &pkt.transport {
                Transport::Tcp(t) => tcp::probe(flow, dir, t, &mut ctx),
                Transport::Udp(u) => udp::probe(flow, dir, u, &mut ctx),
                Transport::Other { .. } | Transport::Fragment(_) => {}
            }
            let idle = flow.idle_secs;
            let now = flow.probe.as_deref().map_or(0, Probe::footprint);
            let before = flow.charged as usize;
            if now != before {
                flow.charged = u32::try_from(now).unwrap_or(u32::MAX);
                self.budget.charge(flow.seq, key, before, flow.charged as usize);
                if now > before && self.budget.over(self.defrag.held_bytes()) {
                    self.shed();
                }
            }
            idle
        };
        if idle_after < idle_before {
            self.table.reschedule(&key, hash);
        }
    }

    /// Gives up the oldest flows holding buffers until the budget holds again.
    fn shed(&mut self) {
        while self.budget.over(self.defrag.held_bytes()) {
            let Some((seq, key)) = self.budget.oldest() else { return };
            let Some(f) = self.table.get_mut(&key).filter(|f| f.seq == seq) else { continue };
            self.budget.release(f.charged as usize);
            f.charged = 0;
            f.probe = None;
            self.stats.memory_giveups += 1;
        }
    }

    /// Takes an ended flow's bytes off the budget.
    fn release(budget: &mut budget::Budget, f: &FlowState, key: &Key) {
        if f.charged > 0 {
            budget.charge(f.seq, *key, f.charged as usize, 0);
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

    fn collect_ended(&mut self) {
        if self.table.ended.is_empty() {
            return;
        }
        for e in self.table.ended.drain(..) {
            Self::release(&mut self.budget, &e.state, &e.key);
            self.records.push(record(e, &mut self.stats));
        }
    }
}

/// Turns a flow that left the table into its record, counting how it ended and what named it.
fn record(e: crate::flow::table::Ended<FlowState>, stats: &mut Stats) -> FlowRecord {
    bump(&mut stats.flows_ended, e.reason.as_str());
    let f = e.state;
    if let Some(d) = f.details.as_deref() {
        for label in d.evasion.labels() {
            bump(&mut stats.evasions, label);
        }
    }
    let (signal, unnamed) = name_flow(&f);
    match (signal, unnamed) {
        (Some(s), _) => bump(&mut stats.named, s.as_str()),
        (None, Some(u)) => bump(&mut stats.unnamed, u.as_str()),
        (None, None) => {}
    }
    if let Some(p) = &f.probe {
        // A hole that never filled before the flow ended is a gap too (not a hello that was read
        // and only waited for the server's ACK).
        for ((s, done), waiting) in p.streams.iter().zip(p.done).zip(p.hello_end) {
            if s.is_some() && !done && waiting.is_none() && f.app == App::Tls {
                bump(&mut stats.reassembly_giveups, reassembly::GiveUp::Gap.as_str());
            }
        }
    }
    FlowRecord {
        seq: f.seq,
        ts_start: f.first,
        ts_end: f.last,
        client: e.key.endpoint(f.client),
        server: e.key.endpoint(f.client.other()),
        proto: e.key.proto,
        app: f.app,
        details: f.details,
        signal,
        unnamed,
        packets_up: f.packets[0],
        packets_down: f.packets[1],
        bytes_up: f.bytes[0],
        bytes_down: f.bytes[1],
        vlan: f.vlan,
        tunnel: f.tunnel,
        end: e.reason,
    }
}

/// Which signal names a finished flow, by the precedence SNI, QUIC SNI, HTTP Host, CONNECT
/// target, DNS correlation, marker; or why nothing does. A real-ECH flow's SNI is only the
/// provider's public name, so a DNS-correlated name wins over it.
fn name_flow(f: &FlowState) -> (Option<Signal>, Option<Unnamed>) {
    let d = f.details.as_deref();
    let hello = d.and_then(|d| d.client_hello());
    let has_sni = hello.is_some_and(|c| c.sni.is_some());
    let real_ech = d.is_some_and(Details::real_ech);
    let from_dns = d.is_some_and(|d| !d.names_from_dns.is_empty()) && f.app != App::Dns;
    let quic = f.app == App::Quic;
    // Real ECH: the SNI is only the provider's public name; only a DNS answer can name it.
    let signal = if has_sni && !real_ech {
        Some(if quic { Signal::QuicSni } else { Signal::Sni })
    } else if d.is_some_and(|d| d.http_host.is_some()) {
        Some(Signal::HttpHost)
    } else if d.is_some_and(|d| d.proxy.as_ref().is_some_and(|p| p.target.is_some())) {
        Some(Signal::Connect)
    } else if from_dns {
        Some(Signal::Dns)
    } else if d.is_some_and(|d| d.marker.is_some()) {
        Some(Signal::Marker)
    } else {
        None
    };
    if f.app == App::Dns {
        // A DNS flow goes to a resolver: the names it carries are not its destination.
        return (None, None);
    }
    if signal.is_some() {
        return (signal, None);
    }
    let unnamed = if real_ech {
        Unnamed::Ech
    } else if hello.is_some() {
        Unnamed::TlsNoSni
    } else if quic {
        Unnamed::QuicNoHello
    } else if f.app == App::Tls {
        Unnamed::HelloIncomplete
    } else if f.app == App::Unknown && f.tcp_payload_unseen() {
        Unnamed::NoPayload
    } else {
        Unnamed::UnknownProtocol
    };
    (None, Some(unnamed))
}

impl FlowState {
    /// True when neither side sent payload (SYN only, a handshake then FIN, SYN then RST):
    /// the probe is still there and counted no data segment in either direction.
    fn tcp_payload_unseen(&self) -> bool {
        self.probe.as_ref().is_some_and(|p| p.seen == [0, 0] && p.syn_data.is_none())
    }
}

/// A packet's flow key, the side that sent it and the key's hash in the flow table.
type FlowKey = (Key, Side, KeyHash);

/// The flow key of a TCP or UDP packet, and which side sent it.
#[inline]
fn flow_key(pkt: &Packet<'_>) -> Option<(Key, Side)> {
    let (sport, dport, proto) = match &pkt.transport {
        Transport::Tcp(t) => (t.src_port, t.dst_port, TCP),
        Transport::Udp(u) => (u.src_port, u.dst_port, UDP),
        Transport::Other { .. } | Transport::Fragment(_) => return None,
    };
    Some(Key::new(pkt.src, sport, pkt.dst, dport, proto))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_flow_sizes_stay_as_documented() {
        // docs/architecture.md "Memory per flow" quotes these.
        eprintln!("FlowState {} Probe {} Details {}", std::mem::size_of::<FlowState>(), std::mem::size_of::<Probe>(), std::mem::size_of::<Details>());
        assert!(std::mem::size_of::<FlowState>() <= 112);
        assert!(std::mem::size_of::<Probe>() <= 512);
        assert!(std::mem::size_of::<Details>() <= 192);
    }

    #[test]
    fn orientation_heuristics() {
        assert!(is_service_port(443));
        assert!(is_service_port(5222));
        assert!(!is_service_port(50000));
    }
}
