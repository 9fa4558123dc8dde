//! Bounded reassembly of the first bytes of one TCP direction.
//!
//! The sensor only needs the start of each stream (a ClientHello, a ServerHello, an HTTP request
//! line). [`Stream`] rebuilds those bytes from segments that may arrive out of order, twice, or
//! overlapping, and stops at a fixed limit. It never holds more than `limit` bytes in order plus
//! at most [`MAX_PENDING`] out-of-order segments (each cut to the limit), so a flow costs at most
//! about `2 × limit` bytes while it is being identified and nothing afterwards (the engine drops
//! the stream once the flow is identified).
//!
//! Overlaps keep the bytes that arrived first (the "first wins" policy of BSD stacks); a
//! retransmission that disagrees with what was kept is counted, since it may be an evasion attempt.

/// Default number of leading bytes reassembled per direction (16 KiB: a post-quantum ClientHello
/// is about 1.8 KB, a ClientHello with many extensions rarely above 4 KB).
pub const DEFAULT_LIMIT: usize = 16 * 1024;

/// Bytes reserved beyond the first segment when a stream starts (one full Ethernet segment).
const INITIAL_EXTRA: usize = 1460;

/// Out-of-order segments held at most per direction before giving up.
pub const MAX_PENDING: usize = 16;

/// Why reassembly of a direction stopped before its consumer was satisfied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GiveUp {
    /// Bytes are missing: the peer acknowledged data that was never captured, or the hole was
    /// never filled before the flow ended.
    Gap,
    /// More out-of-order segments than [`MAX_PENDING`] waited for a hole to fill.
    TooManyPending,
}

impl GiveUp {
    /// Label used in counters.
    pub fn as_str(self) -> &'static str {
        match self {
            GiveUp::Gap => "gap",
            GiveUp::TooManyPending => "too_many_pending",
        }
    }
}

/// What a segment did to the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// New bytes were appended to the in-order prefix.
    Progress,
    /// Nothing new in order (duplicate, out of order, beyond the limit, or empty).
    NoProgress,
    /// The stream cannot be completed.
    GaveUp(GiveUp),
}

/// The first bytes of one TCP direction, reassembled.
#[derive(Debug, Clone)]
pub struct Stream {
    /// Sequence number of `data[0]`; `None` until the first SYN or data segment fixes it.
    base: Option<u32>,
    data: Vec<u8>,
    /// Out-of-order segments: (offset from `base`, bytes).
    pending: Vec<(u32, Vec<u8>)>,
    limit: usize,
    /// Retransmitted bytes that differed from the bytes already kept.
    pub inconsistent_overlaps: u32,
}

impl Stream {
    /// An empty stream that keeps at most `limit` leading bytes.
    pub fn new(limit: usize) -> Self {
        Stream { base: None, data: Vec::new(), pending: Vec::new(), limit, inconsistent_overlaps: 0 }
    }

    /// Reserves room for the first segment's bytes plus a second full segment (a hello with a
    /// post-quantum key share spans two), so that the buffer is allocated once, not grown by
    /// doubling.
    fn reserve_first(&mut self, first: usize) {
        if self.data.capacity() == 0 {
            self.data.reserve_exact((first + INITIAL_EXTRA).min(self.limit));
        }
    }

    /// Fixes the start of the stream from the sender's SYN: data begins at `isn + 1`.
    pub fn syn(&mut self, isn: u32) {
        if self.base.is_none() {
            self.base = Some(isn.wrapping_add(1));
        }
    }

    /// The contiguous bytes reassembled so far, from the start of the stream.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// True once the in-order prefix holds `limit` bytes.
    pub fn is_full(&self) -> bool {
        self.data.len() >= self.limit
    }

    /// Sequence number just past the in-order prefix, if the start is known.
    fn next_seq(&self) -> Option<u32> {
        self.base.map(|b| b.wrapping_add(self.data.len() as u32))
    }

