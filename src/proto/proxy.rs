//! Explicit-proxy preambles: HTTP `CONNECT`, SOCKS4/4a and SOCKS5 (RFC 1928, RFC 1929).
//!
//! In enterprise networks much web traffic goes through an explicit proxy: the TCP flow the
//! sensor sees runs to the proxy, and the TLS ClientHello (with its SNI) follows a short
//! plaintext preamble that names the real destination. These parsers measure that preamble in
//! each direction so the engine can skip it and read the tunnelled handshake, and they keep the
//! target the client asked for (a destination name in its own right).
//!
//! All parsers are pure functions over the first bytes of a direction. They return
//! [`Preamble::NeedMore`] while the preamble may still be incomplete; the caller bounds how much
//! it waits by its reassembly limit.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic))]

/// Longest HTTP CONNECT request or response head read (bytes up to the blank line).
pub const MAX_HTTP_HEAD: usize = 8 * 1024;

/// Longest proxy target kept (host name and port).
pub const MAX_TARGET_LEN: usize = 261;

/// Kind of explicit proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// HTTP `CONNECT host:port` (RFC 9110 §9.3.6).
    HttpConnect,
    /// SOCKS version 4 or 4a.
    Socks4,
    /// SOCKS version 5 (RFC 1928).
    Socks5,
}

impl Kind {
    /// Label used in output.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::HttpConnect => "http-connect",
            Kind::Socks4 => "socks4",
            Kind::Socks5 => "socks5",
        }
    }
}

/// The result of measuring a preamble.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Preamble {
    /// Too few bytes to decide.
    NeedMore,
    /// These bytes do not start a proxy preamble (or the proxy refused the tunnel).
    NotProxy,
    /// A complete preamble of `len` bytes; the tunnelled stream starts after it.
    Done {
        /// The proxy protocol.
        kind: Kind,
        /// Bytes of preamble in this direction.
        len: usize,
        /// Destination the client asked for (`host:port`), client direction only.
        target: Option<Vec<u8>>,
    },
}

/// Measures the client's preamble.
pub fn client(data: &[u8]) -> Preamble {
    match data.first() {
        Some(b'C') => http_connect_request(data),
        Some(4) => socks4_request(data),
        Some(5) => socks5_request(data),
        Some(_) => Preamble::NotProxy,
        None => Preamble::NeedMore,
    }
}

/// Measures the proxy's reply preamble, knowing which protocol the client spoke.
pub fn server(kind: Kind, data: &[u8]) -> Preamble {
    match kind {
        Kind::HttpConnect => http_connect_response(data),
        Kind::Socks4 => socks4_reply(data),
        Kind::Socks5 => socks5_reply(data),
    }
}

/// Length of an HTTP head that starts with `prefix` (through its blank line, within
/// [`MAX_HTTP_HEAD`]).
fn http_head(data: &[u8], prefix: &[u8]) -> Result<usize, Preamble> {
    // The bytes so far agree with `prefix` (as far as both go).
    if !data.starts_with(prefix) && !prefix.starts_with(data) {
        return Err(Preamble::NotProxy);
    }
    let window = data.get(..MAX_HTTP_HEAD).unwrap_or(data);
    match window.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => Ok(i + 4),
        None if data.len() >= MAX_HTTP_HEAD => Err(Preamble::NotProxy),
        None => Err(Preamble::NeedMore),
    }
}

fn http_connect_request(data: &[u8]) -> Preamble {
    const METHOD: &[u8] = b"CONNECT ";
    let len = match http_head(data, METHOD) {
        Ok(len) => len,
        Err(p) => return p,
    };
    // The head starts with METHOD and ends after its blank line, so it is longer than METHOD;
    // an empty line would give an empty target, refused below.
    let line = data.get(METHOD.len()..len).unwrap_or_default();
    let target: Vec<u8> = line.iter().take_while(|&&b| b != b' ' && b != b'\r').copied().collect();
    if target.is_empty() || target.len() > MAX_TARGET_LEN {
        return Preamble::NotProxy;
    }
    Preamble::Done { kind: Kind::HttpConnect, len, target: Some(target) }
}

