//! Who a connection comes from, for fair shares: an IPv4 address, or an IPv6 /64 (one
//! subscriber's prefix: a host picks any of its 2^64 addresses at will, so a finer key would
//! give one machine as many shares as it cares to use). An IPv4-mapped IPv6 address is its
//! IPv4 address, so a dual-stack socket cannot double anyone's share.

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

/// A client address reduced to the unit that gets one fair share.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Source(IpAddr);

impl Source {
    pub fn of(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(v4) => Source(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Source(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                    Source(IpAddr::V6(Ipv6Addr::from(prefix)))
                }
            },
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(text: &str) -> Source {
        Source::of(text.parse().unwrap())
    }

    #[test]
    fn ipv6_addresses_in_one_slash_64_are_one_source() {
        assert_eq!(source("2001:db8:1:2::1"), source("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        assert_eq!(source("2001:db8:1:2:8a2e:370:7334:1"), source("2001:db8:1:2::"));
        assert_ne!(source("2001:db8:1:2::1"), source("2001:db8:1:3::1"));
        assert_eq!(source("2001:db8:1:2::1").to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn ipv4_addresses_are_each_a_source_and_mapped_ones_are_the_same() {
        assert_ne!(source("192.0.2.1"), source("192.0.2.2"));
        assert_eq!(source("::ffff:192.0.2.1"), source("192.0.2.1"));
        assert_eq!(source("::ffff:192.0.2.1").to_string(), "192.0.2.1");
        // Only the mapped form is IPv4: an IPv4-compatible (deprecated) address is IPv6.
        assert_ne!(source("::192.0.2.1"), source("192.0.2.1"));
    }
}
