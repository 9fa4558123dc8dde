//! IP and transport headers, read with etherparse's lax slices.
//!
//! "Lax" means a snaplen-cut packet still yields its headers and the captured part of its
//! payload; declared lengths are kept separately so byte and sequence accounting stay exact.

use std::net::IpAddr;

use etherparse::err::ip::LaxHeaderSliceError;
use etherparse::err::ipv6_exts::HeaderSliceError as ExtsError;
use etherparse::err::tcp::HeaderSliceError as TcpError;
use etherparse::{
    Ipv6ExtensionSlice, Ipv6ExtensionsSlice, LaxIpSlice, TcpHeaderSlice, UdpHeaderSlice,
};

use super::{len32, DropReason, Layer, TcpFlags, TcpSegment, UdpDatagram};

/// Which IP version the enclosing header named.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Version {
    /// The framing said IPv4 (EtherType 0x0800, PPP 0x0021, protocol 4, ...).
    V4,
    /// The framing said IPv6.
    V6,
    /// The framing did not say (raw IP, MPLS, GTP-U, ERSPAN III): the version nibble decides.
    Any,
}

/// IP protocol numbers decode acts on (IANA "Assigned Internet Protocol Numbers").
pub(super) mod protocol {
    /// IPv4 encapsulation (RFC 2003).
    pub const IPV4_IN_IP: u8 = 4;
    /// TCP (RFC 9293).
    pub const TCP: u8 = 6;
    /// UDP (RFC 768).
    pub const UDP: u8 = 17;
    /// IPv6 encapsulation (RFC 4213 section 3.5 / RFC 2473).
    pub const IPV6_IN_IP: u8 = 41;
    /// GRE (RFC 2784).
    pub const GRE: u8 = 47;
}

/// TCP header fields etherparse does not expose as a byte (RFC 9293 section 3.1).
mod tcp_field {
    /// Data offset (high nibble) and reserved bits.
    pub const DATA_OFFSET: usize = 12;
    /// The eight control bits, CWR (MSB) to FIN (LSB).
    pub const FLAGS: usize = 13;
    /// Length of the fixed header, without options.
    pub const MIN_LEN: usize = 20;
    /// Data offset of a header without options, shifted into place.
    pub const DATA_OFFSET_NO_OPTIONS: u8 = 5 << 4;
}

/// UDP header length (RFC 768).
const UDP_HEADER_LEN: u32 = 8;
/// IPv6 fixed header length (RFC 8200 section 3).
const IPV6_HEADER_LEN: u32 = 40;

/// One IP header's view: addresses, declared length, and the payload it frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ip<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Total length as declared (see [`super::Packet::ip_len`]).
    pub ip_len: u32,
    /// Protocol of the payload, after IPv4 AH / IPv6 extension headers.
    pub protocol: u8,
    /// Captured payload bytes, trimmed to the declared length (drops Ethernet padding).
    pub payload: &'a [u8],
    /// Payload length as declared: `ip_len` minus all IP headers.
    pub payload_len: u32,
    /// This is a first fragment: the payload is only the start of the transport packet.
    pub fragmented: bool,
}

