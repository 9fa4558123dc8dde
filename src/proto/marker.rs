//! First-bytes markers of protocols that are not TLS but still tell where a flow goes.
//!
//! Checked only on the first bytes of a flow: a marker is a fixed preface, not a search through
//! content. Each function is pure and reads at most a few dozen bytes (STUN: the attribute
//! list of one message, bounded by [`MAX_STUN_ATTRS`]).
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic))]

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

/// STUN magic cookie (RFC 5389 §6).
pub const STUN_COOKIE: u32 = 0x2112_a442;

/// Attributes read per STUN message at most.
pub const MAX_STUN_ATTRS: usize = 32;

/// Longest SOFTWARE or REALM value kept (RFC 5389 §15.10: < 128 characters).
pub const MAX_STUN_TEXT: usize = 128;

/// What a STUN message says about the software at either end. Only attributes that name
/// software or a realm are kept: USERNAME and the rest may identify a person.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StunInfo {
    /// Message type (method and class), e.g. 0x0001 Binding request.
    pub msg_type: u16,
    /// SOFTWARE attribute (0x8022).
    pub software: Option<Vec<u8>>,
    /// REALM attribute (0x0014).
    pub realm: Option<Vec<u8>>,
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
            _ => {}
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
}
