//! Identification of UDP flows: DNS (every message), STUN, QUIC Initials, RTP/RTCP media,
//! Discord voice, and Zoom media, Telegram call reflectors, Viber datagrams (on their ports only).
//!
//! A flow toward a non-DNS port is not judged by its first datagram: a client may send junk
//! (one byte, random bytes, something shaped like a QUIC short header) before its real
//! Initial, precisely so that a sensor deciding on the first datagram gives up. Every client
//! datagram is therefore offered to the QUIC Initial reader until it has its answer, its byte
//! budget ([`quic::MAX_PROBE_BYTES`]) is spent, or [`MAX_UDP_PROBE_SECS`] of packet time have
//! passed since the flow's first packet; STUN and Dropbox LAN sync are recognised on any
//! datagram of that window. A flow that never shows QUIC costs its probe (a few hundred bytes)
//! for that window and a header check per datagram.
//!
//! Media is decided last and provisionally: a flow whose first datagrams of one direction agree
//! as RTP/RTCP ([`rtp::MIN_CONSISTENT`]) becomes [`App::Rtp`], but its probe goes on, so a QUIC
//! Initial or STUN message later in the window still names it (RTP-shaped junk cannot hide a
//! hello), and a Discord keepalive can still say whose media it is.

use super::record::{bump, Evasion, Hello, TlsSummary};
use super::{App, Ctx, FlowState, MAX_UDP_PROBE_DATAGRAMS, MAX_UDP_PROBE_SECS};
use crate::decode::UdpDatagram;
use crate::fingerprint::ja4;
use crate::flow::Direction;
use crate::proto::marker::{self, Marker};
use crate::proto::quic::{Progress, Signs};
use crate::proto::rtp;
use crate::proto::tls::ClientHello;

/// A marker told by a datagram's framing on its own ports: (port test, framing test, marker).
type PortMarker = (fn(u16) -> bool, fn(&[u8]) -> bool, Marker);

/// Markers told by a datagram's framing, each only on its own ports (either end), in the order
/// they are tried. A match identifies the flow.
const PORT_MARKERS: &[PortMarker] = &[
    (|p| p == marker::DROPBOX_LANSYNC_PORT, marker::dropbox_lansync, Marker::DropboxLanSync),
    (|p| marker::ZOOM_MEDIA_PORTS.contains(&p), marker::zoom_media, Marker::ZoomMedia),
    (|p| marker::TELEGRAM_CALL_PORTS.contains(&p), marker::telegram_call, Marker::TelegramCall),
    (|p| marker::VIBER_UDP_PORTS.contains(&p), marker::viber_udp, Marker::ViberUdp),
];

/// Handles one datagram of a flow that is still being identified.
pub(super) fn probe(flow: &mut FlowState, dir: Direction, u: &UdpDatagram<'_>, ctx: &mut Ctx<'_>) {
    let Some(probe) = flow.probe.as_mut() else { return };
    let d = dir.index();
    probe.seen[d] = probe.seen[d].saturating_add(1);
    let dns_port = u.src_port == 53 || u.dst_port == 53;
    if flow.app == App::Unknown && dns_port {
        flow.app = App::Dns;
        flow.idle_secs = ctx.config.dns_idle_secs.min(u32::MAX as u64) as u32;
    }
    match flow.app {
        App::Dns => {
            let details = flow.details.get_or_insert_with(Default::default);
            if !super::dns::message(details, u.payload, ctx) {
                flow.probe = None;
            }
            return;
        }
        App::Quic => {
            quic_datagram(flow, dir, u.payload, ctx);
            return;
        }
        App::Stun => {
            stun_datagram(flow, dir, u.payload, ctx);
            return;
        }
        _ => {}
    }
    if past_deadline(flow, ctx) {
        flow.probe = None;
        return;
    }
    if let Some(info) = marker::stun(u.payload) {
        flow.app = App::Stun;
        learn_peer(&info, dir, ctx);
        let details = flow.details();
        details.marker = Some(info.marker());
        details.stun = Some(Box::new(info));
        // The probe stays: a TURN client's later requests name its peers.
        return;
    }
    let on = |port: fn(u16) -> bool| port(u.dst_port) || port(u.src_port);
    if let Some(&(_, _, m)) = PORT_MARKERS.iter().find(|(port, framing, _)| on(*port) && framing(u.payload)) {
        flow.details().marker = Some(m);
        flow.probe = None;
        return;
    }
    if marker::discord_voice(u.payload) {
        // The media follows on the same flow: the probe goes on and makes it RTP.
        flow.details().marker = Some(Marker::DiscordVoice);
    }
    rtp_datagram(flow, dir, u.payload);
    let Some(probe) = flow.probe.as_mut() else { return };
    if dir == Direction::ToServer {
        probe.quic.get_or_insert_with(Box::default);
        quic_datagram(flow, dir, u.payload, ctx);
        return;
    }
    // The server may speak first (a response before its request was captured); give it a few
    // datagrams before calling the flow unknown.
    if probe.seen[d] >= MAX_UDP_PROBE_DATAGRAMS {
        flow.probe = None;
    }
}

