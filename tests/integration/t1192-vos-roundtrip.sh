#!/bin/bash
# t1192-vos-roundtrip: vos import, export, import of the export and export
# again keep everything a tree holds (issue #17; man vos): contents,
# modes (setuid, setgid, sticky, 0000), owners, mtimes to the nanosecond
# (files, directories, symlinks), user.* xattrs (also on directories,
# empty and binary values), symlinks (dangling, absolute, long), hard
# links (within a directory and across directories, three names), FIFOs,
# holes (a sparse file stays sparse), files of 0 bytes, of exactly
# 16 KiB (the inline limit) and 16 KiB + 1, of one and several chunks,
# and a directory of 3,000 entries. Each export is compared entry by
# entry with the source; the second volume with the first (vos examine).
. "$top_srcdir/tests/integration/lib.sh"
# owners (chown 1234:5678), a mode 0000 file vos must read
[ "$(id -u)" -eq 0 ] || { echo "# SKIP: needs root (owners)"; exit 77; }
t_timeout 300
src=$T_DIR/src
python3 - "$src" <<'PY'
import os, sys
root = sys.argv[1]
os.makedirs(root)
def put(p, data, mode=0o644):
    fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o600)
    os.write(fd, data)
    os.close(fd)
    os.chmod(p, mode)
pat = bytes(range(251)) * 1200  # 301,200 bytes, not chunk aligned
d = os.path.join(root, "a")
os.makedirs(os.path.join(d, "deep", "er"))
put(os.path.join(root, "empty"), b"")
put(os.path.join(root, "inline-max"), pat[:16384])
put(os.path.join(root, "inline-max1"), pat[:16385])
put(os.path.join(root, "one-chunk"), pat[:200000])
put(os.path.join(root, "two-chunks"), pat)
put(os.path.join(root, "trailing-zeros"), b"x" * 100 + b"\0" * 5000)
put(os.path.join(root, "setuid"), b"#!/bin/sh\n", 0o4755)
put(os.path.join(root, "setgid"), b"g", 0o2750)
put(os.path.join(root, "nothing"), b"n", 0o000)
os.chmod(d, 0o1777)  # sticky
os.chown(os.path.join(root, "setgid"), 1234, 5678)
# sparse: a byte at 1 MiB and one at 3 MiB + 7
fd = os.open(os.path.join(root, "sparse"), os.O_CREAT | os.O_WRONLY, 0o640)
os.pwrite(fd, b"A", 1 << 20)
os.pwrite(fd, b"B", (3 << 20) + 7)
os.close(fd)
# xattrs
os.setxattr(os.path.join(root, "one-chunk"), "user.k", b"v1")
os.setxattr(os.path.join(root, "one-chunk"), "user.empty", b"")
os.setxattr(os.path.join(root, "empty"), "user.bin", bytes(range(256)))
os.setxattr(d, "user.dir", b"on a directory")
# symlinks
os.symlink("../two-chunks", os.path.join(d, "rel"))
os.symlink("/nonexistent/dangling", os.path.join(root, "dangling"))
os.symlink("x" * 1000, os.path.join(root, "long"))
# hard links: three names, two directories
put(os.path.join(d, "h1"), b"linked " * 1000, 0o600)
os.link(os.path.join(d, "h1"), os.path.join(d, "h2"))
os.link(os.path.join(d, "h1"), os.path.join(d, "deep", "er", "h3"))
os.link(os.path.join(root, "inline-max"), os.path.join(d, "inline-link"))
os.mkfifo(os.path.join(root, "fifo"), 0o620)
big = os.path.join(root, "big")
os.mkdir(big)
for i in range(3000):
    put(os.path.join(big, "e%05d" % i), b"%d" % i if i % 3 else b"")
# times to the nanosecond, set last (children before parents)
t = 1500000000_123456789
for dp, dns, fns in os.walk(root, topdown=False):
    for n in fns + dns:
        p = os.path.join(dp, n)
        t += 1_000_000_007
        os.utime(p, ns=(t, t), follow_symlinks=False)
os.utime(root, ns=(t, t + 5))
PY
[ -d "$src/big" ] || { echo "# the tree was not made"; exit 99; }

