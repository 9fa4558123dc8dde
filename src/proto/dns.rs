//! DNS messages: a bounded, sans-IO parser of the wire format (RFC 1035 §4) and a TCP framer.
//!
//! The sensor reads DNS to learn which names a client looked up and which addresses the answers
//! bound them to, so that later flows to those addresses can be attributed to a name even when
//! they carry no SNI. It needs the question, the answer section (A, AAAA, CNAME, and the
//! HTTPS/SVCB hints of RFC 9460, which also reveal ALPN and ECH use), the response code and the
//! truncation flag, and nothing else.
//!
//! Guarantees:
//! - Every function is pure and total: hostile or truncated input gives a [`DnsError`], never a
//!   panic, an out-of-bounds index or an unbounded loop.
//! - [`MessageView`] reads the borrowed message in place and allocates nothing: it validates the
//!   whole message once, then offers at most [`MAX_QUESTIONS`] questions and [`MAX_RECORDS`]
//!   answers through iterators whose names are [`NameRef`]s, compared label by label and written
//!   out as text only when asked, into the caller's buffer. Each name is bounded by
//!   [`MAX_NAME_LEN`] wire bytes. Authority and additional records are validated (name, fixed
//!   fields, RDATA length) without being decoded. [`Message`] is an owned copy made from the
//!   view, for tests and tools; the engine reads through the view.
//! - Compression pointers (RFC 1035 §4.1.4) are followed only strictly backwards, at most
//!   [`MAX_POINTER_HOPS`] per name, so a name is read in time bounded by the message length.
//! - Names keep the case they had on the wire (the case a resolver echoes back is itself a
//!   signal, e.g. 0x20 randomisation); comparisons use [`NameRef::eq_ignore_case`] and
//!   [`Name::eq_ignore_case`], which agree.
//! - DNS over TCP (RFC 7766 §8) goes through [`TcpFramer`], whose buffer never exceeds
//!   [`MAX_TCP_BUFFER`] bytes.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::borrow::Cow;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Longest name accepted, in wire bytes: length octets, label bytes and the terminating root
/// octet (RFC 1035 §2.3.4, §3.1). A longer name is [`DnsError::NameTooLong`].
///
/// Memory cost: a kept [`Name`] holds at most 4 presentation bytes per wire byte (every byte
/// escaped as `\DDD`), so about 1 KiB in the worst case and the name's length in practice.
pub const MAX_NAME_LEN: usize = 255;

/// Compression pointers followed while reading one name.
///
/// Pointers must already point strictly backwards, which alone guarantees termination; this
/// bound additionally caps the work per name. Encoders point each name at an earlier occurrence
/// of its suffix, so a legitimate name takes one or two hops; 16 leaves room for unusual
/// encoders while a pointer-to-pointer chain built to burn CPU stops early with
/// [`DnsError::PointerLoop`].
pub const MAX_POINTER_HOPS: usize = 16;

/// Answer records kept per message; further answers are validated and counted in
/// [`Message::skipped_answers`].
///
/// Memory cost: a record holds its owner name and at most one more name or SVCB summary, so the
/// answers of one message stay under about 32 × 4 KiB in the worst case and a few KiB in
/// practice. Real answers rarely exceed a CNAME chain plus a dozen addresses.
pub const MAX_RECORDS: usize = 32;

/// Questions kept per message; further ones are validated and counted in
/// [`Message::skipped_questions`]. Real messages carry exactly one (RFC 9619).
pub const MAX_QUESTIONS: usize = 4;

/// CNAME records followed by [`Message::resolved_addresses`] from the question name. Real chains
/// are at most four or five long (CDN hand-offs); the bound also stops CNAME loops.
pub const MAX_CNAME_HOPS: usize = 16;

/// ALPN identifiers, and separately IPv4 and IPv6 hints, kept per SVCB/HTTPS record; the rest of
/// a longer list is ignored. Real records list two or three of each.
pub const MAX_SVCB_ITEMS: usize = 16;

/// Size of the fixed message header (RFC 1035 §4.1.1).
pub const HEADER_LEN: usize = 12;

/// Largest buffer a [`TcpFramer`] holds: one 2-byte length prefix and the largest message it can
/// announce (RFC 7766 §8, RFC 1035 §4.2.2). Memory cost: 64 KiB per framer at most.
pub const MAX_TCP_BUFFER: usize = 2 + u16::MAX as usize;

/// Resource record type code points (IANA "Resource Record (RR) TYPEs") this module reads or
/// names. Types stay raw `u16` values in [`Record::rtype`]; unknown ones survive.
pub mod rtype {
    /// IPv4 host address (RFC 1035 §3.4.1).
    pub const A: u16 = 1;
    /// Authoritative name server (RFC 1035 §3.3.11).
    pub const NS: u16 = 2;
    /// Canonical name for an alias (RFC 1035 §3.3.1).
    pub const CNAME: u16 = 5;
    /// Start of a zone of authority (RFC 1035 §3.3.13).
    pub const SOA: u16 = 6;
    /// Domain name pointer (RFC 1035 §3.3.12).
    pub const PTR: u16 = 12;
    /// Mail exchange (RFC 1035 §3.3.9).
    pub const MX: u16 = 15;
    /// Text strings (RFC 1035 §3.3.14).
    pub const TXT: u16 = 16;
    /// IPv6 host address (RFC 3596 §2.1).
    pub const AAAA: u16 = 28;
    /// Service location (RFC 2782).
    pub const SRV: u16 = 33;
    /// EDNS(0) pseudo-record (RFC 6891 §6.1.1).
    pub const OPT: u16 = 41;
    /// Delegation signer (RFC 4034 §5).
    pub const DS: u16 = 43;
    /// DNSSEC signature (RFC 4034 §3).
    pub const RRSIG: u16 = 46;
    /// Next secure record (RFC 4034 §4).
    pub const NSEC: u16 = 47;
    /// DNSSEC public key (RFC 4034 §2).
    pub const DNSKEY: u16 = 48;
    /// General-purpose service binding (RFC 9460 §2).
    pub const SVCB: u16 = 64;
    /// Service binding for HTTPS origins (RFC 9460 §9).
    pub const HTTPS: u16 = 65;
    /// Query type: all records (RFC 1035 §3.2.3, RFC 8482).
    pub const ANY: u16 = 255;
    /// Certification authority authorization (RFC 8659).
    pub const CAA: u16 = 257;
}

/// SvcParamKey code points (RFC 9460 §14.3.2) read from SVCB and HTTPS records.
pub mod svc_key {
    /// `mandatory`: keys the client must understand (RFC 9460 §8).
    pub const MANDATORY: u16 = 0;
    /// `alpn`: additional supported protocols (RFC 9460 §7.1).
    pub const ALPN: u16 = 1;
    /// `no-default-alpn`: the default protocol is not offered (RFC 9460 §7.1).
    pub const NO_DEFAULT_ALPN: u16 = 2;
    /// `port`: alternative port (RFC 9460 §7.2).
    pub const PORT: u16 = 3;
    /// `ipv4hint` (RFC 9460 §7.3).
    pub const IPV4HINT: u16 = 4;
    /// `ech`: an ECHConfigList (RFC 9460 §14.3.2, draft-ietf-tls-svcb-ech).
    pub const ECH: u16 = 5;
    /// `ipv6hint` (RFC 9460 §7.3).
    pub const IPV6HINT: u16 = 6;
}

/// Why bytes were not turned into a [`Message`]. Each variant is one drop-reason counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DnsError {
    /// The message ends inside the header, a name, a fixed field or a record's RDATA, or holds
    /// fewer records than its header counts (RFC 1035 §4.1.1). A snapped capture or not DNS.
    #[error("message ends inside a field")]
    Truncated,
    /// A compression pointer leads back into bytes already read for the same name (a self
    /// pointer or a cycle), or a name needs more than [`MAX_POINTER_HOPS`] pointers.
    #[error("compression pointer loop")]
    PointerLoop,
    /// A compression pointer points forward or outside the message. RFC 1035 §4.1.4 pointers
    /// refer to a "prior occurrence", so a conforming encoder never writes one.
    #[error("compression pointer points forward or outside the message")]
    BadPointer,
    /// A name is longer than [`MAX_NAME_LEN`] wire bytes (RFC 1035 §2.3.4).
    #[error("name longer than 255 wire bytes")]
    NameTooLong,
    /// A label length octet starts with bits `01` or `10`: the extended label types of RFC 6891
    /// §5 and the binary labels of RFC 2673, both deprecated and never sent by real resolvers.
    #[error("extended or binary label type")]
    BadLabel,
    /// An answer's RDATA does not match its type: an A record not 4 bytes long (RFC 1035 §3.4.1),
    /// an AAAA record not 16 (RFC 3596 §2.2), a CNAME whose name does not fill its RDATA, or an
    /// SVCB/HTTPS record too short for its priority and target name (RFC 9460 §2.2).
    #[error("RDATA does not match its record type")]
    BadRdata,
    /// A DNS-over-TCP length prefix announces a message shorter than the 12-byte header.
    #[error("TCP length prefix shorter than a DNS header")]
    BadTcpLength,
}

impl DnsError {
    /// Every variant, in declaration order, for registering drop counters up front.
    pub const ALL: [DnsError; 7] = [
        DnsError::Truncated,
        DnsError::PointerLoop,
        DnsError::BadPointer,
        DnsError::NameTooLong,
        DnsError::BadLabel,
        DnsError::BadRdata,
        DnsError::BadTcpLength,
    ];

    /// Stable snake_case label for drop counters and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            DnsError::Truncated => "truncated",
            DnsError::PointerLoop => "pointer_loop",
            DnsError::BadPointer => "bad_pointer",
            DnsError::NameTooLong => "name_too_long",
            DnsError::BadLabel => "bad_label",
            DnsError::BadRdata => "bad_rdata",
            DnsError::BadTcpLength => "bad_tcp_length",
        }
    }
}

