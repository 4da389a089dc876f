#!/bin/bash
# Builds cleat's fixture images as OCI image layouts, without any registry or network, with
# umoci (and by hand where umoci cannot: the image index, the zstd layer), and unpacks each
# with `umoci unpack` into the reference tree the tests compare cleat's rootfs with.
#
#   images.sh build OUT [--big]     build what is missing or stale under OUT (idempotent; a
#                                   second run costs a few milliseconds); --big also builds
#                                   the 100-200 MB benchmark image
#   images.sh push OUT REGISTRY [--big]
#                                   push them with skopeo to REGISTRY (e.g. 127.0.0.1:5000);
#                                   run inside the test host, where the registry listens;
#                                   --big pushes the big image too
#   images.sh list OUT              the images and the tags of their layouts
#
# OUT/NAME/oci is the layout of image NAME (tag `latest` is what gets pushed), OUT/NAME/ref/TAG
# the `umoci unpack` bundle of tag TAG (the tree is in its rootfs/). Images:
#
#   busybox     one layer: busybox-static, applet links, passwd/group, small scripts; a config
#               with Env, Entrypoint, Cmd, WorkingDir, User, StopSignal, ExposedPorts, Volumes
#   layers      four hand-made layers: whiteouts, an opaque directory, a directory deleted then
#               recreated, hard links, symlinks, setuid/setgid, non-root owners, a user xattr,
#               a file-to-directory change, an empty layer
#   multiarch   an image index: linux/amd64 and linux/arm64 (busybox layer plus a marker
#               layer /etc/platform); tags amd64 and arm64 name the two manifests
#   zstd        one tar+zstd layer (busybox plus /etc/fixture); tag gzip-twin is the same
#               content with a gzip layer (its reference tree is the zstd image's)
#   concurrent  busybox layer plus two 3 MB incompressible layers (concurrent pull tests)
#   bulky       busybox layer plus one 12 MB incompressible layer (interrupted pull tests)
#   rmi         busybox's very layer plus a marker layer: an image of its own that shares a
#               layer with busybox (rmi tests)
#   big         (--big only) the busybox layer and three gzip layers of real files from /usr
#               (about 120 MB each unpacked), 100-200 MB compressed
#
# The Docker schema2 copy is made at push time (`skopeo copy --format v2s2` of busybox), and
# public/busybox is another name for busybox (for anonymous bearer-token pulls).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
IMAGES=(busybox layers multiarch zstd concurrent bulky rmi)
CREATED=2024-01-01T00:00:00Z

log() { echo "images.sh: $*" >&2; }

oci_arch() {
    case $(uname -m) in
    x86_64) echo amd64 ;;
    aarch64) echo arm64 ;;
    armv7l) echo arm ;;
    ppc64le) echo ppc64le ;;
    s390x) echo s390x ;;
    riscv64) echo riscv64 ;;
    *) uname -m ;;
    esac
}

# What the fixtures depend on: this script, the tar writer, busybox and umoci.
stamp() {
    {
        cat "$here/images.sh" "$here/fixture-tars.py"
        sha256sum /bin/busybox
        umoci --version
    } | sha256sum | cut -d' ' -f1
}

