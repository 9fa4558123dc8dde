//! The resolver: cross-flow state (the DNS answer cache, ECH public names) applied in the order
//! of the packets that made it, whatever engine shard handled them.
//!
//! An engine never touches the [`DnsCache`] itself: it emits [`Event`]s, each stamped with the
//! position ([`Pos`]) of the packet that caused it: a DNS answer ([`Event::Answer`]), an ECH
//! public name ([`Event::EchName`]), a new flow whose server address the cache is asked about
//! ([`Event::Flow`]), a ClientHello with an ECH extension ([`Event::Hello`]) and, when a flow
//! ends, its record ([`Event::Ended`]). Each shard's events come in its own order, which is the
//! global order restricted to that shard. The resolver merges the shards' streams by position
//! and makes the same cache calls, in the same order, as one engine handling every packet would
//! (lookup at a flow's first packet, insert at each answer), then completes each record: its
//! flow number in the run (`FlowRecord::seq`, counted in order of first packets), the names
//! that resolved to its server before it started (`names_from_dns`), whether its ECH is GREASE,
//! and its naming (signal or unnamed reason), counted in `Stats::named` / `Stats::unnamed`.
//!
//! A shard's *mark* is the position up to which it has emitted everything; an event is applied
//! only when every other shard has either a later event queued or a mark at or past it. So the
//! result is the same for one shard or many, and for any interleaving of their arrivals.
//!
//! **Association** ([`Associations`]): a flow is named when its SNI, QUIC SNI or Host is read
//! ([`Event::Named`], or when a marker that names a service by itself is found: WhatsApp's chat
//! preface); the resolver keeps, per client address, the names of its named flows
//! that are open or ended less than [`ASSOCIATION_WINDOW_SECS`] ago. A call's media or STUN flow
//! carries no name, so when such a flow ends (a UDP flow that is STUN, or RTP, and unnamed) its
//! record gets the names of the client's signalling at the moment the flow started
//! (`Details::associated`, most recent first); the classifier decides whether one of them is a
//! messaging or conferencing service, whose calls the flow then counts for. A TURN request's
//! peer ([`Event::Peer`]) is remembered with the client's signalling at that moment, and a later
//! unnamed UDP flow between the client and that address, whatever its framing, gets it too. The
//! order of the events makes this the same for any number of shards.
//!
//! Memory: the events not yet applied (bounded by what the shards' input queues hold); per
//! flow in progress, its number and the names found for it (about 48 bytes, plus the names when
//! there are any); per client with named flows, at most [`MAX_NAMES_PER_CLIENT`] names, for at
//! most [`MAX_ASSOCIATION_CLIENTS`] clients (past it, new clients are not tracked and counted in
//! `Stats::association_clients_dropped`).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;

use super::record::{bump, FlowRecord, Signalling, Stats, Unnamed};
use crate::dnscache::{CacheStats, DnsCache};
use crate::time::Timestamp;

/// Where in the run an event happened: the global frame number of the packet that caused it,
/// then the phase within that frame's handling, then (for flows drained at the end of a
/// capture) the flow's id. Ordered lexicographically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Pos {
    /// Global frame number (frames are numbered across the whole run, from 0).
    pub at: u64,
    /// [`Pos::PACKET`], [`Pos::TICK`], [`Pos::BATCH_END`] or [`Pos::DRAIN`].
    pub phase: u8,
    /// The flow's id, for records drained at the end of a capture (0 otherwise).
    pub id: u64,
}

impl Pos {
    /// Handling the frame's packet (flow creation, DNS answers, hellos, flows it closed).
    pub const PACKET: u8 = 0;
    /// The timeout sweep after the frame.
    pub const TICK: u8 = 1;
    /// The sweep at the end of a batch (or a clock tick of a live capture).
    pub const BATCH_END: u8 = 2;
    /// The end of a capture: every remaining flow, in the order of its id.
    pub const DRAIN: u8 = 3;
    /// Before everything.
    pub const START: Pos = Pos { at: 0, phase: 0, id: 0 };
    /// After everything of a capture.
    pub const END: Pos = Pos { at: u64::MAX, phase: u8::MAX, id: u64::MAX };

