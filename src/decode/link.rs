//! Link-layer headers and the shims between them and IP.
//!
//! Ethernet II and VLAN tags are read with etherparse. Linux SLL/SLL2, NULL/LOOP, PPP, Cisco
//! HDLC, MPLS and PPPoE are hand-written: etherparse has no SLL2, MPLS, PPPoE or PPP, and its
//! `LinuxSllHeaderSlice` rejects every ARPHRD type except Ethernet, netlink, IPGRE, radiotap and
//! FRAD, which would drop the loopback (772), tun (0xfffe) and PPP (512) interfaces that
//! `tcpdump -i any` captures routinely.
//!
//! Every parser here has the same length contract: it reads only after checking that the
//! bytes hold its fixed header (else [`DropReason::Truncated`] for its layer), returns the
//! [`Step`] that names what follows, and never indexes past what it checked.

use etherparse::{Ethernet2HeaderSlice, SingleVlanHeaderSlice};

use super::{be16, DropReason, Layer, LinkType, Step, Version};

/// EtherType values (IEEE 802 numbers registry; the ERSPAN ones are GRE protocol types).
pub(super) mod ethertype {
    /// IPv4 (RFC 894).
    pub const IPV4: u16 = 0x0800;
    /// ARP (RFC 826).
    pub const ARP: u16 = 0x0806;
    /// ERSPAN type III (a GRE protocol type).
    pub const ERSPAN_III: u16 = 0x22eb;
    /// Transparent Ethernet bridging: an Ethernet frame follows (GRE, GENEVE).
    pub const TEB: u16 = 0x6558;
    /// Reverse ARP (RFC 903); also Cisco SLARP in Cisco HDLC.
    pub const RARP: u16 = 0x8035;
    /// IEEE 802.1Q customer VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// Novell IPX.
    pub const IPX: u16 = 0x8137;
    /// IPv6 (RFC 2464).
    pub const IPV6: u16 = 0x86dd;
    /// IEEE 802.3x MAC control (PAUSE).
    pub const MAC_CONTROL: u16 = 0x8808;
    /// IEEE 802.3 slow protocols (LACP, marker, OAM).
    pub const SLOW_PROTOCOLS: u16 = 0x8809;
    /// MPLS unicast (RFC 3032).
    pub const MPLS_UNICAST: u16 = 0x8847;
    /// MPLS multicast (RFC 5332).
    pub const MPLS_MULTICAST: u16 = 0x8848;
    /// PPPoE discovery stage (RFC 2516).
    pub const PPPOE_DISCOVERY: u16 = 0x8863;
    /// PPPoE session stage (RFC 2516).
    pub const PPPOE_SESSION: u16 = 0x8864;
    /// IEEE 802.1X EAP over LAN.
    pub const EAPOL: u16 = 0x888e;
    /// IEEE 802.1ad service VLAN tag (QinQ outer tag).
    pub const PROVIDER_BRIDGING: u16 = 0x88a8;
    /// ERSPAN type I and II (a GRE protocol type).
    pub const ERSPAN_I_II: u16 = 0x88be;
    /// IEEE 802.1AB LLDP.
    pub const LLDP: u16 = 0x88cc;
    /// IEEE 1588 precision time protocol.
    pub const PTP: u16 = 0x88f7;
    /// IEEE 802.1ag connectivity fault management.
    pub const CFM: u16 = 0x8902;
    /// Ethernet configuration testing protocol (loopback).
    pub const LOOPBACK: u16 = 0x9000;
    /// Pre-standard QinQ outer tag used by some vendors.
    pub const QINQ_LEGACY: u16 = 0x9100;
    /// Values below this are IEEE 802.3 length fields: an LLC frame follows, not an EtherType.
    pub const MIN_ETHERTYPE: u16 = 0x0600;
}

