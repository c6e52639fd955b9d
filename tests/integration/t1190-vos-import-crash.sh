#!/bin/bash
# t1190-vos-import-crash: kill -9 of vos import at random points (issue
# #17; doc/vol-format.md, "What survives what"). An import writes a hidden
# staged volume without transactions (small files inline in meta.tdb, the
# rest as chunk objects, --jobs workers) and publishes it with one rename
# after its syncfs, so a kill anywhere leaves either the whole volume
# (the kill came after the rename) or only volumes/.staged-NAME: no
# visible volume, cairn-vold keeps serving the others, a new import of
# that name is refused (exit 73, EX_CANTCREAT) with a message naming
# 'vos remove --staged NAME', which removes it, and the import then run
# again gives back the tree. kill -9 of vos export leaves a .snap-*
# directory that the next export of the volume removes. SEED replays.
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 600
SEED=${SEED:-$RANDOM}
echo "# seed $SEED"
RANDOM=$SEED
src=$T_DIR/src
python3 - "$src" <<'PY'
import os, random, sys
root = sys.argv[1]
rnd = random.Random(1190)
buf = bytes(rnd.randrange(256) for _ in range(1 << 16)) * 5
for d in range(30):
    dp = os.path.join(root, "d%02d" % d)
    os.makedirs(dp)
    for f in range(300):
        size = int(65536 * rnd.random() ** 8)
        if f % 97 == 0:
            size = 300000  # two chunks
        p = os.path.join(dp, "f%03d" % f)
        with open(p, "wb") as fh:
            fh.write(buf[f:f + size])
        if f % 50 == 0:
            os.setxattr(p, "user.k", b"v%d" % f)
    os.symlink("f001", os.path.join(dp, "sym"))
PY
[ -d "$src/d29" ] || { echo "# the tree was not made"; exit 99; }
nobj=$(find "$src" | wc -l)
listing() { # DIR: path, type, size, mode, mtime of every entry
	python3 - "$1" <<'PY'
import os, sys
root = sys.argv[1]
for d, dirs, files in sorted(os.walk(root)):
    for n in sorted(dirs + files):
        p = os.path.join(d, n)
        s = os.lstat(p)
        print(os.path.relpath(p, root), s.st_mode, s.st_size if not os.path.isdir(p) else 0, s.st_mtime_ns)
PY
}
listing "$src" >"$T_DIR/src.ls"

# Another volume that cairn-vold serves throughout.
mkdir -p "$T_DIR/osrc" && echo hello >"$T_DIR/osrc/hello"
vos init >/dev/null
"$VOS_BIN" --root "$SRV_ROOT" import other "$T_DIR/osrc" >/dev/null || exit 99
make_token other ro "$T_DIR/other.tok" || exit 99
vold_start || exit 99
export VC_URL=$VOLD_URL VC_VOL=other VC_TOKEN=$(cat "$T_DIR/other.tok")
hello() { vc cat "$(vc lookup "$(vc root)" hello)" 2>/dev/null; }
t_is "$(hello)" hello "the other volume is served"

# Time one whole import, to spread the kills over it.
t0=$(date +%s%N)
"$VOS_BIN" --root "$SRV_ROOT" import timed "$src" >/dev/null || exit 99
ms=$((($(date +%s%N) - t0) / 1000000))
echo "# one import: $ms ms"
"$VOS_BIN" --root "$SRV_ROOT" remove timed --force >/dev/null || exit 99

staged=0 whole=0 bad=0
for k in $(seq 1 8); do
	jobs=$((RANDOM % 3 * 2)) # 0, 2 or 4 workers
	delay=$((RANDOM % (ms + 50) + 10))
	"$VOS_BIN" --root "$SRV_ROOT" import --jobs $jobs crash "$src" >/dev/null 2>"$T_DIR/imp.err" &
	vp=$!
	sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
	kill -9 "$vp" 2>/dev/null
	wait "$vp" 2>/dev/null
	if vos list | awk '$1 == "crash"' | grep -q crash; then
		# The kill came after the publish: the volume is whole.
		whole=$((whole + 1))
		[ -d "$SRV_ROOT/volumes/.staged-crash" ] && { echo "# kill $k: published and still staged"; bad=$((bad + 1)); }
		n=$(vos examine crash --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["files"])')
		[ "$n" = "$nobj" ] || { echo "# kill $k: published with $n objects, not $nobj"; bad=$((bad + 1)); }
		vos remove crash --force >/dev/null || bad=$((bad + 1))
		continue
	fi
	if [ ! -d "$SRV_ROOT/volumes/.staged-crash" ]; then
		# Killed before the staged volume was made (or it failed).
		[ -s "$T_DIR/imp.err" ] && { cat "$T_DIR/imp.err"; bad=$((bad + 1)); }
		continue
	fi
	staged=$((staged + 1))
	"$VOS_BIN" --root "$SRV_ROOT" import crash "$src" >/dev/null 2>"$T_DIR/again.err"
	rc=$?
	[ "$rc" = 73 ] || { echo "# kill $k (jobs $jobs, ${delay} ms): import again gave $rc"; bad=$((bad + 1)); }
	grep -q "vos remove --staged crash" "$T_DIR/again.err" ||
		{ echo "# kill $k: no hint"; cat "$T_DIR/again.err"; bad=$((bad + 1)); }
	[ "$(hello)" = hello ] || { echo "# kill $k: the other volume is not served"; bad=$((bad + 1)); }
	vos remove --staged crash >/dev/null 2>&1 || { echo "# kill $k: vos remove --staged failed"; bad=$((bad + 1)); }
	[ -e "$SRV_ROOT/volumes/.staged-crash" ] && { echo "# kill $k: still staged"; bad=$((bad + 1)); }
