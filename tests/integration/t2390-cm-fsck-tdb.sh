#!/usr/bin/env bash
# t2390-cm-fsck-tdb: cairn-fsck checks tdb's own structure of the cache's
# tdb files and rebuilds a damaged meta.tdb (issue #17 leftovers):
#   - a clean cache checks clean (exit 0) with meta.tdb, dirty.tdb and
#     rlog.tdb checked;
#   - meta.tdb damaged five ways (a hash chain that loops, two records
#     overlapping, a record length past the end, a file cut short, a
#     garbage header): --check says so (exit 4) within 60 s (a walk of
#     the loop never ended before) and changes no byte of the cache;
#     --repair fixes it (exit 1: rebuilt when the hash chains can be
#     walked, else removed), a second check is clean, and cairnd
#     then mounts and serves the volume: every name, mode, size and
#     byte equals the server's (t_tree of a fresh mount);
#   - dirty.tdb (write states of six files written while disconnected,
#     not yet stored) damaged: when every record is found again (its
#     digest matches) --check says so and --repair rebuilds it (exit 1),
#     and after a reconnect the six files are on the server; when a
#     record is out of every chain (the digest does not match) or a key
#     is in two chains (the walk meets it twice), --check and --repair
#     say so, exit 4, and change no state file; cairnd refuses to start
#     on a dirty.tdb whose chain loops (exit, not a hang); a damaged
#     rlog.tdb (no digest) is never rebuilt.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 600
DMG="python3 $top_srcdir/tests/integration/tdb-damage.py"

src=$T_DIR/src
mkdir -p "$src/big" "$src/a/b"
for i in $(seq 1 2000); do echo "file $i" >"$src/big/f$i"; done
for i in $(seq 1 50); do head -c $((i * 100)) /dev/urandom >"$src/a/b/r$i"; done
ln -s ../big/f7 "$src/a/link"
chmod 0750 "$src/a"
vos init >/dev/null 2>&1
vos import ft "$src" >/dev/null || exit 99
vold_start
make_token ft rw "$T_DIR/tok"
mnt=$T_DIR/mnt
cache=$T_DIR/cache

# A cache that knows the whole tree: every listing, attribute and chunk.
cairnd_mount "$mnt" "$cache" ft "$T_DIR/tok" || exit 1
t_tree "$mnt" >"$T_DIR/want"
t_is "$(grep -c ' f ' "$T_DIR/want")" 2051 "the tree has 2051 files"
cairnd_umount "$mnt"
"$FSCK" --check --json "$cache" >"$T_DIR/fsck.json" 2>&1
t_is "$?" 0 "a clean cache: cairn-fsck --check exits 0"
t_is "$(python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); print(j["meta_files"], j["state_files"], j["errors"])' "$T_DIR/fsck.json")" \
	"1 2 0" "... meta.tdb, dirty.tdb and rlog.tdb checked, no error"
echo "# meta.tdb: $($DMG count "$cache/meta.tdb") records, $(stat -c %s "$cache/meta.tdb") bytes"
cp -a "$cache" "$T_DIR/cache.orig"

sums() { (cd "$1" && find . -type f -print0 | sort -z | xargs -0 sha256sum); }

for kind in loop overlap pastend truncate header; do
	rm -rf "$cache"
	cp -a "$T_DIR/cache.orig" "$cache"
	t_is "$($DMG $kind "$cache/meta.tdb")" ok "$kind: meta.tdb damaged"
	sums "$cache" >"$T_DIR/sum.before"
	timeout 60 "$FSCK" --check "$cache" >"$T_DIR/check.$kind" 2>&1
	t_is "$?" 4 "$kind: --check exits 4 (damage found), within 60 s"
	if [ $kind = header ]; then
		grep -q "cannot read metadata cache '$cache/meta.tdb'.*would be removed" "$T_DIR/check.$kind"
	else
		grep -q "metadata cache '$cache/meta.tdb': tdb's structure is damaged (tdb_check: .*)" "$T_DIR/check.$kind"
	fi
	t_ok $? "$kind: ... naming the file and what tdb said"
	sums "$cache" >"$T_DIR/sum.after"
	cmp -s "$T_DIR/sum.before" "$T_DIR/sum.after"
	t_ok $? "$kind: ... and no byte of the cache changed"
	timeout 60 "$FSCK" --repair "$cache" >"$T_DIR/repair.$kind" 2>&1
	t_is "$?" 1 "$kind: --repair exits 1 (corrected)"
	timeout 60 "$FSCK" --check "$cache" >"$T_DIR/check2.$kind" 2>&1
	t_is "$?" 0 "$kind: a second --check is clean"
	cairnd_mount "$mnt" "$cache" ft "$T_DIR/tok" || exit 1
	t_tree "$mnt" >"$T_DIR/got.$kind"
	cmp -s "$T_DIR/want" "$T_DIR/got.$kind"
	t_ok $? "$kind: cairnd serves the repaired cache: the tree equals the server's"
	cairnd_umount "$mnt"
	"$FSCK" --check "$cache" >/dev/null 2>&1
	t_is "$?" 0 "$kind: clean after cairnd stopped"
