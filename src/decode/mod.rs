//! The decode stage: one captured frame in, the innermost IP flow's view out.
//!
//! [`decode`] takes a link type and the frame bytes and returns a [`Packet`] that borrows the
//! frame, or the one [`DropReason`] the frame is counted under. It is pure and sans-IO: no
//! allocation, no logging, no clock, and no panic on any input (a test feeds it every prefix of
//! a tunnelled frame and pseudo-random byte soup).
//!
//! # What is walked, and by whom
//!
//! ```text
//! link      Ethernet II, Linux SLL/SLL2, NULL/LOOP, PPP, PPP-in-HDLC/Cisco HDLC, raw IPv4/IPv6
//! shims     802.1Q / 802.1ad / 0x9100 VLAN tags, MPLS label stacks (+ pseudowire control word),
//!           PPPoE session
//! ip        IPv4 with options and AH, IPv6 with extension headers (etherparse `LaxIpSlice`)
//! tunnels   IP-in-IP (4in4, 6in4, 4in6, 6in6), GRE (+ ERSPAN I/II/III),
//!           UDP: VXLAN, GENEVE, GTP-U, Teredo
//! transport TCP, UDP (etherparse), anything else reported by protocol number
//! fragments IPv4 fragments and IPv6 Fragment headers, at any depth: Transport::Fragment
//! ```
//!
//! etherparse reads Ethernet, VLAN tags, IP and TCP/UDP; its lax slices keep a snaplen-cut
//! packet usable. Everything it does not cover is hand-written in `link.rs` and `tunnel.rs`, each
//! header with a `mod field` of byte offsets and a length contract on its parser.
//!
//! # Two policies worth knowing
//!
//! * **Tunnels named by an IP protocol number (4, 41, 47) are trusted**: when the inner packet
//!   does not decode, the frame is dropped with the inner reason. The outer header said what
//!   follows, so an inner failure is a real defect worth counting.
//! * **Tunnels guessed from a UDP port (VXLAN 4789, GENEVE 6081, GTP-U 2152, Teredo 3544) fall
//!   back**: when the tunnel header does not validate or anything inside fails (including
//!   [`DropReason::EncapTooDeep`]), the datagram is reported as the plain UDP flow it is on
//!   the wire. Ports are only a hint; a real application on UDP/4789 must not vanish from the
//!   flow table because its bytes are not VXLAN.
//!
//! # Fragments
//!
//! decode does not hold state, so it does not reassemble: every fragment of an IPv4 datagram
//! or IPv6 packet (the first one too) comes out as [`Transport::Fragment`], with what the
//! engine's defragmenter (`flow::defrag`) needs. Once a datagram is whole, [`reassembled`]
//! reads it with the same code as an unfragmented packet: TCP and UDP headers, and the tunnels
//! decode follows (a fragmented outer GRE, IP-in-IP or VXLAN packet is walked into after
//! reassembly, and its inner packet may itself be a fragment). A fragment that cannot belong
//! to any datagram is [`DropReason::BadFragment`].
//!
//! # Cost
//!
//! Ethernet → IPv4 → TCP is a straight line: one Ethernet read, one EtherType match, one
//! `LaxIpSlice`, one `TcpHeaderSlice`; it measured slightly faster than etherparse's own
//! `LaxSlicedPacket::from_ethernet` on the same frame. The walk loops only for shims and
//! tunnels, and both loops are bounded by [`MAX_LINK_HEADERS`] and [`MAX_ENCAP_DEPTH`].
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod drop;
mod frame;
mod ip;
mod link;
mod tunnel;

use core::ops::BitOr;
use std::net::IpAddr;

pub use drop::{DropReason, Layer};
pub use frame::Frame;

use ip::Version;

/// Most tunnels decode strips from one frame (IP-in-IP, GRE, ERSPAN, VXLAN, GENEVE, GTP-U,
/// Teredo, in any nesting). The next one is [`DropReason::EncapTooDeep`] (or, for a tunnel
/// guessed from a UDP port, the UDP flow it sits in).
///
/// Cost: bounds the work per frame and the recursion depth of UDP-tunnel fallback (one small
/// stack frame per level); no memory is held.
pub const MAX_ENCAP_DEPTH: usize = 4;

/// Most link-level headers (Ethernet, VLAN tag, MPLS label, pseudowire control word, PPPoE,
/// PPP) decode walks between two IP layers. Exceeding it is [`DropReason::EncapTooDeep`].
///
/// Real stacks use a handful (QinQ + 3 labels + pseudowire + inner Ethernet + VLAN is 8); the
/// bound keeps a frame made of 4-byte VLAN tags from costing thousands of iterations. No memory
/// is held.
pub const MAX_LINK_HEADERS: usize = 16;

/// The link-layer header type of a capture (libpcap `LINKTYPE_*` / `DLT_*`).
///
/// See <https://www.tcpdump.org/linktypes.html> for the values and framing of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// `LINKTYPE_ETHERNET` (1): Ethernet II / IEEE 802.3.
    Ethernet,
    /// `LINKTYPE_LINUX_SLL` (113): Linux "cooked" capture, 16-byte header.
    LinuxSll,
    /// `LINKTYPE_LINUX_SLL2` (276): Linux "cooked" capture v2, 20-byte header with ifindex.
    LinuxSll2,
    /// `DLT_RAW` (12, or 14 on OpenBSD) and `LINKTYPE_RAW` (101): bare IPv4 or IPv6, told apart
    /// by the version nibble.
    Raw,
    /// `LINKTYPE_IPV4` (228): bare IPv4.
    Ipv4,
    /// `LINKTYPE_IPV6` (229): bare IPv6.
    Ipv6,
    /// `LINKTYPE_NULL` (0): BSD loopback, 4-byte address family in the capturing host's byte
    /// order (guessed from the value, see `link.rs`).
    Null,
    /// `LINKTYPE_LOOP` (108): OpenBSD loopback, 4-byte address family in network byte order.
    Loop,
    /// `LINKTYPE_PPP` (9): PPP (RFC 1661), with or without the RFC 1662 `ff 03` prefix.
    Ppp,
    /// `LINKTYPE_PPP_HDLC` (50): PPP in HDLC-like framing (RFC 1662) or Cisco HDLC.
    PppHdlc,
}

impl LinkType {
    /// Every link type decode reads (for tests and fuzzing that try each).
    pub const ALL: [LinkType; 10] = [
        LinkType::Ethernet,
        LinkType::LinuxSll,
        LinkType::LinuxSll2,
        LinkType::Raw,
        LinkType::Ipv4,
        LinkType::Ipv6,
        LinkType::Null,
        LinkType::Loop,
        LinkType::Ppp,
        LinkType::PppHdlc,
    ];

    /// Maps a pcap link-layer header type to a supported [`LinkType`]; `None` when decode
    /// does not read that link type (capture counts it as [`DropReason::UnsupportedLinkType`]).
    pub fn from_dlt(dlt: i32) -> Option<LinkType> {
        Some(match dlt {
            0 => LinkType::Null,
            1 => LinkType::Ethernet,
            9 => LinkType::Ppp,
            12 | 14 | 101 => LinkType::Raw,
            50 => LinkType::PppHdlc,
            108 => LinkType::Loop,
            113 => LinkType::LinuxSll,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            276 => LinkType::LinuxSll2,
            _ => return None,
        })
    }

