#!/usr/bin/env bash
# t2280-cm-flush-inflight: `fs flush FILE` right after a read drops every
# chunk of the read, also one still on its way. A reader is answered as
# soon as its bytes are verified (doc/cm.md "Early replies"), before the
# chunk is whole and stored; a flush that came then used to drop nothing
# and the chunk landed in the cache after it. Now a transfer of a flushed
# file serves its readers and is not stored, and a flush waits for the
# stores the store threads hold. cairnd talks to cairn-vold through the
# spoiling proxy, which stalls a chunk reply after its first 64 KiB.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 180
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

CS=262144
STALL_MS=1500
src=$T_DIR/src
mkdir -p "$src"
head -c $((2 * CS)) /dev/urandom >"$src/f.bin"
for i in $(seq 1 12); do head -c $((CS - 1000 * i)) /dev/urandom >"$src/s$i.bin"; done
vold_start
vos init >/dev/null 2>&1
vos import fl "$src" >/dev/null || exit 99
make_token fl ro "$T_DIR/tok"

echo good >"$T_DIR/mode"
cat >"$T_DIR/spoil.py" <<'PY'
def spoil(mode, status, headers, body):
    first, stall = len(body), 0
    if mode[0] == "slow":
        first, stall = int(mode[1]), int(mode[2]) / 1000.0
    return headers, body, first, stall
PY
spoilproxy_start "$T_DIR/spoil.py" || exit 99
mnt=$T_DIR/mnt
cairnd_mount "$mnt" "$T_DIR/cache" fl "$T_DIR/tok" --fetch-timeout 8s --readahead 0 || exit 1
stat_of() { getfattr --only-values -n cairn.stats "$mnt" 2>/dev/null | awk -v k="$1" '$1 == k {print $2}'; }
cached() { "$FS" examine --json "$1" 2>/dev/null |
	python3 -c 'import json,sys; d=json.load(sys.stdin); d=d[0] if isinstance(d,list) else d; print(d["chunks_cached"])'; }
# Read LEN bytes at OFF of FILE (no readahead), print "ok SAME" (SAME 1 if
# they equal SRC's) or "err ERRNO".
cat >"$T_DIR/pread.py" <<'PY'
import os, sys
path, src, off, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
fd = os.open(path, os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
try:
    got = os.pread(fd, n, off)
except OSError as e:
    print("err %d" % e.errno); sys.exit(0)
with open(src, "rb") as f:
    f.seek(off); want = f.read(n)
print("ok %d" % (1 if got == want else 0))
PY
t_check "the file is there" test -f "$mnt/f.bin"

# 1. The first 4 KiB of chunk 0 come early; the rest of the chunk stalls.
#    The flush comes while the chunk is still arriving: once it is in, it
#    must not be stored.
echo "slow 65536 $STALL_MS" >"$T_DIR/mode"
t_is "$(timeout 30 python3 "$T_DIR/pread.py" "$mnt/f.bin" "$src/f.bin" 0 4096)" "ok 1" \
	"early read of a stalled chunk is right"
fetched0=$(stat_of chunks_fetched)
"$FS" flush "$mnt/f.bin" >"$T_DIR/fl1.out" 2>&1
t_is "$?" 0 "fs flush right after the read"
# Let the stalled reply end and its store run.
sleep $((STALL_MS / 1000 + 2))
t_is "$(grep -c "^slow .*/0?size=" "$T_DIR/proxy.req")" 1 "chunk 0 came once"
t_is "$(cached "$mnt/f.bin")" 0 "the chunk that arrived after the flush is not cached"
t_is "$(stat_of chunks_fetched)" "$fetched0" "and was not counted as stored"
t_is "$(stat_of flushed_in_flight)" 1 "cairnd counted the chunk it kept out"

# 2. The next read of it asks the server again and is stored as usual.
echo good >"$T_DIR/mode"
t_is "$(timeout 30 python3 "$T_DIR/pread.py" "$mnt/f.bin" "$src/f.bin" 0 4096)" "ok 1" \
	"read after the flush is right"
cached_is() { [ "$(cached "$1")" = "$2" ]; }
wait_for 10 cached_is "$mnt/f.bin" 1
t_is "$(cached "$mnt/f.bin")" 1 "read after the flush: chunk 0 cached again"
t_is "$(grep -c "^good .*/0?size=" "$T_DIR/proxy.req")" 1 "and fetched from the server again"

# 3. Whole small files read and flushed at once, one after the other: a
#    flush never leaves a chunk of its file behind, whether the chunk was
#    still arriving, with a store thread, or stored.
left=0
for i in $(seq 1 12); do
	cat "$mnt/s$i.bin" >"$T_DIR/s.out"
	cmp -s "$T_DIR/s.out" "$src/s$i.bin" || echo "# s$i.bin read wrong"
	"$FS" flush "$mnt/s$i.bin" >/dev/null 2>&1 || echo "# flush of s$i.bin failed"
done
sleep 1
for i in $(seq 1 12); do
	n=$(cached "$mnt/s$i.bin")
	[ "$n" = 0 ] || { echo "# s$i.bin: $n chunks left after its flush"; left=$((left + 1)); }
done
t_is "$left" 0 "no file flushed right after its read kept a chunk"

# 4. Chunk 1 stalled, and a second read of the same range joins the
#    transfer after the flush: both readers get the right bytes.
echo "slow 65536 $STALL_MS" >"$T_DIR/mode"
t_is "$(timeout 30 python3 "$T_DIR/pread.py" "$mnt/f.bin" "$src/f.bin" $CS 4096)" "ok 1" \
	"early read of chunk 1 is right"
"$FS" flush "$mnt/f.bin" >/dev/null 2>&1
t_is "$?" 0 "flush during chunk 1"
t_is "$(timeout 30 python3 "$T_DIR/pread.py" "$mnt/f.bin" "$src/f.bin" $((CS + CS - 4096)) 4096)" "ok 1" \
	"a read of chunk 1's end after the flush waits for the transfer and is right"
sleep 1
t_is "$(cached "$mnt/f.bin")" 0 "chunk 1 of the flushed transfer not cached"
cairnd_umount "$mnt"
VOLD_URL=$real_url
t_done
