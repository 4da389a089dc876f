# Sourced by `demo.sh --deb PACKAGE` once the demo is over (container@demo stopped): what the
# installed package provides, then what removing and purging it do, checked inside the private
# systemd. Fails the demo (and CI) on the first check that does not hold.

inside() { nsenter -t "$systemd_pid" -a "$@"; }
fail() {
    echo "package check failed: $*" >&2
    exit 1
}

say "What the package installed: manual pages, completions, directories, a default registries.toml"
run dpkg-query -W -f '${Package} ${Version} ${Status}\n' cleat
run man -w cleat cleat-run cleat-network-create cleat.toml container@.service
run bash -c '. /usr/share/bash-completion/completions/cleat && complete -p cleat'
run ls -ld /run/cleat /var/lib/cleat /etc/cleat/containers
[ "$(inside stat -c %a /var/lib/cleat)" = 700 ] || fail "/var/lib/cleat is not private to root"
inside sh -c '! grep -v "^#" /etc/cleat/registries.toml | grep -q .' ||
    fail "/etc/cleat/registries.toml sets something"
inside man -w cleat-exec >/dev/null || fail "no cleat-exec(1)"

say "Purging while a container runs (a policy-rc.d forbids stopping it) keeps cleat's state"
# This machine's policy-rc.d forbids every service action (a convention of container images),
# and the maintainer scripts honour it, as they must: removal cannot stop the container.
inside test -x /usr/sbin/policy-rc.d || fail "expected this machine's policy-rc.d"
run systemctl start container@demo
# Purge looks for a running container's mounts in the mount tables.
inside sh -c "grep -qsE '(=| )/var/lib/cleat/' /proc/[0-9]*/mountinfo" ||
    fail "a running container's mounts do not name /var/lib/cleat"
run dpkg --purge cleat
inside systemctl is-active --quiet container@demo || fail "container@demo stopped against policy-rc.d"
inside test -d /var/lib/cleat/layers || fail "purge removed the image store under a running container"
inside test -d /run/cleat/networks || fail "purge removed /run/cleat under a running container"
say "Installing it again, and stopping the container with the new cleat"
run dpkg -i "$deb"
run systemctl stop container@demo

say "Removing the package stops the containers, and takes their network down while cleat can"
# A real host has no policy-rc.d; removed inside the test host only (its /usr is an overlay).
inside rm -f /usr/sbin/policy-rc.d
run systemctl start container@demo
run dpkg -r cleat
! inside systemctl is-active --quiet container@demo || fail "container@demo still runs"
! inside nft list table inet cleat >/dev/null 2>&1 || fail "cleat's nft table is still there"
! inside ip link show cleat0 >/dev/null 2>&1 || fail "the bridge cleat0 is still there"
! inside test -e /usr/bin/cleat || fail "/usr/bin/cleat is still there"
inside test -f /etc/cleat/containers/demo.toml || fail "removing deleted a definition"
inside test -d /var/lib/cleat/layers || fail "removing (not purging) deleted the image store"

say "Purging removes cleat's state and configuration; the administrator's definitions stay"
run dpkg --purge cleat
for gone in /var/lib/cleat/layers /var/lib/cleat/containers /run/cleat /etc/cleat/registries.toml; do
    ! inside test -e "$gone" || fail "$gone is still there after purge"
done
inside test -f /etc/cleat/containers/demo.toml || fail "purging deleted an administrator's definition"
run find /etc/cleat
