#!/usr/bin/env bash
# t2040-cm-offline: with the server killed, cached files and listings are
# still served; an uncached read and a never-listed directory fail with EIO
# within the fetch timeout, never hang; when the server is back, reads work
# again without a remount. A cairnd started while the server is down mounts
# from its cache, and one with an empty cache refuses with a clear message.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 150

src=$T_DIR/src
mkdir -p "$src/seen" "$src/unseen"
head -c $((700 * 1024)) /dev/urandom >"$src/seen/cached.bin"
head -c $((700 * 1024)) /dev/urandom >"$src/seen/uncached.bin"
echo inside >"$src/unseen/file.txt"
# Listing the root prefetches the listings of its subdirectories (one
# level): the directory never listed is one further down.
mkdir -p "$src/unseen/deeper"
echo deep >"$src/unseen/deeper/file.txt"
vold_start
vos init >/dev/null 2>&1
vos import off "$src" >/dev/null || exit 99
make_token off ro "$T_DIR/tok"
mnt=$T_DIR/mnt
cairnd_mount "$mnt" "$T_DIR/cache" off "$T_DIR/tok" --fetch-timeout 2s || exit 1
cat "$mnt/seen/cached.bin" >/dev/null
ls -l "$mnt/seen" >/dev/null
ls "$mnt" >/dev/null

vold_kill9
t_check "cached file still reads right" cmp "$src/seen/cached.bin" "$mnt/seen/cached.bin"
t_check "cached listing still served" sh -c "ls -l '$mnt/seen' | grep -q uncached.bin"
t_check "stat from the cache" stat "$mnt/seen/uncached.bin"
t0=$(date +%s%N)
err=$(cat "$mnt/seen/uncached.bin" 2>&1 >/dev/null)
t1=$(date +%s%N)
ms=$(( (t1 - t0) / 1000000 ))
t_is "$(echo "$err" | sed 's/.*: //')" "Input/output error" "uncached read fails with EIO"
t_ok "$([ "$ms" -le 6000 ] && echo 0 || echo 1)" "within the bound (${ms} ms, fetch timeout 2 s)"
err=$(ls "$mnt/unseen/deeper" 2>&1 >/dev/null)
t_is "$(echo "$err" | sed 's/.*: //')" "Input/output error" "never-listed directory fails with EIO"

vold_restart || exit 99
wait_for 10 cmp -s "$src/seen/uncached.bin" "$mnt/seen/uncached.bin"
t_ok $? "server back: the read works without a remount"
t_is "$(cat "$mnt/unseen/file.txt" 2>&1)" "inside" "and the directory lists"
t_is "$(cat "$mnt/unseen/deeper/file.txt" 2>&1)" "deep" "the one below too"
cairnd_umount "$mnt"

vold_kill9
cairnd_mount "$mnt" "$T_DIR/cache" off "$T_DIR/tok" --fetch-timeout 1s
t_ok $? "mount from the cache with the server down"
t_check "cached data served after a disconnected start" cmp "$src/seen/cached.bin" "$mnt/seen/cached.bin"
cairnd_umount "$mnt"
t_check "disconnected start is logged" grep -q "from the cache (server unreachable" "$T_DIR/cairnd-mnt.log"

mkdir -p "$T_DIR/mnt2"
"$CAIRND" --server "$VOLD_URL" --volume off --token "$T_DIR/tok" --cache "$T_DIR/cache2" \
	--mountpoint "$T_DIR/mnt2" --foreground --fetch-timeout 1s >"$T_DIR/empty.log" 2>&1 &
pid=$!
t_track_pid "$pid"
wait_for 10 sh -c "! kill -0 $pid 2>/dev/null"
wait "$pid"
t_ok "$([ $? -ne 0 ] && echo 0 || echo 1)" "empty cache + no server: cairnd fails"
t_check "with a clear message" grep -q "server is unreachable and the cache" "$T_DIR/empty.log"
t_check "and mounts nothing" sh -c "! mountpoint -q '$T_DIR/mnt2'"
t_done
