//! Sans-IO reader of the client's QUIC Initial packets: UDP payloads of one flow in, the TLS
//! ClientHello (or Google QUIC CHLO) out.
//!
//! QUIC carries the TLS handshake in CRYPTO frames inside Initial packets (RFC 9001 §4). Those
//! packets are protected, but with keys derived from the client's Destination Connection ID and
//! a salt published for each version (RFC 9001 §5.2), so a passive observer can open them exactly
//! as the server does. The recovered ClientHello is the same handshake message a TCP flow carries
//! after record defragmentation, so SNI, ALPN and JA4 (with the `q` prefix) come from
//! [`crate::proto::tls::ClientHello::parse`] unchanged.
//!
//! Data path of [`Initials::client_datagram`]:
//!
//! ```text
//! UDP payload ── coalesced packets (RFC 9000 §12.2) ──> long header (header.rs)
//!   ── version (version.rs): salt, labels, type bits
//!   ── keys per DCID, cached (keys.rs) ── header protection off (RFC 9001 §5.4)
//!   ── AES-128-GCM open (§5.3) ── frames (RFC 9000 §19) ── CRYPTO reassembly (crypto_stream.rs)
//!   ── complete handshake message at offset 0 ──> Progress::ClientHello
//! Google QUIC Q046 and earlier: plaintext STREAM frames ── CHLO tags (gquic.rs)
//!   ──> Progress::GoogleChlo
//! ```
//!
//! Versions read: v1 (RFC 9000/9001), v2 (RFC 9369), IETF drafts 22 to 34, Facebook mvfst
//! (`0xfaceb001`, `0xfaceb002`, `0xfaceb00e`), Google Q050 (CHLO), T050 and T051 (TLS) with
//! Chromium's salts, and the unprotected Google versions Q046 and Q043 and earlier. Other
//! recognisable QUIC versions (drafts before 22, other mvfst versions, Q044/Q045/Q048, ...)
//! end the flow with [`GiveUp::UnsupportedVersion`].
//!
//! Guarantees: no panic on any input; per-flow memory is bounded by the named constants below
//! and released as soon as the flow has its answer; keys are derived once per DCID; nothing here
//! touches sockets, files or clocks.

mod crypto_stream;
mod gquic;
mod header;
mod keys;
mod version;

use std::ops::Range;

pub use crypto_stream::{MAX_CRYPTO_LEN, MAX_RANGES};
pub use gquic::MAX_CHLO_TAGS;
pub use version::{
    version_str, DRAFT_FIRST, DRAFT_LAST, MVFST_22, MVFST_27, MVFST_EXP, NEGOTIATION, Q046, Q050,
    T050, T051, V1, V2,
};

use crypto_stream::CryptoStream;
use header::{decode_pn, Long, FIXED_BIT, MAX_CID_LEN};
use keys::Keys;
use version::{classify, Handshake, Kind, Protected};

use crate::proto::tls::{HANDSHAKE_CLIENT_HELLO, HANDSHAKE_HEADER_LEN};

/// Most client Initial (or unprotected gQUIC) packets read per flow before giving up.
///
/// A ClientHello fits in one to three Initials; retransmissions, ACK-only Initials and a Retry
/// or Version Negotiation round add a few. Each packet costs one AES-GCM open of about 1.2 KB.
pub const MAX_INITIAL_PACKETS: u16 = 16;

/// Most (version, DCID) key sets cached per flow: the original DCID, one after Retry, one per
/// version after Version Negotiation, and the server-chosen DCID that later Initials carry while
/// still protected with the original keys (RFC 9001 §5.2). About 1 KiB each.
pub const MAX_KEY_SLOTS: usize = 4;

/// Initials that fail to decrypt before the flow is given up (corrupt packets, or keys this
/// reader cannot derive). Each failure costs one key derivation and at most
/// [`MAX_KEY_SLOTS`] AES-GCM attempts.
pub const MAX_DECRYPT_FAILURES: u8 = 4;

