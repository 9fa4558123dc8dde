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
//!   ── version (version.rs): salt, labels, type bits (v1's for a reserved version)
//!   ── the connection attempt the DCID belongs to, its cached keys (keys.rs)
//!   ── header protection off (RFC 9001 §5.4) ── AES-128-GCM open (§5.3)
//!   ── frames (RFC 9000 §19) ── that attempt's CRYPTO reassembly (crypto_stream.rs)
//!   ── complete handshake message at offset 0 ──> candidate hello
//!   ── the candidate the server answered (server_datagram) ──> Progress::ClientHello
//! Google QUIC Q046 and earlier: plaintext STREAM frames ── CHLO tags (gquic.rs)
//!   ──> Progress::GoogleChlo
//! ```
//!
//! Versions read: v1 (RFC 9000/9001), v2 (RFC 9369), reserved versions `0x?a?a?a?a` (RFC 9000
//! §15, opened as v1), IETF drafts 22 to 34, Facebook mvfst (`0xfaceb001`, `0xfaceb002`,
//! `0xfaceb00e`), Google Q050 (CHLO), T050 and T051 (TLS) with Chromium's salts, and the
//! unprotected Google versions Q046 and Q043 and earlier. Other recognisable QUIC versions
//! (drafts before 22, other mvfst versions, Q044/Q045/Q048, ...) are counted once as
//! [`GiveUp::UnsupportedVersion`].
//!
//! # Reading past noise and decoys
//! Nothing a client sends before its real Initial may stop the reader: datagrams that are not
//! QUIC, Initials that do not open, a version that forces Version Negotiation, or a complete
//! Initial under another connection ID carrying another name (a decoy the server never
//! processes: sent in a datagram under 1200 bytes, which servers discard (RFC 9000 §14.1), or
//! with a TTL that expires before the server). So:
//!
//! * every client datagram is read until the flow's budget ([`MAX_PROBE_BYTES`]) is spent;
//!   datagrams with nothing QUIC in them before the first Initial that opens are reported as
//!   [`Signs::junk`];
//! * each original DCID (and version) is its own *connection attempt*, with its own keys and
//!   CRYPTO stream ([`MAX_ATTEMPTS`]); a hello complete in an attempt is a *candidate*;
//! * the hello reported is the candidate of the attempt the server answered: a server packet
//!   whose DCID is the client SCID of exactly one attempt, or else a server Initial that opens
//!   with the server keys ("server in", RFC 9001 §5.2) derived from an attempt's DCID. Until the
//!   server answers, the latest candidate is reported provisionally, so a flow whose server is
//!   not captured is still named. [`Signs::decoy`] is set when candidates carry different
//!   server names, when the server answered an attempt other than the reported one, or when a
//!   bound on attempts or candidates was hit.
//!
//! The common case costs what it did before: one attempt, one candidate reported at once, and
//! the first server datagram (whose DCID is that attempt's SCID) ends the reading.
//!
//! A Retry (RFC 9000 §17.2.5) legitimately moves the client to a new DCID: the attempt keyed
//! by the Retry's SCID continues the CRYPTO stream of the attempt the Retry answered, and both
//! carry the same hello, so it is not a decoy.
//!
//! Guarantees: no panic on any input; per-flow memory is bounded by the named constants below
//! ([`Initials::footprint`] tells what is held) and released as soon as the flow has its answer;
//! keys are derived once per attempt; nothing here touches sockets, files or clocks (the caller
//! bounds the time and calls [`Initials::expire`]).
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod crypto_stream;
#[cfg(test)]
pub(crate) mod fixtures;
mod gquic;
mod header;
mod keys;
mod version;

use std::ops::Range;

pub use crypto_stream::MAX_CRYPTO_LEN;
pub use gquic::MAX_CHLO_TAGS;
pub use version::{
    is_reserved, version_str, DRAFT_FIRST, DRAFT_LAST, MVFST_22, MVFST_27, MVFST_EXP, NEGOTIATION,
    Q046, Q050, T050, T051, V1, V2,
};

use crypto_stream::{CryptoStream, Insert};
use header::{decode_pn, Long, FIXED_BIT, FORM_LONG, MAX_CID_LEN};
use keys::{Keys, Sender};
use version::{classify, keying, Handshake, Kind, Protected};

use crate::proto::tls::{ClientHello, HANDSHAKE_CLIENT_HELLO, HANDSHAKE_HEADER_LEN};

/// Client datagram bytes read per flow before the reader stops looking for a ClientHello.
///
/// Bounds the work one flow can ask for (each byte is at most decrypted a few times, see
/// [`MAX_ATTEMPTS`]) however much junk, how many corrupt Initials or how small the CRYPTO
/// frames: 64 KiB is 54 full-size (1,200-byte) datagrams, room for a hello spread over 40
/// Initials behind a few junk datagrams. Costs no memory: it is a counter.
pub const MAX_PROBE_BYTES: usize = 64 * 1024;

/// Least budget one client datagram is charged, however short: one-byte datagrams cannot make
/// the reader run [`MAX_PROBE_BYTES`] times (at most 1,024 datagrams are read).
pub const MIN_DATAGRAM_CHARGE: usize = 64;

