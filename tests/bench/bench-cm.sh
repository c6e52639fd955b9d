#!/usr/bin/env bash
# bench-cm.sh - cairnd read-path benchmark (make bench; not part of check).
#
# Prints every row of issue #16's read-path table. Every number is a ratio
# against a baseline measured in the same run on the same machine, because
# these machines are noisy ("cold" = empty cache, fresh cairnd, page cache
# dropped; "warm" = chunks and metadata cached, page cache dropped):
#   sequential read cold           vs  curl GETting the same chunks from
#                                      cairn-vold one after the other
#   sequential read warm           vs  local disk, page cache dropped
#   sequential read hot            vs  local disk, page cache warm
#   ls -lR of the tree warm / cold vs  local disk, dropped
#   find + stat of the tree cold / warm   vs  local disk, dropped
#   cat of every small file cold / warm   vs  local disk, dropped
#   random 4 KiB reads warm / cold vs  local disk, dropped
#   first byte of an uncached file with the server gone (offline-miss=error,
#   the default): seconds, right after the server went and once a first
#   miss has found it gone
# Sizes: BENCH_FILE_MB (default 1024), BENCH_FILES (default 10000 files of
# 1-64 KiB), BENCH_DIRS (default 100), BENCH_RANDOM_READS (default 10000).
# BENCH_RUNS (default 3) repeats every measurement, baselines included,
# with fresh caches. BENCH_PROFILE=0 leaves out the per-workload counters
# (cairnd's FUSE requests by opcode and server requests, first run only).
# A quick run: BENCH_FILE_MB=128 BENCH_FILES=1000 BENCH_RANDOM_READS=1000
# BENCH_RUNS=1.
set -u
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout "${BENCH_TIMEOUT:-3600}"
FILE_MB=${BENCH_FILE_MB:-1024}
NFILES=${BENCH_FILES:-10000}
NDIRS=${BENCH_DIRS:-100}
NRAND=${BENCH_RANDOM_READS:-10000}
RUNS=${BENCH_RUNS:-3}
PROFILE=${BENCH_PROFILE:-1}

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l; }
command -v bc >/dev/null || apt-get install -y -qq bc >/dev/null 2>&1
command -v getfattr >/dev/null || apt-get install -y -qq attr >/dev/null 2>&1