    /// Everything of frame `at` (its packet and every sweep after it).
    pub fn after(at: u64) -> Pos {
        Pos { at, phase: Pos::BATCH_END, id: u64::MAX }
    }
}

/// What an engine tells the resolver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A flow started: look its server address up in the cache. `id` is the global frame
    /// number of its first packet (what `FlowRecord::seq` holds until the resolver numbers it).
    Flow {
        /// The flow's id.
        id: u64,
        /// Its server's address.
        server: IpAddr,
        /// Its first packet's time.
        ts: Timestamp,
    },
    /// `name` resolved to `addr` (a DNS answer, over UDP or TCP).
    Answer {
        /// The answered address.
        addr: IpAddr,
        /// The name the client asked for, shared by every address of its message.
        name: Arc<[u8]>,
        /// The answer's TTL.
        ttl: u32,
        /// The answer's packet time.
        ts: Timestamp,
    },
    /// An HTTPS/SVCB record advertised this ECH public name.
    EchName(Box<[u8]>),
    /// A ClientHello of flow `id` was read: with an ECH extension (`ech`), whether its outer
    /// SNI is a known ECH public name decides between real ECH and GREASE. Emitted for every
    /// hello with ECH, and for a later hello without ECH of a flow that had one.
    Hello {
        /// The flow's id.
        id: u64,
        /// The hello carries an encrypted_client_hello extension.
        ech: bool,
        /// Its (outer) server name.
        sni: Option<Box<[u8]>>,
    },
    /// Flow `id` of `client` was named (SNI, QUIC SNI, Host, or a marker that names a service)
    /// at `ts`: what named it first.
    Named {
        /// The flow's id.
        id: u64,
        /// Its client's address.
        client: IpAddr,
        /// What named it.
        name: Signalling,
        /// The packet's time.
        ts: Timestamp,
    },
    /// A TURN request of `client` named `peer` (XOR-PEER-ADDRESS) at `ts`: a call's far end.
    Peer {
        /// The TURN client's address.
        client: IpAddr,
        /// The peer's address.
        peer: IpAddr,
        /// The packet's time.
        ts: Timestamp,
    },
    /// A flow ended; its record (`seq` still the flow's id).
    Ended(Box<FlowRecord>),
}

/// Seconds after a client's named flow ends during which a call flow it starts is still
/// associated with it. A chat connection stays open through a call, so this only matters for
/// signalling that closes first (a call set up over a short HTTPS exchange); the error it
/// allows is a call flow of another app started within this time of the last one's end.
pub const ASSOCIATION_WINDOW_SECS: u64 = 60;

/// Names kept per client (its most recent named flows); older ones are forgotten first.
pub const MAX_NAMES_PER_CLIENT: usize = 8;

/// Names handed to one call flow's record at most.
pub const MAX_ASSOCIATED_NAMES: usize = 4;

/// (Client, peer) pairs learned from TURN requests that are kept at once; past it the oldest is
/// forgotten.
pub const MAX_PEERS: usize = 16_384;

/// Clients whose named flows are tracked at once.
pub const MAX_ASSOCIATION_CLIENTS: usize = 65_536;

/// Seconds of packet time between two sweeps of a full client table for clients whose flows
/// all ended long ago: a sweep reads every client, so a full table of busy clients must not be
/// swept for every new one (a million clients would take minutes).
pub const ASSOCIATION_PRUNE_EVERY_SECS: u64 = 1;

/// A client's named flow, for association.
#[derive(Debug)]
struct NamedFlow {
    id: u64,
    name: Signalling,
    /// When it was named.
    named: Timestamp,
    /// When it ended (None: still open).
    ended: Option<Timestamp>,
}

