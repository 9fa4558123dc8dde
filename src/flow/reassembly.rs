//! Bounded reassembly of the first bytes of one TCP direction.
//!
//! The sensor only needs the start of each stream (a ClientHello, a ServerHello, an HTTP request
//! line). [`Stream`] rebuilds those bytes from segments that may arrive out of order, twice, or
//! overlapping, in pieces of any size (1-byte segments included), and stops at a fixed window.
//!
//! Every bound is in bytes, never in segments: the stream holds at most `limit` bytes (the
//! window), whatever arrives in it, in any order, is placed; a bitmap of one bit per window
//! byte says which bytes are present beyond the in-order prefix. A direction therefore costs at
//! most `limit + limit / 8` bytes while its flow is being identified (18 KiB for the default
//! 16 KiB window) and nothing afterwards (the engine drops the stream once the flow is
//! identified). A consumer that has read the leading bytes (TLS records already taken apart)
//! can [`Stream::consume`] them to slide the window; how far a direction is read in all is the
//! consumer's bound (`engine::MAX_PROBE_STREAM_BYTES`).
//!
//! ## Overlaps
//! A segment that overlaps bytes already held and carries **different** bytes is counted
//! (`inconsistent_overlaps`): the two ends of a TCP connection only ever retransmit the same
//! bytes, so a difference means something in the path, or someone, sent two versions. Which
//! version the receiver used depends on timing the sensor can see: bytes the peer has already
//! acknowledged were accepted, so they stay (first wins); bytes not yet acknowledged are
//! replaced by the later version (last wins), because the usual decoy is sent first and made
//! to miss the receiver (low TTL, bad checksum) with the real bytes right behind it. A
//! replacement is reported so the consumer reads the bytes again.
//!
//! ## Starting mid-connection
//! Without a SYN, the first data segment seen is taken as the start. If an earlier segment then
//! arrives (the first two segments of a capture swapped) and nothing was consumed yet, the
//! stream moves its start back to it, as long as everything still fits the window.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic))]

/// Default window of bytes held per direction (16 KiB: a post-quantum ClientHello is about
/// 1.8 KB, a ClientHello with many extensions rarely above 4 KB).
pub const DEFAULT_LIMIT: usize = 16 * 1024;

/// Bytes reserved beyond the first segment when a stream starts (one full Ethernet segment).
const INITIAL_EXTRA: usize = 1460;

/// Why reassembly of a direction stopped before its consumer was satisfied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GiveUp {
    /// Bytes are missing: the peer acknowledged data that was never captured, or the hole was
    /// never filled before the flow ended.
    Gap,
}

impl GiveUp {
    /// Label used in counters.
    pub fn as_str(self) -> &'static str {
        match self {
            GiveUp::Gap => "gap",
        }
    }
}

/// What a segment did to the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The in-order prefix grew, or bytes in it were replaced: read it again.
    Progress,
    /// Nothing new in order (duplicate, out of order, beyond the window, or empty).
    NoProgress,
    /// The stream cannot be completed.
    GaveUp(GiveUp),
}

/// The first bytes of one TCP direction, reassembled.
#[derive(Debug, Clone)]
pub struct Stream {
    /// Sequence number of `buf[0]`; `None` until the first SYN or data segment fixes it.
    base: Option<u32>,
    /// The start came from a SYN (it cannot move back).
    anchored: bool,
    /// Window bytes, from `base`; positions past `have` are valid only where `present` says.
    buf: Vec<u8>,
    /// Length of the in-order prefix of `buf`.
    have: usize,
    /// One bit per byte of `buf` beyond the prefix; empty while nothing arrived out of order.
    present: Vec<u64>,
    /// Bytes of `buf` the peer acknowledged.
    acked: usize,
    /// Bytes consumed before `buf[0]`.
    consumed: u64,
    limit: usize,
    /// Window offset of the sender's FIN (it takes one sequence number).
    fin: Option<usize>,
    /// Bytes were replaced since the consumer last asked ([`Stream::take_replaced`]).
    replaced: bool,
    /// Segments that disagreed with bytes already held.
    pub inconsistent_overlaps: u32,
}

