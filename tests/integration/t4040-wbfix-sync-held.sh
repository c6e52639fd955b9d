#!/usr/bin/env bash
# sync mode, fs sync while a late create is held.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 200
vold_start || exit 99
vos init >/dev/null 2>&1
vos create rv >/dev/null 2>&1 || exit 99
make_token rv rw "$T_DIR/tok"
A=$T_DIR/a
cairnd_mount "$A" "$T_DIR/ca" rv "$T_DIR/tok" || exit 1
mkdir "$A/d" && ls "$A/d" >/dev/null
python3 - "$A/d/f" "$T_DIR/go" "$T_DIR/done" <<'PY' >"$T_DIR/py.out" 2>&1 &
import os, sys, time
fd = os.open(sys.argv[1], os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, b"hello world\n")
open(sys.argv[2], "w").close()
while not os.path.exists(sys.argv[3]):
    time.sleep(0.01)
try:
    os.close(fd)
    print("close ok")
except OSError as e:
    print("close failed", e)
PY
wp=$!
while [ ! -e "$T_DIR/go" ]; do sleep 0.01; done
"$FS" sync -m "$A" >"$T_DIR/sync.out" 2>&1; echo "# fs sync rc=$? $(cat "$T_DIR/sync.out")"
sleep 0.3
touch "$T_DIR/done"; wait $wp
sed 's/^/# /' "$T_DIR/py.out"
t_is "$(grep -c 'close ok' "$T_DIR/py.out")" 1 "close returned 0"
t_is "$(ls "$A/d" | tr '\n' ' ')" "f " "no conflict copy"
B=$T_DIR/b
cairnd_mount "$B" "$T_DIR/cb" rv "$T_DIR/tok" || exit 1
t_is "$(cat "$B/d/f" 2>&1)" "hello world" "the server has the data"
cairnd_umount "$B"
cairnd_umount "$A"
t_done
