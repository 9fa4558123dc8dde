//! RTP and RTCP recognition (RFC 3550) over the first datagrams of an unknown UDP flow.
//!
//! Call media (WhatsApp, Signal, Teams, Discord, Zoom...) carries no name: once STUN or a
//! signalling channel has set it up, what remains is RTP and RTCP, usually SRTP/SRTCP
//! (RFC 3711), which encrypts the payload but keeps the 12-byte RTP header and the first 8 bytes
//! of an RTCP packet in clear. One datagram shaped like RTP proves nothing (a quarter of random
//! first bytes have version 2), so a direction is called media only after
//! [`MIN_CONSISTENT`] datagrams that agree: the same SSRC, and for RTP a sequence number that
//! moves forward by at most [`MAX_SEQ_STEP`]. RTCP is told from RTP by its packet type
//! (RFC 5761 §4: RTCP types 200–207 sit where RTP payload types 72–79 with the marker bit would,
//! which RTP never uses when both share a port) and must have a length that fits the datagram.
//!
//! [`Track`] is a few bytes of state per direction; it is fed at most [`MAX_DATAGRAMS`]
//! datagrams.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic))]

/// Agreeing datagrams of one direction needed to call it RTP/RTCP.
pub const MIN_CONSISTENT: u8 = 3;

/// Datagrams of one direction looked at, at most.
pub const MAX_DATAGRAMS: u8 = 16;

/// Largest forward step of the RTP sequence number between two datagrams seen (losses and
/// reordering in between; RFC 3550 Appendix A.1 uses a far larger dropout window for a stream
/// already known to be RTP, this one decides whether it is).
pub const MAX_SEQ_STEP: u16 = 16;

/// Fixed RTP header (RFC 3550 §5.1).
const RTP_HEADER: usize = 12;

/// RTCP packet types recognised: SR 200, RR 201, SDES 202, BYE 203, APP 204 (RFC 3550 §12.1),
/// RTPFB 205, PSFB 206 (RFC 4585), XR 207 (RFC 3611).
const RTCP_TYPES: std::ops::RangeInclusive<u8> = 200..=207;

/// One datagram read as RTP or RTCP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet {
    /// An RTP data packet.
    Rtp {
        /// Payload type (the codec, by profile or by signalling).
        pt: u8,
        /// Sequence number.
        seq: u16,
        /// Synchronisation source.
        ssrc: u32,
    },
    /// An RTCP packet (the first of a compound one).
    Rtcp {
        /// Packet type (200–207).
        pt: u8,
        /// Sender's SSRC.
        ssrc: u32,
    },
}

/// Reads the header of one datagram as RTP or RTCP; `None` when it cannot be either.
pub fn parse(p: &[u8]) -> Option<Packet> {
    let (&[b0, b1, s0, s1, x0, x1, x2, x3], _) = p.split_first_chunk::<8>()?;
    if b0 >> 6 != 2 {
        return None;
    }
    if RTCP_TYPES.contains(&b1) {
        // RTCP (RFC 3550 §6.4): length in 32-bit words minus one; the count field bounds it.
        let words = usize::from(u16::from_be_bytes([s0, s1])) + 1;
        let count = usize::from(b0 & 0x1f);
        let least = match b1 {
            200 => 7 + 6 * count,
            201 => 2 + 6 * count,
            _ => 2,
        };
        if words < least || words * 4 > p.len() {
            return None;
        }
        return Some(Packet::Rtcp { pt: b1, ssrc: u32::from_be_bytes([x0, x1, x2, x3]) });
    }
    let pt = b1 & 0x7f;
    // Payload types 72–76 are reserved so that RTP and RTCP can be told apart (RFC 3550 §12.1).
    if (72..=76).contains(&pt) {
        return None;
    }
    let csrcs = usize::from(b0 & 0x0f);
    let (header, rest) = p.split_first_chunk::<RTP_HEADER>()?;
    if rest.len() < csrcs * 4 {
        return None;
    }
    let [.., y0, y1, y2, y3] = *header;
    Some(Packet::Rtp { pt, seq: u16::from_be_bytes([s0, s1]), ssrc: u32::from_be_bytes([y0, y1, y2, y3]) })
}

/// What one direction of a flow has shown so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Track {
    /// SSRC of the run of agreeing datagrams.
    ssrc: u32,
    /// Last RTP sequence number of the run.
    seq: Option<u16>,
    /// Datagrams in the run (0: none yet).
    run: u8,
    /// Datagrams looked at.
    seen: u8,
}

