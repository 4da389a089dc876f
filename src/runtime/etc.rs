//! The three files of /etc a container gets from its runtime, as Docker provides them:
//! `/etc/hostname`, `/etc/hosts` (loopback names and the container's own name) and
//! `/etc/resolv.conf` (the host's, without nameservers the container cannot reach).

/// `/etc/hostname`.
pub fn hostname(hostname: &str) -> String {
    format!("{hostname}\n")
}

/// `/etc/hosts` for a container with its own network namespace: its name on its address on
/// its network (as Docker writes it), or on 127.0.1.1 without one.
pub fn hosts(
    hostname: &str,
    domainname: Option<&str>,
    address: Option<std::net::IpAddr>,
) -> String {
    let names = match domainname {
        Some(d) => format!("{hostname}.{d} {hostname}"),
        None => hostname.to_owned(),
    };
    let own = address.map_or_else(|| "127.0.1.1".to_owned(), |a| a.to_string());
    format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n{own}\t{names}\n"
    )
}

/// Whether a nameserver line names a loopback address (unreachable from another network
/// namespace, such as systemd-resolved's 127.0.0.53).
fn is_loopback_nameserver(line: &str) -> bool {
    let mut words = line.split_whitespace();
    if words.next() != Some("nameserver") {
        return false;
    }
    match words
        .next()
        .and_then(|a| a.parse::<std::net::IpAddr>().ok())
    {
        Some(addr) => addr.is_loopback(),
        None => false,
    }
}

/// `/etc/resolv.conf` from the host's: as it is for a container on the host's network; without
/// loopback nameservers otherwise. `resolved_upstream` is systemd-resolved's list of the real
/// upstream servers (/run/systemd/resolve/resolv.conf), used when the host's file only points
/// at the local stub.
pub fn resolv_conf(host: &str, resolved_upstream: Option<&str>, host_network: bool) -> String {
    if host_network {
        return host.to_owned();
    }
    let only_stub = host.lines().any(is_loopback_nameserver)
        && !host
            .lines()
            .any(|l| l.trim_start().starts_with("nameserver") && !is_loopback_nameserver(l));
    let source = match (only_stub, resolved_upstream) {
        (true, Some(upstream)) => upstream,
        _ => host,
    };
    source
        .lines()
        .filter(|l| !is_loopback_nameserver(l))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// What `--dns`, `--dns-search` and `--dns-option` say: each, when given, replaces the
/// corresponding lines of the host's file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DnsOverrides<'a> {
    pub servers: &'a [std::net::IpAddr],
    pub search: &'a [String],
    pub options: &'a [String],
}

/// `resolv` with `overrides` applied.
pub fn override_resolv_conf(resolv: &str, overrides: &DnsOverrides<'_>) -> String {
    let mut out: String = resolv
        .lines()
        .filter(|line| {
            let replaced = match line.split_whitespace().next() {
                Some("nameserver") => !overrides.servers.is_empty(),
                Some("search" | "domain") => !overrides.search.is_empty(),
                Some("options") => !overrides.options.is_empty(),
                _ => false,
            };
            !replaced
        })
        .map(|l| format!("{l}\n"))
        .collect();
    for server in overrides.servers {
        out.push_str(&format!("nameserver {server}\n"));
    }
    if !overrides.search.is_empty() {
        out.push_str(&format!("search {}\n", overrides.search.join(" ")));
    }
    if !overrides.options.is_empty() {
        out.push_str(&format!("options {}\n", overrides.options.join(" ")));
    }
    out
}

/// `/etc/hosts` with the `--add-host` entries appended (`name` and its address).
pub fn add_hosts(hosts: &str, entries: &[(String, std::net::IpAddr)]) -> String {
    let mut out = hosts.to_owned();
    for (name, addr) in entries {
        out.push_str(&format!("{addr}\t{name}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_overrides_and_added_hosts() {
        let host = "nameserver 192.0.2.1\nsearch lan\noptions edns0\n";
        let servers = ["1.1.1.1".parse().unwrap()];
        let search = ["example.org".to_owned(), "corp".to_owned()];
        assert_eq!(override_resolv_conf(host, &DnsOverrides::default()), host);
        assert_eq!(
            override_resolv_conf(
                host,
                &DnsOverrides {
                    servers: &servers,
                    search: &search,
                    options: &[],
                }
            ),
            "options edns0\nnameserver 1.1.1.1\nsearch example.org corp\n"
        );
        assert_eq!(
            add_hosts(
                "127.0.0.1\tlocalhost\n",
                &[("db".into(), "10.0.0.5".parse().unwrap())]
            ),
            "127.0.0.1\tlocalhost\n10.0.0.5\tdb\n"
        );
    }

    #[test]
    fn hosts_names_the_container() {
        let h = hosts("web", Some("example.org"), None);
        assert!(h.starts_with("127.0.0.1\tlocalhost\n"));
        assert!(h.ends_with("127.0.1.1\tweb.example.org web\n"));
        assert!(hosts("web", None, None).ends_with("127.0.1.1\tweb\n"));
        let on_network = hosts("web", None, Some("10.89.0.5".parse().unwrap()));
        assert!(on_network.ends_with("10.89.0.5\tweb\n"), "{on_network}");
    }

    #[test]
    fn resolv_conf_drops_what_a_private_network_cannot_reach() {
        let stub = "# managed\nnameserver 127.0.0.53\noptions edns0\nsearch lan\n";
        let upstream = "nameserver 192.0.2.1\nsearch lan\n";
        assert_eq!(resolv_conf(stub, Some(upstream), false), upstream);
        assert_eq!(
            resolv_conf(stub, None, false),
            "# managed\noptions edns0\nsearch lan\n"
        );
        assert_eq!(resolv_conf(stub, Some(upstream), true), stub);
        let mixed = "nameserver 127.0.0.1\nnameserver 192.0.2.9\n";
        assert_eq!(
            resolv_conf(mixed, Some(upstream), false),
            "nameserver 192.0.2.9\n"
        );
    }
}
