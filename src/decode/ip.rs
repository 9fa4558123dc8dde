//! IP and transport headers, read with etherparse's lax slices.
//!
//! "Lax" means a snaplen-cut packet still yields its headers and the captured part of its
//! payload; declared lengths are kept separately so byte and sequence accounting stay exact.

use std::net::IpAddr;

use etherparse::err::ip::LaxHeaderSliceError;
use etherparse::err::ip_auth::HeaderSliceError as AuthError;
use etherparse::err::ipv6_exts::HeaderSliceError as ExtsError;
use etherparse::err::tcp::HeaderSliceError as TcpError;
use etherparse::{
    IpAuthHeaderSlice, IpNumber, Ipv4HeaderSlice, Ipv6ExtensionsSlice,
    LaxIpSlice, LaxIpv6Slice, TcpHeaderSlice, UdpHeaderSlice,
};

use super::{len32, DatagramHead, DropReason, IpVersion, Layer, TcpFlags, TcpSegment, UdpDatagram};

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
    /// IP Authentication Header (RFC 4302).
    pub const AUTH: u8 = 51;
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
/// IPv6 Fragment header length (RFC 8200 section 4.5).
const IPV6_FRAGMENT_HEADER_LEN: u32 = 8;

/// Largest value of the IPv4 total length and of the IPv6 payload length (16-bit fields, RFC
/// 791 section 3.1, RFC 8200 section 3): no fragment may reach past it.
const MAX_IP_LEN: u32 = 65_535;

/// Fragment offsets count 8-byte units, and every fragment but the last carries a multiple of
/// 8 bytes (RFC 791 section 3.2, RFC 8200 section 4.5).
const FRAGMENT_UNIT: u32 = 8;

/// The fragmentation fields of one fragment: IPv4 flags, offset and identification, or the
/// IPv6 Fragment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FragmentInfo {
    /// IPv4 or IPv6.
    pub version: IpVersion,
    /// Identification (16 bits in IPv4, 32 in IPv6).
    pub id: u32,
    /// Offset of the payload in the datagram's fragmentable part, in bytes.
    pub offset: u16,
    /// More fragments follow (MF / M flag).
    pub more: bool,
    /// IP header bytes the reassembled datagram keeps: the IPv4 header with its options, or
    /// the IPv6 header with the extension headers before the Fragment header.
    pub header_len: u16,
}

/// One IP header's view: addresses, declared length, and the payload it frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ip<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Total length as declared (see [`super::Packet::ip_len`]).
    pub ip_len: u32,
    /// Protocol of the payload, after IPv4 AH / IPv6 extension headers; for a fragment, the
    /// protocol of the fragmentable part (IPv4 protocol field, or the Fragment header's Next
    /// Header).
    pub protocol: u8,
    /// Captured payload bytes, trimmed to the declared length (drops Ethernet padding); for a
    /// fragment, exactly its declared fragment bytes.
    pub payload: &'a [u8],
    /// Payload length as declared: `ip_len` minus all IP headers.
    pub payload_len: u32,
    /// Set for a fragment that the defragmenter can use (its payload is whole).
    pub fragment: Option<FragmentInfo>,
}

/// Reads an IPv4 or IPv6 header (with IPv4 options and AH, IPv6 extension headers).
///
/// A fragment (RFC 791 section 3.2, RFC 8200 section 4.5) comes back with
/// [`Ip::fragment`] set and its fragment bytes as payload, for the defragmenter. A first
/// fragment cut by the snaplen cannot be reassembled; it is read like an unfragmented packet
/// (ports and flags for the flow table, payload cut), as before reassembly existed.
///
/// # Errors
///
/// [`Layer::Ip`] truncation (header or extension header cut, or a non-first fragment cut);
/// [`DropReason::BadIpHeader`] for a version other than the framing named, IHL < 5, a
/// misplaced hop-by-hop header or a bad AH; [`DropReason::BadFragment`] for a fragment that
/// cannot belong to any datagram.
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
    let (ip_len, headers_len) = match &slice {
        LaxIpSlice::Ipv4(v4) => {
            let header = v4.header();
            if header.is_fragmenting_payload() {
                return v4_fragment(bytes, &header);
            }
            let header_len = len32(header.slice());
            let declared = u32::from(header.total_len());
            // Total length 0 (TCP segmentation offload) or below the header: use what we have.
            let ip_len = if declared >= header_len {
                declared
            } else {
                len32(bytes)
            };
            let auth_len = v4.extensions().auth.map_or(0, |auth| len32(auth.slice()));
            (ip_len, header_len + auth_len)
        }
        LaxIpSlice::Ipv6(v6) => {
            if v6.is_payload_fragmented() {
                return v6_fragment(bytes, v6);
            }
            let declared = u32::from(v6.header().payload_length());
            // Payload length 0: a jumbogram (RFC 2675) or offload; use what we have.
            let ip_len = if declared == 0 {
                len32(bytes)
            } else {
                IPV6_HEADER_LEN + declared
            };
            (ip_len, IPV6_HEADER_LEN + len32(v6.extensions().slice()))
        }
    };
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
        fragment: None,
    })
}