/// Reads an IPv4 or IPv6 header (with IPv4 options and AH, IPv6 extension headers).
///
/// # Errors
///
/// [`Layer::Ip`] truncation (header or extension header cut); [`DropReason::BadIpHeader`] for
/// a version other than the framing named, IHL < 5, a misplaced hop-by-hop header or a bad
/// AH; [`DropReason::IpFragment`] for a fragment with a non-zero offset (RFC 791 section 3.1,
/// RFC 8200 section 4.5).
#[inline]
pub(super) fn parse(bytes: &[u8], version: Version) -> Result<Ip<'_>, DropReason> {
    let nibble = bytes.first().ok_or(DropReason::truncated(Layer::Ip))? >> 4;
    match (version, nibble) {
        (Version::V4, 4) | (Version::V6, 6) | (Version::Any, _) => {}
        _ => return Err(DropReason::BadIpHeader),
    }
    let (slice, stopped) = LaxIpSlice::from_slice(bytes).map_err(|err| match err {
        LaxHeaderSliceError::Len(_) => DropReason::truncated(Layer::Ip),
        LaxHeaderSliceError::Content(_) => DropReason::BadIpHeader,
    })?;
    let (ip_len, headers_len, later_fragment) = match &slice {
        LaxIpSlice::Ipv4(v4) => {
            let header = v4.header();
            let header_len = len32(header.slice());
            let declared = u32::from(header.total_len());
            // Total length 0 (TCP segmentation offload) or below the header: use what we have.
            let ip_len = if declared >= header_len {
                declared
            } else {
                len32(bytes)
            };
            let auth_len = v4.extensions().auth.map_or(0, |auth| len32(auth.slice()));
            (
                ip_len,
                header_len + auth_len,
                header.fragments_offset().value() != 0,
            )
        }
        LaxIpSlice::Ipv6(v6) => {
            let declared = u32::from(v6.header().payload_length());
            // Payload length 0: a jumbogram (RFC 2675) or offload; use what we have.
            let ip_len = if declared == 0 {
                len32(bytes)
            } else {
                IPV6_HEADER_LEN + declared
            };
            let later = v6.is_payload_fragmented() && has_later_fragment(v6.extensions());
            (
                ip_len,
                IPV6_HEADER_LEN + len32(v6.extensions().slice()),
                later,
            )
        }
    };
    if later_fragment {
        return Err(DropReason::IpFragment);
    }
    if let Some((err, _layer)) = stopped {
        return Err(match err {
            ExtsError::Len(_) => DropReason::truncated(Layer::Ip),
            ExtsError::Content(_) => DropReason::BadIpHeader,
        });
    }
    let payload = slice.payload();
    Ok(Ip {
        src: slice.source_addr(),
        dst: slice.destination_addr(),
        ip_len,
        protocol: payload.ip_number.0,
        payload: payload.payload,
        payload_len: ip_len.saturating_sub(headers_len),
        fragmented: payload.fragmented,
    })
}

/// True when an IPv6 fragment header has a non-zero offset (only called for fragments).
#[cold]
fn has_later_fragment(exts: &Ipv6ExtensionsSlice<'_>) -> bool {
    exts.clone().into_iter().any(|ext| match ext {
        Ipv6ExtensionSlice::Fragment(frag) => frag.fragment_offset().value() != 0,
        _ => false,
    })
}

/// The truncation reason for a transport header: a first fragment too short to hold it is
/// a fragment problem, not a snaplen problem.
fn cut(ip: &Ip<'_>, layer: Layer) -> DropReason {
    if ip.fragmented {
        DropReason::IpFragment
    } else {
        DropReason::truncated(layer)
    }
}

/// Reads the TCP header of `ip`'s payload.
///
/// When the snaplen cuts into the TCP options, the fixed 20 bytes still carry ports, sequence
/// numbers and flags, which the flow table needs. Those are read by handing etherparse a copy
/// of the fixed header with its data offset set to 5 (no options); the segment then has an
/// empty captured payload and its `payload_len` from the real data offset.
///
/// # Errors
///
/// [`Layer::Tcp`] truncation below 20 bytes (or [`DropReason::IpFragment`] in a first
/// fragment); [`DropReason::BadTcpHeader`] for a data offset below 5.
#[inline]
pub(super) fn tcp<'a>(ip: &Ip<'a>) -> Result<TcpSegment<'a>, DropReason> {
    match TcpHeaderSlice::from_slice(ip.payload) {
        Ok(header) => {
            let header_len = header.slice().len();
            let payload = ip.payload.get(header_len..).unwrap_or_default();
            Ok(segment(&header, header_len, payload, ip.payload_len))
        }
        Err(TcpError::Content(_)) => Err(DropReason::BadTcpHeader),
        Err(TcpError::Len(_)) => options_cut(ip),
    }
}

