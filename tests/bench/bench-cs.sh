#!/bin/sh
# bench-cs.sh - run the chunk store benchmark (make bench). Numbers only;
# it fails only if the benchmark cannot run. BENCH_CS_ARGS passes options
# (e.g. "-n 100000 -f 20000" for a quick run).
: "${top_builddir:=.}"
bin="$top_builddir/tests/bench/bench_cs"
[ -x "$bin" ] || { echo "bench-cs: $bin not built" >&2; exit 1; }
dir=$(mktemp -d "${TMPDIR:-/tmp}/bench-cs.XXXXXX") || exit 1
trap 'rm -rf "$dir"' EXIT
# shellcheck disable=SC2086
"$bin" $BENCH_CS_ARGS "$dir"
