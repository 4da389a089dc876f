# Sourced by scripts that need a private systemd with cleat installed (demo.sh, the
# benchmarks): `testhost_up WORK BIN_DIR` boots one (state under WORK, cleat from BIN_DIR
# installed with `make install`) and sets $systemd_pid; on exit it is torn down and WORK
# removed. `testhost_up_deb WORK PACKAGE.deb` does the same with cleat installed from its
# Debian package, by `dpkg -i` inside the test host (where /etc, /usr and /var are overlays:
# the host's dpkg database and files are not touched, and the maintainer scripts talk to the
# private systemd). Commands run inside with `nsenter -t "$systemd_pid" -a …`.

testhost_lib_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
testhost=$testhost_lib_repo/tests/testhost/testhost.sh
testhost_work=
testhost_unshare_pid=
systemd_pid=

testhost_down() {
    if [ -n "$testhost_unshare_pid" ] && kill -0 "$testhost_unshare_pid" 2>/dev/null; then
        kill -KILL "$testhost_unshare_pid" 2>/dev/null || true
        wait "$testhost_unshare_pid" 2>/dev/null || true
    fi
    if [ -n "$testhost_work" ]; then
        for _ in $(seq 50); do
            "$testhost" cleanup "$testhost_work/host" 2>/dev/null && break
            sleep 0.1
        done
        rm -rf --one-file-system "$testhost_work"
    fi
}

testhost_boot() {
    setsid "$testhost" boot "$testhost_work/host" >"$testhost_work/boot.log" 2>&1 &
    testhost_unshare_pid=$!
    systemd_pid=$("$testhost" wait "$testhost_unshare_pid" 60) || { cat "$testhost_work/boot.log"; exit 1; }
}

testhost_up() {
    testhost_work=$1
    local bin_dir=$2
    trap testhost_down EXIT
    trap 'exit 130' INT TERM
    mkdir -p "$testhost_work"
    make -s -C "$testhost_lib_repo" install DESTDIR="$testhost_work/stage" PREFIX=/usr/local BIN_DIR="$bin_dir"
    testhost_boot
    nsenter -t "$systemd_pid" -a sh -c "cp -a '$testhost_work/stage/usr/local/.' /usr/local/ && systemctl daemon-reload"
}

testhost_up_deb() {
    testhost_work=$1
    local deb
    deb=$(realpath "$2")
    trap testhost_down EXIT
    trap 'exit 130' INT TERM
    mkdir -p "$testhost_work"
    testhost_boot
    nsenter -t "$systemd_pid" -a env DEBIAN_FRONTEND=noninteractive dpkg -i "$deb"
}
