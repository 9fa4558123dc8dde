//! Identification of TCP flows from the reassembled first bytes of each direction: proxy
//! preambles, TLS hellos, HTTP requests, WhatsApp's preface, SSH banners, DNS over TCP.

use super::record::{bump, Details, Hello, ProxyInfo, TlsSummary};
use super::{App, Ctx, FlowState, Probe, MAX_TCP_PROBE_SEGMENTS};
use crate::decode::{TcpFlags, TcpSegment};
use crate::fingerprint::ja4;
use crate::flow::reassembly::{GiveUp, Outcome, Stream};
use crate::flow::Direction;
use crate::proto::http::{self, Request};
use crate::proto::marker::{self, Marker, Sniff};
use crate::proto::proxy::{self, Preamble};
use crate::proto::tls::{self, ClientHello, RecordScan, ServerHello};

/// TCP port of DNS over TLS (RFC 7858).
const DOT_PORT: u16 = 853;

/// Handles one segment of a flow that is still being identified.
pub(super) fn probe(flow: &mut FlowState, dir: Direction, t: &TcpSegment<'_>, ctx: &mut Ctx<'_>) {
    let Some(probe) = flow.probe.as_mut() else { return };
    let d = dir.index();
    let o = dir.reverse().index();
    let syn = t.flags.contains(TcpFlags::SYN);
    if flow.app == App::Unknown && (t.src_port == 53 || t.dst_port == 53) {
        flow.app = App::Dns;
    }

    // The peer's ACK tells whether bytes we are waiting for were lost to the capture.
    if t.flags.contains(TcpFlags::ACK) && !probe.done[o] {
        if let Some(s) = probe.streams[o].as_mut() {
            if let Outcome::GaveUp(why) = s.peer_ack(t.ack) {
                bump(&mut ctx.stats.reassembly_giveups, why.as_str());
                probe.done[o] = true;
            }
        }
    }
    if !probe.done[d] && (syn || !t.payload.is_empty()) {
        if !t.payload.is_empty() {
            probe.seen[d] = probe.seen[d].saturating_add(1);
        }
        let stream = probe.streams[d].get_or_insert_with(|| Stream::new(ctx.config.reassembly_limit));
        if syn {
            stream.syn(t.seq);
        }
        let seq = if syn { t.seq.wrapping_add(1) } else { t.seq };
        let before = stream.inconsistent_overlaps;
        let outcome = stream.segment(seq, t.payload);
        ctx.stats.inconsistent_overlaps += (stream.inconsistent_overlaps - before) as u64;
        match outcome {
            Outcome::Progress => inspect(flow, dir, t.dst_port, ctx),
            Outcome::GaveUp(why) => {
                bump(&mut ctx.stats.reassembly_giveups, why.as_str());
                probe.done[d] = true;
            }
            Outcome::NoProgress => {}
        }
        if let Some(p) = flow.probe.as_mut() {
            if !p.done[d] && p.seen[d] >= MAX_TCP_PROBE_SEGMENTS {
                bump(&mut ctx.stats.reassembly_giveups, "limit");
                p.done[d] = true;
            }
        }
    }
    finish_if_done(flow);
}

/// Drops the probe once nothing more will be learned: the flow is then bypassed.
fn finish_if_done(flow: &mut FlowState) {
    let Some(probe) = flow.probe.as_ref() else { return };
    let client_done = probe.done[Direction::ToServer.index()];
    let server_done = probe.done[Direction::ToClient.index()];
    if client_done && (server_done || flow.app != App::Tls) {
        flow.probe = None;
    }
}

