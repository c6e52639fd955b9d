#!/usr/bin/env bash
# bench-vold-ab.sh - the server's part of issue #14's sync-mode rows, as
# a same-run before/after: the untar of BENCH_WRITE_FILES (2,000) files of
# 1-64 KiB (those of bench-write-sync.sh) and create + 1 KiB + close of
# BENCH_CREATE_FILES (500) files, on a cairnd mount (this tree's cairnd)
# served by the cairn-vold of BENCH_VOLD_BASE's build tree (default
# /work/main/build; its vos makes the volume) and by this tree's, in
# turn, BENCH_RUNS (3) times each; with every row the local disk's time
# in the same minute and cairn-vold's CPU a file (/proc/PID/stat) and the
# commits' time from its metrics. Not run by `make bench` (it needs a
# second build); the numbers of doc/vol-format.md ("Profile: the commit
# of a small change") were made with it.
set -u
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 3600
NF=${BENCH_WRITE_FILES:-2000}
NC=${BENCH_CREATE_FILES:-500}
RUNS=${BENCH_RUNS:-3}
BASE=${BENCH_VOLD_BASE:-/work/main/build}
[ -x "$BASE/vol/cairn-vold" ] && [ -x "$BASE/admin/vos" ] ||
	{ echo "# SKIP: no cairn-vold and vos in $BASE"; exit 77; }
python3 - "$T_DIR/small" "$NF" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "d%02d" % (i // 100))
    os.makedirs(d, exist_ok=True)
    size = 1024 + (i * 7919) % (63 * 1024 + 1)
    line = ("small file %d\n" % i).encode()
    with open(os.path.join(d, "f%05d.txt" % i), "wb") as f:
        f.write((line * (size // len(line) + 1))[:size])
PY
tar -C "$T_DIR/small" -cf "$T_DIR/small.tar" .
cat >"$T_DIR/create.py" <<'PY'
import os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
b = b"x" * 1024
t0 = time.time()
for i in range(n):
    with open(os.path.join(d, "c%05d" % i), "wb") as f:
        f.write(b)
print("%.2f" % ((time.time() - t0) * 1000 / n))
PY
metric() { # FILE NAME: the value of an unlabelled metric
	awk -v m="$2" '$1 == m { print $2 }' "$1"
}
THIS_VOLD=$VOLD THIS_VOS=$VOS_BIN
echo "# $NF files untarred, $NC created, $RUNS runs each, base $BASE"
printf '%-5s %3s %9s %9s %10s %10s %10s %9s %5s\n' server run "untar s" "local s" "cpu ms/f" "commit ms" "create ms" "local ms" load
for run in $(seq 1 "$RUNS"); do
	for which in base this; do
		if [ "$which" = base ]; then
			VOLD=$BASE/vol/cairn-vold VOS_BIN=$BASE/admin/vos
		else
			VOLD=$THIS_VOLD VOS_BIN=$THIS_VOS
		fi
		SRV_ROOT=$T_DIR/srv-$which-$run
		vold_start --metrics-listen 127.0.0.1:0 --metrics-port-file "$T_DIR/mport" || exit 1
		vos init >/dev/null 2>&1
		vos create v >/dev/null || exit 1
		make_token v rw "$T_DIR/tok" || exit 1
		mnt=$T_DIR/mnt-$which-$run
		cairnd_mount "$mnt" "$T_DIR/cache-$which-$run" v "$T_DIR/tok" --cache-size 4G || exit 1
		mkdir -p "$mnt/u" "$mnt/c"
		loc=$T_DIR/loc-$which-$run
		mkdir -p "$loc/u" "$loc/c"
		sync
		t0=$(date +%s.%N); tar -C "$loc/u" -xf "$T_DIR/small.tar"; t1=$(date +%s.%N)
		curl -s "http://127.0.0.1:$(cat "$T_DIR/mport")/metrics" >"$T_DIR/m0"
		c0=$(awk '{ print $14 + $15 }' "/proc/$VOLD_PID/stat")
		t2=$(date +%s.%N); tar -C "$mnt/u" -xf "$T_DIR/small.tar"; t3=$(date +%s.%N)
		c1=$(awk '{ print $14 + $15 }' "/proc/$VOLD_PID/stat")
		curl -s "http://127.0.0.1:$(cat "$T_DIR/mport")/metrics" >"$T_DIR/m1"
		cr=$(python3 "$T_DIR/create.py" "$mnt/c" "$NC")
		lcr=$(python3 "$T_DIR/create.py" "$loc/c" "$NC")
		s0=$(metric "$T_DIR/m0" cairn_vold_op_commit_duration_seconds_sum)
		s1=$(metric "$T_DIR/m1" cairn_vold_op_commit_duration_seconds_sum)
		n0=$(metric "$T_DIR/m0" cairn_vold_op_commit_duration_seconds_count)
		n1=$(metric "$T_DIR/m1" cairn_vold_op_commit_duration_seconds_count)
		printf '%-5s %3d %9.2f %9.3f %10.2f %10.2f %10s %9s %5s\n' "$which" "$run" \
			"$(awk -v a="$t2" -v b="$t3" 'BEGIN { print b - a }')" \
			"$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" \
			"$(awk -v a="$c0" -v b="$c1" -v n="$NF" -v hz="$(getconf CLK_TCK)" 'BEGIN { print (b - a) * 1000 / hz / n }')" \
			"$(awk -v a="${s0:-0}" -v b="${s1:-0}" -v x="${n0:-0}" -v y="${n1:-0}" 'BEGIN { print (y > x ? (b - a) * 1000 / (y - x) : 0) }')" \
			"$cr" "$lcr" "$(cut -d' ' -f1 /proc/loadavg)"
		cairnd_umount "$mnt"
		vold_stop
		rm -rf "$SRV_ROOT" "$loc" "$T_DIR/cache-$which-$run"
	done
done
echo "(cpu ms/f: cairn-vold's user + system time a file of the untar; commit ms: the mean time of one group commit in it)"
T_PASS=1
exit 0
