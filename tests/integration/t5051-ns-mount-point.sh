#!/usr/bin/env bash
# t5051-ns-mount-point: mount points crossed by a cairnd that serves
# several volumes. In volume alpha (server A): a mount point to beta (A,
# by bare name), to gamma of server B (by "b:gamma", the alias of a
# [server b] section), to a volume of A the config does not list, and to
# "gamma" by bare name (looked for on A: not served). find, ls, cat and
# writes go through the served ones as if they were the target volume's
# directory (same inode as /MOUNTROOT/DIR); the others read as empty
# directories that give EACCES; a rename through a mount point into
# another volume is EXDEV. Skips without fs mkmount (h-mnt).
. "$top_srcdir/tests/integration/lib.sh"
. "$top_srcdir/tests/integration/lib-ns.sh"
t_need_fuse
t_timeout 180
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }
"$FS" help mkmount >/dev/null 2>&1 || { echo "# SKIP: no fs mkmount"; exit 77; }

mk_tree() { # DIR TAG
	mkdir -p "$1/sub"
	echo "$2 hello" >"$1/hello.txt"
	echo "$2 deep" >"$1/sub/deep.txt"
}
mk_tree "$T_DIR/src-alpha" alpha
mk_tree "$T_DIR/src-beta" beta
mk_tree "$T_DIR/src-gamma" gamma

ns_vold A
ns_import alpha "$T_DIR/src-alpha"
ns_import beta "$T_DIR/src-beta"
vos create hidden >/dev/null || exit 99
ns_vold B
ns_import gamma "$T_DIR/src-gamma"

{
	ns_conf_head "server = $URL_A"
	printf '[server b]\nurl = %s\n' "$URL_B"
	ns_vol alpha
	ns_vol beta
	ns_vol proj gamma b
} >"$conf"
ns_start

err() { python3 -c 'import os,sys
try:
    getattr(os, sys.argv[1])(*sys.argv[2:]); print("OK")
except OSError as e: import errno; print(errno.errorcode[e.errno])' "$@"; }

t_check "fs mkmount alpha/to-beta beta" "$FS" mkmount "$mnt/alpha/to-beta" beta
t_check "fs mkmount alpha/to-proj b:gamma" "$FS" mkmount "$mnt/alpha/to-proj" b:gamma
t_check "fs mkmount alpha/to-hidden hidden" "$FS" mkmount "$mnt/alpha/to-hidden" hidden
t_check "fs mkmount alpha/to-gamma gamma" "$FS" mkmount "$mnt/alpha/to-gamma" gamma
t_is "$("$FS" lsmount "$mnt/alpha/to-proj")" "'$mnt/alpha/to-proj' is a mount point for volume 'b:gamma'" \
	"fs lsmount through the namespace"

t_is "$(cat "$mnt/alpha/to-beta/hello.txt" 2>&1)" "beta hello" "crossed to beta (same server, bare name)"
t_is "$(cat "$mnt/alpha/to-proj/sub/deep.txt" 2>&1)" "gamma deep" "crossed to gamma of server b (alias)"
t_is "$(stat -c %i "$mnt/alpha/to-beta")" "$(stat -c %i "$mnt/beta")" "the crossing is beta's root (same inode)"
t_is "$(err listdir "$mnt/alpha/to-hidden")" EACCES "an unlisted volume: EACCES"
t_is "$(err listdir "$mnt/alpha/to-gamma")" EACCES "gamma by bare name is looked for on server A: EACCES"
t_is "$(find "$mnt/alpha" -name '*.txt' 2>/dev/null | sort | tr '\n' ' ')" \
	"$mnt/alpha/hello.txt $mnt/alpha/sub/deep.txt $mnt/alpha/to-beta/hello.txt $mnt/alpha/to-beta/sub/deep.txt $mnt/alpha/to-proj/hello.txt $mnt/alpha/to-proj/sub/deep.txt " \
	"find crosses the served mount points"
t_is "$(find "$mnt/alpha" -name '*.txt' 2>&1 >/dev/null | grep -c 'Permission denied')" 2 \
	"and gets one EACCES for each of the others"

echo "via the mount point" >"$mnt/alpha/to-proj/via.txt"
t_is "$(cat "$mnt/proj/via.txt" 2>&1)" "via the mount point" "a write through the mount point lands in proj"
t_is "$(err rename "$mnt/alpha/hello.txt" "$mnt/alpha/to-beta/moved.txt")" EXDEV \
	"rename into a crossed volume: EXDEV"
t_is "$(err rename "$mnt/alpha/to-beta/hello.txt" "$mnt/alpha/to-beta/renamed.txt")" OK \
	"rename inside the crossed volume works"
t_is "$(cat "$mnt/beta/renamed.txt" 2>&1)" "beta hello" "and shows in beta's own directory"
# The kernel holds an entry of each (looked up above): fs rmmount answers
# once cairnd told the kernel to drop it (cm_ctl_kernel_sync()), so the
# name is gone when the command returns, not when the server's event
# comes (this check failed 2 runs in 20 under load before).
t_check "fs rmmount alpha/to-hidden" "$FS" rmmount "$mnt/alpha/to-hidden"
t_check "gone" sh -c "! test -e '$mnt/alpha/to-hidden'"
# A crossed one: the kernel's entry is beta's root; it goes, beta stays.
t_is "$(stat -c %i "$mnt/alpha/to-beta" 2>&1)" "$(stat -c %i "$mnt/beta")" "to-beta looked up (beta's root)"
t_check "fs rmmount alpha/to-beta" "$FS" rmmount "$mnt/alpha/to-beta"
t_check "to-beta gone at once" sh -c "! test -e '$mnt/alpha/to-beta'"
t_is "$(cat "$mnt/beta/renamed.txt" 2>&1)" "beta hello" "beta itself is untouched"
t_is "$(ls "$mnt/alpha" | tr '\n' ' ')" "hello.txt sub to-gamma to-proj " "alpha lists what is left"
t_check "fs mkmount alpha/to-beta again" "$FS" mkmount "$mnt/alpha/to-beta" beta
t_is "$(cat "$mnt/alpha/to-beta/renamed.txt" 2>&1)" "beta hello" "crossed again at once"

fusermount3 -u "$mnt"
ns_wait_exit
t_check "cairnd exits after the unmount" sh -c "! kill -0 $pid 2>/dev/null"
t_done