    /// Short snake_case name for logs and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            LinkType::Ethernet => "ethernet",
            LinkType::LinuxSll => "linux_sll",
            LinkType::LinuxSll2 => "linux_sll2",
            LinkType::Raw => "raw",
            LinkType::Ipv4 => "ipv4",
            LinkType::Ipv6 => "ipv6",
            LinkType::Null => "null",
            LinkType::Loop => "loop",
            LinkType::Ppp => "ppp",
            LinkType::PppHdlc => "ppp_hdlc",
        }
    }
}

/// A tunnel decode stripped to reach the inner packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tunnel {
    /// GRE (RFC 2784, RFC 2890) carrying IP, MPLS or Ethernet (transparent bridging).
    Gre,
    /// Cisco ERSPAN type I, II or III over GRE, carrying a mirrored Ethernet frame.
    Erspan,
    /// VXLAN over UDP/4789 (RFC 7348).
    Vxlan,
    /// GENEVE over UDP/6081 (RFC 8926).
    Geneve,
    /// IPv4 or IPv6 directly in IPv4 or IPv6: protocol 4 (RFC 2003) or 41 (RFC 4213).
    IpInIp,
    /// Teredo, IPv6 over UDP/3544 (RFC 4380).
    Teredo,
    /// GTP-U over UDP/2152 (3GPP TS 29.281).
    GtpU,
}

impl Tunnel {
    /// Short lowercase name for flow records and metric labels.
    pub fn as_str(&self) -> &'static str {
        match self {
            Tunnel::Gre => "gre",
            Tunnel::Erspan => "erspan",
            Tunnel::Vxlan => "vxlan",
            Tunnel::Geneve => "geneve",
            Tunnel::IpInIp => "ip-in-ip",
            Tunnel::Teredo => "teredo",
            Tunnel::GtpU => "gtp-u",
        }
    }
}

/// The TCP control bits, byte 13 of the TCP header (RFC 9293 section 3.1, RFC 3168 for ECE
/// and CWR). Kept as the raw byte so nothing is lost for fingerprints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// No more data from sender.
    pub const FIN: TcpFlags = TcpFlags(0x01);
    /// Synchronize sequence numbers.
    pub const SYN: TcpFlags = TcpFlags(0x02);
    /// Reset the connection.
    pub const RST: TcpFlags = TcpFlags(0x04);
    /// Push function.
    pub const PSH: TcpFlags = TcpFlags(0x08);
    /// Acknowledgment field is significant.
    pub const ACK: TcpFlags = TcpFlags(0x10);
    /// Urgent pointer field is significant.
    pub const URG: TcpFlags = TcpFlags(0x20);
    /// ECN-Echo (RFC 3168).
    pub const ECE: TcpFlags = TcpFlags(0x40);
    /// Congestion Window Reduced (RFC 3168).
    pub const CWR: TcpFlags = TcpFlags(0x80);

    /// True when every bit of `other` is set in `self`.
    pub fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }
}

impl BitOr for TcpFlags {
    type Output = TcpFlags;

    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | rhs.0)
    }
}

/// The parts of a TCP segment the flow table and the protocol probes need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgment number (meaningful when [`TcpFlags::ACK`] is set).
    pub ack: u32,
    /// Control bits.
    pub flags: TcpFlags,
    /// Receive window, unscaled.
    pub window: u16,
    /// The captured payload bytes; shorter than `payload_len` when the snaplen cut the frame,
    /// and empty when the snaplen cut into the TCP options.
    pub payload: &'a [u8],
    /// Payload length as the IP header declares it (IP length minus IP and TCP headers);
    /// `>= payload.len()`. Sequence tracking uses this, not `payload.len()`.
    pub payload_len: u32,
}

/// The parts of a UDP datagram the flow table and the protocol probes need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpDatagram<'a> {
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// The captured payload bytes, bounded by the UDP length field.
    pub payload: &'a [u8],
}

/// IPv4 or IPv6, for what decode reports without an address to tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IpVersion {
    /// IPv4 (RFC 791).
    V4,
    /// IPv6 (RFC 8200).
    V6,
}

/// One fragment of an IP datagram (RFC 791 section 3.2) or IPv6 packet (RFC 8200 section
/// 4.5): the fields that identify its datagram and place its bytes, for the defragmenter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment<'a> {
    /// IP version.
    pub version: IpVersion,
    /// Identification: 16 bits in IPv4, 32 bits in the IPv6 Fragment header.
    pub id: u32,
    /// Where `payload` starts in the datagram's fragmentable part, in bytes (the header's
    /// offset times 8).
    pub offset: u16,
    /// More fragments follow (IPv4 MF, IPv6 M). The fragment without it fixes the length.
    pub more: bool,
    /// Protocol of the fragmentable part: the IPv4 protocol field, or the Fragment header's
    /// Next Header (only the first fragment's counts, RFC 8200 section 4.5).
    pub protocol: u8,
    /// The fragment's bytes, exactly as long as its header declares (a non-first fragment
    /// cut by the snaplen is dropped as truncated, so this is never a cut copy); a multiple of
    /// 8 bytes unless it is the last, and `offset + payload.len() <= 65,535`.
    pub payload: &'a [u8],
    /// IP header bytes the reassembled datagram has in front of the fragmentable part: the
    /// IPv4 header with options, or the IPv6 header with the extension headers before the
    /// Fragment header. The datagram's [`Packet::ip_len`] is this plus its fragmentable length.
    pub header_len: u16,
    /// Tunnels stripped to reach this IP header, so that the walk after reassembly keeps
    /// [`MAX_ENCAP_DEPTH`].
    pub depth: u8,
}