/// What one datagram taught the reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// QUIC, but the handshake message is not complete yet: send the next datagram.
    NeedMore,
    /// The whole TLS handshake message from the CRYPTO stream, type byte (1) onward, ready for
    /// [`crate::proto::tls::ClientHello::parse`]. Returned once per flow.
    ClientHello {
        /// Handshake message: type, 24-bit length, body.
        msg: Vec<u8>,
        /// QUIC version of the packets that carried it.
        version: u32,
    },
    /// A Google QUIC CHLO (Q050, Q046, Q043 and earlier). Returned once per flow.
    GoogleChlo {
        /// Value of the `SNI` tag.
        sni: Option<Vec<u8>>,
        /// Value of the `UAID` tag (the client's user agent string).
        user_agent: Option<Vec<u8>>,
        /// QUIC version of the packet.
        version: u32,
    },
    /// Not a QUIC long header with a version this reader recognises, and no Initial seen yet.
    /// The flow may still be QUIC observed mid-connection (short headers only).
    NotQuic,
    /// The flow is QUIC but its ClientHello cannot be recovered. Returned once per flow.
    GaveUp(GiveUp),
    /// The flow already returned its answer (ClientHello, GoogleChlo or GaveUp); nothing more is
    /// read and no state is kept.
    Done,
}

/// Why a QUIC flow's ClientHello was not recovered. Each variant is one drop-reason counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum GiveUp {
    /// A recognisably QUIC version this reader cannot open (see the module docs).
    #[error("QUIC version not supported")]
    UnsupportedVersion,
    /// [`MAX_DECRYPT_FAILURES`] Initials failed authentication.
    #[error("client Initials failed to decrypt")]
    DecryptFailed,
    /// [`MAX_INITIAL_PACKETS`] Initials read without any CRYPTO data.
    #[error("too many Initial packets without a ClientHello")]
    TooManyPackets,
    /// [`MAX_INITIAL_PACKETS`] Initials read and the CRYPTO stream still has a hole (or ends
    /// before the message does).
    #[error("CRYPTO stream hole never filled")]
    CryptoGap,
    /// The handshake message or CRYPTO data reaches beyond [`MAX_CRYPTO_LEN`].
    #[error("CRYPTO stream longer than MAX_CRYPTO_LEN")]
    TooLong,
    /// More than [`MAX_RANGES`] disjoint CRYPTO pieces were waiting for their holes to fill.
    #[error("CRYPTO stream split into too many pieces")]
    TooFragmented,
    /// The CRYPTO stream starts with another message than a ClientHello (or a CHLO).
    #[error("first handshake message is not a ClientHello")]
    NotClientHello,
    /// A Google QUIC CHLO whose tag table is inconsistent.
    #[error("malformed CHLO")]
    BadChlo,
}

impl GiveUp {
    /// Every variant, in declaration order, for registering drop counters up front.
    pub const ALL: [GiveUp; 8] = [
        GiveUp::UnsupportedVersion,
        GiveUp::DecryptFailed,
        GiveUp::TooManyPackets,
        GiveUp::CryptoGap,
        GiveUp::TooLong,
        GiveUp::TooFragmented,
        GiveUp::NotClientHello,
        GiveUp::BadChlo,
    ];

    /// Stable snake_case label for drop counters and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            GiveUp::UnsupportedVersion => "unsupported_version",
            GiveUp::DecryptFailed => "decrypt_failed",
            GiveUp::TooManyPackets => "too_many_packets",
            GiveUp::CryptoGap => "crypto_gap",
            GiveUp::TooLong => "too_long",
            GiveUp::TooFragmented => "too_fragmented",
            GiveUp::NotClientHello => "not_client_hello",
            GiveUp::BadChlo => "bad_chlo",
        }
    }
}

/// Cheap probe: does this UDP payload start with a QUIC long header of a version this reader
/// recognises (v1, v2, drafts, mvfst, Google Q046/Q050/T05x), or a Google QUIC public header
/// with a version up to Q045? No decryption, no allocation.
pub fn looks_like_quic(payload: &[u8]) -> bool {
    if let Some(h) = Long::parse(payload) {
        match classify(h.version) {
            Kind::Protected(_) => return h.flags & FIXED_BIT != 0,
            Kind::GooglePlain => return true,
            _ => {}
        }
    }
    gquic::plain(payload).is_some()
}

/// Keys cached for one (version, DCID).
#[derive(Clone)]
struct KeySlot {
    version: u32,
    dcid: [u8; MAX_CID_LEN],
    dcid_len: u8,
    keys: Keys,
}

impl KeySlot {
    fn matches(&self, version: u32, dcid: &[u8]) -> bool {
        self.version == version && &self.dcid[..usize::from(self.dcid_len)] == dcid
    }
}