/// Offers one datagram to the direction's RTP/RTCP tracker; a direction that agrees makes the
/// flow RTP, marked `rtp` unless a marker already says more.
fn rtp_datagram(flow: &mut FlowState, dir: Direction, payload: &[u8]) {
    if flow.app != App::Unknown {
        return;
    }
    let Some(track) = flow.probe.as_mut().and_then(|p| p.rtp.get_mut(dir.index())) else { return };
    if track.push(payload) == rtp::Verdict::Media {
        flow.app = App::Rtp;
        flow.details().marker.get_or_insert(Marker::Rtp);
    }
}

/// A later datagram of a STUN flow: a TURN client's request (CreatePermission, ChannelBind,
/// Send) names its peer, which the resolver learns. Read until the probe's time or datagrams
/// run out.
fn stun_datagram(flow: &mut FlowState, dir: Direction, payload: &[u8], ctx: &mut Ctx<'_>) {
    let d = dir.index();
    if past_deadline(flow, ctx) || flow.probe.as_ref().is_none_or(|p| p.seen[d] >= MAX_UDP_PROBE_DATAGRAMS) {
        flow.probe = None;
        return;
    }
    if let Some(info) = marker::stun(payload) {
        learn_peer(&info, dir, ctx);
    }
}

/// Tells the resolver the peer a client's TURN request names (XOR-PEER-ADDRESS, RFC 8656).
fn learn_peer(info: &marker::StunInfo, dir: Direction, ctx: &mut Ctx<'_>) {
    if let (Direction::ToServer, Some(peer)) = (dir, info.peer) {
        let (client, ts) = (ctx.client, ctx.now);
        ctx.emit(super::resolve::Event::Peer { client, peer: peer.ip(), ts });
    }
}

/// Has the probe's time ([`MAX_UDP_PROBE_SECS`] of packet time from the flow's first packet)
/// run out?
fn past_deadline(flow: &FlowState, ctx: &Ctx<'_>) -> bool {
    ctx.now.micros_since(flow.first) >= MAX_UDP_PROBE_SECS.saturating_mul(1_000_000)
}

