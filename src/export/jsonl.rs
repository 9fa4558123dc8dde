//! JSON-lines records of `shadowtap inspect`.
//!
//! Field names are a contract (documented in docs/inspect.md): later versions add fields, never
//! rename or drop them. Every record has every field; absent values are `null`, `false` or `[]`.

use std::io::Write;

use serde::Serialize;

use super::bytes_to_text;
use crate::classify::catalog::Catalog;
use crate::classify::Attribution;
use crate::engine::{AnswerData, DnsAnswer, FlowRecord};
use crate::proto::{quic, tls};

/// One DNS answer in a record.
#[derive(Debug, Serialize)]
pub struct AnswerLine {
    /// Owner name.
    pub name: String,
    /// Record type (`A`, `AAAA`, `CNAME`, `HTTPS`, ...).
    #[serde(rename = "type")]
    pub rtype: String,
    /// TTL in seconds.
    pub ttl: u32,
    /// Address, target name, or HTTPS/SVCB summary.
    pub data: String,
}

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
    /// TLS server name (TCP or QUIC; the outer name when ECH is used).
    pub sni: Option<String>,
    /// The SNI is an IP literal.
    pub sni_is_ip: bool,
    /// ALPN values the client offered, in its order.
    pub alpn: Vec<String>,
    /// Highest TLS version the client offered (what JA4 encodes).
    pub tls_version: Option<&'static str>,
    /// JA3 hash.
    pub ja3: Option<&'a str>,
    /// JA4 (`t…` over TCP, `q…` over QUIC).
    pub ja4: Option<&'a str>,
    /// The client sent an encrypted_client_hello extension.
    pub ech: bool,
    /// That extension is GREASE: its outer SNI is no ECH public name.
    pub ech_grease: bool,
    /// The client offered resumption (PSK or a session ticket).
    pub resumption: bool,
    /// Why the client's hello could be read only up to its server_name (`malformed`, ...);
    /// null for a whole hello. A partial hello has no JA3/JA4.
    pub tls_error: Option<&'static str>,
    /// Version the server chose (from its ServerHello).
    pub tls_negotiated: Option<&'static str>,
    /// Cipher suite the server chose, as `0x1301`.
    pub tls_cipher: Option<String>,
    /// ALPN value the server chose.
    pub alpn_negotiated: Option<String>,
    /// QUIC version of the client's Initial (`v1`, `v2`, `draft-29`, `Q046`, ...).
    pub quic_version: Option<String>,
    /// Host header of the first plain HTTP request.
    pub http_host: Option<String>,
    /// Explicit proxy the flow went through (`http-connect`, `socks4`, `socks5`).
    pub proxy: Option<&'static str>,
    /// Destination the client asked the proxy for (`host:port`).
    pub proxy_target: Option<String>,
    /// Protocol marker (`whatsapp-noise`, `stun`, `dot`, `doq`).
    pub marker: Option<&'static str>,
    /// STUN SOFTWARE attribute.
    pub stun_software: Option<String>,
    /// STUN REALM attribute.
    pub stun_realm: Option<String>,
    /// DNS query names of a DNS flow, as on the wire.
    pub dns_queries: Vec<String>,
    /// DNS answers of a DNS flow.
    pub dns_answers: Vec<AnswerLine>,
    /// Response code of the last DNS response (`NOERROR`, `NXDOMAIN`, ... or the number).
    pub dns_rcode: Option<String>,
    /// Names the client looked up that resolved to the server's address.
    pub names_from_dns: Vec<String>,
    /// Which signal named the destination (`sni`, `quic_sni`, `http_host`, `connect`, `dns`,
    /// `marker`), or null.
    pub signal: Option<&'static str>,
    /// Why the destination stayed unnamed, or null.
    pub unnamed: Option<&'static str>,
    /// Why the flow is suspect of evasion (`overlap_conflict`, `syn_data_unacked`,
    /// `decoy_hello`, `decoy_initial`, `fragment_overlap`, `quic_junk`); usually empty.
    pub evasion: Vec<&'static str>,
    /// Packets client → server.
    pub packets_up: u64,
    /// Packets server → client.
    pub packets_down: u64,
    /// IP bytes client → server.
    pub bytes_up: u64,
    /// IP bytes server → client.
    pub bytes_down: u64,
    /// The server answered (`packets_down > 0`, `FlowRecord::answered`). An unanswered flow
    /// keeps its destination's facts (service, category, status) here, but `run`, `survey` and
    /// reports count it apart, never as use.
    pub answered: bool,
    /// Outermost VLAN id.
    pub vlan: Option<u16>,
    /// Outermost tunnel (`gre`, `vxlan`, ...).
    pub tunnel: Option<&'static str>,
    /// Catalog service id (with `--config`).
    pub service: Option<&'a str>,
    /// Channel of the service (`chat`, `media`, `calls`, `default`, ...).
    pub channel: Option<&'a str>,
    /// Category of the service.
    pub category: Option<&'a str>,
    /// Which signal matched the catalog (`sni`, `quic_sni`, `http_host`, `connect`, `dns`,
    /// `marker`, `ja4`, `cidr`, `association`, `asn`).
    pub service_signal: Option<&'static str>,
    /// Tenant of a corporate service, when the name shows one.
    pub tenant: Option<&'a str>,
    /// The client's department (`unmapped` when in none).
    pub department: Option<&'a str>,
    /// Policy status: `sanctioned`, `exempted`, `unsanctioned`, `unknown`.
    pub status: Option<&'static str>,
    /// Country of the server's address (with a GeoLite2-Country format database).
    pub server_country: Option<&'a str>,
    /// Why the flow ended (`idle`, `closed`, `evicted`, `capture_end`).
    pub end: &'static str,
    /// File or interface the flow was read from.
    pub capture: &'a str,
}

