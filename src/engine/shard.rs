//! Splitting the packet path over engine shards: the [`Splitter`] reads each frame just far
//! enough to know its flow and sends it, copied into a [`Batch`], to the shard that owns the
//! flow; each shard is an [`Engine`](super::Engine) ([`Engine::handle_shard`](super::Engine::handle_shard)).
//!
//! - **Which shard**: a hash of the flow's canonical key ([`crate::flow::key::Key`]: both
//!   directions give the same key) of the innermost flow, after tunnels, modulo the number of
//!   shards ([`shard_of`]).
//! - **IP fragments** are reassembled here, before the split (the sans-IO, bounded
//!   [`Defragmenter`]): a non-first fragment carries no ports, so only the whole datagram tells
//!   its flow. The datagram goes to its flow's shard as one item, at the position of the
//!   fragment that completed it — what one engine did.
//! - **Order**: every frame has a global number (its position in the run), which becomes the
//!   id of the flow it starts. Every shard is also told about the frames it does not own
//!   ([`What::Tick`]): one engine ran its timeout sweep after every packet, at that packet's
//!   time, so each shard runs its sweeps at the same moments and ends its flows exactly when one
//!   engine would have.
//! - **Decoded once**: the frame travels with the packet the splitter decoded ([`Decoded`]:
//!   the payload as an offset into the frame).
//! - **Copied or not** ([`Carry`]): a batch for a shard thread owns copies of its frames; a
//!   shard that runs on the reader's thread before the next read (one worker on one core, a
//!   standalone engine) is handed the source's frames themselves and its batch only says which
//!   ones: no frame is copied.
//! - **Counting**: frames, decode drops, unsupported links, packets that are neither TCP nor
//!   UDP and IP reassembly are counted here; everything else in the shards.

use crate::decode::{self, DatagramHead, Fragment, Frame, LinkType, Packet, Transport};
use crate::flow::defrag::{self, Defragmenter};
use crate::flow::key::Key;
use crate::time::Timestamp;

use super::record::Stats;
use super::resolve::{Pos, Stamped};
use super::Counters;

/// What a shard is to do at one global frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum What {
    /// Handle this frame (its bytes are `data[start..start + len]` of the batch, or with
    /// [`Carry::InPlace`] the source's frame number `start`), decoded by the splitter as
    /// `packets[packet]` of the batch ([`NO_PACKET`]: decode it again).
    Frame {
        /// Its link type.
        link: LinkType,
        /// Offset in the batch's data ([`Carry::Copied`]), or index in the source's frames
        /// ([`Carry::InPlace`]).
        start: u32,
        /// Length.
        len: u32,
        /// Its decoded packet in the batch.
        packet: u32,
    },
    /// Handle this reassembled IP datagram (its fragmentable part is in the batch's data).
    Datagram {
        /// What decoding it needs: `heads[head]` of the batch (kept apart, so that an item
        /// stays 32 bytes).
        head: u32,
        /// Offset in the batch's data.
        start: u32,
        /// Length.
        len: u32,
        /// Its overlapping fragments disagreed.
        overlap_conflict: bool,
    },
    /// Another shard's frame (or one that made no flow): only run the timeout sweep.
    Tick,
    /// The end of a batch of the source (or a clock tick of a quiet live link): run the sweep.
    End,
}

/// One step of a shard's batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Item {
    /// Global frame number.
    pub seq: u64,
    /// The frame's time.
    pub ts: Timestamp,
    /// What to do.
    pub what: What,
}

