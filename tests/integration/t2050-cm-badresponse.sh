#!/usr/bin/env bash
# t2050-cm-badresponse: cairnd talks to cairn-vold through a small python3
# proxy on 127.0.0.1 that spoils chunk replies on demand: a body that does
# not match X-Cairn-SHA256, a truncated body, a body longer than a chunk.
# None of them is ever cached or served: the reader gets EIO after a bounded
# number of attempts, and once the proxy behaves the same read succeeds.
# The proxy drops X-Cairn-Blocks, so this is the whole-chunk path of a
# server without block sums; t2130-cm-early-read.sh spoils blocks.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 150

src=$T_DIR/src
mkdir -p "$src"
head -c $((600 * 1024)) /dev/urandom >"$src/f.bin"
vold_start
vos init >/dev/null 2>&1
vos import bad "$src" >/dev/null || exit 99
make_token bad ro "$T_DIR/tok"

echo good >"$T_DIR/mode"
# How the relay (spoilproxy.py) spoils a chunk reply in each mode. Without
# X-Cairn-Blocks, as from a server older than them: this test holds the
# whole-chunk path (t2130 tests the block path).
cat >"$T_DIR/spoil.py" <<'PY'
def spoil(mode, status, headers, body):
    headers = [(k, v) for k, v in headers if k.lower() != "x-cairn-blocks"]
    if mode[0] == "badsum" and body:
        body = bytes([body[0] ^ 0xff]) + body[1:]
    elif mode[0] == "short":
        body = body[:len(body) // 2]
    elif mode[0] == "long":
        body = body + b"x" * (4 << 20)
    return headers, body, len(body), 0
PY
spoilproxy_start "$T_DIR/spoil.py" || exit 99
mnt=$T_DIR/mnt
cairnd_mount "$mnt" "$T_DIR/cache" bad "$T_DIR/tok" --fetch-timeout 3s --readahead 0 || exit 1
stat_of() { getfattr --only-values -n cairn.stats "$mnt" 2>/dev/null | awk -v k="$1" '$1 == k {print $2}'; }
t_check "metadata passes through the proxy" test -f "$mnt/f.bin"

for mode in badsum short long; do
	echo "$mode" >"$T_DIR/mode"
	t0=$(date +%s%N)
	err=$(dd if="$mnt/f.bin" of=/dev/null bs=4096 count=1 2>&1 | grep -c "Input/output error")
	t1=$(date +%s%N)
	t_is "$err" 1 "$mode: the reader gets EIO"
	t_ok "$([ $(( (t1 - t0) / 1000000 )) -le 8000 ] && echo 0 || echo 1)" \
		"$mode: within the bound ($(( (t1 - t0) / 1000000 )) ms)"
	n=$(grep -c "^$mode .*/data/.*/0?size=" "$T_DIR/proxy.req")
	# FETCH_ATTEMPTS (3) per fetch; the kernel may retry the page once.
	t_ok "$([ "$n" -ge 3 ] && [ "$n" -le 6 ] && echo 0 || echo 1)" \
		"$mode: chunk 0 was tried a bounded number of times ($n)"
	t_is "$(stat_of chunks_fetched)" 0 "$mode: nothing was stored"
done
bad=$(stat_of bad_chunks)
t_ok "$([ "${bad:-0}" -ge 9 ] && echo 0 || echo 1)" "every spoiled reply was counted ($bad)"
t_is "$(stat_of cache_files_used)" 0 "the cache holds no chunk"

echo good >"$T_DIR/mode"
t_check "good replies again: the same read succeeds" cmp "$src/f.bin" "$mnt/f.bin"
# The last chunk's fetch may be a readahead that commits a moment after
# the read returned: wait for the count (bounded), then it must be 3.
wait_for 10 cm_stat_more "$mnt" chunks_fetched 2
t_ok "$([ "$(stat_of chunks_fetched)" -eq 3 ] && echo 0 || echo 1)" "the three chunks were stored"
cairnd_umount "$mnt"
VOLD_URL=$real_url
t_done