done

# --- dirty.tdb and rlog.tdb: rebuilt only when nothing is lost ---
rm -rf "$cache"
cp -a "$T_DIR/cache.orig" "$cache"
cairnd_mount "$mnt" "$cache" ft "$T_DIR/tok" --write-mode writeback || exit 1
t_check "fs disconnect" "$FS" disconnect -m "$mnt"
for i in 1 2 3 4 5 6; do echo "offline $i" >"$mnt/a/new$i"; done
cairnd_umount "$mnt"
n=$($DMG count "$cache/dirty.tdb")
echo "# dirty.tdb: $n records, rlog.tdb: $($DMG count "$cache/rlog.tdb") records"
t_ok "$([ "$n" -ge 2 ] && echo 0 || echo 1)" "dirty.tdb holds the write states ($n records)"
rm -rf "$T_DIR/cache.dirty"
cp -a "$cache" "$T_DIR/cache.dirty"
statesums() { (cd "$cache" && sha256sum dirty.tdb* rlog.tdb* meta.tdb); }

# Every record found again, as the digest proves: rebuilt, and the
# writes made offline reach the server after a reconnect.
t_is "$($DMG overlap "$cache/dirty.tdb")" ok "dirty.tdb damaged (overlap)"
sums "$cache" >"$T_DIR/sum.before"
timeout 60 "$FSCK" --check "$cache" >"$T_DIR/check.dirty" 2>&1
t_is "$?" 4 "damaged dirty.tdb: --check exits 4"
grep -q "write-state file '$cache/dirty.tdb': tdb's structure is damaged (tdb_check: .*); a rebuild keeps all $n records (they match the digest written at its last checkpoint: no write state lost): --repair rebuilds it" "$T_DIR/check.dirty"
t_ok $? "... it names the file and what tdb said: a rebuild would lose nothing"
sums "$cache" >"$T_DIR/sum.after"
cmp -s "$T_DIR/sum.before" "$T_DIR/sum.after"
t_ok $? "... and no byte of the cache changed"
timeout 60 "$FSCK" --repair "$cache" >"$T_DIR/repair.dirty" 2>&1
t_is "$?" 1 "--repair exits 1 (corrected)"
grep -q "write-state file '$cache/dirty.tdb': .*rebuilt: all $n records kept" "$T_DIR/repair.dirty"
t_ok $? "... all $n records kept"
"$FSCK" --check "$cache" >/dev/null 2>&1
t_is "$?" 0 "a second --check is clean"
cairnd_mount "$mnt" "$cache" ft "$T_DIR/tok" --write-mode writeback || exit 1
"$FS" reconnect -m "$mnt" >"$T_DIR/reconnect.out" 2>&1
wait_for 30 sh -c "'$FS' status --json -m '$mnt' | grep -q '\"replay_pending\": 0'"
"$FS" sync -m "$mnt" >/dev/null 2>&1
cairnd_umount "$mnt"
rm -rf "$T_DIR/cache2"
cairnd_mount "$mnt" "$T_DIR/cache2" ft "$T_DIR/tok" || exit 1
got=$(cat "$mnt"/a/new1 "$mnt"/a/new2 "$mnt"/a/new3 "$mnt"/a/new4 "$mnt"/a/new5 "$mnt"/a/new6 2>&1 | tr '\n' ,)
t_is "$got" "offline 1,offline 2,offline 3,offline 4,offline 5,offline 6," \
	"the six files written offline reached the server (a fresh cache reads them)"
cairnd_umount "$mnt"

