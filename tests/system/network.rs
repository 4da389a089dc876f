//! Bridge networking (issue 5), in the test host's own network namespace: a container on the
//! default network gets eth0 with an address and a route; containers reach each other;
//! published ports answer from the test host; nothing is left after the containers stop.

use std::time::Duration;

use crate::host::{Case, PROBE, host, wait_until};

/// The container's first IPv4 address on eth0, as busybox `ip` shows it.
fn eth0_address(out: &str) -> Option<String> {
    out.lines()
        .filter_map(|l| l.trim().strip_prefix("inet "))
        .map(|rest| rest.split('/').next().unwrap_or("").to_owned())
        .find(|a| a.starts_with("10.89.0."))
}

/// A shell command that GETs `/` from `addr:port` with busybox nc (busybox wget crashes on
/// this busybox build), the response on stdout.
fn http_get(addr: &str, port: u16) -> String {
    format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 5 {addr} {port}")
}

/// What cleat could leave behind of container `name` (other tests' containers run at the
/// same time): its veth, its published ports, its leases.
fn leftovers(name: &str, ports: &[u16]) -> Vec<String> {
    let h = host();
    let mut out = Vec::new();
    let hash = h
        .exec(&["sh", "-c", &format!("printf %s {name} | sha256sum")])
        .stdout;
    let veth = format!("ve{}", &hash[..12]);
    if h.exec(&["ip", "link", "show", &veth]).success() {
        out.push(format!("link {veth}"));
    }
    let table = h.exec(&["nft", "list", "table", "inet", "cleat"]).stdout;
    for port in ports {
        if table.contains(&format!(". {port} :")) {
            out.push(format!("port {port}"));
        }
    }
    let leases = h
        .exec(&["sh", "-c", "cat /run/cleat/networks/*/leases/* 2>/dev/null"])
        .stdout;
    if leases.lines().any(|owner| owner == name) {
        out.push(format!("a lease of {name}"));
    }
    out
}

#[test]
fn a_container_on_the_default_network_has_eth0_and_reaches_another() {
    let h = host();
    let c = Case::new("net-bridge");
    // A server: busybox httpd on port 80, serving its own name.
    c.run(
        &["-d"],
        &[
            "sh",
            "-c",
            "mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www",
        ],
    )
    .ok();
    let server_ip = eth0_address(
        &h.exec(&[
            "nsenter",
            "-t",
            &h.prop(&c.adhoc_unit(), "MainPID"),
            "-n",
            "ip",
            "-4",
            "addr",
            "show",
            "eth0",
        ])
        .stdout,
    )
    .expect("the server has an address on the default network");
    // A client: its own address and route, and the server's page over the bridge.
    let client = c.another("net-client");
    let out = h.cleat(&[
        "run",
        "--rm",
        "--name",
        &client,
        "--rootfs",
        c.rootfs(),
        "sh",
        "-c",
        &format!(
            "ip -4 addr show eth0; ip route; cat /etc/hosts; {}",
            http_get(&server_ip, 80)
        ),
    ]);
    out.ok();
    let mine = eth0_address(&out.stdout).expect("the client has an address");
    assert_ne!(mine, server_ip);
    assert!(
        out.stdout.contains("default via 10.89.0.1 dev eth0"),
        "{out}"
    );
    assert!(
        out.stdout.contains(&format!("{mine}\t{client}")),
        "/etc/hosts names the container on its address:\n{out}"
    );
    assert!(out.stdout.contains(&c.name), "the server's page:\n{out}");
    h.cleat(&["rm", "-f", &c.name]).ok();
}

