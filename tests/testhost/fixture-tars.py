#!/usr/bin/python3
"""Writes hand-made layer archives (uncompressed tar) for cleat's fixture images.

    fixture-tars.py layers OUTDIR        layer1.tar .. layer4.tar of the `layers` image
    fixture-tars.py marker OUT.tar PATH TEXT
                                         one file PATH (parents included) holding TEXT
    fixture-tars.py random OUT.tar PATH SIZE SEED
                                         one file of SIZE incompressible bytes
    fixture-tars.py pick OUTDIR BUDGET SRC...
                                         OUTDIR/listN: regular files (under 20 MB) of SRC
                                         number N, up to BUDGET bytes, none listed twice,
                                         each after its parent directories

Everything is deterministic (fixed mtimes, seeded data), so that rebuilding a fixture gives the
same digests. Whiteouts follow the OCI image spec: `.wh.NAME` deletes NAME from the layers
below, `DIR/.wh..wh..opq` hides everything DIR held below.
"""

import io
import os
import random
import stat
import sys
import tarfile

MTIME = 1_700_000_000


class Layer:
    def __init__(self, path):
        self.tar = tarfile.open(path, "w", format=tarfile.PAX_FORMAT)

    def _info(self, name, kind, mode, uid=0, gid=0):
        ti = tarfile.TarInfo(name)
        ti.type = kind
        ti.mode = mode
        ti.uid, ti.gid = uid, gid
        ti.uname = ti.gname = ""
        ti.mtime = MTIME
        return ti

    def dir(self, name, mode=0o755, uid=0, gid=0):
        self.tar.addfile(self._info(name, tarfile.DIRTYPE, mode, uid, gid))

    def file(self, name, data, mode=0o644, uid=0, gid=0, xattrs=None):
        if isinstance(data, str):
            data = data.encode()
        ti = self._info(name, tarfile.REGTYPE, mode, uid, gid)
        ti.size = len(data)
        if xattrs:
            ti.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in xattrs.items()}
        self.tar.addfile(ti, io.BytesIO(data))

    def symlink(self, name, target):
        ti = self._info(name, tarfile.SYMTYPE, 0o777)
        ti.linkname = target
        self.tar.addfile(ti)

    def hardlink(self, name, target):
        ti = self._info(name, tarfile.LNKTYPE, 0o644)
        ti.linkname = target
        self.tar.addfile(ti)

    def whiteout(self, path):
        parent, base = os.path.split(path)
        self.file(os.path.join(parent, ".wh." + base), b"", mode=0o600)

    def opaque(self, dirpath):
        self.file(os.path.join(dirpath, ".wh..wh..opq"), b"", mode=0o600)

    def close(self):
        self.tar.close()


