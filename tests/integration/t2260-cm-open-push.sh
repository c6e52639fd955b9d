#!/usr/bin/env bash
# t2260-cm-open-push: the first open of a small cached file puts its
# bytes in the kernel's page cache (FUSE_NOTIFY_STORE) before the open is
# answered, so a warm cat of small files costs one OPEN per file and no
# READ (issue #16, "cat of the small files, warm"). Counted with cairnd's
# counters: a remount with the same cache gives fresh kernel inodes and
# warm chunks, as a page-cache drop does. Also: what is read is the
# server's bytes (sizes that end inside a page, an empty file); a file
# above 128 KiB is read as before; a hot reopen stores nothing again; a
# change made on another client is seen (the pushed pages do not stay).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 180

src=$T_DIR/src
mkdir -p "$src/d"
for i in $(seq -w 1 30); do head -c $((10#$i * 3001)) /dev/urandom >"$src/d/f$i"; done
: >"$src/d/empty"
head -c $((200 * 1024)) /dev/urandom >"$src/big"
vold_start
vos init >/dev/null 2>&1
vos import op "$src" >/dev/null || exit 99
make_token op rw "$T_DIR/tok"
mnt=$T_DIR/mnt
cache=$T_DIR/cache
cairnd_mount "$mnt" "$cache" op "$T_DIR/tok" || exit 1
stats() { getfattr -n cairn.stats --only-values "$mnt" 2>/dev/null; }
# delta KEY BEFORE AFTER (the stats texts)
delta() { echo $(( $(echo "$3" | awk -v k="$1" '$1 == k {print $2}') - $(echo "$2" | awk -v k="$1" '$1 == k {print $2}') )); }
small() { (cd "$1/d" && cat f* empty); }

t_check "cold: 30 small files read right" cmp <(small "$mnt") <(small "$src")
t_check "cold: the big file reads right" cmp "$mnt/big" "$src/big"
# Every chunk stored before the remount.
wait_for 10 sh -c "[ \$(getfattr -n cairn.stats --only-values '$mnt' 2>/dev/null | awk '\$1 == \"chunks_fetched\" {print \$2}') -ge 31 ]"
cairnd_umount "$mnt"
cairnd_mount "$mnt" "$cache" op "$T_DIR/tok" || exit 1

# Warm, fresh kernel inodes: one OPEN per file, no READ.
ls -l "$mnt/d" >/dev/null
s0=$(stats)
t_check "warm: 30 small files read right" cmp <(small "$mnt") <(small "$src")
s1=$(stats)
t_is "$(delta req_open "$s0" "$s1")" 31 "31 opens"
t_is "$(delta req_read "$s0" "$s1")" 0 "no READ: the bytes came with the open"
t_is "$(delta open_pushes "$s0" "$s1")" 30 "30 files stored at open (not the empty one)"
t_is "$(delta chunks_fetched "$s0" "$s1")" 0 "nothing fetched"

# Byte by byte through mmap too (the pages the open stored).
t_check "mmap reads the same bytes" python3 -c '
import mmap, sys
for i in range(1, 31):
    p = "d/f%02d" % i
    a = open(sys.argv[1] + "/" + p, "rb"); b = open(sys.argv[2] + "/" + p, "rb").read()
    m = mmap.mmap(a.fileno(), 0, prot=mmap.PROT_READ)
    if m[:] != b: sys.exit("differs: " + p)' "$mnt" "$src"

# Hot: kept pages, nothing stored again, no READ.
s0=$(stats)
small "$mnt" >/dev/null
s1=$(stats)
t_is "$(delta open_pushes "$s0" "$s1")" 0 "a hot reopen stores nothing again"
t_is "$(delta req_read "$s0" "$s1")" 0 "and reads nothing"

# Above 128 KiB: read as before.
s0=$(stats)
t_check "warm: the big file reads right" cmp "$mnt/big" "$src/big"
s1=$(stats)
t_is "$(delta open_pushes "$s0" "$s1")" 0 "a 200 KiB file is not stored at open"
t_ok "$([ "$(delta req_read "$s0" "$s1")" -ge 1 ] && echo 0 || echo 1)" "it is READ"

# Another client changes a small file: this client sees the change.
mnt2=$T_DIR/mnt2
cairnd_mount "$mnt2" "$T_DIR/cache2" op "$T_DIR/tok" || exit 1
printf 'changed elsewhere\n' >"$mnt2/d/f07"
t_check "the change reaches this client" \
	wait_for 10 sh -c "[ \"\$(cat '$mnt/d/f07')\" = 'changed elsewhere' ]"
cairnd_umount "$mnt2"

# A file opened for writing is not stored at open; its reads see its writes.
s0=$(stats)
exec 5<>"$mnt/d/f09"
printf 'XYZ' >&5
exec 5>&-
s1=$(stats)
t_is "$(delta open_pushes "$s0" "$s1")" 0 "a writer's open stores nothing"
t_is "$(head -c 3 "$mnt/d/f09")" XYZ "its write is read back"
t_check "the rest of f09 is the server's" cmp <(tail -c +4 "$mnt/d/f09") <(tail -c +4 "$src/d/f09")

# cairn.stats: a reader that sizes its buffer by a size query still gets
# the text after the counters grew (more counters made it cross
# getfattr's 1 KiB rounding, and a growing digit gave ERANGE).
t_check "cairn.stats read with the size a query gave, after the text grew" python3 -c '
import ctypes, errno, os, sys
libc = ctypes.CDLL(None, use_errno=True)
p = sys.argv[1].encode()
n = libc.getxattr(p, b"cairn.stats", None, 0)
for _ in range(1000):
    try:
        os.getxattr(sys.argv[1], "user.none")
    except OSError:
        pass
buf = ctypes.create_string_buffer(n)
r = libc.getxattr(p, b"cairn.stats", buf, n)
if r <= 0:
    sys.exit("getxattr: " + os.strerror(ctypes.get_errno()))' "$mnt"
cairnd_umount "$mnt"
t_done
