//! Identification of UDP flows: DNS (every message), STUN, QUIC Initials.

use super::record::{bump, Hello, TlsSummary};
use super::{App, Ctx, FlowState, MAX_UDP_PROBE_DATAGRAMS};
use crate::decode::UdpDatagram;
use crate::fingerprint::ja4;
use crate::flow::Direction;
use crate::proto::marker::{self, Marker};
use crate::proto::quic::{self, Progress};
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
    if dir == Direction::ToServer && quic::looks_like_quic(u.payload) {
        flow.app = App::Quic;
        probe.quic = Some(Box::default());
        quic_datagram(flow, dir, u.payload, ctx);
        return;
    }
    // The server may speak first (a response before its request was captured); give the client
    // a few datagrams before calling the flow unknown.
    if dir == Direction::ToServer || probe.seen[d] >= MAX_UDP_PROBE_DATAGRAMS {
        flow.probe = None;
    }
}

fn quic_datagram(flow: &mut FlowState, dir: Direction, payload: &[u8], ctx: &mut Ctx<'_>) {
    let Some(probe) = flow.probe.as_mut() else { return };
    let Some(initials) = probe.quic.as_mut() else {
        flow.probe = None;
        return;
    };
    let progress = match dir {
        Direction::ToServer => initials.client_datagram(payload),
        Direction::ToClient => initials.server_datagram(payload),
    };
    let total = probe.seen[0].saturating_add(probe.seen[1]);
    match progress {
        Progress::ClientHello { msg, version } => {
            match ClientHello::parse(&msg) {
                Ok(ch) => {
                    ctx.stats.client_hellos += 1;
                    let details = flow.details();
                    details.quic_version = Some(version);
                    details.ech_grease = ch.ech && !ch.sni.as_deref().is_some_and(|s| ctx.cache.is_ech_public_name(s));
                    if ch.alpn.iter().any(|a| a.starts_with(b"doq")) {
                        details.marker = Some(Marker::Doq);
                    }
                    details.tls = Some(TlsSummary {
                        client: Some(Hello::fingerprinted(&ch, ja4::Protocol::Quic)),
                        server: None,
                    });
                }
                Err(e) => bump(&mut ctx.stats.tls_errors, e.as_str()),
            }
            flow.probe = None;
        }
        Progress::GoogleChlo { sni, user_agent: _, version } => {
            ctx.stats.client_hellos += 1;
            let details = flow.details();
            details.quic_version = Some(version);
            // Google QUIC's CHLO is not a TLS ClientHello: the SNI is kept, no JA3/JA4 is made.
            details.tls = Some(TlsSummary {
                client: Some(Hello { sni: sni.map(Vec::into_boxed_slice), ..Default::default() }),
                server: None,
            });
            flow.probe = None;
        }
        Progress::GaveUp(why) => {
            bump(&mut ctx.stats.quic_giveups, why.as_str());
            flow.probe = None;
        }
        Progress::Done => flow.probe = None,
        Progress::NeedMore | Progress::NotQuic => {
            if total >= MAX_UDP_PROBE_DATAGRAMS {
                bump(&mut ctx.stats.quic_giveups, "too_many_datagrams");
                flow.probe = None;
            }
        }
    }
}
