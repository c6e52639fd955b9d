#!/usr/bin/env bash
# t2321-cm-list-pending: the attributes a listing brings are kept pending
# in memory and written to the cache file once listings stop coming
# (doc/cm.md "Pending attributes"); they are the cached ones meanwhile:
#   - a stop right after a cold listing (before the write) keeps them: a
#     fresh cairnd over the cache lists and stats without fetching;
#   - kill -9 right after a cold listing loses them, and only that: the
#     next cairnd fetches again and lists the server's names and
#     attributes;
#   - another client's chmod, seen by its event while the listing's
#     attributes are pending, is what the cache keeps (the older pending
#     value never lands over it), after the write and after a restart;
#   - fs flushall forgets pending attributes too (fetched again after).
# CAIRN_LIST_N sets N (default 9,000: three pages).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
N=${CAIRN_LIST_N:-9000}
t_timeout $((180 + N / 100))

src=$T_DIR/src
python3 - "$src/big" "$N" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d)
for i in range(n):
    p = os.path.join(d, "f%06d" % i)
    fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o644)
    if i % 5 == 0:
        os.write(fd, b"y" * (i % 97))
    os.close(fd)
    os.utime(p, ns=(1500000000 * 10**9, 1600000000 * 10**9 + i * 7919))
PY
vos init >/dev/null 2>&1
vos import lp "$src" >/dev/null || exit 99
vold_start
make_token lp rw "$T_DIR/tok"
mnt=$T_DIR/a.mnt
cache=$T_DIR/cache-a
stats() { getfattr -n cairn.stats --only-values "$mnt" 2>/dev/null; }
delta() { echo $(( $(echo "$3" | awk -v k="$1" '$1 == k {print $2}') - $(echo "$2" | awk -v k="$1" '$1 == k {print $2}') )); }
listing() {
	python3 - "$1" <<'PY'
import os, stat, sys
d = sys.argv[1]
for n in sorted(os.listdir(d)):
    st = os.lstat(os.path.join(d, n))
    print(repr(n), oct(st.st_mode), st.st_nlink, st.st_size, st.st_mtime_ns)
PY
}
listing "$src/big" >"$T_DIR/want"

# 1. A clean stop right after the cold listing.
cairnd_mount "$mnt" "$cache" lp "$T_DIR/tok" || exit 1
listing "$mnt/big" >"$T_DIR/cold"
cairnd_umount "$mnt"
t_check "cold listing: the server's names and attributes" cmp "$T_DIR/cold" "$T_DIR/want"
cairnd_mount "$mnt" "$cache" lp "$T_DIR/tok" || exit 1
s0=$(stats)
listing "$mnt/big" >"$T_DIR/again"
s1=$(stats)
t_check "stopped right after it, then a fresh cairnd: the same" cmp "$T_DIR/again" "$T_DIR/want"
t_is "$(delta dir_fetches "$s0" "$s1") $(delta getattr_fids "$s0" "$s1")" "0 0" \
	"  no listing and no attribute fetched (the pending ones were written at the stop)"
cairnd_umount "$mnt"

# 2. kill -9 right after a cold listing.
rm -rf "$cache"
cairnd_mount "$mnt" "$cache" lp "$T_DIR/tok" || exit 1
listing "$mnt/big" >"$T_DIR/cold2"
cairnd_kill9 "$mnt"
t_check "a second cold listing: the same" cmp "$T_DIR/cold2" "$T_DIR/want"
cairnd_mount "$mnt" "$cache" lp "$T_DIR/tok" || exit 1
listing "$mnt/big" >"$T_DIR/after9"
t_check "kill -9 right after it, then a fresh cairnd: the server's names and attributes" \
	cmp "$T_DIR/after9" "$T_DIR/want"
listing "$mnt/big" >"$T_DIR/after9b"
t_check "  and again, warm" cmp "$T_DIR/after9b" "$T_DIR/want"
cairnd_umount "$mnt"

# 3. Another client's chmod while the attributes are pending.
rm -rf "$cache"
mb=$T_DIR/b.mnt
cairnd_mount "$mb" "$T_DIR/cache-b" lp "$T_DIR/tok" || exit 1
stat "$mb/big/f000007" >/dev/null
cairnd_mount "$mnt" "$cache" lp "$T_DIR/tok" || exit 1
listing "$mnt/big" >/dev/null
chmod 0600 "$mb/big/f000007"
chmod 0600 "$src/big/f000007"
listing "$src/big" >"$T_DIR/want3"
wait_eval 20 '[ "$(stat -c %a "$mnt/big/f000007")" = 600 ]'
t_is "$(stat -c %a "$mnt/big/f000007")" 600 "another client's chmod seen while the listing's attributes were pending"
sleep 2 # past the write of the pending attributes
t_is "$(stat -c %a "$mnt/big/f000007")" 600 "  still after they were written"
cairnd_umount "$mnt"
cairnd_mount "$mnt" "$cache" lp "$T_DIR/tok" || exit 1
t_is "$(stat -c %a "$mnt/big/f000007")" 600 "  and after a restart over the cache"
listing "$mnt/big" >"$T_DIR/got3"
t_check "  the whole listing is the server's" cmp "$T_DIR/got3" "$T_DIR/want3"
cairnd_umount "$mb"

# 4. fs flushall with pending attributes.
cairnd_umount "$mnt"
rm -rf "$cache"
cairnd_mount "$mnt" "$cache" lp "$T_DIR/tok" || exit 1
listing "$mnt/big" >/dev/null
"$FS" flushall -m "$mnt" >/dev/null 2>&1
t_is "$?" 0 "fs flushall right after a cold listing"
s0=$(stats)
listing "$mnt/big" >"$T_DIR/got4"
s1=$(stats)
t_check "  the listing after it is the server's" cmp "$T_DIR/got4" "$T_DIR/want3"
t_ok "$([ $(( $(delta dir_fetches "$s0" "$s1") + $(delta getattr_fids "$s0" "$s1") )) -gt 0 ] && echo 0 || echo 1)" \
	"  fetched again (the pending attributes were forgotten too)"
cairnd_umount "$mnt"
t_done
