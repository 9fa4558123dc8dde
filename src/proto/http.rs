//! The first HTTP/1.x request of a flow: its method and `Host` header, nothing else.
//!
//! Plain HTTP still names destinations (captive portals, software updates, file-transfer
//! services' download links). Only the request head is read, never a body, and only the Host
//! header value is kept.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic))]

/// Longest request head read (bytes up to the blank line).
pub const MAX_HEAD: usize = 8 * 1024;

/// Longest Host value kept (a DNS name of 253 characters plus `:port`).
pub const MAX_HOST: usize = 261;

/// What the start of a client stream says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Not an HTTP/1.x request line.
    NotHttp,
    /// A request line, but the head is not complete yet.
    NeedMore,
    /// A complete head; the Host header value if present.
    Head {
        /// `Host` header value (as sent, not lowercased).
        host: Option<Vec<u8>>,
    },
}

const METHODS: &[&[u8]] =
    &[b"GET ", b"POST ", b"HEAD ", b"PUT ", b"DELETE ", b"OPTIONS ", b"CONNECT ", b"PATCH ", b"TRACE "];

/// True when `data` starts with an HTTP method and a space.
pub fn is_request(data: &[u8]) -> bool {
    METHODS.iter().any(|m| data.starts_with(m))
}

/// Reads the first request head of a client stream.
pub fn request(data: &[u8]) -> Request {
    if !is_request(data) {
        return Request::NotHttp;
    }
    let window = data.get(..MAX_HEAD).unwrap_or(data);
    let Some(end) = window.windows(4).position(|w| w == b"\r\n\r\n") else {
        return if data.len() >= MAX_HEAD { Request::Head { host: None } } else { Request::NeedMore };
    };
    // `end` is the position of a 4-byte window, so it lies within `window`.
    let host = window
        .get(..end)
        .unwrap_or_default()
        .split(|&b| b == b'\n')
        .skip(1)
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .find_map(|l| {
            let colon = l.iter().position(|&b| b == b':')?;
            let (k, v) = (l.get(..colon)?, l.get(colon + 1..)?);
            k.eq_ignore_ascii_case(b"host").then(|| v.trim_ascii().to_vec())
        })
        .filter(|h| !h.is_empty() && h.len() <= MAX_HOST);
    Request::Head { host }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_header() {
        let req = b"GET /x HTTP/1.1\r\nUser-Agent: t\r\nhOsT:  www.WeTransfer.com \r\n\r\nbody";
        assert_eq!(request(req), Request::Head { host: Some(b"www.WeTransfer.com".to_vec()) });
        assert_eq!(request(&req[..20]), Request::NeedMore);
        assert_eq!(request(b"GET / HTTP/1.0\r\n\r\n"), Request::Head { host: None });
        assert_eq!(request(b"\x16\x03\x01"), Request::NotHttp);
        assert_eq!(request(b"SSH-2.0-x\r\n"), Request::NotHttp);
    }

    #[test]
    fn oversized_head_stops_without_host() {
        let mut req = b"GET / HTTP/1.1\r\n".to_vec();
        req.resize(MAX_HEAD + 10, b'a');
        assert_eq!(request(&req), Request::Head { host: None });
    }
}