listing() { # DIR: every entry's type, mode, owner, size, mtime, xattrs,
	# target, content hash and hard-link group, by path
	python3 - "$1" <<'PY'
import hashlib, os, stat, sys
root = sys.argv[1]
groups = {}
out = []
for dp, dns, fns in os.walk(root):
    for n in sorted(dns + fns) + ([""] if dp == root else []):
        p = os.path.join(dp, n) if n else dp
        s = os.lstat(p)
        rel = os.path.relpath(p, root)
        line = [rel, "%o" % s.st_mode, str(s.st_uid), str(s.st_gid), str(s.st_mtime_ns)]
        if stat.S_ISREG(s.st_mode):
            with open(p, "rb") as f:
                data = f.read()
            line += [str(s.st_size), hashlib.sha256(data).hexdigest()[:16],
                     "blocks<=%d" % (1 if s.st_blocks * 512 <= 65536 else 9)]
            if s.st_nlink > 1:
                groups.setdefault(s.st_ino, []).append(rel)
        elif stat.S_ISLNK(s.st_mode):
            line.append("-> " + os.readlink(p))
        if not stat.S_ISLNK(s.st_mode):
            for k in sorted(os.listxattr(p, follow_symlinks=False)):
                if k.startswith("user."):
                    line.append("%s=%s" % (k, os.getxattr(p, k).hex()))
        out.append(" ".join(line))
for g in groups.values():
    out.append("links: " + " ".join(sorted(g)))
print("\n".join(sorted(out)))
PY
}
# atimes, by stat only (no reads), of the regular files; the source out
# of the page cache, so that vos reads ahead of its walk (man vos): the
# reading ahead must not change an atime before the walk records it (the
# times set above are years old: any read would, relatime or not), so the
# export has the source's atimes from before the import (vos's own reads
# after the walk's stat do change the source's, as cp -a's do).
atimes() {
	python3 - "$1" <<'PY'
import os, stat, sys
root = sys.argv[1]
for d, _, fs in sorted(os.walk(root)):
    for f in sorted(fs):
        p = os.path.join(d, f)
        s = os.lstat(p)
        if stat.S_ISREG(s.st_mode):
            print(os.path.relpath(p, root), s.st_atime_ns)
PY
}
# Out of the page cache: written back first (DONTNEED drops clean pages
# only: dirty ones would stay cached and vos would never read ahead),
# then dropped, then checked with mincore(2) (which reads nothing).
# Prints the non-empty files still cached and the non-empty files.
read -r cached nreg <<<"$(t_evict "$src")"
t_ok "$([ -n "$nreg" ] && [ "$nreg" -gt 2000 ] && [ "$cached" = 0 ] && echo 0 || echo 1)" \
	"the source is out of the page cache ($cached of $nreg non-empty files cached)"
atimes "$src" >"$T_DIR/src.at"

vos init >/dev/null || exit 99
CAIRN_VOS_DEBUG=1 "$VOS_BIN" --root "$SRV_ROOT" import v1 "$src" >"$T_DIR/imp.out" 2>"$T_DIR/imp.err"
t_ok $? "vos import (source out of the page cache)"
n=$(sed -n 's/^vos: debug: read ahead \([0-9]*\) files$/\1/p' "$T_DIR/imp.err")
t_ok "$([ -n "$n" ] && [ "$n" -gt 0 ] && echo 0 || echo 1)" "vos read ahead of its walk (${n:-no} files asked for)"
listing "$src" >"$T_DIR/src.ls"
t_ok "$(grep -c . "$T_DIR/src.ls" | awk '{print ($1 > 3000) ? 0 : 1}')" "the source listing ($(wc -l <"$T_DIR/src.ls") lines)"
grep -q "^links: a/deep/er/h3 a/h1 a/h2$" "$T_DIR/src.ls"
t_ok $? "the listing sees the hard links"

"$VOS_BIN" --root "$SRV_ROOT" export v1 "$T_DIR/out0" >/dev/null 2>"$T_DIR/noset.err"
t_ok $? "vos export without --keep-setid"
t_is "$(stat -c %a "$T_DIR/out0/setuid")" 755 "drops the set-user-id bit"
grep -q "dropped the set-user-id/set-group-id bits" "$T_DIR/noset.err"
t_ok $? "and says so"
t_check "vos export --keep-setid" "$VOS_BIN" --root "$SRV_ROOT" export --keep-setid v1 "$T_DIR/out1"
atimes "$T_DIR/out1" >"$T_DIR/out1.at"
t_check "atimes kept (nanoseconds)" diff "$T_DIR/src.at" "$T_DIR/out1.at"
listing "$T_DIR/out1" >"$T_DIR/out1.ls"
t_check "the export is the source: contents, modes, owners, mtimes, xattrs, links" \
	diff "$T_DIR/src.ls" "$T_DIR/out1.ls"
t_check "vos import of the export (--jobs 0)" "$VOS_BIN" --root "$SRV_ROOT" import --jobs 0 v2 "$T_DIR/out1"
t_check "vos export of that (--jobs 2)" "$VOS_BIN" --root "$SRV_ROOT" export --keep-setid --jobs 2 v2 "$T_DIR/out2"
listing "$T_DIR/out2" >"$T_DIR/out2.ls"
t_check "the second round trip is the source too" diff "$T_DIR/src.ls" "$T_DIR/out2.ls"
ex() { vos examine "$1" --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["files"], d["bytes"], d["format"])'; }
t_is "$(ex v2)" "$(ex v1)" "both volumes have the same objects and bytes"
t_is "$(stat -c %b "$T_DIR/out2/sparse")" "$(stat -c %b "$src/sparse")" "the sparse file stays sparse"
t_ok "$([ "$(stat -c %h "$T_DIR/out2/a/h1")" = 3 ] && echo 0 || echo 1)" "three names of one inode"
t_done
