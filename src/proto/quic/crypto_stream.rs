//! The client's CRYPTO stream: frames out of decrypted Initials, reassembled by offset.
//!
//! A ClientHello may be split over several CRYPTO frames, packets and datagrams, in any order and
//! with overlaps (RFC 9000 §19.6: CRYPTO frames carry an offset, and retransmissions may repeat
//! or re-split data). Chrome deliberately scatters small CRYPTO frames among PING and PADDING with
//! offsets out of order ("chaos protection"), and an evasive client can send one-byte frames in
//! any order (all even offsets, then all odd ones), so order of arrival means nothing here.
//!
//! Bounds are in bytes only: the buffer never grows beyond [`MAX_CRYPTO_LEN`], and which bytes
//! arrived is one bit per buffered byte, so any number of holes costs the same
//! ([`MAX_CRYPTO_LEN`] / 8 bytes at most). Data reaching beyond the bound is the only limit
//! ([`GiveUp::TooLong`]).

use super::header::Reader;
use super::version::Frames;
use super::GiveUp;

/// Most CRYPTO stream bytes kept per connection attempt, and so the longest handshake message
/// recovered.
///
/// Memory cost: up to this many bytes per attempt being read, plus one bit per byte for the map
/// of received bytes (2 KiB). Equal to `tls::MAX_HANDSHAKE_LEN`: a post-quantum ClientHello is
/// about 1.8 KB; 16 KiB leaves room for large PSK identities while stopping a client from making
/// the sensor buffer the 16 MiB a 24-bit length allows.
pub const MAX_CRYPTO_LEN: usize = crate::proto::tls::MAX_HANDSHAKE_LEN;

/// Bits per word of the received-bytes map.
const WORD_BITS: usize = u64::BITS as usize;

/// Frame types of RFC 9000 §19 that may appear in a client Initial and are walked over.
mod frame {
    pub const PADDING: u64 = 0x00;
    pub const PING: u64 = 0x01;
    pub const ACK: u64 = 0x02;
    pub const ACK_ECN: u64 = 0x03;
    pub const CRYPTO: u64 = 0x06;
    pub const CONNECTION_CLOSE: u64 = 0x1c;
    pub const CONNECTION_CLOSE_APP: u64 = 0x1d;
    /// Google QUIC (Q050, T05x) PING.
    pub const GOOGLE_PING: u8 = 0x07;
    /// Google QUIC (Q050, T05x) CRYPTO: varint offset, varint length, data.
    pub const GOOGLE_CRYPTO: u8 = 0x08;
}

/// Reassembly buffer for one connection attempt's CRYPTO stream.
#[derive(Debug, Default, Clone)]
pub(crate) struct CryptoStream {
    /// Bytes `0..buf.len()`; bytes not marked in `filled` are zero placeholders.
    buf: Vec<u8>,
    /// One bit per byte of `buf`: set when that byte was received.
    filled: Vec<u64>,
    /// Bytes `0..prefix` are all received.
    prefix: usize,
}

/// What one insert found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Insert {
    /// The data was new or repeated bytes already held.
    Fitted,
    /// Some bytes differed from bytes already received at the same offsets. RFC 9000 §2.2 and
    /// §19.6 forbid it, so it is a second, different hello under the same keys; the stream was
    /// restarted with this data.
    Conflict,
}

impl CryptoStream {
    /// Copy `data` in at `offset`.
    ///
    /// A byte that differs from one already received means the data is not a retransmission
    /// but another message: the stream forgets what it held, keeps this data, and says so.
    ///
    /// # Errors
    /// [`GiveUp::TooLong`] when the data reaches beyond [`MAX_CRYPTO_LEN`].
    pub(crate) fn insert(&mut self, offset: u64, data: &[u8]) -> Result<Insert, GiveUp> {
        self.insert_within(offset, data, MAX_CRYPTO_LEN)
    }

    /// [`CryptoStream::insert`] with the buffer bounded by `limit` bytes (at most
    /// [`MAX_CRYPTO_LEN`]): the caller shares one allowance among several streams.
    ///
    /// # Errors
    /// [`GiveUp::TooLong`] when the data reaches beyond `limit`.
    pub(crate) fn insert_within(
        &mut self,
        offset: u64,
        data: &[u8],
        limit: usize,
    ) -> Result<Insert, GiveUp> {
        if data.is_empty() {
            return Ok(Insert::Fitted);
        }
        let start = usize::try_from(offset).map_err(|_| GiveUp::TooLong)?;
        let end = start.checked_add(data.len()).ok_or(GiveUp::TooLong)?;
        if end > limit.min(MAX_CRYPTO_LEN) {
            return Err(GiveUp::TooLong);
        }
        let mut out = Insert::Fitted;
        if self.conflicts(start, data) {
            self.clear();
            out = Insert::Conflict;
        }
        if self.buf.len() < end {
            self.buf.resize(end, 0);
            self.filled.resize(end.div_ceil(WORD_BITS), 0);
        }
        // `buf` holds at least `end` bytes now: the range is always there.
        let Some(dst) = self.buf.get_mut(start..end) else {
            return Err(GiveUp::TooLong);
        };
        dst.copy_from_slice(data);
        self.mark(start, end);
        self.advance();
        Ok(out)
    }

