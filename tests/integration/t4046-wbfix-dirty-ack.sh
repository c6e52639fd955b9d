#!/usr/bin/env bash
# writeback: a file's store is acknowledged while the file is being
# written again (open, dirty, no new store logged yet); cairnd is then
# killed (the second write committed by the file's 1 s checkpoint: a
# write a close, fsync or checkpoint did not commit is lost to kill -9,
# doc/cm.md "Data"). The write state must have moved to the DV that store gave:
# after the restart the dirty data is stored on that base, not refused
# as stale against the old one.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 200
vold_start || exit 99
vos init >/dev/null 2>&1
vos create rv >/dev/null 2>&1 || exit 99
make_token rv rw "$T_DIR/tok"
A=$T_DIR/a
jst() { "$FS" status --json -m "$A" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }
cairnd_mount "$A" "$T_DIR/ca" rv "$T_DIR/tok" --write-mode writeback --writeback-delay 1h || exit 1
echo one >"$A/f"
t_check "first sync" "$FS" sync -m "$A"
python3 - "$A/f" "$T_DIR/go" "$T_DIR/done" <<'PY' >"$T_DIR/py.out" 2>&1 &
import os, sys, time
p, go, done = sys.argv[1:4]
with open(p, "r+b") as f:          # store 1: "two\n", logged at close
    f.write(b"two\n")
fd = os.open(p, os.O_WRONLY)        # written again, not closed
os.pwrite(fd, b"more\n", 4)
time.sleep(1.2)                     # the next write checkpoints the file
os.pwrite(fd, b"more\n", 4)
open(go, "w").close()
while not os.path.exists(done):
    time.sleep(0.05)
PY
wp=$!
wait_for 20 test -e "$T_DIR/go" || { t_ok 1 "the writer started"; t_done; }
t_check "store 1 drained while the file is dirty" "$FS" sync -m "$A"
cairnd_kill9 "$A"
touch "$T_DIR/done"; kill "$wp" 2>/dev/null; wait "$wp" 2>/dev/null
cairnd_mount "$A" "$T_DIR/ca" rv "$T_DIR/tok" --write-mode writeback --writeback-delay 1h || exit 1
"$FS" sync -m "$A"; echo "# fs sync rc=$?"
t_is "$(jst conflicts)" 0 "no conflict"
t_is "$(ls "$A" | tr '\n' ' ')" "f " "no conflict copy"
B=$T_DIR/b
cairnd_mount "$B" "$T_DIR/cb" rv "$T_DIR/tok" || exit 1
t_is "$(cat "$B/f" | tr '\n' ' ')" "two more " "the server has both writes"
cairnd_umount "$B"
cairnd_umount "$A"
t_done
