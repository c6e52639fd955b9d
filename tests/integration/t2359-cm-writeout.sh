#!/usr/bin/env bash
# t2359-cm-writeout: while changes are logged (writeback mode, and
# disconnected), a chunk a stream fills is given to the disk at once
# (CS_C_WRITEOUT, doc/cm.md "Write-out of filled chunks"), not all at the
# file's close: the close fsyncs every chunk, and then waits only for the
# tail. Checked with cachestat(2) on the cache's chunk files right after
# the writes, the writer still holding the file open: none of their pages
# is dirty any more (each is written or being written). Without the
# write-out they stay dirty until cairnd stores the file (520 dirty pages
# for 5 s and more in a probe of the build before). After the close, a
# fresh mount reads every byte back from the server. The cachestat checks
# are skipped where cachestat(2) is not (Linux before 6.5, or a seccomp
# filter) and for a cache on a tmpfs (whose pages stay dirty).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 240
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

vol_setup wo
A=$T_DIR/a
cairnd_mount "$A" "$T_DIR/ca" wo "$T_DIR/tok" --write-mode writeback || exit 1
NCHUNK=8
CS=262144

# dirty CACHE: "FILES DIRTY WRITEBACK" (pages) over the committed full
# chunks of CACHE (a chunk file of CS bytes + its 64-byte trailer) not
# named in $T_DIR/before (the earlier rounds': a chunk the server has
# gets a new trailer, a dirty page no close waits for), or "nosys"
dirty() {
	python3 - "$1/chunks" "$((CS + 64))" "$T_DIR/before" <<'PY'
import ctypes, errno, os, sys
root, size = sys.argv[1], int(sys.argv[2])
old = set(open(sys.argv[3]).read().split()) if os.path.exists(sys.argv[3]) else set()
libc = ctypes.CDLL(None, use_errno=True)
class Range(ctypes.Structure):
    _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]
class Stat(ctypes.Structure):
    _fields_ = [(n, ctypes.c_uint64) for n in
                ("cache", "dirty", "writeback", "evicted", "recently_evicted")]
files = dirty = wb = 0
for d, _, names in os.walk(root):
    for n in names:
        p = os.path.join(d, n)
        if n.endswith(".wip") or os.path.getsize(p) != size or p in old:
            continue
        fd = os.open(p, os.O_RDONLY)
        r, st = Range(0, 0), Stat()
        rc = libc.syscall(451, fd, ctypes.byref(r), ctypes.byref(st), 0)
        e = ctypes.get_errno()
        os.close(fd)
        if rc != 0:
            # ENOSYS: before Linux 6.5; EPERM: a seccomp filter
            print("nosys" if e in (errno.ENOSYS, errno.EPERM) else "error %d" % e)
            sys.exit(0)
        files += 1
        dirty += st.dirty
        wb += st.writeback
print(files, dirty, wb)
PY
}

# round NAME: write NCHUNK full chunks and 100 bytes into NAME, keep it
# open while the cache's chunk files are looked at, then close
round() {
	local name=$1 got files d w
	rm -f "$T_DIR/go" "$T_DIR/written"
	find "$T_DIR/ca/chunks" -type f >"$T_DIR/before"
	python3 - "$A/$name" "$NCHUNK" "$CS" "$T_DIR" <<'PY' &
import os, sys, time
p, n, cs, t = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
for i in range(n):
    os.write(fd, bytes([48 + i]) * cs)
os.write(fd, b"t" * 100)
open(t + "/written", "w").close()
for _ in range(600):  # until the shell says so (60 s at most)
    if os.path.exists(t + "/go"):
        break
    time.sleep(0.1)
os.close(fd)
PY
	local wpid=$!
	wait_for 30 test -e "$T_DIR/written" || { t_ok 1 "$name: the writer wrote"; kill $wpid; return; }
	fstype=$(stat -f -c %T "$T_DIR/ca")
	if [ "$fstype" = tmpfs ] || [ "$fstype" = ramfs ]; then
		got=onram
	else
		got=$(dirty "$T_DIR/ca")
	fi
	if [ "$got" = onram ]; then
		echo "# the cache is on $fstype (no disk to write to): no check of the chunk files"
	elif [ "$got" = nosys ]; then
		echo "# cachestat(2) not here (ENOSYS or EPERM): no check of the chunk files"
	else
		read -r files d w <<<"$got"
		t_is "$files" "$NCHUNK" "$name: its $NCHUNK full chunks committed while the file is open"
		echo "# $name: $w pages under writeback right after the writes"
		t_is "$d" 0 "$name: ... none of their pages dirty right after the writes"
		wait_eval 10 '[ "$(dirty "$T_DIR/ca" | cut -d" " -f3)" = 0 ]'
		t_is "$(dirty "$T_DIR/ca" | cut -d" " -f2-)" "0 0" "$name: ... and all on disk within 10 s"
	fi
	touch "$T_DIR/go"
	wait $wpid
	t_is "$?" 0 "$name: the writer closed the file"
	t_is "$(stat -c %s "$A/$name")" $((NCHUNK * CS + 100)) "$name: its size"
}

round wb1
t_check "fs sync: wb1 on the server" "$FS" sync -m "$A"
status() { # KEY of fs status --json
	"$FS" status --json -m "$A" 2>/dev/null |
		python3 -c 'import json, sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"
}
t_check "fs disconnect" "$FS" disconnect -m "$A"
t_is "$(status mode)" disconnected "disconnected"
round off1
t_check "fs reconnect" "$FS" reconnect -m "$A"
wait_eval 60 '[ "$(status mode)" = connected ]'
t_check "fs sync: off1 on the server" "$FS" sync -m "$A"
cairnd_umount "$A"

# What the server has: a fresh cache reads both files back.
cairnd_mount "$T_DIR/b" "$T_DIR/cb" wo "$T_DIR/tok" || exit 1
for f in wb1 off1; do
	t_is "$(python3 - "$T_DIR/b/$f" "$NCHUNK" "$CS" <<'PY'
import sys
p, n, cs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
want = b"".join(bytes([48 + i]) * cs for i in range(n)) + b"t" * 100
print(open(p, "rb").read() == want)
PY
)" True "$f: the server has every byte"
done
t_done