/// The named flows of every client (see the module docs).
#[derive(Debug, Default)]
struct Associations {
    clients: HashMap<IpAddr, VecDeque<NamedFlow>, ahash::RandomState>,
    /// Peers named by a client's TURN requests, (client, peer) → what named the client's
    /// signalling then; `peer_order` says which was learned first.
    peers: HashMap<(IpAddr, IpAddr), Vec<Signalling>, ahash::RandomState>,
    peer_order: VecDeque<(IpAddr, IpAddr)>,
    /// When the full table was last swept.
    pruned: Option<Timestamp>,
}

impl Associations {
    fn named(&mut self, id: u64, client: IpAddr, name: Signalling, ts: Timestamp, stats: &mut Stats) {
        if !self.clients.contains_key(&client) && self.clients.len() >= MAX_ASSOCIATION_CLIENTS {
            if self.pruned.is_none_or(|p| p.plus_secs(ASSOCIATION_PRUNE_EVERY_SECS) <= ts) {
                self.pruned = Some(ts);
                self.prune(ts);
            }
            if self.clients.len() >= MAX_ASSOCIATION_CLIENTS {
                stats.association_clients_dropped += 1;
                return;
            }
        }
        let flows = self.clients.entry(client).or_default();
        if flows.len() >= MAX_NAMES_PER_CLIENT {
            // The oldest ended flow goes first, else the oldest.
            let i = flows.iter().position(|f| f.ended.is_some()).unwrap_or(0);
            flows.remove(i);
        }
        flows.push_back(NamedFlow { id, name, named: ts, ended: None });
    }

    fn ended(&mut self, id: u64, client: IpAddr, ts: Timestamp) {
        if let Some(f) = self.clients.get_mut(&client).and_then(|flows| flows.iter_mut().find(|f| f.id == id)) {
            f.ended = Some(ts);
        }
    }

    /// What named `client`'s flows (other than `own`) named before `start` and open then, or
    /// ended less than [`ASSOCIATION_WINDOW_SECS`] before it; most recently named first.
    fn at(&self, client: IpAddr, start: Timestamp, own: Option<u64>) -> Vec<Signalling> {
        let Some(flows) = self.clients.get(&client) else { return Vec::new() };
        flows
            .iter()
            .rev()
            .filter(|f| Some(f.id) != own && f.named <= start && f.ended.is_none_or(|e| e.plus_secs(ASSOCIATION_WINDOW_SECS) >= start))
            .take(MAX_ASSOCIATED_NAMES)
            .map(|f| f.name.clone())
            .collect()
    }

    /// `client`'s TURN request named `peer` at `ts`: a later flow between them is the same call,
    /// whatever its framing, and goes with the signalling open now.
    fn peer(&mut self, client: IpAddr, peer: IpAddr, ts: Timestamp) {
        if self.peers.contains_key(&(client, peer)) {
            return;
        }
        let names = self.at(client, ts, None);
        if names.is_empty() {
            return;
        }
        if self.peers.len() >= MAX_PEERS {
            if let Some(oldest) = self.peer_order.pop_front() {
                self.peers.remove(&oldest);
            }
        }
        self.peers.insert((client, peer), names);
        self.peer_order.push_back((client, peer));
    }

    /// What the ended flow `r` (id `id`) goes with, if it may be part of a call: UDP without a
    /// name of its own (a marker is not a name). A STUN or RTP flow goes with its client's
    /// signalling when it started; failing that, a flow that is not DNS or QUIC goes with the
    /// call whose peer (named by a TURN request) its server is, whatever its framing.
    fn for_flow(&self, r: &FlowRecord, id: u64) -> Vec<Signalling> {
        use super::App;
        if r.proto != crate::flow::key::UDP || !matches!(r.signal, None | Some(super::record::Signal::Marker)) {
            return Vec::new();
        }
        let client = r.client.ip();
        let names = if matches!(r.app, App::Stun | App::Rtp) { self.at(client, r.ts_start, Some(id)) } else { Vec::new() };
        if !names.is_empty() || !matches!(r.app, App::Unknown | App::Stun | App::Rtp) {
            return names;
        }
        self.peers.get(&(client, r.server.ip())).cloned().unwrap_or_default()
    }

