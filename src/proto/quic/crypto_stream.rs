//! The client's CRYPTO stream: frames out of decrypted Initials, reassembled by offset.
//!
//! A ClientHello may be split over several CRYPTO frames, packets and datagrams, in any order and
//! with overlaps (RFC 9000 §19.6: CRYPTO frames carry an offset, and retransmissions may repeat
//! or re-split data). Chrome deliberately scatters small CRYPTO frames among PING and PADDING with
//! offsets out of order ("chaos protection"), so order of arrival means nothing here.
//!
//! Bounds: the buffer never grows beyond [`MAX_CRYPTO_LEN`] and the set of filled ranges never
//! holds more than [`MAX_RANGES`] entries; both limits end the flow with a [`GiveUp`].

use super::header::Reader;
use super::version::Frames;
use super::GiveUp;

/// Most CRYPTO stream bytes kept per flow, and so the longest handshake message recovered.
///
/// Memory cost: up to this many bytes per flow being read. Equal to `tls::MAX_HANDSHAKE_LEN`:
/// a post-quantum ClientHello is about 1.8 KB; 16 KiB leaves room for large PSK identities while
/// stopping a client from making the sensor buffer the 16 MiB a 24-bit length allows.
pub const MAX_CRYPTO_LEN: usize = crate::proto::tls::MAX_HANDSHAKE_LEN;

/// Most disjoint filled ranges tracked while holes remain (8 bytes each).
///
/// Chrome's chaos protection splits a ClientHello into a handful of frames; 64 holes at once
/// means frames far smaller than any real client sends.
pub const MAX_RANGES: usize = 64;

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

/// Reassembly buffer for one flow's CRYPTO stream.
#[derive(Debug, Default, Clone)]
pub(crate) struct CryptoStream {
    /// Bytes `0..buf.len()`; bytes outside `ranges` are zero placeholders.
    buf: Vec<u8>,
    /// Filled ranges, sorted, disjoint and not touching.
    ranges: Vec<(usize, usize)>,
}

impl CryptoStream {
    /// Copy `data` in at `offset`. Overlapping bytes are overwritten: RFC 9000 §2.2 requires
    /// retransmitted stream data to be identical.
    ///
    /// # Errors
    /// [`GiveUp::TooLong`] when the data reaches beyond [`MAX_CRYPTO_LEN`];
    /// [`GiveUp::TooFragmented`] when more than [`MAX_RANGES`] holes would be tracked.
    pub(crate) fn insert(&mut self, offset: u64, data: &[u8]) -> Result<(), GiveUp> {
        if data.is_empty() {
            return Ok(());
        }
        let start = usize::try_from(offset).map_err(|_| GiveUp::TooLong)?;
        let end = start.checked_add(data.len()).ok_or(GiveUp::TooLong)?;
        if end > MAX_CRYPTO_LEN {
            return Err(GiveUp::TooLong);
        }
        if self.buf.len() < end {
            self.buf.resize(end, 0);
        }
        self.buf[start..end].copy_from_slice(data);
        // Merge [start, end) into the sorted range list.
        let first = self.ranges.partition_point(|&(_, e)| e < start);
        let mut last = first;
        let (mut s, mut e) = (start, end);
        while let Some(&(rs, re)) = self.ranges.get(last) {
            if rs > e {
                break;
            }
            s = s.min(rs);
            e = e.max(re);
            last += 1;
        }
        self.ranges.splice(first..last, [(s, e)]);
        if self.ranges.len() > MAX_RANGES {
            return Err(GiveUp::TooFragmented);
        }
        Ok(())
    }

    /// Re-base: forget everything and treat `offset` as the new stream start (used for Google
    /// QUIC, where a repeated CHLO starts at a later stream offset).
    pub(crate) fn clear(&mut self) {
        self.buf.clear();
        self.ranges.clear();
    }

    /// Release the buffer's memory (the flow has its answer).
    pub(crate) fn release(&mut self) {
        self.buf = Vec::new();
        self.ranges = Vec::new();
    }

    /// The bytes filled contiguously from offset 0.
    pub(crate) fn contiguous(&self) -> &[u8] {
        match self.ranges.first() {
            Some(&(0, e)) => &self.buf[..e],
            _ => &[],
        }
    }

    /// Has any byte been received?
    pub(crate) fn is_empty(&self) -> bool {
        self.ranges.is_empty()
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
        assert_eq!(s.ranges, vec![(0, 100)]);
        s.insert(0, &[]).unwrap();
        assert_eq!(s.insert(MAX_CRYPTO_LEN as u64, &[1]), Err(GiveUp::TooLong));
        assert_eq!(s.insert(u64::MAX, &[1]), Err(GiveUp::TooLong));
    }

    #[test]
    fn too_many_holes() {
        let mut s = CryptoStream::default();
        for i in 0..MAX_RANGES {
            s.insert(1 + 2 * i as u64, &[7]).unwrap();
        }
        assert_eq!(s.insert(1000, &[7]), Err(GiveUp::TooFragmented));
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
