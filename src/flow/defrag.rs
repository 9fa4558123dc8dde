//! IP reassembly: IPv4 fragments (RFC 791 section 3.2) and IPv6 Fragment headers (RFC 8200
//! section 4.5) put back together before the flow lookup.
//!
//! A ClientHello sent in two, three or five IP fragments carries its SNI in one of them and its
//! TCP header in another: read fragment by fragment it names nothing, which is exactly what a
//! sender hiding from a sensor does (fragroute, or a tunnel whose MTU forces fragmentation).
//! decode turns every fragment into a [`Fragment`]; the engine hands each to
//! [`Defragmenter::push`], which returns the datagram once every byte of it has arrived, in
//! any order, and the engine decodes it with [`crate::decode::reassembled`] as if it had never
//! been cut.
//!
//! # Which fragments belong together
//!
//! RFC 791 names an IPv4 datagram by (source, destination, protocol, identification); RFC 8200
//! names an IPv6 packet by (source, destination, identification) only, because the Next Header
//! of the Fragment headers may differ between fragments and only the first fragment's counts.
//! The key here is that, plus the outermost VLAN id: the same addresses on two VLANs (overlapping
//! address plans, or one packet mirrored from two ports) must not be mixed. The IP version is in
//! the addresses.
//!
//! # Overlaps: first wins, and a disagreement is reported
//!
//! Fragments that overlap are kept **first wins**: bytes already held are never replaced, as in
//! the BSD stacks and as in this sensor's TCP reassembly ([`super::reassembly`]). A fragment
//! that brings no byte not already held is a duplicate: harmless when its bytes are the same,
//! and not stored either way. When overlapping bytes **differ**, the datagram is still
//! completed, and [`Reassembled::overlap_conflict`] is set, so the engine marks the flow
//! with `Evasion::FRAGMENT_OVERLAP`.
//!
//! Why not discard the datagram, as RFC 5722 asks of IPv6 hosts and as Linux does for IPv4
//! overlaps since 2018? Because the sensor is not the host. An endpoint that discards never
//! delivers the datagram, and its sender retransmits without the trick; an endpoint that
//! accepts overlaps (older Windows and BSD stacks keep the first bytes too) delivers what
//! first-wins reassembles. Discarding would let anyone blind the sensor with one conflicting
//! fragment, while first-wins names what most accepting endpoints see and says when the name is
//! in doubt. A disagreement is seen only while the datagram is incomplete, as in any
//! reassembler: a fragment that comes after its datagram was delivered starts a new one, which
//! times out (counted). Conflicting lengths are different: a second last fragment with another end, or
//! bytes past the end a last fragment set, make a datagram no stack rebuilds, so it is given up
//! (`bad_length`), as Linux does.
//!
//! # Bounds
//!
//! | bound | default | cost |
//! |---|---|---|
//! | [`Config::max_fragments`] per datagram | [`DEFAULT_MAX_FRAGMENTS`] = 64 | held fragments: their bytes + [`FRAGMENT_OVERHEAD`] |
//! | [`Config::max_datagrams`] in flight | [`DEFAULT_MAX_DATAGRAMS`] = 4,096 | [`DATAGRAM_OVERHEAD`] each |
//! | [`Config::max_bytes`] held in all | [`DEFAULT_MAX_BYTES`] = 8 MiB | the bound itself ([`Defragmenter::held_bytes`]) |
//! | [`Config::max_datagram_len`] | [`MAX_DATAGRAM_LEN`] = 65,535 | one datagram's IP length |
//! | [`Config::timeout_secs`] | [`DEFAULT_TIMEOUT_SECS`] = 30 | packet time from the first fragment (Linux `ipfrag_time`) |
//!
//! When a bound is hit, the datagram that arrived first is given up first (the oldest is the
//! least likely to complete). Every datagram given up is counted by [`GiveUp`] reason in
//! [`DefragStats`]; a fragment of a datagram given up that arrives later starts a new one.
//!
//! # Time
//!
//! Time is the packets' timestamps, never the wall clock. A datagram is given up when packet
//! time is [`Config::timeout_secs`] away from its first fragment, in either direction: a clock
//! that jumps back (a second capture file that starts earlier) ends it too. Expiry looks at
//! datagrams in arrival order, so with a clock that is not monotonic a datagram may be given up
//! up to one timeout late; the bounds hold regardless.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;

use crate::decode::{DatagramHead, Fragment, IpVersion, Packet};
use crate::time::Timestamp;

/// Default for [`Config::max_fragments`]: fragments held per datagram. A 1,500-byte MTU cuts a
/// 64 KiB datagram into 45; 64 leaves room for smaller MTUs, while a sender of thousands of
/// 8-byte fragments (to make reassembly slow, or to hide bytes in overlaps) is stopped early.
pub const DEFAULT_MAX_FRAGMENTS: usize = 64;

/// Default for [`Config::max_datagrams`]: datagrams being reassembled at once. Each costs
/// [`DATAGRAM_OVERHEAD`] bytes on top of its fragments (about 1 MiB at the bound); real traffic
/// rarely has more than a few dozen in flight, a flood of first fragments has many.
pub const DEFAULT_MAX_DATAGRAMS: usize = 4_096;

/// Default for [`Config::max_bytes`]: 8 MiB, every held fragment and datagram charged
/// (Linux's `ipfrag_high_thresh` is 4 MiB per namespace and protocol).
pub const DEFAULT_MAX_BYTES: usize = 8 * 1024 * 1024;