/// Mnemonic of a record type (RFC 1035 §3.2.2 and later registrations), or the generic
/// `TYPE<n>` form of RFC 3597 §5 for types this module does not name.
pub fn type_str(t: u16) -> Cow<'static, str> {
    let s = match t {
        rtype::A => "A",
        rtype::NS => "NS",
        rtype::CNAME => "CNAME",
        rtype::SOA => "SOA",
        rtype::PTR => "PTR",
        rtype::MX => "MX",
        rtype::TXT => "TXT",
        rtype::AAAA => "AAAA",
        rtype::SRV => "SRV",
        rtype::OPT => "OPT",
        rtype::DS => "DS",
        rtype::RRSIG => "RRSIG",
        rtype::NSEC => "NSEC",
        rtype::DNSKEY => "DNSKEY",
        rtype::SVCB => "SVCB",
        rtype::HTTPS => "HTTPS",
        rtype::ANY => "ANY",
        rtype::CAA => "CAA",
        _ => return Cow::Owned(format!("TYPE{t}")),
    };
    Cow::Borrowed(s)
}

/// A domain name in presentation form, exactly as the wire spelled it.
///
/// Labels are joined by `.` with no trailing dot; the root name is empty. Case is kept. Label
/// bytes that are `.`, `\`, space, a control byte or not ASCII are written as `\DDD` (three
/// decimal digits, RFC 4343 §2.1, RFC 1035 §5.1), so the bytes are always printable ASCII and two
/// different wire names never give the same presentation: `a.b` as one label is `a\046b`, never
/// confused with the two labels `a` and `b`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Name(pub Vec<u8>);

impl Name {
    /// Does this name equal `other` (presentation bytes, no trailing dot) ignoring ASCII case?
    ///
    /// DNS names compare case-insensitively for ASCII letters only (RFC 4343 §3); escaped bytes
    /// are digits, which case folding leaves alone, so comparing presentation bytes is exact.
    pub fn eq_ignore_case(&self, other: &[u8]) -> bool {
        self.0.eq_ignore_ascii_case(other)
    }

    /// The name with ASCII letters lowercased (RFC 4343 §3), for use as a map key.
    pub fn to_lowercase_bytes(&self) -> Vec<u8> {
        self.0.to_ascii_lowercase()
    }

    /// Presentation bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Is this the root name (no labels)?
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Name {
    /// Writes the presentation form. Parsed names are printable ASCII; bytes put into the public
    /// field by hand that are not UTF-8 are replaced, never escaped twice.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.0))
    }
}

/// One entry of the question section (RFC 1035 §4.1.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// QNAME.
    pub name: Name,
    /// QTYPE, raw (see [`rtype`] and [`type_str`]).
    pub qtype: u16,
    /// QCLASS, raw; 1 is IN. The top bit is the mDNS unicast-response bit (RFC 6762 §5.4).
    pub qclass: u16,
}

/// Decoded RDATA of an answer record; types the sensor has no use for are [`RData::Other`] and
/// keep their type in [`Record::rtype`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RData {
    /// IPv4 address (RFC 1035 §3.4.1).
    A(Ipv4Addr),
    /// IPv6 address (RFC 3596 §2.2).
    Aaaa(Ipv6Addr),
    /// Canonical name the owner is an alias for (RFC 1035 §3.3.1).
    Cname(Name),
    /// HTTPS service binding (RFC 9460 §9).
    Https(Svcb),
    /// General service binding (RFC 9460 §2).
    Svcb(Svcb),
    /// Any other type; the RDATA was bounds-checked but not decoded.
    Other,
}

/// Summary of an SVCB or HTTPS record (RFC 9460 §2.2): the target and the SvcParams that say how
/// a client will connect (ALPN, ECH, address hints).
///
/// SvcParams are read in order. RFC 9460 §2.2 requires strictly increasing keys and calls a
/// record that breaks this malformed; this summary then keeps the parameters read before the
/// offending key, ignores the rest and sets [`Svcb::params_malformed`] rather than failing the
/// whole message, because the answers around it are still good data. A parameter whose length
/// overruns the RDATA also ends the list; a parameter whose value is malformed (an empty ALPN
/// id, a hint list that is not a whole number of addresses) keeps what it read, sets the flag
/// and the list goes on, since its length still frames the next one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Svcb {
    /// SvcPriority; 0 is AliasMode (RFC 9460 §2.4.2).
    pub priority: u16,
    /// TargetName; the root name means the owner name itself in ServiceMode (RFC 9460 §2.5).
    /// RFC 9460 §2.2 forbids compressing it; a compressed one is accepted anyway.
    pub target: Name,
    /// `alpn` protocol ids, in order, at most [`MAX_SVCB_ITEMS`] (RFC 9460 §7.1.1).
    pub alpn: Vec<Vec<u8>>,
    /// `no-default-alpn` present (RFC 9460 §7.1.1).
    pub no_default_alpn: bool,
    /// `port`, if present and two bytes long (RFC 9460 §7.2).
    pub port: Option<u16>,
    /// `ech` present: the service offers Encrypted Client Hello, so later TLS to it may hide
    /// its SNI.
    pub ech: bool,
    /// Length of the `ech` value (the ECHConfigList); 0 when absent. The keys are not kept.
    pub ech_config_len: u16,
    /// `public_name` of the first ECHConfig (draft-ietf-tls-esni §4): the outer SNI a client
    /// using this configuration will send, which tells real ECH apart from ECH GREASE later.
    pub ech_public_name: Option<Vec<u8>>,
    /// `ipv4hint` addresses, at most [`MAX_SVCB_ITEMS`] (RFC 9460 §7.3).
    pub ipv4hint: Vec<Ipv4Addr>,
    /// `ipv6hint` addresses, at most [`MAX_SVCB_ITEMS`] (RFC 9460 §7.3).
    pub ipv6hint: Vec<Ipv6Addr>,
    /// The SvcParams broke a rule of RFC 9460 §2.2 or §7 (see the type's doc); what precedes
    /// the fault is kept.
    pub params_malformed: bool,
}

/// The `public_name` of the first ECHConfig (version 0xfe0d) in an ECHConfigList.
///
/// Layout (draft-ietf-tls-esni-22 §4): list length (2); per config: version (2), length (2),
/// then HpkeKeyConfig { config_id (1), kem_id (2), public_key <1..2^16-1>,
/// cipher_suites <4..2^16-4> }, maximum_name_length (1), public_name <1..255>, extensions.
pub fn ech_public_name(list: &[u8]) -> Option<&[u8]> {
    let mut at = 2usize;
    let u16_at = |b: &[u8], i: usize| Some(u16::from_be_bytes([*b.get(i)?, *b.get(i + 1)?]) as usize);
    let version = u16_at(list, at)?;
    let len = u16_at(list, at + 2)?;
    at += 4;
    let config = list.get(at..at + len)?;
    if version != 0xfe0d {
        return None;
    }
    let mut i = 3; // config_id, kem_id
    i += 2 + u16_at(config, i)?; // public_key
    i += 2 + u16_at(config, i)?; // cipher_suites
    i += 1; // maximum_name_length
    let n = *config.get(i)? as usize;
    let name = config.get(i + 1..i + 1 + n)?;
    (!name.is_empty()).then_some(name)
}

/// One answer record (RFC 1035 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Owner name.
    pub name: Name,
    /// TYPE, raw.
    pub rtype: u16,
    /// CLASS, raw; 1 is IN. The top bit is the mDNS cache-flush bit (RFC 6762 §10.2).
    pub class: u16,
    /// TTL in seconds, as on the wire.
    pub ttl: u32,
    /// Decoded RDATA.
    pub data: RData,
}

/// Summary of one DNS message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Transaction ID (RFC 1035 §4.1.1).
    pub id: u16,
    /// QR bit: this is a response.
    pub response: bool,
    /// OPCODE (0 query, 4 notify, 5 update, ...).
    pub opcode: u8,
    /// RCODE, with the upper 8 bits of the EDNS extended RCODE when an OPT record is present
    /// (RFC 6891 §6.1.3), so 16 is BADVERS rather than NOERROR.
    pub rcode: u16,
    /// The raw second header word (QR, OPCODE, AA, TC, RD, RA, Z, AD, CD, RCODE), for flags this
    /// summary does not break out.
    pub flags: u16,
    /// Question section, at most [`MAX_QUESTIONS`].
    pub questions: Vec<Question>,
    /// Answer section, at most [`MAX_RECORDS`]. Authority and additional records are validated
    /// but not kept.
    pub answers: Vec<Record>,
    /// TC bit: the server cut the message to fit (RFC 1035 §4.1.1, RFC 2181 §9). When set, a
    /// record section that runs out of bytes ends the parse with what was read instead of failing.
    pub truncated: bool,
    /// Questions beyond [`MAX_QUESTIONS`], validated and dropped.
    pub skipped_questions: u16,
    /// Answers beyond [`MAX_RECORDS`], validated and dropped.
    pub skipped_answers: u16,
}

/// Flag bits of the second header word (RFC 1035 §4.1.1).
const FLAG_QR: u16 = 0x8000;
const FLAG_TC: u16 = 0x0200;

impl Message {
    /// Parses one DNS message (a UDP payload, or one frame from [`TcpFramer`]) into owned
    /// values: [`MessageView::parse`], then a copy of what the view offers. The engine reads
    /// through the view and never builds a `Message`.
    ///
    /// # Errors
    /// As [`MessageView::parse`].
    pub fn parse(msg: &[u8]) -> Result<Message, DnsError> {
        MessageView::parse(msg).map(|v| v.to_message())
    }

    /// Follows the CNAME chain (RFC 1034 §3.6.2) from the first question's name through the
    /// kept answers and returns the A and AAAA addresses it reaches; see
    /// [`MessageView::resolved_addresses`], which walks the same chain the same way.
    pub fn resolved_addresses(&self) -> Vec<(IpAddr, u32)> {
        let mut out = Vec::new();
        let Some(q) = self.questions.first() else {
            return out;
        };
        let answers = || {
            self.answers.iter().map(|r| {
                let link = match &r.data {
                    RData::A(a) => Link::Addr(IpAddr::V4(*a)),
                    RData::Aaaa(a) => Link::Addr(IpAddr::V6(*a)),
                    RData::Cname(target) => Link::Alias(target),
                    _ => Link::Nothing,
                };
                (&r.name, r.ttl, link)
            })
        };
        follow_chain(&q.name, answers, |a: &Name, b: &Name| a.eq_ignore_case(&b.0), |addr, ttl| {
            out.push((addr, ttl));
        });
        out
    }
}

