#!/bin/bash
# What running from a sealed copy of cleat costs (see src/sealed.rs): times `cleat exec NAME
# true` and `cleat run --rm [--init] true`, and the memory an `--init` container holds, for
# one or more cleat binaries, in a private test host of its own (the shared one of the system
# tests runs other tests' containers at the same time).
#
# usage: tests/bench/exec.sh [BIN_DIR] [RUNS] [LABEL=BINARY]...   (default target/release, 50)
#
# BIN_DIR's cleat (and cleat-generator) is installed as /usr/local/bin/cleat; each
# LABEL=BINARY is copied beside it as /usr/local/bin/cleat-LABEL and measured too. Prints,
# per binary, the median and mean wall time of RUNS (default 50) of each command, and the
# shared memory (/proc/meminfo Shmem) that 5 running `--init` containers add.
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
bin_dir=$(realpath -m "${1:-$repo/target/release}")
runs=${2:-50}
shift $(($# >= 2 ? 2 : $#))
work=$repo/target/bench/exec.$$
rootfs=$work/rootfs
# shellcheck source=../testhost/lib.sh
. "$repo/tests/testhost/lib.sh"

mkdir -p "$rootfs"/{bin,etc,proc,sys,dev,tmp,root}
cp /bin/busybox "$rootfs/bin/busybox"
for applet in $(/bin/busybox --list); do
    [ "$applet" = busybox ] || ln -s busybox "$rootfs/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$rootfs/etc/passwd"
printf 'root:x:0:\n' >"$rootfs/etc/group"

testhost_up "$work" "$bin_dir"
inside() { nsenter -t "$systemd_pid" -a "$@"; }

binaries=(/usr/local/bin/cleat)
labels=(installed)
for spec in "$@"; do
    label=${spec%%=*}
    inside install -m 0755 "$(realpath "${spec#*=}")" "/usr/local/bin/cleat-$label"
    binaries+=("/usr/local/bin/cleat-$label")
    labels+=("$label")
done

# Times RUNS runs of a command inside the test host: "median mean" in milliseconds.
timed() {
    local n=$1
    shift
    inside sh -c '
        runs=$1; shift
        i=0
        while [ $i -lt "$runs" ]; do
            t0=$(date +%s%N)
            "$@" >/dev/null 2>&1 </dev/null || { echo "failed: $*" >&2; exit 1; }
            t1=$(date +%s%N)
            echo $(( (t1 - t0) / 1000 ))
            i=$((i + 1))
        done' sh "$n" "$@" |
        sort -n | awk '{ a[NR] = $1; s += $1 }
            END { printf "median %.2f ms  mean %.2f ms\n", a[int((NR + 1) / 2)] / 1000, s / NR / 1000 }'
}

shmem_kb() { inside awk '/^Shmem:/ { print $2 }' /proc/meminfo; }

for i in "${!binaries[@]}"; do
    cleat=${binaries[$i]}
    echo "== ${labels[$i]} ($cleat, $(inside stat -c %s "$cleat") bytes)"
    inside "$cleat" run -d --name bench-target --rootfs "$rootfs" sleep 100000 >/dev/null
    echo "exec NAME true:        $(timed "$runs" "$cleat" exec bench-target true)"
    inside "$cleat" rm -f bench-target >/dev/null
    echo "run --rm true:         $(timed "$runs" "$cleat" run --rm --rootfs "$rootfs" true)"
    echo "run --rm --init true:  $(timed "$runs" "$cleat" run --rm --init --rootfs "$rootfs" true)"
    before=$(shmem_kb)
    for n in 1 2 3 4 5; do
        inside "$cleat" run -d --init --name "bench-init-$n" --rootfs "$rootfs" sleep 100000 >/dev/null
    done
    after=$(shmem_kb)
    echo "5 --init containers:   Shmem +$(( (after - before) / 1024 )) MiB"
    for n in 1 2 3 4 5; do
        inside "$cleat" rm -f "bench-init-$n" >/dev/null
    done
done
