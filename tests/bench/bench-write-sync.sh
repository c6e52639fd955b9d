#!/usr/bin/env bash
# bench-write-sync.sh - issue #14's write targets in sync mode (make bench
# runs it after bench-write.sh; not part of check). Every row is the median
# of BENCH_RUNS (5) runs, each against a same-run baseline:
#   untar of BENCH_WRITE_FILES (2,000) files of 1-64 KiB in 20 directories:
#       until tar exits (every file must be on the server then: checked
#       with vos examine right after)      vs  local tar      (target <= 15x)
#   the same untar on a mount in write-mode writeback (BENCH_WRITEBACK=0
#       leaves it out): until tar exits    vs  local tar      (target <= 3x)
#     and from tar's exit until the server holds every file and byte
#       (vos examine, polled every 0.1 s; the drain starts within
#       writeback-delay, 1 s)                                 (target <= 2 s)
#   create + write 1 KiB + close of BENCH_CREATE_FILES (1,000) files from
#       one process: ms a file             (target <= 1.5 ms)
#   write of one BENCH_WRITE_MB (256) MiB file and close (dd bs=1M, no
#       fsync: close stores it)            vs  the same dd to local disk
#                                          (target <= 1.5x)
#     and vs curl PUTting the same bytes as chunks to the stage endpoint
#       (8 at a time over keep-alive, as cairnd stages) (target >= 0.8x)
#   git clone --no-local of a local repository of the same BENCH_WRITE_FILES
#       files (one commit)                 vs  the same clone to local disk
#                                          (no target: reported)
#   make -j2 of a small C project (BENCH_MAKE_UNITS (40) units and a
#       program linking them), copied onto the mount first
#                                          vs  the same make on local disk
#                                          (no target: reported)
#   cairnd's CPU time (user + system, /proc/PID/stat) per file of each
#       untar: until tar exits (sync), until the server has every file
#       (writeback)                        (no target: reported)
# BENCH_ROWS=untar runs the untar rows only (both modes).
# The numbers swing on a shared machine; compare within one run only.
set -u
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 3600
NFILES=${BENCH_WRITE_FILES:-2000}
NCREATE=${BENCH_CREATE_FILES:-1000}
FILE_MB=${BENCH_WRITE_MB:-256}
RUNS=${BENCH_RUNS:-5}
NUNITS=${BENCH_MAKE_UNITS:-40}
WB=${BENCH_WRITEBACK:-1}
ROWS=${BENCH_ROWS:-all}
# cairnd's CPU time so far (user + system), in ms
cpu_ms() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) * 1000 / hz }' "/proc/$1/stat" 2>/dev/null; }
CS=262144
failed=0

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
# the last value of array $1, "?" when it has none
lastof() { eval "set -- \${$1[@]+\"\${$1[@]}\"}"; [ "$#" -gt 0 ] && echo "${!#}" || echo "?"; }
# the number of values in array $1 (0 when it has none, under set -u)
countof() { eval "set -- \${$1[@]+\"\${$1[@]}\"}"; echo "$#"; }

