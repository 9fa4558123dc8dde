//! The sans-IO engine: frames and their timestamps in, flow records out.
//!
//! [`Engine::handle_batch`] runs frames through decode → (IP fragments) IP reassembly → flow
//! table → (while a flow is not yet identified) TCP reassembly → protocol probes → fingerprints.
//! Once a flow is identified its probe state is dropped and every later packet costs one hash
//! lookup and a few counter adds ("probe, then parse, then bypass"). DNS flows are the
//! exception: every DNS message is read, because each answer feeds the
//! [`DnsCache`](crate::dnscache::DnsCache) that names later flows. Flows that end (timeout,
//! close, eviction, end of capture) become [`FlowRecord`]s in [`Engine::records`].
//!
//! The packet path is three stages, so that it can run over several threads with the same
//! result ([`shard`], [`resolve`], `runtime::workers`): the [`shard::Splitter`] numbers the
//! frames, decodes each to its flow key and reassembles IP fragments; a shard
//! ([`Engine::handle_shard`]) holds the flows; the [`resolve::Resolver`] owns everything that
//! crosses flows (the DNS cache), replays it in packet order and completes the records. A
//! standalone [`Engine::new`] runs the three inline.
//!
//! Nothing here reads the wall clock, opens a file or logs per packet: counters live in
//! [`Stats`] and the caller exports them.

mod budget;
mod dns;
pub mod record;
pub mod resolve;
pub mod shard;
mod tcp;
mod udp;

use crate::decode::{self, Frame, LinkType, Packet, TcpFlags, Transport, Tunnel};
use crate::dnscache::{self, CacheStats};
use crate::flow::key::{Key, Side, TCP, UDP};
use crate::flow::reassembly::{self, Stream};
use crate::flow::table::{Expiry, KeyHash, Table, TableStats};
use crate::flow::Direction;
use crate::proto::marker::Marker;
use crate::proto::tls::ClientHello;
use crate::proto::{quic, tls};
use crate::time::Timestamp;

pub use budget::DEFAULT_BUDGET;
pub use record::{
    AlpnList, AnswerData, DnsAnswer, DnsSummary, Details, Evasion, FlowRecord, ProxyInfo, Signal, Signalling, Stats, TlsSummary, Unnamed,
};
use record::bump;
use resolve::{Event, Pos, Resolver, Stamped};

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

/// Approximate bytes of one identified flow in the table (key, state, hash-map overhead).
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
    /// RTP/RTCP call media (`proto::rtp`: headers that agree over a few datagrams).
    Rtp,
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
            App::Rtp => "rtp",
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
    streams: Streams,
    /// This direction needs no more bytes.
    done: [bool; 2],
    /// Bytes consumed by earlier stages (proxy preamble, DNS messages) per direction.
    skip: [usize; 2],
    /// Data segments or datagrams inspected, per direction.
    seen: [u16; 2],
    /// QUIC Initial decryption state.
    quic: Option<Box<quic::Initials>>,
    /// RTP/RTCP agreement so far, per direction (UDP).
    rtp: [crate::proto::rtp::Track; 2],
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
    /// Bytes of buffers this probe holds, its boxed streams included (charged to the memory
    /// budget; the probe itself is part of the flow's base cost).
    fn footprint(&self) -> usize {
        let streams = self.streams.footprint();
        let readers: usize = self.readers.iter().map(tls::HandshakeReader::footprint).sum();
        let syn = self.syn_data.as_ref().map_or(0, |(_, d)| d.len());
        let quic = self.quic.as_deref().map_or(0, quic::Initials::footprint);
        streams + readers + syn + quic
    }
}

/// A TCP flow's two reassembly streams, by [`Direction::index`], made by the flow's first byte
/// (a SYN's sequence number waits beside them until then). One box for both, and none for a
/// flow without payload: two inline streams would make every probe 216 bytes larger, for the
/// reference capture's 24,000 DNS flows and for every TCP flow that sent only its handshake.
#[derive(Debug, Default)]
struct Streams {
    pair: Option<Box<[Option<Stream>; 2]>>,
    /// The SYN's sequence number of a direction whose stream is not made yet.
    isn: [Option<u32>; 2],
}

