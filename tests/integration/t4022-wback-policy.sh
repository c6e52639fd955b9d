#!/usr/bin/env bash
# t4022-wback-policy: the write mode of a mount and what waits for the
# server. write-mode from cairn.conf(5) and from fs setpolicy (bad values
# refused with exit 64 and nothing changed; uid 65534 may not change it);
# fs status shows the mode, the delay and the backlog (records, bytes, age
# of the oldest). In writeback mode with a long delay (30 s): close returns
# at once and the server does not have the file; fsync(2) returns once the
# server has it; fs sync PATH and fs flush PATH likewise; fs sync without
# a path drains everything. Switching back to sync answers once the log is
# drained, and a change after it is on the server when close returns.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 240
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

vold_start || exit 99
vos init >/dev/null 2>&1
vos create pol >/dev/null 2>&1 || exit 99
make_token pol rw "$T_DIR/tok"
A=$T_DIR/a
cat >"$T_DIR/cairnd.conf" <<CONF
[cairnd]
write-mode = writeback
writeback-delay = 30s
CONF
# A bad value in the file: cairnd refuses to start.
printf '[cairnd]\nwrite-mode = later\n' >"$T_DIR/bad.conf"
"$CAIRND" --server "$VOLD_URL" --volume pol --token "$T_DIR/tok" --cache "$T_DIR/cx" \
	--mountpoint "$T_DIR/x" --foreground --config "$T_DIR/bad.conf" >"$T_DIR/bad.out" 2>&1
rc=$?
t_ok "$([ "$rc" -ne 0 ] && grep -q write-mode "$T_DIR/bad.out" && echo 0 || echo 1)" \
	"write-mode = later is refused at start (exit $rc, names the key)"
"$CAIRND" --server "$VOLD_URL" --volume pol --token "$T_DIR/tok" --cache "$T_DIR/cx" \
	--mountpoint "$T_DIR/x" --foreground --writeback-delay 0 >"$T_DIR/bad2.out" 2>&1
t_ok "$([ $? -ne 0 ] && grep -q writeback-delay "$T_DIR/bad2.out" && echo 0 || echo 1)" \
	"--writeback-delay 0 is refused"
cairnd_mount "$A" "$T_DIR/ca" pol "$T_DIR/tok" --config "$T_DIR/cairnd.conf" || exit 1

fsj() { "$FS" "$@" --json -m "$A" 2>/dev/null; }
jst() { fsj status | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }
srv_has() { vos examine pol --json 2>/dev/null | python3 -c '
import json, sys
sys.exit(0 if json.load(sys.stdin)["files"] >= int(sys.argv[1]) else 1)' "$1"; }
srv_files() { vos examine pol --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["files"])'; }
nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
ms() { echo $(( $(date +%s%N) / 1000000 )); }

t_is "$(jst write_mode)|$(jst writeback_delay_ms)" "writeback|30000" "the config file sets writeback, 30 s"

# --- fs setpolicy: bad input ---
bad() { # STATUS DESC ARGS...: that exit status, nothing changed
	local want=$1 desc=$2; shift 2
	"$FS" setpolicy -m "$A" "$@" >"$T_DIR/bad.out" 2>&1
	t_is "$?" "$want" "fs setpolicy $desc: exit $want"
}
# values cairnd refuses: 65; a command line fs refuses: 64
bad 65 "--write-mode later" --write-mode later
bad 65 "write-mode=later" write-mode=later
bad 65 "--writeback-delay 0" --writeback-delay 0
bad 65 "--writeback-delay 2h" --writeback-delay 2h
bad 65 "--writeback-delay soon" --writeback-delay soon
bad 65 "writeback-delay=" writeback-delay=
bad 65 "an unknown policy" frobnicate=1
bad 64 "--write-mode without a value" --write-mode
bad 64 "with no setting at all"
bad 64 "with two NAME=VALUE" write-mode=sync offline-miss=error
t_is "$(jst write_mode)|$(jst writeback_delay_ms)" "writeback|30000" "and nothing changed"
nobody "$FS" setpolicy -m "$A" --write-mode sync >/dev/null 2>&1
t_is "$?" 77 "uid 65534 may not set the write mode (exit 77)"
t_is "$(jst write_mode)" writeback "still writeback"

# --- close does not wait; the backlog shows ---
n0=$(srv_files)
t0=$(ms)
echo closed >"$A/c1" || t_ok 1 "write c1"
t_ok "$([ $(( $(ms) - t0 )) -lt 2000 ] && echo 0 || echo 1)" "close returns at once"
sleep 0.3
t_is "$(srv_files)" "$n0" "the server does not have c1 yet"
t_ok "$([ "$(jst backlog_records)" -ge 1 ] && echo 0 || echo 1)" "fs status: backlog $(jst backlog_records) records"
t_ok "$([ "$(jst backlog_bytes)" -ge 7 ] && echo 0 || echo 1)" "fs status: backlog $(jst backlog_bytes) bytes"
t_ok "$([ "$(jst backlog_oldest_ms)" -ge 300 ] && echo 0 || echo 1)" "fs status: the oldest waits $(jst backlog_oldest_ms) ms"
"$FS" status -m "$A" >"$T_DIR/status.out" 2>&1
t_ok "$(grep -q 'write mode.*writeback' "$T_DIR/status.out" && grep -q 'backlog' "$T_DIR/status.out" && echo 0 || echo 1)" "fs status prints the mode and the backlog"

# --- fsync waits for the server ---
t0=$(ms)
python3 - "$A/f1" <<'PY' || t_ok 1 "fsync of f1"
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT, 0o644)
os.write(fd, b"fsynced\n")
os.fsync(fd)
os.close(fd)
PY
t_ok "$([ $(( $(ms) - t0 )) -lt 20000 ] && echo 0 || echo 1)" "fsync returned before the delay ($(( $(ms) - t0 )) ms)"
# c1 and f1 (and the root's change) are on the server now
t_ok "$(srv_has $((n0 + 2)) && echo 0 || echo 1)" "after fsync the server has the file"

