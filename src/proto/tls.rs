//! TLS handshake summaries: record defragmentation, ClientHello and ServerHello.
//!
//! The sensor needs a handful of facts from the first handshake message of each direction: the
//! code points a fingerprint is computed from (JA3, JA4), the server name (RFC 6066 §3), the ALPN
//! offer (RFC 7301), and the negotiated version and cipher. This module turns the first bytes of a
//! TCP stream (or a QUIC CRYPTO stream, which carries bare handshake messages) into small owned
//! summaries that outlive the packet.
//!
//! Guarantees:
//! - Every function is pure, bounded and total: hostile or truncated input gives an error value,
//!   never a panic, and no allocation grows beyond the input it was given (itself bounded by
//!   [`MAX_HANDSHAKE_LEN`]).
//! - Code points stay raw `u16` values in wire order, GREASE (RFC 8701) and unknown values
//!   included, so that fingerprints can apply their own filtering rules later.
//! - The hello bodies and individual extension contents are decoded by `tls-parser`; the
//!   extension list is walked here, header by header, so that an extension whose contents
//!   `tls-parser` rejects (a draft, a private code point, hostile bytes) still contributes its type
//!   to the summary and the rest of the hello is not lost.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::net::IpAddr;

use tls_parser::{
    parse_tls_handshake_msg_server_hello, parse_tls_server_hello_extension, TlsExtension,
    TlsMessageHandshake,
};

/// Largest handshake message (4-byte header included) that [`first_handshake`] reassembles and the
/// hello parsers accept.
///
/// Memory cost: the caller's output buffer holds at most this many bytes per direction being
/// reassembled. A ClientHello is usually 200-600 bytes; with a post-quantum key share
/// (X25519MLKEM768, 1 216 bytes of key) it is about 1.8 KB, and Chrome pads to 512 bytes. 16 KiB
/// leaves room for large PSK identities while stopping a peer from making the sensor buffer the
/// 16 MiB a 24-bit handshake length allows.
pub const MAX_HANDSHAKE_LEN: usize = 16 * 1024;

/// Largest record fragment a TLSPlaintext record may carry: 2^14 bytes (RFC 8446 §5.1,
/// RFC 5246 §6.2.1). A handshake record claiming more is not TLS.
pub const MAX_RECORD_LEN: usize = 1 << 14;

/// Size of the record header: content type (1), legacy record version (2), length (2).
pub const RECORD_HEADER_LEN: usize = 5;

/// Size of the handshake message header: msg_type (1), length (3) (RFC 8446 §4).
pub const HANDSHAKE_HEADER_LEN: usize = 4;

/// Record content type `handshake` (RFC 8446 §5.1).
pub const CONTENT_TYPE_HANDSHAKE: u8 = 22;

/// Handshake message type `client_hello` (RFC 8446 §4).
pub const HANDSHAKE_CLIENT_HELLO: u8 = 1;

/// Handshake message type `server_hello` (RFC 8446 §4).
pub const HANDSHAKE_SERVER_HELLO: u8 = 2;

/// Extension types (IANA "TLS ExtensionType Values") this module reads or flags.
pub mod ext {
    /// `server_name` (RFC 6066 §3).
    pub const SERVER_NAME: u16 = 0x0000;
    /// `supported_groups`, formerly `elliptic_curves` (RFC 8422 §5.1.1, RFC 8446 §4.2.7).
    pub const SUPPORTED_GROUPS: u16 = 0x000a;
    /// `ec_point_formats` (RFC 8422 §5.1.2).
    pub const EC_POINT_FORMATS: u16 = 0x000b;
    /// `signature_algorithms` (RFC 8446 §4.2.3).
    pub const SIGNATURE_ALGORITHMS: u16 = 0x000d;
    /// `application_layer_protocol_negotiation` (RFC 7301).
    pub const ALPN: u16 = 0x0010;
    /// `session_ticket` (RFC 5077).
    pub const SESSION_TICKET: u16 = 0x0023;
    /// `pre_shared_key` (RFC 8446 §4.2.11).
    pub const PRE_SHARED_KEY: u16 = 0x0029;
    /// `supported_versions` (RFC 8446 §4.2.1).
    pub const SUPPORTED_VERSIONS: u16 = 0x002b;
    /// `key_share` (RFC 8446 §4.2.8).
    pub const KEY_SHARE: u16 = 0x0033;
    /// `encrypted_client_hello` (draft-ietf-tls-esni, code point 0xfe0d).
    pub const ENCRYPTED_CLIENT_HELLO: u16 = 0xfe0d;
}

/// Protocol version code points as they appear in hellos and `supported_versions`.
pub mod version {
    /// SSL 2.0 (only in SSLv2-format hellos).
    pub const SSL2: u16 = 0x0002;
    /// SSL 3.0 (RFC 6101).
    pub const SSL3: u16 = 0x0300;
    /// TLS 1.0 (RFC 2246).
    pub const TLS10: u16 = 0x0301;
    /// TLS 1.1 (RFC 4346).
    pub const TLS11: u16 = 0x0302;
    /// TLS 1.2 (RFC 5246).
    pub const TLS12: u16 = 0x0303;
    /// TLS 1.3 (RFC 8446).
    pub const TLS13: u16 = 0x0304;
    /// DTLS 1.0 (RFC 4347). DTLS versions count down: newer is numerically lower.
    pub const DTLS10: u16 = 0xfeff;
    /// DTLS 1.2 (RFC 6347).
    pub const DTLS12: u16 = 0xfefd;
    /// DTLS 1.3 (RFC 9147).
    pub const DTLS13: u16 = 0xfefc;
}

/// Why bytes were not turned into a handshake summary. Each variant is one drop-reason counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum TlsError {
    /// A record's content type is not handshake (22): an alert, application data, an SSLv2-format
    /// hello, or not TLS at all.
    #[error("record content type is not handshake (22)")]
    NotHandshake,
    /// A record's version is not 3.0 to 3.4 (RFC 8446 §5.1 `legacy_record_version`).
    #[error("record version is not 0x0300..=0x0304")]
    BadRecordVersion,
    /// A handshake record is empty (forbidden by RFC 8446 §5.1) or longer than 2^14 bytes.
    #[error("handshake record length is zero or above 2^14")]
    BadRecordLength,
    /// The handshake message type is not client_hello (1).
    #[error("handshake message is not a ClientHello")]
    NotClientHello,
    /// The handshake message type is not server_hello (2).
    #[error("handshake message is not a ServerHello")]
    NotServerHello,
    /// The message is shorter than its handshake header says.
    #[error("handshake message shorter than its header length")]
    Truncated,
    /// A length field inside a complete message disagrees with its contents.
    #[error("malformed hello")]
    Malformed,
    /// The handshake message is longer than [`MAX_HANDSHAKE_LEN`].
    #[error("handshake message longer than MAX_HANDSHAKE_LEN")]
    TooLong,
    /// A ServerHello version whose body layout is unknown (neither SSL 3.0 to TLS 1.2 nor TLS 1.3
    /// draft 18).
    #[error("ServerHello version with an unknown layout")]
    UnsupportedVersion,
}

impl TlsError {
    /// Every variant, in declaration order, for registering drop counters up front.
    pub const ALL: [TlsError; 9] = [
        TlsError::NotHandshake,
        TlsError::BadRecordVersion,
        TlsError::BadRecordLength,
        TlsError::NotClientHello,
        TlsError::NotServerHello,
        TlsError::Truncated,
        TlsError::Malformed,
        TlsError::TooLong,
        TlsError::UnsupportedVersion,
    ];

    /// Stable snake_case label for drop counters and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            TlsError::NotHandshake => "not_handshake",
            TlsError::BadRecordVersion => "bad_record_version",
            TlsError::BadRecordLength => "bad_record_length",
            TlsError::NotClientHello => "not_client_hello",
            TlsError::NotServerHello => "not_server_hello",
            TlsError::Truncated => "truncated",
            TlsError::Malformed => "malformed",
            TlsError::TooLong => "too_long",
            TlsError::UnsupportedVersion => "unsupported_version",
        }
    }
}

/// Is `v` one of the 16 GREASE values of RFC 8701 §2 (`0x0a0a`, `0x1a1a`, ..., `0xfafa`)?
///
/// GREASE values are random per connection, so fingerprints drop them; the summaries keep them
/// because their presence and position are themselves client traits.
pub const fn is_grease(v: u16) -> bool {
    v & 0x0f0f == 0x0a0a && (v >> 8) == (v & 0xff)
}

/// Display name of a protocol version code point: `"TLSv1.3"`, `"TLSv1.2"`, `"TLSv1.1"`,
/// `"TLSv1.0"`, `"SSLv3"`, `"SSLv2"`, `"DTLSv1.0"`, `"DTLSv1.2"`, `"DTLSv1.3"`,
/// `"TLSv1.3-draft"` for the `0x7fxx` draft versions, else `"unknown"` (GREASE included).
pub const fn version_str(v: u16) -> &'static str {
    match v {
        version::TLS13 => "TLSv1.3",
        version::TLS12 => "TLSv1.2",
        version::TLS11 => "TLSv1.1",
        version::TLS10 => "TLSv1.0",
        version::SSL3 => "SSLv3",
        version::SSL2 => "SSLv2",
        version::DTLS10 => "DTLSv1.0",
        version::DTLS12 => "DTLSv1.2",
        version::DTLS13 => "DTLSv1.3",
        0x7f00..=0x7fff => "TLSv1.3-draft",
        _ => "unknown",
    }
}