impl Stream {
    /// An empty stream whose window is `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Stream {
            base: None,
            anchored: false,
            buf: Vec::new(),
            have: 0,
            present: Vec::new(),
            acked: 0,
            consumed: 0,
            limit,
            fin: None,
            replaced: false,
            inconsistent_overlaps: 0,
        }
    }

    /// Fixes the start of the stream from the sender's SYN: data begins at `isn + 1`.
    pub fn syn(&mut self, isn: u32) {
        if self.base.is_none() {
            self.base = Some(isn.wrapping_add(1));
            self.anchored = true;
        }
    }

    /// The window, in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Records the sequence number just past the sender's FIN, which the peer acknowledges
    /// without any byte being missing.
    pub fn fin(&mut self, end_seq: u32) {
        if let Some(base) = self.base {
            let off = end_seq.wrapping_sub(base) as i32;
            if off >= 0 {
                self.fin = Some(off as usize);
            }
        }
    }

    /// Whether the start of the stream is known from a SYN.
    pub fn is_anchored(&self) -> bool {
        self.anchored
    }

    /// The contiguous bytes reassembled so far, from the start of the window.
    pub fn data(&self) -> &[u8] {
        self.buf.get(..self.have).unwrap_or_default()
    }

    /// True once the in-order prefix fills the window.
    pub fn is_full(&self) -> bool {
        self.have >= self.limit
    }

    /// Stream offset just past the in-order prefix (bytes consumed included).
    pub fn position(&self) -> u64 {
        self.consumed + self.have as u64
    }

    /// Sequence number of the first byte of the window, if the start is known.
    pub fn start_seq(&self) -> Option<u32> {
        self.base
    }

    /// Whether bytes were replaced by a conflicting retransmission since the last call.
    pub fn take_replaced(&mut self) -> bool {
        std::mem::take(&mut self.replaced)
    }

    /// Stream offset (bytes consumed included) up to which the peer acknowledged.
    pub fn acked_position(&self) -> u64 {
        self.consumed + self.acked as u64
    }

    /// Forgets the first `n` bytes of the in-order prefix (the consumer has read them) and
    /// slides the window past them.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.have);
        if n == 0 {
            return;
        }
        self.buf.drain(..n);
        if !self.present.is_empty() {
            self.present = shifted_down(&self.present, n, self.buf.len());
        }
        self.have -= n;
        self.acked = self.acked.saturating_sub(n);
        self.fin = self.fin.map(|f| f.saturating_sub(n));
        self.consumed += n as u64;
        self.base = self.base.map(|b| b.wrapping_add(n as u32));
    }

    /// Adds a segment's payload starting at sequence number `seq`.
    pub fn segment(&mut self, seq: u32, payload: &[u8]) -> Outcome {
        if payload.is_empty() {
            return Outcome::NoProgress;
        }
        let base = *self.base.get_or_insert(seq);
        let mut off = seq.wrapping_sub(base) as i32 as i64;
        let mut payload = payload;
        if off < 0 {
            let back = off.unsigned_abs() as usize;
            if !self.anchored && self.consumed == 0 && back + self.buf.len() <= self.limit {
                self.rebase(back);
                off = 0;
            } else {
                // Bytes before the start (e.g. a retransmitted SYN payload): trim them.
                if back >= payload.len() {
                    return Outcome::NoProgress;
                }
                payload = payload.get(back..).unwrap_or_default();
                off = 0;
            }
        }
        let off = off as usize;
        if off >= self.limit {
            return Outcome::NoProgress;
        }
        let payload = payload.get(..payload.len().min(self.limit - off)).unwrap_or_default();
        let end = off + payload.len();
        let before = self.have;
        let replaced = self.place(off, payload);
        if end > self.have && self.buf.len() > self.have {
            self.advance();
        }
        if self.have > before || replaced {
            Outcome::Progress
        } else {
            Outcome::NoProgress
        }
    }

    /// Writes `payload` at window offset `off` (`off + len <= limit`); returns whether bytes of
    /// the in-order prefix were replaced.
    fn place(&mut self, off: usize, payload: &[u8]) -> bool {
        let end = off + payload.len();
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact((end + INITIAL_EXTRA).min(self.limit));
        }
        // Fast path: in order and nothing held beyond the prefix.
        if off == self.have && self.buf.len() == self.have {
            self.buf.extend_from_slice(payload);
            self.have = end;
            return false;
        }
        let mut replaced = false;
        let mut conflict = false;
        // The part overlapping the in-order prefix: every byte there is present.
        let overlap_end = end.min(self.have);
        // Both ranges exist: `off < overlap_end <= have <= buf.len()` and `overlap_end <= end`.
        let overlap = (self.buf.get_mut(off..overlap_end), payload.get(..overlap_end.saturating_sub(off)));
        if let (Some(held), Some(new)) = overlap {
            if held != new {
                conflict = true;
                // Bytes the peer acknowledged stay; the rest take the later version.
                let from = self.acked.max(off).min(overlap_end) - off;
                if let (Some(held), Some(new)) = (held.get_mut(from..), new.get(from..)) {
                    if held != new {
                        held.copy_from_slice(new);
                        replaced = true;
                    }
                }
            }
        }
        // The part beyond the prefix, byte by byte against the bitmap.
        let start = off.max(self.have);
        if start < end {
            if self.buf.len() < end {
                self.buf.resize(end, 0);
            }
            if self.present.len() * 64 < self.buf.len() {
                self.present.resize(self.buf.len().div_ceil(64), 0);
            }
            // `buf` holds `end` bytes and `present` a bit for each of them (both resized above).
            let held = self.buf.get_mut(start..end).unwrap_or_default();
            let new = payload.get(start - off..).unwrap_or_default();
            for ((i, slot), &b) in (start..).zip(held).zip(new) {
                let Some(word) = self.present.get_mut(i / 64) else { break };
                let bit = 1u64 << (i % 64);
                if *word & bit != 0 {
                    if *slot != b {
                        conflict = true;
                        *slot = b;
                    }
                } else {
                    *word |= bit;
                    *slot = b;
                }
            }
        }
        if conflict {
            self.inconsistent_overlaps = self.inconsistent_overlaps.saturating_add(1);
        }
        self.replaced |= replaced;
        replaced
    }

    /// Extends the in-order prefix over bytes that arrived out of order.
    fn advance(&mut self) {
        while self.have < self.buf.len() {
            let (w, bit) = (self.have / 64, 1u64 << (self.have % 64));
            if self.present.get(w).is_some_and(|word| word & bit != 0) {
                self.have += 1;
            } else {
                break;
            }
        }
        if self.have == self.buf.len() {
            self.present.clear();
        }
    }

    /// Moves the start `back` bytes earlier (a segment before the first one seen arrived).
    fn rebase(&mut self, back: usize) {
        let mut present = vec![0u64; (back + self.buf.len()).div_ceil(64)];
        for i in 0..self.buf.len() {
            let held = i < self.have || self.present.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0);
            if held {
                let j = i + back;
                // j < back + buf.len(), which `present` was sized for.
                if let Some(word) = present.get_mut(j / 64) {
                    *word |= 1 << (j % 64);
                }
            }
        }
        let mut buf = vec![0u8; back];
        buf.extend_from_slice(&self.buf);
        self.buf = buf;
        self.present = present;
        self.have = 0;
        self.acked = 0;
        self.fin = self.fin.map(|f| f + back);
        self.base = self.base.map(|b| b.wrapping_sub(back as u32));
    }

    /// Tells the stream that the peer acknowledged everything before `ack`.
    ///
    /// If the peer acknowledged bytes beyond the in-order prefix (and the prefix is not simply
    /// full), those bytes crossed the wire without being captured: the hole can never fill.
    pub fn peer_ack(&mut self, ack: u32) -> Outcome {
        let Some(base) = self.base else { return Outcome::NoProgress };
        let off = ack.wrapping_sub(base) as i32;
        if off <= 0 {
            return Outcome::NoProgress;
        }
        let off = off as usize;
        self.acked = self.acked.max(off.min(self.buf.len()));
        let fin_acked = self.fin.is_some_and(|f| f == self.have && off == f + 1);
        if off > self.have && !self.is_full() && !fin_acked {
            return Outcome::GaveUp(GiveUp::Gap);
        }
        Outcome::NoProgress
    }

    /// Bytes of memory held by this stream (for the engine's memory budget).
    pub fn footprint(&self) -> usize {
        self.buf.capacity() + self.present.capacity() * 8
    }
}