/// What an answer contributes to a CNAME chain walk.
enum Link<N> {
    /// An A or AAAA address for its owner.
    Addr(IpAddr),
    /// A CNAME: its owner is an alias for this name.
    Alias(N),
    /// Nothing.
    Nothing,
}

/// The CNAME chain walk shared by [`MessageView::resolved_addresses`] and
/// [`Message::resolved_addresses`]: from `start`, every answer whose owner is the current name
/// gives its address to `found` (with the smallest TTL along the chain, a TTL with its top bit
/// set counting as 0, RFC 2181 §8), and the first CNAME among them leads on. At most
/// [`MAX_CNAME_HOPS`] CNAMEs are followed and a name already visited ends the walk. `answers`
/// is called once per name visited; nothing is allocated.
fn follow_chain<N: Copy, I: Iterator<Item = (N, u32, Link<N>)>>(
    start: N,
    answers: impl Fn() -> I,
    same: impl Fn(N, N) -> bool,
    mut found: impl FnMut(IpAddr, u32),
) {
    let mut visited: [Option<N>; MAX_CNAME_HOPS + 1] = [None; MAX_CNAME_HOPS + 1];
    let mut seen = 0usize;
    let mut current = start;
    let mut chain_ttl = u32::MAX;
    for _ in 0..=MAX_CNAME_HOPS {
        if visited.iter().flatten().any(|v| same(*v, current)) {
            break;
        }
        if let Some(slot) = visited.get_mut(seen) {
            *slot = Some(current);
            seen += 1;
        }
        let mut next: Option<(N, u32)> = None;
        for (owner, ttl, link) in answers() {
            if !same(owner, current) {
                continue;
            }
            let ttl = clamp_ttl(ttl).min(chain_ttl);
            match link {
                Link::Addr(a) => found(a, ttl),
                Link::Alias(target) if next.is_none() => next = Some((target, ttl)),
                _ => {}
            }
        }
        match next {
            Some((target, ttl)) => {
                current = target;
                chain_ttl = ttl;
            }
            None => break,
        }
    }
}

/// RFC 2181 §8: a TTL with the most significant bit set is treated as zero.
fn clamp_ttl(ttl: u32) -> u32 {
    if ttl > i32::MAX as u32 {
        0
    } else {
        ttl
    }
}

/// One DNS message read in place: the header, validated, and iterators over the kept questions
/// and answers, whose names are [`NameRef`]s into the message. Parsing and iterating allocate
/// nothing.
///
/// [`MessageView::parse`] walks the whole message once, with every check the format needs, so
/// the iterators only re-read what was validated. The fields mean what the same fields of
/// [`Message`] mean.
#[derive(Debug, Clone, Copy)]
pub struct MessageView<'a> {
    msg: &'a [u8],
    /// Transaction ID (RFC 1035 §4.1.1).
    pub id: u16,
    /// QR bit: this is a response.
    pub response: bool,
    /// OPCODE.
    pub opcode: u8,
    /// RCODE, extended by an OPT record (see [`Message::rcode`]).
    pub rcode: u16,
    /// The raw second header word.
    pub flags: u16,
    /// TC bit (see [`Message::truncated`]).
    pub truncated: bool,
    /// Questions beyond [`MAX_QUESTIONS`], validated and not offered.
    pub skipped_questions: u16,
    /// Answers beyond [`MAX_RECORDS`], validated and not offered.
    pub skipped_answers: u16,
    /// Questions offered by [`MessageView::questions`], at most [`MAX_QUESTIONS`].
    questions: u16,
    /// Answers offered by [`MessageView::answers`], at most [`MAX_RECORDS`]: with the TC bit,
    /// only those read whole.
    answers: u16,
    /// Offset of the answer section.
    answers_start: usize,
}

impl<'a> MessageView<'a> {
    /// Reads and validates one DNS message (a UDP payload, or one frame from [`TcpFramer`]).
    ///
    /// Trailing bytes after the last counted record are ignored (some middleboxes pad).
    ///
    /// # Errors
    /// Any [`DnsError`] except `BadTcpLength`: the first structural fault found, in wire order.
    /// A fault in the authority or additional section fails the message too, since it means the
    /// counts or lengths cannot be trusted. With the TC bit set, running out of bytes after the
    /// question section is not an error (see [`Message::truncated`]).
    pub fn parse(msg: &'a [u8]) -> Result<MessageView<'a>, DnsError> {
        let mut c = Cursor { msg, pos: 0 };
        let id = c.u16()?;
        let flags = c.u16()?;
        let qdcount = c.u16()?;
        let ancount = c.u16()?;
        let nscount = c.u16()?;
        let arcount = c.u16()?;
        let truncated = flags & FLAG_TC != 0;
        let mut v = MessageView {
            msg,
            id,
            response: flags & FLAG_QR != 0,
            opcode: ((flags >> 11) & 0x0f) as u8,
            rcode: flags & 0x000f,
            flags,
            truncated,
            skipped_questions: 0,
            skipped_answers: 0,
            questions: 0,
            answers: 0,
            answers_start: 0,
        };
        for _ in 0..qdcount {
            c.name()?;
            c.take(4)?;
            if usize::from(v.questions) < MAX_QUESTIONS {
                v.questions += 1;
            } else {
                v.skipped_questions += 1;
            }
        }
        v.answers_start = c.pos;
        match v.read_records(&mut c, ancount, nscount, arcount) {
            Err(DnsError::Truncated) if truncated => Ok(v),
            Err(e) => Err(e),
            Ok(()) => Ok(v),
        }
    }

    /// Validates the three record sections, counting the answers offered and reading the EDNS
    /// extended RCODE.
    fn read_records(&mut self, c: &mut Cursor<'a>, ancount: u16, nscount: u16, arcount: u16) -> Result<(), DnsError> {
        for _ in 0..ancount {
            let raw = c.record()?;
            if usize::from(self.answers) < MAX_RECORDS {
                raw.decode(c.msg)?;
                self.answers += 1;
            } else {
                self.skipped_answers += 1;
            }
        }
        for _ in 0..nscount {
            c.record()?;
        }
        let mut seen_opt = false;
        for _ in 0..arcount {
            let raw = c.record()?;
            // RFC 6891 §6.1.1: at most one OPT; a second one is a FORMERR for a server, and the
            // sensor simply keeps the first. Its TTL field carries EXTENDED-RCODE in the top byte.
            if raw.rtype == rtype::OPT && !seen_opt {
                seen_opt = true;
                self.rcode |= ((raw.ttl >> 24) as u16) << 4;
            }
        }
        Ok(())
    }

    /// The kept questions, in wire order.
    pub fn questions(&self) -> Questions<'a> {
        Questions { c: Cursor { msg: self.msg, pos: HEADER_LEN }, left: self.questions }
    }

    /// The kept answers, in wire order.
    pub fn answers(&self) -> Answers<'a> {
        Answers { c: Cursor { msg: self.msg, pos: self.answers_start }, left: self.answers }
    }

    /// Number of questions [`MessageView::questions`] gives.
    pub fn question_count(&self) -> usize {
        usize::from(self.questions)
    }

    /// Number of answers [`MessageView::answers`] gives.
    pub fn answer_count(&self) -> usize {
        usize::from(self.answers)
    }

    /// Follows the CNAME chain (RFC 1034 §3.6.2) from the first question's name through the
    /// kept answers and calls `found` with the A and AAAA addresses it reaches, in answer order,
    /// each with the smallest TTL along the chain that led to it: that is how long the
    /// name-to-address binding may be cached, since it lapses when any link does.
    ///
    /// Owner names compare case-insensitively. At most [`MAX_CNAME_HOPS`] CNAMEs are followed
    /// and a name already visited ends the walk, so CNAME loops terminate. A TTL with its top bit
    /// set counts as 0 (RFC 2181 §8). Messages without a question give nothing. Allocates
    /// nothing.
    pub fn resolved_addresses(&self, found: impl FnMut(IpAddr, u32)) {
        let Some(q) = self.questions().next() else {
            return;
        };
        let answers = || {
            self.answers().map(|r| {
                let link = match r.data {
                    RDataRef::A(a) => Link::Addr(IpAddr::V4(a)),
                    RDataRef::Aaaa(a) => Link::Addr(IpAddr::V6(a)),
                    RDataRef::Cname(target) => Link::Alias(target),
                    _ => Link::Nothing,
                };
                (r.name, r.ttl, link)
            })
        };
        follow_chain(q.name, answers, |a: NameRef<'_>, b: NameRef<'_>| a.eq_ignore_case(&b), found);
    }

    /// The owned copy of everything the view offers.
    pub fn to_message(&self) -> Message {
        Message {
            id: self.id,
            response: self.response,
            opcode: self.opcode,
            rcode: self.rcode,
            flags: self.flags,
            questions: self
                .questions()
                .map(|q| Question { name: q.name.to_name(), qtype: q.qtype, qclass: q.qclass })
                .collect(),
            answers: self
                .answers()
                .map(|r| Record { name: r.name.to_name(), rtype: r.rtype, class: r.class, ttl: r.ttl, data: r.data.to_owned() })
                .collect(),
            truncated: self.truncated,
            skipped_questions: self.skipped_questions,
            skipped_answers: self.skipped_answers,
        }
    }
}

/// Iterator over the kept questions of a [`MessageView`].
#[derive(Debug, Clone)]
pub struct Questions<'a> {
    c: Cursor<'a>,
    left: u16,
}

impl<'a> Iterator for Questions<'a> {
    type Item = QuestionRef<'a>;

    fn next(&mut self) -> Option<QuestionRef<'a>> {
        self.left = self.left.checked_sub(1)?;
        let start = self.c.pos;
        // Validated by `MessageView::parse`; an error here cannot happen and ends the iteration.
        self.c.name().ok()?;
        let qtype = self.c.u16().ok()?;
        let qclass = self.c.u16().ok()?;
        Some(QuestionRef { name: NameRef { msg: self.c.msg, start }, qtype, qclass })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(usize::from(self.left)))
    }
}

/// Iterator over the kept answers of a [`MessageView`].
#[derive(Debug, Clone)]
pub struct Answers<'a> {
    c: Cursor<'a>,
    left: u16,
}