impl Streams {
    /// The stream of direction `d`, if it has one.
    fn get(&self, d: usize) -> Option<&Stream> {
        self.pair.as_deref().and_then(|pair| pair.get(d)).and_then(Option::as_ref)
    }

    /// The stream of direction `d`, if it has one, to change.
    fn get_mut(&mut self, d: usize) -> Option<&mut Stream> {
        self.pair.as_deref_mut().and_then(|pair| pair.get_mut(d)).and_then(Option::as_mut)
    }

    /// A SYN of direction `d` (its sequence number `isn`): the stream starts after it. As with
    /// [`Stream::syn`], the first one counts.
    fn syn(&mut self, d: usize, isn: u32) {
        match self.get_mut(d) {
            Some(s) => s.syn(isn),
            None => {
                if let Some(slot) = self.isn.get_mut(d) {
                    slot.get_or_insert(isn);
                }
            }
        }
    }

    /// The stream of direction `d` (0 or 1; above: 1), made with a window of `limit` bytes (and
    /// the SYN seen for it) if it has none.
    fn get_or_new(&mut self, d: usize, limit: usize) -> &mut Stream {
        let isn = self.isn.get(d).copied().flatten();
        let [to_server, to_client] = &mut **self.pair.get_or_insert_with(Box::default);
        let slot = if d == 0 { to_server } else { to_client };
        slot.get_or_insert_with(|| {
            let mut s = Stream::new(limit);
            if let Some(isn) = isn {
                s.syn(isn);
            }
            s
        })
    }

    /// Exchanges the two directions (the flow was turned around).
    fn swap(&mut self) {
        if let Some(pair) = self.pair.as_deref_mut() {
            pair.swap(0, 1);
        }
        self.isn.swap(0, 1);
    }

    /// Bytes held: the box and the streams' buffers.
    fn footprint(&self) -> usize {
        self.pair.as_deref().map_or(0, |pair| std::mem::size_of_val(pair) + pair.iter().flatten().map(Stream::footprint).sum::<usize>())
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
    /// Where the cross-flow facts the packet carries go (see [`resolve`]).
    events: &'a mut Vec<Stamped>,
    /// The packet's global frame number.
    at: u64,
    /// The id of the packet's flow.
    flow: u64,
    /// The address of its client.
    client: std::net::IpAddr,
    now: Timestamp,
    /// The hello being read, reused from flow to flow so that its lists keep their memory.
    hello: &'a mut ClientHello,
}

impl Ctx<'_> {
    /// Tells the resolver something this packet carried.
    fn emit(&mut self, event: Event) {
        self.events.push(Stamped { pos: Pos { at: self.at, phase: Pos::PACKET, id: 0 }, event });
    }

    /// A ClientHello of the flow was read: whether its ECH extension is GREASE depends on the
    /// ECH public names learned so far, which only the resolver knows. Returns the provisional
    /// value of `Details::ech_grease` (true while the resolver's answer is pending, i.e. for a
    /// hello with ECH); `was` is the flow's current value.
    fn hello_ech(&mut self, was: bool, ech: bool, sni: Option<&[u8]>) -> bool {
        if ech || was {
            let id = self.flow;
            self.emit(Event::Hello { id, ech, sni: sni.map(Box::from) });
        }
        ech
    }
}

/// The engine's counters, summed over shards where there are several: what `--stats`, the
/// daemon's metrics and a survey read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    /// Engine counters.
    pub stats: Stats,
    /// Flow table counters (`peak` as one table would have seen it).
    pub table: TableStats,
    /// Bytes held by flows being identified and IP reassembly, and the budget for them.
    pub memory: (usize, usize),
    /// Flows held.
    pub active_flows: usize,
    /// The DNS answer cache's counters and size.
    pub dns_cache: (CacheStats, usize),
}

impl Counters {
    /// The flow table's counters.
    pub fn table_stats(&self) -> TableStats {
        self.table
    }

    /// Bytes held by flows being identified, and the budget for them.
    pub fn memory(&self) -> (usize, usize) {
        self.memory
    }

    /// Flows held.
    pub fn active_flows(&self) -> usize {
        self.active_flows
    }

