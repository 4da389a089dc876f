//! Subnets in CIDR notation (`10.89.0.0/24`, `fd00:c1ea::/64`), IPv4 and IPv6 alike.
//!
//! Both families are computed the same way: an address is a number (32 or 128 bits wide), a
//! subnet its network number and a count of fixed leading bits. A subnet is always stored as
//! its network address: `10.89.0.1/24` is refused rather than silently truncated, because a
//! user who wrote it most likely meant a gateway or a host, not a network.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use crate::spec::value::ValueError;

/// An IPv4 or IPv6 subnet: a network address whose host bits are all zero, and a prefix
/// length no longer than the family's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Subnet {
    addr: IpAddr,
    prefix: u8,
}

impl Subnet {
    /// The subnet `addr/prefix`; `addr` must be the network address (no host bits set).
    pub fn new(addr: IpAddr, prefix: u8) -> Result<Subnet, ValueError> {
        let width = width(addr);
        if prefix > width {
            return Err(ValueError(format!(
                "invalid prefix length /{prefix} for {addr}: an {} prefix is at most {width}",
                family(addr)
            )));
        }
        let subnet = Subnet { addr, prefix };
        let network = subnet.network();
        if network != addr {
            return Err(ValueError(format!(
                "{addr}/{prefix} has host bits set; the network is {network}/{prefix}"
            )));
        }
        Ok(subnet)
    }

    /// The network address (the subnet's first address).
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The number of leading bits every address in the subnet shares.
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }

    /// Whether `ip` is in the subnet (an address of the other family never is).
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.is_ipv4() && bits(ip) & !self.host_mask() == bits(self.addr)
    }

    /// Whether the two subnets share an address. Subnets are aligned blocks, so they overlap
    /// exactly when one contains the other's network address.
    pub fn overlaps(&self, other: &Subnet) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

    /// The network address, the same as [`Subnet::addr`].
    pub fn network(&self) -> IpAddr {
        self.address(bits(self.addr) & !self.host_mask())
    }

    /// The subnet's last address: the broadcast address of an IPv4 subnet. IPv6 has no
    /// broadcast; there it is just the last address.
    pub fn broadcast(&self) -> IpAddr {
        self.address(bits(self.addr) | self.host_mask())
    }

    /// The first address a host may have. IPv4 leaves out the network address, except on
    /// the point-to-point /31 (RFC 3021) and the single-address /32; IPv6 leaves out the
    /// subnet-router anycast address (the all-zero host, RFC 4291), except on /127 (RFC 6164)
    /// and /128.
    pub fn first_host(&self) -> IpAddr {
        let network = bits(self.addr);
        if self.host_bits() <= 1 {
            self.address(network)
        } else {
            self.address(network + 1)
        }
    }

    /// The last address a host may have: IPv4 leaves out the broadcast address (except on /31
    /// and /32); IPv6 has no broadcast, so this is the subnet's last address.
    pub fn last_host(&self) -> IpAddr {
        let last = bits(self.addr) | self.host_mask();
        if self.is_ipv4() && self.host_bits() > 1 {
            self.address(last - 1)
        } else {
            self.address(last)
        }
    }

    /// The `n`th address from the network address (`host(0)` is the network address), or
    /// `None` past the subnet's end.
    pub fn host(&self, n: u128) -> Option<IpAddr> {
        (n <= self.host_mask()).then(|| self.address(bits(self.addr) + n))
    }

    /// How many addresses the subnet holds, every one counted (network and broadcast too).
    /// `::/0` holds 2^128, one more than a `u128` can count: it saturates at `u128::MAX`.
    pub fn size(&self) -> u128 {
        self.host_mask().saturating_add(1)
    }

    /// The subnets of length `prefix` this one divides into, in order (`10.89.0.0/16` into
    /// /24s: `10.89.0.0/24`, `10.89.1.0/24`, ...): how a pool hands out networks. Lazy, so
    /// that an IPv6 pool of 2^56 subnets costs nothing; empty if `prefix` is shorter than the
    /// subnet's own or longer than its family's addresses.
    pub fn subnets(&self, prefix: u8) -> impl Iterator<Item = Subnet> + use<> {
        let this = *self;
        let width = width(self.addr);
        let (split, step) = if (self.prefix..=width).contains(&prefix) {
            (
                Some(prefix - self.prefix),
                1u128.checked_shl(u32::from(width - prefix)).unwrap_or(0),
            )
        } else {
            (None, 0)
        };
        // The last index, 2^split - 1: as large as u128::MAX (`::/0` into /128s).
        let last = split.map(|bits| u128::MAX.checked_shr(128 - u32::from(bits)).unwrap_or(0));
        last.into_iter().flat_map(move |last| {
            (0..=last).map(move |i| Subnet {
                addr: this.address(bits(this.addr) + i * step),
                prefix,
            })
        })
    }

    /// The number of bits that vary inside the subnet.
    fn host_bits(&self) -> u8 {
        width(self.addr) - self.prefix
    }

    /// The host bits, all set.
    fn host_mask(&self) -> u128 {
        u128::MAX
            .checked_shr(128 - u32::from(self.host_bits()))
            .unwrap_or(0)
    }

    /// An address of the subnet's family from its number (which fits: callers stay inside
    /// the subnet).
    fn address(&self, n: u128) -> IpAddr {
        match self.addr {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(n as u32)),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(n)),
        }
    }
}