/// An IPv4 fragment (MF set or a non-zero offset). etherparse's AH reading is not used: in a
/// fragment the AH belongs to the fragmentable part and is read after reassembly.
#[cold]
fn v4_fragment<'a>(bytes: &'a [u8], header: &Ipv4HeaderSlice<'_>) -> Result<Ip<'a>, DropReason> {
    let header_len = len32(header.slice());
    let total = u32::from(header.total_len());
    // A fragment must declare its length: 0 (offload) or less than the header is malformed.
    let len = total
        .checked_sub(header_len)
        .ok_or(DropReason::BadFragment)?;
    let info = FragmentInfo {
        version: IpVersion::V4,
        id: u32::from(header.identification()),
        offset: header.fragments_offset().value().saturating_mul(8),
        more: header.more_fragments(),
        header_len: u16::try_from(header_len).unwrap_or(u16::MAX),
    };
    let addrs = (
        IpAddr::V4(header.source_addr()),
        IpAddr::V4(header.destination_addr()),
    );
    fragment(
        bytes,
        addrs,
        total,
        header_len,
        len,
        header.protocol().0,
        info,
    )
}

/// The fragmenting Fragment header of an IPv6 extension chain (RFC 8200 section 4.5).
struct V6Fragment {
    /// Bytes of extension headers before it (the unfragmentable part).
    before: u32,
    /// Next header after it: the fragmentable part's first protocol.
    next: u8,
    /// Identification.
    id: u32,
    /// Fragment offset in bytes (at most 65,528).
    offset: u16,
    /// More fragments follow.
    more: bool,
}

/// Walks an IPv6 extension chain (`first` names the first header, `exts` holds the chain)
/// to its first fragmenting Fragment header, reading every length with a bounds check.
fn v6_fragment_header(first: u8, exts: &[u8]) -> Option<V6Fragment> {
    /// IPv6 extension header numbers (IANA): hop-by-hop, routing, fragment, AH, destination.
    const HOP_BY_HOP: u8 = 0;
    const ROUTING: u8 = 43;
    const FRAGMENT: u8 = 44;
    const AUTH: u8 = 51;
    const DEST_OPTS: u8 = 60;
    let (mut next, mut at) = (first, 0usize);
    loop {
        let rest = exts.get(at..)?;
        let &[nh, len_field, ..] = rest else { return None };
        let len = match next {
            HOP_BY_HOP | ROUTING | DEST_OPTS => (usize::from(len_field) + 1) * 8,
            AUTH => (usize::from(len_field) + 2) * 4,
            FRAGMENT => {
                let h = rest.first_chunk::<8>()?;
                let field = u16::from_be_bytes([h[2], h[3]]);
                let offset = (field >> 3) * 8;
                let more = field & 1 == 1;
                if offset != 0 || more {
                    return Some(V6Fragment {
                        before: u32::try_from(at).ok()?,
                        next: nh,
                        id: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
                        offset,
                        more,
                    });
                }
                8
            }
            _ => return None,
        };
        rest.get(..len)?;
        next = nh;
        at += len;
    }
}

