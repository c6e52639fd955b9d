#!/usr/bin/env bash
# t2332-cm-fsck-lock: cairn-fsck holds the cache folder's lock across both
# of its checks, the chunk store's and the metadata caches' (meta.tdb):
#   - while `cairn-fsck --repair` is inside the meta.tdb check (held there
#     by a full 4 KiB stdout pipe no one reads), a cairnd started on the
#     cache is refused ("in use by another process") and the repair then
#     completes;
#   - while cairnd has the cache mounted, cairn-fsck --check and --repair
#     are refused (exit 8) and check no metadata cache;
#   - a meta.tdb left in the middle of a transaction is noted as needing
#     recovery by --check (which changes nothing), not "would be removed";
#     --repair recovers it and keeps it.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 180
META=$top_srcdir/tests/integration/t2331-meta.py

src=$T_DIR/src
mkdir -p "$src/d"
for i in $(seq 1 300); do echo "$i" >"$src/d/f$i"; done
vos init >/dev/null 2>&1
vos import lk "$src" >/dev/null || exit 99
vold_start
make_token lk rw "$T_DIR/tok"
mnt=$T_DIR/mnt
cache=$T_DIR/cache

cairnd_mount "$mnt" "$cache" lk "$T_DIR/tok" || exit 1
ls -f "$mnt/d" | grep -v '^\.\.\?$' | sort >"$T_DIR/want"
t_is "$(wc -l <"$T_DIR/want")" 300 "the listing has 300 names"

# --- cairnd running: cairn-fsck is refused and touches nothing ---
"$FSCK" --repair "$cache" >"$T_DIR/fsck-busy.out" 2>&1
t_is "$?" 8 "cairn-fsck --repair while cairnd runs: exit 8"
grep -q "in use" "$T_DIR/fsck-busy.out"
t_ok $? "... it says the cache is in use"
grep -q "metadata" "$T_DIR/fsck-busy.out"
t_ok "$([ $? -ne 0 ] && echo 0 || echo 1)" "... and checked no metadata cache"
"$FSCK" --check "$cache" >"$T_DIR/fsck-busy.out" 2>&1
t_is "$?" 8 "cairn-fsck --check while cairnd runs: exit 8"
cairnd_umount "$mnt"

# --- cairn-fsck --repair inside the meta.tdb check: cairnd is refused ---
t_is "$(python3 "$META" orphans "$cache/meta.tdb" 400)" 400 "400 orphan pages added"
# Run the repair with its stdout on a pipe of one page that is read only
# when told to: ~40 KB of findings block fsck in write(2) while it checks
# meta.tdb. The python side says "blocked" once the pipe is full and fsck
# still runs, then waits for $T_DIR/go.
python3 - "$FSCK" "$cache" "$T_DIR" <<'PY' &
import fcntl, os, subprocess, sys, termios, time, array
fsck, cache, tdir = sys.argv[1:4]
r, w = os.pipe()
size = fcntl.fcntl(w, 1031, 4096)  # F_SETPIPE_SZ
p = subprocess.Popen([fsck, "--repair", cache], stdout=w,
                     stderr=subprocess.STDOUT)
os.close(w)
def queued():
    b = array.array("i", [0])
    fcntl.ioctl(r, termios.FIONREAD, b)
    return b[0]
for _ in range(600):
    if p.poll() is not None or queued() >= size:
        break
    time.sleep(0.05)
time.sleep(0.3)
state = "blocked" if p.poll() is None and queued() >= size else "ran"
open(os.path.join(tdir, "state"), "w").write(state + "\n")
while not os.path.exists(os.path.join(tdir, "go")):
    time.sleep(0.05)
out = b""
while True:
    b = os.read(r, 65536)
    if not b:
        break
    out += b
open(os.path.join(tdir, "repair.out"), "wb").write(out)
open(os.path.join(tdir, "repair.rc"), "w").write("%d\n" % p.wait())
PY
helper=$!
t_track_pid "$helper"
wait_for 30 test -s "$T_DIR/state"
t_is "$(cat "$T_DIR/state")" "blocked" "cairn-fsck --repair is held inside its check"

