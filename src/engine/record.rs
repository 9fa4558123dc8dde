//! What the engine reports: flow records, their details, and the engine's counters.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::App;
use crate::decode::Tunnel;
use crate::fingerprint::{ja3, ja4};
use crate::flow::defrag::DefragStats;
use crate::flow::table::EndReason;
use crate::proto::marker::{Marker, StunInfo};
use crate::proto::dns::{NameRef, RDataRef, RecordRef};
use crate::proto::proxy;
use crate::proto::tls::{ClientHello, ServerHello};
use crate::time::Timestamp;

/// What a flow keeps of a ClientHello once it is fingerprinted: the fields reports use, in
/// boxed slices (about 150 bytes with its fingerprints, against a kilobyte for the parsed
/// hello, which is dropped). Raw bytes; formatting happens at output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hello {
    /// Server name (the outer name when ECH is used).
    pub sni: Option<Box<[u8]>>,
    /// The SNI is an IP literal.
    pub sni_is_ip: bool,
    /// ALPN values offered, in order.
    pub alpn: Box<[Box<[u8]>]>,
    /// Highest version offered (None for a Google QUIC CHLO, which has no TLS version).
    pub version: Option<u16>,
    /// encrypted_client_hello extension present.
    pub ech: bool,
    /// PSK or session ticket offered.
    pub resumption: bool,
    /// JA3 (MD5 hex).
    pub ja3: Option<Box<str>>,
    /// JA4 (`t…` over TCP, `q…` over QUIC).
    pub ja4: Option<Box<str>>,
    /// Why the hello could be read only up to its server_name (a `TlsError` label); no
    /// fingerprint is made from a partial hello.
    pub error: Option<&'static str>,
}

impl Hello {
    /// Keeps what reports need of `ch` and fingerprints it for `protocol`.
    pub fn fingerprinted(ch: &ClientHello, protocol: ja4::Protocol) -> Hello {
        Hello {
            sni: ch.sni.as_deref().map(Box::from),
            sni_is_ip: ch.sni_is_ip,
            alpn: ch.alpn.iter().map(|a| Box::from(&a[..])).collect(),
            version: Some(ch.max_version()),
            ech: ch.ech,
            resumption: ch.psk || ch.session_ticket,
            ja3: Some(ja3::ja3(ch).into_boxed_str()),
            ja4: Some(ja4::ja4(ch, protocol).into_boxed_str()),
            error: None,
        }
    }

    /// Keeps the name of a hello that is malformed after its server_name extension: what
    /// Wireshark and nDPI still read. JA3 and JA4 describe a whole hello, so none is made.
    pub fn partial(ch: &ClientHello, error: &'static str) -> Hello {
        Hello {
            sni: ch.sni.as_deref().map(Box::from),
            sni_is_ip: ch.sni_is_ip,
            alpn: ch.alpn.iter().map(|a| Box::from(&a[..])).collect(),
            version: None,
            ech: ch.ech,
            resumption: false,
            ja3: None,
            ja4: None,
            error: Some(error),
        }
    }
}

/// What the sensor learned from a flow's TLS handshake (over TCP or inside QUIC).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsSummary {
    /// The client's hello.
    pub client: Option<Hello>,
    /// The server's hello, when seen.
    pub server: Option<ServerHello>,
}

/// An explicit proxy the flow goes through, and the destination the client asked it for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyInfo {
    /// Proxy protocol.
    pub kind: proxy::Kind,
    /// `host:port` requested by the client.
    pub target: Option<Vec<u8>>,
}

/// One DNS answer as reported: owner name, type, and its data, borrowed from the flow's
/// [`DnsSummary`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsAnswer<'a> {
    /// Owner name as on the wire (presentation form).
    pub name: &'a [u8],
    /// Record type number.
    pub rtype: u16,
    /// TTL in seconds.
    pub ttl: u32,
    /// What the answer says, typed: text is made only where it is written (`export`).
    pub data: AnswerData<'a>,
}

