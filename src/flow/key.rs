//! Flow keys: one canonical key for both directions of a conversation.

use std::net::{IpAddr, SocketAddr};

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

/// Transport protocol of a flow (the IP protocol number; TCP and UDP get ports, others port 0).
pub type IpProto = u8;

/// IP protocol number of TCP.
pub const TCP: IpProto = 6;
/// IP protocol number of UDP.
pub const UDP: IpProto = 17;

/// A direction-independent flow key: the lower endpoint first.
///
/// Both directions of a conversation map to the same key; [`Key::side_of`] tells which endpoint a
/// packet came from. Addresses are stored as `IpAddr` (17 bytes each); the whole key is 40 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    /// The lower of the two endpoints (by address, then port).
    pub lo: SocketAddr,
    /// The higher of the two endpoints.
    pub hi: SocketAddr,
    /// IP protocol number.
    pub proto: IpProto,
}

/// Which endpoint of a [`Key`] sent a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The packet's source is `Key::lo`.
    Lo,
    /// The packet's source is `Key::hi`.
    Hi,
}

impl Key {
    /// Builds the canonical key for a packet from `src` to `dst` and says which side sent it.
    #[inline]
    pub fn new(src: IpAddr, sport: u16, dst: IpAddr, dport: u16, proto: IpProto) -> (Key, Side) {
        let s = SocketAddr::new(src, sport);
        let d = SocketAddr::new(dst, dport);
        if (src, sport) <= (dst, dport) {
            (Key { lo: s, hi: d, proto }, Side::Lo)
        } else {
            (Key { lo: d, hi: s, proto }, Side::Hi)
        }
    }

    /// The endpoint on `side`.
    #[inline]
    pub fn endpoint(&self, side: Side) -> SocketAddr {
        match side {
            Side::Lo => self.lo,
            Side::Hi => self.hi,
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
    }

    #[test]
    fn same_address_orders_by_port() {
        let a: IpAddr = "::1".parse().unwrap();
        let (k, side) = Key::new(a, 8443, a, 40000, TCP);
        assert_eq!(k.lo.port(), 8443);
        assert_eq!(side, Side::Lo);
    }
}
