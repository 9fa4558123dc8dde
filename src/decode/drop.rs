//! Why a frame was not turned into a [`Packet`](super::Packet): one counted reason per frame.
//!
//! Every reason has a stable snake_case label ([`DropReason::as_str`]) for the metric exporter
//! and a dense index ([`DropReason::index`]) so the stage can keep its counters in a plain
//! `[u64; DropReason::ALL.len()]` without hashing on the hot path.

use core::fmt;

/// The header in which the captured bytes ran out (or whose length field pointed past them).
///
/// Kept coarse on purpose: each value is one metric label, and an operator needs to know
/// "the snaplen cuts my MPLS stack", not which of 20 extension headers was cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Layer {
    /// The link-layer header: Ethernet, Linux SLL/SLL2, NULL/LOOP, PPP, Cisco HDLC.
    Link,
    /// An IEEE 802.1Q / 802.1ad VLAN tag.
    Vlan,
    /// An MPLS label stack entry or pseudowire control word (RFC 3032, RFC 4385).
    Mpls,
    /// A PPPoE session header (RFC 2516 section 4).
    Pppoe,
    /// An IPv4 header with options or an IPv6 header with its extension headers.
    Ip,
    /// A GRE header with its optional fields, or the ERSPAN header it carries.
    Gre,
    /// A TCP header (the fixed 20 bytes; options may be cut, see [`super::TcpSegment`]).
    Tcp,
    /// A UDP header.
    Udp,
}

impl Layer {
    /// Every layer, in index order.
    pub const ALL: &'static [Layer] = &[
        Layer::Link,
        Layer::Vlan,
        Layer::Mpls,
        Layer::Pppoe,
        Layer::Ip,
        Layer::Gre,
        Layer::Tcp,
        Layer::Udp,
    ];

    /// Short lowercase name, used inside the drop-reason label.
    pub fn as_str(&self) -> &'static str {
        match self {
            Layer::Link => "link",
            Layer::Vlan => "vlan",
            Layer::Mpls => "mpls",
            Layer::Pppoe => "pppoe",
            Layer::Ip => "ip",
            Layer::Gre => "gre",
            Layer::Tcp => "tcp",
            Layer::Udp => "udp",
        }
    }

    /// Dense index `0..Layer::ALL.len()`.
    fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why [`decode`](super::decode) did not produce a [`Packet`](super::Packet).
///
/// The set is small on purpose: each variant is a metric label and must mean something an
/// operator can act on (raise the snaplen, stop mirroring ARP, look for a broken or hostile sender).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DropReason {
    /// The captured bytes end inside a header (snaplen, or a length field pointing past them).
    #[error("frame truncated in the {layer} header")]
    Truncated {
        /// The header that was cut.
        layer: Layer,
    },
    /// The link type carries no EtherType-like protocol decode understands, e.g. a Linux SLL
    /// frame from an 802.11 radiotap or Frame Relay interface. `capture` also counts frames of
    /// a DLT that [`LinkType::from_dlt`](super::LinkType::from_dlt) rejects under this label.
    #[error("unsupported link type")]
    UnsupportedLinkType,
    /// An EtherType (or the field standing for one in SLL, NULL, PPPoE, or the guessed payload
    /// of an MPLS stack) that is neither IP, a shim decode strips, nor a known non-IP protocol.
    #[error("unsupported EtherType")]
    UnsupportedEtherType,
    /// A protocol known not to be IP: ARP, LLDP, 802.3/LLC, PPP control protocols, a non-inet
    /// address family, MPLS OAM. Expected on any link; counted so it is visible, not alarming.
    #[error("not an IP packet")]
    NotIp,
    /// An IPv4 or IPv6 fragment that cannot belong to any datagram (RFC 791 section 3.2,
    /// RFC 8200 section 4.5): its offset plus length beyond 65,535 bytes, a fragment with more
    /// to follow whose length is zero or not a multiple of 8, an IPv4 total length below the
    /// header, or an IPv6 jumbogram with a Fragment header (RFC 2675 section 3). Well-formed
    /// fragments are not dropped: they go to the engine's defragmenter.
    #[error("malformed IP fragment")]
    BadFragment,
    /// An IP header that cannot be read: version not 4/6 (or not the one the framing named),
    /// IHL below 5, a misplaced IPv6 hop-by-hop header, a malformed AH.
    #[error("malformed IP header")]
    BadIpHeader,
    /// A TCP header whose data offset is below 5 (RFC 9293 section 3.1).
    #[error("malformed TCP header")]
    BadTcpHeader,
    /// A UDP header whose length field is 1..=7 (RFC 768; 0 is allowed for RFC 2675 jumbograms).
    #[error("malformed UDP header")]
    BadUdpHeader,
    /// A GRE packet decode does not follow: version other than 0 (PPTP's enhanced GRE is 1),
    /// RFC 1701 routing present, an unknown protocol type, or a malformed ERSPAN header.
    #[error("unsupported GRE packet")]
    UnsupportedGre,
    /// More nested tunnels than [`MAX_ENCAP_DEPTH`](super::MAX_ENCAP_DEPTH), or more VLAN tags,
    /// MPLS labels and shims than [`MAX_LINK_HEADERS`](super::MAX_LINK_HEADERS).
    #[error("encapsulation nested too deep")]
    EncapTooDeep,
}