echo "# preparing: $NFILES files of 1-64 KiB, a ${FILE_MB} MiB file; $RUNS runs"
python3 "$top_srcdir/tests/bench/smalltree.py" "$T_DIR/small" "$NFILES" || exit 99
tar -C "$T_DIR/small" -cf "$T_DIR/small.tar" . || exit 99
want_files=$(( $(find "$T_DIR/small" | wc -l) ))
want_bytes=$(find "$T_DIR/small" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
if [ "$ROWS" != untar ]; then
head -c $((FILE_MB * 1024 * 1024)) /dev/urandom >"$T_DIR/big.src"
mkdir -p "$T_DIR/chunks"
split -b $CS -d -a 5 "$T_DIR/big.src" "$T_DIR/chunks/c" || exit 99
fi

cat >"$T_DIR/create.py" <<'PY'
import os, sys, time
d, n = sys.argv[1], int(sys.argv[2])
buf = b"x" * 1024
t0 = time.perf_counter()
for i in range(n):
    fd = os.open(os.path.join(d, "c%05d" % i), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, buf)
    os.close(fd)
print("%.4f" % ((time.perf_counter() - t0) * 1000 / n))
PY

# git clone: a repository of the untar tree, one commit
if [ "$ROWS" != untar ] && command -v git >/dev/null 2>&1; then
	cp -a "$T_DIR/small" "$T_DIR/repo"
	(cd "$T_DIR/repo" && git init -q && git add -A &&
		git -c user.name=bench -c user.email=bench@localhost \
			commit -q -m tree) || exit 99
fi
# make -j2: NUNITS small units and a program linking them
python3 - "$T_DIR/proj" "$NUNITS" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
os.makedirs(os.path.join(root, "src"), exist_ok=True)
with open(os.path.join(root, "src", "units.h"), "w") as h:
    for i in range(n):
        h.write("int unit%d(int x);\n" % i)
for i in range(n):
    with open(os.path.join(root, "src", "u%03d.c" % i), "w") as f:
        f.write('#include <stdio.h>\n#include <string.h>\n#include "units.h"\n')
        for j in range(20):
            f.write("static int f%d_%d(int x) { char b[64]; snprintf(b, sizeof(b), \"%%d\", x + %d); return (int)strlen(b) * x + %d; }\n" % (i, j, j, j))
        f.write("int unit%d(int x) { return " % i + " + ".join("f%d_%d(x)" % (i, j) for j in range(20)) + "; }\n")
with open(os.path.join(root, "src", "main.c"), "w") as f:
    f.write('#include <stdio.h>\n#include "units.h"\nint main(void) { long s = 0;\n')
    for i in range(n):
        f.write("  s += unit%d(%d);\n" % (i, i))
    f.write('  printf("%ld\\n", s); return 0; }\n')
objs = " ".join("src/u%03d.o" % i for i in range(n)) + " src/main.o"
with open(os.path.join(root, "Makefile"), "w") as f:
    f.write("CFLAGS = -O2 -g\nOBJS = %s\nprog: $(OBJS)\n\t$(CC) -o $@ $(OBJS)\n%%.o: %%.c src/units.h\n\t$(CC) $(CFLAGS) -c -o $@ $<\n" % objs)
PY

vold_start --stage-max 2G || exit 99
vos init >/dev/null 2>&1
loc=$T_DIR/local
mkdir -p "$loc"
[ "$ROWS" = untar ] || cat "$T_DIR/big.src" >/dev/null

declare -a r_untar r_ltar r_srv r_create r_lcreate r_big r_lbig r_curl r_wb r_wbsrv
declare -a r_clone r_lclone r_make r_lmake r_cpu r_wcpu
# vos examine VOL has at least the untar's files and bytes
on_server() { # VOL
	vos examine "$1" --json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
sys.exit(0 if d["files"] >= int(sys.argv[1]) and d["bytes"] >= int(sys.argv[2]) else 1)' \
		"$((want_files + 1))" "$want_bytes"
}
for run in $(seq 1 "$RUNS"); do
	vol=ws$run
	vos create "$vol" >/dev/null 2>&1 || exit 99
	make_token "$vol" rw "$T_DIR/tok$run"
	mnt=$T_DIR/mnt$run
	cairnd_mount "$mnt" "$T_DIR/cache$run" "$vol" "$T_DIR/tok$run" --cache-size 4G || exit 1

	# untar: local, then the mount
	rm -rf "$loc/untar" && mkdir -p "$loc/untar" && sync
	t0=$(now); tar -C "$loc/untar" -xf "$T_DIR/small.tar"; t1=$(now)
	r_ltar+=("$(secs "$t0" "$t1")")
	mkdir -p "$mnt/untar"
	cpid=$(cairnd_pid "$mnt") c0=$(cpu_ms "$cpid")
	t0=$(now)
	if tar -C "$mnt/untar" -xf "$T_DIR/small.tar" 2>"$T_DIR/untar.err"; then
		t1=$(now)
		r_untar+=("$(secs "$t0" "$t1")")
		r_cpu+=("$(awk -v a="$c0" -v b="$(cpu_ms "$cpid")" -v n="$NFILES" 'BEGIN { printf "%.3f", (b - a) / n }')")
		# Say why when it is not: examine's own error (before vos
		# retried an open that met a live commit, EUCLEAN counted
		# here as a missing file) or the counts it found.
		if vos examine "$vol" --json >"$T_DIR/exam.out" 2>&1 &&
			python3 -c '
import json, sys
d = json.load(open(sys.argv[3]))
sys.exit(0 if d["files"] >= int(sys.argv[1]) and d["bytes"] >= int(sys.argv[2]) else 1)' \
			"$((want_files + 1))" "$want_bytes" "$T_DIR/exam.out" 2>/dev/null; then
			r_srv+=(1)
		else
			r_srv+=(0)
			failed=1
			echo "# run $run: not on the server when tar exited (want $((want_files + 1)) files, $want_bytes bytes): $(head -c 300 "$T_DIR/exam.out")"
		fi
	else
		echo "# untar on the mount failed: $(head -n 2 "$T_DIR/untar.err")"
		failed=1
	fi

	if [ "$ROWS" = untar ]; then
		cairnd_umount "$mnt"
	else
	# create + 1 KiB + close from one process
	rm -rf "$loc/create" && mkdir -p "$loc/create" "$mnt/create"
	r_lcreate+=("$(python3 "$T_DIR/create.py" "$loc/create" "$NCREATE")")
	if c=$(python3 "$T_DIR/create.py" "$mnt/create" "$NCREATE" 2>"$T_DIR/create.err"); then
		r_create+=("$c")
	else
		echo "# create on the mount failed: $(head -n 2 "$T_DIR/create.err")"
		failed=1
	fi

	# 256 MiB: local dd, the mount's dd + close, curl to the stage route
	# Each of the three starts with no dirty pages of the others to
	# write back: before session 19 the mount's dd ran while the
	# kernel flushed the local dd's 256 MiB, and curl after both had
	# settled.
	rm -f "$loc/big"
	sync
	t0=$(now); dd if="$T_DIR/big.src" of="$loc/big" bs=1M 2>/dev/null; t1=$(now)
	r_lbig+=("$(secs "$t0" "$t1")")
	sync
	t0=$(now)
	if dd if="$T_DIR/big.src" of="$mnt/big" bs=1M 2>"$T_DIR/dd.err"; then
		t1=$(now)
		r_big+=("$(secs "$t0" "$t1")")
	else
		echo "# dd on the mount failed: $(head -n 2 "$T_DIR/dd.err")"
		failed=1
	fi
	# the big file's own FID, under a txid no store will name
	fid=$("$FS" examine --json "$mnt/big" 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
d = d[0] if isinstance(d, list) else d
print(d["fid"])')
	txid=$(python3 -c 'import uuid; print(uuid.uuid4().hex)')
	sync
	args=()
	i=0
	for c in "$T_DIR"/chunks/c*; do
		args+=(-T "$c" "$VOLD_URL/v1/vol/$vol/stage/$fid/$txid/$i?size=$CS")
		i=$((i + 1))
	done
	t0=$(now)
	curl -sf --parallel --parallel-max 8 -H "Authorization: Bearer $(cat "$T_DIR/tok$run")" \
		-o /dev/null "${args[@]}" 2>"$T_DIR/curl.err"
	rc=$?
	t1=$(now)
	if [ "$rc" = 0 ]; then
		r_curl+=("$(secs "$t0" "$t1")")
	else
		echo "# curl to the stage route failed ($rc): $(head -n 2 "$T_DIR/curl.err")"
		failed=1
	fi
	cmp -s "$T_DIR/big.src" "$mnt/big" || { echo "# WARNING: the big file differs"; failed=1; }

	# git clone of the local repository: local disk, then the mount
	if [ -d "$T_DIR/repo/.git" ]; then
		rm -rf "$loc/clone" && sync
		t0=$(now); git clone -q --no-local "$T_DIR/repo" "$loc/clone"; t1=$(now)
		r_lclone+=("$(secs "$t0" "$t1")")
		t0=$(now)
		if git clone -q --no-local "$T_DIR/repo" "$mnt/clone" 2>"$T_DIR/clone.err"; then
			t1=$(now)
			r_clone+=("$(secs "$t0" "$t1")")
			diff -r -q -x .git "$T_DIR/small" "$mnt/clone" >/dev/null ||
				{ echo "# WARNING: the clone differs"; failed=1; }
		else
			echo "# git clone on the mount failed: $(head -n 2 "$T_DIR/clone.err")"
			failed=1
		fi
	fi

	# make -j2 of the C project (copied first, not timed)
	rm -rf "$loc/proj" && cp -a "$T_DIR/proj" "$loc/proj" && sync
	t0=$(now); make -s -j2 -C "$loc/proj" >/dev/null 2>&1; t1=$(now)
	r_lmake+=("$(secs "$t0" "$t1")")
	cp -a "$T_DIR/proj" "$mnt/proj" || failed=1
	t0=$(now)
	if make -s -j2 -C "$mnt/proj" >/dev/null 2>"$T_DIR/make.err"; then
		t1=$(now)
		r_make+=("$(secs "$t0" "$t1")")
		[ "$("$mnt/proj/prog")" = "$("$loc/proj/prog")" ] ||
			{ echo "# WARNING: the program built on the mount differs"; failed=1; }
	else
		echo "# make on the mount failed: $(head -n 2 "$T_DIR/make.err")"
		failed=1
	fi
	cairnd_umount "$mnt"
	fi

	if [ "$WB" = 1 ]; then
		# the untar again, in writeback, on a volume of its own
		wvol=wb$run
		vos create "$wvol" >/dev/null 2>&1 || exit 99
		make_token "$wvol" rw "$T_DIR/wtok$run"
		wmnt=$T_DIR/wmnt$run
		cairnd_mount "$wmnt" "$T_DIR/wcache$run" "$wvol" "$T_DIR/wtok$run" \
			--cache-size 4G --write-mode writeback || exit 1
		mkdir -p "$wmnt/untar"
		cpid=$(cairnd_pid "$wmnt") c0=$(cpu_ms "$cpid")
		t0=$(now)
		if tar -C "$wmnt/untar" -xf "$T_DIR/small.tar" 2>"$T_DIR/wuntar.err"; then
			t1=$(now)
			r_wb+=("$(secs "$t0" "$t1")")
			for _ in $(seq 1 1200); do on_server "$wvol" && break; sleep 0.1; done
			t2=$(now)
			if on_server "$wvol"; then
				r_wbsrv+=("$(secs "$t1" "$t2")")
				r_wcpu+=("$(awk -v a="$c0" -v b="$(cpu_ms "$cpid")" -v n="$NFILES" 'BEGIN { printf "%.3f", (b - a) / n }')")
			else
				echo "# writeback: not on the server 120 s after tar"
				failed=1
			fi
		else
			echo "# writeback untar failed: $(head -n 2 "$T_DIR/wuntar.err")"
			failed=1
		fi
		cairnd_umount "$wmnt"
	fi
	[ "$WB" = 1 ] && echo "# run $run: writeback untar $(lastof r_wb) s, on the server $(lastof r_wbsrv) s later, cairnd CPU $(lastof r_wcpu) ms a file"
	[ "$ROWS" = untar ] && echo "# run $run: untar $(lastof r_untar) s (local $(lastof r_ltar), cairnd CPU $(lastof r_cpu) ms a file)" ||
	echo "# run $run: untar $(lastof r_untar) s (local $(lastof r_ltar), cairnd CPU $(lastof r_cpu) ms a file), create $(lastof r_create) ms (local $(lastof r_lcreate)), ${FILE_MB} MiB $(lastof r_big) s (local $(lastof r_lbig), curl $(lastof r_curl)), clone $(lastof r_clone) s (local $(lastof r_lclone)), make $(lastof r_make) s (local $(lastof r_lmake))"
done

mu=$(median "${r_untar[@]}"); ml=$(median "${r_ltar[@]}")
if [ "$ROWS" != untar ]; then
mc=$(median "${r_create[@]}"); mlc=$(median "${r_lcreate[@]}")
mb=$(median "${r_big[@]}"); mlb=$(median "${r_lbig[@]}"); mcu=$(median "${r_curl[@]}")
fi
# of the runs whose untar succeeded: a failed untar is not checked (and
# is reported above), so it must not read as files missing
allsrv=$(printf '%s\n' "${r_srv[@]+"${r_srv[@]}"}" | grep -c '^1$')
printf '\n%-58s %10s %10s %8s\n' "measurement (median of $RUNS)" "cairn" "baseline" "ratio"
printf '%-58s %10.3f %10.3f %8.1fx\n' "untar $NFILES files 1-64 KiB, until tar exits (s)" "$mu" "$ml" "$(awk -v a="$mu" -v b="$ml" 'BEGIN { print a / b }')"
printf '%-58s %10s\n' "  every file on the server when tar exited (runs)" "$allsrv/$(countof r_srv)"
[ "$(countof r_cpu)" -gt 0 ] && printf '%-58s %10.3f %10s\n' "  cairnd CPU per file (ms)" "$(median "${r_cpu[@]}")" "-"
if [ "$WB" = 1 ] && [ "$(countof r_wb)" -gt 0 ]; then
	mw=$(median "${r_wb[@]}")
	printf '%-58s %10.3f %10.3f %8.1fx\n' "untar, writeback, until tar exits (s; target <= 3x)" "$mw" "$ml" "$(awk -v a="$mw" -v b="$ml" 'BEGIN { print a / b }')"
	[ "$(countof r_wbsrv)" -gt 0 ] && printf '%-58s %10.3f %10s\n' "  writeback: on the server after tar exited (s; <= 2 s)" "$(median "${r_wbsrv[@]}")" "-"
	[ "$(countof r_wcpu)" -gt 0 ] && printf '%-58s %10.3f %10s\n' "  writeback: cairnd CPU per file until on the server (ms)" "$(median "${r_wcpu[@]}")" "-"
fi
[ "$ROWS" = untar ] && { T_PASS=1; [ "$failed" = 0 ] || { T_FAIL=1; exit 1; }; exit 0; }
printf '%-58s %10.3f %10.3f %8.1fx\n' "create + 1 KiB + close, $NCREATE files (ms a file)" "$mc" "$mlc" "$(awk -v a="$mc" -v b="$mlc" 'BEGIN { print a / b }')"
printf '%-58s %10.3f %10.3f %8.2fx\n' "write ${FILE_MB} MiB + close vs local dd (s)" "$mb" "$mlb" "$(awk -v a="$mb" -v b="$mlb" 'BEGIN { print a / b }')"
printf '%-58s %10.3f %10.3f %8.2f\n' "write ${FILE_MB} MiB + close vs curl to /stage (s; speed ratio)" "$mb" "$mcu" "$(awk -v a="$mb" -v b="$mcu" 'BEGIN { print b / a }')"
if [ "$(countof r_clone)" -gt 0 ]; then
	mg=$(median "${r_clone[@]}"); mlg=$(median "${r_lclone[@]}")
	printf '%-58s %10.3f %10.3f %8.1fx\n' "git clone --no-local, $NFILES files (s)" "$mg" "$mlg" "$(awk -v a="$mg" -v b="$mlg" 'BEGIN { print a / b }')"
fi
if [ "$(countof r_make)" -gt 0 ]; then
	mk=$(median "${r_make[@]}"); mlk=$(median "${r_lmake[@]}")
	printf '%-58s %10.3f %10.3f %8.1fx\n' "make -j2, $NUNITS C units + link (s)" "$mk" "$mlk" "$(awk -v a="$mk" -v b="$mlk" 'BEGIN { print a / b }')"
fi
echo "(ratios: cairn time / local time, except the curl row: curl time / cairn time, 1.0 = as fast as curl)"
T_PASS=1
[ "$failed" = 0 ] || { echo "# some measurements failed"; T_FAIL=1; exit 1; }
exit 0
