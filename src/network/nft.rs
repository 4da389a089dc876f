//! cleat's nftables table, `inet cleat`: published ports (DNAT), outbound NAT (masquerade)
//! and what a published port needs to work from the host itself. cleat never touches any
//! other table or chain.
//!
//! The rules are fixed; what changes are the elements of a few sets and maps: the bridges and
//! subnets of the networks in use, and one element per published port. Adding or removing a
//! container adds or deletes its elements in one `nft` transaction and never rewrites another
//! container's; `create element` refuses a host port that another container publishes.
//!
//! The table is written through `nft -f -` (the nftables tool, whose JSON and text formats
//! are its stable interface). Whether it is there, and made by this version of cleat (its
//! comment says), is asked of the kernel directly over netlink ([`table_state`]): one small
//! request, where running `nft` costs milliseconds.

use std::io::{self, Write};
use std::net::IpAddr;
use std::process::{Command, Stdio};

use super::ports::Protocol;

/// The table's family and name.
pub const TABLE: &str = "inet cleat";

/// The table's comment, which says which definition it has: a table with another comment (or
/// none: cleat's first tables had none) was made by another version of cleat and is rebuilt.
/// Change it with every change to [`base_table`].
pub const TABLE_VERSION: &str = "cleat table 3; managed by cleat, do not edit";

/// The table with its sets, maps and rules, and no elements. Loaded with `create table`, so
/// that of two starts racing to make it, one makes it whole and the other finds it.
///
/// - `publish4`/`publish6`: `protocol . host port : container address . port`, for ports
///   published on every address of the host; `publish4_at`/`publish6_at` add the host
///   address in front, for `-p IP:PORT:PORT`. Looked up for packets to a local address, from
///   outside (prerouting) and from the host itself (output).
/// - `bridges`, `subnets4`, `subnets6`: what masquerade applies to. Traffic from a container
///   subnet leaving by another interface than cleat's bridges is masqueraded (outbound NAT);
///   connections that were DNATed to a container from the host's loopback, or from another
///   container (hairpin), are masqueraded on their way in, since the container could not
///   answer those sources directly. Other clients keep their address.
/// - Networks are kept apart: traffic within a network is bridged and never routed, so a
///   packet from one of cleat's bridges to another is from one network to another, and
///   dropped (unless it was DNATed to a published port, which any client may reach). Where
///   br_netfilter shows bridged traffic to this hook too, it comes in and goes out by the
///   same bridge (`within`), and passes.
/// - `internal`: the bridges of internal networks (`cleat network create --internal`), whose
///   containers reach each other and the host, and nothing beyond: nothing is forwarded to or
///   from them.
pub fn base_table() -> String {
    format!(
        "create table {TABLE} {{ comment \"{TABLE_VERSION}\"; }}
table {TABLE} {{
    set bridges {{ type ifname; }}
    set within {{ type ifname . ifname; }}
    set internal {{ type ifname; }}
    set subnets4 {{ type ipv4_addr; flags interval; }}
    set subnets6 {{ type ipv6_addr; flags interval; }}
    map publish4 {{ type inet_proto . inet_service : ipv4_addr . inet_service; }}
    map publish6 {{ type inet_proto . inet_service : ipv6_addr . inet_service; }}
    map publish4_at {{ type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service; }}
    map publish6_at {{ type ipv6_addr . inet_proto . inet_service : ipv6_addr . inet_service; }}
    chain publish {{
        dnat ip to ip daddr . meta l4proto . th dport map @publish4_at
        dnat ip6 to ip6 daddr . meta l4proto . th dport map @publish6_at
        dnat ip to meta l4proto . th dport map @publish4
        dnat ip6 to meta l4proto . th dport map @publish6
    }}
    chain prerouting {{
        type nat hook prerouting priority dstnat; policy accept;
        fib daddr type local jump publish
    }}
    chain output {{
        type nat hook output priority -100; policy accept;
        fib daddr type local jump publish
    }}
    chain forward {{
        type filter hook forward priority filter; policy accept;
        iifname . oifname @within accept
        iifname @internal drop
        oifname @internal drop
        iifname @bridges oifname @bridges ct status != dnat drop
    }}
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        ip saddr @subnets4 oifname != @bridges masquerade
        ip6 saddr @subnets6 oifname != @bridges masquerade
        oifname @bridges ct status dnat ip saddr 127.0.0.0/8 masquerade
        oifname @bridges ct status dnat ip6 saddr ::1 masquerade
        oifname @bridges ct status dnat ip saddr @subnets4 masquerade
        oifname @bridges ct status dnat ip6 saddr @subnets6 masquerade
    }}
}}
"
    )
}

