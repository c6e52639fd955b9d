#!/bin/sh
# t3030-fs-flush.sh - fs flush, flushmeta, flushvolume, flushall and
# getcacheparms/setcachesize with local changes, on a real writable mount:
# a flush stores dirty data first and then drops it (the next read comes
# from the server, past the kernel's page cache); a flush whose store fails
# drops nothing and says so (exit 75); flushmeta makes the next stat and ls
# ask the server; flushall keeps what pins need; dirty bytes show in
# getcacheparms and bound setcachesize; users may flush only what they can
# read; bad input gets the documented exit codes.
. "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
t_need_fuse
t_timeout 240
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

src=$T_DIR/src
mkdir -p "$src/data" "$src/sub"
head -c $((600 * 1024)) /dev/urandom >"$src/data/a.bin"   # 3 chunks
head -c $((300 * 1024)) /dev/urandom >"$src/data/b.bin"   # 2 chunks
head -c $((500 * 1024)) /dev/urandom >"$src/data/w.bin"   # 2 chunks
head -c $((200 * 1024)) /dev/urandom >"$src/sub/p.bin"    # 1 chunk
echo "small" >"$src/sub/s.txt"
echo "for root only" >"$src/secret.txt"
chmod 0600 "$src/secret.txt"
chmod -R a+rX "$src/data" "$src/sub"

vold_start || exit 99
vos init >/dev/null 2>&1
vos import home "$src" >"$T_DIR/import.log" 2>&1 || { cat "$T_DIR/import.log"; exit 99; }
make_token home rw "$T_DIR/tok"
mnt=$T_DIR/mnt
cairnd_mount "$mnt" "$T_DIR/cache" home "$T_DIR/tok" --cache-size 16M --fetch-timeout 2s || exit 1

jget() {
	python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
for k in sys.argv[2:]:
    d = d[int(k)] if isinstance(d, list) else d.get(k)
    if d is None: break
print(json.dumps(d) if isinstance(d, (dict, list, bool)) or d is None else d)' "$@"
}
fsj() { # OUT-FILE ARGS...: fs --json into a file, return its exit code
	out=$1; shift
	"$FS" "$@" --json >"$T_DIR/$out" 2>"$T_DIR/$out.err"
}
stat_of() { getfattr -n cairn.stats --only-values "$mnt" 2>/dev/null | sed -n "s/^$1 //p"; }
nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
ex() { "$FS" examine --json "$1" >"$T_DIR/ex.json" 2>/dev/null && jget "$T_DIR/ex.json" 0 "$2"; }

# chunks_fetched counts a chunk once it is verified and stored, but a read
# is answered as soon as its bytes are verified (doc/cm.md "Early
# replies"): the last chunk of a read may be counted just after cat ends.
# Wait for the count (bounded) before comparing; an overshoot still fails.
fetched_ge() { fg_n=$(stat_of chunks_fetched); [ -n "$fg_n" ] && [ "$fg_n" -ge "$1" ]; }

# --- flush drops the data, also from the kernel's page cache ---------------
fb=$(stat_of chunks_fetched)
cat "$mnt/data/a.bin" >/dev/null
wait_for 10 fetched_ge $((fb + 3))
f0=$(stat_of chunks_fetched)
cat "$mnt/data/a.bin" >/dev/null
t_is "$(stat_of chunks_fetched)" "$f0" "a second read is served from the caches"
fsj fl1 flush "$mnt/data/a.bin"
t_is "$?" 0 "flush a.bin"
t_is "$(jget "$T_DIR/fl1" 0 bytes_dropped)" $((600 * 1024)) "flush: bytes dropped"
t_is "$(jget "$T_DIR/fl1" 0 bytes_stored)" 0 "flush: nothing to store"
t_is "$(ex "$mnt/data/a.bin" chunks_cached)" 0 "flush: no chunk cached"
t_check "the flushed file reads back right" cmp "$src/data/a.bin" "$mnt/data/a.bin"
wait_for 10 fetched_ge $((f0 + 3))
f1=$(stat_of chunks_fetched)
t_is "$((f1 - f0))" 3 "the read after the flush fetched its 3 chunks from the server"

