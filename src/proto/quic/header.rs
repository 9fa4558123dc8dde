//! QUIC long headers (RFC 9000 §17.2, RFC 8999 §5.1) and the integer encodings inside them.
//!
//! Length contract: every reader here takes the whole rest of a UDP payload, checks each length
//! before slicing, and returns `None` rather than reading past the end. Nothing allocates.
//!
//! Long header layout (RFC 9000 §17.2), with named offsets below:
//!
//! ```text
//! 0      1           5         6         6+d       7+d       7+d+s
//! | flags | version  | dcid len | dcid ... | scid len | scid ... | type-specific fields
//! ```

/// Named field offsets of the long header (RFC 9000 §17.2).
pub(crate) mod field {
    /// First byte: header form (0x80), fixed bit (0x40), type (0x30), type-specific (0x0f).
    pub const FLAGS: usize = 0;
    /// Version, 32-bit big-endian.
    pub const VERSION: usize = 1;
    /// Destination Connection ID length (one byte).
    pub const DCID_LEN: usize = 5;
    /// First byte of the Destination Connection ID.
    pub const DCID: usize = 6;
}

/// Header form bit: set for long headers (RFC 9000 §17.2).
pub(crate) const FORM_LONG: u8 = 0x80;
/// Fixed bit (RFC 9000 §17.2); always set in v1 packets other than Version Negotiation.
pub(crate) const FIXED_BIT: u8 = 0x40;
/// Longest connection ID a v1 or v2 long header may carry (RFC 9000 §17.2).
pub(crate) const MAX_CID_LEN: usize = 20;

/// A cursor over bytes that never reads past the end.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Start at the first byte of `buf`.
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes consumed so far.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes left.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let out = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(out)
    }

    /// One byte.
    pub(crate) fn u8(&mut self) -> Option<u8> {
        self.take(1).and_then(|b| b.first().copied())
    }

    /// Big-endian unsigned integer of `n` bytes (0 to 8).
    pub(crate) fn be(&mut self, n: usize) -> Option<u64> {
        if n > 8 {
            return None;
        }
        Some(
            self.take(n)?
                .iter()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
        )
    }

    /// Little-endian unsigned integer of `n` bytes (0 to 8).
    pub(crate) fn le(&mut self, n: usize) -> Option<u64> {
        if n > 8 {
            return None;
        }
        Some(
            self.take(n)?
                .iter()
                .rev()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b)),
        )
    }

    /// Big-endian u32.
    pub(crate) fn u32(&mut self) -> Option<u32> {
        self.be(4).map(|v| v as u32)
    }

    /// Variable-length integer (RFC 9000 §16): the two high bits of the first byte give the
    /// length (1, 2, 4 or 8 bytes), the rest is the big-endian value.
    pub(crate) fn varint(&mut self) -> Option<u64> {
        let first = *self.buf.get(self.pos)?;
        let len = 1usize << (first >> 6);
        let (_, rest) = self.take(len)?.split_first()?;
        Some(
            rest.iter()
                .fold(u64::from(first & 0x3f), |v, &b| (v << 8) | u64::from(b)),
        )
    }
}

/// The version-independent part of a long header (RFC 8999 §5.1) plus the offset where the
/// version-specific part starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Long<'a> {
    /// First byte as on the wire (its low bits may still be header-protected).
    pub flags: u8,
    /// Version field.
    pub version: u32,
    /// Destination Connection ID.
    pub dcid: &'a [u8],
    /// Source Connection ID.
    pub scid: &'a [u8],
    /// Offset of the first byte after the Source Connection ID.
    pub rest: usize,
}

impl<'a> Long<'a> {
    /// Parse the invariant fields of a long header with one length byte per connection ID.
    ///
    /// Returns `None` if the header form bit is clear, the bytes end early, or a connection ID
    /// is longer than [`MAX_CID_LEN`] (allowed by RFC 8999 for future versions, but by no version
    /// this reader opens; Version Negotiation is checked by the caller before it matters).
    pub(crate) fn parse(d: &'a [u8]) -> Option<Long<'a>> {
        let flags = *d.get(field::FLAGS)?;
        if flags & FORM_LONG == 0 {
            return None;
        }
        let mut r = Reader::new(d);
        r.take(field::VERSION)?;
        let version = r.u32()?;
        debug_assert_eq!(r.pos(), field::DCID_LEN);
        let dcid_len = usize::from(r.u8()?);
        debug_assert_eq!(r.pos(), field::DCID);
        let dcid = r.take(dcid_len)?;
        let scid_len = usize::from(r.u8()?);
        let scid = r.take(scid_len)?;
        if dcid.len() > MAX_CID_LEN || scid.len() > MAX_CID_LEN {
            return None;
        }
        Some(Long {
            flags,
            version,
            dcid,
            scid,
            rest: r.pos(),
        })
    }

    /// The long packet type bits (0x30 of the first byte), not header-protected.
    pub(crate) fn type_bits(&self) -> u8 {
        (self.flags >> 4) & 0x03
    }

    /// For an Initial packet (RFC 9000 §17.2.2) at the start of `d`: skip Token Length and
    /// Token, read Length. Returns the offset of the Packet Number field and the packet itself:
    /// `d` up to the end its Length field gives (the coalesced packets after it are not in it).
    /// `None` when `d` ends before that.
    pub(crate) fn initial_packet<'d>(&self, d: &'d [u8]) -> Option<(usize, &'d [u8])> {
        let mut r = Reader::new(d.get(self.rest..)?);
        let token_len = usize::try_from(r.varint()?).ok()?;
        r.take(token_len)?;
        self.packet_after(d, r)
    }