/// An IPv6 packet with a Fragment header that fragments (offset or M set; an atomic fragment,
/// RFC 6946, is read as the unfragmented packet it is). The extension headers before the
/// Fragment header are the unfragmentable part; etherparse's reading of what follows it is
/// not used (in a non-first fragment those bytes are the middle of the datagram).
#[cold]
fn v6_fragment<'a>(bytes: &'a [u8], v6: &LaxIpv6Slice<'_>) -> Result<Ip<'a>, DropReason> {
    let declared = u32::from(v6.header().payload_length());
    if declared == 0 {
        // A jumbogram cannot carry a Fragment header (RFC 2675 section 3).
        return Err(DropReason::BadFragment);
    }
    // The chain is walked here, with checked reads, over the extension bytes etherparse kept:
    // etherparse's own iterator trusts that the chain ends inside those bytes, which a cut or
    // malformed header after a Fragment header breaks (found by fuzzing: it read past the
    // slice; a segmentation fault in a release build).
    let frag = v6_fragment_header(v6.header().next_header().0, v6.extensions().slice())
        .ok_or(DropReason::BadIpHeader)?;
    let before = IPV6_HEADER_LEN + frag.before;
    let ip_len = IPV6_HEADER_LEN + declared;
    let start = before + IPV6_FRAGMENT_HEADER_LEN;
    let len = ip_len.checked_sub(start).ok_or(DropReason::BadFragment)?;
    let info = FragmentInfo {
        version: IpVersion::V6,
        id: frag.id,
        offset: frag.offset,
        more: frag.more,
        header_len: u16::try_from(before).unwrap_or(u16::MAX),
    };
    let header = v6.header();
    let addrs = (
        IpAddr::V6(header.source_addr()),
        IpAddr::V6(header.destination_addr()),
    );
    fragment(bytes, addrs, ip_len, start, len, frag.next, info)
}

/// The checks every fragment passes, and its view: `len` fragment bytes from `start`.
///
/// # Errors
///
/// [`DropReason::BadFragment`] when offset + length passes [`MAX_IP_LEN`] or a fragment with
/// more to follow is empty or not a multiple of 8 bytes; [`Layer::Ip`] truncation when the
/// snaplen cut a non-first fragment (or the headers of a cut first one).
fn fragment(
    bytes: &[u8],
    (src, dst): (IpAddr, IpAddr),
    ip_len: u32,
    start: u32,
    len: u32,
    protocol: u8,
    info: FragmentInfo,
) -> Result<Ip<'_>, DropReason> {
    if u32::from(info.offset) + len > MAX_IP_LEN
        || (info.more && (len == 0 || !len.is_multiple_of(FRAGMENT_UNIT)))
    {
        return Err(DropReason::BadFragment);
    }
    let start = usize::try_from(start).unwrap_or(usize::MAX);
    let end = start.saturating_add(usize::try_from(len).unwrap_or(usize::MAX));
    if let Some(payload) = bytes.get(start..end) {
        return Ok(Ip {
            src,
            dst,
            ip_len,
            protocol,
            payload,
            payload_len: len,
            fragment: Some(info),
        });
    }
    if info.offset != 0 {
        return Err(DropReason::truncated(Layer::Ip));
    }
    // A first fragment cut by the snaplen: its start, read like an unfragmented packet.
    let captured = bytes.get(start..).unwrap_or_default();
    let (protocol, payload, skipped) = upper(info.version, protocol, captured)?;
    Ok(Ip {
        src,
        dst,
        ip_len,
        protocol,
        payload,
        payload_len: len.saturating_sub(skipped),
        fragment: None,
    })
}

