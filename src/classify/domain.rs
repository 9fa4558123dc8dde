//! Registrable domains of names outside the catalog: what the discovery of unknown services
//! counts.
//!
//! A flow whose destination was named but matched no catalog entry is counted under
//! `_uncatalogued`; to find the services the catalog lacks, its name is reduced to the
//! registrable domain (the public suffix plus one label: `www.example.co.uk` →
//! `example.co.uk`, `a.b.github.io` → `b.github.io`) with the public suffix list compiled into
//! the `psl` crate. Only the name the flow was named by is used ([`flow_domain`]); an unnamed
//! flow has no domain, and an address never becomes one. Pure: no file, no clock.

use crate::engine::{App, FlowRecord, Signal};

/// Longest name a domain can come from (RFC 1035: 253 characters without the trailing dot).
pub const MAX_NAME_LEN: usize = 253;

/// The registrable domain of a host name, lowercased, without a trailing dot.
///
/// None for an empty or overlong name, an IP literal (dotted, bracketed or not), a name with a
/// character no host name has or an empty label, a single label (`localhost`), a name that is
/// itself a public suffix (`co.uk`), and a name under a suffix the public suffix list does not
/// know (`server.corp.internal`: internal names are not services to discover, and may name a
/// host).
pub fn registrable_domain(name: &[u8]) -> Option<String> {
    let name = name.strip_suffix(b".").unwrap_or(name);
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return None;
    }
    if !name.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.') {
        return None;
    }
    if name.split(|&b| b == b'.').any(<[u8]>::is_empty) {
        return None;
    }
    // Every character is ASCII: a dotted-decimal name is an IPv4 literal (colons and brackets
    // were refused above).
    if name.iter().all(|&b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let lower = name.to_ascii_lowercase();
    let d = psl::domain(&lower)?;
    if !d.suffix().is_known() {
        return None;
    }
    std::str::from_utf8(d.as_bytes()).ok().map(str::to_string)
}

/// The registrable domain of the name `r` was named by: its SNI (TLS or QUIC, unless real ECH
/// hid the destination), HTTP Host, proxy target or the first DNS-correlated name, following
/// [`FlowRecord::signal`]. None for an unnamed flow, a marker, a DNS flow (it goes to a
/// resolver) or a name that has no registrable domain.
pub fn flow_domain(r: &FlowRecord) -> Option<String> {
    let d = r.details.as_deref()?;
    let name: &[u8] = match r.signal? {
        Signal::Sni | Signal::QuicSni => d.client_hello().filter(|_| !d.real_ech())?.sni.as_deref()?,
        Signal::HttpHost => super::strip_port(d.http_host.as_deref()?),
        Signal::Connect => super::strip_port(d.proxy.as_ref()?.target.as_deref()?),
        Signal::Dns if r.app != App::Dns => d.names_from_dns.first()?,
        Signal::Dns | Signal::Marker => return None,
    };
    registrable_domain(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rd(s: &str) -> Option<String> {
        registrable_domain(s.as_bytes())
    }

    #[test]
    fn names_reduce_to_their_registrable_domain() {
        assert_eq!(rd("www.example.co.uk").as_deref(), Some("example.co.uk"));
        assert_eq!(rd("example.com").as_deref(), Some("example.com"));
        assert_eq!(rd("a.b.github.io").as_deref(), Some("b.github.io"), "github.io is a public suffix");
        assert_eq!(rd("WWW.Example.COM.").as_deref(), Some("example.com"), "lowercased, trailing dot stripped");
        assert_eq!(rd("cdn-1.static_x.example.org").as_deref(), Some("example.org"));
    }

    #[test]
    fn addresses_suffixes_and_malformed_names_have_none() {
        for bad in [
            "", ".", "localhost", "localhost.", "10.0.0.1", "192.168.1.1.", "::1", "[2001:db8::1]", "2001:db8::1", "co.uk", "com",
            "github.io", "a..example.com", ".example.com", "exa mple.com", "example.com:443", "héllo.example.com",
            "server.corp.internal", "printer.lan",
        ] {
            assert_eq!(rd(bad), None, "{bad:?}");
        }
        assert_eq!(rd(&"a".repeat(300)), None);
        assert_eq!(registrable_domain(&[0xff, b'.', b'c', b'o', b'm']), None);
    }

    #[test]
    fn the_naming_name_gives_the_domain_and_an_unnamed_flow_none() {
        use crate::engine::record::{Details, Hello, ProxyInfo, TlsSummary};
        let base = crate::aggregate::tests_support::flow("10.0.0.1:1000", 1_000_000);
        let with = |signal: Option<Signal>, d: Details| crate::engine::FlowRecord { signal, details: Some(Box::new(d)), ..base.clone() };
        let hello = |sni: &str| TlsSummary { client: Some(Hello { sni: Some(sni.as_bytes().into()), ..Hello::default() }), ..TlsSummary::default() };
        let sni = with(Some(Signal::Sni), Details { tls: Some(hello("files.newshare.example.net")), ..Details::default() });
        assert_eq!(flow_domain(&sni).as_deref(), Some("example.net"));
        let host = with(Some(Signal::HttpHost), Details { http_host: Some(b"upload.example.org:8080".as_slice().into()), ..Details::default() });
        assert_eq!(flow_domain(&host).as_deref(), Some("example.org"));
        let proxy = ProxyInfo { kind: crate::proto::proxy::Kind::HttpConnect, target: Some(b"chat.example.com:443".to_vec()) };
        let connect = with(Some(Signal::Connect), Details { proxy: Some(Box::new(proxy)), ..Details::default() });
        assert_eq!(flow_domain(&connect).as_deref(), Some("example.com"));
        let dns = with(Some(Signal::Dns), Details { names_from_dns: vec![b"api.example.io".as_slice().into()].into(), ..Details::default() });
        assert_eq!(flow_domain(&dns).as_deref(), Some("example.io"));
        let literal = with(Some(Signal::HttpHost), Details { http_host: Some(b"192.0.2.7:80".as_slice().into()), ..Details::default() });
        assert_eq!(flow_domain(&literal), None, "an address is never a domain");
        assert_eq!(flow_domain(&base), None, "an unnamed flow has no domain");
        let hidden = with(None, Details { tls: Some(hello("x.example.com")), ..Details::default() });
        assert_eq!(flow_domain(&hidden), None, "no naming signal, no domain");
    }
}
