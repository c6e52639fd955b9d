#!/usr/bin/env bash
# t2320-cm-list-cold-warm: a big directory listed cold and warm through
# cairnd is the server's, names and attributes (issue #17):
#   - a cold listing of N entries (files of several modes, sizes and
#     times, subdirectories, symlinks) gives every name with its type,
#     mode, size, mtime, nlink and symlink target as on the source tree
#     the volume was imported from; the same again warm, and again on a
#     fresh cairnd over the cache it left (listing and attributes read
#     back from meta.tdb);
#   - no spare chunk files are made while cairnd is busy with FUSE
#     requests (they took most of cairnd's CPU during a cold listing on a
#     fresh mount), and they are made once it is idle;
#   - a change by another client (a chmod, a truncate, a create, an
#     unlink, a rename in the big directory) is seen after its event,
#     and the listing is then again the server's;
#   - a missing directory is ENOENT, a file listed as a directory ENOTDIR.
# CAIRN_LIST_N sets N (default 20,000: five pages).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
N=${CAIRN_LIST_N:-20000}
t_timeout $((180 + N / 100))

src=$T_DIR/src
python3 - "$src/big" "$N" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d)
modes = [0o644, 0o600, 0o755, 0o444, 0o640]
for i in range(n):
    p = os.path.join(d, "f%06d" % i)
    fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o600)
    if i % 7 == 0:
        os.write(fd, b"x" * (i % 300))
    os.close(fd)
    os.chmod(p, modes[i % len(modes)])
    os.utime(p, ns=(1500000000 * 10**9 + i * 1000003, 1600000000 * 10**9 + i * 999983))
for i in range(20):
    os.mkdir(os.path.join(d, "sub%02d" % i), 0o750)
    os.symlink("target-%d" % i, os.path.join(d, "ln%02d" % i))
PY
vos init >/dev/null 2>&1
vos import li "$src" >/dev/null || exit 99
vold_start
make_token li rw "$T_DIR/tok"
mnt=$T_DIR/a.mnt
cache=$T_DIR/cache-a
cairnd_mount "$mnt" "$cache" li "$T_DIR/tok" || exit 1
stats() { getfattr -n cairn.stats --only-values "$1" 2>/dev/null; }
delta() { echo $(( $(echo "$3" | awk -v k="$1" '$1 == k {print $2}') - $(echo "$2" | awk -v k="$1" '$1 == k {print $2}') )); }
spares() { find "$cache" -name '*.tmp' 2>/dev/null | wc -l; }
# listing DIR [ROOTMTIME]: every entry's name and attributes, sorted.
listing() {
	python3 - "$1" <<'PY'
import os, stat, sys
d = sys.argv[1]
for n in sorted(os.listdir(d)):
    st = os.lstat(os.path.join(d, n))
    t = stat.S_IFMT(st.st_mode)
    line = [repr(n), oct(st.st_mode), str(st.st_nlink)]
    if stat.S_ISREG(t):
        line += [str(st.st_size), str(st.st_mtime_ns)]
    if stat.S_ISLNK(t):
        line.append(os.readlink(os.path.join(d, n)))
    print(" ".join(line))
PY
}
listing "$src/big" >"$T_DIR/want"

# Busy: a FUSE request (the counters: the kernel caches no xattr) every
# 0.2 s for 3 s after the mount; no spares made meanwhile (some may have
# been made before the first: the mount can take a second under load).
stats "$mnt" >/dev/null
sp0=$(spares)
for _ in $(seq 1 30); do stats "$mnt" >/dev/null; sleep 0.1; done
sp1=$(spares)
# At most a batch or two (16 each) should a request come late under load;
# the old rule made them all, from one second after the mount.
t_ok "$([ $((sp1 - sp0)) -le 32 ] && echo 0 || echo 1)" \
	"no spare chunk files made while FUSE requests come ($sp0 before, $sp1 after)"

s0=$(stats "$mnt")
listing "$mnt/big" >"$T_DIR/cold"
s1=$(stats "$mnt")
t_check "cold listing of $((N + 40)) entries: names, types, modes, nlinks, sizes, mtimes, targets" \
	cmp "$T_DIR/cold" "$T_DIR/want"
# The other fetches are the 20 subdirectories' (prefetched), a page each.
t_is "$(( $(delta dir_pages "$s0" "$s1") - $(delta dir_fetches "$s0" "$s1") + 1 ))" \
	"$(( (N + 40 + 4095) / 4096 ))" "  fetched in $(( (N + 40 + 4095) / 4096 )) pages (dir_pages)"
listing "$mnt/big" >"$T_DIR/warm"
s2=$(stats "$mnt")
t_check "warm listing: the same" cmp "$T_DIR/warm" "$T_DIR/want"
t_is "$(delta dir_fetches "$s1" "$s2")" 0 "  without a listing fetch"
t_is "$(delta getattr_fids "$s1" "$s2")" 0 "  nor an attribute fetch"

# Idle: the spares come.
wait_eval 20 '[ "$(spares)" -gt 0 ]'
t_ok "$([ "$(spares)" -gt 0 ] && echo 0 || echo 1)" "spare chunk files made once cairnd is idle ($(spares))"

# A fresh cairnd over the same cache: listing and attributes from the
# cache file.
cairnd_umount "$mnt"
cairnd_mount "$mnt" "$cache" li "$T_DIR/tok" || exit 1
s0=$(stats "$mnt")
listing "$mnt/big" >"$T_DIR/again"
s1=$(stats "$mnt")
t_check "after a restart over the cache: the same" cmp "$T_DIR/again" "$T_DIR/want"
t_is "$(delta getattr_fids "$s0" "$s1")" 0 "  no attribute fetched"

# Another client changes the big directory: seen after its event.
mb=$T_DIR/b.mnt
cairnd_mount "$mb" "$T_DIR/cache-b" li "$T_DIR/tok" || exit 1
chmod 0600 "$mb/big/f000003" "$src/big/f000003"
truncate -s 12345 "$mb/big/f000010" "$src/big/f000010"
touch -d @1700000000 "$mb/big/f000010" "$src/big/f000010"
echo new >"$mb/big/zz-new"; echo new >"$src/big/zz-new"
touch -d @1700000001 "$mb/big/zz-new" "$src/big/zz-new"
rm "$mb/big/f000020" "$src/big/f000020"
mv "$mb/big/f000030" "$mb/big/f000030-moved"
mv "$src/big/f000030" "$src/big/f000030-moved"
listing "$src/big" >"$T_DIR/want2"
seen() { listing "$mnt/big" >"$T_DIR/after" 2>/dev/null && cmp -s "$T_DIR/after" "$T_DIR/want2"; }
wait_for 20 seen
t_check "another client's chmod, truncate, create, unlink and rename seen after their events" \
	cmp "$T_DIR/after" "$T_DIR/want2"
t_is "$(stat -c %a "$mnt/big/f000003")" 600 "  the chmod, by name"
t_is "$(stat -c %s "$mnt/big/f000010")" 12345 "  the truncate, by name"
t_is "$(cat "$mnt/big/zz-new")" new "  the new file's bytes"
t_is "$(stat -c %s "$mnt/big/f000020" 2>&1 | grep -c 'No such file')" 1 "  the unlinked name is ENOENT"
cairnd_umount "$mb"

# Errors.
t_is "$(ls "$mnt/big/nosuch" 2>&1 | grep -c 'No such file')" 1 "a missing directory: ENOENT"
t_is "$(ls "$mnt/big/f000001/" 2>&1 | grep -c 'Not a directory')" 1 "a file as a directory: ENOTDIR"
cairnd_umount "$mnt"
t_done
