#!/bin/bash
# t1170-vos-parallel: vos import and export with worker threads (--jobs):
# a tree of many directories and files (sizes 0-600 KiB, several chunks,
# sparse, empty), modes, owners, times in ns, symlinks, FIFOs, sockets,
# hard links across directories and user.* xattrs comes back identical
# (diff -r and a stat comparison) with 4 or 8 workers and with none, and
# the volumes made with and without workers export the same. A failure
# half-way (ENOSPC on a small tmpfs) is a clear error naming the path:
# import leaves no volume, export says so and exits 74. kill -9 of vos
# import leaves only the hidden staged volume.
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 600
[ "$(id -u)" -eq 0 ] || { echo "# SKIP: needs root (owners, tmpfs)"; exit 77; }
src=$T_DIR/src
python3 - "$src" <<'PY'
import os, random, socket, sys
root = sys.argv[1]
rnd = random.Random(1170)
os.makedirs(root)
names = []
for d in range(40):
    dp = os.path.join(root, "g%d" % (d % 4), "d%02d" % d)
    os.makedirs(dp, exist_ok=True)
    for f in range(60):
        p = os.path.join(dp, "f%03d" % f)
        size = rnd.choice([0, 1, 100, 4096, 70000, 262144, 262145, 600000])
        with open(p, "wb") as fh:
            fh.write(rnd.randbytes(size))
        os.chmod(p, rnd.choice([0o644, 0o600, 0o755, 0o4755, 0o444]))
        os.chown(p, rnd.randrange(0, 3000), rnd.randrange(0, 3000))
        t = rnd.randrange(10**9, 2 * 10**9) * 10**9 + rnd.randrange(10**9)
        os.utime(p, ns=(t, t + 17))
        if f % 17 == 0:
            os.setxattr(p, "user.n", b"v%d" % f)
        names.append(p)
    os.symlink("f001", os.path.join(dp, "sym"))
    os.mkfifo(os.path.join(dp, "fifo"), 0o640)
    s = socket.socket(socket.AF_UNIX)
    s.bind(os.path.join(dp, "sock"))
    s.close()
    os.chmod(dp, rnd.choice([0o755, 0o700, 0o1777, 0o2755]))
# hard links across directories
for i in range(30):
    a = names[rnd.randrange(len(names))]
    b = os.path.join(root, "g%d" % (i % 4), "link%02d" % i)
    if not os.path.exists(b):
        os.link(a, b)
with open(os.path.join(root, "sparse"), "wb") as fh:
    fh.truncate(5 << 20)
    fh.seek(3 << 20)
    fh.write(b"tail")
PY
[ -d "$src/g3" ] || { echo "# the tree was not made"; exit 99; }

cat >"$T_DIR/snap.py" <<'PY'
import hashlib, json, os, stat, sys
root = sys.argv[1]
out, inodes, paths = {}, {}, [root]
for d, dirs, files in os.walk(root):
    for n in dirs + files:
        paths.append(os.path.join(d, n))
st = {p: os.lstat(p) for p in paths}
for p in paths:
    s = st[p]
    rel = os.path.relpath(p, root)
    isdir = stat.S_ISDIR(s.st_mode)
    e = {"mode": s.st_mode, "uid": s.st_uid, "gid": s.st_gid, "mtime": s.st_mtime_ns,
         "size": 0 if isdir else s.st_size, "nlink": 0 if isdir else s.st_nlink}
    if stat.S_ISLNK(s.st_mode):
        e["target"] = os.readlink(p)
    else:
        e["xattrs"] = {n: os.getxattr(p, n).hex() for n in sorted(os.listxattr(p)) if n.startswith("user.")}
    if stat.S_ISREG(s.st_mode):
        e["sha"] = hashlib.sha256(open(p, "rb").read()).hexdigest()
    if not isdir:
        inodes.setdefault(s.st_ino, []).append(rel)
    out[rel] = e
out["#links"] = sorted(sorted(v) for v in inodes.values() if len(v) > 1)
json.dump(out, open(sys.argv[2], "w"), indent=1, sort_keys=True)
PY
python3 "$T_DIR/snap.py" "$src" "$T_DIR/src.json"
nobj=$(find "$src" | wc -l)
vos init >/dev/null

t_check "vos import --jobs 4" "$VOS_BIN" --root "$SRV_ROOT" import --jobs 4 p4 "$src"
t_check "vos import --jobs 0 (no workers)" "$VOS_BIN" --root "$SRV_ROOT" import --jobs 0 p0 "$src"
t_is "$(vos examine p4 --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["files"], d["bytes"])')" \
	"$(vos examine p0 --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["files"], d["bytes"])')" \
	"both volumes count the same objects and bytes"
t_is "$(find "$SRV_ROOT/volumes/p4/data" -type f | wc -l)" "$(find "$SRV_ROOT/volumes/p0/data" -type f | wc -l)" \
	"and hold as many chunk objects"