    /// Forgets clients whose flows all ended more than the window before `now`.
    fn prune(&mut self, now: Timestamp) {
        self.clients.retain(|_, flows| flows.iter().any(|f| f.ended.is_none_or(|e| e.plus_secs(ASSOCIATION_WINDOW_SECS) >= now)));
    }
}

/// An event and where it happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stamped {
    /// Where.
    pub pos: Pos,
    /// What.
    pub event: Event,
}

/// What the resolver keeps of a flow in progress.
#[derive(Debug, Default)]
struct Pending {
    index: u64,
    names: Vec<Box<[u8]>>,
    ech_grease: Option<bool>,
}

/// The resolver (see the module docs). Sans-IO: events in, finished records out.
pub struct Resolver {
    queues: Vec<VecDeque<Stamped>>,
    marks: Vec<Pos>,
    cache: DnsCache,
    cache_addrs: usize,
    flows: HashMap<u64, Pending, ahash::RandomState>,
    associations: Associations,
    next_index: u64,
    held: u64,
    peak: u64,
    /// Records completed, in the order their flows ended (at a capture's end: in order of
    /// first packets); the caller drains this.
    pub records: VecDeque<FlowRecord>,
    /// Records whose flow the resolver never saw start (cannot happen when every event of a
    /// shard is pushed; counted rather than trusted).
    pub orphans: u64,
}

impl Resolver {
    /// A resolver for `shards` event streams, with a DNS cache of `cache_addrs` addresses.
    pub fn new(shards: usize, cache_addrs: usize) -> Self {
        let shards = shards.max(1);
        Resolver {
            queues: (0..shards).map(|_| VecDeque::new()).collect(),
            marks: vec![Pos::START; shards],
            cache: DnsCache::new(cache_addrs),
            cache_addrs,
            flows: HashMap::with_hasher(ahash::RandomState::new()),
            associations: Associations::default(),
            next_index: 0,
            held: 0,
            peak: 0,
            records: VecDeque::new(),
            orphans: 0,
        }
    }

    /// Queues events of `shard` (in its order) and moves its mark to `mark`: it will send
    /// nothing before that position again. An unknown shard's events are ignored.
    pub fn push(&mut self, shard: usize, events: impl IntoIterator<Item = Stamped>, mark: Pos) {
        if let (Some(q), Some(m)) = (self.queues.get_mut(shard), self.marks.get_mut(shard)) {
            q.extend(events);
            *m = (*m).max(mark);
        }
    }

    /// Applies every event that no shard can still precede, in position order; records go to
    /// [`Resolver::records`], their naming is counted in `stats`.
    pub fn run(&mut self, stats: &mut Stats) {
        loop {
            // The shard with the earliest queued event.
            let mut best: Option<(usize, Pos)> = None;
            for (i, q) in self.queues.iter().enumerate() {
                if let Some(e) = q.front() {
                    if best.is_none_or(|(_, p)| e.pos < p) {
                        best = Some((i, e.pos));
                    }
                }
            }
            let Some((shard, pos)) = best else { return };
            // Every shard with nothing queued must have promised nothing earlier.
            let safe = self.queues.iter().zip(&self.marks).all(|(q, m)| !q.is_empty() || *m >= pos);
            if !safe {
                return;
            }
            let Some(ev) = self.queues.get_mut(shard).and_then(VecDeque::pop_front) else { return };
            self.apply(ev.event, stats);
        }
    }