    /// Adds a segment's payload starting at sequence number `seq`.
    ///
    /// Without a SYN, the first data segment seen is taken as the start (a capture that began
    /// mid-connection); the consumer's parser then decides whether that start makes sense.
    pub fn segment(&mut self, seq: u32, payload: &[u8]) -> Outcome {
        if payload.is_empty() || self.is_full() {
            return Outcome::NoProgress;
        }
        let base = *self.base.get_or_insert(seq);
        let off = seq.wrapping_sub(base) as i32;
        // Trim what lies before the start of the stream (e.g. a retransmitted SYN payload).
        let (off, payload) = if off < 0 {
            let skip = off.unsigned_abs() as usize;
            if skip >= payload.len() {
                return Outcome::NoProgress;
            }
            (0u32, &payload[skip..])
        } else {
            (off as u32, payload)
        };
        let off = off as usize;
        if off >= self.limit {
            return Outcome::NoProgress;
        }
        let payload = &payload[..payload.len().min(self.limit - off)];
        self.reserve_first(off + payload.len());
        let have = self.data.len();
        if off > have {
            if self.pending.len() >= MAX_PENDING {
                return Outcome::GaveUp(GiveUp::TooManyPending);
            }
            self.pending.push((off as u32, payload.to_vec()));
            return Outcome::NoProgress;
        }
        if !self.merge(off, payload) {
            return Outcome::NoProgress;
        }
        self.drain_pending();
        Outcome::Progress
    }

    /// Merges bytes at `off <= data.len()`; returns whether the in-order prefix grew.
    fn merge(&mut self, off: usize, payload: &[u8]) -> bool {
        let have = self.data.len();
        let overlap = (have - off).min(payload.len());
        if self.data[off..off + overlap] != payload[..overlap] {
            self.inconsistent_overlaps = self.inconsistent_overlaps.saturating_add(1);
        }
        if payload.len() > overlap {
            let room = self.limit - have;
            let new = &payload[overlap..];
            self.data.extend_from_slice(&new[..new.len().min(room)]);
            true
        } else {
            false
        }
    }

    /// Moves pending segments that now touch the in-order prefix into it.
    fn drain_pending(&mut self) {
        loop {
            let have = self.data.len();
            let Some(i) = self.pending.iter().position(|(o, _)| *o as usize <= have) else {
                return;
            };
            let (o, bytes) = self.pending.swap_remove(i);
            self.merge(o as usize, &bytes);
        }
    }

    /// Tells the stream that the peer acknowledged everything before `ack`.
    ///
    /// If the peer acknowledged bytes beyond the in-order prefix (and the prefix is not simply
    /// full), those bytes crossed the wire without being captured: the hole can never fill.
    pub fn peer_ack(&mut self, ack: u32) -> Outcome {
        match self.next_seq() {
            Some(next) if !self.is_full() && (ack.wrapping_sub(next) as i32) > 0 => {
                Outcome::GaveUp(GiveUp::Gap)
            }
            _ => Outcome::NoProgress,
        }
    }

    /// Bytes of memory held by this stream (for accounting).
    pub fn footprint(&self) -> usize {
        self.data.capacity() + self.pending.iter().map(|(_, b)| b.capacity() + 8).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn retransmission_and_overlap_first_wins() {
        let mut s = Stream::new(64);
        s.syn(0);
        s.segment(1, b"abcdef");
        assert_eq!(s.segment(1, b"abcdef"), Outcome::NoProgress);
        assert_eq!(s.inconsistent_overlaps, 0);
        assert_eq!(s.segment(4, b"XYZghi"), Outcome::Progress);
        assert_eq!(s.data(), b"abcdefghi");
        assert_eq!(s.inconsistent_overlaps, 1);
    }

    #[test]
    fn limit_is_enforced() {
        let mut s = Stream::new(8);
        s.syn(0);
        s.segment(1, b"0123456789");
        assert_eq!(s.data(), b"01234567");
        assert!(s.is_full());
        assert_eq!(s.segment(11, b"more"), Outcome::NoProgress);
        assert_eq!(s.peer_ack(100), Outcome::NoProgress, "a full stream has no gap");
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
    fn pending_is_bounded() {
        let mut s = Stream::new(1 << 16);
        s.syn(0);
        for i in 0..MAX_PENDING as u32 {
            assert_eq!(s.segment(100 + i * 10, b"x"), Outcome::NoProgress);
        }
        assert_eq!(s.segment(5000, b"x"), Outcome::GaveUp(GiveUp::TooManyPending));
    }

    #[test]
    fn midstream_start_without_syn() {
        let mut s = Stream::new(64);
        assert_eq!(s.segment(123456, b"GET /"), Outcome::Progress);
        assert_eq!(s.data(), b"GET /");
        assert_eq!(s.segment(123450, b"xxxxxxGET /"), Outcome::NoProgress);
    }
}
