//! Identification of TCP flows from the reassembled first bytes of each direction: proxy
//! preambles, TLS hellos, HTTP requests, WhatsApp's preface, SSH banners, DNS over TCP.

use super::record::{bump, Details, Evasion, Hello, ProxyInfo, TlsSummary};
use super::{App, Ctx, FlowState, Probe, MAX_PROBE_STREAM_BYTES, MAX_SEGMENTS_AFTER_HELLO, MIDSTREAM_PATIENCE};
use crate::decode::{TcpFlags, TcpSegment};
use crate::fingerprint::ja4;
use crate::flow::reassembly::Outcome;
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
    let ack = t.flags.contains(TcpFlags::ACK);
    if flow.app == App::Unknown && (t.src_port == 53 || t.dst_port == 53) {
        flow.app = App::Dns;
    }

    // Data in the client's SYN (TCP Fast Open, RFC 7413) counts only once the SYN-ACK
    // acknowledges it: a server that refuses it acknowledges the SYN alone, and the client
    // sends the data again. Unacknowledged SYN data is a classic decoy.
    if syn && ack && dir == Direction::ToClient {
        if let Some((isn, data)) = probe.syn_data.take() {
            if t.ack == isn.wrapping_add(1).wrapping_add(data.len() as u32) {
                feed(flow, Direction::ToServer, isn.wrapping_add(1), &data, t.src_port, ctx);
            } else {
                flow.details().evasion.insert(Evasion::SYN_DATA_UNACKED);
            }
        }
    }
    let Some(probe) = flow.probe.as_mut() else { return };
    if t.flags.contains(TcpFlags::FIN) {
        if let Some(s) = probe.streams.get_mut(d) {
            let seq = if syn { t.seq.wrapping_add(1) } else { t.seq };
            s.fin(seq.wrapping_add(t.payload.len() as u32));
        }
    }
    // The peer's ACK tells whether bytes we are waiting for were lost to the capture, and
    // whether a hello already read was accepted (after which nothing can replace it).
    if ack && !probe.done[o] {
        if let Some(s) = probe.streams.get_mut(o) {
            if let Outcome::GaveUp(why) = s.peer_ack(t.ack) {
                bump(&mut ctx.stats.reassembly_giveups, why.as_str());
                probe.done[o] = true;
            } else if probe.hello_end[o].is_some_and(|end| s.acked_position() >= end) {
                probe.done[o] = true;
            }
        }
    }
    let Some(probe) = flow.probe.as_mut() else { return };
    if !probe.done[d] && (syn || !t.payload.is_empty()) {
        if syn {
            probe.streams.syn(d, t.seq);
        }
        if !t.payload.is_empty() {
            probe.seen[d] = probe.seen[d].saturating_add(1);
            if syn && !ack && dir == Direction::ToServer {
                if probe.syn_data.is_none() {
                    probe.syn_data = Some((t.seq, t.payload.into()));
                }
            } else {
                if dir == Direction::ToServer {
                    if let Some((isn, data)) = probe.syn_data.take() {
                        if t.seq == isn.wrapping_add(1) {
                            // The client sends again what its SYN carried: the SYN's was refused.
                            flow.details().evasion.insert(Evasion::SYN_DATA_UNACKED);
                        } else {
                            // The client goes on after its SYN data: the server took it.
                            feed(flow, dir, isn.wrapping_add(1), &data, t.dst_port, ctx);
                        }
                    }
                }
                let seq = if syn { t.seq.wrapping_add(1) } else { t.seq };
                feed(flow, dir, seq, t.payload, t.dst_port, ctx);
            }
        }
    }
    finish_if_done(flow);
}