    /// The DNS answer cache's counters and size.
    pub fn dns_cache_stats(&self) -> (CacheStats, usize) {
        self.dns_cache
    }

    /// Adds a shard's counters (table counters summed, `peak` left to the caller).
    pub fn add_shard(&mut self, other: &Counters) {
        self.stats.add(&other.stats);
        let (t, o) = (&mut self.table, &other.table);
        t.created += o.created;
        t.expired += o.expired;
        t.evicted += o.evicted;
        t.closed += o.closed;
        self.memory.0 += other.memory.0;
        self.memory.1 += other.memory.1;
        self.active_flows += other.active_flows;
    }
}

/// A standalone engine's splitter and resolver: one shard that takes frames directly.
struct Solo {
    splitter: shard::Splitter,
    resolver: Resolver,
    batch: shard::Batch,
}

/// The sensor's packet path.
///
/// [`Engine::new`] makes a standalone engine: frames in ([`Engine::handle_batch`]), finished
/// records out ([`Engine::records`]). Inside, it is the same three stages as a multi-threaded
/// run (`runtime::workers`), with one shard: a [`shard::Splitter`] (decode to the flow key, IP
/// reassembly), the shard's packet path ([`Engine::handle_shard`]) and a [`Resolver`] (DNS
/// answers and ECH public names, applied in packet order). [`Engine::shard`] makes one shard
/// alone, fed by a splitter elsewhere.
pub struct Engine {
    config: Config,
    table: Table<FlowState>,
    budget: budget::Budget,
    /// Bytes IP reassembly holds (in the splitter), charged to the same budget.
    defrag_held: usize,
    /// Global frame number of the frame being handled.
    at: u64,
    /// Events for the resolver, not yet handed over.
    events: Vec<Stamped>,
    solo: Option<Box<Solo>>,
    /// The ClientHello being read, reused (see `Ctx::hello`).
    hello: ClientHello,
    /// Finished flows, oldest end first; the caller drains this (standalone engine).
    pub records: Vec<FlowRecord>,
    /// Counters (a standalone engine's include its splitter's and resolver's).
    pub stats: Stats,
}

/// A frame decoded by a shard, with its flow key.
type Decoded<'a> = (Packet<'a>, Option<FlowKey>);

/// Frames looked up back to back before they are handled (see [`Engine::handle_shard`]).
pub const WARM_BATCH: usize = 32;

impl Engine {
    /// A standalone engine with `config`'s limits.
    pub fn new(config: Config) -> Self {
        let mut e = Engine::shard(config);
        e.solo = Some(Box::new(Solo {
            splitter: shard::Splitter::new(1),
            resolver: Resolver::new(1, config.dns_cache_addrs),
            batch: shard::Batch::default(),
        }));
        e
    }

    /// One shard of a multi-threaded engine: it takes batches from a [`shard::Splitter`]
    /// through [`Engine::handle_shard`] and leaves DNS to a [`Resolver`]. `config`'s bounds
    /// apply to this shard alone.
    pub fn shard(config: Config) -> Self {
        Engine {
            config,
            table: Table::new(config.max_flows),
            budget: budget::Budget::new(config.memory_budget),
            defrag_held: 0,
            at: 0,
            events: Vec::new(),
            solo: None,
            hello: ClientHello::default(),
            records: Vec::new(),
            stats: Stats::new(),
        }
    }

    /// Flows currently held.
    pub fn active_flows(&self) -> usize {
        self.table.len()
    }

    /// Bytes the flows being identified hold in buffers (and IP reassembly, for a standalone
    /// engine), and the budget for them.
    pub fn memory(&self) -> (usize, usize) {
        (self.budget.held() + self.defrag_held, self.budget.limit())
    }

    /// The flow table's counters.
    pub fn table_stats(&self) -> TableStats {
        self.table.stats
    }

    /// The DNS answer cache's counters and size (a shard has none: its resolver does).
    pub fn dns_cache_stats(&self) -> (CacheStats, usize) {
        self.solo.as_ref().map_or_else(Default::default, |s| s.resolver.cache_stats())
    }