def layers(out):
    os.makedirs(out, exist_ok=True)

    # Layer 1: the base.
    l = Layer(os.path.join(out, "layer1.tar"))
    l.dir("etc")
    l.file("etc/hostname", "layers\n")
    l.file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n")
    l.file("etc/group", "root:x:0:\nstaff:x:50:\nuser:x:1000:\n")
    l.dir("tmp", 0o1777)
    l.file("empty", b"")
    l.file("modified", "version 1\n")
    # A file deleted by layer 2, and a directory (with content) deleted by layer 2 whose path
    # layer 3 reuses for a file.
    l.dir("dir")
    l.file("dir/deleted-file", "deleted in layer 2\n")
    l.file("dir/kept", "kept\n")
    l.dir("gone")
    l.file("gone/inner", "the directory goes in layer 2\n")
    # Made opaque by layer 2.
    l.dir("opaque")
    l.file("opaque/old1", "hidden by the opaque directory\n")
    l.dir("opaque/sub")
    l.file("opaque/sub/old2", "hidden too\n")
    # Deleted by layer 2, recreated by layer 3 with other content.
    l.dir("recreated", 0o700)
    l.file("recreated/old", "from layer 1\n")
    # Changed to mode 0700, owner 1000:1000 by layer 2 (a directory entry alone).
    l.dir("chmodded")
    l.file("chmodded/inside", "inside\n")
    # Replaced by a directory in layer 3, without a whiteout.
    l.file("typechange", "a file in layer 1\n")
    # Special modes and owners.
    l.dir("bin")
    l.file("bin/suid", "#!/bin/sh\necho setuid\n", mode=0o4755)
    l.file("bin/sgid", "#!/bin/sh\necho setgid\n", mode=0o2755, gid=50)
    l.dir("home")
    l.dir("home/user", 0o750, 1000, 1000)
    l.file("home/user/file", "owned by user\n", 0o640, 1000, 1000)
    l.file("odd-owner", "no passwd entry for these ids\n", 0o600, 12345, 54321)
    l.file("xattr-file", "has a user xattr\n", xattrs={"user.fixture": "hello xattr"})
    # Hard links, in one directory and across directories, and symlinks of every kind.
    l.dir("links")
    l.file("links/a", "shared content\n")
    l.hardlink("links/b", "links/a")
    l.dir("links/sub")
    l.hardlink("links/sub/c", "links/a")
    l.symlink("links/rel-file", "a")
    l.symlink("links/rel-dir", "../etc")
    l.symlink("links/abs-file", "/etc/hostname")
    l.symlink("links/abs-dir", "/etc")
    l.symlink("links/dangling", "/nonexistent/target")
    # Names that need PAX headers.
    l.dir("names")
    l.file("names/with space", "space\n")
    l.file("names/\u00fcn\u00efc\u00f8d\u00e9", "unicode\n")
    deep = "deep/" + "d" * 60 + "/" + "e" * 60
    l.dir("deep")
    l.dir("deep/" + "d" * 60)
    l.dir(deep)
    l.file(deep + "/" + "f" * 90, "a path longer than 100 bytes\n")
    l.close()

    # Layer 2: deletions, an opaque directory, changes of content and metadata.
    l = Layer(os.path.join(out, "layer2.tar"))
    l.whiteout("dir/deleted-file")
    l.whiteout("gone")
    l.whiteout("recreated")
    l.dir("opaque")
    l.opaque("opaque")
    l.file("opaque/new", "the only entry left in opaque\n")
    l.file("modified", "version 2, longer than version 1\n", mode=0o755)
    l.dir("chmodded", 0o700, 1000, 1000)
    l.dir("links2")
    l.file("links2/x", "hard linked in layer 2\n", mode=0o600, uid=1000, gid=1000)
    l.hardlink("links2/y", "links2/x")
    l.close()

    # Layer 3: recreations and a type change.
    l = Layer(os.path.join(out, "layer3.tar"))
    l.dir("recreated", 0o755, 1000, 50)
    l.file("recreated/new", "recreated in layer 3\n")
    l.file("gone", "now a file\n")
    l.dir("typechange")
    l.file("typechange/inner", "a directory in layer 3\n")
    l.dir("etc")
    l.file("etc/fixture", "layers\n")
    l.close()

    # Layer 4: empty, as `RUN true` leaves.
    Layer(os.path.join(out, "layer4.tar")).close()


def parents(l, path):
    parts = path.strip("/").split("/")[:-1]
    for i in range(len(parts)):
        l.dir("/".join(parts[: i + 1]))


def marker(out, path, text):
    l = Layer(out)
    parents(l, path)
    l.file(path.strip("/"), text)
    l.close()


def random_file(out, path, size, seed):
    rng = random.Random(int(seed))
    data = rng.randbytes(int(size))
    l = Layer(out)
    parents(l, path)
    l.file(path.strip("/"), data)
    l.close()


def pick(out, budget, srcs):
    taken = set()
    for n, src in enumerate(srcs, 1):
        total, files, full, seen = 0, [], False, set()
        for dirpath, dirnames, filenames in os.walk(src):
            dirnames.sort()
            for f in sorted(filenames):
                p = os.path.join(dirpath, f)
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                if p in taken or not stat.S_ISREG(st.st_mode) or st.st_size >= 20 << 20:
                    continue
                if not os.access(p, os.R_OK):
                    continue
                if total + st.st_size > budget:
                    full = True
                    break
                total += st.st_size
                taken.add(p)
                # Parent directories first, once per layer.
                parent = os.path.dirname(p)
                missing = []
                while parent != "/" and parent not in seen:
                    seen.add(parent)
                    missing.append(parent[1:])
                    parent = os.path.dirname(parent)
                files.extend(reversed(missing))
                files.append(p[1:])
            if full:
                break
        with open(os.path.join(out, f"list{n}"), "w") as fh:
            fh.write("".join(f + "\n" for f in files))


def main(argv):
    if len(argv) >= 2 and argv[1] == "layers":
        layers(argv[2])
    elif len(argv) == 5 and argv[1] == "marker":
        marker(argv[2], argv[3], argv[4])
    elif len(argv) >= 5 and argv[1] == "pick":
        pick(argv[2], int(argv[3]), argv[4:])
    elif len(argv) == 6 and argv[1] == "random":
        random_file(argv[2], argv[3], argv[4], argv[5])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