src=$T_DIR/src
mkdir -p "$src/tree"
echo "# preparing: ${FILE_MB} MiB file, $NFILES files of 1-64 KiB in $NDIRS directories"
head -c $((FILE_MB * 1024 * 1024)) /dev/urandom >"$src/big.bin"
python3 - "$src/tree" "$NFILES" "$NDIRS" <<'PY'
import os, sys
root, n, nd = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
per = max(1, (n + nd - 1) // nd)
for i in range(n):
    d = os.path.join(root, "d%03d" % (i // per))
    os.makedirs(d, exist_ok=True)
    size = 1024 * (1 + (i * 7919) % 64)
    line = ("file %d\n" % i).encode()
    with open(os.path.join(d, "f%05d.txt" % i), "wb") as f:
        f.write((line * (size // len(line) + 1))[:size])
PY
vold_start
vos init >/dev/null 2>&1
vos import bench "$src" >/dev/null || { echo "vos import failed"; exit 1; }
make_token bench ro "$T_DIR/tok"
auth="Authorization: Bearer $(cat "$T_DIR/tok")"

timed() { local t0 t1; t0=$(now); "$@" >/dev/null 2>&1; t1=$(now); secs "$t0" "$t1"; }
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
seqread() { cat "$1" >/dev/null; }
catall() { find "$1" -type f -print0 | xargs -0 cat >/dev/null; }
findstat() { find "$1" -printf '%s %m %u\n' >/dev/null; }
lslr() { ls -lR "$1" >/dev/null; }
# First byte at offset $2 MiB: prints "SECONDS ERRNO-TEXT".
firstbyte() { # FILE MIB
	python3 - "$1" "$2" <<'PY'
import os, sys, time
t0 = time.monotonic()
try:
    fd = os.open(sys.argv[1], os.O_RDONLY)
    os.pread(fd, 1, int(sys.argv[2]) << 20)
    os.close(fd)
    err = "ok"
except OSError as e:
    err = os.strerror(e.errno).replace(" ", "_")
print("%.3f %s" % (time.monotonic() - t0, err))
PY
}

# Baseline: the same bytes as 256 KiB chunk GETs over one keep-alive
# connection (cairnd's default chunk size).
fid=$(curl -sf -H "$auth" "$VOLD_URL/v1/vol/bench/dir/$(curl -sf -H "$auth" "$VOLD_URL/v1/vol/bench" | python3 -c 'import json,sys;print(json.load(sys.stdin)["root"])')" |
	python3 -c 'import json,sys
d=json.load(sys.stdin)
for e in d["entries"]:
    if e["name"]=="big.bin": print(e["attr"]["fid"], e["attr"]["dv"])')
set -- $fid
nchunks=$(( (FILE_MB * 1024 * 1024 + 262143) / 262144 ))
urls=$T_DIR/urls.txt
: >"$urls"
for i in $(seq 0 $((nchunks - 1))); do
	echo "url = \"$VOLD_URL/v1/vol/bench/data/$1/$2/$i?size=262144\"" >>"$urls"
	echo "output = \"/dev/null\"" >>"$urls"
done
# One untimed pass, so that cairn-vold has hashed every chunk (it keeps the
# sums) before either curl or cairnd is timed: both then pay the same.
curl -sf -H "$auth" -K "$urls" >/dev/null

# Results: one line "NAME SECONDS" per measurement and run.
res=$T_DIR/results.txt
prof=$T_DIR/profile.txt
: >"$res"
: >"$prof"
rec() { echo "$1 $2" >>"$res"; }
mnt=$T_DIR/mnt
rss=0
stats() { getfattr -n cairn.stats --only-values "$mnt" 2>/dev/null; }
# measure NAME CMD...: time CMD on the mount; in the first run also note
# what it cost in cairnd's counters (FUSE requests by opcode, server work).
measure() {
	local name=$1 before after t
	shift
	[ "$PROFILE" = 1 ] && [ "$run" = 1 ] && before=$(stats)
	t=$(timed "$@")
	rec "$name" "$t"
	if [ "$PROFILE" = 1 ] && [ "$run" = 1 ]; then
		after=$(stats)
		# The two getxattr(cairn.stats) are not the workload's.
		awk -v n="$name" 'NR == FNR {b[$1] = $2; next}
			($1 ~ /^req_/ || $1 ~ /fetch|getattr_|parked|chunk_|early|prefetch|invalid|push|advised/) && $2 - b[$1] > 0 {
				d = $2 - b[$1]; if ($1 == "req_xattr") d -= 1
				if (d > 0) printf "%s %s %d\n", n, $1, d }' \
			<(echo "$before") <(echo "$after") >>"$prof"
	fi
}
# A used cache is not removed at once: ext4 without a journal (as on the
# VM of issue #16) skips inodes freed in the last ~30 s when it allocates
# one, and the next cold read, creating a file per chunk, paid twice the
# store thread's CPU for it. So used caches go to a trash emptied at the
# start of a run, and the first mount of the run waits until 35 s have
# passed since.
trash=$T_DIR/trash
ncache=0
emptied=0
mount_fresh() {
	local left=$(( emptied + 35 - $(date +%s) ))
	[ "$left" -gt 0 ] && sleep "$left"
	ncache=$((ncache + 1))
	cache=$T_DIR/cache$ncache
	cairnd_mount "$mnt" "$cache" bench "$T_DIR/tok" --cache-size 4G
}
umount_note() {
	local r
	r=$(awk '/VmHWM/ {print $2}' "/proc/$(cairnd_pid "$mnt")/status" 2>/dev/null)
	[ "${r:-0}" -gt "$rss" ] && rss=$r
	cairnd_umount "$mnt"
	mkdir -p "$trash" && mv "$cache" "$trash/"
}
for run in $(seq 1 "$RUNS"); do
	echo "# run $run of $RUNS"
	rm -rf "$trash"; emptied=$(date +%s)
	# Baselines.
	drop_caches; rec base_disk_cold "$(timed seqread "$src/big.bin")"
	rec base_disk_hot "$(timed seqread "$src/big.bin")"
	drop_caches; rec base_rand "$(timed randread "$src/big.bin" "$NRAND" "$run")"
	drop_caches; rec base_ls "$(timed lslr "$src/tree")"
	drop_caches; rec base_find "$(timed findstat "$src/tree")"
	drop_caches; rec base_cat "$(timed catall "$src/tree")"
	drop_caches; rec base_curl "$(timed curl -sf -H "$auth" -K "$urls")"

	# The big file: cold, warm, hot, random warm.
	mount_fresh
	drop_caches; measure cold seqread "$mnt/big.bin"
	[ "$run" = 1 ] && { cmp -s "$mnt/big.bin" "$src/big.bin" || echo "# WARNING: content differs"; }
	drop_caches; measure warm seqread "$mnt/big.bin"
	seqread "$mnt/big.bin"; measure hot seqread "$mnt/big.bin"
	drop_caches; measure warm_rand randread "$mnt/big.bin" "$NRAND" "$run"
	umount_note
	# The tree: ls -lR cold then warm, find warm; find cold on its own.
	mount_fresh
	drop_caches; measure cold_ls lslr "$mnt/tree"
	drop_caches; measure warm_ls lslr "$mnt/tree"
	drop_caches; measure warm_find findstat "$mnt/tree"
	umount_note
	mount_fresh
	drop_caches; measure cold_find findstat "$mnt/tree"
	umount_note
	# cat of the small files cold, then warm; then the server goes.
	mount_fresh
	drop_caches; measure cold_cat catall "$mnt/tree"
	drop_caches; measure warm_cat catall "$mnt/tree"
	[ "$run" = 1 ] && { diff -r "$mnt/tree" "$src/tree" >/dev/null || echo "# WARNING: tree differs"; }
	vold_stop
	set -- $(firstbyte "$mnt/big.bin" 0)
	rec off_first "$1"; echo "# server gone, first miss: $1 s, $2"
	sleep 0.2
	set -- $(firstbyte "$mnt/big.bin" $((FILE_MB / 2)))
	rec off_known "$1"; echo "# server known gone, next miss: $1 s, $2"
	umount_note
	vold_restart
	# Random reads cold.
	mount_fresh
	drop_caches; measure cold_rand randread "$mnt/big.bin" "$NRAND" "$run"
	umount_note
done

med() { awk -v k="$1" '$1 == k {print $2}' "$res" | sort -g |
	awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
all() { awk -v k="$1" '$1 == k {printf "%s%.2f", sep, $2; sep = " "}' "$res"; }
mb() { echo "scale=0; $FILE_MB / $1" | bc -l; }
# ratio = cairn time / baseline time of the same run (1.00: as fast as the
# baseline; the issue's "2.7x" is 2.70 here); the median of the runs'
# ratios: the load of a shared machine moves a lot between runs, much less
# between the baseline and the measurement of one run.
pratio() { # CAIRN BASE
	awk -v c="$1" -v b="$2" '$1 == c {cv[++nc] = $2} $1 == b {bv[++nb] = $2}
		END {for (i = 1; i <= nc && i <= nb; i++) print (bv[i] > 0 ? cv[i] / bv[i] : 0)}' "$res" |
		sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "-"; else if (NR % 2) printf "%.2f", v[(NR + 1) / 2];
			else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
prall() { # CAIRN BASE: every run's ratio
	awk -v c="$1" -v b="$2" '$1 == c {cv[++nc] = $2} $1 == b {bv[++nb] = $2}
		END {for (i = 1; i <= nc && i <= nb; i++) printf "%s%.2f", (i > 1 ? " " : ""), (bv[i] > 0 ? cv[i] / bv[i] : 0)}' "$res"
}
row() { # LABEL CAIRN BASE TARGET
	local c b
	c=$(med "$2"); b=$(med "$3")
	printf '%-40s %8.3f %8.3f %6sx %6s  %s | %s\n' "$1" "$c" "$b" "$(pratio "$2" "$3")" "$4" "$(all "$2")" "$(prall "$2" "$3")"
}
printf '\n%-40s %8s %8s %7s %6s  %s\n' "workload (${FILE_MB} MiB, $NFILES files)" \
	"cairn s" "base s" "ratio" "target" "cairn s, every run | ratio, every run"
row "seq read cold vs curl (256K GETs)" cold base_curl "<=1.2"
row "seq read warm vs disk (dropped)" warm base_disk_cold "<=1.3"
row "seq read hot vs disk (hot)" hot base_disk_hot "<=1.1"
row "ls -lR warm vs disk" warm_ls base_ls "<=1.5"
row "ls -lR cold vs disk" cold_ls base_ls "<=3"
row "find+stat cold vs disk" cold_find base_find "<=3"
row "cat small files cold vs disk" cold_cat base_cat "<=3"
row "cat small files warm vs disk" warm_cat base_cat "<=1.2"
row "random 4K x$NRAND warm vs disk" warm_rand base_rand "<=1.3"
printf '%-40s %8.3f %8s %7s %6s  %s\n' "first byte, server known gone (s)" "$(med off_known)" "-" "-" "<=0.5" "$(all off_known)"
echo "also measured:"
printf '%-40s %8.3f %8s %7s %6s  %s\n' "first byte, server just gone (s)" "$(med off_first)" "-" "-" "" "$(all off_first)"
row "find+stat warm vs disk" warm_find base_find ""
row "random 4K x$NRAND cold vs disk" cold_rand base_rand ""
echo "medians over $RUNS runs; baselines every run: disk cold $(all base_disk_cold); disk hot $(all base_disk_hot); curl $(all base_curl); ls -lR $(all base_ls); find $(all base_find); cat $(all base_cat)"
echo "cold MB/s: $(mb "$(med cold)")   warm MB/s: $(mb "$(med warm)")   hot MB/s: $(mb "$(med hot)")   curl MB/s: $(mb "$(med base_curl)")"
echo "cairnd peak RSS: ${rss} KiB"
echo "(ratio = cairn time / baseline time in the same run, median over runs; 1.00 = as fast as the baseline)"
if [ "$PROFILE" = 1 ] && [ -s "$prof" ]; then
	echo
	echo "profile (first run): what each workload cost in cairnd's counters"
	awk '{k = $1; if (!(k in seen)) {seen[k] = 1; order[++n] = k}
		line[k] = line[k] sprintf(" %s=%s", $2, $3)}
		END {for (i = 1; i <= n; i++) printf "  %-10s%s\n", order[i], line[order[i]]}' "$prof"
fi
T_PASS=1
exit 0