/// Offers one datagram to the flow's QUIC Initial reader and records what it reports.
fn quic_datagram(flow: &mut FlowState, dir: Direction, payload: &[u8], ctx: &mut Ctx<'_>) {
    let expired = past_deadline(flow, ctx);
    let Some(probe) = flow.probe.as_mut() else { return };
    let Some(initials) = probe.quic.as_mut() else {
        flow.probe = None;
        return;
    };
    let progress = match dir {
        _ if expired => initials.expire(),
        Direction::ToServer => initials.client_datagram(payload),
        Direction::ToClient => initials.server_datagram(payload),
    };
    let recognised = initials.recognised();
    let finished = initials.is_finished();
    if matches!(flow.app, App::Unknown | App::Rtp) && recognised {
        if flow.app == App::Rtp {
            // Media-shaped datagrams before a QUIC Initial were not media.
            let details = flow.details();
            details.marker = details.marker.filter(|m| *m != Marker::Rtp);
        }
        flow.app = App::Quic;
    }
    match progress {
        Progress::ClientHello { msg, version, signs } => client_hello(flow, &msg, version, signs, ctx),
        Progress::GoogleChlo { sni, user_agent: _, version } => {
            ctx.stats.client_hellos += 1;
            let details = flow.details();
            details.quic_version = std::num::NonZeroU32::new(version);
            // Google QUIC's CHLO is not a TLS ClientHello: the SNI is kept, no JA3/JA4 is made.
            details.tls = Some(TlsSummary {
                client: Some(Hello { sni: sni.map(Vec::into_boxed_slice), ..Default::default() }),
                server: None,
            });
        }
        Progress::GaveUp(why) => bump(&mut ctx.stats.quic_giveups, why.as_str()),
        Progress::NeedMore | Progress::NotQuic | Progress::Done => {}
    }
    if finished {
        flow.probe = None;
    }
}

/// Records the ClientHello the reader reports now. It replaces an earlier one (a decoy's, or a
/// provisional one the server did not answer); the hello is counted once per flow.
fn client_hello(flow: &mut FlowState, msg: &[u8], version: u32, signs: Signs, ctx: &mut Ctx<'_>) {
    let parsed = ctx.hello.parse_into(msg);
    let details = flow.details();
    if signs.junk {
        details.evasion.insert(Evasion::QUIC_JUNK);
    }
    if signs.decoy {
        details.evasion.insert(Evasion::DECOY_INITIAL);
    }
    details.quic_version = std::num::NonZeroU32::new(version);
    // The reused hello is moved out for the while (its lists keep their memory) so that `ctx`
    // stays free to use; it goes back at the end.
    let scratch = std::mem::take(ctx.hello);
    let ch: &ClientHello = match parsed {
        Ok(()) => &scratch,
        Err(e) => {
            *ctx.hello = scratch;
            bump(&mut ctx.stats.tls_errors, e.as_str());
            // Never leave an earlier (decoy) hello naming the flow in place of this one.
            details.tls = None;
            return;
        }
    };
    if details.client_hello().is_none() {
        ctx.stats.client_hellos += 1;
    }
    details.ech_grease = ctx.hello_ech(details.ech_grease, ch.ech, ch.sni.as_deref());
    if ch.alpn.iter().any(|a| a.starts_with(b"doq")) {
        details.marker = Some(Marker::Doq);
    } else if details.marker == Some(Marker::Doq) {
        details.marker = None;
    }
    details.tls = Some(TlsSummary { client: Some(Hello::fingerprinted(ch, ja4::Protocol::Quic)), server: None });
    *ctx.hello = scratch;
}

#[cfg(test)]
mod tests {
    use crate::decode::LinkType;
    use crate::engine::{App, Config, Engine, Evasion, FlowRecord, Signal};
    use crate::proto::quic::fixtures::{bytes, crypto, hello_of, padded_hello, Packet, CHROME_V1, GO_V1, RFC9001_A2};
    use crate::proto::quic::{Initials, Progress, V1};
    use crate::time::Timestamp;

    const CLIENT: [u8; 4] = [10, 0, 0, 1];
    const SERVER: [u8; 4] = [192, 0, 2, 7];