# A directory: each file in it.
cat "$mnt/data/a.bin" "$mnt/data/b.bin" >/dev/null
# A read is answered before the store threads have put its chunk in the
# cache; wait until both files are cached (a.bin 3 chunks, b.bin 2), so
# the flush below has all 900 KiB to drop.
cached_is() { [ "$(ex "$1" chunks_cached)" = "$2" ]; }
wait_for 10 cached_is "$mnt/data/a.bin" 3
wait_for 10 cached_is "$mnt/data/b.bin" 2
fsj fl2 flush "$mnt/data"
t_is "$?" 0 "flush a directory"
t_is "$(jget "$T_DIR/fl2" 0 bytes_dropped)" $((900 * 1024)) "flush dir: its files' bytes dropped"
t_is "$(ex "$mnt/data/b.bin" chunks_cached)" 0 "flush dir: b.bin dropped"

# --- dirty data is stored first -------------------------------------------------
# A writer holds w.bin open with unstored changes until told to close.
mkfifo "$T_DIR/go" "$T_DIR/go2"
python3 - "$mnt/data/w.bin" "$T_DIR/go" "$T_DIR/go2" "$T_DIR/w.expect" <<'PY' &
import os, sys
path, go, go2, expect = sys.argv[1:5]
data = bytearray(open(path, "rb").read())
fd = os.open(path, os.O_RDWR)
def put(off, b):
    os.pwrite(fd, b, off)
    data[off:off + len(b)] = b
put(1000, b"A" * 5000)
open(expect, "wb").write(data)
open(go).read()                 # wait: first flush done
put(300 * 1024, b"B" * 7000)
open(expect, "wb").write(data)
open(go2).read()                # wait: then close
os.close(fd)
PY
wpid=$!
t_track_pid "$wpid"
wait_for 10 test -s "$T_DIR/w.expect"
t_check "the writer's change is dirty" test "$(ex "$mnt/data/w.bin" dirty)" = true
fsj gcp1 getcacheparms -m "$mnt"
t_check "getcacheparms: dirty bytes ($(jget "$T_DIR/gcp1" dirty_bytes))" \
	test "$(jget "$T_DIR/gcp1" dirty_bytes)" -ge 5000
t_check "getcacheparms: dirty files" test "$(jget "$T_DIR/gcp1" dirty_files)" -ge 1
"$FS" getcacheparms -m "$mnt" >"$T_DIR/gcp1.txt"
t_check "getcacheparms, plain: dirty, hit rate, evictions" \
	grep -q "^dirty .*in 1 file" "$T_DIR/gcp1.txt"
"$FS" setcachesize -m "$mnt" 4K >/dev/null 2>"$T_DIR/scs.err"
t_is "$?" 73 "setcachesize below the dirty bytes is refused (exit 73)"
t_check "and says why" grep -q "pinned and dirty data need" "$T_DIR/scs.err"

fsj fl3 flush "$mnt/data/w.bin"
t_is "$?" 0 "flush of a file with unstored changes"
t_check "flush: bytes stored first ($(jget "$T_DIR/fl3" 0 bytes_stored))" \
	test "$(jget "$T_DIR/fl3" 0 bytes_stored)" -gt 0
t_is "$(ex "$mnt/data/w.bin" dirty)" false "flush: the file is clean"
t_is "$(ex "$mnt/data/w.bin" chunks_cached)" 0 "flush: and dropped"
t_check "the server has the change (read back through the server)" \
	cmp "$T_DIR/w.expect" "$mnt/data/w.bin"

