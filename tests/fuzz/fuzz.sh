#!/bin/bash
# fuzz.sh [SECONDS] [TARGET...] - build every fuzz target of
# tests/fuzz/targets.list (or the named ones) with clang and libFuzzer
# (+ASan +UBSan) and run each for SECONDS (default 2), one after another,
# then print a table: per target the executions, executions per second,
# seconds run and findings (crashes, leaks, timeouts, out-of-memory).
# `make fuzz` runs it with FUZZ_SECONDS (default 60).
# Exit 0 pass, 1 a target found something, 77 when clang or its
# libFuzzer runtime is missing (Debian: clang, libclang-rt-14-dev), 99 on
# a build failure. Never writes to the source tree: work happens in a
# temporary directory, kept (and named) when something fails or when
# FUZZ_KEEP=1. FUZZ_CC picks the compiler (default clang).
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
secs=${1:-2}
[ $# -gt 0 ] && shift
case $secs in
''|*[!0-9]*) echo "usage: $0 [SECONDS] [TARGET...]" >&2; exit 99 ;;
esac
cc=${FUZZ_CC:-clang}
targets=${*:-$(cat "$top_srcdir/tests/fuzz/targets.list")}

# tools/check runs the fuzz targets once (in build/); its distcheck step,
# which would build and run them again from the tarball, says so here.
if [ -n "${CAIRN_CHECK_FUZZ_DONE:-}" ]; then
	echo "SKIP: fuzzed once already in this tools/check run (CAIRN_CHECK_FUZZ_DONE)"
	exit 77
fi
if ! command -v "$cc" >/dev/null 2>&1; then
	echo "SKIP: $cc not installed (apt-get install clang)"
	exit 77
fi
for p in jansson openssl; do
	if ! pkg-config --exists $p; then
		echo "SKIP: pkg-config cannot find $p"
		exit 77
	fi
done
tmp=$(mktemp -d "${TMPDIR:-/tmp}/cairn-fuzz.XXXXXX") || exit 99
keep=${FUZZ_KEEP:-0}
cleanup() {
	if [ "$keep" = 1 ]; then
		echo "fuzz work directory kept: $tmp"
	else
		rm -rf "$tmp"
	fi
}
trap cleanup EXIT

# Can this clang link a fuzzer at all? (The runtime is a separate package.)
printf '%s\n' '#include <stddef.h>' '#include <stdint.h>' \
	'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);' \
	'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }' \
	>"$tmp/probe.c"
if ! "$cc" -fsanitize=fuzzer,address,undefined "$tmp/probe.c" -o "$tmp/probe" \
	>"$tmp/probe.log" 2>&1; then
	echo "SKIP: $cc cannot link -fsanitize=fuzzer (apt-get install libclang-rt-14-dev)"
	sed 's/^/# /' "$tmp/probe.log" | head -5
	exit 77
fi

# config.h from the build tree, or a minimal one for a tree never configured.
inc="-I$top_srcdir"
if [ -f "$top_builddir/config.h" ]; then
	inc="$inc -I$top_builddir"
else
	printf '#define _GNU_SOURCE 1\n' >"$tmp/config.h"
	inc="$inc -I$tmp"
fi
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined"
cflags="-g -O1 -fno-omit-frame-pointer $san $inc $(pkg-config --cflags jansson openssl)"
libs="$(pkg-config --libs jansson openssl)"

objs=
# What libcairncommon is made of (common/include.am): its own modules and
# base/'s CRC32C.
for m in common/log common/fid common/util common/proto common/proto_dirdec common/proto_dirbin common/token \
	common/ctl_proto base/crc32c; do
	o=$tmp/$(basename "$m").o
	if ! "$cc" $cflags -fsanitize=fuzzer-no-link -c "$top_srcdir/$m.c" \
		-o "$o" 2>"$tmp/build.log"; then
		echo "ERROR: cannot build $m.c with $cc"
		cat "$tmp/build.log"
		keep=1
		exit 99
	fi
	objs="$objs $o"
done

# stat NAME LOG: a number from libFuzzer's final stats, or "".
stat() {
	sed -n "s/^stat::$1: *//p" "$2" | tail -1
}

fail=0
table=""
for t in $targets; do
	src="$top_srcdir/tests/fuzz/fuzz_$t.c"
	if [ ! -f "$src" ]; then
		echo "ERROR: no target $src"
		exit 99
	fi
	if ! "$cc" $cflags -fsanitize=fuzzer "$src" $objs $libs \
		-o "$tmp/fuzz_$t" 2>"$tmp/build.log"; then
		echo "ERROR: cannot build fuzz_$t"
		cat "$tmp/build.log"
		keep=1
		exit 99
	fi
	# libFuzzer adds new inputs to its first corpus directory: give it a
	# copy, never the checked-in seeds.
	mkdir -p "$tmp/corpus-$t"
	cp "$top_srcdir/tests/fuzz/corpus/$t/"* "$tmp/corpus-$t/" 2>/dev/null
	t0=$(date +%s%N)
	"$tmp/fuzz_$t" -max_total_time="$secs" -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$tmp/$t-" "$tmp/corpus-$t" \
		>"$tmp/log-$t" 2>&1
	rc=$?
	t1=$(date +%s%N)
	ms=$(( (t1 - t0) / 1000000 ))
	runs=$(stat number_of_executed_units "$tmp/log-$t")
	# A run cut short may not print its stats: take the last status line
	# ("#123456  pulse ...").
	[ -n "$runs" ] || runs=$(sed -n 's/^#\([0-9][0-9]*\)[[:space:]].*/\1/p' \
		"$tmp/log-$t" | tail -1)
	runs=${runs:-0}
	n_crash=$(ls "$tmp/$t"-crash-* 2>/dev/null | wc -l)
	n_leak=$(ls "$tmp/$t"-leak-* 2>/dev/null | wc -l)
	n_timeout=$(ls "$tmp/$t"-timeout-* 2>/dev/null | wc -l)
	n_oom=$(ls "$tmp/$t"-oom-* 2>/dev/null | wc -l)
	findings=$((n_crash + n_leak + n_timeout + n_oom))
	if [ "$rc" -eq 0 ] && [ "$findings" -eq 0 ]; then
		result=ok
		echo "ok fuzz_$t: $runs runs in $((ms / 1000))s"
	else
		result=FAIL
		# A failure without an artifact (the fuzzer itself died) still
		# counts as a finding.
		[ "$findings" -gt 0 ] || n_crash=1
		echo "FAIL fuzz_$t; last lines of its log:"
		tail -40 "$tmp/log-$t"
		ls "$tmp/$t"-* 2>/dev/null | grep -v "^$tmp/$t-corpus" |
			sed 's/^/finding: /'
		fail=1
		keep=1
	fi
	rate=$(( ms > 0 ? runs * 1000 / ms : 0 ))
	table="$table$(printf '%-14s %12s %9s %8s %7s %5s %8s %4s  %s' \
		"$t" "$runs" "$rate" "$((ms / 1000)).$(printf '%03d' $((ms % 1000)))" \
		"$n_crash" "$n_leak" "$n_timeout" "$n_oom" "$result")
"
done
echo
printf '%-14s %12s %9s %8s %7s %5s %8s %4s  %s\n' target execs 'execs/s' \
	seconds crashes leaks timeouts ooms result
printf '%s' "$table"
exit $fail