/// Skips the headers that can open a datagram's fragmentable part before the upper layer:
/// an IPv4 AH (RFC 4302), IPv6 destination options, routing and AH headers (RFC 8200
/// section 4.1). Returns the upper-layer protocol, its bytes and the bytes skipped.
///
/// # Errors
///
/// [`Layer::Ip`] truncation when a header runs past `payload`; [`DropReason::BadIpHeader`]
/// for a malformed one; [`DropReason::BadFragment`] for a second Fragment header that
/// fragments again.
fn upper(version: IpVersion, protocol: u8, payload: &[u8]) -> Result<(u8, &[u8], u32), DropReason> {
    match version {
        IpVersion::V4 if protocol == protocol::AUTH => {
            let auth = IpAuthHeaderSlice::from_slice(payload).map_err(|err| match err {
                AuthError::Len(_) => DropReason::truncated(Layer::Ip),
                AuthError::Content(_) => DropReason::BadIpHeader,
            })?;
            let skipped = auth.slice().len();
            let rest = payload.get(skipped..).unwrap_or_default();
            Ok((auth.next_header().0, rest, len32(auth.slice())))
        }
        IpVersion::V4 => Ok((protocol, payload, 0)),
        IpVersion::V6 => {
            let (exts, next, rest) = Ipv6ExtensionsSlice::from_slice(IpNumber(protocol), payload)
                .map_err(|err| match err {
                ExtsError::Len(_) => DropReason::truncated(Layer::Ip),
                ExtsError::Content(_) => DropReason::BadIpHeader,
            })?;
            if exts.is_fragmenting_payload() {
                return Err(DropReason::BadFragment);
            }
            Ok((next.0, rest, len32(exts.slice())))
        }
    }
}

