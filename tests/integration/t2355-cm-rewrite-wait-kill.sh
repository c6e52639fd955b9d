#!/usr/bin/env bash
# t2355-cm-rewrite-wait-kill: kill -9 of cairnd while a rewrite waits for
# the logged store of its file (doc/cm.md "A rewrite waits for the log").
# A writeback mount logs version 1 of f; fs sync sends it and a relay
# holds the server's answer; an O_TRUNC rewrite of f then waits; cairnd
# is killed. After a restart on the same cache the record is sent again
# and answered from the server's operation table: the server has version
# 1 once, no conflict, nothing left in the log, and the rewrite that
# was cut off changed nothing (its open never returned).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 150
umask 022
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

vol_setup rk
spoil_mode events
spoilproxy_start || exit 99
A=$T_DIR/a
mnt() { cairnd_mount "$A" "$T_DIR/ca" rk "$T_DIR/tok" --write-mode writeback \
	--writeback-delay 60s --fetch-timeout 30s; }
mnt || exit 1
t_version 1 0 200000 >"$T_DIR/v0"
t_version 1 1 400000 >"$T_DIR/v1"
t_version 1 2 100000 >"$T_DIR/v2"
cp "$T_DIR/v0" "$A/f" || exit 1
t_check "version 0 reaches the server" "$FS" sync -m "$A"
cp "$T_DIR/v1" "$A/f"
t_is "$?" 0 "version 1 written (its store logged)"
held() { cat "$T_DIR/proxy.req.held" 2>/dev/null | wc -l; }
held_more() { [ "$(held)" -gt "$1" ]; }
h=$(held)
spoil_mode events holdop
"$FS" sync -m "$A" >/dev/null 2>&1 &
t_track_pid "$!"
wait_for 20 held_more "$h"
t_ok "$([ "$(held)" -gt "$h" ] && echo 0 || echo 1)" "the store of version 1 went, its answer is held"
w0=$(cm_stat "$A" rewrite_waits)
python3 -c 'import os, sys
try:
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)
    os.write(fd, open(sys.argv[2], "rb").read())
    os.close(fd)
    print("ok")
except OSError as e:
    print(e)' "$A/f" "$T_DIR/v2" >"$T_DIR/rw.out" 2>&1 &
t_track_pid "$!"
wait_for 10 cm_stat_more "$A" rewrite_waits "${w0:-0}"
sleep 0.5
t_ok "$([ "$(cm_stat "$A" rewrite_waits)" -gt "${w0:-0}" ] && [ ! -s "$T_DIR/rw.out" ] && echo 0 || echo 1)" \
	"the rewrite waits for the held answer"
cairnd_kill9 "$A"
spoil_mode events
wait_for 10 test -s "$T_DIR/rw.out"
t_ok "$([ "$(cat "$T_DIR/rw.out")" != ok ] && echo 0 || echo 1)" \
	"the rewrite was cut off with cairnd ($(cat "$T_DIR/rw.out"))"

mnt || exit 1
t_check "the log drains after the restart" "$FS" sync -m "$A"
t_is "$(sha256sum <"$A/f")" "$(sha256sum <"$T_DIR/v1")" "A reads version 1"
t_is "$(cm_stat "$A" conflicts)" 0 "no conflict"
VOLD_URL=$real_url
B=$T_DIR/b
cairnd_mount "$B" "$T_DIR/cb" rk "$T_DIR/tok" || exit 1
t_is "$(sha256sum <"$B/f")" "$(sha256sum <"$T_DIR/v1")" "the server has version 1"
t_is "$(ls "$B" | grep -c conflict)" 0 "no conflict copy"
jst() { "$FS" status --json -m "$A" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }
t_is "$(jst backlog_records)|$(jst conflicts)" "0|0" "nothing left in A's log, no conflict in it"
t_done
