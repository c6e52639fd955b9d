#!/usr/bin/env bash
# bench-vos.sh - vos import and export at scale, and cairn-vold's first
# open of the volume (issue #17). make bench-vos, or part of make bench.
# At each size of BENCH_VOS_SIZES (default "10000 100000"; add 1000000 for
# the full row: ~10 GB of disk, most of an hour):
#   tree: N files in directories of 1,000, sizes 0-64 KiB (64 KiB * r^8,
#     mean ~7 KiB), as bench-scale-tree.sh makes them
#   flat: N empty files in one directory (BENCH_VOS_FLAT=0 leaves it out)
# rows: vos import and vos export of each (wall s, files/s, us a file
# wall and CPU), cp -a of the tree as the local baseline, and cairn-vold's
# first request on the tree's volume after the import, after a clean stop
# and after kill -9 (the scan of every chunk object). BENCH_VOS_BASE=DIR
# runs every row also with the vos and cairn-vold in DIR (another build's),
# interleaved in the same run, for a before/after; BENCH_VOS_JOBS passes
# --jobs to this build's vos. Nothing is deleted between the rows of one
# size, and BENCH_VOS_SETTLE seconds (default 35) pass after each
# deletion: ext4 without a journal skips every inode freed in the last
# ~30 s at each create (recently_deleted()), so a row run just after an
# rm -rf of 100,000 files pays for it (3x a create in session 9's runs).
# BENCH_VOS_OUT=tmpfs writes the exports (and one more local copy of the
# tree, the row "cp -a of the tree (to tmpfs)") into a tmpfs instead,
# each removed after its row: what vos export itself costs a file, with
# no disk under it (a tree of 1,000,000 files is ~7 GB to write, more
# than the kernel lets wait dirty in memory: on disk, export then runs
# at the disk's pace, as cp -a does).
set -u
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 14400
SIZES=${BENCH_VOS_SIZES:-10000 100000}
FLAT=${BENCH_VOS_FLAT:-1}
OUT=$T_DIR
if [ "${BENCH_VOS_OUT:-}" = tmpfs ]; then
	OUT=$T_DIR/out
	mkdir -p "$OUT" && mount -t tmpfs -o size=16G tmpfs "$OUT" ||
		{ echo "bench-vos: cannot mount a tmpfs on $OUT"; exit 99; }
	# lib.sh's exit trap, after the tmpfs is gone (its exit status kept)
	trap 'rc=$?; umount -l "$OUT" 2>/dev/null; (exit $rc); _t_cleanup' EXIT
fi
command -v bc >/dev/null || apt-get install -y -qq bc >/dev/null 2>&1
now() { date +%s.%N; }