/// Ordering key under which a newer protocol version is larger.
///
/// TLS versions grow (0x0301 < 0x0304) but DTLS versions shrink (DTLS 1.0 = 0xfeff, 1.2 = 0xfefd,
/// 1.3 = 0xfefc, RFC 9147 §5.3), so the low byte of a `0xfe__` value is inverted.
const fn recency(v: u16) -> u16 {
    if v >> 8 == 0xfe {
        0xfe00 | (0xff - (v & 0xff))
    } else {
        v
    }
}

/// Summary of a ClientHello (RFC 8446 §4.1.2; RFC 5246 §7.4.1.2 for older versions).
///
/// Lists keep wire order and GREASE values. For extensions sent more than once (forbidden by
/// RFC 8446 §4.2, yet seen from broken or evasive clients) the contents of the first occurrence
/// are summarised; every occurrence is listed in [`ClientHello::extensions`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClientHello {
    /// `legacy_version` (`client_version` before TLS 1.3); TLS 1.3 clients send 0x0303, some
    /// TLS 1.3 draft clients sent 0x0304 here.
    pub legacy_version: u16,
    /// Length of `legacy_session_id` (0..=32); 32 from TLS 1.3 middlebox-compatible clients.
    pub session_id_len: u8,
    /// Cipher suites, wire order, GREASE kept.
    pub ciphers: Vec<u16>,
    /// Extension types, wire order, GREASE and duplicates kept.
    pub extensions: Vec<u16>,
    /// Raw bytes of the first `host_name` entry of `server_name` (RFC 6066 §3), not validated or
    /// rewritten. With ECH this is the outer (public) name.
    pub sni: Option<Vec<u8>>,
    /// The SNI is an IPv4 or IPv6 literal (RFC 6066 §3 forbids it; clients still send it).
    pub sni_is_ip: bool,
    /// ALPN protocol names (RFC 7301 §3.1), wire order, raw bytes.
    pub alpn: Vec<Vec<u8>>,
    /// `supported_versions` (RFC 8446 §4.2.1), wire order, GREASE and draft values kept.
    pub supported_versions: Vec<u16>,
    /// `signature_algorithms` (RFC 8446 §4.2.3), wire order, GREASE kept.
    pub signature_algorithms: Vec<u16>,
    /// `supported_groups` (RFC 8446 §4.2.7), wire order, GREASE kept.
    pub supported_groups: Vec<u16>,
    /// `ec_point_formats` (RFC 8422 §5.1.2).
    pub ec_point_formats: Vec<u8>,
    /// Groups of the `key_share` client shares (RFC 8446 §4.2.8), wire order, GREASE kept.
    pub key_share_groups: Vec<u16>,
    /// `encrypted_client_hello` (0xfe0d) present: this is an ECH outer hello (or a GREASE ECH),
    /// and [`ClientHello::sni`] is the public name, not the real destination.
    pub ech: bool,
    /// `pre_shared_key` (41) present: a TLS 1.3 resumption or external-PSK attempt.
    pub psk: bool,
    /// `session_ticket` (35) present with a non-empty ticket: a TLS 1.2 resumption attempt
    /// (RFC 5077 §3.1).
    pub session_ticket: bool,
}

impl ClientHello {
    /// Parse one whole handshake message, starting at its type byte (1 = client_hello) and 3-byte
    /// length. Bytes after the message (the next handshake message) are ignored.
    ///
    /// A hello without an extensions block is legal (TLS 1.0 clients, RFC 5246 §7.4.1.2) and
    /// gives empty lists. The same message format is carried in QUIC CRYPTO frames (RFC 9001 §4).
    ///
    /// # Errors
    /// [`TlsError::NotClientHello`] for another message type, [`TlsError::Truncated`] when `msg` is
    /// shorter than its header length, [`TlsError::TooLong`] above [`MAX_HANDSHAKE_LEN`], and
    /// [`TlsError::Malformed`] when a length inside the body disagrees with its contents
    /// (including trailing bytes after the extensions block).
    pub fn parse(msg: &[u8]) -> Result<ClientHello, TlsError> {
        let mut ch = ClientHello::default();
        ch.parse_into(msg)?;
        Ok(ch)
    }

    /// [`ClientHello::parse`] into `self`, reusing its lists' memory: a caller that keeps one
    /// hello for every flow (the engine does) allocates nothing per hello but the ALPN values
    /// and the server name. On an error `self` holds what was read before it.
    ///
    /// The fixed fields and the lists are read here rather than by tls-parser, whose reader
    /// builds a vector per list (a dozen allocations per hello, measured by
    /// `tests/allocations.rs`); the formats are RFC 8446 §4.1.2 and the extensions' own RFCs.
    ///
    /// # Errors
    /// As [`ClientHello::parse`].
    pub fn parse_into(&mut self, msg: &[u8]) -> Result<(), TlsError> {
        self.clear();
        let body = handshake_body(msg, HANDSHAKE_CLIENT_HELLO, TlsError::NotClientHello)?;
        let fixed = read_fixed(body).filter(|f| f.session_id_len <= 32 && f.ciphers.len() % 2 == 0).ok_or(TlsError::Malformed)?;
        self.legacy_version = fixed.legacy_version;
        self.session_id_len = fixed.session_id_len;
        self.ciphers.extend(fixed.ciphers.as_chunks::<2>().0.iter().map(|&c| u16::from_be_bytes(c)));
        // The extensions block is optional (TLS 1.0 clients); when present it is the rest of
        // the body exactly: a complete hello has nothing left over.
        let block = match fixed.rest {
            [] => &[][..],
            rest => {
                let len = usize::from(be_u16(rest, 0).ok_or(TlsError::Malformed)?);
                rest.get(2..).filter(|b| b.len() == len).ok_or(TlsError::Malformed)?
            }
        };
        let mut seen = Seen::default();
        for raw in Extensions::new(block) {
            self.absorb(raw?, &mut seen);
        }
        self.sni_is_ip = self.sni.as_deref().is_some_and(is_ip_literal);
        Ok(())
    }

    /// Empties every field, keeping the lists' memory.
    fn clear(&mut self) {
        self.legacy_version = 0;
        self.session_id_len = 0;
        self.ciphers.clear();
        self.extensions.clear();
        self.sni = None;
        self.sni_is_ip = false;
        self.alpn.clear();
        self.supported_versions.clear();
        self.signature_algorithms.clear();
        self.supported_groups.clear();
        self.ec_point_formats.clear();
        self.key_share_groups.clear();
        self.ech = false;
        self.psk = false;
        self.session_ticket = false;
    }

    /// What can be read of a hello that [`ClientHello::parse`] rejects: the fixed fields and
    /// the extensions up to the first malformed one, read header by header. `Some` only when
    /// that includes a server_name (a hello that is broken after its name still names the flow,
    /// as Wireshark and nDPI read it); the caller keeps the error and makes no fingerprint.
    pub fn parse_partial(msg: &[u8]) -> Option<ClientHello> {
        // The body may be cut short by a wrong length: read what the message holds.
        let body = msg.get(HANDSHAKE_HEADER_LEN..).filter(|_| msg.first() == Some(&HANDSHAKE_CLIENT_HELLO))?;
        let fixed = read_fixed(body)?;
        let block_len = usize::from(be_u16(fixed.rest, 0)?);
        let rest = fixed.rest.get(2..)?;
        let block = rest.get(..block_len).unwrap_or(rest);
        let mut ch = ClientHello {
            legacy_version: fixed.legacy_version,
            session_id_len: fixed.session_id_len,
            ciphers: fixed.ciphers.as_chunks::<2>().0.iter().map(|&c| u16::from_be_bytes(c)).collect(),
            ..ClientHello::default()
        };
        let mut seen = Seen::default();
        for raw in Extensions::new(block) {
            let Ok(raw) = raw else { break };
            ch.absorb(raw, &mut seen);
        }
        ch.sni.as_ref()?;
        ch.sni_is_ip = ch.sni.as_deref().is_some_and(is_ip_literal);
        Some(ch)
    }

    /// Highest non-GREASE value in `supported_versions`, else `legacy_version`.
    ///
    /// "Highest" means newest: DTLS code points count down, so among `0xfe__` values the
    /// numerically lowest wins (DTLS 1.3 = 0xfefc beats DTLS 1.2 = 0xfefd). TLS values, draft
    /// values (`0x7fxx`) included, compare numerically, as the JA4 specification does.
    pub fn max_version(&self) -> u16 {
        self.supported_versions
            .iter()
            .copied()
            .filter(|&v| !is_grease(v))
            .max_by_key(|&v| recency(v))
            .unwrap_or(self.legacy_version)
    }

