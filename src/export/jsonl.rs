//! JSON-lines records of `shadowtap inspect`.
//!
//! Field names are a contract (documented in the README): later versions add fields, never
//! rename or drop them. Every record has every field; absent values are `null`, `false` or `[]`.

use std::io::Write;

use serde::Serialize;

use super::bytes_to_text;
use crate::engine::FlowRecord;
use crate::proto::tls;

/// One `inspect` JSON line.
#[derive(Debug, Serialize)]
pub struct InspectLine<'a> {
    /// First packet, RFC 3339 UTC with microseconds.
    pub ts_start: String,
    /// Last packet.
    pub ts_end: String,
    /// Client `ip:port` (`[v6]:port`, RFC 5952).
    pub src: String,
    /// Server `ip:port`.
    pub dst: String,
    /// `tcp` or `udp`.
    pub transport: &'static str,
    /// Application protocol.
    pub app: &'static str,
    /// TLS server name (the outer name when ECH is used).
    pub sni: Option<String>,
    /// The SNI is an IP literal.
    pub sni_is_ip: bool,
    /// ALPN values the client offered, in its order.
    pub alpn: Vec<String>,
    /// Highest TLS version the client offered (what JA4 encodes).
    pub tls_version: Option<&'static str>,
    /// JA3 hash.
    pub ja3: Option<&'a str>,
    /// JA4.
    pub ja4: Option<&'a str>,
    /// The client sent an encrypted_client_hello extension.
    pub ech: bool,
    /// The client offered resumption (PSK or a session ticket).
    pub resumption: bool,
    /// Version the server chose (from its ServerHello).
    pub tls_negotiated: Option<&'static str>,
    /// Cipher suite the server chose, as `0x1301`.
    pub tls_cipher: Option<String>,
    /// ALPN value the server chose.
    pub alpn_negotiated: Option<String>,
    /// Explicit proxy the flow went through (`http-connect`, `socks4`, `socks5`).
    pub proxy: Option<&'static str>,
    /// Destination the client asked the proxy for (`host:port`).
    pub proxy_target: Option<String>,
    /// Packets client → server.
    pub packets_up: u64,
    /// Packets server → client.
    pub packets_down: u64,
    /// IP bytes client → server.
    pub bytes_up: u64,
    /// IP bytes server → client.
    pub bytes_down: u64,
    /// Outermost VLAN id.
    pub vlan: Option<u16>,
    /// Outermost tunnel (`gre`, `vxlan`, ...).
    pub tunnel: Option<&'static str>,
    /// Why the flow ended (`idle`, `closed`, `evicted`, `capture_end`).
    pub end: &'static str,
    /// File or interface the flow was read from.
    pub capture: &'a str,
}

impl<'a> InspectLine<'a> {
    /// Builds the line for `r`, read from `capture`.
    pub fn new(r: &'a FlowRecord, capture: &'a str) -> Self {
        // Exhaustive destructuring: a new record field cannot be forgotten here.
        let FlowRecord {
            seq: _,
            ts_start,
            ts_end,
            client,
            server,
            proto,
            app,
            tls: summary,
            proxy,
            packets_up,
            packets_down,
            bytes_up,
            bytes_down,
            vlan,
            tunnel,
            end,
        } = r;
        let ch = summary.as_ref().and_then(|s| s.client.as_ref());
        let sh = summary.as_ref().and_then(|s| s.server.as_ref());
        InspectLine {
            ts_start: ts_start.to_string(),
            ts_end: ts_end.to_string(),
            src: client.to_string(),
            dst: server.to_string(),
            transport: match proto {
                6 => "tcp",
                17 => "udp",
                _ => "other",
            },
            app: app.as_str(),
            sni: ch.and_then(|c| c.sni.as_deref()).map(bytes_to_text),
            sni_is_ip: ch.is_some_and(|c| c.sni_is_ip),
            alpn: ch.map(|c| c.alpn.iter().map(|a| bytes_to_text(a)).collect()).unwrap_or_default(),
            tls_version: ch.map(|c| tls::version_str(c.max_version())),
            ja3: summary.as_ref().and_then(|s| s.ja3.as_deref()),
            ja4: summary.as_ref().and_then(|s| s.ja4.as_deref()),
            ech: ch.is_some_and(|c| c.ech),
            resumption: ch.is_some_and(|c| c.psk || c.session_ticket),
            tls_negotiated: sh.map(|s| tls::version_str(s.version)),
            tls_cipher: sh.map(|s| format!("0x{:04x}", s.cipher)),
            alpn_negotiated: sh.and_then(|s| s.alpn.as_deref()).map(bytes_to_text),
            proxy: proxy.as_ref().map(|p| p.kind.as_str()),
            proxy_target: proxy.as_ref().and_then(|p| p.target.as_deref()).map(bytes_to_text),
            packets_up: *packets_up,
            packets_down: *packets_down,
            bytes_up: *bytes_up,
            bytes_down: *bytes_down,
            vlan: *vlan,
            tunnel: tunnel.map(|t| t.as_str()),
            end: end.as_str(),
            capture,
        }
    }
}

/// Writes one record as a JSON line.
///
/// # Errors
/// The writer's I/O error (e.g. a closed pipe).
pub fn write(out: &mut impl Write, r: &FlowRecord, capture: &str) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, &InspectLine::new(r, capture))?;
    out.write_all(b"\n")
}
