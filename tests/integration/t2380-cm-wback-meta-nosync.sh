#!/usr/bin/env bash
# t2380-cm-wback-meta-nosync: in writeback mode a metadata op's replay-log
# record is appended without an fdatasync of its own (session 11, doc/cm.md
# "Which appends sync"): it survives kill -9 of cairnd at once, and power
# loss once the next synced commit covers it (a store at close, a close or
# fsync answered from the log, the drain's clock within 0.25 s). Checked
# here: (1) 200 mkdirs make 200 commits but far fewer fdatasyncs
# (cairnd_replay_log_syncs_total); (2) a close of a written file syncs;
# (3) kill -9 right after the ops loses none of them, and the drain sends
# each once; (4) disconnected, every op is synced as it is logged.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 300
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

vol_setup wns
A=$T_DIR/a
CA=$T_DIR/ca
mnt() { cairnd_mount "$A" "$CA" wns "$T_DIR/tok" --write-mode writeback --writeback-delay 60s; }
# a counter's value (the family may carry a volume label)
metric() { "$FS" metrics -m "$A" 2>/dev/null | awk -v m="$1" 'index($1, m) == 1 && substr($1, length(m) + 1, 1) ~ /^(\{|)$/ { print $2; exit }'; }
jst() { "$FS" status --json -m "$A" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }
mnt || exit 1
t_is "$(jst write_mode)" writeback "write mode writeback"

# (1) 200 mkdirs from one process: each a commit, not each a sync. The
# drain's clock syncs at most once a tick (10-250 ms), so unless a mkdir
# took over 100 ms on average, fewer than half as many syncs as commits.
c0=$(metric cairnd_replay_log_commits_total)
s0=$(metric cairnd_replay_log_syncs_total)
t_ok "$([ -n "$c0" ] && [ -n "$s0" ] && echo 0 || echo 1)" "fs metrics has commits ($c0) and syncs ($s0)"
python3 - "$A/m" <<'PY' || exit 1
import os, sys
os.mkdir(sys.argv[1])
for i in range(200):
    os.mkdir(os.path.join(sys.argv[1], "d%03d" % i))
PY
c1=$(metric cairnd_replay_log_commits_total)
s1=$(metric cairnd_replay_log_syncs_total)
dc=$((c1 - c0)) ds=$((s1 - s0))
t_ok "$([ "$dc" -ge 201 ] && echo 0 || echo 1)" "201 mkdirs: at least 201 commits ($dc)"
t_ok "$([ $((ds * 2)) -lt "$dc" ] && echo 0 || echo 1)" "fewer than half as many fdatasyncs ($ds)"
# within a tick (at most 250 ms) the clock has synced them
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
mnt || exit 1
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
t_is "$(stat -c %a "$C/m/d150")|$(cat "$C/m/f" | wc -c)" "700|5000" "and the mode and the file's bytes"
cairnd_umount "$C"

# (4) disconnected: each op is synced as it is logged
"$FS" disconnect -m "$A" >/dev/null 2>&1
c4=$(metric cairnd_replay_log_commits_total)
s4=$(metric cairnd_replay_log_syncs_total)
python3 - "$A/m" <<'PY' || exit 1
import os, sys
for i in range(10):
    os.mkdir(os.path.join(sys.argv[1], "off%d" % i))
PY
c5=$(metric cairnd_replay_log_commits_total)
s5=$(metric cairnd_replay_log_syncs_total)
t_ok "$([ $((s5 - s4)) -ge 10 ] && [ $((c5 - c4)) -ge 10 ] && echo 0 || echo 1)" "disconnected: 10 mkdirs, 10 syncs or more ($((c5 - c4)) commits, $((s5 - s4)) syncs)"
"$FS" reconnect -m "$A" >/dev/null 2>&1
cairnd_umount "$A"
t_done
