//! Identification of UDP flows: DNS (every message), STUN, QUIC Initials.
//!
//! A flow toward a non-DNS port is not judged by its first datagram: a client may send junk
//! (one byte, random bytes, something shaped like a QUIC short header) before its real
//! Initial, precisely so that a sensor deciding on the first datagram gives up. Every client
//! datagram is therefore offered to the QUIC Initial reader until it has its answer, its byte
//! budget ([`quic::MAX_PROBE_BYTES`]) is spent, or [`MAX_UDP_PROBE_SECS`] of packet time have
//! passed since the flow's first packet; STUN and Dropbox LAN sync are recognised on any
//! datagram of that window. A flow that never shows QUIC costs its probe (a few hundred bytes)
//! for that window and a header check per datagram.

use super::record::{bump, Evasion, Hello, TlsSummary};
use super::{App, Ctx, FlowState, MAX_UDP_PROBE_DATAGRAMS, MAX_UDP_PROBE_SECS};
use crate::decode::UdpDatagram;
use crate::fingerprint::ja4;
use crate::flow::Direction;
use crate::proto::marker::{self, Marker};
use crate::proto::quic::{Progress, Signs};
use crate::proto::tls::ClientHello;

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
        _ => {}
    }
    if past_deadline(flow, ctx) {
        flow.probe = None;
        return;
    }
    if let Some(info) = marker::stun(u.payload) {
        flow.app = App::Stun;
        let details = flow.details();
        details.marker = Some(Marker::Stun);
        details.stun = Some(Box::new(info));
        flow.probe = None;
        return;
    }
    if (u.dst_port == marker::DROPBOX_LANSYNC_PORT || u.src_port == marker::DROPBOX_LANSYNC_PORT)
        && marker::dropbox_lansync(u.payload)
    {
        flow.details().marker = Some(Marker::DropboxLanSync);
        flow.probe = None;
        return;
    }
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
    if flow.app == App::Unknown && recognised {
        flow.app = App::Quic;
    }
    match progress {
        Progress::ClientHello { msg, version, signs } => client_hello(flow, &msg, version, signs, ctx),
        Progress::GoogleChlo { sni, user_agent: _, version } => {
            ctx.stats.client_hellos += 1;
            let details = flow.details();
            details.quic_version = Some(version);
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
    let parsed = ClientHello::parse(msg);
    let details = flow.details();
    if signs.junk {
        details.evasion.insert(Evasion::QUIC_JUNK);
    }
    if signs.decoy {
        details.evasion.insert(Evasion::DECOY_INITIAL);
    }
    details.quic_version = Some(version);
    let ch = match parsed {
        Ok(ch) => ch,
        Err(e) => {
            bump(&mut ctx.stats.tls_errors, e.as_str());
            // Never leave an earlier (decoy) hello naming the flow in place of this one.
            details.tls = None;
            return;
        }
    };
    if details.client_hello().is_none() {
        ctx.stats.client_hellos += 1;
    }
    details.ech_grease = ch.ech && !ch.sni.as_deref().is_some_and(|s| ctx.cache.is_ech_public_name(s));
    if ch.alpn.iter().any(|a| a.starts_with(b"doq")) {
        details.marker = Some(Marker::Doq);
    } else if details.marker == Some(Marker::Doq) {
        details.marker = None;
    }
    details.tls = Some(TlsSummary { client: Some(Hello::fingerprinted(&ch, ja4::Protocol::Quic)), server: None });
}
