#!/usr/bin/env bash
# bench-fuse-floor.sh - what FUSE itself costs on this kernel, beside what
# cairnd costs (issue #14): make bench-fuse-floor, or part of make bench.
# Each run (BENCH_RUNS, default 5, alternated so that all see the same
# load) untars BENCH_WRITE_FILES (2,000) files of 1-64 KiB in 20
# directories, and writes one BENCH_WRITE_MB (256) MiB file with dd bs=1M
# and closes it, onto:
#   local     the local disk (the targets' baseline; each run untars into
#             a directory of its own, and nothing is removed before the
#             end: ext4 without a journal makes a create slow for ~30 s
#             after a delete)
#   local-durable  the same, made durable before the time is taken: the
#             untar followed by sync -f, the dd with conv=fsync (what a
#             close that returns with the data on disk costs locally)
#   nullfs    tests/bench/nullfs: a FUSE file system that answers every
#             request at once from memory and throws the data away,
#             mounted with cairnd's options (the floor of any FUSE file
#             system that is asked what cairnd is asked)
#   nullfs-wbc  the same with the kernel's write-back cache on (which
#             cairnd does not use): what that would give
#   sync      cairnd, write mode sync (close returns once the server has it)
#   writeback cairnd, write mode writeback (close returns after the local
#             log append)
# and prints the medians, their ratios to local, the FUSE requests a file
# of the untar (nullfs's own count, cairnd's fuse_op_* counters), and what
# one small write + fdatasync costs on this disk. A target below nullfs's
# ratio cannot be met by any FUSE file system that is sent the same
# requests.
set -u
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 3600
NFILES=${BENCH_WRITE_FILES:-2000}
FILE_MB=${BENCH_WRITE_MB:-256}
RUNS=${BENCH_RUNS:-5}
NULLFS=$top_builddir/tests/bench/nullfs
if [ ! -x "$NULLFS" ]; then
	make -C "$top_builddir" tests/bench/nullfs >/dev/null 2>&1 ||
		{ echo "bench-fuse-floor: cannot build tests/bench/nullfs"; exit 99; }
fi
now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

echo "# preparing: $NFILES files of 1-64 KiB, a $FILE_MB MiB file; $RUNS runs"
python3 "$top_srcdir/tests/bench/smalltree.py" "$T_DIR/small" "$NFILES" || exit 99
tar -C "$T_DIR/small" -cf "$T_DIR/small.tar" . || exit 99
head -c $((FILE_MB * 1024 * 1024)) /dev/urandom >"$T_DIR/big.src" || exit 99
want=$(find "$T_DIR/small" -type f -printf '%s\n' | sort -n | md5sum)

vold_start --stage-max 2G || exit 99
vos init >/dev/null 2>&1

# nullfs_mount MNT [OPTS...]: mounted and answering
nullfs_mount() {
	local mnt=$1 i
	shift
	mkdir -p "$mnt"
	"$NULLFS" "$@" "$mnt" 2>"$T_DIR/nullfs.err" &
	NPID=$!
	# lib.sh's exit trap unmounts and kills these
	_T_PIDS="$_T_PIDS $NPID" _T_MOUNTS="$_T_MOUNTS $mnt"
	for i in $(seq 1 100); do
		grep -q " $mnt fuse" /proc/mounts && return 0
		sleep 0.05
	done
	echo "# nullfs did not mount: $(head -n 2 "$T_DIR/nullfs.err")"
	return 1
}
# nullfs_umount MNT: unmounted, its process gone
nullfs_umount() {
	local i
	fusermount3 -u "$1" 2>/dev/null || fusermount3 -uz "$1"
	for i in $(seq 1 100); do
		kill -0 "$NPID" 2>/dev/null || return 0
		sleep 0.05
	done
	kill "$NPID"
}
# reqs KIND DIR: the FUSE requests the mount of DIR has had so far
reqs() {
	case $1 in
	local) echo 0 ;;
	nullfs*) getfattr -n nullfs.stats --only-values "$2" 2>/dev/null |
		awk '{ s += $2 } END { print s + 0 }' ;;
	*) getfattr -n cairn.stats --only-values "$2" 2>/dev/null |
		awk '$1 ~ /^fuse_op_/ { s += $2 } END { print s + 0 }' ;;
	esac
}

