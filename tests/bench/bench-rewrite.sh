#!/usr/bin/env bash
# bench-rewrite.sh - the price of "a rewrite waits for the log" (doc/cm.md):
# one process rewrites one file in place BENCH_REWRITES (100) times (an
# O_TRUNC open, SIZE bytes, close) and, apart, appends to one file the same
# number of times (open, 4 KiB at the end, close: appends never wait), on
# local disk, a sync mount and a writeback mount of this tree's cairnd, and
# a writeback mount of BENCH_REWRITE_BASE's cairnd (a build tree before
# the change, when given). SIZE is 4 KiB (its bytes ride in the store
# record) and 300 KiB (two chunks). Prints ms an operation and the ratio
# to local disk, the median of BENCH_RUNS (3) runs. Not in `make bench`
# (it wants a second build for the comparison); run it by hand.
set -u
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 1800
N=${BENCH_REWRITES:-100}
RUNS=${BENCH_RUNS:-3}
BASE=${BENCH_REWRITE_BASE:-}

cat >"$T_DIR/rw.py" <<'PY'
import os, sys, time
path, how, n, size = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
data = b"r" * size
t0 = time.time()
for i in range(n):
    if how == "rewrite":
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, data)
    else:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.write(fd, data[:4096])
    os.close(fd)
print("%.3f" % ((time.time() - t0) * 1000 / n))
PY

vold_start || exit 99
vos init >/dev/null 2>&1
mkdir -p "$T_DIR/local"
sides="local sync writeback"
[ -n "$BASE" ] && [ -x "$BASE/cm/cairnd" ] && sides="$sides base-writeback"
for s in $sides; do
	[ "$s" = local ] && continue
	vos create "v$s" >/dev/null || exit 99
	make_token "v$s" rw "$T_DIR/tok-$s" || exit 99
	mode=writeback
	[ "$s" = sync ] && mode=sync
	if [ "$s" = base-writeback ]; then
		CAIRND=$BASE/cm/cairnd cairnd_mount "$T_DIR/m-$s" "$T_DIR/c-$s" "v$s" \
			"$T_DIR/tok-$s" --write-mode "$mode" || exit 99
	else
		cairnd_mount "$T_DIR/m-$s" "$T_DIR/c-$s" "v$s" "$T_DIR/tok-$s" \
			--write-mode "$mode" || exit 99
	fi
done
dir_of() { if [ "$1" = local ]; then echo "$T_DIR/local"; else echo "$T_DIR/m-$1"; fi; }

printf '%-24s %-16s %10s %8s\n' workload side "ms/op" "x local"
for w in "rewrite 4096" "rewrite 307200" "append 4096"; do
	set -- $w
	how=$1 size=$2
	declare -A med=()
	for s in $sides; do
		vals=""
		for r in $(seq 1 "$RUNS"); do
			f=$(dir_of "$s")/f-$how-$size-$r
			v=$(python3 "$T_DIR/rw.py" "$f" "$how" "$N" "$size") || exit 1
			vals="$vals $v"
		done
		# shellcheck disable=SC2086
		med[$s]=$(median $vals)
	done
	for s in $sides; do
		printf '%-24s %-16s %10s %8s\n' "$how $size" "$s" "${med[$s]}" \
			"$(awk -v a="${med[$s]}" -v b="${med[local]}" 'BEGIN { printf "%.1f", (b > 0) ? a / b : 0 }')"
	done
	unset med
done
for s in $sides; do
	[ "$s" = local ] && continue
	echo "# $s: rewrite_waits $(cm_stat "$T_DIR/m-$s" rewrite_waits), conflicts $(cm_stat "$T_DIR/m-$s" conflicts)"
done
t_ok 0 "bench ran"
t_done
