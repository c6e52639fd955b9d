#!/usr/bin/env bash
# t2201-cm-read-roundtrips: the FUSE requests and server requests of the
# read workloads of issue #16, counted with cairnd's counters (load does
# not move them):
#   - a close of a file opened for reading sends no FLUSH (FOPEN_NOFLUSH);
#     a close after writing still does, and still stores the data;
#   - a cached small file opened again is served from the kernel's page
#     cache: one OPEN, no READ, nothing from the server;
#   - ls -l of a listed directory fetches no xattrs (security.selinux and
#     system.posix_acl_* are answered ENOTSUP without the server, so ls
#     stops asking after the first file), and a second
#     ls -l asks the server nothing.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 120

src=$T_DIR/src
mkdir -p "$src/d"
for i in $(seq 1 20); do head -c $((i * 1000)) /dev/urandom >"$src/d/f$i"; done
vold_start
vos init >/dev/null 2>&1
vos import rt "$src" >/dev/null || exit 99
make_token rt rw "$T_DIR/tok"
mnt=$T_DIR/mnt
cairnd_mount "$mnt" "$T_DIR/cache" rt "$T_DIR/tok" || exit 1
stats() { getfattr -n cairn.stats --only-values "$mnt" 2>/dev/null; }
# delta KEY BEFORE AFTER (the stats texts)
delta() { echo $(( $(echo "$3" | awk -v k="$1" '$1 == k {print $2}') - $(echo "$2" | awk -v k="$1" '$1 == k {print $2}') )); }

# ls -l: no xattr from the server, cold or warm.
s0=$(stats)
ls -l "$mnt/d" >/dev/null
s1=$(stats)
t_is "$(delta xattr_fetches "$s0" "$s1")" 0 "cold ls -l fetches no xattrs"
# security.selinux and system.posix_acl_* are ENOTSUP, which GNU ls
# remembers for the device: a few requests, not two a file.
t_ok "$([ "$(delta req_xattr "$s0" "$s1")" -le 6 ] && echo 0 || echo 1)" \
	"ls -l asks few xattrs ($(delta req_xattr "$s0" "$s1") requests, 2 of them the counters')"
ls -l "$mnt/d" >/dev/null
s2=$(stats)
t_is "$(( $(delta dir_fetches "$s1" "$s2") + $(delta getattr_requests "$s1" "$s2") + $(delta xattr_fetches "$s1" "$s2") ))" 0 \
	"warm ls -l asks the server nothing"

# Reads: no FLUSH on close.
s0=$(stats)
cat "$mnt"/d/f* | cmp - <(cat "$src"/d/f*)
t_ok $? "20 files read right"
# chunks_fetched counts stored chunks: the last store may finish after
# the reader was answered.
wait_for 5 sh -c "[ \$(getfattr -n cairn.stats --only-values '$mnt' 2>/dev/null | awk '\$1 == \"chunks_fetched\" {print \$2}') -ge $(( $(echo "$s0" | awk '$1 == "chunks_fetched" {print $2}') + 20 )) ]"
s1=$(stats)
t_is "$(delta req_open "$s0" "$s1")" 20 "20 opens"
t_is "$(delta req_flush "$s0" "$s1")" 0 "no FLUSH for read-only closes"
t_is "$(delta chunks_fetched "$s0" "$s1")" 20 "each file fetched once"
# Again: the page cache is kept (same DV), nothing reaches cairnd but the
# open, nothing the server.
cat "$mnt"/d/f* >/dev/null
s2=$(stats)
t_is "$(delta req_open "$s1" "$s2")" 20 "20 opens again"
t_is "$(delta req_read "$s1" "$s2")" 0 "no READ: the kernel kept the pages"
t_is "$(delta chunks_fetched "$s1" "$s2")" 0 "nothing fetched"
t_is "$(delta req_flush "$s1" "$s2")" 0 "no FLUSH"

# Writers still flush, and close stores.
s0=$(stats)
echo "new content" >"$mnt/d/f1"
s1=$(stats)
t_ok "$([ "$(delta req_flush "$s0" "$s1")" -ge 1 ] && echo 0 || echo 1)" "a write close sends FLUSH"
t_ok "$([ "$(delta stores "$s0" "$s1")" -ge 1 ] && echo 0 || echo 1)" "and stores"
cairnd_umount "$mnt"
rm -rf "$T_DIR/cache"
cairnd_mount "$mnt" "$T_DIR/cache" rt "$T_DIR/tok" || exit 1
t_is "$(cat "$mnt/d/f1")" "new content" "a fresh cache reads the stored data"
cairnd_umount "$mnt"
t_done