/// The rare path of [`tcp`]: the options (or the fixed header) are not all captured.
#[cold]
fn options_cut<'a>(ip: &Ip<'a>) -> Result<TcpSegment<'a>, DropReason> {
    let mut fixed: [u8; tcp_field::MIN_LEN] = ip
        .payload
        .get(..tcp_field::MIN_LEN)
        .and_then(|bytes| bytes.try_into().ok())
        .ok_or_else(|| cut(ip, Layer::Tcp))?;
    let declared_header_len = usize::from(fixed[tcp_field::DATA_OFFSET] >> 4) * 4;
    fixed[tcp_field::DATA_OFFSET] =
        tcp_field::DATA_OFFSET_NO_OPTIONS | (fixed[tcp_field::DATA_OFFSET] & 0x0f);
    let header = TcpHeaderSlice::from_slice(&fixed).map_err(|_| DropReason::BadTcpHeader)?;
    Ok(segment(&header, declared_header_len, &[], ip.payload_len))
}

/// Copies the fields the pipeline uses out of a TCP header.
fn segment<'a>(
    header: &TcpHeaderSlice<'_>,
    header_len: usize,
    payload: &'a [u8],
    ip_payload_len: u32,
) -> TcpSegment<'a> {
    let header_len = u32::try_from(header_len).unwrap_or(u32::MAX);
    TcpSegment {
        src_port: header.source_port(),
        dst_port: header.destination_port(),
        seq: header.sequence_number(),
        ack: header.acknowledgment_number(),
        flags: TcpFlags(header.slice().get(tcp_field::FLAGS).copied().unwrap_or(0)),
        window: header.window_size(),
        payload,
        payload_len: ip_payload_len.saturating_sub(header_len),
    }
}

