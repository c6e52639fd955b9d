#!/bin/bash
# t1198-vold-meta-full: cairn-vold guards tdb's 4 GiB limit of a live
# volume's meta.tdb (doc/vol-format.md, "tdb's 4 GiB limit on a live
# volume"). CAIRN_TEST_TDB_LIMIT stands for the 4 GiB: started with a
# limit the volume already passes (7/8 of it), cairn-vold says so in its
# log and refuses what adds records (create, mkdir, symlink, link, store,
# setxattr) with ENOSPC, while removals and attribute changes go through;
# nothing acknowledged before is lost, and restarted under the real limit
# it takes every change again.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 180
vold_start || exit 99
vos init >/dev/null 2>&1
vos create v >/dev/null 2>&1 || exit 99
make_token v rw "$T_DIR/tok"
mnt=$T_DIR/mnt
cairnd_mount "$mnt" "$T_DIR/cache" v "$T_DIR/tok" || exit 99
for i in 1 2 3; do echo "keep $i" >"$mnt/k$i"; done
mkdir "$mnt/dir" && echo x >"$mnt/dir/x"
cairnd_umount "$mnt"
vold_stop

vdir=$SRV_ROOT/volumes/v
sz=$(( $(stat -c %s "$vdir/meta.tdb") + $(stat -c %s "$vdir/meta.journal" 2>/dev/null || echo 0) ))
# 7/8 of the limit below what the volume holds: full when it opens.
CAIRN_TEST_TDB_LIMIT=$sz vold_restart || exit 99
cairnd_mount "$mnt" "$T_DIR/cache" v "$T_DIR/tok" || exit 99
# The volume opens at the mount's first request, and is judged then.
t_check "cairn-vold says the volume is near tdb's limit" \
	grep -q "volume 'v': meta.tdb and its journal hold .* refusing creates" "$T_DIR/vold.log"
out=$(touch "$mnt/new" 2>&1); rc=$?
t_ok "$([ $rc != 0 ] && echo 0 || echo 1)" "a create is refused ($out)"
t_check "with ENOSPC" sh -c "echo '$out' | grep -q 'No space left on device'"
# (A create reaches the server at close: touch's close fails. The server
# never has the file: the listing after the restart below shows it.)
out=$(mkdir "$mnt/newdir" 2>&1)
t_check "mkdir too ($out)" sh -c "echo '$out' | grep -q 'No space left on device'"
out=$(ln -s k1 "$mnt/sl" 2>&1)
t_check "symlink too ($out)" sh -c "echo '$out' | grep -q 'No space left on device'"
t_check "an unlink goes through" rm "$mnt/k3"
t_check "a chmod goes through" chmod 600 "$mnt/k2"
t_check "an emptying truncate goes through" truncate -s 0 "$mnt/dir/x"
t_is "$(cat "$mnt/k1")" "keep 1" "what was there reads right"
cairnd_umount "$mnt"
vold_stop

vold_restart || exit 99
cairnd_mount "$mnt" "$T_DIR/cache2" v "$T_DIR/tok" || exit 99
t_is "$(cd "$mnt" && ls | tr '\n' ' ')" "dir k1 k2 " "under the real limit: the tree is what was acknowledged"
t_is "$(stat -c %a "$mnt/k2")" 600 "the chmod is there"
t_is "$(stat -c %s "$mnt/dir/x")" 0 "the truncate is there"
t_check "a create goes through again" sh -c "echo new >'$mnt/new'"
t_is "$(cat "$mnt/new")" new "and reads back"
t_check "cairn-vold said nothing lost: no checkpoint failure" sh -c "! grep -q 'checkpoint failed' '$T_DIR/vold.log'"
cairnd_umount "$mnt"
t_done
