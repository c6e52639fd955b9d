#!/usr/bin/env bash
# t2380-cm-wback-log-sync: the log-sync policy of writeback mode
# (cairnd(8) "WRITE MODES", doc/cm.md "Which appends sync").
# log-sync=op (the default): every op is durable in the local replay log
# when it returns, one fdatasync a metadata op (syncs == commits).
# log-sync=close: a metadata op's record is appended without a sync of its
# own; it survives kill -9 of cairnd at once, and a power cut once the next
# synced commit covers it (a store at close, a close or fsync answered from
# the log, the drain's clock within 0.25 s, a disconnect). Checked: the
# config file, the command line and fs setpolicy set it and refuse an
# unknown value; op: syncs == commits; close: 200 mkdirs make 200 commits
# but far fewer fdatasyncs, a lone mkdir is synced by the clock, a close
# syncs, kill -9 right after the ops loses none and the drain sends each
# once, disconnected each op is synced; back to op at run time.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 300
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

# --- the config file and the command line ---
printf 'log-sync = close\n' >"$T_DIR/good.conf"
printf 'log-sync = never\n' >"$T_DIR/bad.conf"
t_is "$("$CAIRND" --config "$T_DIR/good.conf" --show-config 2>/dev/null | awk '$1 == "log-sync" {print $3}')" close "config file: log-sync = close"
t_is "$("$CAIRND" --config "$T_DIR/good.conf" --log-sync op --show-config 2>/dev/null | awk '$1 == "log-sync" {print $3}')" op "the command line overrides it"
t_is "$("$CAIRND" --config /dev/null --show-config 2>/dev/null | awk '$1 == "log-sync" {print $3}')" op "op by default"
"$CAIRND" --config "$T_DIR/bad.conf" --show-config >/dev/null 2>"$T_DIR/bad.err"
t_is "$?" 78 "config file: log-sync = never refused (exit 78)"
t_ok "$(grep -q "bad.conf:1': log-sync must be op or close" "$T_DIR/bad.err" && echo 0 || echo 1)" "with the file, line and the values ($(head -c 120 "$T_DIR/bad.err"))"
"$CAIRND" --config /dev/null --log-sync often --show-config >/dev/null 2>"$T_DIR/bad2.err"
t_is "$?" 64 "--log-sync often refused (exit 64)"
t_ok "$(grep -q "log-sync must be op or close" "$T_DIR/bad2.err" && echo 0 || echo 1)" "with the values"

vol_setup wns
A=$T_DIR/a
CA=$T_DIR/ca
mnt() { cairnd_mount "$A" "$CA" wns "$T_DIR/tok" --write-mode writeback --writeback-delay 60s "$@"; }
# a counter's value (the family may carry a volume label)
metric() { "$FS" metrics -m "$A" 2>/dev/null | awk -v m="$1" 'index($1, m) == 1 && substr($1, length(m) + 1, 1) ~ /^(\{|)$/ { print $2; exit }'; }
jst() { "$FS" status --json -m "$A" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }
mkdirs() { # DIR FIRST N: mkdir DIR/dFIRST.. from one process
	python3 - "$@" <<'PY'
import os, sys
d, a, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(d, exist_ok=True)
for i in range(a, a + n):
    os.mkdir(os.path.join(d, "d%03d" % i))
PY
}
mnt || exit 1
t_is "$(jst write_mode)|$(jst log_sync)" "writeback|op" "writeback, log-sync op by default"

# --- log-sync=op: every metadata op synced before it returns ---
mkdir "$A/o" || exit 1
c0=$(metric cairnd_replay_log_commits_total)
s0=$(metric cairnd_replay_log_syncs_total)
t_ok "$([ -n "$c0" ] && [ -n "$s0" ] && echo 0 || echo 1)" "fs metrics has commits ($c0) and syncs ($s0)"
mkdirs "$A/o" 0 100 || exit 1
c1=$(metric cairnd_replay_log_commits_total)
s1=$(metric cairnd_replay_log_syncs_total)
t_ok "$([ $((c1 - c0)) -ge 100 ] && echo 0 || echo 1)" "op: 100 mkdirs, at least 100 commits ($((c1 - c0)))"
t_is "$((s1 - s0))" "$((c1 - c0))" "op: one fdatasync each (syncs == commits)"

