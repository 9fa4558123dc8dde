//! End-to-end tests of [`Initials`]: spec vectors (RFC 9001 and RFC 9369 Appendix A), packets
//! built with the test-only `Keys::protect`, captures from the shared corpus, and hostile input.

use super::fixtures::*;
use super::keys::tests::protected;
use super::*;
use crate::proto::tls::ClientHello;

/// A protected client Initial of `version` to `dcid` with packet number `pn` (2 bytes on the
/// wire) carrying `frames`, padded to a full-size datagram.
fn initial(version: u32, dcid: &[u8], pn: u64, frames: &[u8]) -> Vec<u8> {
    Packet::client(version, dcid, pn, frames).build()
}

/// A full-size client Initial with a client SCID.
fn initial_from(version: u32, dcid: &[u8], scid: &[u8], pn: u64, frames: &[u8]) -> Vec<u8> {
    Packet {
        scid,
        ..Packet::client(version, dcid, pn, frames)
    }
    .build()
}

/// The same without padding: a small packet (for bounds counted in packets, not bytes).
fn small_initial(version: u32, dcid: &[u8], pn: u64, frames: &[u8]) -> Vec<u8> {
    Packet {
        min_len: 0,
        ..Packet::client(version, dcid, pn, frames)
    }
    .build()
}

fn sni(msg: &[u8]) -> String {
    let ch = ClientHello::parse(msg).expect("ClientHello parses");
    String::from_utf8(ch.sni.expect("has SNI")).unwrap()
}

fn hello(p: Progress) -> (Vec<u8>, u32) {
    let (msg, version, _) = signed(p);
    (msg, version)
}

fn signed(p: Progress) -> (Vec<u8>, u32, Signs) {
    match p {
        Progress::ClientHello {
            msg,
            version,
            signs,
        } => (msg, version, signs),
        other => panic!("expected ClientHello, got {other:?}"),
    }
}

/// The ClientHello of RFC 9001 Appendix A.2 (241 bytes, SNI example.com).
fn rfc_hello() -> Vec<u8> {
    hello(Initials::new().client_datagram(&bytes(RFC9001_A2))).0
}

const DCID: [u8; 8] = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];

#[test]
fn rfc9001_a2_client_initial() {
    let mut r = Initials::new();
    let (msg, version) = hello(r.client_datagram(&bytes(RFC9001_A2)));
    assert_eq!(version, V1);
    assert_eq!(msg.len(), 4 + 0xed);
    assert_eq!(msg[..12], hex("010000ed0303ebf8fa56f129")[..]);
    assert_eq!(sni(&msg), "example.com");
    // The common case holds a few KiB: one attempt's keys, the hello, one packet's copy.
    assert!(r.footprint() < 8 * 1024, "{}", r.footprint());
    // A retransmission changes nothing; the reader waits for the server to answer.
    assert_eq!(r.client_datagram(&bytes(RFC9001_A2)), Progress::NeedMore);
    assert!(!r.is_finished());
    // The server's Initial (to the client's empty SCID) settles it: the hello already reported
    // stands, and the flow's memory is released.
    let answer = Packet::server(V1, &DCID, &[], &[7; 8], 1, &[0x02, 0, 0, 0, 0]).build();
    assert_eq!(r.server_datagram(&answer), Progress::Done);
    assert!(r.is_finished());
    assert!(r.attempts.is_empty() && r.scratch.capacity() == 0);
    assert_eq!(r.footprint(), std::mem::size_of::<Initials>());
    assert_eq!(r.client_datagram(&bytes(RFC9001_A2)), Progress::Done);
}

#[test]
fn rfc9369_a2_client_initial() {
    let (msg, version) = hello(Initials::new().client_datagram(&bytes(RFC9369_A2)));
    assert_eq!(version, V2);
    assert_eq!(msg, rfc_hello());
}

#[test]
fn own_protect_matches_rfc9001_a2() {
    // Re-protecting the RFC's plaintext (CRYPTO frame, then PADDING to 1162 bytes, packet number
    // 2 in 4 bytes) with our keys gives the RFC's bytes.
    let keys = Keys::client_initial(&protected(V1), &DCID).unwrap();
    let header = hex("c300000001088394c8f03e5157080000449e00000002");
    let mut payload = crypto(0, &rfc_hello());
    assert_eq!(payload[..4], hex("060040f1")[..]);
    payload.resize(1162, 0);
    assert_eq!(keys.protect(&header, 2, 4, &payload), bytes(RFC9001_A2));
}