impl<'a> Iterator for Answers<'a> {
    type Item = RecordRef<'a>;

    fn next(&mut self) -> Option<RecordRef<'a>> {
        self.left = self.left.checked_sub(1)?;
        // Validated by `MessageView::parse`; an error here cannot happen and ends the iteration.
        let raw = self.c.record().ok()?;
        let data = raw.decode(self.c.msg).ok()?;
        Some(RecordRef {
            name: NameRef { msg: self.c.msg, start: raw.name_start },
            rtype: raw.rtype,
            class: raw.class,
            ttl: raw.ttl,
            data,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(usize::from(self.left)))
    }
}

/// One question of a [`MessageView`] (see [`Question`]).
#[derive(Debug, Clone, Copy)]
pub struct QuestionRef<'a> {
    /// QNAME.
    pub name: NameRef<'a>,
    /// QTYPE, raw.
    pub qtype: u16,
    /// QCLASS, raw.
    pub qclass: u16,
}

/// One answer record of a [`MessageView`] (see [`Record`]).
#[derive(Debug, Clone, Copy)]
pub struct RecordRef<'a> {
    /// Owner name.
    pub name: NameRef<'a>,
    /// TYPE, raw.
    pub rtype: u16,
    /// CLASS, raw.
    pub class: u16,
    /// TTL in seconds, as on the wire.
    pub ttl: u32,
    /// Decoded RDATA.
    pub data: RDataRef<'a>,
}

/// Decoded RDATA of an answer of a [`MessageView`] (see [`RData`]).
#[derive(Debug, Clone, Copy)]
pub enum RDataRef<'a> {
    /// IPv4 address.
    A(Ipv4Addr),
    /// IPv6 address.
    Aaaa(Ipv6Addr),
    /// Canonical name the owner is an alias for.
    Cname(NameRef<'a>),
    /// HTTPS service binding.
    Https(SvcbRef<'a>),
    /// General service binding.
    Svcb(SvcbRef<'a>),
    /// Any other type; the RDATA was bounds-checked but not decoded.
    Other,
}

impl RDataRef<'_> {
    /// The owned copy.
    pub fn to_owned(&self) -> RData {
        match self {
            RDataRef::A(a) => RData::A(*a),
            RDataRef::Aaaa(a) => RData::Aaaa(*a),
            RDataRef::Cname(n) => RData::Cname(n.to_name()),
            RDataRef::Https(s) => RData::Https(s.to_owned()),
            RDataRef::Svcb(s) => RData::Svcb(s.to_owned()),
            RDataRef::Other => RData::Other,
        }
    }
}

/// Summary of an SVCB or HTTPS record of a [`MessageView`]; the fields and the rules for
/// malformed parameters are those of [`Svcb`], the lists are read in place.
#[derive(Debug, Clone, Copy)]
pub struct SvcbRef<'a> {
    /// SvcPriority; 0 is AliasMode.
    pub priority: u16,
    /// TargetName.
    pub target: NameRef<'a>,
    /// The `alpn` value, read by [`SvcbRef::alpn`] up to its first fault.
    alpn: &'a [u8],
    /// `no-default-alpn` present.
    pub no_default_alpn: bool,
    /// `port`, if present and two bytes long.
    pub port: Option<u16>,
    /// `ech` present.
    pub ech: bool,
    /// Length of the `ech` value; 0 when absent.
    pub ech_config_len: u16,
    /// `public_name` of the first ECHConfig (see [`ech_public_name`]).
    pub ech_public_name: Option<&'a [u8]>,
    /// The `ipv4hint` value.
    ipv4hint: &'a [u8],
    /// The `ipv6hint` value.
    ipv6hint: &'a [u8],
    /// The SvcParams broke a rule of RFC 9460 §2.2 or §7; what precedes the fault is kept.
    pub params_malformed: bool,
}

impl<'a> SvcbRef<'a> {
    /// `alpn` protocol ids, in order, at most [`MAX_SVCB_ITEMS`]; a malformed list gives the ids
    /// before its fault.
    pub fn alpn(&self) -> AlpnIds<'a> {
        AlpnIds { rest: self.alpn, left: MAX_SVCB_ITEMS }
    }

    /// `ipv4hint` addresses, at most [`MAX_SVCB_ITEMS`].
    pub fn ipv4hint(&self) -> impl Iterator<Item = Ipv4Addr> + 'a {
        self.ipv4hint
            .chunks_exact(4)
            .take(MAX_SVCB_ITEMS)
            .filter_map(|a| <[u8; 4]>::try_from(a).ok().map(Ipv4Addr::from))
    }

    /// `ipv6hint` addresses, at most [`MAX_SVCB_ITEMS`].
    pub fn ipv6hint(&self) -> impl Iterator<Item = Ipv6Addr> + 'a {
        self.ipv6hint
            .chunks_exact(16)
            .take(MAX_SVCB_ITEMS)
            .filter_map(|a| <[u8; 16]>::try_from(a).ok().map(Ipv6Addr::from))
    }

    /// The owned copy.
    pub fn to_owned(&self) -> Svcb {
        Svcb {
            priority: self.priority,
            target: self.target.to_name(),
            alpn: self.alpn().map(<[u8]>::to_vec).collect(),
            no_default_alpn: self.no_default_alpn,
            port: self.port,
            ech: self.ech,
            ech_config_len: self.ech_config_len,
            ech_public_name: self.ech_public_name.map(<[u8]>::to_vec),
            ipv4hint: self.ipv4hint().collect(),
            ipv6hint: self.ipv6hint().collect(),
            params_malformed: self.params_malformed,
        }
    }
}

/// The ids of an `alpn` value (RFC 9460 §7.1.1): non-empty, length-prefixed; the iteration ends
/// at the end of the value, at its first fault (an empty id, an id overrunning the value), or
/// after [`MAX_SVCB_ITEMS`] ids.
#[derive(Debug, Clone)]
pub struct AlpnIds<'a> {
    rest: &'a [u8],
    left: usize,
}

impl<'a> Iterator for AlpnIds<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        self.left = self.left.checked_sub(1)?;
        let (&len, tail) = self.rest.split_first()?;
        let len = usize::from(len);
        if len == 0 || len > tail.len() {
            self.rest = &[];
            return None;
        }
        let (id, tail) = tail.split_at(len);
        self.rest = tail;
        Some(id)
    }
}

/// Is an `alpn` value well formed (RFC 9460 §7.1.1): a non-empty list of non-empty
/// length-prefixed ids filling the value exactly?
fn alpn_well_formed(value: &[u8]) -> bool {
    let mut rest = value;
    if rest.is_empty() {
        return false;
    }
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len);
        if len == 0 || len > tail.len() {
            return false;
        }
        rest = tail.get(len..).unwrap_or_default();
    }
    true
}

/// A domain name inside a message, borrowed: where it starts and the message it lives in (cut
/// at the end of its record's RDATA for names inside RDATA), so that compression pointers can be
/// followed. Only a [`MessageView`] makes one, after validating the name.
///
/// Nothing is copied until asked: [`NameRef::write_into`] appends the presentation form of
/// [`Name`] to a caller's buffer, [`NameRef::eq_ignore_case`] compares label by label, and
/// [`fmt::Display`] writes the presentation form.
#[derive(Clone, Copy)]
pub struct NameRef<'a> {
    msg: &'a [u8],
    start: usize,
}

impl<'a> NameRef<'a> {
    /// The labels, in order, as on the wire (the root label excluded).
    pub fn labels(&self) -> Labels<'a> {
        Labels { msg: self.msg, pos: self.start, floor: self.start, hops: 0 }
    }

    /// Is this the root name (no labels)?
    pub fn is_root(&self) -> bool {
        self.labels().next().is_none()
    }

    /// Appends the presentation form (see [`Name`]) to `out`.
    pub fn write_into(&self, out: &mut Vec<u8>) {
        for (i, label) in self.labels().enumerate() {
            if i > 0 {
                out.push(b'.');
            }
            push_label(out, label);
        }
    }

    /// Length of the presentation form, in bytes.
    pub fn presentation_len(&self) -> usize {
        let labels = self.labels().map(|l| l.iter().map(|&b| if plain(b) { 1 } else { 4 }).sum::<usize>());
        labels.enumerate().map(|(i, n)| n + usize::from(i > 0)).sum()
    }

    /// Does this name equal `other` ignoring ASCII case (RFC 4343 §3)? The same answer as
    /// [`Name::eq_ignore_case`] on the presentation forms, without making them.
    pub fn eq_ignore_case(&self, other: &NameRef<'_>) -> bool {
        let (mut a, mut b) = (self.labels(), other.labels());
        loop {
            match (a.next(), b.next()) {
                (None, None) => return true,
                (Some(x), Some(y)) if x.eq_ignore_ascii_case(y) => {}
                _ => return false,
            }
        }
    }

    /// The owned presentation form.
    pub fn to_name(&self) -> Name {
        let mut out = Vec::with_capacity(self.presentation_len());
        self.write_into(&mut out);
        Name(out)
    }
}

impl fmt::Display for NameRef<'_> {
    /// Writes the presentation form, as [`Name`]'s.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, label) in self.labels().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            for &b in label {
                if plain(b) {
                    fmt::Write::write_char(f, char::from(b))?;
                } else {
                    write!(f, "\\{b:03}")?;
                }
            }
        }
        Ok(())
    }
}

impl fmt::Debug for NameRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NameRef({self})")
    }
}

/// The labels of a [`NameRef`], following compression pointers. The name was validated when its
/// message was parsed; the walk still obeys the same rules (pointers strictly backwards, at most
/// [`MAX_POINTER_HOPS`]) and simply ends where a fault would be, so it always terminates.
#[derive(Debug, Clone)]
pub struct Labels<'a> {
    msg: &'a [u8],
    pos: usize,
    floor: usize,
    hops: usize,
}