/// Most client Initial (or unprotected gQUIC) packets read per flow before giving up.
///
/// A ClientHello fits in one to three Initials; retransmissions, ACK-only Initials, a Retry or
/// Version Negotiation round add a few, and a client that spreads its hello thin uses many
/// (tested with 40). Each packet costs one AES-GCM open (its bytes are charged to
/// [`MAX_PROBE_BYTES`]); this bounds the per-packet overhead of many tiny coalesced packets.
pub const MAX_INITIAL_PACKETS: u16 = 128;

/// Most connection attempts (distinct original DCIDs, per version) tracked per flow: the
/// original DCID, one after Retry, one per version after Version Negotiation, and a decoy or
/// two. Each costs about 1.7 KiB (its client keys: AES-128 key schedules and the GHASH key,
/// about 1.5 KiB), 1.5 KiB more if its server keys are needed to tell it from another
/// attempt, plus its CRYPTO stream (shared allowance, [`MAX_HELD_BYTES`]). A further attempt is
/// not read and flags the flow ([`Signs::decoy`]).
pub const MAX_ATTEMPTS: usize = 4;

/// Most complete hellos held per flow while waiting for the server to tell which one it
/// answered (their bytes count against [`MAX_HELD_BYTES`]). When full, the oldest one not
/// from the answered attempt is dropped and the flow is flagged ([`Signs::decoy`]).
pub const MAX_CANDIDATES: usize = 4;

/// CRYPTO bytes held per flow across all attempts and candidates: twice [`MAX_CRYPTO_LEN`]
/// (32 KiB), so a legitimate flow can hold a large hello twice (before and after a Retry or a
/// Version Negotiation), while decoys cannot make one flow hold
/// [`MAX_ATTEMPTS`] × [`MAX_CRYPTO_LEN`]. Data beyond the allowance fails its attempt with
/// [`GiveUp::TooLong`].
pub const MAX_HELD_BYTES: usize = 2 * MAX_CRYPTO_LEN;

/// Client Initials that fail to decrypt before the flow is given up (corrupt or forged
/// packets, or keys this reader cannot derive). Each failure costs at most one key derivation
/// and [`MAX_ATTEMPTS`] + 1 AES-GCM attempts; their bytes count against [`MAX_PROBE_BYTES`].
pub const MAX_DECRYPT_FAILURES: u8 = 16;

/// Server datagrams examined to learn which attempt the server answered. A server Initial may
/// cost one key derivation and one AES-GCM open per attempt. When that many server datagrams
/// did not tell (packets of an attempt this capture missed), the latest candidate stands.
pub const MAX_SERVER_TRIALS: u8 = 8;

/// What one datagram taught the reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// Nothing new to report: QUIC, but no (other) hello to report yet.
    NeedMore,
    /// The ClientHello to report now, which replaces any reported before for this flow. The
    /// first one comes as soon as a hello is complete; another comes only when a decoy shows
    /// up or the server answers another attempt. [`Initials::is_finished`] tells whether it is
    /// final.
    ClientHello {
        /// Handshake message: type, 24-bit length, body.
        msg: Vec<u8>,
        /// QUIC version of the packets that carried it, as on the wire (a reserved version
        /// stays what it was).
        version: u32,
        /// Signs of evasion seen so far.
        signs: Signs,
    },
    /// A Google QUIC CHLO (Q050, Q046, Q043 and earlier). Returned once per flow, final.
    GoogleChlo {
        /// Value of the `SNI` tag.
        sni: Option<Vec<u8>>,
        /// Value of the `UAID` tag (the client's user agent string).
        user_agent: Option<Vec<u8>>,
        /// QUIC version of the packet.
        version: u32,
    },
    /// Not a QUIC long header with a version this reader recognises, and none seen yet. The
    /// flow may still be QUIC observed mid-connection (short headers only), or junk before
    /// its first Initial: the caller keeps feeding until [`Initials::is_finished`].
    NotQuic,
    /// A hello could not be recovered, for this reason (each reason is returned at most once
    /// per flow, to be counted). Final when [`Initials::is_finished`]; otherwise one attempt
    /// failed and another may still succeed.
    GaveUp(GiveUp),
    /// The reader has finished: its last answer stands, nothing more is read and no state is
    /// kept.
    Done,
}

/// Signs of evasion the reader saw on a flow (facts, not verdicts).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Signs {
    /// Client datagrams with nothing QUIC in them (or with an Initial of a non-reserved version
    /// that did not open) came before the first Initial that opened.
    pub junk: bool,
    /// Client Initials under different connection IDs carried different server names, or the
    /// server answered another attempt than the one whose hello is reported, or the flow held
    /// more attempts or hellos than [`MAX_ATTEMPTS`] or [`MAX_CANDIDATES`].
    pub decoy: bool,
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
    /// The handshake message or CRYPTO data reaches beyond [`MAX_CRYPTO_LEN`] (or beyond what
    /// is left of [`MAX_HELD_BYTES`]).
    #[error("CRYPTO stream longer than MAX_CRYPTO_LEN")]
    TooLong,
    /// The CRYPTO stream starts with another message than a ClientHello (or a CHLO).
    #[error("first handshake message is not a ClientHello")]
    NotClientHello,
    /// A Google QUIC CHLO whose tag table is inconsistent.
    #[error("malformed CHLO")]
    BadChlo,
    /// [`MAX_PROBE_BYTES`] of client datagrams read without a ClientHello.
    #[error("probe budget spent without a ClientHello")]
    Budget,
    /// The caller's time bound passed without a ClientHello ([`Initials::expire`]).
    #[error("probe time spent without a ClientHello")]
    Timeout,
}