/// What travels between the reader and a shard, both ways: the frames for the shard (copied,
/// or with [`Carry::InPlace`] only their numbers), and back the events and records they made.
/// Reused: the reader keeps the batches a shard returned and fills them again, so a run
/// allocates batches only while it starts.
#[derive(Debug, Default)]
pub struct Batch {
    /// The bytes of the frames and datagrams, back to back.
    pub data: Vec<u8>,
    /// Every frame of the run since the previous batch, in order.
    pub items: Vec<Item>,
    /// The heads of the batch's reassembled datagrams.
    pub heads: Vec<DatagramHead>,
    /// The frames as the splitter decoded them (the shard does not decode them again), their
    /// TCP or UDP payload left empty: it is `frame[payload.0..payload.0 + payload.1]` of the
    /// frame's bytes.
    pub packets: Vec<Decoded>,
    /// Bytes IP reassembly holds in the splitter (charged to the shard's memory budget).
    pub defrag_held: usize,
    /// After the items, end every flow (the end of a capture).
    pub finish: bool,
    /// Send the shard's counters back.
    pub want_counters: bool,
    /// Back: events for the resolver, in the shard's order.
    pub events: Vec<Stamped>,
    /// Back: the shard has emitted everything up to here.
    pub mark: Pos,
    /// Back: the shard's counters, when asked for.
    pub counters: Option<Counters>,
    /// Back: a part of a capture's end sent ahead of the batch that asked for it.
    pub chunk: bool,
}

impl Batch {
    /// Empties the batch, keeping its buffers.
    pub fn clear(&mut self) {
        self.data.clear();
        self.items.clear();
        self.heads.clear();
        self.packets.clear();
        self.defrag_held = 0;
        self.finish = false;
        self.want_counters = false;
        self.events.clear();
        self.mark = Pos::START;
        self.counters = None;
        self.chunk = false;
    }

    /// Frames and datagrams (not ticks) in the batch.
    pub fn frames(&self) -> usize {
        self.items.iter().filter(|i| matches!(i.what, What::Frame { .. } | What::Datagram { .. })).count()
    }
}

/// A frame's packet as the splitter decoded it (see [`Batch::packets`]).
#[derive(Debug, Clone, Copy)]
pub struct Decoded {
    /// The packet, its payload empty.
    pub packet: Packet<'static>,
    /// Where its payload is in the frame's bytes: offset and length.
    pub payload: (u32, u32),
}

impl Decoded {
    /// The packet, its payload taken from its `frame`'s bytes (empty if out of range).
    pub fn packet<'a>(&self, frame: &'a [u8]) -> Packet<'a> {
        let (start, len) = (self.payload.0 as usize, self.payload.1 as usize);
        let bytes: &'a [u8] = frame.get(start..start + len).unwrap_or_default();
        let transport = match self.packet.transport {
            Transport::Tcp(t) => Transport::Tcp(with_tcp_payload(&t, bytes)),
            Transport::Udp(u) => Transport::Udp(decode::UdpDatagram { src_port: u.src_port, dst_port: u.dst_port, payload: bytes }),
            Transport::Other { protocol } => Transport::Other { protocol },
            // Never sent: fragments are reassembled by the splitter.
            Transport::Fragment(_) => Transport::Other { protocol: 0 },
        };
        let p = &self.packet;
        Packet { src: p.src, dst: p.dst, ip_len: p.ip_len, transport, vlan: p.vlan, tunnel: p.tunnel }
    }
}

/// `t` with another payload (of another lifetime).
fn with_tcp_payload<'b>(t: &decode::TcpSegment<'_>, payload: &'b [u8]) -> decode::TcpSegment<'b> {
    let decode::TcpSegment { src_port, dst_port, seq, ack, flags, window, payload: _, payload_len } = *t;
    decode::TcpSegment { src_port, dst_port, seq, ack, flags, window, payload, payload_len }
}

/// No decoded packet for this frame: the shard decodes it.
pub const NO_PACKET: u32 = u32::MAX;

/// How a batch carries its frames' bytes to the shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carry {
    /// Copied into the batch: it can cross to another thread and outlive the source's buffer.
    Copied,
    /// Not at all: the shard handles the batch with the same frames the splitter was given
    /// ([`super::Engine::handle_shard_in`]), before the source reads again.
    InPlace,
}

/// The shard that owns the flow of `key`, among `shards`. The same for both directions, and
/// the same on every run (fixed hash seeds), so a capture always splits the same way.
pub fn shard_of(key: &Key, shards: usize) -> usize {
    if shards <= 1 {
        return 0;
    }
    let h = ahash::RandomState::with_seeds(0x5eed_0001, 0x5eed_0002, 0x5eed_0003, 0x5eed_0004).hash_one(key);
    // The high bits: ahash mixes them best.
    ((h >> 32) % shards as u64) as usize
}

