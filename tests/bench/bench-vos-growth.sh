#!/usr/bin/env bash
# bench-vos-growth.sh - does vos's cost a file stay the same from 10,000
# to 1,000,000 files? (issue #17: "the same per-file cost, within 20 %,
# for 10,000 and 1,000,000 files, in one directory or many"). make
# bench-vos-growth.
#
# Everything is in one tmpfs: the source trees, the server root and the
# exports. On disk, a 1,000,000-file export is several GB to write back
# and runs at the disk's pace (bench-vos.sh shows that row); here the
# rows measure vos and the kernel's file creation only, and cp -a of the
# same tree into the same tmpfs shows how the kernel's own cost a file
# moves with the size.
#
# At each size of BENCH_GROWTH_SIZES (default "10000 100000 1000000"):
#   tree: N files in directories of 1,000, sizes 4096 * r^8 bytes (0-4
#     KiB, a quarter empty: small files, and 1,000,000 of them fit in
#     memory three times over)
#   flat: N empty files in one directory
# each row BENCH_GROWTH_RUNS times (default 3; 5 at 10,000 files, whose
# runs are short), alternated. Printed: the median wall time, us a file,
# its CPU (user + sys, vos's threads together), "x first": us a file
# over the same row's at the first size, "x cp-a": us a file over cp -a's
# at the same size, and "its x": that ratio over its value at the first
# size (1.00: the row grew exactly as the kernel's own copy did). The
# last lines name every row whose "x first" is over 1.2.
#
# Needs root and ~12 GB of memory at 1,000,000 files (tmpfs size
# BENCH_GROWTH_TMPFS, default 16G, nr_inodes unlimited); skips (exit 77)
# without. Not part of make bench, for that reason.
set -u
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 7200
SIZES=${BENCH_GROWTH_SIZES:-10000 100000 1000000}
RUNS=${BENCH_GROWTH_RUNS:-3}
MKTREE=$top_srcdir/tests/bench/mktree.py
case $RUNS in '' | *[!0-9]* | 0) echo "BENCH_GROWTH_RUNS: a number >= 1"; exit 99 ;; esac

[ "$(id -u)" = 0 ] || { echo "bench-vos-growth: needs root (it mounts a tmpfs)"; exit 77; }
[ -x /usr/bin/time ] || apt-get install -y -qq time >/dev/null 2>&1
[ -x /usr/bin/time ] || { echo "bench-vos-growth: needs /usr/bin/time"; exit 77; }
B=$T_DIR/mem
mkdir -p "$B" && mount -t tmpfs -o "size=${BENCH_GROWTH_TMPFS:-16G},nr_inodes=0" tmpfs "$B" ||
	{ echo "bench-vos-growth: cannot mount a tmpfs on $B"; exit 77; }
trap 'rc=$?; umount -l "$B" 2>/dev/null; (exit $rc); _t_cleanup' EXIT
SRV_ROOT=$B/srv
vos init >/dev/null || exit 99

# run OUT CMD...: one timed run; "wall_s cpu_s" into OUT (ns clock for
# the wall time: a 10,000-file row takes tens of ms)
run() {
	local var=$1 t0 t1
	shift
	t0=$(date +%s%N)
	/usr/bin/time -f "%U %S" -o "$T_DIR/time" "$@" >/dev/null 2>"$T_DIR/err" ||
		{ echo "failed: $*"; cat "$T_DIR/err"; return 1; }
	t1=$(date +%s%N)
	read -r u s <"$T_DIR/time"
	printf -v "$var" '%s %s' "$(echo "($t1 - $t0) / 1000000000" | bc -l)" \
		"$(echo "$u + $s" | bc -l)"
}
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

