//! Google QUIC before TLS: unprotected first packets and the CHLO message.
//!
//! Up to Q046 the client's first packets are not encrypted: after the header comes a 12-byte
//! message authentication hash (FNV-1a-128, truncated; not checked here) and gQUIC frames, the
//! CHLO travelling in STREAM frames of stream 1. Q050 encrypts its Initials like IETF QUIC but
//! still carries a CHLO, in CRYPTO frames. A CHLO is a tag-value map: the server name is tag `SNI`
//! and the user agent tag `UAID`.
//!
//! Packet layouts:
//!
//! ```text
//! Q043 and earlier (public header; client to server):
//!   flags | CID (8, if flags & 0x08) | version "Q0dd" (flags & 0x01) | packet number (1,2,4,6)
//!   | hash (12) | private flags (1, before Q034) | frames
//! Q046 (long header):
//!   flags (0xc0 | type << 4 | pn len - 1) | "Q046" | DCIL<<4 | SCIL (each 0 or len - 3)
//!   | DCID | SCID | packet number (1-4) | hash (12) | frames
//! STREAM frame (type 1fdooo ss): stream id (ss+1 bytes) | offset (0 or ooo+1 bytes)
//!   | data length (2 bytes, if d) | data           (integers little-endian before Q039)
//! CHLO: "CHLO" | entries (u16 LE) | padding (u16) | entries x (tag (4), end offset (u32 LE))
//!   | values
//! ```

use super::crypto_stream::MAX_CRYPTO_LEN;
use super::header::Reader;
use super::version::{google_version, Q046};
use super::GiveUp;

/// Message tag of a client hello.
pub(crate) const CHLO: &[u8; 4] = b"CHLO";
/// Tag of the server name (zero-padded to four bytes on the wire).
const TAG_SNI: &[u8; 4] = b"SNI\0";
/// Tag of the user agent id.
const TAG_UAID: &[u8; 4] = b"UAID";
/// Length of the truncated FNV-1a-128 hash in front of unencrypted gQUIC payloads.
const HASH_LEN: usize = 12;
/// Stream carrying the crypto handshake in gQUIC before Q048.
const CRYPTO_STREAM_ID: u64 = 1;
/// Most tag-value entries accepted in a CHLO. Chrome sends about 20; the bound keeps a hostile
/// entry count from claiming a header longer than any real message.
pub const MAX_CHLO_TAGS: usize = 128;

/// An unprotected gQUIC packet from the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Plain<'a> {
    /// Version field.
    pub version: u32,
    /// Frames after the hash (and private flags byte).
    pub frames: &'a [u8],
    /// Integers in frames are big-endian from Q039 on, little-endian before.
    pub big_endian: bool,
}

/// Parse a client packet of Q046 (long header) or of Q043 and earlier (public header with the
/// version flag). Returns `None` for anything else, including truncated packets.
pub(crate) fn plain(d: &[u8]) -> Option<Plain<'_>> {
    let mut r = Reader::new(d);
    let flags = r.u8()?;
    if flags & 0x80 != 0 {
        // Q046 long header.
        if r.u32()? != Q046 {
            return None;
        }
        let lens = r.u8()?;
        let cid_len = |n: u8| if n == 0 { 0 } else { usize::from(n) + 3 };
        r.take(cid_len(lens >> 4))?;
        r.take(cid_len(lens & 0x0f))?;
        r.take(usize::from(flags & 0x03) + 1)?;
        r.take(HASH_LEN)?;
        return Some(Plain {
            version: Q046,
            frames: d.get(r.pos()..)?,
            big_endian: true,
        });
    }
    // Public header: version flag set, reset flag clear.
    if flags & 0x01 == 0 || flags & 0x02 != 0 {
        return None;
    }
    // Peek at the version to learn how the CID length is encoded.
    let version_at = |cid: usize| -> Option<u32> {
        let b = d.get(1 + cid..)?.first_chunk::<4>()?;
        Some(u32::from_be_bytes(*b))
    };
    let cid_len = if flags & 0x08 != 0 { 8 } else { 0 };
    let version = version_at(cid_len)?;
    let number = google_version(version).filter(|&n| n <= 45)?;
    // Before Q033, bits 0x0c encoded the CID length (0, 1, 4, 8 bytes); from Q033, 0x08 means an
    // 8-byte CID and 0x04 a diversification nonce that only servers send.
    let cid_len = if number < 33 {
        match (flags >> 2) & 3 {
            0 => 0,
            1 => 1,
            2 => 4,
            _ => 8,
        }
    } else {
        cid_len
    };
    if version_at(cid_len)? != version {
        return None;
    }
    r.take(cid_len + 4)?;
    // Packet number length from bits 0x30: 1, 2, 4 or 6 bytes.
    r.take(match (flags >> 4) & 3 {
        0 => 1,
        1 => 2,
        2 => 4,
        _ => 6,
    })?;
    r.take(HASH_LEN)?;
    if number < 34 {
        r.u8()?; // private flags
    }
    Some(Plain {
        version,
        frames: d.get(r.pos()..)?,
        big_endian: number >= 39,
    })
}

