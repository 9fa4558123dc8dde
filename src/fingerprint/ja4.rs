//! JA4: the FoxIO TLS client fingerprint (BSD-3-Clause part of JA4+ only).
//!
//! Format `a_b_c`, e.g. `t13d1516h2_8daaf6152771_e5627efa2ab1`, per the FoxIO JA4 specification
//! (`technical_details/JA4.md`):
//!
//! - **a** (10 characters, readable): transport (`t` TCP, `q` QUIC, `d` DTLS); version, from the
//!   highest non-GREASE `supported_versions` value else the hello's `legacy_version` (`13`, `12`,
//!   `11`, `10`, `s3`, `s2`, `d1`, `d2`, `d3`, `00` for anything else); `d` when the
//!   `server_name` extension is present, `i` when not (the spec keys on the extension, so an IP
//!   literal inside it still gives `d`); the cipher and extension counts as two decimal digits
//!   each, GREASE excluded, capped at 99, SNI and ALPN included in the extension count; the first
//!   and last characters of the first ALPN value (`00` when there is none). When either of those
//!   two bytes is not an ASCII letter or digit, the first and last characters of the hex encoding
//!   of the whole value are used instead (`0xba 0xad` gives `bd`).
//! - **b**: the first 12 hex characters of the SHA-256 of the non-GREASE cipher suites as 4-digit
//!   lowercase hex, sorted, comma-joined; `000000000000` when there are none.
//! - **c**: the first 12 hex characters of the SHA-256 of the non-GREASE extensions except SNI
//!   (`0000`) and ALPN (`0010`), 4-digit hex, sorted, comma-joined, then `_` and the non-GREASE
//!   signature algorithms in wire order (no `_` when there are none); `000000000000` when the
//!   extension list is empty after removal.
//!
//! Sorting makes the fingerprint stable against clients that shuffle extensions (Chrome since
//! version 110); GREASE values (RFC 8701) are random per connection and always dropped.
//!
//! Where the FoxIO reference code and the specification text disagree (the reference code renders
//! a non-alphanumeric ALPN as `99`), this module follows the specification.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::fmt::Write;

use sha2::{Digest, Sha256};

use crate::proto::tls::{ext, is_grease, version, ClientHello};

/// The transport the hello was carried on: the first character of JA4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// TLS over TCP: `t`.
    Tcp,
    /// TLS inside QUIC CRYPTO frames (RFC 9001): `q`.
    Quic,
    /// DTLS (RFC 6347, RFC 9147): `d`.
    Dtls,
}

impl Protocol {
    /// The JA4 prefix character.
    pub const fn as_char(self) -> char {
        match self {
            Protocol::Tcp => 't',
            Protocol::Quic => 'q',
            Protocol::Dtls => 'd',
        }
    }
}

/// Value of JA4 parts b and c when their list is empty.
const EMPTY_HASH: &str = "000000000000";

/// The JA4 fingerprint, e.g. `t13d1516h2_8daaf6152771_e5627efa2ab1`.
///
/// One allocation per hello (the result): the sorted lists live on the stack up to
/// [`SORT_ON_STACK`] values and are fed to SHA-256 as they are written, never joined into
/// strings ([`ja4_raw`] builds those, for explaining a fingerprint).
pub fn ja4(ch: &ClientHello, proto: Protocol) -> String {
    let mut out = String::with_capacity(JA4_LEN);
    write_part_a(&mut out, ch, proto);
    out.push('_');
    let ciphers = Sorted::new(ch.ciphers.iter().copied().filter(|&c| !is_grease(c)));
    if ciphers.is_empty() {
        out.push_str(EMPTY_HASH);
    } else {
        let mut h = Sha256::new();
        hash_hex_list(&mut h, ciphers.iter());
        push_hex12(&mut out, h);
    }
    out.push('_');
    let extensions = Sorted::new(ch.extensions.iter().copied().filter(|&e| !is_grease(e) && e != ext::SERVER_NAME && e != ext::ALPN));
    if extensions.is_empty() {
        out.push_str(EMPTY_HASH);
    } else {
        let mut h = Sha256::new();
        hash_hex_list(&mut h, extensions.iter());
        let mut algs = ch.signature_algorithms.iter().copied().filter(|&s| !is_grease(s)).peekable();
        if algs.peek().is_some() {
            h.update(b"_");
            hash_hex_list(&mut h, algs);
        }
        push_hex12(&mut out, h);
    }
    out
}