impl<'a> Iterator for Labels<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            let len = *self.msg.get(self.pos)?;
            match len & 0xc0 {
                0x00 if len == 0 => return None,
                0x00 => {
                    let l = usize::from(len);
                    let label = self.msg.get(self.pos + 1..self.pos + 1 + l)?;
                    self.pos += 1 + l;
                    return Some(label);
                }
                0xc0 => {
                    let lo = *self.msg.get(self.pos + 1)?;
                    let target = (usize::from(len & 0x3f) << 8) | usize::from(lo);
                    self.hops += 1;
                    if target >= self.floor || self.hops > MAX_POINTER_HOPS {
                        self.pos = self.msg.len();
                        return None;
                    }
                    self.floor = target;
                    self.pos = target;
                }
                _ => {
                    self.pos = self.msg.len();
                    return None;
                }
            }
        }
    }
}

/// Fixed fields of a resource record and where its owner name and RDATA lie in the message.
struct RawRecord {
    name_start: usize,
    rtype: u16,
    class: u16,
    ttl: u32,
    rdata_start: usize,
    rdata_end: usize,
}

impl RawRecord {
    /// Decodes the RDATA of an answer. Names inside RDATA may point anywhere earlier in the
    /// message but must end exactly at the RDATA's end.
    fn decode<'a>(&self, msg: &'a [u8]) -> Result<RDataRef<'a>, DnsError> {
        let (start, end) = (self.rdata_start, self.rdata_end);
        let rdata = msg.get(start..end).ok_or(DnsError::Truncated)?;
        Ok(match self.rtype {
            rtype::A => {
                let b: [u8; 4] = rdata.try_into().map_err(|_| DnsError::BadRdata)?;
                RDataRef::A(Ipv4Addr::from(b))
            }
            rtype::AAAA => {
                let b: [u8; 16] = rdata.try_into().map_err(|_| DnsError::BadRdata)?;
                RDataRef::Aaaa(Ipv6Addr::from(b))
            }
            rtype::CNAME => {
                let (name, after) = rdata_name(msg, start, end)?;
                if after != end {
                    return Err(DnsError::BadRdata);
                }
                RDataRef::Cname(name)
            }
            rtype::HTTPS => RDataRef::Https(svcb(msg, start, end)?),
            rtype::SVCB => RDataRef::Svcb(svcb(msg, start, end)?),
            _ => RDataRef::Other,
        })
    }
}

/// Reads a name inside RDATA `start..end`: the message is cut at `end`, so the name cannot run
/// past its record, while backward pointers still reach everything before it. Running out of
/// RDATA is the record's fault, hence `BadRdata` rather than `Truncated`.
fn rdata_name(msg: &[u8], start: usize, end: usize) -> Result<(NameRef<'_>, usize), DnsError> {
    let scope = msg.get(..end).ok_or(DnsError::Truncated)?;
    match walk_name(scope, start) {
        Ok(after) => Ok((NameRef { msg: scope, start }, after)),
        Err(DnsError::Truncated) => Err(DnsError::BadRdata),
        Err(e) => Err(e),
    }
}

/// Decodes SVCB/HTTPS RDATA (RFC 9460 §2.2): SvcPriority, TargetName, SvcParams.
fn svcb(msg: &[u8], start: usize, end: usize) -> Result<SvcbRef<'_>, DnsError> {
    let rdata = msg.get(start..end).ok_or(DnsError::Truncated)?;
    let priority = match rdata {
        [hi, lo, ..] => u16::from_be_bytes([*hi, *lo]),
        _ => return Err(DnsError::BadRdata),
    };
    let (target, after) = rdata_name(msg, start + 2, end)?;
    let mut s = SvcbRef {
        priority,
        target,
        alpn: &[],
        no_default_alpn: false,
        port: None,
        ech: false,
        ech_config_len: 0,
        ech_public_name: None,
        ipv4hint: &[],
        ipv6hint: &[],
        params_malformed: false,
    };
    let mut params = Cursor {
        msg: msg.get(..end).ok_or(DnsError::Truncated)?,
        pos: after,
    };
    let mut last_key: Option<u16> = None;
    while params.pos < end {
        let (Ok(key), Ok(len)) = (params.u16(), params.u16()) else {
            s.params_malformed = true;
            break;
        };
        let Ok(value) = params.take(usize::from(len)) else {
            s.params_malformed = true;
            break;
        };
        if last_key.is_some_and(|k| key <= k) {
            s.params_malformed = true;
            break;
        }
        last_key = Some(key);
        // Keys strictly increase, so each of the values kept below is set at most once.
        let well_formed = match key {
            svc_key::ALPN => {
                s.alpn = value;
                alpn_well_formed(value)
            }
            svc_key::NO_DEFAULT_ALPN => {
                s.no_default_alpn = true;
                value.is_empty()
            }
            svc_key::PORT => match value {
                [hi, lo] => {
                    s.port = Some(u16::from_be_bytes([*hi, *lo]));
                    true
                }
                _ => false,
            },
            svc_key::ECH => {
                s.ech = true;
                s.ech_config_len = len;
                s.ech_public_name = ech_public_name(value);
                !value.is_empty()
            }
            svc_key::IPV4HINT => {
                s.ipv4hint = value;
                value.len() % 4 == 0 && !value.is_empty()
            }
            svc_key::IPV6HINT => {
                s.ipv6hint = value;
                value.len() % 16 == 0 && !value.is_empty()
            }
            _ => true,
        };
        if !well_formed {
            s.params_malformed = true;
        }
    }
    Ok(s)
}

/// Validates the name at `start` of `msg` and returns the offset just after the name where it
/// was written (after the root octet, or after the first compression pointer).
///
/// Every pointer must target an offset strictly below the start of the run of labels being
/// read (the name's start, then each previous target), RFC 1035 §4.1.4's "prior occurrence".
/// The start therefore strictly decreases with each hop, which bounds the walk even without
/// [`MAX_POINTER_HOPS`]. A pointer back into bytes already read is a loop
/// ([`DnsError::PointerLoop`]); any other is forward or out of range ([`DnsError::BadPointer`]).
fn walk_name(msg: &[u8], start: usize) -> Result<usize, DnsError> {
    let mut pos = start;
    // Offsets below `floor` have not been read for this name; `seen_end` bounds those that have.
    let mut floor = start;
    let mut seen_end = start;
    let mut after: Option<usize> = None;
    let mut hops = 0usize;
    let mut wire_len = 1usize; // the root octet
    loop {
        let len = *msg.get(pos).ok_or(DnsError::Truncated)?;
        match len & 0xc0 {
            0x00 if len == 0 => return Ok(after.unwrap_or(pos + 1)),
            0x00 => {
                let l = usize::from(len);
                wire_len += 1 + l;
                if wire_len > MAX_NAME_LEN {
                    return Err(DnsError::NameTooLong);
                }
                msg.get(pos + 1..pos + 1 + l).ok_or(DnsError::Truncated)?;
                pos += 1 + l;
            }
            0xc0 => {
                let lo = *msg.get(pos + 1).ok_or(DnsError::Truncated)?;
                let target = (usize::from(len & 0x3f) << 8) | usize::from(lo);
                seen_end = seen_end.max(pos + 2);
                after.get_or_insert(pos + 2);
                if target >= floor {
                    return Err(if target < seen_end {
                        DnsError::PointerLoop
                    } else {
                        DnsError::BadPointer
                    });
                }
                hops += 1;
                if hops > MAX_POINTER_HOPS {
                    return Err(DnsError::PointerLoop);
                }
                floor = target;
                pos = target;
            }
            _ => return Err(DnsError::BadLabel),
        }
    }
}

/// Is a label byte written as itself in presentation form (printable ASCII other than `.` and
/// `\`)? Every other byte is written `\DDD`.
fn plain(b: u8) -> bool {
    b.is_ascii_graphic() && b != b'.' && b != b'\\'
}

/// Appends one label in presentation form, escaping as `\DDD` every byte that is not printable
/// ASCII or that would be ambiguous (`.`, `\`, space), per RFC 4343 §2.1.
fn push_label(out: &mut Vec<u8>, label: &[u8]) {
    for &b in label {
        if plain(b) {
            out.push(b);
        } else {
            out.extend_from_slice(&[b'\\', b'0' + b / 100, b'0' + b / 10 % 10, b'0' + b % 10]);
        }
    }
}

/// Bounds-checked reader over a whole message (names need the whole message for pointers).
#[derive(Debug, Clone)]
struct Cursor<'a> {
    msg: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DnsError> {
        let end = self.pos.checked_add(n).ok_or(DnsError::Truncated)?;
        let s = self.msg.get(self.pos..end).ok_or(DnsError::Truncated)?;
        self.pos = end;
        Ok(s)
    }

    fn u16(&mut self) -> Result<u16, DnsError> {
        match *self.take(2)? {
            [a, b] => Ok(u16::from_be_bytes([a, b])),
            _ => Err(DnsError::Truncated),
        }
    }

    fn u32(&mut self) -> Result<u32, DnsError> {
        match *self.take(4)? {
            [a, b, c, d] => Ok(u32::from_be_bytes([a, b, c, d])),
            _ => Err(DnsError::Truncated),
        }
    }

    fn name(&mut self) -> Result<(), DnsError> {
        self.pos = walk_name(self.msg, self.pos)?;
        Ok(())
    }

    /// Reads a record's owner name and fixed fields (RFC 1035 §4.1.3) and steps over its RDATA.
    fn record(&mut self) -> Result<RawRecord, DnsError> {
        let name_start = self.pos;
        self.name()?;
        let rtype = self.u16()?;
        let class = self.u16()?;
        let ttl = self.u32()?;
        let rdlength = self.u16()?;
        let rdata_start = self.pos;
        self.take(usize::from(rdlength))?;
        Ok(RawRecord {
            name_start,
            rtype,
            class,
            ttl,
            rdata_start,
            rdata_end: self.pos,
        })
    }
}