/// The view of a reassembled datagram: `payload` is its whole fragmentable part, `head` what
/// its fragments said about the rest.
///
/// # Errors
///
/// As [`upper`]: a header opening the payload that is cut or malformed.
pub(super) fn reassembled<'a>(
    head: &DatagramHead,
    payload: &'a [u8],
) -> Result<Ip<'a>, DropReason> {
    let (protocol, rest, skipped) = upper(head.version, head.protocol, payload)?;
    Ok(Ip {
        src: head.src,
        dst: head.dst,
        ip_len: u32::from(head.header_len).saturating_add(len32(payload)),
        protocol,
        payload: rest,
        payload_len: len32(payload).saturating_sub(skipped),
        fragment: None,
    })
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
/// [`Layer::Tcp`] truncation below 20 bytes; [`DropReason::BadTcpHeader`] for a data offset
/// below 5.
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
        .ok_or(DropReason::truncated(Layer::Tcp))?;
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
/// [`Layer::Udp`] truncation below 8 bytes; [`DropReason::BadUdpHeader`] for a length field
/// of 1..=7.
#[inline]
pub(super) fn udp<'a>(ip: &Ip<'a>) -> Result<(UdpDatagram<'a>, u32), DropReason> {
    let header =
        UdpHeaderSlice::from_slice(ip.payload).map_err(|_| DropReason::truncated(Layer::Udp))?;
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

    /// Sets the IPv4 flags and fragment offset (in 8-byte units) of `bytes`.
    fn set_fragment(bytes: &mut [u8], more: bool, units: u16) {
        let field = units | if more { 0x2000 } else { 0 };
        bytes[6..8].copy_from_slice(&field.to_be_bytes());
    }

    #[test]
    fn ipv4_fragments() {
        // 20 + 20 + 4: a 24-byte fragmentable part, a multiple of 8.
        let mut bytes = v4_tcp(b"data");
        bytes[4..6].copy_from_slice(&0xbeefu16.to_be_bytes());
        set_fragment(&mut bytes, false, 16);
        let ip = parse(&bytes, Version::V4).unwrap();
        let info = ip.fragment.unwrap();
        assert_eq!((info.id, info.offset, info.more), (0xbeef, 128, false));
        assert_eq!((info.version, info.header_len), (IpVersion::V4, 20));
        assert_eq!(
            (ip.protocol, ip.payload.len(), ip.payload_len),
            (protocol::TCP, 24, 24)
        );
        // The first fragment (MF, offset 0) is a fragment too: the defragmenter decides.
        set_fragment(&mut bytes, true, 0);
        let ip = parse(&bytes, Version::V4).unwrap();
        assert_eq!(ip.fragment.map(|f| (f.offset, f.more)), Some((0, true)));
        // Padding beyond the total length is not fragment data.
        let mut padded = bytes.clone();
        padded.extend_from_slice(&[0; 6]);
        assert_eq!(parse(&padded, Version::V4).unwrap().payload, &bytes[20..]);
    }

    #[test]
    fn ipv4_bad_and_cut_fragments() {
        // A non-last fragment of 23 bytes: not a multiple of 8.
        let mut odd = v4_tcp(b"dat");
        set_fragment(&mut odd, true, 1);
        assert_eq!(parse(&odd, Version::V4), Err(DropReason::BadFragment));
        // The last fragment may have any length, but not reach past 65,535.
        set_fragment(&mut odd, false, 1);
        assert!(parse(&odd, Version::V4).is_ok());
        set_fragment(&mut odd, false, 8190); // 65,520 + 23
        assert_eq!(parse(&odd, Version::V4), Err(DropReason::BadFragment));
        // A fragment must declare its length (no offload zero).
        let mut zero = v4_tcp(b"data");
        set_fragment(&mut zero, false, 4);
        zero[2..4].copy_from_slice(&0u16.to_be_bytes());
        assert_eq!(parse(&zero, Version::V4), Err(DropReason::BadFragment));
        // Snaplen: a cut later fragment cannot be used; a cut first fragment is read as the
        // start of its datagram, as an unfragmented packet would be.
        let mut bytes = v4_tcp(&[7; 36]);
        set_fragment(&mut bytes, false, 2);
        assert_eq!(
            parse(&bytes[..50], Version::V4),
            Err(DropReason::truncated(Layer::Ip))
        );
        set_fragment(&mut bytes, true, 0);
        let ip = parse(&bytes[..50], Version::V4).unwrap();
        assert_eq!(ip.fragment, None);
        let seg = tcp(&ip).unwrap();
        assert_eq!(
            (seg.dst_port, seg.payload.len(), seg.payload_len),
            (443, 10, 36)
        );
        let ip = parse(&bytes[..30], Version::V4).unwrap();
        assert_eq!(tcp(&ip), Err(DropReason::truncated(Layer::Tcp)));
    }

    #[test]
    fn reassembled_payload_skips_auth_and_extension_headers() {
        let tcp_bytes = &v4_tcp(b"whole")[20..];
        // IPv4 AH (RFC 4302): next header, payload length in 4-byte words minus 2, reserved,
        // SPI, sequence number, 4 bytes of ICV.
        let ah = [6, 2, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0xaa, 0xbb, 0xcc, 0xdd];
        let payload = [&ah[..], tcp_bytes].concat();
        let head = DatagramHead {
            src: IpAddr::from([10, 0, 0, 1]),
            dst: IpAddr::from([10, 0, 0, 2]),
            vlan: None,
            tunnel: None,
            version: IpVersion::V4,
            protocol: protocol::AUTH,
            header_len: 24,
            depth: 0,
        };
        let ip = reassembled(&head, &payload).unwrap();
        assert_eq!(
            (ip.protocol, ip.ip_len, ip.payload_len),
            (protocol::TCP, 24 + 16 + 25, 25)
        );
        assert_eq!(tcp(&ip).unwrap().payload, b"whole");
        // IPv6: destination options (PadN) after the Fragment header.
        let dest = [6, 0, 1, 4, 0, 0, 0, 0];
        let payload = [&dest[..], tcp_bytes].concat();
        let v6 = DatagramHead {
            version: IpVersion::V6,
            protocol: 60,
            header_len: 40,
            ..head
        };
        let ip = reassembled(&v6, &payload).unwrap();
        assert_eq!((ip.protocol, ip.ip_len), (protocol::TCP, 40 + 8 + 25));
        assert_eq!(tcp(&ip).unwrap().payload, b"whole");
        // A cut header is a truncation, never a panic.
        assert_eq!(
            reassembled(&head, &ah[..6]),
            Err(DropReason::truncated(Layer::Ip))
        );
    }

    /// Found by fuzzing (tests/fuzz, target `decode`): an IPv6 Fragment header naming another
    /// extension header that the frame cuts short. etherparse's extension iterator read past
    /// its slice here (a segmentation fault in a release build); the chain is now walked with
    /// checked reads and the frame is a counted drop.
    #[test]
    fn ipv6_chain_cut_after_a_fragment_header_is_a_drop() {
        let frame: [u8; 62] = [0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x86, 0xdd, 0x60, 0x30, 0x30, 0x30, 0x30, 0x30, 0x2c, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x30, 0x2c, 0x30, 0x00, 0x01, 0x30, 0x30, 0x30, 0x30];
        assert!(super::super::decode(super::super::LinkType::Ethernet, &frame).is_err());
    }

}