/// Largest datagram: the 16-bit IPv4 total length and IPv6 payload length (RFC 791 section
/// 3.1, RFC 8200 section 3). A datagram that would be longer is an attack (ping of death) and
/// given up as `too_large`.
pub const MAX_DATAGRAM_LEN: u32 = 65_535;

/// Default for [`Config::timeout_secs`]: 30 seconds of packet time from a datagram's first
/// fragment, Linux's `ipfrag_time` (RFC 791 suggests 15 s; RFC 8200 section 4.5 says 60 s).
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;

/// Bytes charged per held fragment beyond its payload: its entry in the datagram (offset and
/// boxed slice), the allocator's header, and its range in the coverage list.
pub const FRAGMENT_OVERHEAD: usize = 48;

/// Bytes charged per datagram in flight: its key and state in the hash map, its place in the
/// arrival order and the two small vectors' headers.
pub const DATAGRAM_OVERHEAD: usize = 256;

/// Bounds of the defragmenter. Every field is a limit whose hit is counted in [`DefragStats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Fragments held per datagram (duplicates are not held); one more gives the datagram up
    /// (`too_many_fragments`).
    pub max_fragments: usize,
    /// Datagrams in flight; a new one beyond gives the oldest up (`too_many_datagrams`).
    pub max_datagrams: usize,
    /// Bytes held in all, fragments and datagrams charged with their overhead; a fragment that
    /// would pass it gives the oldest datagrams up (`memory`).
    pub max_bytes: usize,
    /// Longest datagram (IP headers included); a fragment reaching past it gives its datagram
    /// up (`too_large`).
    pub max_datagram_len: u32,
    /// Seconds of packet time a datagram may take to complete (`timeout`).
    pub timeout_secs: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_fragments: DEFAULT_MAX_FRAGMENTS,
            max_datagrams: DEFAULT_MAX_DATAGRAMS,
            max_bytes: DEFAULT_MAX_BYTES,
            max_datagram_len: MAX_DATAGRAM_LEN,
            timeout_secs: DEFAULT_TIMEOUT_SECS,
        }
    }
}

/// Why a datagram was given up before it was complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GiveUp {
    /// Not complete [`Config::timeout_secs`] after its first fragment.
    Timeout,
    /// More than [`Config::max_fragments`] fragments.
    TooManyFragments,
    /// The oldest in flight when a new datagram found [`Config::max_datagrams`] already.
    TooManyDatagrams,
    /// The oldest in flight when a fragment would have passed [`Config::max_bytes`].
    Memory,
    /// A fragment reached past [`Config::max_datagram_len`].
    TooLarge,
    /// Fragments disagreed on where the datagram ends: two last fragments with different
    /// ends, or bytes past the end the last fragment set.
    BadLength,
}

impl GiveUp {
    /// Every reason, in [`GiveUp::index`] order.
    pub const ALL: [GiveUp; 6] = [
        GiveUp::Timeout,
        GiveUp::TooManyFragments,
        GiveUp::TooManyDatagrams,
        GiveUp::Memory,
        GiveUp::TooLarge,
        GiveUp::BadLength,
    ];

    /// Label used in counters and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            GiveUp::Timeout => "timeout",
            GiveUp::TooManyFragments => "too_many_fragments",
            GiveUp::TooManyDatagrams => "too_many_datagrams",
            GiveUp::Memory => "memory",
            GiveUp::TooLarge => "too_large",
            GiveUp::BadLength => "bad_length",
        }
    }

    /// Dense index `0..GiveUp::ALL.len()`, for [`DefragStats::giveups`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// The defragmenter's counters (read by the exporter).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DefragStats {
    /// Fragments received.
    pub fragments: u64,
    /// Datagrams completed.
    pub reassembled: u64,
    /// Fragments that brought no byte not already held (not stored).
    pub duplicates: u64,
    /// Datagrams completed whose overlapping fragments carried different bytes.
    pub conflicts: u64,
    /// Datagrams given up, by [`GiveUp::index`].
    pub giveups: [u64; GiveUp::ALL.len()],
    /// Datagrams in flight now (a gauge).
    pub pending: u64,
    /// Bytes held now, as [`Defragmenter::held_bytes`] (a gauge).
    pub held_bytes: u64,
}

impl DefragStats {
    /// Datagrams given up for `reason`.
    pub fn giveup(&self, reason: GiveUp) -> u64 {
        self.giveups.get(reason.index()).copied().unwrap_or(0)
    }
}

/// A completed datagram; its fragmentable part was written to the buffer given to
/// [`Defragmenter::push`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reassembled {
    /// What decoding it needs (addresses, VLAN, tunnel, protocol, IP header length).
    pub head: DatagramHead,
    /// Overlapping fragments carried different bytes (the first ones were kept).
    pub overlap_conflict: bool,
}

/// Which datagram a fragment belongs to (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct DatagramKey {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
    /// IPv4 protocol; 0 for IPv6, whose fragments may name different Next Headers.
    protocol: u8,
    vlan: Option<u16>,
}

impl DatagramKey {
    fn new(pkt: &Packet<'_>, frag: &Fragment<'_>) -> Self {
        DatagramKey {
            src: pkt.src,
            dst: pkt.dst,
            id: frag.id,
            protocol: match frag.version {
                IpVersion::V4 => frag.protocol,
                IpVersion::V6 => 0,
            },
            vlan: pkt.vlan,
        }
    }
}

/// One held fragment: where its bytes go in the fragmentable part.
#[derive(Debug)]
struct Held {
    offset: u32,
    bytes: Box<[u8]>,
}