/// Reads the link header of a frame; `vlan` receives a VLAN id if an Ethernet frame's first
/// EtherType is a tag.
///
/// # Errors
///
/// [`DropReason::Truncated`] with [`Layer::Link`] when the link header is cut, and whatever
/// the first header's parser reports.
#[inline]
pub(super) fn start<'a>(
    link: LinkType,
    frame: &'a [u8],
    vlan: &mut Option<u16>,
) -> Result<Step<'a>, DropReason> {
    match link {
        // The hot path: Ethernet resolves its EtherType in the same call.
        LinkType::Ethernet => ethernet(frame, vlan),
        LinkType::LinuxSll => sll(frame),
        LinkType::LinuxSll2 => sll2(frame),
        LinkType::Raw => Ok(Step::Ip(Version::Any, frame)),
        LinkType::Ipv4 => Ok(Step::Ip(Version::V4, frame)),
        LinkType::Ipv6 => Ok(Step::Ip(Version::V6, frame)),
        LinkType::Null => null(frame, AfOrder::Guess),
        LinkType::Loop => null(frame, AfOrder::Network),
        LinkType::Ppp => Ok(Step::Ppp(frame)),
        LinkType::PppHdlc => ppp_hdlc(frame),
    }
}

/// Ethernet II header (IEEE 802.3 clause 3.1.1), via etherparse: 14 bytes, EtherType at 12.
///
/// # Errors
///
/// [`Layer::Link`] truncation; whatever [`ethertype`] reports for the EtherType.
#[inline]
pub(super) fn ethernet<'a>(
    bytes: &'a [u8],
    vlan: &mut Option<u16>,
) -> Result<Step<'a>, DropReason> {
    let header =
        Ethernet2HeaderSlice::from_slice(bytes).map_err(|_| DropReason::truncated(Layer::Link))?;
    let rest = bytes.get(header.slice().len()..).unwrap_or_default();
    ethertype(header.ether_type().0, rest, vlan)
}

/// Dispatches on an EtherType; strips one VLAN tag or PPPoE header when it names one.
///
/// `vlan` receives the first VLAN id seen, so it ends up holding the outermost.
///
/// # Errors
///
/// [`DropReason::NotIp`] for a known non-IP protocol or an 802.3 length field,
/// [`DropReason::UnsupportedEtherType`] for anything else decode does not read, and VLAN or
/// PPPoE truncation.
#[inline]
pub(super) fn ethertype<'a>(
    ethertype: u16,
    bytes: &'a [u8],
    vlan: &mut Option<u16>,
) -> Result<Step<'a>, DropReason> {
    use ethertype::*;
    match ethertype {
        IPV4 => Ok(Step::Ip(Version::V4, bytes)),
        IPV6 => Ok(Step::Ip(Version::V6, bytes)),
        VLAN | PROVIDER_BRIDGING | QINQ_LEGACY => {
            let tag = SingleVlanHeaderSlice::from_slice(bytes)
                .map_err(|_| DropReason::truncated(Layer::Vlan))?;
            vlan.get_or_insert(tag.vlan_identifier().value());
            let rest = bytes.get(tag.slice().len()..).unwrap_or_default();
            Ok(Step::EtherType(tag.ether_type().0, rest))
        }
        MPLS_UNICAST | MPLS_MULTICAST => Ok(Step::Mpls(bytes)),
        PPPOE_SESSION => pppoe(bytes),
        TEB => Ok(Step::Ethernet(bytes)),
        ARP | RARP | IPX | MAC_CONTROL | SLOW_PROTOCOLS | PPPOE_DISCOVERY | EAPOL | LLDP | PTP
        | CFM | LOOPBACK => Err(DropReason::NotIp),
        length if length < MIN_ETHERTYPE => Err(DropReason::NotIp),
        _ => Err(DropReason::UnsupportedEtherType),
    }
}

/// Linux cooked capture v1 header (`LINKTYPE_LINUX_SLL`), 16 bytes.
// The whole layout is documented; decode reads only some of the fields.
#[allow(dead_code)]
mod sll_field {
    use core::ops::Range;
    /// Packet type: to us, broadcast, multicast, to someone else, sent by us.
    pub const PACKET_TYPE: Range<usize> = 0..2;
    /// ARPHRD_ type of the interface.
    pub const HATYPE: usize = 2;
    /// Link-layer address length.
    pub const ADDR_LEN: Range<usize> = 4..6;
    /// Link-layer address, first 8 bytes.
    pub const ADDR: Range<usize> = 6..14;
    /// Protocol type, interpreted per ARPHRD type (see [`super::sll_protocol`]).
    pub const PROTOCOL: usize = 14;
    /// Header length.
    pub const LEN: usize = 16;
}

