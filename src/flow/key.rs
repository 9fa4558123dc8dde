//! Flow keys: one canonical key for both directions of a conversation.
#![cfg_attr(not(test), deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used, clippy::panic))]

use std::hash::{Hash, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Which way a packet travels relative to the flow's client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the client (the side that opened the flow) to the server.
    ToServer,
    /// From the server back to the client.
    ToClient,
}

impl Direction {
    /// Index into two-element per-direction arrays: 0 = to server, 1 = to client.
    #[inline]
    pub fn index(self) -> usize {
        match self {
            Direction::ToServer => 0,
            Direction::ToClient => 1,
        }
    }

    /// The opposite direction.
    #[inline]
    pub fn reverse(self) -> Direction {
        match self {
            Direction::ToServer => Direction::ToClient,
            Direction::ToClient => Direction::ToServer,
        }
    }
}

/// Transport protocol of a flow (the IP protocol number).
pub type IpProto = u8;

/// IP protocol number of TCP.
pub const TCP: IpProto = 6;
/// IP protocol number of UDP.
pub const UDP: IpProto = 17;

/// A direction-independent flow key: the lower endpoint first.
///
/// Both directions of a conversation map to the same key; [`Key::new`] also says which endpoint
/// sent the packet. The layout is deliberately flat (40 bytes, two 16-byte addresses with IPv4
/// stored in the low four bytes) so that comparing and hashing a key is a few word operations:
/// the flow lookup is the one thing every packet pays for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    lo_addr: [u8; 16],
    hi_addr: [u8; 16],
    lo_port: u16,
    hi_port: u16,
    /// IP protocol number.
    pub proto: IpProto,
    v6: bool,
}

impl Hash for Key {
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u128(u128::from_ne_bytes(self.lo_addr));
        state.write_u128(u128::from_ne_bytes(self.hi_addr));
        state.write_u64(
            (self.lo_port as u64) | (self.hi_port as u64) << 16 | (self.proto as u64) << 32 | (self.v6 as u64) << 40,
        );
    }
}

/// Which endpoint of a [`Key`] sent a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The packet's source is [`Key::lo`].
    Lo,
    /// The packet's source is [`Key::hi`].
    Hi,
}

impl Side {
    /// The other endpoint.
    #[inline]
    pub fn other(self) -> Side {
        match self {
            Side::Lo => Side::Hi,
            Side::Hi => Side::Lo,
        }
    }
}

#[inline]
fn flat(ip: IpAddr) -> ([u8; 16], bool) {
    match ip {
        IpAddr::V4(v4) => {
            let mut b = [0u8; 16];
            b[12..].copy_from_slice(&v4.octets());
            (b, false)
        }
        IpAddr::V6(v6) => (v6.octets(), true),
    }
}

impl Key {
    /// Builds the canonical key for a packet from `src` to `dst` and says which side sent it.
    #[inline]
    pub fn new(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, proto: IpProto) -> (Key, Side) {
        let (s, v6) = flat(src);
        let (d, _) = flat(dst);
        // Any total order canonicalises; comparing the addresses as integers is one instruction
        // where a byte-wise comparison of the arrays is sixteen.
        let (si, di) = (u128::from_ne_bytes(s), u128::from_ne_bytes(d));
        if (si, sport) <= (di, dport) {
            (Key { lo_addr: s, hi_addr: d, lo_port: sport, hi_port: dport, proto, v6 }, Side::Lo)
        } else {
            (Key { lo_addr: d, hi_addr: s, lo_port: dport, hi_port: sport, proto, v6 }, Side::Hi)
        }
    }

    fn addr(&self, b: [u8; 16]) -> IpAddr {
        if self.v6 {
            IpAddr::V6(Ipv6Addr::from(b))
        } else {
            IpAddr::V4(Ipv4Addr::new(b[12], b[13], b[14], b[15]))
        }
    }

    /// The lower endpoint.
    pub fn lo(&self) -> SocketAddr {
        SocketAddr::new(self.addr(self.lo_addr), self.lo_port)
    }

    /// The higher endpoint.
    pub fn hi(&self) -> SocketAddr {
        SocketAddr::new(self.addr(self.hi_addr), self.hi_port)
    }

    /// The endpoint on `side`.
    #[inline]
    pub fn endpoint(&self, side: Side) -> SocketAddr {
        match side {
            Side::Lo => self.lo(),
            Side::Hi => self.hi(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_directions_share_a_key() {
        let a: IpAddr = "10.0.0.2".parse().unwrap();
        let b: IpAddr = "192.0.2.1".parse().unwrap();
        let (k1, s1) = Key::new(a, 50000, b, 443, TCP);
        let (k2, s2) = Key::new(b, 443, a, 50000, TCP);
        assert_eq!(k1, k2);
        assert_ne!(s1, s2);
        assert_eq!(k1.endpoint(s1), SocketAddr::new(a, 50000));
        assert_eq!(k2.endpoint(s2), SocketAddr::new(b, 443));
        assert_eq!(std::mem::size_of::<Key>(), 38);
    }

    #[test]
    fn same_address_orders_by_port() {
        let a: IpAddr = "::1".parse().unwrap();
        let (k, side) = Key::new(a, 8443, a, 40000, TCP);
        assert_eq!(k.lo().port(), 8443);
        assert_eq!(k.hi(), "[::1]:40000".parse().unwrap());
        assert_eq!(side, Side::Lo);
    }

    #[test]
    fn v4_and_v4_mapped_v6_stay_distinct() {
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        let (a, _) = Key::new(v4, 1, v4, 2, UDP);
        let (b, _) = Key::new(mapped, 1, mapped, 2, UDP);
        assert_ne!(a, b);
        assert_eq!(b.lo().ip(), mapped);
    }
}