    /// Record one extension: its type always, its contents when tls-parser can read them.
    fn absorb(&mut self, raw: RawExtension<'_>, seen: &mut Seen) {
        self.extensions.push(raw.ty);
        match raw.ty {
            ext::ENCRYPTED_CLIENT_HELLO => self.ech = true,
            ext::PRE_SHARED_KEY => self.psk = true,
            _ => {}
        }
        if !seen.first(raw.ty) {
            return;
        }
        // Contents that do not parse add nothing beyond the type.
        let Some(data) = raw.tlv.get(4..) else {
            return;
        };
        match raw.ty {
            ext::SERVER_NAME => {
                if let Some(name) = first_host_name(data) {
                    self.sni = Some(name.to_vec());
                }
            }
            ext::ALPN => {
                if let Some(list) = vector(data, 2).filter(|l| !l.is_empty()) {
                    let mut names = list;
                    let mut ok = true;
                    let start = self.alpn.len();
                    while !names.is_empty() {
                        match vector(names, 1).filter(|n| !n.is_empty()) {
                            Some(n) => {
                                self.alpn.push(n.to_vec());
                                names = names.get(1 + n.len()..).unwrap_or_default();
                            }
                            None => {
                                ok = false;
                                break;
                            }
                        }
                    }
                    if !ok {
                        self.alpn.truncate(start);
                    }
                }
            }
            ext::SUPPORTED_VERSIONS => {
                if let Some(l) = vector(data, 1).and_then(u16s) {
                    self.supported_versions.extend(l);
                }
            }
            ext::SIGNATURE_ALGORITHMS => {
                if let Some(l) = vector(data, 2).and_then(u16s) {
                    self.signature_algorithms.extend(l);
                }
            }
            ext::SUPPORTED_GROUPS => {
                if let Some(l) = vector(data, 2).and_then(u16s) {
                    self.supported_groups.extend(l);
                }
            }
            ext::EC_POINT_FORMATS => {
                if let Some(l) = vector(data, 1) {
                    self.ec_point_formats.extend_from_slice(l);
                }
            }
            ext::KEY_SHARE => key_share_groups(data, &mut self.key_share_groups),
            ext::SESSION_TICKET => self.session_ticket = !data.is_empty(),
            _ => {}
        }
    }
}

/// The fixed fields of a ClientHello body (RFC 8446 §4.1.2), borrowed.
struct Fixed<'a> {
    legacy_version: u16,
    session_id_len: u8,
    /// The cipher suites' bytes (an even number).
    ciphers: &'a [u8],
    /// What follows the compression methods: the extensions block, if any.
    rest: &'a [u8],
}

/// Reads the fixed fields as far as their lengths hold: version, random, session id, cipher
/// suites, compression methods. The strict parse checks the rest (a session id of at most 32
/// bytes, an even cipher list); the partial one reads what is there. Empty lists are read (the
/// RFC forbids them; a hostile hello still names its flow).
fn read_fixed(body: &[u8]) -> Option<Fixed<'_>> {
    let legacy_version = be_u16(body, 0)?;
    let mut at = 2 + 32;
    let sid = vector(body.get(at..)?, 1)?;
    at += 1 + sid.len();
    let ciphers = vector(body.get(at..)?, 2)?;
    at += 2 + ciphers.len();
    let compression = vector(body.get(at..)?, 1)?;
    at += 1 + compression.len();
    Some(Fixed { legacy_version, session_id_len: u8::try_from(sid.len()).unwrap_or(u8::MAX), ciphers, rest: body.get(at..)? })
}

/// The contents of a vector with a `len_bytes` (1 or 2) big-endian length prefix at the start of
/// `data`; `None` when the length runs past `data`. Bytes after the vector are ignored here.
fn vector(data: &[u8], len_bytes: usize) -> Option<&[u8]> {
    let len = match len_bytes {
        1 => usize::from(*data.first()?),
        _ => usize::from(be_u16(data, 0)?),
    };
    data.get(len_bytes..len_bytes + len)
}

/// A vector's bytes as big-endian u16 values; `None` for an odd length.
fn u16s(v: &[u8]) -> Option<impl Iterator<Item = u16> + '_> {
    let (pairs, odd) = v.as_chunks::<2>();
    odd.is_empty().then(|| pairs.iter().map(|&p| u16::from_be_bytes(p)))
}

/// The first `host_name` (type 0) of a `server_name` extension's list (RFC 6066 §3).
fn first_host_name(data: &[u8]) -> Option<&[u8]> {
    let mut list = vector(data, 2)?;
    while let Some((&kind, rest)) = list.split_first() {
        let name = vector(rest, 2)?;
        if kind == 0 {
            return Some(name);
        }
        list = rest.get(2 + name.len()..)?;
    }
    None
}

/// Summary of a ServerHello (RFC 8446 §4.1.3; RFC 5246 §7.4.1.3 for older versions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerHello {
    /// Negotiated version: the `supported_versions` (43) `selected_version` when present
    /// (TLS 1.3, RFC 8446 §4.2.1), else the legacy version field.
    pub version: u16,
    /// Selected cipher suite.
    pub cipher: u16,
    /// Selected ALPN protocol (RFC 7301 §3.1), raw bytes.
    pub alpn: Option<Vec<u8>>,
}

impl ServerHello {
    /// Parse one whole handshake message, starting at its type byte (2 = server_hello) and 3-byte
    /// length. A TLS 1.3 HelloRetryRequest has the same format and parses as a ServerHello.
    ///
    /// Layouts understood: SSL 3.0 to TLS 1.2 (and TLS 1.3, which keeps the TLS 1.2 layout with
    /// `legacy_version` 0x0303), and TLS 1.3 draft 18 (`0x7f12`). An SSL 3.0 hello's trailing
    /// bytes are ignored (SSL 3.0 defined no extensions).
    ///
    /// # Errors
    /// [`TlsError::NotServerHello`] for another message type, [`TlsError::Truncated`] when `msg`
    /// is shorter than its header length, [`TlsError::TooLong`] above [`MAX_HANDSHAKE_LEN`],
    /// [`TlsError::UnsupportedVersion`] for another version layout, and [`TlsError::Malformed`]
    /// when a length inside the body disagrees with its contents.
    pub fn parse(msg: &[u8]) -> Result<ServerHello, TlsError> {
        let body = handshake_body(msg, HANDSHAKE_SERVER_HELLO, TlsError::NotServerHello)?;
        let legacy = be_u16(body, 0).ok_or(TlsError::Malformed)?;
        let (rest, mut version, cipher, exts) = match parse_tls_handshake_msg_server_hello(body) {
            Ok((rest, TlsMessageHandshake::ServerHello(sh))) => {
                (rest, sh.version.0, sh.cipher.0, sh.ext)
            }
            Ok((rest, TlsMessageHandshake::ServerHelloV13Draft18(sh))) => {
                (rest, sh.version.0, sh.cipher.0, sh.ext)
            }
            Ok(_) => return Err(TlsError::Malformed),
            Err(_) if !matches!(legacy, version::SSL3..=version::TLS12 | 0x7f12) => {
                return Err(TlsError::UnsupportedVersion)
            }
            Err(_) => return Err(TlsError::Malformed),
        };
        if !rest.is_empty() && legacy != version::SSL3 {
            return Err(TlsError::Malformed);
        }
        let mut alpn = None;
        let mut seen = Seen::default();
        for raw in Extensions::new(exts.unwrap_or_default()) {
            let raw = raw?;
            if !seen.first(raw.ty) {
                continue;
            }
            match parse_tls_server_hello_extension(raw.tlv) {
                Ok((_, TlsExtension::SupportedVersions(vs))) => {
                    if let [v] = vs.as_slice() {
                        version = v.0;
                    }
                }
                Ok((_, TlsExtension::ALPN(names))) => alpn = names.first().map(|n| n.to_vec()),
                _ => {}
            }
        }
        Ok(ServerHello {
            version,
            cipher,
            alpn,
        })
    }
}

/// Outcome of [`first_handshake`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordScan {
    /// The first handshake message is complete; it is `msg_len` bytes long (header included) and
    /// has been copied to the output buffer.
    Complete {
        /// Length of the handshake message, its 4-byte header included.
        msg_len: usize,
    },
    /// Everything so far is consistent with TLS but the message is not complete yet: call again
    /// with a longer stream.
    NeedMore,
    /// The stream is not a TLS handshake (or one this sensor refuses to buffer); stop probing.
    NotTls(TlsError),
}

/// Reassemble the first handshake message of one direction of a TLS stream.
///
/// `stream` holds contiguous bytes from the start of that direction. Handshake records (content
/// type 22) are read in order and their fragments concatenated (RFC 8446 §5.1: a handshake
/// message may span records, and records may span TCP segments) until the first handshake message
/// is complete. A ClientHello with a post-quantum key share is about 1.8 KB and is split across
/// records by some clients. Bytes after the message are ignored.
///
/// On [`RecordScan::Complete`] `out` holds exactly the message (type byte onward), ready for
/// [`ClientHello::parse`] or [`ServerHello::parse`]; on any other outcome `out` is left empty.
/// `out` never holds more than [`MAX_HANDSHAKE_LEN`] bytes. The work is linear in `stream.len()`;
/// a caller that appends segments calls again with the longer stream.
///
/// Returns [`RecordScan::NotTls`] with [`TlsError::NotHandshake`] for another content type
/// (RFC 8446 §5.1 forbids interleaving other records within a handshake message),
/// [`TlsError::BadRecordVersion`], [`TlsError::BadRecordLength`] for an empty or over-long record,
/// and [`TlsError::TooLong`] for a message above [`MAX_HANDSHAKE_LEN`]. Each check runs as soon
/// as the bytes it needs are present, so garbage is rejected from its first byte.
pub fn first_handshake(stream: &[u8], out: &mut Vec<u8>) -> RecordScan {
    out.clear();
    let mut reader = HandshakeReader { out: std::mem::take(out), ..HandshakeReader::default() };
    let scan = reader.advance(stream);
    *out = reader.out;
    if !matches!(scan, RecordScan::Complete { .. }) {
        out.clear();
    }
    scan
}

/// [`first_handshake`] for a stream that grows piece by piece: each call reads only the records
/// that were not complete at the previous call, so a hello cut into thousands of 1-byte records
/// costs linear time, and the complete records it has read can be dropped from the stream
/// ([`HandshakeReader::slide`]) so that the bound on a hello is its own size
/// ([`MAX_HANDSHAKE_LEN`]), not the size of its record headers.
///
/// Memory cost: the message bytes read so far (at most [`MAX_HANDSHAKE_LEN`]).
#[derive(Debug, Clone, Default)]
pub struct HandshakeReader {
    /// Stream bytes of the complete records already read.
    scanned: usize,
    /// Message bytes taken from those records.
    out: Vec<u8>,
    /// Length of the message (header included) once its header is in.
    msg_len: Option<usize>,
}

