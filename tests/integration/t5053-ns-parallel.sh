#!/usr/bin/env bash
# t5053-ns-parallel: three volumes of one cairnd used at once, so that
# FUSE workers of several volumes, their shared loop thread and the one
# control socket meet (a target for the TSan build): a writer per volume
# (files made, written, renamed, read back), readers walking the whole
# root, and fs getcacheparms/status/listvol in a loop meanwhile. Every
# file must hold what was written, in the right volume, and on its server.
. "$top_srcdir/tests/integration/lib.sh"
. "$top_srcdir/tests/integration/lib-ns.sh"
t_need_fuse
t_timeout 300

ns_vold
{
	# Its own [cairnd] section: 8 threads, the default fetch-timeout.
	printf '[cairnd]\ncache = %s\nmountpoint = %s\nserver = %s\nthreads = 8\n' \
		"$T_DIR/cache" "$mnt" "$VOLD_URL"
	for v in v1 v2 v3; do
		ns_create "$v"
		ns_vol "$v"
	done
} >"$conf"
ns_start

N=${N:-40}
writer() { # VOL
	local d=$mnt/$1/w i
	mkdir -p "$d" || return 1
	for i in $(seq 1 "$N"); do
		head -c $((i * 997)) /dev/zero | tr '\0' "${1#v}" >"$d/f$i.tmp" || return 1
		mv "$d/f$i.tmp" "$d/f$i" || return 1
	done
}
for v in v1 v2 v3; do writer "$v" >"$T_DIR/w-$v.log" 2>&1 & eval "w_$v=\$!"; done
( while kill -0 "$w_v1" 2>/dev/null || kill -0 "$w_v2" 2>/dev/null || kill -0 "$w_v3" 2>/dev/null; do
	ls -lR "$mnt" >/dev/null 2>&1
	"$FS" getcacheparms -m "$mnt" >/dev/null 2>&1
	"$FS" status -m "$mnt" >/dev/null 2>&1
	"$FS" listvol -m "$mnt" >/dev/null 2>&1
done ) &
bg=$!
rc=0
for v in v1 v2 v3; do eval "wait \$w_$v" || rc=1; done
wait "$bg"
t_ok "$rc" "three writers, one per volume, with walkers and fs alongside"
bad=0
for v in v1 v2 v3; do
	for i in $(seq 1 "$N"); do
		want=$(head -c $((i * 997)) /dev/zero | tr '\0' "${v#v}" | md5sum)
		got=$(md5sum <"$mnt/$v/w/f$i")
		[ "$want" = "$got" ] || bad=$((bad + 1))
	done
done
t_is "$bad" 0 "every file holds what was written"
t_is "$(ls "$mnt/v2/w" | grep -c tmp)" 0 "no temporary names left"
# On the server: a fresh single-volume mount of v3 with a cache of its own.
cairnd_mount "$T_DIR/chk" "$T_DIR/cache2" v3 "$T_DIR/v3.tok" || exit 1
t_is "$(ls "$T_DIR/chk/w" | wc -l)" "$N" "the server has v3's files"
t_is "$(md5sum <"$T_DIR/chk/w/f$N")" "$(head -c $((N * 997)) /dev/zero | tr '\0' 3 | md5sum)" \
	"with their content"
cairnd_umount "$T_DIR/chk"
fusermount3 -u "$mnt"
ns_wait_exit
t_check "cairnd exits after the unmount" sh -c "! kill -0 $pid 2>/dev/null"
t_done
