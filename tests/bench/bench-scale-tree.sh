#!/usr/bin/env bash
# bench-scale-tree.sh - issue #17's whole-volume rows, at each size of
# BENCH_TREE_SIZES (default "10000 100000"; add 1000000 for the full row,
# which needs ~10 GB of disk and most of an hour): a tree of N files in
# directories of 1,000, sizes 0-64 KiB (most small: 64 KiB * r^8, mean
# ~7 KiB), the first tenth under p0/, the rest under p1/. Per size:
#   vos import: files/s, CPU us a file; cp -a of the same tree
#   cold find with stat (fresh cache) and warm find with stat, through
#     cairnd, against the same find on the local tree (its page cache
#     warm: the ratios are conservative)
#   fs pin -r of p0 (a tenth of the files, every chunk fetched)
#   an offline replay: fs disconnect, N/10 creates, fs reconnect, time
#     until the replay log is empty
#   cairn-fsck --check of the resulting cache
#   vos export of the volume: files/s, CPU us a file
# Each row also as a cost a file, so the sizes can be compared ("linear":
# the same cost a file at every size). make bench-scale-tree.
# The cairnd rows also give cairnd's and cairn-vold's CPU a file (on a
# loaded machine the wall time is mostly waiting for a CPU: compare the
# CPU) and the load; "# mem" lines give cairnd's VmHWM, VmRSS, RssAnon,
# RssFile and inodes held after each step and the peaks polled during
# the walks, and after the kernel forgets the inodes (drop_caches 2).
# BENCH_TREE_PER: files a directory (1000; 0 = all in one directory).
# BENCH_TREE_CAIRND=0: only the vos rows (import, cp -a, export).
# BENCH_TREE_VOS=0: no cp -a and vos export rows (the import stays).
# BENCH_TREE_EXPORT_DIR: where cp -a and vos export write ($T_DIR); on a
#   tmpfs the rows show the tools' own cost without ext4's (both rows
#   give user and system CPU apart: an export's system time is the
#   destination's file system).
# BENCH_TREE_FORGET=0: no drop_caches between the walks and the pin.
# BENCH_TREE_PERF="coldfind warmfind warmfind0 pin offline replay fsck":
# perf record of cairnd during those rows (of cairn-fsck for fsck), $T_DIR/perf-ROW-FILES.data (keep
# it with T_KEEP=1), with BENCH_TREE_PERF_ARGS (-F 199 --call-graph
# dwarf,16384).
# The trees are made by tests/bench/mktree.py (one process, a few
# threads: bound by the file system's creates). After each deletion the
# bench runs sync and waits BENCH_TREE_SETTLE (61) seconds: ext4 without
# a journal skips, at every create, each inode freed in the last 60 s (360
# s while its inode table block is dirty), and a create after an rm -rf of
# 100,000 files costs several times more (doc/vol-format.md).
set -u
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 14400
SIZES=${BENCH_TREE_SIZES:-10000 100000}

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc -l; }
command -v bc >/dev/null || apt-get install -y -qq bc >/dev/null 2>&1
timed() { local t0 t1; t0=$(now); "$@" >/dev/null 2>&1; t1=$(now); secs "$t0" "$t1"; }
us() { echo "$1 * 1000000 / $2" | bc; } # seconds, files -> us a file
row() { # LABEL N SECONDS [LOCAL SECONDS]
	if [ $# -ge 4 ]; then
		printf '%-34s %9d %9.2f %9.1f %9.2f %7s\n' "$1" "$2" "$3" \
			"$(us "$3" "$2")" "$4" "$(echo "scale=2; $3 / $4" | bc)"
	else
		printf '%-34s %9d %9.2f %9.1f\n' "$1" "$2" "$3" "$(us "$3" "$2")"
	fi
}

PER=${BENCH_TREE_PER:-1000}
WITH_CAIRND=${BENCH_TREE_CAIRND:-1}
SETTLE=${BENCH_TREE_SETTLE:-61}
mktree() { # DIR N
	if [ "$PER" = 0 ]; then
		python3 "$top_srcdir/tests/bench/mktree.py" "$1" "$2" --per 0
	else
		python3 "$top_srcdir/tests/bench/mktree.py" "$1" "$2" --per "$PER" --split
	fi
}
settle() { sync; sleep "$SETTLE"; }
cpu_row() { # LABEL N OBJECTS (reads $T_DIR/time: wall user sys)
	local w u s
	read -r w u s <"$T_DIR/time"
	# user and system apart: the system part is the local file
	# system's (ext4's creates for an export), which grows with the tree
	# for cp -a too
	printf '%-34s %9d %9.2f %9.1f   (%.1f us CPU a file: %.1f user, %.1f system; %d files/s)\n' \
		"$1" "$2" "$w" "$(us "$w" "$2")" \
		"$(echo "($u + $s) * 1000000 / $3" | bc -l)" \
		"$(echo "$u * 1000000 / $3" | bc -l)" "$(echo "$s * 1000000 / $3" | bc -l)" \
		"$(echo "$3 / $w" | bc)"
}
jget() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get(sys.argv[1], ""))' "$1"; }

