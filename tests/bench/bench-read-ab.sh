#!/usr/bin/env bash
# bench-read-ab.sh - the warm read rows of bench-cm.sh with two cairnd
# binaries side by side (not part of make bench): one cairn-vold, one
# file imported, mounted by $CAIRND_A (e.g. main's build) and by this
# build's cairnd, each with its own cache; the file is read cold then
# warm through both, then every run times the local disk, A and B with
# the page cache dropped before each (the same seeds), so a loaded
# machine's drift hits all three alike. Prints per run the times, the
# ratios against the disk, cairnd's CPU (clock ticks of utime+stime) and
# for random reads its disk bytes per read (/proc/PID/io read_bytes).
#   CAIRND_A=/path/to/other/cairnd top_builddir=$PWD/build top_srcdir=$PWD \
#     bash tests/bench/bench-read-ab.sh
# BENCH_FILE_MB (256), BENCH_RANDOM_READS (4000), BENCH_RUNS (6),
# ROWS ("rand warm hot"). CAIRND_B replaces this build's cairnd as B (swap
# A and B to see whether going second in a run favours a binary).
set -u
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout "${BENCH_TIMEOUT:-3000}"
[ -x "${CAIRND_A:-}" ] || { echo "# SKIP: set CAIRND_A to a cairnd binary"; exit 77; }
FILE_MB=${BENCH_FILE_MB:-256}
NRAND=${BENCH_RANDOM_READS:-4000}
RUNS=${BENCH_RUNS:-6}
command -v bc >/dev/null || { echo "# SKIP: bc missing"; exit 77; }
now() { date +%s.%N; }
timed() { local t0 t1; t0=$(now); "$@" >/dev/null 2>&1; t1=$(now); echo "$t1 - $t0" | bc -l; }
randread() { # FILE COUNT SEED
	python3 - "$1" "$2" "$3" <<'PY'
import os, random, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
size = os.fstat(fd).st_size
r = random.Random(int(sys.argv[3]))
for _ in range(int(sys.argv[2])):
    os.pread(fd, 4096, r.randrange(0, size - 4096) & ~4095)
PY
}
cpu() { awk '{print $14 + $15}' "/proc/$1/stat"; }
rdb() { awk '/^read_bytes/ {print $2}' "/proc/$1/io"; }

src=$T_DIR/src
mkdir -p "$src"
head -c $((FILE_MB * 1024 * 1024)) /dev/urandom >"$src/big.bin"
vold_start || exit 99
vos init >/dev/null 2>&1
vos import bench "$src" >/dev/null || { echo "vos import failed"; exit 99; }
make_token bench ro "$T_DIR/tok"
B=${CAIRND_B:-$CAIRND}
CAIRND=$CAIRND_A cairnd_mount "$T_DIR/ma" "$T_DIR/ca" bench "$T_DIR/tok" --cache-size 4G || exit 99
CAIRND=$B cairnd_mount "$T_DIR/mb" "$T_DIR/cb" bench "$T_DIR/tok" --cache-size 4G || exit 99
PA=$(cairnd_pid "$T_DIR/ma")
PB=$(cairnd_pid "$T_DIR/mb")
cat "$T_DIR/ma/big.bin" >/dev/null
cat "$T_DIR/mb/big.bin" >/dev/null
drop_caches
cmp -s "$T_DIR/ma/big.bin" "$src/big.bin" && cmp -s "$T_DIR/mb/big.bin" "$src/big.bin" ||
	echo "# WARNING: content differs"
# The store threads make spare chunk files once idle: not during the runs.
sleep "${BENCH_SETTLE:-20}"
# one ROW RUN FILE: time the row on FILE; prints "SECONDS TICKS BYTES/READ".
one() {
	local pid=$4 c0 r0 t
	case $1 in
	rand) drop_caches ;;
	warm) drop_caches ;;
	hot) cat "$3" >/dev/null ;;
	esac
	c0=$([ -n "$pid" ] && cpu "$pid" || echo 0)
	r0=$([ -n "$pid" ] && rdb "$pid" || echo 0)
	case $1 in
	rand) t=$(timed randread "$3" "$NRAND" "$2") ;;
	*) t=$(timed cat "$3") ;;
	esac
	if [ -n "$pid" ]; then
		echo "$t $(( $(cpu "$pid") - c0 )) $(( ($(rdb "$pid") - r0) / NRAND ))"
	else
		echo "$t 0 0"
	fi
}
for run in $(seq 1 "$RUNS"); do
	for w in ${ROWS:-rand warm hot}; do
		set -- $(one "$w" "$run" "$src/big.bin" "")
		d=$1
		set -- $(one "$w" "$run" "$T_DIR/ma/big.bin" "$PA")
		a=$1 ca=$2 ra=$3
		set -- $(one "$w" "$run" "$T_DIR/mb/big.bin" "$PB")
		b=$1 cb=$2 rb=$3
		printf '%-4s run %d: disk %.3f  A %.3f (%.2fx, %d ticks%s)  B %.3f (%.2fx, %d ticks%s)  load %s\n' \
			"$w" "$run" "$d" "$a" "$(echo "$a / $d" | bc -l)" "$ca" \
			"$([ "$w" = rand ] && echo ", $ra B/read")" \
			"$b" "$(echo "$b / $d" | bc -l)" "$cb" \
			"$([ "$w" = rand ] && echo ", $rb B/read")" \
			"$(cut -d' ' -f1 /proc/loadavg)"
	done
done
cairnd_umount "$T_DIR/ma"
cairnd_umount "$T_DIR/mb"
T_PASS=1
exit 0