/// The reader's part of the packet path (see the module docs).
pub struct Splitter {
    shards: usize,
    defrag: Defragmenter,
    /// Where a completed datagram is written (reused: at most 64 KiB kept between datagrams).
    datagram: Vec<u8>,
    /// Global number of the next frame.
    next_seq: u64,
}

impl Splitter {
    /// A splitter over `shards` shards (at least 1).
    pub fn new(shards: usize) -> Self {
        Splitter { shards: shards.max(1), defrag: Defragmenter::new(defrag::Config::default()), datagram: Vec::new(), next_seq: 0 }
    }

    /// Shards split over.
    pub fn shards(&self) -> usize {
        self.shards
    }

    /// Bytes IP reassembly holds.
    pub fn held_bytes(&self) -> usize {
        self.defrag.held_bytes()
    }

    /// Frames numbered so far.
    pub fn frames(&self) -> u64 {
        self.next_seq
    }

    /// Splits a batch of the source over `out` (one batch per shard, appended to), counting in
    /// `stats` what ends here; the frames' bytes go as `carry` says.
    pub fn split(&mut self, frames: &[Frame<'_>], carry: Carry, stats: &mut Stats, out: &mut [Batch]) {
        for (index, f) in frames.iter().enumerate() {
            let seq = self.next_seq;
            self.next_seq += 1;
            stats.frames += 1;
            stats.frame_bytes += f.wire_len as u64;
            let Some(link) = f.link else {
                stats.unsupported_link += 1;
                continue;
            };
            let pkt = match decode::decode(link, f.data) {
                Ok(p) => p,
                Err(reason) => {
                    bump_drop(stats, reason);
                    continue;
                }
            };
            let owner = match &pkt.transport {
                Transport::Fragment(frag) => self.fragment(seq, f.ts, &pkt, frag, stats, out),
                _ => match key_of(&pkt) {
                    Some(key) => {
                        let s = shard_of(&key, self.shards);
                        if let Some(b) = out.get_mut(s) {
                            let packet = keep_decoded(b, &pkt, f.data);
                            match carry {
                                Carry::Copied => push_bytes(b, seq, f.ts, f.data, |start, len| What::Frame { link, start, len, packet }),
                                Carry::InPlace => {
                                    // A source batch holds far fewer than 4 G frames.
                                    let (start, len) = (u32::try_from(index).unwrap_or(u32::MAX), u32::try_from(f.data.len()).unwrap_or(u32::MAX));
                                    b.items.push(Item { seq, ts: f.ts, what: What::Frame { link, start, len, packet } });
                                }
                            }
                        }
                        Some(s)
                    }
                    None => {
                        stats.other_transport += 1;
                        None
                    }
                },
            };
            for (i, b) in out.iter_mut().enumerate() {
                if Some(i) != owner {
                    b.items.push(Item { seq, ts: f.ts, what: What::Tick });
                }
            }
        }
        if let Some(last) = frames.last() {
            self.end(last.ts, stats, out);
        }
    }

    /// Advances time without a frame (a quiet live link): every shard runs its sweep at `now`.
    pub fn tick(&mut self, now: Timestamp, stats: &mut Stats, out: &mut [Batch]) {
        self.end(now, stats, out);
    }

    fn end(&mut self, ts: Timestamp, stats: &mut Stats, out: &mut [Batch]) {
        if !self.defrag.is_empty() {
            self.defrag.expire(ts);
            stats.defrag = self.defrag.stats;
        }
        let seq = self.next_seq.saturating_sub(1);
        for b in out.iter_mut() {
            b.items.push(Item { seq, ts, what: What::End });
            b.defrag_held = self.defrag.held_bytes();
        }
    }

    /// A fragment: a datagram it completes goes to its flow's shard (returned); one that holds
    /// another fragment goes round again (decode's encapsulation bound ends that).
    fn fragment(&mut self, seq: u64, ts: Timestamp, pkt: &Packet<'_>, frag: &Fragment<'_>, stats: &mut Stats, out: &mut [Batch]) -> Option<usize> {
        let mut buf = std::mem::take(&mut self.datagram);
        let done = self.defrag.push(ts, pkt, frag, &mut buf);
        stats.defrag = self.defrag.stats;
        let mut owner = None;
        if let Some(done) = done {
            match decode::reassembled(&done.head, &buf) {
                Ok(whole) => match &whole.transport {
                    Transport::Fragment(inner) => owner = self.fragment(seq, ts, &whole, inner, stats, out),
                    _ => match key_of(&whole) {
                        Some(key) => {
                            let s = shard_of(&key, self.shards);
                            if let Some(b) = out.get_mut(s) {
                                let head = u32::try_from(b.heads.len()).unwrap_or(u32::MAX);
                                b.heads.push(done.head);
                                let overlap_conflict = done.overlap_conflict;
                                push_bytes(b, seq, ts, &buf, |start, len| What::Datagram { head, start, len, overlap_conflict });
                            }
                            owner = Some(s);
                        }
                        None => stats.other_transport += 1,
                    },
                },
                Err(reason) => bump_drop(stats, reason),
            }
        }
        self.datagram = buf;
        owner
    }
}

fn bump_drop(stats: &mut Stats, reason: decode::DropReason) {
    if let Some(n) = stats.decode_drops.get_mut(reason.index()) {
        *n += 1;
    }
}

/// Copies `bytes` into the batch and adds the item that points at them.
fn push_bytes(b: &mut Batch, seq: u64, ts: Timestamp, bytes: &[u8], what: impl FnOnce(u32, u32) -> What) {
    let start = b.data.len();
    b.data.extend_from_slice(bytes);
    // Frames are at most a few hundred KiB and batches are sent long before 4 GiB.
    let (start, len) = (u32::try_from(start).unwrap_or(u32::MAX), u32::try_from(bytes.len()).unwrap_or(u32::MAX));
    b.items.push(Item { seq, ts, what: what(start, len) });
}

/// Keeps `pkt` (decoded from `frame`) for the shard; returns its index, or [`NO_PACKET`] if its
/// payload is not a part of `frame`.
fn keep_decoded(b: &mut Batch, pkt: &Packet<'_>, frame: &[u8]) -> u32 {
    let (payload, transport): (&[u8], Transport<'static>) = match pkt.transport {
        Transport::Tcp(t) => (t.payload, Transport::Tcp(with_tcp_payload(&t, &[]))),
        Transport::Udp(u) => (u.payload, Transport::Udp(decode::UdpDatagram { src_port: u.src_port, dst_port: u.dst_port, payload: &[] })),
        _ => return NO_PACKET,
    };
    // Where the payload starts in the frame: address arithmetic only, checked to lie inside.
    let (base, at) = (frame.as_ptr() as usize, payload.as_ptr() as usize);
    let off = if payload.is_empty() { Some(0) } else { at.checked_sub(base).filter(|o| o + payload.len() <= frame.len()) };
    let Some(off) = off else { return NO_PACKET };
    let (Ok(start), Ok(len), Ok(index)) = (u32::try_from(off), u32::try_from(payload.len()), u32::try_from(b.packets.len())) else {
        return NO_PACKET;
    };
    let packet = Packet { src: pkt.src, dst: pkt.dst, ip_len: pkt.ip_len, transport, vlan: pkt.vlan, tunnel: pkt.tunnel };
    b.packets.push(Decoded { packet, payload: (start, len) });
    index
}

/// The flow key of a TCP or UDP packet.
fn key_of(pkt: &Packet<'_>) -> Option<Key> {
    super::flow_key(pkt).map(|(k, _)| k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    #[test]
    fn an_item_stays_small() {
        assert!(std::mem::size_of::<Item>() <= 32, "{}", std::mem::size_of::<Item>());
    }

    #[test]
    fn both_directions_go_to_the_same_shard_and_shards_are_used() {
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "192.0.2.9".parse().unwrap();
        let mut used = [0usize; 4];
        for port in 40000..40400u16 {
            let (k1, _) = Key::new(a, port, b, 443, crate::flow::key::TCP);
            let (k2, _) = Key::new(b, 443, a, port, crate::flow::key::TCP);
            assert_eq!(shard_of(&k1, 4), shard_of(&k2, 4));
            used[shard_of(&k1, 4)] += 1;
        }
        assert!(used.iter().all(|n| *n > 50), "{used:?}");
        assert_eq!(shard_of(&Key::new(a, 1, b, 2, crate::flow::key::UDP).0, 1), 0);
    }
}