impl GiveUp {
    /// Every variant, in declaration order, for registering drop counters up front.
    pub const ALL: [GiveUp; 9] = [
        GiveUp::UnsupportedVersion,
        GiveUp::DecryptFailed,
        GiveUp::TooManyPackets,
        GiveUp::CryptoGap,
        GiveUp::TooLong,
        GiveUp::NotClientHello,
        GiveUp::BadChlo,
        GiveUp::Budget,
        GiveUp::Timeout,
    ];

    /// Stable snake_case label for drop counters and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            GiveUp::UnsupportedVersion => "unsupported_version",
            GiveUp::DecryptFailed => "decrypt_failed",
            GiveUp::TooManyPackets => "too_many_packets",
            GiveUp::CryptoGap => "crypto_gap",
            GiveUp::TooLong => "too_long",
            GiveUp::NotClientHello => "not_client_hello",
            GiveUp::BadChlo => "bad_chlo",
            GiveUp::Budget => "probe_budget",
            GiveUp::Timeout => "probe_timeout",
        }
    }

    /// One bit per variant, for "counted once per flow".
    const fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// Cheap probe: does this UDP payload start with a QUIC long header of a version this reader
/// recognises (v1, v2, reserved, drafts, mvfst, Google Q046/Q050/T05x), or a Google QUIC public
/// header with a version up to Q045? No decryption, no allocation.
pub fn looks_like_quic(payload: &[u8]) -> bool {
    if let Some(h) = Long::parse(payload) {
        match classify(h.version) {
            Kind::Protected(_) | Kind::Reserved => return h.flags & FIXED_BIT != 0,
            Kind::GooglePlain => return true,
            _ => {}
        }
    }
    gquic::plain(payload).is_some()
}

/// A connection ID held by value (at most [`MAX_CID_LEN`] bytes, no allocation).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Cid {
    len: u8,
    bytes: [u8; MAX_CID_LEN],
}

impl Cid {
    /// `None` above [`MAX_CID_LEN`] (which [`Long::parse`] already refuses).
    fn new(id: &[u8]) -> Option<Cid> {
        let mut bytes = [0u8; MAX_CID_LEN];
        bytes.get_mut(..id.len())?.copy_from_slice(id);
        Some(Cid {
            len: u8::try_from(id.len()).ok()?,
            bytes,
        })
    }

    fn get(&self) -> &[u8] {
        // `len <= MAX_CID_LEN` by construction (`new`), so the range is always there.
        self.bytes.get(..usize::from(self.len)).unwrap_or_default()
    }
}

/// Where an attempt stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Its CRYPTO stream is being filled.
    Reading,
    /// Its hello is a candidate; later packets are only compared with it.
    Complete,
    /// Its hello cannot be recovered; later packets are opened and dropped.
    Failed,
}

/// One connection attempt: the client Initials protected with keys from one original DCID,
/// of one version.
struct Attempt {
    /// Version on the wire (reported as is, a reserved one included).
    version: u32,
    /// What its packets are opened with.
    params: Protected,
    /// The original DCID, which the keys come from.
    dcid: Cid,
    /// A later DCID the client used with the same keys (the server's chosen connection ID,
    /// RFC 9001 §5.2).
    alias: Option<Cid>,
    /// The client's SCID: the DCID of the server's answers.
    scid: Cid,
    /// Index of the first attempt of the same connection (itself, or the attempt a Retry
    /// moved it from).
    root: usize,
    keys: Keys,
    /// The server's Initial keys for this DCID, and the version they were derived for. Boxed:
    /// derived only when the server's DCID alone does not tell which attempt it answers.
    server_keys: Option<Box<(u32, Keys)>>,
    stream: CryptoStream,
    largest_pn: Option<u64>,
    stage: Stage,
}

/// A complete ClientHello waiting for the server to pick its attempt.
struct Candidate {
    /// Completion order (never reused within a flow).
    id: u16,
    /// Index of its attempt.
    attempt: usize,
    version: u32,
    msg: Box<[u8]>,
    /// Its SNI, lowercased, once parsed (only when another candidate exists).
    name: Option<Option<Box<[u8]>>>,
}

/// What one client datagram showed, for the junk sign.
#[derive(Default)]
struct Datagram {
    /// An Initial opened.
    opened: bool,
    /// An Initial of a non-reserved version failed to open.
    bad: bool,
    /// Something recognisably QUIC.
    recognised: bool,
    /// An attempt failed (or an unsupported version showed up).
    failed: Option<GiveUp>,
}

