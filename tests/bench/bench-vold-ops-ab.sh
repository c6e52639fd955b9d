#!/bin/bash
# bench-vold-ops-ab.sh - cairn-vold's CPU a small op (create, setattr, a
# new 1 KiB file as cairnd sends it), this tree's cairn-vold against
# BENCH_VOLD_BASE's (a build tree, default /work/main/build; its vos
# makes its volume), both running at once, one client alternating blocks
# of BENCH_OPS_BLOCK (100) requests between them so both see the same
# load (tests/bench/bench-vold-ops-ab.py). BENCH_OPS (3000) requests a
# row, BENCH_RUNS (3) runs. Not run by `make bench` (it needs a second
# build); doc/vol-format.md ("where a small op's CPU goes") was made
# with it.
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir/build}"
BASE=${BENCH_VOLD_BASE:-/work/main/build}
N=${BENCH_OPS:-3000}
BLOCK=${BENCH_OPS_BLOCK:-100}
RUNS=${BENCH_RUNS:-3}
[ -x "$BASE/vol/cairn-vold" ] && [ -x "$BASE/admin/vos" ] ||
	{ echo "bench-vold-ops-ab: no cairn-vold and vos in $BASE, skipping"; exit 0; }
W=$(mktemp -d "${TMPDIR:-/tmp}/bench-vold-ops-ab.XXXXXX")
PIDS=""
cleanup() { for p in $PIDS; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$W"; }
trap cleanup EXIT
start() { # BUILD LABEL
	"$1/admin/vos" --root "$W/$2" create v >/dev/null || exit 1
	"$1/admin/vos" --root "$W/$2" token v --rw >"$W/$2.tok" || exit 1
	"$1/vol/cairn-vold" --root "$W/$2" --listen 127.0.0.1:0 --port-file "$W/$2.port" \
		--foreground --log-level warn >"$W/$2.log" 2>&1 &
	echo $! >"$W/$2.pid"
	PIDS="$PIDS $!"
	for _ in $(seq 100); do [ -s "$W/$2.port" ] && break; sleep 0.05; done
}
echo "# A = $BASE, B = $top_builddir; $N requests a row in blocks of $BLOCK; cpu ms a request (load: $(cut -d' ' -f1-3 /proc/loadavg))"
for run in $(seq 1 "$RUNS"); do
	rm -rf "$W"/*
	PIDS=""
	start "$BASE" a
	start "$top_builddir" b
	for m in create setattr newfile; do
		python3 "$top_srcdir/tests/bench/bench-vold-ops-ab.py" "$m" "$N" "$BLOCK" \
			"http://127.0.0.1:$(cat "$W/a.port")" "$(cat "$W/a.tok")" "$(cat "$W/a.pid")" \
			"http://127.0.0.1:$(cat "$W/b.port")" "$(cat "$W/b.tok")" "$(cat "$W/b.pid")" || exit 1
	done
	for p in $PIDS; do kill "$p"; done
	wait 2>/dev/null
done
