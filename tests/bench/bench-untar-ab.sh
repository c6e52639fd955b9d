#!/usr/bin/env bash
# bench-untar-ab.sh - the untar row of bench-write-sync.sh (issue #14),
# this tree's cairnd (B) against BENCH_UNTAR_BASE's (A: a build tree,
# default /work/main/build), alternated run by run on one cairn-vold (this
# tree's) so that both see the same load. Each run untars the same
# BENCH_WRITE_FILES (2,000) files of 1-64 KiB in 20 directories onto a
# fresh volume and mount of each, and reports per cairnd: the untar's wall
# time, local tar's in the same run, cairnd's CPU (user + system,
# /proc/PID/stat) per file until tar exits and until the server has every
# file, and its fdatasync + fsync calls per file (syscall counts from
# /proc/PID/task/*/syscall are not available, so BENCH_STRACE=1 runs the
# untar of each under strace -f -c, which slows both: compare counts, not
# times, then). BENCH_STRACE=2 traces fsync, fdatasync and epoll_wait
# by thread instead (strace -f -tt) and gives syncs a file as
# total/on the loop thread (the one in epoll_wait most)/until tar
# exited/on the loop until tar exited. BENCH_UNTAR_MODE (writeback) is the write mode;
# BENCH_RUNS (3) runs. BENCH_PERF=FILE records `perf record -g` of B's
# cairnd during its untars into FILE. BENCH_UNTAR_A_ARGS and
# BENCH_UNTAR_B_ARGS are more cairnd options for each side: one build,
# two policies, e.g. BENCH_UNTAR_BASE=$top_builddir
# BENCH_UNTAR_B_ARGS="--log-sync close". BENCH_UNTAR_VOLD=1 gives each
# side its own build's cairn-vold too (A's from BENCH_UNTAR_BASE, restarted
# on the same root and port before each untar): a change on the server's
# side shows, in sync mode above all. Not run by `make bench` (it needs a
# second build, or the same one with other options).
set -u
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 3600
BASE=${BENCH_UNTAR_BASE:-/work/main/build}
NFILES=${BENCH_WRITE_FILES:-2000}
RUNS=${BENCH_RUNS:-3}
MODE=${BENCH_UNTAR_MODE:-writeback}
STRACE=${BENCH_STRACE:-0}
A_ARGS=${BENCH_UNTAR_A_ARGS:-}
B_ARGS=${BENCH_UNTAR_B_ARGS:-}
PERF=${BENCH_PERF:-}
OWN_VOLD=${BENCH_UNTAR_VOLD:-0}
[ -x "$BASE/cm/cairnd" ] || { echo "bench-untar-ab: no cairnd in $BASE, skipping"; exit 0; }
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) * 1000 / hz }' "/proc/$1/stat" 2>/dev/null; }
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