impl Held {
    fn end(&self) -> u32 {
        self.offset + len32(&self.bytes)
    }
}

/// A datagram being reassembled.
#[derive(Debug)]
struct Datagram {
    /// Arrival order among datagrams: the key of [`Defragmenter::arrival`].
    serial: u64,
    /// Packet time of its first fragment.
    first: Timestamp,
    /// From the first fragment to arrive; protocol and header length from the first
    /// fragment at offset 0 once it arrives.
    head: DatagramHead,
    /// The offset-0 fragment has arrived (so `head` holds its protocol and header length).
    head_from_start: bool,
    /// Length of the fragmentable part, once the last fragment (no more to follow) arrived.
    end: Option<u32>,
    /// Fragments held, in arrival order: on overlaps, earlier ones win.
    held: Vec<Held>,
    /// The byte ranges held, merged and sorted.
    covered: Vec<(u32, u32)>,
    /// Bytes charged for this datagram.
    charged: usize,
    /// Overlapping bytes differed.
    conflict: bool,
}

impl Datagram {
    /// End of the highest byte held.
    fn high(&self) -> u32 {
        self.covered.last().map_or(0, |&(_, end)| end)
    }

    /// Every byte from 0 to the known end is held.
    fn is_complete(&self) -> bool {
        self.end
            .is_some_and(|end| matches!(self.covered.as_slice(), [(0, high)] if *high == end))
    }

    /// Whether `[start, end)` is held already.
    fn holds(&self, start: u32, end: u32) -> bool {
        self.covered.iter().any(|&(a, b)| a <= start && end <= b)
    }

    /// Whether `bytes` at `start` differ from any held byte they overlap.
    fn differs(&self, start: u32, bytes: &[u8]) -> bool {
        let end = start + len32(bytes);
        self.held.iter().any(|held| {
            let (from, to) = (start.max(held.offset), end.min(held.end()));
            from < to
                && bytes.get(range(from - start, to - start))
                    != held.bytes.get(range(from - held.offset, to - held.offset))
        })
    }

    /// Marks `[start, end)` as held, merging with the ranges it touches.
    fn cover(&mut self, start: u32, end: u32) {
        let (mut lo, mut hi) = (start, end);
        self.covered.retain(|&(a, b)| {
            let apart = b < lo || a > hi;
            if !apart {
                (lo, hi) = (lo.min(a), hi.max(b));
            }
            apart
        });
        let at = self.covered.partition_point(|&(a, _)| a < lo);
        self.covered.insert(at, (lo, hi));
    }

    /// Writes the fragmentable part into `out`: later fragments first, so that the earliest
    /// bytes are written last and win.
    fn assemble(&self, out: &mut Vec<u8>) {
        out.clear();
        out.resize(self.end.map_or(0, |end| end as usize), 0);
        for held in self.held.iter().rev() {
            if let Some(dst) = out.get_mut(range(held.offset, held.end())) {
                dst.copy_from_slice(&held.bytes);
            }
        }
    }
}

/// Reassembles IP datagrams from their fragments, within [`Config`]'s bounds. Sans-IO: packets
/// and their timestamps in, whole datagrams out.
pub struct Defragmenter {
    config: Config,
    datagrams: HashMap<DatagramKey, Datagram, ahash::RandomState>,
    /// Datagrams by arrival: the first is the oldest, given up first.
    arrival: BTreeMap<u64, DatagramKey>,
    next_serial: u64,
    held: usize,
    /// Counters.
    pub stats: DefragStats,
}

impl Defragmenter {
    /// A defragmenter within `config`'s bounds (each at least 1). The hash map is keyed with a
    /// random key (ahash), so that senders choosing identifications cannot aim at one bucket.
    pub fn new(config: Config) -> Self {
        let config = Config {
            max_fragments: config.max_fragments.max(1),
            max_datagrams: config.max_datagrams.max(1),
            max_bytes: config.max_bytes.max(1),
            max_datagram_len: config.max_datagram_len.max(1),
            timeout_secs: config.timeout_secs.max(1),
        };
        Defragmenter {
            config,
            datagrams: HashMap::with_hasher(ahash::RandomState::new()),
            arrival: BTreeMap::new(),
            next_serial: 0,
            held: 0,
            stats: DefragStats::default(),
        }
    }

    /// Bytes held now: fragments and datagrams with their overhead, at most
    /// [`Config::max_bytes`]. What a global memory budget charges this stage.
    pub fn held_bytes(&self) -> usize {
        self.held
    }

    /// Datagrams in flight.
    pub fn len(&self) -> usize {
        self.datagrams.len()
    }

    /// True when no datagram is in flight.
    pub fn is_empty(&self) -> bool {
        self.datagrams.is_empty()
    }

    /// Adds the fragment `frag`, carried by `pkt`, seen at `now`. When it completes its
    /// datagram, the datagram's fragmentable part is written to `out` (cleared first; a
    /// buffer the caller reuses, so completing costs no allocation) and its facts are
    /// returned; the datagram is forgotten.
    pub fn push(
        &mut self,
        now: Timestamp,
        pkt: &Packet<'_>,
        frag: &Fragment<'_>,
        out: &mut Vec<u8>,
    ) -> Option<Reassembled> {
        self.expire(now);
        self.stats.fragments += 1;
        let outcome = self.add(now, pkt, frag, out);
        self.stats.pending = self.datagrams.len() as u64;
        self.stats.held_bytes = self.held as u64;
        outcome
    }