# A record no chain reaches any more (a rebuild would lose it, and the
# digest says so), a key in two chains (the walk meets it twice), and a
# value changed in place (tdb_check() passes; the digest does not):
# neither --check nor --repair rewrites the file.
for kind in unlink twin value; do
	rm -rf "$cache"
	cp -a "$T_DIR/cache.dirty" "$cache"
	t_is "$($DMG $kind "$cache/dirty.tdb")" ok "dirty.tdb damaged ($kind)"
	sums "$cache" >"$T_DIR/sum.before"
	statesums >"$T_DIR/state.before"
	timeout 60 "$FSCK" --check "$cache" >"$T_DIR/check.$kind" 2>&1
	t_is "$?" 4 "$kind: --check exits 4"
	if [ $kind = unlink ]; then
		grep -q "write-state file '$cache/dirty.tdb': tdb's structure is damaged (tdb_check: .*); not repairable: it holds writes cairnd acknowledged, and the $((n - 1)) records its hash chains still reach do not match the digest" "$T_DIR/check.$kind"
		t_ok $? "$kind: ... $((n - 1)) records reachable, not those of the digest"
	elif [ $kind = value ]; then
		grep -q "write-state file '$cache/dirty.tdb': tdb's structure is sound, but its records do not match the digest written at its last checkpoint (.*); not repairable: it holds writes cairnd acknowledged, and the next cairnd start takes its records as they are and drops what the journal '$cache/dirty.tdb.jnl' holds as stale: keep a copy of the cache folder before cairnd starts" "$T_DIR/check.$kind"
		t_ok $? "$kind: ... a sound structure whose records are not those of the digest"
	else
		grep -q "write-state file '$cache/dirty.tdb': tdb's structure is damaged (tdb_check: .*); not repairable: it holds writes cairnd acknowledged, and it cannot be rebuilt (.*hash chains loop or cross" "$T_DIR/check.$kind"
		t_ok $? "$kind: ... it cannot be rebuilt (the chains cross)"
	fi
	sums "$cache" >"$T_DIR/sum.after"
	cmp -s "$T_DIR/sum.before" "$T_DIR/sum.after"
	t_ok $? "$kind: ... and no byte of the cache changed"
	timeout 60 "$FSCK" --repair "$cache" >"$T_DIR/repair.$kind" 2>&1
	t_is "$?" 4 "$kind: --repair exits 4 (left uncorrected)"
	grep -q "write-state file '$cache/dirty.tdb': .*not repaired: it holds writes cairnd acknowledged" "$T_DIR/repair.$kind"
	t_ok $? "$kind: ... and says it did not repair it, and why"
	# (--repair rewrites the chunk store's index, as always; not these.)
	statesums >"$T_DIR/state.after"
	cmp -s "$T_DIR/state.before" "$T_DIR/state.after"
	t_ok $? "$kind: ... dirty.tdb, its journal, rlog.tdb and meta.tdb unchanged"
done

# cairnd on a dirty.tdb whose chain loops: it refuses to start (its
# digest walk would never end, or a record the chains lost would make
# it drop the journal as stale) and says why.
rm -rf "$cache"
cp -a "$T_DIR/cache.dirty" "$cache"
t_is "$($DMG loop "$cache/dirty.tdb")" ok "dirty.tdb damaged (loop)"
mkdir -p "$T_DIR/mnt3"
timeout 30 "$CAIRND" --server "$VOLD_URL" --volume ft --token "$T_DIR/tok" \
	--cache "$cache" --mountpoint "$T_DIR/mnt3" --foreground \
	${VOLD_CA:+--ca-file "$VOLD_CA"} --write-mode writeback \
	>"$T_DIR/cairnd-loop.log" 2>&1
rc=$?
fusermount3 -uz "$T_DIR/mnt3" 2>/dev/null
t_ok "$([ $rc -ne 0 ] && [ $rc -ne 124 ] && echo 0 || echo 1)" \
	"cairnd on a looped dirty.tdb stops at once with an error (exit $rc, not a hang)"
grep -q "dirty.tdb.jnl': Structure needs cleaning" "$T_DIR/cairnd-loop.log"
t_ok $? "... saying the structure needs cleaning"
grep -q "cairn-fsck --check $cache\` says what is damaged" "$T_DIR/cairnd-loop.log"
t_ok $? "... and naming the cairn-fsck command to run"
timeout 60 "$FSCK" --repair "$cache" >"$T_DIR/repair.loop" 2>&1
t_is "$?" 4 "... and cairn-fsck --repair leaves it (exit 4): the chains loop"

# rlog.tdb keeps no digest: never rebuilt.
rm -rf "$cache"
cp -a "$T_DIR/cache.dirty" "$cache"
if [ "$($DMG overlap "$cache/rlog.tdb")" = ok ]; then
	statesums >"$T_DIR/state.before"
	timeout 60 "$FSCK" --repair "$cache" >"$T_DIR/repair.rlog" 2>&1
	t_is "$?" 4 "damaged rlog.tdb: --repair exits 4"
	grep -q "replay log '$cache/rlog.tdb': tdb's structure is damaged (tdb_check: .*); not repaired: .*carry no digest that could prove them complete" "$T_DIR/repair.rlog"
	t_ok $? "... not rebuilt: no digest can prove it complete"
	statesums >"$T_DIR/state.after"
	cmp -s "$T_DIR/state.before" "$T_DIR/state.after"
	t_ok $? "... the state files unchanged"
else
	echo "# rlog.tdb has no two adjacent records: not damaged"
fi
t_done
