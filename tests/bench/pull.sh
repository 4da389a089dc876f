#!/bin/bash
# Pull benchmark (issue 3): pulls the `big` fixture image (100-200 MB of gzip layers of real
# files) from a registry on loopback, cold each time, in one run, with
#   - cleat pull                      (download + verify + decompress + unpack into the store)
#   - podman pull                     (the same work, Podman's way)
#   - skopeo copy to an OCI layout    (transfer and verification only: a lower bound)
#   - gzip -dc of every layer blob, all in parallel, to /dev/null (the decompression alone)
# and prints the times and cleat's ratios. Everything runs inside a private test systemd (see
# tests/testhost/testhost.sh): the registry, the stores and the network namespace are its own,
# on tmpfs, so every tool reads and writes memory, and nothing touches the host.
#
# usage: tests/bench/pull.sh [BIN_DIR]     (default target/release; built if missing)
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
bin_dir=$(realpath -m "${1:-$repo/target/release}")
fixtures=$repo/target/fixtures
work=$repo/target/bench/$$
# shellcheck source=../testhost/lib.sh
. "$repo/tests/testhost/lib.sh"


"$repo/tests/testhost/deps.sh"
for p in podman runc pigz; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || {
        echo "bench: installing $p" >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$p" >/dev/null
    }
done
[ -x "$bin_dir/cleat" ] || (cd "$repo" && cargo build --release --bins)
"$repo/tests/testhost/images.sh" build "$fixtures" --big >&2

testhost_up "$work" "$bin_dir"
inside() { nsenter -t "$systemd_pid" -a "$@"; }
inside "$repo/tests/testhost/registries.sh" start "$fixtures" --big >"$work/registries.log" 2>&1 ||
    { cat "$work/registries.log"; exit 1; }

image=127.0.0.1:5000/big:latest
blobs=$(python3 - "$fixtures/big/oci" <<'PY'
import json, sys, os
layout = sys.argv[1]
index = json.load(open(os.path.join(layout, "index.json")))
manifest = index["manifests"][0]["digest"].split(":")[1]
m = json.load(open(os.path.join(layout, "blobs/sha256", manifest)))
print(" ".join(os.path.join(layout, "blobs/sha256", l["digest"].split(":")[1]) for l in m["layers"]))
PY
)
compressed=$(du -cb $blobs | tail -1 | cut -f1)

# Podman on tmpfs storage, without systemd integration (cgroupfs, file events), no pause.
cat >"$work/containers.conf" <<'CONF'
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
runtime = "runc"
CONF

# Times one command inside the test host, in seconds (cold: the caller cleared its state).
timed() {
    inside sh -c 'start=$(date +%s%N); "$@" >/dev/null 2>&1 || exit 1; end=$(date +%s%N); echo $(( (end - start) / 1000000 ))' sh "$@"
}

inside sh -c 'rm -rf /var/lib/cleat/* 2>/dev/null; true'
cleat_ms=$(timed cleat pull -q "$image")
size=$(inside cleat image inspect "$image" | python3 -c 'import json,sys; print(json.load(sys.stdin)["size"])')

inside sh -c 'rm -rf /tmp/bench-oci'
skopeo_ms=$(timed skopeo copy --src-tls-verify=false "docker://$image" oci:/tmp/bench-oci:big)

inside sh -c 'rm -rf /var/tmp/podman-root /run/podman-run'
podman_ms=$(timed env CONTAINERS_CONF="$work/containers.conf" podman --root /var/tmp/podman-root \
    --runroot /run/podman-run --storage-driver overlay pull --tls-verify=false "$image") || podman_ms=

gunzip_ms=$(timed sh -c 'for b in "$@"; do gzip -dc "$b" >/dev/null & done; wait' sh $blobs)

ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
echo
echo "pull of $image: $(python3 -c "print(f'{$compressed/1e6:.0f}')") MB compressed in $(echo $blobs | wc -w) layers, $(python3 -c "print(f'{$size/1e6:.0f}')") MB unpacked; $(nproc) CPUs"
printf '%-44s %8s %s\n' "tool" "ms" "cleat's ratio"
printf '%-44s %8s %s\n' "cleat pull (download+verify+unpack)" "$cleat_ms" "1.00"
if [ -n "$podman_ms" ]; then
    printf '%-44s %8s %s\n' "podman pull" "$podman_ms" "podman/cleat = $(ratio "$podman_ms" "$cleat_ms") (goal >= 4)"
else
    printf '%-44s %8s\n' "podman pull" "failed"
fi
printf '%-44s %8s %s\n' "skopeo copy to an OCI layout (no unpack)" "$skopeo_ms" "cleat/skopeo = $(ratio "$cleat_ms" "$skopeo_ms")"
printf '%-44s %8s %s\n' "gzip -dc of the layers in parallel" "$gunzip_ms" "cleat/gunzip = $(ratio "$cleat_ms" "$gunzip_ms") (goal <= 1.5)"
