//! First-bytes markers of protocols that are not TLS but still tell where a flow goes.
//!
//! Checked only on the first bytes of a flow: a marker is a fixed preface, not a search through
//! content. Each function is pure and reads at most a few dozen bytes (STUN: the attribute
//! list of one message, bounded by [`MAX_STUN_ATTRS`]).
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::net::{IpAddr, SocketAddr};

/// A protocol preface that names a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Marker {
    /// WhatsApp's chat protocol: `WA` and a two-byte version, the prologue of its Noise
    /// handshake (older FunXMPP clients sent the same preface), optionally behind an `ED`
    /// edge-routing header. Seen on TCP 443 and 5222.
    WhatsAppNoise,
    /// STUN/TURN (RFC 5389 §6 magic cookie): the base of WhatsApp, Signal, Telegram, Teams and
    /// Zoom calls.
    Stun,
    /// DNS over TLS (TLS on TCP 853, RFC 7858).
    Dot,
    /// DNS over QUIC (ALPN `doq`, RFC 9250).
    Doq,
    /// Dropbox LAN sync discovery: a JSON beacon broadcast to UDP 17500 that starts with
    /// `{"host_int"` (the desktop client announcing itself and its shared folders' count).
    DropboxLanSync,
    /// RTP/RTCP media (`proto::rtp`): call media whose service only its address can tell.
    Rtp,
    /// Discord voice: its UDP IP discovery exchange or its 8-byte keepalive ([`discord_voice`]).
    DiscordVoice,
    /// STUN carrying Microsoft's MS-TURN/MS-ICE2 attributes (Teams, Skype for Business).
    StunMicrosoft,
    /// STUN carrying libwebrtc's GOOG-* attributes (Chrome, Meet, Messenger and other WebRTC
    /// apps: the stack, not the service).
    StunGoogle,
    /// STUN carrying WhatsApp's private attributes 0x4000–0x4002.
    StunWhatsApp,
    /// STUN carrying Zoom's attribute 0x0103.
    StunZoom,
    /// Zoom's media encapsulation on its media ports ([`zoom_media`]).
    ZoomMedia,
    /// Telegram call traffic through its UDP reflectors ([`telegram_call`]).
    TelegramCall,
    /// Viber's own UDP framing on its ports ([`viber_udp`]).
    ViberUdp,
}

impl Marker {
    /// Label used in output.
    pub fn as_str(self) -> &'static str {
        match self {
            Marker::WhatsAppNoise => "whatsapp-noise",
            Marker::Stun => "stun",
            Marker::Dot => "dot",
            Marker::Doq => "doq",
            Marker::DropboxLanSync => "dropbox-lansync",
            Marker::Rtp => "rtp",
            Marker::DiscordVoice => "discord-voice",
            Marker::StunMicrosoft => "stun-microsoft",
            Marker::StunGoogle => "stun-google",
            Marker::StunWhatsApp => "stun-whatsapp",
            Marker::StunZoom => "stun-zoom",
            Marker::ZoomMedia => "zoom-media",
            Marker::TelegramCall => "telegram-call",
            Marker::ViberUdp => "viber-udp",
        }
    }
}

/// The result of looking at a client's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniff {
    /// Too few bytes to decide.
    NeedMore,
    /// Not this marker.
    No,
    /// The marker is present.
    Yes,
}

/// Longest edge-routing header skipped before WhatsApp's `WA` preface.
pub const MAX_WA_ROUTING: usize = 64;

/// WhatsApp chat preface on a TCP client stream.
///
/// Layouts observed in captures (facts documented by nDPI's and Wireshark's dissectors):
/// `57 41 vv vv` (`WA` + major/minor version), or the edge-routing form
/// `45 44 00 01` + 3-byte length + routing data, then `WA` + version.
pub fn whatsapp(data: &[u8]) -> Sniff {
    let wa_at = |at: usize| -> Sniff {
        match data.get(at..at + 4) {
            None => {
                let have = data.get(at..).unwrap_or_default();
                if b"WA".starts_with(have.get(..2).unwrap_or(have)) {
                    Sniff::NeedMore
                } else {
                    Sniff::No
                }
            }
            Some([b'W', b'A', major, _]) if (1..=15).contains(major) => Sniff::Yes,
            Some(_) => Sniff::No,
        }
    };
    const EDGE: &[u8] = b"ED\x00\x01";
    if data.len() < EDGE.len() && EDGE.starts_with(data) {
        return Sniff::NeedMore;
    }
    if data.starts_with(EDGE) {
        let Some(&[l0, l1, l2]) = data.get(4..7) else { return Sniff::NeedMore };
        let len = u32::from_be_bytes([0, l0, l1, l2]) as usize;
        if len > MAX_WA_ROUTING {
            return Sniff::No;
        }
        return wa_at(7 + len);
    }
    wa_at(0)
}

