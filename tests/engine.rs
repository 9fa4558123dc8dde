//! Library-level properties over the bundled captures: batch and frame-by-frame handling agree,
//! the engine is deterministic, and IP fragments (IPv4, IPv6 Fragment headers) in any order
//! give the same flows as the datagrams they were cut from.

use std::path::Path;

use shadowtap::capture::file::{FileReader, Next};
use shadowtap::decode::{Frame, LinkType};
use shadowtap::engine::{Config, Engine, Evasion, FlowRecord, Stats};
use shadowtap::time::Timestamp;

/// One captured frame, owned: timestamp, link type, bytes, wire length, DLT.
type Owned = (Timestamp, Option<LinkType>, Vec<u8>, u32, i32);

fn frames(path: &Path) -> Vec<Owned> {
    let mut r = FileReader::open(path).unwrap();
    let mut out = Vec::new();
    loop {
        let (batch, st) = r.next_batch();
        out.extend(batch.iter().map(|f| (f.ts, f.link, f.data.to_vec(), f.wire_len, f.dlt)));
        if st != Next::More {
            return out;
        }
    }
}

fn pcap(name: &str) -> Vec<Owned> {
    frames(&Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps").join(name))
}

fn sorted(e: &mut Engine) -> Vec<FlowRecord> {
    e.finish();
    let mut r = std::mem::take(&mut e.records);
    r.sort_by_key(|r| r.seq);
    r
}

fn run_single(fr: &[Owned]) -> Vec<FlowRecord> {
    run_single_stats(fr).0
}

fn run_single_stats(fr: &[Owned]) -> (Vec<FlowRecord>, Stats) {
    let mut e = Engine::new(Config::default());
    for (ts, link, data, len, _) in fr {
        e.handle(*ts, *link, data, *len);
    }
    let records = sorted(&mut e);
    (records, e.stats)
}

fn run_batched(fr: &[Owned], chunk: usize) -> Vec<FlowRecord> {
    let mut e = Engine::new(Config::default());
    for chunk in fr.chunks(chunk) {
        let batch: Vec<Frame<'_>> = chunk
            .iter()
            .map(|(ts, link, data, len, dlt)| Frame { ts: *ts, data, wire_len: *len, link: *link, dlt: *dlt })
            .collect();
        e.handle_batch(&batch);
    }
    sorted(&mut e)
}

#[test]
fn batch_and_single_frame_handling_agree() {
    for name in ["chromium-pq.pcap", "curl-tls13.pcap", "ooo-segments.pcap", "vxlan.pcap", "linktype-sll2.pcap"] {
        let fr = pcap(name);
        let single = run_single(&fr);
        let batched = run_batched(&fr, 7);
        assert_eq!(single, batched, "{name}");
        assert!(!single.is_empty());
        assert_eq!(single, run_single(&fr), "{name}: deterministic");
    }
    // A capture with fragments splits batches: still the same flows, whatever the batch size.
    let fragmented = fragment_hellos(&pcap("curl-tls13.pcap"), Fragmenter::V4);
    let single = run_single(&fragmented);
    for chunk in [1, 2, 7, 32] {
        assert_eq!(single, run_batched(&fragmented, chunk), "fragmented, batches of {chunk}");
    }
}

/// Ethernet + IPv4 header length of a frame of the bundled captures.
fn ipv4_parts(frame: &[u8]) -> (&[u8], &[u8], &[u8]) {
    let ip = &frame[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    (&frame[..14], &ip[..ihl], &ip[ihl..total])
}

/// The IPv4 header checksum (RFC 791 section 3.1) of `header` with its checksum field zero.
fn checksum(header: &[u8]) -> [u8; 2] {
    let mut sum: u32 = header.chunks(2).map(|w| u32::from(u16::from_be_bytes([w[0], w[1]]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    (!(sum as u16)).to_be_bytes()
}

/// `frame` (Ethernet + IPv4) cut into fragments at `cuts` (offsets in the IP payload,
/// multiples of 8), in the datagram's order.
fn ipv4_fragments(frame: &[u8], cuts: &[usize], id: u16) -> Vec<Vec<u8>> {
    let (eth, header, body) = ipv4_parts(frame);
    bounds(cuts, body.len())
        .map(|(a, b)| {
            let mut h = header.to_vec();
            h[2..4].copy_from_slice(&u16::try_from(header.len() + b - a).unwrap().to_be_bytes());
            h[4..6].copy_from_slice(&id.to_be_bytes());
            let flags = u16::try_from(a / 8).unwrap() | if b < body.len() { 0x2000 } else { 0 };
            h[6..8].copy_from_slice(&flags.to_be_bytes());
            h[10..12].copy_from_slice(&[0, 0]);
            let sum = checksum(&h);
            h[10..12].copy_from_slice(&sum);
            [eth, &h, &body[a..b]].concat()
        })
        .collect()
}

fn bounds(cuts: &[usize], len: usize) -> impl Iterator<Item = (usize, usize)> + '_ {
    let starts = std::iter::once(0).chain(cuts.iter().copied());
    let ends = cuts.iter().copied().chain(std::iter::once(len));
    starts.zip(ends)
}

/// IPv6 hop-by-hop header (PadN) naming the Fragment header (44) or `next`.
fn hop_by_hop(next: u8) -> [u8; 8] {
    [next, 0, 0x01, 0x04, 0, 0, 0, 0]
}

/// `frame` (Ethernet + IPv4) as the same packet over IPv6 (2001:db8::a.b.c.d), with a
/// hop-by-hop header first when `hbh`.
fn to_ipv6(frame: &[u8], hbh: bool) -> Vec<u8> {
    let (eth, header, body) = ipv4_parts(frame);
    let protocol = header[9];
    let exts: Vec<u8> = if hbh { hop_by_hop(protocol).to_vec() } else { Vec::new() };
    let payload = [&exts[..], body].concat();
    [&eth[..12], &[0x86, 0xdd], &ipv6_header(header, payload.len(), if hbh { 0 } else { protocol })[..], &payload].concat()
}

fn ipv6_header(v4: &[u8], payload_len: usize, next: u8) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&u16::try_from(payload_len).unwrap().to_be_bytes());
    h.extend_from_slice(&[next, 64]);
    for addr in [&v4[12..16], &v4[16..20]] {
        h.extend_from_slice(&[0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0]);
        h.extend_from_slice(addr);
    }
    h
}

/// `frame` (Ethernet + IPv4) as IPv6 fragments cut at `cuts`, with a hop-by-hop header before
/// the Fragment header when `hbh`.
fn ipv6_fragments(frame: &[u8], cuts: &[usize], id: u32, hbh: bool) -> Vec<Vec<u8>> {
    let (eth, header, body) = ipv4_parts(frame);
    let protocol = header[9];
    bounds(cuts, body.len())
        .map(|(a, b)| {
            let field = u16::try_from(a).unwrap() | u16::from(b < body.len());
            let mut exts = if hbh { hop_by_hop(44).to_vec() } else { Vec::new() };
            exts.extend_from_slice(&[protocol, 0]);
            exts.extend_from_slice(&field.to_be_bytes());
            exts.extend_from_slice(&id.to_be_bytes());
            let payload = [&exts[..], &body[a..b]].concat();
            let v6 = ipv6_header(header, payload.len(), if hbh { 0 } else { 44 });
            [&eth[..12], &[0x86, 0xdd], &v6[..], &payload].concat()
        })
        .collect()
}

/// How [`fragment_hellos`] rewrites a capture.
#[derive(Clone, Copy, PartialEq)]
enum Fragmenter {
    /// IPv4 fragments.
    V4,
    /// Every frame over IPv6, hellos in Fragment headers (with hop-by-hop on some flows).
    V6,
    /// Every frame over IPv6, no fragment: the reference for [`Fragmenter::V6`].
    V6Whole,
}

/// Cuts, and the order fragments are sent in, for the n-th ClientHello of a capture: 2, 3 and
/// 5 fragments, in order, reversed and shuffled.
const PLANS: [(&[usize], &[usize]); 5] = [
    (&[272], &[1, 0]),
    (&[184, 368], &[0, 1, 2]),
    (&[112, 224, 336, 448], &[3, 0, 4, 1, 2]),
    (&[184, 368], &[2, 1, 0]),
    (&[8, 16, 24, 32, 40], &[5, 4, 0, 2, 1, 3]),
];

/// Whether a frame carries a client's TLS record (a ClientHello) over IPv4 and TCP.
fn is_hello(frame: &[u8]) -> bool {
    let (_, header, body) = ipv4_parts(frame);
    let data = usize::from(body[12] >> 4) * 4;
    header[9] == 6 && body.get(data..data + 3) == Some(&[0x16, 0x03, 0x01][..])
}

/// The capture with its ClientHellos sent in fragments (every other frame unchanged but for
/// the IP version). Fragments keep the hello's timestamp.
fn fragment_hellos(fr: &[Owned], how: Fragmenter) -> Vec<Owned> {
    let mut out = Vec::new();
    let mut hellos = 0;
    for (ts, link, data, _, dlt) in fr {
        let mut push = |bytes: Vec<u8>| out.push((*ts, *link, bytes.clone(), bytes.len() as u32, *dlt));
        if !is_hello(data) {
            match how {
                Fragmenter::V4 => push(data.clone()),
                Fragmenter::V6 | Fragmenter::V6Whole => push(to_ipv6(data, false)),
            }
            continue;
        }
        let (cuts, order) = PLANS[hellos % PLANS.len()];
        let hbh = hellos % 2 == 0;
        let id = 0x4242 + hellos;
        hellos += 1;
        let pieces = match how {
            Fragmenter::V4 => ipv4_fragments(data, cuts, id as u16),
            Fragmenter::V6 => ipv6_fragments(data, cuts, 0x8000_0000 | id as u32, hbh),
            Fragmenter::V6Whole => vec![to_ipv6(data, hbh)],
        };
        if how == Fragmenter::V6Whole {
            push(pieces[0].clone());
            continue;
        }
        assert_eq!(pieces.len(), order.len());
        for &i in order {
            push(pieces[i].clone());
        }
    }
    assert_eq!(hellos, 5, "curl-tls13.pcap has five connections");
    out
}

fn sni(r: &FlowRecord) -> Option<&[u8]> {
    r.details.as_deref()?.client_hello()?.sni.as_deref()
}

#[test]
fn fragmented_hellos_give_the_same_flows_ipv4() {
    let original = pcap("curl-tls13.pcap");
    let (whole, whole_stats) = run_single_stats(&original);
    let fragmented = fragment_hellos(&original, Fragmenter::V4);
    assert!(fragmented.len() > original.len() + 10);
    let (records, stats) = run_single_stats(&fragmented);
    // Same flows, named by the same SNI, with the same packets and bytes: a reassembled
    // datagram is one packet of the whole datagram's length.
    assert_eq!(records, whole);
    assert_eq!(records.len(), 5);
    assert!(records.iter().all(|r| sni(r).is_some()), "every hello named");
    assert_eq!(stats.named, whole_stats.named);
    assert_eq!(stats.defrag.reassembled, 5);
    assert_eq!(stats.defrag.fragments, 2 + 3 + 5 + 3 + 6);
    assert_eq!(stats.defrag.giveups.iter().sum::<u64>(), 0);
    assert_eq!((stats.defrag.pending, stats.defrag.held_bytes), (0, 0));
}

#[test]
fn fragmented_hellos_give_the_same_flows_ipv6() {
    let original = pcap("curl-tls13.pcap");
    let names: Vec<_> = run_single(&original).iter().map(|r| sni(r).map(<[u8]>::to_vec)).collect();
    let reference = run_single(&fragment_hellos(&original, Fragmenter::V6Whole));
    let (records, stats) = run_single_stats(&fragment_hellos(&original, Fragmenter::V6));
    assert_eq!(records, reference);
    assert!(records[0].client.is_ipv6());
    let got: Vec<_> = records.iter().map(|r| sni(r).map(<[u8]>::to_vec)).collect();
    assert_eq!(got, names);
    assert!(names.iter().all(Option::is_some));
    assert_eq!(stats.defrag.reassembled, 5);
}

#[test]
fn conflicting_fragment_overlap_marks_the_flow() {
    let original = pcap("curl-tls13.pcap");
    let hello_at = original.iter().position(|f| is_hello(&f.2)).unwrap();
    let (ts, link, data, _, dlt) = original[hello_at].clone();
    let pieces = ipv4_fragments(&data, &[184, 368], 0x77);
    // A fragment over bytes 8..184 of the first one, one byte changed (in the hello's random):
    // it comes after the true bytes, so they stay, and the disagreement is reported.
    let mut liar = ipv4_fragments(&data, &[8, 184], 0x77).remove(1);
    let at = 14 + 20 + 100;
    liar[at] ^= 0xff;
    let mut fr: Vec<Owned> = original[..hello_at].to_vec();
    for bytes in [&pieces[0], &pieces[1], &liar, &pieces[2]] {
        fr.push((ts, link, bytes.clone(), bytes.len() as u32, dlt));
    }
    fr.extend_from_slice(&original[hello_at + 1..]);
    let whole = run_single(&original);
    let (records, stats) = run_single_stats(&fr);
    assert_eq!(sni(&records[0]), sni(&whole[0]), "the first bytes named the flow");
    let evasion = records[0].details.as_ref().unwrap().evasion;
    assert!(evasion.contains(Evasion::FRAGMENT_OVERLAP));
    assert!(records[1..].iter().all(|r| r.details.as_ref().unwrap().evasion.is_empty()));
    assert_eq!(stats.defrag.conflicts, 1);
    assert_eq!(stats.evasions.get("fragment_overlap"), Some(&1));
    assert_eq!((records[0].packets_up, records[0].bytes_up), (whole[0].packets_up, whole[0].bytes_up));
}

#[test]
fn lost_fragment_times_out_and_the_flow_stays_unnamed() {
    let original = pcap("curl-tls13.pcap");
    let hello_at = original.iter().position(|f| is_hello(&f.2)).unwrap();
    let (ts, link, data, _, dlt) = original[hello_at].clone();
    let pieces = ipv4_fragments(&data, &[272], 0x99);
    let mut fr: Vec<Owned> = original[..hello_at].to_vec();
    fr.push((ts, link, pieces[1].clone(), pieces[1].len() as u32, dlt));
    fr.extend_from_slice(&original[hello_at + 1..]);
    let mut e = Engine::new(Config::default());
    for (ts, link, data, len, _) in &fr {
        e.handle(*ts, *link, data, *len);
    }
    assert_eq!(e.stats.defrag.pending, 1);
    e.tick(Timestamp(ts.0 + 31_000_000));
    assert_eq!(e.stats.defrag.pending, 0);
    assert_eq!(e.stats.defrag.giveups[0], 1, "timeout");
    let records = sorted(&mut e);
    assert_eq!(sni(&records[0]), None);
}
