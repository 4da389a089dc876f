//! Published ports: Docker's `-p`/`--publish` value (`[IP:][HOST_PORT:]CONTAINER_PORT[/PROTO]`,
//! each port also a range), `-P` (every port the image exposes, on random host ports), and the
//! check that no host port is published twice.
//!
//! A [`PortSpec`] is one value as the user wrote it, printed back in a canonical form, so that
//! `cleat config show` and the stored spec read like the command line. [`PortSpec::bindings`]
//! expands it into one [`Binding`] per forwarded port, which is what the firewall rules are
//! made from. Nothing here looks at the host: whether a port is free is found out when the
//! container starts.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::ops::RangeInclusive;
use std::str::FromStr;

use crate::spec::load::suggest;
use crate::spec::value::{ValueError, serde_via_str};

/// The form of a `-p` value, as shown in messages.
const PUBLISH_FORM: &str = "[IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL]";

// ---------------------------------------------------------------------------------------------
// Protocols

/// The transport protocol of a published port. SCTP, which Docker also accepts, is refused:
/// cleat's forwarding rules handle TCP and UDP only, and a port that is silently not forwarded
/// is worse than an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Protocol {
    /// The default when none is written, as in Docker.
    #[default]
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl FromStr for Protocol {
    type Err = ValueError;
    /// `tcp` or `udp`, in any case (`TCP`, `Udp`).
    fn from_str(s: &str) -> Result<Protocol, ValueError> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Ok(Protocol::Tcp),
            "udp" => Ok(Protocol::Udp),
            "" => Err(ValueError(
                "the protocol is empty (expected tcp or udp)".into(),
            )),
            "sctp" => Err(ValueError(
                "protocol sctp is not supported (cleat publishes tcp and udp ports)".into(),
            )),
            lower => Err(ValueError(match suggest(lower, ["tcp", "udp"]) {
                Some(near) => format!("unknown protocol {s:?} (did you mean {near:?}?)"),
                None => format!("unknown protocol {s:?} (expected tcp or udp)"),
            })),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
serde_via_str!(Protocol);

// ---------------------------------------------------------------------------------------------
// Port ranges

/// An inclusive range of ports, `80` (one port) or `8000-8010`. Never empty and never
/// contains port 0, which to the kernel means "any port" rather than a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PortRange {
    start: u16,
    end: u16,
}

// `is_empty` would always be false: a range holds at least one port.
#[allow(clippy::len_without_is_empty)]
impl PortRange {
    /// The ports `start` to `end`, both included.
    pub fn new(start: u16, end: u16) -> Result<PortRange, ValueError> {
        if start == 0 {
            return Err(ValueError(
                "port 0 cannot be published (ports go from 1 to 65535)".into(),
            ));
        }
        if start > end {
            return Err(ValueError(format!(
                "port range {start}-{end} ends before it starts"
            )));
        }
        Ok(PortRange { start, end })
    }

    /// The one port `port`.
    pub fn single(port: u16) -> Result<PortRange, ValueError> {
        PortRange::new(port, port)
    }

    pub fn start(&self) -> u16 {
        self.start
    }

    pub fn end(&self) -> u16 {
        self.end
    }

    /// How many ports the range holds (at least 1).
    pub fn len(&self) -> usize {
        usize::from(self.end - self.start) + 1
    }

    /// Whether the range is one port.
    pub fn is_single(&self) -> bool {
        self.start == self.end
    }

    pub fn contains(&self, port: u16) -> bool {
        (self.start..=self.end).contains(&port)
    }

    /// The ports, in order.
    pub fn iter(&self) -> RangeInclusive<u16> {
        self.start..=self.end
    }
}

impl IntoIterator for PortRange {
    type Item = u16;
    type IntoIter = RangeInclusive<u16>;
    fn into_iter(self) -> RangeInclusive<u16> {
        self.iter()
    }
}

impl IntoIterator for &PortRange {
    type Item = u16;
    type IntoIter = RangeInclusive<u16>;
    fn into_iter(self) -> RangeInclusive<u16> {
        self.iter()
    }
}

/// One port number of `text` (a whole `what` value, named in messages). Only ASCII digits:
/// `u16::from_str` would also take `+80`, which no one means as a port.
fn port_number(digits: &str, what: &str, text: &str) -> Result<u16, String> {
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{what} {text:?} is not a number from 1 to 65535 or a range such as 8000-8010"
        ));
    }
    match digits.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!(
            "{what} {text:?} is out of range (ports go from 1 to 65535)"
        )),
        Ok(n) => Ok(n),
    }
}