#[test]
fn out_of_order_frames_across_packets_and_datagrams() {
    let msg = rfc_hello();
    let (a, c) = (&msg[..70], &msg[150..]);
    // Chrome-style scatter: PING and PADDING between small frames, offsets out of order,
    // one overlap. Second datagram (pn 1) arrives first.
    let mut p1 = vec![0x01];
    p1.extend(crypto(150, c));
    p1.extend([0x00, 0x00, 0x01]);
    p1.extend(crypto(60, &msg[60..100]));
    let mut p0 = crypto(100, &msg[100..150]);
    p0.extend([0x01, 0x00]);
    p0.extend(crypto(0, a));
    let mut r = Initials::new();
    assert_eq!(
        r.client_datagram(&initial(V1, &DCID, 1, &p1)),
        Progress::NeedMore
    );
    let (got, _) = hello(r.client_datagram(&initial(V1, &DCID, 0, &p0)));
    assert_eq!(got, msg);
    assert_eq!(sni(&got), "example.com");
}

#[test]
fn coalesced_packets_in_one_datagram() {
    let msg = rfc_hello();
    let mut d = initial(V1, &DCID, 0, &crypto(100, &msg[100..]));
    // A Handshake packet (type 2) in between: skipped by its Length.
    d.extend([0xe0, 0, 0, 0, 1, 0, 0, 0x03, 0xaa, 0xbb, 0xcc]);
    d.extend(initial(V1, &DCID, 1, &crypto(0, &msg[..100])));
    // Zero padding after the last packet.
    d.extend([0u8; 30]);
    assert_eq!(hello(Initials::new().client_datagram(&d)).0, msg);
}

#[test]
fn later_initials_to_server_chosen_dcid_keep_original_keys() {
    // RFC 9001 §5.2: keys come from the first DCID even after the client switches to the
    // server's SCID.
    let msg = rfc_hello();
    let mut r = Initials::new();
    assert_eq!(
        r.client_datagram(&initial(V1, &DCID, 0, &crypto(0, &msg[..50]))),
        Progress::NeedMore
    );
    let keys = Keys::client_initial(&protected(V1), &DCID).unwrap();
    // Build a packet whose header names another DCID but is protected with the original keys.
    let server_cid = [9u8; 5];
    let mut payload = crypto(50, &msg[50..]);
    payload.resize(payload.len().max(40), 0);
    let mut h = vec![0xc1, 0, 0, 0, 1, server_cid.len() as u8];
    h.extend(server_cid);
    h.extend([0, 0]);
    h.extend(((2 + payload.len() + 16) as u16 | 0x4000).to_be_bytes());
    h.extend(1u16.to_be_bytes());
    let p = keys.protect(&h, 1, 2, &payload);
    assert_eq!(hello(r.client_datagram(&p)).0, msg);
}

#[test]
fn retry_then_new_dcid() {
    let msg = rfc_hello();
    let new_dcid = [0x5a; 12];
    // Retry (v1 type 3) from the server with SCID = new_dcid; token and integrity tag follow.
    let mut retry = vec![0xf0, 0, 0, 0, 1, 0, new_dcid.len() as u8];
    retry.extend(new_dcid);
    retry.extend([0x77; 24]);
    let mut r = Initials::new();
    assert_eq!(
        r.client_datagram(&initial(V1, &DCID, 0, &crypto(0, &msg[..90]))),
        Progress::NeedMore
    );
    assert_eq!(r.server_datagram(&retry), Progress::NeedMore);
    assert!(r
        .retry
        .is_some_and(|(cid, of)| cid.get() == new_dcid && of == Some(0)));
    // The attempt keyed by the Retry's SCID continues the first one's CRYPTO stream.
    let (got, _, signs) =
        signed(r.client_datagram(&initial(V1, &new_dcid, 1, &crypto(90, &msg[90..]))));
    assert_eq!((got, signs), (msg.clone(), Signs::default()));

    // Without the Retry in the capture, a client that resends its whole hello under the new
    // DCID (what clients do: the old keys are gone) is read all the same.
    let mut r = Initials::new();
    r.client_datagram(&initial(V1, &DCID, 0, &crypto(0, &msg[..90])));
    assert_eq!(
        hello(r.client_datagram(&initial(V1, &new_dcid, 1, &crypto(0, &msg)))).0,
        msg
    );
}