/// UDP port of Dropbox LAN sync discovery.
pub const DROPBOX_LANSYNC_PORT: u16 = 17500;

/// Bytes of a beacon searched for its `host_int` key.
const DROPBOX_BEACON_WINDOW: usize = 256;

/// Dropbox LAN sync discovery beacon: a JSON object on UDP 17500 with a `host_int` key near
/// its start (key order varies between client versions).
pub fn dropbox_lansync(p: &[u8]) -> bool {
    let window = p.get(..DROPBOX_BEACON_WINDOW).unwrap_or(p);
    p.starts_with(b"{\"") && window.windows(10).any(|w| w == b"\"host_int\"")
}

/// Length of Discord's IP discovery packet (Discord developer documentation, "Voice
/// Connections: IP Discovery"): type (2), length (2) = 70, SSRC (4), address (64, a
/// null-padded string), port (2).
pub const DISCORD_DISCOVERY_LEN: usize = 74;

/// Length of Discord's voice keepalive: `13 37 ca fe` and a 4-byte counter (as nDPI's Discord
/// dissector matches it).
pub const DISCORD_KEEPALIVE_LEN: usize = 8;

/// Discord voice on UDP: an IP discovery request (type 1) or response (type 2) with length 70,
/// whose address field is a null-padded string (empty in a request), or the 8-byte
/// `0x1337cafe` keepalive that client and voice server exchange every few seconds.
pub fn discord_voice(p: &[u8]) -> bool {
    if p.len() == DISCORD_KEEPALIVE_LEN {
        return p.starts_with(&[0x13, 0x37, 0xca, 0xfe]);
    }
    if p.len() != DISCORD_DISCOVERY_LEN {
        return false;
    }
    let Some((&[0, kind, 0, 70], rest)) = p.split_first_chunk::<4>() else { return false };
    let Some(address) = rest.get(4..68) else { return false };
    // The address: printable text, then only zeros (a request carries none at all).
    let text = address.iter().position(|&b| b == 0).unwrap_or(address.len());
    matches!(kind, 1 | 2)
        && text < address.len()
        && address.get(..text).is_some_and(|t| t.iter().all(|b| b.is_ascii_graphic()))
        && address.get(text..).is_some_and(|z| z.iter().all(|&b| b == 0))
}

/// Zoom's UDP media ports (Zoom support, "Network firewall or proxy server settings for Zoom").
pub const ZOOM_MEDIA_PORTS: std::ops::RangeInclusive<u16> = 8801..=8810;

/// Zoom's SFU encapsulation: type (1), sequence number (2), 4 unknown bytes, direction (1).
const ZOOM_SFU_LEN: usize = 8;

/// Zoom's media encapsulation after it: media type (1), 8 unknown bytes, sequence number (2),
/// timestamp (4).
const ZOOM_MEDIA_LEN: usize = 15;

/// Zoom media on its media ports (layout as documented by nDPI's Zoom dissector, after the
/// Princeton zoom-analysis work): the SFU session's opening datagrams `01 00 02|03` (client)
/// and `02 00 02|03` (server), or an SFU type-5 datagram whose media header says audio (15),
/// video (16), screen share (13, 30) or RTCP (33–35) and is followed, at that type's offset, by
/// an RTP (or RTCP) version-2 header. The caller checks the port ([`ZOOM_MEDIA_PORTS`]).
pub fn zoom_media(p: &[u8]) -> bool {
    if p.len() <= ZOOM_SFU_LEN {
        return false;
    }
    match p {
        [1 | 2, 0, 2 | 3, ..] => return true,
        [5, ..] => {}
        _ => return false,
    }
    let Some(media) = p.get(ZOOM_SFU_LEN..) else { return false };
    if media.len() <= ZOOM_MEDIA_LEN {
        return false;
    }
    let (at, rtcp) = match media.first() {
        Some(15) => (19, false),
        Some(16) => (24, false),
        Some(13) => (27, false),
        Some(30) => (20, false),
        Some(33..=35) => (16, true),
        _ => return false,
    };
    match media.get(at..).and_then(crate::proto::rtp::parse) {
        Some(crate::proto::rtp::Packet::Rtp { .. }) => !rtcp,
        Some(crate::proto::rtp::Packet::Rtcp { .. }) => rtcp,
        None => false,
    }
}