/// Walk gQUIC frames, handing the offset and data of each STREAM frame on the crypto stream to
/// `on_data`. PADDING (0x00) ends the packet; PING (0x07) is skipped; any other non-STREAM frame
/// (ACK, STOP_WAITING, ...) ends the walk, as its length depends on state this reader lacks.
///
/// # Errors
/// Whatever `on_data` returns.
pub(crate) fn stream_frames(
    p: &Plain<'_>,
    mut on_data: impl FnMut(u64, &[u8]) -> Result<(), GiveUp>,
) -> Result<(), GiveUp> {
    let mut r = Reader::new(p.frames);
    let int = |r: &mut Reader<'_>, n: usize| if p.big_endian { r.be(n) } else { r.le(n) };
    while let Some(t) = r.u8() {
        if t == 0x07 {
            continue;
        }
        if t & 0x80 == 0 {
            break;
        }
        let id_len = usize::from(t & 0x03) + 1;
        let ooo = usize::from((t >> 2) & 0x07);
        let off_len = if ooo == 0 { 0 } else { ooo + 1 };
        let (Some(id), Some(offset)) = (int(&mut r, id_len), int(&mut r, off_len)) else {
            break;
        };
        let len = if t & 0x20 != 0 {
            match int(&mut r, 2) {
                Some(n) => n as usize,
                None => break,
            }
        } else {
            r.remaining()
        };
        let Some(data) = r.take(len) else { break };
        if id == CRYPTO_STREAM_ID {
            on_data(offset, data)?;
        }
    }
    Ok(())
}

/// Bytes before the tag table of a CHLO: `"CHLO" | entries (u16 LE) | padding (u16)`.
const HEAD_LEN: usize = 8;
/// Bytes per tag table entry: `tag (4) | end offset (u32 LE)`.
const ENTRY_LEN: usize = 8;

/// A tag table entry: the tag, and the offset within the values where its value ends.
fn entry(e: &[u8; ENTRY_LEN]) -> ([u8; 4], usize) {
    let [t0, t1, t2, t3, e0, e1, e2, e3] = *e;
    (
        [t0, t1, t2, t3],
        u32::from_le_bytes([e0, e1, e2, e3]) as usize,
    )
}

/// A CHLO all of whose bytes are in: header checked, tag table and values split apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChloMsg<'a> {
    /// The tag table ([`MAX_CHLO_TAGS`] entries at most).
    table: &'a [[u8; ENTRY_LEN]],
    /// The values, as long as the last entry's end offset.
    values: &'a [u8],
}

impl<'a> ChloMsg<'a> {
    /// The CHLO at the start of `prefix` (the contiguous bytes of a stream), or `Ok(None)` until
    /// its header, tag table and values are all in.
    ///
    /// # Errors
    /// [`GiveUp::NotClientHello`] when the message tag is not `CHLO`; [`GiveUp::BadChlo`] for more
    /// than [`MAX_CHLO_TAGS`] entries; [`GiveUp::TooLong`] above [`MAX_CRYPTO_LEN`].
    pub(crate) fn new(prefix: &'a [u8]) -> Result<Option<Self>, GiveUp> {
        let Some((head, rest)) = prefix.split_first_chunk::<HEAD_LEN>() else {
            return Ok(None);
        };
        let [m0, m1, m2, m3, n0, n1, _, _] = *head;
        if [m0, m1, m2, m3] != *CHLO {
            return Err(GiveUp::NotClientHello);
        }
        let n = usize::from(u16::from_le_bytes([n0, n1]));
        if n > MAX_CHLO_TAGS {
            return Err(GiveUp::BadChlo);
        }
        let Some((table, rest)) = rest.split_at_checked(ENTRY_LEN * n) else {
            return Ok(None);
        };
        let (table, _) = table.as_chunks::<ENTRY_LEN>();
        let values_len = table.last().map_or(0, |e| entry(e).1);
        let total = (HEAD_LEN + ENTRY_LEN * n).saturating_add(values_len);
        if total > MAX_CRYPTO_LEN {
            return Err(GiveUp::TooLong);
        }
        Ok(rest
            .get(..values_len)
            .map(|values| ChloMsg { table, values }))
    }

