#!/usr/bin/env bash
# bench-rlog.sh - replay log benchmark (make bench; not part of check):
# appends/s against a raw pwrite+fsync baseline, batch and group commit,
# connected-mode cycles, an untar-shaped load, a 10,000-record log's open.
set -u
b="$top_builddir/tests/bench/bench_rlog"
[ -x "$b" ] || { echo "bench_rlog not built: make tests/bench/bench_rlog" >&2; exit 1; }
exec "$b" "${BENCH_DIR:-${TMPDIR:-/tmp}}"
