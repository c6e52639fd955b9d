#!/bin/bash
# t1191-vos-import-bigcrash: kill -9 of vos import of a big tree (issue
# #17): 20,000 files, 10,000 of them in one directory (whose buckets vos
# keeps in memory and writes at the end, vs_vol_sync()) and the rest in
# directories of 1,000, sizes 0-64 KiB (small ones inline in meta.tdb,
# the others chunk objects), with the kills spread over the whole import
# and aimed at its last tenth (the buckets' write, the fsyncs, the
# publishing rename). Each kill leaves either the whole volume (every
# object; its export is the tree) or only volumes/.staged-NAME (no
# visible volume, a new import refused with exit 73 naming 'vos remove
# --staged', which removes it). The publish is the import's last few
# milliseconds and the timed import runs alone, so most runs have no kill
# after it: the "whole volume" branch is rarely exercised (t1190 kills a
# small import at every step). The import run again afterwards, with the
# source out of the page cache, reads ahead and exports the tree back.
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 400
SEED=${SEED:-$RANDOM}
echo "# seed $SEED"
RANDOM=$SEED
src=$T_DIR/src
python3 "$top_srcdir/tests/bench/mktree.py" "$src/one" 10000 --per 0 || exit 99
python3 "$top_srcdir/tests/bench/mktree.py" "$src/many" 10000 --per 1000 --split || exit 99
nobj=$(find "$src" | wc -l)
vos init >/dev/null || exit 99

t0=$(date +%s%N)
"$VOS_BIN" --root "$SRV_ROOT" import timed "$src" >/dev/null || exit 99
ms=$((($(date +%s%N) - t0) / 1000000))
echo "# one import: $ms ms, $nobj objects"
"$VOS_BIN" --root "$SRV_ROOT" remove timed --force >/dev/null || exit 99

staged=0 whole=0 bad=0
for k in $(seq 1 6); do
	jobs=$((k % 2 * 4)) # 0 or 4 workers
	if [ $((k % 3)) = 0 ]; then # the last tenth
		delay=$((ms * 9 / 10 + RANDOM % (ms / 10 + 50)))
	else
		delay=$((RANDOM % (ms + 50) + 10))
	fi
	"$VOS_BIN" --root "$SRV_ROOT" import --jobs $jobs crash "$src" >/dev/null 2>"$T_DIR/imp.err" &
	vp=$!
	sleep "$(printf '%d.%03d' $((delay / 1000)) $((delay % 1000)))"
	kill -9 "$vp" 2>/dev/null
	wait "$vp" 2>/dev/null
	if vos list | awk '$1 == "crash"' | grep -q crash; then
		whole=$((whole + 1))
		[ -d "$SRV_ROOT/volumes/.staged-crash" ] && { echo "# kill $k: published and still staged"; bad=$((bad + 1)); }
		n=$(vos examine crash --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["files"])')
		[ "$n" = "$nobj" ] || { echo "# kill $k: published with $n objects, not $nobj"; bad=$((bad + 1)); }
		rm -rf "$T_DIR/w"
		"$VOS_BIN" --root "$SRV_ROOT" export crash "$T_DIR/w" >/dev/null 2>&1 &&
			diff -r "$src" "$T_DIR/w" >/dev/null || { echo "# kill $k: the published volume is not the tree"; bad=$((bad + 1)); }
		rm -rf "$T_DIR/w"
		vos remove crash --force >/dev/null || bad=$((bad + 1))
		continue
	fi
	if [ ! -d "$SRV_ROOT/volumes/.staged-crash" ]; then
		[ -s "$T_DIR/imp.err" ] && { cat "$T_DIR/imp.err"; bad=$((bad + 1)); }
		continue
	fi
	staged=$((staged + 1))
	echo "# kill $k (jobs $jobs, $delay ms): staged"
	"$VOS_BIN" --root "$SRV_ROOT" import crash "$src" >/dev/null 2>"$T_DIR/again.err"
	rc=$?
	[ "$rc" = 73 ] || { echo "# kill $k: import again gave $rc"; bad=$((bad + 1)); }
	grep -q "vos remove --staged crash" "$T_DIR/again.err" ||
		{ echo "# kill $k: no hint"; cat "$T_DIR/again.err"; bad=$((bad + 1)); }
	vos remove --staged crash >/dev/null 2>&1 || { echo "# kill $k: vos remove --staged failed"; bad=$((bad + 1)); }
	[ -e "$SRV_ROOT/volumes/.staged-crash" ] && { echo "# kill $k: still staged"; bad=$((bad + 1)); }
done
echo "# 6 kills: $staged left a staged volume, $whole came after the publish"
t_is "$bad" 0 "every kill -9 of a big import: a staged volume (refused, removable) or the whole volume"
t_ok "$([ "$staged" -ge 2 ] && echo 0 || echo 1)" "at least 2 kills landed inside an import"
t_is "$(ls -A "$SRV_ROOT/volumes" | tr '\n' ' ')" "" "nothing left under volumes/"
# Out of the page cache (this tree's pages only): the import reads ahead
# of its walk then (man vos, --jobs), and must give the same volume.
read -r cached nreg <<<"$(t_evict "$src")"
t_ok "$([ -n "$nreg" ] && [ "$nreg" -gt 10000 ] && [ "$cached" = 0 ] && echo 0 || echo 1)" \
	"the source is out of the page cache ($cached of $nreg non-empty files cached)"
CAIRN_VOS_DEBUG=1 "$VOS_BIN" --root "$SRV_ROOT" import crash "$src" >"$T_DIR/imp.out" 2>"$T_DIR/imp.err"
t_ok $? "vos import after the kills (source out of the page cache)"
n=$(sed -n 's/^vos: debug: read ahead \([0-9]*\) files$/\1/p' "$T_DIR/imp.err")
t_ok "$([ -n "$n" ] && [ "$n" -gt 0 ] && echo 0 || echo 1)" "vos read ahead of its walk (${n:-no} files asked for)"
t_is "$(vos examine crash --json | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["files"], d["format"])')" \
	"$nobj 3" "every object, format 3"
t_check "vos export" "$VOS_BIN" --root "$SRV_ROOT" export crash "$T_DIR/out"
t_check "the tree comes back (diff -r)" diff -r "$src" "$T_DIR/out"
t_done
