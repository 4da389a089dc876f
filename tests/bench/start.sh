#!/bin/bash
# Start benchmark (issue 4): the cost of starting a container, in one run, against the peers
# installed on the machine, all inside a private test systemd (see tests/testhost/testhost.sh)
# with the busybox fixture image served by a registry on its loopback:
#   - cleat run --rm IMAGE true             (foreground: waits for the end, prints the output)
#   - cleat run -d --rm IMAGE true          (returns once the container runs; bridge network,
#                                             and again with --network none)
#   - systemctl start --wait container@NAME (a declared container, run to its end)
#   - runc run of an equivalent OCI bundle  (umoci unpack of the same image; crun where it runs)
#   - podman run --rm IMAGE true            (--network none, and with its default network)
# Medians of several runs each, printed with cleat's ratios; then the memory a running container
# costs beyond its own processes, and 50 container@ units started at once against one.
#
# usage: tests/bench/start.sh [BIN_DIR] [RUNS]    (default target/release, 15 runs)
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
bin_dir=$(realpath -m "${1:-$repo/target/release}")
runs=${2:-15}
fixtures=$repo/target/fixtures
work=$repo/target/bench/start.$$
# shellcheck source=../testhost/lib.sh
. "$repo/tests/testhost/lib.sh"

"$repo/tests/testhost/deps.sh"
for p in podman runc crun; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || {
        echo "bench: installing $p" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null
    }
done
[ -x "$bin_dir/cleat" ] || (cd "$repo" && cargo build --release --bins)
"$repo/tests/testhost/images.sh" build "$fixtures" >&2

testhost_up "$work" "$bin_dir"
inside() { nsenter -t "$systemd_pid" -a "$@"; }
inside "$repo/tests/testhost/registries.sh" start "$fixtures" >"$work/registries.log" 2>&1 ||
    { cat "$work/registries.log"; exit 1; }
image=127.0.0.1:5000/busybox:latest
inside cleat pull -q "$image" >/dev/null

# An OCI bundle of the same image for runc/crun: umoci's, with `true` as the process.
bundle=$work/bundle
umoci unpack --image "$fixtures/busybox/oci:latest" "$bundle" >/dev/null
python3 - "$bundle/config.json" <<'PY'
import json, sys
path = sys.argv[1]
c = json.load(open(path))
c["process"]["args"] = ["/bin/true"]
c["process"]["terminal"] = False
c["process"]["user"] = {"uid": 0, "gid": 0}
c["linux"].pop("resources", None)
c["linux"]["namespaces"] = [{"type": t} for t in ("pid", "mount", "ipc", "uts", "network", "cgroup")]
json.dump(c, open(path, "w"))
PY

# Podman on tmpfs storage, the test host's systemd as cgroup manager, file events, runc; ulimits within this machine's hard ones.
cat >"$work/containers.conf" <<'CONF'
[engine]
cgroup_manager = "systemd"
events_logger = "file"
runtime = "runc"
[containers]
default_ulimits = []
# The test host has no pids controller (podman would write pids.max).
pids_limit = 0
CONF
podman() { inside env CONTAINERS_CONF="$work/containers.conf" podman --root /var/tmp/podman-root --runroot /run/podman-run "$@"; }
podman pull -q --tls-verify=false "$image" >/dev/null

inside sh -c "mkdir -p /etc/cleat/containers && printf 'image = \"$image\"\nentrypoint = []\ncommand = [\"true\"]\n' >/etc/cleat/containers/bench.toml && systemctl daemon-reload"

# Median wall time in ms of RUNS runs of a command inside the test host.
median() {
    inside python3 - "$runs" "$@" <<'PY'
import subprocess, sys, time
runs = int(sys.argv[1]); cmd = sys.argv[2:]
subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # warm-up
times = []
for _ in range(runs):
    t = time.monotonic()
    r = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    times.append((time.monotonic() - t) * 1000)
    if r.returncode != 0:
        sys.stderr.write(f"bench: {' '.join(cmd)}: exit {r.returncode}\n{r.stderr.decode(errors='replace')[-2000:]}\n")
        print("failed"); sys.exit(0)
times.sort()
print(f"{times[len(times) // 2]:.1f}")
PY
}