/// The data of a DNS answer as the engine keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnswerData<'a> {
    /// An A or AAAA address.
    Addr(IpAddr),
    /// A CNAME target, as on the wire.
    Name(&'a [u8]),
    /// An HTTPS or SVCB record's summary.
    Service {
        /// SvcPriority.
        priority: u16,
        /// TargetName, as on the wire.
        target: &'a [u8],
        /// ALPN ids offered.
        alpn: AlpnList<'a>,
        /// An ECH configuration is published.
        ech: bool,
    },
    /// A type the sensor does not read.
    Other,
}

/// The ALPN ids of an HTTPS or SVCB answer, kept as the wire spells a list: each id behind its
/// one-byte length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlpnList<'a>(&'a [u8]);

impl<'a> AlpnList<'a> {
    /// No ids.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The ids, in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> {
        let mut rest = self.0;
        std::iter::from_fn(move || {
            let (&len, tail) = rest.split_first()?;
            let (id, tail) = tail.split_at_checked(usize::from(len))?;
            rest = tail;
            Some(id)
        })
    }
}

/// Where a byte string lies in a [`DnsSummary`]'s arena. The arena of one flow holds at most
/// [`MAX_DNS_NAMES_PER_FLOW`](super::MAX_DNS_NAMES_PER_FLOW) query names and
/// [`MAX_DNS_ANSWERS_PER_FLOW`](super::MAX_DNS_ANSWERS_PER_FLOW) answers of at most
/// three strings of a few hundred bytes each, far below `u32::MAX`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Span {
    start: u32,
    len: u32,
}

/// The data of a kept answer, with its strings in the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StoredData {
    Addr(IpAddr),
    Name(Span),
    Service { priority: u16, target: Span, alpn: Span, ech: bool },
    Other,
}

/// A kept answer, with its strings in the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StoredAnswer {
    name: Span,
    rtype: u16,
    ttl: u32,
    data: StoredData,
}

/// Bytes reserved for a flow's arena when it first stores a string: a query name and a short
/// CNAME target fit (answers that repeat the question name store nothing); a longer chain grows
/// it by doubling. 256 held 5 MiB more over the reference capture's 24,000 DNS flows.
const ARENA_START: usize = 64;

/// What a DNS flow carried (bounded by the engine's DNS limits).
///
/// Every string the summary keeps (query names, answer owner names and targets, ALPN lists) is
/// stored back to back in one byte arena, and the entries hold offsets into it; a string equal
/// to one already stored (the question name that every answer repeats as its owner) is stored
/// once. A flow's summary therefore costs its box, the arena and the two entry vectors,
/// whatever its number of answers: the arena and the entries grow by doubling, and the entries
/// are reserved per message for all of its answers. Read it through [`DnsSummary::queries`] and
/// [`DnsSummary::answers`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsSummary {
    bytes: Vec<u8>,
    queries: Vec<Span>,
    answers: Vec<StoredAnswer>,
    /// Last response code seen.
    pub rcode: Option<u16>,
    /// Messages parsed.
    pub messages: u32,
    /// Names or answers not kept because a per-flow bound was hit.
    pub dropped: u32,
}