#[test]
fn retry_capture_draft24() {
    // ndpi-quic-24.pcap: Initial, Retry, Initial protected with keys from the Retry's SCID.
    let mut r = Initials::new();
    assert_eq!(r.server_datagram(&bytes(DRAFT24_RETRY)), Progress::NeedMore);
    let (msg, version) = hello(r.client_datagram(&bytes(DRAFT24_AFTER_RETRY)));
    assert_eq!((version, sni(&msg).as_str()), (0xff00_0018, "localhost"));
    let (first, _) = hello(Initials::new().client_datagram(&bytes(DRAFT24_FIRST)));
    assert_eq!(sni(&first), "localhost");
}

#[test]
fn version_negotiation_restarts_the_stream() {
    let msg = rfc_hello();
    let mut r = Initials::new();
    // A draft-29 attempt whose first bytes differ from the later v1 hello.
    let mut other = msg[..60].to_vec();
    other[20] ^= 0xff;
    assert_eq!(
        r.client_datagram(&initial(0xff00_001d, &DCID, 0, &crypto(0, &other))),
        Progress::NeedMore
    );
    let vn = hex("80 00000000 00 08 0102030405060708 00000001");
    assert_eq!(r.server_datagram(&vn), Progress::NeedMore);
    let (got, version) = hello(r.client_datagram(&initial(V1, &DCID, 0, &crypto(0, &msg))));
    assert_eq!((got, version), (msg, V1));
}

#[test]
fn limits_and_give_ups() {
    let msg = rfc_hello();
    // Too many packets without CRYPTO data.
    let mut r = Initials::new();
    let ping = small_initial(V1, &DCID, 0, &[0x01]);
    for _ in 0..MAX_INITIAL_PACKETS {
        assert_eq!(r.client_datagram(&ping), Progress::NeedMore);
    }
    assert_eq!(
        r.client_datagram(&ping),
        Progress::GaveUp(GiveUp::TooManyPackets)
    );
    assert_eq!(r.client_datagram(&ping), Progress::Done);
    // A hole never filled.
    let mut r = Initials::new();
    let tail = small_initial(V1, &DCID, 0, &crypto(10, &msg[10..]));
    for _ in 0..MAX_INITIAL_PACKETS {
        assert_eq!(r.client_datagram(&tail), Progress::NeedMore);
    }
    assert_eq!(
        r.client_datagram(&tail),
        Progress::GaveUp(GiveUp::CryptoGap)
    );
    // CRYPTO beyond the bound.
    let far = initial(V1, &DCID, 0, &crypto(MAX_CRYPTO_LEN as u64 - 1, &[1, 2]));
    assert_eq!(
        Initials::new().client_datagram(&far),
        Progress::GaveUp(GiveUp::TooLong)
    );
    // A handshake length beyond the bound.
    let big = initial(V1, &DCID, 0, &crypto(0, &[1, 0x01, 0, 0]));
    assert_eq!(
        Initials::new().client_datagram(&big),
        Progress::GaveUp(GiveUp::TooLong)
    );
    // Not a ClientHello.
    let sh = initial(V1, &DCID, 0, &crypto(0, &[2, 0, 0, 1, 0]));
    assert_eq!(
        Initials::new().client_datagram(&sh),
        Progress::GaveUp(GiveUp::NotClientHello)
    );
    // Corrupt tags.
    let mut bad = bytes(RFC9001_A2);
    *bad.last_mut().unwrap() ^= 1;
    let mut r = Initials::new();
    for _ in 1..MAX_DECRYPT_FAILURES {
        assert_eq!(r.client_datagram(&bad), Progress::NeedMore);
    }
    assert_eq!(
        r.client_datagram(&bad),
        Progress::GaveUp(GiveUp::DecryptFailed)
    );
    // Versions recognised but not supported.
    let mut d21 = bytes(RFC9001_A2);
    d21[1..5].copy_from_slice(&0xff00_0015u32.to_be_bytes());
    assert_eq!(
        Initials::new().client_datagram(&d21),
        Progress::GaveUp(GiveUp::UnsupportedVersion)
    );
}

#[test]
fn give_up_labels() {
    let labels: Vec<&str> = GiveUp::ALL.iter().map(|g| g.as_str()).collect();
    assert_eq!(labels.len(), 9);
    assert!(labels
        .iter()
        .all(|l| l.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')));
    let mut unique = labels.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), labels.len());
}