    /// This engine's counters (a shard's: without IP reassembly, DNS and naming).
    pub fn counters(&self) -> Counters {
        Counters {
            stats: self.stats.clone(),
            table: self.table.stats,
            memory: (self.budget.held(), self.budget.limit()),
            active_flows: self.table.len(),
            dns_cache: self.dns_cache_stats(),
        }
    }

    /// Advances time without a packet: a live capture that falls quiet still ends its idle
    /// flows. `now` must be on the packets' clock (for live capture, the wall clock).
    /// Standalone engine only.
    pub fn tick(&mut self, now: Timestamp) {
        let Some(mut solo) = self.solo.take() else { return };
        solo.splitter.tick(now, &mut self.stats, std::slice::from_mut(&mut solo.batch));
        self.run_solo(&mut solo, &[]);
        self.solo = Some(solo);
    }

    /// Forgets every DNS answer (between unrelated captures; counters are kept).
    pub fn forget_dns_answers(&mut self) {
        if let Some(solo) = self.solo.as_mut() {
            solo.resolver.forget_dns_answers();
            solo.resolver.new_capture();
        }
    }

    /// Handles one frame of link type `link` (None: a link type the decoder does not know).
    pub fn handle(&mut self, ts: Timestamp, link: Option<LinkType>, frame: &[u8], wire_len: u32) {
        self.handle_batch(&[Frame { ts, data: frame, wire_len, link, dlt: 0 }]);
    }