VOSROWS=${BENCH_TREE_VOS:-1}
EXPDIR=${BENCH_TREE_EXPORT_DIR:-$T_DIR}
EXPFS=$(stat -f -c %T "$EXPDIR" 2>/dev/null)
FORGET=${BENCH_TREE_FORGET:-1}
[ -w /proc/sys/vm/drop_caches ] || FORGET=0
PERF_ROWS=${BENCH_TREE_PERF:-}
PERF_ARGS=${BENCH_TREE_PERF_ARGS:--F 199 --call-graph dwarf,16384}
ticks() { # PID -> its user + system CPU so far, in ms (0 if gone)
	awk '{print ($14 + $15) * 10}' /proc/"$1"/stat 2>/dev/null || echo 0
}
load1() { cut -d' ' -f1 /proc/loadavg; }
# measure KEY LABEL N LOCAL_SECONDS|- CMD...: one row with the wall time,
# its cost a file, the local time and the ratio, cairnd's and
# cairn-vold's CPU a file (the per-file cost to compare across sizes on
# a loaded machine: wall time waits for a CPU) and the load at its end.
# Polls cairnd's memory every 0.1 s while CMD runs (see peak()). With
# KEY in BENCH_TREE_PERF, perf records cairnd meanwhile
# ($T_DIR/perf-KEY-N.data; BENCH_TREE_PERF_ARGS).
measure() {
	local key=$1 label=$2 nn=$3 lt=$4 c0 v0 c1 v1 t0 t1 w pp=""
	shift 4
	: >"$T_DIR/poll"
	( while :; do awk '/^(VmRSS|RssAnon|RssFile):/ {printf "%s ", $2} END {print ""}' \
		/proc/"$cm"/status >>"$T_DIR/poll" 2>/dev/null; sleep 0.1; done ) &
	local poller=$!
	case " $PERF_ROWS " in *" $key "*)
		if kill -0 "$cm" 2>/dev/null; then
			# shellcheck disable=SC2086
			perf record $PERF_ARGS -p "$cm" -o "$T_DIR/perf-$key-$nn.data" >/dev/null 2>&1 &
			pp=$!
			sleep 1
		else # cairnd is gone (the fsck row): perf of the command
			set -- perf record $PERF_ARGS -o "$T_DIR/perf-$key-$nn.data" -- "$@"
		fi ;;
	esac
	c0=$(ticks "$cm"); v0=$(ticks "$VOLD_PID"); t0=$(now)
	"$@" >/dev/null 2>&1
	t1=$(now); c1=$(ticks "$cm"); v1=$(ticks "$VOLD_PID")
	[ -n "$pp" ] && { kill -INT "$pp"; wait "$pp" 2>/dev/null; }
	kill "$poller"; wait "$poller" 2>/dev/null
	w=$(secs "$t0" "$t1")
	if [ "$lt" = - ]; then
		printf '%-34s %9d %9.2f %9.1f %9s %7s' "$label" "$nn" "$w" "$(us "$w" "$nn")" - -
	else
		printf '%-34s %9d %9.2f %9.1f %9.2f %7s' "$label" "$nn" "$w" "$(us "$w" "$nn")" \
			"$lt" "$(echo "scale=2; $w / $lt" | bc)"
	fi
	printf ' %8.1f %8.1f %6s\n' "$(echo "($c1 - $c0) * 1000 / $nn" | bc -l)" \
		"$(echo "($v1 - $v0) * 1000 / $nn" | bc -l)" "$(load1)"
}
# snap LABEL: cairnd's VmHWM, VmRSS, RssAnon, RssFile (kB) and the
# inodes it holds for the kernel.
snap() {
	awk -v w="$1" -v i="$("$FS" metrics -m "$m" 2>/dev/null |
		awk '$1 ~ /^cairnd_inodes/ {print $2}')" \
		'/^(VmHWM|VmRSS|RssAnon|RssFile):/ {v[$1] = $2}
		 END {printf "# mem %-34s VmHWM %8d VmRSS %8d RssAnon %8d RssFile %8d kB, %s inodes\n",
		      w, v["VmHWM:"], v["VmRSS:"], v["RssAnon:"], v["RssFile:"], i}' /proc/"$cm"/status
}
# peak LABEL: the largest VmRSS, RssAnon and RssFile the last measure's
# polls saw.
peak() {
	awk -v w="$1" '{if ($1 > r) r = $1; if ($2 > a) a = $2; if ($3 > f) f = $3}
		END {printf "# mem %-34s peak      %8s VmRSS %8d RssAnon %8d RssFile %8d kB (%d polls)\n",
		     w, "", r, a, f, NR}' "$T_DIR/poll"
}
forget() { # MNT: the kernel forgets cairnd's inodes (FORGET), memtrim runs
	local k
	for _ in $(seq 1 30); do
		sync; echo 2 >/proc/sys/vm/drop_caches; sleep 1
		k=$("$FS" metrics -m "$1" 2>/dev/null | awk '$1 ~ /^cairnd_inodes/ {print $2}')
		[ "${k:-99}" -le 5 ] && break
	done
	sleep 3 # memtrim's quiet time, with a margin
}
reconnect_replayed() { # MNT: fs reconnect, then until connected with an
	# empty replay log (bounded)
	local st
	"$FS" reconnect -m "$1" >/dev/null 2>&1
	for _ in $(seq 1 36000); do
		st=$("$FS" status --json -m "$1" 2>/dev/null)
		[ "$(echo "$st" | jget mode)" = connected ] &&
			[ "$(echo "$st" | jget replay_pending)" = 0 ] && return 0
		sleep 0.2
	done
	return 1
}
cat >"$T_DIR/creates.py" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    sub = os.path.join(d, "d%04d" % (i // 1000))
    if i % 1000 == 0:
        os.mkdir(sub)
    os.close(os.open(os.path.join(sub, "n%07d" % i), os.O_CREAT | os.O_WRONLY, 0o644))
PY

mkdir -p "$SRV_ROOT"
vos init >/dev/null 2>&1
vold_start || exit 1
echo "# load: $(cut -d' ' -f1-3 /proc/loadavg); $(git -C "$top_srcdir" describe --always --dirty 2>/dev/null)"
printf '%-34s %9s %9s %9s %9s %7s %8s %8s %6s\n' row files s us/file local ratio "cm us" "vold us" load
for n in $SIZES; do
	src=$T_DIR/src-$n
	rm -rf "$src"
	t=$(timed mktree "$src" "$n")
	row "making the tree (mktree.py)" "$n" "$t"
	settle
	vol=t$n
	if [ "$PER" = 0 ]; then nobj=$((n + 1)); else nobj=$((n + (n + PER - 1) / PER + 3)); fi
	/usr/bin/time -f "%e %U %S" -o "$T_DIR/time" "$VOS_BIN" --root "$SRV_ROOT" \
		import "$vol" "$src" >/dev/null 2>"$T_DIR/imp.err" || { cat "$T_DIR/imp.err"; exit 1; }
	cpu_row "vos import" "$n" "$nobj"
	echo "# meta.tdb $(stat -c %s "$SRV_ROOT/volumes/$vol/meta.tdb") bytes, $(find "$SRV_ROOT/volumes/$vol/data" -type f | wc -l) chunk objects"
	if [ "$VOSROWS" = 1 ]; then
		# Both copies are made before either is removed: a create on
		# ext4 soon after an rm -rf of as many files costs several
		# times more (settle's comment), and 61 s did not cover it
		# (session 25: the export after cp -a's removal ran at 8,454
		# files/s, on a fresh file system at 62,000).
		/usr/bin/time -f "%e %U %S" -o "$T_DIR/time" cp -a "$src" "$EXPDIR/cp"
		cpu_row "cp -a (local)" "$n" "$nobj"
		# tmpfs has no slow creates after a removal, and holds both
		# copies in memory: one at a time there
		[ "$EXPFS" = tmpfs ] && rm -rf "$EXPDIR/cp"
		/usr/bin/time -f "%e %U %S" -o "$T_DIR/time" "$VOS_BIN" --root "$SRV_ROOT" \
			export "$vol" "$EXPDIR/exp" >/dev/null 2>"$T_DIR/exp.err" || { cat "$T_DIR/exp.err"; exit 1; }
		cpu_row "vos export" "$n" "$nobj"
		rm -rf "$EXPDIR/cp" "$EXPDIR/exp"
		[ "$EXPFS" = tmpfs ] || settle
	fi
	if [ "$WITH_CAIRND" = 0 ]; then
		rm -rf "$src"
		# --force: the volume holds the whole tree (a plain remove
		# refuses a non-empty volume, and it would stay on disk
		# under the next sizes' rows)
		vos remove --force "$vol" >/dev/null || { echo "# vos remove --force $vol failed"; exit 1; }
		settle
		continue
	fi

	make_token "$vol" rw "$T_DIR/tok-$n"
	# cairn-vold opens a volume at its first request, and its cleanup
	# at open looks at every chunk object (vol-format.md, NEEDSWORK):
	# ~9 s for 1,000,000 files, longer than cairnd's connect timeout.
	t=$(timed vold_curl --max-time 600 -H "Authorization: Bearer $(cat "$T_DIR/tok-$n")" \
		"$VOLD_URL/v1/vol/$vol")
	row "cairn-vold's first open of it" "$n" "$t"
	m=$T_DIR/m$n.mnt
	cache=$T_DIR/cache-$n
	rm -rf "$cache"
	cairnd_mount "$m" "$cache" "$vol" "$T_DIR/tok-$n" --cache-size 40G || exit 1
	cm=$(cairnd_pid "$m")
	ls "$m" >/dev/null
	snap "mounted"
	lt=$(timed find "$src" -printf '%s\n')
	measure coldfind "cold find + stat" "$n" "$lt" find "$m" -printf '%s\n'
	snap "after the cold find"
	peak "during the cold find"
	lt=$(timed find "$src" -printf '%s\n')
	measure warmfind "warm find + stat" "$n" "$lt" find "$m" -printf '%s\n'
	peak "during the warm find"
	lt=$(timed find "$src")
	measure warmfind0 "warm find" "$n" "$lt" find "$m"
	if [ "$FORGET" = 1 ]; then
		forget "$m"
		snap "the kernel forgot (drop_caches 2)"
	fi
	lt=$(timed sh -c "find '$src/p0' -type f -print0 | xargs -0 cat >/dev/null")
	measure pin "fs pin -r (a tenth)" $((n / 10)) "$lt" "$FS" pin -r "$m/p0"
	snap "after fs pin -r"

	# Offline: N/10 creates go to the replay log, then replay. The same
	# creates on the local disk for the ratio.
	mkdir -p "$m/new" "$T_DIR/loc-new"
	# Its (empty) listing cached: offline, a create in a directory
	# whose listing is not cached fails (EIO, offline-miss=error).
	ls "$m/new" >/dev/null
	lt=$(timed python3 "$T_DIR/creates.py" "$T_DIR/loc-new" $((n / 10)))
	"$FS" disconnect -m "$m" >/dev/null 2>&1
	measure offline "offline creates (to the log)" $((n / 10)) "$lt" \
		python3 "$T_DIR/creates.py" "$m/new" $((n / 10))
	snap "after the offline creates"
	measure replay "replay of them after reconnect" $((n / 10)) - reconnect_replayed "$m"
	snap "after the replay"
	cairnd_umount "$m"
	measure fsck "cairn-fsck --check of the cache" "$n" - "$FSCK" --check --quiet "$cache"
	"$FSCK" --check --quiet "$cache" >/dev/null 2>&1
	echo "# cairn-fsck --check: exit $?; cache meta.tdb $(stat -c %s "$cache/meta.tdb") bytes, $(du -sm "$cache" | cut -f1) MB in all"
	rm -rf "$cache" "$src" "$T_DIR/loc-new"
	vos remove --force "$vol" >/dev/null || { echo "# vos remove --force $vol failed"; exit 1; }
	settle
done
vold_stop