#[test]
fn captures_ietf() {
    let cases: [(&[&str], u32, &str); 6] = [
        (GO_V1, V1, "server4:443"),
        (CHROME_V1, V1, "cloudflare-quic.com"),
        (CHROME_SCATTERED, V1, "ogs.google.com"),
        (MVFST_D22, super::MVFST_22, "graph.facebook.com"),
        (DRAFT23, 0xff00_0017, "quic.aiortc.org"),
        (DRAFT24_FIRST, 0xff00_0018, "localhost"),
    ];
    for (fixture, want_version, want_sni) in cases {
        let d = bytes(fixture);
        assert!(looks_like_quic(&d));
        let (msg, version) = hello(Initials::new().client_datagram(&d));
        assert_eq!((version, sni(&msg).as_str()), (want_version, want_sni));
    }
}

#[test]
fn captures_google() {
    let cases: [(&[&str], &str, &str); 3] = [
        (GQUIC_Q050, "Q050", "www.gstatic.com"),
        (GQUIC_Q046, "Q046", "i.ytimg.com"),
        (GQUIC_Q025, "Q025", "www.google.it"),
    ];
    for (fixture, want_version, want_sni) in cases {
        let d = bytes(fixture);
        assert!(looks_like_quic(&d), "{want_version}");
        match Initials::new().client_datagram(&d) {
            Progress::GoogleChlo {
                sni,
                user_agent,
                version,
            } => {
                assert_eq!(version_str(version), want_version);
                assert_eq!(sni.as_deref(), Some(want_sni.as_bytes()));
                assert!(
                    user_agent.is_some_and(|ua| !ua.is_empty()),
                    "{want_version}"
                );
            }
            other => panic!("{want_version}: {other:?}"),
        }
    }
}

#[test]
fn not_quic() {
    let tls = hex("160301020001000200");
    let dns = hex("12340100000100000000000003777777076578616d706c6503636f6d0000010001");
    for d in [&tls[..], &dns[..], &[], &[0xc0]] {
        assert!(!looks_like_quic(d));
        assert_eq!(Initials::new().client_datagram(d), Progress::NotQuic);
        assert_eq!(Initials::new().server_datagram(d), Progress::NotQuic);
    }
}

/// xorshift64*: deterministic byte soup without a dependency.
struct Soup(u64);
impl Soup {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for b in buf {
            *b = self.next() as u8;
        }
    }
}

fn feed_all(d: &[u8]) {
    let mut r = Initials::new();
    let _ = r.client_datagram(d);
    let _ = r.client_datagram(d);
    let _ = r.server_datagram(d);
    let _ = looks_like_quic(d);
}

#[test]
fn hostile_input_never_panics() {
    let rfc = bytes(RFC9001_A2);
    for n in 0..=rfc.len() {
        feed_all(&rfc[..n]);
    }
    let mut soup = Soup(0x9e37_79b9_7f4a_7c15);
    let prefixes: [&[u8]; 5] = [
        &[],
        &[
            0xc0, 0, 0, 0, 1, 8, 0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08, 0, 0,
        ],
        &[0xc3, b'Q', b'0', b'4', b'6', 0x50],
        &[0x09],
        &[0xc0, b'Q', b'0', b'5', b'0', 8],
    ];
    for round in 0..3000 {
        let len = (soup.next() % 1400) as usize;
        let mut d = vec![0u8; len];
        soup.fill(&mut d);
        let prefix = prefixes[round % prefixes.len()];
        let n = prefix.len().min(d.len());
        d[..n].copy_from_slice(&prefix[..n]);
        feed_all(&d);
        // Bit flips of a real packet reach the frame parsers through failed tags only, so flip
        // header bytes as well.
        let mut f = rfc.clone();
        let i = (soup.next() as usize) % 40;
        f[i] ^= 1 << (soup.next() % 8);
        feed_all(&f);
    }
    // Server datagrams against a reader holding attempts: long and short headers to known and
    // unknown connection IDs, truncated.
    let mut r = Initials::new();
    r.client_datagram(&initial_from(
        V1,
        &DCID,
        &[0xc1; 4],
        0,
        &crypto(0, &rfc_hello()[..100]),
    ));
    r.client_datagram(&initial_from(
        V1,
        &[9; 8],
        &[0xc1; 4],
        0,
        &crypto(0, &rfc_hello()[..100]),
    ));
    let server_prefixes: [&[u8]; 4] = [
        &[0xc0, 0, 0, 0, 1, 4, 0xc1, 0xc1, 0xc1, 0xc1, 0, 0],
        &[0xf0, 0, 0, 0, 1, 4, 0xc1, 0xc1, 0xc1, 0xc1, 3],
        &[0x41, 0xc1, 0xc1, 0xc1, 0xc1],
        &[0x80, 0, 0, 0, 0, 4],
    ];
    for round in 0..400 {
        let mut d = vec![0u8; (soup.next() % 1300) as usize];
        soup.fill(&mut d);
        let prefix = server_prefixes[round % server_prefixes.len()];
        let n = prefix.len().min(d.len());
        d[..n].copy_from_slice(&prefix[..n]);
        let _ = r.server_datagram(&d);
    }
    // Decrypted garbage reaches the frame walker: random frames in valid packets.
    for _ in 0..300 {
        let mut frames = vec![0u8; (soup.next() % 300) as usize];
        soup.fill(&mut frames);
        feed_all(&initial(V1, &DCID, soup.next() % 60_000, &frames));
    }
}