impl HandshakeReader {
    /// Reads the records of `stream` (the same stream as at the previous call, grown, less what
    /// was slid away) past those already read.
    pub fn advance(&mut self, stream: &[u8]) -> RecordScan {
        let mut rest = stream.get(self.scanned..).unwrap_or_default();
        loop {
            if let Some(n) = self.msg_len.filter(|&n| self.out.len() == n) {
                return RecordScan::Complete { msg_len: n };
            }
            if let Err(e) = check_record_prefix(rest) {
                return RecordScan::NotTls(e);
            }
            let Some((&[_, _, _, l0, l1], after)) = rest.split_first_chunk::<RECORD_HEADER_LEN>() else {
                return RecordScan::NeedMore;
            };
            let frag_len = usize::from(u16::from_be_bytes([l0, l1]));
            if frag_len == 0 || frag_len > MAX_RECORD_LEN {
                return RecordScan::NotTls(TlsError::BadRecordLength);
            }
            let Some((frag, later)) = after.split_at_checked(frag_len) else {
                // A partial record: its bytes may already complete the message; if not, they are
                // read again with the rest of the record.
                let (kept, kept_len) = (self.out.len(), self.msg_len);
                return match self.absorb(after) {
                    Err(e) => RecordScan::NotTls(e),
                    Ok(Some(n)) => RecordScan::Complete { msg_len: n },
                    Ok(None) => {
                        self.out.truncate(kept);
                        self.msg_len = kept_len;
                        RecordScan::NeedMore
                    }
                };
            };
            match self.absorb(frag) {
                Err(e) => return RecordScan::NotTls(e),
                Ok(Some(n)) => return RecordScan::Complete { msg_len: n },
                Ok(None) => {}
            }
            self.scanned += RECORD_HEADER_LEN + frag_len;
            rest = later;
        }
    }

    /// Appends a record fragment's bytes up to the end of the message; the message length once
    /// it is complete.
    fn absorb(&mut self, mut frag: &[u8]) -> Result<Option<usize>, TlsError> {
        // A message whose header is whole in this fragment: one allocation of its size (up to
        // [`UPFRONT_LEN`]: a message that only announces a large size does not get it before
        // its bytes arrive).
        if let (None, true, Some(&[_, a, b, c])) = (self.msg_len, self.out.is_empty(), frag.first_chunk::<HANDSHAKE_HEADER_LEN>()) {
            self.out.reserve_exact((HANDSHAKE_HEADER_LEN + u24(a, b, c)).min(UPFRONT_LEN));
        }
        while !frag.is_empty() {
            let want = self.msg_len.unwrap_or(HANDSHAKE_HEADER_LEN) - self.out.len();
            let (now, later) = frag.split_at(want.min(frag.len()));
            self.out.extend_from_slice(now);
            frag = later;
            if let (None, &[_, a, b, c]) = (self.msg_len, self.out.as_slice()) {
                let body_len = u24(a, b, c);
                if body_len > MAX_HANDSHAKE_LEN - HANDSHAKE_HEADER_LEN {
                    return Err(TlsError::TooLong);
                }
                self.msg_len = Some(HANDSHAKE_HEADER_LEN + body_len);
                // One allocation for the message rather than one per doubling.
                self.out.reserve_exact((HANDSHAKE_HEADER_LEN + body_len).min(UPFRONT_LEN).saturating_sub(self.out.len()));
            }
            if let Some(n) = self.msg_len.filter(|&n| self.out.len() == n) {
                return Ok(Some(n));
            }
        }
        Ok(None)
    }

    /// The complete message, after [`RecordScan::Complete`] (empty before).
    pub fn message(&self) -> &[u8] {
        match self.msg_len {
            Some(n) if self.out.len() == n => &self.out,
            _ => &[],
        }
    }

    /// Stream bytes of the complete records read so far (they can be dropped from the stream).
    pub fn scanned(&self) -> usize {
        self.scanned
    }

    /// The first `n` bytes of the stream (at most [`HandshakeReader::scanned`]) were dropped.
    pub fn slide(&mut self, n: usize) {
        self.scanned -= n.min(self.scanned);
    }

    /// Starts over (the bytes already read changed).
    pub fn reset(&mut self) {
        self.scanned = 0;
        self.out.clear();
        self.msg_len = None;
    }

    /// Bytes of memory held.
    pub fn footprint(&self) -> usize {
        self.out.capacity()
    }
}

/// Bytes of a handshake message reserved at once when its header arrives: a ClientHello is
/// rarely larger (a post-quantum one is about 1.8 KB); a larger one grows as its bytes come.
pub const UPFRONT_LEN: usize = 4096;

/// Check the record-header bytes present at the start of `rec` (0 to 5 of them).
fn check_record_prefix(rec: &[u8]) -> Result<(), TlsError> {
    if rec.first().is_some_and(|&t| t != CONTENT_TYPE_HANDSHAKE) {
        return Err(TlsError::NotHandshake);
    }
    if rec.get(1).is_some_and(|&major| major != 3) || rec.get(2).is_some_and(|&minor| minor > 4) {
        return Err(TlsError::BadRecordVersion);
    }
    Ok(())
}

/// Cheap probe on the first bytes of a TCP payload: do they start a TLS handshake record?
///
/// Checks, as far as the bytes given reach: content type 22, record version 3.0 to 3.4, a record
/// length of 1 to 2^14, and a first handshake message of type client_hello (1) or server_hello (2),
/// the only messages that can open a direction. At least 3 bytes are needed; fewer give `false`.
///
/// SSLv2-format ClientHellos (a 2-byte header with the high bit set, RFC 5246 Appendix E.2) are
/// not detected and give `false`: no current client sends them, and JA4 cannot describe them.
pub fn looks_like_tls(first: &[u8]) -> bool {
    if first.len() < 3 || check_record_prefix(first).is_err() {
        return false;
    }
    if let Some(len) = be_u16(first, 3) {
        if len == 0 || usize::from(len) > MAX_RECORD_LEN {
            return false;
        }
    }
    match first.get(RECORD_HEADER_LEN) {
        Some(&ty) => ty == HANDSHAKE_CLIENT_HELLO || ty == HANDSHAKE_SERVER_HELLO,
        None => true,
    }
}

/// The body of a handshake message of type `want`, checked against its 3-byte length.
fn handshake_body(msg: &[u8], want: u8, wrong: TlsError) -> Result<&[u8], TlsError> {
    let Some((&[ty, l0, l1, l2], after)) = msg.split_first_chunk::<HANDSHAKE_HEADER_LEN>() else {
        return match msg.first() {
            Some(&ty) if ty != want => Err(wrong),
            _ => Err(TlsError::Truncated),
        };
    };
    if ty != want {
        return Err(wrong);
    }
    let len = u24(l0, l1, l2);
    if len > MAX_HANDSHAKE_LEN - HANDSHAKE_HEADER_LEN {
        return Err(TlsError::TooLong);
    }
    after.get(..len).ok_or(TlsError::Truncated)
}

/// One extension as found on the wire.
struct RawExtension<'a> {
    /// Extension type.
    ty: u16,
    /// The whole extension, 4-byte header included, as tls-parser's single-extension parsers
    /// expect it.
    tlv: &'a [u8],
}

/// Walks an extensions block (RFC 8446 §4.2) header by header. Yields
/// `Err(TlsError::Malformed)` once, then stops, if a header or body overruns the block.
struct Extensions<'a> {
    rest: &'a [u8],
}

impl<'a> Extensions<'a> {
    fn new(block: &'a [u8]) -> Self {
        Extensions { rest: block }
    }
}

impl<'a> Iterator for Extensions<'a> {
    type Item = Result<RawExtension<'a>, TlsError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let item = match (be_u16(self.rest, 0), be_u16(self.rest, 2)) {
            (Some(ty), Some(len)) => self
                .rest
                .split_at_checked(4 + usize::from(len))
                .map(|(tlv, rest)| {
                    self.rest = rest;
                    RawExtension { ty, tlv }
                })
                .ok_or(TlsError::Malformed),
            _ => Err(TlsError::Malformed),
        };
        if item.is_err() {
            self.rest = &[];
        }
        Some(item)
    }
}

/// Which of the extensions whose contents are summarised have been seen, so that only the first
/// occurrence of each is read.
#[derive(Default)]
struct Seen(u16);

impl Seen {
    /// Is this the first occurrence of `ty`? Types whose contents are not read always give `true`.
    fn first(&mut self, ty: u16) -> bool {
        let bit = match ty {
            ext::SERVER_NAME => 0,
            ext::SUPPORTED_GROUPS => 1,
            ext::EC_POINT_FORMATS => 2,
            ext::SIGNATURE_ALGORITHMS => 3,
            ext::ALPN => 4,
            ext::SESSION_TICKET => 5,
            ext::SUPPORTED_VERSIONS => 6,
            ext::KEY_SHARE => 7,
            _ => return true,
        };
        let fresh = self.0 & (1 << bit) == 0;
        self.0 |= 1 << bit;
        fresh
    }
}

/// Groups of a `KeyShareClientHello` (RFC 8446 §4.2.8): `client_shares<0..2^16-1>` of
/// `{ NamedGroup group; opaque key_exchange<1..2^16-1>; }`. Entries up to the first inconsistent
/// length are kept.
fn key_share_groups(data: &[u8], groups: &mut Vec<u16>) {
    let Some(list_len) = be_u16(data, 0) else {
        return;
    };
    let mut rest = data.get(2..).unwrap_or_default();
    rest = rest.get(..usize::from(list_len)).unwrap_or(rest);
    while let (Some(group), Some(kx_len)) = (be_u16(rest, 0), be_u16(rest, 2)) {
        let Some(next) = rest.get(4 + usize::from(kx_len)..) else {
            break;
        };
        groups.push(group);
        rest = next;
    }
}

