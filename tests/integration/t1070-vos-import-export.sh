#!/bin/bash
# t1070-vos-import-export: vos import then vos export gives the tree back
# byte for byte: modes (setuid too), owners, times in ns, symlinks, hard
# links, user.* xattrs, FIFOs, empty and sparse files (still sparse).
# Without --keep-setid, export drops set-uid/set-gid bits (kept: sticky).
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 120
[ "$(id -u)" -eq 0 ] || { echo "# SKIP: needs root (owners)"; exit 77; }
src=$T_DIR/src
mkdir -p "$src/a/b/c" "$src/private" "$src/ünïcode dir"
head -c 1000000 /dev/urandom >"$src/random"
: >"$src/empty"
echo hi >"$src/a/b/c/deep"
chmod 4755 "$src/random"
chmod 0700 "$src/private"
mkdir "$src/shared" && chmod 3775 "$src/shared"
chmod 0640 "$src/a/b/c/deep"
chown 1234:5678 "$src/a/b/c/deep"
chown 42:43 "$src/private"
ln "$src/random" "$src/a/hard1"
ln "$src/random" "$src/ünïcode dir/hard2"
ln -s ../random "$src/a/rel"
ln -s /nonexistent/target "$src/dangling"
mkfifo -m 0620 "$src/fifo"
setfattr -n user.text -v hello "$src/random"
setfattr -n user.empty "$src/empty"
setfattr -n user.bin -v 0x00ff00ff "$src/a"
truncate -s $((64 << 20)) "$src/sparse"
printf tail | dd of="$src/sparse" bs=1 seek=$((40 << 20)) conv=notrunc 2>/dev/null
touch -h -d '2001-02-03 04:05:06.123456789' "$src/a/rel"
touch -d '1999-12-31 23:59:59.987654321' "$src/a/b/c/deep"
touch -a -d '2010-01-01 00:00:00.5' "$src/empty"
touch -d '2005-05-05 05:05:05.555555555' "$src/a/b" "$src"

# Snapshot the source before import reads it (reading moves atimes).
cat >"$T_DIR/snap.py" <<'PY'
import hashlib, json, os, stat, sys
root = sys.argv[1]
out = {}
paths = []
for d, dirs, files in os.walk(root):
    for n in dirs + files:
        paths.append(os.path.join(d, n))
paths.append(root)
st = {p: os.lstat(p) for p in paths}
inodes = {}
for p in paths:
    s = st[p]
    rel = os.path.relpath(p, root)
    e = {"mode": s.st_mode, "uid": s.st_uid, "gid": s.st_gid, "mtime": s.st_mtime_ns,
         "size": s.st_size if not stat.S_ISDIR(s.st_mode) else 0, "nlink": s.st_nlink if not stat.S_ISDIR(s.st_mode) else 0}
    if not stat.S_ISLNK(s.st_mode) and not stat.S_ISDIR(s.st_mode):
        e["atime"] = s.st_atime_ns
    if stat.S_ISLNK(s.st_mode):
        e["target"] = os.readlink(p)
    if not stat.S_ISLNK(s.st_mode):
        e["xattrs"] = {n: os.getxattr(p, n).hex() for n in sorted(os.listxattr(p)) if n.startswith("user.")}
    inodes.setdefault(s.st_ino, []).append(rel)
    out[rel] = e
for p in paths:
    s = st[p]
    if stat.S_ISREG(s.st_mode):
        out[os.path.relpath(p, root)]["sha"] = hashlib.sha256(open(p, "rb").read()).hexdigest()
        # Reading moved the atime (relatime): put it back for whoever
        # looks at this tree next.
        os.utime(p, ns=(s.st_atime_ns, s.st_mtime_ns))