fn http_connect_response(data: &[u8]) -> Preamble {
    let len = match http_head(data, b"HTTP/1.") {
        Ok(len) => len,
        Err(p) => return p,
    };
    // "HTTP/1.x 2xx": only a successful reply opens the tunnel.
    if data.get(9) != Some(&b'2') {
        return Preamble::NotProxy;
    }
    Preamble::Done { kind: Kind::HttpConnect, len, target: None }
}

/// SOCKS4: VN=4 CD=1 DSTPORT(2) DSTIP(4) USERID NUL; SOCKS4a adds HOST NUL when DSTIP is 0.0.0.x.
fn socks4_request(data: &[u8]) -> Preamble {
    // The fixed part as an array, so its fields are read at offsets that cannot fail.
    let Some(&[_, cd, p0, p1, a, b, c, d]) = data.first_chunk::<8>() else {
        return if data.get(1).is_some_and(|&cd| cd != 1) { Preamble::NotProxy } else { Preamble::NeedMore };
    };
    if cd != 1 {
        return Preamble::NotProxy;
    }
    let port = u16::from_be_bytes([p0, p1]);
    let Some(user_end) = find_nul(data, 8) else {
        return if data.len() > 8 + 256 { Preamble::NotProxy } else { Preamble::NeedMore };
    };
    let mut len = user_end + 1;
    let target = if a == 0 && b == 0 && c == 0 && d != 0 {
        let Some(host_end) = find_nul(data, len) else {
            return if data.len() > len + 256 { Preamble::NotProxy } else { Preamble::NeedMore };
        };
        // find_nul returns an index at or after `len`, within `data`, and at most 255 bytes on.
        let host = data.get(len..host_end).unwrap_or_default();
        len = host_end + 1;
        // The host's bytes as sent, like SOCKS5's: text is made at the output boundary. (A lossy
        // UTF-8 conversion here tripled invalid bytes, past MAX_TARGET_LEN; found by fuzzing.)
        let mut target = host.to_vec();
        target.extend_from_slice(format!(":{port}").as_bytes());
        target
    } else {
        format!("{a}.{b}.{c}.{d}:{port}").into_bytes()
    };
    Preamble::Done { kind: Kind::Socks4, len, target: Some(target) }
}

fn socks4_reply(data: &[u8]) -> Preamble {
    match data {
        [0, 0x5a, _, _, _, _, _, _, ..] => Preamble::Done { kind: Kind::Socks4, len: 8, target: None },
        d if d.len() < 8 && d.first().is_none_or(|&b| b == 0) => Preamble::NeedMore,
        _ => Preamble::NotProxy,
    }
}

fn find_nul(data: &[u8], from: usize) -> Option<usize> {
    data.get(from..)?.iter().take(256).position(|&b| b == 0).map(|i| from + i)
}

/// SOCKS5 address (ATYP, address, port) at `at`: its length and `host:port` text.
fn socks5_addr(data: &[u8], at: usize) -> Result<(usize, Vec<u8>), Preamble> {
    let Some(&atyp) = data.get(at) else { return Err(Preamble::NeedMore) };
    let addr_len = match atyp {
        1 => 4,
        4 => 16,
        3 => {
            let Some(&n) = data.get(at + 1) else { return Err(Preamble::NeedMore) };
            1 + n as usize
        }
        _ => return Err(Preamble::NotProxy),
    };
    let end = at + 1 + addr_len + 2;
    let Some((a, &[p0, p1])) = data.get(at + 1..end).and_then(<[u8]>::split_last_chunk::<2>) else {
        return Err(Preamble::NeedMore);
    };
    let port = u16::from_be_bytes([p0, p1]);
    // `a` is `addr_len` bytes long, so the conversions for ATYP 1 and 4 always succeed.
    let host = match atyp {
        1 => <[u8; 4]>::try_from(a).map(|b| std::net::Ipv4Addr::from(b).to_string().into_bytes()),
        4 => <[u8; 16]>::try_from(a).map(|b| format!("[{}]", std::net::Ipv6Addr::from(b)).into_bytes()),
        _ => Ok(a.get(1..).unwrap_or_default().to_vec()),
    };
    let Ok(host) = host else { return Err(Preamble::NotProxy) };
    let mut target = host;
    target.extend_from_slice(format!(":{port}").as_bytes());
    Ok((end - at, target))
}

