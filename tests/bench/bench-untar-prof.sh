#!/usr/bin/env bash
# bench-untar-prof.sh - where an untarred file's wall time goes (issue #14,
# doc/cm.md "Session 12"). Untars BENCH_WRITE_FILES (500) files of
# bench-write-sync's tree once per mode of BENCH_PROF_MODES ("sync
# writeback") onto a fresh mount, with GNU tar under `perf trace -s` (each
# system call's count and latency as tar saw it: the close that waits for
# a store, the create, the writes), cairnd and cairn-vold under `perf trace
# -s -p` (per thread: the syncs and their latency, the loop's idle time in
# epoll_wait) and the FUSE opcode counters (cairn.stats fuse_op_*) read
# before and after. Writes the raw summaries to BENCH_PROF_OUT (default
# $T_DIR/prof, removed at exit unless T_KEEP=1) and prints per file: tar's time by call, FUSE requests
# by opcode, syncs of each daemon. perf trace slows every call a little:
# compare counts and latencies within one run, not with bench-untar-ab's
# wall times. BENCH_PROF_CAIRND is another cairnd binary, BENCH_PROF_ARGS
# more cairnd options. Not run by `make bench` (needs perf).
set -u
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 1800
command -v perf >/dev/null || { echo "# SKIP: no perf"; exit 77; }
NFILES=${BENCH_WRITE_FILES:-500}
BIN=${BENCH_PROF_CAIRND:-$CAIRND}
OUT=${BENCH_PROF_OUT:-$T_DIR/prof}
mkdir -p "$OUT"
python3 "$top_srcdir/tests/bench/smalltree.py" "$T_DIR/small" "$NFILES" || exit 99
tar -C "$T_DIR/small" -cf "$T_DIR/small.tar" . || exit 99
vold_start --stage-max 2G || exit 99
vos init >/dev/null 2>&1
now() { date +%s.%N; }
report() { # MODE
	python3 - "$OUT" "$NFILES" "$1" <<'PY'
import re, sys
out, n, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
def summary(path):
    """perf trace -s: {thread: {syscall: (calls, total ms)}}"""
    th, cur = {}, None
    for line in open(path):
        m = re.match(r"\s*(\S+) \((\d+)\), \d+ events", line)
        if m:
            cur = th.setdefault(m.group(1) + "/" + m.group(2), {})
            continue
        f = line.split()
        if cur is not None and len(f) >= 8 and f[1].isdigit():
            cur[f[0]] = (int(f[1]), float(f[3]))
    return th
tar = summary("%s/tar-%s" % (out, mode))
calls = {}
for t in tar.values():
    for k, v in t.items():
        calls[k] = v
print("# %s, %d files: tar's calls, ms a file (count a file, ms a call):" % (mode, n))
for k, (c, ms) in sorted(calls.items(), key=lambda x: -x[1][1])[:8]:
    print("#   %-10s %7.3f (%.2f, %.3f)" % (k, ms / n, c / n, ms / c))
def stats(p):
    d = {}
    for l in open(p):
        f = l.split()
        if len(f) == 2 and f[0].startswith("fuse_op_"):
            d[f[0][8:]] = int(f[1])
    return d
a, b = stats("%s/stats0-%s" % (out, mode)), stats("%s/stats1-%s" % (out, mode))
ops = {k: b[k] - a.get(k, 0) for k in b if b[k] - a.get(k, 0)}
print("# FUSE requests a file %.2f: %s" % (sum(ops.values()) / n, ", ".join(
    "%s %.2f" % (k, v / n) for k, v in sorted(ops.items(), key=lambda x: -x[1]))))
for who in ("cairnd", "vold"):
    th = summary("%s/%s-%s" % (out, who, mode))
    s = {"fdatasync": [0, 0.0], "fsync": [0, 0.0], "epoll_wait": [0, 0.0]}
    for t in th.values():
        for k in s:
            if k in t:
                s[k][0] += t[k][0]; s[k][1] += t[k][1]
    print("# %s: fdatasync %.2f a file (%.3f ms each), fsync %.2f (%.3f ms), epoll_wait %.0f ms in all" % (
        who, s["fdatasync"][0] / n, s["fdatasync"][1] / max(1, s["fdatasync"][0]),
        s["fsync"][0] / n, s["fsync"][1] / max(1, s["fsync"][0]), s["epoll_wait"][1]))
PY
}
for mode in ${BENCH_PROF_MODES:-sync writeback}; do
	vol=p$mode
	mnt=$T_DIR/mnt-$mode
	vos create "$vol" >/dev/null 2>&1 || exit 99
	make_token "$vol" rw "$T_DIR/tok-$vol"
	# shellcheck disable=SC2086 # BENCH_PROF_ARGS: options, split on purpose
	CAIRND=$BIN cairnd_mount "$mnt" "$T_DIR/cache-$vol" "$vol" "$T_DIR/tok-$vol" \
		--cache-size 4G --write-mode "$mode" ${BENCH_PROF_ARGS:-} || exit 1
	mkdir -p "$mnt/untar"
	pid=$(cairnd_pid "$mnt")
	getfattr -n cairn.stats --only-values "$mnt" >"$OUT/stats0-$mode" 2>/dev/null
	perf trace -s -p "$pid" -o "$OUT/cairnd-$mode" >/dev/null 2>&1 &
	cp=$!
	perf trace -s -p "$VOLD_PID" -o "$OUT/vold-$mode" >/dev/null 2>&1 &
	vp=$!
	sleep 1
	t0=$(now)
	perf trace -s -o "$OUT/tar-$mode" -- tar -C "$mnt/untar" -xf "$T_DIR/small.tar"
	t1=$(now)
	sleep 0.5
	kill -INT "$cp" "$vp"; wait "$cp" "$vp" 2>/dev/null
	getfattr -n cairn.stats --only-values "$mnt" >"$OUT/stats1-$mode" 2>/dev/null
	rm -rf "$T_DIR/loc" && mkdir -p "$T_DIR/loc"
	l0=$(now); tar -C "$T_DIR/loc" -xf "$T_DIR/small.tar"; l1=$(now)
	echo "# $mode: untar $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }') s under perf trace, local tar $(awk -v a="$l0" -v b="$l1" 'BEGIN { printf "%.3f", b - a }') s (load $(cut -d' ' -f1 /proc/loadavg))"
	report "$mode"
	CAIRND=$BIN cairnd_umount "$mnt"
done
T_PASS=1
exit 0
