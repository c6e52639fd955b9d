#!/usr/bin/env bash
# bench-write.sh - cairnd write-path benchmark (make bench; not part of check).
#
# Every number is a ratio against local disk measured in the same run on
# the same machine (these machines are noisy), as in bench-cm.sh:
#   untar of BENCH_WRITE_FILES (2,000) files of 1-64 KiB in 20 directories
#       (issue #14's tree): until tar exits (the close of the last file)
#                                          vs  local tar
#     and until the server has every file and byte (vos examine: objects
#       and bytes of the volume)           vs  local tar + sync
#   the same untar in writeback mode (row "wbuntar": --write-mode
#       writeback, the default 1 s delay, a fresh volume): until tar
#       exits, and until the server has it all
#   write of one BENCH_WRITE_MB (256) MiB file, dd conv=fsync, with close
#                                          vs  the same dd to local disk
#   git status, warm, in a BENCH_GIT_FILES (5,000)-file repository (median
#       of 3 runs after 2 warm-up runs)    vs  local disk
#   20 x (append 4 KiB + fsync) to a file of 16 MiB and of BENCH_FSYNC_BIG_MB
#       (1,024) MiB of random bytes: the time of the 20, and per fsync
#                                          vs  the same on local disk
#       (issue #14: a store must cost what it changes, not the file's size)
# BENCH_WRITE_ONLY="untar wbuntar big git fsync" (default: all) runs only the rows
# named.
# A measurement that fails (an error from the mount, a wrong result) is
# shown as "failed" and the script exits 1.
set -u
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 1800
NFILES=${BENCH_WRITE_FILES:-2000}
FILE_MB=${BENCH_WRITE_MB:-256}
NGIT=${BENCH_GIT_FILES:-5000}
FSYNC_BIG_MB=${BENCH_FSYNC_BIG_MB:-1024}
failed=0
want() { [ -z "${BENCH_WRITE_ONLY:-}" ] || [[ " $BENCH_WRITE_ONLY " == *" $1 "* ]]; }
untar="skipped"; untar_srv="skipped"; big="skipped"; gitw="skipped"
wb_untar="skipped"; wb_untar_srv="skipped"
base_untar=0; base_untar_sync=0; base_big=0; base_git=0

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
ratio() { awk -v b="$1" -v c="$2" 'BEGIN { if (c > 0) printf "%.2f", b / c; else print "-" }'; }
median3() { printf '%s\n' "$@" | sort -g | sed -n 2p; }