/// Per-flow state of the Initial reader.
///
/// Memory ([`Initials::footprint`]): at most [`MAX_ATTEMPTS`] attempts (keys, about 1.7 KiB
/// each, 3.2 KiB with the server's), at most [`MAX_HELD_BYTES`] of CRYPTO data and complete
/// hellos plus one bit per buffered byte, and one scratch copy of the largest packet decrypted
/// (at most one UDP payload). The common case (one attempt, one hello of 2 KB) holds about
/// 6 KiB for one round trip. All of it is released when the flow has its answer.
#[derive(Default)]
pub struct Initials {
    finished: bool,
    /// A client datagram held a recognisable QUIC packet.
    recognised: bool,
    /// A client Initial opened.
    opened: bool,
    junk: bool,
    /// A bound on attempts or candidates was hit.
    overflow: bool,
    /// Client datagram bytes charged against [`MAX_PROBE_BYTES`].
    spent: usize,
    packets: u16,
    decrypt_failures: u8,
    server_trials: u8,
    /// Give-up reasons met ([`GiveUp::bit`]): attempts that failed, unsupported versions.
    failed: u16,
    /// Give-up reasons already returned.
    reported: u16,
    attempts: Vec<Attempt>,
    candidates: Vec<Candidate>,
    next_id: u16,
    /// The attempt the server answered.
    answered: Option<usize>,
    /// The SCID of a server Retry and the attempt it answered.
    retry: Option<(Cid, Option<usize>)>,
    /// The candidate and signs last returned.
    shown: Option<(u16, Signs)>,
    /// Unprotected Google QUIC: the CHLO stream, its version and where it starts.
    plain: CryptoStream,
    plain_version: Option<u32>,
    chlo_base: Option<u64>,
    /// Packet copy decrypted in place, reused across packets.
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Initials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Initials")
            .field("finished", &self.finished)
            .field("attempts", &self.attempts.len())
            .field("candidates", &self.candidates.len())
            .field("packets", &self.packets)
            .field("answered", &self.answered)
            .finish_non_exhaustive()
    }
}

impl Initials {
    /// A reader for one new flow.
    pub fn new() -> Self {
        Self::default()
    }

    /// Has the reader given its last answer (nothing more is read, its memory released)?
    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Has a client datagram held a recognisable QUIC packet (the flow is QUIC)?
    pub fn recognised(&self) -> bool {
        self.recognised
    }

    /// Bytes held on behalf of this flow (this struct included), for a global memory budget.
    /// At most about `MAX_HELD_BYTES * 9 / 8 + MAX_ATTEMPTS * 3.3 KiB` (45 KiB) plus the largest
    /// UDP payload read; no heap once finished.
    pub fn footprint(&self) -> usize {
        let attempts: usize = self.attempts.iter().map(|a| a.stream.footprint()).sum();
        let server_keys = self
            .attempts
            .iter()
            .filter(|a| a.server_keys.is_some())
            .count()
            * std::mem::size_of::<(u32, Keys)>();
        let candidates: usize = self
            .candidates
            .iter()
            .map(|c| {
                c.msg.len()
                    + c.name
                        .as_ref()
                        .and_then(|n| n.as_ref())
                        .map_or(0, |n| n.len())
            })
            .sum();
        std::mem::size_of::<Self>()
            + self.attempts.capacity() * std::mem::size_of::<Attempt>()
            + attempts
            + server_keys
            + self.candidates.capacity() * std::mem::size_of::<Candidate>()
            + candidates
            + self.plain.footprint()
            + self.scratch.capacity()
    }

    /// One UDP payload sent by the client. It may hold several coalesced QUIC packets
    /// (RFC 9000 §12.2): each long-header packet is delimited by its Length field, and a
    /// short-header packet, which has none, runs to the end of the datagram.
    ///
    /// Returns [`Progress::ClientHello`] when the hello to report changes,
    /// [`Progress::GoogleChlo`] once, [`Progress::GaveUp`] once per reason, and
    /// [`Progress::Done`] once finished.
    pub fn client_datagram(&mut self, payload: &[u8]) -> Progress {
        if self.finished {
            return Progress::Done;
        }
        self.spent = self
            .spent
            .saturating_add(payload.len().max(MIN_DATAGRAM_CHARGE));
        if self.spent > MAX_PROBE_BYTES {
            return self.conclude(GiveUp::Budget);
        }
        let mut dg = Datagram::default();
        if let Some(done) = self.read_client(payload, &mut dg) {
            return done;
        }
        if !self.opened && (dg.bad || !dg.recognised) {
            self.junk = true;
        }
        if self.answered_complete() {
            return self.settle();
        }
        if let Some(hello) = self.emit() {
            return hello;
        }
        if let Some(why) = dg.failed {
            self.failed |= why.bit();
        }
        if let Some(why) = self.unreported() {
            self.reported |= why.bit();
            return Progress::GaveUp(why);
        }
        if self.recognised {
            Progress::NeedMore
        } else {
            Progress::NotQuic
        }
    }

