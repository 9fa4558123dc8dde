//! Tunnel headers etherparse does not cover: GRE, ERSPAN, VXLAN, GENEVE, GTP-U, Teredo.
//!
//! Each parser has a `mod *_field` of byte offsets and this length contract: it reads a field
//! only after checking the bytes hold it, and returns the [`Step`] naming the inner packet.
//! GRE returns a [`DropReason`] on failure (protocol 47 is unambiguous); the UDP tunnels return
//! `None`, which makes the caller report the plain UDP flow (see the `decode` module docs).

use super::link::ethertype;
use super::{be16, DropReason, Layer, Step, Tunnel, Version};

/// IANA-assigned UDP ports that name a tunnel.
mod port {
    /// VXLAN (RFC 7348 section 5).
    pub const VXLAN: u16 = 4789;
    /// GENEVE (RFC 8926 section 3.3).
    pub const GENEVE: u16 = 6081;
    /// GTP-U (3GPP TS 29.281 section 4.4.2).
    pub const GTP_U: u16 = 2152;
    /// Teredo server (RFC 4380 section 2.1); clients use it as source or destination.
    pub const TEREDO: u16 = 3544;
}

/// Tries the tunnel a UDP port names. `declared_len` is the UDP payload length from the UDP
/// header, used to validate Teredo even when the snaplen cut the capture.
///
/// VXLAN and GENEVE are matched on the destination port only (RFC 7348 section 5 and RFC 8926
/// section 3.3 let the source port carry entropy). GTP-U and Teredo are matched on either port:
/// GTP-U peers use 2152 on both sides, and Teredo traffic from the server has 3544 as source.
pub(super) fn udp(
    src_port: u16,
    dst_port: u16,
    payload: &[u8],
    declared_len: u32,
) -> Option<(Tunnel, Step<'_>)> {
    match dst_port {
        port::VXLAN => return vxlan(payload).map(|step| (Tunnel::Vxlan, step)),
        port::GENEVE => return geneve(payload).map(|step| (Tunnel::Geneve, step)),
        _ => {}
    }
    if src_port == port::GTP_U || dst_port == port::GTP_U {
        return gtp_u(payload).map(|step| (Tunnel::GtpU, step));
    }
    if src_port == port::TEREDO || dst_port == port::TEREDO {
        return teredo(payload, declared_len).map(|step| (Tunnel::Teredo, step));
    }
    None
}

/// GRE header (RFC 2784 section 2.1, key and sequence number from RFC 2890 section 2).
///
/// ```text
/// |C|R|K|S|s|Recur|  Flags  | Ver |         Protocol Type         |
/// |      Checksum (optional)      |       Reserved1 (Optional)    |
/// |                         Key (optional)                        |
/// |                 Sequence Number (Optional)                    |
/// ```
mod gre_field {
    /// Flags byte: C, R, K, S, s, Recur.
    pub const FLAGS: usize = 0;
    /// Reserved flags (5 bits) and version (3 bits).
    pub const VERSION: usize = 1;
    /// Protocol type, an EtherType.
    pub const PROTOCOL: usize = 2;
    /// Mandatory header length.
    pub const BASE_LEN: usize = 4;
    /// Length of each optional field (checksum+reserved1, key, sequence number).
    pub const OPTION_LEN: usize = 4;
    /// Checksum present.
    pub const C: u8 = 0x80;
    /// Routing present (RFC 1701 only; RFC 2784 deprecates it).
    pub const R: u8 = 0x40;
    /// Key present (RFC 2890 section 2.1).
    pub const K: u8 = 0x20;
    /// Sequence number present (RFC 2890 section 2.2); also tells ERSPAN I from II.
    pub const S: u8 = 0x10;
    /// Version bits of [`VERSION`].
    pub const VERSION_MASK: u8 = 0x07;
}