// ---------------------------------------------------------------------------------------------
// Evasion: junk, reserved versions, thin hellos, corrupt Initials, decoys.
// ---------------------------------------------------------------------------------------------

/// A second real hello with another name (quic-go, SNI "server4:443").
fn go_hello() -> Vec<u8> {
    hello_of(GO_V1)
}

/// A ClientHello of about 1,900 bytes: Chrome's, grown to post-quantum size.
fn big_hello() -> Vec<u8> {
    padded_hello(&hello_of(CHROME_V1), 1900)
}

/// An ACK-only server Initial answering the client attempt keyed by `dcid` with SCID `scid`.
fn answer(version: u32, dcid: &[u8], scid: &[u8]) -> Vec<u8> {
    Packet::server(version, dcid, scid, &[0x3c; 8], 0, &[0x02, 0, 0, 0, 0]).build()
}

/// The three kinds of junk seen before real Initials: one byte, 40 random bytes, and something
/// shaped like a QUIC short header.
fn junk_kinds() -> [Vec<u8>; 3] {
    let mut soup = Soup(0x5eed);
    let mut random = vec![0u8; 40];
    soup.fill(&mut random);
    random[0] &= 0x7f; // not a long header by chance
    let mut short = vec![0u8; 60];
    soup.fill(&mut short);
    short[0] = 0x40 | (short[0] & 0x3f);
    [vec![0x17], random, short]
}

#[test]
fn junk_before_the_initial_is_skipped_and_flagged() {
    let msg = rfc_hello();
    for junk in junk_kinds() {
        let mut r = Initials::new();
        assert_eq!(r.client_datagram(&junk), Progress::NotQuic);
        assert_eq!(r.client_datagram(&junk), Progress::NotQuic);
        assert!(!r.recognised());
        let (got, version, signs) = signed(r.client_datagram(&bytes(RFC9001_A2)));
        assert_eq!((got, version), (msg.clone(), V1));
        assert_eq!(
            signs,
            Signs {
                junk: true,
                decoy: false
            },
            "{junk:02x?}"
        );
        // Junk after the first Initial is not a sign.
        let mut r = Initials::new();
        assert!(!signed(r.client_datagram(&bytes(RFC9001_A2))).2.junk);
        assert_eq!(r.client_datagram(&junk), Progress::NeedMore);
    }
}

#[test]
fn junk_is_bounded_by_bytes() {
    let mut r = Initials::new();
    let junk = [0x17u8];
    let n = MAX_PROBE_BYTES / MIN_DATAGRAM_CHARGE;
    for _ in 0..n {
        assert_eq!(r.client_datagram(&junk), Progress::NotQuic);
    }
    // Not QUIC: the reader stops without counting a QUIC give-up.
    assert_eq!(r.client_datagram(&junk), Progress::Done);
    assert!(r.is_finished());
    // QUIC that never opens within the budget is given up, counted once.
    let mut r = Initials::new();
    // A v1 Handshake packet (type 2): QUIC, but no Initial to open.
    let mut bad = hex("e0 00000001 00 00 4400");
    bad.resize(1100, 0x5a);
    let mut outs = Vec::new();
    for _ in 0..60 {
        outs.push(r.client_datagram(&[0x17; 1100]));
        if r.is_finished() {
            break;
        }
        outs.push(r.client_datagram(&bad));
    }
    assert!(r.is_finished());
    let gave_up: Vec<_> = outs
        .iter()
        .filter(|p| matches!(p, Progress::GaveUp(_)))
        .collect();
    assert_eq!(gave_up, [&Progress::GaveUp(GiveUp::Budget)]);
}

