#!/usr/bin/env bash
# t4081-cm-tdb-commit-kill: a kill -9 inside a tdb commit that grew the
# file (doc/cm.md, "Session 15"). tdb expands the file before it writes a
# transaction's blocks; the next open recovers the old state from the
# recovery area, but tdb 1.4 leaves the file at its grown size, and the
# tail (what the dead commit wrote past the old end) is named by no hash
# chain: tdb_check() says "Hashes do not match records". cairnd then
# refused to start (dirty.tdb, t4010) and cairn-fsck called rlog.tdb
# damaged (t4080). gdb stops cairnd in tdb_transaction_commit
# (utime() in tdb 1.4.8: every block written, the recovery record still
# valid: the widest window)
# of the checkpoint of each journal and kills it there:
#   1. dirty.tdb: 1000 files written offline, their write states in
#      dirty.tdb.jnl; the idle checkpoint puts them in dirty.tdb (which
#      grows) and is killed. cairnd must start again, cut the tail (logged)
#      and serve every file.
#   1b. the same, but the file is then opened by tdb alone (tdbtool, as an
#      older cairnd would have), which rolls back and keeps the tail:
#      cairnd must start, rebuilding dirty.tdb from its hash chains as the
#      digest proves no write state lost (logged), and serve every file.
#   2. rlog.tdb: 1000 more files; the checkpoint at unmount (thousands of
#      records into rlog.tdb, which grows) is killed. The restart cuts the tail; the
#      replay log is whole (the reconnect sends every file once).
# At the end every tdb file passes `tdbtool FILE check` and cairn-fsck
# --check finds the cache clean.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 300
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }
[ -x "$FSCK" ] || { echo "# SKIP: $FSCK not built"; exit 77; }
command -v gdb >/dev/null || { echo "# SKIP: no gdb"; exit 77; }
command -v tdbtool >/dev/null || { echo "# SKIP: no tdbtool (tdb-tools)"; exit 77; }
# The stop is at tdb 1.4's utime() of the file in its commit (a tdb from
# 2024 on calls futimens() on the descriptor: no name to stop on).
libtdb=$(ldd "$CAIRND" | awk '/libtdb/ {print $3}')
nm -D "$libtdb" 2>/dev/null | grep -q " U utime@" ||
	{ echo "# SKIP: $libtdb does not call utime()"; exit 77; }

vol_setup tk
A=$T_DIR/a
CA=$T_DIR/ca
N=1000
jget() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get(sys.argv[1], ""))' "$1"; }
jst() { "$FS" status --json -m "$A" 2>/dev/null | jget "$1"; }
# tdb_ok FILE: tdbtool's check of a copy (its open recovers; the cache's
# own file is left for cairnd).
tdb_ok() {
	cp "$1" "$T_DIR/copy.tdb" && tdbtool "$T_DIR/copy.tdb" check 2>&1 | tail -1
}
ok_line="Database integrity is OK"

# armed PID GDBPID: gdb attached and every thread let go again.
armed() {
	grep -q "^TracerPid:[[:space:]]*[1-9]" "/proc/$1/status" &&
		! grep -qs "^State:[[:space:]]*t" /proc/"$1"/task/*/status
}
# arm NAME TAG: attach gdb to cairnd, stop at the next utime() of the
# tdb file NAME (tdb 1.4's tdb_transaction_commit() touches the file's
# mtime after its writes and their sync, before the recovery record is
# invalidated) and kill cairnd there. Sets gp. (x86-64: the first argument is in rdi.)
arm() {
	local pid
	pid=$(cairnd_pid "$A")
	# The executable named: gdb once attached without it (no symbols,
	# stopped at a thread's SIG32).
	gdb -q "$CAIRND" -p "$pid" -batch -ex "handle SIG32 nostop noprint pass" \
		-ex "break *utime if \$_regex((char *)\$rdi, \".*/$1\$\")" \
		-ex continue -ex bt -ex kill >"$T_DIR/gdb.$2" 2>&1 &
	gp=$!
	wait_for 30 armed "$pid" || { kill "$gp" 2>/dev/null; return 1; }
	sleep 0.2
}
# fired TAG: gdb killed cairnd in tdb_transaction_commit().
fired() {
	wait_for 60 sh -c "! kill -0 $gp 2>/dev/null" || { kill "$gp" 2>/dev/null; return 1; }
	wait "$gp" 2>/dev/null
	grep -q "tdb_transaction_commit" "$T_DIR/gdb.$1"
}