/// Strips a GRE header (and an ERSPAN header when it carries one).
///
/// Only version 0 is followed. RFC 2784 section 2.3 lets a receiver discard packets with the
/// RFC 1701 routing bit set; version 1 is PPTP's enhanced GRE (RFC 2637), whose PPP payload
/// is usually compressed or encrypted.
///
/// # Errors
///
/// [`Layer::Gre`] truncation of the GRE or ERSPAN header; [`DropReason::UnsupportedGre`] for
/// another version, routing, an unknown protocol type or a malformed ERSPAN header.
pub(super) fn gre(bytes: &[u8]) -> Result<(Tunnel, Step<'_>), DropReason> {
    if bytes.len() < gre_field::BASE_LEN {
        return Err(DropReason::truncated(Layer::Gre));
    }
    let flags = bytes.get(gre_field::FLAGS).copied().unwrap_or(0);
    let version = bytes.get(gre_field::VERSION).copied().unwrap_or(0) & gre_field::VERSION_MASK;
    if version != 0 || flags & gre_field::R != 0 {
        return Err(DropReason::UnsupportedGre);
    }
    let options = [gre_field::C, gre_field::K, gre_field::S]
        .iter()
        .filter(|&&bit| flags & bit != 0)
        .count();
    let rest = bytes
        .get(gre_field::BASE_LEN + options * gre_field::OPTION_LEN..)
        .ok_or(DropReason::truncated(Layer::Gre))?;
    match be16(bytes, gre_field::PROTOCOL) {
        ethertype::IPV4 => Ok((Tunnel::Gre, Step::Ip(Version::V4, rest))),
        ethertype::IPV6 => Ok((Tunnel::Gre, Step::Ip(Version::V6, rest))),
        ethertype::TEB => Ok((Tunnel::Gre, Step::Ethernet(rest))),
        protocol @ (ethertype::MPLS_UNICAST | ethertype::MPLS_MULTICAST) => {
            Ok((Tunnel::Gre, Step::EtherType(protocol, rest)))
        }
        // ERSPAN type I has no header and no sequence number; type II sets S.
        ethertype::ERSPAN_I_II if flags & gre_field::S == 0 => {
            Ok((Tunnel::Erspan, Step::Ethernet(rest)))
        }
        ethertype::ERSPAN_I_II => erspan_ii(rest).map(|step| (Tunnel::Erspan, step)),
        ethertype::ERSPAN_III => erspan_iii(rest).map(|step| (Tunnel::Erspan, step)),
        _ => Err(DropReason::UnsupportedGre),
    }
}

/// ERSPAN type II header (draft-foschiano-erspan section 4.2), 8 bytes.
///
/// ```text
/// |  Ver  |          VLAN         | COS | En|T|    Session ID     |
/// |      Reserved         |                  Index                |
/// ```
mod erspan_ii_field {
    /// Version in the high nibble.
    pub const VERSION: usize = 0;
    /// Header length.
    pub const LEN: usize = 8;
    /// Version value of type II.
    pub const VERSION_II: u8 = 1;
}

/// ERSPAN type II: a fixed 8-byte header, then the mirrored Ethernet frame. The VLAN field
/// describes the original port; the mirrored frame keeps its own tags, which is what decode
/// reports.
///
/// # Errors
///
/// [`Layer::Gre`] truncation; [`DropReason::UnsupportedGre`] for a version other than 1.
fn erspan_ii(bytes: &[u8]) -> Result<Step<'_>, DropReason> {
    let rest = bytes
        .get(erspan_ii_field::LEN..)
        .ok_or(DropReason::truncated(Layer::Gre))?;
    match bytes.get(erspan_ii_field::VERSION).map(|b| b >> 4) {
        Some(erspan_ii_field::VERSION_II) => Ok(Step::Ethernet(rest)),
        _ => Err(DropReason::UnsupportedGre),
    }
}

/// ERSPAN type III header (draft-foschiano-erspan section 4.3), 12 bytes plus an optional
/// 8-byte platform-specific subheader.
///
/// ```text
/// |  Ver  |          VLAN         | COS |BSO|T|     Session ID    |
/// |                          Timestamp                            |
/// |             SGT               |P|    FT   |   Hw ID   |D|Gra|O|
/// ```
mod erspan_iii_field {
    /// Version in the high nibble.
    pub const VERSION: usize = 0;
    /// P bit, frame type (5 bits, shifted by 2) and the top of Hw ID.
    pub const FRAME_TYPE: usize = 10;
    /// Bottom of Hw ID, D, Gra, O (bit 0).
    pub const OPTIONAL: usize = 11;
    /// Header length without the platform subheader.
    pub const LEN: usize = 12;
    /// Platform-specific subheader length, present when O is set.
    pub const PLATFORM_LEN: usize = 8;
    /// Version value of type III.
    pub const VERSION_III: u8 = 2;
    /// O bit in [`OPTIONAL`].
    pub const O: u8 = 0x01;
    /// Frame type: Ethernet frame.
    pub const FT_ETHERNET: u8 = 0;
    /// Frame type: IP packet.
    pub const FT_IP: u8 = 2;
}