# --- fs setpolicy: bad input, nothing changed ---
bad() { # DESC ARG MESSAGE: exit 65, the message, nothing changed
	"$FS" setpolicy -m "$A" "$2" >"$T_DIR/sp.out" 2>&1
	t_is "$?" 65 "fs setpolicy $1: exit 65"
	t_ok "$(grep -q "$3" "$T_DIR/sp.out" && echo 0 || echo 1)" "says $3 ($(head -c 100 "$T_DIR/sp.out"))"
}
bad "log-sync=never" log-sync=never "log-sync is op or close"
bad "log-sync=CLOSE" log-sync=CLOSE "log-sync is op or close"
# an empty value is the control protocol's to refuse (doc/control.md)
bad "log-sync=" log-sync= "'value' must be 1 to 4096 bytes"
"$FS" setpolicy -m "$A" logsync=close >"$T_DIR/sp.out" 2>&1
t_is "$?" 65 "a misspelt name: exit 65"
t_ok "$(grep -q "known: .*log-sync" "$T_DIR/sp.out" && echo 0 || echo 1)" "lists log-sync among the known policies"
t_is "$(jst log_sync)" op "still op"

# --- log-sync=close at run time ---
t_is "$("$FS" setpolicy -m "$A" log-sync=close 2>&1)" "log-sync=close" "fs setpolicy log-sync=close"
t_is "$(jst log_sync)" close "fs status --json says close"
t_ok "$("$FS" status -m "$A" 2>/dev/null | grep -q 'log-sync close' && echo 0 || echo 1)" "fs status says log-sync close"

# (1) 200 mkdirs from one process: each a commit, not each a sync. The
# drain's clock syncs at most once a tick (10-250 ms), so unless a mkdir
# took over 100 ms on average, fewer than half as many syncs as commits.
c0=$(metric cairnd_replay_log_commits_total)
s0=$(metric cairnd_replay_log_syncs_total)
mkdirs "$A/m" 0 200 || exit 1
c1=$(metric cairnd_replay_log_commits_total)
s1=$(metric cairnd_replay_log_syncs_total)
dc=$((c1 - c0)) ds=$((s1 - s0))
t_ok "$([ "$dc" -ge 201 ] && echo 0 || echo 1)" "close: 201 mkdirs, at least 201 commits ($dc)"
t_ok "$([ $((ds * 2)) -lt "$dc" ] && echo 0 || echo 1)" "fewer than half as many fdatasyncs ($ds)"
# One more mkdir, unsynced when it returns: the drain's clock syncs it
# within a tick (no close, no fsync comes). A sync before it finds
# nothing to sync and does not count, so the counter moves past the value
# read before the mkdir only by syncing it.
synced_past() { [ "$(metric cairnd_replay_log_syncs_total)" -gt "$1" ]; }
sb=$(metric cairnd_replay_log_syncs_total)
mkdir "$A/m/one" || exit 1
ok=1
for _ in $(seq 1 50); do synced_past "$sb" && { ok=0; break; }; sleep 0.1; done
t_ok "$ok" "the drain's clock synced a lone mkdir within 5 s"

# (2) a file written and closed: the store's append is synced before
# close returns (the metric moved by the time close returned)
s2=$(metric cairnd_replay_log_syncs_total)
python3 - "$A/m/f" <<'PY' || exit 1
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
os.write(fd, b"x" * 5000)
os.close(fd)
PY
s3=$(metric cairnd_replay_log_syncs_total)
t_ok "$([ "$s3" -gt "$s2" ] && echo 0 || echo 1)" "a close of a written file synced the log ($s2 -> $s3)"