/// Is this SNI an IPv4 or IPv6 literal (optionally in brackets)?
fn is_ip_literal(name: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(name) else {
        return false;
    };
    let s = s
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(s);
    s.parse::<IpAddr>().is_ok()
}

/// Big-endian u16 at `at`, if present.
fn be_u16(b: &[u8], at: usize) -> Option<u16> {
    match b.get(at..at.checked_add(2)?)? {
        [hi, lo] => Some(u16::from_be_bytes([*hi, *lo])),
        _ => None,
    }
}

/// A 24-bit big-endian length.
fn u24(a: u8, b: u8, c: u8) -> usize {
    usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c)
}

/// Captured hellos used as fixtures by the tests here and in `fingerprint`.
///
/// Provenance: each constant is the TCP payload (record header onward) of one packet of a capture
/// in the shared test corpus, extracted with tshark; the expected fingerprints come from the
/// corpus' expected values (FoxIO JA4 reference snapshots, salesforce JA3 baselines, and tshark).
#[cfg(test)]
pub(crate) mod samples {
    use super::{first_handshake, ClientHello, RecordScan};

    /// `foxio-badcurveball.pcap` (FoxIO-LLC/ja4 `pcap/badcurveball.pcap`), frame 4: Chrome-like
    /// TLS 1.3 ClientHello for `bad.curveballtest.com` in one 512-byte record, GREASE in ciphers,
    /// extensions, groups, key shares and versions, padding (21) to 512 bytes.
    /// JA4 `t13d1615h2_46e7e9700bed_45f260be83e2`, JA3 (tshark) `66918128f1b9b03303d77c6f2eefd128`.
    pub(crate) const BADCURVEBALL: &str = "\
        1603010200010001fc0303c5b08a8a5a1a1f31e5bcd0853b6f59944dfec2900a712a2a6059b827c58cf48020078a389e\
        f1767da304d9e10cc7a9441a734513694d3a353ed9522ac47f9c8aa40022aaaa130113021303c02bc02fc02cc030cca9\
        cca8c013c014009c009d002f0035000a010001914a4a00000000001a00180000156261642e637572766562616c6c7465\
        73742e636f6d00170000ff01000100000a000a0008caca001d00170018000b00020100002300000010000e000c026832\
        08687474702f312e31000500050100000000000d00140012040308040401050308050501080606010201001200000033\
        002b0029caca000100001d0020ec9c731ae0f83a315ec38ed8cc94912502ab3ca913a29b7d037d7c0ae6a6e81a002d00\
        020101002b000b0a2a2a0304030303020301001b00030200027a7a000100001500c30000000000000000000000000000\
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
        00000000000000000000000000000000000000000000000000000000000000000000000000\
    ";
    /// `foxio-tls-non-ascii-alpn.pcapng` (FoxIO-LLC/ja4 `pcap/tls-non-ascii-alpn.pcapng`), frame 1:
    /// TLS 1.3 ClientHello whose first ALPN value is the two bytes `0xba 0xad`. JA4 per the
    /// specification `t13d1516bd_8daaf6152771_e5627efa2ab1` (the FoxIO reference code says `99`
    /// for the ALPN part), JA3 (tshark) `1c258ebef8eee2dfa3df6d8d07285af9`.
    pub(crate) const NON_ASCII_ALPN: &str = "\
        1603010200010001fc03030f9e38acb9a54a7c6e00e29a70ac2feee180ff76d7f25dca84932a66a42d1e5a20bc58b92f\
        865e6b9aa4a6371cadcb0afe1da1c0f705209a11d52357f56d5dd9620020aaaa130113021303c02bc02fc02cc030cca9\
        cca8c013c014009c009d002f0035010001939a9a0000ff010001000033002b00290a0a000100001d0020cf55af2603e9\
        2f59eb321779706a18fa6b96b16c16404c2264ed687a59401878002d0002010100050005010000000044690005000302\
        6832000d00120010040308040401050308050501080606010010000e000c02baad08687474702f312e3100230000001b\
        0003020002002b0007060a0a0304030300000022002000001d636c69656e7473657276696365732e676f6f676c656170\
        69732e636f6d00120000000a000a00080a0a001d0017001800170000000b000201006a6a000100001500ba0000000000\
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
        00000000000000000000000000000000000000000000000000000000000000000000000000\
    ";
    /// `ja3-ssl-curl.pcap` (salesforce/ja3 `testing/Traces/ssl-curl.pcap`), frame 4: curl
    /// (OpenSSL 1.0.2) TLS 1.2 ClientHello for `google.com` with 67 cipher suites, no GREASE.
    /// JA3 `2a26b1a62e40d25d4de3babc9d532f30` (salesforce baseline, tshark agrees), JA4 per the
    /// specification (computed from the tshark-reassembled hello)
    /// `t12d6707h2_2955a3196ffa_c83f907a73d3`.
    pub(crate) const CURL: &str = "\
        1603010200010001fc03039f694d873b256aa4100a7f60fcb27cd08f36000dcc52955c116b25d1a5728c5e000086cc14\
        cc13cc15c030c02cc028c024c014c00a00a3009f006b006a00390038ff8500c400c3008800870081c032c02ec02ac026\
        c00fc005009d003d003500c00084c02fc02bc027c023c013c00900a2009e006700400033003200be00bd00450044c031\
        c02dc029c025c00ec004009c003c002f00ba0041c012c00800160013c00dc003000a00ff0100014d0000000f000d0000\
        0a676f6f676c652e636f6d000b000403000102000a003a0038000e000d0019001c000b000c001b00180009000a001a00\
        160017000800060007001400150004000500120013000100020003000f00100011000d00260024060106020603efef05\
        0105020503040104020403eeeeeded030103020303020102020203337400000010000e000c02683208687474702f312e\
        31001500b000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
        000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000\
        00000000000000000000000000000000000000000000000000000000000000000000000000\
    ";
    /// `foxio-badcurveball.pcap`, frame 6: the first record of the server's reply, a TLS 1.2
    /// ServerHello selecting 0xc02b and ALPN `http/1.1`.
    pub(crate) const BADCURVEBALL_SERVER: &str = "\
        16030300500200004c0303d1b6bc54a89e67ac3ed9b6b826985762b4cc6cdde39e4d7a95421232c747c54400c02b0000\
        2400000000ff01000100000b000403000102002300000010000b000908687474702f312e31\
    ";
    /// Decode a hex fixture; whitespace is ignored.
    pub(crate) fn bytes(hex: &str) -> Vec<u8> {
        let digits: Vec<u8> = hex
            .bytes()
            .filter(|b| !b.is_ascii_whitespace())
            .map(|b| match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                _ => panic!("bad hex digit {b}"),
            })
            .collect();
        assert_eq!(digits.len() % 2, 0, "odd hex length");
        digits.chunks(2).map(|p| p[0] << 4 | p[1]).collect()
    }

    /// The first handshake message of a fixture's record stream.
    pub(crate) fn message(hex: &str) -> Vec<u8> {
        let mut out = Vec::new();
        match first_handshake(&bytes(hex), &mut out) {
            RecordScan::Complete { msg_len } => assert_eq!(msg_len, out.len()),
            other => panic!("fixture does not hold a complete handshake message: {other:?}"),
        }
        out
    }

    /// The ClientHello summary of a fixture.
    pub(crate) fn client_hello(hex: &str) -> ClientHello {
        ClientHello::parse(&message(hex)).expect("fixture parses")
    }
}

#[cfg(test)]
mod tests {
    use super::samples::{self, bytes, message};
    use super::*;

    // ---- builders for hand-assembled hellos ----

    fn put16(out: &mut Vec<u8>, v: u16) {
        out.extend_from_slice(&v.to_be_bytes());
    }

    /// One extension: type, 2-byte length, body.
    fn ext(ty: u16, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        put16(&mut out, ty);
        put16(&mut out, u16::try_from(body.len()).unwrap());
        out.extend_from_slice(body);
        out
    }

    /// A `<2..2^16-2>` vector of u16 values.
    fn list16(values: &[u16]) -> Vec<u8> {
        let mut out = Vec::new();
        put16(&mut out, u16::try_from(values.len() * 2).unwrap());
        for &v in values {
            put16(&mut out, v);
        }
        out
    }

    fn sni_body(name: &[u8]) -> Vec<u8> {
        let mut entry = vec![0u8];
        put16(&mut entry, u16::try_from(name.len()).unwrap());
        entry.extend_from_slice(name);
        let mut out = Vec::new();
        put16(&mut out, u16::try_from(entry.len()).unwrap());
        out.extend_from_slice(&entry);
        out
    }

    fn alpn_body(names: &[&[u8]]) -> Vec<u8> {
        let mut list = Vec::new();
        for n in names {
            list.push(u8::try_from(n.len()).unwrap());
            list.extend_from_slice(n);
        }
        let mut out = Vec::new();
        put16(&mut out, u16::try_from(list.len()).unwrap());
        out.extend_from_slice(&list);
        out
    }

    fn key_share_body(shares: &[(u16, usize)]) -> Vec<u8> {
        let mut list = Vec::new();
        for &(group, len) in shares {
            put16(&mut list, group);
            put16(&mut list, u16::try_from(len).unwrap());
            list.extend(std::iter::repeat_n(0x5a, len));
        }
        let mut out = Vec::new();
        put16(&mut out, u16::try_from(list.len()).unwrap());
        out.extend_from_slice(&list);
        out
    }