    /// Does `data` at `start` disagree with a byte already received?
    fn conflicts(&self, start: usize, data: &[u8]) -> bool {
        let held = self.buf.get(start..).unwrap_or_default();
        held.iter()
            .zip(data)
            .enumerate()
            .any(|(i, (h, d))| self.has(start + i) && h != d)
    }

    /// Was byte `i` received?
    fn has(&self, i: usize) -> bool {
        self.filled
            .get(i / WORD_BITS)
            .is_some_and(|w| w >> (i % WORD_BITS) & 1 == 1)
    }

    /// Mark bytes `start..end` received, a word at a time.
    fn mark(&mut self, start: usize, end: usize) {
        let mut i = start;
        while i < end {
            let bit = i % WORD_BITS;
            let n = (WORD_BITS - bit).min(end - i);
            let mask = if n == WORD_BITS {
                u64::MAX
            } else {
                ((1u64 << n) - 1) << bit
            };
            if let Some(w) = self.filled.get_mut(i / WORD_BITS) {
                *w |= mask;
            }
            i += n;
        }
    }

    /// Move `prefix` over the received bytes that follow it.
    fn advance(&mut self) {
        while let Some(&word) = self.filled.get(self.prefix / WORD_BITS) {
            let bit = self.prefix % WORD_BITS;
            let run = ((!(word >> bit)).trailing_zeros() as usize).min(WORD_BITS - bit);
            self.prefix += run;
            if bit + run < WORD_BITS {
                break;
            }
        }
        self.prefix = self.prefix.min(self.buf.len());
    }

    /// Forget everything (Google QUIC re-bases on a repeated CHLO; a conflict restarts).
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.filled.clear();
        self.prefix = 0;
    }

    /// Release the buffer's memory (the attempt has its answer).
    pub(crate) fn release(&mut self) {
        *self = CryptoStream::default();
    }

    /// The bytes received contiguously from offset 0.
    pub(crate) fn contiguous(&self) -> &[u8] {
        // `prefix <= buf.len()` always (`advance` clamps it, `clear` zeroes both).
        self.buf.get(..self.prefix).unwrap_or_default()
    }

    /// Bytes buffered (received or not): what this stream counts against a shared allowance.
    pub(crate) fn len(&self) -> usize {
        self.buf.len()
    }

    /// Has any byte been received?
    pub(crate) fn is_empty(&self) -> bool {
        self.filled.iter().all(|&w| w == 0)
    }

    /// Heap bytes held.
    pub(crate) fn footprint(&self) -> usize {
        self.buf.capacity() + self.filled.capacity() * std::mem::size_of::<u64>()
    }
}

/// Walk the frames of a decrypted Initial payload, handing each CRYPTO frame's offset and data
/// to `on_crypto`.
///
/// IETF frames (RFC 9000 §19): PADDING, PING, ACK and ACK_ECN (§19.3, skipped range by range),
/// CRYPTO (§19.6), CONNECTION_CLOSE (§19.19). Any other type may not appear in an Initial
/// (RFC 9000 §12.4, Table 3) or cannot be skipped without knowing it, so it ends the walk of this
/// packet; so does a frame that runs past the payload. Google frames (Q050, T05x): PADDING 0x00,
/// PING 0x07, CRYPTO 0x08 with varint offset and length.
///
/// # Errors
/// Whatever `on_crypto` returns.
pub(crate) fn walk(
    kind: Frames,
    payload: &[u8],
    mut on_crypto: impl FnMut(u64, &[u8]) -> Result<(), GiveUp>,
) -> Result<(), GiveUp> {
    let mut r = Reader::new(payload);
    while r.remaining() > 0 {
        let step = match kind {
            Frames::Ietf => ietf_frame(&mut r),
            Frames::Google => google_frame(&mut r),
        };
        match step {
            Some(Some((offset, data))) => on_crypto(offset, data)?,
            Some(None) => {}
            None => break,
        }
    }
    Ok(())
}

