//! From `-p` specs to the ports a container publishes: host ports chosen (a random one, or
//! the first free one of a range) and checked free, each leading to the container's address
//! of the same family.
//!
//! A host port counts as free when a socket can be bound to it, on the address it is
//! published on (every address when none is given). Nothing holds it afterwards (there is no
//! proxy process): a program of the host that binds it later is shadowed by the container for
//! the packets DNAT sends there.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};

use super::nft::Published;
use super::ports::{Binding, PortSpec, Protocol};

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("host port {port}/{protocol}{on} is already in use on the host")]
    InUse {
        port: u16,
        protocol: Protocol,
        on: String,
    },
    #[error("no free host port in {range}/{protocol}")]
    RangeFull { range: String, protocol: Protocol },
    #[error("{0} is an IPv6 address, and the container has no IPv6 address on its network")]
    NoIpv6(IpAddr),
    #[error("{0} is an IPv4 address, and the container has no IPv4 address on its network")]
    NoIpv4(IpAddr),
    #[error("finding a free host port: {0}")]
    Io(#[from] io::Error),
}

/// The container's addresses on its network, one per family at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
}

/// The ports `specs` publish for a container with `addresses`. A port published on every
/// address leads to each address the container has; one published on a host address leads
/// to the container's address of that family.
pub fn resolve(specs: &[PortSpec], addresses: Addresses) -> Result<Vec<Published>, PublishError> {
    let mut out = Vec::new();
    for spec in specs {
        for binding in spec.bindings() {
            let targets: Vec<IpAddr> = match binding.host_ip {
                None => addresses
                    .v4
                    .map(IpAddr::V4)
                    .into_iter()
                    .chain(addresses.v6.map(IpAddr::V6))
                    .collect(),
                Some(ip @ IpAddr::V4(_)) => {
                    vec![IpAddr::V4(addresses.v4.ok_or(PublishError::NoIpv4(ip))?)]
                }
                Some(ip @ IpAddr::V6(_)) => {
                    vec![IpAddr::V6(addresses.v6.ok_or(PublishError::NoIpv6(ip))?)]
                }
            };
            let host_port = host_port(&binding)?;
            for container_ip in targets {
                out.push(Published {
                    host_ip: binding.host_ip,
                    host_port,
                    protocol: binding.protocol,
                    container_ip,
                    container_port: binding.container_port,
                });
            }
        }
    }
    Ok(out)
}

/// The host port of one binding: the one given (checked free), the first free one of a
/// range, or one the kernel picks.
fn host_port(binding: &Binding) -> Result<u16, PublishError> {
    let on = |ip: Option<IpAddr>| ip.map(|ip| format!(" on {ip}")).unwrap_or_default();
    if let Some(port) = binding.host_port {
        return if is_free(binding.host_ip, port, binding.protocol)? {
            Ok(port)
        } else {
            Err(PublishError::InUse {
                port,
                protocol: binding.protocol,
                on: on(binding.host_ip),
            })
        };
    }
    if let Some(range) = binding.host_range {
        for port in range.iter() {
            if is_free(binding.host_ip, port, binding.protocol)? {
                return Ok(port);
            }
        }
        return Err(PublishError::RangeFull {
            range: range.to_string(),
            protocol: binding.protocol,
        });
    }
    random_port(binding.host_ip, binding.protocol)
}

/// The addresses a port is checked on: the one given, or every address of both families.
fn check_addresses(host_ip: Option<IpAddr>) -> Vec<IpAddr> {
    match host_ip {
        Some(ip) => vec![ip],
        None => vec![
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        ],
    }
}

/// Whether `port` can be bound on `host_ip` (every address when `None`). A family the host
/// does not have (no IPv6) does not count against it.
pub fn is_free(host_ip: Option<IpAddr>, port: u16, protocol: Protocol) -> io::Result<bool> {
    for ip in check_addresses(host_ip) {
        match try_bind(SocketAddr::new(ip, port), protocol) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => return Ok(false),
            Err(e) if is_missing_family(&e) && host_ip.is_none() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn is_missing_family(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL)
    )
}