/// ERSPAN type III: 12-byte header, the platform subheader when O is set, then an Ethernet
/// frame or (frame type 2) an IP packet.
///
/// # Errors
///
/// [`Layer::Gre`] truncation; [`DropReason::UnsupportedGre`] for a version other than 2 or
/// another frame type.
fn erspan_iii(bytes: &[u8]) -> Result<Step<'_>, DropReason> {
    use erspan_iii_field::*;
    let (version, frame_type, optional) = match (
        bytes.get(VERSION),
        bytes.get(FRAME_TYPE),
        bytes.get(OPTIONAL),
    ) {
        (Some(v), Some(ft), Some(o)) => (v >> 4, (ft >> 2) & 0x1f, *o),
        _ => return Err(DropReason::truncated(Layer::Gre)),
    };
    let header_len = if optional & O != 0 {
        LEN + PLATFORM_LEN
    } else {
        LEN
    };
    let rest = bytes
        .get(header_len..)
        .ok_or(DropReason::truncated(Layer::Gre))?;
    match (version, frame_type) {
        (VERSION_III, FT_ETHERNET) => Ok(Step::Ethernet(rest)),
        (VERSION_III, FT_IP) => Ok(Step::Ip(Version::Any, rest)),
        _ => Err(DropReason::UnsupportedGre),
    }
}

/// VXLAN header (RFC 7348 section 5), 8 bytes.
///
/// ```text
/// |R|R|R|R|I|R|R|R|            Reserved                           |
/// |                VXLAN Network Identifier (VNI) |   Reserved    |
/// ```
mod vxlan_field {
    /// Flags byte.
    pub const FLAGS: usize = 0;
    /// Header length.
    pub const LEN: usize = 8;
    /// I flag: the VNI is valid; MUST be 1.
    pub const I: u8 = 0x08;
}

/// VXLAN: the I flag must be set (RFC 7348 section 5); the other bits are ignored on receipt
/// as the RFC asks. An Ethernet frame follows.
fn vxlan(bytes: &[u8]) -> Option<Step<'_>> {
    let rest = bytes.get(vxlan_field::LEN..)?;
    let flags = *bytes.get(vxlan_field::FLAGS)?;
    (flags & vxlan_field::I != 0).then_some(Step::Ethernet(rest))
}

/// GENEVE header (RFC 8926 section 3.4), 8 bytes plus options.
///
/// ```text
/// |Ver|  Opt Len  |O|C|    Rsvd.  |          Protocol Type        |
/// |        Virtual Network Identifier (VNI)       |    Reserved   |
/// |                    Variable-Length Options                    |
/// ```
mod geneve_field {
    /// Version (2 bits) and option length in 4-byte words (6 bits).
    pub const VER_OPT_LEN: usize = 0;
    /// Protocol type, an EtherType.
    pub const PROTOCOL: usize = 2;
    /// Fixed header length.
    pub const LEN: usize = 8;
    /// Mask of the option length.
    pub const OPT_LEN_MASK: u8 = 0x3f;
}

/// GENEVE: version 0 only (RFC 8926 section 3.4: a packet with an unknown version MUST be
/// dropped); options skipped by length; Ethernet, IPv4 or IPv6 inside.
fn geneve(bytes: &[u8]) -> Option<Step<'_>> {
    let first = *bytes.get(geneve_field::VER_OPT_LEN)?;
    if first >> 6 != 0 || bytes.len() < geneve_field::LEN {
        return None;
    }
    let header_len = geneve_field::LEN + usize::from(first & geneve_field::OPT_LEN_MASK) * 4;
    let rest = bytes.get(header_len..)?;
    match be16(bytes, geneve_field::PROTOCOL) {
        ethertype::TEB => Some(Step::Ethernet(rest)),
        ethertype::IPV4 => Some(Step::Ip(Version::V4, rest)),
        ethertype::IPV6 => Some(Step::Ip(Version::V6, rest)),
        _ => None,
    }
}

