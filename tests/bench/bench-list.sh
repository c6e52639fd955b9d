#!/usr/bin/env bash
# bench-list.sh - listings through cairnd against local disk (issues #17
# and #16), the listing rows only, so they can be run again quickly:
#   a directory of BIG empty files: cold ls -f (fresh cairnd, empty
#     cache), warm ls -f, warm ls -l; the first entry of a cold listing
#     (its CPU is the listing's alone: a cold ls -f's also has what
#     cairnd does after it, such as writing the pending attributes)
#   a tree of FILES empty files in DIRS directories: ls -lR cold and
#     warm, find + stat cold (a fresh cairnd and empty cache for each
#     cold row)
# each with cairnd's CPU and the FUSE requests by opcode (cairn.stats).
# The local side is the same trees on local disk with the page cache
# warm (dropping it would drop every other helper's too on a shared
# machine), so the ratios are conservative.
# Sizes: BENCH_LIST_BIG (100000), BENCH_LIST_FILES (10000),
# BENCH_LIST_DIRS (100); BENCH_RUNS (2) repeats. BENCH_LIST_BASE=DIR
# runs every row also with the vos, cairn-vold and cairnd found in DIR
# (another build's binaries), alternating with these in the same run.
# BENCH_LIST_PERF="coldf warml" records perf profiles of cairnd during
# those rows (BENCH_LIST_PERF_DIR/perf-ROW-RUN.data, default $T_DIR, which
# is removed at the end; BENCH_LIST_PERF_F sets the sampling rate, default
# 1000 Hz). BENCH_LIST_PERF_VOLD=1 records cairn-vold too
# (perf-vold-ROW-RUN.data); BENCH_LIST_STRACE="coldf" counts the system
# calls of both (strace -c -f, strace-{cairnd,vold}-ROW-RUN.txt in the
# same directory: strace slows the row, so its time is not comparable).
# Memory: the cold ls -f row prints cairnd's and cairn-vold's VmHWM and
# VmRSS before, during (the highest VmRSS sampled every 20 ms) and after
# it (after: 2 s later, once the pending attributes are written and the
# freed pages given back).
set -u
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 3600
BIG=${BENCH_LIST_BIG:-100000}
NFILES=${BENCH_LIST_FILES:-10000}
NDIRS=${BENCH_LIST_DIRS:-100}
RUNS=${BENCH_RUNS:-2}

now() { date +%s.%N; }
timed() { local t0; t0=$(now); "$@" >/dev/null 2>&1; echo "$(now) - $t0" | bc -l; }
ratio() { echo "scale=2; $1 / $2" | bc -l; }
cpu_ms() { awk '{print ($14 + $15) * 10}' /proc/"$1"/stat; }
stats() { getfattr -n cairn.stats --only-values "$1" 2>/dev/null; }
sdelta() { echo $(( $(echo "$3" | awk -v k="$1" '$1 == k {print $2}') - $(echo "$2" | awk -v k="$1" '$1 == k {print $2}') )); }
reqs() { # BEFORE AFTER: the FUSE requests between two readings
	local k out=""
	for k in lookup getattr readdir opendir xattr forget; do
		out="$out $k $(sdelta "req_$k" "$1" "$2")"
	done
	echo "$out; listing fetches $(sdelta dir_fetches "$1" "$2"), getattr batches $(sdelta getattr_requests "$1" "$2")"
}

python3 - "$T_DIR/src" "$BIG" "$NFILES" "$NDIRS" <<'PY'
import os, sys
root, big, n, nd = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
os.makedirs(root + "/big")
for i in range(big):
    os.close(os.open("%s/big/f%07d" % (root, i), os.O_CREAT | os.O_WRONLY, 0o644))