/// Linux cooked capture v2 header (`LINKTYPE_LINUX_SLL2`), 20 bytes.
// The whole layout is documented; decode reads only some of the fields.
#[allow(dead_code)]
mod sll2_field {
    use core::ops::Range;
    /// Protocol type, interpreted per ARPHRD type (see [`super::sll_protocol`]).
    pub const PROTOCOL: usize = 0;
    /// Reserved, zero.
    pub const RESERVED: Range<usize> = 2..4;
    /// Interface index.
    pub const IFINDEX: Range<usize> = 4..8;
    /// ARPHRD_ type of the interface.
    pub const HATYPE: usize = 8;
    /// Packet type (as in SLL v1, one byte).
    pub const PACKET_TYPE: usize = 10;
    /// Link-layer address length.
    pub const ADDR_LEN: usize = 11;
    /// Link-layer address, first 8 bytes.
    pub const ADDR: Range<usize> = 12..20;
    /// Header length.
    pub const LEN: usize = 20;
}

/// ARPHRD_ values whose SLL protocol field is not an EtherType (linux/if_arp.h).
mod arphrd {
    /// Frame Relay access device: protocol field ignored, payload is Frame Relay.
    pub const FRAD: u16 = 770;
    /// 802.11 with radiotap header: protocol field ignored.
    pub const IEEE80211_RADIOTAP: u16 = 803;
    /// Netlink: protocol field is the netlink protocol.
    pub const NETLINK: u16 = 824;
}

/// Linux SLL: the protocol field is an EtherType except on a few interface types.
///
/// # Errors
///
/// [`Layer::Link`] truncation below 16 bytes; see [`sll_protocol`].
fn sll(bytes: &[u8]) -> Result<Step<'_>, DropReason> {
    let rest = bytes
        .get(sll_field::LEN..)
        .ok_or(DropReason::truncated(Layer::Link))?;
    sll_protocol(
        be16(bytes, sll_field::HATYPE),
        be16(bytes, sll_field::PROTOCOL),
        rest,
    )
}

/// Linux SLL2: same protocol semantics as SLL, fields rearranged.
///
/// # Errors
///
/// [`Layer::Link`] truncation below 20 bytes; see [`sll_protocol`].
fn sll2(bytes: &[u8]) -> Result<Step<'_>, DropReason> {
    let rest = bytes
        .get(sll2_field::LEN..)
        .ok_or(DropReason::truncated(Layer::Link))?;
    sll_protocol(
        be16(bytes, sll2_field::HATYPE),
        be16(bytes, sll2_field::PROTOCOL),
        rest,
    )
}

/// Interprets an SLL protocol field as tcpdump's LINKTYPE_LINUX_SLL page defines it: netlink
/// carries a netlink protocol, radiotap and FRAD ignore it, everything else (including IPGRE,
/// whose GRE protocol types are EtherTypes, and values below 0x0600 such as 802.2 LLC or CAN)
/// is read as an EtherType. The Ethernet header itself is not in the capture.
fn sll_protocol(hatype: u16, protocol: u16, rest: &[u8]) -> Result<Step<'_>, DropReason> {
    match hatype {
        arphrd::NETLINK => Err(DropReason::NotIp),
        arphrd::IEEE80211_RADIOTAP | arphrd::FRAD => Err(DropReason::UnsupportedLinkType),
        _ => Ok(Step::EtherType(protocol, rest)),
    }
}

/// How the 4-byte address family of NULL/LOOP is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfOrder {
    /// `LINKTYPE_LOOP`: network byte order.
    Network,
    /// `LINKTYPE_NULL`: the capturing host's order, unknown to us. Address families are
    /// small, so a value with its low 16 bits zero was written big-endian.
    Guess,
}

/// NULL/LOOP address family header: 4 bytes, then the packet.
mod null_field {
    use core::ops::Range;
    /// Address family (`AF_*` of the capturing OS).
    pub const FAMILY: Range<usize> = 0..4;
    /// Header length.
    pub const LEN: usize = 4;
}

/// `AF_INET` on every BSD and Linux.
const AF_INET: u32 = 2;
/// `AF_INET6` on NetBSD, OpenBSD and BSD/OS.
const AF_INET6_BSD: u32 = 24;
/// `AF_INET6` on FreeBSD and DragonFly.
const AF_INET6_FREEBSD: u32 = 28;
/// `AF_INET6` on macOS and iOS.
const AF_INET6_DARWIN: u32 = 30;