# The server goes away: the store fails, nothing is dropped.
echo go >"$T_DIR/go"
wait_eval 10 '[ "$(ex "$mnt/data/w.bin" dirty)" = true ]'
vold_stop
"$FS" flush "$mnt/data/w.bin" >/dev/null 2>"$T_DIR/fl4.err"
t_is "$?" 75 "flush whose store fails: exit 75"
t_check "and says nothing was dropped" grep -q "nothing was dropped" "$T_DIR/fl4.err"
t_is "$(ex "$mnt/data/w.bin" dirty)" true "the change is still dirty"
t_check "and reads back right from the cache" cmp "$T_DIR/w.expect" "$mnt/data/w.bin"
"$FS" flushvolume -m "$mnt" >/dev/null 2>"$T_DIR/fv1.err"
t_is "$?" 75 "flushvolume with a failed store: exit 75"
t_check "and counts the file kept" grep -q "1 of .* files could not be stored" "$T_DIR/fv1.err"
# The flush's store got no answer: the mount disconnected by itself and
# kept the store in its replay log (doc/cm.md, "A store whose staging
# gets no answer"); the probe reintegrates it once the server is back.
mode() { "$FS" status --json -m "$mnt" 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d["mode"], d["replay_pending"])'; }
t_is "$(mode | cut -d' ' -f1)" disconnected "the store without an answer disconnected the mount"
vold_restart || exit 99
wait_eval 30 '[ "$(mode)" = "connected 0" ]'
t_is "$(mode)" "connected 0" "the server back: reconnected, the log replayed"
fsj fv2 flushvolume -m "$mnt"
t_is "$?" 0 "flushvolume with the server back"
t_is "$(ex "$mnt/data/w.bin" dirty)" false "w.bin stored before the drop (by the replay, or flushvolume: $(jget "$T_DIR/fv2" bytes_stored) bytes)"
t_is "$(ex "$mnt/data/w.bin" dirty)/$(ex "$mnt/data/w.bin" chunks_cached)" "false/0" \
	"flushvolume: clean and dropped"
t_check "the server has the second change" cmp "$T_DIR/w.expect" "$mnt/data/w.bin"
echo go >"$T_DIR/go2"
wait "$wpid"
t_is "$?" 0 "the writer closes cleanly"

# --- flushmeta ------------------------------------------------------------------
ls -l "$mnt/sub" >/dev/null
stat "$mnt/sub/s.txt" >/dev/null
d0=$(stat_of dir_fetches); g0=$(stat_of getattr_fids)
ls -l "$mnt/sub" >/dev/null
t_is "$(stat_of dir_fetches)/$(stat_of getattr_fids)" "$d0/$g0" "a second ls -l asks nothing"
fsj fm flushmeta "$mnt/sub"
t_is "$?" 0 "flushmeta sub"
t_check "flushmeta: entries dropped ($(jget "$T_DIR/fm" 0 entries_dropped))" \
	test "$(jget "$T_DIR/fm" 0 entries_dropped)" -ge 3
ls -l "$mnt/sub" >"$T_DIR/ls.out"
t_check "flushmeta: the next ls fetches the listing" test "$(stat_of dir_fetches)" -gt "$d0"
t_check "flushmeta: the listing is right" grep -q "s.txt" "$T_DIR/ls.out"
cat "$mnt/sub/s.txt" >/dev/null
asked() { echo $(($(stat_of getattr_fids) + $(stat_of dir_fetches))); }
g0=$(asked)
"$FS" flushmeta "$mnt/sub/s.txt" >/dev/null 2>&1
t_is "$?" 0 "flushmeta of a file"
t_is "$(stat -c %s "$mnt/sub/s.txt")" 6 "stat after flushmeta"
# (a lookup takes the attributes with its parent's listing)
t_check "flushmeta: the next stat asks the server" test "$(asked)" -gt "$g0"
t_is "$(ex "$mnt/sub/s.txt" chunks_cached)" 1 "flushmeta keeps the data"

# --- flushall keeps what pins need ----------------------------------------------
"$FS" pin "$mnt/sub/p.bin" >/dev/null 2>&1
t_is "$?" 0 "pin p.bin"
cat "$mnt/data/b.bin" >/dev/null
fsj fa flushall -m "$mnt"
t_is "$?" 0 "flushall"
t_check "flushall: metadata entries dropped ($(jget "$T_DIR/fa" entries_dropped))" \
	test "$(jget "$T_DIR/fa" entries_dropped)" -gt 0
t_is "$(ex "$mnt/data/b.bin" chunks_cached)" 0 "flushall: b.bin dropped"
pin_back() { [ "$(ex "$mnt/sub/p.bin" chunks_cached)" = 1 ]; }
t_check "flushall: the pinned file is fetched again" wait_for 10 pin_back
vold_stop
drop_caches
t_check "with the server down, the pinned file still reads (its metadata was kept)" \
	cmp "$src/sub/p.bin" "$mnt/sub/p.bin"
vold_restart || exit 99
"$FS" unpin "$mnt/sub/p.bin" >/dev/null 2>&1