t_check "vos export --jobs 4 --keep-setid" "$VOS_BIN" --root "$SRV_ROOT" export --jobs 4 --keep-setid p4 "$T_DIR/out4"
python3 "$T_DIR/snap.py" "$T_DIR/out4" "$T_DIR/out4.json"
t_check "modes, owners, mtimes, contents, links, xattrs identical (4 workers)" diff "$T_DIR/src.json" "$T_DIR/out4.json"
t_check "diff -r of the trees (but sockets and FIFOs)" diff -r --no-dereference -x sock -x fifo "$src" "$T_DIR/out4"
t_is "$(stat -c %F "$T_DIR/out4/g1/d01/sock" "$T_DIR/out4/g1/d01/fifo" | tr '\n' ,)" "socket,fifo," "sockets and FIFOs come back as such"
t_ok "$([ "$(stat -c %b "$T_DIR/out4/sparse")" -lt 1024 ] && echo 0 || echo 1)" "the sparse file stays sparse"
t_check "vos export --jobs 8 of the volume made without workers" "$VOS_BIN" --root "$SRV_ROOT" export --jobs 8 --keep-setid p0 "$T_DIR/out0"
python3 "$T_DIR/snap.py" "$T_DIR/out0" "$T_DIR/out0.json"
t_check "identical too" diff "$T_DIR/src.json" "$T_DIR/out0.json"
t_check "vos export --jobs 0" "$VOS_BIN" --root "$SRV_ROOT" export --jobs 0 --keep-setid p4 "$T_DIR/outs"
python3 "$T_DIR/snap.py" "$T_DIR/outs" "$T_DIR/outs.json"
t_check "and without workers" diff "$T_DIR/src.json" "$T_DIR/outs.json"
t_is "$(vos import --jobs 9 x "$src" 2>&1 >/dev/null; echo "rc=$?")" \
	"$(printf "vos: bad --jobs '9' (0 to 8): Invalid argument\nrc=65")" "--jobs 9 is refused (65)"
t_is "$(vos list | awk '$1 == "x"' | wc -l)" 0 "and makes nothing"

# ENOSPC half-way: a server root on a 4 MiB tmpfs, in a private mount
# namespace (the tree is ~30 MB).
mkdir -p "$T_DIR/small" "$T_DIR/smallout"
unshare -m sh -c "mount -t tmpfs -o size=4m tmpfs '$T_DIR/small' &&
	'$VOS_BIN' --root '$T_DIR/small' init >/dev/null &&
	'$VOS_BIN' --root '$T_DIR/small' import full '$src' >'$T_DIR/full.out' 2>'$T_DIR/full.err';
	echo \$? >'$T_DIR/full.rc'; ls -A '$T_DIR/small/volumes' >'$T_DIR/full.ls'"
t_is "$(cat "$T_DIR/full.rc")" 74 "import onto a full disk fails (74)"
# The data of a file (a worker) or the metadata (tdb) may be the first
# to find the disk full: tdb says EIO, having lost the errno.
t_check "with a clear error naming the file" grep -Eq "^vos: cannot import .*'$src/.*': (No space left on device|Input/output error)" "$T_DIR/full.err"
t_ok "$([ "$(grep -c 'No space left' "$T_DIR/full.err")" -le 1 ] && echo 0 || echo 1)" "once, not once a worker"
t_is "$(cat "$T_DIR/full.ls")" "" "and leaves no volume, staged or not"
unshare -m sh -c "mount -t tmpfs -o size=4m tmpfs '$T_DIR/smallout' &&
	'$VOS_BIN' --root '$SRV_ROOT' export p4 '$T_DIR/smallout/t' >'$T_DIR/efull.out' 2>'$T_DIR/efull.err';
	echo \$? >'$T_DIR/efull.rc'"
t_is "$(cat "$T_DIR/efull.rc")" 74 "export onto a full disk fails (74)"
t_check "naming the file it could not write" grep -q "^vos: cannot .*'g[0-9]/d[0-9]*/[a-z0-9]*': No space left on device" "$T_DIR/efull.err"

# kill -9 of vos import half-way: only the hidden staged volume is left.
python3 - "$T_DIR/many" <<'PY'
import os, sys
for d in range(20):
    p = os.path.join(sys.argv[1], "d%02d" % d)
    os.makedirs(p)
    for f in range(1000):
        with open(os.path.join(p, "f%04d" % f), "wb") as fh:
            fh.write(b"x" * (f % 7 * 100))
PY
"$VOS_BIN" --root "$SRV_ROOT" import killed "$T_DIR/many" >/dev/null 2>&1 &
vp=$!
wait_for 20 test -d "$SRV_ROOT/volumes/.staged-killed"
sleep 0.3
kill -9 "$vp" 2>/dev/null
wait "$vp" 2>/dev/null
t_ok "$([ -d "$SRV_ROOT/volumes/.staged-killed" ] && echo 0 || echo 1)" "kill -9 of vos import: the staged volume is left"
t_is "$(vos list | awk '$1 == "killed"' | wc -l)" 0 "and no visible volume"
t_is "$(ls "$SRV_ROOT/volumes" | grep -c killed)" 0 "nothing of it under a visible name"
t_is "$(vos import killed "$T_DIR/many" 2>&1 >/dev/null | grep -c 'remove --staged killed')" 1 "a new import names 'vos remove --staged'"
t_check "vos remove --staged" "$VOS_BIN" --root "$SRV_ROOT" remove --staged killed
t_check "then the import works" "$VOS_BIN" --root "$SRV_ROOT" import killed "$T_DIR/many"
t_is "$(vos examine killed --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["files"])')" 20021 "with every object"
t_done