/// Adds one segment's bytes to a direction's stream and reads what they complete.
fn feed(flow: &mut FlowState, dir: Direction, seq: u32, payload: &[u8], hello_dst_port: u16, ctx: &mut Ctx<'_>) {
    let Some(probe) = flow.probe.as_mut() else { return };
    let d = dir.index();
    if probe.done[d] {
        return;
    }
    let stream = probe.streams.get_or_new(d, ctx.config.reassembly_limit);
    let before = stream.inconsistent_overlaps;
    let outcome = stream.segment(seq, payload);
    let conflicts = stream.inconsistent_overlaps - before;
    let replaced = stream.take_replaced();
    let read_too_far = stream.position() >= MAX_PROBE_STREAM_BYTES;
    let waiting = probe.hello_end[d].is_some();
    if waiting {
        probe.after_hello[d] = probe.after_hello[d].saturating_add(1);
    }
    if replaced {
        probe.readers[d].reset();
    }
    match outcome {
        // The hello is read; bytes after it change nothing while it waits for the peer's ACK.
        Outcome::Progress if waiting && !replaced => {}
        Outcome::Progress => inspect(flow, dir, hello_dst_port, ctx),
        Outcome::GaveUp(why) => {
            bump(&mut ctx.stats.reassembly_giveups, why.as_str());
            probe.done[d] = true;
        }
        Outcome::NoProgress => {}
    }
    if conflicts > 0 {
        ctx.stats.inconsistent_overlaps += u64::from(conflicts);
        flow.details().evasion.insert(Evasion::OVERLAP_CONFLICT);
    }
    if let Some(p) = flow.probe.as_mut() {
        // After the client's direction swapped sides, the hello is at the client's index.
        let h = Direction::ToServer.index();
        if p.hello_end[h].is_some() && !p.done[h] && p.after_hello[h] >= MAX_SEGMENTS_AFTER_HELLO {
            p.done[h] = true;
        }
        if !p.done[d] && read_too_far {
            bump(&mut ctx.stats.reassembly_giveups, "limit");
            p.done[d] = true;
        }
    }
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
    /// A hello (in `Ctx::hello`, or boxed when read only partly), and the error after its
    /// server_name when only part of it could be read.
    Client(Option<Box<ClientHello>>, Option<&'static str>),
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
    // Without a SYN the first bytes seen may not be the first bytes sent (two segments
    // swapped): unrecognised bytes get a few segments before they end the probe.
    let patient = probe.streams.get(d).is_some_and(|s| !s.is_anchored()) && probe.seen[d] < MIDSTREAM_PATIENCE;
    let found = classify(probe, details, app, dir, ctx.hello);
    match found {
        Found::Nothing => {}
        Found::Wait => {}
        Found::Done if patient => {}
        Found::Done => probe.done[d] = true,
        Found::GiveUp(why) => {
            bump(&mut ctx.stats.reassembly_giveups, why);
            probe.done[d] = true;
        }
        Found::TlsError(e) => {
            bump(&mut ctx.stats.tls_errors, e);
            probe.done[d] = true;
        }
        Found::Client(partial, error) => {
            // The reused hello is moved out for the while (its lists keep their memory) so that
            // `ctx` stays free to use; it goes back below.
            let scratch = std::mem::take(ctx.hello);
            let ch: &ClientHello = match &partial {
                Some(b) => b,
                None => &scratch,
            };
            let had = details.client_hello().map(|h| h.sni.clone());
            if had.is_none() {
                ctx.stats.client_hellos += 1;
            }
            if dir == Direction::ToClient {
                // The side we took for the server sent a ClientHello: a capture that started
                // mid-connection fooled the port heuristic.
                *client = client.other();
                packets.swap(0, 1);
                bytes.swap(0, 1);
                probe.streams.swap();
                probe.done.swap(0, 1);
                probe.skip.swap(0, 1);
                probe.seen.swap(0, 1);
                probe.readers.swap(0, 1);
                probe.hello_end.swap(0, 1);
                probe.after_hello.swap(0, 1);
                ctx.stats.orientation_fixed += 1;
            }
            let h = Direction::ToServer.index();
            if had.as_ref().is_some_and(|sni| *sni != ch.sni.as_deref().map(Box::from)) {
                // Two different hellos at the same place in the stream: the one kept is the
                // last before the server acknowledged it (see `flow::reassembly`).
                details.evasion.insert(Evasion::DECOY_HELLO);
            }
            // A hello counts once the server acknowledged it: until then a conflicting
            // retransmission may replace it.
            match probe.streams.get(h) {
                Some(s) if s.acked_position() < s.position() => probe.hello_end[h] = Some(s.position()),
                _ => probe.done[h] = true,
            }
            *app = App::Tls;
            details.ech_grease = ctx.hello_ech(details.ech_grease, ch.ech, ch.sni.as_deref());
            // The segment that completed a ClientHello went to the server, whichever side the
            // flow had taken for it.
            if hello_dst_port == DOT_PORT {
                details.marker = Some(Marker::Dot);
            }
            let hello = match error {
                None => Hello::fingerprinted(ch, ja4::Protocol::Tcp),
                Some(e) => {
                    bump(&mut ctx.stats.tls_errors, e);
                    Hello::partial(ch, e)
                }
            };
            details.tls.get_or_insert_with(TlsSummary::default).client = Some(hello);
            *ctx.hello = scratch;
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
fn classify(probe: &mut Probe, details: &mut Details, app: &mut App, dir: Direction, hello: &mut ClientHello) -> Found {
    let d = dir.index();
    let Some(stream) = probe.streams.get(d) else { return Found::Nothing };
    let full = stream.is_full();
    let limit = stream.limit();
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
        let reader = &mut probe.readers[d];
        let scan = reader.advance(data);
        if scan == RecordScan::NeedMore && all.len() > limit / 2 && reader.scanned() > 0 {
            // Half the window holds records already read (a hello cut into tiny records):
            // slide past them before the window fills and cuts a segment, so that the bound is
            // the hello's size, not its record headers'. A hello of normal records never slides
            // (which keeps it whole for the decoy check).
            let n = reader.scanned();
            reader.slide(n);
            let skip = std::mem::take(&mut probe.skip[d]);
            if let Some(s) = probe.streams.get_mut(d) {
                s.consume(skip + n);
            }
            return Found::Wait;
        }
        let found = match scan {
            RecordScan::NeedMore => wait(),
            RecordScan::NotTls(e) => Found::TlsError(e.as_str()),
            RecordScan::Complete { .. } => {
                let msg = reader.message();
                match msg.first() {
                    Some(&tls::HANDSHAKE_CLIENT_HELLO) => match hello.parse_into(msg) {
                        Ok(()) => Found::Client(None, None),
                        Err(e) => match ClientHello::parse_partial(msg) {
                            Some(ch) => Found::Client(Some(Box::new(ch)), Some(e.as_str())),
                            None => Found::TlsError(e.as_str()),
                        },
                    },
                    Some(&tls::HANDSHAKE_SERVER_HELLO) => match ServerHello::parse(msg) {
                        Ok(sh) => Found::Server(sh),
                        Err(e) => Found::TlsError(e.as_str()),
                    },
                    _ => Found::TlsError("unexpected_handshake"),
                }
            }
        };
        if matches!(scan, RecordScan::Complete { .. }) {
            // The message is parsed: free its copy (a conflicting retransmission that replaces
            // the hello makes the reader start over from the stream anyway).
            *reader = tls::HandshakeReader::default();
        }
        return found;
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
    let Some(stream) = probe.streams.get(d) else { return };
    let full = stream.is_full();
    let all = stream.data();
    loop {
        let data = &all[probe.skip[d].min(all.len())..];
        let Some(&[hi, lo]) = data.get(..2).and_then(|b| <&[u8; 2]>::try_from(b).ok()) else { break };
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
        bump(&mut ctx.stats.reassembly_giveups, "limit");
        probe.done[d] = true;
    }
}
