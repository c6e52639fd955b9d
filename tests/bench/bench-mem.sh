#!/usr/bin/env bash
# bench-mem.sh - issue #17's memory rows: cairnd's VmHWM, RssAnon and
# RssFile (kB) at each step of
#   mount; cold ls -f of a directory of BENCH_MEM_N entries (default
#   100,000); ls -l of it; the kernel forgets (drop_caches 2, FORGETs);
#   find -ls of a tree of BENCH_MEM_N files in directories of 1,000; the
#   kernel forgets again
# with the peak RssAnon and RssFile seen while each command ran (polled
# every 50 ms), cairnd's CPU and the inodes it holds (cairnd_inodes).
# BENCH_MEM_BASE=DIR runs DIR/cm/cairnd (an older build) first on the
# same volume, for same-run before/after numbers. BENCH_MEM_TREE_ONLY=1
# skips the big directory. doc/cm.md, "Memory", explains the columns.
set -u
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
N=${BENCH_MEM_N:-100000}
t_timeout $((600 + N / 50))
[ -w /proc/sys/vm/drop_caches ] || { echo "# SKIP: cannot drop the kernel's caches"; exit 77; }

src=$T_DIR/src
python3 - "$src" "$N" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
os.makedirs(root + "/big")
for i in range(n):
    os.close(os.open(os.path.join(root, "big", "f%07d" % i), os.O_CREAT | os.O_WRONLY, 0o644))
for j in range((n + 999) // 1000):
    d = os.path.join(root, "tree", "d%04d" % j)
    os.makedirs(d)
    for i in range(min(1000, n - j * 1000)):
        os.close(os.open(os.path.join(d, "g%04d" % i), os.O_CREAT | os.O_WRONLY, 0o644))
PY
mkdir -p "$SRV_ROOT"
vos init >/dev/null 2>&1
vos import mem "$src" >/dev/null || exit 99
rm -rf "$src"
vold_start
make_token mem ro "$T_DIR/tok"

run() { # LABEL CAIRND
	local label=$1 mnt=$T_DIR/m-$1.mnt cm p
	CAIRND=$2
	cairnd_mount "$mnt" "$T_DIR/cache-$label" mem "$T_DIR/tok" || exit 99
	cm=$(cairnd_pid "$mnt")
	snap() {
		awk -v w="$label: $1" -v i="$("$FS" metrics -m "$mnt" 2>/dev/null |
			awk '$1 ~ /^cairnd_inodes/ {print $2}')" \
			-v c="$(awk '{print ($14 + $15) * 10}' /proc/"$cm"/stat)" \
			'/^(VmHWM|RssAnon|RssFile):/ {v[$1] = $2}
			 END {printf "%-34s %9d %9d %9d %9d %8d\n", w, v["VmHWM:"],
			      v["RssAnon:"], v["RssFile:"], i, c}' /proc/"$cm"/status
	}
	step() { # LABEL CMD...
		local lb=$1 pf=$T_DIR/poll
		shift
		: >"$pf"
		( while :; do awk '/^(RssAnon|RssFile):/ {printf "%s ", $2} END {print ""}' \
			/proc/"$cm"/status >>"$pf" 2>/dev/null; sleep 0.05; done ) &
		p=$!
		"$@" >/dev/null
		kill "$p"; wait "$p" 2>/dev/null
		snap "$lb"
		awk '{if ($1 > a) a = $1; if ($2 > f) f = $2} END {printf "%-34s %9s %9d %9d\n", "  peak during it", "", a, f}' "$pf"
	}
	forget() {
		local n
		for _ in $(seq 1 30); do
			sync; echo 2 >/proc/sys/vm/drop_caches; sleep 1
			n=$("$FS" metrics -m "$mnt" 2>/dev/null | awk '$1 ~ /^cairnd_inodes/ {print $2}')
			[ "${n:-99}" -le 5 ] && break
		done
		sleep 3 # memtrim's quiet time, with a margin
	}
	ls "$mnt" >/dev/null
	snap mounted
	if [ -z "${BENCH_MEM_TREE_ONLY:-}" ]; then
		step "cold ls -f of $N" ls -f "$mnt/big"
		step "ls -l" ls -l "$mnt/big"
		forget; snap "kernel forgot"
	fi
	step "find -ls of $N files" find "$mnt/tree" -ls
	forget; snap "kernel forgot"
	ls -l "$T_DIR/cache-$label/meta.tdb" | awk '{printf "%-34s %s bytes\n", "  meta.tdb", $5}'
	cairnd_umount "$mnt"
}

printf '%-34s %9s %9s %9s %9s %8s\n' "step (kB)" VmHWM RssAnon RssFile inodes "CPU ms"
[ -n "${BENCH_MEM_BASE:-}" ] && run base "$BENCH_MEM_BASE/cm/cairnd"
run new "$top_builddir/cm/cairnd"