    /// One UDP payload sent by the server: tells which attempt the server answered.
    ///
    /// A server Initial, Handshake or short-header packet answers the attempt whose client
    /// SCID is its DCID; when several attempts share that SCID, the server Initial is opened
    /// with each one's server keys. Once the answered attempt has a complete hello, that hello
    /// is final ([`Progress::ClientHello`] if it is not the one last reported, else
    /// [`Progress::Done`]).
    ///
    /// A Retry (RFC 9000 §17.2.5) names the DCID of the client's next attempt, which continues
    /// the answered one. A Version Negotiation packet (§17.2.1) answers nothing: the client
    /// starts again, as another attempt.
    pub fn server_datagram(&mut self, payload: &[u8]) -> Progress {
        if self.finished {
            return Progress::Done;
        }
        let long = Long::parse(payload);
        let keyed = long.and_then(|h| keying(h.version).map(|p| (h, p)));
        if let Some((h, _)) = keyed.filter(|(h, p)| h.type_bits() == p.retry_type) {
            let of = self
                .attempts
                .iter()
                .rposition(|a| a.scid.get() == h.dcid)
                .or(self.attempts.len().checked_sub(1));
            self.retry = Cid::new(h.scid).map(|c| (c, of));
            return Progress::NeedMore;
        }
        if self.attempts.is_empty() {
            return if self.recognised || looks_like_quic(payload) {
                Progress::NeedMore
            } else {
                Progress::NotQuic
            };
        }
        if long.is_some_and(|h| h.version == NEGOTIATION) {
            return Progress::NeedMore;
        }
        let first = payload.first().copied().unwrap_or(0);
        let answered = match keyed {
            Some((h, p)) => self.attribute_long(&p, &h, payload),
            None if first & FORM_LONG == 0 && first & FIXED_BIT != 0 => {
                self.attribute_short(payload)
            }
            None => None,
        };
        let Some(a) = answered else {
            return self.unattributed();
        };
        if self.answered.is_none() {
            self.answered = Some(a);
        }
        if self.answered_complete() {
            self.settle()
        } else {
            // Wait for the answered attempt's hello; show the decoy sign meanwhile if it
            // applies now.
            self.emit().unwrap_or(Progress::NeedMore)
        }
    }

    /// The caller's time bound for this flow passed: the latest candidate stands (or the flow
    /// is given up with [`GiveUp::Timeout`] if it was QUIC and nothing was counted yet).
    pub fn expire(&mut self) -> Progress {
        self.conclude(GiveUp::Timeout)
    }

    /// Release all per-flow memory; later datagrams get [`Progress::Done`].
    fn finish(&mut self) {
        self.finished = true;
        self.attempts = Vec::new();
        self.candidates = Vec::new();
        self.plain.release();
        self.scratch = Vec::new();
    }

    /// End the reading: report the best candidate, or give up for `why`.
    fn conclude(&mut self, why: GiveUp) -> Progress {
        if self.finished {
            return Progress::Done;
        }
        let out = if !self.candidates.is_empty() {
            self.emit().unwrap_or(Progress::Done)
        } else if let Some(why) = self
            .unreported()
            .or((self.recognised && self.reported == 0).then_some(why))
        {
            self.reported |= why.bit();
            Progress::GaveUp(why)
        } else {
            Progress::Done
        };
        self.finish();
        out
    }

    /// A reason met but not returned yet (a datagram that reports a hello reports no failure).
    fn unreported(&self) -> Option<GiveUp> {
        let pending = self.failed & !self.reported;
        GiveUp::ALL.into_iter().find(|g| pending & g.bit() != 0)
    }

    /// The server's choice is known and complete: report it, finished.
    fn settle(&mut self) -> Progress {
        let out = self.emit().unwrap_or(Progress::Done);
        self.finish();
        out
    }

    /// Does the answered attempt have a complete hello?
    fn answered_complete(&self) -> bool {
        self.answered
            .is_some_and(|a| self.candidates.iter().any(|c| c.attempt == a))
    }

    /// A server datagram that did not tell which attempt it answers.
    fn unattributed(&mut self) -> Progress {
        self.server_trials = self.server_trials.saturating_add(1);
        if self.server_trials >= MAX_SERVER_TRIALS
            && self.answered.is_none()
            && !self.candidates.is_empty()
        {
            self.settle()
        } else {
            Progress::NeedMore
        }
    }

    /// Which attempt a server long-header packet answers.
    fn attribute_long(&mut self, p: &Protected, h: &Long<'_>, payload: &[u8]) -> Option<usize> {
        let matching = |a: &Attempt| a.scid.get() == h.dcid;
        let n = self.attempts.iter().filter(|a| matching(a)).count();
        if n == 1 {
            return self.attempts.iter().position(matching);
        }
        // Each server datagram that tells nothing counts once, in `unattributed`.
        if h.type_bits() != p.initial_type || self.server_trials >= MAX_SERVER_TRIALS {
            return None;
        }
        let (pn_offset, packet) = h.initial_packet(payload)?;
        // Attempts of the server's version first: a reserved-version attempt and the v1 attempt
        // after Version Negotiation may share a DCID, and so server keys.
        let tried = self
            .attempts
            .iter()
            .enumerate()
            .filter(|(_, a)| n == 0 || matching(a));
        let order: Vec<usize> = tried
            .clone()
            .filter(|(_, a)| a.version == h.version)
            .chain(tried.filter(|(_, a)| a.version != h.version))
            .map(|(i, _)| i)
            .collect();
        for i in order {
            let Some(a) = self.attempts.get_mut(i) else {
                continue;
            };
            if a.server_keys.as_ref().is_none_or(|k| k.0 != h.version) {
                a.server_keys = Keys::initial(p, a.dcid.get(), Sender::Server)
                    .map(|k| Box::new((h.version, k)));
            }
            let Some(keys) = a.server_keys.as_ref().map(|k| &k.1) else {
                continue;
            };
            if try_open(keys, &mut self.scratch, packet, pn_offset, None).is_some() {
                return Some(i);
            }
        }
        None
    }

    /// Which attempt a server short-header packet answers: the only one whose client SCID
    /// its DCID starts with.
    fn attribute_short(&self, payload: &[u8]) -> Option<usize> {
        let rest = payload.get(1..)?;
        let mut hits = self
            .attempts
            .iter()
            .enumerate()
            .filter(|(_, a)| rest.starts_with(a.scid.get()))
            .map(|(i, _)| i);
        let first = hits.next()?;
        hits.next().is_none().then_some(first)
    }