/// SOCKS5 client: greeting (VER=5, NMETHODS, METHODS), an optional RFC 1929 username/password
/// sub-negotiation, then the request (VER=5, CMD=1 CONNECT, RSV=0, address).
fn socks5_request(data: &[u8]) -> Preamble {
    let Some(&nmethods) = data.get(1) else { return Preamble::NeedMore };
    if nmethods == 0 || nmethods > 16 {
        return Preamble::NotProxy;
    }
    let mut at = 2 + nmethods as usize;
    if data.len() < at {
        return Preamble::NeedMore;
    }
    // RFC 1929 username/password: VER=1 ULEN UNAME PLEN PASSWD (skipped, never kept).
    if data.get(at) == Some(&1) {
        let Some(&ulen) = data.get(at + 1) else { return Preamble::NeedMore };
        let Some(&plen) = data.get(at + 2 + ulen as usize) else { return Preamble::NeedMore };
        at += 3 + ulen as usize + plen as usize;
    }
    match data.get(at..at + 3) {
        None => Preamble::NeedMore,
        Some([5, 1, 0]) => match socks5_addr(data, at + 3) {
            Ok((n, target)) => Preamble::Done { kind: Kind::Socks5, len: at + 3 + n, target: Some(target) },
            Err(p) => p,
        },
        Some(_) => Preamble::NotProxy,
    }
}