    /// Bytes in the whole message.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        HEAD_LEN + ENTRY_LEN * self.table.len() + self.values.len()
    }

    /// Read `SNI` and `UAID`.
    ///
    /// # Errors
    /// [`GiveUp::BadChlo`] when the end offsets decrease or overrun the values.
    pub(crate) fn parse(&self) -> Result<Chlo, GiveUp> {
        let mut out = Chlo::default();
        let mut start = 0usize;
        for e in self.table {
            let (tag, end) = entry(e);
            let value = self.values.get(start..end).ok_or(GiveUp::BadChlo)?;
            match &tag {
                TAG_SNI => out.sni = Some(value.to_vec()),
                TAG_UAID => out.user_agent = Some(value.to_vec()),
                _ => {}
            }
            start = end;
        }
        Ok(out)
    }
}

/// The fields of a CHLO the sensor reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Chlo {
    /// Value of the `SNI` tag.
    pub sni: Option<Vec<u8>>,
    /// Value of the `UAID` tag.
    pub user_agent: Option<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chlo(entries: &[(&[u8; 4], &[u8])]) -> Vec<u8> {
        let mut m = CHLO.to_vec();
        m.extend_from_slice(&(entries.len() as u16).to_le_bytes());
        m.extend_from_slice(&[0, 0]);
        let mut end = 0u32;
        for (tag, v) in entries {
            end += v.len() as u32;
            m.extend_from_slice(*tag);
            m.extend_from_slice(&end.to_le_bytes());
        }
        for (_, v) in entries {
            m.extend_from_slice(v);
        }
        m
    }

    #[test]
    fn chlo_tags() {
        let m = chlo(&[
            (b"PAD\0", &[0x2d; 5]),
            (TAG_SNI, b"example.com"),
            (TAG_UAID, b"Chrome/1"),
        ]);
        let msg = ChloMsg::new(&m).unwrap().unwrap();
        assert_eq!(msg.len(), m.len());
        assert_eq!(ChloMsg::new(&m[..10]), Ok(None));
        assert_eq!(ChloMsg::new(&m[..m.len() - 1]), Ok(None));
        let c = msg.parse().unwrap();
        assert_eq!(c.sni.as_deref(), Some(&b"example.com"[..]));
        assert_eq!(c.user_agent.as_deref(), Some(&b"Chrome/1"[..]));
        assert_eq!(ChloMsg::new(b"REJ\0\0\0\0\0"), Err(GiveUp::NotClientHello));
        let mut bad = m.clone();
        bad[12] = 0xff; // first end offset beyond the values
        let bad = ChloMsg::new(&bad).unwrap().unwrap();
        assert_eq!(bad.parse(), Err(GiveUp::BadChlo));
    }

    #[test]
    fn q046_stream_frame() {
        let m = chlo(&[(TAG_SNI, b"a.b")]);
        let mut d = vec![0xc3];
        d.extend_from_slice(b"Q046");
        d.push(0x50);
        d.extend_from_slice(&[1; 8]);
        d.extend_from_slice(&[0, 0, 0, 1]);
        d.extend_from_slice(&[0; HASH_LEN]);
        d.extend_from_slice(&[0xa0, 0x01]);
        d.extend_from_slice(&(m.len() as u16).to_be_bytes());
        d.extend_from_slice(&m);
        d.extend_from_slice(&[0; 20]);
        let p = plain(&d).unwrap();
        let mut got = Vec::new();
        stream_frames(&p, |o, data| {
            got.push((o, data.to_vec()));
            Ok(())
        })
        .unwrap();
        assert_eq!(got, vec![(0, m)]);
        for n in 0..d.len() {
            if let Some(p) = plain(&d[..n]) {
                stream_frames(&p, |_, _| Ok(())).unwrap();
            }
        }
    }
}
