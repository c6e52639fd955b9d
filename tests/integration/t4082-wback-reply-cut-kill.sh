#!/usr/bin/env bash
# t4082-wback-reply-cut-kill: writeback, cairnd killed between a drained
# record's removal from the replay log and the application of its reply
# to the caches (gdb stops it at the first reply's mcache_local_attr()).
# The batch holds the creates of a file still being written (f, held
# open) and of an empty closed one (g): the server has both, the log
# none, the DV map (<cache>/replay-dv) their DVs, but the cached
# attributes still their local DVs. The restart's first pass finds
# nothing to send and empties replay-dv; then it logs the store of f, the
# crash left f dirty (wb_resume_crashed()), on f's local DV; chmods of g
# and of their directory are logged. One more kill -9 and
# restart: before, the store was based on a local DV nothing could
# translate any more and became a conflict "object gone" (with a conflict
# copy of f) for a file the server has (t4075 once in CI), and the chmod
# of the directory one too (stale: the copy's create moved it first).
# Now the start moves such cached attributes to the DVs of the map (doc/
# cm.md "A reply a kill cut off"): the records drain, no conflict, and a
# fresh client sees the modes.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 180
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }
command -v gdb >/dev/null || { echo "# SKIP: no gdb"; exit 77; }

vold_start || exit 99
vos init >/dev/null 2>&1
vos create wrc >/dev/null || exit 99
make_token wrc rw "$T_DIR/tok"
A=$T_DIR/a
CA=$T_DIR/ca
mnt() { cairnd_mount "$A" "$CA" wrc "$T_DIR/tok" --write-mode writeback --writeback-delay 60s; }
jst() { "$FS" status --json -m "$A" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }
kinds() { rlog_kinds "$A"; }
# armed PID: gdb attached and every thread let go again.
armed() {
	grep -q "^TracerPid:[[:space:]]*[1-9]" "/proc/$1/status" &&
		! grep -qs "^State:[[:space:]]*t" /proc/"$1"/task/*/status
}

mnt || exit 1
mkdir "$A/one" || exit 1
"$FS" sync -m "$A" >/dev/null 2>&1
t_is "$(jst backlog_records)" 0 "the mkdir drained"

# f: created, written, held open (never closed before the kills); g:
# created and closed empty.
python3 - "$A/one/f" "$T_DIR/ready" <<'PY' &
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
os.write(fd, b"held open\n" * 10)
open(sys.argv[2], "w").close()
time.sleep(120)
PY
hpid=$!
t_track_pid "$hpid"
wait_for 20 test -e "$T_DIR/ready" || { t_ok 1 "the writer of f got going"; t_done; }
python3 -c 'import os, sys; os.close(os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640))' "$A/one/g" ||
	t_ok 1 "create g"
t_is "$(kinds)" "create=2 " "two creates logged, nothing else"

# The drain (fs sync) sends [create f, create g] in one batch; gdb kills
# cairnd when the first reply reaches the caches: both records are gone
# from the log, their DVs in replay-dv, neither reply applied.
pid=$(cairnd_pid "$A")
gdb -q "$CAIRND" -p "$pid" -batch -ex "handle SIG32 nostop noprint pass" \
	-ex "break mcache_local_attr" -ex continue -ex bt -ex kill >"$T_DIR/gdb.out" 2>&1 &
gp=$!
wait_for 30 armed "$pid" || { kill "$gp" 2>/dev/null; t_ok 1 "gdb attached"; t_done; }
sleep 0.2
"$FS" sync -m "$A" >/dev/null 2>&1 &
spid=$!
wait_for 60 sh -c "! kill -0 $gp 2>/dev/null" || kill "$gp" 2>/dev/null
wait "$gp" 2>/dev/null
grep -q "reply_attr\|apply_reply" "$T_DIR/gdb.out"
t_ok $? "cairnd killed while the batch's first reply was applied"
cairnd_kill9 "$A"
kill "$hpid" 2>/dev/null; wait "$hpid" 2>/dev/null
wait "$spid" 2>/dev/null
# (and their directory's, from each reply)
dvs=$(cut -d' ' -f1 "$CA/replay-dv" 2>/dev/null | sort -u | wc -l)
t_is "$dvs" 3 "replay-dv holds the DVs the two creates gave f, g and one"

# Restart: the first pass has nothing to send (replay-dv is emptied),
# then the store of f the crash left dirty is logged; chmods of g and
# one are logged on what the mount shows.
mnt || exit 1
logged() { kinds | grep -q "store=1 "; }
wait_for 20 logged
t_is "$(kinds)" "store=1 " "the restart logged the store of f (the crash left it dirty)"
chmod 600 "$A/one/g" || t_ok 1 "chmod g"
chmod 750 "$A/one" || t_ok 1 "chmod one"
t_is "$(kinds)" "setattr=2 store=1 " "and the two chmods"
t_is "$(cat "$CA/replay-dv" 2>/dev/null | wc -l)" 0 "replay-dv was emptied"
size_f=$(stat -c %s "$A/one/f")

# One more kill -9 and restart: the three records drain.
cairnd_kill9 "$A"
mnt || exit 1
"$FS" sync -m "$A" >/dev/null 2>&1
t_is "$(jst backlog_records)|$(jst conflicts)" "0|0" "drained, no conflicts"
"$FS" conflicts -m "$A" 2>&1 | head -8 | sed 's/^/#   /'
t_is "$(ls "$A/one" | tr '\n' ' ')" "f g " "the mount shows f and g, no conflict copy"
C=$T_DIR/c
cairnd_mount "$C" "$T_DIR/cc" wrc "$T_DIR/tok" || exit 1
t_is "$(stat -c '%n %a' "$C/one" "$C/one/g" 2>&1 | sed "s|$C/||" | tr '\n' ' ')" \
	"one 750 one/g 600 " "a fresh client sees the chmods"
t_is "$(stat -c %s "$C/one/f" 2>&1)" "$size_f" "and f at the size the mount showed ($size_f)"
t_is "$(ls "$C/one" | tr '\n' ' ')" "f g " "and no conflict copy on the server"
cairnd_umount "$C"
cairnd_umount "$A"
t_done