/// Length of a JA4 (`a` 10, two `_`, `b` and `c` 12 each).
const JA4_LEN: usize = 36;

/// Values sorted on the stack up to this many (a hello lists a few dozen); more go to the heap.
pub const SORT_ON_STACK: usize = 128;

/// A sorted copy of a list of values, on the stack when it is short.
// The stack variant is large on purpose: it lives on the stack for one call, never in a
// collection, and saves the allocation the heap variant makes.
#[allow(clippy::large_enum_variant)]
enum Sorted {
    Stack([u16; SORT_ON_STACK], usize),
    Heap(Vec<u16>),
}

impl Sorted {
    fn new(values: impl Iterator<Item = u16> + Clone) -> Sorted {
        let mut buf = [0u16; SORT_ON_STACK];
        let mut n = 0;
        for v in values.clone() {
            match buf.get_mut(n) {
                Some(slot) => *slot = v,
                None => {
                    let mut all: Vec<u16> = values.collect();
                    all.sort_unstable();
                    return Sorted::Heap(all);
                }
            }
            n += 1;
        }
        if let Some(used) = buf.get_mut(..n) {
            used.sort_unstable();
        }
        Sorted::Stack(buf, n)
    }

    fn as_slice(&self) -> &[u16] {
        match self {
            Sorted::Stack(b, n) => b.get(..*n).unwrap_or_default(),
            Sorted::Heap(v) => v,
        }
    }

    fn is_empty(&self) -> bool {
        self.as_slice().is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        self.as_slice().iter().copied()
    }
}

/// Feeds `values` to `h` as 4-digit lowercase hex, comma-joined (what [`hex_list`] writes).
fn hash_hex_list(h: &mut Sha256, values: impl Iterator<Item = u16>) {
    for (i, v) in values.enumerate() {
        let [hi, lo] = v.to_be_bytes();
        let digits = [hi >> 4, hi, lo >> 4, lo].map(|d| hex_digit(d) as u8);
        if i > 0 {
            h.update(b",");
        }
        h.update(digits);
    }
}

/// Appends the first 12 lowercase hex characters of `h`'s digest.
fn push_hex12(out: &mut String, h: Sha256) {
    for byte in h.finalize().iter().take(6) {
        out.push(hex_digit(byte >> 4));
        out.push(hex_digit(byte & 0x0f));
    }
}

/// The unhashed JA4 (FoxIO's `ja4_r`): part a, then the sorted cipher list, then the hash input
/// of part c, e.g. `t13d1516h2_002f,0035,..._0005,000a,..._0403,0804,...`. For debugging and for
/// explaining a fingerprint; not for matching.
pub fn ja4_raw(ch: &ClientHello, proto: Protocol) -> String {
    let lists = Lists::new(ch);
    format!(
        "{}_{}_{}",
        { let mut a = String::new(); write_part_a(&mut a, ch, proto); a },
        lists.ciphers,
        lists.c_input()
    )
}

/// Part a: transport, version, SNI flag, counts, ALPN characters.
fn write_part_a(out: &mut String, ch: &ClientHello, proto: Protocol) {
    let ciphers = ch
        .ciphers
        .iter()
        .filter(|&&c| !is_grease(c))
        .count()
        .min(99);
    let extensions = ch
        .extensions
        .iter()
        .filter(|&&e| !is_grease(e))
        .count()
        .min(99);
    let sni = if ch.extensions.contains(&ext::SERVER_NAME) {
        'd'
    } else {
        'i'
    };
    let [alpn_first, alpn_last] = alpn_chars(ch.alpn.first().map(Vec::as_slice));
    // Writing into a String cannot fail.
    let _ = write!(
        out,
        "{}{}{sni}{ciphers:02}{extensions:02}{alpn_first}{alpn_last}",
        proto.as_char(),
        version_code(ch.max_version()),
    );
}

