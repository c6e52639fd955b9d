#!/usr/bin/env bash
# t2130-cm-early-read: a reader waiting on a chunk gets its bytes as soon as
# the blocks holding them have arrived and matched their X-Cairn-Blocks sums,
# not only once the whole chunk is in; a block that does not match is never
# served. cairnd talks to cairn-vold through a python3 proxy on 127.0.0.1
# that can stall a chunk reply after its first bytes, flip a byte in one
# block, or drop the block sums (a server without them).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 180

CS=262144
STALL_MS=2000
src=$T_DIR/src
mkdir -p "$src"
head -c $((4 * CS)) /dev/urandom >"$src/f.bin"
vold_start
vos init >/dev/null 2>&1
vos import early "$src" >/dev/null || exit 99
make_token early ro "$T_DIR/tok"

# The mode file: "good", "slow BYTES MS" (send BYTES of a chunk body, wait
# MS, send the rest), "corrupt OFF" (flip the byte at OFF of every chunk
# body), "noblocks BYTES MS" (like slow, without X-Cairn-Blocks).
echo good >"$T_DIR/mode"
cat >"$T_DIR/spoil.py" <<'PY'
def spoil(mode, status, headers, body):
    first, stall = len(body), 0
    if mode[0] in ("slow", "noblocks"):
        first, stall = int(mode[1]), int(mode[2]) / 1000.0
        if mode[0] == "noblocks":
            headers = [(k, v) for k, v in headers
                       if k.lower() != "x-cairn-blocks"]
    elif mode[0] == "corrupt" and len(body) > int(mode[1]):
        o = int(mode[1])
        body = body[:o] + bytes([body[o] ^ 0x01]) + body[o + 1:]
    return headers, body, first, stall
PY
# Reads of LEN bytes at OFF, one after the other, past readahead
# (FADV_RANDOM): one line per read, "ok MS SAME" (MS since the first read
# began, SAME 1 if the bytes equal the source's) or "err ERRNO MS".
cat >"$T_DIR/reader.py" <<'PY'
import os, sys, time
path, src, args = sys.argv[1], sys.argv[2], [int(a) for a in sys.argv[3:]]
fd = os.open(path, os.O_RDONLY)
os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)
t0 = time.monotonic()
for off, n in zip(args[0::2], args[1::2]):
    try:
        got = os.pread(fd, n, off)
    except OSError as e:
        print("err %d %d" % (e.errno, (time.monotonic() - t0) * 1000))
        continue
    ms = (time.monotonic() - t0) * 1000
    with open(src, "rb") as f:
        f.seek(off)
        want = f.read(n)
    print("ok %d %d" % (ms, 1 if got == want else 0), flush=True)
PY
spoilproxy_start "$T_DIR/spoil.py" || exit 99
mnt=$T_DIR/mnt
cairnd_mount "$mnt" "$T_DIR/cache" early "$T_DIR/tok" --fetch-timeout 8s --readahead 0 || exit 1
stat_of() { getfattr --only-values -n cairn.stats "$mnt" 2>/dev/null | awk -v k="$1" '$1 == k {print $2}'; }
rd() { timeout 30 python3 "$T_DIR/reader.py" "$mnt/f.bin" "$src/f.bin" "$@"; }
# chunks_fetched counts a chunk once a store thread has written it, which
# may be after its reader was answered (doc/cm.md "Threads": readers do not
# wait for the stores; "Early replies"): check 20 once read 3 right after
# cmp had read all four, under load. So wait for N, then check that it is
# N exactly (a chunk read right but never stored still fails, after 10 s).
fetched_ge() { fg_n=$(stat_of chunks_fetched); [ -n "$fg_n" ] && [ "$fg_n" -ge "$1" ]; }
fetched_is() { # N DESC
	wait_for 10 fetched_ge "$1"
	t_is "$(stat_of chunks_fetched)" "$1" "$2"
}
t_check "metadata passes through the proxy" test -f "$mnt/f.bin"