declare -A FIRST FIRSTREL
CPUS=0 # cp -a's us a file at this size (its row comes first)
row() { # LABEL N WALLS CPUS
	local label=$1 n=$2 w c us g rel gr
	w=$(tr ' ' '\n' <<<"$3" | grep . | median)
	c=$(tr ' ' '\n' <<<"$4" | grep . | median)
	us=$(echo "$w * 1000000 / $n" | bc -l)
	[ "$label" = "cp -a of the tree" ] && CPUS=$us
	rel=$(echo "$us / $CPUS" | bc -l)
	[ -n "${FIRST[$label]:-}" ] || { FIRST[$label]=$us; FIRSTREL[$label]=$rel; }
	g=$(echo "$us / ${FIRST[$label]}" | bc -l)
	gr=$(echo "$rel / ${FIRSTREL[$label]}" | bc -l)
	printf '%-30s %8d %8.3f %9.2f %9.2f %7.2f %7.2f %7.2f\n' "$label" "$n" "$w" "$us" \
		"$(echo "$c * 1000000 / $n" | bc -l)" "$g" "$rel" "$gr"
	echo "$label $n $g $gr" >>"$T_DIR/growth"
}

command -v bc >/dev/null || apt-get install -y -qq bc >/dev/null 2>&1
echo "# vos import/export, all in a tmpfs; medians of $RUNS runs (at least 5 up to 10,000 files)"
printf '%-30s %8s %8s %9s %9s %7s %7s %7s\n' row files s us/file cpu-us 'x first' 'x cp-a' 'its x'
for n in $SIZES; do
	case $n in '' | *[!0-9]*) echo "BENCH_GROWTH_SIZES: numbers"; exit 99 ;; esac
	r=$RUNS
	[ "$n" -le 10000 ] && [ "$r" -lt 5 ] && r=5
	python3 "$MKTREE" "$B/tree" "$n" --max 4096 || exit 99
	python3 "$MKTREE" "$B/flat" "$n" --per 0 --empty || exit 99
	declare -A W=() C=()
	for i in $(seq "$r"); do
		run t cp -a "$B/tree" "$B/cp" || exit 1
		W[cp]+=" ${t% *}" C[cp]+=" ${t#* }"
		rm -rf "$B/cp"
		for shape in tree flat; do
			# the last run's volume stays for the exports
			[ "$i" -gt 1 ] && { vos remove "$shape" --force >/dev/null || exit 1; }
			run t "$VOS_BIN" --root "$SRV_ROOT" import "$shape" "$B/$shape" || exit 1
			W[imp$shape]+=" ${t% *}" C[imp$shape]+=" ${t#* }"
		done
	done
	for i in $(seq "$r"); do
		for shape in tree flat; do
			run t "$VOS_BIN" --root "$SRV_ROOT" export "$shape" "$B/out" || exit 1
			W[exp$shape]+=" ${t% *}" C[exp$shape]+=" ${t#* }"
			rm -rf "$B/out"
		done
	done
	row "cp -a of the tree" "$n" "${W[cp]}" "${C[cp]}"
	row "vos import tree" "$n" "${W[imptree]}" "${C[imptree]}"
	row "vos export tree" "$n" "${W[exptree]}" "${C[exptree]}"
	row "vos import flat" "$n" "${W[impflat]}" "${C[impflat]}"
	row "vos export flat" "$n" "${W[expflat]}" "${C[expflat]}"
	vos remove tree --force >/dev/null && vos remove flat --force >/dev/null || exit 1
	rm -rf "$B/tree" "$B/flat"
done
# g: the row's cost a file over its cost at the first size; gr: the same
# for its ratio to cp -a of the same size (the kernel's own cost a file
# moves with the size of what is in memory: cp -a's too)
over=$(awk '$(NF-1) > 1.2 { printf "  %s: %.2fx (%.2fx of cp -a'"'"'s growth)\n", $0, $(NF-1), $NF }' "$T_DIR/growth" |
	sed 's/ [0-9.]* [0-9.]*:/:/')
if [ -n "$over" ]; then
	echo "# rows whose cost a file grew over 1.2x of the first size's:"
	echo "$over"
else
	echo "# every row's cost a file within 1.2x of the first size's"
fi