# (3) more ops, then kill -9 at once: every one is back after the restart
python3 - "$A/m" <<'PY' || exit 1
import os, sys
d = sys.argv[1]
for i in range(50):
    os.rename(os.path.join(d, "d%03d" % i), os.path.join(d, "r%03d" % i))
for i in range(50, 100):
    os.rmdir(os.path.join(d, "d%03d" % i))
for i in range(20):
    open(os.path.join(d, "e%02d" % i), "w").close()
os.chmod(os.path.join(d, "d150"), 0o700)
PY
cairnd_kill9 "$A"
# back with log-sync=close from the command line
mnt --log-sync close || exit 1
t_is "$(jst log_sync)" close "--log-sync close on the command line"
want="$(cd "$A/m" 2>/dev/null && ls | sort | tr '\n' ' ')"
exp="$(python3 -c '
n = ["r%03d" % i for i in range(50)] + ["d%03d" % i for i in range(100, 200)] + ["e%02d" % i for i in range(20)] + ["f", "one"]
print(" ".join(sorted(n)) + " ")')"
t_is "$want" "$exp" "after kill -9: every rename, rmdir and create is there"
t_is "$(stat -c %a "$A/m/d150")" 700 "and the chmod"
"$FS" sync -m "$A" >/dev/null 2>&1
t_is "$(jst backlog_records)|$(jst conflicts)" "0|0" "drained, no conflicts"
C=$T_DIR/c
cairnd_mount "$C" "$T_DIR/cc" wns "$T_DIR/tok" || exit 1
t_is "$(cd "$C/m" && ls | sort | tr '\n' ' ')" "$exp" "a fresh client sees the same names on the server"
t_is "$(stat -c %a "$C/m/d150")|$(wc -c <"$C/m/f")" "700|5000" "and the mode and the file's bytes"
cairnd_umount "$C"

# (4) disconnected: each op is synced as it is logged, log-sync or not
"$FS" disconnect -m "$A" >/dev/null 2>&1
c4=$(metric cairnd_replay_log_commits_total)
s4=$(metric cairnd_replay_log_syncs_total)
mkdirs "$A/off" 0 10 || exit 1
c5=$(metric cairnd_replay_log_commits_total)
s5=$(metric cairnd_replay_log_syncs_total)
t_ok "$([ $((s5 - s4)) -ge 11 ] && [ $((c5 - c4)) -ge 11 ] && echo 0 || echo 1)" "disconnected: 11 mkdirs, 11 syncs or more ($((c5 - c4)) commits, $((s5 - s4)) syncs)"
"$FS" reconnect -m "$A" >/dev/null 2>&1
t_is "$(jst mode)" connected "reconnected"
"$FS" sync -m "$A" >/dev/null 2>&1
t_is "$(jst backlog_records)|$(jst conflicts)" "0|0" "the disconnected mkdirs drained"

# --- back to op at run time: each op synced again ---
t_is "$("$FS" setpolicy -m "$A" log-sync=op 2>&1)" "log-sync=op" "fs setpolicy log-sync=op"
c6=$(metric cairnd_replay_log_commits_total)
s6=$(metric cairnd_replay_log_syncs_total)
mkdirs "$A/o" 100 30 || exit 1
c7=$(metric cairnd_replay_log_commits_total)
s7=$(metric cairnd_replay_log_syncs_total)
# (the drain's removals may commit unsynced meanwhile: count the syncs)
t_ok "$([ $((c7 - c6)) -ge 30 ] && echo 0 || echo 1)" "op again: 30 mkdirs, at least 30 commits ($((c7 - c6)))"
t_ok "$([ $((s7 - s6)) -ge 30 ] && echo 0 || echo 1)" "op again: a sync each ($((s7 - s6)) syncs)"
cairnd_umount "$A"
t_done
