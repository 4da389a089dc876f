#!/bin/bash
# `make deb`: builds the Debian package with `dpkg-buildpackage -us -uc -b` in a copy of this
# tree (its tracked and untracked, not ignored, files) under OUT/src, so that the package lands
# in OUT rather than beside the tree, and the build's target directory (OUT/cargo-target) is
# kept from one run to the next. Installs the build dependencies first when run as root.
#
# usage: packaging/build-deb.sh OUT
set -euo pipefail

out=$(mkdir -p "${1:?usage: build-deb.sh OUT}" && cd "$1" && pwd)
repo=$(cd "$(dirname "$0")/.." && pwd)

needed=(dpkg-dev debhelper make gcc libc6-dev)
missing=()
for p in "${needed[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    if [ "$(id -u)" != 0 ]; then
        echo "build-deb.sh: missing build dependencies: ${missing[*]}" >&2
        exit 1
    fi
    echo "build-deb.sh: installing ${missing[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

rm -rf "$out/src"
mkdir -p "$out/src"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    tar --null -T - -cf -) | tar -xf - -C "$out/src"
rm -f "$out"/cleat_* "$out"/cleat-dbgsym_*
cd "$out/src"
CARGO_TARGET_DIR=$out/cargo-target dpkg-buildpackage -us -uc -b
ls -l "$out"/*.deb
