#!/usr/bin/env bash
# writeback: fs sync PATH waits for the server to have the change, also
# when the record it waits for is merged into a newer one (a second
# close while it waits). Offline so the order is fixed: fs sync waits,
# the second store merges into a new record, then the reconnection
# replays a big store and f's in one batch; fs sync must not answer
# before that batch is in. What the server has is read from the server
# itself (vol-client.py), not through B: B learns of the store from the
# event stream, which a loaded machine delays past the moment fs sync
# returns (a stale "old-data" through B failed this test under load 11).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 250
vold_start || exit 99
vos init >/dev/null 2>&1
vos create rv >/dev/null 2>&1 || exit 99
make_token rv rw "$T_DIR/tok"
A=$T_DIR/a B=$T_DIR/b
cairnd_mount "$A" "$T_DIR/ca" rv "$T_DIR/tok" --write-mode writeback --writeback-delay 1h || exit 1
cairnd_mount "$B" "$T_DIR/cb" rv "$T_DIR/tok" || exit 1
echo old-data >"$A/f"
t_check "first sync" "$FS" sync -m "$A"
t_is "$(cat "$B/f")" old-data "B sees f"
t_check "fs disconnect" "$FS" disconnect -m "$A"
head -c $((64 << 20)) /dev/urandom >"$A/big"
pid=$(cairnd_pid "$A")
export VC_URL=$VOLD_URL VC_VOL=rv VC_TOKEN
VC_TOKEN=$(cat "$T_DIR/tok")
F_FID=$(vc lookup "$(vc root)" f) || exit 99
python3 - "$A" "$pid" "$F_FID" "$FS" "$top_srcdir/tests/integration/vol-client.py" <<'PY' >"$T_DIR/py.out" 2>&1
import os, sys, threading, time, signal, subprocess
a, pid, fid, fs, vc = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
with open(a + "/f", "r+b") as f:
    f.write(b"NEWDATA1\n")
res = {}
def t():
    r = subprocess.run([fs, "sync", a + "/f"], capture_output=True, text=True)
    os.kill(pid, signal.SIGSTOP)
    res["rc"] = r.returncode
    try:
        res["got"] = subprocess.run([sys.executable, vc, "cat", fid],
                                    capture_output=True, text=True).stdout.strip()
    finally:
        os.kill(pid, signal.SIGCONT)
th = threading.Thread(target=t); th.start()
time.sleep(1)
with open(a + "/f", "r+b") as f:   # merges into a new store record
    f.write(b"NEWDATA2\n")
time.sleep(0.5)
print("alive before reconnect:", th.is_alive())
subprocess.run([fs, "reconnect", "-m", a], capture_output=True)
th.join(120)
print("fs sync rc", res.get("rc"))
print("server while A was stopped:", res.get("got"))
PY
sed 's/^/# /' "$T_DIR/py.out"
t_is "$(sed -n 's/^alive before reconnect: //p' "$T_DIR/py.out")" True "fs sync waits while offline"
t_is "$(sed -n 's/^fs sync rc //p' "$T_DIR/py.out")" 0 "fs sync returned 0"
t_is "$(sed -n 's/^server while A was stopped: //p' "$T_DIR/py.out")" NEWDATA2 "when fs sync returned, the server had the data"
"$FS" sync -m "$A" >/dev/null 2>&1
t_is "$(cat "$B/f")" NEWDATA2 "B reads the data"
cairnd_umount "$B"
cairnd_umount "$A"
t_done