/// A port or range; `what` says which one in messages ("host port", "container port").
fn parse_range(text: &str, what: &str) -> Result<PortRange, String> {
    if text.is_empty() {
        return Err(format!("the {what} is empty"));
    }
    let Some((first, last)) = text.split_once('-') else {
        let port = port_number(text, what, text)?;
        return Ok(PortRange {
            start: port,
            end: port,
        });
    };
    if first.is_empty() {
        return Err(format!("{what} range {text:?} has no start (START-END)"));
    }
    if last.is_empty() {
        return Err(format!("{what} range {text:?} has no end (START-END)"));
    }
    let start = port_number(first, what, text)?;
    let end = port_number(last, what, text)?;
    if start > end {
        return Err(format!("{what} range {text:?} ends before it starts"));
    }
    Ok(PortRange { start, end })
}

impl FromStr for PortRange {
    type Err = ValueError;
    /// `80` or `8000-8010`.
    fn from_str(s: &str) -> Result<PortRange, ValueError> {
        parse_range(s, "port").map_err(ValueError)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_single() {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}
serde_via_str!(PortRange);

// ---------------------------------------------------------------------------------------------
// Published ports

/// One `-p`/`--publish` value, as written: which container ports are reachable from the host,
/// on which host address and ports.
///
/// Parsing accepts Docker's forms: `80` (a random host port), `8080:80`, `127.0.0.1:8080:80`,
/// `127.0.0.1::80` (a random port on that address), `[::1]:8080:80`, each with `/tcp` or
/// `/udp`, and ranges: `8000-8010:80-90` (port by port; the lengths must match),
/// `8000-8010:80` (whichever host port of the range is free), `80-90` (random host ports).
/// Docker also takes an IPv6 address without brackets (`::1:8080:80`); cleat refuses it,
/// because which colons belong to the address is a guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PortSpec {
    /// The host address to listen on; `None`: all of them.
    pub host_ip: Option<IpAddr>,
    /// `None`: random host ports, one per container port.
    pub host_ports: Option<PortRange>,
    pub container_ports: PortRange,
    pub protocol: Protocol,
}

/// One forwarded container port: a binding of [`PortSpec::bindings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Binding {
    /// The host address to listen on; `None`: all of them.
    pub host_ip: Option<IpAddr>,
    /// The host port; `None`: a random one, or one of `host_range`.
    pub host_port: Option<u16>,
    /// Set when the spec gave a range of host ports for one container port: any free port of
    /// the range will do.
    pub host_range: Option<PortRange>,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl PortSpec {
    /// A spec that publishes `container_ports` on random host ports of every address, as `-P`
    /// does.
    pub fn random(container_ports: PortRange, protocol: Protocol) -> PortSpec {
        PortSpec {
            host_ip: None,
            host_ports: None,
            container_ports,
            protocol,
        }
    }

    /// The spec, one binding per container port. Equal-length ranges pair up port by port; a
    /// host range with one container port is a single binding with `host_range` set. (A spec
    /// built by hand with ranges of different lengths, which parsing refuses, pairs ports up to
    /// the end of the shorter range.)
    pub fn bindings(&self) -> Vec<Binding> {
        let binding = |host_port, host_range, container_port| Binding {
            host_ip: self.host_ip,
            host_port,
            host_range,
            container_port,
            protocol: self.protocol,
        };
        let container = self.container_ports;
        match self.host_ports {
            None => container.iter().map(|c| binding(None, None, c)).collect(),
            Some(host) if container.is_single() && !host.is_single() => {
                vec![binding(None, Some(host), container.start)]
            }
            Some(host) => host
                .iter()
                .zip(container.iter())
                .map(|(h, c)| binding(Some(h), None, c))
                .collect(),
        }
    }

    fn from_text(s: &str) -> Result<PortSpec, String> {
        if s.is_empty() {
            return Err("it is empty".into());
        }
        let (body, protocol) = match s.rsplit_once('/') {
            None => (s, Protocol::Tcp),
            Some((_, proto)) if proto.contains(':') => {
                return Err(format!(
                    "the protocol goes last, after the container port (as in 8080:80/udp; \
                     expected {PUBLISH_FORM})"
                ));
            }
            Some((body, proto)) => (body, proto.parse::<Protocol>().map_err(|e| e.0)?),
        };
        let suffix = &s[body.len()..];
        let (ip, host, container) = split_parts(body, suffix)?;

        if container.is_empty() {
            return Err(match host {
                Some(_) => "the container port after the last ':' is empty (a host port needs \
                            the container port it leads to: HOST_PORT:CONTAINER_PORT)"
                    .into(),
                None => "the container port is empty".into(),
            });
        }
        let host_ip = match ip {
            None => None,
            Some("") => {
                return Err(format!(
                    "the host address before the first ':' is empty (leave it out, with its \
                     ':', to publish on all addresses; expected {PUBLISH_FORM})"
                ));
            }
            Some(text) => Some(parse_ip(text)?),
        };
        let host_ports = match host {
            None => None,
            // `IP::PORT`: a random port on that address.
            Some("") if host_ip.is_some() => None,
            Some("") => {
                return Err(format!(
                    "the host port before ':' is empty (for a random host port, give the \
                     container port alone: {container}{suffix})"
                ));
            }
            Some(text) => Some(parse_range(text, "host port")?),
        };
        let container_ports = parse_range(container, "container port")?;
        if let Some(host) = host_ports {
            if host.len() != container_ports.len() && !container_ports.is_single() {
                return Err(format!(
                    "host ports {host} ({}) and container ports {container_ports} ({}) differ in \
                     length (a range of host ports maps to a range of container ports of the \
                     same length, or to one container port)",
                    host.len(),
                    container_ports.len()
                ));
            }
        }
        Ok(PortSpec {
            host_ip,
            host_ports,
            container_ports,
            protocol,
        })
    }
}

/// Splits the part before `/PROTO` into the address, the host port and the container port.
/// `suffix` is the `/PROTO` that was cut off, to complete suggestions.
fn split_parts<'a>(
    body: &'a str,
    suffix: &str,
) -> Result<(Option<&'a str>, Option<&'a str>, &'a str), String> {
    if let Some(after) = body.strip_prefix('[') {
        let Some((ip, rest)) = after.split_once(']') else {
            return Err("'[' opens an IPv6 address, but no ']' closes it".into());
        };
        if ip.is_empty() {
            return Err(format!(
                "the brackets '[]' hold no address (give one, as in [::1]:8080:80, or leave \
                 out the address and its ':' to publish on all addresses; expected {PUBLISH_FORM})"
            ));
        }
        let Some((host, container)) = rest.strip_prefix(':').and_then(|r| r.split_once(':')) else {
            return Err(format!(
                "the address [{ip}] must be followed by the host port and the container port: \
                 [{ip}]:HOST_PORT:CONTAINER_PORT, or [{ip}]::CONTAINER_PORT for a random host port"
            ));
        };
        if container.contains(':') {
            return Err(format!("too many ':' (expected {PUBLISH_FORM})"));
        }
        return Ok((Some(ip), Some(host), container));
    }
    let parts: Vec<&str> = body.split(':').collect();
    match parts.as_slice() {
        [container] => Ok((None, None, container)),
        [host, container] if host.parse::<IpAddr>().is_ok() => Err(format!(
            "{host:?} is an address, not a host port: write {host}::{container}{suffix} for a \
             random port on that address, or {host}:HOST_PORT:{container}{suffix}"
        )),
        [host, container] => Ok((None, Some(host), container)),
        [ip, host, container] => Ok((Some(ip), Some(host), container)),
        [.., host, container] => {
            let ip = &body[..body.len() - host.len() - container.len() - 2];
            if ip.parse::<Ipv6Addr>().is_ok() {
                return Err(format!(
                    "an IPv6 address must be in brackets: [{ip}]:{host}:{container}{suffix}"
                ));
            }
            Err(format!(
                "too many ':' (expected {PUBLISH_FORM}; an IPv6 address goes in brackets, as in \
                 [::1]:8080:80)"
            ))
        }
        // `split` yields at least one part.
        [] => Err("it is empty".into()),
    }
}