python3 "$top_srcdir/tests/bench/smalltree.py" "$T_DIR/small" "$NFILES" || exit 99
tar -C "$T_DIR/small" -cf "$T_DIR/small.tar" . || exit 99
want_files=$(($(find "$T_DIR/small" | wc -l) + 1))
want_bytes=$(find "$T_DIR/small" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
on_server() { # VOL
	vos examine "$1" --json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
sys.exit(0 if d["files"] >= int(sys.argv[1]) and d["bytes"] >= int(sys.argv[2]) else 1)' \
		"$want_files" "$want_bytes"
}

vold_start --stage-max 2G || exit 99
vos init >/dev/null 2>&1
loc=$T_DIR/local
mkdir -p "$loc"
declare -A wall cpu dcpu syncs
failed=0
echo "# A = $BASE ${A_ARGS:+($A_ARGS) }, B = $top_builddir ${B_ARGS:+($B_ARGS) }; $NFILES files, $MODE, $RUNS runs, cairn-vold $([ "$OWN_VOLD" = 1 ] && echo "each side's" || echo "B's") (load: $(cut -d' ' -f1-3 /proc/loadavg))"
printf '# %-3s %-4s %8s %8s %7s %10s %10s %8s\n' run side "untar s" "local s" ratio "cpu ms/f" "drain ms/f" "syncs/f"
untar_one() { # SIDE BUILD RUN
	local side=$1 build=$2 run=$3 vol mnt pid c0 c1 c2 t0 t1 lt0 lt1 sp="" pp="" s=- extra
	extra=$A_ARGS
	[ "$side" = B ] && extra=$B_ARGS
	vol=$side$run
	mnt=$T_DIR/mnt-$side$run
	if [ "$OWN_VOLD" = 1 ]; then
		vold_stop
		VOLD=$build/vol/cairn-vold vold_restart --stage-max 2G || exit 99
	fi
	vos create "$vol" >/dev/null 2>&1 || exit 99
	make_token "$vol" rw "$T_DIR/tok-$vol"
	# shellcheck disable=SC2086 # $extra: options, split on purpose
	CAIRND=$build/cm/cairnd cairnd_mount "$mnt" "$T_DIR/cache-$vol" "$vol" "$T_DIR/tok-$vol" \
		--cache-size 4G --write-mode "$MODE" $extra || exit 1
	mkdir -p "$mnt/untar"
	pid=$(cairnd_pid "$mnt")
	rm -rf "$loc/untar" && mkdir -p "$loc/untar" && sync
	lt0=$(now); tar -C "$loc/untar" -xf "$T_DIR/small.tar"; lt1=$(now)
	if [ "$STRACE" = 2 ]; then
		strace -f -tt -e trace=fsync,fdatasync,epoll_wait -p "$pid" -o "$T_DIR/strace-$vol" 2>/dev/null &
		sp=$!
		sleep 1
	elif [ "$STRACE" = 1 ]; then
		strace -f -c -p "$pid" -o "$T_DIR/strace-$vol" 2>/dev/null &
		sp=$!
		sleep 1
	fi
	if [ -n "$PERF" ] && [ "$side" = B ]; then
		perf record -g -p "$pid" -o "$T_DIR/perf-$vol.data" >/dev/null 2>&1 &
		pp=$!
		sleep 1
	fi
	c0=$(cpu_ms "$pid")
	t0=$(now)
	tar -C "$mnt/untar" -xf "$T_DIR/small.tar" 2>"$T_DIR/untar.err" ||
		{ echo "# $side: untar failed: $(head -n 2 "$T_DIR/untar.err")"; failed=1; }
	t1=$(now)
	c1=$(cpu_ms "$pid")
	for _ in $(seq 1 1200); do on_server "$vol" && break; sleep 0.1; done
	on_server "$vol" || { echo "# $side: not on the server 120 s after tar"; failed=1; }
	c2=$(cpu_ms "$pid")
	if [ -n "$pp" ]; then
		kill -INT "$pp"; wait "$pp" 2>/dev/null
		cp "$T_DIR/perf-$vol.data" "$PERF.$run"
	fi
	if [ -n "$sp" ] && [ "$STRACE" = 2 ]; then
		kill -INT "$sp"; wait "$sp" 2>/dev/null
		s=$(python3 - "$T_DIR/strace-$vol" "$NFILES" "$(date -d "@$t1" +%H:%M:%S.%N | cut -c1-15)" <<'PY'
import collections, sys
path, n, tend = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ep = collections.Counter(); syn = []
for line in open(path):
    f = line.split(None, 2)
    if len(f) < 3 or f[0].startswith("+++") or "resumed>" in f[2] and "fsync" not in f[2] and "fdatasync" not in f[2]:
        continue
    tid, ts, rest = f
    if rest.startswith("epoll_wait("):
        ep[tid] += 1
    elif rest.startswith(("fsync(", "fdatasync(")):
        syn.append((tid, ts))
loop = ep.most_common(1)[0][0] if ep else ""
tot = len(syn); onloop = sum(1 for t, _ in syn if t == loop)
during = sum(1 for _, ts in syn if ts <= tend)
dl = sum(1 for t, ts in syn if t == loop and ts <= tend)
print("%.2f/%.2f/%.2f/%.2f" % (tot / n, onloop / n, during / n, dl / n))
PY
)
		[ -n "${BENCH_STRACE_KEEP:-}" ] && cp "$T_DIR/strace-$vol" "$BENCH_STRACE_KEEP-$vol"
	elif [ -n "$sp" ]; then
		kill -INT "$sp"; wait "$sp" 2>/dev/null
		s=$(awk -v n="$NFILES" '$NF == "fdatasync" || $NF == "fsync" { c += $4 } END { printf "%.2f", c / n }' "$T_DIR/strace-$vol")
		[ -n "${BENCH_STRACE_KEEP:-}" ] && cp "$T_DIR/strace-$vol" "$BENCH_STRACE_KEEP-$vol"
	fi
	wall[$side]+=" $(secs "$t0" "$t1")"
	cpu[$side]+=" $(awk -v a="$c0" -v b="$c1" -v n="$NFILES" 'BEGIN { printf "%.3f", (b - a) / n }')"
	dcpu[$side]+=" $(awk -v a="$c0" -v b="$c2" -v n="$NFILES" 'BEGIN { printf "%.3f", (b - a) / n }')"
	syncs[$side]+=" $s"
	printf '# %-3s %-4s %8s %8s %7s %10s %10s %8s\n' "$run" "$side" "$(secs "$t0" "$t1")" "$(secs "$lt0" "$lt1")" \
		"$(awk -v a="$(secs "$t0" "$t1")" -v b="$(secs "$lt0" "$lt1")" 'BEGIN { printf "%.1fx", a / b }')" \
		"$(awk -v a="$c0" -v b="$c1" -v n="$NFILES" 'BEGIN { printf "%.3f", (b - a) / n }')" \
		"$(awk -v a="$c0" -v b="$c2" -v n="$NFILES" 'BEGIN { printf "%.3f", (b - a) / n }')" "$s"
	CAIRND=$build/cm/cairnd cairnd_umount "$mnt"
	rm -rf "$T_DIR/cache-$vol"
	vos remove "$vol" >/dev/null 2>&1
}
for run in $(seq 1 "$RUNS"); do
	if [ $((run % 2)) = 1 ]; then
		untar_one A "$BASE" "$run"; untar_one B "$top_builddir" "$run"
	else
		untar_one B "$top_builddir" "$run"; untar_one A "$BASE" "$run"
	fi
done
for side in A B; do
	# shellcheck disable=SC2086
	echo "$side: untar median $(median ${wall[$side]}) s, cairnd CPU $(median ${cpu[$side]}) ms a file until tar exits, $(median ${dcpu[$side]}) until on the server"
done
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"
T_PASS=1
[ "$failed" = 0 ] || { T_FAIL=1; exit 1; }
exit 0