/// BSD loopback: the address family tells IPv4 from IPv6.
///
/// # Errors
///
/// [`Layer::Link`] truncation below 4 bytes; [`DropReason::NotIp`] for other families.
fn null(bytes: &[u8], order: AfOrder) -> Result<Step<'_>, DropReason> {
    let (family, rest) = match (bytes.get(null_field::FAMILY), bytes.get(null_field::LEN..)) {
        (Some(&[a, b, c, d]), Some(rest)) => ([a, b, c, d], rest),
        _ => return Err(DropReason::truncated(Layer::Link)),
    };
    let family = match order {
        AfOrder::Network => u32::from_be_bytes(family),
        AfOrder::Guess => {
            let little = u32::from_le_bytes(family);
            if little > 0xffff {
                little.swap_bytes()
            } else {
                little
            }
        }
    };
    match family {
        AF_INET => Ok(Step::Ip(Version::V4, rest)),
        AF_INET6_BSD | AF_INET6_FREEBSD | AF_INET6_DARWIN => Ok(Step::Ip(Version::V6, rest)),
        _ => Err(DropReason::NotIp),
    }
}

/// PPP framing: RFC 1662 section 3.1 address/control and RFC 1661 section 2 protocol field.
mod ppp_field {
    /// RFC 1662 "all-stations" address.
    pub const ADDRESS: u8 = 0xff;
    /// RFC 1662 unnumbered information control.
    pub const CONTROL: u8 = 0x03;
    /// Protocol: Internet Protocol version 4.
    pub const IPV4: u16 = 0x0021;
    /// Protocol: Internet Protocol version 6.
    pub const IPV6: u16 = 0x0057;
    /// Protocol: MPLS unicast (RFC 3032 section 4.3).
    pub const MPLS_UNICAST: u16 = 0x0281;
    /// Protocol: MPLS multicast.
    pub const MPLS_MULTICAST: u16 = 0x0283;
}

/// A PPP frame from its address field (optional) or protocol field.
///
/// RFC 1661 section 2: a protocol value's least significant octet is odd and its most
/// significant octet even, so an odd first octet is a compressed (one-byte) protocol field
/// (Protocol-Field-Compression, section 6.5).
///
/// # Errors
///
/// [`Layer::Link`] truncation; [`DropReason::NotIp`] for LCP, NCPs and other protocols.
pub(super) fn ppp(bytes: &[u8]) -> Result<Step<'_>, DropReason> {
    let bytes = match bytes {
        [ppp_field::ADDRESS, ppp_field::CONTROL, rest @ ..] => rest,
        _ => bytes,
    };
    let (protocol, rest) = match bytes {
        [first, rest @ ..] if first & 1 == 1 => (u16::from(*first), rest),
        [hi, lo, rest @ ..] => (u16::from_be_bytes([*hi, *lo]), rest),
        _ => return Err(DropReason::truncated(Layer::Link)),
    };
    match protocol {
        ppp_field::IPV4 => Ok(Step::Ip(Version::V4, rest)),
        ppp_field::IPV6 => Ok(Step::Ip(Version::V6, rest)),
        ppp_field::MPLS_UNICAST | ppp_field::MPLS_MULTICAST => Ok(Step::Mpls(rest)),
        _ => Err(DropReason::NotIp),
    }
}

/// Cisco HDLC header: address, control, EtherType.
mod chdlc_field {
    /// Address byte of a unicast frame.
    pub const UNICAST: u8 = 0x0f;
    /// Address byte of a broadcast frame.
    pub const BROADCAST: u8 = 0x8f;
    /// Offset of the EtherType.
    pub const PROTOCOL: usize = 2;
    /// Header length.
    pub const LEN: usize = 4;
}

/// `LINKTYPE_PPP_HDLC`: PPP in HDLC-like framing, or Cisco HDLC when the address byte is
/// 0x0f/0x8f (tcpdump's definition of the link type allows both).
///
/// # Errors
///
/// [`Layer::Link`] truncation, and what [`ppp`] reports.
fn ppp_hdlc(bytes: &[u8]) -> Result<Step<'_>, DropReason> {
    match bytes.first() {
        Some(&(chdlc_field::UNICAST | chdlc_field::BROADCAST)) => {
            let rest = bytes
                .get(chdlc_field::LEN..)
                .ok_or(DropReason::truncated(Layer::Link))?;
            Ok(Step::EtherType(be16(bytes, chdlc_field::PROTOCOL), rest))
        }
        _ => Ok(Step::Ppp(bytes)),
    }
}