/// Binds a socket (closed when the result is dropped). IPv6 sockets are IPv6-only, so that
/// a port free on IPv6 but taken on IPv4 is not reported taken twice, nor the other way.
fn try_bind(addr: SocketAddr, protocol: Protocol) -> io::Result<std::os::fd::OwnedFd> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType, bind, socket_with, sockopt};
    let family = if addr.is_ipv4() {
        AddressFamily::INET
    } else {
        AddressFamily::INET6
    };
    let kind = match protocol {
        Protocol::Tcp => SocketType::STREAM,
        Protocol::Udp => SocketType::DGRAM,
    };
    let fd = socket_with(family, kind, SocketFlags::CLOEXEC, None)?;
    if addr.is_ipv6() {
        sockopt::set_ipv6_v6only(&fd, true)?;
    }
    bind(&fd, &addr)?;
    Ok(fd)
}

/// A port the kernel considers free on `host_ip` (and, for every address, on both families).
fn random_port(host_ip: Option<IpAddr>, protocol: Protocol) -> Result<u16, PublishError> {
    for _ in 0..32 {
        let first = check_addresses(host_ip)[0];
        let port = match protocol {
            Protocol::Tcp => TcpListener::bind((first, 0))?.local_addr()?.port(),
            Protocol::Udp => UdpSocket::bind((first, 0))?.local_addr()?.port(),
        };
        if is_free(host_ip, port, protocol)? {
            return Ok(port);
        }
    }
    Err(PublishError::RangeFull {
        range: "the ephemeral range".into(),
        protocol,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> PortSpec {
        s.parse().unwrap()
    }

    const BOTH: Addresses = Addresses {
        v4: Some(Ipv4Addr::new(10, 89, 0, 5)),
        v6: Some(Ipv6Addr::new(0xfd89, 0xc1ea, 0, 0, 0, 0, 0, 5)),
    };
    const V4: Addresses = Addresses {
        v4: Some(Ipv4Addr::new(10, 89, 0, 5)),
        v6: None,
    };

    /// A port that is free on loopback right now (bound and released).
    fn free_port() -> u16 {
        TcpListener::bind(("127.0.0.1", 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    #[test]
    fn explicit_ports_lead_to_each_address_of_the_container() {
        let port = free_port();
        let published = resolve(&[spec(&format!("127.0.0.1:{port}:80"))], BOTH).unwrap();
        assert_eq!(
            published,
            [Published {
                host_ip: Some("127.0.0.1".parse().unwrap()),
                host_port: port,
                protocol: Protocol::Tcp,
                container_ip: "10.89.0.5".parse().unwrap(),
                container_port: 80,
            }]
        );
        let udp = resolve(&[spec(&format!("127.0.0.1:{port}:53/udp"))], V4).unwrap();
        assert_eq!(udp[0].protocol, Protocol::Udp);
        assert!(matches!(
            resolve(&[spec("[::1]:8080:80")], V4),
            Err(PublishError::NoIpv6(_))
        ));
    }

    #[test]
    fn a_port_in_use_on_the_host_is_refused() {
        let taken = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = taken.local_addr().unwrap().port();
        let err = resolve(&[spec(&format!("127.0.0.1:{port}:80"))], V4).unwrap_err();
        assert!(
            err.to_string().contains(&format!(
                "host port {port}/tcp on 127.0.0.1 is already in use"
            )),
            "{err}"
        );
        // UDP is another port.
        resolve(&[spec(&format!("127.0.0.1:{port}:80/udp"))], V4).unwrap();
        // A range skips it.
        let published = resolve(&[spec(&format!("127.0.0.1:{port}-{}:80", port + 5))], V4);
        if let Ok(p) = published {
            assert_ne!(p[0].host_port, port);
        }
    }

    #[test]
    fn random_ports_are_free_and_the_same_for_both_families() {
        let published = resolve(&[spec("127.0.0.1::80")], V4).unwrap();
        assert_ne!(published[0].host_port, 0);
        assert!(
            is_free(
                Some("127.0.0.1".parse().unwrap()),
                published[0].host_port,
                Protocol::Tcp
            )
            .unwrap()
        );
        let both = resolve(&[spec("80")], BOTH).unwrap();
        assert_eq!(both.len(), 2);
        assert_eq!(both[0].host_port, both[1].host_port);
        assert!(both[0].container_ip.is_ipv4() && both[1].container_ip.is_ipv6());
    }
}
