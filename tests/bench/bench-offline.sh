#!/usr/bin/env bash
# bench-offline.sh - replay benchmark of issue #7 (make bench; not in check).
#
# The same work twice, in one run on one machine, each on its own volume
# and mount: BENCH_OFFLINE_FILES (10,000) small files created and written
# plus BENCH_OFFLINE_MB (100) MiB of stores in 4 MiB files,
#   connected: done on the mount while connected (every close stores)
#   offline:   done while disconnected (fs disconnect: logged locally),
#              then fs reconnect: the time of the replay itself
# and prints both, the time the offline work took locally, and the ratio
# connected / replay (above 1: replaying the log is faster than doing the
# work connected), and the replay's records per second. Issue #14's row,
# the replay of the BENCH_OFFLINE_FILES small-file creates alone (at least
# 1,000 records/s), is measured by a third pass on its own volume (or by
# the offline pass itself when BENCH_OFFLINE_MB=0). The server's tree is
# checked against the source after each (file count and content hashes); a
# mismatch prints "failed".
set -u
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 3600
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }
NFILES=${BENCH_OFFLINE_FILES:-10000}
MB=${BENCH_OFFLINE_MB:-100}
NBIG=$(( (MB + 3) / 4 ))
failed=0

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
ratio() { awk -v b="$1" -v c="$2" 'BEGIN { if (c > 0) printf "%.2f", b / c; else print "-" }'; }

echo "# preparing: $NFILES small files, $NBIG files of 4 MiB ($MB MiB)"
src=$T_DIR/src
mkdir -p "$src/big"
python3 - "$src" "$NFILES" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "d%03d" % (i // 100))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d.txt" % i), "w") as f:
        f.write("small file %d\n" % i)
PY
[ "$MB" -gt 0 ] || NBIG=0
for i in $(seq 1 "$NBIG"); do head -c $((4 * 1024 * 1024)) /dev/urandom >"$src/big/b$i"; done
(cd "$src" && find . -type f | sort | xargs sha256sum) >"$T_DIR/want.sums"

# The work: copy the tree in (mkdir, create, write, close per file).
work() { cp -r "$src/." "$1/"; }
# The server's tree, through a fresh mount with an empty cache.
check_server() { # VOL TAG
	local m=$T_DIR/check-$2
	cairnd_mount "$m" "$T_DIR/cache-check-$2" "$1" "$T_DIR/tok-$1" --cache-size 4G || return 1
	(cd "$m" && find . -type f | sort | xargs sha256sum) >"$T_DIR/got-$2.sums" 2>/dev/null
	cairnd_umount "$m"
	cmp -s "$T_DIR/want.sums" "$T_DIR/got-$2.sums"
}

vold_start || exit 99
vos init >/dev/null 2>&1
for v in conn off offc; do
	vos create "$v" >/dev/null 2>&1 || exit 99
	make_token "$v" rw "$T_DIR/tok-$v"
done

# Connected.
m=$T_DIR/mconn
cairnd_mount "$m" "$T_DIR/cache-conn" conn "$T_DIR/tok-conn" --cache-size 4G || exit 1
t0=$(now); work "$m"; rc=$?; t1=$(now)
conn=$(secs "$t0" "$t1")
cairnd_umount "$m"
[ "$rc" = 0 ] && check_server conn conn || { echo "# connected run: wrong result"; conn=failed; }

# Offline, then the replay.
m=$T_DIR/moff
cairnd_mount "$m" "$T_DIR/cache-off" off "$T_DIR/tok-off" --cache-size 4G || exit 1
ls "$m" >/dev/null
"$FS" disconnect -m "$m" >/dev/null || exit 1
t0=$(now); work "$m"; rc=$?; t1=$(now)
local_s=$(secs "$t0" "$t1")
records=$("$FS" status --json -m "$m" | python3 -c 'import json,sys; print(json.load(sys.stdin)["replay_pending"])')
t0=$(now)
"$FS" reconnect -m "$m" >"$T_DIR/reconnect.out" 2>&1 || rc=1
t1=$(now)
replay=$(secs "$t0" "$t1")
rss=$(awk '/VmHWM/ {print $2}' "/proc/$(cairnd_pid "$m")/status" 2>/dev/null)
cairnd_umount "$m"
[ "$rc" = 0 ] && check_server off off || { echo "# offline run: wrong result ($(cat "$T_DIR/reconnect.out"))"; replay=failed; }

# The small-file creates alone (issue #14's row).
if [ "$MB" -gt 0 ]; then
	(cd "$src" && find . -type f ! -path './big/*' | sort | xargs sha256sum) >"$T_DIR/want-small.sums"
	m=$T_DIR/moffc
	cairnd_mount "$m" "$T_DIR/cache-offc" offc "$T_DIR/tok-offc" --cache-size 4G || exit 1
	ls "$m" >/dev/null
	"$FS" disconnect -m "$m" >/dev/null || exit 1
	rc=0
	for d in "$src"/d*; do cp -r "$d" "$m/" || rc=1; done
	crecords=$("$FS" status --json -m "$m" | python3 -c 'import json,sys; print(json.load(sys.stdin)["replay_pending"])')
	t0=$(now)
	"$FS" reconnect -m "$m" >"$T_DIR/reconnect-c.out" 2>&1 || rc=1
	t1=$(now)
	creplay=$(secs "$t0" "$t1")
	cairnd_umount "$m"
	m=$T_DIR/check-offc
	cairnd_mount "$m" "$T_DIR/cache-check-offc" offc "$T_DIR/tok-offc" --cache-size 4G || exit 1
	(cd "$m" && find . -type f | sort | xargs sha256sum) >"$T_DIR/got-offc.sums" 2>/dev/null
	cairnd_umount "$m"
	[ "$rc" = 0 ] && cmp -s "$T_DIR/want-small.sums" "$T_DIR/got-offc.sums" ||
		{ echo "# small-file replay: wrong result"; creplay=failed; }
else
	crecords=$records creplay=$replay
fi

printf '\n%-58s %10s\n' "measurement" "s"
printf '%-58s %10s\n' "connected: $NFILES files + $MB MiB on the mount" "$conn"
printf '%-58s %10s\n' "offline: the same work, logged locally ($records records)" "$local_s"
printf '%-58s %10s\n' "offline: fs reconnect, the replay" "$replay"
if [ "$conn" = failed ] || [ "$replay" = failed ]; then
	failed=1
else
	echo "replay vs connected (connected s / replay s): $(ratio "$conn" "$replay")"
	echo "replay rate: $(awk -v r="$records" -v s="$replay" 'BEGIN { if (s > 0) printf "%.0f", r / s; else print "-" }') records/s"
fi
if [ "$creplay" = failed ]; then
	failed=1
else
	crate=$(awk -v r="$crecords" -v s="$creplay" 'BEGIN { if (s > 0) printf "%.0f", r / s; else print 0 }')
	printf '%-58s %10s %10s %8s\n' "replay of $NFILES small-file creates (records/s; target)" "$crate" "1000" "$(awk -v a="$crate" 'BEGIN { printf "%.2fx", a / 1000 }')"
	echo "(records/s of the replay of the small files made offline alone, $crecords records in $creplay s; target >= 1,000, ratio = rate / target)"
fi
echo "cairnd peak RSS (offline mount): ${rss:-?} KiB"
exit $failed