/// UDP ports of Telegram's call reflectors (as nDPI's Telegram dissector qualifies them).
pub const TELEGRAM_CALL_PORTS: std::ops::RangeInclusive<u16> = 500..=600;

/// Shortest reflector datagram looked at.
const TELEGRAM_CALL_MIN_LEN: usize = 40;

/// Length of the run of `0xff` bytes that marks a reflector datagram.
const TELEGRAM_FF_RUN: usize = 12;

/// Telegram call datagram on a reflector port (layout as documented by nDPI's Telegram
/// dissector): at least 40 bytes, whose first `0xff` byte starts a run of exactly 12. The
/// caller checks the port ([`TELEGRAM_CALL_PORTS`]).
pub fn telegram_call(p: &[u8]) -> bool {
    if p.len() < TELEGRAM_CALL_MIN_LEN {
        return false;
    }
    let Some(start) = p.iter().position(|&b| b == 0xff) else { return false };
    let run = p.get(start..).unwrap_or_default().iter().take_while(|&&b| b == 0xff).count();
    run == TELEGRAM_FF_RUN
}

/// Viber's UDP ports (nDPI's protocol defaults for Viber: 7985, 7987, 5242, 5243, 4244).
pub const VIBER_UDP_PORTS: [u16; 5] = [7985, 7987, 5242, 5243, 4244];

/// Viber's UDP framing (as nDPI's Viber dissector matches it): bytes 2–3 `03 00`; or `09 00`
/// in a 20-byte datagram; or `01 00 05 00` at bytes 2–5; or `19 00` / `1b 00` in a 34-byte
/// datagram. Two bytes say little on their own: the caller checks the port
/// ([`VIBER_UDP_PORTS`]).
pub fn viber_udp(p: &[u8]) -> bool {
    let Some((&[_, _, a, b, c, d], _)) = p.split_first_chunk::<6>() else { return false };
    matches!(
        (p.len(), a, b, c, d),
        (_, 0x03, 0, _, _) | (20, 0x09, 0, _, _) | (_, 0x01, 0, 0x05, 0) | (34, 0x19 | 0x1b, 0, _, _)
    )
}

/// STUN magic cookie (RFC 5389 §6).
pub const STUN_COOKIE: u32 = 0x2112_a442;

/// Attributes read per STUN message at most.
pub const MAX_STUN_ATTRS: usize = 32;

/// Longest SOFTWARE or REALM value kept (RFC 5389 §15.10: < 128 characters).
pub const MAX_STUN_TEXT: usize = 128;

/// Whose STUN stack sent a message, told by attribute types only it uses (their values are
/// not kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StunVendor {
    /// [MS-TURN] and [MS-ICE2]: MS-VERSION 0x8008, MS-SEQUENCE-NUMBER 0x8050,
    /// CANDIDATE-IDENTIFIER 0x8054, MS-SERVICE-QUALITY 0x8055, MS-IMPLEMENTATION-VERSION
    /// 0x8070 (Teams, Skype for Business).
    Microsoft,
    /// libwebrtc's comprehension-optional GOOG-* attributes 0xC057–0xC060 (any WebRTC app).
    Google,
    /// WhatsApp's private attributes 0x4000, 0x4001, 0x4002 (noted by nDPI's STUN dissector).
    WhatsApp,
    /// Zoom's attribute 0x0103 (noted by nDPI's STUN dissector).
    Zoom,
}

impl StunVendor {
    /// The vendor an attribute type belongs to, if any.
    fn of_attribute(t: u16) -> Option<StunVendor> {
        match t {
            0x8008 | 0x8050 | 0x8054 | 0x8055 | 0x8070 => Some(StunVendor::Microsoft),
            0xc057..=0xc060 => Some(StunVendor::Google),
            0x4000..=0x4002 => Some(StunVendor::WhatsApp),
            0x0103 => Some(StunVendor::Zoom),
            _ => None,
        }
    }

    /// When one message has attributes of two vendors, the one that names a service wins over
    /// libwebrtc's, which only names the stack.
    fn rank(self) -> u8 {
        match self {
            StunVendor::Google => 0,
            StunVendor::Microsoft | StunVendor::WhatsApp | StunVendor::Zoom => 1,
        }
    }

