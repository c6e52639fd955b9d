#!/usr/bin/env bash
# t2281-cm-cold-verify: a chunk's SHA-256 is computed while its body
# arrives (doc/cm.md "Fetching chunks"), and still gates the chunk store:
# 1. a reply whose block sums all match but whose X-Cairn-SHA256 does not
#    (a reply damaged or forged past the CRC32Cs) is never stored: readers
#    of verified blocks get right bytes, the chunk is refetched a bounded
#    number of times, counted bad, and stored once a good reply comes;
# 2. a reply without block sums whose body does not match its SHA-256 is
#    never served: EIO after the bounded retries;
# 3. kill -9 of cairnd in the middle of a cold read (transfers arriving,
#    stores queued): after a restart every chunk the cache serves is right
#    (the whole file compares equal), the chunks it lacks are fetched again
#    and only those, and cairn-fsck finds the cache clean after a clean
#    stop.
# cairnd talks to cairn-vold through the spoiling proxy (spoilproxy.py).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 240

CS=262144
NCH=64
src=$T_DIR/src
mkdir -p "$src"
head -c $((2 * CS)) /dev/urandom >"$src/f.bin"
head -c $((NCH * CS)) /dev/urandom >"$src/big.bin"
vold_start
vos init >/dev/null 2>&1
vos import cv "$src" >/dev/null || exit 99
make_token cv ro "$T_DIR/tok"

echo good >"$T_DIR/mode"
# "badsha": the body and its block sums as sent, X-Cairn-SHA256 of other
# bytes; "noblocks-flip": no block sums, first byte flipped; "slow BYTES
# MS": BYTES of the body, a stall of MS, the rest, for every other reply
# (the others whole at once).
cat >"$T_DIR/spoil.py" <<'PY'
import itertools
count = itertools.count()
def spoil(mode, status, headers, body):
    first, stall = len(body), 0
    if mode[0] == "badsha":
        headers = [(k, "0" * 64 if k.lower() == "x-cairn-sha256" else v)
                   for k, v in headers]
    elif mode[0] == "noblocks-flip" and body:
        headers = [(k, v) for k, v in headers
                   if k.lower() != "x-cairn-blocks"]
        body = bytes([body[0] ^ 0xff]) + body[1:]
    elif mode[0] == "slow" and next(count) % 2 == 1:
        first, stall = int(mode[1]), int(mode[2]) / 1000.0
    return headers, body, first, stall
PY
spoilproxy_start "$T_DIR/spoil.py" || exit 99
mnt=$T_DIR/mnt
cache=$T_DIR/cache
cairnd_mount "$mnt" "$cache" cv "$T_DIR/tok" --fetch-timeout 4s --readahead 0 || exit 1
stat_of() { getfattr --only-values -n cairn.stats "$mnt" 2>/dev/null | awk -v k="$1" '$1 == k {print $2}'; }
cached() { "$FS" examine --json "$1" 2>/dev/null |
	python3 -c 'import json,sys; d=json.load(sys.stdin); d=d[0] if isinstance(d,list) else d; print(d["chunks_cached"])'; }
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
rd() { timeout 60 python3 "$T_DIR/pread.py" "$mnt/$1" "$src/$1" "$2" "$3"; }
t_check "the files are there" test -f "$mnt/f.bin"

# 1. Wrong SHA-256, right block sums.
echo badsha >"$T_DIR/mode"
bad0=$(stat_of bad_chunks)
t_is "$(rd f.bin 0 $CS)" "ok 1" "badsha: the verified blocks of chunk 0 are served, right"
# The transfer goes on failing after the reader has its bytes.
sleep 3
bad1=$(stat_of bad_chunks)
t_ok "$([ $((bad1 - bad0)) -ge 3 ] && echo 0 || echo 1)" \
	"badsha: every reply counted bad ($((bad1 - bad0)))"
n=$(grep -c "^badsha .*/0?size=" "$T_DIR/proxy.req")
t_ok "$([ "$n" -ge 3 ] && [ "$n" -le 6 ] && echo 0 || echo 1)" \
	"badsha: chunk 0 tried a bounded number of times ($n)"
t_is "$(cached "$mnt/f.bin")" 0 "badsha: chunk 0 not stored"
t_is "$(stat_of chunks_fetched)" 0 "badsha: nothing counted as fetched"
t_check "badsha: the mismatch is logged" grep -q "checksum mismatch" "$T_DIR/cairnd-mnt.log"

# 2. No block sums, a damaged body: never served.
echo noblocks-flip >"$T_DIR/mode"
t_is "$(rd f.bin $CS 4096)" "err 5" "damaged body without block sums: EIO"
t_is "$(cached "$mnt/f.bin")" 0 "damaged body: nothing stored"

# Good replies: both chunks stored, right (the flush first drops the
# kernel's pages of chunk 0, which case 1 read).
echo good >"$T_DIR/mode"
"$FS" flush "$mnt/f.bin" >/dev/null 2>&1
t_check "good replies: the file reads right" cmp "$src/f.bin" "$mnt/f.bin"
cached_is() { [ "$(cached "$1")" = "$2" ]; }
wait_for 10 cached_is "$mnt/f.bin" 2
t_is "$(cached "$mnt/f.bin")" 2 "good replies: both chunks stored"
cairnd_umount "$mnt"

# 3. kill -9 during a cold read with readahead: every other reply stalls
#    3 s after its first 64 KiB, so chunks are stored, transfers mid-body
#    and stores queued when cairnd dies.
cairnd_mount "$mnt" "$cache" cv "$T_DIR/tok" --fetch-timeout 8s || exit 1
echo "slow 65536 3000" >"$T_DIR/mode"
cat "$mnt/big.bin" >/dev/null 2>&1 &
catpid=$!
reqs() { grep -c "^slow .*size=" "$T_DIR/proxy.req"; }
reqs_ge() { [ "$(reqs)" -ge "$1" ]; }
wait_for 30 reqs_ge 4
sleep 0.5
cairnd_kill9 "$mnt"
wait "$catpid" 2>/dev/null
echo "# killed after $(reqs) chunk requests"
echo good >"$T_DIR/mode"
: >"$T_DIR/proxy.req"
cairnd_mount "$mnt" "$cache" cv "$T_DIR/tok" --fetch-timeout 8s --readahead 0 || exit 1
k=$(cached "$mnt/big.bin")
echo "# $k chunks cached after the restart"
t_ok "$([ "${k:-0}" -ge 1 ] && [ "$k" -lt "$NCH" ] && echo 0 || echo 1)" \
	"after kill -9: some chunks cached, not all ($k)"
t_check "after kill -9: the whole file reads right" cmp "$src/big.bin" "$mnt/big.bin"
n=$(grep -c "/data/.*size=" "$T_DIR/proxy.req")
t_is "$n" $((NCH - k)) "after kill -9: only the missing chunks were fetched"
cairnd_umount "$mnt"
"$FSCK" --check --quiet "$cache" >"$T_DIR/fsck.out" 2>&1
t_is "$?" 0 "cairn-fsck finds the cache clean after the restart"
VOLD_URL=$real_url
t_done