/// PPPoE session header (RFC 2516 section 4): VER/TYPE, CODE, SESSION_ID, LENGTH; 6 bytes.
// The whole layout is documented; decode reads only some of the fields.
#[allow(dead_code)]
mod pppoe_field {
    use core::ops::Range;
    /// Version (4 bits) and type (4 bits), both 1.
    pub const VER_TYPE: usize = 0;
    /// Code; 0x00 for session data.
    pub const CODE: usize = 1;
    /// Session id.
    pub const SESSION_ID: Range<usize> = 2..4;
    /// Length of the PPP payload (protocol field included).
    pub const LENGTH: usize = 4;
    /// Header length.
    pub const LEN: usize = 6;
    /// VER = 1, TYPE = 1.
    pub const VER_TYPE_1_1: u8 = 0x11;
    /// Session data code.
    pub const CODE_SESSION: u8 = 0x00;
}

/// Strips a PPPoE session header; the PPP protocol field follows (RFC 2516 section 7 carries
/// it without address and control).
///
/// # Errors
///
/// [`Layer::Pppoe`] truncation; [`DropReason::UnsupportedEtherType`] for a version/type other
/// than 1/1; [`DropReason::NotIp`] for a non-session code.
fn pppoe(bytes: &[u8]) -> Result<Step<'_>, DropReason> {
    let rest = bytes
        .get(pppoe_field::LEN..)
        .ok_or(DropReason::truncated(Layer::Pppoe))?;
    if bytes.get(pppoe_field::VER_TYPE) != Some(&pppoe_field::VER_TYPE_1_1) {
        return Err(DropReason::UnsupportedEtherType);
    }
    if bytes.get(pppoe_field::CODE) != Some(&pppoe_field::CODE_SESSION) {
        return Err(DropReason::NotIp);
    }
    let length = usize::from(be16(bytes, pppoe_field::LENGTH));
    Ok(Step::Ppp(rest.get(..length).unwrap_or(rest)))
}

/// MPLS label stack entry (RFC 3032 section 2.1): label 20 bits, TC 3, S 1, TTL 8.
mod mpls_field {
    /// Byte holding the bottom-of-stack bit.
    pub const BOTTOM_BYTE: usize = 2;
    /// Bottom-of-stack bit in [`BOTTOM_BYTE`].
    pub const BOTTOM_OF_STACK: u8 = 0x01;
    /// Entry length.
    pub const LEN: usize = 4;
    /// Pseudowire control word length (RFC 4385 section 3).
    pub const CONTROL_WORD_LEN: usize = 4;
}