# one_side NAME DIR: untar and dd into DIR; times into r_untar[NAME] and
# r_dd[NAME], the untar's requests a file into r_req[NAME]
declare -A r_untar r_dd r_req
one_side() {
	local name=$1 dir=$2 t0 t1 q0 q1 got
	mkdir -p "$dir/untar" || return 1
	sync
	q0=$(reqs "$name" "$dir")
	t0=$(now)
	tar -C "$dir/untar" -xf "$T_DIR/small.tar" 2>"$T_DIR/tar.err" ||
		{ echo "# $name: untar failed: $(head -n 2 "$T_DIR/tar.err")"; return 1; }
	[ "$name" = local-durable ] && sync -f "$dir/untar"
	t1=$(now)
	q1=$(reqs "$name" "$dir")
	r_untar[$name]+="$(secs "$t0" "$t1") "
	# the reading of the counters is one request (a GETXATTR)
	r_req[$name]+="$(awk -v a="$q0" -v b="$q1" -v n="$NFILES" 'BEGIN { printf "%.2f", (b - a - 1) / n }') "
	# nullfs keeps no data: the sizes are compared, not the bytes
	got=$(find "$dir/untar" -type f -printf '%s\n' | sort -n | md5sum)
	[ "$got" = "$want" ] || { echo "# $name: the untarred sizes differ"; return 1; }
	sync
	t0=$(now)
	conv=
	[ "$name" = local-durable ] && conv=conv=fsync
	dd if="$T_DIR/big.src" of="$dir/big" bs=1M $conv 2>"$T_DIR/dd.err" ||
		{ echo "# $name: dd failed: $(head -n 2 "$T_DIR/dd.err")"; return 1; }
	t1=$(now)
	r_dd[$name]+="$(secs "$t0" "$t1") "
	[ "$(stat -c %s "$dir/big")" = $((FILE_MB * 1024 * 1024)) ] ||
		{ echo "# $name: the big file's size is wrong"; return 1; }
}

SIDES="local local-durable nullfs nullfs-wbc sync writeback"
cat "$T_DIR/big.src" >/dev/null
for run in $(seq 1 "$RUNS"); do
	for v in local local-durable; do
		mkdir -p "$T_DIR/$v$run"
		one_side $v "$T_DIR/$v$run" || exit 1
	done

	# nullfs, without and with the kernel's write-back cache
	for v in nullfs nullfs-wbc; do
		m=$T_DIR/nmnt$run-$v
		o=()
		[ $v = nullfs-wbc ] && o=(-o writeback)
		nullfs_mount "$m" "${o[@]}" || exit 1
		one_side $v "$m" || { nullfs_umount "$m"; exit 1; }
		nullfs_umount "$m"
	done

	# cairnd in each write mode, each on a volume of its own
	for mode in sync writeback; do
		vol=ff$run$mode
		vos create "$vol" >/dev/null 2>&1 || exit 99
		make_token "$vol" rw "$T_DIR/tok-$vol"
		m=$T_DIR/mnt-$vol
		cairnd_mount "$m" "$T_DIR/cache-$vol" "$vol" "$T_DIR/tok-$vol" \
			--cache-size 4G --write-mode $mode || exit 1
		one_side $mode "$m" || { cairnd_umount "$m"; exit 1; }
		cairnd_umount "$m"
		# (the caches are removed at the end: see "local" above)
	done
	line="# run $run, untar / dd s:"
	for s in $SIDES; do
		u=${r_untar[$s]% } d=${r_dd[$s]% }
		line+=" $s ${u##* } / ${d##* };"
	done
	echo "$line"
done

# shellcheck disable=SC2086
med() { median $1; }
# shellcheck disable=SC2086
best() { printf '%s\n' $1 | sort -g | head -n 1; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2fx", a / b }'; }
# Medians, as every bench; and the best run, since on a shared machine
# noise only ever adds time: a floor is best read from the best runs.
L_U=$(med "${r_untar[local]}") L_D=$(med "${r_dd[local]}")
B_U=$(best "${r_untar[local]}") B_D=$(best "${r_dd[local]}")
printf '\n%-14s %9s %7s %9s %7s  %9s %7s %9s %7s  %8s\n' "side" \
	"untar s" "x local" "best s" "x best" "dd s" "x local" "best s" "x best" "req/file"
for s in $SIDES; do
	u=$(med "${r_untar[$s]}") d=$(med "${r_dd[$s]}")
	bu=$(best "${r_untar[$s]}") bd=$(best "${r_dd[$s]}")
	q=-
	case $s in local*) ;; *) q=$(med "${r_req[$s]}") ;; esac
	printf '%-14s %9.3f %7s %9.3f %7s  %9.3f %7s %9.3f %7s  %8s\n' "$s" \
		"$u" "$(ratio "$u" "$L_U")" "$bu" "$(ratio "$bu" "$B_U")" \
		"$d" "$(ratio "$d" "$L_D")" "$bd" "$(ratio "$bd" "$B_D")" "$q"
done
echo "# $RUNS runs: medians (x local: over local's median) and the best run (x best: over local's best); dd is dd + close; req/file: the FUSE requests of the untar over $NFILES"
# One small write + fdatasync on this disk (what each durable local log
# append costs at least): the median of 200.
python3 - "$T_DIR/syncprobe" <<'PY'
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
t = []
for i in range(200):
    t0 = time.perf_counter()
    os.pwrite(fd, b"x" * 100, i * 100)
    os.fdatasync(fd)
    t.append(time.perf_counter() - t0)
t.sort()
print("# 100-byte append + fdatasync on this disk: median %.3f ms (of 200)" % (t[100] * 1000))
PY
rm -rf "$T_DIR"/local* "$T_DIR"/cache-*
T_PASS=1
exit 0