/// The transport layer of the innermost IP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport<'a> {
    /// TCP (IP protocol 6).
    Tcp(TcpSegment<'a>),
    /// UDP (IP protocol 17), when it is not a tunnel decode stripped.
    Udp(UdpDatagram<'a>),
    /// Any other protocol (ICMP, ESP, SCTP, ...), by IP protocol number.
    Other {
        /// IP protocol number (IANA "Assigned Internet Protocol Numbers").
        protocol: u8,
    },
    /// A fragment of a larger datagram: no transport header to read until it is reassembled
    /// (the engine hands it to `flow::defrag`, then decodes the whole with [`reassembled`]).
    Fragment(Fragment<'a>),
}

/// What decoding a reassembled datagram needs to know besides its bytes: the IP-level facts
/// of its fragments (owned and `Copy`, so the defragmenter keeps it without the frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatagramHead {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Outermost VLAN id of the fragments' frames.
    pub vlan: Option<u16>,
    /// Outermost tunnel stripped to reach the fragments.
    pub tunnel: Option<Tunnel>,
    /// IP version.
    pub version: IpVersion,
    /// Protocol of the fragmentable part (the first fragment's).
    pub protocol: u8,
    /// IP header bytes in front of the fragmentable part (the first fragment's, see
    /// [`Fragment::header_len`]).
    pub header_len: u16,
    /// Tunnels stripped to reach the fragments.
    pub depth: u8,
}

impl DatagramHead {
    /// What `frag`, carried by `pkt`, says about its datagram.
    pub fn new(pkt: &Packet<'_>, frag: &Fragment<'_>) -> DatagramHead {
        DatagramHead {
            src: pkt.src,
            dst: pkt.dst,
            vlan: pkt.vlan,
            tunnel: pkt.tunnel,
            version: frag.version,
            protocol: frag.protocol,
            header_len: frag.header_len,
            depth: frag.depth,
        }
    }
}

/// The innermost IP packet of a frame, borrowing the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Source address of the innermost IP header.
    pub src: IpAddr,
    /// Destination address of the innermost IP header.
    pub dst: IpAddr,
    /// Total length of the innermost IP packet as its header declares it (IPv4 total length,
    /// IPv6 40 + payload length); the captured length when the field is 0 (TSO, jumbograms).
    /// This is what byte counters add, independent of the snaplen.
    pub ip_len: u32,
    /// Transport layer.
    pub transport: Transport<'a>,
    /// Outermost 802.1Q / 802.1ad VLAN id seen anywhere in the frame, if any.
    pub vlan: Option<u16>,
    /// Outermost tunnel that was stripped, if any.
    pub tunnel: Option<Tunnel>,
}

/// Decodes one captured frame down to its innermost IP packet.
///
/// Never panics and never allocates; the returned [`Packet`] borrows `frame`.
///
/// # Errors
///
/// The [`DropReason`] the frame is counted under: truncation (per layer), a link or EtherType
/// decode does not read, a non-IP protocol, a malformed IP fragment, a malformed
/// IP/TCP/UDP/GRE header, or encapsulation nested deeper than [`MAX_ENCAP_DEPTH`] /
/// [`MAX_LINK_HEADERS`].
pub fn decode(link: LinkType, frame: &[u8]) -> Result<Packet<'_>, DropReason> {
    let mut ctx = Ctx::default();
    // The common case names IP right after the link header; skip the loop for it.
    let (version, bytes) = match link::start(link, frame, &mut ctx.vlan)? {
        Step::Ip(version, bytes) => (version, bytes),
        step => walk_link(step, &mut ctx)?,
    };
    walk_ip(version, bytes, ctx)
}

/// What the next bytes are, as the previous header named them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step<'a> {
    /// An Ethernet II header (inner frame of a pseudowire, VXLAN, GRE bridging, ERSPAN).
    Ethernet(&'a [u8]),
    /// A payload of the given EtherType.
    EtherType(u16, &'a [u8]),
    /// An MPLS label stack entry.
    Mpls(&'a [u8]),
    /// A PPP protocol field, optionally after the RFC 1662 `ff 03` address and control.
    Ppp(&'a [u8]),
    /// An IP header of the given version.
    Ip(Version, &'a [u8]),
}

/// What the walk has seen so far. `Copy` so that a UDP tunnel attempt can be abandoned
/// without undoing anything.
#[derive(Debug, Clone, Copy, Default)]
struct Ctx {
    /// Outermost VLAN id.
    vlan: Option<u16>,
    /// Outermost tunnel.
    tunnel: Option<Tunnel>,
    /// Tunnels stripped so far.
    depth: usize,
}

impl Ctx {
    /// Records entering one more tunnel of kind `kind`.
    fn enter(&mut self, kind: Tunnel) -> Result<(), DropReason> {
        if self.depth >= MAX_ENCAP_DEPTH {
            return Err(DropReason::EncapTooDeep);
        }
        self.depth += 1;
        self.tunnel.get_or_insert(kind);
        Ok(())
    }
}

/// Walks link-level headers until an IP header is named.
fn walk_link<'a>(mut step: Step<'a>, ctx: &mut Ctx) -> Result<(Version, &'a [u8]), DropReason> {
    for _ in 0..MAX_LINK_HEADERS {
        step = match step {
            Step::Ip(version, bytes) => return Ok((version, bytes)),
            Step::Ethernet(bytes) => link::ethernet(bytes, &mut ctx.vlan)?,
            Step::EtherType(ethertype, bytes) => link::ethertype(ethertype, bytes, &mut ctx.vlan)?,
            Step::Mpls(bytes) => link::mpls(bytes)?,
            Step::Ppp(bytes) => link::ppp(bytes)?,
        };
    }
    match step {
        Step::Ip(version, bytes) => Ok((version, bytes)),
        _ => Err(DropReason::EncapTooDeep),
    }
}

/// Walks IP headers and tunnels down to the innermost transport layer.
#[inline]
fn walk_ip<'a>(
    mut version: Version,
    mut bytes: &'a [u8],
    mut ctx: Ctx,
) -> Result<Packet<'a>, DropReason> {
    loop {
        let ip = ip::parse(bytes, version)?;
        match above_ip(&ip, &mut ctx)? {
            Above::Packet(packet) => return Ok(packet),
            Above::Ip(inner_version, inner) => (version, bytes) = (inner_version, inner),
        }
    }
}

/// What follows an IP header.
enum Above<'a> {
    /// The innermost packet.
    Packet(Packet<'a>),
    /// A tunnel was stripped: another IP header of this version.
    Ip(Version, &'a [u8]),
}

/// Reads what `ip` carries: a transport header, a fragment, or a tunnel to walk into.
#[inline]
fn above_ip<'a>(ip: &ip::Ip<'a>, ctx: &mut Ctx) -> Result<Above<'a>, DropReason> {
    let transport = if let Some(info) = ip.fragment {
        Transport::Fragment(Fragment {
            version: info.version,
            id: info.id,
            offset: info.offset,
            more: info.more,
            protocol: ip.protocol,
            payload: ip.payload,
            header_len: info.header_len,
            depth: u8::try_from(ctx.depth).unwrap_or(u8::MAX),
        })
    } else {
        match ip.protocol {
            ip::protocol::TCP => Transport::Tcp(ip::tcp(ip)?),
            ip::protocol::UDP => {
                let (udp, declared_len) = ip::udp(ip)?;
                if let Some(inner) = udp_tunnel(&udp, declared_len, *ctx) {
                    return Ok(Above::Packet(inner));
                }
                Transport::Udp(udp)
            }
            ip::protocol::IPV4_IN_IP | ip::protocol::IPV6_IN_IP => {
                ctx.enter(Tunnel::IpInIp)?;
                let version = if ip.protocol == ip::protocol::IPV4_IN_IP {
                    Version::V4
                } else {
                    Version::V6
                };
                return Ok(Above::Ip(version, ip.payload));
            }
            ip::protocol::GRE => {
                let (kind, step) = tunnel::gre(ip.payload)?;
                ctx.enter(kind)?;
                let (version, bytes) = walk_link(step, ctx)?;
                return Ok(Above::Ip(version, bytes));
            }
            protocol => Transport::Other { protocol },
        }
    };
    Ok(Above::Packet(Packet {
        src: ip.src,
        dst: ip.dst,
        ip_len: ip.ip_len,
        transport,
        vlan: ctx.vlan,
        tunnel: ctx.tunnel,
    }))
}