/// Pops one MPLS label; at the bottom of the stack, guesses the payload from its first nibble.
///
/// MPLS does not name its payload, so (as every passive decoder does) the first nibble decides:
/// 4 is IPv4, 6 is IPv6, 0 is a pseudowire control word (RFC 4385 section 3) followed by an
/// Ethernet frame (RFC 4448), 1 is the generic associated channel (RFC 5586, OAM). A pseudowire
/// without a control word whose destination MAC starts with 4 or 6 is misread; RFC 4385
/// recommends the control word for exactly this reason.
///
/// # Errors
///
/// [`Layer::Mpls`] truncation; [`DropReason::NotIp`] for G-ACh;
/// [`DropReason::UnsupportedEtherType`] for other nibbles.
pub(super) fn mpls(bytes: &[u8]) -> Result<Step<'_>, DropReason> {
    let rest = bytes
        .get(mpls_field::LEN..)
        .ok_or(DropReason::truncated(Layer::Mpls))?;
    let bottom =
        bytes.get(mpls_field::BOTTOM_BYTE).copied().unwrap_or(0) & mpls_field::BOTTOM_OF_STACK;
    if bottom == 0 {
        return Ok(Step::Mpls(rest));
    }
    match rest.first().map(|b| b >> 4) {
        None => Err(DropReason::truncated(Layer::Mpls)),
        Some(4) => Ok(Step::Ip(Version::V4, rest)),
        Some(6) => Ok(Step::Ip(Version::V6, rest)),
        Some(0) => rest
            .get(mpls_field::CONTROL_WORD_LEN..)
            .map(Step::Ethernet)
            .ok_or(DropReason::truncated(Layer::Mpls)),
        Some(1) => Err(DropReason::NotIp),
        Some(_) => Err(DropReason::UnsupportedEtherType),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_VLAN: Option<u16> = None;

    fn eth(bytes: &[u8]) -> Result<Step<'_>, DropReason> {
        ethernet(bytes, &mut NO_VLAN.clone())
    }

    #[test]
    fn ethernet_ipv4() {
        let frame = [0u8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00, 0x45];
        assert_eq!(eth(&frame), Ok(Step::Ip(Version::V4, &[0x45][..])));
        assert_eq!(eth(&frame[..13]), Err(DropReason::truncated(Layer::Link)));
    }

    #[test]
    fn non_ip_ethertypes() {
        let mut vlan = None;
        assert_eq!(
            ethertype(ethertype::ARP, &[], &mut vlan),
            Err(DropReason::NotIp)
        );
        assert_eq!(
            ethertype(ethertype::LLDP, &[], &mut vlan),
            Err(DropReason::NotIp)
        );
        assert_eq!(ethertype(0x0026, &[], &mut vlan), Err(DropReason::NotIp));
        assert_eq!(
            ethertype(0x88e5, &[], &mut vlan),
            Err(DropReason::UnsupportedEtherType)
        );
    }

    #[test]
    fn vlan_tags_keep_outermost() {
        let mut vlan = None;
        let outer = [0x00, 0x64, 0x81, 0x00, 0x00, 0xc8, 0x08, 0x00];
        let step = ethertype(ethertype::PROVIDER_BRIDGING, &outer, &mut vlan).unwrap();
        assert_eq!(step, Step::EtherType(ethertype::VLAN, &outer[4..]));
        let step = ethertype(ethertype::VLAN, &outer[4..], &mut vlan).unwrap();
        assert_eq!(step, Step::EtherType(ethertype::IPV4, &[][..]));
        assert_eq!(vlan, Some(100));
        assert_eq!(
            ethertype(ethertype::VLAN, &outer[..3], &mut vlan),
            Err(DropReason::truncated(Layer::Vlan))
        );
    }

    #[test]
    fn sll_and_sll2() {
        // SLL: outgoing, ARPHRD_LOOPBACK (772), addr len 6, addr, IPv6.
        let sll_hdr = [
            0, 4, 0x03, 0x04, 0, 6, 1, 2, 3, 4, 5, 6, 0, 0, 0x86, 0xdd, 0x60,
        ];
        assert_eq!(sll(&sll_hdr), Ok(Step::EtherType(0x86dd, &[0x60][..])));
        assert_eq!(sll(&sll_hdr[..15]), Err(DropReason::truncated(Layer::Link)));
        // SLL2: IPv4, reserved, ifindex 2, ARPHRD_NONE (0xfffe), host, addr len 0, addr.
        let sll2_hdr = [
            8, 0, 0, 0, 0, 0, 0, 2, 0xff, 0xfe, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x45,
        ];
        assert_eq!(sll2(&sll2_hdr), Ok(Step::EtherType(0x0800, &[0x45][..])));
        assert_eq!(
            sll2(&sll2_hdr[..19]),
            Err(DropReason::truncated(Layer::Link))
        );
        // Netlink and radiotap interfaces.
        assert_eq!(
            sll_protocol(arphrd::NETLINK, 0, &[]),
            Err(DropReason::NotIp)
        );
        assert_eq!(
            sll_protocol(arphrd::IEEE80211_RADIOTAP, 0x0800, &[]),
            Err(DropReason::UnsupportedLinkType)
        );
    }

    #[test]
    fn null_and_loop_families() {
        let le_v4 = [2, 0, 0, 0, 0x45];
        let be_v4 = [0, 0, 0, 2, 0x45];
        let be_darwin_v6 = [0, 0, 0, 30, 0x60];
        let le_freebsd_v6 = [28, 0, 0, 0, 0x60];
        assert_eq!(
            null(&le_v4, AfOrder::Guess),
            Ok(Step::Ip(Version::V4, &[0x45][..]))
        );
        assert_eq!(
            null(&be_v4, AfOrder::Guess),
            Ok(Step::Ip(Version::V4, &[0x45][..]))
        );
        assert_eq!(
            null(&be_v4, AfOrder::Network),
            Ok(Step::Ip(Version::V4, &[0x45][..]))
        );
        assert_eq!(null(&le_v4, AfOrder::Network), Err(DropReason::NotIp));
        assert_eq!(
            null(&be_darwin_v6, AfOrder::Guess),
            Ok(Step::Ip(Version::V6, &[0x60][..]))
        );
        assert_eq!(
            null(&le_freebsd_v6, AfOrder::Guess),
            Ok(Step::Ip(Version::V6, &[0x60][..]))
        );
        assert_eq!(
            null(&[2, 0, 0], AfOrder::Guess),
            Err(DropReason::truncated(Layer::Link))
        );
    }

    #[test]
    fn ppp_framings() {
        let rest = &[0x45][..];
        assert_eq!(
            ppp(&[0xff, 0x03, 0x00, 0x21, 0x45]),
            Ok(Step::Ip(Version::V4, rest))
        );
        assert_eq!(ppp(&[0x00, 0x21, 0x45]), Ok(Step::Ip(Version::V4, rest)));
        // Protocol-field compression.
        assert_eq!(ppp(&[0x21, 0x45]), Ok(Step::Ip(Version::V4, rest)));
        assert_eq!(ppp(&[0x57, 0x45]), Ok(Step::Ip(Version::V6, rest)));
        assert_eq!(ppp(&[0xff, 0x03, 0x02, 0x81, 0x45]), Ok(Step::Mpls(rest)));
        // LCP.
        assert_eq!(ppp(&[0xff, 0x03, 0xc0, 0x21, 1]), Err(DropReason::NotIp));
        assert_eq!(
            ppp(&[0xff, 0x03, 0x00]),
            Err(DropReason::truncated(Layer::Link))
        );
        // Cisco HDLC under LINKTYPE_PPP_HDLC.
        assert_eq!(
            ppp_hdlc(&[0x0f, 0x00, 0x08, 0x00, 0x45]),
            Ok(Step::EtherType(0x0800, rest))
        );
        assert_eq!(
            ppp_hdlc(&[0x8f, 0x00, 0x08]),
            Err(DropReason::truncated(Layer::Link))
        );
        assert_eq!(
            ppp_hdlc(&[0xff, 0x03, 0x00, 0x57, 0x45]),
            Ok(Step::Ppp(&[0xff, 0x03, 0x00, 0x57, 0x45][..]))
        );
    }

    #[test]
    fn pppoe_session() {
        let frame = [0x11, 0x00, 0x12, 0x34, 0x00, 0x03, 0x00, 0x21, 0x45, 0xee];
        // The length field (3) trims trailing padding.
        assert_eq!(pppoe(&frame), Ok(Step::Ppp(&[0x00, 0x21, 0x45][..])));
        assert_eq!(pppoe(&frame[..5]), Err(DropReason::truncated(Layer::Pppoe)));
        let mut discovery_code = frame;
        discovery_code[1] = 0x09;
        assert_eq!(pppoe(&discovery_code), Err(DropReason::NotIp));
        let mut bad_version = frame;
        bad_version[0] = 0x21;
        assert_eq!(pppoe(&bad_version), Err(DropReason::UnsupportedEtherType));
    }

    #[test]
    fn mpls_stack_and_guess() {
        // Label 16, not bottom; label 17, bottom; IPv4.
        let stack = [0x00, 0x01, 0x00, 0x40, 0x00, 0x01, 0x11, 0x40, 0x45];
        assert_eq!(mpls(&stack), Ok(Step::Mpls(&stack[4..])));
        assert_eq!(mpls(&stack[4..]), Ok(Step::Ip(Version::V4, &stack[8..])));
        assert_eq!(mpls(&stack[4..8]), Err(DropReason::truncated(Layer::Mpls)));
        assert_eq!(mpls(&stack[..3]), Err(DropReason::truncated(Layer::Mpls)));
        // Control word then Ethernet.
        let pw = [0x00, 0x01, 0x11, 0x40, 0, 0, 0, 0, 0xaa];
        assert_eq!(mpls(&pw), Ok(Step::Ethernet(&[0xaa][..])));
        // G-ACh and garbage.
        assert_eq!(
            mpls(&[0x00, 0x01, 0x11, 0x40, 0x10]),
            Err(DropReason::NotIp)
        );
        assert_eq!(
            mpls(&[0x00, 0x01, 0x11, 0x40, 0x90]),
            Err(DropReason::UnsupportedEtherType)
        );
    }
}