# --- permissions ---------------------------------------------------------------
if nobody test -x "$mnt/data"; then
	nobody "$FS" flush "$mnt/secret.txt" >/dev/null 2>"$T_DIR/p1.err"
	t_is "$?" 77 "uid 65534 may not flush a file it cannot read"
	t_check "and is told so" grep -qi "permission denied" "$T_DIR/p1.err"
	nobody "$FS" flushmeta "$mnt/secret.txt" >/dev/null 2>&1
	t_is "$?" 77 "nor flushmeta it"
	nobody "$FS" flush "$mnt/data/b.bin" >/dev/null 2>&1
	t_is "$?" 0 "uid 65534 may flush a file it can read"
	nobody "$FS" flushvolume -m "$mnt" >/dev/null 2>"$T_DIR/p2.err"
	t_is "$?" 77 "uid 65534 may not flushvolume"
	t_check "and is told only root may" grep -q "root" "$T_DIR/p2.err"
else
	echo "# $mnt is not searchable by uid 65534: permission checks skipped"
fi

# --- bad input ------------------------------------------------------------------
"$FS" flush /tmp >/dev/null 2>"$T_DIR/b1.err"
t_is "$?" 65 "flush of a path outside any cairn mount: exit 65"
t_check "and says so" grep -q "not on a cairn mount" "$T_DIR/b1.err"
"$FS" flush "$mnt/data/missing" >/dev/null 2>&1
t_is "$?" 66 "flush of a missing file: exit 66"
"$FS" flush >/dev/null 2>"$T_DIR/b2.err"
t_is "$?" 64 "flush without a path: exit 64"
"$FS" flushmeta -r "$mnt/data" >/dev/null 2>&1
t_is "$?" 64 "flushmeta -r: exit 64 (no such option)"
"$FS" flushvolume "$mnt/data" >/dev/null 2>&1
t_is "$?" 64 "flushvolume takes no path: exit 64"
"$FS" flush -s "$T_DIR/no.sock" "$mnt/data/a.bin" >/dev/null 2>"$T_DIR/b3.err"
t_is "$?" 69 "flush with no cairnd on the socket: exit 69"
t_check "and says is cairnd running" grep -q "is cairnd running" "$T_DIR/b3.err"
"$FS" flushh "$mnt" >/dev/null 2>"$T_DIR/b4.err"
t_is "$?" 64 "unknown subcommand: exit 64"
t_check "and says so" grep -q "'flushh' is not an fs command" "$T_DIR/b4.err"
# Every path command: outside a mount 65, missing 66, no cairnd 69.
for c in pin unpin flush flushmeta examine whereis sync lsmount rmmount; do
	"$FS" $c /tmp >/dev/null 2>"$T_DIR/c.err"
	t_is "$?" 65 "$c outside any cairn mount: exit 65"
	"$FS" $c "$mnt/data/missing" >/dev/null 2>&1
	t_is "$?" 66 "$c of a missing path: exit 66"
	"$FS" $c -s "$T_DIR/no.sock" "$mnt/data" >/dev/null 2>"$T_DIR/c.err"
	t_is "$?" 69 "$c with no cairnd on the socket: exit 69"
done
# mkmount names a path to make: outside a mount 65, a missing parent 66,
# no cairnd 69.
"$FS" mkmount /tmp/mp proj >/dev/null 2>&1
t_is "$?" 65 "mkmount outside any cairn mount: exit 65"
"$FS" mkmount "$mnt/data/missing/mp" proj >/dev/null 2>&1
t_is "$?" 66 "mkmount in a missing directory: exit 66"
"$FS" mkmount -s "$T_DIR/no.sock" "$mnt/data/mp" proj >/dev/null 2>&1
t_is "$?" 69 "mkmount with no cairnd on the socket: exit 69"
# Every command without a path: no cairnd 69, a stray argument 64.
for c in pins getcacheparms flushvolume flushall listvol checkservers status \
	"setcachesize 1G" disconnect reconnect metrics sync; do
	"$FS" $c -s "$T_DIR/no.sock" >/dev/null 2>"$T_DIR/c.err"
	t_is "$?" 69 "$c with no cairnd on the socket: exit 69"
	t_check "$c says is cairnd running" grep -q "is cairnd running" "$T_DIR/c.err"
done
for c in getcacheparms flushvolume flushall checkservers status metrics; do
	"$FS" $c -m "$mnt" extra >/dev/null 2>&1
	t_is "$?" 64 "$c with a stray argument: exit 64"
done
t_done
