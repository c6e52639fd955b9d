#!/usr/bin/env bash
# t2200-cm-offline-miss-fast: once cairnd knows the server is gone (the
# event stream's reconnection was refused, or an earlier read found no
# server), a read of an uncached file fails with EIO at once: no retry
# backoff (offline-miss=error, the default; issue #16 wants <= 0.5 s).
# The proof that does not depend on the machine's load is the counter: no
# fetch retry. When the server is back, the next read works.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 120

src=$T_DIR/src
mkdir -p "$src"
for f in a b c; do head -c $((600 * 1024)) /dev/urandom >"$src/$f.bin"; done
vold_start
vos init >/dev/null 2>&1
vos import fast "$src" >/dev/null || exit 99
make_token fast ro "$T_DIR/tok"
mnt=$T_DIR/mnt
cairnd_mount "$mnt" "$T_DIR/cache" fast "$T_DIR/tok" || exit 1
ls -l "$mnt" >/dev/null
stat_of() { getfattr -n cairn.stats --only-values "$mnt" 2>/dev/null | awk -v k="$1" '$1 == k {print $2}'; }
t_is "$(stat_of online)" 1 "online while the server runs"

# First byte of FILE: prints "MILLISECONDS ERROR".
firstbyte() {
	python3 - "$1" <<'PY'
import os, sys, time
t0 = time.monotonic()
try:
    fd = os.open(sys.argv[1], os.O_RDONLY)
    os.read(fd, 1)
    os.close(fd)
    err = "ok"
except OSError as e:
    err = os.strerror(e.errno).replace(" ", "_")
print("%d %s" % ((time.monotonic() - t0) * 1000, err))
PY
}

vold_kill9
# The event stream breaks and its reconnection (after 250 ms) is refused:
# cairnd then knows the server is away before anyone reads.
wait_for 10 sh -c "[ \"\$(getfattr -n cairn.stats --only-values '$mnt' 2>/dev/null | awk '\$1 == \"online\" {print \$2}')\" = 0 ]"
t_ok $? "the broken event stream marks the server away"
r0=$(stat_of fetch_retries)
set -- $(firstbyte "$mnt/a.bin")
t_is "$2" "Input/output_error" "uncached read with the server known gone: EIO"
t_is "$(stat_of fetch_retries)" "$r0" "no fetch retried"
# Before, three attempts 200 and 400 ms apart, twice (readahead and the
# kernel's own retry): 1.2 s at least, whatever the load.
t_ok "$([ "$1" -lt 1000 ] && echo 0 || echo 1)" "answered in ${1} ms (< 1000; target 500)"
set -- $(firstbyte "$mnt/b.bin")
t_is "$2" "Input/output_error" "the next miss too"
t_is "$(stat_of fetch_retries)" "$r0" "still no retry"
t_check "cached metadata still served" stat "$mnt/c.bin"

vold_restart || exit 99
wait_for 10 cmp -s "$src/a.bin" "$mnt/a.bin"
t_ok $? "server back: the read works without a remount"
t_check "and the other file" cmp "$src/b.bin" "$mnt/b.bin"
t_is "$(stat_of online)" 1 "online again"
cairnd_umount "$mnt"
t_done