/// Per-flow state of the Initial reader.
///
/// Memory: at most [`MAX_KEY_SLOTS`] key sets (about 1 KiB each), the CRYPTO buffer (at most
/// [`MAX_CRYPTO_LEN`]) and one scratch copy of the largest packet decrypted (at most one UDP
/// payload). All of it is released when the flow has its answer.
#[derive(Default)]
pub struct Initials {
    finished: bool,
    seen_initial: bool,
    slots: Vec<KeySlot>,
    stream: CryptoStream,
    /// Version whose packets filled `stream`; a client Initial of another version (after
    /// Version Negotiation) starts a new connection attempt and a new stream.
    stream_version: Option<u32>,
    /// Google QUIC: stream offset where the CHLO being assembled starts.
    chlo_base: Option<u64>,
    largest_pn: Option<u64>,
    packets: u16,
    decrypt_failures: u8,
    /// Packet copy decrypted in place, reused across packets.
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Initials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Initials")
            .field("finished", &self.finished)
            .field("key_slots", &self.slots.len())
            .field("packets", &self.packets)
            .field("stream_version", &self.stream_version)
            .finish_non_exhaustive()
    }
}

impl Initials {
    /// A reader for one new flow.
    pub fn new() -> Self {
        Self::default()
    }

    /// One UDP payload sent by the client. It may hold several coalesced QUIC packets
    /// (RFC 9000 §12.2): each long-header packet is delimited by its Length field, and a
    /// short-header packet, which has none, runs to the end of the datagram.
    ///
    /// Returns [`Progress::ClientHello`] or [`Progress::GoogleChlo`] once, when the first
    /// handshake message is complete; [`Progress::GaveUp`] once when it cannot be;
    /// [`Progress::Done`] for every datagram after either.
    pub fn client_datagram(&mut self, payload: &[u8]) -> Progress {
        if self.finished {
            return Progress::Done;
        }
        let out = self.read_client(payload);
        if matches!(
            out,
            Progress::ClientHello { .. } | Progress::GoogleChlo { .. } | Progress::GaveUp(_)
        ) {
            self.finish();
        }
        out
    }

    /// One UDP payload sent by the server. Returns [`Progress::NeedMore`] or
    /// [`Progress::NotQuic`] only.
    ///
    /// A Retry (RFC 9000 §17.2.5) makes the client protect its next Initials with keys from the
    /// Retry's Source Connection ID, so those keys are derived here ahead of time (they would be
    /// derived on demand anyway, as keys are looked up by each Initial's own DCID). A Version
    /// Negotiation packet (§17.2.1) makes the client start over with another version; the
    /// client's first Initial of a new version resets the CRYPTO stream, whichever direction's
    /// packets arrive first.
    pub fn server_datagram(&mut self, payload: &[u8]) -> Progress {
        if self.finished {
            return Progress::NeedMore;
        }
        let negotiation = payload.len() >= 5
            && payload[0] & 0x80 != 0
            && payload[1..5] == NEGOTIATION.to_be_bytes();
        if negotiation {
            return Progress::NeedMore;
        }
        if let Some(h) = Long::parse(payload) {
            match classify(h.version) {
                Kind::Protected(p) => {
                    if h.type_bits() == p.retry_type {
                        self.keys_for(&p, h.version, h.scid);
                    }
                    return Progress::NeedMore;
                }
                Kind::GooglePlain | Kind::Reserved | Kind::Unsupported => {
                    return Progress::NeedMore
                }
                Kind::Negotiation | Kind::Unknown => {}
            }
        }
        if self.seen_initial || looks_like_quic(payload) {
            Progress::NeedMore
        } else {
            Progress::NotQuic
        }
    }

    /// Release all per-flow memory; later datagrams get [`Progress::Done`].
    fn finish(&mut self) {
        self.finished = true;
        self.slots = Vec::new();
        self.stream.release();
        self.scratch = Vec::new();
    }

