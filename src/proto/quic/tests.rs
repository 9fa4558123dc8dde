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

/// The same without padding: a small packet (for bounds counted in packets, not bytes).
fn small_initial(version: u32, dcid: &[u8], pn: u64, frames: &[u8]) -> Vec<u8> {
    Packet { min_len: 0, ..Packet::client(version, dcid, pn, frames) }.build()
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
    assert!(r.retry.is_some_and(|(cid, of)| cid.get() == new_dcid && of == Some(0)));
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
    // Decrypted garbage reaches the frame walker: random frames in valid packets.
    for _ in 0..300 {
        let mut frames = vec![0u8; (soup.next() % 300) as usize];
        soup.fill(&mut frames);
        feed_all(&initial(V1, &DCID, soup.next() % 60_000, &frames));
    }
}