# --- fs sync PATH, fs flush PATH, fs sync ---
echo two >"$A/c2"
t_check "fs sync PATH" "$FS" sync "$A/c2"
t_ok "$(srv_has $((n0 + 3)) && echo 0 || echo 1)" "after fs sync PATH the server has it"
echo three >"$A/c3"
t_check "fs flush PATH" "$FS" flush "$A/c3"
t_ok "$(srv_has $((n0 + 4)) && echo 0 || echo 1)" "after fs flush PATH the server has it"
mkdir "$A/dd" && for i in 1 2 3 4 5; do echo "$i" >"$A/dd/$i"; done
t_ok "$([ "$(jst backlog_records)" -ge 6 ] && echo 0 || echo 1)" "six changes wait"
t_check "fs sync (the whole mount)" "$FS" sync -m "$A"
t_is "$(jst backlog_records)" 0 "the backlog is empty"
t_ok "$(srv_has $((n0 + 10)) && echo 0 || echo 1)" "the server has them all"
"$FS" sync "$T_DIR" >/dev/null 2>&1
t_is "$?" 65 "fs sync of a path outside the mount: exit 65"
"$FS" sync "$A/nope" >/dev/null 2>&1
t_is "$?" 66 "fs sync of a missing path: exit 66"

# --- back to sync: drains first ---
for i in 1 2 3; do echo "$i" >"$A/s$i"; done
t_check "fs setpolicy --write-mode sync" "$FS" setpolicy -m "$A" --write-mode sync
t_is "$(jst write_mode)|$(jst backlog_records)" "sync|0" "sync now, and the log was drained first"
t_ok "$(srv_has $((n0 + 13)) && echo 0 || echo 1)" "the server has what was logged"
echo now >"$A/s4"
t_ok "$(srv_has $((n0 + 14)) && echo 0 || echo 1)" "in sync mode the server has a file when close returns"
t_check "fs setpolicy write-mode=writeback writeback-delay" "$FS" setpolicy -m "$A" --write-mode writeback --writeback-delay 200ms
t_is "$(jst write_mode)|$(jst writeback_delay_ms)" "writeback|200" "writeback again, 200 ms"
echo late >"$A/w1"
wait_for 5 srv_has $((n0 + 15))
t_ok "$?" "the change drains by itself within the delay"

cairnd_umount "$A"
t_done