log2=$T_DIR/cairnd-second.log
mkdir -p "$mnt"
"$CAIRND" --server "$VOLD_URL" --volume lk --token "$T_DIR/tok" \
	--cache "$cache" --mountpoint "$mnt" --foreground \
	${VOLD_CA:+--ca-file "$VOLD_CA"} --log-level info >"$log2" 2>&1 &
cpid=$!
t_track_pid "$cpid"
_T_MOUNTS="$_T_MOUNTS $mnt"
echo "$cpid" >"$T_DIR/$(basename "$mnt").pid"
wait_for 20 sh -c "! kill -0 $cpid 2>/dev/null || mountpoint -q '$mnt'"
if kill -0 "$cpid" 2>/dev/null; then
	t_ok 1 "a cairnd started during the repair is refused"
	cairnd_umount "$mnt"
else
	wait "$cpid"
	crc=$?
	t_ok "$([ "$crc" -ne 0 ] && echo 0 || echo 1)" \
		"a cairnd started during the repair is refused (exit $crc)"
	grep -q "in use by another process" "$log2"
	t_ok $? "... because the cache is in use"
fi
t_ok "$(mountpoint -q "$mnt" && echo 1 || echo 0)" "... and mounted nothing"

touch "$T_DIR/go"
wait "$helper"
t_is "$(cat "$T_DIR/repair.rc")" 1 "cairn-fsck --repair then completes: exit 1 (corrected)"
t_is "$(grep -c 'orphan' "$T_DIR/repair.out")" 400 "... naming each of the 400 orphans"
"$FSCK" --check "$cache" >"$T_DIR/fsck.out" 2>&1
t_is "$?" 0 "cairn-fsck: clean after the repair"

cairnd_mount "$mnt" "$cache" lk "$T_DIR/tok" || exit 1
ls -f "$mnt/d" | grep -v '^\.\.\?$' | sort >"$T_DIR/got"
cmp -s "$T_DIR/got" "$T_DIR/want"
t_ok $? "after the repair cairnd starts and the listing equals the server's"
cairnd_umount "$mnt"

# --- a meta.tdb left in the middle of a store: "needs recovery" ---
t_is "$(python3 "$META" midtxn "$cache/meta.tdb")" prepared \
	"a transaction left prepared, not committed"
sum=$(md5sum <"$cache/meta.tdb")
"$FSCK" --check "$cache" >"$T_DIR/fsck.out" 2>&1
t_is "$?" 0 "cairn-fsck --check: no error (exit 0)"
grep -q "needs recovery" "$T_DIR/fsck.out"
t_ok $? "... it says the file needs recovery"
grep -q "would be removed" "$T_DIR/fsck.out"
t_ok "$([ $? -ne 0 ] && echo 0 || echo 1)" "... not that it would be removed"
t_ok "$([ "$(md5sum <"$cache/meta.tdb")" = "$sum" ] && echo 0 || echo 1)" \
	"... and changed nothing"
"$FSCK" --repair "$cache" >"$T_DIR/fsck.out" 2>&1
t_is "$?" 0 "cairn-fsck --repair recovers it (exit 0)"
t_ok "$([ -e "$cache/meta.tdb" ] && echo 0 || echo 1)" "... the file is kept"
"$FSCK" --check "$cache" >"$T_DIR/fsck.out" 2>&1
t_is "$?" 0 "cairn-fsck --check: clean after the recovery"
grep -q "needs recovery" "$T_DIR/fsck.out"
t_ok "$([ $? -ne 0 ] && echo 0 || echo 1)" "... and nothing needs recovery"
cairnd_mount "$mnt" "$cache" lk "$T_DIR/tok" || exit 1
ls -f "$mnt/d" | grep -v '^\.\.\?$' | sort >"$T_DIR/got"
cmp -s "$T_DIR/got" "$T_DIR/want"
t_ok $? "cairnd starts on the recovered file, the listing is the server's"
cairnd_umount "$mnt"
t_done
