#!/usr/bin/env bash
# t2368-cm-resume-server-down: cairnd started while cairn-vold is down,
# with and without records a kill -9 left INFLIGHT in the op log, and
# changes made right after the start (sync mode). Each change either
# fails (and the server never gets it) or succeeds and reaches the
# server exactly once when it is back, with no conflict; the records a
# crash left wait for the server; a resend or a mutation without an
# answer disconnects the mount by itself (auto), and its probe
# reintegrates once the server answers.
#   1. a clean stop, then a start with the server down: a create, a
#      write+close of an existing file and a mkdir.
#   2. a close cut short by the kill (cairn-vold stopped: its create and
#      store INFLIGHT, never applied), and the same three changes right
#      after the start, while the resume tries to resend them. Before
#      the fix the resume also resent the new file's own create
#      (appended after the start), dropped that record when its resend
#      found no server, and the file only survived as a conflict copy
#      (its store, replayed on base DV 0, was refused: no such object).
#   3. a store answered but left INFLIGHT by the kill (sync mode drops a
#      record lazily), no change: its resend finds no server, so the
#      mount disconnects (auto; before, it stayed connected and the
#      record was sent at the next start only), takes a mkdir offline,
#      and reconnects by itself once the server is back.
#   4. an acknowledged create (open(O_CREAT) returned) held back when
#      cairnd was killed: it never reached the server, and must after.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 420
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

vol_setup rd
mnt=$T_DIR/mnt
cache=$T_DIR/cache
tok=$T_DIR/tok
jget() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get(sys.argv[1], ""))' "$1"; }
stat_of() { "$FS" status --json -m "$mnt" 2>/dev/null | jget "$1"; }
mode() { [ "$(stat_of mode)" = "$1" ]; }
drained() { mode connected && [ "$(stat_of replay_pending)" = 0 ]; }
# put FILE TEXT: one open, one write, one close (a shell redirection
# flushes twice: dup2 closes the first descriptor).
put() {
	python3 -c 'import sys
f = open(sys.argv[1], "w")
f.write(sys.argv[2])
f.close()' "$1" "$2" 2>/dev/null
}
start_down() { # the server down, cairnd started on the cache
	vold_stop
	cairnd_mount "$mnt" "$cache" rd "$tok" --fetch-timeout 2s || exit 1
}
back() { # the server back, fs reconnect, the log drained
	vold_restart || exit 99
	mode disconnected && "$FS" reconnect -m "$mnt" >/dev/null 2>&1
	wait_for 60 drained
}
n_fresh=0
fresh_mount() {
	n_fresh=$((n_fresh + 1))
	F=$T_DIR/fresh
	cairnd_mount "$F" "$T_DIR/cache-fresh$n_fresh" rd "$tok" || exit 1
}
# data_events PATH: stores the server applied to PATH under the fresh mount $F.
data_events() { vol_data_events rd "$tok" "$F" "$1"; }
# changes R DIR: a create, a write+close of DIR/old and a mkdir, right
# away; their exit codes in rc_create, rc_write, rc_mkdir.
changes() {
	put "$mnt/$2/new" "new $1"
	rc_create=$?
	put "$mnt/$2/old" "old2 $1"
	rc_write=$?
	mkdir "$mnt/$2/m" 2>/dev/null
	rc_mkdir=$?
	echo "# $1: create rc=$rc_create write rc=$rc_write mkdir rc=$rc_mkdir"
}
# outcome R DIR: on the server (fresh mount), what changes() did if it
# succeeded, nothing if it failed; never a conflict.
outcome() {
	local r=$1 d=$2 want
	if [ "$rc_create" = 0 ]; then
		t_is "$(cat "$F/$d/new" 2>&1)" "new $r" "$r: the create succeeded and reached the server"
		t_is "$(data_events "$d/new")" 1 "$r: its store was applied once"
	else
		t_ok "$([ -e "$F/$d/new" ]; echo $((!$?)))" "$r: the create failed and the server has no such file"
	fi
	[ "$rc_write" = 0 ] && want="old2 $r" || want="old1"
	t_is "$(cat "$F/$d/old" 2>&1)" "$want" "$r: the write+close (rc $rc_write) is on the server as acknowledged"
	if [ "$rc_mkdir" = 0 ]; then
		t_ok "$([ -d "$F/$d/m" ]; echo $?)" "$r: the mkdir succeeded and reached the server"
	else
		t_ok "$([ -e "$F/$d/m" ]; echo $((!$?)))" "$r: the mkdir failed and the server has no such directory"
	fi
	t_is "$("$FS" conflicts -m "$mnt" 2>&1)" "no conflicts" "$r: no conflict"
	t_is "$(ls "$mnt/$d" | grep -c conflict)" 0 "$r: no conflict copy"
}
# stall_kill FILE CMD...: run CMD (a change of FILE) while cairn-vold is
# stopped, so that its records are INFLIGHT and the server never gets
# them; once FILE is there (the open answered, the close follows at
# once), kill -9 cairnd in the middle of it, then cairn-vold.
stall_kill() {
	local pid f=$1
	shift
	kill -STOP "$VOLD_PID"
	"$@" &
	pid=$!
	wait_for 10 test -e "$f"
	sleep 0.5
	cairnd_kill9 "$mnt"
	kill "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	vold_kill9
}
# inflight: how many records the replay log holds INFLIGHT.
inflight() { "$FS" replaylog -m "$mnt" 2>/dev/null | awk '$3 == "inflight"' | wc -l; }