    /// A raw IPv4/UDP frame (link type Raw) between CLIENT:50000 and SERVER:`port`.
    fn frame(to_server: bool, payload: &[u8], port: u16) -> Vec<u8> {
        let ((src, sport), (dst, dport)) =
            if to_server { ((CLIENT, 50000u16), (SERVER, port)) } else { ((SERVER, port), (CLIENT, 50000)) };
        let total = (20 + 8 + payload.len()) as u16;
        let mut f = vec![0x45, 0];
        f.extend(total.to_be_bytes());
        f.extend([0, 0, 0x40, 0, 64, 17, 0, 0]);
        f.extend(src);
        f.extend(dst);
        let sum = f.chunks(2).fold(0u32, |s, w| s + u32::from(u16::from_be_bytes([w[0], w[1]])));
        let sum = !((sum & 0xffff) + (sum >> 16)) as u16;
        f[10..12].copy_from_slice(&sum.to_be_bytes());
        f.extend(sport.to_be_bytes());
        f.extend(dport.to_be_bytes());
        f.extend((8 + payload.len() as u16).to_be_bytes());
        f.extend([0, 0]);
        f.extend_from_slice(payload);
        f
    }

    /// Runs `datagrams` (direction, payload, seconds after the start) through an engine and
    /// returns its one record.
    fn run(datagrams: &[(bool, Vec<u8>, u64)]) -> (FlowRecord, Engine) {
        run_on(443, datagrams)
    }

    /// [`run`] with the server on `port`.
    fn run_on(port: u16, datagrams: &[(bool, Vec<u8>, u64)]) -> (FlowRecord, Engine) {
        let mut e = Engine::new(Config::default());
        let start = Timestamp::from_parts(1_800_000_000, 0);
        for (i, (to_server, payload, secs)) in datagrams.iter().enumerate() {
            let ts = Timestamp(start.plus_secs(*secs).0 + i as i64);
            let f = frame(*to_server, payload, port);
            e.handle(ts, Some(LinkType::Raw), &f, f.len() as u32);
        }
        e.finish();
        assert_eq!(e.records.len(), 1);
        let r = e.records.remove(0);
        (r, e)
    }

    fn sni(r: &FlowRecord) -> Option<String> {
        let hello = r.details.as_deref()?.client_hello()?;
        hello.sni.as_deref().map(|s| String::from_utf8_lossy(s).into_owned())
    }

    fn evasion(r: &FlowRecord) -> Evasion {
        r.details.as_deref().map(|d| d.evasion).unwrap_or_default()
    }

    fn answer(dcid: &[u8], scid: &[u8]) -> Vec<u8> {
        Packet::server(V1, dcid, scid, &[0x3c; 8], 0, &[0x02, 0, 0, 0, 0]).build()
    }