/// The bitmap `bits` with its first `n` bits removed, covering `len` bytes.
fn shifted_down(bits: &[u64], n: usize, len: usize) -> Vec<u64> {
    let mut out = vec![0u64; len.div_ceil(64)];
    for (j, word) in out.iter_mut().enumerate() {
        for b in 0..64 {
            let i = j * 64 + b + n;
            if bits.get(i / 64).is_some_and(|w| w & (1 << (i % 64)) != 0) {
                *word |= 1 << b;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::XorShift;

    #[test]
    fn in_order_segments_concatenate() {
        let mut s = Stream::new(64);
        s.syn(999);
        assert_eq!(s.segment(1000, b"hello "), Outcome::Progress);
        assert_eq!(s.segment(1006, b"world"), Outcome::Progress);
        assert_eq!(s.data(), b"hello world");
    }

    #[test]
    fn out_of_order_then_fill() {
        let mut s = Stream::new(64);
        s.syn(0);
        assert_eq!(s.segment(7, b"world"), Outcome::NoProgress);
        assert_eq!(s.segment(1, b"hello "), Outcome::Progress);
        assert_eq!(s.data(), b"hello world");
    }

    #[test]
    fn one_byte_segments_in_any_order_fill_the_window() {
        let text: Vec<u8> = (0..4000u32).map(|i| (i % 251) as u8).collect();
        let mut order: Vec<usize> = (0..text.len()).collect();
        let mut rng = XorShift(7);
        for i in (1..order.len()).rev() {
            order.swap(i, (rng.next() % (i as u64 + 1)) as usize);
        }
        let mut s = Stream::new(DEFAULT_LIMIT);
        s.syn(41);
        for i in order {
            s.segment(42 + i as u32, &text[i..=i]);
        }
        assert_eq!(s.data(), &text[..]);
        assert_eq!(s.inconsistent_overlaps, 0);
        assert!(s.footprint() <= DEFAULT_LIMIT + DEFAULT_LIMIT / 8 + INITIAL_EXTRA);
    }

    #[test]
    fn retransmission_and_overlap_before_ack_last_wins() {
        let mut s = Stream::new(64);
        s.syn(0);
        s.segment(1, b"abcdef");
        assert_eq!(s.segment(1, b"abcdef"), Outcome::NoProgress);
        assert_eq!(s.inconsistent_overlaps, 0);
        assert_eq!(s.segment(4, b"XYZghi"), Outcome::Progress);
        assert_eq!(s.data(), b"abcXYZghi");
        assert_eq!(s.inconsistent_overlaps, 1);
        assert!(s.take_replaced());
        assert!(!s.take_replaced());
    }

    #[test]
    fn acknowledged_bytes_stay_first_wins() {
        let mut s = Stream::new(64);
        s.syn(0);
        s.segment(1, b"abcdef");
        assert_eq!(s.peer_ack(5), Outcome::NoProgress);
        assert_eq!(s.acked_position(), 4);
        s.segment(1, b"XXXXXX");
        assert_eq!(s.data(), b"abcdXX", "acknowledged bytes kept, the rest replaced");
        assert_eq!(s.inconsistent_overlaps, 1);
    }

    #[test]
    fn conflict_beyond_the_prefix_is_counted() {
        let mut s = Stream::new(64);
        s.syn(0);
        s.segment(10, b"xyz");
        s.segment(10, b"xQz");
        assert_eq!(s.inconsistent_overlaps, 1);
        s.segment(1, b"012345678");
        assert_eq!(s.data(), b"012345678xQz");
    }

    #[test]
    fn window_is_enforced() {
        let mut s = Stream::new(8);
        s.syn(0);
        s.segment(1, b"0123456789");
        assert_eq!(s.data(), b"01234567");
        assert!(s.is_full());
        assert_eq!(s.segment(11, b"more"), Outcome::NoProgress);
        assert_eq!(s.peer_ack(100), Outcome::NoProgress, "a full stream has no gap");
    }

    #[test]
    fn consume_slides_the_window() {
        let mut s = Stream::new(8);
        s.syn(0);
        s.segment(1, b"01234567");
        assert!(s.is_full());
        assert_eq!(s.segment(12, b"BC"), Outcome::NoProgress, "beyond the window");
        s.consume(6);
        assert_eq!(s.data(), b"67");
        assert_eq!(s.position(), 8);
        assert_eq!(s.segment(12, b"BC"), Outcome::NoProgress, "inside the window now");
        assert_eq!(s.segment(9, b"89A"), Outcome::Progress);
        assert_eq!(s.data(), b"6789ABC");
        assert_eq!(s.start_seq(), Some(7));
    }

    #[test]
    fn data_in_syn_and_sequence_wrap() {
        let mut s = Stream::new(64);
        s.syn(u32::MAX);
        assert_eq!(s.segment(0, b"tfo"), Outcome::Progress);
        assert_eq!(s.segment(3, b"!"), Outcome::Progress);
        assert_eq!(s.data(), b"tfo!");
    }

    #[test]
    fn acked_hole_is_a_gap() {
        let mut s = Stream::new(64);
        s.syn(0);
        s.segment(1, b"abc");
        s.segment(10, b"xyz");
        assert_eq!(s.peer_ack(4), Outcome::NoProgress);
        assert_eq!(s.peer_ack(13), Outcome::GaveUp(GiveUp::Gap));
    }

    #[test]
    fn an_acknowledged_fin_is_no_gap() {
        let mut s = Stream::new(64);
        s.syn(0);
        s.segment(1, b"abc");
        s.fin(4);
        assert_eq!(s.peer_ack(5), Outcome::NoProgress);
        let mut s = Stream::new(64);
        s.syn(0);
        s.fin(1);
        assert_eq!(s.peer_ack(2), Outcome::NoProgress, "FIN without data");
        assert_eq!(s.peer_ack(3), Outcome::GaveUp(GiveUp::Gap));
    }

    #[test]
    fn midstream_start_moves_back_for_an_earlier_segment() {
        let mut s = Stream::new(64);
        assert_eq!(s.segment(123_456, b"world"), Outcome::Progress);
        assert_eq!(s.segment(123_450, b"hello "), Outcome::Progress);
        assert_eq!(s.data(), b"hello world");
        assert_eq!(s.start_seq(), Some(123_450));
    }

    #[test]
    fn anchored_start_does_not_move() {
        let mut s = Stream::new(64);
        s.syn(99);
        s.segment(100, b"GET /");
        assert_eq!(s.segment(94, b"xxxxxxGET /"), Outcome::NoProgress);
        assert_eq!(s.data(), b"GET /");
    }

    #[test]
    fn byte_soup_never_panics() {
        let mut rng = XorShift(3);
        for _ in 0..2000 {
            let mut s = Stream::new(1 + (rng.next() % 300) as usize);
            if rng.next().is_multiple_of(2) {
                s.syn(rng.next() as u32);
            }
            for _ in 0..20 {
                let len = (rng.next() % 80) as usize;
                let bytes: Vec<u8> = (0..len).map(|_| (rng.next() % 4) as u8).collect();
                match rng.next() % 4 {
                    0 => {
                        s.peer_ack(rng.next() as u32);
                    }
                    1 => s.consume((rng.next() % 50) as usize),
                    _ => {
                        let seq = s.start_seq().unwrap_or(0).wrapping_add((rng.next() % 400) as u32).wrapping_sub(100);
                        s.segment(seq, &bytes);
                    }
                }
                assert!(s.data().len() <= s.limit);
            }
        }
    }
}