    fn read_client(&mut self, payload: &[u8]) -> Progress {
        let mut pos = 0usize;
        let mut recognised = false;
        while let Some(d) = payload.get(pos..).filter(|d| !d.is_empty()) {
            let Some(h) = Long::parse(d) else {
                if pos == 0 {
                    if let Some(p) = gquic::plain(d) {
                        return self.google_plain(&p);
                    }
                }
                // A short header runs to the end; zero bytes after the last packet are padding.
                break;
            };
            match classify(h.version) {
                Kind::Protected(p) => {
                    if h.flags & FIXED_BIT == 0 {
                        break;
                    }
                    recognised = true;
                    let ty = h.type_bits();
                    let bounds = if ty == p.initial_type {
                        h.initial_bounds(d)
                    } else if ty == p.retry_type {
                        None // only servers send Retry
                    } else {
                        h.other_bounds(d)
                    };
                    let Some((pn_offset, end)) = bounds else {
                        break;
                    };
                    if ty == p.initial_type {
                        if let Some(done) = self.initial(&p, &h, &d[..end], pn_offset) {
                            return done;
                        }
                    }
                    pos += end;
                }
                Kind::GooglePlain => {
                    if let Some(p) = gquic::plain(d) {
                        return self.google_plain(&p);
                    }
                    break;
                }
                Kind::Reserved => {
                    recognised = true;
                    break;
                }
                Kind::Unsupported => {
                    if !self.seen_initial {
                        return Progress::GaveUp(GiveUp::UnsupportedVersion);
                    }
                    break;
                }
                Kind::Negotiation | Kind::Unknown => break,
            }
        }
        if recognised || self.seen_initial {
            Progress::NeedMore
        } else {
            Progress::NotQuic
        }
    }

    /// Count one Initial (or unprotected gQUIC) packet and start a new stream on a version
    /// change. Returns the give-up when the packet limit is passed.
    fn count_packet(&mut self, version: u32) -> Option<Progress> {
        self.seen_initial = true;
        self.packets = self.packets.saturating_add(1);
        if self.packets > MAX_INITIAL_PACKETS {
            let why = if self.stream.is_empty() {
                GiveUp::TooManyPackets
            } else {
                GiveUp::CryptoGap
            };
            return Some(Progress::GaveUp(why));
        }
        if self.stream_version != Some(version) {
            if self.stream_version.is_some() {
                self.stream.clear();
                self.chlo_base = None;
                self.largest_pn = None;
            }
            self.stream_version = Some(version);
        }
        None
    }

    /// Open one Initial packet (`packet` ends at its Length) and feed its CRYPTO frames.
    fn initial(
        &mut self,
        p: &Protected,
        h: &Long<'_>,
        packet: &[u8],
        pn_offset: usize,
    ) -> Option<Progress> {
        if let Some(stop) = self.count_packet(h.version) {
            return Some(stop);
        }
        let Some((pn, body)) = self.open(p, h, packet, pn_offset) else {
            self.decrypt_failures = self.decrypt_failures.saturating_add(1);
            return (self.decrypt_failures >= MAX_DECRYPT_FAILURES)
                .then_some(Progress::GaveUp(GiveUp::DecryptFailed));
        };
        self.largest_pn = Some(self.largest_pn.map_or(pn, |l| l.max(pn)));
        let stream = &mut self.stream;
        let payload = &self.scratch[body];
        if let Err(why) =
            crypto_stream::walk(p.frames, payload, |off, data| stream.insert(off, data))
        {
            return Some(Progress::GaveUp(why));
        }
        self.complete(p.handshake, h.version)
    }

    /// Decrypt `packet` into `scratch` with the keys for its DCID: cached ones first, then keys
    /// cached for another DCID of the same version (later client Initials carry the server's
    /// chosen DCID but keep the original keys, RFC 9001 §5.2), then freshly derived ones.
    fn open(
        &mut self,
        p: &Protected,
        h: &Long<'_>,
        packet: &[u8],
        pn_offset: usize,
    ) -> Option<(u64, Range<usize>)> {
        let largest = self.largest_pn;
        if let Some(slot) = self.slots.iter().find(|s| s.matches(h.version, h.dcid)) {
            return try_open(&slot.keys, &mut self.scratch, packet, pn_offset, largest);
        }
        for i in (0..self.slots.len()).rev() {
            if self.slots[i].version != h.version {
                continue;
            }
            if let Some(done) = try_open(
                &self.slots[i].keys,
                &mut self.scratch,
                packet,
                pn_offset,
                largest,
            ) {
                let keys = self.slots[i].keys.clone();
                self.remember(h.version, h.dcid, keys);
                return Some(done);
            }
        }
        let keys = self.keys_for(p, h.version, h.dcid)?;
        try_open(&keys, &mut self.scratch, packet, pn_offset, largest)
    }