/// What the stream's new bytes mean; applied to the flow once the stream is no longer borrowed.
enum Found {
    Nothing,
    Wait,
    Done,
    GiveUp(&'static str),
    TlsError(&'static str),
    Client(Box<ClientHello>),
    Server(ServerHello),
    Http(Option<Vec<u8>>),
    WhatsApp,
    Ssh,
}

/// Looks at the reassembled bytes of one direction after they grew.
fn inspect(flow: &mut FlowState, dir: Direction, hello_dst_port: u16, ctx: &mut Ctx<'_>) {
    let FlowState { probe, details, app, client, packets, bytes, .. } = flow;
    let Some(probe) = probe.as_deref_mut() else { return };
    let d = dir.index();
    let details = details.get_or_insert_with(Default::default);

    if *app == App::Dns {
        dns_over_tcp(probe, details, dir, ctx);
        return;
    }
    let found = classify(probe, details, app, dir, ctx.scratch);
    match found {
        Found::Nothing => {}
        Found::Wait => {}
        Found::Done => probe.done[d] = true,
        Found::GiveUp(why) => {
            bump(&mut ctx.stats.reassembly_giveups, why);
            probe.done[d] = true;
        }
        Found::TlsError(e) => {
            bump(&mut ctx.stats.tls_errors, e);
            probe.done[d] = true;
        }
        Found::Client(ch) => {
            probe.done[d] = true;
            ctx.stats.client_hellos += 1;
            if dir == Direction::ToClient {
                // The side we took for the server sent a ClientHello: a capture that started
                // mid-connection fooled the port heuristic.
                *client = client.other();
                packets.swap(0, 1);
                bytes.swap(0, 1);
                probe.streams.swap(0, 1);
                probe.done.swap(0, 1);
                probe.skip.swap(0, 1);
                probe.seen.swap(0, 1);
                ctx.stats.orientation_fixed += 1;
            }
            *app = App::Tls;
            details.ech_grease = ch.ech && !ch.sni.as_deref().is_some_and(|s| ctx.cache.is_ech_public_name(s));
            // The segment that completed a ClientHello went to the server, whichever side the
            // flow had taken for it.
            if hello_dst_port == DOT_PORT {
                details.marker = Some(Marker::Dot);
            }
            details.tls.get_or_insert_with(TlsSummary::default).client =
                Some(Hello::fingerprinted(&ch, ja4::Protocol::Tcp));
        }
        Found::Server(sh) => {
            probe.done[d] = true;
            ctx.stats.server_hellos += 1;
            *app = App::Tls;
            details.tls.get_or_insert_with(TlsSummary::default).server = Some(sh);
        }
        Found::Http(host) => {
            probe.done[d] = true;
            *app = App::Http;
            details.http_host = host.map(Vec::into_boxed_slice);
        }
        Found::WhatsApp => {
            probe.done[d] = true;
            *app = App::WhatsApp;
            details.marker = Some(Marker::WhatsAppNoise);
        }
        Found::Ssh => {
            probe.done[d] = true;
            *app = App::Ssh;
        }
    }
}

/// Decides what the bytes of one direction are (after any proxy preamble).
fn classify(probe: &mut Probe, details: &mut Details, app: &mut App, dir: Direction, scratch: &mut Vec<u8>) -> Found {
    let d = dir.index();
    let Some(stream) = probe.streams[d].as_ref() else { return Found::Nothing };
    let full = stream.is_full();
    let all = stream.data();
    let mut data = &all[probe.skip[d].min(all.len())..];
    let wait = || if full { Found::GiveUp("limit") } else { Found::Wait };

    // An explicit proxy's plaintext preamble comes before the tunnelled handshake.
    if probe.skip[d] == 0 && data.first() != Some(&tls::CONTENT_TYPE_HANDSHAKE) {
        let preamble = match (dir, &details.proxy) {
            (Direction::ToServer, None) => Some(proxy::client(data)),
            (Direction::ToClient, Some(p)) => Some(proxy::server(p.kind, data)),
            _ => None,
        };
        match preamble {
            Some(Preamble::NeedMore) => return wait(),
            Some(Preamble::Done { kind, len, target }) => {
                if dir == Direction::ToServer {
                    details.proxy = Some(Box::new(ProxyInfo { kind, target }));
                    if kind == proxy::Kind::HttpConnect {
                        *app = App::Http;
                    }
                }
                probe.skip[d] = len;
                data = &data[len..];
                if data.is_empty() {
                    return Found::Wait;
                }
            }
            Some(Preamble::NotProxy) | None => {}
        }
    }

    if data.first() == Some(&tls::CONTENT_TYPE_HANDSHAKE) {
        return match tls::first_handshake(data, scratch) {
            RecordScan::NeedMore => wait(),
            RecordScan::NotTls(e) => Found::TlsError(e.as_str()),
            RecordScan::Complete { msg_len } => {
                let msg = &scratch[..msg_len];
                match msg.first() {
                    Some(&tls::HANDSHAKE_CLIENT_HELLO) => match ClientHello::parse(msg) {
                        Ok(ch) => Found::Client(Box::new(ch)),
                        Err(e) => Found::TlsError(e.as_str()),
                    },
                    Some(&tls::HANDSHAKE_SERVER_HELLO) => match ServerHello::parse(msg) {
                        Ok(sh) => Found::Server(sh),
                        Err(e) => Found::TlsError(e.as_str()),
                    },
                    _ => Found::TlsError("unexpected_handshake"),
                }
            }
        };
    }
    if dir == Direction::ToClient {
        return if data.starts_with(b"SSH-") && *app == App::Unknown { Found::Ssh } else { Found::Done };
    }
    if *app != App::Unknown && *app != App::Http {
        return Found::Done;
    }
    match http::request(data) {
        Request::NeedMore => return wait(),
        Request::Head { host } => return Found::Http(host),
        Request::NotHttp => {}
    }
    match marker::whatsapp(data) {
        Sniff::Yes => return Found::WhatsApp,
        Sniff::NeedMore => return wait(),
        Sniff::No => {}
    }
    if data.starts_with(b"SSH-") {
        return Found::Ssh;
    }
    Found::Done
}

/// DNS over TCP (RFC 7766): length-prefixed messages, several per connection.
fn dns_over_tcp(probe: &mut Probe, details: &mut Details, dir: Direction, ctx: &mut Ctx<'_>) {
    let d = dir.index();
    let Some(stream) = probe.streams[d].as_ref() else { return };
    let full = stream.is_full();
    let all = stream.data();
    loop {
        let data = &all[probe.skip[d].min(all.len())..];
        let Some(&[hi, lo]) = data.get(..2).map(|b| <&[u8; 2]>::try_from(b).ok()).flatten() else { break };
        let len = u16::from_be_bytes([hi, lo]) as usize;
        let Some(msg) = data.get(2..2 + len) else { break };
        probe.skip[d] += 2 + len;
        if !super::dns::message(details, msg, ctx) {
            probe.done = [true, true];
            return;
        }
    }
    if full {
        // The stream kept only its first bytes; later messages are not read.
        bump(&mut ctx.stats.reassembly_giveups, GiveUp::TooManyPending.as_str());
        probe.done[d] = true;
    }
}