/// DNS response code mnemonic (RFC 1035 §4.1.1, RFC 6895 §2.3).
fn rcode_name(rcode: u16) -> String {
    match rcode {
        0 => "NOERROR".into(),
        1 => "FORMERR".into(),
        2 => "SERVFAIL".into(),
        3 => "NXDOMAIN".into(),
        4 => "NOTIMP".into(),
        5 => "REFUSED".into(),
        16 => "BADVERS".into(),
        n => n.to_string(),
    }
}

/// A DNS name for output: the root name (empty on the wire) is written `.` as in zone files.
fn dns_name(n: &[u8]) -> String {
    if n.is_empty() {
        ".".to_string()
    } else {
        bytes_to_text(n)
    }
}

fn answer_line(a: DnsAnswer<'_>) -> AnswerLine {
    AnswerLine {
        name: dns_name(a.name),
        rtype: crate::proto::dns::type_str(a.rtype).into_owned(),
        ttl: a.ttl,
        data: answer_text(&a.data),
    }
}

/// An answer's data as text: the address, the target name, or an HTTPS/SVCB summary
/// (`1 . alpn=h3,h2 ech`).
fn answer_text(d: &AnswerData<'_>) -> String {
    match d {
        AnswerData::Addr(a) => a.to_string(),
        AnswerData::Name(n) => bytes_to_text(n),
        AnswerData::Service { priority, target, alpn, ech } => {
            let mut text = format!("{priority} {}", bytes_to_text(target));
            if !alpn.is_empty() {
                text.push_str(" alpn=");
                text.push_str(&alpn.iter().map(bytes_to_text).collect::<Vec<_>>().join(","));
            }
            if *ech {
                text.push_str(" ech");
            }
            text
        }
        AnswerData::Other => String::new(),
    }
}

/// A record's attribution with the catalog it refers to.
pub type Attributed<'a> = Option<(&'a Attribution, &'a Catalog)>;