populate_busybox() {
    local root=$1 marker=${2:-}
    mkdir -p "$root"/{bin,etc,home/app,root,tmp,usr/bin,var/tmp,data,proc,sys,dev,run}
    chmod 1777 "$root/tmp" "$root/var/tmp"
    chmod 700 "$root/root"
    chown 1000:1000 "$root/home/app"
    install -m 0755 /bin/busybox "$root/bin/busybox"
    local a
    for a in $(/bin/busybox --list); do
        case $a in busybox | */*) continue ;; esac
        ln -s busybox "$root/bin/$a"
    done
    ln -s ../../bin/busybox "$root/usr/bin/env"
    cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
app:x:1000:1000:app:/home/app:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
    cat >"$root/etc/group" <<'EOF'
root:x:0:
staff:x:50:app
app:x:1000:
nogroup:x:65534:
EOF
    # The image's entrypoint: says it ran, then runs the command.
    cat >"$root/bin/entry" <<'EOF'
#!/bin/sh
echo "entrypoint: $*"
exec "$@"
EOF
    # What the container sees: user, directory, environment, arguments.
    cat >"$root/bin/report" <<'EOF'
#!/bin/sh
echo "report: uid=$(id -u) gid=$(id -g) cwd=$(pwd)"
echo "report: FIXTURE=${FIXTURE-<unset>} GREETING=${GREETING-<unset>} EXTRA=${EXTRA-<unset>}"
echo "report: args=$*"
EOF
    # The default command: a report, then it waits; exits 0 on SIGUSR1 (the image's
    # StopSignal) and 143 on SIGTERM.
    cat >"$root/bin/serve" <<'EOF'
#!/bin/sh
/bin/report "$@"
trap 'echo "serve: got USR1"; exit 0' USR1
trap 'echo "serve: got TERM"; exit 143' TERM
echo "serve: ready"
while :; do sleep 0.1; done
EOF
    chmod 0755 "$root/bin/entry" "$root/bin/report" "$root/bin/serve"
    if [ -n "$marker" ]; then
        echo "$marker" >"$root/etc/fixture"
    fi
}

# new_image LAYOUT TAG: an empty image (no layer) with a fixed creation time.
new_image() {
    [ -d "$1" ] || umoci init --layout "$1"
    umoci new --image "$1:$2"
    umoci config --image "$1:$2" --created "$CREATED" --os linux \
        --architecture "$(oci_arch)"
}

# repack LAYOUT:TAG BUNDLE: commit the bundle's rootfs as a new layer.
repack() {
    umoci repack --image "$1" "$2"
}

busybox_config() {
    local image=$1 fixture=$2
    umoci config --image "$image" --created "$CREATED" \
        --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
        --config.env FIXTURE="$fixture" \
        --config.env "GREETING=hello from the image" \
        --config.entrypoint /bin/entry \
        --config.cmd /bin/serve \
        --config.workingdir /home/app \
        --config.user app \
        --config.stopsignal SIGUSR1 \
        --config.exposedports 8080/tcp \
        --config.volume /data \
        --config.label org.example.fixture="$fixture"
}

# unpack_ref DIR TAG: the reference tree of tag TAG.
unpack_ref() {
    umoci unpack --image "$1/oci:$2" "$1/ref/$2" >/dev/null
}

# layer_of LAYOUT TAG: the (uncompressed) tar of the single layer of a one-layer image.
single_layer_tar() {
    python3 - "$1" "$2" <<'EOF'
import json, sys
layout, tag = sys.argv[1:]
idx = json.load(open(f"{layout}/index.json"))
d = next(m for m in idx["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag)
m = json.load(open(f"{layout}/blobs/" + d["digest"].replace(":", "/")))
print(f"{layout}/blobs/" + m["layers"][-1]["digest"].replace(":", "/"))
EOF
}

build_busybox() {
    local d=$1
    new_image "$d/oci" latest
    umoci unpack --image "$d/oci:latest" "$d/bundle" >/dev/null
    populate_busybox "$d/bundle/rootfs"
    repack "$d/oci:latest" "$d/bundle"
    busybox_config "$d/oci:latest" busybox
    umoci gc --layout "$d/oci"
    rm -rf "$d/bundle"
    unpack_ref "$d" latest
}

build_layers() {
    local d=$1 i
    python3 "$here/fixture-tars.py" layers "$d/tars"
    new_image "$d/oci" latest
    for i in 1 2 3 4; do
        umoci raw add-layer --image "$d/oci:latest" "$d/tars/layer$i.tar"
    done
    umoci config --image "$d/oci:latest" --created "$CREATED" \
        --config.cmd /bin/suid --config.env FIXTURE=layers
    umoci gc --layout "$d/oci"
    rm -rf "$d/tars"
    unpack_ref "$d" latest
}

build_multiarch() {
    local d=$1 arch
    new_image "$d/oci" base
    umoci unpack --image "$d/oci:base" "$d/bundle" >/dev/null
    populate_busybox "$d/bundle/rootfs"
    repack "$d/oci:base" "$d/bundle"
    rm -rf "$d/bundle"
    busybox_config "$d/oci:base" multiarch
    mkdir -p "$d/tars"
    for arch in amd64 arm64; do
        python3 "$here/fixture-tars.py" marker "$d/tars/$arch.tar" etc/platform "linux/$arch"
        umoci config --image "$d/oci:base" --tag "$arch" --architecture "$arch"
        umoci raw add-layer --image "$d/oci:$arch" "$d/tars/$arch.tar"
    done
    umoci rm --image "$d/oci:base"
    umoci gc --layout "$d/oci"
    rm -rf "$d/tars"
    unpack_ref "$d" amd64
    unpack_ref "$d" arm64
    # The index, by hand: tag `latest` names an image index listing both manifests.
    python3 - "$d/oci" <<'EOF'
import hashlib, json, sys
layout = sys.argv[1]
idx = json.load(open(f"{layout}/index.json"))
by_tag = {m["annotations"]["org.opencontainers.image.ref.name"]: m for m in idx["manifests"]}
entries = []
for arch in ("amd64", "arm64"):
    d = by_tag[arch]
    entries.append({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": d["digest"],
        "size": d["size"],
        "platform": {"architecture": arch, "os": "linux"},
    })
body = json.dumps({
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "manifests": entries,
}, separators=(",", ":")).encode()
digest = hashlib.sha256(body).hexdigest()
open(f"{layout}/blobs/sha256/{digest}", "wb").write(body)
idx["manifests"].append({
    "mediaType": "application/vnd.oci.image.index.v1+json",
    "digest": f"sha256:{digest}",
    "size": len(body),
    "annotations": {"org.opencontainers.image.ref.name": "latest"},
})
json.dump(idx, open(f"{layout}/index.json", "w"), separators=(",", ":"))
EOF
}

build_zstd() {
    local d=$1
    new_image "$d/oci" gzip-twin
    umoci unpack --image "$d/oci:gzip-twin" "$d/bundle" >/dev/null
    populate_busybox "$d/bundle/rootfs" zstd
    repack "$d/oci:gzip-twin" "$d/bundle"
    rm -rf "$d/bundle"
    busybox_config "$d/oci:gzip-twin" zstd
    umoci gc --layout "$d/oci"
    unpack_ref "$d" gzip-twin
    # Tag `latest`: the same config, the layer recompressed with zstd, by hand.
    local blob
    blob=$(single_layer_tar "$d/oci" gzip-twin)
    gzip -dc "$blob" | zstd -q -19 -T0 -c >"$d/layer.tar.zst"
    python3 - "$d/oci" "$d/layer.tar.zst" <<'EOF'
import hashlib, json, os, sys
layout, zst = sys.argv[1:]
data = open(zst, "rb").read()
ldigest = hashlib.sha256(data).hexdigest()
os.rename(zst, f"{layout}/blobs/sha256/{ldigest}")
idx = json.load(open(f"{layout}/index.json"))
twin = next(m for m in idx["manifests"] if m["annotations"]["org.opencontainers.image.ref.name"] == "gzip-twin")
m = json.load(open(f"{layout}/blobs/" + twin["digest"].replace(":", "/")))
body = json.dumps({
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": m["config"],
    "layers": [{
        "mediaType": "application/vnd.oci.image.layer.v1.tar+zstd",
        "digest": f"sha256:{ldigest}",
        "size": len(data),
    }],
}, separators=(",", ":")).encode()
mdigest = hashlib.sha256(body).hexdigest()
open(f"{layout}/blobs/sha256/{mdigest}", "wb").write(body)
idx["manifests"].append({
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": f"sha256:{mdigest}",
    "size": len(body),
    "annotations": {"org.opencontainers.image.ref.name": "latest"},
})
json.dump(idx, open(f"{layout}/index.json", "w"), separators=(",", ":"))
EOF
    # The reference tree is the twin's: same layer content.
    ln -s gzip-twin "$d/ref/latest"
}

# busybox layer plus incompressible layers: build_random DIR FIXTURE SIZE...
build_random() {
    local d=$1 fixture=$2 n=0 size
    shift 2
    new_image "$d/oci" latest
    umoci unpack --image "$d/oci:latest" "$d/bundle" >/dev/null
    populate_busybox "$d/bundle/rootfs" "$fixture"
    repack "$d/oci:latest" "$d/bundle"
    rm -rf "$d/bundle"
    busybox_config "$d/oci:latest" "$fixture"
    mkdir -p "$d/tars"
    for size in "$@"; do
        n=$((n + 1))
        python3 "$here/fixture-tars.py" random "$d/tars/r$n.tar" "srv/$fixture/random$n" "$size" "$n$size"
        umoci raw add-layer --image "$d/oci:latest" "$d/tars/r$n.tar"
    done
    umoci gc --layout "$d/oci"
    rm -rf "$d/tars"
    unpack_ref "$d" latest
}

build_rmi() {
    local d=$1
    cp -a "$(dirname "$d")/busybox/oci" "$d/oci"
    python3 "$here/fixture-tars.py" marker "$d/marker.tar" etc/fixture rmi
    umoci raw add-layer --image "$d/oci:latest" "$d/marker.tar"
    rm "$d/marker.tar"
    umoci config --image "$d/oci:latest" --config.label org.example.fixture=rmi
    umoci gc --layout "$d/oci"
    unpack_ref "$d" latest
}

build_concurrent() { build_random "$1" concurrent 3000000 3000000; }
build_bulky() { build_random "$1" bulky 12000000; }

# Three layers of real files from /usr, about 150 MB unpacked each.
build_big() {
    local d=$1 budget=120000000 n
    new_image "$d/oci" latest
    umoci unpack --image "$d/oci:latest" "$d/bundle" >/dev/null
    populate_busybox "$d/bundle/rootfs" big
    # Regular files under 20 MB, in a stable order, up to the budget per layer; a file goes
    # into the first layer whose source holds it.
    python3 "$here/fixture-tars.py" pick "$d" $budget "/usr/lib/$(uname -m)-linux-gnu" /usr/share /usr/lib
    repack "$d/oci:latest" "$d/bundle"
    rm -rf "$d/bundle"
    # (umoci repack diffs against the unpacked image, not the last repack: add the layers raw.)
    for n in 1 2 3; do
        tar -C / --no-recursion -cf "$d/layer$n.tar" -T "$d/list$n"
        umoci raw add-layer --image "$d/oci:latest" "$d/layer$n.tar"
        rm "$d/layer$n.tar"
    done
    rm -f "$d"/list*
    busybox_config "$d/oci:latest" big
    umoci gc --layout "$d/oci"
}

build_one() {
    local out=$1 name=$2 want d
    want=$(stamp)
    d="$out/$name"
    if [ "$(cat "$d/stamp" 2>/dev/null)" = "$want" ]; then
        return 0
    fi
    local t0=$SECONDS
    rm -rf "$d" "$d.tmp"
    mkdir -p "$d.tmp"
    "build_$name" "$d.tmp"
    echo "$want" >"$d.tmp/stamp"
    mv "$d.tmp" "$d"
    log "built $name in $((SECONDS - t0)) s"
}

case ${1:-} in
build)
    out=$2
    big=${3:-}
    for tool in umoci python3 zstd gzip; do
        command -v "$tool" >/dev/null || { log "$tool is missing (tests/testhost/deps.sh installs it)"; exit 1; }
    done
    [ "$(id -u)" = 0 ] || { log "building fixtures needs root (umoci keeps owners)"; exit 1; }
    mkdir -p "$out"
    out=$(realpath "$out")
    exec 9>"$out/.lock"
    flock 9
    for name in "${IMAGES[@]}"; do
        build_one "$out" "$name"
    done
    if [ "$big" = --big ]; then
        build_one "$out" big
    fi
    ;;
push)
    out=$2
    reg=$3
    names=("${IMAGES[@]}")
    if [ "${4:-}" = --big ]; then
        [ -d "$out/big/oci" ] || { log "no big image: run images.sh build $out --big first"; exit 1; }
        names+=(big)
    fi
    copy() { skopeo copy -q --dest-tls-verify=false --retry-times 2 "$@"; }
    for name in "${names[@]}"; do
        if [ "$name" = multiarch ]; then
            copy --all "oci:$out/$name/oci:latest" "docker://$reg/$name:latest"
        else
            copy "oci:$out/$name/oci:latest" "docker://$reg/$name:latest"
        fi
    done
    copy --format v2s2 "oci:$out/busybox/oci:latest" "docker://$reg/schema2:latest"
    copy "oci:$out/busybox/oci:latest" "docker://$reg/public/busybox:latest"
    ;;
list)
    for name in "${IMAGES[@]}" big; do
        [ -f "$2/$name/oci/index.json" ] || continue
        printf '%s:' "$name"
        python3 -c 'import json,sys; print(" ".join(m["annotations"]["org.opencontainers.image.ref.name"] for m in json.load(open(sys.argv[1]))["manifests"]))' "$2/$name/oci/index.json"
    done
    ;;
*)
    sed -n '2,/^set -euo/p' "$0" | sed '$d' >&2
    exit 2
    ;;
esac
