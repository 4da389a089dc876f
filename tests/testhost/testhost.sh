#!/bin/bash
# Boots a private systemd (PID 1 of fresh PID/mount/UTS/IPC/net/cgroup namespaces) that
# writes nothing on the host. See ../shared/TESTHOST.md. Usage:
#
#   testhost.sh boot STATE_DIR          exec()s into `unshare`; that process's only child is
#                                       systemd. Killing it (or its parent dying) kills the
#                                       whole namespace. STATE_DIR must not be under /tmp,
#                                       /run or /var/tmp (those are private tmpfs inside).
#   testhost.sh wait PID [SECONDS]      waits until that systemd (its host PID, or the PID of
#                                       the `boot` process) has finished booting; prints the
#                                       systemd PID.
#   testhost.sh cleanup STATE_DIR       removes the cgroup and state of a dead test host
#                                       (refuses while any process is left in its cgroup).
#
# Inside, /etc, /var and /usr are overlays whose writes go to a private tmpfs, so
# `make install PREFIX=/usr/local` (or writing /usr/lib/cleat/...) inside changes nothing on
# the host; /run, /tmp, /var/tmp, /etc/systemd/system, /var/lib/systemd and
# /var/log/journal are private tmpfs mounts.
set -euo pipefail

unit_dir_source=/usr/lib/systemd/system

prepare_units() {
    local dir=$1
    mkdir -p "$dir"
    local t
    for t in sysinit basic sockets paths timers slices shutdown local-fs remote-fs network \
        network-online network-pre multi-user rescue emergency halt poweroff reboot exit final umount \
        graphical nss-lookup remote-fs-pre local-fs-pre; do
        printf '[Unit]\nDescription=%s (cleat test host)\n' "$t" >"$dir/$t.target"
    done
    cat >"$dir/default.target" <<'UNIT'
[Unit]
Description=cleat test host
Wants=dbus.socket dbus.service systemd-journald.socket systemd-journald.service
UNIT
    local u
    for u in dbus.service dbus.socket systemd-journald.service systemd-journald.socket \
        systemd-journald-dev-log.socket machine.slice; do
        cp "$unit_dir_source/$u" "$dir/$u"
    done
}

case ${1:-} in
boot)
    state=$(realpath "$2")
    mkdir -p "$state"
    prepare_units "$state/units"
    mkdir -p "$state/empty" "$state/scratch"
    cg=/sys/fs/cgroup/unified/cleat-testhost.$$
    mkdir "$cg"
    echo "$cg" >"$state/cgroup"
    echo $$ >"$cg/cgroup.procs"
    exec unshare --pid --fork --kill-child=SIGKILL --mount --uts --ipc --net --cgroup \
        --propagation private "$0" inner "$state"
    ;;
inner)
    # PID 1 of the new PID namespace, in a private mount namespace. The host's unit files
    # were already copied by `boot`; from here on the host's /usr is only a read-only lower
    # layer.
    state=$2
    mount -t tmpfs -o mode=0755 tmpfs "$state/scratch"   # overlay upper dirs
    for d in etc var usr; do
        mkdir -p "$state/scratch/$d.upper" "$state/scratch/$d.work"
    done
    mount -t overlay overlay -o "lowerdir=/usr,upperdir=$state/scratch/usr.upper,workdir=$state/scratch/usr.work" /usr
    mount --bind "$state/units" /usr/lib/systemd/system
    mount --bind "$state/empty" /usr/lib/systemd/system-generators
    mount -t proc proc /proc
    mount -t sysfs sysfs /sys
    mount -t cgroup2 cgroup2 /sys/fs/cgroup
    mount -t overlay overlay -o "lowerdir=/etc,upperdir=$state/scratch/etc.upper,workdir=$state/scratch/etc.work" /etc
    mount -t overlay overlay -o "lowerdir=/var,upperdir=$state/scratch/var.upper,workdir=$state/scratch/var.work" /var
    # cleat's store gets a file system of its own: overlayfs cannot use a directory on the
    # /var overlay as a container's upper layer.
    mkdir -p /var/lib/cleat
    for d in /run /tmp /var/tmp /etc/systemd/system /var/lib/systemd /var/lib/cleat; do
        mount -t tmpfs -o mode=0755 tmpfs "$d"
    done
    chmod 1777 /tmp /var/tmp
    mkdir -p /var/log/journal
    mount -t tmpfs -o mode=0755 tmpfs /var/log/journal
    : >/etc/fstab
    hostname cleat-testhost
    exec env -i container=cleat-test PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        /lib/systemd/systemd --system --show-status=no
    ;;
wait)
    pid=$2
    deadline=$((SECONDS + ${3:-30}))
    # Given the `boot` process, wait until it has become `unshare` and its only child has
    # become systemd (both exec at their own pace: until then, their names say otherwise).
    while :; do
        comm=$(cat "/proc/$pid/comm" 2>/dev/null) || { echo "testhost: process $pid is gone" >&2; exit 1; }
        if [ "$comm" = systemd ]; then
            break
        fi
        if [ "$comm" = unshare ]; then
            child=$(tr -d ' ' <"/proc/$pid/task/$pid/children" 2>/dev/null) || true
            if [ -n "$child" ] && [ "$(cat "/proc/$child/comm" 2>/dev/null)" = systemd ]; then
                pid=$child
                break
            fi
        fi
        [ $SECONDS -lt $deadline ] || { echo "testhost: no systemd under process $pid" >&2; exit 1; }
        sleep 0.02
    done
    while :; do
        state=$(timeout 10 nsenter -t "$pid" -a systemctl is-system-running --wait 2>/dev/null) || true
        case $state in
        running | degraded) echo "$pid"; exit 0 ;;
        esac
        [ -d "/proc/$pid" ] || { echo "testhost: systemd $pid died" >&2; exit 1; }
        [ $SECONDS -lt $deadline ] || { echo "testhost: systemd $pid not up (state: ${state:-unknown})" >&2; exit 1; }
        sleep 0.1
    done
    ;;
cleanup)
    state=$(realpath "$2")
    if [ -f "$state/cgroup" ]; then
        cg=$(cat "$state/cgroup")
        case $cg in
        /sys/fs/cgroup/unified/cleat-testhost.*) ;;
        *) echo "testhost: refusing to touch cgroup $cg" >&2; exit 1 ;;
        esac
        if [ -d "$cg" ]; then
            if [ -n "$(find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null)" ]; then
                echo "testhost: $cg still holds processes; kill the test host first" >&2
                exit 1
            fi
            find "$cg" -depth -type d -exec rmdir {} +
        fi
    fi
    rm -rf --one-file-system "$state"
    ;;
*)
    echo "usage: $0 boot STATE_DIR | wait PID [SECONDS] | cleanup STATE_DIR" >&2
    exit 2
    ;;
esac
