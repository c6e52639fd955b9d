#!/usr/bin/env bash
# bench-cm.sh - cairnd read-path benchmark (make bench; not part of check).
#
# Every number is a ratio against a baseline measured in the same run on
# the same machine, because these machines are noisy:
#   cold sequential read of a file   vs  curl downloading it from cairn-vold
#   warm read (chunks cached, page cache dropped)  vs  local disk, dropped
#   hot read (page cache warm)       vs  local disk, hot
#   random 4 KiB reads, cold / warm  vs  local disk, dropped
#   find + stat of a 10,000-file tree, cold / warm  vs  local disk
#   cat of all 10,000 small files, cold / warm      vs  local disk
# Sizes: BENCH_FILE_MB (default 1024), BENCH_FILES (default 10000),
# BENCH_RANDOM_READS (default 10000). BENCH_RUNS (default 3) repeats every
# measurement, baselines included, with fresh caches; the table shows the
# median of each, and the ratio of the medians.
set -u
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 1800
FILE_MB=${BENCH_FILE_MB:-1024}
NFILES=${BENCH_FILES:-10000}
NRAND=${BENCH_RANDOM_READS:-10000}
RUNS=${BENCH_RUNS:-3}

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l; }
ratio() { echo "scale=2; $1 / $2" | bc -l; }
command -v bc >/dev/null || apt-get install -y -qq bc >/dev/null 2>&1