impl DnsSummary {
    /// Query names in order of first appearance, as on the wire (presentation form).
    pub fn queries(&self) -> impl ExactSizeIterator<Item = &[u8]> + '_ {
        self.queries.iter().map(|s| self.slice(*s))
    }

    /// Answers of the responses, in order.
    pub fn answers(&self) -> impl ExactSizeIterator<Item = DnsAnswer<'_>> + '_ {
        self.answers.iter().map(|a| DnsAnswer {
            name: self.slice(a.name),
            rtype: a.rtype,
            ttl: a.ttl,
            data: match a.data {
                StoredData::Addr(addr) => AnswerData::Addr(addr),
                StoredData::Name(n) => AnswerData::Name(self.slice(n)),
                StoredData::Service { priority, target, alpn, ech } => {
                    AnswerData::Service { priority, target: self.slice(target), alpn: AlpnList(self.slice(alpn)), ech }
                }
                StoredData::Other => AnswerData::Other,
            },
        })
    }

    fn slice(&self, s: Span) -> &[u8] {
        let start = s.start as usize;
        self.bytes.get(start..start + s.len as usize).unwrap_or_default()
    }

    /// Every span stored, for finding a string already kept.
    fn spans(&self) -> impl Iterator<Item = Span> + '_ {
        let answers = self.answers.iter().flat_map(|a| {
            let (x, y) = match a.data {
                StoredData::Name(n) => (Some(n), None),
                StoredData::Service { target, alpn, .. } => (Some(target), Some(alpn)),
                StoredData::Addr(_) | StoredData::Other => (None, None),
            };
            [Some(a.name), x, y].into_iter().flatten()
        });
        self.queries.iter().copied().chain(answers)
    }

    /// Appends what `write` writes to the arena and returns its span; when equal bytes are
    /// already stored, the new copy is taken back and the old span returned.
    fn store(&mut self, write: impl FnOnce(&mut Vec<u8>)) -> Span {
        if self.bytes.capacity() == 0 {
            self.bytes.reserve(ARENA_START);
        }
        let start = self.bytes.len();
        write(&mut self.bytes);
        let new = self.bytes.get(start..).unwrap_or_default();
        if new.is_empty() {
            return Span::default();
        }
        let len = new.len();
        let old = self.spans().find(|s| self.slice(*s) == new);
        if let Some(old) = old {
            self.bytes.truncate(start);
            return old;
        }
        Span { start: start as u32, len: len as u32 }
    }

    /// Keeps a query name, unless the flow already has it; counts it as dropped when the flow
    /// already has `max` names.
    pub(super) fn add_query(&mut self, name: NameRef<'_>, max: usize) {
        let before = self.bytes.len();
        let span = self.store(|b| name.write_into(b));
        if self.queries.contains(&span) {
            // Equal names are stored once, so a repeated query has the span of the first.
        } else if self.queries.len() < max {
            self.queries.push(span);
        } else {
            self.bytes.truncate(before);
            self.dropped += 1;
        }
    }

    /// Answers kept so far.
    pub(super) fn answer_count(&self) -> usize {
        self.answers.len()
    }

    /// Makes room for `n` more answers at once (one growth per message, not one per answer).
    pub(super) fn reserve_answers(&mut self, n: usize) {
        self.answers.reserve(n);
    }

    /// Keeps an answer record.
    pub(super) fn add_answer(&mut self, r: &RecordRef<'_>) {
        let name = self.store(|b| r.name.write_into(b));
        let data = match r.data {
            RDataRef::A(a) => StoredData::Addr(a.into()),
            RDataRef::Aaaa(a) => StoredData::Addr(a.into()),
            RDataRef::Cname(n) => StoredData::Name(self.store(|b| n.write_into(b))),
            RDataRef::Https(s) | RDataRef::Svcb(s) => {
                let target = self.store(|b| s.target.write_into(b));
                let alpn = self.store(|b| {
                    for id in s.alpn() {
                        // An id's length came from one byte on the wire.
                        b.push(id.len() as u8);
                        b.extend_from_slice(id);
                    }
                });
                StoredData::Service { priority: s.priority, target, alpn, ech: s.ech }
            }
            RDataRef::Other => StoredData::Other,
        };
        self.answers.push(StoredAnswer { name, rtype: r.rtype, ttl: r.ttl, data });
    }

    /// `name`'s presentation form in a shared buffer, written through the arena's spare room
    /// (so the only allocation is the result's).
    pub(super) fn shared_name(&mut self, name: NameRef<'_>) -> Arc<[u8]> {
        let start = self.bytes.len();
        name.write_into(&mut self.bytes);
        let shared = Arc::from(self.bytes.get(start..).unwrap_or_default());
        self.bytes.truncate(start);
        shared
    }
}