# kill_dirty DIR: write N files into DIR (made online) offline, and kill cairnd inside
# the idle checkpoint of dirty.tdb.jnl that follows (doc/cm.md,
# WB_JOURNAL_IDLE: past 256 KiB, 200 ms without a save).
kill_dirty() {
	local size0 size1
	arm "dirty[.]tdb" "$1" || { t_ok 1 "gdb attached"; t_done; }
	size0=$(stat -c %s "$CA/dirty.tdb")
	for i in $(seq 1 $N); do printf '%s %d\n' "$1" "$i" >"$A/$1/f$i" || break; done
	fired "$1"
	t_ok $? "$1: cairnd killed inside dirty.tdb's checkpoint commit"
	cairnd_kill9 "$A"
	size1=$(stat -c %s "$CA/dirty.tdb")
	t_ok "$([ "$size1" -gt "$size0" ] && echo 0 || echo 1)" "$1: the commit had grown dirty.tdb ($size0 -> $size1 bytes)"
}
# restart TAG: cairnd starts on the cache (else, to go on, cairn-fsck
# --repair mends it first, as an admin would have had to).
restart() {
	if cairnd_mount "$A" "$CA" tk "$T_DIR/tok"; then
		t_ok 0 "$1: cairnd starts again"
	else
		t_ok 1 "$1: cairnd starts again"
		"$FSCK" --repair "$CA" >"$T_DIR/repair.$1" 2>&1
		cairnd_mount "$A" "$CA" tk "$T_DIR/tok" || exit 1
	fi
	t_is "$(jst mode)" disconnected "$1: it starts disconnected"
}
# readall DIR MNT: how many of DIR's N files do not read their bytes.
readall() {
	local bad=0
	for i in $(seq 1 $N); do
		[ "$(cat "$2/$1/f$i" 2>/dev/null)" = "$1 $i" ] || bad=$((bad + 1))
	done
	echo "$bad"
}

# --- 1. dirty.tdb's checkpoint: the restart cuts the tail ---
cairnd_mount "$A" "$CA" tk "$T_DIR/tok" || exit 1
mkdir "$A/d1" "$A/d2" "$A/d3" && ls "$A/d1" "$A/d2" "$A/d3" >/dev/null
"$FS" disconnect -m "$A" >/dev/null || { t_ok 1 "fs disconnect"; t_done; }
kill_dirty d1
restart d1
grep -q "dirty.tdb': a checkpoint cut short by a crash was rolled back" "$T_DIR/cairnd-a.log"
t_ok $? "d1: the rolled-back checkpoint and the cut are logged"
t_is "$(readall d1 "$A")" 0 "d1: every file written before the kill reads its bytes"

# --- 1b. the same, recovered by a tdb that keeps the tail ---
# (tdbtool's open, as a cairnd before this fix did): the start finds
# dirty.tdb's structure damaged and rebuilds it from its hash chains,
# since the records match the digest of the last checkpoint.
kill_dirty d2
tdbtool "$CA/dirty.tdb" check >"$T_DIR/tdbtool.d2" 2>&1
grep -q "Hashes do not match records" "$T_DIR/tdbtool.d2"
t_ok $? "d2: recovered by tdb alone, dirty.tdb fails tdb_check"
restart d2
grep -q "dirty.tdb': tdb's structure was damaged (tdb_check: .*); rebuilt from its hash chains: all [0-9]* records kept" "$T_DIR/cairnd-a.log"
t_ok $? "d2: the start rebuilt dirty.tdb, no write state lost (logged)"
t_is "$(readall d1 "$A")|$(readall d2 "$A")" "0|0" "d2: every file of d1 and d2 reads its bytes"

# --- 2. rlog.tdb's checkpoint at unmount ---
# More records in the journal, so that the checkpoint grows rlog.tdb
# whatever the restarts above checkpointed.
for i in $(seq 1 $N); do printf '%s %d\n' d3 "$i" >"$A/d3/f$i" || break; done
pending=$(jst replay_pending)
arm "rlog[.]tdb" rlog || { t_ok 1 "gdb attached"; t_done; }
size0=$(stat -c %s "$CA/rlog.tdb")
fusermount3 -u "$A" 2>/dev/null
fired rlog
t_ok $? "rlog: cairnd killed inside rlog.tdb's checkpoint commit at unmount"
cairnd_kill9 "$A"
size1=$(stat -c %s "$CA/rlog.tdb")
t_ok "$([ "$size1" -gt "$size0" ] && echo 0 || echo 1)" "rlog: the commit had grown rlog.tdb ($size0 -> $size1 bytes)"
restart rlog
grep -q "rlog.tdb': a checkpoint cut short by a crash was rolled back" "$T_DIR/cairnd-a.log"
t_ok $? "rlog: the rolled-back checkpoint and the cut are logged"
# rlog.tdb is written only at checkpoints (the journal is far from its
# 32 MiB bound): a copy of it now is what the restart left.
t_is "$(tdb_ok "$CA/rlog.tdb" | sed 's/ and has.*//')" "$ok_line" "rlog: rlog.tdb passes tdbtool check after the restart"
t_is "$(jst replay_pending)" "$pending" "rlog: the replay log holds every record ($pending)"
"$FS" reconnect -m "$A" >/dev/null 2>&1
drained() { [ "$(jst mode)" = connected ] && [ "$(jst replay_pending)" = 0 ]; }
wait_for 60 drained
t_ok $? "reconnected, the replay log drained"
t_is "$(jst conflicts)" 0 "no conflicts"
C=$T_DIR/c
cairnd_mount "$C" "$T_DIR/cc" tk "$T_DIR/tok" || exit 1
t_is "$(ls "$C/d1" "$C/d2" "$C/d3" | grep -c '^f')|$(readall d1 "$C")|$(readall d2 "$C")|$(readall d3 "$C")" "$((3 * N))|0|0|0" \
	"the server has every file once with its bytes"
cairnd_umount "$C"
cairnd_umount "$A"
for f in dirty.tdb rlog.tdb meta.tdb; do
	t_is "$(tdb_ok "$CA/$f" | sed 's/ and has.*//')" "$ok_line" "$f passes tdbtool check after a clean stop"
done
"$FSCK" --check "$CA" >"$T_DIR/fsck.out" 2>&1
t_is "$?" 0 "cairn-fsck finds the cache clean"
t_done