mktree() { # DIR N
	python3 - "$@" <<'PY'
import os, random, sys
root, n = sys.argv[1], int(sys.argv[2])
rnd = random.Random(17)
buf = bytes(range(256)) * 256
for i in range(n):
    d = os.path.join(root, "d%04d" % (i // 1000))
    if i % 1000 == 0:
        os.makedirs(d, exist_ok=True)
    size = int(65536 * rnd.random() ** 8)
    with open(os.path.join(d, "f%07d" % i), "wb") as f:
        f.write(buf[:size])
PY
}
mkflat() { # DIR N
	python3 - "$@" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
os.makedirs(root)
for i in range(n):
    os.close(os.open(os.path.join(root, "f%07d" % i), os.O_CREAT | os.O_WRONLY, 0o644))
PY
}
row() { # LABEL N WALL [USER SYS]
	local cpu=""
	[ $# -ge 5 ] && cpu=$(printf '%9.1f' "$(echo "($4 + $5) * 1000000 / $2" | bc -l)")
	printf '%-34s %9d %8.2f %9.0f %9.1f %s\n' "$1" "$2" "$3" \
		"$(echo "$2 / $3" | bc -l)" "$(echo "$3 * 1000000 / $2" | bc -l)" "$cpu"
}
timed() { # OUTVAR CMD...: wall user sys of CMD into OUTVAR
	local var=$1; shift
	/usr/bin/time -f "%e %U %S" -o "$T_DIR/time" "$@" >/dev/null 2>"$T_DIR/cmd.err" ||
		{ cat "$T_DIR/cmd.err"; return 1; }
	printf -v "$var" '%s' "$(cat "$T_DIR/time")"
}
first() { # VOL: seconds of the first request (it opens the volume)
	local t0; t0=$(now)
	vold_curl --max-time 900 -H "Authorization: Bearer $(cat "$T_DIR/tok")" \
		"$VOLD_URL/v1/vol/$1" >/dev/null
	echo "$(now) - $t0" | bc -l
}

run_set() { # LABEL BINDIR N
	local label=$1 bin=$2 n=$3 t w u s jobs=""
	VOS_BIN=$bin/vos VOLD=$bin/cairn-vold
	[ "$label" = this ] && [ -n "${BENCH_VOS_JOBS:-}" ] && jobs="--jobs $BENCH_VOS_JOBS"
	SRV_ROOT=$T_DIR/srv-$label
	vos init >/dev/null
	echo "== $label ($bin; load: $(cut -d' ' -f1-3 /proc/loadavg))"
	timed t "$VOS_BIN" --root "$SRV_ROOT" import $jobs tree "$T_DIR/tree" || return 1
	read -r w u s <<<"$t"
	row "import tree" "$n" "$w" "$u" "$s"
	timed t "$VOS_BIN" --root "$SRV_ROOT" export $jobs tree "$OUT/out-$label-tree" || return 1
	read -r w u s <<<"$t"
	row "export tree" "$n" "$w" "$u" "$s"
	[ "$OUT" = "$T_DIR" ] || rm -rf "$OUT/out-$label-tree"
	if [ "$FLAT" = 1 ]; then
		timed t "$VOS_BIN" --root "$SRV_ROOT" import $jobs flat "$T_DIR/flat" || return 1
		read -r w u s <<<"$t"
		row "import flat (empty, one dir)" "$n" "$w" "$u" "$s"
		timed t "$VOS_BIN" --root "$SRV_ROOT" export $jobs flat "$OUT/out-$label-flat" || return 1
		read -r w u s <<<"$t"
		row "export flat" "$n" "$w" "$u" "$s"
		[ "$OUT" = "$T_DIR" ] || rm -rf "$OUT/out-$label-flat"
	fi
	make_token tree ro "$T_DIR/tok"
	vold_start || return 1
	row "vold first open after import" "$n" "$(first tree)"
	vold_stop
	vold_start || return 1
	row "vold open after a clean stop" "$n" "$(first tree)"
	vold_kill9
	vold_start || return 1
	row "vold open after kill -9 (scan)" "$n" "$(first tree)"
	vold_stop
}
settle() { sleep "${BENCH_VOS_SETTLE:-35}"; }

mkdir -p "$T_DIR/bin"
cp "$top_builddir/admin/vos" "$top_builddir/vol/cairn-vold" "$T_DIR/bin/"
for n in $SIZES; do
	rm -rf "$T_DIR/tree" "$T_DIR/flat"
	mktree "$T_DIR/tree" "$n"
	[ "$FLAT" = 1 ] && mkflat "$T_DIR/flat" "$n"
	settle
	echo "# $n files"
	printf '%-34s %9s %8s %9s %9s %9s\n' row files s files/s us/file cpu-us
	t=$( { /usr/bin/time -f "%e %U %S" cp -a "$T_DIR/tree" "$T_DIR/cp"; } 2>&1)
	read -r w u s <<<"$t"
	row "cp -a of the tree (local)" "$n" "$w" "$u" "$s"
	if [ "$OUT" != "$T_DIR" ]; then
		t=$( { /usr/bin/time -f "%e %U %S" cp -a "$T_DIR/tree" "$OUT/cp"; } 2>&1)
		read -r w u s <<<"$t"
		row "cp -a of the tree (to tmpfs)" "$n" "$w" "$u" "$s"
		rm -rf "$OUT/cp"
	fi
	[ -n "${BENCH_VOS_BASE:-}" ] && { run_set base "$BENCH_VOS_BASE" "$n" || exit 1; }
	run_set this "$T_DIR/bin" "$n" || exit 1
	rm -rf "$T_DIR/cp" "$T_DIR"/out-* "$T_DIR"/srv-*
done
rm -rf "$T_DIR/tree" "$T_DIR/flat"