/// GTPv1-U header (3GPP TS 29.281 section 5.1).
///
/// ```text
/// | Version |PT|(*)|E|S|PN|  Message Type  |          Length           |
/// |                 Tunnel Endpoint Identifier (TEID)                  |
/// |    Sequence Number (opt.)   | N-PDU Number (opt.) | Next Ext (opt.) |
/// ```
mod gtp_field {
    /// Version (3 bits), PT, spare, E, S, PN.
    pub const FLAGS: usize = 0;
    /// Message type.
    pub const MESSAGE_TYPE: usize = 1;
    /// Length of everything after the mandatory 8 bytes.
    pub const LENGTH: usize = 2;
    /// Mandatory header length.
    pub const LEN: usize = 8;
    /// Next extension header type, present with the optional fields.
    pub const NEXT_EXTENSION: usize = 11;
    /// Header length when E, S or PN is set.
    pub const LEN_WITH_OPTIONAL: usize = 12;
    /// Version 1 in the top 3 bits.
    pub const VERSION_1: u8 = 1;
    /// Protocol type: GTP (not GTP').
    pub const PT: u8 = 0x10;
    /// Extension header flag.
    pub const E: u8 = 0x04;
    /// Any of E, S, PN: the 4 optional bytes are present.
    pub const E_S_PN: u8 = 0x07;
    /// G-PDU: carries a T-PDU (a user IP packet).
    pub const G_PDU: u8 = 0xff;
    /// Extension header length unit (section 5.2.1).
    pub const EXTENSION_UNIT: usize = 4;
}

/// Most GTP-U extension headers followed before giving up (real ones chain 1 or 2, e.g. the
/// PDU session container). Bounds the per-packet work; no memory is held.
const MAX_GTP_EXTENSIONS: usize = 8;

/// GTP-U: only a G-PDU (message type 0xFF) carries a user packet; echo and error indication
/// messages stay plain UDP. Extension headers (section 5.2) are skipped by their length
/// field, which counts 4-byte units including the length and next-type bytes.
fn gtp_u(bytes: &[u8]) -> Option<Step<'_>> {
    use gtp_field::*;
    let flags = *bytes.get(FLAGS)?;
    if flags >> 5 != VERSION_1 || flags & PT == 0 || *bytes.get(MESSAGE_TYPE)? != G_PDU {
        return None;
    }
    let end = bytes.len().min(LEN + usize::from(be16(bytes, LENGTH)));
    if bytes.len() < LEN {
        return None;
    }
    let mut offset = LEN;
    if flags & E_S_PN != 0 {
        offset = LEN_WITH_OPTIONAL;
        let mut next = *bytes.get(NEXT_EXTENSION)?;
        if flags & E == 0 {
            next = 0;
        }
        let mut followed = 0;
        while next != 0 {
            followed += 1;
            if followed > MAX_GTP_EXTENSIONS {
                return None;
            }
            let units = usize::from(*bytes.get(offset)?);
            if units == 0 {
                return None;
            }
            let ext_end = offset + units * EXTENSION_UNIT;
            next = *bytes.get(ext_end - 1)?;
            offset = ext_end;
        }
    }
    let inner = bytes.get(offset..end)?;
    // A T-PDU is an IP packet (or Ethernet/unstructured in 5G; those stay plain UDP).
    match inner.first()? >> 4 {
        4 | 6 => Some(Step::Ip(Version::Any, inner)),
        _ => None,
    }
}

/// Teredo encapsulation headers (RFC 4380 section 5.1.1).
mod teredo_field {
    /// Indicator of the authentication encapsulation (2 bytes).
    pub const AUTH_INDICATOR: [u8; 2] = [0x00, 0x01];
    /// Client identifier length, in the authentication header.
    pub const AUTH_ID_LEN: usize = 2;
    /// Authentication value length, in the authentication header.
    pub const AUTH_AU_LEN: usize = 3;
    /// Indicator, ID-len, AU-len before the variable fields.
    pub const AUTH_FIXED_LEN: usize = 4;
    /// Nonce (8) and confirmation (1) after the variable fields.
    pub const AUTH_TRAILER_LEN: usize = 9;
    /// Indicator of the origin indication encapsulation (2 bytes).
    pub const ORIGIN_INDICATOR: [u8; 2] = [0x00, 0x00];
    /// Origin indication: indicator, obfuscated port, obfuscated IPv4 address.
    pub const ORIGIN_LEN: usize = 8;
    /// IPv6 payload length field offset within the IPv6 header.
    pub const IPV6_PAYLOAD_LEN: usize = 4;
    /// IPv6 header length.
    pub const IPV6_LEN: usize = 40;
}