/// One published port, resolved: a host port (on one host address, or all), and where it
/// leads.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Published {
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub protocol: Protocol,
    pub container_ip: IpAddr,
    pub container_port: u16,
}

impl Published {
    /// The map this port's element goes into, and its key.
    fn map_and_key(&self) -> (&'static str, String) {
        let v4 = self.container_ip.is_ipv4();
        let proto = self.protocol;
        match self.host_ip {
            None => (
                if v4 { "publish4" } else { "publish6" },
                format!("{proto} . {}", self.host_port),
            ),
            Some(ip) => (
                if v4 { "publish4_at" } else { "publish6_at" },
                format!("{ip} . {proto} . {}", self.host_port),
            ),
        }
    }

    /// Whether this port's element fits its container address (an IPv4 host address cannot
    /// lead to an IPv6 container address, and the other way round).
    pub fn is_consistent(&self) -> bool {
        self.host_ip
            .is_none_or(|ip| ip.is_ipv4() == self.container_ip.is_ipv4())
    }
}

/// The commands that add a container's published ports (`create`: a port another container
/// publishes fails the whole transaction).
pub fn add_ports(ports: &[Published]) -> String {
    ports
        .iter()
        .map(|p| {
            let (map, key) = p.map_and_key();
            format!(
                "create element {TABLE} {map} {{ {key} : {} . {} }}\n",
                p.container_ip, p.container_port
            )
        })
        .collect()
}

/// The commands that delete a container's published ports.
pub fn delete_ports(ports: &[Published]) -> String {
    ports
        .iter()
        .map(|p| {
            let (map, key) = p.map_and_key();
            format!("delete element {TABLE} {map} {{ {key} }}\n")
        })
        .collect()
}

/// Deletes the published ports of `ports` that lead where `ports` says: a host port another
/// container publishes now (a start of this one that failed on it, or a record left by a
/// crash) is not this container's to delete. Ports already gone are fine.
pub fn delete_own_ports(ports: &[Published]) -> io::Result<()> {
    for port in ports {
        let (map, key) = port.map_and_key();
        let output = Command::new("nft")
            .args(["get", "element"])
            .args(TABLE.split(' '))
            .arg(map)
            .arg(format!("{{ {key} }}"))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| io::Error::new(e.kind(), format!("running nft: {e}")))?;
        let listing = String::from_utf8_lossy(&output.stdout);
        let ours = format!(": {} . {}", port.container_ip, port.container_port);
        if output.status.success() && listing.contains(&ours) {
            match apply(&delete_ports(std::slice::from_ref(port))) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                _ => {}
            }
        }
    }
    Ok(())
}

/// The commands that add a network (its bridge and subnets) to what masquerade applies to
/// (`add`: adding one that is there already is no error).
pub fn add_network(bridge: &str, subnets: &[super::cidr::Subnet]) -> String {
    let mut out = format!(
        "add element {TABLE} bridges {{ \"{bridge}\" }}\nadd element {TABLE} within {{ \"{bridge}\" . \"{bridge}\" }}\n"
    );
    for subnet in subnets {
        let set = if subnet.is_ipv4() {
            "subnets4"
        } else {
            "subnets6"
        };
        out.push_str(&format!("add element {TABLE} {set} {{ {subnet} }}\n"));
    }
    out
}

