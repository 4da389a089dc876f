#!/bin/bash
# `make demo`: a container under a real systemd, end to end. Boots a private systemd (this
# machine's PID 1 need not be systemd; nothing is written on the host), installs cleat into it
# with `make install`, declares container@demo (busybox httpd from a busybox rootfs), enables
# and starts it, talks to it, shows its logs and an ad-hoc `cleat run`, stops it, and tears
# everything down. DEMO_KEEP=1 leaves the private systemd running until Ctrl-C.
#
# usage: demo.sh BIN_DIR        (the directory holding the built cleat and cleat-generator)
#        demo.sh --deb PACKAGE  (cleat installed from its Debian package with dpkg -i instead;
#                                then removed and purged, checking what stays: package.sh)
set -euo pipefail

deb=
if [ "${1:-}" = --deb ]; then
    deb=$(realpath "${2:?usage: demo.sh --deb PACKAGE.deb}")
    bin_dir=
else
    bin_dir=$(realpath "${1:?usage: demo.sh BIN_DIR | --deb PACKAGE.deb}")
fi
repo=$(cd "$(dirname "$0")/../.." && pwd)
work=$repo/target/demo/$$
rootfs=$work/rootfs
# shellcheck source=lib.sh
. "$repo/tests/testhost/lib.sh"
testhost_work=$work
trap testhost_down EXIT
trap 'exit 130' INT TERM



say() { printf '\n\033[1m# %s\033[0m\n' "$*"; }
run() {
    printf '$ %s\n' "$*"
    nsenter -t "$systemd_pid" -a "$@"
}

mkdir -p "$work"



say "An image: busybox, a user and a web page, made into an OCI image with umoci"
mkdir -p "$rootfs"/{bin,etc,proc,sys,dev,tmp,root,www}
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nwww:x:33:33:www:/www:/bin/false\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\nwww:x:33:\n' >"$rootfs/etc/group"
printf '<h1>Hello from a cleat container</h1>\n' >"$rootfs/www/index.html"
layout=$work/oci
umoci init --layout "$layout"
umoci new --image "$layout:latest"
umoci unpack --image "$layout:latest" "$work/bundle" >/dev/null
cp -a "$rootfs/." "$work/bundle/rootfs/"
umoci repack --image "$layout:latest" "$work/bundle"
# The shell is the container's PID 1 and turns the stop signal into a clean exit (a PID 1
# without a handler never even sees SIGTERM: the kernel drops it, as under Docker).
umoci config --image "$layout:latest" --config.env GREETING=hello --config.workingdir /www \
    --config.cmd sh --config.cmd -c \
    --config.cmd 'trap "echo stopping; kill \$pid; exit 0" TERM; httpd -f -v -p 8080 -h /www & pid=$!; echo serving; wait'
umoci ls --layout "$layout"

if [ -n "$deb" ]; then
    say "Booting a private systemd and installing cleat into it with dpkg -i ${deb##*/}"
    testhost_up_deb "$work" "$deb"
else
    say "Booting a private systemd and installing cleat into it with make install"
    testhost_up "$work" "$bin_dir"
fi
echo "systemd is PID $systemd_pid on this host, PID 1 in its namespaces"

say "A registry on the private systemd's loopback, with the image pushed to it by skopeo"
cat >"$work/registry.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: /var/lib/demo-registry
http:
  addr: 127.0.0.1:5000
YML
run systemd-run --quiet --unit=demo-registry docker-registry serve "$work/registry.yml"
nsenter -t "$systemd_pid" -a bash -c 'for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/5000) 2>/dev/null && exit 0; sleep 0.05; done; exit 1' ||
    { nsenter -t "$systemd_pid" -a systemctl --no-pager status demo-registry; exit 1; }
run skopeo copy --quiet --dest-tls-verify=false "oci:$layout:latest" docker://127.0.0.1:5000/demo/httpd:1.0

say "Declaring the container: /etc/cleat/containers/demo.toml and a drop-in"
cat >"$work/demo.toml" <<TOML
image = "127.0.0.1:5000/demo/httpd:1.0"
ports = ["127.0.0.1:8080:8080"]
restart = "on-failure"
stop-timeout = 5
memory = "64M"

[install]
wanted-by = ["multi-user.target"]
TOML
printf 'env = { GREETING = "set by a drop-in" }\n' >"$work/50-env.toml"
nsenter -t "$systemd_pid" -a sh -c "mkdir -p /etc/cleat/containers/demo.toml.d &&
    cp '$work/demo.toml' /etc/cleat/containers/demo.toml &&
    cp '$work/50-env.toml' /etc/cleat/containers/demo.toml.d/50-env.toml"
run cat /etc/cleat/containers/demo.toml
run cleat config show demo

say "systemctl daemon-reload runs cleat-generator; then enable --now the real template"
run systemctl daemon-reload
run cat /run/systemd/generator/container@demo.service.d/50-cleat.conf
run systemctl enable --now container@demo
run systemctl status --no-pager --lines=0 container@demo
run cleat images

say "The container's PID 1 is the unit's main process; inside, it is PID 1"
main_pid=$(nsenter -t "$systemd_pid" -a systemctl show -p MainPID --value container@demo)
run readlink /proc/1/ns/pid "/proc/$main_pid/ns/pid"
run cleat ps

say "It is on cleat's default bridge network, with its port 8080 published on the host's 127.0.0.1"
run nsenter -t "$main_pid" -n ip -4 addr show eth0
run sh -c "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | busybox nc -w 5 127.0.0.1 8080 | tail -n 1"
run nft list table inet cleat
say "Its privileges"
run grep -E '^(Cap(Eff|Bnd)|Seccomp|NoNewPrivs):' "/proc/$main_pid/status"
run journalctl -u container@demo --no-pager -o cat

say "An ad-hoc container: cleat run makes a transient unit and passes the exit code through"
set +e
run cleat run --rm --name hello 127.0.0.1:5000/demo/httpd:1.0 sh -c 'echo "hello from $(hostname), I am PID $$, $GREETING"; exit 3'
echo "exit status: $?"
set -e

say "Stopping: SIGTERM to the container's PID 1, a clean stop"
run systemctl stop container@demo
run systemctl show -p ActiveState,Result,ExecMainStatus container@demo
run cleat logs -n 2 demo
run cleat ps -a

if [ -n "$deb" ]; then
    # shellcheck source=package.sh
    . "$repo/tests/testhost/package.sh"
fi

if [ -n "${DEMO_KEEP:-}" ]; then
    say "Still running. Enter it with: nsenter -t $systemd_pid -a bash   (Ctrl-C here ends it)"
    while :; do sleep 3600; done
fi
say "Done; tearing the private systemd down"