fn parse_ip(text: &str) -> Result<IpAddr, String> {
    text.parse().map_err(|_| {
        if text
            .bytes()
            .any(|b| b.is_ascii_alphabetic() && !b.is_ascii_hexdigit())
        {
            format!("invalid host address {text:?} (give an IP address, not a host name)")
        } else {
            format!("invalid host address {text:?}")
        }
    })
}

impl FromStr for PortSpec {
    type Err = ValueError;
    fn from_str(s: &str) -> Result<PortSpec, ValueError> {
        let s = s.trim();
        PortSpec::from_text(s)
            .map_err(|why| ValueError(format!("invalid published port {s:?}: {why}")))
    }
}

impl fmt::Display for PortSpec {
    /// The canonical form: an IPv6 address in brackets, a range of one port as that port, and
    /// no `/tcp` (the default).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host_ip {
            Some(IpAddr::V4(ip)) => write!(f, "{ip}:")?,
            Some(IpAddr::V6(ip)) => write!(f, "[{ip}]:")?,
            None => {}
        }
        match self.host_ports {
            Some(host) => write!(f, "{host}:")?,
            None if self.host_ip.is_some() => f.write_str(":")?,
            None => {}
        }
        write!(f, "{}", self.container_ports)?;
        if self.protocol != Protocol::Tcp {
            write!(f, "/{}", self.protocol)?;
        }
        Ok(())
    }
}
serde_via_str!(PortSpec);

// ---------------------------------------------------------------------------------------------
// -P and conflicts

