#!/bin/bash
# Issue 5: start/stop cycles leave the host's links, addresses, routes, nftables ruleset and IP
# forwarding exactly as they were. Run in a private test host of its own (the shared one of
# the system tests runs other tests' containers at the same time, so its state moves under
# any comparison). Called by the system test `network::cycles_leave_the_host_as_it_was`.
#
# usage: tests/testhost/cycles.sh BIN_DIR ROOTFS [CYCLES]     (exit 0: nothing differs)
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
bin_dir=$(realpath "$1")
rootfs=$(realpath "$2")
cycles=${3:-100}
work=$repo/target/testhost/cycles.$$
# shellcheck source=lib.sh
. "$repo/tests/testhost/lib.sh"

testhost_up "$work" "$bin_dir"
inside() { nsenter -t "$systemd_pid" -a "$@"; }

# Everything networking a container could leave behind, in a stable form (no link indexes).
snapshot() {
    inside sh -c '
        echo "## links"; ip -o link show | sed -E "s/^[0-9]+: //; s/ link-netnsid [0-9]+//" | sort
        echo "## addresses"; ip -o addr show | sed -E "s/^[0-9]+: //; s/valid_lft.*//" | sort
        echo "## routes"; ip route show table all | sort; ip -6 route show table all 2>/dev/null | sort
        echo "## forwarding"; cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv6/conf/all/forwarding
        echo "## nftables"; nft list ruleset'
}

inside cleat network create --subnet 10.93.0.0/24 cycles >/dev/null
before=$(snapshot)

for i in $(seq "$cycles"); do
    case $((i % 10)) in
        # The default network, a port published on every address of the host.
        0|2|4|6|8) inside cleat run --rm --name cyc-a -p 18600:80 --rootfs "$rootfs" true ;;
        # A network of its own, a port on loopback, UDP.
        1|5|9) inside cleat run --rm --name cyc-b --network cycles -p 127.0.0.1:18601:53/udp --rootfs "$rootfs" true ;;
        # Two at once on one network, stopped from outside.
        3) inside cleat run -d --name cyc-c --network cycles -p 18602:80 --rootfs "$rootfs" sleep 60 >/dev/null
           inside cleat run --rm --name cyc-d --network cycles --rootfs "$rootfs" true
           inside cleat rm -f cyc-c >/dev/null ;;
        # A container killed (SIGKILL), its stop still runs.
        7) inside cleat run -d --name cyc-e -p 18603:80 --rootfs "$rootfs" sleep 60 >/dev/null
           inside cleat kill -s KILL cyc-e >/dev/null
           inside cleat rm -f cyc-e >/dev/null ;;
    esac >/dev/null
done

# The networks go once idle (systemd runs the take-down a few seconds after the last
# container left); the one of the test is removed.
for _ in $(seq 300); do
    [ -z "$(inside systemctl list-timers --all --no-legend 'cleat-network-idle-*')" ] && break
    sleep 0.1
done
inside cleat network rm cycles >/dev/null
after=$(snapshot)

if [ "$before" != "$after" ]; then
    echo "cycles.sh: $cycles cycles changed the host:"
    diff <(echo "$before") <(echo "$after") || true
    exit 1
fi
echo "cycles.sh: $cycles cycles, the host is as it was ($(echo "$before" | wc -l) lines compared)"