/// SOCKS5 proxy: method choice (VER=5, METHOD), optional sub-negotiation status (VER=1,
/// STATUS=0), then the reply (VER=5, REP=0 success, RSV, bound address).
fn socks5_reply(data: &[u8]) -> Preamble {
    let Some(&[ver, method]) = data.first_chunk::<2>() else {
        return Preamble::NeedMore;
    };
    if ver != 5 || method == 0xff {
        return Preamble::NotProxy;
    }
    let mut at = 2;
    if method == 2 {
        match data.get(at..at + 2) {
            None => return Preamble::NeedMore,
            Some([1, 0]) => at += 2,
            Some(_) => return Preamble::NotProxy,
        }
    }
    match data.get(at..at + 3) {
        None => Preamble::NeedMore,
        Some([5, 0, 0]) => match socks5_addr(data, at + 3) {
            Ok((n, _)) => Preamble::Done { kind: Kind::Socks5, len: at + 3 + n, target: None },
            Err(p) => p,
        },
        Some(_) => Preamble::NotProxy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_connect_both_directions() {
        let req = b"CONNECT ts01-b.cloudsink.net:443 HTTP/1.0\r\nUser-Agent: x\r\n\r\n\x16\x03\x01";
        match client(req) {
            Preamble::Done { kind: Kind::HttpConnect, len, target } => {
                assert_eq!(&req[len..], b"\x16\x03\x01");
                assert_eq!(target.as_deref(), Some(&b"ts01-b.cloudsink.net:443"[..]));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(client(b"CONNECT ex"), Preamble::NeedMore);
        assert_eq!(client(b"CONN"), Preamble::NeedMore);
        assert_eq!(client(b"COPY / HTTP/1.1\r\n"), Preamble::NotProxy);
        let resp = b"HTTP/1.0 200 OK\r\nVia: x\r\n\r\n\x16";
        assert_eq!(
            server(Kind::HttpConnect, resp),
            Preamble::Done { kind: Kind::HttpConnect, len: resp.len() - 1, target: None }
        );
        assert_eq!(server(Kind::HttpConnect, b"HTTP/1.1 407 Auth\r\n\r\n"), Preamble::NotProxy);
        assert_eq!(server(Kind::HttpConnect, b"HTTP/1.1 200"), Preamble::NeedMore);
    }

    #[test]
    fn socks4_and_4a() {
        // From a real capture: port 443, 93.184.216.119, empty user id.
        let req = [4, 1, 1, 0xbb, 0x5d, 0xb8, 0xd8, 0x77, 0, 0x16];
        assert_eq!(
            client(&req),
            Preamble::Done { kind: Kind::Socks4, len: 9, target: Some(b"93.184.216.119:443".to_vec()) }
        );
        let mut req4a = vec![4, 1, 1, 0xbb, 0, 0, 0, 1, b'u', 0];
        req4a.extend_from_slice(b"example.com\0");
        assert_eq!(
            client(&req4a),
            Preamble::Done { kind: Kind::Socks4, len: req4a.len(), target: Some(b"example.com:443".to_vec()) }
        );
        assert_eq!(client(&req4a[..11]), Preamble::NeedMore);
        assert_eq!(server(Kind::Socks4, &[0, 0x5a, 0x99, 0xb4, 10, 180, 156, 249, 0x16]),
            Preamble::Done { kind: Kind::Socks4, len: 8, target: None });
        assert_eq!(server(Kind::Socks4, &[0, 0x5b, 0, 0, 0, 0, 0, 0]), Preamble::NotProxy);
    }

    /// Fuzzing (target `proxy_marker`): a SOCKS4a host of 244 bytes, 9 of them not UTF-8, gave a
    /// 262-byte target, over MAX_TARGET_LEN, when the host was converted lossily to text.
    #[test]
    fn socks4a_host_kept_as_bytes_within_the_bound() {
        let mut req = vec![4, 1, 1, 0xbb, 0, 0, 0, 1, 0];
        req.extend(std::iter::repeat_n(0xff_u8, 255));
        req.push(0);
        let Preamble::Done { kind: Kind::Socks4, len, target: Some(target) } = client(&req) else {
            panic!("{:?}", client(&req))
        };
        assert_eq!(len, req.len());
        assert_eq!(target.len(), 255 + ":443".len());
        assert!(target.len() <= MAX_TARGET_LEN);
        assert!(target.starts_with(&[0xff; 255]) && target.ends_with(b":443"));
        // 256 bytes without a NUL: not a SOCKS4a request.
        req[9 + 255] = b'a';
        req.push(0);
        assert_eq!(client(&req), Preamble::NotProxy);
    }

    #[test]
    fn socks5_with_domain_and_auth() {
        let mut req = vec![5, 2, 0, 2, 1, 1, b'u', 1, b'p', 5, 1, 0, 3, 11];
        req.extend_from_slice(b"example.com");
        req.extend_from_slice(&[1, 0xbb]);
        let n = req.len();
        req.push(0x16);
        assert_eq!(
            client(&req),
            Preamble::Done { kind: Kind::Socks5, len: n, target: Some(b"example.com:443".to_vec()) }
        );
        for cut in 1..n {
            assert_eq!(client(&req[..cut]), Preamble::NeedMore, "cut at {cut}");
        }
        let rep = [5, 2, 1, 0, 5, 0, 0, 1, 10, 0, 0, 1, 0x1f, 0x90];
        assert_eq!(server(Kind::Socks5, &rep), Preamble::Done { kind: Kind::Socks5, len: rep.len(), target: None });
        assert_eq!(server(Kind::Socks5, &[5, 0xff]), Preamble::NotProxy);
        let v6 = [5, 1, 0, 5, 1, 0, 4, 0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0xbb];
        assert_eq!(
            client(&v6),
            Preamble::Done { kind: Kind::Socks5, len: v6.len(), target: Some(b"[2001:db8::1]:443".to_vec()) }
        );
    }

    #[test]
    fn not_proxies() {
        assert_eq!(client(b"\x16\x03\x01"), Preamble::NotProxy);
        assert_eq!(client(&[5, 0]), Preamble::NotProxy);
        assert_eq!(client(&[4, 2, 0, 0, 0, 0, 0, 0, 0]), Preamble::NotProxy);
        assert_eq!(client(&[]), Preamble::NeedMore);
    }
}
