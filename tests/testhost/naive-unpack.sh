#!/bin/bash
# Unpacks the layers of an image from its OCI layout the naive way (GNU tar, then OCI
# whiteouts turned into overlayfs ones: `.wh.NAME` becomes a 0:0 character device NAME,
# `DIR/.wh..wh..opq` becomes the xattr trusted.overlay.opaque=y on DIR), one directory per
# layer, and prints those directories bottom first. The image tests use it to check their own
# comparison (overlay of layers against `umoci unpack`) independently of cleat. Needs root
# and a file system with trusted xattrs and device nodes (run it inside the test host, under
# /run).
#
#   naive-unpack.sh LAYOUT TAG OUT
set -euo pipefail

[ $# -eq 3 ] || { echo "usage: $0 LAYOUT TAG OUT" >&2; exit 2; }
layout=$1 tag=$2 out=$3
mkdir -p "$out"
n=0
python3 - "$layout" "$tag" <<'EOF' |
import json, sys
layout, tag = sys.argv[1:]
idx = json.load(open(f"{layout}/index.json"))
d = next(m for m in idx["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag)
m = json.load(open(f"{layout}/blobs/" + d["digest"].replace(":", "/")))
for l in m["layers"]:
    print(l["mediaType"], f"{layout}/blobs/" + l["digest"].replace(":", "/"))
EOF
while read -r media blob; do
    n=$((n + 1))
    dir=$out/$n
    rm -rf "$dir"
    mkdir -p "$dir"
    case $media in
    *zstd) decompress=(zstd -dc) ;;
    *gzip) decompress=(gzip -dc) ;;
    *) decompress=(cat) ;;
    esac
    "${decompress[@]}" "$blob" |
        tar -x -p --numeric-owner --xattrs --xattrs-include='*' -C "$dir" -f -
    python3 - "$dir" <<'EOF'
import os, sys
root = sys.argv[1]
for dirpath, dirnames, filenames in os.walk(root):
    for f in filenames:
        if f == ".wh..wh..opq":
            os.unlink(os.path.join(dirpath, f))
            os.setxattr(dirpath, "trusted.overlay.opaque", b"y", follow_symlinks=False)
        elif f.startswith(".wh."):
            os.unlink(os.path.join(dirpath, f))
            os.mknod(os.path.join(dirpath, f[4:]), 0o600 | 0o020000, os.makedev(0, 0))
EOF
    echo "$dir"
done