    /// For 0-RTT and Handshake packets (RFC 9000 §17.2.3, §17.2.4): read Length. Returns what
    /// [`Long::initial_packet`] returns.
    pub(crate) fn other_packet<'d>(&self, d: &'d [u8]) -> Option<(usize, &'d [u8])> {
        let r = Reader::new(d.get(self.rest..)?);
        self.packet_after(d, r)
    }

    fn packet_after<'d>(&self, d: &'d [u8], mut r: Reader<'_>) -> Option<(usize, &'d [u8])> {
        let len = usize::try_from(r.varint()?).ok()?;
        let pn_offset = self.rest + r.pos();
        let end = pn_offset.checked_add(len)?;
        Some((pn_offset, d.get(..end)?))
    }
}

/// Recover a full packet number from its truncated form (RFC 9000 §17.1, Appendix A.3), given
/// the largest packet number successfully processed so far in this space.
pub(crate) fn decode_pn(largest: Option<u64>, truncated: u32, pn_len: usize) -> u64 {
    let expected = largest.map_or(0, |l| l.saturating_add(1));
    let win = 1u64 << (8 * pn_len.clamp(1, 4));
    let hwin = win / 2;
    let mask = win - 1;
    let candidate = (expected & !mask) | u64::from(truncated);
    if candidate.saturating_add(hwin) <= expected && candidate < (1u64 << 62) - win {
        candidate + win
    } else if candidate > expected.saturating_add(hwin) && candidate >= win {
        candidate - win
    } else {
        candidate
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_rfc9000_a1() {
        // RFC 9000 Appendix A.1 examples.
        let cases: [(&[u8], u64); 4] = [
            (
                &[0xc2, 0x19, 0x7c, 0x5e, 0xff, 0x14, 0xe8, 0x8c],
                151_288_809_941_952_652,
            ),
            (&[0x9d, 0x7f, 0x3e, 0x7d], 494_878_333),
            (&[0x7b, 0xbd], 15_293),
            (&[0x25], 37),
        ];
        for (bytes, v) in cases {
            let mut r = Reader::new(bytes);
            assert_eq!(r.varint(), Some(v));
            assert_eq!(r.remaining(), 0);
        }
        assert_eq!(Reader::new(&[0x40]).varint(), None);
        assert_eq!(Reader::new(&[]).varint(), None);
    }

    #[test]
    fn packet_numbers_rfc9000_a3() {
        // RFC 9000 Appendix A.3 example.
        assert_eq!(decode_pn(Some(0xa82f_30ea), 0x9b32, 2), 0xa82f_9b32);
        assert_eq!(decode_pn(None, 2, 4), 2);
        assert_eq!(decode_pn(Some(0xff), 0x01, 1), 0x101);
    }

    #[test]
    fn long_header_bounds() {
        // Initial, v1, dcid 2 bytes, scid 0, token 1 byte, length 3.
        let d = [
            0xc0, 0, 0, 0, 1, 2, 0xaa, 0xbb, 0, 1, 0x77, 3, 9, 9, 9, 0xff,
        ];
        let h = Long::parse(&d).unwrap();
        assert_eq!((h.version, h.dcid, h.scid), (1, &[0xaa, 0xbb][..], &[][..]));
        assert_eq!(h.initial_packet(&d), Some((12, &d[..15])));
        assert_eq!(h.initial_packet(&d[..14]), None);
        assert_eq!(Long::parse(&d[..7]), None);
        let mut long_cid = [0u8; 40];
        long_cid[0] = 0xc0;
        long_cid[5] = 21;
        assert_eq!(Long::parse(&long_cid), None);
    }
}
