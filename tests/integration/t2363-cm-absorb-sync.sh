#!/usr/bin/env bash
# t2363-cm-absorb-sync: sync mode, the server stops answering during a
# close; the store is absorbed by the disconnect and close returns 0
# (doc/cm.md "Going offline"). That close counts as logged, so before it
# returns cairnd must have synced the file's chunks and the replay log's
# journal (the record was appended without fsync for a connected send):
# checked by tracing cairnd's fsync/fdatasync calls during the close.
# Then the server comes back, the store is replayed, and a fresh client
# reads the data.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 200
command -v strace >/dev/null || { echo "# SKIP: no strace"; exit 77; }
vold_start || exit 99
vos init >/dev/null 2>&1
vos create av >/dev/null || exit 99
make_token av rw "$T_DIR/tok"
A=$T_DIR/a B=$T_DIR/b
cairnd_mount "$A" "$T_DIR/ca" av "$T_DIR/tok" --fetch-timeout 1s || exit 1
echo base >"$A/f" || exit 1
t_is "$(cat "$A/f")" base "stored while connected"
pid=$(cairnd_pid "$A")
python3 - "$A/f" "$VOLD_PID" "$T_DIR" "$pid" <<'PY' >"$T_DIR/py.out" 2>&1 &
import os, signal, subprocess, sys, time
path, vold, tdir, cm = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
# strace first: a child forked while the file is open would close it, a
# flush that stores the file before the server stops
st = subprocess.Popen(["strace", "-f", "-y", "-qq", "-e", "trace=fsync,fdatasync",
                       "-o", tdir + "/strace.out", "-p", cm])
time.sleep(1.5)                      # attached
fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
os.write(fd, b"written while the server went away\n" * 1000)
os.kill(vold, signal.SIGSTOP)
open(tdir + "/stopped", "w").close()
t0 = time.time()
try:
    os.close(fd)
    print("close rc 0")
except OSError as e:
    print("close error", e.errno)
print("close took %.1f s" % (time.time() - t0))
st.terminate()
st.wait()
PY
ppid=$!
wait "$ppid"
sed 's/^/# /' "$T_DIR/py.out"
t_is "$(grep -c '^close rc 0' "$T_DIR/py.out")" 1 "the close was absorbed: returned 0"
t_ok "$(grep -q 'fdatasync.*\.jnl>' "$T_DIR/strace.out"; echo $?)" "the replay log's journal was synced before it returned"
t_ok "$(grep -Eq 'f(data)?sync\([0-9]+<[^>]*/chunks/[0-9a-f]{2}/[0-9a-f]+(\.wip)?>' "$T_DIR/strace.out"; echo $?)" "a chunk file was synced before it returned"
grep -E 'sync' "$T_DIR/strace.out" | sed 's/^/#   /' | head -20
t_is "$("$FS" status --json -m "$A" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get("mode",""))')" disconnected "cairnd is disconnected"
kill -CONT "$VOLD_PID"
t_is "$(head -c 35 "$A/f")" "written while the server went away" "the local file has the data"
wait_for 60 sh -c "[ \"\$('$FS' status --json -m '$A' 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get(\"replay_pending\", 1))')\" = 0 ]"
cairnd_mount "$B" "$T_DIR/cb" av "$T_DIR/tok" || exit 1
wait_for 30 sh -c "[ \"\$(head -c 35 '$B/f' 2>/dev/null)\" = 'written while the server went away' ]"
t_ok $? "after the server came back, a fresh client reads the data"
cairnd_umount "$B"
cairnd_umount "$A"
t_done
