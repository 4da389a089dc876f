#!/bin/bash
# Installs the Debian packages that cleat's demo and test suite need. Idempotent, and quick when
# everything is present: apt is only touched for what is missing.
set -euo pipefail

packages=(systemd dbus busybox-static util-linux iproute2 nftables make gcc libc6-dev
    # The image tests: fixture images (umoci, zstd, python3), registries (docker-registry,
    # htpasswd, openssl, the token server's python3-jwt and python3-cryptography), pushing and
    # checking them (skopeo).
    umoci skopeo docker-registry apache2-utils openssl zstd python3 python3-jwt
    python3-cryptography)
missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if ((${#missing[@]})); then
    if [ "$(id -u)" != 0 ]; then
        echo "deps.sh: these packages are missing and installing them needs root: ${missing[*]}" >&2
        exit 1
    fi
    echo "deps.sh: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
    echo "deps.sh: cargo is not on PATH (a Rust toolchain is needed: https://rustup.rs)" >&2
    exit 1
fi