    fn add(
        &mut self,
        now: Timestamp,
        pkt: &Packet<'_>,
        frag: &Fragment<'_>,
        out: &mut Vec<u8>,
    ) -> Option<Reassembled> {
        let key = DatagramKey::new(pkt, frag);
        let start = u32::from(frag.offset);
        let end = start + len32(frag.payload);
        if u32::from(frag.header_len) + end > self.config.max_datagram_len {
            if !self.remove(&key, Some(GiveUp::TooLarge)) {
                self.count(GiveUp::TooLarge);
            }
            return None;
        }
        if !self.datagrams.contains_key(&key) && !self.open(now, key, pkt, frag) {
            return None;
        }
        let d = self.datagrams.get_mut(&key)?;
        // Where the datagram ends: set once by the last fragment; nothing may pass it.
        let bad_end = if frag.more {
            d.end.is_some_and(|known| end > known)
        } else {
            d.end.is_some_and(|known| known != end) || d.high() > end
        };
        if bad_end {
            self.remove(&key, Some(GiveUp::BadLength));
            return None;
        }
        if !frag.more {
            d.end = Some(end);
        }
        if start == 0 && !d.head_from_start {
            d.head.protocol = frag.protocol;
            d.head.header_len = frag.header_len;
            d.head_from_start = true;
        }
        if !frag.payload.is_empty() {
            d.conflict |= d.differs(start, frag.payload);
            if d.holds(start, end) {
                self.stats.duplicates += 1;
            } else if d.held.len() >= self.config.max_fragments {
                self.remove(&key, Some(GiveUp::TooManyFragments));
                return None;
            } else {
                let charge = frag.payload.len() + FRAGMENT_OVERHEAD;
                if !self.make_room(charge, &key) {
                    self.remove(&key, Some(GiveUp::Memory));
                    return None;
                }
                let d = self.datagrams.get_mut(&key)?;
                d.held.push(Held {
                    offset: start,
                    bytes: frag.payload.into(),
                });
                d.cover(start, end);
                d.charged += charge;
                self.held += charge;
            }
        }
        let d = self.datagrams.get(&key)?;
        if !d.is_complete() {
            return None;
        }
        d.assemble(out);
        let done = Reassembled {
            head: d.head,
            overlap_conflict: d.conflict,
        };
        self.remove(&key, None);
        self.stats.reassembled += 1;
        if done.overlap_conflict {
            self.stats.conflicts += 1;
        }
        Some(done)
    }

    /// Starts a datagram for `key`, giving the oldest up when [`Config::max_datagrams`] or
    /// [`Config::max_bytes`] is reached. False when even that leaves no room.
    fn open(
        &mut self,
        now: Timestamp,
        key: DatagramKey,
        pkt: &Packet<'_>,
        frag: &Fragment<'_>,
    ) -> bool {
        if self.datagrams.len() >= self.config.max_datagrams {
            self.give_up_oldest(&key, GiveUp::TooManyDatagrams);
        }
        if !self.make_room(DATAGRAM_OVERHEAD, &key) {
            self.count(GiveUp::Memory);
            return false;
        }
        let serial = self.next_serial;
        self.next_serial += 1;
        self.arrival.insert(serial, key);
        self.held += DATAGRAM_OVERHEAD;
        self.datagrams.insert(
            key,
            Datagram {
                serial,
                first: now,
                head: DatagramHead::new(pkt, frag),
                head_from_start: false,
                end: None,
                held: Vec::new(),
                covered: Vec::new(),
                charged: DATAGRAM_OVERHEAD,
                conflict: false,
            },
        );
        true
    }

    /// Gives the oldest datagrams other than `keep` up (`memory`) until `charge` more bytes
    /// fit under [`Config::max_bytes`]. False when they cannot fit even then.
    fn make_room(&mut self, charge: usize, keep: &DatagramKey) -> bool {
        while self.held + charge > self.config.max_bytes {
            if !self.give_up_oldest(keep, GiveUp::Memory) {
                return false;
            }
        }
        true
    }

    /// Gives up the datagram that arrived first, unless it is `keep` (then the next one).
    /// False when there is none to give up.
    fn give_up_oldest(&mut self, keep: &DatagramKey, reason: GiveUp) -> bool {
        let oldest = self.arrival.values().find(|key| *key != keep).copied();
        match oldest {
            Some(key) => self.remove(&key, Some(reason)),
            None => false,
        }
    }

    /// Forgets the datagram of `key`, counting `reason` if it was given up. False when there
    /// was none.
    fn remove(&mut self, key: &DatagramKey, reason: Option<GiveUp>) -> bool {
        let Some(d) = self.datagrams.remove(key) else {
            return false;
        };
        self.arrival.remove(&d.serial);
        self.held -= d.charged;
        if let Some(reason) = reason {
            self.count(reason);
        }
        true
    }

    fn count(&mut self, reason: GiveUp) {
        if let Some(n) = self.stats.giveups.get_mut(reason.index()) {
            *n += 1;
        }
    }

    /// Gives up the datagrams whose first fragment is [`Config::timeout_secs`] of packet time
    /// away from `now` (see the module docs). Cheap when nothing is in flight: the engine calls
    /// it for every batch and on every tick.
    #[inline]
    pub fn expire(&mut self, now: Timestamp) {
        if !self.datagrams.is_empty() {
            self.expire_oldest(now);
        }
    }

