#!/usr/bin/env bash
# t4081-wback-small-heal: the replay-log record of a small file's store
# (it carries the file's bytes, doc/replay-log.md "Stores with their
# bytes") is the truth locally too. Small files are written in writeback
# mode, cairnd is killed (-9) and the unsynced chunk files of the small
# files are emptied or removed, as a power cut could leave them; the
# server is STOPPED so no drain can happen. The restarted mount reads
# every file's bytes, mode and mtime as written (its start rewrote the
# chunks from the records); after the server is back and the log drained,
# a fresh client and the mount read them too, and cairn-fsck finds the
# cache clean. The same in disconnected mode (fs disconnect, then fs
# reconnect).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 200
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

vold_start || exit 99
vos init >/dev/null 2>&1
vos create wsh >/dev/null || exit 99
make_token wsh rw "$T_DIR/tok"
A=$T_DIR/a
CA=$T_DIR/ca
C=$T_DIR/c
mnt() { cairnd_mount "$A" "$CA" wsh "$T_DIR/tok" --write-mode writeback --writeback-delay 60s --fetch-timeout 2s "$@"; }
jst() { "$FS" status --json -m "$A" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }
tree() { t_tree "$1"; }

mnt || exit 1
t_is "$(jst write_mode)" writeback "write mode writeback"
# A file stored before (its chunk clean at the server's DV, then
# rewritten small: the record's base is a DV the server has), and new
# files of 1 B to 64 KiB, one rewritten smaller, one past the bound.
mkdir "$A/b" "$T_DIR/ref" || exit 1
cat >"$T_DIR/mk.py" <<'PY'
import os, sys
d, phase = sys.argv[1], sys.argv[2]
def put(name, data, mode, mtime, flags=os.O_CREAT | os.O_TRUNC):
    fd = os.open(os.path.join(d, name), os.O_WRONLY | flags, 0o644)
    os.write(fd, data)
    os.fchmod(fd, mode)
    os.utime(fd, ns=(mtime, mtime))
    os.close(fd)