    /// Handles a batch of frames (standalone engine; a shard takes [`Engine::handle_shard`]):
    /// the same results as [`Engine::handle`] on each frame in turn.
    pub fn handle_batch(&mut self, frames: &[Frame<'_>]) {
        let Some(mut solo) = self.solo.take() else { return };
        solo.splitter.split(frames, shard::Carry::InPlace, &mut self.stats, std::slice::from_mut(&mut solo.batch));
        self.run_solo(&mut solo, frames);
        self.solo = Some(solo);
    }

    /// Runs the standalone engine's batch (split in place from `frames`) through the shard
    /// and the resolver.
    fn run_solo(&mut self, solo: &mut Solo, frames: &[Frame<'_>]) {
        solo.batch.defrag_held = solo.splitter.held_bytes();
        self.handle_shard_in(&mut solo.batch, Some(frames));
        let mark = solo.batch.mark;
        solo.resolver.push(0, solo.batch.events.drain(..), mark);
        solo.resolver.run(&mut self.stats);
        self.records.extend(solo.resolver.records.drain(..));
        self.defrag_held = solo.splitter.held_bytes();
        solo.batch.clear();
    }

    /// Handles a shard's batch: its frames and datagrams, and the timeout sweeps of every frame
    /// of the run, in global order, exactly as one engine handling every frame would sweep.
    /// Frames are looked up [`WARM_BATCH`] at a time back to back (the CPU overlaps the cache
    /// misses), then handled in order. The events for the resolver (flow records included) are
    /// appended to `batch.events`, and `batch.mark` says up to where.
    pub fn handle_shard(&mut self, batch: &mut shard::Batch) {
        self.handle_shard_in(batch, None);
    }

    /// [`Engine::handle_shard`], for a batch split with [`shard::Carry::InPlace`] from
    /// `frames` when they are given (its frames are read there, not from copies in the batch).
    pub fn handle_shard_in(&mut self, batch: &mut shard::Batch, frames: Option<&[Frame<'_>]>) {
        use shard::What;
        self.defrag_held = batch.defrag_held;
        let shard::Batch { data, items, heads, packets, events, mark, .. } = batch;
        // A frame the splitter decoded decodes here too; None keeps the places if not.
        // On the stack, not a vector per batch: a batch may be one frame (live, `handle`).
        let mut pkts: [Option<Decoded<'_>>; WARM_BATCH] = std::array::from_fn(|_| None);
        let mut n = 0;
        let mut i = 0;
        while i < items.len() {
            // Decode up to WARM_BATCH frames and warm their flows.
            let mut j = i;
            while let Some(item) = items.get(j) {
                if n >= WARM_BATCH {
                    break;
                }
                if let What::Frame { link, start, len, packet } = item.what {
                    let bytes = match frames {
                        Some(frames) => frames.get(start as usize).map(|f| f.data),
                        None => data.get(start as usize..start as usize + len as usize),
                    };
                    let bytes = bytes.unwrap_or_default();
                    let decoded = match packets.get(packet as usize) {
                        Some(d) => Ok(d.packet(bytes)),
                        None => decode::decode(link, bytes),
                    };
                    match decoded {
                        Ok(p) => {
                            // The one hash of this packet: warm, find and insert all reuse it.
                            let k = self.hashed(flow_key(&p));
                            if let Some(slot) = pkts.get_mut(n) {
                                *slot = Some((p, k));
                            }
                            n += 1;
                        }
                        Err(reason) => {
                            self.stats.decode_drops[reason.index()] += 1;
                            if let Some(slot) = pkts.get_mut(n) {
                                *slot = None;
                            }
                            n += 1;
                        }
                    }
                }
                j += 1;
            }
            for (k, _, h) in pkts.iter().take(n).flatten().filter_map(|(_, k)| k.as_ref()) {
                self.table.warm(k, *h);
            }
            let mut decoded = pkts.iter_mut().take(n).map(Option::take);
            n = 0;
            for item in items.get(i..j).unwrap_or_default() {
                self.at = item.seq;
                let ts = item.ts;
                match item.what {
                    What::Frame { .. } => {
                        if let Some(Some((p, key))) = decoded.next() {
                            if key.is_some() {
                                self.packet(ts, &p, key);
                            }
                        }
                        self.collect_ended(Pos::PACKET);
                        self.table.tick(ts);
                        self.collect_ended(Pos::TICK);
                    }
                    What::Datagram { head, start, len, overlap_conflict } => {
                        let bytes = data.get(start as usize..start as usize + len as usize).unwrap_or_default();
                        // (Every datagram item has its head: the splitter pushes both.)
                        match heads.get(head as usize).map(|h| decode::reassembled(h, bytes)) {
                            None => {}
                            Some(Ok(whole)) => {
                                let key = self.hashed(flow_key(&whole));
                                self.packet(ts, &whole, key);
                                if let (true, Some((key, _, _))) = (overlap_conflict, key) {
                                    self.flag_evasion(&key, Evasion::FRAGMENT_OVERLAP);
                                }
                            }
                            Some(Err(reason)) => self.stats.decode_drops[reason.index()] += 1,
                        }
                        self.collect_ended(Pos::PACKET);
                        self.table.tick(ts);
                        self.collect_ended(Pos::TICK);
                    }
                    What::Tick => {
                        self.table.tick(ts);
                        self.collect_ended(Pos::TICK);
                    }
                    What::End => {
                        self.table.tick(ts);
                        self.collect_ended(Pos::BATCH_END);
                    }
                }
            }
            drop(decoded);
            i = j;
        }
        if let Some(last) = items.last() {
            *mark = (*mark).max(Pos::after(last.seq));
        }
        events.append(&mut self.events);
    }

    /// Marks the flow of `key` (still held, or ended by the packet just handled) with `sign`.
    fn flag_evasion(&mut self, key: &Key, sign: Evasion) {
        if let Some(flow) = self.table.get_mut(key) {
            flow.details().evasion.insert(sign);
        } else if let Some(ended) = self.table.ended.iter_mut().rev().find(|e| e.key == *key) {
            ended.state.details().evasion.insert(sign);
        }
    }

    /// Ends every flow (end of a capture) and turns them into records (standalone engine).
    pub fn finish(&mut self) {
        let mut records = std::mem::take(&mut self.records);
        let _ = self.finish_with(|r| {
            records.push(r);
            Ok::<(), ()>(())
        });
        self.records = records;
    }

    /// Ends every flow (end of a capture), handing each record to `emit` in the order of the
    /// flows' first packets, before the next flow is taken out of the table: at the end of a
    /// large capture the records are never all in memory at once. Standalone engine only.
    ///
    /// # Errors
    /// The first error `emit` returns; the flows not yet handed over stay in the table.
    pub fn finish_with<E>(&mut self, mut emit: impl FnMut(FlowRecord) -> Result<(), E>) -> Result<(), E> {
        for r in self.records.drain(..) {
            emit(r)?;
        }
        let Some(mut solo) = self.solo.take() else { return Ok(()) };
        let mut result = Ok(());
        let stats = &mut self.stats;
        let resolver = &mut solo.resolver;
        let mut pending = Vec::new();
        Self::drain_flows(&mut self.table, &mut self.budget, stats, &mut pending, self.at, |ev, stats| {
            resolver.push(0, [ev], Pos::END);
            resolver.run(stats);
            if result.is_ok() {
                for r in resolver.records.drain(..) {
                    if let Err(e) = emit(r) {
                        result = Err(e);
                        return false;
                    }
                }
            }
            result.is_ok()
        });
        // Records of flows ended before the drain but not yet out of the resolver.
        self.records.extend(solo.resolver.records.drain(..));
        self.solo = Some(solo);
        result
    }

    /// Ends every flow of this shard (end of a capture): each one's record goes to `emit`, in
    /// the order of the flows' first packets, before the next is taken out of the table. Stops
    /// early when `emit` returns false (the flows not yet handed over stay in the table).
    pub fn finish_shard(&mut self, mut emit: impl FnMut(Stamped) -> bool) {
        let mut stats = std::mem::take(&mut self.stats);
        let mut pending = std::mem::take(&mut self.events);
        Self::drain_flows(&mut self.table, &mut self.budget, &mut stats, &mut pending, self.at, |ev, _| emit(ev));
        self.stats = stats;
        self.events = pending;
    }

    fn drain_flows(
        table: &mut Table<FlowState>,
        budget: &mut budget::Budget,
        stats: &mut Stats,
        pending: &mut Vec<Stamped>,
        at: u64,
        mut emit: impl FnMut(Stamped, &mut Stats) -> bool,
    ) {
        // Records ended before (collected after every frame, so normally none).
        for e in table.ended.drain(..) {
            Self::release(budget, &e.state, &e.key);
            let r = record(e, stats);
            pending.push(Stamped { pos: Pos { at, phase: Pos::BATCH_END, id: u64::MAX }, event: Event::Ended(Box::new(r)) });
        }
        for ev in pending.drain(..) {
            if !emit(ev, stats) {
                return;
            }
        }
        for e in table.drain_in_order(|f| f.seq) {
            Self::release(budget, &e.state, &e.key);
            let id = e.state.seq;
            let r = record(e, stats);
            if !emit(Stamped { pos: Pos { at: u64::MAX, phase: Pos::DRAIN, id }, event: Event::Ended(Box::new(r)) }, stats) {
                return;
            }
        }
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
                // A flow's id is the global number of its first frame: the same whichever shard
                // holds it, and in the order of first packets.
                let seq = self.at;
                let idle = if proto == TCP { config.tcp_idle_secs } else { config.udp_idle_secs };
                let server = key.endpoint(client.other()).ip();
                // Flows this packet closed (port reuse) end before this one starts.
                self.collect_ended(Pos::PACKET);
                // The names that resolved to the server so far: the resolver's to say.
                self.events.push(Stamped { pos: Pos { at: self.at, phase: Pos::PACKET, id: 0 }, event: Event::Flow { id: seq, server, ts } });
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
                    details: None,
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
            let had_name = signalling_name(flow.details.as_deref()).is_some();
            let mut ctx = Ctx {
                config: &self.config,
                stats: &mut self.stats,
                events: &mut self.events,
                at: self.at,
                flow: flow.seq,
                client: key.endpoint(flow.client).ip(),
                now: ts,
                hello: &mut self.hello,
            };
            match &pkt.transport {
                Transport::Tcp(t) => tcp::probe(flow, dir, t, &mut ctx),
                Transport::Udp(u) => udp::probe(flow, dir, u, &mut ctx),
                Transport::Other { .. } | Transport::Fragment(_) => {}
            }
            if !had_name {
                if let Some(name) = signalling_name(flow.details.as_deref()) {
                    // For the resolver's association of the client's later call flows.
                    let client = key.endpoint(flow.client).ip();
                    let name = match name {
                        Ok(n) => Signalling::Name(n.into()),
                        Err(m) => Signalling::Marker(m),
                    };
                    let event = Event::Named { id: flow.seq, client, name, ts };
                    self.events.push(Stamped { pos: Pos { at: self.at, phase: Pos::PACKET, id: 0 }, event });
                }
            }
            let idle = flow.idle_secs;
            let now = flow.probe.as_deref().map_or(0, Probe::footprint);
            let before = flow.charged as usize;
            if now != before {
                flow.charged = u32::try_from(now).unwrap_or(u32::MAX);
                self.budget.charge(flow.seq, key, before, flow.charged as usize);
                if now > before && self.budget.over(self.defrag_held) {
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
        while self.budget.over(self.defrag_held) {
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

    /// Turns the flows that left the table into records for the resolver, at `phase` of the
    /// current frame.
    fn collect_ended(&mut self, phase: u8) {
        if self.table.ended.is_empty() {
            return;
        }
        let pos = Pos { at: self.at, phase, id: 0 };
        for e in self.table.ended.drain(..) {
            Self::release(&mut self.budget, &e.state, &e.key);
            self.events.push(Stamped { pos, event: Event::Ended(Box::new(record(e, &mut self.stats))) });
        }
    }
}

/// Turns a flow that left the table into its record, counting how it ended. Its naming is
/// provisional: the resolver adds what DNS knew and names it again (and counts that).
fn record(e: crate::flow::table::Ended<FlowState>, stats: &mut Stats) -> FlowRecord {
    bump(&mut stats.flows_ended, e.reason.as_str());
    let f = e.state;
    if let Some(d) = f.details.as_deref() {
        for label in d.evasion.labels() {
            bump(&mut stats.evasions, label);
        }
    }
    let (signal, unnamed) = name(f.details.as_deref(), f.app, f.tcp_payload_unseen());
    if let Some(p) = &f.probe {
        // A hole that never filled before the flow ended is a gap too (not a hello that was read
        // and only waited for the server's ACK).
        for ((d, done), waiting) in (0..2).zip(p.done).zip(p.hello_end) {
            if p.streams.get(d).is_some() && !done && waiting.is_none() && f.app == App::Tls {
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
/// provider's public name, so a DNS-correlated name wins over it. `payload_unseen`: a TCP flow
/// in which neither side sent payload ([`FlowState::tcp_payload_unseen`]).
/// What a flow's own bytes named it, for association: its hello's SNI (TLS or QUIC), its HTTP
/// Host, or a chat protocol's marker (WhatsApp's preface; the other markers are calls, DNS or
/// LAN sync, not signalling). Borrowed: it is asked before every probed packet, and copied
/// only once, when found.
fn signalling_name(d: Option<&Details>) -> Option<Result<&[u8], Marker>> {
    let d = d?;
    let name = d.client_hello().and_then(|h| h.sni.as_deref()).or(d.http_host.as_deref());
    match (name, d.marker) {
        (Some(n), _) => Some(Ok(n)),
        (None, Some(Marker::WhatsAppNoise)) => Some(Err(Marker::WhatsAppNoise)),
        _ => None,
    }
}

fn name(d: Option<&Details>, app: App, payload_unseen: bool) -> (Option<Signal>, Option<Unnamed>) {
    let hello = d.and_then(|d| d.client_hello());
    let has_sni = hello.is_some_and(|c| c.sni.is_some());
    let real_ech = d.is_some_and(Details::real_ech);
    let from_dns = d.is_some_and(|d| !d.names_from_dns.is_empty()) && app != App::Dns;
    let quic = app == App::Quic;
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
    if app == App::Dns {
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
    } else if app == App::Tls {
        Unnamed::HelloIncomplete
    } else if app == App::Unknown && payload_unseen {
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

/// A packet's flow key, which side sent it, and the key's hash in the flow table.
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
        eprintln!("FlowState {} Probe {} Details {} Stream {} Reader {} FlowRecord {}", std::mem::size_of::<FlowState>(), std::mem::size_of::<Probe>(), std::mem::size_of::<Details>(), std::mem::size_of::<Stream>(), std::mem::size_of::<tls::HandshakeReader>(), std::mem::size_of::<FlowRecord>());
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
