#!/usr/bin/env bash
# t4020-wback-crash: kill -9 of cairnd in writeback mode while its log
# drains to the server (writeback-delay 60 s while the changes are made,
# then 10 ms: the drain starts at the next tick of its clock). Four
# rounds (up to eight until a kill caught a drain half way): a mix of
# changes (wbops.py: creates
# and writes, chmods, renames, unlinks, a mkdir and a symlink, and changes
# of the previous round's objects) is made on the mount and on a local
# reference directory; the mount returns before the server has them; at a
# random point of the drain (seed printed; SEED=N replays) cairnd is
# killed, the server's object and byte counts are noted, cairnd is restarted (still
# writeback) and must show the reference tree at once (the local view is
# ahead of the server) and drain the rest. At least one kill must have
# caught the drain half way. In the end the server's tree, read by a fresh
# client, equals the reference: every change arrived, none twice (a
# change applied twice would be refused and become a conflict: there is
# none).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 300
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }
N=${WB_FILES:-900}
OPS=$top_srcdir/tests/integration/wbops.py

vold_start || exit 99
vos init >/dev/null 2>&1
vos create wbc >/dev/null || exit 99
make_token wbc rw "$T_DIR/tok"
A=$T_DIR/a
ref=$T_DIR/ref
mkdir -p "$ref/w"
mnt() { cairnd_mount "$A" "$T_DIR/ca" wbc "$T_DIR/tok" --write-mode writeback --writeback-delay 60s; }
mnt || exit 1
jst() { "$FS" status --json -m "$A" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }
# the server's objects and bytes: both move while a drain goes on (the
# creates come first, the stores after)
srv_objs() { vos examine wbc --json 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); print("%d/%d" % (d["files"], d["bytes"]))'; }

t_is "$(jst write_mode)" writeback "fs status: write mode writeback"
mkdir "$A/w" || exit 1

SEED=${SEED:-$RANDOM}
echo "# seed $SEED"
RANDOM=$SEED
mid=0 viewbad=0 syncbad=0 rounds=0
# Four rounds, and up to four more while no kill has caught a drain half
# way (the drain got faster: ~1,800 records in a few hundred ms, about
# what vos examine's polling below takes to see it start).
for r in 0 1 2 3 4 5 6 7; do
	[ "$r" -ge 4 ] && [ "$mid" -ge 1 ] && break
	rounds=$((rounds + 1))
	"$FS" sync -m "$A" >/dev/null 2>&1 || syncbad=1
	s0=$(srv_objs)
	python3 "$OPS" "$ref/w" "$r" "$N" || exit 99
	python3 "$OPS" "$A/w" "$r" "$N" || { t_ok 1 "round $r: the changes on the mount"; break; }
	back=$(jst backlog_records)
	# Everything is logged (60 s delay); a 10 ms delay starts the drain
	# at the next tick of its clock (within 250 ms). Odd rounds: kill
	# at a random point 0..0.99 s from now (before the drain, in it,
	# after it); even rounds: once the server took the first batch,
	# then 0..0.04 s later (batches are pipelined and journalled: the
	# ~1,800 records of a round drain in about a second; 600 drained
	# before a kill could land).
	"$FS" setpolicy -m "$A" --writeback-delay 10ms >/dev/null 2>&1
	if [ $(( r % 2 )) = 1 ]; then
		sleep "0.$(( RANDOM % 10 ))$(( RANDOM % 10 ))"
	else
		for _ in $(seq 1 500); do [ "$(srv_objs)" != "$s0" ] && break; sleep 0.01; done
		sleep "0.0$(( RANDOM % 5 ))"
	fi
	cairnd_kill9 "$A"
	sk=$(srv_objs)
	mnt || exit 1
	python3 "$OPS" --tree "$A/w" >"$T_DIR/view$r" 2>&1
	python3 "$OPS" --tree "$ref/w" >"$T_DIR/ref$r"
	cmp -s "$T_DIR/view$r" "$T_DIR/ref$r" || viewbad=$((viewbad + 1))
	"$FS" sync -m "$A" >/dev/null 2>&1 || syncbad=1
	s1=$(srv_objs)
	echo "# round $r: backlog $back records; server objects/bytes $s0 -> $sk at the kill -> $s1"
	[ "$sk" != "$s0" ] && [ "$sk" != "$s1" ] && mid=$((mid + 1))
done
t_is "$viewbad" 0 "after each restart the mount shows the reference tree at once"
t_is "$syncbad" 0 "fs sync succeeds after each restart"
t_ok "$([ "$mid" -ge 1 ] && echo 0 || echo 1)" "a kill caught the drain half way ($mid of $rounds rounds)"
t_is "$(jst backlog_records)|$(jst conflicts)" "0|0" "the log is empty, no conflicts"
t_is "$(jst mode)" connected "still connected"

C=$T_DIR/c
cairnd_mount "$C" "$T_DIR/cc" wbc "$T_DIR/tok" || exit 1
python3 "$OPS" --tree "$C/w" >"$T_DIR/server.tree" 2>&1
python3 "$OPS" --tree "$ref/w" >"$T_DIR/ref.tree"
t_ok "$(cmp -s "$T_DIR/server.tree" "$T_DIR/ref.tree" && echo 0 || echo 1)" \
	"the server's tree equals the reference ($(wc -l <"$T_DIR/ref.tree") names)"
cmp -s "$T_DIR/server.tree" "$T_DIR/ref.tree" || diff "$T_DIR/ref.tree" "$T_DIR/server.tree" | head -n 10 | sed 's/^/#   /'
t_is "$(find "$C/w" -name '*.conflict-*' | wc -l)" 0 "no conflict copies"
cairnd_umount "$C"
cairnd_umount "$A"
t_done