    /// The candidate to report: the latest of the answered attempt, else the latest.
    fn choose(&self) -> Option<usize> {
        if let Some(a) = self.answered {
            if let Some(i) = self.candidates.iter().rposition(|c| c.attempt == a) {
                return Some(i);
            }
        }
        self.candidates.len().checked_sub(1)
    }

    /// The hello to report, if it (or its signs) differ from the last one returned.
    fn emit(&mut self) -> Option<Progress> {
        let i = self.choose()?;
        let decoy = self.overflow || self.names_differ(i) || self.answered_elsewhere(i);
        let signs = Signs {
            junk: self.junk,
            decoy,
        };
        let c = self.candidates.get(i)?;
        if self.shown == Some((c.id, signs)) {
            return None;
        }
        self.shown = Some((c.id, signs));
        Some(Progress::ClientHello {
            msg: c.msg.to_vec(),
            version: c.version,
            signs,
        })
    }

    /// Did the server answer a connection other than candidate `i`'s?
    fn answered_elsewhere(&self, i: usize) -> bool {
        let root = |a: usize| self.attempts.get(a).map(|a| a.root);
        let Some(c) = self.candidates.get(i) else {
            return false;
        };
        self.answered.is_some_and(|a| root(a) != root(c.attempt))
    }

    /// Does another candidate carry another server name than candidate `i`?
    fn names_differ(&mut self, i: usize) -> bool {
        if self.candidates.len() < 2 {
            return false;
        }
        for c in &mut self.candidates {
            if c.name.is_none() {
                c.name = Some(server_name(&c.msg));
            }
        }
        let Some(mine) = self.candidates.get(i).map(|c| &c.name) else {
            return false;
        };
        self.candidates.iter().any(|c| &c.name != mine)
    }

    fn read_client(&mut self, payload: &[u8], dg: &mut Datagram) -> Option<Progress> {
        let mut pos = 0usize;
        while let Some(d) = payload.get(pos..).filter(|d| !d.is_empty()) {
            let Some(h) = Long::parse(d) else {
                if pos == 0 {
                    if let Some(p) = gquic::plain(d) {
                        dg.recognised = true;
                        self.recognised = true;
                        return Some(self.google_plain(&p));
                    }
                }
                // A short header runs to the end; zero bytes after the last packet are padding.
                break;
            };
            match classify(h.version) {
                Kind::Protected(_) | Kind::Reserved => {
                    dg.recognised = true;
                    self.recognised = true;
                    let Some(p) = keying(h.version) else {
                        break;
                    };
                    if h.flags & FIXED_BIT == 0 {
                        break;
                    }
                    let ty = h.type_bits();
                    let found = if ty == p.initial_type {
                        h.initial_packet(d)
                    } else if ty == p.retry_type {
                        None // only servers send Retry
                    } else {
                        h.other_packet(d)
                    };
                    let Some((pn_offset, packet)) = found else {
                        break;
                    };
                    if ty == p.initial_type {
                        if let Some(done) = self.initial(&p, &h, packet, pn_offset, dg) {
                            return Some(done);
                        }
                    }
                    pos += packet.len();
                }
                Kind::GooglePlain => {
                    if let Some(p) = gquic::plain(d) {
                        dg.recognised = true;
                        self.recognised = true;
                        return Some(self.google_plain(&p));
                    }
                    break;
                }
                Kind::Unsupported => {
                    dg.recognised = true;
                    self.recognised = true;
                    dg.failed = Some(GiveUp::UnsupportedVersion);
                    break;
                }
                Kind::Negotiation | Kind::Unknown => break,
            }
        }
        None
    }

    /// Open one Initial packet (`packet` ends at its Length) and feed its CRYPTO frames to its
    /// attempt. Returns a final answer, if this packet makes one.
    fn initial(
        &mut self,
        p: &Protected,
        h: &Long<'_>,
        packet: &[u8],
        pn_offset: usize,
        dg: &mut Datagram,
    ) -> Option<Progress> {
        self.packets = self.packets.saturating_add(1);
        if self.packets > MAX_INITIAL_PACKETS {
            let why = if self.candidates.is_empty()
                && self.attempts.iter().all(|a| a.stream.is_empty())
            {
                GiveUp::TooManyPackets
            } else {
                GiveUp::CryptoGap
            };
            return Some(self.conclude(why));
        }
        match self.open(p, h, packet, pn_offset) {
            Opened::Attempt(i, pn, body) => {
                self.opened = true;
                dg.opened = true;
                let a = self.attempts.get_mut(i)?;
                a.largest_pn = Some(a.largest_pn.map_or(pn, |l| l.max(pn)));
                self.feed(i, body, dg)
            }
            Opened::Ignored => None,
            Opened::Failed => {
                self.decrypt_failures = self.decrypt_failures.saturating_add(1);
                if !is_reserved(h.version) {
                    dg.bad = true;
                }
                (self.decrypt_failures >= MAX_DECRYPT_FAILURES)
                    .then(|| self.conclude(GiveUp::DecryptFailed))
            }
        }
    }