#[test]
fn reserved_version_is_opened_with_v1_keys() {
    let msg = rfc_hello();
    for reserved in [0x1a2a_3a4a, 0xfafa_fafa, 0x0a0a_0a0a] {
        let d = initial(reserved, &DCID, 0, &crypto(0, &msg));
        assert!(looks_like_quic(&d));
        let (got, version, signs) = signed(Initials::new().client_datagram(&d));
        assert_eq!(
            (got, version, signs),
            (msg.clone(), reserved, Signs::default())
        );
    }
    assert_eq!(version_str(0x1a2a_3a4a), "0x1a2a3a4a");
}

#[test]
fn version_negotiation_then_v1_on_the_same_tuple() {
    let msg = rfc_hello();
    let scid = [0xc1; 8];
    let vn = hex("80 00000000 08 c1c1c1c1c1c1c1c1 08 8394c8f03e515708 00000001");
    // 1. A reserved-version Initial with the hello, then the same DCID in v1 after VN (the
    //    same keys: the version keeps them apart).
    let reserved = initial_from(0x1a2a_3a4a, &DCID, &scid, 0, &crypto(0, &msg));
    let v1 = initial_from(V1, &DCID, &scid, 0, &crypto(0, &msg));
    let mut r = Initials::new();
    assert_eq!(hello(r.client_datagram(&reserved)).1, 0x1a2a_3a4a);
    assert_eq!(r.server_datagram(&vn), Progress::NeedMore);
    let (got, version, signs) = signed(r.client_datagram(&v1));
    assert_eq!((got, version, signs), (msg.clone(), V1, Signs::default()));
    // Both attempts share SCID and server keys: the v1 one is the one answered.
    assert_eq!(r.server_datagram(&answer(V1, &DCID, &scid)), Progress::Done);
    assert_eq!(r.answered, Some(1));

    // 2. A reserved-version probe whose content is not v1-protected (legitimate: its content is
    //    arbitrary), VN, then v1 to a new DCID: read, no sign.
    let mut probe = reserved;
    let last = probe.len() - 1;
    probe[last] ^= 0xff;
    let new_dcid = [0x44; 8];
    let mut r = Initials::new();
    assert_eq!(r.client_datagram(&probe), Progress::NeedMore);
    assert_eq!(r.server_datagram(&vn), Progress::NeedMore);
    let (got, version, signs) =
        signed(r.client_datagram(&initial(V1, &new_dcid, 0, &crypto(0, &msg))));
    assert_eq!((got, version, signs), (msg, V1, Signs::default()));
}

#[test]
fn hello_over_forty_initials() {
    let msg = big_hello();
    let piece = msg.len().div_ceil(40);
    let scid = [0x5c; 4];
    let mut r = Initials::new();
    let mut last = None;
    for (pn, chunk) in msg.chunks(piece).enumerate() {
        let off = (pn * piece) as u64;
        let p = initial_from(V1, &DCID, &scid, pn as u64, &crypto(off, chunk));
        last = Some(r.client_datagram(&p));
        if pn == 0 {
            // The server acknowledges the first Initial: the attempt is answered, not complete.
            assert_eq!(
                r.server_datagram(&answer(V1, &DCID, &scid)),
                Progress::NeedMore
            );
        }
        if pn + 1 < 40 {
            assert_eq!(last, Some(Progress::NeedMore), "packet {pn}");
        }
    }
    assert_eq!(msg.chunks(piece).count(), 40);
    // The answered attempt completes: final at once.
    assert_eq!(hello(last.unwrap()).0, msg);
    assert!(r.is_finished());
}

#[test]
fn one_byte_crypto_frames_even_then_odd() {
    for msg in [rfc_hello(), hello_of(CHROME_V1), big_hello()] {
        let order = (0..msg.len()).step_by(2).chain((1..msg.len()).step_by(2));
        let frames: Vec<Vec<u8>> = order.map(|i| crypto(i as u64, &msg[i..=i])).collect();
        let mut r = Initials::new();
        let mut out = Progress::NeedMore;
        // As many one-byte frames per Initial as fit in a full-size datagram.
        for (pn, packet) in frames.chunks(200).enumerate() {
            out = r.client_datagram(&initial(V1, &DCID, pn as u64, &packet.concat()));
        }
        assert_eq!(hello(out).0, msg);
    }
}