# 1. Chunk 0, stalled after its first 64 KiB: the first 4 KiB come before
#    the stall ends; the last 4 KiB of the chunk, read next, after it.
echo "slow 65536 $STALL_MS" >"$T_DIR/mode"
rd 0 4096 $((CS - 4096)) 4096 >"$T_DIR/two"
{ read -r st1 ms1 same1; read -r st2 ms2 same2; } <"$T_DIR/two"
echo "# time to first 4 KiB: ${ms1:-?} ms; to the chunk's last 4 KiB: ${ms2:-?} ms (stall ${STALL_MS} ms)"
t_is "${st1:-} ${same1:-}" "ok 1" "first 4 KiB of an uncached chunk read right"
t_ok "$([ "${ms1:-99999}" -lt $((STALL_MS / 2)) ] && echo 0 || echo 1)" \
	"first 4 KiB answered before the chunk was in (${ms1:-?} ms < $((STALL_MS / 2)))"
t_is "${st2:-} ${same2:-}" "ok 1" "last 4 KiB of the chunk read right"
t_ok "$([ "${ms2:-0}" -ge $((STALL_MS - 100)) ] && echo 0 || echo 1)" \
	"last 4 KiB waited for the rest of the chunk (${ms2:-?} ms)"
t_ok "$([ "$(stat_of early_reads)" -ge 1 ] && echo 0 || echo 1)" \
	"cairnd counted the early reply ($(stat_of early_reads))"
t_is "$(grep -c "^slow .*/0?size=.* True$" "$T_DIR/proxy.req")" 1 \
	"chunk 0 came once, with block sums"
fetched_is 1 "chunk 0 was verified whole and stored"

# 2. A server without block sums (or a cache that dropped them): the reader
#    of the first 4 KiB of chunk 1 waits for the whole chunk, as before.
echo "noblocks 65536 $STALL_MS" >"$T_DIR/mode"
set -- $(rd $CS 4096)
echo "# without block sums, time to first 4 KiB: $2 ms"
t_is "$1 $3" "ok 1" "no block sums: first 4 KiB of chunk 1 read right"
t_ok "$([ "$2" -ge $((STALL_MS - 200)) ] && echo 0 || echo 1)" \
	"no block sums: the reader waited for the whole chunk ($2 ms)"
fetched_is 2 "chunk 1 stored"

# 3. Chunk 2 with a flipped byte in block 2 (bytes 32768..49151): blocks 0
#    and 1 verify and may be served; block 2 never is. The read of block 2
#    fails with EIO after the bounded retries, nothing is stored.
echo "corrupt $((2 * 16384 + 100))" >"$T_DIR/mode"
bad0=$(stat_of bad_chunks)
set -- $(rd $((2 * CS)) 4096)
t_is "$1 $3" "ok 1" "corrupt block 2: block 0 of chunk 2 is served, and right"
set -- $(rd $((2 * CS + 2 * 16384)) 4096)
t_is "$1 $2" "err 5" "corrupt block 2: a read of block 2 gets EIO"
set -- $(rd $((2 * CS + 2 * 16384 + 8192)) 8192)
t_is "$1 $2" "err 5" "corrupt block 2: a read across the bad byte gets EIO"
bad1=$(stat_of bad_chunks)
t_ok "$([ $((bad1 - bad0)) -ge 3 ] && echo 0 || echo 1)" \
	"every spoiled reply was counted ($((bad1 - bad0)))"
t_is "$(stat_of chunks_fetched)" 2 "the spoiled chunk was not stored"
t_is "$(stat_of cache_files_used)" 2 "the cache holds chunks 0 and 1 only"
n=$(grep -c "^corrupt .*/2?size=" "$T_DIR/proxy.req")
# Three reads, each a fetch of FETCH_ATTEMPTS (3) tries; the kernel asks
# again once for a page that failed.
t_ok "$([ "$n" -ge 6 ] && [ "$n" -le 18 ] && echo 0 || echo 1)" \
	"chunk 2 was tried a bounded number of times ($n)"

# 4. Good replies again: everything reads right, all four chunks stored.
echo good >"$T_DIR/mode"
drop_caches
t_check "good replies again: the whole file reads right" cmp "$src/f.bin" "$mnt/f.bin"
fetched_is 4 "all four chunks stored"
cairnd_umount "$mnt"
VOLD_URL=$real_url
t_done