    /// Decrypt `packet` into `scratch` with the keys of its attempt: the attempt whose original
    /// or later DCID it carries; else an attempt of its version whose keys open it (later client
    /// Initials carry the server's chosen DCID but keep the original keys, RFC 9001 §5.2); else
    /// keys derived from its own DCID, as a new attempt.
    fn open(&mut self, p: &Protected, h: &Long<'_>, packet: &[u8], pn_offset: usize) -> Opened {
        let known = self.attempts.iter().enumerate().find(|(_, a)| {
            a.version == h.version
                && (a.dcid.get() == h.dcid || a.alias.is_some_and(|c| c.get() == h.dcid))
        });
        if let Some((i, a)) = known {
            return match try_open(&a.keys, &mut self.scratch, packet, pn_offset, a.largest_pn) {
                Some((pn, body)) => Opened::Attempt(i, pn, body),
                None => Opened::Failed,
            };
        }
        for (i, a) in self.attempts.iter_mut().enumerate().rev() {
            if a.version != h.version {
                continue;
            }
            if let Some((pn, body)) =
                try_open(&a.keys, &mut self.scratch, packet, pn_offset, a.largest_pn)
            {
                a.alias = Cid::new(h.dcid);
                return Opened::Attempt(i, pn, body);
            }
        }
        let Some(keys) = Keys::client_initial(p, h.dcid) else {
            return Opened::Failed;
        };
        let Some((pn, body)) = try_open(&keys, &mut self.scratch, packet, pn_offset, None) else {
            return Opened::Failed;
        };
        match self.new_attempt(p, h, keys) {
            Some(i) => Opened::Attempt(i, pn, body),
            None => Opened::Ignored,
        }
    }

    /// Track a new attempt keyed by `h.dcid`, or flag the flow when [`MAX_ATTEMPTS`] are held.
    fn new_attempt(&mut self, p: &Protected, h: &Long<'_>, keys: Keys) -> Option<usize> {
        if self.attempts.len() >= MAX_ATTEMPTS {
            self.overflow = true;
            return None;
        }
        let (dcid, scid) = (Cid::new(h.dcid)?, Cid::new(h.scid)?);
        let index = self.attempts.len();
        // After a Retry the client protects its Initials with keys from the Retry's SCID and
        // carries on with the same CRYPTO stream (RFC 9000 §17.2.5.2, RFC 9001 §5.2).
        let (root, stream) = match self.retry {
            Some((cid, Some(of))) if cid == dcid => match self.attempts.get(of) {
                Some(prev) if prev.stage == Stage::Reading => (prev.root, prev.stream.clone()),
                Some(prev) => (prev.root, CryptoStream::default()),
                None => (index, CryptoStream::default()),
            },
            _ => (index, CryptoStream::default()),
        };
        self.attempts.push(Attempt {
            version: h.version,
            params: *p,
            dcid,
            alias: None,
            scid,
            root,
            keys,
            server_keys: None,
            stream,
            largest_pn: None,
            stage: Stage::Reading,
        });
        Some(index)
    }