/// Splits a DNS-over-TCP byte stream into messages (RFC 7766 §8, RFC 1035 §4.2.2): each message
/// is preceded by its length as a 2-byte big-endian integer, and one segment may hold several
/// messages or a fraction of one (even half a length prefix).
///
/// The buffer holds at most [`MAX_TCP_BUFFER`] bytes, one maximal frame: [`TcpFramer::push`]
/// takes only what fits and says how much it took, and [`TcpFramer::next_message`] frees each
/// complete frame. Since the buffer can always hold one whole frame, pushing after draining
/// always makes progress:
///
/// ```
/// # use shadowtap::proto::dns::TcpFramer;
/// let mut framer = TcpFramer::new();
/// let mut segment: &[u8] = &[0, 12, 0xab, 0xcd, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
/// let mut messages = Vec::new();
/// while !segment.is_empty() {
///     let taken = framer.push(segment);
///     segment = &segment[taken..];
///     while let Some(m) = framer.next_message() {
///         messages.push(m);
///     }
/// }
/// assert_eq!(messages.len(), 1);
/// assert_eq!(framer.buffered(), 1);
/// ```
#[derive(Debug, Default, Clone)]
pub struct TcpFramer {
    buf: Vec<u8>,
    /// Offset in `buf` of the first byte not yet returned.
    start: usize,
}