    fn apply(&mut self, event: Event, stats: &mut Stats) {
        match event {
            Event::Flow { id, server, ts } => {
                let names = self.cache.lookup(&server, ts);
                self.flows.insert(id, Pending { index: self.next_index, names, ech_grease: None });
                self.next_index += 1;
                self.held += 1;
                self.peak = self.peak.max(self.held);
            }
            Event::Answer { addr, name, ttl, ts } => self.cache.insert(addr, &name, ttl, ts),
            Event::EchName(name) => self.cache.add_ech_public_name(&name),
            Event::Hello { id, ech, sni } => {
                let grease = ech && !sni.as_deref().is_some_and(|s| self.cache.is_ech_public_name(s));
                if let Some(p) = self.flows.get_mut(&id) {
                    p.ech_grease = Some(grease);
                }
            }
            Event::Named { id, client, name, ts } => self.associations.named(id, client, name, ts, stats),
            Event::Peer { client, peer, ts } => self.associations.peer(client, peer, ts),
            Event::Ended(mut r) => {
                self.held = self.held.saturating_sub(1);
                self.associations.ended(r.seq, r.client.ip(), r.ts_end);
                let pending = self.flows.remove(&r.seq).unwrap_or_else(|| {
                    self.orphans += 1;
                    let index = self.next_index;
                    self.next_index += 1;
                    Pending { index, ..Pending::default() }
                });
                let id = r.seq;
                complete(&mut r, pending);
                let names = self.associations.for_flow(&r, id);
                if !names.is_empty() {
                    stats.associated += 1;
                    r.details.get_or_insert_with(Default::default).associated = Some(Box::new(names));
                }
                match (r.signal, r.unnamed) {
                    (Some(s), _) => bump(&mut stats.named, s.as_str()),
                    (None, Some(u)) => bump(&mut stats.unnamed, u.as_str()),
                    (None, None) => {}
                }
                self.records.push_back(*r);
            }
        }
    }

    /// A new capture starts: every shard's mark goes back to the start (the previous capture's
    /// events must all have been applied: its flows have all ended).
    pub fn new_capture(&mut self) {
        self.marks.iter_mut().for_each(|m| *m = Pos::START);
    }

    /// Forgets every DNS answer and ECH public name learned (between unrelated captures;
    /// counters are kept).
    pub fn forget_dns_answers(&mut self) {
        let stats = self.cache.stats;
        self.cache = DnsCache::new(self.cache_addrs);
        self.cache.stats = stats;
    }

    /// The DNS answer cache's counters and size.
    pub fn cache_stats(&self) -> (CacheStats, usize) {
        (self.cache.stats, self.cache.len())
    }

    /// Most flows in progress at once, counted in the order one engine would have seen them.
    pub fn peak_flows(&self) -> u64 {
        self.peak
    }

    /// Events queued and not yet applied.
    pub fn queued(&self) -> usize {
        self.queues.iter().map(VecDeque::len).sum()
    }
}