done
echo "# 8 kills: $staged left a staged volume, $whole came after the publish"
t_is "$bad" 0 "every kill -9 of vos import: a staged volume (refused, removable) or the whole volume"
t_ok "$([ "$staged" -ge 3 ] && echo 0 || echo 1)" "at least 3 kills landed inside an import"
t_is "$(ls -A "$SRV_ROOT/volumes" | tr '\n' ' ')" "other " "nothing else left under volumes/"
t_is "$(hello)" hello "cairn-vold still serves the other volume"

t_check "vos import after the kills" "$VOS_BIN" --root "$SRV_ROOT" import crash "$src"
t_is "$(vos examine crash --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["files"], d["format"])')" \
	"$nobj 3" "every object, format 3 (small files inline)"
t_ok "$([ -e "$SRV_ROOT/volumes/crash/clean" ] && echo 0 || echo 1)" "with the clean-close mark"
t_check "vos export" "$VOS_BIN" --root "$SRV_ROOT" export crash "$T_DIR/out"
t_check "the tree comes back (diff -r)" diff -r --no-dereference "$src" "$T_DIR/out"
listing "$T_DIR/out" >"$T_DIR/out.ls"
t_check "modes, sizes and mtimes too" diff "$T_DIR/src.ls" "$T_DIR/out.ls"
make_token crash ro "$T_DIR/crash.tok" || exit 99
f=$(VC_VOL=crash VC_TOKEN=$(cat "$T_DIR/crash.tok") vc lookup "$(VC_VOL=crash VC_TOKEN=$(cat "$T_DIR/crash.tok") vc root)" d03)
f=$(VC_VOL=crash VC_TOKEN=$(cat "$T_DIR/crash.tok") vc lookup "$f" f000)
VC_VOL=crash VC_TOKEN=$(cat "$T_DIR/crash.tok") vc cat "$f" 262144 >"$T_DIR/f000" 2>/dev/null
t_check "cairn-vold serves a file of it (two chunks)" cmp "$T_DIR/f000" "$src/d03/f000"
f=$(VC_VOL=crash VC_TOKEN=$(cat "$T_DIR/crash.tok") vc lookup "$(VC_VOL=crash VC_TOKEN=$(cat "$T_DIR/crash.tok") vc lookup "$(VC_VOL=crash VC_TOKEN=$(cat "$T_DIR/crash.tok") vc root)" d04)" f001)
VC_VOL=crash VC_TOKEN=$(cat "$T_DIR/crash.tok") vc cat "$f" 262144 >"$T_DIR/f001" 2>/dev/null
t_check "and an inline one" cmp "$T_DIR/f001" "$src/d04/f001"

# kill -9 of vos export: a snapshot directory is left, the next export of
# the volume removes it.
rm -rf "$T_DIR/out"
snaps=0
for k in 1 2 3; do
	"$VOS_BIN" --root "$SRV_ROOT" export crash "$T_DIR/out$k" >/dev/null 2>&1 &
	vp=$!
	wait_for 20 sh -c "ls -A '$SRV_ROOT/volumes' | grep -q '^.snap-crash'"
	sleep 0.$((RANDOM % 5))
	kill -9 "$vp" 2>/dev/null
	wait "$vp" 2>/dev/null
	snaps=$((snaps + $(ls -A "$SRV_ROOT/volumes" | grep -c '^.snap-crash')))
	rm -rf "$T_DIR/out$k"
done
t_ok "$([ "$snaps" -ge 1 ] && echo 0 || echo 1)" "kill -9 of vos export leaves a snapshot ($snaps)"
t_check "the next export works" "$VOS_BIN" --root "$SRV_ROOT" export crash "$T_DIR/out"
t_is "$(ls -A "$SRV_ROOT/volumes" | grep -c '^.snap-')" 0 "and removes the snapshots left"
t_check "and gives the tree back" diff -r --no-dereference "$src" "$T_DIR/out"
t_done