/// An address as a number.
fn bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address width of `ip`'s family, in bits.
fn width(ip: IpAddr) -> u8 {
    if ip.is_ipv4() { 32 } else { 128 }
}

fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() { "IPv4" } else { "IPv6" }
}

impl FromStr for Subnet {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<Subnet, ValueError> {
        let Some((addr, prefix)) = s.split_once('/') else {
            return Err(ValueError(format!(
                "invalid subnet {s:?}: expected an address and a prefix length, \
                 as in 10.89.0.0/24 or fd00:c1ea::/64"
            )));
        };
        let addr: IpAddr = addr.parse().map_err(|_| {
            ValueError(format!(
                "invalid subnet {s:?}: {addr:?} is not an IPv4 or IPv6 address"
            ))
        })?;
        // Digits only: `u8::from_str` would also take "+24".
        let prefix = Some(prefix)
            .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|p| p.parse::<u8>().ok())
            .filter(|p| *p <= width(addr))
            .ok_or_else(|| {
                ValueError(format!(
                    "invalid subnet {s:?}: the prefix length must be a number from 0 to {} \
                     for an {} address",
                    width(addr),
                    family(addr)
                ))
            })?;
        Subnet::new(addr, prefix)
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

crate::spec::value::serde_via_str!(Subnet);

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> Subnet {
        s.parse().unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn parse_err(s: &str) -> String {
        s.parse::<Subnet>().unwrap_err().0
    }

    #[test]
    fn parses_and_prints_both_families() {
        for s in [
            "10.89.0.0/24",
            "0.0.0.0/0",
            "192.168.1.6/31",
            "192.168.1.7/32",
            "fd00:c1ea::/64",
            "::/0",
            "fd00::1/128",
            "fd00::/127",
        ] {
            assert_eq!(net(s).to_string(), s);
        }
        let n = net("10.89.0.0/24");
        assert_eq!(n.addr(), ip("10.89.0.0"));
        assert_eq!(n.prefix(), 24);
        assert!(n.is_ipv4());
        assert!(!net("fd00:c1ea::/64").is_ipv4());
        // IPv6 prints in its canonical (RFC 5952) form.
        assert_eq!(net("FD00:C1EA:0:0::/64").to_string(), "fd00:c1ea::/64");
    }

    #[test]
    fn parse_errors_say_what_is_wrong() {
        assert!(parse_err("10.89.0.0").contains("expected an address and a prefix length"));
        assert!(parse_err("10.89.0/24").contains("\"10.89.0\" is not an IPv4 or IPv6 address"));
        assert!(parse_err("fe80::1%eth0/64").contains("is not an IPv4 or IPv6 address"));
        assert!(parse_err("10.0.0.0/33").contains("from 0 to 32 for an IPv4 address"));
        assert!(parse_err("fd00::/129").contains("from 0 to 128 for an IPv6 address"));
        assert!(parse_err("10.0.0.0/").contains("prefix length"));
        assert!(parse_err("10.0.0.0/+8").contains("prefix length"));
        assert!(parse_err("10.0.0.0/ 8").contains("prefix length"));
        assert!(parse_err("10.0.0.0/999").contains("prefix length"));
        assert_eq!(
            parse_err("10.89.0.1/24"),
            "10.89.0.1/24 has host bits set; the network is 10.89.0.0/24"
        );
        assert_eq!(
            parse_err("fd00:c1ea::1/64"),
            "fd00:c1ea::1/64 has host bits set; the network is fd00:c1ea::/64"
        );
        assert!(
            Subnet::new(ip("10.0.0.0"), 40)
                .unwrap_err()
                .0
                .contains("at most 32")
        );
        assert_eq!(Subnet::new(ip("10.0.0.0"), 8).unwrap(), net("10.0.0.0/8"));
    }

    #[test]
    fn serde_uses_the_string_form() {
        let n = net("fd00:c1ea::/64");
        let json = serde_json::to_string(&n).unwrap();
        assert_eq!(json, "\"fd00:c1ea::/64\"");
        assert_eq!(serde_json::from_str::<Subnet>(&json).unwrap(), n);
        let err = serde_json::from_str::<Subnet>("\"10.0.0.1/8\"").unwrap_err();
        assert!(err.to_string().contains("host bits set"), "{err}");
    }

    #[test]
    fn contains_and_overlaps() {
        let n = net("10.89.0.0/24");
        assert!(n.contains(ip("10.89.0.0")));
        assert!(n.contains(ip("10.89.0.255")));
        assert!(!n.contains(ip("10.89.1.0")));
        assert!(!n.contains(ip("10.88.255.255")));
        assert!(!n.contains(ip("::ffff:10.89.0.1")), "another family");
        assert!(net("0.0.0.0/0").contains(ip("255.255.255.255")));
        assert!(!net("0.0.0.0/0").contains(ip("::")));
        assert!(net("::/0").contains(ip("ffff::1")));
        assert!(net("10.0.0.1/32").contains(ip("10.0.0.1")));
        assert!(!net("10.0.0.1/32").contains(ip("10.0.0.2")));

        assert!(n.overlaps(&net("10.0.0.0/8")));
        assert!(net("10.0.0.0/8").overlaps(&n));
        assert!(n.overlaps(&n));
        assert!(n.overlaps(&net("10.89.0.128/25")));
        assert!(!n.overlaps(&net("10.89.1.0/24")));
        assert!(!n.overlaps(&net("::/0")));
        assert!(net("fd00:c1ea::/64").overlaps(&net("fd00::/16")));
        assert!(!net("fd00:c1ea::/64").overlaps(&net("fd00:c1eb::/64")));
    }

    #[test]
    fn ipv4_ranges() {
        let n = net("10.89.0.0/24");
        assert_eq!(n.network(), ip("10.89.0.0"));
        assert_eq!(n.broadcast(), ip("10.89.0.255"));
        assert_eq!(n.first_host(), ip("10.89.0.1"));
        assert_eq!(n.last_host(), ip("10.89.0.254"));
        assert_eq!(n.size(), 256);
        assert_eq!(n.host(0), Some(ip("10.89.0.0")));
        assert_eq!(n.host(5), Some(ip("10.89.0.5")));
        assert_eq!(n.host(255), Some(ip("10.89.0.255")));
        assert_eq!(n.host(256), None);

        let all = net("0.0.0.0/0");
        assert_eq!(all.size(), 1 << 32);
        assert_eq!(all.broadcast(), ip("255.255.255.255"));
        assert_eq!(all.first_host(), ip("0.0.0.1"));
        assert_eq!(all.last_host(), ip("255.255.255.254"));
        assert_eq!(all.host((1 << 32) - 1), Some(ip("255.255.255.255")));
        assert_eq!(all.host(1 << 32), None);

        let p2p = net("192.168.1.6/31");
        assert_eq!(p2p.size(), 2);
        assert_eq!(p2p.first_host(), ip("192.168.1.6"));
        assert_eq!(p2p.last_host(), ip("192.168.1.7"));
        assert_eq!(p2p.broadcast(), ip("192.168.1.7"));

        let one = net("192.168.1.7/32");
        assert_eq!(one.size(), 1);
        assert_eq!(one.network(), ip("192.168.1.7"));
        assert_eq!(one.broadcast(), ip("192.168.1.7"));
        assert_eq!(one.first_host(), ip("192.168.1.7"));
        assert_eq!(one.last_host(), ip("192.168.1.7"));
        assert_eq!(one.host(0), Some(ip("192.168.1.7")));
        assert_eq!(one.host(1), None);

        let small = net("10.0.0.0/30");
        assert_eq!(small.first_host(), ip("10.0.0.1"));
        assert_eq!(small.last_host(), ip("10.0.0.2"));
    }

    #[test]
    fn divides_into_subnets() {
        let pool = net("10.89.0.0/16");
        let first: Vec<String> = pool.subnets(24).take(3).map(|s| s.to_string()).collect();
        assert_eq!(first, ["10.89.0.0/24", "10.89.1.0/24", "10.89.2.0/24"]);
        assert_eq!(pool.subnets(24).count(), 256);
        assert_eq!(pool.subnets(24).last(), Some(net("10.89.255.0/24")));
        assert_eq!(pool.subnets(16).collect::<Vec<_>>(), [pool]);
        assert_eq!(pool.subnets(15).count(), 0);
        assert_eq!(pool.subnets(33).count(), 0);
        assert_eq!(
            net("10.0.0.0/30").subnets(32).collect::<Vec<_>>(),
            [
                net("10.0.0.0/32"),
                net("10.0.0.1/32"),
                net("10.0.0.2/32"),
                net("10.0.0.3/32")
            ]
        );
        assert_eq!(net("0.0.0.0/0").subnets(0).count(), 1);
        assert_eq!(
            net("0.0.0.0/0").subnets(1).collect::<Vec<_>>(),
            [net("0.0.0.0/1"), net("128.0.0.0/1")]
        );
        let v6 = net("fd00::/8");
        let mut it = v6.subnets(64);
        assert_eq!(it.next(), Some(net("fd00::/64")));
        assert_eq!(it.next(), Some(net("fd00:0:0:1::/64")));
        assert_eq!(net("::/0").subnets(0).collect::<Vec<_>>(), [net("::/0")]);
        let mut all = net("::/0").subnets(128);
        assert_eq!(all.next(), Some(net("::/128")));
        assert_eq!(all.next(), Some(net("::1/128")));
        assert_eq!(net("::/0").subnets(1).last(), Some(net("8000::/1")));
    }

    #[test]
    fn ipv6_ranges() {
        let n = net("fd00:c1ea::/64");
        assert_eq!(n.network(), ip("fd00:c1ea::"));
        assert_eq!(n.broadcast(), ip("fd00:c1ea::ffff:ffff:ffff:ffff"));
        assert_eq!(n.first_host(), ip("fd00:c1ea::1"));
        assert_eq!(n.last_host(), ip("fd00:c1ea::ffff:ffff:ffff:ffff"));
        assert_eq!(n.size(), 1 << 64);
        assert_eq!(n.host(0x10), Some(ip("fd00:c1ea::10")));
        assert_eq!(n.host(1 << 64), None);

        let all = net("::/0");
        assert_eq!(all.size(), u128::MAX, "saturates");
        assert_eq!(all.first_host(), ip("::1"));
        assert_eq!(
            all.last_host(),
            ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
        );
        assert_eq!(all.host(u128::MAX), Some(all.last_host()));

        let p2p = net("fd00::/127");
        assert_eq!(p2p.size(), 2);
        assert_eq!(p2p.first_host(), ip("fd00::"));
        assert_eq!(p2p.last_host(), ip("fd00::1"));

        let one = net("fd00::1/128");
        assert_eq!(one.size(), 1);
        assert_eq!(one.network(), ip("fd00::1"));
        assert_eq!(one.broadcast(), ip("fd00::1"));
        assert_eq!(one.first_host(), ip("fd00::1"));
        assert_eq!(one.last_host(), ip("fd00::1"));
        assert_eq!(one.host(1), None);
    }
}