/// One IETF frame: `Some(Some(crypto))`, `Some(None)` for a frame skipped, `None` to stop.
fn ietf_frame<'a>(r: &mut Reader<'a>) -> Option<Option<(u64, &'a [u8])>> {
    match r.varint()? {
        frame::PADDING | frame::PING => Some(None),
        t @ (frame::ACK | frame::ACK_ECN) => {
            let _largest = r.varint()?;
            let _delay = r.varint()?;
            let count = r.varint()?;
            let _first_range = r.varint()?;
            // Each further range is at least two bytes, so a lying count stops at the end.
            for _ in 0..count {
                r.varint()?;
                r.varint()?;
            }
            if t == frame::ACK_ECN {
                for _ in 0..3 {
                    r.varint()?;
                }
            }
            Some(None)
        }
        frame::CRYPTO => {
            let offset = r.varint()?;
            let len = usize::try_from(r.varint()?).ok()?;
            Some(Some((offset, r.take(len)?)))
        }
        t @ (frame::CONNECTION_CLOSE | frame::CONNECTION_CLOSE_APP) => {
            let _code = r.varint()?;
            if t == frame::CONNECTION_CLOSE {
                let _frame_type = r.varint()?;
            }
            let len = usize::try_from(r.varint()?).ok()?;
            r.take(len)?;
            Some(None)
        }
        _ => None,
    }
}

/// One Google QUIC frame of a protected Initial (Q050, T05x).
fn google_frame<'a>(r: &mut Reader<'a>) -> Option<Option<(u64, &'a [u8])>> {
    match r.u8()? {
        0x00 | frame::GOOGLE_PING => Some(None),
        frame::GOOGLE_CRYPTO => {
            let offset = r.varint()?;
            let len = usize::try_from(r.varint()?).ok()?;
            Some(Some((offset, r.take(len)?)))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_order_with_overlap() {
        let msg: Vec<u8> = (0u8..100).collect();
        let mut s = CryptoStream::default();
        s.insert(60, &msg[60..100]).unwrap();
        assert!(s.contiguous().is_empty());
        s.insert(10, &msg[10..30]).unwrap();
        s.insert(25, &msg[25..61]).unwrap();
        assert!(s.contiguous().is_empty());
        s.insert(0, &msg[0..12]).unwrap();
        assert_eq!(s.contiguous(), &msg[..]);
        assert_eq!(s.prefix, 100);
        assert_eq!(s.insert(0, &[]), Ok(Insert::Fitted));
        assert_eq!(s.insert(MAX_CRYPTO_LEN as u64, &[1]), Err(GiveUp::TooLong));
        assert_eq!(s.insert(u64::MAX, &[1]), Err(GiveUp::TooLong));
    }

    #[test]
    fn one_byte_pieces_even_then_odd_cost_only_bytes() {
        // 1,900 one-byte pieces: every even offset first (950 holes at once), then every odd one.
        let msg: Vec<u8> = (0..1900u32).map(|i| (i * 7 + 3) as u8).collect();
        let mut s = CryptoStream::default();
        for i in (0..msg.len()).step_by(2).chain((1..msg.len()).step_by(2)) {
            assert_eq!(s.insert(i as u64, &msg[i..=i]), Ok(Insert::Fitted));
        }
        assert_eq!(s.contiguous(), &msg[..]);
        assert!(s.footprint() <= msg.len().next_power_of_two() + msg.len() / 8 + 64);
        // The whole window, bit map included, stays within MAX_CRYPTO_LEN + MAX_CRYPTO_LEN / 8.
        let mut full = CryptoStream::default();
        for i in (0..MAX_CRYPTO_LEN).rev().step_by(3) {
            full.insert(i as u64, &[1]).unwrap();
        }
        assert!(full.buf.len() == MAX_CRYPTO_LEN && full.filled.len() == MAX_CRYPTO_LEN / 64);
    }

    #[test]
    fn conflicting_bytes_restart_the_stream() {
        let mut s = CryptoStream::default();
        s.insert(0, b"hello").unwrap();
        assert_eq!(s.insert(2, b"ll"), Ok(Insert::Fitted));
        assert_eq!(s.insert(3, b"p!"), Ok(Insert::Conflict));
        assert_eq!(s.contiguous(), b"");
        s.insert(0, b"hel").unwrap();
        assert_eq!(s.contiguous(), b"help!");
        s.release();
        assert!(s.is_empty() && s.footprint() == 0);
    }

    #[test]
    fn walks_ietf_frames() {
        // PING, ACK_ECN with one extra range, PADDING, CRYPTO(off 5, "hi"), CLOSE, CRYPTO(0, "x"),
        // then an unknown frame type that stops the walk before the last CRYPTO.
        let p = [
            0x01, 0x03, 0x05, 0x00, 0x01, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00, 0x06, 0x05,
            0x02, b'h', b'i', 0x1c, 0x00, 0x00, 0x01, b'r', 0x06, 0x00, 0x01, b'x', 0x1e, 0x06,
            0x00, 0x01, b'y',
        ];
        let mut got = Vec::new();
        walk(Frames::Ietf, &p, |o, d| {
            got.push((o, d.to_vec()));
            Ok(())
        })
        .unwrap();
        assert_eq!(got, vec![(5, b"hi".to_vec()), (0, b"x".to_vec())]);
        // Every truncation walks without panicking.
        for n in 0..p.len() {
            walk(Frames::Ietf, &p[..n], |_, _| Ok(())).unwrap();
        }
    }
}