/// Which signal named the flow's destination, in the order of precedence the sensor applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Signal {
    /// TLS SNI over TCP.
    Sni,
    /// SNI of a QUIC Initial's ClientHello (or a Google QUIC CHLO).
    QuicSni,
    /// Host header of a plain HTTP request.
    HttpHost,
    /// Target of an explicit proxy request (HTTP CONNECT, SOCKS).
    Connect,
    /// A name the client looked up that resolved to the server's address.
    Dns,
    /// A protocol marker (WhatsApp preface, STUN, DoT, DoQ).
    Marker,
}

impl Signal {
    /// Label used in output and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Sni => "sni",
            Signal::QuicSni => "quic_sni",
            Signal::HttpHost => "http_host",
            Signal::Connect => "connect",
            Signal::Dns => "dns",
            Signal::Marker => "marker",
        }
    }
}

/// Why a flow's destination stayed unnamed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unnamed {
    /// A TLS hello without a server_name extension.
    TlsNoSni,
    /// Real ECH: the SNI is only the provider's public name, and no DNS answer named the flow.
    Ech,
    /// A QUIC flow whose client hello could not be read.
    QuicNoHello,
    /// A TLS or QUIC flow whose hello was never complete (capture loss, mid-flow start).
    HelloIncomplete,
    /// The client sent no payload.
    NoPayload,
    /// Payload of a protocol the sensor does not name.
    UnknownProtocol,
}

impl Unnamed {
    /// Label used in output and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Unnamed::TlsNoSni => "tls_no_sni",
            Unnamed::Ech => "ech",
            Unnamed::QuicNoHello => "quic_no_hello",
            Unnamed::HelloIncomplete => "hello_incomplete",
            Unnamed::NoPayload => "no_payload",
            Unnamed::UnknownProtocol => "unknown_protocol",
        }
    }
}

/// Signs that a flow's content was cut or duplicated to hide or fake what it is. Each is a fact
/// the sensor saw, not a verdict: the flow is still named (by the bytes the real endpoints
/// agreed on), and the record says why it is suspect. A bit set, so a flow costs one byte.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Evasion(u8);

impl Evasion {
    /// A TCP retransmission or overlapping segment disagreed with bytes already kept.
    pub const OVERLAP_CONFLICT: Evasion = Evasion(1);
    /// Data carried in a SYN that the server's SYN-ACK did not acknowledge (a TFO decoy).
    pub const SYN_DATA_UNACKED: Evasion = Evasion(1 << 1);
    /// A second, different ClientHello at the same stream position as the one kept.
    pub const DECOY_HELLO: Evasion = Evasion(1 << 2);
    /// Client QUIC Initials carried different hellos (under different connection IDs, or a
    /// second hello under the same one); the hello kept is the one the server answered.
    pub const DECOY_INITIAL: Evasion = Evasion(1 << 3);
    /// IP fragments overlapped with different bytes.
    pub const FRAGMENT_OVERLAP: Evasion = Evasion(1 << 4);
    /// Datagrams that were not QUIC, or Initials that did not open, came before the flow's
    /// first valid Initial.
    pub const QUIC_JUNK: Evasion = Evasion(1 << 5);

    /// Every sign with its label, in output order.
    pub const ALL: [(Evasion, &'static str); 6] = [
        (Evasion::OVERLAP_CONFLICT, "overlap_conflict"),
        (Evasion::SYN_DATA_UNACKED, "syn_data_unacked"),
        (Evasion::DECOY_HELLO, "decoy_hello"),
        (Evasion::DECOY_INITIAL, "decoy_initial"),
        (Evasion::FRAGMENT_OVERLAP, "fragment_overlap"),
        (Evasion::QUIC_JUNK, "quic_junk"),
    ];

    /// No sign.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Whether every sign of `other` is set.
    pub fn contains(self, other: Evasion) -> bool {
        self.0 & other.0 == other.0
    }

    /// Adds the signs of `other`.
    pub fn insert(&mut self, other: Evasion) {
        self.0 |= other.0;
    }

    /// Labels of the signs set, in [`Evasion::ALL`] order.
    pub fn labels(self) -> impl Iterator<Item = &'static str> {
        Evasion::ALL.into_iter().filter(move |(e, _)| self.contains(*e)).map(|(_, l)| l)
    }
}