/// The verdict on a direction after one more datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Not enough agreeing datagrams yet.
    Unsure,
    /// [`MIN_CONSISTENT`] datagrams agree: this direction carries RTP/RTCP.
    Media,
    /// [`MAX_DATAGRAMS`] looked at without agreement.
    No,
}

impl Track {
    /// Offers one datagram of this direction. A datagram that is neither RTP nor RTCP is passed
    /// over (keepalives and STUN consent checks interleave with media), and so is a copy of the
    /// last one; one that disagrees with the run starts a new run.
    pub fn push(&mut self, p: &[u8]) -> Verdict {
        if self.run >= MIN_CONSISTENT {
            return Verdict::Media;
        }
        if self.seen >= MAX_DATAGRAMS {
            return Verdict::No;
        }
        self.seen += 1;
        if let Some(pkt) = parse(p) {
            let (ssrc, seq) = match pkt {
                Packet::Rtp { seq, ssrc, .. } => (ssrc, Some(seq)),
                Packet::Rtcp { ssrc, .. } => (ssrc, None),
            };
            // The same packet again (a capture point that sees it twice, on the way in and out
            // of a router; a retransmission) neither agrees nor breaks the run.
            let duplicate = self.run > 0 && ssrc == self.ssrc && seq.is_some() && seq == self.seq;
            let agrees = !duplicate
                && self.run > 0
                && ssrc == self.ssrc
                && match (self.seq, seq) {
                    (Some(last), Some(now)) => (1..=MAX_SEQ_STEP).contains(&now.wrapping_sub(last)),
                    _ => true,
                };
            if agrees {
                self.run += 1;
                self.seq = seq.or(self.seq);
            } else if !duplicate {
                *self = Track { ssrc, seq, run: 1, seen: self.seen };
            }
        }
        match self.run {
            r if r >= MIN_CONSISTENT => Verdict::Media,
            _ if self.seen >= MAX_DATAGRAMS => Verdict::No,
            _ => Verdict::Unsure,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::XorShift;

    fn rtp(pt: u8, seq: u16, ssrc: u32, payload: usize) -> Vec<u8> {
        let mut p = vec![0x80, pt];
        p.extend(seq.to_be_bytes());
        p.extend(0x1234_5678u32.to_be_bytes());
        p.extend(ssrc.to_be_bytes());
        p.extend(std::iter::repeat_n(0xa5, payload));
        p
    }

    /// Receiver report (PT 201) with one report block, as in Discord's capture, plus an
    /// encrypted trailer.
    fn rr(ssrc: u32) -> Vec<u8> {
        let mut p = vec![0x81, 201, 0, 7];
        p.extend(ssrc.to_be_bytes());
        p.extend([0x5a; 24 + 20]);
        p
    }

    #[test]
    fn headers() {
        assert_eq!(parse(&rtp(111, 7, 9, 20)), Some(Packet::Rtp { pt: 111, seq: 7, ssrc: 9 }));
        assert_eq!(parse(&rtp(0x80 | 96, 7, 9, 20)), Some(Packet::Rtp { pt: 96, seq: 7, ssrc: 9 }), "marker bit");
        assert_eq!(parse(&rr(0x0016_2ffd)), Some(Packet::Rtcp { pt: 201, ssrc: 0x0016_2ffd }));
        // Sender report with no report block: 7 words.
        let mut sr = vec![0x80, 200, 0, 6, 0, 0, 0, 1];
        sr.extend([0; 20]);
        assert_eq!(parse(&sr), Some(Packet::Rtcp { pt: 200, ssrc: 1 }));
        assert_eq!(parse(&sr[..27]), None, "length beyond the datagram");
        sr[0] = 0x81;
        assert_eq!(parse(&sr), None, "one report block claimed, none fits the length");
        assert_eq!(parse(&rtp(111, 7, 9, 0)[..11]), None, "short header");
        let mut v1 = rtp(111, 7, 9, 20);
        v1[0] = 0x40;
        assert_eq!(parse(&v1), None, "version 1");
        assert_eq!(parse(&rtp(73, 7, 9, 20)), None, "reserved payload type");
        assert_eq!(parse(&rtp(0x80 | 72, 7, 9, 20)), Some(Packet::Rtcp { pt: 200, ssrc: 0x1234_5678 }), "where RTCP's types sit");
        let mut csrc = rtp(8, 1, 2, 4);
        csrc[0] = 0x82;
        assert_eq!(parse(&csrc), None, "two CSRCs claimed, one fits");
    }

    #[test]
    fn a_stream_is_media_after_three_agreeing_datagrams() {
        let mut t = Track::default();
        assert_eq!(t.push(&rtp(111, 65534, 0xdead, 60)), Verdict::Unsure);
        assert_eq!(t.push(&[0x13, 0x37, 0xca, 0xfe, 1, 0, 0, 0]), Verdict::Unsure, "keepalive passed over");
        assert_eq!(t.push(&rtp(111, 65535, 0xdead, 60)), Verdict::Unsure);
        assert_eq!(t.push(&rtp(111, 2, 0xdead, 60)), Verdict::Media, "sequence wraps, one loss");
        assert_eq!(t.push(b"anything"), Verdict::Media);

        // RTCP alone: the same sender SSRC three times.
        let mut t = Track::default();
        for want in [Verdict::Unsure, Verdict::Unsure, Verdict::Media] {
            assert_eq!(t.push(&rr(0x0016_2ffd)), want);
        }
        // RTP and RTCP of one sender on one port (RFC 5761).
        let mut t = Track::default();
        t.push(&rtp(96, 10, 5, 100));
        t.push(&rr(5));
        assert_eq!(t.push(&rtp(96, 11, 5, 100)), Verdict::Media);
    }

    #[test]
    fn a_stream_seen_twice_per_packet_is_media() {
        // A capture on both links of a router: every packet twice, in order.
        let mut t = Track::default();
        let v: Vec<Verdict> = [1u16, 1, 2, 2, 3].iter().map(|&q| t.push(&rtp(111, q, 7, 40))).collect();
        assert_eq!(v, [Verdict::Unsure, Verdict::Unsure, Verdict::Unsure, Verdict::Unsure, Verdict::Media]);
    }

    #[test]
    fn disagreeing_datagrams_are_not_media() {
        // SSRC changes every time.
        let mut t = Track::default();
        for i in 0..MAX_DATAGRAMS as u16 {
            let want = if i + 1 == MAX_DATAGRAMS as u16 { Verdict::No } else { Verdict::Unsure };
            assert_eq!(t.push(&rtp(0, i, u32::from(i), 10)), want);
        }
        assert_eq!(t.push(&rtp(0, 99, 99, 10)), Verdict::No, "bounded");
        // Constant sequence number (a fixed header, e.g. QUIC's version in a long header whose
        // fixed bit is greased to 0).
        let mut t = Track::default();
        let mut quic = vec![0x80, 0x00, 0x00, 0x01, 0x08];
        quic.extend([0x77; 40]);
        for _ in 0..4 {
            assert_eq!(t.push(&quic), Verdict::Unsure);
        }
        // Sequence jumps further than MAX_SEQ_STEP or backwards.
        let mut t = Track::default();
        for seq in [100, 200, 300, 250] {
            assert_eq!(t.push(&rtp(0, seq, 1, 10)), Verdict::Unsure);
        }
    }

    #[test]
    fn other_protocols_are_not_rtp() {
        // QUIC short header (0b01xx_xxxx) and long header (0b11xx_xxxx): not version 2.
        let mut t = Track::default();
        for first in [0x43u8, 0xc3] {
            let mut p = vec![first];
            p.extend([0x11; 40]);
            assert_eq!(parse(&p), None);
            t.push(&p);
        }
        // A DNS query (ID, flags 0x0100): first byte of a random ID may have version 2, the
        // rest never agrees.
        let dns = |id: u16| {
            let mut q = id.to_be_bytes().to_vec();
            q.extend([0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 7]);
            q.extend(b"example\x03com\x00\x00\x01\x00\x01");
            q
        };
        let mut t = Track::default();
        for id in [0x8001, 0x9abc, 0xb00f, 0x8123] {
            assert_ne!(t.push(&dns(id)), Verdict::Media);
        }
        // Random datagrams never make media and never panic.
        let mut rng = XorShift(7);
        for _ in 0..2000 {
            let mut t = Track::default();
            for _ in 0..MAX_DATAGRAMS {
                let len = (rng.next() % 200) as usize;
                let p: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                let _ = parse(&p);
                assert_ne!(t.push(&p), Verdict::Media);
            }
        }
    }
}