impl<'a> InspectLine<'a> {
    /// Builds the line for `r`, read from `capture`, with its attribution if a configuration
    /// was given.
    pub fn new(r: &'a FlowRecord, capture: &'a str, attributed: Attributed<'a>) -> Self {
        // Exhaustive destructuring: a new record field cannot be forgotten here.
        let FlowRecord {
            seq: _,
            ts_start,
            ts_end,
            client,
            server,
            proto,
            app,
            details,
            signal,
            unnamed,
            packets_up,
            packets_down,
            bytes_up,
            bytes_down,
            vlan,
            tunnel,
            end,
        } = r;
        let d = details.as_deref();
        let t = d.and_then(|d| d.tls.as_ref());
        let ch = t.and_then(|t| t.client.as_ref());
        let sh = t.and_then(|t| t.server.as_ref());
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
            tls_version: ch.and_then(|c| c.version).map(tls::version_str),
            ja3: ch.and_then(|c| c.ja3.as_deref()),
            ja4: ch.and_then(|c| c.ja4.as_deref()),
            ech: ch.is_some_and(|c| c.ech),
            ech_grease: d.is_some_and(|d| d.ech_grease),
            resumption: ch.is_some_and(|c| c.resumption),
            tls_error: ch.and_then(|c| c.error),
            tls_negotiated: sh.map(|s| tls::version_str(s.version)),
            tls_cipher: sh.map(|s| format!("0x{:04x}", s.cipher)),
            alpn_negotiated: sh.and_then(|s| s.alpn.as_deref()).map(bytes_to_text),
            quic_version: d.and_then(|d| d.quic_version).map(|v| quic::version_str(v.get())),
            http_host: d.and_then(|d| d.http_host.as_deref()).map(bytes_to_text),
            proxy: d.and_then(|d| d.proxy.as_ref()).map(|p| p.kind.as_str()),
            proxy_target: d.and_then(|d| d.proxy.as_ref()).and_then(|p| p.target.as_deref()).map(bytes_to_text),
            marker: d.and_then(|d| d.marker).map(|m| m.as_str()),
            stun_software: d.and_then(|d| d.stun.as_ref()).and_then(|s| s.software.as_deref()).map(bytes_to_text),
            stun_realm: d.and_then(|d| d.stun.as_ref()).and_then(|s| s.realm.as_deref()).map(bytes_to_text),
            dns_queries: d
                .and_then(|d| d.dns.as_ref())
                .map(|s| s.queries().map(dns_name).collect())
                .unwrap_or_default(),
            dns_answers: d
                .and_then(|d| d.dns.as_ref())
                .map(|s| s.answers().map(answer_line).collect())
                .unwrap_or_default(),
            dns_rcode: d.and_then(|d| d.dns.as_ref()).and_then(|s| s.rcode).map(rcode_name),
            names_from_dns: d.map(|d| d.names_from_dns.iter().map(|n| bytes_to_text(n)).collect()).unwrap_or_default(),
            signal: signal.map(|s| s.as_str()),
            unnamed: unnamed.map(|u| u.as_str()),
            evasion: d.map(|d| d.evasion.labels().collect()).unwrap_or_default(),
            packets_up: *packets_up,
            packets_down: *packets_down,
            bytes_up: *bytes_up,
            bytes_down: *bytes_down,
            answered: r.answered(),
            vlan: *vlan,
            tunnel: tunnel.map(|t| t.as_str()),
            service: attributed.and_then(|(a, c)| a.target.map(|t| c.service(t).id.as_str())),
            channel: attributed.and_then(|(a, c)| a.target.map(|t| c.channel(t))),
            category: attributed.and_then(|(a, c)| a.target.map(|t| c.service(t).category.as_str())),
            service_signal: attributed.and_then(|(a, _)| a.signal.map(|s| s.as_str())),
            tenant: attributed.and_then(|(a, _)| a.tenant.as_deref()),
            department: attributed.map(|(a, _)| a.department.as_str()),
            status: attributed.and_then(|(a, _)| a.status.map(|s| s.as_str())),
            server_country: attributed.and_then(|(a, _)| a.server_country.as_deref()),
            end: end.as_str(),
            capture,
        }
    }
}

/// Writes one record as a JSON line.
///
/// # Errors
/// The writer's I/O error (e.g. a closed pipe).
pub fn write(out: &mut impl Write, r: &FlowRecord, capture: &str, attributed: Attributed<'_>) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, &InspectLine::new(r, capture, attributed))?;
    out.write_all(b"\n")
}