    /// Derive and cache the keys for (version, DCID), evicting the oldest slot when full.
    fn keys_for(&mut self, p: &Protected, version: u32, dcid: &[u8]) -> Option<Keys> {
        if let Some(slot) = self.slots.iter().find(|s| s.matches(version, dcid)) {
            return Some(slot.keys.clone());
        }
        let keys = Keys::client_initial(p, dcid)?;
        self.remember(version, dcid, keys.clone());
        Some(keys)
    }

    fn remember(&mut self, version: u32, dcid: &[u8], keys: Keys) {
        // Long::parse bounds connection IDs to MAX_CID_LEN; stay total regardless.
        let (Ok(dcid_len), Some(mut id)) = (
            u8::try_from(dcid.len()),
            (dcid.len() <= MAX_CID_LEN).then_some([0u8; MAX_CID_LEN]),
        ) else {
            return;
        };
        id[..dcid.len()].copy_from_slice(dcid);
        if self.slots.len() >= MAX_KEY_SLOTS {
            self.slots.remove(0);
        }
        self.slots.push(KeySlot {
            version,
            dcid: id,
            dcid_len,
            keys,
        });
    }

    /// One unprotected Google QUIC packet: CHLO data from STREAM frames of stream 1.
    fn google_plain(&mut self, p: &gquic::Plain<'_>) -> Progress {
        if let Some(stop) = self.count_packet(p.version) {
            return stop;
        }
        let stream = &mut self.stream;
        let base = &mut self.chlo_base;
        let fed = gquic::stream_frames(p, |off, data| {
            // A CHLO sent again after a REJ starts at a later stream offset: re-base on it.
            if data.starts_with(gquic::CHLO) && base.is_none_or(|b| off > b) {
                stream.clear();
                *base = Some(off);
            }
            match *base {
                Some(b) if off >= b => stream.insert(off - b, data),
                _ => Ok(()),
            }
        });
        if let Err(why) = fed {
            return Progress::GaveUp(why);
        }
        self.complete(Handshake::Chlo, p.version)
            .unwrap_or(Progress::NeedMore)
    }

    /// Is the first handshake message complete at the start of the stream?
    fn complete(&self, handshake: Handshake, version: u32) -> Option<Progress> {
        let prefix = self.stream.contiguous();
        match handshake {
            Handshake::Tls => {
                let head = prefix.get(..HANDSHAKE_HEADER_LEN)?;
                if head[0] != HANDSHAKE_CLIENT_HELLO {
                    return Some(Progress::GaveUp(GiveUp::NotClientHello));
                }
                let body =
                    usize::from(head[1]) << 16 | usize::from(head[2]) << 8 | usize::from(head[3]);
                let total = HANDSHAKE_HEADER_LEN + body;
                if total > MAX_CRYPTO_LEN {
                    return Some(Progress::GaveUp(GiveUp::TooLong));
                }
                let msg = prefix.get(..total)?;
                Some(Progress::ClientHello {
                    msg: msg.to_vec(),
                    version,
                })
            }
            Handshake::Chlo => {
                let total = match gquic::chlo_len(prefix) {
                    Ok(Some(n)) => n,
                    Ok(None) => return None,
                    Err(why) => return Some(Progress::GaveUp(why)),
                };
                let msg = prefix.get(..total)?;
                Some(match gquic::parse_chlo(msg) {
                    Ok(c) => Progress::GoogleChlo {
                        sni: c.sni,
                        user_agent: c.user_agent,
                        version,
                    },
                    Err(why) => Progress::GaveUp(why),
                })
            }
        }
    }
}

/// Copy `packet` into `scratch`, remove header protection, decrypt. Returns the full packet
/// number and where the plaintext lies in `scratch`.
fn try_open(
    keys: &Keys,
    scratch: &mut Vec<u8>,
    packet: &[u8],
    pn_offset: usize,
    largest: Option<u64>,
) -> Option<(u64, Range<usize>)> {
    scratch.clear();
    scratch.extend_from_slice(packet);
    let (truncated, pn_len) = keys.unmask_long(scratch, pn_offset)?;
    let pn = decode_pn(largest, truncated, pn_len);
    let header_len = pn_offset + pn_len;
    let body_len = keys.open(pn, scratch, header_len)?.len();
    Some((pn, header_len..header_len + body_len))
}

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;