src=$T_DIR/src
mkdir -p "$src/tree"
echo "# preparing: ${FILE_MB} MiB file, $NFILES small files"
head -c $((FILE_MB * 1024 * 1024)) /dev/urandom >"$src/big.bin"
python3 - "$src/tree" "$NFILES" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "d%03d" % (i // 100))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%05d.txt" % i), "w") as f:
        f.write(("file %d\n" % i) * (1 + i % 50))
PY
vold_start
vos init >/dev/null 2>&1
vos import bench "$src" >/dev/null || { echo "vos import failed"; exit 1; }
make_token bench ro "$T_DIR/tok"

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
catall() { find "$1" -type f -print0 | xargs -0 cat >/dev/null; }
findstat() { find "$1" -printf '%s %m %u\n' >/dev/null; }

# Baselines and measurements.
fid=$(curl -sf -H "Authorization: Bearer $(cat "$T_DIR/tok")" "$VOLD_URL/v1/vol/bench/dir/$(curl -sf -H "Authorization: Bearer $(cat "$T_DIR/tok")" "$VOLD_URL/v1/vol/bench" | python3 -c 'import json,sys;print(json.load(sys.stdin)["root"])')" |
	python3 -c 'import json,sys
d=json.load(sys.stdin)
for e in d["entries"]:
    if e["name"]=="big.bin": print(e["attr"]["fid"], e["attr"]["dv"])')
set -- $fid
# curl baseline: the same bytes as 256 KiB chunk GETs over one keep-alive connection.
nchunks=$(( (FILE_MB * 1024 * 1024 + 262143) / 262144 ))
urls=$T_DIR/urls.txt
: >"$urls"
for i in $(seq 0 $((nchunks - 1))); do
	echo "url = \"$VOLD_URL/v1/vol/bench/data/$1/$2/$i?size=262144\"" >>"$urls"
	echo "output = \"/dev/null\"" >>"$urls"
done
# One untimed pass, so that cairn-vold has hashed every chunk (it keeps the
# sums) before either curl or cairnd is timed: both then pay the same.
curl -sf -H "Authorization: Bearer $(cat "$T_DIR/tok")" -K "$urls" >/dev/null

# Results: one line "NAME SECONDS" per measurement and run.
res=$T_DIR/results.txt
: >"$res"
rec() { echo "$1 $2" >>"$res"; }
mnt=$T_DIR/mnt
rss=0
for run in $(seq 1 "$RUNS"); do
	echo "# run $run of $RUNS"
	# Baselines.
	drop_caches; rec base_disk_cold "$(timed cat "$src/big.bin")"
	rec base_disk_hot "$(timed cat "$src/big.bin")"
	drop_caches; rec base_rand "$(timed randread "$src/big.bin" "$NRAND" "$run")"
	drop_caches; rec base_find "$(timed findstat "$src/tree")"
	drop_caches; rec base_cat "$(timed catall "$src/tree")"
	drop_caches
	rec base_curl "$(timed curl -sf -H "Authorization: Bearer $(cat "$T_DIR/tok")" -K "$urls")"

	rm -rf "$T_DIR/cache" "$T_DIR/cache2"
	cairnd_mount "$mnt" "$T_DIR/cache" bench "$T_DIR/tok" --cache-size 4G
	drop_caches; rec cold "$(timed cat "$mnt/big.bin")"
	[ "$run" = 1 ] && { cmp -s "$mnt/big.bin" "$src/big.bin" || echo "# WARNING: content differs"; }
	drop_caches; rec warm "$(timed cat "$mnt/big.bin")"
	cat "$mnt/big.bin" >/dev/null; rec hot "$(timed cat "$mnt/big.bin")"
	drop_caches; rec cold_find "$(timed findstat "$mnt/tree")"
	drop_caches; rec warm_find "$(timed findstat "$mnt/tree")"
	drop_caches; catall "$mnt/tree"   # first cat: fills the chunk cache
	drop_caches; rec warm_cat "$(timed catall "$mnt/tree")"
	drop_caches; rec warm_rand "$(timed randread "$mnt/big.bin" "$NRAND" "$run")"
	r=$(awk '/VmHWM/ {print $2}' "/proc/$(cairnd_pid "$mnt")/status")
	[ "${r:-0}" -gt "$rss" ] && rss=$r
	cairnd_umount "$mnt"
	cairnd_mount "$mnt" "$T_DIR/cache2" bench "$T_DIR/tok" --cache-size 4G
	drop_caches; rec cold_rand "$(timed randread "$mnt/big.bin" "$NRAND" "$run")"
	drop_caches; rec cold_cat "$(timed catall "$mnt/tree")"
	r=$(awk '/VmHWM/ {print $2}' "/proc/$(cairnd_pid "$mnt")/status")
	[ "${r:-0}" -gt "$rss" ] && rss=$r
	cairnd_umount "$mnt"
done

med() { awk -v k="$1" '$1 == k {print $2}' "$res" | sort -g |
	awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
all() { awk -v k="$1" '$1 == k {printf "%s%.2f", sep, $2; sep = " "}' "$res"; }
mb() { echo "scale=0; $FILE_MB / $1" | bc -l; }
printf '\n%-44s %9s %9s %7s %6s  %s\n' "measurement (${FILE_MB} MiB file, $NFILES files)" \
	"cairn s" "base s" "ratio" "target" "cairn s, every run | ratio, every run"
# The ratio is the median of each run's own ratio: the load of a shared
# machine moves a lot between runs, much less between the baseline and
# the measurement of one run.
pratio() { # CAIRN BASE
	awk -v c="$1" -v b="$2" '$1 == c {cv[++nc] = $2} $1 == b {bv[++nb] = $2}
		END {for (i = 1; i <= nc && i <= nb; i++) print (cv[i] > 0 ? bv[i] / cv[i] : 0)}' "$res" |
		sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "-"; else if (NR % 2) printf "%.2f", v[(NR + 1) / 2];
			else printf "%.2f", (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}
prall() { # CAIRN BASE: every run's ratio
	awk -v c="$1" -v b="$2" '$1 == c {cv[++nc] = $2} $1 == b {bv[++nb] = $2}
		END {for (i = 1; i <= nc && i <= nb; i++) printf "%s%.2f", (i > 1 ? " " : ""), (cv[i] > 0 ? bv[i] / cv[i] : 0)}' "$res"
}
row() { # LABEL CAIRN BASE TARGET
	local c b
	c=$(med "$2"); b=$(med "$3")
	printf '%-44s %9.3f %9.3f %7s %6s  %s | %s\n' "$1" "$c" "$b" "$(pratio "$2" "$3")" "$4" "$(all "$2")" "$(prall "$2" "$3")"
}
row "cold seq read vs curl (256K GETs, keep-alive)" cold base_curl ">=0.7"
row "warm seq read vs local disk (dropped)" warm base_disk_cold ">=0.8"
row "hot seq read vs local disk (hot)" hot base_disk_hot ">=0.95"
row "random 4K x$NRAND cold vs local disk" cold_rand base_rand ""
row "random 4K x$NRAND warm vs local disk" warm_rand base_rand ""
row "find+stat cold vs local disk" cold_find base_find ""
row "find+stat warm vs local disk" warm_find base_find ">=0.5"
row "cat all small files cold vs local disk" cold_cat base_cat ""
row "cat all small files warm vs local disk" warm_cat base_cat ""
echo "medians over $RUNS runs; baselines every run: disk cold $(all base_disk_cold); disk hot $(all base_disk_hot); curl $(all base_curl)"
echo "cold MB/s: $(mb "$(med cold)")   warm MB/s: $(mb "$(med warm)")   hot MB/s: $(mb "$(med hot)")   curl MB/s: $(mb "$(med base_curl)")"
echo "cairnd peak RSS: ${rss} KiB"
echo "(ratio = baseline time / cairn time in the same run, median over runs; 1.00 = as fast as the baseline)"
T_PASS=1
exit 0
