#!/usr/bin/env bash
# t2357-cm-direct-writes: a file created write-only is written past the
# page cache (FOPEN_DIRECT_IO, doc/cm.md "Direct writes of new files"):
# each write(2) is one WRITE request, also one that starts inside a page
# (through the page cache the kernel ends a request at such a page: two).
# While the writer has it open, another open of the file reads what was
# written, also after the writer extends the file past the reader's last
# page and overwrites bytes the reader read (no stale page: that open is
# direct too); a private mmap of it reads the same, a shared one is
# ENODEV (cairnd(8) says so). Once the writer
# closed, opens use the page cache again (a shared mmap works). A file
# created read-write keeps the page cache (its shared mmap works while
# open). Both write modes; the server has every file as written (a
# second mount reads them).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 240
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

vol_setup dw
A=$T_DIR/a
B=$T_DIR/b
cairnd_mount "$A" "$T_DIR/ca" dw "$T_DIR/tok" || exit 1

stats() { getfattr --only-values -n cairn.stats "$A" 2>/dev/null; }
op() { awk -v k="fuse_op_$1" '$1 == k { v = $2 } END { print v + 0 }' "$2"; }

round() { # MODE
	local m=$1 w out
	mkdir -p "$A/$m"
	# Four writes of 10,000 bytes: three start inside a page.
	stats >"$T_DIR/$m.0"
	python3 - "$A/$m/four" <<'PY' || return 1
import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
for i in range(4):
    os.write(fd, bytes([65 + i]) * 10000)
os.close(fd)
PY
	stats >"$T_DIR/$m.1"
	w=$(( $(op write "$T_DIR/$m.1") - $(op write "$T_DIR/$m.0") ))
	t_is "$w" 4 "$m: four write(2)s of a new write-only file are four WRITE requests"
	t_is "$(python3 -c 'import sys; d = open(sys.argv[1], "rb").read(); print(len(d), d == b"".join(bytes([65 + i]) * 10000 for i in range(4)))' "$A/$m/four")" \
		"40000 True" "$m: and the file holds them"

	# A reader while the write-only writer has the file open.
	out=$(python3 - "$A/$m/live" <<'PY'
import mmap, os, sys
p = sys.argv[1]
want = bytearray()
w = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
def put(off, b):
    global want
    os.pwrite(w, b, off)
    if len(want) < off + len(b):
        want += b"\0" * (off + len(b) - len(want))
    want[off:off + len(b)] = b
put(0, b"a" * 3000)
r = os.open(p, os.O_RDONLY)
res = []
res.append(os.pread(r, 1 << 20, 0) == bytes(want))
# past the reader's last (partial) page, then over bytes it read
put(3000, b"b" * 5000)
put(100, b"c" * 100)
res.append(os.pread(r, 1 << 20, 0) == bytes(want))
mp = mmap.mmap(r, 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ)
res.append(mp[:] == bytes(want))
mp.close()
# a shared map of that open: ENODEV (documented in cairnd(8))
try:
    mmap.mmap(r, 0, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ).close()
    res.append(False)
except OSError as e:
    res.append(e.errno == 19)
put(8000, b"d" * 4096)
res.append(os.pread(r, 1 << 20, 0) == bytes(want))
os.close(w)
res.append(os.pread(r, 1 << 20, 0) == bytes(want))
os.close(r)
# closed: a new open reads it, and maps it shared (page cache again)
r = os.open(p, os.O_RDONLY)
res.append(os.pread(r, 1 << 20, 0) == bytes(want))
mp = mmap.mmap(r, 0, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ)
res.append(mp[:] == bytes(want))
mp.close()
os.close(r)
print(" ".join("ok" if x else "BAD" for x in res))
PY
)
	t_is "$out" "ok ok ok ok ok ok ok ok" \
		"$m: another open reads the writer's bytes as written (first, past its page, overwritten, private mmap; a shared one is ENODEV; more, after close, shared mmap after close)"

	# Created read-write: the page cache as before (shared mmap while open).
	out=$(python3 - "$A/$m/rw" <<'PY'
import mmap, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
os.write(fd, b"x" * 5000)
try:
    mp = mmap.mmap(fd, 0, flags=mmap.MAP_SHARED)
    mp[0:1] = b"y"
    mp.flush()
    mp.close()
    print(os.pread(fd, 2, 0).decode())
except OSError as e:
    print("mmap", e.errno)
os.close(fd)
PY
)
	t_is "$out" "yx" "$m: a file created read-write maps shared while open"
}

round sync
t_check "fs setpolicy --write-mode writeback" "$FS" setpolicy -m "$A" --write-mode writeback
round wb
t_check "fs sync" "$FS" sync -m "$A"

# The server has them: a second mount reads every file.
cairnd_mount "$B" "$T_DIR/cb" dw "$T_DIR/tok" || exit 1
for m in sync wb; do
	for f in four live rw; do
		t_check "$m/$f: the second mount reads what the first wrote" \
			cmp "$A/$m/$f" "$B/$m/$f"
	done
done

t_done