cairnd_mount "$mnt" "$cache" rd "$tok" || exit 1

# --- 1: a clean stop, the server down at the start ------------------
mkdir "$mnt/r1"
put "$mnt/r1/old" "old1"
ls "$mnt/r1" >/dev/null
cairnd_umount "$mnt"
start_down
changes r1 r1
[ "$rc_create$rc_write$rc_mkdir" = 000 ] && {
	wait_for 20 mode disconnected
	t_ok $? "r1: the changes without an answer disconnected the mount"
}
back
t_ok $? "r1: reconnected and drained"
fresh_mount
outcome r1 r1
cairnd_umount "$F"

# --- 2: a store left INFLIGHT by a kill, changes during the resume ---
mkdir "$mnt/r2" "$mnt/r2/d" "$mnt/r2/s"
put "$mnt/r2/d/old" "old1"
ls "$mnt/r2/d" "$mnt/r2/s" >/dev/null
# Going offline writes the listings edited in memory (a kill leaves
# the stored ones older, and connected a lookup then needs the server).
"$FS" disconnect -m "$mnt" >/dev/null && "$FS" reconnect -m "$mnt" >/dev/null 2>&1
wait_for 30 drained || t_ok 1 "r2: fs disconnect, fs reconnect"
# (beside d: the listings on the way to d stay as stored)
put "$mnt/r2/s/a" a
stall_kill "$mnt/r2/s/b" put "$mnt/r2/s/b" bb
start_down
changes r2 r2/d
wait_for 20 mode disconnected
t_ok $? "r2: the mount disconnected (no answer)"
t_is "$(stat_of manual)" False "r2: automatically (probes)"
back
t_ok $? "r2: reconnected and drained"
fresh_mount
t_is "$(cat "$F/r2/s/a" 2>&1)" "a" "r2: the file made before the kill is on the server"
t_is "$(cat "$F/r2/s/b" 2>&1)" "bb" "r2: the records of the close the kill cut short were resent"
outcome r2 r2/d
cairnd_umount "$F"

