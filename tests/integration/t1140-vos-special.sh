#!/bin/bash
# t1140-vos-special: vos import and export keep sockets, character and
# block devices (issue #16): type, mode, owner, times, hard links and
# device numbers survive import, export as root, and a second round trip.
# Run without CAP_MKNOD (root with the capability dropped), export makes
# sockets and FIFOs, leaves device nodes out, names each, and exits 77.
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 120
[ "$(id -u)" -eq 0 ] || { echo "# SKIP: needs root (device nodes)"; exit 77; }
command -v setpriv >/dev/null || { echo "# SKIP: no setpriv"; exit 77; }
src=$T_DIR/src
mkdir -p "$src/dev" "$src/run"
python3 -c "import os,stat; os.mknod('$src/run/agent.sock', stat.S_IFSOCK | 0o600)"
mknod -m 0666 "$src/dev/null" c 1 3
mknod -m 0660 "$src/dev/sda1" b 8 1
mknod -m 0600 "$src/dev/big" b 4095 1048575
mkfifo -m 0620 "$src/run/fifo"
ln "$src/dev/null" "$src/dev/null-link"
chown 1000:100 "$src/run/agent.sock"
chown 0:6 "$src/dev/sda1"
echo data >"$src/file"
touch -h -d '2001-02-03 04:05:06.123456789' "$src/dev/sda1" "$src/run/agent.sock"

cat >"$T_DIR/snap.py" <<'PY'
import json, os, stat, sys
root = sys.argv[1]
out, inodes = {}, {}
for d, dirs, files in os.walk(root):
    for n in sorted(dirs + files):
        p = os.path.join(d, n)
        s = os.lstat(p)
        rel = os.path.relpath(p, root)
        e = {"mode": "%o" % s.st_mode, "uid": s.st_uid, "gid": s.st_gid}
        if not stat.S_ISDIR(s.st_mode):
            e["mtime"] = s.st_mtime_ns
            e["nlink"] = s.st_nlink
            inodes.setdefault(s.st_ino, []).append(rel)
        if stat.S_ISCHR(s.st_mode) or stat.S_ISBLK(s.st_mode):
            e["dev"] = "%d:%d" % (os.major(s.st_rdev), os.minor(s.st_rdev))
        out[rel] = e
out["#links"] = sorted(sorted(v) for v in inodes.values() if len(v) > 1)
json.dump(out, open(sys.argv[2], "w"), indent=1, sort_keys=True)
PY
python3 "$T_DIR/snap.py" "$src" "$T_DIR/src.json"
vold_start || exit 99
vos import spec "$src" >"$T_DIR/import.log" 2>&1
t_is "$?" 0 "vos import of a tree with sockets and devices"
t_is "$(grep -c skipping "$T_DIR/import.log")" 0 "nothing skipped"
t_check "vos export as root" "$VOS_BIN" --root "$SRV_ROOT" export spec "$T_DIR/out"
python3 "$T_DIR/snap.py" "$T_DIR/out" "$T_DIR/out.json"
t_check "types, modes, owners, times, links and device numbers identical" diff "$T_DIR/src.json" "$T_DIR/out.json"
t_is "$(stat -c '%F %t:%T' "$T_DIR/out/dev/big")" "block special file fff:fffff" "the largest device number"

# A second round trip from the export.
vos import spec2 "$T_DIR/out" >"$T_DIR/import2.log" 2>&1
t_is "$?" 0 "vos import of the exported tree"
t_check "vos export of it" "$VOS_BIN" --root "$SRV_ROOT" export spec2 "$T_DIR/out2"
python3 "$T_DIR/snap.py" "$T_DIR/out2" "$T_DIR/out2.json"
t_check "the second round trip is identical too" diff "$T_DIR/src.json" "$T_DIR/out2.json"

# Without CAP_MKNOD (what a non-root admin has).
setpriv --inh-caps=-mknod --bounding-set=-mknod -- "$VOS_BIN" --root "$SRV_ROOT" export spec "$T_DIR/out3" \
	>"$T_DIR/nocap.out" 2>"$T_DIR/nocap.err"
t_is "$?" 77 "without CAP_MKNOD: export exits 77"
t_is "$(grep -c "skipping device node" "$T_DIR/nocap.err")" 4 \
	"each device node is named (null, null-link, sda1, big)"
t_is "$(grep -c "left out 4 device nodes" "$T_DIR/nocap.err")" 1 "and counted at the end"
t_is "$(cd "$T_DIR/out3" && find . -printf '%y %p\n' | sort | tr '\n' ' ')" \
	"d . d ./dev d ./run f ./file p ./run/fifo s ./run/agent.sock " \
	"without CAP_MKNOD: the rest of the tree is there, socket and FIFO included"
t_is "$(stat -c '%a %u:%g' "$T_DIR/out3/run/agent.sock")" "600 1000:100" "the socket keeps mode and owner"
t_done
