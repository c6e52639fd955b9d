#!/usr/bin/env bash
# t2340-cm-crash-read: a file whose create and store a crash left in the
# replay log reads right at every moment after the restart (sync mode).
# cairnd is killed (kill -9) with a new file still open for writing, once
# after its close-time batch [create, store] was answered (sync mode
# drops the records lazily: both are resent at the restart, answered from
# the server's opid table) and once while the batch is still on its way.
# At the restart a relay (slowop.py) holds the resent create and store
# back, so reads fall before, between and after their answers: each read
# must give the written bytes and size (before the fix, the create's old
# answer, DV 1 and size 0, replaced the store's DV and size in the cache
# until the store's answer came: an empty file).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 300

src=$T_DIR/src
mkdir -p "$src/d"
echo hello >"$src/d/a.txt"
vold_start
vos init >/dev/null 2>&1
vos import wv "$src" >/dev/null || exit 99
make_token wv rw "$T_DIR/tok"
slowop_start || exit 99
A=$T_DIR/a
B=$T_DIR/b
want='survives the crash'
cairnd_mount "$A" "$T_DIR/ca" wv "$T_DIR/tok" || exit 1

# reads_until SECONDS FILE: read FILE every 0.1 s for that long; print
# how many reads were wrong (content or size), logging each.
reads_until() {
	local end=$(( $(date +%s%N) / 1000000 + $1 * 1000 )) bad=0 n=0 got sz
	while [ $(( $(date +%s%N) / 1000000 )) -lt $end ]; do
		n=$((n + 1))
		got=$(cat "$2" 2>&1)
		sz=$(stat -c %s "$2" 2>&1)
		if [ "$got" != "$want" ] || [ "$sz" != ${#want} ]; then
			bad=$((bad + 1))
			echo "# $(date +%T.%N | cut -c1-12) read $n: size '$sz': '$got'" >&2
		fi
		sleep 0.1
	done
	echo "$bad"
}

round() { # NAME HOLD_BEFORE_KILL [SUBDIR/]
	local name=$1 f=$A/${3:-}$1.txt wpid rpid
	: >"$T_DIR/proxy.req"
	echo "$2" >"$T_DIR/mode"
	( exec 3>"$f"; printf '%s' "$want" >&3; sleep 60 ) &
	wpid=$!
	# the cat's close stores the file (FUSE FLUSH)
	wait_for 5 sh -c "[ \"\$(cat '$f' 2>/dev/null)\" = '$want' ]" &
	rpid=$!
	if [ -n "$2" ]; then
		wait_for 5 grep -q store "$T_DIR/proxy.req"
		sleep 0.5
	else
		# its close returned: the batch was answered
		wait "$rpid"
		t_ok $? "$name: write visible before close"
	fi
	cairnd_kill9 "$A"
	kill "$wpid" 2>/dev/null
	wait "$wpid" 2>/dev/null
	wait "$rpid" 2>/dev/null
	# the resent create held 1 s, the resent store 3 s
	echo "create=1 store=3" >"$T_DIR/mode"
	echo "=== $name: restart" >>"$T_DIR/cairnd-a.log"
	cairnd_mount "$A" "$T_DIR/ca" wv "$T_DIR/tok" || exit 1
	t_is "$(reads_until 5 "$f")" 0 "$name: every read in the 5 s after the restart is right"
	sed -n "/=== $name: restart/,\$p" "$T_DIR/cairnd-a.log" |
		grep -q "resending create" || resent=no
	: >"$T_DIR/mode"
	cairnd_mount "$B" "$T_DIR/cb" wv "$T_DIR/tok" || exit 1
	wait_for 10 sh -c "[ \"\$(cat '$B/${3:-}$name.txt' 2>/dev/null)\" = '$want' ]"
	t_ok $? "$name: another client reads it from the server"
	cairnd_umount "$B"
	rm -rf "$T_DIR/cb"
}

# 1. the batch answered before the kill, its records left (lazy drop);
# again if a later transaction dropped them before the kill
for try in 1 2 3 4 5; do
	resent=yes
	round "answered$try" ""
	[ "$resent" = yes ] && break
done
t_is "$resent" yes "a kill left the answered create and store in the log"
# 2. killed while the batch is on its way (held 1.5 s by the relay)
resent=yes
round inflight "create=1.5"
t_is "$resent" yes "the create and store in flight were resent"
# 3. the same in a directory the kernel has no inode of at the restart
ls "$A/d" >/dev/null
resent=yes
round insub "create=1.5" d/
t_is "$resent" yes "the create and store in flight in d/ were resent"
cairnd_umount "$A"