# --- 3: a store left INFLIGHT, no change: disconnect by itself -------
mkdir "$mnt/r3"
put "$mnt/r3/f" f0
"$FS" disconnect -m "$mnt" >/dev/null && "$FS" reconnect -m "$mnt" >/dev/null 2>&1
wait_for 30 drained || t_ok 1 "r3: fs disconnect, fs reconnect"
# A store of an existing file, answered: sync mode drops its record
# lazily (in the log's next transaction), so the kill leaves it alone
# in the log, INFLIGHT, and no dirty file (whose store at the restart
# would disconnect by itself). A create first in the log was resent
# and, unanswered, absorbed: that disconnected before the fix too.
# Anything that opens the log's next transaction before the kill
# (a timer reading the log's statistics) drops the record first: the
# round is tried again then, 4 times at most.
tries=0
while :; do
	tries=$((tries + 1))
	put "$mnt/r3/f" f3
	cairnd_kill9 "$mnt"
	start_down
	"$FS" replaylog -m "$mnt" 2>&1 | sed 's/^/# /'
	n=$(inflight)
	[ "$n" -ge 1 ] || [ "$tries" -ge 4 ] && break
	echo "# r3: try $tries: the record was dropped before the kill"
	vold_restart || exit 99
	wait_for 30 drained || break
done
t_ok $(( n >= 1 ? 0 : 1 )) "r3: the kill left records INFLIGHT ($n, try $tries)"
wait_for 20 mode disconnected
t_ok $? "r3: the resend without an answer disconnected the mount"
t_is "$(stat_of manual)" False "r3: automatically (probes)"
t_is "$(inflight)" "$n" "r3: the records stay INFLIGHT for the reintegration"
mkdir "$mnt/r3/m"
t_ok $? "r3: a mkdir offline"
vold_restart || exit 99
# No fs reconnect: the probe finds the server (1 s, 2 s, 4 s, ...).
wait_for 60 drained
t_ok $? "r3: reconnected by itself and drained"
fresh_mount
t_is "$(cat "$F/r3/f" 2>&1)" f3 "r3: the file stored before the kill is on the server"
t_ok "$([ -d "$F/r3/m" ]; echo $?)" "r3: the offline mkdir reached the server"
t_is "$(data_events r3/f)" $((tries + 1)) "r3: the resent store was not applied again ($((tries + 1)) stores)"
t_is "$("$FS" conflicts -m "$mnt" 2>&1)" "no conflicts" "r3: no conflict"
cairnd_umount "$F"

# --- 4: an acknowledged create held back when cairnd was killed -------
mkdir "$mnt/r4"
"$FS" disconnect -m "$mnt" >/dev/null && "$FS" reconnect -m "$mnt" >/dev/null 2>&1
wait_for 30 drained || t_ok 1 "r4: fs disconnect, fs reconnect"
# open(O_CREAT) is answered at once, the create is held (1 s) for the
# close's batch: killed before that, the server never saw it.
(exec 3>"$mnt/r4/held"; sleep 30) 2>/dev/null &
wpid=$!
wait_for 5 test -e "$mnt/r4/held"
cairnd_kill9 "$mnt"
kill "$wpid" 2>/dev/null
wait "$wpid" 2>/dev/null
start_down
"$FS" replaylog -m "$mnt" 2>&1 | sed 's/^/# /'
t_ok "$([ -e "$mnt/r4/held" ]; echo $?)" "r4: the acknowledged file is there after the restart"
wait_for 20 mode disconnected
t_ok $? "r4: the resend without an answer disconnected the mount"
back
t_ok $? "r4: reconnected and drained"
fresh_mount
t_ok "$([ -f "$F/r4/held" ]; echo $?)" "r4: the acknowledged create reached the server"
t_is "$("$FS" conflicts -m "$mnt" 2>&1)" "no conflicts" "r4: no conflict"
cairnd_umount "$F"

cairnd_umount "$mnt"
"$FSCK" --check "$cache" >"$T_DIR/fsck.out" 2>&1
t_is "$?" 0 "cairn-fsck finds the cache clean"
t_done
