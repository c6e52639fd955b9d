#!/bin/sh
# fsx-local.sh - the exerciser itself (tests/tools/cairn-fsx) on local disk
# and on tmpfs, before it is trusted on a cairnd mount: a fixed seed runs
# 5,000 ops clean, the same seed gives the same file, the op mix really
# covers chunk-crossing writes, O_TRUNC and O_APPEND reopens, truncates
# and fsyncs, and --check-model catches a flipped byte and a wrong size.
# Needs no root and no mount.
. "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
t_timeout 120
FSX=$top_builddir/tests/tools/cairn-fsx
[ -x "$FSX" ] || { echo "# SKIP: $FSX not built"; exit 77; }

d=$T_DIR/local
mkdir -p "$d"
"$FSX" -q -S 1 -N 5000 --save-model "$T_DIR/model1" "$d/f" >"$T_DIR/run1.out" 2>"$T_DIR/run1.err"
rc=$?
t_is "$rc" 0 "5000 ops, seed 1, local disk"
[ "$rc" = 0 ] || cat "$T_DIR/run1.err"
t_is "$(head -n 1 "$T_DIR/run1.out")" "seed 1" "the seed is the first line"
t_check "the saved model equals the file" cmp "$T_DIR/model1" "$d/f"
t_ok "$([ "$(stat -c %s "$T_DIR/model1")" -gt 65536 ] && echo 0 || echo 1)" \
	"the run ends with a file worth checking ($(stat -c %s "$T_DIR/model1") bytes)"
t_check "--check-model accepts the file" "$FSX" --check-model "$T_DIR/model1" "$d/f"

"$FSX" -q -S 1 -N 5000 --save-model "$T_DIR/model1b" "$d/g" >/dev/null 2>&1
t_check "the same seed gives the same file" cmp "$T_DIR/model1" "$T_DIR/model1b"
"$FSX" -q -N 50 "$d/h" >"$T_DIR/noseed.out" 2>&1
t_check "without -S a seed is still printed" grep -qE '^seed [0-9]+$' "$T_DIR/noseed.out"

# The op mix: count what a verbose run actually did.
"$FSX" -v -S 7 -N 5000 "$d/v" >"$T_DIR/verbose.out" 2>&1
t_is "$?" 0 "verbose run, seed 7"
count() { grep -c " $1 " "$T_DIR/verbose.out"; }
cross=$(awk '$2 == "write" { o = $4; l = $6; if (int(o / 262144) != int((o + l - 1) / 262144)) n++ } END { print n + 0 }' "$T_DIR/verbose.out")
holes=$(awk '$2 == "write" && $4 > $8 { n++ } END { print n + 0 }' "$T_DIR/verbose.out")
mix="cross=$cross holes=$holes trunc=$(count truncate) otrunc=$(count reopen+O_TRUNC) oappend=$(count reopen+O_APPEND) append=$(count append) fsync=$(count fsync) readall=$(count readall) read=$(count read) stat=$(count stat)"
echo "# op mix: $mix"
t_ok "$(echo "$mix" | awk '{ for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[2] < 10) bad = 1 } exit bad }'; echo $?)" \
	"every op kind ran at least 10 times"

# Detection: a flipped byte and a wrong size are caught, with the offset.
cp "$T_DIR/model1" "$d/bad"
size=$(stat -c %s "$d/bad")
off=$((size / 2))
old=$(od -An -tu1 -j "$off" -N1 "$d/bad" | tr -d ' ')
printf "\\$(printf %03o $(( (old + 1) % 256 )))" | dd of="$d/bad" bs=1 seek="$off" conv=notrunc 2>/dev/null
"$FSX" --check-model "$T_DIR/model1" "$d/bad" >"$T_DIR/bad.out" 2>&1
t_is "$?" 1 "a flipped byte: exit 1"
t_check "the report names the offset" grep -q "differs at offset $off " "$T_DIR/bad.out"
t_check "and shows expected and got bytes" grep -q "^expected at" "$T_DIR/bad.out"
cp "$T_DIR/model1" "$d/short"
truncate -s $((size - 1)) "$d/short"
"$FSX" --check-model "$T_DIR/model1" "$d/short" >"$T_DIR/short.out" 2>&1
t_is "$?" 1 "one byte short: exit 1"
t_check "the report names the size" grep -q "size $((size - 1)), expected $size" "$T_DIR/short.out"

# Errors of system calls are exit 2 with the reason.
"$FSX" -q -N 10 "$T_DIR/no/such/dir/f" >"$T_DIR/enoent.out" 2>&1
t_is "$?" 2 "open in a missing directory: exit 2"
t_check "with strerror" grep -q "No such file or directory" "$T_DIR/enoent.out"
"$FSX" -N x "$d/f" >/dev/null 2>&1
t_is "$?" 2 "bad -N: exit 2"

# tmpfs: the same run, where the page cache is the file system.
shm=""
for m in /dev/shm /run/shm; do
	[ -d "$m" ] && [ -w "$m" ] && [ "$(stat -f -c %T "$m")" = tmpfs ] && { shm=$m; break; }
done
if [ -n "$shm" ]; then
	sd=$(mktemp -d "$shm/cairn-fsx.XXXXXX")
	"$FSX" -q -S 1 -N 5000 --save-model "$T_DIR/model-shm" "$sd/f" >"$T_DIR/shm.err" 2>&1
	t_is "$?" 0 "5000 ops, seed 1, tmpfs"
	t_check "same file as on disk" cmp "$T_DIR/model1" "$T_DIR/model-shm"
	rm -rf "$sd"
else
	echo "# no writable tmpfs: tmpfs run skipped"
fi
t_done