/// Reads the UDP header of `ip`'s payload; also returns the declared payload length, which
/// Teredo detection checks against.
///
/// A length field of 0 means "see the IP payload length" (RFC 2675 section 4 jumbograms, and
/// harmless to accept for IPv4).
///
/// # Errors
///
/// [`Layer::Udp`] truncation below 8 bytes (or [`DropReason::IpFragment`] in a first
/// fragment); [`DropReason::BadUdpHeader`] for a length field of 1..=7.
#[inline]
pub(super) fn udp<'a>(ip: &Ip<'a>) -> Result<(UdpDatagram<'a>, u32), DropReason> {
    let header = UdpHeaderSlice::from_slice(ip.payload).map_err(|_| cut(ip, Layer::Udp))?;
    let declared = match u32::from(header.length()) {
        0 => ip.payload_len,
        length if length < UDP_HEADER_LEN => return Err(DropReason::BadUdpHeader),
        length => length,
    };
    let payload_len = declared.saturating_sub(UDP_HEADER_LEN);
    let captured = ip.payload.get(header.slice().len()..).unwrap_or_default();
    let payload = captured
        .get(..usize::try_from(payload_len).unwrap_or(usize::MAX))
        .unwrap_or(captured);
    let datagram = UdpDatagram {
        src_port: header.source_port(),
        dst_port: header.destination_port(),
        payload,
    };
    Ok((datagram, payload_len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    fn v4_tcp(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
            .tcp(40000, 443, 1000, 512)
            .syn()
            .write(&mut out, payload)
            .unwrap();
        out
    }

    #[test]
    fn ipv4_tcp_with_padding() {
        let mut bytes = v4_tcp(b"hello");
        bytes.extend_from_slice(&[0; 6]); // Ethernet padding beyond total length
        let ip = parse(&bytes, Version::V4).unwrap();
        assert_eq!(ip.ip_len, 45);
        assert_eq!(ip.protocol, protocol::TCP);
        assert_eq!(ip.payload_len, 25);
        let seg = tcp(&ip).unwrap();
        assert_eq!((seg.src_port, seg.dst_port, seg.seq), (40000, 443, 1000));
        assert_eq!(seg.flags, TcpFlags::SYN);
        assert_eq!(seg.payload, b"hello");
        assert_eq!(seg.payload_len, 5);
    }

    #[test]
    fn version_must_match_framing() {
        let bytes = v4_tcp(b"");
        assert_eq!(parse(&bytes, Version::V6), Err(DropReason::BadIpHeader));
        assert!(parse(&bytes, Version::Any).is_ok());
        assert_eq!(
            parse(&[0x75; 40], Version::Any),
            Err(DropReason::BadIpHeader)
        );
        assert_eq!(
            parse(&[0x44; 40], Version::V4),
            Err(DropReason::BadIpHeader)
        ); // IHL 4
        assert_eq!(
            parse(&[], Version::Any),
            Err(DropReason::truncated(Layer::Ip))
        );
        assert_eq!(
            parse(&bytes[..19], Version::V4),
            Err(DropReason::truncated(Layer::Ip))
        );
    }

    #[test]
    fn snaplen_cut_payload_keeps_declared_length() {
        let bytes = v4_tcp(&[7; 100]);
        let ip = parse(&bytes[..60], Version::V4).unwrap();
        assert_eq!(ip.ip_len, 140);
        let seg = tcp(&ip).unwrap();
        assert_eq!(seg.payload, &[7; 20][..]);
        assert_eq!(seg.payload_len, 100);
    }

    #[test]
    fn snaplen_cut_tcp_options_keeps_fixed_header() {
        // IPv4 + TCP with data offset 8 (12 bytes of options), 10 bytes of payload.
        let mut bytes = v4_tcp(&[0; 22]);
        bytes[20 + 12] = 8 << 4;
        bytes[20 + 13] = 0x12; // SYN|ACK
        let ip = parse(&bytes[..20 + 24], Version::V4).unwrap();
        let seg = tcp(&ip).unwrap();
        assert_eq!(seg.flags, TcpFlags::SYN | TcpFlags::ACK);
        assert_eq!(seg.src_port, 40000);
        assert!(seg.payload.is_empty());
        assert_eq!(seg.payload_len, 10);
        let ip = parse(&bytes[..20 + 19], Version::V4).unwrap();
        assert_eq!(tcp(&ip), Err(DropReason::truncated(Layer::Tcp)));
        bytes[20 + 12] = 4 << 4;
        let ip = parse(&bytes, Version::V4).unwrap();
        assert_eq!(tcp(&ip), Err(DropReason::BadTcpHeader));
    }

    #[test]
    fn udp_lengths() {
        let mut bytes = Vec::new();
        PacketBuilder::ipv6([1; 16], [2; 16], 64)
            .udp(5353, 53)
            .write(&mut bytes, b"query")
            .unwrap();
        let ip = parse(&bytes, Version::V6).unwrap();
        assert_eq!(ip.ip_len, 53);
        let (udp_dgram, declared) = udp(&ip).unwrap();
        assert_eq!(udp_dgram.payload, b"query");
        assert_eq!(declared, 5);
        assert_eq!((udp_dgram.src_port, udp_dgram.dst_port), (5353, 53));
        bytes[40 + 4..40 + 6].copy_from_slice(&3u16.to_be_bytes());
        let ip = parse(&bytes, Version::V6).unwrap();
        assert_eq!(udp(&ip), Err(DropReason::BadUdpHeader));
        let ip = parse(&bytes[..47], Version::V6).unwrap();
        assert_eq!(udp(&ip), Err(DropReason::truncated(Layer::Udp)));
    }

    #[test]
    fn ipv4_later_fragment() {
        let mut bytes = v4_tcp(b"data");
        bytes[6] = 0x00;
        bytes[7] = 0x10; // offset 16 * 8 bytes
        assert_eq!(parse(&bytes, Version::V4), Err(DropReason::IpFragment));
        // First fragment (MF set, offset 0) with the full TCP header decodes.
        bytes[6] = 0x20;
        bytes[7] = 0x00;
        let ip = parse(&bytes, Version::V4).unwrap();
        assert!(ip.fragmented);
        assert!(tcp(&ip).is_ok());
        // A first fragment too short for the TCP header is a fragment problem.
        let short = Ip {
            payload: &ip.payload[..10],
            ..ip
        };
        assert_eq!(tcp(&short), Err(DropReason::IpFragment));
    }
}