/// Everything learned about a flow beyond its counters. Boxed in the flow state, so a flow
/// that never got any costs one null pointer; rare parts are boxed again, so that the common
/// case (a TLS flow) costs about 150 bytes here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Details {
    /// TLS (over TCP or inside QUIC).
    pub tls: Option<TlsSummary>,
    /// QUIC version of the client's Initial.
    pub quic_version: Option<std::num::NonZeroU32>,
    /// Explicit proxy.
    pub proxy: Option<Box<ProxyInfo>>,
    /// Host header of the first HTTP request.
    pub http_host: Option<Box<[u8]>>,
    /// Protocol marker.
    pub marker: Option<Marker>,
    /// STUN attributes that name software or a realm.
    pub stun: Option<Box<StunInfo>>,
    /// DNS messages of a DNS flow.
    pub dns: Option<Box<DnsSummary>>,
    /// Names that resolved to the server's address before the flow started (lowercased).
    pub names_from_dns: Box<[Box<[u8]>]>,
    /// The ClientHello's ECH extension is GREASE (its outer SNI is not an ECH public name).
    pub ech_grease: bool,
    /// Why the flow is suspect of evasion (empty for almost every flow).
    pub evasion: Evasion,
    /// A call flow without a name of its own: what named its client's signalling flows when it
    /// started, most recent first (`engine::resolve`'s association).
    pub associated: Option<Box<Vec<Signalling>>>,
}

/// What named a flow, for the association of its client's call flows: its own name (SNI, QUIC
/// SNI, Host; as read, lowercase not assured) or a marker that names a service by itself
/// (WhatsApp's chat preface).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Signalling {
    /// A name.
    Name(Box<[u8]>),
    /// A chat protocol's marker (WhatsApp's preface).
    Marker(Marker),
}

impl Details {
    /// The client's hello, if one was read.
    pub fn client_hello(&self) -> Option<&Hello> {
        self.tls.as_ref().and_then(|t| t.client.as_ref())
    }