/// Decodes a reassembled datagram: `payload` is its whole fragmentable part (the bytes of its
/// fragments put together), `head` what the fragments said about it. The result is what
/// [`decode`] would have returned for the datagram unfragmented: the same TCP/UDP readers,
/// the same tunnels, with [`Packet::ip_len`] the whole datagram's IP length. Pure and
/// sans-IO, like [`decode`]; the packet borrows `payload`.
///
/// # Errors
///
/// The [`DropReason`] the datagram is counted under: a header opening the payload (IPv4 AH,
/// IPv6 destination options) cut or malformed, a second Fragment header
/// ([`DropReason::BadFragment`]), a malformed TCP/UDP header, or a tunnel inside that fails.
pub fn reassembled<'a>(head: &DatagramHead, payload: &'a [u8]) -> Result<Packet<'a>, DropReason> {
    let ip = ip::reassembled(head, payload)?;
    let mut ctx = Ctx {
        vlan: head.vlan,
        tunnel: head.tunnel,
        depth: usize::from(head.depth).min(MAX_ENCAP_DEPTH),
    };
    match above_ip(&ip, &mut ctx)? {
        Above::Packet(packet) => Ok(packet),
        Above::Ip(version, bytes) => walk_ip(version, bytes, ctx),
    }
}

/// Tries the UDP-port tunnels; `None` means "report the plain UDP flow" (see the module docs).
fn udp_tunnel<'a>(udp: &UdpDatagram<'a>, declared_len: u32, ctx: Ctx) -> Option<Packet<'a>> {
    let (kind, step) = tunnel::udp(udp.src_port, udp.dst_port, udp.payload, declared_len)?;
    let mut inner = ctx;
    inner.enter(kind).ok()?;
    let (version, bytes) = walk_link(step, &mut inner).ok()?;
    walk_ip(version, bytes, inner).ok()
}

/// Big-endian u16 at `at`, or 0 past the end. Parsers check their length contract first, so
/// the fallback is never observed; it exists so that a slip cannot become a panic.
fn be16(bytes: &[u8], at: usize) -> u16 {
    match bytes.get(at..at.saturating_add(2)) {
        Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
        _ => 0,
    }
}

