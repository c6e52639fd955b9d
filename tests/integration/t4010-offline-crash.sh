#!/usr/bin/env bash
# t4010-offline-crash: cairnd killed (kill -9) while disconnected and in
# the middle of a reintegration. Disconnected by hand, 150 files are
# created and written (300 records); cairnd is killed and restarted (the
# log and the data are intact); fs reconnect starts the replay and cairnd
# is killed once
# some of it is done. After the restart the mount is still disconnected,
# the log holds the rest, and a second fs reconnect finishes it: the
# server then has every file exactly once with its content, and no record
# became a conflict (an op resent after the crash carries its opid, so the
# server does not apply it twice).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 240
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }
N=150

vold_start || exit 99
vos init >/dev/null 2>&1
vos create crash >/dev/null || exit 99
make_token crash rw "$T_DIR/tok"
A=$T_DIR/a
cairnd_mount "$A" "$T_DIR/ca" crash "$T_DIR/tok" || exit 1
jst() { "$FS" status --json -m "$A" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }

mkdir "$A/d" || exit 1
ls "$A/d" >/dev/null
t_check "fs disconnect" "$FS" disconnect -m "$A"
for i in $(seq 1 $N); do printf 'file %d\n' "$i" >"$A/d/f$i" || break; done
t_is "$(ls "$A/d" | wc -l)" "$N" "$N files made offline"
pending=$(jst replay_pending)
t_ok "$([ "${pending:-0}" -ge $N ] && echo 0 || echo 1)" "they are in the replay log ($pending records)"

# kill -9 while disconnected: every change made offline is still there.
cairnd_kill9 "$A"
cairnd_mount "$A" "$T_DIR/ca" crash "$T_DIR/tok" || exit 1
t_is "$(jst mode)|$(jst replay_pending)" "disconnected|$pending" "kill -9 while offline: mode and log intact"
t_is "$(cat "$A/d/f$N" 2>&1)" "file $N" "kill -9 while offline: the data is intact"

"$FS" reconnect -m "$A" >"$T_DIR/reconnect1.out" 2>&1 &
rpid=$!
# Kill once part of the log is replayed (bounded: 30 s).
done_=0
for _ in $(seq 1 600); do
	done_=$(jst replay_done)
	[ "${done_:-0}" -ge 40 ] && break
	[ "$(jst mode)" = connected ] && break
	sleep 0.05
done
mode=$(jst mode)
cairnd_kill9 "$A"
wait "$rpid" 2>/dev/null
echo "# killed at $done_ records replayed (mode was $mode)"
t_is "$mode" reintegrating "killed in the middle of reintegration"

cairnd_mount "$A" "$T_DIR/ca" crash "$T_DIR/tok" || exit 1
t_is "$(jst mode)" disconnected "after the restart: disconnected (as it was)"
left=$(jst replay_pending)
t_ok "$([ "${left:-0}" -gt 0 ] && [ "${left:-0}" -lt "${pending:-0}" ] && echo 0 || echo 1)" \
	"the log holds the rest ($left of $pending records)"
t_check "fs reconnect again" "$FS" reconnect -m "$A"
t_is "$(jst mode)" connected "connected"
t_is "$(jst replay_pending)|$(jst conflicts)" "0|0" "the log is empty, no conflicts"

C=$T_DIR/c
cairnd_mount "$C" "$T_DIR/cc" crash "$T_DIR/tok" || exit 1
t_is "$(ls "$C/d" | wc -l)" "$N" "the server has $N files, no more"
bad=0
for i in $(seq 1 $N); do
	[ "$(cat "$C/d/f$i" 2>/dev/null)" = "file $i" ] || bad=$((bad + 1))
done
t_is "$bad" 0 "every file has its content"
cairnd_umount "$C"
cairnd_umount "$A"
t_done