# Before each series, the previous one's containers are gone (their stops would compete with
# the next series' starts for the 2 CPUs otherwise).
settle() {
    inside sh -c 'for _ in $(seq 100); do systemctl list-units --no-legend "cleat-*.service" | grep -q . || exit 0; sleep 0.1; done'
}
fg=$(settle; median cleat run --rm "$image" true)
bg=$(settle; median cleat run -d --rm "$image" true)
bg_none=$(settle; median cleat run -d --rm --network none "$image" true)
unit=$(settle; median systemctl start --wait container@bench)
runc_ms=$(median runc run --bundle "$bundle" bench-runc)
crun_ms=$(median crun run --bundle "$bundle" bench-crun)
podman_none=$(median env CONTAINERS_CONF="$work/containers.conf" podman --root /var/tmp/podman-root --runroot /run/podman-run run --rm --network none "$image" true)
podman_net=$(median env CONTAINERS_CONF="$work/containers.conf" podman --root /var/tmp/podman-root --runroot /run/podman-run run --rm "$image" true)

ratio() { python3 -c "import sys; a, b = sys.argv[1:]; print('-' if 'failed' in (a, b) else f'{float(a) / float(b):.1f}')" "$1" "$2"; }
echo
echo "container start, median of $runs runs, $(nproc) CPUs (image present; payload: true)"
printf '%-48s %9s\n' "" "ms"
printf '%-48s %9s\n' "cleat run --rm IMAGE true (foreground)" "$fg"
printf '%-48s %9s\n' "cleat run -d --rm IMAGE true (bridge network)" "$bg"
printf '%-48s %9s\n' "cleat run -d --rm --network none IMAGE true" "$bg_none"
printf '%-48s %9s\n' "systemctl start --wait container@bench" "$unit"
printf '%-48s %9s\n' "runc run (OCI bundle of the image)" "$runc_ms"
printf '%-48s %9s\n' "crun run (same bundle)" "$crun_ms"
printf '%-48s %9s\n' "podman run --rm --network none IMAGE true" "$podman_none"
printf '%-48s %9s\n' "podman run --rm IMAGE true (default network)" "$podman_net"
echo
echo "ratios, like for like: without a network (the runc/crun bundle has a network namespace and nothing in it)"
echo "        cleat -d --network none / runc = $(ratio "$bg_none" "$runc_ms"), / crun = $(ratio "$bg_none" "$crun_ms") (goal: within 3x of crun)"
echo "        podman --network none / cleat -d --network none = $(ratio "$podman_none" "$bg_none")"
echo "        with a bridge network, published nothing: podman default network / cleat -d = $(ratio "$podman_net" "$bg") (goal: at least 15x)"
echo "        podman default network / container@ unit = $(ratio "$podman_net" "$unit")"

# Memory: what a running container costs besides its payload (no cleat process stays).
inside cleat run -d --name bench-mem "$image" sleep 1000 >/dev/null
inside cleat run -d --init --name bench-mem-init "$image" sleep 1000 >/dev/null
rss() {
    inside sh -c "cg=/sys/fs/cgroup\$(systemctl show -p ControlGroup --value $1); for p in \$(cat \$cg/cgroup.procs); do echo \"\$(cat /proc/\$p/comm) \$(awk '/VmRSS/ {print \$2}' /proc/\$p/status)\"; done"
}
echo
echo "processes of a running container (comm, RSS kB): without --init: $(rss cleat-bench-mem.service | tr '\n' ' ')"
echo "                                                 with --init:    $(rss cleat-bench-mem-init.service | tr '\n' ' ')"
inside cleat rm -f bench-mem bench-mem-init >/dev/null

# 50 declared containers at once, against one alone (started, timed, stopped first).
inside sh -c "for i in \$(seq 50); do printf 'image = \"$image\"\nentrypoint = []\ncommand = [\"sleep\", \"1000\"]\n' >/etc/cleat/containers/many\$i.toml; done; systemctl daemon-reload"
one=$(inside python3 -c '
import subprocess, time
t = time.monotonic(); subprocess.run(["systemctl", "start", "container@many1"], check=True); print(f"{(time.monotonic() - t) * 1000:.0f}")
subprocess.run(["systemctl", "stop", "container@many1"], check=True)')
all=$(inside python3 -c '
import subprocess, time
units = [f"container@many{i}" for i in range(1, 51)]
t = time.monotonic(); subprocess.run(["systemctl", "start", *units], check=True); print(f"{(time.monotonic() - t) * 1000:.0f}")')
active=$(inside sh -c 'systemctl list-units "container@many*" --state=active --no-legend | wc -l')
resident=$(inside sh -c 'pgrep -x cleat | wc -l')
echo
echo "50 container@ units: one alone ${one} ms; all 50 at once ${all} ms ($(ratio "$all" "$one")x one); active: ${active}/50"
echo "cleat processes left running with 50 containers up: ${resident}"