impl TcpFramer {
    /// An empty framer; it allocates only when bytes arrive.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends stream bytes, as many as fit in [`MAX_TCP_BUFFER`], and returns how many were
    /// taken. Fewer than `bytes.len()` are taken only when a complete frame is waiting: call
    /// [`TcpFramer::next_message`] until it returns `None`, then push the rest.
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let take = bytes.len().min(MAX_TCP_BUFFER - self.buf.len());
        self.buf
            .extend_from_slice(bytes.get(..take).unwrap_or_default());
        take
    }

    /// The next complete message, or `None` until more bytes are pushed.
    ///
    /// # Errors
    /// [`DnsError::BadTcpLength`] for a frame shorter than the 12-byte header; the frame is
    /// consumed, so framing stays in step with the stream and the next call reads on.
    pub fn next_message(&mut self) -> Option<Result<Vec<u8>, DnsError>> {
        let pending = self.buf.get(self.start..)?;
        let len = match pending {
            [hi, lo, ..] => usize::from(u16::from_be_bytes([*hi, *lo])),
            _ => return None,
        };
        let frame = pending.get(2..2 + len)?;
        let result = if len < HEADER_LEN {
            Err(DnsError::BadTcpLength)
        } else {
            Ok(frame.to_vec())
        };
        self.start += 2 + len;
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        Some(result)
    }

    /// Bytes pushed but not yet returned as a message.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes hex, ignoring whitespace.
    fn hex(s: &str) -> Vec<u8> {
        let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
        digits
            .chunks(2)
            .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
            .collect()
    }

    /// Query for www.example.com A, RD set.
    const QUERY: &str = "
        1234 0100 0001 0000 0000 0000
        03 777777 07 6578616d706c65 03 636f6d 00 0001 0001";

    /// Response to [`QUERY`]: one A record whose owner is a pointer to the question (offset 12).
    const RESPONSE: &str = "
        1234 8180 0001 0001 0000 0000
        03 777777 07 6578616d706c65 03 636f6d 00 0001 0001
        c00c 0001 0001 00000e10 0004 5db8d822";

    /// Response from 8.8.4.4 for www.wikipedia.it A (frame 6 of ndpi-dns-google-nsid.pcapng):
    /// two CNAMEs, four A records and an OPT record carrying NSID "r3.mil1". Provenance: UDP
    /// payload extracted with tshark (`-e udp.payload`); expected.jsonl lists this flow
    /// (192.168.1.29:62500 -> 8.8.4.4:53) with `tshark.dns_queries` = ["www.wikipedia.it"].
    const WIKIPEDIA: &str = "
        ca1181800001000600000001037777770977696b6970656469610269740000010001c00c0005000100000258
        001106623766643762047965706103636f6d00c02e0005000100000258001f0e643278327239786939726433
        73630a636c6f756466726f6e74036e657400c04b000100010000003c00046c9dc21cc04b000100010000003c
        00046c9dc23ec04b000100010000003c00046c9dc20bc04b000100010000003c00046c9dc21b000029100000
        000000000b0003000772332e6d696c31";

    /// Response for www.example.com: CNAME cdn.example.net (TTL 300), CNAME edge.example.net
    /// (TTL 200, "edge" + pointer to example.net inside the first CNAME's RDATA), then
    /// edge A 192.0.2.1 (TTL 60), edge AAAA 2001:db8::1 (TTL 30), and an unrelated
    /// other.test A 198.51.100.1 that the chain must not reach.
    const CHAIN: &str = "
        0001 8180 0001 0005 0000 0000
        03 777777 07 6578616d706c65 03 636f6d 00 0001 0001
        c00c 0005 0001 0000012c 0011 03 63646e 07 6578616d706c65 03 6e6574 00
        c02d 0005 0001 000000c8 0007 04 65646765 c031
        c04a 0001 0001 0000003c 0004 c0000201
        c04a 001c 0001 0000001e 0010 20010db8000000000000000000000001
        05 6f74686572 04 74657374 00 0001 0001 00000e10 0004 c6336401";

    /// HTTPS answer for example.com: priority 1, target ".", alpn h3,h2, ipv4hint 192.0.2.1,
    /// ech (5 bytes), ipv6hint 2001:db8::1.
    const HTTPS: &str = "
        0002 8180 0001 0001 0000 0000
        07 6578616d706c65 03 636f6d 00 0041 0001
        c00c 0041 0001 0000012c 0032
        0001 00
        0001 0006 02 6833 02 6832
        0004 0004 c0000201
        0005 0005 0102030405
        0006 0010 20010db8000000000000000000000001";

    #[test]
    fn query() {
        let m = Message::parse(&hex(QUERY)).unwrap();
        assert_eq!(m.id, 0x1234);
        assert!(!m.response);
        assert_eq!(m.opcode, 0);
        assert_eq!(m.rcode, 0);
        assert!(!m.truncated);
        assert_eq!(
            m.questions,
            vec![Question {
                name: Name(b"www.example.com".to_vec()),
                qtype: rtype::A,
                qclass: 1
            }]
        );
        assert!(m.answers.is_empty());
        assert!(m.resolved_addresses().is_empty());
    }

    #[test]
    fn response_with_compression() {
        let m = Message::parse(&hex(RESPONSE)).unwrap();
        assert!(m.response);
        assert_eq!(
            m.answers,
            vec![Record {
                name: Name(b"www.example.com".to_vec()),
                rtype: rtype::A,
                class: 1,
                ttl: 3600,
                data: RData::A(Ipv4Addr::new(93, 184, 216, 34)),
            }]
        );
        assert_eq!(
            m.resolved_addresses(),
            vec![(IpAddr::V4(Ipv4Addr::new(93, 184, 216, 34)), 3600)]
        );
    }

    #[test]
    fn cname_chain_to_a_and_aaaa() {
        let m = Message::parse(&hex(CHAIN)).unwrap();
        assert_eq!(m.answers.len(), 5);
        assert_eq!(
            m.answers[1].data,
            RData::Cname(Name(b"edge.example.net".to_vec()))
        );
        assert_eq!(
            m.resolved_addresses(),
            vec![
                (IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 60),
                (IpAddr::V6("2001:db8::1".parse().unwrap()), 30),
            ]
        );
        // The chain TTL is the minimum along it: raise the A TTL above the CNAMEs'.
        let mut m = m;
        m.answers[2].ttl = 100_000;
        assert_eq!(m.resolved_addresses()[0].1, 200);
    }

    #[test]
    fn cname_loop_terminates() {
        let mut m = Message::parse(&hex(CHAIN)).unwrap();
        // edge.example.net CNAME www.example.com closes a loop; the addresses are still found
        // once each.
        m.answers.push(Record {
            name: Name(b"EDGE.example.net".to_vec()),
            rtype: rtype::CNAME,
            class: 1,
            ttl: 10,
            data: RData::Cname(Name(b"www.example.com".to_vec())),
        });
        assert_eq!(m.resolved_addresses().len(), 2);
    }

    #[test]
    fn https_alpn_ech_hints() {
        let m = Message::parse(&hex(HTTPS)).unwrap();
        let RData::Https(s) = &m.answers[0].data else {
            panic!("{:?}", m.answers[0].data)
        };
        assert_eq!(s.priority, 1);
        assert!(s.target.is_root());
        assert_eq!(s.alpn, vec![b"h3".to_vec(), b"h2".to_vec()]);
        assert!(s.ech);
        assert_eq!(s.ech_config_len, 5);
        assert!(!s.no_default_alpn);
        assert_eq!(s.port, None);
        assert_eq!(s.ipv4hint, vec![Ipv4Addr::new(192, 0, 2, 1)]);
        assert_eq!(s.ipv6hint, vec!["2001:db8::1".parse::<Ipv6Addr>().unwrap()]);
        assert!(!s.params_malformed);
        assert_eq!(type_str(m.answers[0].rtype), "HTTPS");
    }

    #[test]
    fn https_out_of_order_keys_keep_prefix() {
        // Same record with the ech and ipv6hint params swapped: keys 1, 4, 6, 5.
        let text = HTTPS.replace(
            "0005 0005 0102030405\n        0006 0010 20010db8000000000000000000000001",
            "0006 0010 20010db8000000000000000000000001\n 0005 0005 0102030405",
        );
        assert_ne!(text, HTTPS);
        let m = Message::parse(&hex(&text)).unwrap();
        let RData::Https(s) = &m.answers[0].data else {
            panic!()
        };
        assert!(s.params_malformed);
        assert_eq!(s.alpn.len(), 2);
        assert_eq!(s.ipv6hint.len(), 1);
        assert!(!s.ech);
    }

    #[test]
    fn https_param_overrunning_rdata_is_not_fatal() {
        // alpn claims 7 bytes of value but the RDATA holds 6 after its header: the list ends.
        let m = Message::parse(&hex("0002 8180 0001 0001 0000 0000
             07 6578616d706c65 03 636f6d 00 0041 0001
             c00c 0040 0001 0000012c 000d
             0000 00 0001 0007 02 6833 02 6832"))
        .unwrap();
        let RData::Svcb(s) = &m.answers[0].data else {
            panic!()
        };
        assert_eq!(s.priority, 0);
        assert!(s.params_malformed);
        assert!(s.alpn.is_empty());
    }

    #[test]
    fn mixed_case_kept() {
        let m = Message::parse(&hex("0003 0100 0001 0000 0000 0000
             03 577757 07 4578416d706c65 03 434f4d 00 0001 0001"))
        .unwrap();
        let n = &m.questions[0].name;
        assert_eq!(n.as_bytes(), b"WwW.ExAmple.COM");
        assert!(n.eq_ignore_case(b"www.example.com"));
        assert!(!n.eq_ignore_case(b"www.example.co"));
        assert_eq!(n.to_lowercase_bytes(), b"www.example.com");
        assert_eq!(n.to_string(), "WwW.ExAmple.COM");
    }

    #[test]
    fn special_bytes_escaped() {
        // Labels "a.b", "c\ d" (with a space), 0x00 0xff, then "com".
        let m = Message::parse(&hex("0004 0100 0001 0000 0000 0000
             03 612e62 04 635c2064 02 00ff 03 636f6d 00 0001 0001"))
        .unwrap();
        assert_eq!(
            m.questions[0].name.as_bytes(),
            br"a\046b.c\092\032d.\000\255.com"
        );
        // Two labels "a" "b" differ from one label "a.b".
        let m2 = Message::parse(&hex(
            "0004 0100 0001 0000 0000 0000 01 61 01 62 03 636f6d 00 0001 0001",
        ))
        .unwrap();
        assert_eq!(m2.questions[0].name.as_bytes(), b"a.b.com");
    }

    #[test]
    fn root_name_is_empty() {
        let m = Message::parse(&hex("0005 0100 0001 0000 0000 0000 00 0002 0001")).unwrap();
        assert!(m.questions[0].name.is_root());
        assert_eq!(m.questions[0].name.to_string(), "");
    }

    #[test]
    fn pointer_loops_rejected() {
        // Question name is a pointer to itself.
        let self_ptr = hex("0006 0100 0001 0000 0000 0000 c00c 0001 0001");
        assert_eq!(Message::parse(&self_ptr), Err(DnsError::PointerLoop));
        // "a" then a pointer back to the start of the same name: a.a.a.a...
        let own_start = hex("0006 0100 0001 0000 0000 0000 01 61 c00c 0001 0001");
        assert_eq!(Message::parse(&own_start), Err(DnsError::PointerLoop));
        // Two-pointer cycle: the TXT RDATA at offset 28 holds a pointer to 30; the next record's
        // owner name at 30 points back to 28.
        let cycle = hex("0006 8180 0001 0002 0000 0000
             00 0001 0001
             00 0010 0001 00000000 0002 c01e
             c01c 0001 0001 00000000 0004 01020304");
        assert_eq!(Message::parse(&cycle), Err(DnsError::PointerLoop));
    }

    #[test]
    fn pointer_hops_bounded() {
        // A TXT RDATA holding a root octet and a chain of pointers, each to the previous one;
        // the next record's name points at the last. Legal direction, too many hops.
        let build = |pointers: usize| {
            let mut m = hex("0007 8180 0001 0002 0000 0000 00 0001 0001 00 0010 0001 00000000");
            let rdlen = 1 + 2 * pointers;
            m.extend_from_slice(&(rdlen as u16).to_be_bytes());
            let root = m.len();
            m.push(0);
            for i in 0..pointers {
                let target = if i == 0 { root } else { root + 1 + 2 * (i - 1) };
                m.extend_from_slice(&(0xc000 | target as u16).to_be_bytes());
            }
            let last = root + 1 + 2 * (pointers - 1);
            m.extend_from_slice(&(0xc000 | last as u16).to_be_bytes());
            m.extend_from_slice(&hex("0001 0001 00000000 0004 01020304"));
            m
        };
        // The owner pointer plus `pointers` in the chain.
        assert!(Message::parse(&build(MAX_POINTER_HOPS - 1)).is_ok());
        assert_eq!(
            Message::parse(&build(MAX_POINTER_HOPS)),
            Err(DnsError::PointerLoop)
        );
    }

    #[test]
    fn forward_and_outside_pointers_rejected() {
        // Pointer from the question (offset 12) forward to offset 18.
        let fwd = hex("0008 0100 0001 0000 0000 0000 c012 0001 0001 00 0000");
        assert_eq!(Message::parse(&fwd), Err(DnsError::BadPointer));
        // Pointer far beyond the message.
        let outside = hex("0008 0100 0001 0000 0000 0000 ffff 0001 0001");
        assert_eq!(Message::parse(&outside), Err(DnsError::BadPointer));
    }

    #[test]
    fn name_length_limit() {
        let build = |last: u8| {
            let mut m = hex("0009 0100 0001 0000 0000 0000");
            for len in [63u8, 63, 63, last] {
                m.push(len);
                m.extend(std::iter::repeat_n(b'x', usize::from(len)));
            }
            m.extend_from_slice(&hex("00 0001 0001"));
            m
        };
        // 3 × 64 + 62 + 1 = 255 wire bytes: accepted.
        let ok = Message::parse(&build(61)).unwrap();
        assert_eq!(ok.questions[0].name.as_bytes().len(), 253);
        // 256 wire bytes: rejected.
        assert_eq!(Message::parse(&build(62)), Err(DnsError::NameTooLong));
    }

    #[test]
    fn extended_and_binary_labels_rejected() {
        for first in ["41", "81"] {
            let m = hex(&format!(
                "000a 0100 0001 0000 0000 0000 {first} 00 0001 0001"
            ));
            assert_eq!(Message::parse(&m), Err(DnsError::BadLabel));
        }
    }

    #[test]
    fn bad_rdata_lengths() {
        // A record with 5 bytes of RDATA.
        let a5 = hex("000b 8180 0000 0001 0000 0000 00 0001 0001 00000000 0005 0102030405");
        assert_eq!(Message::parse(&a5), Err(DnsError::BadRdata));
        // CNAME whose name ends before its RDATA does.
        let cname = hex("000b 8180 0000 0001 0000 0000 00 0005 0001 00000000 0002 00 00");
        assert_eq!(Message::parse(&cname), Err(DnsError::BadRdata));
        // CNAME whose name runs past its RDATA.
        let over = hex("000b 8180 0000 0001 0000 0000 00 0005 0001 00000000 0002 03 61 62 63 00");
        assert_eq!(Message::parse(&over), Err(DnsError::BadRdata));
    }

    #[test]
    fn real_response_wikipedia() {
        let m = Message::parse(&hex(WIKIPEDIA)).unwrap();
        assert_eq!(m.id, 0xca11);
        assert!(m.response);
        assert_eq!(m.rcode, 0);
        assert_eq!(m.questions.len(), 1);
        // expected.jsonl: tshark.dns_queries == ["www.wikipedia.it"].
        assert_eq!(m.questions[0].name.as_bytes(), b"www.wikipedia.it");
        assert_eq!(m.questions[0].qtype, rtype::A);
        assert_eq!(m.answers.len(), 6);
        assert_eq!(
            m.answers[1].data,
            RData::Cname(Name(b"d2x2r9xi9rd3sc.cloudfront.net".to_vec()))
        );
        let addrs = m.resolved_addresses();
        let expected: Vec<(IpAddr, u32)> = [
            [108, 157, 194, 28],
            [108, 157, 194, 62],
            [108, 157, 194, 11],
            [108, 157, 194, 27],
        ]
        .into_iter()
        .map(|a| (IpAddr::V4(Ipv4Addr::from(a)), 60))
        .collect();
        assert_eq!(addrs, expected);
    }

    #[test]
    fn every_prefix_is_an_error_not_a_panic() {
        let full = hex(WIKIPEDIA);
        for n in 0..full.len() {
            assert!(Message::parse(&full[..n]).is_err(), "prefix {n}");
        }
    }

    #[test]
    fn tc_bit_keeps_what_was_read() {
        // RESPONSE with TC set, a second answer counted but cut mid-record.
        let mut m = hex(RESPONSE);
        m[2] |= 0x02;
        m[7] = 2;
        m.extend_from_slice(&hex("c00c 0001"));
        let parsed = Message::parse(&m).unwrap();
        assert!(parsed.truncated);
        assert_eq!(parsed.answers.len(), 1);
        // Without TC the same bytes are an error.
        m[2] &= !0x02;
        assert_eq!(Message::parse(&m), Err(DnsError::Truncated));
    }

    #[test]
    fn edns_extended_rcode() {
        // NOERROR in the header, OPT with EXTENDED-RCODE 1: BADVERS (16).
        let m = hex("000c 8180 0000 0000 0000 0001
             00 0029 1000 01000000 0000");
        assert_eq!(Message::parse(&m).unwrap().rcode, 16);
    }

    #[test]
    fn answers_beyond_limit_are_counted() {
        let extra = 8;
        let count = MAX_RECORDS + extra;
        let mut m = hex("000d 8180 0001 0000 0000 0000 01 61 00 0001 0001");
        m[6..8].copy_from_slice(&(count as u16).to_be_bytes());
        for i in 0..count {
            m.extend_from_slice(&hex("c00c 0001 0001 00000001 0004 0a000000"));
            *m.last_mut().unwrap() = i as u8;
        }
        let parsed = Message::parse(&m).unwrap();
        assert_eq!(parsed.answers.len(), MAX_RECORDS);
        assert_eq!(usize::from(parsed.skipped_answers), extra);
    }

    use crate::testutil::XorShift;

    #[test]
    fn byte_soup_never_panics() {
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let seeds = [hex(WIKIPEDIA), hex(CHAIN), hex(HTTPS)];
        let mut parsed = 0;
        for i in 0..20_000 {
            let mut msg = if i % 2 == 0 {
                // Pure soup, with small counts often enough to reach the record code.
                let len = (rng.next() % 200) as usize;
                let mut v: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
                if len >= HEADER_LEN {
                    for b in v.iter_mut().take(HEADER_LEN).skip(4) {
                        *b &= 0x03;
                    }
                }
                v
            } else {
                // A real message with a few bytes mutated.
                seeds[i % seeds.len()].clone()
            };
            if i % 2 == 1 {
                for _ in 0..1 + rng.next() % 4 {
                    let at = (rng.next() % msg.len() as u64) as usize;
                    msg[at] = rng.next() as u8;
                }
            }
            let view = MessageView::parse(&msg);
            assert_eq!(view.err(), Message::parse(&msg).err());
            if let Ok(v) = view {
                parsed += 1;
                let addrs = view_addresses(&v);
                for r in v.answers() {
                    let _ = (r.name.to_string(), r.name.is_root(), r.name.eq_ignore_case(&r.name));
                }
                let m = v.to_message();
                assert_eq!(addrs, m.resolved_addresses());
                for q in &m.questions {
                    assert!(q.name.0.iter().all(|b| b.is_ascii_graphic()));
                }
            }
        }
        // The soup must reach past the header checks often enough to exercise the record code.
        assert!(parsed > 1_000, "{parsed}");
    }

    /// The view's addresses, collected.
    fn view_addresses(v: &MessageView<'_>) -> Vec<(IpAddr, u32)> {
        let mut out = Vec::new();
        v.resolved_addresses(|a, t| out.push((a, t)));
        out
    }

    #[test]
    fn view_reads_what_the_owned_message_holds() {
        for text in [QUERY, RESPONSE, WIKIPEDIA, CHAIN, HTTPS] {
            let bytes = hex(text);
            let v = MessageView::parse(&bytes).unwrap();
            let m = Message::parse(&bytes).unwrap();
            assert_eq!(v.question_count(), m.questions.len());
            assert_eq!(v.answer_count(), m.answers.len());
            assert_eq!((v.id, v.response, v.rcode, v.truncated), (m.id, m.response, m.rcode, m.truncated));
            for (q, owned) in v.questions().zip(&m.questions) {
                assert_eq!(q.name.to_string().as_bytes(), owned.name.as_bytes());
                assert_eq!(q.name.presentation_len(), owned.name.as_bytes().len());
                assert_eq!(q.qtype, owned.qtype);
            }
            for (r, owned) in v.answers().zip(&m.answers) {
                let mut buf = b"kept ".to_vec();
                r.name.write_into(&mut buf);
                assert_eq!(&buf[5..], owned.name.as_bytes());
                assert_eq!(r.data.to_owned(), owned.data);
            }
            assert_eq!(view_addresses(&v), m.resolved_addresses());
        }
    }

    #[test]
    fn view_names_compare_ignoring_case_label_by_label() {
        // Question WwW.ExAmple.COM; answer owner www.example.com spelled out; answer owner
        // "www.example" + pointer to "COM"; then a one-label "www.example.com" (dots inside).
        let bytes = hex("0003 8180 0001 0003 0000 0000
             03 577757 07 4578416d706c65 03 434f4d 00 0001 0001
             03 777777 07 6578616d706c65 03 636f6d 00 0001 0001 00000000 0004 01020304
             03 777777 07 6578616d706c65 c018 0001 0001 00000000 0004 01020305
             0f 7777772e6578616d706c652e636f6d 00 0001 0001 00000000 0004 01020306");
        let v = MessageView::parse(&bytes).unwrap();
        let q = v.questions().next().unwrap().name;
        let owners: Vec<NameRef<'_>> = v.answers().map(|r| r.name).collect();
        assert!(owners[0].eq_ignore_case(&q));
        assert!(owners[1].eq_ignore_case(&q));
        assert!(!owners[2].eq_ignore_case(&q));
        assert_eq!(owners[2].to_string(), r"www\046example\046com");
        assert_eq!(owners[1].to_string(), "www.example.COM");
        assert!(!q.is_root());
        assert_eq!(view_addresses(&v).len(), 2);
    }

    #[test]
    fn view_cname_loop_terminates() {
        // CHAIN plus EDGE.example.net CNAME www.example.com, closing a loop: the addresses are
        // still found once each, as by the owned message.
        let mut bytes = hex(CHAIN);
        bytes[7] = 6;
        bytes.extend_from_slice(&hex("c04a 0005 0001 0000000a 0002 c00c"));
        let v = MessageView::parse(&bytes).unwrap();
        assert_eq!(view_addresses(&v).len(), 2);
        assert_eq!(view_addresses(&v), Message::parse(&bytes).unwrap().resolved_addresses());
    }

    #[test]
    fn view_svcb_lists_in_place() {
        let bytes = hex(HTTPS);
        let v = MessageView::parse(&bytes).unwrap();
        let Some(RDataRef::Https(s)) = v.answers().next().map(|r| r.data) else { panic!() };
        assert_eq!(s.alpn().collect::<Vec<_>>(), [&b"h3"[..], b"h2"]);
        assert_eq!(s.ipv4hint().collect::<Vec<_>>(), [Ipv4Addr::new(192, 0, 2, 1)]);
        assert_eq!(s.ipv6hint().count(), 1);
        assert!(s.target.is_root());
        assert_eq!(s.target.to_string(), "");
        // A malformed alpn list keeps the ids before its fault: "h3", then an empty id.
        assert_eq!(AlpnIds { rest: b"\x02h3\x00\x02h2", left: MAX_SVCB_ITEMS }.count(), 1);
        assert!(!alpn_well_formed(b"\x02h3\x00\x02h2"));
        assert!(!alpn_well_formed(b"\x03h3"));
        assert!(alpn_well_formed(b"\x02h3"));
    }

    /// Frames a message for TCP.
    fn framed(msg: &[u8]) -> Vec<u8> {
        let mut v = (msg.len() as u16).to_be_bytes().to_vec();
        v.extend_from_slice(msg);
        v
    }

    #[test]
    fn tcp_two_messages_split_across_pushes() {
        let (q, r) = (hex(QUERY), hex(RESPONSE));
        let mut stream = framed(&q);
        stream.extend(framed(&r));
        let mut f = TcpFramer::new();
        // Half a length prefix, then the rest of it plus part of the first message.
        assert_eq!(f.push(&stream[..1]), 1);
        assert!(f.next_message().is_none());
        assert_eq!(f.push(&stream[1..10]), 9);
        assert!(f.next_message().is_none());
        // The rest of the first message and half of the second's prefix.
        let cut = 2 + q.len() + 1;
        f.push(&stream[10..cut]);
        assert_eq!(f.next_message(), Some(Ok(q.clone())));
        assert!(f.next_message().is_none());
        assert_eq!(f.buffered(), 1);
        f.push(&stream[cut..]);
        assert_eq!(f.next_message(), Some(Ok(r.clone())));
        assert!(f.next_message().is_none());
        assert_eq!(f.buffered(), 0);
        // Both messages in one push.
        f.push(&stream);
        assert_eq!(f.next_message(), Some(Ok(q)));
        assert_eq!(f.next_message(), Some(Ok(r)));
        assert_eq!(f.next_message(), None);
    }

    #[test]
    fn tcp_short_frame_and_bounded_buffer() {
        let mut f = TcpFramer::new();
        let mut stream = vec![0, 3, 1, 2, 3];
        stream.extend(framed(&hex(QUERY)));
        f.push(&stream);
        assert_eq!(f.next_message(), Some(Err(DnsError::BadTcpLength)));
        assert!(Message::parse(&f.next_message().unwrap().unwrap()).is_ok());

        // A maximal frame fills the buffer exactly; nothing more is taken until it is drained.
        let big = vec![0u8; MAX_TCP_BUFFER + 10];
        let mut f = TcpFramer::new();
        let mut big = big;
        big[0] = 0xff;
        big[1] = 0xff;
        assert_eq!(f.push(&big), MAX_TCP_BUFFER);
        assert_eq!(f.push(&big[MAX_TCP_BUFFER..]), 0);
        assert_eq!(
            f.next_message().unwrap().unwrap().len(),
            usize::from(u16::MAX)
        );
        assert_eq!(f.push(&big[MAX_TCP_BUFFER..]), 10);
    }

    #[test]
    fn tcp_byte_soup_stays_bounded() {
        let mut rng = XorShift(42);
        let mut f = TcpFramer::new();
        for _ in 0..2_000 {
            let len = (rng.next() % 3000) as usize;
            let chunk: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            let mut rest = &chunk[..];
            while !rest.is_empty() {
                let n = f.push(rest);
                rest = &rest[n..];
                while let Some(m) = f.next_message() {
                    if let Ok(m) = m {
                        let _ = Message::parse(&m);
                    }
                }
                assert!(f.buffered() <= MAX_TCP_BUFFER);
            }
        }
    }

    #[test]
    fn type_names() {
        for (t, s) in [
            (1, "A"),
            (28, "AAAA"),
            (5, "CNAME"),
            (65, "HTTPS"),
            (64, "SVCB"),
            (15, "MX"),
            (16, "TXT"),
            (2, "NS"),
            (12, "PTR"),
            (6, "SOA"),
            (33, "SRV"),
            (41, "OPT"),
            (65534, "TYPE65534"),
        ] {
            assert_eq!(type_str(t), s);
        }
    }

    #[test]
    fn error_labels_are_unique_snake_case() {
        let labels: Vec<&str> = DnsError::ALL.iter().map(|e| e.as_str()).collect();
        for (i, l) in labels.iter().enumerate() {
            assert!(
                l.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{l}"
            );
            assert!(!labels[..i].contains(l), "duplicate {l}");
        }
    }
}

#[cfg(test)]
mod ech_tests {
    use super::ech_public_name;

    #[test]
    fn public_name_of_an_ech_config() {
        // ECHConfigList with one 0xfe0d config: id 1, KEM 0x0020, 32-byte key, one suite,
        // max name length 0, public_name "cloudflare-ech.com", no extensions.
        let mut cfg = vec![1u8, 0x00, 0x20, 0x00, 0x20];
        cfg.extend_from_slice(&[7u8; 32]);
        cfg.extend_from_slice(&[0x00, 0x04, 0x00, 0x01, 0x00, 0x01, 0x00]);
        cfg.push(18);
        cfg.extend_from_slice(b"cloudflare-ech.com");
        cfg.extend_from_slice(&[0x00, 0x00]);
        let mut list = vec![0, 0, 0xfe, 0x0d];
        list.extend_from_slice(&(cfg.len() as u16).to_be_bytes());
        list.extend_from_slice(&cfg);
        let n = (list.len() - 2) as u16;
        list[..2].copy_from_slice(&n.to_be_bytes());
        assert_eq!(ech_public_name(&list), Some(&b"cloudflare-ech.com"[..]));
        for cut in 0..list.len() - 2 {
            assert_eq!(ech_public_name(&list[..cut]), None, "cut {cut}");
        }
        list[2] = 0xfe;
        list[3] = 0x0a;
        assert_eq!(ech_public_name(&list), None, "unknown version");
    }
}