/// The commands that mark a network's bridge internal (after [`add_network`]), and unmark it
/// (before [`delete_network`]).
pub fn add_internal(bridge: &str) -> String {
    format!("add element {TABLE} internal {{ \"{bridge}\" }}\n")
}

pub fn delete_internal(bridge: &str) -> String {
    format!("delete element {TABLE} internal {{ \"{bridge}\" }}\n")
}

/// The commands that remove a network from what masquerade applies to.
pub fn delete_network(bridge: &str, subnets: &[super::cidr::Subnet]) -> String {
    let mut out = format!(
        "delete element {TABLE} bridges {{ \"{bridge}\" }}\ndelete element {TABLE} within {{ \"{bridge}\" . \"{bridge}\" }}\n"
    );
    for subnet in subnets {
        let set = if subnet.is_ipv4() {
            "subnets4"
        } else {
            "subnets6"
        };
        out.push_str(&format!("delete element {TABLE} {set} {{ {subnet} }}\n"));
    }
    out
}

/// Runs `script` as one nftables transaction (`nft -f -`): all of it or nothing.
pub fn apply(script: &str) -> io::Result<()> {
    let mut child = Command::new("nft")
        // Its messages are read (File exists, No such file or directory): never translated.
        .env("LC_ALL", "C")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::new(e.kind(), format!("running nft: {e}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(script.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let errno = if stderr.contains("File exists") {
        Some(libc::EEXIST)
    } else if stderr.contains("No such file or directory") {
        Some(libc::ENOENT)
    } else {
        None
    };
    let message = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    Err(match errno {
        Some(code) => io::Error::new(
            io::Error::from_raw_os_error(code).kind(),
            format!("nft: {message}"),
        ),
        None => io::Error::other(format!("nft: {message}")),
    })
}

/// Makes the table unless it exists (a racing start made it: fine).
pub fn ensure_table() -> io::Result<()> {
    match apply(&base_table()) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

/// The script that replaces the table, whatever it holds, by this version's with `networks`
/// (bridge and subnets) and `ports` in it: one transaction, so packets meet either the old
/// table or the new one whole.
pub fn rebuild(
    exists: bool,
    networks: &[(String, Vec<super::cidr::Subnet>, bool)],
    ports: &[Published],
) -> String {
    let mut script = String::new();
    if exists {
        script.push_str(&format!("delete table {TABLE}\n"));
    }
    script.push_str(&base_table());
    for (bridge, subnets, internal) in networks {
        script.push_str(&add_network(bridge, subnets));
        if *internal {
            script.push_str(&add_internal(bridge));
        }
    }
    // Two records claiming one host port (one of them stale) must not keep the table from
    // being rebuilt: the later one wins.
    let mut seen = std::collections::HashSet::new();
    let mut kept: Vec<Published> = ports
        .iter()
        .rev()
        .filter(|p| seen.insert(p.map_and_key()))
        .cloned()
        .collect();
    kept.reverse();
    script.push_str(&add_ports(&kept));
    script
}

/// Base chains of other tables on the forward hook whose policy is `drop` (Docker's iptables
/// rules, a firewall's, one of the administrator's), as `family table chain`: they drop what
/// cleat's containers send beyond the host, and cleat never changes another table.
pub fn forward_droppers() -> io::Result<Vec<String>> {
    let output = Command::new("nft")
        .args(["-j", "list", "chains"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("running nft: {e}")))?;
    let listing: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap_or_default();
    let own = TABLE.split(' ').collect::<Vec<_>>();
    let mut out = Vec::new();
    for item in listing["nftables"].as_array().into_iter().flatten() {
        let chain = &item["chain"];
        let (family, table, name) = (
            chain["family"].as_str().unwrap_or_default(),
            chain["table"].as_str().unwrap_or_default(),
            chain["name"].as_str().unwrap_or_default(),
        );
        if chain["hook"] == "forward" && chain["policy"] == "drop" && [family, table] != own[..] {
            out.push(format!("{family} {table} {name}"));
        }
    }
    Ok(out)
}

/// What the kernel has of cleat's table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TableState {
    Missing,
    /// Made by this version of cleat.
    Current,
    /// Made by another version (or by hand): rebuild it.
    Outdated,
}

/// Asks the kernel (nfnetlink, `NFT_MSG_GETTABLE`) for cleat's table and its comment.
pub fn table_state() -> io::Result<TableState> {
    match table_comment()? {
        None => Ok(TableState::Missing),
        Some(Some(comment)) if comment == TABLE_VERSION => Ok(TableState::Current),
        Some(_) => Ok(TableState::Outdated),
    }
}

/// The comment of table `inet cleat`: `None` when there is no such table.
fn table_comment() -> io::Result<Option<Option<String>>> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    const NFNL_SUBSYS_NFTABLES: u16 = 10;
    const NFT_MSG_NEWTABLE: u16 = 0;
    const NFT_MSG_GETTABLE: u16 = 1;
    const NFTA_TABLE_NAME: u16 = 1;
    const NFTA_TABLE_USERDATA: u16 = 6;
    const NFTNL_UDATA_TABLE_COMMENT: u8 = 0;
    const NFPROTO_INET: u8 = 1;
    let name = TABLE.split(' ').nth(1).unwrap_or("cleat");

    // SAFETY: plain socket(2); the descriptor is owned right away.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_NETFILTER,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };

    // nlmsghdr, nfgenmsg, then the table's name as an attribute.
    let mut attr = Vec::new();
    let value = format!("{name}\0");
    attr.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
    attr.extend_from_slice(&NFTA_TABLE_NAME.to_ne_bytes());
    attr.extend_from_slice(value.as_bytes());
    while attr.len() % 4 != 0 {
        attr.push(0);
    }
    let mut request = Vec::with_capacity(20 + attr.len());
    request.extend_from_slice(&((20 + attr.len()) as u32).to_ne_bytes());
    request.extend_from_slice(&((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETTABLE).to_ne_bytes());
    request.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
    request.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    request.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it in
    request.extend_from_slice(&[NFPROTO_INET, 0, 0, 0]); // family, version, resource id
    request.extend_from_slice(&attr);
    // SAFETY: sends `request`, a valid buffer of its length, to the kernel (no address: the
    // kernel is the default peer of a netlink socket).
    let sent = unsafe {
        libc::send(
            socket.as_raw_fd(),
            request.as_ptr().cast(),
            request.len(),
            0,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }

    let mut comment = None;
    let mut found = false;
    let mut buf = vec![0u8; 16384];
    loop {
        // SAFETY: receives into `buf`, a valid writable buffer of its length.
        let n = unsafe { libc::recv(socket.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            return Err(io::Error::other("nfnetlink: no answer"));
        }
        let mut rest = &buf[..n as usize];
        while rest.len() >= 16 {
            let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
            let kind = u16::from_ne_bytes([rest[4], rest[5]]);
            if len < 16 || len > rest.len() {
                return Err(io::Error::other("nfnetlink: malformed answer"));
            }
            let message = &rest[..len];
            if kind == libc::NLMSG_ERROR as u16 {
                let code = message
                    .get(16..20)
                    .map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                    .unwrap_or(-libc::EPROTO);
                return match code {
                    0 => Ok(found.then_some(comment)),
                    c if -c == libc::ENOENT => Ok(None),
                    c => Err(io::Error::from_raw_os_error(-c)),
                };
            }
            if kind == libc::NLMSG_DONE as u16 {
                return Ok(found.then_some(comment));
            }
            if kind == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWTABLE {
                found = true;
                let mut attrs = message.get(20..).unwrap_or_default();
                while attrs.len() >= 4 {
                    let alen = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
                    let atype = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
                    if alen < 4 || alen > attrs.len() {
                        break;
                    }
                    if atype == NFTA_TABLE_USERDATA {
                        comment = udata_string(&attrs[4..alen], NFTNL_UDATA_TABLE_COMMENT);
                    }
                    attrs = &attrs[((alen + 3) & !3).min(attrs.len())..];
                }
            }
            rest = &rest[((len + 3) & !3).min(rest.len())..];
        }
    }
}

/// The string of type `wanted` in nftables' user data (type, length, value; the value ends
/// with a NUL).
fn udata_string(mut data: &[u8], wanted: u8) -> Option<String> {
    while data.len() >= 2 {
        let (kind, len) = (data[0], data[1] as usize);
        let value = data.get(2..2 + len)?;
        if kind == wanted {
            let text = value.split(|&b| b == 0).next().unwrap_or_default();
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        data = &data[2 + len..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::testing::{can_run, in_own_network_namespace, new_netns};
    use super::*;

    fn port(
        host_ip: Option<&str>,
        host_port: u16,
        container_ip: &str,
        container_port: u16,
    ) -> Published {
        Published {
            host_ip: host_ip.map(|ip| ip.parse().unwrap()),
            host_port,
            protocol: Protocol::Tcp,
            container_ip: container_ip.parse().unwrap(),
            container_port,
        }
    }

    #[test]
    fn elements_for_ports_and_networks() {
        let ports = [
            port(None, 8080, "10.89.0.5", 80),
            port(Some("127.0.0.1"), 8081, "10.89.0.5", 81),
            port(None, 8080, "fd89:c1ea::5", 80),
            Published {
                protocol: Protocol::Udp,
                ..port(Some("::1"), 53, "fd89:c1ea::5", 5353)
            },
        ];
        assert_eq!(
            add_ports(&ports),
            "create element inet cleat publish4 { tcp . 8080 : 10.89.0.5 . 80 }\n\
             create element inet cleat publish4_at { 127.0.0.1 . tcp . 8081 : 10.89.0.5 . 81 }\n\
             create element inet cleat publish6 { tcp . 8080 : fd89:c1ea::5 . 80 }\n\
             create element inet cleat publish6_at { ::1 . udp . 53 : fd89:c1ea::5 . 5353 }\n"
        );
        assert_eq!(
            delete_ports(&ports[..2]),
            "delete element inet cleat publish4 { tcp . 8080 }\n\
             delete element inet cleat publish4_at { 127.0.0.1 . tcp . 8081 }\n"
        );
        assert!(!port(Some("::1"), 1, "10.89.0.5", 1).is_consistent());
        let subnets = [
            "10.89.0.0/24".parse().unwrap(),
            "fd89:c1ea::/64".parse().unwrap(),
        ];
        assert_eq!(
            add_network("cleat0", &subnets),
            "add element inet cleat bridges { \"cleat0\" }\n\
             add element inet cleat within { \"cleat0\" . \"cleat0\" }\n\
             add element inet cleat subnets4 { 10.89.0.0/24 }\n\
             add element inet cleat subnets6 { fd89:c1ea::/64 }\n"
        );
        assert!(
            delete_network("cleat0", &subnets).starts_with("delete element inet cleat bridges")
        );
    }

    /// The table loads into a real kernel, in a network namespace of the test's own; elements
    /// come and go; a port published twice is refused; a second `ensure_table` is fine.
    #[test]
    fn the_table_loads_and_takes_elements() {
        if !can_run(true) {
            return;
        }
        in_own_network_namespace(|| {
            ensure_table().unwrap();
            ensure_table().unwrap();
            let subnets = ["10.89.0.0/24".parse().unwrap()];
            apply(&add_network("cleat0", &subnets)).unwrap();
            apply(&add_network("cleat0", &subnets)).unwrap();
            let ports = [
                port(None, 8080, "10.89.0.5", 80),
                port(Some("127.0.0.1"), 8081, "10.89.0.5", 81),
            ];
            apply(&add_ports(&ports)).unwrap();
            let again = apply(&add_ports(&[port(None, 8080, "10.89.0.6", 80)])).unwrap_err();
            assert_eq!(again.kind(), io::ErrorKind::AlreadyExists, "{again}");
            let listing = Command::new("nft")
                .args(["list", "table", "inet", "cleat"])
                .output()
                .unwrap();
            let listing = String::from_utf8_lossy(&listing.stdout);
            assert!(listing.contains("tcp . 8080 : 10.89.0.5 . 80"), "{listing}");
            apply(&delete_ports(&ports)).unwrap();
            apply(&delete_network("cleat0", &subnets)).unwrap();
            let listing = Command::new("nft")
                .args(["list", "table", "inet", "cleat"])
                .output()
                .unwrap();
            let listing = String::from_utf8_lossy(&listing.stdout);
            assert!(!listing.contains("10.89.0.5"), "{listing}");
        });
    }

    /// The kernel tells whether the table is there and which version made it; a table of an
    /// older cleat (no comment, no `forward` chain) is replaced whole, with the networks and
    /// ports given, in one transaction.
    #[test]
    fn an_outdated_table_is_seen_and_rebuilt() {
        if !can_run(true) {
            return;
        }
        in_own_network_namespace(|| {
            let list = || {
                let out = Command::new("nft")
                    .args(["list", "table", "inet", "cleat"])
                    .output()
                    .unwrap();
                String::from_utf8_lossy(&out.stdout).into_owned()
            };
            assert_eq!(table_state().unwrap(), TableState::Missing);
            // What cleat's first version made: no comment, fewer chains.
            apply("create table inet cleat\ntable inet cleat { set bridges { type ifname; }; }\n")
                .unwrap();
            apply("add element inet cleat bridges { \"old0\" }\n").unwrap();
            assert_eq!(table_state().unwrap(), TableState::Outdated);
            apply("delete table inet cleat\ncreate table inet cleat { comment \"other\"; }\n")
                .unwrap();
            assert_eq!(table_state().unwrap(), TableState::Outdated);

            let subnets = vec!["10.89.0.0/24".parse().unwrap()];
            let ports = [
                port(None, 8080, "10.89.0.5", 80),
                port(None, 8080, "10.89.0.6", 80),
            ];
            apply(&rebuild(true, &[("cleat0".into(), subnets, true)], &ports)).unwrap();
            assert_eq!(table_state().unwrap(), TableState::Current);
            let listing = list();
            assert!(listing.contains("chain forward"), "{listing}");
            assert!(listing.contains("\"cleat0\""), "{listing}");
            assert!(
                listing.contains("set internal {\n\t\ttype ifname\n\t\telements = { \"cleat0\" }"),
                "{listing}"
            );
            assert!(!listing.contains("old0"), "{listing}");
            assert!(listing.contains("tcp . 8080 : 10.89.0.6 . 80"), "{listing}");

            apply("delete table inet cleat\n").unwrap();
            apply(&rebuild(false, &[], &[])).unwrap();
            assert_eq!(table_state().unwrap(), TableState::Current);
        });
    }

    /// A published port works, in namespaces of the test's own: a "container" (its own
    /// namespace, on a bridge) listens on port 80; the "host" publishes 8080 to it; an
    /// "external host" (another namespace, on a veth to the host) connects to the host's
    /// address, and the host connects to 127.0.0.1:8080 and to its own address. The external
    /// client's address reaches the container unchanged; the host's loopback one is
    /// masqueraded (the container could not answer it).
    #[test]
    fn a_published_port_answers_from_outside_and_from_loopback() {
        if can_run(true) {
            in_own_network_namespace(published_port_body);
        }
    }

    /// Runs `f` on a thread inside the namespace `ns`.
    fn inside<T: Send>(ns: &std::os::fd::OwnedFd, f: impl FnOnce() -> T + Send) -> T {
        use std::os::fd::AsFd;
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    rustix::thread::move_into_link_name_space(
                        ns.as_fd(),
                        Some(rustix::thread::LinkNameSpaceType::Network),
                    )
                    .unwrap();
                    f()
                })
                .join()
                .unwrap()
        })
    }

    fn published_port_body() {
        use super::super::link::{self, Inside};
        use std::io::{Read, Write};
        use std::net::{TcpListener, TcpStream};
        use std::os::fd::AsFd;

        // The host: this process, in a namespace of its own, forwarding.
        std::fs::write("/proc/sys/net/ipv4/ip_forward", "1").unwrap();
        let container = new_netns();
        let external = new_netns();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let gateway: IpAddr = "10.124.0.1".parse().unwrap();
        runtime.block_on(async {
            let h = link::connect().unwrap();
            let lo = link::index_of(&h, "lo").await.unwrap().unwrap();
            h.link()
                .set(rtnetlink::LinkUnspec::new_with_index(lo).up().build())
                .execute()
                .await
                .unwrap();
            let bridge = link::ensure_bridge(&h, "cltest1", &[(gateway, 24)])
                .await
                .unwrap();
            link::add_veth(&h, "vctr", "vctrpeer", container.as_fd(), bridge)
                .await
                .unwrap();
            // The uplink: a veth to the external namespace, not on any bridge.
            h.link()
                .add(rtnetlink::LinkVeth::new("uplink", "uplinkpeer").build())
                .execute()
                .await
                .unwrap();
            let peer = link::index_of(&h, "uplinkpeer").await.unwrap().unwrap();
            h.link()
                .set(
                    rtnetlink::LinkUnspec::new_with_index(peer)
                        .setns_by_fd(std::os::fd::AsRawFd::as_raw_fd(&external))
                        .build(),
                )
                .execute()
                .await
                .unwrap();
            let uplink = link::index_of(&h, "uplink").await.unwrap().unwrap();
            h.address()
                .add(uplink, "192.0.2.1".parse().unwrap(), 24)
                .execute()
                .await
                .unwrap();
            h.link()
                .set(rtnetlink::LinkUnspec::new_with_index(uplink).up().build())
                .execute()
                .await
                .unwrap();
        });
        std::fs::write("/proc/sys/net/ipv4/conf/cltest1/route_localnet", "1").unwrap();
        link::configure_inside(
            container.as_fd(),
            &Inside {
                from: "vctrpeer".into(),
                addresses: vec![("10.124.0.2".parse().unwrap(), 24)],
                gateways: vec![gateway],
            },
        )
        .unwrap();
        link::configure_inside(
            external.as_fd(),
            &Inside {
                from: "uplinkpeer".into(),
                addresses: vec![("192.0.2.2".parse().unwrap(), 24)],
                gateways: vec![],
            },
        )
        .unwrap();
        ensure_table().unwrap();
        apply(&add_network("cltest1", &["10.124.0.0/24".parse().unwrap()])).unwrap();
        apply(&add_ports(&[port(None, 8080, "10.124.0.2", 80)])).unwrap();

        // The container's server: answers each connection with the client's address.
        let listener = inside(&container, || {
            TcpListener::bind(("10.124.0.2", 80)).unwrap()
        });
        let server = std::thread::spawn(move || {
            for _ in 0..3 {
                let (mut conn, from) = listener.accept().unwrap();
                conn.write_all(from.ip().to_string().as_bytes()).unwrap();
            }
        });
        let ask = |addr: &str| {
            let timeout = std::time::Duration::from_secs(5);
            let target = std::net::SocketAddr::new(addr.parse().unwrap(), 8080);
            let mut s = TcpStream::connect_timeout(&target, timeout).unwrap();
            s.set_read_timeout(Some(timeout)).unwrap();
            let mut seen = String::new();
            s.read_to_string(&mut seen).unwrap();
            seen
        };
        let from_outside = inside(&external, || ask("192.0.2.1"));
        assert_eq!(
            from_outside, "192.0.2.2",
            "the external client's address is kept"
        );
        assert_eq!(
            ask("127.0.0.1"),
            gateway.to_string(),
            "loopback is masqueraded"
        );
        // From the host to its own address: a source the container can answer (through its
        // gateway), so it stays.
        assert_eq!(ask("192.0.2.1"), "192.0.2.1", "the host's own address");
        server.join().unwrap();
    }
}
