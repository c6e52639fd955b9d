#!/usr/bin/env bash
# t5016-svc-reload-write: SIGHUP applies a changed write policy of the
# config file (write-mode, writeback-delay, log-sync) to the running mount,
# as `fs setpolicy` would; a SIGHUP with those lines unchanged keeps what
# `fs setpolicy` set since; a bad value changes nothing; going back to
# sync sends the logged changes first.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 120

vold_start || exit 99
vos init >/dev/null 2>&1
vos create rw5 >/dev/null || exit 99
tok=$T_DIR/tok
make_token rw5 rw "$tok"
conf=$T_DIR/cairnd.conf
printf '[cairnd]\nwrite-mode = sync\n' >"$conf"
mnt=$T_DIR/mnt
log=$T_DIR/cairnd-mnt.log
cairnd_mount "$mnt" "$T_DIR/cache" rw5 "$tok" --config "$conf" || exit 99
pid=$(cairnd_pid "$mnt")
st() { "$FS" status --json -m "$mnt" 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); print("|".join(str(d.get(k, "")) for k in sys.argv[1:]))' "$@"; }
export VC_URL=$VOLD_URL VC_VOL=rw5 VC_TOKEN=$(cat "$tok")
on_server() { vc lookup "$(vc root)" "$1" >/dev/null 2>&1; }

t_is "$(st write_mode writeback_delay_ms log_sync)" "sync|1000|op" "started as the file says"

# Writeback with a long delay and log-sync close, from the file.
printf '[cairnd]\nwrite-mode = writeback\nwriteback-delay = 30s\nlog-sync = close\n' >"$conf"
kill -HUP "$pid"
t_check "log: write-mode is now writeback" wait_for 10 grep -q "reload: write-mode is now 'writeback'" "$log"
t_check "log: reload done" wait_for 10 grep -q "reload done" "$log"
t_check "fs status: writeback, 30 s, close" wait_for 5 sh -c "[ \"\$(\"$FS\" status --json -m '$mnt' | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d[\"write_mode\"], d[\"writeback_delay_ms\"], d[\"log_sync\"])')\" = 'writeback 30000 close' ]"
t_is "$(grep -c "cannot change while mounted" "$log")" 0 "no 'cannot change while mounted' line for the write policy"
echo one >"$mnt/one.txt"
t_ok $? "a write in writeback"
sleep 0.5
t_ok "$(on_server one.txt && echo 1 || echo 0)" "it waits in the log (30 s delay), not on the server yet"
t_ok "$([ "$(st backlog_records)" -ge 1 ] && echo 0 || echo 1)" "fs status shows a backlog"

# fs setpolicy at run time, then SIGHUP with the same file: kept.
"$FS" setpolicy -m "$mnt" --writeback-delay 20s >/dev/null
t_is "$(st writeback_delay_ms)" "20000" "fs setpolicy sets 20 s"
kill -HUP "$pid"
t_check "second reload done" wait_for 10 sh -c "[ \$(grep -c 'reload done' '$log') -ge 2 ]"
t_is "$(st write_mode writeback_delay_ms)" "writeback|20000" "an unchanged file keeps what fs setpolicy set"

# A bad value: nothing changes.
printf '[cairnd]\nwrite-mode = fast\nwriteback-delay = 1s\n' >"$conf"
kill -HUP "$pid"
t_check "log: the bad value is refused" wait_for 10 grep -q "reload failed, the running settings stay: .*write-mode must be sync or writeback" "$log"
t_is "$(st write_mode writeback_delay_ms log_sync)" "writeback|20000|close" "the running policy stays"

# Back to sync from the file: the logged write goes to the server first.
printf '[cairnd]\nwrite-mode = sync\n' >"$conf"
kill -HUP "$pid"
t_check "log: write-mode is sync after the log was sent" wait_for 15 grep -q "reload: write-mode is sync" "$log"
t_check "the logged write is on the server" on_server one.txt
t_is "$(st write_mode writeback_delay_ms log_sync backlog_records)" "sync|1000|op|0" "sync, 1 s, op, empty log"
echo two >"$mnt/two.txt"
t_check "in sync mode a close puts the file on the server" on_server two.txt
t_is "$(vc cat "$(vc lookup "$(vc root)" one.txt)")" "one" "the server has one.txt's bytes"
t_check "same process throughout" kill -0 "$pid"
cairnd_umount "$mnt"
t_done