#[test]
fn five_corrupt_initials_then_a_good_one() {
    let good = bytes(RFC9001_A2);
    let mut r = Initials::new();
    for i in 0..5 {
        let mut bad = good.clone();
        bad[100 + i] ^= 0x40;
        assert_eq!(r.client_datagram(&bad), Progress::NeedMore);
    }
    assert_eq!(r.decrypt_failures, 5);
    let (msg, _, signs) = signed(r.client_datagram(&good));
    assert_eq!(sni(&msg), "example.com");
    assert_eq!(
        signs,
        Signs {
            junk: true,
            decoy: false
        }
    );
    // Corrupt Initials are bounded too.
    let mut r = Initials::new();
    let mut bad = good.clone();
    bad[100] ^= 0x40;
    for _ in 1..MAX_DECRYPT_FAILURES {
        assert_eq!(r.client_datagram(&bad), Progress::NeedMore);
    }
    assert_eq!(
        r.client_datagram(&bad),
        Progress::GaveUp(GiveUp::DecryptFailed)
    );
    assert!(r.is_finished());
}

/// A decoy Initial (DCID `DECOY`, SNI example.com) and the real one (DCID `REAL`, SNI
/// server4:443), in either order, with the same client SCID (so only opening the server's
/// Initial tells them apart) or different ones.
#[test]
fn decoy_initial_the_server_answered_wins_and_is_flagged() {
    const DECOY: [u8; 8] = [0xde; 8];
    const REAL: [u8; 8] = [0x2e; 8];
    let (decoy_msg, real_msg) = (rfc_hello(), go_hello());
    for same_scid in [true, false] {
        for decoy_first in [true, false] {
            let decoy_scid: &[u8] = if same_scid { &[0x11; 4] } else { &[0x22; 4] };
            let real_scid: &[u8] = &[0x11; 4];
            let decoy = initial_from(V1, &DECOY, decoy_scid, 0, &crypto(0, &decoy_msg));
            let real = initial_from(V1, &REAL, real_scid, 0, &crypto(0, &real_msg));
            let mut r = Initials::new();
            let order = if decoy_first {
                [&decoy, &real]
            } else {
                [&real, &decoy]
            };
            let first = signed(r.client_datagram(order[0]));
            assert_eq!(first.2, Signs::default());
            // The second complete hello under another DCID, with another name: reported
            // provisionally (the latest) and flagged.
            let (_, _, signs) = signed(r.client_datagram(order[1]));
            assert!(signs.decoy);
            let out = r.server_datagram(&answer(V1, &REAL, real_scid));
            assert!(
                r.is_finished(),
                "same_scid {same_scid} decoy_first {decoy_first}"
            );
            let got = match out {
                Progress::Done => {
                    assert!(decoy_first, "the real hello was already the one reported");
                    real_msg.clone()
                }
                other => {
                    let (msg, _, signs) = signed(other);
                    assert!(signs.decoy);
                    msg
                }
            };
            assert_eq!(sni(&got), "server4:443");
        }
    }
}

#[test]
fn decoy_never_answered_reports_the_last_hello_flagged() {
    let mut r = Initials::new();
    r.client_datagram(&initial(V1, &[0xde; 8], 0, &crypto(0, &rfc_hello())));
    let (msg, _, signs) =
        signed(r.client_datagram(&initial(V1, &[0x2e; 8], 0, &crypto(0, &go_hello()))));
    assert_eq!((sni(&msg).as_str(), signs.decoy), ("server4:443", true));
    // Server datagrams that tell nothing (another attempt's, unreadable) end it after a bound.
    for _ in 1..MAX_SERVER_TRIALS {
        assert_eq!(
            r.server_datagram(&answer(V1, &[0x99; 8], &[0x77; 3])),
            Progress::NeedMore
        );
    }
    assert_eq!(
        r.server_datagram(&answer(V1, &[0x99; 8], &[0x77; 3])),
        Progress::Done
    );
    assert!(r.is_finished());
    // Or the caller's time bound does.
    let mut r = Initials::new();
    r.client_datagram(&initial(V1, &[0xde; 8], 0, &crypto(0, &rfc_hello())));
    assert!(
        signed(r.client_datagram(&initial(V1, &[0x2e; 8], 0, &crypto(0, &go_hello()))))
            .2
            .decoy
    );
    assert_eq!(r.expire(), Progress::Done);
    // Two hellos with the same name under two DCIDs are not a decoy.
    let mut r = Initials::new();
    r.client_datagram(&initial(V1, &[0xde; 8], 0, &crypto(0, &rfc_hello())));
    assert!(
        !signed(r.client_datagram(&initial(V1, &[0x2e; 8], 0, &crypto(0, &rfc_hello()))))
            .2
            .decoy
    );
}