    /// The flow marker for STUN from this vendor's stack.
    pub fn marker(self) -> Marker {
        match self {
            StunVendor::Microsoft => Marker::StunMicrosoft,
            StunVendor::Google => Marker::StunGoogle,
            StunVendor::WhatsApp => Marker::StunWhatsApp,
            StunVendor::Zoom => Marker::StunZoom,
        }
    }
}

/// What a STUN message says about the software at either end. Only attributes that name
/// software, a realm or a stack are kept, and TURN's relay addresses: USERNAME and the rest
/// may identify a person.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StunInfo {
    /// Message type (method and class), e.g. 0x0001 Binding request.
    pub msg_type: u16,
    /// SOFTWARE attribute (0x8022).
    pub software: Option<Vec<u8>>,
    /// REALM attribute (0x0014).
    pub realm: Option<Vec<u8>>,
    /// The stack that sent it, from vendor attribute types.
    pub vendor: Option<StunVendor>,
    /// XOR-RELAYED-ADDRESS (0x0016, RFC 8656): the address a TURN server relays for the client;
    /// media to it is the same call.
    pub relayed: Option<SocketAddr>,
    /// XOR-PEER-ADDRESS (0x0012, RFC 8656): the far end a TURN client sends to or hears from.
    pub peer: Option<SocketAddr>,
}

impl StunInfo {
    /// The flow marker: the vendor's, or plain STUN.
    pub fn marker(&self) -> Marker {
        self.vendor.map_or(Marker::Stun, StunVendor::marker)
    }
}

/// Decodes an XOR-*-ADDRESS value (RFC 8489 §14.2): family 1 (IPv4) or 2 (IPv6), the port
/// XORed with the cookie's top 16 bits, the address with the cookie (IPv4) or the cookie and
/// transaction id (IPv6).
fn xor_address(v: &[u8], header: &[u8; 20]) -> Option<SocketAddr> {
    let (&[_, family, p0, p1], addr) = v.split_first_chunk::<4>()?;
    let (key, _) = header.get(4..)?.split_first_chunk::<16>()?;
    let [k0, k1, ..] = *key;
    let port = u16::from_be_bytes([p0 ^ k0, p1 ^ k1]);
    let unmask = |a: &mut [u8]| a.iter_mut().zip(key).for_each(|(b, k)| *b ^= k);
    match family {
        1 => {
            let (&a, _) = addr.split_first_chunk::<4>()?;
            let mut ip = a;
            unmask(&mut ip);
            Some(SocketAddr::new(IpAddr::from(ip), port))
        }
        2 => {
            let (&a, _) = addr.split_first_chunk::<16>()?;
            let mut ip = a;
            unmask(&mut ip);
            Some(SocketAddr::new(IpAddr::from(ip), port))
        }
        _ => None,
    }
}

