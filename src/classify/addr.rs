//! Longest-prefix match over IPv4 and IPv6 prefixes (a `prefix-trie` per family).

use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use prefix_trie::PrefixMap;

/// A warning when `net` as written has host bits set (`10.1.2.3/16`): it is used as its
/// network (`10.1.0.0/16`), which is rarely what the writer meant.
pub fn host_bits_warning(written: &str, net: &IpNet) -> Option<String> {
    let network = net.trunc();
    (network != *net).then(|| format!("{written:?} has host bits set: used as {network}"))
}

/// A table of address prefixes to values; lookups return the longest matching prefix.
#[derive(Clone)]
pub struct AddrTable<T> {
    v4: PrefixMap<Ipv4Net, T>,
    v6: PrefixMap<Ipv6Net, T>,
    len: usize,
}

impl<T> Default for AddrTable<T> {
    fn default() -> Self {
        AddrTable { v4: PrefixMap::new(), v6: PrefixMap::new(), len: 0 }
    }
}

impl<T> AddrTable<T> {
    /// Inserts `net` → `value`; returns the value the same prefix had before, if any.
    pub fn insert(&mut self, net: IpNet, value: T) -> Option<T> {
        let old = match net {
            IpNet::V4(n) => self.v4.insert(n.trunc(), value),
            IpNet::V6(n) => self.v6.insert(n.trunc(), value),
        };
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    /// The value of the longest prefix containing `addr`, with that prefix.
    pub fn lookup(&self, addr: IpAddr) -> Option<(IpNet, &T)> {
        match addr {
            IpAddr::V4(a) => self.v4.get_lpm(&Ipv4Net::from(a)).map(|(n, v)| (IpNet::V4(n), v)),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => self.lookup(IpAddr::V4(v4)),
                None => self.v6.get_lpm(&Ipv6Net::from(a)).map(|(n, v)| (IpNet::V6(n), v)),
            },
        }
    }

    /// Number of prefixes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longest_prefix_wins_both_families() {
        let mut t = AddrTable::default();
        t.insert("10.0.0.0/8".parse().unwrap(), "corp");
        t.insert("10.20.0.0/16".parse().unwrap(), "finance");
        t.insert("2001:db8::/32".parse().unwrap(), "v6");
        t.insert("2001:db8:5::/48".parse().unwrap(), "vpn");
        assert_eq!(t.lookup("10.20.3.4".parse().unwrap()).map(|x| *x.1), Some("finance"));
        assert_eq!(t.lookup("10.21.3.4".parse().unwrap()).map(|x| *x.1), Some("corp"));
        assert_eq!(t.lookup("::ffff:10.20.0.1".parse().unwrap()).map(|x| *x.1), Some("finance"));
        assert_eq!(t.lookup("2001:db8:5::1".parse().unwrap()).map(|x| *x.1), Some("vpn"));
        assert_eq!(t.lookup("192.0.2.1".parse().unwrap()), None);
        assert_eq!(t.len(), 4);
        assert_eq!(t.insert("10.0.0.0/8".parse().unwrap(), "again"), Some("corp"));
        assert_eq!(t.len(), 4);
    }

    #[test]
    fn host_bits_are_ignored() {
        let mut t = AddrTable::default();
        t.insert("10.1.2.3/16".parse().unwrap(), 1);
        assert_eq!(t.lookup("10.1.200.1".parse().unwrap()).map(|x| x.0.to_string()), Some("10.1.0.0/16".into()));
    }
}
