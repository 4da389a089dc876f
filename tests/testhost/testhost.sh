#!/bin/bash
# Boots a private systemd (PID 1 of fresh PID/mount/UTS/IPC/net/cgroup namespaces) that
# writes nothing on the host. See ../shared/TESTHOST.md. Usage:
#
#   testhost.sh boot STATE_DIR     exec()s into `unshare`; that process's only child is systemd.
#                                  Killing it (or its parent dying) kills the whole namespace.
#   testhost.sh wait HOST_PID      waits until that systemd has finished booting.
#   testhost.sh cleanup STATE_DIR  removes the cgroup and state of a dead test host.
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
    mkdir -p "$state/empty"
    cg=/sys/fs/cgroup/unified/cleat-testhost.$$
    mkdir "$cg"
    echo "$cg" >"$state/cgroup"
    echo $$ >"$cg/cgroup.procs"
    exec unshare --pid --fork --kill-child=SIGKILL --mount --uts --ipc --net --cgroup \
        --propagation private "$0" inner "$state"
    ;;
inner)
    # PID 1 of the new PID namespace, in a private mount namespace. Order matters: the unit
    # directory is covered first, while the host's copies are still what we read.
    state=$2
    mount --bind "$state/units" /usr/lib/systemd/system
    mount --bind "$state/empty" /usr/lib/systemd/system-generators
    mount -t proc proc /proc
    mount -t sysfs sysfs /sys
    mount -t cgroup2 cgroup2 /sys/fs/cgroup
    mount -t tmpfs -o mode=0755 tmpfs "$state/empty"   # scratch for overlay upper dirs
    for d in etc var usr-local; do
        mkdir -p "$state/empty/$d.upper" "$state/empty/$d.work"
    done
    mount -t overlay overlay -o "lowerdir=/etc,upperdir=$state/empty/etc.upper,workdir=$state/empty/etc.work" /etc
    mount -t overlay overlay -o "lowerdir=/var,upperdir=$state/empty/var.upper,workdir=$state/empty/var.work" /var
    mount -t overlay overlay -o "lowerdir=/usr/local,upperdir=$state/empty/usr-local.upper,workdir=$state/empty/usr-local.work" /usr/local
    for d in /run /tmp /var/tmp /etc/systemd/system /var/lib/systemd; do
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
*)
    echo "usage: $0 boot STATE_DIR" >&2
    exit 2
    ;;
esac