#[test]
fn published_ports_answer_on_loopback_and_on_the_bridge_and_go_away() {
    let h = host();
    let c = Case::new("net-publish");
    c.run(
        &["-d", "-p", "127.0.0.1:18080:80", "-p", "18081:80"],
        &[
            "sh",
            "-c",
            "mkdir -p /www && echo published > /www/index.html && exec httpd -f -p 80 -h /www",
        ],
    )
    .ok();
    let ports = h.cleat(&["port", &c.name]);
    ports.ok();
    assert!(
        ports.stdout.contains("80/tcp -> 127.0.0.1:18080"),
        "{ports}"
    );
    assert!(ports.stdout.contains("80/tcp -> 0.0.0.0:18081"), "{ports}");
    for (addr, port) in [
        ("127.0.0.1", 18080),
        ("127.0.0.1", 18081),
        ("10.89.0.1", 18081),
    ] {
        let got = h.exec(&["sh", "-c", &http_get(addr, port)]);
        assert!(got.stdout.contains("published"), "{addr}:{port}: {got}");
    }
    // From another container, through the host's address (hairpin), and a host process that
    // holds a port keeps it: publishing it is refused.
    let peer = c.another("net-publish-peer");
    let got = h.cleat(&[
        "run",
        "--rm",
        "--name",
        &peer,
        "--rootfs",
        c.rootfs(),
        "sh",
        "-c",
        &http_get("10.89.0.1", 18081),
    ]);
    assert!(got.stdout.contains("published"), "hairpin: {got}");
    let mut holder = h
        .command(&["python3", "-c", "import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('0.0.0.0', 18082)); s.listen(); print('bound', flush=True); time.sleep(30)"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("a host process holding a port");
    {
        use std::io::BufRead;
        let mut line = String::new();
        let out = holder.stdout.take().expect("its output");
        std::io::BufReader::new(out)
            .read_line(&mut line)
            .expect("bound");
    }
    h.cleat(&[
        "run",
        "--rm",
        "--name",
        &peer,
        "-p",
        "18082:80",
        "--rootfs",
        c.rootfs(),
        "true",
    ])
    .fails()
    .says("18082/tcp is already in use on the host");
    let _ = holder.kill();
    let _ = holder.wait();
    // The same host port a second time: refused, and the first container is unaffected.
    let other = c.another("net-publish-dup");
    let out = h.cleat(&[
        "run",
        "-d",
        "--name",
        &other,
        "-p",
        "18081:80",
        "--rootfs",
        c.rootfs(),
        "sleep",
        "100",
    ]);
    out.fails().reads_clean().says("18081");
    let got = h.exec(&["sh", "-c", &http_get("127.0.0.1", 18081)]);
    assert!(got.stdout.contains("published"), "{got}");
    h.cleat(&["rm", "-f", &c.name, &other]);
    for name in [&c.name, &other] {
        assert!(
            wait_until(Duration::from_secs(5), || leftovers(name, &[18080, 18081])
                .is_empty()),
            "left behind by {name}: {:?}",
            leftovers(name, &[18080, 18081])
        );
    }
}

#[test]
fn named_networks_are_created_joined_kept_apart_and_removed() {
    let h = host();
    let c = Case::new("net-named");
    let net = format!("{}-n", c.name);
    h.cleat(&["network", "create", "--subnet", "10.90.7.0/24", &net])
        .ok();
    h.cleat(&[
        "network",
        "create",
        "--subnet",
        "10.90.7.128/25",
        &format!("{net}-x"),
    ])
    .fails()
    .reads_clean()
    .says("overlaps");
    let ls = h.cleat(&["network", "ls"]);
    ls.ok();
    assert!(
        ls.stdout.contains(&net) && ls.stdout.contains("10.90.7.0/24"),
        "{ls}"
    );

    // A server on the network, a client on it and a client on the default network.
    c.run(
        &["-d", "--network", &net],
        &[
            "sh",
            "-c",
            "mkdir -p /www && echo named > /www/index.html && exec httpd -f -p 80 -h /www",
        ],
    )
    .ok();
    let server = "10.90.7.2";
    let same = c.another("net-named-same");
    let out = h.cleat(&[
        "run",
        "--rm",
        "--network",
        &net,
        "--name",
        &same,
        "--rootfs",
        c.rootfs(),
        "sh",
        "-c",
        &http_get(server, 80),
    ]);
    out.ok();
    assert!(out.stdout.contains("named"), "{out}");
    let other = c.another("net-named-other");
    let out = h.cleat(&[
        "run",
        "--rm",
        "--name",
        &other,
        "--rootfs",
        c.rootfs(),
        "sh",
        "-c",
        &format!("{} || echo UNREACHABLE", http_get(server, 80)),
    ]);
    assert!(
        out.stdout.contains("UNREACHABLE") && !out.stdout.contains("named"),
        "another network reached it:\n{out}"
    );

    let inspect = h.cleat(&["network", "inspect", &net]);
    inspect.ok();
    let v: serde_json::Value = serde_json::from_str(&inspect.stdout).expect("JSON");
    assert_eq!(
        v[0]["IPAM"]["Config"][0]["Gateway"], "10.90.7.1",
        "{inspect}"
    );
    assert!(inspect.stdout.contains(&c.name), "{inspect}");
    // In use: not removed.
    h.cleat(&["network", "rm", &net])
        .fails()
        .reads_clean()
        .says(&c.name);
    h.cleat(&["rm", "-f", &c.name]).ok();
    h.cleat(&["network", "rm", &net]).ok();
    h.cleat(&["network", "rm", "bridge"])
        .fails()
        .says("default");
    h.cleat(&["network", "inspect", &net]).fails();
}

/// `-p IP::PORT` takes a free host port; `cleat port` says which, and it answers.
#[test]
fn a_random_host_port_is_shown_and_answers() {
    let h = host();
    let c = Case::new("net-random");
    c.run(
        &["-d", "-p", "127.0.0.1::80/tcp"],
        &[
            "sh",
            "-c",
            "mkdir -p /www && echo random > /www/index.html && exec httpd -f -p 80 -h /www",
        ],
    )
    .ok();
    let out = h.cleat(&["port", &c.name, "80"]);
    out.ok();
    let port: u16 = out
        .stdout
        .trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {out}"));
    let got = h.exec(&["sh", "-c", &http_get("127.0.0.1", port)]);
    assert!(got.stdout.contains("random"), "{got}");
    h.cleat(&["port", &c.name, "81"])
        .fails()
        .says("no public port");
    // ps and inspect show it too, as Docker's do.
    let shown = format!("127.0.0.1:{port}->80/tcp");
    let ps = h.cleat(&["ps"]);
    ps.ok();
    assert!(
        ps.stdout.lines().next().unwrap_or("").contains("PORTS")
            && ps
                .stdout
                .lines()
                .any(|l| l.contains(&c.name) && l.contains(&shown)),
        "{ps}"
    );
    let inspect = h.cleat(&["inspect", &c.name]);
    inspect.ok();
    let v: serde_json::Value = serde_json::from_str(&inspect.stdout).expect("JSON");
    let v = if v.is_array() { v[0].clone() } else { v };
    assert_eq!(
        v["network"]["ports"]["80/tcp"][0]["HostPort"],
        port.to_string(),
        "{inspect}"
    );
    assert_eq!(v["network"]["name"], "bridge", "{inspect}");
    h.cleat(&["rm", "-f", &c.name]).ok();
    h.cleat(&["port", &c.name]).fails();
}

#[test]
fn add_host_and_dns_settings_reach_the_containers_files() {
    let h = host();
    let c = Case::new("net-dns");
    let out = h.cleat(&[
        "run",
        "--rm",
        "--name",
        &c.name,
        "--add-host",
        "db:10.0.0.5",
        "--add-host",
        "v6:[fd00::5]",
        "--dns",
        "192.0.2.53",
        "--dns-search",
        "example.org",
        "--dns-option",
        "ndots:2",
        "--rootfs",
        c.rootfs(),
        "sh",
        "-c",
        "cat /etc/hosts /etc/resolv.conf",
    ]);
    out.ok();
    for line in [
        "10.0.0.5\tdb",
        "fd00::5\tv6",
        "nameserver 192.0.2.53",
        "search example.org",
        "options ndots:2",
    ] {
        assert!(out.stdout.contains(line), "no {line:?} in:\n{out}");
    }
    assert_eq!(out.stdout.matches("nameserver").count(), 1, "{out}");
    h.cleat(&[
        "run",
        "--rm",
        "--add-host",
        "bad",
        "--rootfs",
        c.rootfs(),
        "true",
    ])
    .code_is(125)
    .reads_clean()
    .says("NAME:IP");
}

/// A network stays up between containers (its bridge, its place in cleat's table) and goes a
/// few seconds after its last container left; `cleat network rm` takes an idle network down at
/// once.
#[test]
fn a_network_goes_down_once_idle() {
    let h = host();
    let c = Case::new("net-idle");
    let net = format!("{}-n", c.name);
    h.cleat(&["network", "create", "--subnet", "10.90.9.0/24", &net])
        .ok();
    let inspect = h.cleat(&["network", "inspect", &net]);
    inspect.ok();
    let v: serde_json::Value = serde_json::from_str(&inspect.stdout).expect("JSON");
    let bridge = v[0]["Bridge"].as_str().expect("Bridge").to_owned();
    let in_table = || {
        h.exec(&["nft", "list", "set", "inet", "cleat", "bridges"])
            .stdout
            .contains(&format!("\"{bridge}\""))
    };
    let bridge_exists = || h.exec(&["ip", "link", "show", &bridge]).success();
    let run = || {
        h.cleat(&[
            "run",
            "--rm",
            "--network",
            &net,
            "--name",
            &c.name,
            "--rootfs",
            c.rootfs(),
            "true",
        ])
        .ok();
    };

    run();
    assert!(
        bridge_exists() && in_table(),
        "the network went down at once"
    );
    run();
    let marked = || h.exists(&format!("/run/cleat/networks/{net}/up"));
    assert!(
        wait_until(Duration::from_secs(30), || !bridge_exists()
            && !in_table()
            && !marked()),
        "{bridge} still up 30 s after its last container left:\n{}",
        h.exec(&["systemctl", "list-timers", "--all", "cleat-network-idle-*"])
    );

    run();
    assert!(bridge_exists());
    h.cleat(&["network", "rm", &net]).ok();
    assert!(!bridge_exists() && !in_table(), "rm left the network up");
    // Its lock files stay (until a reboot empties /run): a start waiting on them must lock
    // what the next one locks.
    assert!(!h.exists(&format!("/run/cleat/networks/{net}/up")));
}

/// 100 start/stop cycles (default network and a network of their own, TCP and UDP ports, two
/// containers at once, a container killed) leave the host's links, addresses, routes,
/// nftables ruleset and IP forwarding exactly as they were. In a private test host of its own:
/// the shared one runs other tests' containers meanwhile.
#[test]
fn cycles_leave_the_host_as_it_was() {
    let h = host();
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_cleat"))
        .parent()
        .expect("a directory")
        .to_path_buf();
    let script = crate::host::repo_root().join("tests/testhost/cycles.sh");
    let mut cmd = std::process::Command::new("bash");
    cmd.arg(script)
        .arg(&bin_dir)
        .arg(Case::new("net-cycles").rootfs())
        .arg("100");
    let out = h.run(cmd, Duration::from_secs(600));
    assert!(out.success(), "{out}");
    assert!(out.stdout.contains("the host is as it was"), "{out}");
}

/// On a network made with `cleat network create`, containers find each other by name and by
/// alias (their /etc/hosts follows who joins and leaves); `--ip` gives a container the address
/// asked for. Both are refused on the default network, and a taken or foreign address is a
/// clear error at start.
#[test]
fn names_aliases_and_static_addresses_on_a_user_network() {
    let h = host();
    let c = Case::new("net-names");
    let net = format!("{}-n", c.name);
    h.cleat(&["network", "create", "--subnet", "10.90.11.0/24", &net])
        .ok();
    // A server with a static address and two aliases.
    c.run(
        &[
            "-d",
            "--network",
            &net,
            "--ip",
            "10.90.11.50",
            "--network-alias",
            "db",
            "--network-alias",
            "store",
        ],
        &[
            "sh",
            "-c",
            "mkdir -p /www && echo by-name > /www/index.html && exec httpd -f -p 80 -h /www",
        ],
    )
    .ok();
    let client = c.another("net-names-client");
    let ask = |target: &str| {
        h.cleat(&[
            "run",
            "--rm",
            "--network",
            &net,
            "--name",
            &client,
            "--rootfs",
            c.rootfs(),
            "sh",
            "-c",
            &format!("grep -w {target} /etc/hosts; {}", http_get(target, 80)),
        ])
    };
    for target in [c.name.as_str(), "db", "store"] {
        let out = ask(target);
        out.ok();
        assert!(
            out.stdout.contains("10.90.11.50") && out.stdout.contains("by-name"),
            "{target}:\n{out}"
        );
    }

    // A container that joins later is in the server's /etc/hosts, and gone once it left.
    let later = c.another("net-names-later");
    h.cleat(&[
        "run",
        "-d",
        "--network",
        &net,
        "--name",
        &later,
        "--rootfs",
        c.rootfs(),
        "sleep",
        "60",
    ])
    .ok();
    let hosts_of = |name: &str| {
        h.exec(&["cat", &format!("/var/lib/cleat/containers/{name}/hosts")])
            .stdout
    };
    let seen = hosts_of(&c.name);
    assert!(seen.contains(&later), "{seen}");
    assert!(hosts_of(&later).contains("db"), "{}", hosts_of(&later));
    h.cleat(&["rm", "-f", &later]).ok();
    assert!(
        wait_until(Duration::from_secs(10), || !hosts_of(&c.name)
            .contains(&later)),
        "{}",
        hosts_of(&c.name)
    );

    // The same address again, one outside the subnet: clear errors, nothing left running.
    let taken = c.another("net-names-taken");
    h.cleat(&[
        "run",
        "--rm",
        "--network",
        &net,
        "--ip",
        "10.90.11.50",
        "--name",
        &taken,
        "--rootfs",
        c.rootfs(),
        "true",
    ])
    .fails()
    .says("10.90.11.50 is already in use");
    h.cleat(&[
        "run",
        "--rm",
        "--network",
        &net,
        "--ip",
        "10.91.0.5",
        "--name",
        &taken,
        "--rootfs",
        c.rootfs(),
        "true",
    ])
    .fails()
    .says("not in the network's subnet");
    // Not on the default network.
    for flags in [["--ip", "10.89.0.77"], ["--network-alias", "x"]] {
        h.cleat(&[
            "run",
            "--rm",
            flags[0],
            flags[1],
            "--name",
            &taken,
            "--rootfs",
            c.rootfs(),
            "true",
        ])
        .fails()
        .reads_clean()
        .says("cleat network create");
    }
    h.cleat(&["rm", "-f", &c.name]).ok();
    h.cleat(&["network", "rm", &net]).ok();
}

/// IPv6 end to end: a network with an IPv6 subnet gives its containers an IPv6 address and
/// route (no duplicate address detection holding it back); they reach each other over it (by
/// name); a published port answers on the host's own IPv6 address, and on 127.0.0.1.
#[test]
fn ipv6_addresses_names_and_published_ports() {
    let h = host();
    let c = Case::new("net-v6");
    let net = format!("{}-n", c.name);
    h.cleat(&[
        "network",
        "create",
        "--subnet",
        "10.90.13.0/24",
        "--subnet",
        "fd00:c1ea:13::/64",
        &net,
    ])
    .ok();
    c.run(
        &[
            "-d",
            "--network",
            &net,
            "--ip6",
            "fd00:c1ea:13::50",
            "-p",
            "18613:80",
        ],
        &[
            "sh",
            "-c",
            "mkdir -p /www && echo over-v6 > /www/index.html && exec httpd -f -p [::]:80 -h /www",
        ],
    )
    .ok();
    let client = c.another("net-v6-client");
    let out = h.cleat(&[
        "run",
        "--rm",
        "--network",
        &net,
        "--name",
        &client,
        "--rootfs",
        c.rootfs(),
        "sh",
        "-c",
        &format!(
            "ip -6 addr show dev eth0; ip -6 route; grep -w {} /etc/hosts; {}",
            c.name,
            http_get("fd00:c1ea:13::50", 80)
        ),
    ]);
    out.ok();
    assert!(out.stdout.contains("inet6 fd00:c1ea:13::"), "{out}");
    assert!(out.stdout.contains("default via fd00:c1ea:13::1"), "{out}");
    assert!(out.stdout.contains("fd00:c1ea:13::50"), "{out}");
    assert!(out.stdout.contains("over-v6"), "{out}");

    // The host's own IPv6 address (its address on the bridge, here) and 127.0.0.1. Not ::1:
    // the kernel does not route a loopback source out of the host for IPv6 (Docker answers
    // there with a userland proxy, a resident process).
    for addr in ["fd00:c1ea:13::1", "127.0.0.1"] {
        let got = h.exec(&["sh", "-c", &http_get(addr, 18613)]);
        assert!(got.stdout.contains("over-v6"), "{addr}: {got}");
    }
    h.cleat(&["rm", "-f", &c.name]).ok();
    h.cleat(&["network", "rm", &net]).ok();
}

/// An "external host" (a network namespace of the test's, joined to the test host by a veth)
/// reaches published ports on the test host's address, TCP and UDP, its own address reaching
/// the container unchanged (for UDP, the probe's echo server answers with the sender's
/// address; busybox's nc has no UDP here).
#[test]
fn an_external_host_reaches_published_tcp_and_udp_ports() {
    let h = host();
    let c = Case::new("net-ext");
    // Server: the client's address as the container sees it (busybox httpd puts it in
    // REMOTE_ADDR for CGI scripts), and the UDP echo.
    c.run(
        &["-d", "-p", "18620:80", "-p", "18621:5353/udp"],
        &[
            "sh",
            "-c",
            &format!(
                "mkdir -p /www/cgi-bin && printf '#!/bin/sh\\necho\\necho \"from $REMOTE_ADDR\"\\n' \
                 > /www/cgi-bin/who && chmod +x /www/cgi-bin/who && httpd -p 80 -h /www && \
                 exec {PROBE} udp-echo 5353"
            ),
        ],
    )
    .ok();
    let ns = format!("{}-ns", c.name);
    // Interface names have at most 15 characters; this test is the only one to use these.
    let setup = format!(
        "ip netns add {ns} && ip link add ext-h type veth peer name ext-x && \
         ip link set ext-x netns {ns} && ip addr add 192.0.2.1/24 dev ext-h && \
         ip link set ext-h up && ip -n {ns} addr add 192.0.2.2/24 dev ext-x && \
         ip -n {ns} link set ext-x up && ip -n {ns} link set lo up"
    );
    h.sh(&setup).ok();
    let tcp = h.sh(&format!(
        "ip netns exec {ns} sh -c \"printf 'GET /cgi-bin/who HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 5 192.0.2.1 18620\""
    ));
    let query = r#"
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(5)
s.sendto(b"over-udp", ("192.0.2.1", 18621))
print(s.recv(512).decode())
"#;
    let udp = h.exec(&["ip", "netns", "exec", &ns, "python3", "-c", query]);
    h.sh(&format!(
        "ip netns delete {ns}; ip link delete ext-h 2>/dev/null; true"
    ));
    // httpd listens on IPv6 and shows an IPv4 client as ::ffff:192.0.2.2.
    assert!(tcp.stdout.contains("192.0.2.2"), "{tcp}");
    assert_eq!(udp.stdout.trim(), "192.0.2.2 over-udp", "{udp}");
    h.cleat(&["rm", "-f", &c.name]).ok();
}

/// `--network container:NAME` shares a running container's network namespace: the same eth0
/// and address, its services on 127.0.0.1, its /etc/hosts; a container that is not running
/// (or does not exist) is a clear error, and ports cannot be published there.
#[test]
fn container_mode_shares_a_running_containers_network() {
    let h = host();
    let c = Case::new("net-share");
    c.run(
        &["-d"],
        &[
            "sh",
            "-c",
            "mkdir -p /www && echo shared > /www/index.html && exec httpd -f -p 80 -h /www",
        ],
    )
    .ok();
    let mode = format!("container:{}", c.name);
    let guest = c.another("net-share-guest");
    let inside = |script: &str| {
        h.cleat(&[
            "run",
            "--rm",
            "--network",
            &mode,
            "--name",
            &guest,
            "--rootfs",
            c.rootfs(),
            "sh",
            "-c",
            script,
        ])
    };
    let theirs = h.cleat(&["inspect", &c.name]);
    theirs.ok();
    let v: serde_json::Value = serde_json::from_str(&theirs.stdout).expect("JSON");
    let v = if v.is_array() { v[0].clone() } else { v };
    let address = v["network"]["addresses"][0]
        .as_str()
        .expect("an address")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    let out = inside(&format!(
        "ip -4 addr show dev eth0; {}",
        http_get("127.0.0.1", 80)
    ));
    out.ok();
    assert!(out.stdout.contains(&format!("inet {address}/")), "{out}");
    assert!(out.stdout.contains("shared"), "{out}");

    inside("true");
    h.cleat(&[
        "run",
        "--rm",
        "--network",
        &mode,
        "-p",
        "18630:80",
        "--name",
        &guest,
        "--rootfs",
        c.rootfs(),
        "true",
    ])
    .fails()
    .reads_clean()
    .says("bridge network");
    // A guest that runs stops with the container whose network it shares: nothing keeps
    // using an address that was given back.
    let lodger = c.another("net-share-lodger");
    h.cleat(&[
        "run",
        "-d",
        "--network",
        &mode,
        "--name",
        &lodger,
        "--rootfs",
        c.rootfs(),
        "sleep",
        "60",
    ])
    .ok();
    // Its names and resolver are the other's: its own are refused, as Docker's.
    h.cleat(&[
        "run",
        "--rm",
        "--network",
        &mode,
        "--dns",
        "192.0.2.53",
        "--name",
        &guest,
        "--rootfs",
        c.rootfs(),
        "true",
    ])
    .fails()
    .reads_clean()
    .says("--dns cannot be used with network container:");
    h.cleat(&["stop", "-t", "1", &c.name]).ok();
    let lodger_state = || {
        h.systemctl(&["is-active", &crate::host::adhoc_unit(&lodger)])
            .stdout
            .trim()
            .to_owned()
    };
    assert!(
        wait_until(Duration::from_secs(10), || lodger_state() != "active"),
        "{}",
        lodger_state()
    );
    h.cleat(&["rm", "-f", &lodger]).ok();
    inside("true").fails().says("is not running");
    h.cleat(&[
        "run",
        "--rm",
        "--network",
        "container:no-such-container",
        "--name",
        &guest,
        "--rootfs",
        c.rootfs(),
        "true",
    ])
    .fails()
    .says("no such container");
    h.cleat(&["rm", "-f", &c.name]).ok();
}

/// An internal network: its containers reach each other (by name), but not beyond the host
/// (no default route, nothing forwarded), and ports cannot be published there; a container on
/// an ordinary network reaches the same place.
#[test]
fn an_internal_network_keeps_its_containers_in() {
    let h = host();
    let c = Case::new("net-int");
    let net = format!("{}-n", c.name);
    h.cleat(&[
        "network",
        "create",
        "--internal",
        "--subnet",
        "10.90.15.0/24",
        &net,
    ])
    .ok();
    let inspect = h.cleat(&["network", "inspect", &net]);
    assert!(inspect.stdout.contains("\"Internal\": true"), "{inspect}");
    c.run(
        &["-d", "--network", &net],
        &[
            "sh",
            "-c",
            "mkdir -p /www && echo internal > /www/index.html && exec httpd -f -p 80 -h /www",
        ],
    )
    .ok();
    // A place beyond the host: a namespace of the test's behind a veth, with a listener.
    let ns = format!("{}-ns", c.name);
    h.sh(&format!(
        "ip netns add {ns} && ip link add int-h type veth peer name int-x && \
         ip link set int-x netns {ns} && ip addr add 198.51.100.1/24 dev int-h && \
         ip link set int-h up && ip -n {ns} addr add 198.51.100.2/24 dev int-x && \
         ip -n {ns} link set int-x up && ip -n {ns} route add default via 198.51.100.1 && \
         mkdir -p /run/{ns} && echo beyond > /run/{ns}/index.html"
    ))
    .ok();
    // The shell prints its PID (as the test host sees it) and becomes the server (`ip netns
    // exec` execs httpd too): it is ended below by that PID.
    let mut spawned = h.command(&[
        "sh",
        "-c",
        &format!("echo $$; exec ip netns exec {ns} busybox httpd -f -p 80 -h /run/{ns}"),
    ]);
    let mut server = spawned
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the server beyond the host");
    let server_pid = {
        use std::io::BufRead;
        let mut line = String::new();
        let out = server.stdout.take().expect("its output");
        std::io::BufReader::new(out)
            .read_line(&mut line)
            .expect("its PID");
        line.trim().to_owned()
    };
    assert!(
        wait_until(Duration::from_secs(10), || h
            .sh(&http_get("198.51.100.2", 80))
            .stdout
            .contains("beyond")),
        "the server beyond the host did not answer"
    );
    let client = c.another("net-int-client");
    let inside = h.cleat(&[
        "run",
        "--rm",
        "--network",
        &net,
        "--name",
        &client,
        "--rootfs",
        c.rootfs(),
        "sh",
        "-c",
        &format!(
            "ip route; {}; {} || echo UNREACHABLE",
            http_get(&c.name, 80),
            http_get("198.51.100.2", 80)
        ),
    ]);
    let outside = h.cleat(&[
        "run",
        "--rm",
        "--name",
        &client,
        "--rootfs",
        c.rootfs(),
        "sh",
        "-c",
        &http_get("198.51.100.2", 80),
    ]);
    h.sh(&format!("kill {server_pid}"));
    let _ = server.wait();
    h.sh(&format!(
        "ip netns delete {ns}; ip link delete int-h 2>/dev/null; rm -rf /run/{ns}; true"
    ));
    inside.ok();
    assert!(!inside.stdout.contains("default"), "{inside}");
    assert!(inside.stdout.contains("internal"), "{inside}");
    assert!(
        inside.stdout.contains("UNREACHABLE") && !inside.stdout.contains("beyond"),
        "{inside}"
    );
    assert!(
        outside.stdout.contains("beyond"),
        "the control failed: {outside}"
    );
    h.cleat(&[
        "run",
        "--rm",
        "--network",
        &net,
        "-p",
        "18640:80",
        "--name",
        &client,
        "--rootfs",
        c.rootfs(),
        "true",
    ])
    .fails()
    .says("internal");
    h.cleat(&["rm", "-f", &c.name]).ok();
    h.cleat(&["network", "rm", &net]).ok();
}

/// Another table whose forward chain drops by default would drop the containers' traffic
/// beyond the host: cleat does not touch it, and says so when it brings a network up. (The
/// chain here accepts everything with a rule, so that other tests' traffic keeps flowing.)
#[test]
fn a_forward_chain_that_drops_by_default_is_reported() {
    let h = host();
    let c = Case::new("net-fwdrop");
    let net = format!("{}-n", c.name);
    h.sh("nft 'add table inet t_strict; add chain inet t_strict strict_forward { type filter hook forward priority 10; policy drop; }; add rule inet t_strict strict_forward accept'")
        .ok();
    h.cleat(&["network", "create", "--subnet", "10.90.17.0/24", &net])
        .ok();
    c.run(&["--network", &net], &["true"]).ok();
    let journal = h.journal(&c.adhoc_unit());
    h.sh("nft delete table inet t_strict").ok();
    h.cleat(&["rm", "-f", &c.name]).ok();
    h.cleat(&["network", "rm", &net]).ok();
    assert!(
        journal.contains("table inet t_strict strict_forward drops by default"),
        "{journal}"
    );
}

/// An unknown network is refused before the container exists (nothing to remove afterwards).
#[test]
fn an_unknown_network_is_refused_before_anything_exists() {
    let h = host();
    let c = Case::new("net-unknown");
    h.cleat(&[
        "run",
        "-d",
        "--network",
        "no-such-network",
        "--name",
        &c.name,
        "--rootfs",
        c.rootfs(),
        "true",
    ])
    .fails()
    .reads_clean()
    .says("no-such-network");
    assert!(!h.exists(&format!("/var/lib/cleat/containers/{}", c.name)));
    h.cleat(&["inspect", &c.name]).fails();
}