out["#links"] = sorted(sorted(v) for v in inodes.values() if len(v) > 1)
json.dump(out, open(sys.argv[2], "w"), indent=1, sort_keys=True)
PY
python3 "$T_DIR/snap.py" "$src" "$T_DIR/src.json"
vold_start || exit 99
t_check "vos import" "$VOS_BIN" --root "$SRV_ROOT" import tree "$src"
t_is "$(vos import tree "$src" >/dev/null 2>&1; echo $?)" 73 "import over an existing volume: 73"
t_is "$(vos list | awk '$1 == "tree" { print $1 }')" tree "vos list shows it"
t_is "$(vos examine tree --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["name"], d["files"])')" "tree 14" "vos examine --json: 14 objects (3 names of one file)"
t_check "vos export --keep-setid" "$VOS_BIN" --root "$SRV_ROOT" export tree "$T_DIR/out" --keep-setid
python3 "$T_DIR/snap.py" "$T_DIR/out" "$T_DIR/out.json"
t_check "metadata, contents, links and xattrs identical" diff "$T_DIR/src.json" "$T_DIR/out.json"
t_ok "$([ "$(stat -c %b "$T_DIR/out/sparse")" -lt 1024 ] && echo 0 || echo 1)" "the sparse file stays sparse ($(stat -c %b "$T_DIR/out/sparse") blocks)"
vdir=$SRV_ROOT/volumes/tree/data
t_ok "$([ "$(du -sk "$vdir" | cut -f1)" -lt 4096 ] && echo 0 || echo 1)" "and sparse on the server ($(du -sk "$vdir" | cut -f1) KiB for 65 MiB)"
t_is "$(vos export tree "$T_DIR/out" >/dev/null 2>&1; echo $?)" 74 "export into a non-empty directory fails"
t_check "vos export (default)" sh -c "'$VOS_BIN' --root '$SRV_ROOT' export tree '$T_DIR/plain' 2>'$T_DIR/plain.err'"
t_is "$(stat -c %a "$T_DIR/plain/random")" 755 "default export drops the set-uid bit (4755 -> 755)"
t_is "$(stat -c %a "$T_DIR/plain/shared")" 1775 "and set-gid on a directory, keeping sticky (3775 -> 1775)"
t_is "$(stat -c %u:%a "$T_DIR/plain/a/b/c/deep")" 1234:640 "owners and other bits stay"
t_is "$(grep -c 'dropped the set-user-id/set-group-id bits of 2 objects' "$T_DIR/plain.err")" 1 "and says how many objects lost them"
t_is "$(vos export nosuch "$T_DIR/out2" >/dev/null 2>&1; echo $?)" 66 "export of a missing volume: 66"
# An existing destination another user controls (or a symlink) is refused
# before anything is written: swapping a directory for a symlink there
# would send root's writes anywhere.
mkdir -m 0777 "$T_DIR/theirs" && chown 65534:65534 "$T_DIR/theirs" && chmod 0777 "$T_DIR/theirs"
t_is "$(vos export tree "$T_DIR/theirs" 2>"$T_DIR/theirs.err" >/dev/null; echo $?)" 77 \
	"export into an empty 0777 directory owned by uid 65534: refused (77)"
t_check "the message names the owner and the fix" grep -q "owned by uid 65534 with mode 0777.*chmod go-w" "$T_DIR/theirs.err"
t_is "$(ls -A "$T_DIR/theirs" | wc -l)" 0 "and nothing is written there"
mkdir -m 0777 "$T_DIR/wide" && chmod 0777 "$T_DIR/wide"
t_is "$(vos export tree "$T_DIR/wide" >/dev/null 2>&1; echo $?)" 77 "one of root's but writable by all: refused too"
mkdir -m 0700 "$T_DIR/real" && ln -s "$T_DIR/real" "$T_DIR/link"
t_is "$(vos export tree "$T_DIR/link" 2>"$T_DIR/link.err" >/dev/null; echo $?)" 77 "export into a symlink to a directory: refused (77)"
t_check "saying it is a symbolic link" grep -q "it is a symbolic link" "$T_DIR/link.err"
t_is "$(ls -A "$T_DIR/real" | wc -l)" 0 "and nothing is written through it"
mkdir -m 0755 "$T_DIR/mine"
t_check "export into an existing empty 0755 directory of root's" "$VOS_BIN" --root "$SRV_ROOT" export tree "$T_DIR/mine" --keep-setid
python3 "$T_DIR/snap.py" "$T_DIR/mine" "$T_DIR/mine.json"
t_check "identical to the source as well" diff "$T_DIR/src.json" "$T_DIR/mine.json"
mkdir "$src/bad"; : >"$src/bad/$(printf 'x\xff')"
t_is "$(vos import bad "$src/bad" >/dev/null 2>&1; echo $?)" 65 "a name that is not UTF-8: import fails (65)"
t_is "$(vos list | awk '$1 == "bad"' | wc -l)" 0 "and leaves no volume behind"
t_is "$(vos remove tree >/dev/null 2>&1; echo $?)" 75 "remove of a non-empty volume needs --force"
t_check "vos remove --force" "$VOS_BIN" --root "$SRV_ROOT" remove tree --force
t_is "$(vos list | awk '$1 == "tree"' | wc -l)" 0 "removed"
t_done