    fn expire_oldest(&mut self, now: Timestamp) {
        let timeout = self.config.timeout_secs.saturating_mul(1_000_000);
        while let Some(key) = self.arrival.values().next().copied() {
            let Some(first) = self.datagrams.get(&key).map(|d| d.first) else {
                break;
            };
            if now.micros_since(first) < timeout && first.micros_since(now) < timeout {
                break;
            }
            self.remove(&key, Some(GiveUp::Timeout));
        }
        self.stats.pending = self.datagrams.len() as u64;
        self.stats.held_bytes = self.held as u64;
    }
}

/// A slice length as u32 (fragments are at most 65,535 bytes).
fn len32(bytes: &[u8]) -> u32 {
    u32::try_from(bytes.len()).unwrap_or(u32::MAX)
}

/// `from..to` as a `usize` range.
fn range(from: u32, to: u32) -> std::ops::Range<usize> {
    from as usize..to as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{self, Transport, Tunnel};
    use crate::testutil::XorShift;

    const SRC: [u8; 4] = [192, 0, 2, 1];
    const DST: [u8; 4] = [198, 51, 100, 7];

    /// A TCP segment (20-byte header, ports 40000 → 443, ACK|PSH) with `data`: the
    /// fragmentable part of the datagrams below.
    fn segment(data: &[u8]) -> Vec<u8> {
        let mut out = vec![
            0x9c, 0x40, 0x01, 0xbb, // ports
            0, 0, 0x10, 0, // seq
            0, 0, 0, 1, // ack
            0x50, 0x18, 0x01, 0x00, // data offset 5, ACK|PSH, window
            0, 0, 0, 0, // checksum, urgent
        ];
        out.extend_from_slice(data);
        out
    }

    /// A hello-like payload: a TLS record header and a recognisable pattern.
    fn hello(len: usize) -> Vec<u8> {
        let mut out = vec![0x16, 0x03, 0x01];
        out.extend((0..len - 3).map(|i| (i % 251) as u8));
        out
    }

    /// A fragment of `whole` at `offset` (bytes), `len` bytes, as decode yields it.
    struct Piece {
        version: IpVersion,
        id: u32,
        offset: u16,
        more: bool,
        bytes: Vec<u8>,
        vlan: Option<u16>,
    }

    fn packet<'a>(piece: &'a Piece) -> (Packet<'a>, Fragment<'a>) {
        let (src, dst, header_len) = match piece.version {
            IpVersion::V4 => (IpAddr::from(SRC), IpAddr::from(DST), 20),
            IpVersion::V6 => (
                IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, 1]),
                IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, 2]),
                48,
            ),
        };
        let frag = Fragment {
            version: piece.version,
            id: piece.id,
            offset: piece.offset,
            more: piece.more,
            protocol: 6,
            payload: &piece.bytes,
            header_len,
            depth: 0,
        };
        let pkt = Packet {
            src,
            dst,
            ip_len: u32::from(header_len) + 8 + len32(&piece.bytes),
            transport: Transport::Fragment(frag),
            vlan: piece.vlan,
            tunnel: None,
        };
        (pkt, frag)
    }

    /// `whole` cut at `cuts` (byte offsets, multiples of 8) into IPv4 fragments of id 7.
    fn split(whole: &[u8], cuts: &[usize]) -> Vec<Piece> {
        let mut bounds = vec![0];
        bounds.extend_from_slice(cuts);
        bounds.push(whole.len());
        bounds
            .windows(2)
            .map(|w| Piece {
                version: IpVersion::V4,
                id: 7,
                offset: u16::try_from(w[0]).unwrap(),
                more: w[1] != whole.len(),
                bytes: whole[w[0]..w[1]].to_vec(),
                vlan: None,
            })
            .collect()
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_parts(1_700_000_000 + secs, 0)
    }

    /// Pushes `pieces` in the given order; returns what completed (with its bytes).
    fn run(d: &mut Defragmenter, pieces: &[&Piece]) -> Vec<(Reassembled, Vec<u8>)> {
        let mut done = Vec::new();
        let mut out = Vec::new();
        for piece in pieces {
            let (pkt, frag) = packet(piece);
            if let Some(r) = d.push(at(0), &pkt, &frag, &mut out) {
                done.push((r, out.clone()));
            }
        }
        done
    }

    fn in_order(pieces: &[Piece]) -> Vec<&Piece> {
        pieces.iter().collect()
    }

    #[test]
    fn two_three_and_five_fragments_in_any_order() {
        let whole = segment(&hello(300));
        for cuts in [&[160][..], &[104, 208], &[64, 128, 192, 256]] {
            let pieces = split(&whole, cuts);
            let mut orders = vec![
                in_order(&pieces),
                in_order(&pieces).into_iter().rev().collect(),
            ];
            let mut rng = XorShift(0x5eed_u64 + cuts.len() as u64);
            for _ in 0..20 {
                let mut order = in_order(&pieces);
                for i in (1..order.len()).rev() {
                    order.swap(i, (rng.next() % (i as u64 + 1)) as usize);
                }
                orders.push(order);
            }
            for order in orders {
                let mut d = Defragmenter::new(Config::default());
                let done = run(&mut d, &order);
                assert_eq!(done.len(), 1, "{cuts:?}");
                let (r, bytes) = &done[0];
                assert_eq!(bytes, &whole);
                assert!(!r.overlap_conflict);
                assert_eq!((r.head.protocol, r.head.header_len), (6, 20));
                assert_eq!(d.stats.reassembled, 1);
                assert_eq!(d.stats.fragments, pieces.len() as u64);
                assert_eq!((d.len(), d.held_bytes()), (0, 0));
                assert_eq!((d.stats.pending, d.stats.held_bytes), (0, 0));
                // Decoded as the whole segment it was, with the whole datagram's IP length.
                let pkt = decode::reassembled(&r.head, bytes).unwrap();
                assert_eq!(pkt.ip_len, 20 + whole.len() as u32);
                match pkt.transport {
                    Transport::Tcp(t) => assert_eq!((t.dst_port, t.payload), (443, &whole[20..])),
                    other => panic!("{other:?}"),
                }
            }
        }
    }

    #[test]
    fn duplicates_and_identical_overlaps_are_harmless() {
        let whole = segment(&hello(100));
        let pieces = split(&whole, &[40, 80]);
        let overlap = Piece {
            offset: 32,
            more: true,
            bytes: whole[32..64].to_vec(),
            ..split(&whole, &[])[0]
        };
        let mut d = Defragmenter::new(Config::default());
        let done = run(
            &mut d,
            &[&pieces[0], &pieces[0], &overlap, &pieces[2], &pieces[1]],
        );
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].1, whole);
        assert!(!done[0].0.overlap_conflict);
        // Only the repeated first fragment brought nothing new; [32, 64) overlapped [0, 40)
        // with the same bytes and was kept for its new ones.
        assert_eq!(d.stats.duplicates, 1);
        assert_eq!(d.stats.conflicts, 0);
        // A duplicate of a datagram already delivered starts a new one (that times out).
        let _ = run(&mut d, &[&pieces[1]]);
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn overlap_with_different_bytes_keeps_the_first_and_reports() {
        let mut data = b"\x16\x03\x01 sni=good.example ".to_vec();
        data.resize(48, b'.');
        let whole = segment(&data);
        let pieces = split(&whole, &[32]);
        // A fragment from offset 24 to the end that says "EVIL" at 44..48.
        let mut forged = whole[24..].to_vec();
        forged[20..24].copy_from_slice(b"EVIL");
        let liar = Piece {
            offset: 24,
            more: false,
            bytes: forged,
            ..split(&whole, &[])[0]
        };
        // After the true bytes: the datagram was complete, the liar starts another one.
        let mut d = Defragmenter::new(Config::default());
        assert_eq!(run(&mut d, &[&pieces[0], &pieces[1], &liar]).len(), 1);
        assert_eq!(d.len(), 1);
        // Between the true bytes: first wins, the true bytes stay, the conflict is reported.
        let mut d = Defragmenter::new(Config::default());
        let done = run(&mut d, &[&pieces[1], &liar, &pieces[0]]);
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].1, whole, "the earlier fragment's bytes win");
        assert!(done[0].0.overlap_conflict);
        assert_eq!((d.stats.conflicts, d.stats.duplicates), (1, 0));
        // The liar first: its bytes win where they overlap, and the conflict is reported.
        let mut d = Defragmenter::new(Config::default());
        let done = run(&mut d, &[&liar, &pieces[1], &pieces[0]]);
        assert_eq!(done.len(), 1);
        assert_eq!(&done[0].1[44..48], b"EVIL");
        assert_eq!(done[0].1[..44], whole[..44]);
        assert!(done[0].0.overlap_conflict);
        assert_eq!((d.stats.conflicts, d.stats.duplicates), (1, 1));
    }

    #[test]
    fn timeout_in_packet_time_either_direction() {
        let whole = segment(&hello(60));
        let pieces = split(&whole, &[40]);
        let mut d = Defragmenter::new(Config::default());
        let mut out = Vec::new();
        let (pkt, frag) = packet(&pieces[0]);
        assert!(d.push(at(0), &pkt, &frag, &mut out).is_none());
        d.expire(at(29));
        assert_eq!(d.len(), 1);
        d.expire(at(30));
        assert_eq!((d.len(), d.held_bytes()), (0, 0));
        assert_eq!(d.stats.giveup(GiveUp::Timeout), 1);
        // The second half after the timeout cannot complete the datagram.
        let (pkt, frag) = packet(&pieces[1]);
        assert!(d.push(at(31), &pkt, &frag, &mut out).is_none());
        // A clock that jumps back by the timeout ends a datagram too.
        d.expire(at(0));
        assert_eq!(d.stats.giveup(GiveUp::Timeout), 2);
        // Completing within the timeout works.
        let (first, second) = (packet(&pieces[0]), packet(&pieces[1]));
        assert!(d.push(at(100), &first.0, &first.1, &mut out).is_none());
        assert!(d.push(at(129), &second.0, &second.1, &mut out).is_some());
    }

    #[test]
    fn every_bound_is_counted() {
        let whole = segment(&hello(600));
        // Fragments per datagram: 8-byte fragments, one more than allowed.
        let tiny = split(&whole, &(1..=4).map(|i| i * 8).collect::<Vec<_>>());
        let mut d = Defragmenter::new(Config {
            max_fragments: 4,
            ..Config::default()
        });
        assert!(run(&mut d, &in_order(&tiny)).is_empty());
        assert_eq!(d.stats.giveup(GiveUp::TooManyFragments), 1);
        assert_eq!((d.len(), d.held_bytes()), (0, 0));

        // Datagrams in flight: the oldest goes.
        let mut d = Defragmenter::new(Config {
            max_datagrams: 2,
            ..Config::default()
        });
        let heads: Vec<Piece> = (0..3)
            .map(|id| Piece {
                id,
                ..split(&whole, &[64]).into_iter().next().unwrap()
            })
            .collect();
        assert!(run(&mut d, &in_order(&heads)).is_empty());
        assert_eq!(d.stats.giveup(GiveUp::TooManyDatagrams), 1);
        assert_eq!(d.len(), 2);
        let tail = Piece {
            id: 0,
            offset: 64,
            more: false,
            bytes: whole[64..].to_vec(),
            vlan: None,
            version: IpVersion::V4,
        };
        assert!(run(&mut d, &[&tail]).is_empty(), "datagram 0 was given up");
        let tail2 = Piece { id: 2, ..tail };
        assert_eq!(run(&mut d, &[&tail2]).len(), 1, "datagram 2 was kept");

        // Memory: room for about two first fragments; the third gives the oldest up.
        let budget = 2 * (64 + FRAGMENT_OVERHEAD + DATAGRAM_OVERHEAD) + 10;
        let mut d = Defragmenter::new(Config {
            max_bytes: budget,
            ..Config::default()
        });
        assert!(run(&mut d, &in_order(&heads)).is_empty());
        assert_eq!(d.stats.giveup(GiveUp::Memory), 1);
        assert!(d.held_bytes() <= budget);
        assert_eq!(d.len(), 2);
        // A fragment that cannot fit even alone gives its own datagram up.
        let mut d = Defragmenter::new(Config {
            max_bytes: DATAGRAM_OVERHEAD + 10,
            ..Config::default()
        });
        assert!(run(&mut d, &[&heads[0]]).is_empty());
        assert_eq!(d.stats.giveup(GiveUp::Memory), 1);
        assert_eq!((d.len(), d.held_bytes()), (0, 0));

        // Too large: 20 header bytes + 65,528 + 7 bytes passes 65,535 (ping of death).
        let mut d = Defragmenter::new(Config::default());
        let death = Piece {
            id: 0,
            offset: 65_528,
            more: false,
            bytes: vec![0; 7],
            ..split(&whole, &[])[0]
        };
        assert!(run(&mut d, &[&heads[0], &death]).is_empty());
        assert_eq!(d.stats.giveup(GiveUp::TooLarge), 1);
        assert_eq!(d.len(), 0, "the datagram it belonged to is given up");

        // Bad length: two last fragments disagreeing, or bytes past the end.
        let mut d = Defragmenter::new(Config::default());
        let parts = split(&whole, &[64, 128]);
        let short_end = Piece {
            offset: 64,
            more: false,
            bytes: whole[64..128].to_vec(),
            ..split(&whole, &[])[0]
        };
        assert!(run(&mut d, &[&parts[2], &short_end]).is_empty());
        assert_eq!(d.stats.giveup(GiveUp::BadLength), 1);
        assert!(run(&mut d, &[&short_end, &parts[2]]).is_empty());
        assert_eq!(d.stats.giveup(GiveUp::BadLength), 2);
        assert_eq!((d.len(), d.held_bytes()), (0, 0));
    }

    #[test]
    fn keys_keep_datagrams_apart() {
        let whole = segment(&hello(100));
        let pieces = split(&whole, &[64]);
        let other_vlan = Piece {
            vlan: Some(12),
            ..split(&whole, &[64]).pop().unwrap()
        };
        let other_id = Piece {
            id: 8,
            ..split(&whole, &[64]).pop().unwrap()
        };
        let mut d = Defragmenter::new(Config::default());
        assert!(run(&mut d, &[&pieces[0], &other_vlan, &other_id]).is_empty());
        assert_eq!(d.len(), 3);
        assert_eq!(run(&mut d, &[&pieces[1]]).len(), 1);
    }

    #[test]
    fn ipv6_takes_protocol_and_header_from_the_first_fragment() {
        let whole = segment(&hello(200));
        let mut pieces = split(&whole, &[96]);
        for p in &mut pieces {
            p.version = IpVersion::V6;
            p.id = 0x8000_0001;
        }
        let mut d = Defragmenter::new(Config::default());
        let mut out = Vec::new();
        // The later fragment names another Next Header: only the first fragment's counts.
        let (pkt, mut frag) = packet(&pieces[1]);
        frag.protocol = 59;
        frag.header_len = 40;
        assert!(d.push(at(0), &pkt, &frag, &mut out).is_none());
        let (pkt, frag) = packet(&pieces[0]);
        let r = d.push(at(0), &pkt, &frag, &mut out).unwrap();
        assert_eq!((r.head.protocol, r.head.header_len), (6, 48));
        let whole_pkt = decode::reassembled(&r.head, &out).unwrap();
        assert_eq!(whole_pkt.ip_len, 48 + whole.len() as u32);
        assert!(matches!(whole_pkt.transport, Transport::Tcp(t) if t.payload == &whole[20..]));
    }

    #[test]
    fn tiny_fragments_and_the_head_of_a_tunnel() {
        // 8-byte fragments, the TCP header itself cut in three (RFC 1858's tiny fragments).
        let whole = segment(&hello(40));
        let cuts: Vec<usize> = (1..whole.len() / 8).map(|i| i * 8).collect();
        let mut pieces = split(&whole, &cuts);
        pieces.reverse();
        let mut d = Defragmenter::new(Config::default());
        let done = run(&mut d, &in_order(&pieces));
        assert_eq!(done.len(), 1);
        assert_eq!(done[0].1, whole);
        // The first fragment to arrive gives the datagram its VLAN and tunnel.
        let (pkt, frag) = packet(&pieces[0]);
        let pkt = Packet {
            tunnel: Some(Tunnel::Gre),
            ..pkt
        };
        let head = DatagramHead::new(&pkt, &frag);
        assert_eq!(head.tunnel, Some(Tunnel::Gre));
    }

    /// Decodes a raw IP frame that must be a fragment.
    fn fragment_of(bytes: &[u8]) -> (Packet<'_>, Fragment<'_>) {
        let pkt = decode::decode(decode::LinkType::Raw, bytes).unwrap();
        match pkt.transport {
            Transport::Fragment(frag) => (pkt, frag),
            other => panic!("not a fragment: {other:?}"),
        }
    }

    #[test]
    fn raw_frames_through_decode_ipv4_and_ipv6_with_hop_by_hop() {
        // UDP 5353 → 53 with 12 bytes of payload, in two IPv4 fragments: 8 + 12 bytes.
        let udp = [
            0x14, 0xe9, 0x00, 0x35, 0x00, 0x14, 0x00,
            0x00, // header: ports, length 20, checksum
            b'f', b'r', b'a', b'g', b'm', b'e', b'n', b't', b'e', b'd', b'!', b'!',
        ];
        let v4 = |flags: [u8; 2], part: &[u8]| {
            let total = u8::try_from(20 + part.len()).unwrap();
            let mut out = vec![
                0x45, 0x00, 0x00, total, 0xab, 0xcd, flags[0], flags[1], // id 0xabcd
                64, 17, 0x00, 0x00, 192, 0, 2, 1, 198, 51, 100, 7, // UDP, no checksum check
            ];
            out.extend_from_slice(part);
            out
        };
        let first = v4([0x20, 0x00], &udp[..8]); // MF, offset 0
        let second = v4([0x00, 0x01], &udp[8..]); // offset 1 (8 bytes)
        let mut d = Defragmenter::new(Config::default());
        let mut out = Vec::new();
        let (pkt, frag) = fragment_of(&second);
        assert!(d.push(at(0), &pkt, &frag, &mut out).is_none());
        let (pkt, frag) = fragment_of(&first);
        let r = d.push(at(0), &pkt, &frag, &mut out).unwrap();
        let whole = decode::reassembled(&r.head, &out).unwrap();
        assert_eq!(whole.ip_len, 20 + 20);
        match whole.transport {
            Transport::Udp(u) => assert_eq!((u.dst_port, u.payload), (53, &udp[8..])),
            other => panic!("{other:?}"),
        }
        // The same datagram over IPv6: hop-by-hop (PadN), then the Fragment header.
        let v6 = |offset_flags: [u8; 2], part: &[u8]| {
            let len = u8::try_from(8 + 8 + part.len()).unwrap();
            let mut out = vec![0x60, 0, 0, 0, 0x00, len, 0x00, 64]; // next: hop-by-hop
            out.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
            out.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
            out.extend_from_slice(&[44, 0, 0x01, 0x04, 0, 0, 0, 0]); // hop-by-hop → Fragment
            out.extend_from_slice(&[
                17,
                0,
                offset_flags[0],
                offset_flags[1],
                0xfe,
                0xed,
                0xfa,
                0xce,
            ]);
            out.extend_from_slice(part);
            out
        };
        let first = v6([0x00, 0x01], &udp[..8]); // offset 0, M
        let second = v6([0x00, 0x08], &udp[8..]); // offset 1 (8 bytes)
        let (pkt, frag) = fragment_of(&first);
        assert_eq!(
            (frag.id, frag.header_len, frag.protocol),
            (0xfeed_face, 48, 17)
        );
        assert!(d.push(at(1), &pkt, &frag, &mut out).is_none());
        let (pkt, frag) = fragment_of(&second);
        let r = d.push(at(1), &pkt, &frag, &mut out).unwrap();
        let whole = decode::reassembled(&r.head, &out).unwrap();
        assert_eq!(whole.ip_len, 40 + 8 + 20);
        assert!(matches!(whole.transport, Transport::Udp(u) if u.payload == &udp[8..]));
        assert_eq!(d.stats.reassembled, 2);
    }

    #[test]
    fn byte_soup_never_panics_and_bounds_hold() {
        let config = Config {
            max_fragments: 8,
            max_datagrams: 16,
            max_bytes: 16 * 1024,
            ..Config::default()
        };
        let mut d = Defragmenter::new(config);
        let mut rng = XorShift(0x00de_f7a9);
        let mut out = Vec::new();
        for round in 0..20_000 {
            let len = (rng.next() % 200) as usize;
            let piece = Piece {
                version: if rng.next().is_multiple_of(2) {
                    IpVersion::V4
                } else {
                    IpVersion::V6
                },
                id: (rng.next() % 24) as u32,
                offset: ((rng.next() % 64) * 8) as u16,
                more: !rng.next().is_multiple_of(3),
                bytes: (0..len).map(|_| rng.next() as u8).collect(),
                vlan: None,
            };
            let (pkt, frag) = packet(&piece);
            let now = at(round / 500);
            if let Some(r) = d.push(now, &pkt, &frag, &mut out) {
                let _ = decode::reassembled(&r.head, &out);
            }
            assert!(d.held_bytes() <= config.max_bytes);
            assert!(d.len() <= config.max_datagrams);
            assert_eq!(d.arrival.len(), d.len());
            let charged: usize = d.datagrams.values().map(|x| x.charged).sum();
            assert_eq!(charged, d.held_bytes());
        }
        assert!(d.stats.fragments == 20_000);
    }
}