/// Parses a UDP payload as a STUN message (RFC 5389 §6): two zero bits, a length that matches
/// the datagram, and the magic cookie. RFC 5389 wants the length to be a multiple of 4, but
/// WhatsApp's TURN Allocate requests carry an unpadded last attribute (length 106 in a real
/// capture); the cookie and the exact length are test enough.
pub fn stun(p: &[u8]) -> Option<StunInfo> {
    // The 20-byte header as an array: its fields are read at constant offsets that cannot fail.
    let (header, mut attrs) = p.split_first_chunk::<20>()?;
    let [t0, t1, l0, l1, c0, c1, c2, c3, ..] = *header;
    if t0 & 0xc0 != 0 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([l0, l1]));
    if len != attrs.len() || u32::from_be_bytes([c0, c1, c2, c3]) != STUN_COOKIE {
        return None;
    }
    let mut info = StunInfo { msg_type: u16::from_be_bytes([t0, t1]), ..Default::default() };
    for _ in 0..MAX_STUN_ATTRS {
        let Some((&[a, b, c, d], rest)) = attrs.split_first_chunk::<4>() else { break };
        let (t, l) = (u16::from_be_bytes([a, b]), usize::from(u16::from_be_bytes([c, d])));
        let Some(v) = rest.get(..l) else { break };
        let keep = || v.get(..MAX_STUN_TEXT).unwrap_or(v).to_vec();
        match t {
            0x8022 => info.software = Some(keep()),
            0x0014 => info.realm = Some(keep()),
            0x0016 => info.relayed = info.relayed.or_else(|| xor_address(v, header)),
            0x0012 => info.peer = info.peer.or_else(|| xor_address(v, header)),
            _ => {
                if let Some(vendor) = StunVendor::of_attribute(t) {
                    if info.vendor.is_none_or(|had| had.rank() < vendor.rank()) {
                        info.vendor = Some(vendor);
                    }
                }
            }
        }
        // Values are padded to 4 bytes; a last value without its padding ends the list.
        attrs = rest.get(l.div_ceil(4) * 4..).unwrap_or_default();
    }
    Some(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whatsapp_prefaces() {
        // From a real WhatsApp login (nDPI test capture): "WA" 1.5.
        assert_eq!(whatsapp(&[0x57, 0x41, 0x01, 0x05, 0, 0, 0x1a]), Sniff::Yes);
        assert_eq!(whatsapp(b"WA\x06\x03"), Sniff::Yes);
        assert_eq!(whatsapp(b"W"), Sniff::NeedMore);
        assert_eq!(whatsapp(b"WA\x06"), Sniff::NeedMore);
        assert_eq!(whatsapp(b"WA\x00\x03"), Sniff::No);
        assert_eq!(whatsapp(b"GET / HTTP/1.1"), Sniff::No);
        let edge = [0x45, 0x44, 0, 1, 0, 0, 2, 8, 0, 0x57, 0x41, 2, 0];
        assert_eq!(whatsapp(&edge), Sniff::Yes);
        assert_eq!(whatsapp(&edge[..5]), Sniff::NeedMore);
        assert_eq!(whatsapp(&edge[..10]), Sniff::NeedMore);
        assert_eq!(whatsapp(&[0x45, 0x44, 0, 1, 0xff, 0, 0]), Sniff::No, "routing header too long");
        assert_eq!(whatsapp(b""), Sniff::NeedMore);
    }

    #[test]
    fn dropbox_beacon() {
        assert!(dropbox_lansync(b"{\"host_int\": 1234, \"version\": [2, 0]}"));
        assert!(dropbox_lansync(b"{\"version\": [2, 0], \"port\": 17500, \"host_int\": 3"));
        assert!(!dropbox_lansync(b"{\"host\": 1}"));
    }

    #[test]
    fn stun_binding_with_software() {
        let mut m = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42];
        m.extend_from_slice(&[9u8; 12]);
        let attr = |t: u16, v: &[u8]| {
            let mut a = t.to_be_bytes().to_vec();
            a.extend_from_slice(&(v.len() as u16).to_be_bytes());
            a.extend_from_slice(v);
            while !a.len().is_multiple_of(4) {
                a.push(0);
            }
            a
        };
        m.extend(attr(0x0006, b"alice:bob"));
        m.extend(attr(0x8022, b"WhatsApp/2.24"));
        m.extend(attr(0x0014, b"example.org"));
        let len = (m.len() - 20) as u16;
        m[2..4].copy_from_slice(&len.to_be_bytes());
        let info = stun(&m).unwrap();
        assert_eq!(info.msg_type, 1);
        assert_eq!(info.software.as_deref(), Some(&b"WhatsApp/2.24"[..]));
        assert_eq!(info.realm.as_deref(), Some(&b"example.org"[..]));
        for cut in 0..m.len() {
            assert!(stun(&m[..cut]).is_none(), "a cut message is not STUN");
        }
        m[4] = 0;
        assert!(stun(&m).is_none(), "no magic cookie");
    }

    /// A STUN message of type `t` with transaction id `tid` and the given attributes.
    fn message(t: u16, tid: [u8; 12], attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut m = t.to_be_bytes().to_vec();
        m.extend([0, 0, 0x21, 0x12, 0xa4, 0x42]);
        m.extend(tid);
        for (t, v) in attrs {
            m.extend(t.to_be_bytes());
            m.extend((v.len() as u16).to_be_bytes());
            m.extend_from_slice(v);
            while !m.len().is_multiple_of(4) {
                m.push(0);
            }
        }
        let len = (m.len() - 20) as u16;
        m[2..4].copy_from_slice(&len.to_be_bytes());
        m
    }

    #[test]
    fn stun_vendors() {
        let tid = [3u8; 12];
        let vendor = |attrs: &[(u16, &[u8])]| stun(&message(1, tid, attrs)).unwrap().vendor;
        // MS-IMPLEMENTATION-VERSION 2 and MS-VERSION, as Teams sends them.
        assert_eq!(vendor(&[(0x8070, &[0, 0, 0, 2]), (0x0024, &[0; 4])]), Some(StunVendor::Microsoft));
        assert_eq!(vendor(&[(0x8008, &[0, 0, 0, 6])]), Some(StunVendor::Microsoft));
        assert_eq!(vendor(&[(0x8054, &[0x12, 0, 0, 0])]), Some(StunVendor::Microsoft));
        // GOOG-NETWORK-INFO: libwebrtc.
        assert_eq!(vendor(&[(0x0006, b"ab:cd"), (0xc057, &[0, 1, 0, 10])]), Some(StunVendor::Google));
        // A service's own attribute wins over libwebrtc's, in either order.
        assert_eq!(vendor(&[(0xc057, &[0; 4]), (0x4000, &[1])]), Some(StunVendor::WhatsApp));
        assert_eq!(vendor(&[(0x0103, &[1, 2]), (0xc059, &[0; 4])]), Some(StunVendor::Zoom));
        assert_eq!(vendor(&[(0x0006, b"user"), (0x8028, &[0; 4])]), None, "standard attributes only");
        assert_eq!(stun(&message(1, tid, &[(0x8070, &[0, 0, 0, 3])])).unwrap().marker(), Marker::StunMicrosoft);
        assert_eq!(stun(&message(1, tid, &[])).unwrap().marker(), Marker::Stun);
        // An attribute type inside another's value is not read as one.
        assert_eq!(vendor(&[(0x0006, &[0x80, 0x70, 0, 4, 0, 0, 0, 2])]), None);
    }

    #[test]
    fn turn_addresses_are_unmasked() {
        let tid = [0x5a, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11];
        // 192.0.2.1:49152 XORed with the cookie (RFC 8489 §14.2).
        let cookie = [0x21u8, 0x12, 0xa4, 0x42];
        let plain = [0xc0u8, 0x00, 192, 0, 2, 1];
        let mut v4 = vec![0, 1];
        v4.extend(plain.iter().zip(cookie[..2].iter().chain(&cookie)).map(|(a, k)| a ^ k));
        // 2001:db8::7:443 XORed with the cookie and the transaction id.
        let ip6: std::net::Ipv6Addr = "2001:db8::7".parse().unwrap();
        let key: Vec<u8> = [0x21, 0x12, 0xa4, 0x42].into_iter().chain(tid).collect();
        let mut v6 = vec![0, 2, 0x01 ^ 0x21, 0xbb ^ 0x12];
        v6.extend(ip6.octets().iter().zip(&key).map(|(a, k)| a ^ k));
        let info = stun(&message(0x0103, tid, &[(0x0016, &v4), (0x0012, &v6), (0x0012, &v4)])).unwrap();
        assert_eq!(info.relayed, Some("192.0.2.1:49152".parse().unwrap()));
        assert_eq!(info.peer, Some("[2001:db8::7]:443".parse().unwrap()), "the first peer is kept");
        assert_eq!(info.vendor, None, "0x0103 as a message type is not Zoom's attribute");
        // Bad family, short values: no address, no panic.
        let info = stun(&message(0x0103, tid, &[(0x0016, &[0, 3, 0, 0, 1, 2, 3, 4]), (0x0012, &v6[..10])])).unwrap();
        assert_eq!((info.relayed, info.peer), (None, None));
    }

    #[test]
    fn zoom_media_datagrams() {
        // SFU type 5, audio (15), RTP at 19 bytes into the media header.
        let mut audio = vec![5, 0x12, 0x34, 0, 0, 0, 0, 0];
        audio.extend([15, 1, 2, 3, 4, 5, 6, 7, 8, 0, 9, 0, 0, 1, 0, 0, 0, 0, 0]);
        let rtp = [0x90, 0x70, 0x01, 0x02, 0, 0, 0, 1, 0x11, 0x22, 0x33, 0x44, 0xbe, 0xde, 0, 1];
        audio.extend(rtp);
        audio.extend([0xaa; 40]);
        assert!(zoom_media(&audio));
        let mut video = audio.clone();
        video[8] = 16;
        assert!(!zoom_media(&video), "video's RTP is 5 bytes further");
        video.splice(8 + 19..8 + 19, [0; 5]);
        assert!(zoom_media(&video));
        // RTCP type with an RTCP receiver report at 16.
        let mut rtcp = vec![5, 0, 1, 0, 0, 0, 0, 4, 33];
        rtcp.extend([0; 15]);
        rtcp.extend([0x80, 201, 0, 1, 1, 2, 3, 4]);
        assert!(zoom_media(&rtcp));
        rtcp[8] = 15;
        assert!(!zoom_media(&rtcp), "audio type over RTCP");
        let mut not_rtp = audio.clone();
        not_rtp[8 + 19] = 0x40;
        assert!(!zoom_media(&not_rtp), "no RTP version 2 inside");
        assert!(!zoom_media(&audio[..8 + 19]));
        // Session openings.
        assert!(zoom_media(&[1, 0, 3, 0, 0, 0, 0, 0, 0, 1]));
        assert!(zoom_media(&[2, 0, 2, 9, 9, 9, 9, 9, 9, 9]));
        assert!(!zoom_media(&[1, 0, 3]), "too short");
        assert!(!zoom_media(&[1, 1, 3, 0, 0, 0, 0, 0, 0, 1]));
        assert!(!zoom_media(&[0x17, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 1]), "DTLS");
    }

    #[test]
    fn telegram_reflector_datagrams() {
        let mut p = vec![0x5e; 16];
        p.extend([0xff; 12]);
        p.extend([0x01; 24]);
        assert!(telegram_call(&p));
        assert!(!telegram_call(&p[..39]), "short");
        let mut long_run = p.clone();
        long_run[28] = 0xff;
        assert!(!telegram_call(&long_run), "13 bytes of 0xff");
        let mut short_run = p.clone();
        short_run[27] = 0;
        assert!(!telegram_call(&short_run), "11 bytes of 0xff");
        let mut early = p;
        early[3] = 0xff;
        assert!(!telegram_call(&early), "the first 0xff starts the run");
        assert!(!telegram_call(&[0u8; 64]));
    }

    #[test]
    fn viber_datagrams() {
        assert!(viber_udp(&[0x12, 0x34, 0x03, 0x00, 1, 2, 3, 4, 5, 6, 7, 8]));
        let mut twenty = vec![0u8; 20];
        twenty[2] = 0x09;
        assert!(viber_udp(&twenty));
        assert!(!viber_udp(&twenty[..19]), "09 00 only at 20 bytes");
        assert!(viber_udp(&[9, 9, 0x01, 0x00, 0x05, 0x00, 7]));
        assert!(!viber_udp(&[9, 9, 0x01, 0x00, 0x06, 0x00, 7]));
        let mut t34 = vec![0u8; 34];
        t34[2] = 0x1b;
        assert!(viber_udp(&t34));
        t34[2] = 0x1a;
        assert!(!viber_udp(&t34));
        assert!(!viber_udp(&[0, 0, 3, 0, 0]), "too short");
        assert!(!viber_udp(&[0, 0, 3, 1, 0, 0]));
    }

    #[test]
    fn discord_voice_packets() {
        let mut request = vec![0, 1, 0, 70, 0, 0x16, 0x2f, 0xfd];
        request.extend([0; 66]);
        assert!(discord_voice(&request));
        let mut response = vec![0, 2, 0, 70, 0, 0x16, 0x2f, 0xfd];
        let mut address = b"203.0.113.9".to_vec();
        address.resize(64, 0);
        response.extend(address);
        response.extend(54935u16.to_be_bytes());
        assert!(discord_voice(&response));
        // From the corpus capture: the keepalive and its echo.
        assert!(discord_voice(&[0x13, 0x37, 0xca, 0xfe, 0xa9, 0x01, 0, 0]));
        assert!(!discord_voice(&[0x13, 0x37, 0xca, 0xfe, 0xa9, 0x01, 0, 0, 0]), "keepalive is 8 bytes");
        assert!(!discord_voice(&request[..73]));
        let mut bad = request.clone();
        bad[1] = 3;
        assert!(!discord_voice(&bad), "type 3");
        let mut bad = request.clone();
        bad[3] = 71;
        assert!(!discord_voice(&bad), "length 71");
        let mut bad = response.clone();
        bad[40] = 7;
        assert!(!discord_voice(&bad), "bytes after the address's end");
        let mut bad = response;
        bad[9] = 0x07;
        assert!(!discord_voice(&bad), "not text");
        assert!(!discord_voice(&[0xaa; 74]));
    }
}