    #[test]
    fn junk_before_the_initial_still_names_the_flow() {
        let mut random = vec![0u8; 40];
        for (i, b) in random.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(97).wrapping_add(13) & 0x7f;
        }
        let mut short = vec![0x43u8];
        short.extend([0x9c; 50]);
        for junk in [vec![0x01], random, short] {
            let (r, e) = run(&[(true, junk.clone(), 0), (true, junk, 0), (true, bytes(RFC9001_A2), 1)]);
            assert_eq!((r.app, r.signal), (App::Quic, Some(Signal::QuicSni)));
            assert_eq!(sni(&r).as_deref(), Some("example.com"));
            assert_eq!(evasion(&r), Evasion::QUIC_JUNK);
            assert_eq!(e.stats.evasions.get("quic_junk"), Some(&1));
            assert_eq!(e.stats.client_hellos, 1);
        }
        // No junk, no sign.
        let (r, _) = run(&[(true, bytes(RFC9001_A2), 0)]);
        assert!(evasion(&r).is_empty());
    }

    #[test]
    fn probing_is_bounded_in_time_and_other_udp_stays_unknown() {
        // Junk for longer than MAX_UDP_PROBE_SECS: the Initial after it is not read.
        let (r, e) = run(&[(true, vec![1, 2, 3], 0), (true, bytes(RFC9001_A2), super::MAX_UDP_PROBE_SECS + 1)]);
        assert_eq!((r.app, r.signal), (App::Unknown, None));
        assert!(e.stats.quic_giveups.is_empty());
        // STUN after junk is still a STUN flow.
        let mut stun = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        stun.extend([7u8; 12]);
        let (r, _) = run(&[(true, vec![0xff; 30], 0), (true, stun, 0)]);
        assert_eq!(r.app, App::Stun);
    }

    fn rtp(seq: u16, ssrc: u32) -> Vec<u8> {
        let mut p = vec![0x80, 111];
        p.extend(seq.to_be_bytes());
        p.extend([0, 0, 0x10, 0]);
        p.extend(ssrc.to_be_bytes());
        p.extend([0x3c; 80]);
        p
    }

    fn marker(r: &FlowRecord) -> Option<&'static str> {
        r.details.as_deref().and_then(|d| d.marker).map(|m| m.as_str())
    }

    #[test]
    fn media_is_rtp_after_agreeing_datagrams_and_quic_still_wins() {
        let (r, _) = run(&[(true, rtp(1, 7), 0), (false, rtp(900, 8), 0), (true, rtp(2, 7), 0), (true, rtp(4, 7), 0)]);
        assert_eq!((r.app, marker(&r), r.signal), (App::Rtp, Some("rtp"), Some(Signal::Marker)));
        // Two datagrams are not enough; nor are three of different streams.
        let (r, _) = run(&[(true, rtp(1, 7), 0), (true, rtp(2, 7), 0)]);
        assert_eq!((r.app, marker(&r)), (App::Unknown, None));
        let (r, _) = run(&[(true, rtp(1, 7), 0), (true, rtp(2, 8), 0), (true, rtp(3, 9), 0)]);
        assert_eq!(r.app, App::Unknown);
        // RTP-shaped junk before a QUIC Initial does not hide the hello.
        let (r, _) = run(&[(true, rtp(1, 7), 0), (true, rtp(2, 7), 0), (true, rtp(3, 7), 0), (true, bytes(RFC9001_A2), 1)]);
        assert_eq!((r.app, marker(&r)), (App::Quic, None));
        assert_eq!(sni(&r).as_deref(), Some("example.com"));
    }

    #[test]
    fn discord_voice_and_stun_vendors_are_marked() {
        // As in the corpus capture: RTCP receiver reports, keepalives, no discovery.
        let rr = |n: u8| {
            let mut p = vec![0x81, 201, 0, 7, 0, 0x16, 0x2f, 0xfd];
            p.extend([n; 44]);
            p
        };
        let keepalive = vec![0x13, 0x37, 0xca, 0xfe, 0xa9, 0x01, 0, 0];
        let (r, _) = run(&[(true, rr(1), 0), (true, rr(2), 1), (false, keepalive.clone(), 2), (true, keepalive, 2), (true, rr(3), 2)]);
        assert_eq!((r.app, marker(&r)), (App::Rtp, Some("discord-voice")));
        // A Teams connectivity check: MS-IMPLEMENTATION-VERSION.
        let mut stun = vec![0x00, 0x01, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42];
        stun.extend([7u8; 12]);
        stun.extend([0x80, 0x70, 0, 4, 0, 0, 0, 2]);
        let (r, _) = run(&[(true, stun, 0)]);
        assert_eq!((r.app, marker(&r)), (App::Stun, Some("stun-microsoft")));
        let ms = r.details.as_deref().and_then(|d| d.stun.as_deref()).and_then(|s| s.vendor);
        assert_eq!(ms, Some(crate::proto::marker::StunVendor::Microsoft));
    }

    #[test]
    fn port_qualified_markers_need_their_ports() {
        let zoom = vec![1, 0, 3, 0, 0, 0, 0, 0, 0, 1, 2, 3];
        let (r, _) = run_on(8801, &[(true, zoom.clone(), 0)]);
        assert_eq!(marker(&r), Some("zoom-media"));
        let (r, _) = run_on(9000, &[(true, zoom, 0)]);
        assert_eq!(marker(&r), None);
        let mut reflector = vec![0x5e; 16];
        reflector.extend([0xff; 12]);
        reflector.extend([1; 24]);
        let (r, _) = run_on(533, &[(true, reflector.clone(), 0)]);
        assert_eq!(marker(&r), Some("telegram-call"));
        let (r, _) = run_on(9000, &[(true, reflector, 0)]);
        assert_eq!(marker(&r), None);
        let viber = vec![0x12, 0x34, 0x03, 0x00, 1, 2, 3, 4, 5, 6, 7, 8];
        let (r, _) = run_on(5243, &[(true, viber.clone(), 0)]);
        assert_eq!(marker(&r), Some("viber-udp"));
        let (r, _) = run_on(9000, &[(true, viber, 0)]);
        assert_eq!(marker(&r), None);
    }

    #[test]
    fn reserved_version_and_a_hello_over_forty_initials() {
        let dcid = [0x83; 8];
        let hello = hello_of(RFC9001_A2);
        let reserved = Packet::client(0x1a2a_3a4a, &dcid, 0, &crypto(0, &hello)).build();
        let (r, _) = run(&[(true, reserved, 0)]);
        assert_eq!(sni(&r).as_deref(), Some("example.com"));
        assert_eq!(r.details.as_deref().and_then(|d| d.quic_version).map(|v| v.get()), Some(0x1a2a_3a4a));

        let msg = padded_hello(&hello_of(CHROME_V1), 1900);
        let mut flow = Vec::new();
        for (pn, chunk) in msg.chunks(msg.len().div_ceil(40)).enumerate() {
            let off = (pn * msg.len().div_ceil(40)) as u64;
            flow.push((true, Packet::client(V1, &dcid, pn as u64, &crypto(off, chunk)).build(), 0));
            if pn % 4 == 0 {
                flow.push((false, answer(&dcid, &[]), 0));
            }
        }
        let (r, e) = run(&flow);
        assert_eq!(sni(&r).as_deref(), Some("cloudflare-quic.com"));
        assert!(evasion(&r).is_empty());
        assert!(e.stats.quic_giveups.is_empty());
    }

    #[test]
    fn decoy_initial_loses_to_the_one_the_server_answered() {
        let (decoy_cid, real_cid, scid) = ([0xde; 8], [0x2e; 8], [0x11; 4]);
        let decoy = Packet { scid: &scid, ..Packet::client(V1, &decoy_cid, 0, &crypto(0, &hello_of(RFC9001_A2))) }.build();
        let real = Packet { scid: &scid, ..Packet::client(V1, &real_cid, 0, &crypto(0, &hello_of(GO_V1))) }.build();
        // Real first, decoy after: the server's answer decides.
        let (r, e) = run(&[(true, real.clone(), 0), (true, decoy.clone(), 0), (false, answer(&real_cid, &scid), 0)]);
        assert_eq!(sni(&r).as_deref(), Some("server4:443"));
        assert_eq!(evasion(&r), Evasion::DECOY_INITIAL);
        assert_eq!(e.stats.client_hellos, 1);
        // Decoy first, never answered (one direction captured): the last hello, flagged.
        let (r, _) = run(&[(true, decoy, 0), (true, real, 0)]);
        assert_eq!(sni(&r).as_deref(), Some("server4:443"));
        assert_eq!(evasion(&r), Evasion::DECOY_INITIAL);
    }

    #[test]
    fn the_reader_is_released_once_the_server_answers() {
        let mut initials = Initials::new();
        let dcid = [0x83, 0x94, 0xc8, 0xf0, 0x3e, 0x51, 0x57, 0x08];
        assert!(matches!(initials.client_datagram(&bytes(RFC9001_A2)), Progress::ClientHello { .. }));
        assert!(initials.footprint() > 1000);
        assert_eq!(initials.server_datagram(&answer(&dcid, &[])), Progress::Done);
        assert_eq!(initials.footprint(), std::mem::size_of::<Initials>());
    }
}