/// The two version characters of part a.
fn version_code(v: u16) -> &'static str {
    match v {
        version::TLS13 => "13",
        version::TLS12 => "12",
        version::TLS11 => "11",
        version::TLS10 => "10",
        version::SSL3 => "s3",
        version::SSL2 => "s2",
        version::DTLS10 => "d1",
        version::DTLS12 => "d2",
        version::DTLS13 => "d3",
        _ => "00",
    }
}

/// The two ALPN characters of part a, from the first ALPN value.
fn alpn_chars(first: Option<&[u8]>) -> [char; 2] {
    let Some((&head, &tail)) = first.and_then(|v| v.first().zip(v.last())) else {
        return ['0', '0'];
    };
    if head.is_ascii_alphanumeric() && tail.is_ascii_alphanumeric() {
        [char::from(head), char::from(tail)]
    } else {
        // First and last characters of the hex encoding of the whole value.
        [hex_digit(head >> 4), hex_digit(tail & 0x0f)]
    }
}

/// The lists hashed into parts b and c, as comma-joined 4-digit lowercase hex.
struct Lists {
    /// Non-GREASE cipher suites, sorted.
    ciphers: String,
    /// Non-GREASE extensions without SNI and ALPN, sorted.
    extensions: String,
    /// Non-GREASE signature algorithms, wire order.
    signature_algorithms: String,
}

impl Lists {
    fn new(ch: &ClientHello) -> Self {
        let mut ciphers: Vec<u16> = ch
            .ciphers
            .iter()
            .copied()
            .filter(|&c| !is_grease(c))
            .collect();
        ciphers.sort_unstable();
        let mut extensions: Vec<u16> = ch
            .extensions
            .iter()
            .copied()
            .filter(|&e| !is_grease(e) && e != ext::SERVER_NAME && e != ext::ALPN)
            .collect();
        extensions.sort_unstable();
        let signature_algorithms: Vec<u16> = ch
            .signature_algorithms
            .iter()
            .copied()
            .filter(|&s| !is_grease(s))
            .collect();
        Lists {
            ciphers: hex_list(&ciphers),
            extensions: hex_list(&extensions),
            signature_algorithms: hex_list(&signature_algorithms),
        }
    }

    /// The hash input of part c: extensions, then `_` and signature algorithms when there are any.
    fn c_input(&self) -> String {
        if self.signature_algorithms.is_empty() {
            self.extensions.clone()
        } else {
            format!("{}_{}", self.extensions, self.signature_algorithms)
        }
    }
}

/// `values` as 4-digit lowercase hex, comma-joined.
fn hex_list(values: &[u16]) -> String {
    let mut s = String::with_capacity(values.len() * 5);
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        let [hi, lo] = v.to_be_bytes();
        for digit in [hi >> 4, hi, lo >> 4, lo] {
            s.push(hex_digit(digit));
        }
    }
    s
}

/// First 12 lowercase hex characters of the SHA-256 of `input` (the tests' reference).
#[cfg(test)]
fn sha256_12(input: &str) -> String {
    let digest = Sha256::digest(input.as_bytes());
    let mut s = String::with_capacity(12);
    for byte in digest.iter().take(6) {
        s.push(hex_digit(byte >> 4));
        s.push(hex_digit(byte & 0x0f));
    }
    s
}