    /// A client_hello handshake message; `exts: None` omits the extensions block entirely.
    fn client_hello_msg(
        legacy: u16,
        sid_len: u8,
        ciphers: &[u16],
        exts: Option<&[Vec<u8>]>,
    ) -> Vec<u8> {
        let mut body = Vec::new();
        put16(&mut body, legacy);
        body.extend_from_slice(&[0x11; 32]); // random
        body.push(sid_len);
        body.extend(std::iter::repeat_n(0x22, usize::from(sid_len)));
        body.extend_from_slice(&list16(ciphers));
        body.extend_from_slice(&[1, 0]); // compression: null
        if let Some(exts) = exts {
            let block: Vec<u8> = exts.concat();
            put16(&mut body, u16::try_from(block.len()).unwrap());
            body.extend_from_slice(&block);
        }
        handshake(HANDSHAKE_CLIENT_HELLO, &body)
    }

    fn handshake(ty: u8, body: &[u8]) -> Vec<u8> {
        let len = u32::try_from(body.len()).unwrap().to_be_bytes();
        let mut msg = vec![ty, len[1], len[2], len[3]];
        msg.extend_from_slice(body);
        msg
    }

    /// Wrap `msg` in handshake records whose fragments have the given sizes; the last record
    /// takes whatever is left.
    fn records(msg: &[u8], sizes: &[usize]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut rest = msg;
        for &size in sizes.iter().chain(std::iter::once(&usize::MAX)) {
            if rest.is_empty() {
                break;
            }
            let (frag, later) = rest.split_at(size.min(rest.len()));
            out.extend_from_slice(&[CONTENT_TYPE_HANDSHAKE, 3, 1]);
            put16(&mut out, u16::try_from(frag.len()).unwrap());
            out.extend_from_slice(frag);
            rest = later;
        }
        out
    }

    /// A TLS 1.3 hello in the style of current Chrome: GREASE in ciphers, extensions, groups,
    /// key shares, versions and signature algorithms, an X25519MLKEM768 share (1 216 bytes).
    fn grease_tls13_msg() -> Vec<u8> {
        client_hello_msg(
            version::TLS12,
            32,
            &[0x3a3a, 0x1301, 0x1302, 0x1303, 0xc02b],
            Some(&[
                ext(0x0a0a, &[]),
                ext(ext::SERVER_NAME, &sni_body(b"example.com")),
                ext(
                    ext::SUPPORTED_GROUPS,
                    &list16(&[0x2a2a, 0x11ec, 0x001d, 0x0017]),
                ),
                ext(ext::EC_POINT_FORMATS, &[1, 0]),
                ext(
                    ext::SIGNATURE_ALGORITHMS,
                    &list16(&[0x5a5a, 0x0403, 0x0804, 0x0401]),
                ),
                ext(ext::ALPN, &alpn_body(&[b"h2", b"http/1.1"])),
                ext(ext::SESSION_TICKET, &[]),
                ext(ext::SUPPORTED_VERSIONS, &[6, 0x7a, 0x7a, 3, 4, 3, 3]),
                ext(
                    ext::KEY_SHARE,
                    &key_share_body(&[(0x2a2a, 1), (0x11ec, 1216), (0x001d, 32)]),
                ),
                ext(0x002d, &[1, 1]),
                ext(0xfafa, &[0]),
            ]),
        )
    }

    // ---- ClientHello ----

    #[test]
    fn tls10_hello_without_extensions_block() {
        // Byte literal: client_hello, TLS 1.0, zero random, no session id, two ciphers, null
        // compression, and no extensions block at all (legal up to TLS 1.2, RFC 5246 §7.4.1.2).
        let mut msg = vec![0x01, 0x00, 0x00, 0x2b, 0x03, 0x01];
        msg.extend_from_slice(&[0u8; 32]);
        msg.extend_from_slice(&[0x00, 0x00, 0x04, 0x00, 0x2f, 0x00, 0x35, 0x01, 0x00]);
        let ch = ClientHello::parse(&msg).unwrap();
        assert_eq!(
            ch,
            ClientHello {
                legacy_version: 0x0301,
                ciphers: vec![0x002f, 0x0035],
                ..ClientHello::default()
            }
        );
        assert_eq!(ch.max_version(), version::TLS10);
        // The same for TLS 1.2: the version field is the only difference.
        let tls12 = client_hello_msg(version::TLS12, 0, &[0xc02f, 0x009c], None);
        let ch12 = ClientHello::parse(&tls12).unwrap();
        assert_eq!((ch12.legacy_version, ch12.max_version()), (0x0303, 0x0303));
        assert_eq!(ch12.ciphers, [0xc02f, 0x009c]);
        assert!(ch12.extensions.is_empty() && ch12.sni.is_none());
        // An empty extensions block is equally fine.
        let empty = client_hello_msg(0x0301, 0, &[0x002f, 0x0035], Some(&[]));
        assert_eq!(ClientHello::parse(&empty).unwrap(), ch);
    }