/// Completes a shard's record with what the cache said, and names it again.
fn complete(r: &mut FlowRecord, p: Pending) {
    r.seq = p.index;
    if !p.names.is_empty() {
        r.details.get_or_insert_with(Default::default).names_from_dns = p.names.into_boxed_slice();
    }
    if let (Some(g), Some(d)) = (p.ech_grease, r.details.as_deref_mut()) {
        d.ech_grease = g;
    }
    // The shard named the flow without DNS names; "no payload" is the one reason that depends
    // on state the record does not carry, and the shard found it only if nothing else applied.
    let payload_unseen = r.unnamed == Some(Unnamed::NoPayload);
    (r.signal, r.unnamed) = super::name(r.details.as_deref(), r.app, payload_unseen);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::record::{Details, Signal};
    use crate::engine::App;
    use crate::flow::table::EndReason;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn t(s: i64) -> Timestamp {
        Timestamp::from_parts(1_700_000_000 + s, 0)
    }

    fn pos(at: u64) -> Pos {
        Pos { at, phase: Pos::PACKET, id: 0 }
    }

    fn flow(at: u64, server: &str) -> Stamped {
        Stamped { pos: pos(at), event: Event::Flow { id: at, server: ip(server), ts: t(at as i64) } }
    }

    fn answer(at: u64, addr: &str, name: &str) -> Stamped {
        Stamped { pos: pos(at), event: Event::Answer { addr: ip(addr), name: name.as_bytes().into(), ttl: 300, ts: t(at as i64) } }
    }

    fn ended(at: u64, id: u64, server: &str) -> Stamped {
        let r = FlowRecord {
            seq: id,
            ts_start: t(id as i64),
            ts_end: t(at as i64),
            client: "10.0.0.1:40000".parse().unwrap(),
            server: format!("{server}:5222").parse().unwrap(),
            proto: 6,
            app: App::Unknown,
            details: None,
            signal: None,
            unnamed: Some(Unnamed::UnknownProtocol),
            packets_up: 1,
            packets_down: 1,
            bytes_up: 100,
            bytes_down: 100,
            vlan: None,
            tunnel: None,
            end: EndReason::Idle,
        };
        Stamped { pos: Pos { at, phase: Pos::TICK, id: 0 }, event: Event::Ended(Box::new(r)) }
    }

    fn names(r: &FlowRecord) -> Vec<String> {
        r.details.as_ref().map_or(Vec::new(), |d| d.names_from_dns.iter().map(|n| String::from_utf8_lossy(n).into_owned()).collect())
    }

    #[test]
    fn a_full_client_table_drops_new_clients_and_is_swept_at_most_once_a_second() {
        let mut stats = Stats::default();
        let mut a = Associations::default();
        let name = || Signalling::Name(b"chat.example".as_slice().into());
        let client = |i: u32| IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
        for i in 0..MAX_ASSOCIATION_CLIENTS as u32 {
            a.named(u64::from(i), client(i), name(), t(0), &mut stats);
        }
        // Every tracked client has an open flow: a sweep frees nothing, new clients are dropped.
        for i in 0..1000u32 {
            a.named(1_000_000 + u64::from(i), client(1_000_000 + i), name(), t(0), &mut stats);
        }
        assert_eq!((a.clients.len(), stats.association_clients_dropped), (MAX_ASSOCIATION_CLIENTS, 1000));
        assert_eq!(a.pruned, Some(t(0)), "swept once, for the first new client of that second");
        // Client 0's flow ends; past the window and the sweep interval, a new client gets its place.
        a.ended(0, client(0), t(1));
        let later = t(1).plus_secs(ASSOCIATION_WINDOW_SECS + ASSOCIATION_PRUNE_EVERY_SECS);
        a.named(2_000_000, client(2_000_000), name(), later, &mut stats);
        assert!(a.clients.contains_key(&client(2_000_000)) && !a.clients.contains_key(&client(0)));
        assert_eq!(stats.association_clients_dropped, 1000);
    }

    #[test]
    fn an_answer_in_one_shard_names_a_later_flow_in_another_whatever_arrives_first() {
        let mut stats = Stats::default();
        let mut r = Resolver::new(2, 64);
        // Shard 1 (the flow) reports first, up to frame 9; shard 0 has said nothing yet.
        r.push(1, [flow(5, "157.240.1.53"), ended(9, 5, "157.240.1.53")], Pos::after(9));
        r.run(&mut stats);
        assert!(r.records.is_empty(), "shard 0 may still hold an earlier answer");
        // Shard 0: the answer at frame 3.
        r.push(0, [answer(3, "157.240.1.53", "G.WhatsApp.net")], Pos::after(9));
        r.run(&mut stats);
        let rec = r.records.pop_front().unwrap();
        assert_eq!(names(&rec), ["g.whatsapp.net"]);
        assert_eq!((rec.signal, rec.unnamed), (Some(Signal::Dns), None));
        assert_eq!(rec.seq, 0, "numbered in order of first packets");
        assert_eq!(stats.named.get("dns"), Some(&1));
        assert_eq!(r.cache_stats().0.hits, 1);
    }

    #[test]
    fn an_answer_after_the_flow_started_does_not_name_it() {
        let mut stats = Stats::default();
        let mut r = Resolver::new(2, 64);
        r.push(0, [answer(6, "192.0.2.7", "late.example")], Pos::after(10));
        r.push(1, [flow(5, "192.0.2.7"), flow(8, "192.0.2.7"), ended(10, 5, "192.0.2.7")], Pos::after(10));
        r.run(&mut stats);
        let first = r.records.pop_front().unwrap();
        assert!(names(&first).is_empty());
        assert_eq!(first.unnamed, Some(Unnamed::UnknownProtocol));
        // The flow at frame 8 started after the answer: named, once it ends.
        r.push(1, [ended(12, 8, "192.0.2.7")], Pos::after(12));
        r.run(&mut stats);
        assert!(r.records.is_empty(), "shard 0's mark is still at frame 10");
        r.push(0, [], Pos::after(12));
        r.run(&mut stats);
        let second = r.records.pop_front().unwrap();
        assert_eq!((second.seq, names(&second)), (1, vec!["late.example".to_string()]));
    }

    #[test]
    fn events_wait_for_the_lowest_mark_and_come_out_in_position_order() {
        let mut stats = Stats::default();
        let mut r = Resolver::new(3, 64);
        r.push(2, [flow(7, "192.0.2.1")], Pos::after(7));
        r.push(0, [flow(2, "192.0.2.2")], Pos::after(7));
        r.run(&mut stats);
        assert_eq!(r.queued(), 2, "shard 1 has promised nothing");
        r.push(1, [flow(4, "192.0.2.3")], Pos::after(7));
        r.run(&mut stats);
        assert_eq!(r.queued(), 0);
        // Drained at the end of the capture, each shard in id order: merged by id.
        for (shard, id) in [(2, 7), (1, 4), (0, 2)] {
            let mut e = ended(0, id, "192.0.2.9");
            e.pos = Pos { at: u64::MAX, phase: Pos::DRAIN, id };
            r.push(shard, [e], Pos::END);
        }
        r.run(&mut stats);
        let seqs: Vec<u64> = r.records.iter().map(|x| x.seq).collect();
        assert_eq!(seqs, [0, 1, 2]);
        assert_eq!(r.peak_flows(), 3);
        assert_eq!(r.orphans, 0);
    }

    #[test]
    fn ech_is_real_only_for_a_public_name_learned_before_the_hello() {
        let mut stats = Stats::default();
        let mut r = Resolver::new(2, 64);
        let hello = |at: u64, id: u64| Stamped { pos: pos(at), event: Event::Hello { id, ech: true, sni: Some(b"public.example".as_slice().into()) } };
        r.push(0, [flow(1, "192.0.2.1"), hello(2, 1), Stamped { pos: pos(4), event: Event::EchName(b"Public.Example".as_slice().into()) }], Pos::after(6));
        r.push(1, [flow(5, "192.0.2.2"), hello(6, 5)], Pos::after(6));
        r.run(&mut stats);
        for (at, id) in [(7, 1), (8, 5)] {
            let mut e = ended(at, id, "192.0.2.1");
            if let Event::Ended(rec) = &mut e.event {
                rec.app = App::Tls;
                let d = Details {
                    tls: Some(crate::engine::TlsSummary {
                        client: Some(crate::engine::record::Hello { sni: Some(b"public.example".as_slice().into()), ech: true, ..Default::default() }),
                        server: None,
                    }),
                    ech_grease: true,
                    ..Default::default()
                };
                rec.details = Some(Box::new(d));
            }
            r.push(if id == 1 { 0 } else { 1 }, [e], Pos::after(8));
        }
        r.run(&mut stats);
        let got: Vec<(Option<Signal>, Option<Unnamed>)> = r.records.iter().map(|x| (x.signal, x.unnamed)).collect();
        assert_eq!(got, [(Some(Signal::Sni), None), (None, Some(Unnamed::Ech))]);
    }
}