/// Lowercase hex digit of a nibble (only the low 4 bits are used).
fn hex_digit(nibble: u8) -> char {
    const DIGITS: [u8; 16] = *b"0123456789abcdef";
    // A masked nibble is below 16: the index is always in range.
    #[allow(clippy::indexing_slicing)]
    char::from(DIGITS[usize::from(nibble & 0x0f)])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example hello of the FoxIO JA4 documentation (Chrome): 15 ciphers, 16 extensions with
    /// SNI and ALPN `h2`, 8 signature algorithms. GREASE values are added to check they are
    /// dropped everywhere.
    fn spec_hello() -> ClientHello {
        ClientHello {
            legacy_version: 0x0303,
            ciphers: vec![
                0x0a0a, 0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8,
                0xc013, 0xc014, 0x009c, 0x009d, 0x002f, 0x0035,
            ],
            extensions: vec![
                0x1a1a, 0x0000, 0x0017, 0xff01, 0x000a, 0x000b, 0x0023, 0x0010, 0x0005, 0x000d,
                0x0012, 0x0033, 0x002d, 0x002b, 0x001b, 0x4469, 0x0015, 0x2a2a,
            ],
            sni: Some(b"example.com".to_vec()),
            alpn: vec![b"h2".to_vec(), b"http/1.1".to_vec()],
            supported_versions: vec![0x3a3a, 0x0304, 0x0303],
            signature_algorithms: vec![
                0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
            ],
            supported_groups: vec![0x4a4a, 0x001d, 0x0017, 0x0018],
            ..ClientHello::default()
        }
    }

    const SPEC_CIPHERS: &str =
        "002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9";
    const SPEC_C_INPUT: &str =
        "0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_\
                                0403,0804,0401,0503,0805,0501,0806,0601";

    #[test]
    fn spec_list_hashes() {
        assert_eq!(sha256_12(SPEC_CIPHERS), "8daaf6152771");
        // Hashed as written (on the stack) = the hash of the joined lists.
        let ch = spec_hello();
        let l = Lists::new(&ch);
        let joined = format!("{}_{}_{}", ja4_raw(&ch, Protocol::Tcp).split('_').next().unwrap_or(""), sha256_12(&l.ciphers), sha256_12(&l.c_input()));
        assert_eq!(ja4(&ch, Protocol::Tcp), joined);
        // The documentation's raw example hashes to e5627efa2ab1, the value FoxIO's reference
        // captures give for this Chrome hello; the b186095e22b6 printed next to it in the README
        // belongs to a different hello and cannot be reproduced from this list.
        assert_eq!(sha256_12(SPEC_C_INPUT), "e5627efa2ab1");
    }

    #[test]
    fn spec_example() {
        let ch = spec_hello();
        assert_eq!(
            ja4(&ch, Protocol::Tcp),
            "t13d1516h2_8daaf6152771_e5627efa2ab1"
        );
        assert_eq!(
            ja4_raw(&ch, Protocol::Tcp),
            format!("t13d1516h2_{SPEC_CIPHERS}_{SPEC_C_INPUT}")
        );
        assert_eq!(
            ja4(&ch, Protocol::Quic),
            "q13d1516h2_8daaf6152771_e5627efa2ab1"
        );
    }

    #[test]
    fn signature_algorithm_grease_is_dropped() {
        let mut ch = spec_hello();
        ch.signature_algorithms.insert(0, 0x5a5a);
        ch.signature_algorithms.push(0xeaea);
        assert_eq!(
            ja4(&ch, Protocol::Tcp),
            "t13d1516h2_8daaf6152771_e5627efa2ab1"
        );
    }

    #[test]
    fn extension_order_does_not_matter() {
        let mut ch = spec_hello();
        ch.extensions.reverse();
        ch.ciphers.reverse();
        assert_eq!(
            ja4(&ch, Protocol::Tcp),
            "t13d1516h2_8daaf6152771_e5627efa2ab1"
        );
        // Signature algorithms keep wire order: reversing them changes part c.
        ch.signature_algorithms.reverse();
        assert_ne!(
            ja4(&ch, Protocol::Tcp),
            "t13d1516h2_8daaf6152771_e5627efa2ab1"
        );
    }

    #[test]
    fn no_signature_algorithms_means_no_underscore() {
        let ch = ClientHello {
            legacy_version: 0x0303,
            ciphers: vec![0xc02f],
            extensions: vec![0x000a, 0x000b],
            ..ClientHello::default()
        };
        assert_eq!(ja4_raw(&ch, Protocol::Tcp), "t12i010200_c02f_000a,000b");
        assert_eq!(
            ja4(&ch, Protocol::Tcp),
            format!(
                "t12i010200_{}_{}",
                sha256_12("c02f"),
                sha256_12("000a,000b")
            )
        );
    }

    #[test]
    fn empty_lists_hash_to_zeros() {
        // A TLS 1.0 hello without extensions: no SNI flag, no ALPN, empty part c.
        let ch = ClientHello {
            legacy_version: 0x0301,
            ciphers: vec![0x002f, 0x0035],
            ..ClientHello::default()
        };
        assert_eq!(
            ja4(&ch, Protocol::Tcp),
            format!("t10i020000_{}_000000000000", sha256_12("002f,0035"))
        );
        // Only SNI and ALPN: both removed from part c, which is then empty, yet counted in a.
        let ch = ClientHello {
            legacy_version: 0x0303,
            extensions: vec![0x0000, 0x0010, 0x0a0a],
            alpn: vec![b"h2".to_vec()],
            ..ClientHello::default()
        };
        assert_eq!(
            ja4(&ch, Protocol::Tcp),
            "t12d0002h2_000000000000_000000000000"
        );
        assert_eq!(
            ja4(&ClientHello::default(), Protocol::Tcp),
            "t00i000000_000000000000_000000000000"
        );
    }

    #[test]
    fn sni_flag_keys_on_the_extension() {
        let mut ch = spec_hello();
        ch.sni = Some(b"192.0.2.1".to_vec());
        ch.sni_is_ip = true;
        assert!(ja4(&ch, Protocol::Tcp).starts_with("t13d"));
        ch.extensions.retain(|&e| e != 0);
        ch.sni = None;
        assert!(ja4(&ch, Protocol::Tcp).starts_with("t13i1515h2_"));
    }

    #[test]
    fn alpn_characters() {
        let cases: [(&[u8], &str); 9] = [
            (b"h2", "h2"),
            (b"http/1.1", "h1"),
            (b"h3-29", "h9"),
            (b"h", "hh"),
            (&[0xba, 0xad], "bd"),
            (&[0xab], "ab"),
            (b"h/", "6f"),
            (b"/h", "28"),
            (b"", "00"),
        ];
        for (value, want) in cases {
            let got: String = alpn_chars(Some(value)).iter().collect();
            assert_eq!(got, want, "{value:?}");
        }
        assert_eq!(alpn_chars(None), ['0', '0']);
    }

    #[test]
    fn versions() {
        let cases = [
            (0x0304, "13"),
            (0x0303, "12"),
            (0x0302, "11"),
            (0x0301, "10"),
            (0x0300, "s3"),
            (0x0002, "s2"),
            (0xfeff, "d1"),
            (0xfefd, "d2"),
            (0xfefc, "d3"),
            (0x7f1c, "00"),
            (0x0a0a, "00"),
        ];
        for (v, want) in cases {
            assert_eq!(version_code(v), want);
        }
        // supported_versions wins over the legacy field; GREASE in it is ignored.
        let ch = ClientHello {
            legacy_version: 0x0303,
            supported_versions: vec![0x6a6a, 0x0304],
            ..ClientHello::default()
        };
        assert!(ja4(&ch, Protocol::Tcp).starts_with("t13"));
        // DTLS 1.3 hello offering 1.2 too.
        let ch = ClientHello {
            legacy_version: 0xfefd,
            supported_versions: vec![0xfefc, 0xfefd],
            ..ClientHello::default()
        };
        assert!(ja4(&ch, Protocol::Dtls).starts_with("dd3i"));
    }

    #[test]
    fn counts_exclude_grease_and_cap_at_99() {
        let ch = ClientHello {
            legacy_version: 0x0303,
            ciphers: (1..=150).chain([0x0a0a, 0x1a1a]).collect(),
            extensions: (0x0100..0x0100 + 120).chain([0xfafa]).collect(),
            ..ClientHello::default()
        };
        let a = ja4(&ch, Protocol::Tcp);
        assert!(a.starts_with("t12i999900_"), "{a}");
        // 150 ciphers sort on the heap, 120 extensions on the stack: both hash as joined.
        let l = Lists::new(&ch);
        assert_eq!(a, format!("t12i999900_{}_{}", sha256_12(&l.ciphers), sha256_12(&l.c_input())));
        let ch = ClientHello {
            ciphers: vec![0x0a0a, 0x002f],
            extensions: vec![0x0a0a, 0x0017],
            ..ClientHello::default()
        };
        assert!(ja4(&ch, Protocol::Tcp).starts_with("t00i010100_"));
    }
}