for i in range(n):
    d = "%s/tree/d%03d" % (root, i % nd)
    os.makedirs(d, exist_ok=True)
    fd = os.open("%s/f%05d" % (d, i), os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(fd, b"x" * (1 + i % 100))
    os.close(fd)
PY

lsf() { ls -f "$1"; }
# The first entry of a cold listing: the listing fetched and taken (the
# first READDIR waits for it), nothing after.
first() { python3 -c 'import os, sys; next(os.scandir(sys.argv[1]))' "$1"; }
lsl() { ls -l "$1"; }
lslr() { ls -lR "$1"; }
findstat() { find "$1" -printf '%s %m %u\n'; }

# measure LABEL MNT CMD ARG: one row's time, CPU and requests.
measure() {
	local label=$1 m=$2 cm s0 s1 c0 c1 v0 v1 t perf="" pv="" st="" sv="" mem="" pd
	shift 2
	pd=${BENCH_LIST_PERF_DIR:-$T_DIR}
	cm=$(cairnd_pid "$m")
	s0=$(stats "$m"); c0=$(cpu_ms "$cm"); v0=$(cpu_ms "$VOLD_PID")
	case " ${BENCH_LIST_PERF:-} " in *" $label "*)
		perf record -q -F ${BENCH_LIST_PERF_F:-1000} --call-graph dwarf,16384 -p "$cm" -o "$pd/perf-$label-$run.data" >/dev/null 2>&1 &
		perf=$!
		if [ -n "${BENCH_LIST_PERF_VOLD:-}" ]; then
			perf record -q -F ${BENCH_LIST_PERF_F:-1000} --call-graph dwarf,16384 -p "$VOLD_PID" -o "$pd/perf-vold-$label-$run.data" >/dev/null 2>&1 &
			pv=$!
		fi
		sleep 1;;
	esac
	case " ${BENCH_LIST_STRACE:-} " in *" $label "*)
		strace -c -f -p "$cm" -o "$pd/strace-cairnd-$label-$run.txt" 2>/dev/null &
		st=$!
		strace -c -f -p "$VOLD_PID" -o "$pd/strace-vold-$label-$run.txt" 2>/dev/null &
		sv=$!
		sleep 1;;
	esac
	if [ "$label" = coldf ]; then
		mem="before $(memof "$cm") vold $(memof "$VOLD_PID")"
		peak_rss "$cm" "$pd/peak-cm" & local pk=$!
		peak_rss "$VOLD_PID" "$pd/peak-vold" & local pkv=$!
	fi
	t=$(timed "$@")
	[ -n "$perf" ] && { kill -INT "$perf"; wait "$perf"; }
	[ -n "$pv" ] && { kill -INT "$pv"; wait "$pv"; }
	[ -n "$st" ] && { kill -INT "$st" "$sv"; wait "$st" "$sv"; }
	# CPU up to the end of the command: not the memory reading's sleep.
	c1=$(cpu_ms "$cm"); v1=$(cpu_ms "$VOLD_PID"); s1=$(stats "$m")
	if [ -n "$mem" ]; then
		kill "$pk" "$pkv"; wait "$pk" "$pkv" 2>/dev/null
		mem="$mem; during: cairnd VmRSS max $(cat "$pd/peak-cm") kB, vold $(cat "$pd/peak-vold") kB"
		sleep 2
		mem="$mem; after: $(memof "$cm") vold $(memof "$VOLD_PID") (cairnd CPU meanwhile $(( $(cpu_ms "$cm") - c1 )) ms: the pending attributes written)"
	fi
	eval "T_$label=\$t"
	printf '  %-12s %7.3f s  cairnd %4d ms vold %4d ms  %s\n' "$label" "$t" $((c1 - c0)) $((v1 - v0)) "$(reqs "$s0" "$s1")"
	[ -n "$mem" ] && echo "    memory (kB): $mem"
	return 0
}
memof() { awk '/^VmHWM|^VmRSS|^RssAnon/ {printf "%s %s ", $1, $2}' /proc/"$1"/status; }
peak_rss() { # PID FILE: the highest VmRSS seen until killed, into FILE
	local max=0 r
	trap 'echo $max > "$2"; exit 0' TERM
	while :; do
		r=$(awk '/^VmRSS/ {print $2}' /proc/"$1"/status 2>/dev/null)
		[ -n "$r" ] && [ "$r" -gt "$max" ] && max=$r
		sleep 0.02
	done
}

fresh() { # MNT CACHE: a fresh cairnd on an empty cache
	cairnd_umount "$1" 2>/dev/null
	rm -rf "$2"
	cairnd_mount "$1" "$2" list "$T_DIR/tok" || return 1
	stat "$1" >/dev/null
}

declare -A SUM
run_set() { # LABEL BINDIR
	local label=$1 bin=$2 m=$T_DIR/m.mnt c=$T_DIR/cache r
	VOS=$bin/vos VOLD=$bin/cairn-vold CAIRND=$bin/cairnd
	SRV_ROOT=$T_DIR/srv-$label
	if [ ! -d "$SRV_ROOT" ]; then
		vold_start || return 1
		"$VOS" --root "$SRV_ROOT" import list "$T_DIR/src" >/dev/null || return 1
	else
		vold_start || return 1
	fi
	"$VOS" --root "$SRV_ROOT" token list --rw -o "$T_DIR/tok" || return 1
	echo "== $label ($bin; load $(cut -d' ' -f1-3 /proc/loadavg))"
	fresh "$m" "$c" || return 1
	stat "$m/big" >/dev/null
	measure coldf "$m" lsf "$m/big"
	measure warmf "$m" lsf "$m/big"
	measure warml "$m" lsl "$m/big"
	measure warml2 "$m" lsl "$m/big"
	fresh "$m" "$c" || return 1
	stat "$m/big" >/dev/null
	measure coldfirst "$m" first "$m/big"
	fresh "$m" "$c" || return 1
	measure coldlr "$m" lslr "$m/tree"
	measure warmlr "$m" lslr "$m/tree"
	fresh "$m" "$c" || return 1
	measure coldfind "$m" findstat "$m/tree"
	cairnd_umount "$m"
	vold_stop
	local L_f L_l L_lr L_find
	L_f=$(timed lsf "$T_DIR/src/big"); L_l=$(timed lsl "$T_DIR/src/big")
	L_lr=$(timed lslr "$T_DIR/src/tree"); L_find=$(timed findstat "$T_DIR/src/tree")
	printf '  local: ls -f %.3f  ls -l %.3f  ls -lR %.3f  find %.3f\n' "$L_f" "$L_l" "$L_lr" "$L_find"
	printf '  ratios: cold ls -f %s  warm ls -f %s  warm ls -l %s (again %s)  ls -lR cold %s warm %s  find+stat cold %s\n' \
		"$(ratio "$T_coldf" "$L_f")" "$(ratio "$T_warmf" "$L_f")" \
		"$(ratio "$T_warml" "$L_l")" "$(ratio "$T_warml2" "$L_l")" \
		"$(ratio "$T_coldlr" "$L_lr")" "$(ratio "$T_warmlr" "$L_lr")" \
		"$(ratio "$T_coldfind" "$L_find")"
}

mkdir -p "$T_DIR/bin"
ln -sf "$top_builddir/admin/vos" "$top_builddir/vol/cairn-vold" \
	"$top_builddir/cm/cairnd" "$T_DIR/bin/"
for run in $(seq 1 "$RUNS"); do
	echo "# run $run"
	if [ -n "${BENCH_LIST_BASE:-}" ]; then
		run_set base "$BENCH_LIST_BASE" || exit 1
	fi
	run_set new "$T_DIR/bin" || exit 1
done
exit 0