    /// Real ECH: the hello carries an ECH extension that is not GREASE, so its SNI is only
    /// the provider's public name.
    pub fn real_ech(&self) -> bool {
        self.client_hello().is_some_and(|c| c.ech) && !self.ech_grease
    }
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
    /// What was learned (TLS, DNS, markers...).
    pub details: Option<Box<Details>>,
    /// Which signal named the destination (None: unnamed).
    pub signal: Option<Signal>,
    /// Why the destination stayed unnamed (when `signal` is None).
    pub unnamed: Option<Unnamed>,
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

impl FlowRecord {
    /// Whether the server answered: at least one packet came from it (`packets_down > 0`).
    ///
    /// Use needs an exchange. A flow nobody answered (a SYN into a blocked or dead address, a
    /// spoofed connection attempt, a scan, a datagram without reply) tells what some packet
    /// claimed, not that a host used a service: the control plane counts such flows apart,
    /// never as use (`aggregate`, `store::rollup`, events, reports).
    ///
    /// Limits: the sensor must see both directions. Behind asymmetric routing or on a tap that
    /// carries one direction only, every flow looks unanswered (see the configuration's
    /// `[engine] count_unanswered`). A flow seen from the server's side only (its first packets
    /// missed, or backscatter of someone else's spoofed SYNs) counts as answered.
    pub fn answered(&self) -> bool {
        self.packets_down > 0
    }
}

/// Engine counters. Plain integers, owned here, read by the exporter. Label-keyed maps hold the
/// counters whose label set is small and fixed (drop reasons, give-ups, errors).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames handed to the engine.
    pub frames: u64,
    /// Bytes of those frames on the wire.
    pub frame_bytes: u64,
    /// Frames of a link type the decoder does not support.
    pub unsupported_link: u64,
    /// Frames not decoded, by `DropReason::index` (and reassembled IP datagrams whose
    /// content does not decode).
    pub decode_drops: Vec<u64>,
    /// IP packets that are neither TCP nor UDP (ICMP, ESP, ...): counted, no flow.
    pub other_transport: u64,
    /// IP reassembly: fragments, datagrams completed, give-ups by reason.
    pub defrag: DefragStats,
    /// Flows whose reassembly gave up, by reason (`gap`, `too_many_pending`, `limit`).
    pub reassembly_giveups: BTreeMap<&'static str, u64>,
    /// Retransmitted bytes that disagreed with bytes already reassembled (possible evasion).
    pub inconsistent_overlaps: u64,
    /// TLS handshakes that could not be read, by `TlsError` label.
    pub tls_errors: BTreeMap<&'static str, u64>,
    /// QUIC flows whose Initials could not be read, by give-up reason.
    pub quic_giveups: BTreeMap<&'static str, u64>,
    /// DNS messages that could not be parsed, by `DnsError` label.
    pub dns_errors: BTreeMap<&'static str, u64>,
    /// DNS messages parsed.
    pub dns_messages: u64,
    /// Client hellos read (TCP and QUIC).
    pub client_hellos: u64,
    /// Server hellos read.
    pub server_hellos: u64,
    /// Flows whose client/server orientation was corrected by the handshake's content.
    pub orientation_fixed: u64,
    /// Flows ended, by end reason.
    pub flows_ended: BTreeMap<&'static str, u64>,
    /// Flows named, by signal.
    pub named: BTreeMap<&'static str, u64>,
    /// Call flows given the names of their client's signalling (association).
    pub associated: u64,
    /// Named flows whose client was not tracked for association: the client table was full.
    pub association_clients_dropped: u64,
    /// Flows left unnamed, by reason.
    pub unnamed: BTreeMap<&'static str, u64>,
    /// Flows whose probe was given up to keep the memory budget (oldest parked first).
    pub memory_giveups: u64,
    /// Flows that ended with a sign of evasion, by sign (a flow with two signs counts in both).
    pub evasions: BTreeMap<&'static str, u64>,
}

impl Stats {
    /// Zero counters (with a slot for every decode drop reason).
    pub fn new() -> Self {
        Stats { decode_drops: vec![0; crate::decode::DropReason::ALL.len()], ..Stats::default() }
    }

    /// Adds `other`'s counters to these (the IP reassembly counters excepted: one splitter
    /// owns them, see `engine::shard`).
    pub fn add(&mut self, other: &Stats) {
        let Stats {
            frames,
            frame_bytes,
            unsupported_link,
            decode_drops,
            other_transport,
            defrag: _,
            reassembly_giveups,
            inconsistent_overlaps,
            tls_errors,
            quic_giveups,
            dns_errors,
            dns_messages,
            client_hellos,
            server_hellos,
            orientation_fixed,
            flows_ended,
            named,
            associated,
            association_clients_dropped,
            unnamed,
            memory_giveups,
            evasions,
        } = other;
        self.frames += frames;
        self.frame_bytes += frame_bytes;
        self.unsupported_link += unsupported_link;
        if self.decode_drops.len() < decode_drops.len() {
            self.decode_drops.resize(decode_drops.len(), 0);
        }
        for (a, b) in self.decode_drops.iter_mut().zip(decode_drops) {
            *a += b;
        }
        self.other_transport += other_transport;
        self.inconsistent_overlaps += inconsistent_overlaps;
        self.dns_messages += dns_messages;
        self.client_hellos += client_hellos;
        self.server_hellos += server_hellos;
        self.orientation_fixed += orientation_fixed;
        self.memory_giveups += memory_giveups;
        self.associated += associated;
        self.association_clients_dropped += association_clients_dropped;
        for (mine, theirs) in [
            (&mut self.reassembly_giveups, reassembly_giveups),
            (&mut self.tls_errors, tls_errors),
            (&mut self.quic_giveups, quic_giveups),
            (&mut self.dns_errors, dns_errors),
            (&mut self.flows_ended, flows_ended),
            (&mut self.named, named),
            (&mut self.unnamed, unnamed),
            (&mut self.evasions, evasions),
        ] {
            for (k, v) in theirs {
                *mine.entry(k).or_default() += v;
            }
        }
    }
}