# Inputs, made once: a tar of small files, a random file, a git repository.
echo "# preparing: $NFILES small files, ${FILE_MB} MiB file, $NGIT-file git repository"
mkdir -p "$T_DIR/small" "$T_DIR/gitsrc/repo"
if want untar || want wbuntar; then
python3 "$top_srcdir/tests/bench/smalltree.py" "$T_DIR/small" "$NFILES" || exit 99
tar -C "$T_DIR/small" -cf "$T_DIR/small.tar" . || exit 99
want_files=$(( $(find "$T_DIR/small" | wc -l) ))       # files + dirs + the root
want_bytes=$(find "$T_DIR/small" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
fi
want big && head -c $((FILE_MB * 1024 * 1024)) /dev/urandom >"$T_DIR/big.src"
repo=$T_DIR/gitsrc/repo
if want git; then
python3 - "$repo" "$NGIT" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "dir%03d" % (i // 100))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "file%05d.c" % i), "w") as f:
        f.write("int f%d(void) { return %d; }\n" % (i, i))
PY
export HOME=$T_DIR/home GIT_CONFIG_NOSYSTEM=1
mkdir -p "$HOME"
git config --global safe.directory '*'
# No background gc: vos import must not see objects move under it.
git config --global gc.auto 0
git config --global maintenance.auto false
(cd "$repo" && git init -q && git add -A && git -c user.name=b -c user.email=b@l commit -qm init) ||
	{ echo "# cannot make the git repository"; exit 99; }
fi
# 20 x (append 4 KiB + fsync): the time of the 20 appends with their
# fsyncs (python, one open file) to FILE, which already holds its bytes.
append_fsync() {
	python3 - "$1" <<'PY'
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)
buf = os.urandom(4096)
t0 = time.monotonic()
for _ in range(20):
    os.write(fd, buf)
    os.fsync(fd)
print("%.4f" % (time.monotonic() - t0))
os.close(fd)
PY
}
if want fsync; then
	head -c $((16 << 20)) /dev/urandom >"$T_DIR/fs16.src"
	head -c $((FSYNC_BIG_MB << 20)) /dev/urandom >"$T_DIR/fsbig.src"
fi

# Baselines on local disk.
loc=$T_DIR/local
mkdir -p "$loc/untar"
sync
if want untar || want wbuntar; then
t0=$(now); tar -C "$loc/untar" -xf "$T_DIR/small.tar"; t1=$(now); sync -f "$loc/untar"; t2=$(now)
base_untar=$(secs "$t0" "$t1"); base_untar_sync=$(secs "$t0" "$t2")
fi
if want big; then
cat "$T_DIR/big.src" >/dev/null
t0=$(now); dd if="$T_DIR/big.src" of="$loc/big" bs=1M conv=fsync 2>/dev/null; t1=$(now)
base_big=$(secs "$t0" "$t1")
fi
gs() { (cd "$1" && git status --porcelain >/dev/null 2>&1); }
timed_gs() { local t0 t1; t0=$(now); gs "$1" || return 1; t1=$(now); secs "$t0" "$t1"; }
if want git; then
gs "$repo"; gs "$repo"
base_git=$(median3 "$(timed_gs "$repo")" "$(timed_gs "$repo")" "$(timed_gs "$repo")")
fi
base_fs16=0; base_fsbig=0
if want fsync; then
	cp "$T_DIR/fs16.src" "$loc/fs16" && cp "$T_DIR/fsbig.src" "$loc/fsbig" && sync
	base_fs16=$(append_fsync "$loc/fs16")
	base_fsbig=$(append_fsync "$loc/fsbig")
	rm -f "$loc/fs16" "$loc/fsbig"
fi

# The same on a cairnd mount: an empty volume for the writes, the
# repository imported with vos (what is measured is git status, not the copy).
vold_start || exit 99
vos init >/dev/null 2>&1
vos create wbench >/dev/null 2>&1 || exit 99
vos import gitbench "$T_DIR/gitsrc" >"$T_DIR/import.log" 2>&1 || { echo "# vos import failed: $(tail -n 3 "$T_DIR/import.log")"; exit 99; }
# The fsync rows start from files already on the server (vos import), so
# what is timed is the appends, not getting the file there.
if want fsync; then
	mkdir -p "$T_DIR/fssrc" && ln "$T_DIR/fs16.src" "$T_DIR/fssrc/fs16" && ln "$T_DIR/fsbig.src" "$T_DIR/fssrc/fsbig"
	vos import fsbench "$T_DIR/fssrc" >"$T_DIR/import-fs.log" 2>&1 || { echo "# vos import failed: $(tail -n 3 "$T_DIR/import-fs.log")"; exit 99; }
	make_token fsbench rw "$T_DIR/tok-fs"
fi
make_token wbench rw "$T_DIR/tok"
make_token gitbench rw "$T_DIR/tok-git"
mnt=$T_DIR/mnt
cairnd_mount "$mnt" "$T_DIR/cache" wbench "$T_DIR/tok" --cache-size 4G || exit 1
server_has_all() {
	vos examine "${VOL:-wbench}" --json 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
sys.exit(0 if d["files"] >= int(sys.argv[1]) and d["bytes"] >= int(sys.argv[2]) else 1)' \
		"$((want_files + 1))" "$want_bytes"   # + 1: the volume root
}

if want untar; then
untar="failed"; untar_srv="failed"
mkdir -p "$mnt/untar" 2>/dev/null
t0=$(now)
if tar -C "$mnt/untar" -xf "$T_DIR/small.tar" 2>"$T_DIR/untar.err"; then
	t1=$(now)
	untar=$(secs "$t0" "$t1")
	for _ in $(seq 1 6000); do server_has_all && break; sleep 0.01; done
	t2=$(now)
	server_has_all && untar_srv=$(secs "$t0" "$t2")
	diff -r "$T_DIR/small" "$mnt/untar" >/dev/null 2>&1 || { echo "# WARNING: untarred tree differs"; untar="failed"; }
else
	echo "# untar on the mount failed: $(head -n 2 "$T_DIR/untar.err")"
fi
fi

if want wbuntar; then
# The untar again on an empty volume, in writeback mode.
vos create wbench2 >/dev/null 2>&1 || exit 99
make_token wbench2 rw "$T_DIR/tok2"
mntw=$T_DIR/mntwb
cairnd_mount "$mntw" "$T_DIR/cache-wb" wbench2 "$T_DIR/tok2" --cache-size 4G --write-mode writeback || exit 1
wb_untar="failed"; wb_untar_srv="failed"
mkdir -p "$mntw/untar" 2>/dev/null
t0=$(now)
if tar -C "$mntw/untar" -xf "$T_DIR/small.tar" 2>"$T_DIR/untar-wb.err"; then
	t1=$(now)
	wb_untar=$(secs "$t0" "$t1")
	for _ in $(seq 1 6000); do VOL=wbench2 server_has_all && break; sleep 0.01; done
	t2=$(now)
	VOL=wbench2 server_has_all && wb_untar_srv=$(secs "$t0" "$t2")
	diff -r "$T_DIR/small" "$mntw/untar" >/dev/null 2>&1 || { echo "# WARNING: untarred tree differs (writeback)"; wb_untar="failed"; }
	wb_after=$(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.3f", b - a }')
else
	echo "# untar on the writeback mount failed: $(head -n 2 "$T_DIR/untar-wb.err")"
fi
cairnd_umount "$mntw"
fi

if want big; then
big="failed"
t0=$(now)
if dd if="$T_DIR/big.src" of="$mnt/big" bs=1M conv=fsync 2>"$T_DIR/dd.err"; then
	t1=$(now)
	big=$(secs "$t0" "$t1")
	cmp -s "$T_DIR/big.src" "$mnt/big" || { echo "# WARNING: the big file differs"; big="failed"; }
else
	echo "# dd on the mount failed: $(head -n 2 "$T_DIR/dd.err")"
fi
fi
rss=$(awk '/VmHWM/ {print $2}' "/proc/$(cairnd_pid "$mnt")/status" 2>/dev/null)
cairnd_umount "$mnt"

if want git; then
mnt2=$T_DIR/mntgit
cairnd_mount "$mnt2" "$T_DIR/cache-git" gitbench "$T_DIR/tok-git" --cache-size 4G || exit 1
gs "$mnt2/repo"; gs "$mnt2/repo"
gitw="failed"
if a=$(timed_gs "$mnt2/repo") && b=$(timed_gs "$mnt2/repo") && c=$(timed_gs "$mnt2/repo"); then
	gitw=$(median3 "$a" "$b" "$c")
	[ -z "$(cd "$mnt2/repo" && git status --porcelain 2>&1)" ] ||
		{ echo "# WARNING: git status on the mount is not clean"; gitw="failed"; }
fi
cairnd_umount "$mnt2"
fi

fs16="skipped"; fsbig="skipped"
if want fsync; then
	mnt3=$T_DIR/mntfs
	cairnd_mount "$mnt3" "$T_DIR/cache-fs" fsbench "$T_DIR/tok-fs" --cache-size 4G || exit 1
	# Appends need the last chunk; the rest of the file stays on the server.
	fs16=$(append_fsync "$mnt3/fs16") || fs16="failed"
	fsbig=$(append_fsync "$mnt3/fsbig") || fsbig="failed"
	for f in fs16 fsbig; do
		want_size=$(( $(stat -c %s "$T_DIR/$f.src") + 20 * 4096 ))
		[ "$(stat -c %s "$mnt3/$f" 2>/dev/null)" = "$want_size" ] ||
			{ echo "# WARNING: $f has the wrong size after the appends"; eval "$f=failed"; }
	done
	cairnd_umount "$mnt3"
fi

printf '\n%-52s %10s %10s %8s\n' "measurement" "cairn s" "local s" "ratio"
row() {
	if [ "$2" = skipped ]; then
		return
	elif [ "$2" = failed ]; then
		printf '%-52s %10s %10.3f %8s\n' "$1" failed "$3" "-"; failed=1
	else
		printf '%-52s %10.3f %10.3f %8s\n' "$1" "$2" "$3" "$(ratio "$3" "$2")"
	fi
}
row "untar $NFILES small files, until tar exits" "$untar" "$base_untar"
row "untar $NFILES small files, until the server has all" "$untar_srv" "$base_untar_sync"
row "writeback: untar, until tar exits" "$wb_untar" "$base_untar"
row "writeback: untar, until the server has all" "$wb_untar_srv" "$base_untar_sync"
[ "$wb_untar_srv" != failed ] && [ "$wb_untar_srv" != skipped ] && echo "writeback: on the server ${wb_after} s after tar exited"
row "write ${FILE_MB} MiB, dd conv=fsync + close" "$big" "$base_big"
row "git status warm, $NGIT files (median of 3)" "$gitw" "$base_git"
row "20 x (append 4 KiB + fsync), 16 MiB file" "$fs16" "$base_fs16"
row "20 x (append 4 KiB + fsync), ${FSYNC_BIG_MB} MiB file" "$fsbig" "$base_fsbig"
for r in "16 MiB:$fs16:$base_fs16" "${FSYNC_BIG_MB} MiB:$fsbig:$base_fsbig"; do
	IFS=: read -r what t b <<<"$r"
	[ "$t" = skipped ] || [ "$t" = failed ] ||
		echo "append + fsync, $what file: $(awk -v t="$t" 'BEGIN { printf "%.1f", t * 1000 / 20 }') ms per fsync (local $(awk -v t="$b" 'BEGIN { printf "%.2f", t * 1000 / 20 }') ms)"
done
[ "$big" != failed ] && [ "$big" != skipped ] && echo "write MB/s: $(awk -v m="$FILE_MB" -v s="$big" 'BEGIN { printf "%.0f", m / s }')"
echo "cairnd peak RSS during the writes: ${rss:-?} KiB"
echo "(ratio = local time / cairn time; 1.00 = as fast as local disk)"
T_PASS=1
[ "$failed" = 0 ] || { echo "# some measurements failed"; T_FAIL=1; exit 1; }
exit 0