/// Teredo: optional authentication then origin indication (that order, RFC 4380 section
/// 5.1.1), then an IPv6 packet. Port 3544 alone is weak evidence, so the IPv6 header must
/// have version 6 and a payload length that accounts for exactly the rest of the datagram
/// (checked against the UDP length field, so a snaplen cut does not defeat it).
fn teredo(bytes: &[u8], declared_len: u32) -> Option<Step<'_>> {
    use teredo_field::*;
    let mut offset = 0;
    if bytes.get(..2)? == AUTH_INDICATOR {
        let id_len = usize::from(*bytes.get(AUTH_ID_LEN)?);
        let au_len = usize::from(*bytes.get(AUTH_AU_LEN)?);
        offset = AUTH_FIXED_LEN + id_len + au_len + AUTH_TRAILER_LEN;
    }
    if bytes.get(offset..offset + 2)? == ORIGIN_INDICATOR {
        offset += ORIGIN_LEN;
    }
    let ipv6 = bytes.get(offset..)?;
    if ipv6.len() < IPV6_LEN || ipv6.first()? >> 4 != 6 {
        return None;
    }
    let payload_len = usize::from(be16(ipv6, IPV6_PAYLOAD_LEN));
    let consistent = u32::try_from(offset + IPV6_LEN + payload_len).ok()? == declared_len;
    consistent.then_some(Step::Ip(Version::V6, ipv6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gre_optional_fields() {
        // C + K + S: 4 + 12 bytes, IPv4 inside.
        let mut bytes = vec![0xb0, 0x00, 0x08, 0x00];
        bytes.extend_from_slice(&[0; 12]);
        bytes.push(0x45);
        assert_eq!(
            gre(&bytes),
            Ok((Tunnel::Gre, Step::Ip(Version::V4, &[0x45][..])))
        );
        assert_eq!(gre(&bytes[..15]), Err(DropReason::truncated(Layer::Gre)));
        assert_eq!(gre(&bytes[..3]), Err(DropReason::truncated(Layer::Gre)));
        // Version 1 (PPTP) and the routing bit.
        assert_eq!(
            gre(&[0x30, 0x01, 0x88, 0x0b, 0, 0, 0, 0]),
            Err(DropReason::UnsupportedGre)
        );
        assert_eq!(
            gre(&[0x40, 0x00, 0x08, 0x00, 0, 0, 0, 0]),
            Err(DropReason::UnsupportedGre)
        );
        // Unknown protocol type (WCCP).
        assert_eq!(
            gre(&[0x00, 0x00, 0x88, 0x3e, 0x45]),
            Err(DropReason::UnsupportedGre)
        );
    }

    #[test]
    fn erspan_types() {
        // Type I: S clear, frame right after GRE.
        assert_eq!(
            gre(&[0x00, 0x00, 0x88, 0xbe, 0xaa]),
            Ok((Tunnel::Erspan, Step::Ethernet(&[0xaa][..])))
        );
        // Type II: S set, seq, 8-byte ERSPAN header with version 1.
        let ii = [
            0x10, 0x00, 0x88, 0xbe, 0, 0, 0, 1, 0x10, 0x64, 0x00, 0x01, 0, 0, 0, 0, 0xaa,
        ];
        assert_eq!(gre(&ii), Ok((Tunnel::Erspan, Step::Ethernet(&[0xaa][..]))));
        assert_eq!(gre(&ii[..15]), Err(DropReason::truncated(Layer::Gre)));
        let mut bad = ii;
        bad[8] = 0x20;
        assert_eq!(gre(&bad), Err(DropReason::UnsupportedGre));
        // Type III with the platform subheader, then type III carrying IP (FT = 2).
        let mut iii = vec![0x10, 0x00, 0x22, 0xeb, 0, 0, 0, 1];
        iii.extend_from_slice(&[0x20, 0x00, 0x00, 0x01, 1, 2, 3, 4, 0, 0, 0x00, 0x01]);
        iii.extend_from_slice(&[0; 8]);
        iii.push(0xaa);
        assert_eq!(gre(&iii), Ok((Tunnel::Erspan, Step::Ethernet(&[0xaa][..]))));
        assert_eq!(gre(&iii[..27]), Err(DropReason::truncated(Layer::Gre)));
        let mut ip = iii.clone();
        ip[8 + 10] = 2 << 2;
        ip[8 + 11] = 0;
        assert_eq!(
            gre(&ip),
            Ok((Tunnel::Erspan, Step::Ip(Version::Any, &ip[20..])))
        );
    }

    #[test]
    fn vxlan_needs_i_flag() {
        let bytes = [0x08, 0, 0, 0, 0, 0, 42, 0, 0xaa];
        assert_eq!(vxlan(&bytes), Some(Step::Ethernet(&[0xaa][..])));
        assert_eq!(vxlan(&[0x00, 0, 0, 0, 0, 0, 42, 0, 0xaa]), None);
        assert_eq!(vxlan(&bytes[..7]), None);
        assert_eq!(
            udp(1234, port::VXLAN, &bytes, 9),
            Some((Tunnel::Vxlan, Step::Ethernet(&[0xaa][..])))
        );
        // Source port 4789 alone is not VXLAN.
        assert_eq!(udp(port::VXLAN, 1234, &bytes, 9), None);
    }

    #[test]
    fn geneve_options_and_protocols() {
        // Opt Len 2 (8 bytes of options), protocol IPv6.
        let mut bytes = vec![0x02, 0x00, 0x86, 0xdd, 0, 0, 1, 0];
        bytes.extend_from_slice(&[0x01, 0x02, 0x03, 0x01, 0xde, 0xad, 0xbe, 0xef]);
        bytes.push(0x60);
        assert_eq!(geneve(&bytes), Some(Step::Ip(Version::V6, &[0x60][..])));
        assert_eq!(geneve(&bytes[..15]), None);
        let mut version_1 = bytes.clone();
        version_1[0] |= 0x40;
        assert_eq!(geneve(&version_1), None);
        bytes[2..4].copy_from_slice(&[0x65, 0x58]);
        assert_eq!(geneve(&bytes), Some(Step::Ethernet(&[0x60][..])));
    }

    #[test]
    fn gtp_u_extension_chain() {
        // Version 1, PT, E: optional fields, one 4-byte PDU session container (0x85), IPv4.
        let bytes = [
            0x34, 0xff, 0x00, 0x09, 0, 0, 0, 1, 0, 0, 0, 0x85, 0x01, 0x00, 0x09, 0x00, 0x45,
        ];
        assert_eq!(gtp_u(&bytes), Some(Step::Ip(Version::Any, &[0x45][..])));
        // Echo request is not a T-PDU.
        let mut echo = bytes;
        echo[1] = 0x01;
        assert_eq!(gtp_u(&echo), None);
        // Zero-length extension header is malformed.
        let mut zero = bytes;
        zero[12] = 0;
        assert_eq!(gtp_u(&zero), None);
        for end in 0..bytes.len() {
            assert_eq!(gtp_u(&bytes[..end]), None, "prefix {end}");
        }
    }

    #[test]
    fn teredo_requires_consistent_ipv6() {
        // Origin indication, then an IPv6 header with payload length 0 (a bubble).
        let mut bytes = vec![0x00, 0x00, 0xf2, 0x27, 1, 2, 3, 4, 0x60];
        bytes.extend_from_slice(&[0; 39]);
        bytes[8 + 6] = 59; // no next header
        assert_eq!(teredo(&bytes, 48), Some(Step::Ip(Version::V6, &bytes[8..])));
        assert_eq!(teredo(&bytes, 49), None);
        // Authentication (ID-len 1, AU-len 2) before the origin indication.
        let mut auth = vec![0x00, 0x01, 1, 2, 0xaa, 0xbb, 0xcc];
        auth.extend_from_slice(&[0; 9]);
        auth.extend_from_slice(&bytes);
        assert_eq!(teredo(&auth, 64), Some(Step::Ip(Version::V6, &auth[24..])));
        assert_eq!(teredo(&[0x45; 48], 48), None);
    }
}
