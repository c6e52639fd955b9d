#!/bin/bash
# t1194-vos-import-tdb-limit: vos import guards tdb's 4 GiB limit of
# meta.tdb (doc/vol-format.md, "tdb's 4 GiB limit in a bulk import";
# review 10, finding 1). The limits are lowered with the test-only
# environment (CAIRN_TEST_TDB_LIMIT stands for the 4 GiB,
# CAIRN_TEST_TDB_META_FILE for the per-object estimate): a tree whose
# metadata alone cannot fit is refused before anything is written, with
# a message naming the limit; a tree whose metadata was underestimated
# stops at the hard limit (15/16 of it) with EFBIG and "near tdb's ...
# limit", with --jobs 0 and with workers, and nothing is left behind;
# the same tree under the real limits imports, and the inline cap stops
# inlining (the volume then has chunk objects for files of at most
# 16 KiB).
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 300
src=$T_DIR/src
python3 "$top_srcdir/tests/bench/mktree.py" "$src" 3000 --per 1000 --split >/dev/null || exit 99
nobj=$(find "$src" | wc -l)
vos init >/dev/null || exit 99
left() { ls -A "$SRV_ROOT/volumes" | tr '\n' ' '; }

# 1. Refused up front: 3,000 objects x 1 KiB > 2 MiB - 512 KiB.
CAIRN_TEST_TDB_LIMIT=$((2 << 20)) "$VOS_BIN" --root "$SRV_ROOT" import big "$src" >"$T_DIR/o1" 2>"$T_DIR/e1"
t_is "$?" 74 "a tree whose metadata cannot fit: refused (EX_IOERR)"
t_check "the refusal names the count and the limit" grep -q "its $nobj objects need ~.* of metadata in meta.tdb, more than tdb's 2.0 MiB limit less 512.0 KiB kept free" "$T_DIR/e1"
t_check "the refusal says EFBIG" grep -q "File too large" "$T_DIR/e1"
t_is "$(wc -l <"$T_DIR/e1")" 1 "one line of error, no per-file noise"
t_is "$(left)" "" "refused before anything was written: no volume, no staged volume"

# 2. The estimate lowered to 1 byte an object: the plan lets the tree
# through, and the hard limit (15/16 of 2 MiB) stops it.
for j in 0 4; do
	CAIRN_TEST_TDB_LIMIT=$((2 << 20)) CAIRN_TEST_TDB_META_FILE=1 \
		"$VOS_BIN" --root "$SRV_ROOT" import --jobs $j big "$src" >"$T_DIR/o2" 2>"$T_DIR/e2"
	t_is "$?" 74 "--jobs $j: metadata past the hard limit: the import stops"
	t_check "--jobs $j: the message names tdb's limit" grep -q "stopped: meta.tdb passed 1.9 MiB, near tdb's 2.0 MiB limit" "$T_DIR/e2"
	t_check "--jobs $j: the failing file's error is EFBIG" grep -q "File too large" "$T_DIR/e2"
	t_is "$(left)" "" "--jobs $j: the staged volume was removed"
	t_is "$(cat "$T_DIR/o2")" "" "--jobs $j: nothing imported"
done

# 3. A limit the metadata fits but the inline bytes do not: the import
# succeeds and inlining stopped (files of at most 16 KiB have objects).
CAIRN_TEST_TDB_LIMIT=$((8 << 20)) "$VOS_BIN" --root "$SRV_ROOT" import capped "$src" >/dev/null 2>"$T_DIR/e3"
t_is "$?" 0 "a tree under a lowered limit: imported"
sz=$(stat -c %s "$SRV_ROOT/volumes/capped/meta.tdb")
t_ok "$([ "$sz" -lt $((15 << 19)) ] && echo 0 || echo 1)" "meta.tdb ($sz bytes) stayed under the hard limit"
# every object: a file of at most 16 KiB has no chunk object only while
# inlining lasted, so some small files have objects here
small_objs=$(find "$SRV_ROOT/volumes/capped/data" -type f -size -17k | wc -l)
t_ok "$([ "$small_objs" -gt 0 ] && echo 0 || echo 1)" "inlining stopped at the cap ($small_objs small chunk objects)"
rm -rf "$T_DIR/w"
t_check "vos export of the capped volume" "$VOS_BIN" --root "$SRV_ROOT" export capped "$T_DIR/w"
t_check "the export is the tree" diff -r "$src" "$T_DIR/w"
rm -rf "$T_DIR/w"

# 4. The real limits: the same tree imports, every small file inline.
"$VOS_BIN" --root "$SRV_ROOT" import full "$src" >/dev/null 2>"$T_DIR/e4"
t_is "$?" 0 "the tree under tdb's real limits: imported"
small_objs=$(find "$SRV_ROOT/volumes/full/data" -type f -size -17k 2>/dev/null | wc -l)
t_is "$small_objs" 0 "under the real limits every file of at most 16 KiB is inline"
t_is "$(vos examine full --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["files"])')" "$nobj" "every object"
t_done