/// A slice length as u32, saturating (frames are far below 4 GiB).
fn len32(bytes: &[u8]) -> u32 {
    u32::try_from(bytes.len()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{IpNumber, Ipv4Header, Ipv6Header, PacketBuilder};
    use std::net::{Ipv4Addr, Ipv6Addr};

    const V4_SRC: [u8; 4] = [192, 0, 2, 1];
    const V4_DST: [u8; 4] = [198, 51, 100, 2];
    const V6_SRC: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const V6_DST: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    fn eth(ethertype: u16) -> Vec<u8> {
        let mut out = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
        out.extend_from_slice(&ethertype.to_be_bytes());
        out
    }

    fn vlan_tag(id: u16, inner: u16) -> Vec<u8> {
        let mut out = id.to_be_bytes().to_vec();
        out.extend_from_slice(&inner.to_be_bytes());
        out
    }

    fn cat(parts: &[&[u8]]) -> Vec<u8> {
        parts.concat()
    }

    /// IPv4 + TCP (SYN, 443) with `payload`.
    fn v4_tcp(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv4(V4_SRC, V4_DST, 64)
            .tcp(40000, 443, 7, 1024)
            .syn()
            .write(&mut out, payload)
            .unwrap();
        out
    }

    /// IPv6 + TCP (SYN, 443) with `payload`.
    fn v6_tcp(payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv6(V6_SRC, V6_DST, 64)
            .tcp(40000, 443, 7, 1024)
            .syn()
            .write(&mut out, payload)
            .unwrap();
        out
    }

    /// IPv4 + UDP between the given ports.
    fn v4_udp(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv4(V4_SRC, V4_DST, 64)
            .udp(src_port, dst_port)
            .write(&mut out, payload)
            .unwrap();
        out
    }

    /// IPv6 + UDP between the given ports.
    fn v6_udp(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        PacketBuilder::ipv6(V6_SRC, V6_DST, 64)
            .udp(src_port, dst_port)
            .write(&mut out, payload)
            .unwrap();
        out
    }

    /// An outer IPv4 header of protocol `protocol` around `payload`.
    fn v4_with(protocol: u8, payload: &[u8]) -> Vec<u8> {
        let len = u16::try_from(payload.len()).unwrap();
        let header = Ipv4Header::new(len, 64, IpNumber(protocol), [10, 0, 0, 1], [10, 0, 0, 2]);
        let mut out = header.unwrap().to_bytes().to_vec();
        out.extend_from_slice(payload);
        out
    }

    /// An outer IPv6 header with next header `next` around `payload`.
    fn v6_with(next: u8, payload: &[u8]) -> Vec<u8> {
        let header = Ipv6Header {
            payload_length: u16::try_from(payload.len()).unwrap(),
            next_header: IpNumber(next),
            hop_limit: 64,
            source: [0xfe; 16],
            destination: [0xfd; 16],
            ..Default::default()
        };
        cat(&[&header.to_bytes(), payload])
    }

    fn tcp_of<'a>(packet: &Packet<'a>) -> TcpSegment<'a> {
        match packet.transport {
            Transport::Tcp(segment) => segment,
            other => panic!("not TCP: {other:?}"),
        }
    }

    fn udp_of<'a>(packet: &Packet<'a>) -> UdpDatagram<'a> {
        match packet.transport {
            Transport::Udp(datagram) => datagram,
            other => panic!("not UDP: {other:?}"),
        }
    }

    /// The inner IPv4/TCP flow of most tests.
    fn assert_inner_v4_tcp(packet: &Packet<'_>, payload: &[u8]) {
        assert_eq!(packet.src, IpAddr::V4(Ipv4Addr::from(V4_SRC)));
        assert_eq!(packet.dst, IpAddr::V4(Ipv4Addr::from(V4_DST)));
        assert_eq!(packet.ip_len, 40 + len32(payload));
        let segment = tcp_of(packet);
        assert_eq!(
            (segment.src_port, segment.dst_port, segment.seq),
            (40000, 443, 7)
        );
        assert!(segment.flags.contains(TcpFlags::SYN));
        assert!(!segment.flags.contains(TcpFlags::SYN | TcpFlags::ACK));
        assert_eq!(segment.window, 1024);
        assert_eq!(segment.payload, payload);
        assert_eq!(segment.payload_len, len32(payload));
    }

    fn assert_inner_v6_tcp(packet: &Packet<'_>) {
        assert_eq!(packet.src, IpAddr::V6(Ipv6Addr::from(V6_SRC)));
        assert_eq!(packet.dst, IpAddr::V6(Ipv6Addr::from(V6_DST)));
        assert_eq!(tcp_of(packet).dst_port, 443);
    }

    #[test]
    fn link_type_codes_round_trip() {
        for (dlt, link) in [
            (0, LinkType::Null),
            (1, LinkType::Ethernet),
            (9, LinkType::Ppp),
            (12, LinkType::Raw),
            (14, LinkType::Raw),
            (50, LinkType::PppHdlc),
            (101, LinkType::Raw),
            (108, LinkType::Loop),
            (113, LinkType::LinuxSll),
            (228, LinkType::Ipv4),
            (229, LinkType::Ipv6),
            (276, LinkType::LinuxSll2),
        ] {
            assert_eq!(LinkType::from_dlt(dlt), Some(link));
        }
        assert_eq!(LinkType::from_dlt(105), None); // 802.11
        assert_eq!(LinkType::LinuxSll2.as_str(), "linux_sll2");
        assert_eq!(Tunnel::IpInIp.as_str(), "ip-in-ip");
        assert_eq!(Tunnel::GtpU.as_str(), "gtp-u");
    }

    #[test]
    fn ethernet_ipv4_tcp() {
        let frame = cat(&[&eth(0x0800), &v4_tcp(b"GET /")]);
        let packet = decode(LinkType::Ethernet, &frame).unwrap();
        assert_inner_v4_tcp(&packet, b"GET /");
        assert_eq!((packet.vlan, packet.tunnel), (None, None));
    }

    #[test]
    fn every_link_type() {
        let v4 = v4_tcp(b"x");
        let v6 = v6_tcp(b"");
        let sll = cat(&[
            &[0, 0, 0x03, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x08, 0x00],
            &v4,
        ]);
        let sll2 = cat(&[
            &[0x86, 0xdd, 0, 0, 0, 0, 0, 3, 0xff, 0xfe, 0, 0],
            &[0; 8],
            &v6,
        ]);
        let null = cat(&[&[2, 0, 0, 0], &v4]);
        let loop_v6 = cat(&[&[0, 0, 0, 24], &v6]);
        let ppp = cat(&[&[0xff, 0x03, 0x00, 0x21], &v4]);
        let ppp_bare = cat(&[&[0x00, 0x57], &v6]);
        let hdlc = cat(&[&[0xff, 0x03, 0x21], &v4]);
        let chdlc = cat(&[&[0x0f, 0x00, 0x86, 0xdd], &v6]);
        let v4_cases: [(LinkType, &[u8]); 6] = [
            (LinkType::LinuxSll, &sll),
            (LinkType::Raw, &v4),
            (LinkType::Ipv4, &v4),
            (LinkType::Null, &null),
            (LinkType::Ppp, &ppp),
            (LinkType::PppHdlc, &hdlc),
        ];
        for (link, frame) in v4_cases {
            assert_inner_v4_tcp(&decode(link, frame).unwrap(), b"x");
        }
        let v6_cases: [(LinkType, &[u8]); 6] = [
            (LinkType::LinuxSll2, &sll2),
            (LinkType::Raw, &v6),
            (LinkType::Ipv6, &v6),
            (LinkType::Loop, &loop_v6),
            (LinkType::Ppp, &ppp_bare),
            (LinkType::PppHdlc, &chdlc),
        ];
        for (link, frame) in v6_cases {
            assert_inner_v6_tcp(&decode(link, frame).unwrap());
        }
        // The link type names the version; a mismatch is a bad header.
        assert_eq!(decode(LinkType::Ipv6, &v4), Err(DropReason::BadIpHeader));
    }

    #[test]
    fn qinq_reports_outer_vlan() {
        for outer in [0x88a8u16, 0x9100] {
            let frame = cat(&[
                &eth(outer),
                &vlan_tag(100, 0x8100),
                &vlan_tag(200, 0x0800),
                &v4_tcp(b""),
            ]);
            let packet = decode(LinkType::Ethernet, &frame).unwrap();
            assert_eq!(packet.vlan, Some(100));
            assert_inner_v4_tcp(&packet, b"");
        }
    }

    #[test]
    fn mpls_two_labels_and_pseudowire() {
        let labels = [0x00, 0x01, 0x00, 0x40, 0x00, 0x02, 0x01, 0x40];
        let frame = cat(&[&eth(0x8847), &labels, &v6_tcp(b"")]);
        assert_inner_v6_tcp(&decode(LinkType::Ethernet, &frame).unwrap());
        // Pseudowire: control word, inner Ethernet with a VLAN tag.
        let inner = cat(&[&eth(0x8100), &vlan_tag(7, 0x0800), &v4_tcp(b"pw")]);
        let frame = cat(&[&eth(0x8847), &labels, &[0, 0, 0, 0], &inner]);
        let packet = decode(LinkType::Ethernet, &frame).unwrap();
        assert_inner_v4_tcp(&packet, b"pw");
        assert_eq!(packet.vlan, Some(7));
    }

    #[test]
    fn pppoe_session() {
        let ip = v4_tcp(b"ppp");
        let length = u16::try_from(ip.len() + 2).unwrap().to_be_bytes();
        let header = [0x11, 0x00, 0x00, 0x2a, length[0], length[1], 0x00, 0x21];
        let frame = cat(&[&eth(0x8864), &header, &ip]);
        assert_inner_v4_tcp(&decode(LinkType::Ethernet, &frame).unwrap(), b"ppp");
    }

    #[test]
    fn gre_with_key_and_sequence() {
        let gre = [0x30, 0x00, 0x08, 0x00, 0, 0, 0, 42, 0, 0, 0, 1];
        let frame = cat(&[&eth(0x0800), &v4_with(47, &cat(&[&gre, &v4_tcp(b"g")]))]);
        let packet = decode(LinkType::Ethernet, &frame).unwrap();
        assert_inner_v4_tcp(&packet, b"g");
        assert_eq!(packet.tunnel, Some(Tunnel::Gre));
        // Transparent Ethernet bridging.
        let gre_teb = [0x00, 0x00, 0x65, 0x58];
        let inner = cat(&[&eth(0x86dd), &v6_tcp(b"")]);
        let frame = cat(&[&eth(0x0800), &v4_with(47, &cat(&[&gre_teb, &inner]))]);
        assert_inner_v6_tcp(&decode(LinkType::Ethernet, &frame).unwrap());
        // PPTP enhanced GRE.
        let pptp = [0x30, 0x81, 0x88, 0x0b, 0, 0, 0, 0, 0, 0, 0, 0];
        let frame = cat(&[&eth(0x0800), &v4_with(47, &pptp)]);
        assert_eq!(
            decode(LinkType::Ethernet, &frame),
            Err(DropReason::UnsupportedGre)
        );
    }

    #[test]
    fn erspan_i_ii_iii() {
        let mirrored = cat(&[&eth(0x8100), &vlan_tag(30, 0x0800), &v4_tcp(b"m")]);
        let type_i = [0x00, 0x00, 0x88, 0xbe];
        let type_ii = [
            0x10, 0x00, 0x88, 0xbe, 0, 0, 0, 9, 0x10, 0x1e, 0x00, 0x05, 0, 0, 0, 0,
        ];
        let type_iii = [
            0x10, 0x00, 0x22, 0xeb, 0, 0, 0, 9, // GRE with sequence number
            0x20, 0x1e, 0x00, 0x05, 0, 0, 0, 0, 0, 0, 0x00, 0x01, // ERSPAN III, O set
            0, 0, 0, 0, 0, 0, 0, 0, // platform-specific subheader
        ];
        for header in [&type_i[..], &type_ii, &type_iii] {
            let frame = cat(&[&eth(0x0800), &v4_with(47, &cat(&[header, &mirrored]))]);
            let packet = decode(LinkType::Ethernet, &frame).unwrap();
            assert_inner_v4_tcp(&packet, b"m");
            assert_eq!(packet.tunnel, Some(Tunnel::Erspan));
            assert_eq!(packet.vlan, Some(30));
        }
    }

    #[test]
    fn vxlan_inner_ethernet() {
        let vxlan = [0x08, 0, 0, 0, 0, 0x12, 0x34, 0];
        let inner = cat(&[&eth(0x8100), &vlan_tag(5, 0x0800), &v4_tcp(b"v")]);
        let outer = v4_udp(51000, 4789, &cat(&[&vxlan, &inner]));
        let frame = cat(&[&eth(0x8100), &vlan_tag(9, 0x0800), &outer]);
        let packet = decode(LinkType::Ethernet, &frame).unwrap();
        assert_inner_v4_tcp(&packet, b"v");
        assert_eq!(packet.tunnel, Some(Tunnel::Vxlan));
        assert_eq!(packet.vlan, Some(9), "outer VLAN wins");
        // Without an outer tag, the inner one is the outermost seen.
        let frame = cat(&[&eth(0x0800), &outer]);
        assert_eq!(decode(LinkType::Ethernet, &frame).unwrap().vlan, Some(5));
    }

    #[test]
    fn port_tunnels_fall_back_to_udp() {
        // UDP/4789 that is not VXLAN (I flag clear).
        let payload = [0u8; 32];
        let frame = cat(&[&eth(0x0800), &v4_udp(51000, 4789, &payload)]);
        let packet = decode(LinkType::Ethernet, &frame).unwrap();
        assert_eq!(packet.tunnel, None);
        assert_eq!(udp_of(&packet).payload, &payload[..]);
        // VXLAN header fine but the inner frame is ARP: still the outer UDP flow.
        let vxlan = [0x08, 0, 0, 0, 0, 0, 1, 0];
        let inner = cat(&[&eth(0x0806), &[0; 28]]);
        let frame = cat(&[&eth(0x0800), &v4_udp(51000, 4789, &cat(&[&vxlan, &inner]))]);
        let packet = decode(LinkType::Ethernet, &frame).unwrap();
        assert_eq!((packet.tunnel, udp_of(&packet).dst_port), (None, 4789));
    }

    #[test]
    fn geneve_with_options() {
        let geneve = [
            0x02, 0x00, 0x65, 0x58, 0x00, 0x00, 0x2a, 0x00, // Opt Len 2, TEB
            0x01, 0x02, 0x80, 0x01, 0xde, 0xad, 0xbe, 0xef, // one 4-byte option
        ];
        let inner = cat(&[&eth(0x0800), &v4_tcp(b"gen")]);
        let frame = cat(&[&eth(0x86dd), &v6_udp(40000, 6081, &cat(&[&geneve, &inner]))]);
        let packet = decode(LinkType::Ethernet, &frame).unwrap();
        assert_inner_v4_tcp(&packet, b"gen");
        assert_eq!(packet.tunnel, Some(Tunnel::Geneve));
    }

    #[test]
    fn gtp_u_with_extension_header() {
        let user = v4_tcp(b"ue");
        let length = u16::try_from(4 + 4 + user.len()).unwrap().to_be_bytes();
        let gtp = [
            0x34, 0xff, length[0], length[1], 0, 0, 0x10, 0x01, // v1, PT, E; G-PDU; TEID
            0x00, 0x00, 0x00, 0x85, // seq, N-PDU, next = PDU session container
            0x01, 0x00, 0x09, 0x00, // container: 1 unit, QFI 9, no next
        ];
        let frame = cat(&[&eth(0x0800), &v4_udp(2152, 2152, &cat(&[&gtp, &user]))]);
        let packet = decode(LinkType::Ethernet, &frame).unwrap();
        assert_inner_v4_tcp(&packet, b"ue");
        assert_eq!(packet.tunnel, Some(Tunnel::GtpU));
    }

    #[test]
    fn ip_in_ip_all_four() {
        let cases = [
            (v4_with(4, &v4_tcp(b"44")), 0x0800),
            (v4_with(41, &v6_tcp(b"")), 0x0800),
            (v6_with(4, &v4_tcp(b"44")), 0x86dd),
            (v6_with(41, &v6_tcp(b"")), 0x86dd),
        ];
        for (outer, ethertype) in cases {
            let frame = cat(&[&eth(ethertype), &outer]);
            let packet = decode(LinkType::Ethernet, &frame).unwrap();
            assert_eq!(packet.tunnel, Some(Tunnel::IpInIp));
            match packet.src {
                IpAddr::V4(_) => assert_inner_v4_tcp(&packet, b"44"),
                IpAddr::V6(_) => assert_inner_v6_tcp(&packet),
            }
        }
        // Protocol 4 must carry IPv4.
        let frame = cat(&[&eth(0x0800), &v4_with(4, &v6_tcp(b""))]);
        assert_eq!(
            decode(LinkType::Ethernet, &frame),
            Err(DropReason::BadIpHeader)
        );
    }

    #[test]
    fn teredo_and_impostor() {
        let inner = v6_tcp(b"t");
        let origin = [0x00, 0x00, 0xf2, 0x27, 0x3f, 0xff, 0xff, 0xfe];
        let frame = cat(&[&eth(0x0800), &v4_udp(3544, 50000, &cat(&[&origin, &inner]))]);
        let packet = decode(LinkType::Ethernet, &frame).unwrap();
        assert_inner_v6_tcp(&packet);
        assert_eq!(packet.tunnel, Some(Tunnel::Teredo));
        // A datagram on 3544 whose "IPv6 header" length does not fit is plain UDP.
        let mut impostor = inner.clone();
        impostor[5] = impostor[5].wrapping_add(1);
        let frame = cat(&[&eth(0x0800), &v4_udp(50000, 3544, &impostor)]);
        let packet = decode(LinkType::Ethernet, &frame).unwrap();
        assert_eq!(packet.tunnel, None);
        assert_eq!(udp_of(&packet).payload, &impostor[..]);
    }

    /// IPv6 + hop-by-hop (PadN) + fragment header + TCP.
    fn v6_fragmented(offset_units: u16, more: bool) -> Vec<u8> {
        let tcp = &v6_tcp(b"frag")[40..];
        let hop_by_hop = [44, 0, 0x01, 0x04, 0, 0, 0, 0];
        let offset = (offset_units << 3) | u16::from(more);
        let fragment = cat(&[&[6, 0], &offset.to_be_bytes(), &[0, 0, 0, 1]]);
        let mut header = v6_with(0, &[]);
        let payload = cat(&[&hop_by_hop, &fragment, tcp]);
        header[4..6].copy_from_slice(&u16::try_from(payload.len()).unwrap().to_be_bytes());
        cat(&[&eth(0x86dd), &header, &payload])
    }

    fn frag_of<'a>(packet: &Packet<'a>) -> Fragment<'a> {
        match packet.transport {
            Transport::Fragment(fragment) => fragment,
            other => panic!("not a fragment: {other:?}"),
        }
    }

    /// `ip` (an IPv4 packet) with its flags and offset set: MF when `more`, `units` × 8 bytes.
    fn v4_fragment_of(ip: &[u8], more: bool, units: u16) -> Vec<u8> {
        let mut out = ip.to_vec();
        let field = units | if more { 0x2000 } else { 0 };
        out[4..6].copy_from_slice(&0x1234u16.to_be_bytes());
        out[6..8].copy_from_slice(&field.to_be_bytes());
        out
    }

    #[test]
    fn ipv6_extension_headers_and_fragments() {
        // The first fragment is a fragment too, with hop-by-hop before its Fragment header.
        let first = v6_fragmented(0, true);
        let packet = decode(LinkType::Ethernet, &first).unwrap();
        let frag = frag_of(&packet);
        assert_eq!(
            (frag.version, frag.id, frag.offset, frag.more, frag.protocol),
            (IpVersion::V6, 1, 0, true, 6)
        );
        assert_eq!(
            (frag.header_len, frag.payload.len(), frag.depth),
            (48, 24, 0)
        );
        assert_eq!(packet.ip_len, 40 + 8 + 8 + 20 + 4);
        // Its 24 bytes are a whole TCP segment: reassembled, they read as one.
        let head = DatagramHead::new(&packet, &frag);
        let whole = reassembled(&head, frag.payload).unwrap();
        assert_eq!(
            (tcp_of(&whole).payload, whole.ip_len),
            (&b"frag"[..], 48 + 24)
        );
        assert_eq!(whole.src, IpAddr::V6(Ipv6Addr::from([0xfe; 16])));
        let later = v6_fragmented(100, false);
        let later = decode(LinkType::Ethernet, &later).unwrap();
        assert_eq!(frag_of(&later).offset, 800);
        assert!(!frag_of(&later).more);
        // An atomic fragment (offset 0, M clear; RFC 6946) is the whole packet.
        let atomic = v6_fragmented(0, false);
        let atomic = decode(LinkType::Ethernet, &atomic).unwrap();
        assert_eq!(tcp_of(&atomic).payload, b"frag");
        // A jumbogram cannot carry a Fragment header.
        let mut jumbo = v6_fragmented(3, false);
        jumbo[14 + 4..14 + 6].copy_from_slice(&[0, 0]);
        assert_eq!(
            decode(LinkType::Ethernet, &jumbo),
            Err(DropReason::BadFragment)
        );
        // IPv4 non-first fragment.
        let v4 = v4_fragment_of(&v4_tcp(b"later"), false, 4);
        let frame = cat(&[&eth(0x0800), &v4]);
        let packet = decode(LinkType::Ethernet, &frame).unwrap();
        let frag = frag_of(&packet);
        assert_eq!(
            (frag.version, frag.id, frag.offset, frag.more, frag.protocol),
            (IpVersion::V4, 0x1234, 32, false, 6)
        );
        assert_eq!(
            (frag.header_len, frag.payload, packet.ip_len),
            (20, &v4[20..], 45)
        );
    }

    #[test]
    fn fragments_inside_and_around_tunnels() {
        // An inner IPv4 fragment inside GRE: a fragment, with the tunnel and its depth.
        let gre = [0x00, 0x00, 0x08, 0x00];
        let inner = v4_fragment_of(&v4_tcp(b"inner"), false, 10);
        let frame = cat(&[&eth(0x0800), &v4_with(47, &cat(&[&gre, &inner]))]);
        let packet = decode(LinkType::Ethernet, &frame).unwrap();
        assert_eq!(packet.tunnel, Some(Tunnel::Gre));
        assert_eq!(packet.src, IpAddr::V4(Ipv4Addr::from(V4_SRC)));
        assert_eq!((frag_of(&packet).offset, frag_of(&packet).depth), (80, 1));
        // An outer fragmented GRE packet: once reassembled, decode walks into the tunnel.
        let outer = v4_with(47, &cat(&[&gre, &v4_tcp(b"outer")]));
        let first = v4_fragment_of(&outer[..20 + 16], true, 0);
        let mut first = first;
        first[2..4].copy_from_slice(&36u16.to_be_bytes());
        let packet = decode(LinkType::Raw, &first).unwrap();
        let frag = frag_of(&packet);
        assert_eq!((frag.protocol, frag.payload.len()), (47, 16));
        let head = DatagramHead::new(&packet, &frag);
        let whole = reassembled(&head, &outer[20..]).unwrap();
        assert_inner_v4_tcp(&whole, b"outer");
        assert_eq!(whole.tunnel, Some(Tunnel::Gre));
        // Depth is kept across reassembly: a datagram found at the deepest level cannot open
        // one more tunnel.
        let deep = DatagramHead {
            depth: u8::try_from(MAX_ENCAP_DEPTH).unwrap(),
            ..head
        };
        assert_eq!(
            reassembled(&deep, &outer[20..]),
            Err(DropReason::EncapTooDeep)
        );
        // A reassembled UDP datagram on the VXLAN port is walked into, as an unfragmented one.
        let vxlan = [0x08, 0, 0, 0, 0, 0, 1, 0];
        let udp = v4_udp(50000, 4789, &cat(&[&vxlan, &eth(0x0800), &v4_tcp(b"vx")]));
        let head = DatagramHead {
            protocol: 17,
            depth: 0,
            tunnel: None,
            ..head
        };
        let whole = reassembled(&head, &udp[20..]).unwrap();
        assert_inner_v4_tcp(&whole, b"vx");
        assert_eq!(whole.tunnel, Some(Tunnel::Vxlan));
    }

    #[test]
    fn truncation_names_the_layer() {
        let t = DropReason::truncated;
        let tcp_frame = cat(&[&eth(0x0800), &v4_tcp(b"")]);
        assert_eq!(
            decode(LinkType::Ethernet, &tcp_frame[..10]),
            Err(t(Layer::Link))
        );
        assert_eq!(
            decode(LinkType::Ethernet, &tcp_frame[..14 + 19]),
            Err(t(Layer::Ip))
        );
        assert_eq!(
            decode(LinkType::Ethernet, &tcp_frame[..14 + 20 + 19]),
            Err(t(Layer::Tcp))
        );
        let udp_frame = cat(&[&eth(0x0800), &v4_udp(1, 2, b"")]);
        assert_eq!(
            decode(LinkType::Ethernet, &udp_frame[..14 + 20 + 7]),
            Err(t(Layer::Udp))
        );
        let vlan_frame = cat(&[&eth(0x8100), &vlan_tag(1, 0x0800)]);
        assert_eq!(
            decode(LinkType::Ethernet, &vlan_frame[..16]),
            Err(t(Layer::Vlan))
        );
        let mpls_frame = cat(&[&eth(0x8847), &[0, 1, 0, 0x40]]);
        assert_eq!(decode(LinkType::Ethernet, &mpls_frame), Err(t(Layer::Mpls)));
        let pppoe_frame = cat(&[&eth(0x8864), &[0x11, 0]]);
        assert_eq!(
            decode(LinkType::Ethernet, &pppoe_frame),
            Err(t(Layer::Pppoe))
        );
        let gre_frame = cat(&[&eth(0x0800), &v4_with(47, &[0x20, 0, 0x08, 0x00, 0, 0])]);
        assert_eq!(decode(LinkType::Ethernet, &gre_frame), Err(t(Layer::Gre)));
        assert_eq!(decode(LinkType::LinuxSll2, &[0; 19]), Err(t(Layer::Link)));
        assert_eq!(decode(LinkType::Raw, &[]), Err(t(Layer::Ip)));
        // IPv6 extension header cut.
        let v6 = v6_fragmented(0, true);
        assert_eq!(
            decode(LinkType::Ethernet, &v6[..14 + 40 + 12]),
            Err(t(Layer::Ip))
        );
    }

    #[test]
    fn non_ip_and_unsupported() {
        let arp = cat(&[&eth(0x0806), &[0; 28]]);
        assert_eq!(decode(LinkType::Ethernet, &arp), Err(DropReason::NotIp));
        let llc = cat(&[&eth(0x0026), &[0x42, 0x42, 0x03]]);
        assert_eq!(decode(LinkType::Ethernet, &llc), Err(DropReason::NotIp));
        let macsec = cat(&[&eth(0x88e5), &[0; 16]]);
        assert_eq!(
            decode(LinkType::Ethernet, &macsec),
            Err(DropReason::UnsupportedEtherType)
        );
        let icmp = v4_with(1, &[8, 0, 0, 0, 0, 0, 0, 0]);
        let packet = decode(LinkType::Raw, &icmp).unwrap();
        assert_eq!(packet.transport, Transport::Other { protocol: 1 });
    }

    #[test]
    fn encapsulation_depth_is_bounded() {
        let mut packet = v4_tcp(b"deep");
        for _ in 0..MAX_ENCAP_DEPTH {
            packet = v4_with(4, &packet);
        }
        let ok = decode(LinkType::Raw, &packet).unwrap();
        assert_inner_v4_tcp(&ok, b"deep");
        let too_deep = v4_with(4, &packet);
        assert_eq!(
            decode(LinkType::Raw, &too_deep),
            Err(DropReason::EncapTooDeep)
        );
        // A wall of VLAN tags.
        let mut frame = eth(0x8100);
        for _ in 0..MAX_LINK_HEADERS {
            frame.extend_from_slice(&vlan_tag(1, 0x8100));
        }
        frame.extend_from_slice(&vlan_tag(1, 0x0800));
        frame.extend_from_slice(&v4_tcp(b""));
        assert_eq!(
            decode(LinkType::Ethernet, &frame),
            Err(DropReason::EncapTooDeep)
        );
    }

    #[test]
    fn snaplen_cut_keeps_declared_lengths() {
        let frame = cat(&[&eth(0x0800), &v4_tcp(&[0x16; 300])]);
        let packet = decode(LinkType::Ethernet, &frame[..96]).unwrap();
        assert_eq!(packet.ip_len, 340);
        let segment = tcp_of(&packet);
        assert_eq!(segment.payload.len(), 96 - 14 - 40);
        assert_eq!(segment.payload_len, 300);
    }

    /// A frame through most decoders: QinQ, MPLS, IPv4, GRE + ERSPAN II, Ethernet, IPv6,
    /// UDP + VXLAN, Ethernet, IPv4, TCP.
    fn onion() -> Vec<u8> {
        let vxlan = [0x08, 0, 0, 0, 0, 0, 1, 0];
        let innermost = cat(&[&eth(0x0800), &v4_tcp(b"onion")]);
        let middle = cat(&[&eth(0x86dd), &v6_udp(1, 4789, &cat(&[&vxlan, &innermost]))]);
        let erspan = [
            0x10, 0x00, 0x88, 0xbe, 0, 0, 0, 1, 0x10, 0x01, 0, 1, 0, 0, 0, 0,
        ];
        let outer = v4_with(47, &cat(&[&erspan, &middle]));
        cat(&[
            &eth(0x88a8),
            &vlan_tag(11, 0x8100),
            &vlan_tag(12, 0x8847),
            &[0, 1, 0, 0x40, 0, 2, 1, 0x40],
            &outer,
        ])
    }

    #[test]
    fn onion_decodes_and_every_prefix_is_safe() {
        let frame = onion();
        let packet = decode(LinkType::Ethernet, &frame).unwrap();
        assert_inner_v4_tcp(&packet, b"onion");
        assert_eq!(
            (packet.vlan, packet.tunnel),
            (Some(11), Some(Tunnel::Erspan))
        );
        for end in 0..frame.len() {
            // Any outcome but a panic; a prefix cut inside the VXLAN part falls back to UDP.
            let _ = decode(LinkType::Ethernet, &frame[..end]);
        }
        let gtp = {
            let user = v6_tcp(b"");
            let length = u16::try_from(4 + 4 + user.len()).unwrap().to_be_bytes();
            let header = [
                0x34, 0xff, length[0], length[1], 0, 0, 0, 1, 0, 0, 0, 0x85, 1, 0, 9, 0,
            ];
            cat(&[&eth(0x0800), &v4_udp(2152, 2152, &cat(&[&header, &user]))])
        };
        let frames = [
            gtp,
            v6_fragmented(0, true),
            cat(&[&eth(0x0800), &v4_udp(3544, 1, &v6_tcp(b""))]),
        ];
        for frame in &frames {
            for end in 0..frame.len() {
                let _ = decode(LinkType::Ethernet, &frame[..end]);
            }
        }
    }

    use crate::testutil::XorShift;

    #[test]
    fn byte_soup_never_panics() {
        const LINKS: [LinkType; 10] = LinkType::ALL;
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let seed = onion();
        let mut buf = [0u8; 256];
        for round in 0..20_000 {
            let len = (rng.next() % buf.len() as u64) as usize;
            if round % 2 == 0 {
                // Pure noise.
                for byte in &mut buf[..len] {
                    *byte = rng.next() as u8;
                }
            } else {
                // A real frame with a few bytes flipped: reaches the deep decoders.
                let len = len.min(seed.len());
                buf[..len].copy_from_slice(&seed[..len]);
                for _ in 0..4 {
                    let at = (rng.next() % len.max(1) as u64) as usize;
                    if let Some(byte) = buf.get_mut(at) {
                        *byte = rng.next() as u8;
                    }
                }
            }
            let link = LINKS[(rng.next() % LINKS.len() as u64) as usize];
            let link = if round % 2 == 1 {
                LinkType::Ethernet
            } else {
                link
            };
            if let Ok(packet) = decode(link, &buf[..len]) {
                if let Transport::Tcp(segment) = packet.transport {
                    assert!(segment.payload_len as usize >= segment.payload.len());
                }
            }
        }
    }
}