def blob(n, seed):
    return ((b"%d-" % seed) * (n // 2 + 1))[:n]
if phase == "0":
    put("old", blob(9000, 9), 0o644, 1300000000 * 10**9)
else:
    put("old", blob(4000, 10), 0o640, 1300000001 * 10**9)
    put("one", b"x", 0o640, 1300000002 * 10**9)
    for i in range(12):
        put("f%02d" % i, blob(1000 + i * 5000, i), 0o644,
            (1300000010 + i) * 10**9)
    put("bound", blob(65536, 20), 0o755, 1300000030 * 10**9)
    put("over", blob(65537, 21), 0o400, 1300000031 * 10**9)
    put("rewritten", blob(20000, 22), 0o644, 1300000032 * 10**9)
    put("rewritten", blob(7000, 23), 0o604, 1300000033 * 10**9)
PY
python3 "$T_DIR/mk.py" "$T_DIR/ref" 0 && python3 "$T_DIR/mk.py" "$T_DIR/ref" 1 || exit 99
tree "$T_DIR/ref" >"$T_DIR/ref.tree"
python3 "$T_DIR/mk.py" "$A/b" 0 || t_ok 1 "writing the first file"
"$FS" sync -m "$A" >/dev/null 2>&1
t_is "$(jst backlog_records)" 0 "the first file stored"
python3 "$T_DIR/mk.py" "$A/b" 1 || t_ok 1 "writing the files"
t_is "$(tree "$A/b")" "$(cat "$T_DIR/ref.tree")" "the mount shows the files"
cairnd_kill9 "$A"
vold_stop
# The power cut: every chunk file of at most 64 KiB (and its trailer)
# emptied or removed, one of two each.
n=0
for f in $(find "$CA/chunks" -type f -regextype egrep -regex '.*/[0-9a-f]{8}' -size -$((65536 + 64 + 1))c 2>/dev/null | sort); do
	if [ $((n % 2)) = 0 ]; then : >"$f"; else rm -f "$f"; fi
	n=$((n + 1))
done
echo "# $n small chunk files emptied or removed"
t_ok "$([ "$n" -ge 14 ] && echo 0 || echo 1)" "small chunk files found and destroyed ($n)"

# The server is down: no drain. The mount reads the records' bytes.
mnt || exit 1
t_is "$(tree "$A/b")" "$(cat "$T_DIR/ref.tree")" "with the server stopped the mount reads every file as written"
t_ok "$([ "$(jst backlog_records)" -gt 0 ] && echo 0 || echo 1)" "nothing drained ($(jst backlog_records) records)"
t_ok "$(grep -q 'rewritten from the record' "$T_DIR/cairnd-a.log"; echo $?)" "the start said it rewrote chunks from the records"
nlog=$(grep -c 'rewritten from the record' "$T_DIR/cairnd-a.log")
cairnd_kill9 "$A"
# A second start finds the chunks right: nothing to rewrite.
mnt || exit 1
t_is "$(tree "$A/b")" "$(cat "$T_DIR/ref.tree")" "and after another kill -9 and start"
t_is "$(grep -c 'rewritten from the record' "$T_DIR/cairnd-a.log")" "$nlog" "which found the chunks right"

vold_restart || exit 1
"$FS" sync -m "$A" >/dev/null 2>&1
t_is "$(jst backlog_records)|$(jst conflicts)" "0|0" "drained, no conflicts"
t_is "$(tree "$A/b")" "$(cat "$T_DIR/ref.tree")" "the mount after the drain"
cairnd_mount "$C" "$T_DIR/cc" wsh "$T_DIR/tok" || exit 1
t_is "$(tree "$C/b")" "$(cat "$T_DIR/ref.tree")" "a fresh client reads the bytes, modes and mtimes"
cairnd_umount "$C"
cairnd_umount "$A"
"$FSCK" --check --quiet "$CA" >"$T_DIR/fsck.out" 2>&1
t_is "$?" 0 "cairn-fsck: the cache is clean"
sed 's/^/#   /' "$T_DIR/fsck.out" | head -5
# Reads again from the cache alone, after the clean stop.
vold_stop
mnt || exit 1
t_is "$(tree "$A/b")" "$(cat "$T_DIR/ref.tree")" "a restart with the server stopped reads the stored bytes"
cairnd_umount "$A"

# Disconnected mode (fs disconnect; no writeback delay): the same power
# cut, then the restart, still disconnected, reads the records' bytes,
# and fs reconnect drains them.
vold_restart || exit 1
D=$T_DIR/d
CD=$T_DIR/cd
dmnt() { cairnd_mount "$D" "$CD" wsh "$T_DIR/tok" --fetch-timeout 2s "$@"; }
djst() { "$FS" status --json -m "$D" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }
dmnt || exit 1
mkdir "$D/off" "$T_DIR/ref2" || exit 1
t_check "fs disconnect" "$FS" disconnect -m "$D"
python3 "$T_DIR/mk.py" "$T_DIR/ref2" 1 || exit 99
tree "$T_DIR/ref2" >"$T_DIR/ref2.tree"
python3 "$T_DIR/mk.py" "$D/off" 1 || t_ok 1 "writing the files offline"
t_is "$(tree "$D/off")" "$(cat "$T_DIR/ref2.tree")" "offline: the mount shows the files"
cairnd_kill9 "$D"
n=0
for f in $(find "$CD/chunks" -type f -regextype egrep -regex '.*/[0-9a-f]{8}' -size -$((65536 + 64 + 1))c 2>/dev/null | sort); do
	if [ $((n % 2)) = 0 ]; then rm -f "$f"; else : >"$f"; fi
	n=$((n + 1))
done
t_ok "$([ "$n" -ge 14 ] && echo 0 || echo 1)" "offline: small chunk files destroyed ($n)"
dmnt || exit 1
t_is "$(djst mode)" disconnected "the restart is still disconnected"
t_is "$(tree "$D/off")" "$(cat "$T_DIR/ref2.tree")" "offline: the restart reads every file as written"
"$FS" reconnect -m "$D" >/dev/null 2>&1
"$FS" sync -m "$D" >/dev/null 2>&1
t_is "$(djst backlog_records)|$(djst conflicts)" "0|0" "reconnected: drained, no conflicts"
t_is "$(tree "$D/off")" "$(cat "$T_DIR/ref2.tree")" "the mount after the drain"
cairnd_mount "$C" "$T_DIR/cc2" wsh "$T_DIR/tok" || exit 1
t_is "$(tree "$C/off")" "$(cat "$T_DIR/ref2.tree")" "a fresh client reads what was written offline"
cairnd_umount "$C"
cairnd_umount "$D"
"$FSCK" --check --quiet "$CD" >"$T_DIR/fsck2.out" 2>&1
t_is "$?" 0 "cairn-fsck: that cache is clean too"
t_done