/// Adds one to a label-keyed counter.
pub(crate) fn bump(map: &mut BTreeMap<&'static str, u64>, label: &'static str) {
    *map.entry(label).or_default() += 1;
}

#[cfg(test)]
mod tests {
    use super::{AnswerData, DnsSummary};
    use crate::proto::dns::MessageView;

    /// Decodes hex, ignoring whitespace.
    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        digits.chunks(2).map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap()).collect()
    }

    #[test]
    fn dns_summary_keeps_each_string_once_in_its_arena() {
        // www.example.com: CNAME cdn.example.com, cdn A 192.0.2.1, cdn A 192.0.2.2,
        // www HTTPS 1 cdn.example.com alpn=h3,h2.
        let msg = hex("0001 8180 0001 0004 0000 0000
             03 777777 07 6578616d706c65 03 636f6d 00 0001 0001
             c00c 0005 0001 0000012c 0006 03 63646e c010
             c02d 0001 0001 0000003c 0004 c0000201
             c02d 0001 0001 0000003c 0004 c0000202
             c00c 0041 0001 0000012c 000e 0001 c02d 0001 0006 02 6833 02 6832");
        let m = MessageView::parse(&msg).unwrap();
        let mut s = DnsSummary::default();
        for _ in 0..2 {
            for q in m.questions() {
                s.add_query(q.name, 1);
            }
            for r in m.answers() {
                s.add_answer(&r);
            }
        }
        // The repeated query is neither kept twice nor dropped; a second name would be.
        assert_eq!(s.queries().collect::<Vec<_>>(), [b"www.example.com"]);
        assert_eq!(s.dropped, 0);
        // The two names and the ALPN list, once each.
        assert_eq!(s.bytes, b"www.example.comcdn.example.com\x02h3\x02h2");
        let answers: Vec<_> = s.answers().collect();
        assert_eq!(answers.len(), 8);
        assert_eq!(answers[0].name, b"www.example.com");
        assert_eq!(answers[0].data, AnswerData::Name(b"cdn.example.com"));
        assert_eq!(answers[2].name, b"cdn.example.com");
        assert_eq!(answers[2].data, AnswerData::Addr("192.0.2.2".parse().unwrap()));
        let AnswerData::Service { priority, target, alpn, ech } = answers[3].data else { panic!() };
        assert_eq!((priority, target, ech), (1, &b"cdn.example.com"[..], false));
        assert_eq!(alpn.iter().collect::<Vec<_>>(), [b"h3", b"h2"]);
        assert_eq!(answers[4..], answers[..4]);
        // A root query is kept (as the empty name) and counted against the bound.
        let root = hex("0002 0100 0001 0000 0000 0000 00 0002 0001");
        let r = MessageView::parse(&root).unwrap();
        s.add_query(r.questions().next().unwrap().name, 1);
        assert_eq!(s.dropped, 1);
        s.add_query(r.questions().next().unwrap().name, 2);
        assert_eq!(s.queries().collect::<Vec<_>>(), [&b"www.example.com"[..], b""]);
        let shared = s.shared_name(m.questions().next().unwrap().name);
        assert_eq!(&shared[..], b"www.example.com");
        assert_eq!(s.bytes.len(), 36, "the shared name was written through the arena's spare room");
    }
}