/// `-P`/`--publish-all`: every port the image exposes (the keys of its config's
/// `ExposedPorts`: `80/tcp`, `53/udp`, `8000-8010/tcp`, or a bare `80`, which is TCP), on
/// random host ports of every address. A key that appears twice (`80` and `80/tcp`) is
/// published once.
pub fn expose_all(exposed: &[String]) -> Result<Vec<PortSpec>, ValueError> {
    let mut specs: Vec<PortSpec> = Vec::new();
    for key in exposed {
        let spec = exposed_port(key).map_err(|why| {
            ValueError(format!(
                "the image exposes port {key:?}, which -P cannot publish: {why}"
            ))
        })?;
        if !specs.contains(&spec) {
            specs.push(spec);
        }
    }
    Ok(specs)
}

fn exposed_port(key: &str) -> Result<PortSpec, String> {
    let (ports, protocol) = match key.split_once('/') {
        None => (key, Protocol::Tcp),
        Some((ports, proto)) => (ports, proto.parse::<Protocol>().map_err(|e| e.0)?),
    };
    Ok(PortSpec::random(parse_range(ports, "port")?, protocol))
}

/// Whether two bindings' host addresses share an address. No address is every address; an
/// unspecified one (`0.0.0.0`, `::`) is every address of its family, as in Docker, where
/// `0.0.0.0` does not cover IPv6.
fn addresses_overlap(a: Option<IpAddr>, b: Option<IpAddr>) -> bool {
    let (Some(a), Some(b)) = (a, b) else {
        return true;
    };
    let (a, b) = (a.to_canonical(), b.to_canonical());
    a == b || (a.is_ipv4() == b.is_ipv4() && (a.is_unspecified() || b.is_unspecified()))
}

/// A host address that has a port, and the index of the spec that published it there.
type Holder = (Option<IpAddr>, usize);