/// Number of variants that are not `Truncated`; they follow the truncated ones in [`DropReason::ALL`].
const TRUNCATED_COUNT: usize = 8;

impl DropReason {
    /// Every reason, in [`index`](Self::index) order: size counter arrays with `ALL.len()`.
    pub const ALL: &'static [DropReason] = &[
        DropReason::Truncated { layer: Layer::Link },
        DropReason::Truncated { layer: Layer::Vlan },
        DropReason::Truncated { layer: Layer::Mpls },
        DropReason::Truncated {
            layer: Layer::Pppoe,
        },
        DropReason::Truncated { layer: Layer::Ip },
        DropReason::Truncated { layer: Layer::Gre },
        DropReason::Truncated { layer: Layer::Tcp },
        DropReason::Truncated { layer: Layer::Udp },
        DropReason::UnsupportedLinkType,
        DropReason::UnsupportedEtherType,
        DropReason::NotIp,
        DropReason::BadFragment,
        DropReason::BadIpHeader,
        DropReason::BadTcpHeader,
        DropReason::BadUdpHeader,
        DropReason::UnsupportedGre,
        DropReason::EncapTooDeep,
    ];

    /// Stable snake_case label for metrics, e.g. `truncated_ip`, `bad_fragment`.
    pub fn as_str(&self) -> &'static str {
        match self {
            DropReason::Truncated { layer } => match layer {
                Layer::Link => "truncated_link",
                Layer::Vlan => "truncated_vlan",
                Layer::Mpls => "truncated_mpls",
                Layer::Pppoe => "truncated_pppoe",
                Layer::Ip => "truncated_ip",
                Layer::Gre => "truncated_gre",
                Layer::Tcp => "truncated_tcp",
                Layer::Udp => "truncated_udp",
            },
            DropReason::UnsupportedLinkType => "unsupported_link_type",
            DropReason::UnsupportedEtherType => "unsupported_ethertype",
            DropReason::NotIp => "not_ip",
            DropReason::BadFragment => "bad_fragment",
            DropReason::BadIpHeader => "bad_ip_header",
            DropReason::BadTcpHeader => "bad_tcp_header",
            DropReason::BadUdpHeader => "bad_udp_header",
            DropReason::UnsupportedGre => "unsupported_gre",
            DropReason::EncapTooDeep => "encap_too_deep",
        }
    }

    /// Dense index in `0..DropReason::ALL.len()`, for counter arrays.
    pub fn index(&self) -> usize {
        match self {
            DropReason::Truncated { layer } => layer.index(),
            DropReason::UnsupportedLinkType => TRUNCATED_COUNT,
            DropReason::UnsupportedEtherType => TRUNCATED_COUNT + 1,
            DropReason::NotIp => TRUNCATED_COUNT + 2,
            DropReason::BadFragment => TRUNCATED_COUNT + 3,
            DropReason::BadIpHeader => TRUNCATED_COUNT + 4,
            DropReason::BadTcpHeader => TRUNCATED_COUNT + 5,
            DropReason::BadUdpHeader => TRUNCATED_COUNT + 6,
            DropReason::UnsupportedGre => TRUNCATED_COUNT + 7,
            DropReason::EncapTooDeep => TRUNCATED_COUNT + 8,
        }
    }

    /// Shorthand used by the parsers.
    pub(super) const fn truncated(layer: Layer) -> DropReason {
        DropReason::Truncated { layer }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_is_dense_and_matches_all() {
        assert_eq!(Layer::ALL.len(), TRUNCATED_COUNT);
        for (i, layer) in Layer::ALL.iter().enumerate() {
            assert_eq!(layer.index(), i);
        }
        for (i, reason) in DropReason::ALL.iter().enumerate() {
            assert_eq!(reason.index(), i, "{reason:?}");
        }
    }

    #[test]
    fn labels_are_unique_snake_case() {
        for (i, a) in DropReason::ALL.iter().enumerate() {
            let label = a.as_str();
            assert!(
                label.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{label}"
            );
            for b in &DropReason::ALL[i + 1..] {
                assert_ne!(label, b.as_str());
            }
        }
    }

    #[test]
    fn display_names_the_layer() {
        let text = DropReason::truncated(Layer::Gre).to_string();
        assert_eq!(text, "frame truncated in the gre header");
    }
}