#[test]
fn decoy_under_the_same_dcid_is_read_too() {
    // Same DCID, so the same keys: the second hello's bytes differ at the same offsets.
    let mut r = Initials::new();
    assert!(
        !signed(r.client_datagram(&initial(V1, &DCID, 0, &crypto(0, &rfc_hello()))))
            .2
            .decoy
    );
    let (msg, _, signs) =
        signed(r.client_datagram(&initial(V1, &DCID, 1, &crypto(0, &go_hello()))));
    assert_eq!((sni(&msg).as_str(), signs.decoy), ("server4:443", true));
}

#[test]
fn retry_is_not_a_decoy() {
    let msg = rfc_hello();
    let scid = [0xc1; 8];
    let after = [0x5a; 12];
    let mut retry = vec![0xf0, 0, 0, 0, 1, scid.len() as u8];
    retry.extend(scid);
    retry.push(after.len() as u8);
    retry.extend(after);
    retry.extend([0x77; 24]);
    let mut r = Initials::new();
    let first = initial_from(V1, &DCID, &scid, 0, &crypto(0, &msg));
    assert_eq!(signed(r.client_datagram(&first)).2, Signs::default());
    assert_eq!(r.server_datagram(&retry), Progress::NeedMore);
    let second = initial_from(V1, &after, &scid, 1, &crypto(0, &msg));
    assert_eq!(signed(r.client_datagram(&second)).2, Signs::default());
    // The server's Initial is protected with keys from the Retry's SCID.
    assert_eq!(
        r.server_datagram(&answer(V1, &after, &scid)),
        Progress::Done
    );
    assert_eq!(r.answered, Some(1));
    assert!(r.is_finished());
}

#[test]
fn attempts_and_memory_are_bounded() {
    // More DCIDs than MAX_ATTEMPTS: the extra ones are not read, and the flow is flagged.
    let mut r = Initials::new();
    let msg = rfc_hello();
    let mut last = Progress::NeedMore;
    for i in 0..=MAX_ATTEMPTS as u8 {
        last = r.client_datagram(&initial(V1, &[i; 8], 0, &crypto(0, &msg)));
    }
    assert_eq!(r.attempts.len(), MAX_ATTEMPTS);
    assert!(signed(last).2.decoy);
    // Large partial streams in every attempt stay within MAX_HELD_BYTES.
    let mut r = Initials::new();
    let mut outs = Vec::new();
    for i in 0..MAX_ATTEMPTS as u8 {
        for k in 0..15u64 {
            let far = crypto(k * 1024 + 1000, &[0xab; 24]);
            outs.push(r.client_datagram(&small_initial(V1, &[i; 8], k, &far)));
        }
    }
    let held: usize = r.attempts.iter().map(|a| a.stream.len()).sum();
    assert!(held <= MAX_HELD_BYTES, "{held}");
    assert!(outs.contains(&Progress::GaveUp(GiveUp::TooLong)));
    let bound = MAX_HELD_BYTES * 9 / 8 + MAX_ATTEMPTS * 3400 + 1500 + 1024;
    assert!(r.footprint() <= bound, "{} > {bound}", r.footprint());
    // A failed attempt does not stop the reader: a real hello under a known DCID... is ignored
    // (its attempt failed), but the flow goes on until its budget.
    assert!(!r.is_finished());
    assert_eq!(r.expire(), Progress::Done, "already counted as too_long");
}

#[test]
fn decoy_that_fails_does_not_stop_the_real_hello() {
    // A decoy whose CRYPTO data is out of bounds, then the real Initial under another DCID.
    let mut r = Initials::new();
    let far = initial(
        V1,
        &[0xde; 8],
        0,
        &crypto(MAX_CRYPTO_LEN as u64 - 1, &[1, 2]),
    );
    assert_eq!(r.client_datagram(&far), Progress::GaveUp(GiveUp::TooLong));
    assert!(!r.is_finished());
    let (msg, _, signs) = signed(r.client_datagram(&bytes(RFC9001_A2)));
    assert_eq!(
        (sni(&msg).as_str(), signs),
        ("example.com", Signs::default())
    );
    // An unsupported version first does not stop it either.
    let mut r = Initials::new();
    let mut d21 = bytes(RFC9001_A2);
    d21[1..5].copy_from_slice(&0xff00_0015u32.to_be_bytes());
    assert_eq!(
        r.client_datagram(&d21),
        Progress::GaveUp(GiveUp::UnsupportedVersion)
    );
    assert_eq!(r.client_datagram(&d21), Progress::NeedMore, "counted once");
    assert_eq!(
        sni(&hello(r.client_datagram(&bytes(RFC9001_A2))).0),
        "example.com"
    );
}