/// Refuses specs that publish the same host port twice (same protocol, overlapping
/// addresses): only one of them could get it, and which one would depend on the order of the
/// firewall rules. Only explicit host ports are checked: random ones and host ranges are
/// chosen when the container starts, among the ports that are free.
pub fn check_conflicts(specs: &[PortSpec]) -> Result<(), ValueError> {
    // By port and protocol: the addresses that have it, and the spec that published each.
    let mut taken: HashMap<(u16, Protocol), Vec<Holder>> = HashMap::new();
    for (index, spec) in specs.iter().enumerate() {
        for binding in spec.bindings() {
            let Some(port) = binding.host_port else {
                continue;
            };
            let holders = taken.entry((port, binding.protocol)).or_default();
            if let Some(&(_, earlier)) = holders
                .iter()
                .find(|(ip, _)| addresses_overlap(*ip, binding.host_ip))
            {
                return Err(ValueError(format!(
                    "host port {port}/{} is published twice: by {:?} and by {:?}",
                    binding.protocol,
                    specs[earlier].to_string(),
                    spec.to_string()
                )));
            }
            holders.push((binding.host_ip, index));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(s: &str) -> PortSpec {
        s.parse()
            .unwrap_or_else(|e: ValueError| panic!("{s:?} refused: {e}"))
    }

    fn spec_err(s: &str) -> String {
        match s.parse::<PortSpec>() {
            Ok(p) => panic!("{s:?} accepted as {p:?}"),
            Err(e) => e.0,
        }
    }

    #[track_caller]
    fn says(message: &str, needles: &[&str]) {
        for n in needles {
            assert!(message.contains(n), "{message:?} does not say {n:?}");
        }
    }

    fn range(start: u16, end: u16) -> PortRange {
        PortRange::new(start, end).unwrap()
    }

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    fn bound(host_ip: Option<IpAddr>, host_port: u16, container_port: u16) -> Binding {
        Binding {
            host_ip,
            host_port: Some(host_port),
            host_range: None,
            container_port,
            protocol: Protocol::Tcp,
        }
    }

    fn random(host_ip: Option<IpAddr>, container_port: u16, protocol: Protocol) -> Binding {
        Binding {
            host_ip,
            host_port: None,
            host_range: None,
            container_port,
            protocol,
        }
    }

    #[test]
    fn protocols() {
        assert_eq!("tcp".parse::<Protocol>(), Ok(Protocol::Tcp));
        assert_eq!("TCP".parse::<Protocol>(), Ok(Protocol::Tcp));
        assert_eq!("Udp".parse::<Protocol>(), Ok(Protocol::Udp));
        assert_eq!(Protocol::Tcp.to_string(), "tcp");
        assert_eq!(Protocol::Udp.to_string(), "udp");
        assert_eq!(Protocol::default(), Protocol::Tcp);
        let e = "sctp".parse::<Protocol>().unwrap_err().0;
        says(&e, &["sctp is not supported", "tcp and udp"]);
        says(
            &"SCTP".parse::<Protocol>().unwrap_err().0,
            &["not supported"],
        );
        says(
            &"tpc".parse::<Protocol>().unwrap_err().0,
            &["unknown protocol \"tpc\"", "did you mean \"tcp\""],
        );
        says(
            &"icmp".parse::<Protocol>().unwrap_err().0,
            &["unknown protocol \"icmp\"", "expected tcp or udp"],
        );
        says(&"".parse::<Protocol>().unwrap_err().0, &["empty"]);
        assert_eq!(serde_json::to_string(&Protocol::Udp).unwrap(), "\"udp\"");
        assert_eq!(
            serde_json::from_str::<Protocol>("\"UDP\"").unwrap(),
            Protocol::Udp
        );
    }

    #[test]
    fn port_ranges() {
        let r: PortRange = "80".parse().unwrap();
        assert_eq!((r.start(), r.end(), r.len()), (80, 80, 1));
        assert!(r.is_single());
        assert_eq!(r.to_string(), "80");
        let r: PortRange = "8000-8010".parse().unwrap();
        assert_eq!((r.start(), r.end(), r.len()), (8000, 8010, 11));
        assert!(!r.is_single());
        assert!(r.contains(8000) && r.contains(8010) && !r.contains(8011));
        assert_eq!(r.to_string(), "8000-8010");
        assert_eq!(r.iter().count(), 11);
        assert_eq!(
            "5-7"
                .parse::<PortRange>()
                .unwrap()
                .into_iter()
                .collect::<Vec<_>>(),
            [5, 6, 7]
        );
        let mut seen = Vec::new();
        for port in &range(1, 2) {
            seen.push(port);
        }
        assert_eq!(seen, [1, 2]);
        assert_eq!("1-65535".parse::<PortRange>().unwrap().len(), 65535);
        assert_eq!("65535".parse::<PortRange>(), Ok(range(65535, 65535)));
        assert_eq!("080".parse::<PortRange>().unwrap().to_string(), "80");
        assert_eq!(
            "8000-8000".parse::<PortRange>().unwrap().to_string(),
            "8000"
        );
        assert_eq!(PortRange::single(443), Ok(range(443, 443)));

        let e = |s: &str| s.parse::<PortRange>().unwrap_err().0;
        says(&e("0"), &["port \"0\" is out of range", "1 to 65535"]);
        says(&e("65536"), &["port \"65536\" is out of range"]);
        says(&e("99999999999999999999999"), &["out of range"]);
        says(&e("0-10"), &["\"0-10\" is out of range"]);
        says(&e("90-80"), &["port range \"90-80\" ends before it starts"]);
        says(
            &e("http"),
            &["port \"http\" is not a number from 1 to 65535"],
        );
        says(&e("+80"), &["\"+80\" is not a number"]);
        says(&e(" 80"), &["\" 80\" is not a number"]);
        says(&e("1-2-3"), &["\"1-2-3\" is not a number"]);
        says(&e("80-"), &["port range \"80-\" has no end"]);
        says(&e("-80"), &["port range \"-80\" has no start"]);
        says(&e(""), &["the port is empty"]);
        says(
            &PortRange::new(0, 1).unwrap_err().0,
            &["port 0 cannot be published"],
        );
        says(
            &PortRange::new(9, 8).unwrap_err().0,
            &["port range 9-8 ends before it starts"],
        );
        assert_eq!(serde_json::to_string(&range(1, 3)).unwrap(), "\"1-3\"");
        assert_eq!(
            serde_json::from_str::<PortRange>("\"1-3\"").unwrap(),
            range(1, 3)
        );
    }

    #[test]
    fn container_port_alone() {
        let p = spec("80");
        assert_eq!(p, PortSpec::random(range(80, 80), Protocol::Tcp));
        assert_eq!(p.bindings(), [random(None, 80, Protocol::Tcp)]);
        assert_eq!(p.to_string(), "80");

        let p = spec("80/udp");
        assert_eq!(p, PortSpec::random(range(80, 80), Protocol::Udp));
        assert_eq!(p.bindings(), [random(None, 80, Protocol::Udp)]);
        assert_eq!(p.to_string(), "80/udp");

        let p = spec("80/tcp");
        assert_eq!(p.protocol, Protocol::Tcp);
        assert_eq!(p.to_string(), "80", "tcp is the default, left out");
        assert_eq!(spec("53/UDP").to_string(), "53/udp");
        assert_eq!(
            spec("  80  ").to_string(),
            "80",
            "blanks around are ignored"
        );
    }

    #[test]
    fn host_and_container_ports() {
        let p = spec("8080:80");
        assert_eq!(
            p,
            PortSpec {
                host_ip: None,
                host_ports: Some(range(8080, 8080)),
                container_ports: range(80, 80),
                protocol: Protocol::Tcp,
            }
        );
        assert_eq!(p.bindings(), [bound(None, 8080, 80)]);
        assert_eq!(p.to_string(), "8080:80");

        let p = spec("8080:80/tcp");
        assert_eq!(p, spec("8080:80"));
        assert_eq!(p.to_string(), "8080:80");

        let p = spec("5353:53/udp");
        assert_eq!(p.protocol, Protocol::Udp);
        assert_eq!(p.bindings()[0].protocol, Protocol::Udp);
        assert_eq!(p.to_string(), "5353:53/udp");
    }

    #[test]
    fn host_addresses() {
        let p = spec("127.0.0.1:8080:80");
        assert_eq!(p.host_ip, ip("127.0.0.1"));
        assert_eq!(p.host_ports, Some(range(8080, 8080)));
        assert_eq!(p.bindings(), [bound(ip("127.0.0.1"), 8080, 80)]);
        assert_eq!(p.to_string(), "127.0.0.1:8080:80");

        // A random port on that address.
        let p = spec("127.0.0.1::80");
        assert_eq!((p.host_ip, p.host_ports), (ip("127.0.0.1"), None));
        assert_eq!(p.bindings(), [random(ip("127.0.0.1"), 80, Protocol::Tcp)]);
        assert_eq!(p.to_string(), "127.0.0.1::80");

        let p = spec("0.0.0.0:8080:80");
        assert_eq!(p.host_ip, ip("0.0.0.0"));
        assert_eq!(p.to_string(), "0.0.0.0:8080:80");

        let p = spec("[::1]:8080:80");
        assert_eq!(p.host_ip, ip("::1"));
        assert_eq!(p.bindings(), [bound(ip("::1"), 8080, 80)]);
        assert_eq!(p.to_string(), "[::1]:8080:80");

        let p = spec("[::1]::80/udp");
        assert_eq!((p.host_ip, p.host_ports), (ip("::1"), None));
        assert_eq!(p.to_string(), "[::1]::80/udp");

        let p = spec("[2001:DB8::1]:443:8443");
        assert_eq!(p.to_string(), "[2001:db8::1]:443:8443");
        let p = spec("[::]:8080:80");
        assert_eq!(p.host_ip, ip("::"));

        // Brackets around an IPv4 address are taken, as by Docker, and dropped.
        assert_eq!(spec("[10.0.0.1]:80:80").to_string(), "10.0.0.1:80:80");
    }

    #[test]
    fn ranges() {
        // Port by port.
        let p = spec("8000-8002:80-82");
        assert_eq!(p.host_ports, Some(range(8000, 8002)));
        assert_eq!(p.container_ports, range(80, 82));
        assert_eq!(
            p.bindings(),
            [
                bound(None, 8000, 80),
                bound(None, 8001, 81),
                bound(None, 8002, 82)
            ]
        );
        assert_eq!(p.to_string(), "8000-8002:80-82");
        assert_eq!(spec("8000-8010:80-90").bindings().len(), 11);

        // A host range for one container port: any free port of it.
        let p = spec("8000-8010:80");
        assert_eq!(
            p.bindings(),
            [Binding {
                host_ip: None,
                host_port: None,
                host_range: Some(range(8000, 8010)),
                container_port: 80,
                protocol: Protocol::Tcp,
            }]
        );
        assert_eq!(p.to_string(), "8000-8010:80");

        // Random host ports, one per container port.
        let p = spec("80-82");
        assert_eq!(
            p.bindings(),
            [
                random(None, 80, Protocol::Tcp),
                random(None, 81, Protocol::Tcp),
                random(None, 82, Protocol::Tcp)
            ]
        );
        assert_eq!(p.to_string(), "80-82");

        let p = spec("127.0.0.1::80-81/udp");
        assert_eq!(
            p.bindings(),
            [
                random(ip("127.0.0.1"), 80, Protocol::Udp),
                random(ip("127.0.0.1"), 81, Protocol::Udp)
            ]
        );
        let p = spec("[::1]:8000-8001:80-81");
        assert_eq!(
            p.bindings(),
            [bound(ip("::1"), 8000, 80), bound(ip("::1"), 8001, 81)]
        );

        // A range of one port is that port.
        let p = spec("8000-8000:80-80");
        assert_eq!(p.bindings(), [bound(None, 8000, 80)]);
        assert_eq!(p.to_string(), "8000:80");
    }

    #[test]
    fn hand_built_mismatched_ranges_pair_up_to_the_shorter() {
        let p = PortSpec {
            host_ip: None,
            host_ports: Some(range(8000, 8001)),
            container_ports: range(80, 82),
            protocol: Protocol::Tcp,
        };
        assert_eq!(p.bindings(), [bound(None, 8000, 80), bound(None, 8001, 81)]);
    }

    #[test]
    fn errors_name_what_is_wrong() {
        says(
            &spec_err("8000-8005:80-90"),
            &[
                "invalid published port \"8000-8005:80-90\"",
                "host ports 8000-8005 (6) and container ports 80-90 (11) differ in length",
            ],
        );
        says(
            &spec_err("8080:80-90"),
            &["host ports 8080 (1) and container ports 80-90 (11) differ in length"],
        );
        says(&spec_err(""), &["invalid published port \"\"", "empty"]);
        says(&spec_err("  "), &["empty"]);
        says(
            &spec_err(":80"),
            &["host port before ':' is empty", "container port alone: 80"],
        );
        says(&spec_err(":80/udp"), &["alone: 80/udp"]);
        says(
            &spec_err("8080:"),
            &[
                "container port after the last ':' is empty",
                "HOST_PORT:CONTAINER_PORT",
            ],
        );
        says(
            &spec_err("127.0.0.1:8080:"),
            &["container port after the last ':' is empty"],
        );
        says(&spec_err("/udp"), &["the container port is empty"]);
        says(&spec_err("80/"), &["the protocol is empty"]);
        says(&spec_err("80/sctp"), &["sctp is not supported"]);
        says(&spec_err("80/icmp"), &["unknown protocol \"icmp\""]);
        says(&spec_err("8080/udp:80"), &["the protocol goes last"]);
        says(
            &spec_err("::80"),
            &["host address before the first ':' is empty"],
        );
        says(
            &spec_err("1:2:3:4"),
            &["too many ':'", PUBLISH_FORM, "brackets"],
        );
        says(&spec_err("a:b:c:d:e"), &["too many ':'"]);
        says(
            &spec_err("::1:8080:80"),
            &["IPv6 address must be in brackets: [::1]:8080:80"],
        );
        says(
            &spec_err("fe80::1::80/udp"),
            &["must be in brackets: [fe80::1]::80/udp"],
        );
        says(
            &spec_err("2001:db8::1:8080:80"),
            &["must be in brackets: [2001:db8::1]:8080:80"],
        );
        says(
            &spec_err("127.0.0.1:80"),
            &[
                "\"127.0.0.1\" is an address, not a host port",
                "127.0.0.1::80",
                "127.0.0.1:HOST_PORT:80",
            ],
        );
        says(
            &spec_err("256.0.0.1:8080:80"),
            &["invalid host address \"256.0.0.1\""],
        );
        says(
            &spec_err("localhost:8080:80"),
            &["invalid host address \"localhost\"", "not a host name"],
        );
        says(&spec_err("[]:8080:80"), &["'[]' hold no address"]);
        says(&spec_err("[::1:8080:80"), &["no ']' closes it"]);
        says(
            &spec_err("[::1]:80"),
            &["[::1]:HOST_PORT:CONTAINER_PORT", "[::1]::CONTAINER_PORT"],
        );
        says(&spec_err("[::1]8080:80"), &["must be followed by"]);
        says(&spec_err("[::1]:1:2:3"), &["too many ':'"]);
        says(&spec_err("[fe80::1%eth0]:80:80"), &["invalid host address"]);
        says(&spec_err("0"), &["container port \"0\" is out of range"]);
        says(&spec_err("0:80"), &["host port \"0\" is out of range"]);
        says(
            &spec_err("65536:80"),
            &["host port \"65536\" is out of range", "1 to 65535"],
        );
        says(&spec_err("8080:65536"), &["container port \"65536\""]);
        says(
            &spec_err("http"),
            &["container port \"http\" is not a number"],
        );
        says(&spec_err("x:80"), &["host port \"x\" is not a number"]);
        says(
            &spec_err("90-80"),
            &["container port range \"90-80\" ends before it starts"],
        );
        says(
            &spec_err("8010-8000:80"),
            &["host port range \"8010-8000\" ends before it starts"],
        );
        says(&spec_err("80-:80"), &["host port range \"80-\" has no end"]);
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "80",
            "80/udp",
            "8080:80",
            "8080:80/tcp",
            "127.0.0.1:8080:80",
            "127.0.0.1::80",
            "[::1]:8080:80",
            "[::1]::80/udp",
            "[::ffff:10.0.0.1]:80:80",
            "0.0.0.0:8080:80",
            "8000-8010:80-90",
            "8000-8010:80",
            "80-90",
            "80-90/UDP",
            "[10.0.0.1]:1:1",
            "080:08",
        ] {
            let p = spec(s);
            let shown = p.to_string();
            assert_eq!(spec(&shown), p, "{s:?} shown as {shown:?}");
            assert_eq!(
                spec(&shown).to_string(),
                shown,
                "{shown:?} is not canonical"
            );
        }
    }

    #[test]
    fn serde_is_the_string() {
        let p = spec("127.0.0.1:8080:80/udp");
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, "\"127.0.0.1:8080:80/udp\"");
        assert_eq!(serde_json::from_str::<PortSpec>(&json).unwrap(), p);

        let all = vec![
            spec("80"),
            spec("[::1]:8000-8001:80-81"),
            spec("8000-8010:80"),
        ];
        let json = serde_json::to_string(&all).unwrap();
        assert_eq!(json, r#"["80","[::1]:8000-8001:80-81","8000-8010:80"]"#);
        assert_eq!(serde_json::from_str::<Vec<PortSpec>>(&json).unwrap(), all);

        let e = serde_json::from_str::<PortSpec>("\"8000-8005:80-90\"")
            .unwrap_err()
            .to_string();
        says(&e, &["differ in length"]);
        assert!(serde_json::from_str::<PortSpec>("80").is_err(), "a number");
    }

    #[test]
    fn publish_all() {
        let keys: Vec<String> = ["80/tcp", "53/udp", "8000-8010/tcp", "443", "443/tcp"]
            .map(String::from)
            .into();
        let specs = expose_all(&keys).unwrap();
        assert_eq!(
            specs,
            [
                PortSpec::random(range(80, 80), Protocol::Tcp),
                PortSpec::random(range(53, 53), Protocol::Udp),
                PortSpec::random(range(8000, 8010), Protocol::Tcp),
                PortSpec::random(range(443, 443), Protocol::Tcp),
            ]
        );
        assert_eq!(
            specs.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["80", "53/udp", "8000-8010", "443"]
        );
        assert!(
            specs
                .iter()
                .flat_map(PortSpec::bindings)
                .all(|b| b.host_port.is_none() && b.host_range.is_none() && b.host_ip.is_none())
        );
        assert_eq!(specs[2].bindings().len(), 11);
        assert_eq!(expose_all(&[]), Ok(vec![]));

        let e = |k: &str| expose_all(&[k.to_owned()]).unwrap_err().0;
        says(
            &e("132/sctp"),
            &[
                "the image exposes port \"132/sctp\"",
                "sctp is not supported",
            ],
        );
        says(
            &e("http/tcp"),
            &["\"http/tcp\"", "port \"http\" is not a number"],
        );
        says(&e("0/tcp"), &["out of range"]);
        says(&e("90-80/udp"), &["ends before it starts"]);
        check_conflicts(&specs).unwrap();
    }

    #[test]
    fn conflicts() {
        let check =
            |list: &[&str]| check_conflicts(&list.iter().map(|s| spec(s)).collect::<Vec<_>>());
        check(&[]).unwrap();
        check(&["8080:80", "8081:80", "8080:80/udp"]).unwrap();
        check(&["127.0.0.1:8080:80", "10.0.0.1:8080:81"]).unwrap();
        check(&["0.0.0.0:8080:80", "[::1]:8080:81"]).unwrap();
        check(&["[::]:8080:80", "127.0.0.1:8080:81"]).unwrap();
        // Random ports and host ranges are chosen among the free ones at start.
        check(&["80", "80", "127.0.0.1::80"]).unwrap();
        check(&["8000-8010:80", "8000-8010:81", "8005:82"]).unwrap();

        let e = check(&["8080:80", "8080:81"]).unwrap_err().0;
        says(
            &e,
            &[
                "host port 8080/tcp is published twice",
                "\"8080:80\"",
                "\"8080:81\"",
            ],
        );
        says(
            &check(&["8080:80", "127.0.0.1:8080:81"]).unwrap_err().0,
            &[
                "host port 8080/tcp is published twice",
                "\"127.0.0.1:8080:81\"",
            ],
        );
        says(
            &check(&["[::1]:8080:80", "8080:81"]).unwrap_err().0,
            &["8080/tcp is published twice"],
        );
        says(
            &check(&["127.0.0.1:53:53/udp", "127.0.0.1:53:5353/udp"])
                .unwrap_err()
                .0,
            &["host port 53/udp is published twice"],
        );
        says(
            &check(&["0.0.0.0:8080:80", "192.168.1.5:8080:81"])
                .unwrap_err()
                .0,
            &["8080/tcp is published twice"],
        );
        says(
            &check(&["[::]:8080:80", "[fe80::1]:8080:81"]).unwrap_err().0,
            &["8080/tcp is published twice"],
        );
        says(
            &check(&["[::ffff:127.0.0.1]:8080:80", "127.0.0.1:8080:81"])
                .unwrap_err()
                .0,
            &["8080/tcp is published twice"],
        );
        says(
            &check(&["8000-8010:80-90", "9000:100", "8005:1"])
                .unwrap_err()
                .0,
            &["host port 8005/tcp", "\"8000-8010:80-90\"", "\"8005:1\""],
        );
        says(
            &check(&["8080:80", "8080:80"]).unwrap_err().0,
            &["published twice"],
        );
    }
}
