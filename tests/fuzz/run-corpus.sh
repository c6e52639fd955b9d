#!/bin/sh
# run-corpus.sh - run every fuzz target, built with the normal compiler and
# tests/fuzz/standalone.c, over its seed corpus tests/fuzz/corpus/NAME/.
# Part of `make check`; needs no clang. Exit 0 pass, 1 fail, 99 hard error.
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"

fail=0
n=0
for t in $(cat "$top_srcdir/tests/fuzz/targets.list"); do
	bin="$top_builddir/tests/fuzz/fuzz_$t"
	corpus="$top_srcdir/tests/fuzz/corpus/$t"
	if [ ! -x "$bin" ]; then
		echo "missing $bin (make check builds it)"
		exit 99
	fi
	if [ ! -d "$corpus" ]; then
		echo "missing seed corpus $corpus"
		exit 99
	fi
	if ! "$bin" "$corpus"; then
		echo "FAIL: fuzz_$t on $corpus"
		echo "repro: $bin $corpus"
		fail=1
	fi
	n=$((n + 1))
done
echo "$n targets ran over their seed corpora"
exit $fail
