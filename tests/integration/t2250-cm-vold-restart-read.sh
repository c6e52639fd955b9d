#!/usr/bin/env bash
# t2250-cm-vold-restart-read: a restart of cairn-vold (systemctl restart:
# stop, start, a few hundred ms without a server) while a cold read
# starts. The event stream finds the server gone first (its reconnection
# is refused), then the read's first try is refused too: it must be
# retried and succeed once the server is back, not fail at once with EIO
# (the fast failure is for a server known away for longer than the retry
# window: t2200-cm-offline-miss-fast.sh). Several rounds, each with a
# file not read before.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 180

src=$T_DIR/src
mkdir -p "$src"
for i in 1 2 3; do head -c $((300 * 1024)) /dev/urandom >"$src/f$i.bin"; done
vold_start || exit 99
vos init >/dev/null 2>&1
vos import lab "$src" >/dev/null || exit 99
make_token lab ro "$T_DIR/tok"
mnt=$T_DIR/mnt
cairnd_mount "$mnt" "$T_DIR/cache" lab "$T_DIR/tok" || exit 99
ls -l "$mnt" >/dev/null
online() { getfattr -n cairn.stats --only-values "$mnt" 2>/dev/null | awk '$1 == "online" {print $2}'; }

for i in 1 2 3; do
	vold_stop
	# The event stream's reconnection (after 250 ms) is refused.
	wait_for 10 sh -c "[ \"\$(getfattr -n cairn.stats --only-values '$mnt' 2>/dev/null | awk '\$1 == \"online\" {print \$2}')\" = 0 ]"
	t_ok $? "round $i: the server is marked away"
	# The cold read starts now; the server comes back meanwhile.
	cmp "$src/f$i.bin" "$mnt/f$i.bin" >"$T_DIR/cmp$i.out" 2>&1 &
	reader=$!
	sleep 0.1
	vold_restart || exit 99
	wait "$reader"
	t_is "$?" 0 "round $i: the cold read during the restart succeeds ($(cat "$T_DIR/cmp$i.out"))"
	t_check "round $i: online again" wait_for 10 sh -c "[ \"\$(getfattr -n cairn.stats --only-values '$mnt' 2>/dev/null | awk '\$1 == \"online\" {print \$2}')\" = 1 ]"
done
cairnd_umount "$mnt"
t_done