    /// Feed the decrypted payload `scratch[body]` to attempt `i`.
    fn feed(&mut self, i: usize, body: Range<usize>, dg: &mut Datagram) -> Option<Progress> {
        let payload = self.scratch.get(body).unwrap_or_default();
        let a = self.attempts.get_mut(i)?;
        let frames = a.params.frames;
        match a.stage {
            Stage::Failed => return None,
            Stage::Complete => {
                // A retransmission repeats the hello; different bytes at its offsets are
                // another hello under the same keys: read it as well.
                let held = self.candidates.iter().rev().find(|c| c.attempt == i)?;
                let mut differs = false;
                let _ = crypto_stream::walk(frames, payload, |off, data| {
                    differs |= disagrees(&held.msg, off, data);
                    Ok(())
                });
                if !differs {
                    return None;
                }
                a.stage = Stage::Reading;
                a.stream = CryptoStream::default();
            }
            Stage::Reading => {}
        }
        // What the other attempts and the candidates hold counts against MAX_HELD_BYTES.
        let others: usize = self
            .attempts
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != i)
            .map(|(_, a)| a.stream.len())
            .sum::<usize>()
            + self.candidates.iter().map(|c| c.msg.len()).sum::<usize>();
        let limit = MAX_HELD_BYTES.saturating_sub(others);
        let a = self.attempts.get_mut(i)?;
        let mut conflict = false;
        let mut fed = crypto_stream::walk(frames, payload, |off, data| {
            conflict |= a.stream.insert_within(off, data, limit)? == Insert::Conflict;
            Ok(())
        });
        if fed.is_ok() && conflict {
            // The stream restarted at the conflicting frame: take this packet's earlier frames
            // as well.
            fed = crypto_stream::walk(frames, payload, |off, data| {
                a.stream.insert_within(off, data, limit).map(|_| ())
            });
        }
        if let Err(why) = fed {
            return self.fail(i, why, dg);
        }
        let version = a.version;
        match complete(a.params.handshake, a.stream.contiguous()) {
            Ok(None) => None,
            Err(why) => self.fail(i, why, dg),
            Ok(Some(Hello::Tls(msg))) => {
                if let Some(a) = self.attempts.get_mut(i) {
                    a.stage = Stage::Complete;
                    a.stream.release();
                }
                self.push_candidate(i, version, msg);
                None
            }
            Ok(Some(Hello::Chlo(chlo))) => {
                self.finish();
                Some(Progress::GoogleChlo {
                    sni: chlo.sni,
                    user_agent: chlo.user_agent,
                    version,
                })
            }
        }
    }

    /// Attempt `i` cannot give a hello: drop its data; the flow goes on.
    fn fail(&mut self, i: usize, why: GiveUp, dg: &mut Datagram) -> Option<Progress> {
        if let Some(a) = self.attempts.get_mut(i) {
            a.stage = Stage::Failed;
            a.stream.release();
        }
        dg.failed = Some(why);
        None
    }

    /// Hold a complete hello of attempt `attempt`.
    fn push_candidate(&mut self, attempt: usize, version: u32, msg: Box<[u8]>) {
        if self.candidates.len() >= MAX_CANDIDATES {
            self.overflow = true;
            let answered = self.answered;
            let drop = self
                .candidates
                .iter()
                .position(|c| Some(c.attempt) != answered)
                .unwrap_or(0);
            self.candidates.remove(drop);
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.candidates.push(Candidate {
            id,
            attempt,
            version,
            msg,
            name: None,
        });
    }

    /// One unprotected Google QUIC packet: CHLO data from STREAM frames of stream 1.
    fn google_plain(&mut self, p: &gquic::Plain<'_>) -> Progress {
        self.packets = self.packets.saturating_add(1);
        if self.packets > MAX_INITIAL_PACKETS {
            let why = if self.plain.is_empty() {
                GiveUp::TooManyPackets
            } else {
                GiveUp::CryptoGap
            };
            return self.conclude(why);
        }
        if self.plain_version != Some(p.version) {
            self.plain.clear();
            self.chlo_base = None;
            self.plain_version = Some(p.version);
        }
        let stream = &mut self.plain;
        let base = &mut self.chlo_base;
        let fed = gquic::stream_frames(p, |off, data| {
            // A CHLO sent again after a REJ starts at a later stream offset: re-base on it.
            if data.starts_with(gquic::CHLO) && base.is_none_or(|b| off > b) {
                stream.clear();
                *base = Some(off);
            }
            match *base {
                Some(b) if off >= b => stream.insert(off - b, data).map(|_| ()),
                _ => Ok(()),
            }
        });
        if let Err(why) = fed {
            return self.conclude(why);
        }
        match complete(Handshake::Chlo, self.plain.contiguous()) {
            Ok(None) => Progress::NeedMore,
            Err(why) => self.conclude(why),
            Ok(Some(Hello::Chlo(c))) => {
                self.finish();
                Progress::GoogleChlo {
                    sni: c.sni,
                    user_agent: c.user_agent,
                    version: p.version,
                }
            }
            Ok(Some(Hello::Tls(_))) => self.conclude(GiveUp::NotClientHello),
        }
    }
}

/// How [`Initials::open`] placed a packet.
enum Opened {
    /// Opened with attempt `.0`'s keys: packet number and plaintext range in `scratch`.
    Attempt(usize, u64, Range<usize>),
    /// Opened as a new attempt, but [`MAX_ATTEMPTS`] are held: not read (the flow is flagged).
    Ignored,
    /// No keys open it.
    Failed,
}

/// A complete first handshake message.
enum Hello {
    /// A TLS ClientHello (type byte onward).
    Tls(Box<[u8]>),
    /// A Google QUIC CHLO, parsed.
    Chlo(gquic::Chlo),
}

/// Is the first handshake message complete at the start of `prefix` (the contiguous bytes
/// of a CRYPTO stream)?
///
/// # Errors
/// [`GiveUp::NotClientHello`], [`GiveUp::TooLong`], and the CHLO errors of `gquic`.
fn complete(handshake: Handshake, prefix: &[u8]) -> Result<Option<Hello>, GiveUp> {
    match handshake {
        Handshake::Tls => {
            let Some(&[ty, l0, l1, l2]) = prefix.first_chunk::<HANDSHAKE_HEADER_LEN>() else {
                return Ok(None);
            };
            if ty != HANDSHAKE_CLIENT_HELLO {
                return Err(GiveUp::NotClientHello);
            }
            let body = usize::from(l0) << 16 | usize::from(l1) << 8 | usize::from(l2);
            let total = HANDSHAKE_HEADER_LEN + body;
            if total > MAX_CRYPTO_LEN {
                return Err(GiveUp::TooLong);
            }
            Ok(prefix.get(..total).map(|m| Hello::Tls(m.into())))
        }
        Handshake::Chlo => {
            let Some(msg) = gquic::ChloMsg::new(prefix)? else {
                return Ok(None);
            };
            msg.parse().map(|c| Some(Hello::Chlo(c)))
        }
    }
}

/// Do `data` at `offset` and the bytes of `msg` they overlap differ?
fn disagrees(msg: &[u8], offset: u64, data: &[u8]) -> bool {
    let Ok(start) = usize::try_from(offset) else {
        return false;
    };
    match msg.get(start..) {
        Some(held) => held.iter().zip(data).any(|(a, b)| a != b),
        None => false,
    }
}

/// The server name of a ClientHello, lowercased (`None` without one, or when it does not
/// parse): what decides whether two hellos name different destinations.
fn server_name(msg: &[u8]) -> Option<Box<[u8]>> {
    let mut sni = ClientHello::parse(msg).ok()?.sni?;
    sni.make_ascii_lowercase();
    Some(sni.into_boxed_slice())
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
mod tests;