    #[test]
    fn tls13_hello_keeps_grease_and_wire_order() {
        let ch = ClientHello::parse(&grease_tls13_msg()).unwrap();
        assert_eq!(ch.legacy_version, 0x0303);
        assert_eq!(ch.session_id_len, 32);
        assert_eq!(ch.ciphers, [0x3a3a, 0x1301, 0x1302, 0x1303, 0xc02b]);
        assert_eq!(
            ch.extensions,
            [
                0x0a0a, 0x0000, 0x000a, 0x000b, 0x000d, 0x0010, 0x0023, 0x002b, 0x0033, 0x002d,
                0xfafa
            ]
        );
        assert_eq!(ch.sni.as_deref(), Some(&b"example.com"[..]));
        assert!(!ch.sni_is_ip);
        assert_eq!(ch.alpn, [b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert_eq!(ch.supported_versions, [0x7a7a, 0x0304, 0x0303]);
        assert_eq!(ch.signature_algorithms, [0x5a5a, 0x0403, 0x0804, 0x0401]);
        assert_eq!(ch.supported_groups, [0x2a2a, 0x11ec, 0x001d, 0x0017]);
        assert_eq!(ch.ec_point_formats, [0]);
        assert_eq!(ch.key_share_groups, [0x2a2a, 0x11ec, 0x001d]);
        assert!(!ch.ech && !ch.psk && !ch.session_ticket);
        assert_eq!(ch.max_version(), version::TLS13);
    }

    #[test]
    fn sni_ip_literals_are_flagged() {
        for (name, is_ip) in [
            (&b"192.0.2.1"[..], true),
            (b"2001:db8::1", true),
            (b"[2001:db8::1]", true),
            (b"example.com", false),
            (b"1.2.3", false),
            (b"192.0.2.1.example", false),
            (&[0xff, 0xfe][..], false),
        ] {
            let msg = client_hello_msg(
                0x0303,
                0,
                &[0x1301],
                Some(&[ext(ext::SERVER_NAME, &sni_body(name))]),
            );
            let ch = ClientHello::parse(&msg).unwrap();
            assert_eq!(ch.sni.as_deref(), Some(name), "raw bytes kept");
            assert_eq!(ch.sni_is_ip, is_ip, "{name:?}");
        }
    }

    #[test]
    fn non_alphanumeric_alpn_is_kept_raw() {
        let msg = client_hello_msg(
            0x0303,
            0,
            &[0x1301],
            Some(&[ext(ext::ALPN, &alpn_body(&[&[0xba, 0xad], b"h2"]))]),
        );
        let ch = ClientHello::parse(&msg).unwrap();
        assert_eq!(ch.alpn, [vec![0xba, 0xad], b"h2".to_vec()]);
    }

    #[test]
    fn ech_outer_hello() {
        let msg = client_hello_msg(
            0x0303,
            32,
            &[0x1301],
            Some(&[
                ext(ext::SERVER_NAME, &sni_body(b"public.example")),
                ext(
                    ext::ENCRYPTED_CLIENT_HELLO,
                    &[0, 0, 1, 0, 1, 0x42, 0, 0, 0, 0],
                ),
                ext(ext::SUPPORTED_VERSIONS, &[2, 3, 4]),
            ]),
        );
        let ch = ClientHello::parse(&msg).unwrap();
        assert!(ch.ech);
        assert_eq!(ch.sni.as_deref(), Some(&b"public.example"[..]));
        assert_eq!(ch.extensions, [0x0000, 0xfe0d, 0x002b]);
    }

    #[test]
    fn resumption_flags() {
        let psk = client_hello_msg(
            0x0303,
            0,
            &[0x1301],
            Some(&[
                ext(ext::SESSION_TICKET, &[]),
                ext(ext::PRE_SHARED_KEY, &[0, 4, 0, 1, 0xaa, 0]),
            ]),
        );
        let ch = ClientHello::parse(&psk).unwrap();
        assert!(ch.psk);
        assert!(!ch.session_ticket, "an empty ticket only asks for one");
        let ticket = client_hello_msg(
            0x0303,
            0,
            &[0xc02f],
            Some(&[ext(ext::SESSION_TICKET, &[7; 48])]),
        );
        let ch = ClientHello::parse(&ticket).unwrap();
        assert!(ch.session_ticket && !ch.psk);
    }

    #[test]
    fn tls13_draft_values_kept_raw() {
        // Draft-era clients sent 0x0304 in the legacy field and draft numbers in
        // supported_versions; key_share under its draft code point 40.
        let msg = client_hello_msg(
            0x0304,
            0,
            &[0x1301],
            Some(&[
                ext(ext::SUPPORTED_VERSIONS, &[4, 0x7f, 0x17, 0x7f, 0x1c]),
                ext(40, &[0, 0]),
            ]),
        );
        let ch = ClientHello::parse(&msg).unwrap();
        assert_eq!(ch.legacy_version, 0x0304);
        assert_eq!(ch.supported_versions, [0x7f17, 0x7f1c]);
        assert_eq!(ch.extensions, [0x002b, 40]);
        assert_eq!(ch.max_version(), 0x7f1c);
        assert_eq!(version_str(ch.max_version()), "TLSv1.3-draft");
    }

    #[test]
    fn max_version_ignores_grease_and_orders_dtls() {
        let mut ch = ClientHello {
            legacy_version: 0x0303,
            ..ClientHello::default()
        };
        assert_eq!(ch.max_version(), 0x0303);
        ch.supported_versions = vec![0xfafa];
        assert_eq!(ch.max_version(), 0x0303, "only GREASE: fall back to legacy");
        ch.supported_versions = vec![0x0a0a, 0x0303, 0x0304];
        assert_eq!(ch.max_version(), 0x0304);
        ch.supported_versions = vec![0xfefd, 0xfefc];
        assert_eq!(ch.max_version(), version::DTLS13);
        ch.supported_versions = vec![0xfeff, 0xfefd];
        assert_eq!(ch.max_version(), version::DTLS12);
    }

    #[test]
    fn unparseable_extension_keeps_its_type_and_the_rest() {
        let msg = client_hello_msg(
            0x0303,
            0,
            &[0x1301],
            Some(&[
                ext(ext::SERVER_NAME, &[0xff]),                 // contents too short
                ext(ext::SUPPORTED_GROUPS, &[0, 9, 0, 29]),     // list overruns
                ext(ext::SUPPORTED_VERSIONS, &[]),              // empty
                ext(ext::KEY_SHARE, &[0, 40, 0, 29, 0, 32, 1]), // share overruns
                ext(0x4469, &[1, 2, 3]),                        // unknown to tls-parser
                ext(ext::ALPN, &alpn_body(&[b"h2"])),
            ]),
        );
        let ch = ClientHello::parse(&msg).unwrap();
        assert_eq!(
            ch.extensions,
            [0x0000, 0x000a, 0x002b, 0x0033, 0x4469, 0x0010]
        );
        assert_eq!(ch.sni, None);
        assert!(ch.supported_groups.is_empty());
        assert!(ch.supported_versions.is_empty());
        assert!(ch.key_share_groups.is_empty());
        assert_eq!(ch.alpn, [b"h2".to_vec()]);
    }

    #[test]
    fn duplicate_extensions_summarise_the_first() {
        let msg = client_hello_msg(
            0x0303,
            0,
            &[0x1301],
            Some(&[
                ext(ext::SERVER_NAME, &sni_body(b"first.example")),
                ext(ext::SERVER_NAME, &sni_body(b"second.example")),
            ]),
        );
        let ch = ClientHello::parse(&msg).unwrap();
        assert_eq!(ch.sni.as_deref(), Some(&b"first.example"[..]));
        assert_eq!(ch.extensions, [0, 0]);
    }

    #[test]
    fn malformed_hellos_are_rejected() {
        let good = client_hello_msg(
            0x0303,
            0,
            &[0x1301],
            Some(&[ext(ext::ALPN, &alpn_body(&[b"h2"]))]),
        );
        assert!(ClientHello::parse(&good).is_ok());

        // Extension length overruns the block (block and message lengths adjusted to match).
        let mut overrun = good.clone();
        let at = overrun.len() - 9 + 2; // the ALPN extension's length field
        overrun[at + 1] += 1;
        assert_eq!(ClientHello::parse(&overrun), Err(TlsError::Malformed));

        // Trailing bytes after the extensions block, inside the message.
        let mut trailing = good.clone();
        trailing.push(0);
        trailing[3] += 1;
        assert_eq!(ClientHello::parse(&trailing), Err(TlsError::Malformed));

        // Session id longer than 32 bytes.
        let long_sid = client_hello_msg(0x0303, 33, &[0x1301], None);
        assert_eq!(ClientHello::parse(&long_sid), Err(TlsError::Malformed));

        // Odd cipher list length.
        let mut odd = client_hello_msg(0x0303, 0, &[0x1301], None);
        odd[4 + 2 + 32 + 1 + 1] = 3;
        assert_eq!(ClientHello::parse(&odd), Err(TlsError::Malformed));

        // Message shorter than its header, other type, too long, empty.
        assert_eq!(
            ClientHello::parse(&good[..good.len() - 1]),
            Err(TlsError::Truncated)
        );
        assert_eq!(ClientHello::parse(&good[..3]), Err(TlsError::Truncated));
        assert_eq!(ClientHello::parse(&[]), Err(TlsError::Truncated));
        assert_eq!(
            ClientHello::parse(&[2, 0, 0, 0]),
            Err(TlsError::NotClientHello)
        );
        assert_eq!(ClientHello::parse(&[2]), Err(TlsError::NotClientHello));
        assert_eq!(
            ClientHello::parse(&[1, 0, 0x40, 0x00]),
            Err(TlsError::TooLong)
        );
        assert_eq!(
            ClientHello::parse(&[1, 0xff, 0xff, 0xff]),
            Err(TlsError::TooLong)
        );

        // Bytes after the message (the next handshake message) are not part of it.
        let mut followed = good.clone();
        followed.extend_from_slice(&[11, 0, 0, 0]);
        assert_eq!(ClientHello::parse(&followed), ClientHello::parse(&good));
    }

    #[test]
    fn captured_hellos_parse() {
        let ch = samples::client_hello(samples::BADCURVEBALL);
        assert_eq!(ch.sni.as_deref(), Some(&b"bad.curveballtest.com"[..]));
        assert_eq!(ch.legacy_version, 0x0303);
        assert_eq!(ch.session_id_len, 32);
        assert_eq!(ch.ciphers.len(), 17);
        assert_eq!(ch.ciphers[0], 0xaaaa);
        assert_eq!(ch.alpn, [b"h2".to_vec(), b"http/1.1".to_vec()]);
        assert_eq!(
            ch.supported_versions,
            [0x2a2a, 0x0304, 0x0303, 0x0302, 0x0301]
        );
        assert_eq!(ch.supported_groups, [0xcaca, 0x001d, 0x0017, 0x0018]);
        assert_eq!(ch.key_share_groups, [0xcaca, 0x001d]);
        assert_eq!(ch.ec_point_formats, [0]);
        assert_eq!(ch.extensions.first(), Some(&0x4a4a));
        assert_eq!(ch.extensions.last(), Some(&0x0015));
        assert!(!ch.ech && !ch.psk && !ch.session_ticket);

        let ch = samples::client_hello(samples::NON_ASCII_ALPN);
        assert_eq!(ch.alpn[0], [0xba, 0xad]);
        assert_eq!(
            ch.sni.as_deref(),
            Some(&b"clientservices.googleapis.com"[..])
        );

        let ch = samples::client_hello(samples::CURL);
        assert_eq!(ch.ciphers.len(), 67);
        assert_eq!(ch.sni.as_deref(), Some(&b"google.com"[..]));
        assert!(ch.supported_versions.is_empty());
        assert_eq!(ch.max_version(), version::TLS12);
    }

    #[test]
    fn every_prefix_and_mutation_of_real_hellos_is_handled() {
        for hex in [
            samples::BADCURVEBALL,
            samples::NON_ASCII_ALPN,
            samples::CURL,
            samples::BADCURVEBALL_SERVER,
        ] {
            let stream = bytes(hex);
            let msg = message(hex);
            let mut out = Vec::new();
            for cut in 0..msg.len() {
                assert_eq!(
                    ClientHello::parse(&msg[..cut])
                        .err()
                        .map(|e| e == TlsError::Truncated || e == TlsError::NotClientHello),
                    Some(true)
                );
                let _ = ServerHello::parse(&msg[..cut]);
            }
            for cut in 0..stream.len() {
                let scan = first_handshake(&stream[..cut], &mut out);
                assert_eq!(scan, RecordScan::NeedMore, "prefix {cut}");
                assert!(out.is_empty());
            }
            // Deterministic mutations (xorshift): flip bytes, parse everything; nothing panics.
            let mut rng = crate::testutil::XorShift(0x9e37_79b9_7f4a_7c15);
            for _ in 0..3000 {
                let mut m = msg.clone();
                rng.mutate(&mut m, 3);
                let _ = ClientHello::parse(&m);
                let _ = ServerHello::parse(&m);
                let _ = first_handshake(&m, &mut out);
                let _ = looks_like_tls(&m);
            }
        }
    }

    // ---- ServerHello ----

    fn server_hello_msg(legacy: u16, cipher: u16, exts: Option<&[Vec<u8>]>) -> Vec<u8> {
        let mut body = Vec::new();
        put16(&mut body, legacy);
        body.extend_from_slice(&[0x33; 32]);
        body.push(32);
        body.extend_from_slice(&[0x44; 32]);
        put16(&mut body, cipher);
        body.push(0);
        if let Some(exts) = exts {
            let block = exts.concat();
            put16(&mut body, u16::try_from(block.len()).unwrap());
            body.extend_from_slice(&block);
        }
        handshake(HANDSHAKE_SERVER_HELLO, &body)
    }

    #[test]
    fn server_hello_tls13_version_from_supported_versions() {
        let msg = server_hello_msg(
            0x0303,
            0x1301,
            Some(&[
                ext(ext::SUPPORTED_VERSIONS, &[3, 4]),
                ext(ext::KEY_SHARE, &[0, 0x1d, 0, 1, 9]),
            ]),
        );
        let sh = ServerHello::parse(&msg).unwrap();
        assert_eq!(
            sh,
            ServerHello {
                version: 0x0304,
                cipher: 0x1301,
                alpn: None
            }
        );
    }

    #[test]
    fn server_hello_tls12_alpn_and_captured() {
        let msg = server_hello_msg(
            0x0303,
            0xc02f,
            Some(&[ext(ext::ALPN, &alpn_body(&[b"h2"]))]),
        );
        let sh = ServerHello::parse(&msg).unwrap();
        assert_eq!(
            sh,
            ServerHello {
                version: 0x0303,
                cipher: 0xc02f,
                alpn: Some(b"h2".to_vec())
            }
        );

        let sh = ServerHello::parse(&message(samples::BADCURVEBALL_SERVER)).unwrap();
        assert_eq!(
            sh,
            ServerHello {
                version: 0x0303,
                cipher: 0xc02b,
                alpn: Some(b"http/1.1".to_vec())
            }
        );

        // No extensions block at all.
        let bare = server_hello_msg(0x0301, 0x002f, None);
        assert_eq!(
            ServerHello::parse(&bare).unwrap(),
            ServerHello {
                version: 0x0301,
                cipher: 0x002f,
                alpn: None
            }
        );
    }

    #[test]
    fn server_hello_errors() {
        let unknown = server_hello_msg(0x0200, 0x002f, None);
        assert_eq!(
            ServerHello::parse(&unknown),
            Err(TlsError::UnsupportedVersion)
        );
        let ch = message(samples::CURL);
        assert_eq!(ServerHello::parse(&ch), Err(TlsError::NotServerHello));
        let good = server_hello_msg(
            0x0303,
            0x1301,
            Some(&[ext(ext::SUPPORTED_VERSIONS, &[3, 4])]),
        );
        assert_eq!(
            ServerHello::parse(&good[..good.len() - 1]),
            Err(TlsError::Truncated)
        );
        let mut overrun = good.clone();
        let last = overrun.len() - 3;
        overrun[last] = 9; // supported_versions length overruns the block
        assert_eq!(ServerHello::parse(&overrun), Err(TlsError::Malformed));
        assert_eq!(
            ServerHello::parse(&[2, 0, 0, 1, 3]),
            Err(TlsError::Malformed)
        );
    }

    // ---- record layer ----

    #[test]
    fn single_record() {
        let msg = grease_tls13_msg();
        let stream = records(&msg, &[]);
        let mut out = vec![0xee; 7];
        assert_eq!(
            first_handshake(&stream, &mut out),
            RecordScan::Complete { msg_len: msg.len() }
        );
        assert_eq!(out, msg);
    }

    #[test]
    fn hello_spanning_three_records() {
        // A 1.5 KB hello with a post-quantum share, split as some clients and middleboxes do;
        // the first split falls inside the 4-byte handshake header.
        let msg = grease_tls13_msg();
        assert!(msg.len() > 1400);
        let stream = records(&msg, &[2, 700]);
        assert_eq!(stream.len(), msg.len() + 3 * RECORD_HEADER_LEN);
        let mut out = Vec::new();
        assert_eq!(
            first_handshake(&stream, &mut out),
            RecordScan::Complete { msg_len: msg.len() }
        );
        assert_eq!(
            ClientHello::parse(&out).unwrap(),
            ClientHello::parse(&msg).unwrap()
        );
        // Every shorter prefix needs more, wherever it is cut (mid record header included).
        for cut in 0..stream.len() {
            assert_eq!(
                first_handshake(&stream[..cut], &mut out),
                RecordScan::NeedMore,
                "cut {cut}"
            );
            assert!(out.is_empty());
        }
        // What follows the message (the next record, another message in the same record) is ignored.
        let mut longer = stream.clone();
        longer.extend_from_slice(&[20, 3, 3, 0, 1, 1]);
        assert_eq!(
            first_handshake(&longer, &mut out),
            RecordScan::Complete { msg_len: msg.len() }
        );
        assert_eq!(out, msg);
    }

    #[test]
    fn record_split_mid_header_needs_more() {
        let stream = bytes(samples::BADCURVEBALL);
        let mut out = Vec::new();
        for cut in [0, 1, 3, 4, 5, 7, 9] {
            assert_eq!(
                first_handshake(&stream[..cut], &mut out),
                RecordScan::NeedMore
            );
        }
    }

    #[test]
    fn oversize_message_is_too_long() {
        // A handshake header announcing 16 KiB of body: more than the sensor buffers.
        let stream = [22, 3, 1, 0, 4, 1, 0, 0x40, 0x00];
        let mut out = Vec::new();
        assert_eq!(
            first_handshake(&stream, &mut out),
            RecordScan::NotTls(TlsError::TooLong)
        );
        // The largest accepted message spans records and completes.
        let msg = handshake(
            HANDSHAKE_CLIENT_HELLO,
            &vec![0; MAX_HANDSHAKE_LEN - HANDSHAKE_HEADER_LEN],
        );
        let stream = records(&msg, &[MAX_RECORD_LEN]);
        assert_eq!(
            first_handshake(&stream, &mut out),
            RecordScan::Complete {
                msg_len: MAX_HANDSHAKE_LEN
            }
        );
        // A record over 2^14 bytes is not TLS.
        let stream = [22, 3, 1, 0x40, 0x01, 1];
        assert_eq!(
            first_handshake(&stream, &mut out),
            RecordScan::NotTls(TlsError::BadRecordLength)
        );
    }

    #[test]
    fn garbage_is_not_tls() {
        let mut out = Vec::new();
        let cases: [(&[u8], TlsError); 7] = [
            (b"GET / HTTP/1.1\r\n", TlsError::NotHandshake),
            (b"SSH-2.0-OpenSSH_9.6", TlsError::NotHandshake),
            (&[21, 3, 3, 0, 2, 2, 40], TlsError::NotHandshake), // alert
            (&[0x80, 0x2e, 0x01, 0x03, 0x01], TlsError::NotHandshake), // SSLv2-format hello
            (&[22, 2], TlsError::BadRecordVersion),
            (&[22, 3, 9], TlsError::BadRecordVersion),
            (&[22, 3, 1, 0, 0], TlsError::BadRecordLength),
        ];
        for (stream, err) in cases {
            assert_eq!(
                first_handshake(stream, &mut out),
                RecordScan::NotTls(err),
                "{stream:?}"
            );
            assert!(out.is_empty());
        }
        // A change_cipher_spec record interleaved inside the handshake message.
        let msg = grease_tls13_msg();
        let mut stream = records(&msg[..100], &[]);
        stream.extend_from_slice(&[20, 3, 3, 0, 1, 1]);
        stream.extend_from_slice(&records(&msg[100..], &[]));
        assert_eq!(
            first_handshake(&stream, &mut out),
            RecordScan::NotTls(TlsError::NotHandshake)
        );
    }

    #[test]
    fn probe() {
        assert!(looks_like_tls(&bytes(samples::BADCURVEBALL)));
        assert!(looks_like_tls(&bytes(samples::BADCURVEBALL_SERVER)));
        assert!(looks_like_tls(&[22, 3, 1]));
        assert!(looks_like_tls(&[22, 3, 1, 2, 0]));
        assert!(!looks_like_tls(&[22, 3]));
        assert!(!looks_like_tls(b"GET / HTTP/1.1"));
        assert!(!looks_like_tls(&[22, 3, 1, 0, 0, 1]), "empty record");
        assert!(
            !looks_like_tls(&[22, 3, 1, 0x40, 0x01, 1]),
            "record over 2^14"
        );
        assert!(
            !looks_like_tls(&[22, 3, 3, 0, 40, 11]),
            "certificate cannot open a direction"
        );
        assert!(
            !looks_like_tls(&[0x80, 0x2e, 0x01, 0x03, 0x01]),
            "SSLv2 format not detected"
        );
    }

    // ---- small functions ----

    #[test]
    fn grease_values() {
        let all: Vec<u16> = (0..=u16::MAX).filter(|&v| is_grease(v)).collect();
        let expected: Vec<u16> = (0..16u16)
            .map(|i| (i << 12) | 0x0a00 | (i << 4) | 0x0a)
            .collect();
        assert_eq!(all, expected);
        assert_eq!(all.first(), Some(&0x0a0a));
        assert_eq!(all.last(), Some(&0xfafa));
        assert!(!is_grease(0x0a1a) && !is_grease(0x1a0a) && !is_grease(0));
    }

    #[test]
    fn version_names() {
        let cases = [
            (0x0304, "TLSv1.3"),
            (0x0303, "TLSv1.2"),
            (0x0302, "TLSv1.1"),
            (0x0301, "TLSv1.0"),
            (0x0300, "SSLv3"),
            (0x0002, "SSLv2"),
            (0xfeff, "DTLSv1.0"),
            (0xfefd, "DTLSv1.2"),
            (0xfefc, "DTLSv1.3"),
            (0x7f17, "TLSv1.3-draft"),
            (0x0a0a, "unknown"),
            (0x0305, "unknown"),
        ];
        for (v, name) in cases {
            assert_eq!(version_str(v), name);
        }
    }

    #[test]
    fn error_labels_are_unique_snake_case() {
        let labels: Vec<&str> = TlsError::ALL.iter().map(|e| e.as_str()).collect();
        for (i, l) in labels.iter().enumerate() {
            assert!(
                l.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{l}"
            );
            assert!(!labels[..i].contains(l), "duplicate {l}");
        }
    }
}
