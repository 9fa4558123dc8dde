//! Application-protocol parsers: bytes from the start of a flow in, small owned summaries out.
//!
//! Each parser borrows the bytes it is given, never panics on hostile input, bounds what it keeps
//! by a named constant, and reports failures as a small error enum whose `as_str()` is a
//! drop-reason label. Nothing here touches sockets, files or the wall clock.
//!
//! - [`dns`]: DNS messages (RFC 1035, RFC 3596, RFC 9460 HTTPS/SVCB) and DNS-over-TCP framing
//!   (RFC 7766): questions, answers and the addresses a CNAME chain resolves to.
//! - [`http`]: the Host header of a flow's first HTTP/1.x request.
//! - [`marker`]: first-bytes markers of non-TLS protocols (WhatsApp's chat preface, STUN and its
//!   vendor attributes, Discord voice).
//! - [`proxy`]: explicit-proxy preambles (HTTP CONNECT, SOCKS4/4a/5) before a tunnelled hello.
//! - [`tls`]: TLS record defragmentation and ClientHello / ServerHello summaries (RFC 8446,
//!   RFC 6066, RFC 8701), the input of `fingerprint::ja3` and `fingerprint::ja4`.
//! - [`rtp`]: RTP/RTCP headers (RFC 3550, RFC 5761) agreeing over a few datagrams: call media.
//! - [`quic`]: client Initial packets opened (RFC 9000, RFC 9001, RFC 9369) to recover the TLS
//!   ClientHello from CRYPTO frames, or the Google QUIC CHLO.

pub mod dns;
pub mod http;
pub mod marker;
pub mod proxy;
pub mod quic;
pub mod rtp;
pub mod tls;
