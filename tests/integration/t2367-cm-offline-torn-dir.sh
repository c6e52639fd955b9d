#!/usr/bin/env bash
# t2367-cm-offline-torn-dir: a kill between the two writes of an offline
# edit of a directory. Such an edit stores the directory's listing at a
# new local DV, then its attributes at that DV (cm/mcache.c,
# mcache_offline_dir()); a kill between the two left a listing whose DV
# was not its directory's, so cairnd took it for stale and wanted the
# server's, and disconnected that is EIO: the directory could not be
# listed, created in or looked up offline, after every restart, until
# reconnected (t2330's offline rounds on a slow CI machine). gdb stops
# cairnd right after the listing's write and kills it there:
#   - d1's first offline edit (nothing logged names d1) and d2's second
#     (an acknowledged create of d2 is logged) are cut short;
#   - after a disconnected restart both list, with every acknowledged
#     name (the cut edit's name either way: it was never acknowledged),
#     take creates, and the repair is counted (dir_torn);
#   - reconnected, the replay reaches the server and the listings equal
#     a fresh mount's; cairn-fsck finds the cache clean.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 240
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }
command -v gdb >/dev/null || { echo "# SKIP: no gdb"; exit 77; }

vol_setup torn
mnt=$T_DIR/mnt
cache=$T_DIR/cache
cairnd_mount "$mnt" "$cache" torn "$T_DIR/tok" || exit 1
for d in d1 d2 d3 d4; do
	mkdir "$mnt/$d"
	for i in 1 2 3; do echo "$d $i" >"$mnt/$d/f$i"; done
done
ls "$mnt/d1" "$mnt/d2" >/dev/null
# Connected edits of the root are kept in memory (a listing is written
# at most once a second): the disconnect writes them, else a kill now
# would leave the root's stored listing older than its attributes.
"$FS" disconnect -m "$mnt" >/dev/null || { t_ok 1 "fs disconnect"; t_done; }
echo acked >"$mnt/d2/o1"
jget() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get(sys.argv[1], ""))' "$1"; }
names() { ls -f "$1" 2>&1 | grep -v '^\.\.\?$' | sort | tr '\n' ' '; }
stat1() {
	getfattr -n cairn.stats --only-values "$mnt" 2>/dev/null |
		awk -v k="$1" '$1 == k {print $2}'
}

# cut DIR NAME: create DIR/NAME with cairnd stopped by gdb right after
# the listing's write (vc_dir_edit() returned), and killed there.
cut() {
	local pid gp
	pid=$(cairnd_pid "$mnt")
	: >"$T_DIR/gdb.$2"
	gdb -q -p "$pid" -batch -ex "break vc_dir_edit" -ex continue \
		-ex finish -ex kill >"$T_DIR/gdb.$2" 2>&1 &
	gp=$!
	# Attached, and every thread let go again (gdb's output to a file
	# is buffered: no "Continuing." to wait for).
	running() {
		grep -q "^TracerPid:[[:space:]]*[1-9]" "/proc/$pid/status" &&
			! grep -qs "^State:[[:space:]]*t" /proc/"$pid"/task/*/status
	}
	wait_for 30 running || { kill "$gp" 2>/dev/null; return 1; }
	sleep 0.2
	(: >"$mnt/$1/$2") 2>/dev/null &
	# The breakpoint is never hit when the create fails before it.
	if ! wait_for 30 sh -c "! kill -0 $gp 2>/dev/null"; then
		kill "$gp" 2>/dev/null
		wait "$gp" 2>/dev/null
		return 1
	fi
	wait "$gp"
	wait_for 10 sh -c "! kill -0 $pid 2>/dev/null"
	cairnd_kill9 "$mnt"
	cairnd_mount "$mnt" "$cache" torn "$T_DIR/tok" || return 1
	# Killed in mcache_offline_dir(), vc_dir_edit() done.
	grep -q "Value returned is \$1 = 0" "$T_DIR/gdb.$2" &&
		grep -q "in mcache_offline_dir" "$T_DIR/gdb.$2"
}

cut d1 new
t_ok $? "d1: cairnd killed between the listing's and the attributes' writes of an offline create"
t_is "$("$FS" status --json -m "$mnt" | jget mode)" disconnected "it starts disconnected"
got=$(names "$mnt/d1")
case $got in
"f1 f2 f3 " | "f1 f2 f3 new ") t_ok 0 "d1 lists offline after the restart ($got)" ;;
*) t_is "$got" "f1 f2 f3 [new]" "d1 lists offline after the restart" ;;
esac
t_is "$(cat "$mnt/d1/f2" 2>&1)" "d1 2" "a file of d1 reads"
echo after >"$mnt/d1/n2" 2>/dev/null
t_is "$(cat "$mnt/d1/n2" 2>&1)" "after" "d1 takes an offline create"

cut d2 o2
t_ok $? "d2: killed the same way in its second offline create"
got=$(names "$mnt/d2")
case $got in
"f1 f2 f3 o1 " | "f1 f2 f3 o1 o2 ") t_ok 0 "d2 lists offline with the acknowledged create ($got)" ;;
*) t_is "$got" "f1 f2 f3 o1 [o2]" "d2 lists offline with the acknowledged create" ;;
esac
t_is "$(cat "$mnt/d2/o1" 2>&1)" "acked" "the acknowledged file reads"
n=$(stat1 dir_torn)
t_ok $(( ${n:-0} >= 1 ? 0 : 1 )) "the repair is counted (dir_torn ${n:-none})"
grep -q "a listing stored by an edit a kill cut short" "$T_DIR/cairnd-mnt.log"
t_ok $? "and logged"

t_is "$(names "$mnt")" "d1 d2 d3 d4 " "the root lists all four (its listing written at the disconnect)"

# Back: the replay reaches the server; the listings are the server's.
"$FS" reconnect -m "$mnt" >/dev/null 2>&1
drained() {
	local st
	st=$("$FS" status --json -m "$mnt" 2>/dev/null)
	[ "$(echo "$st" | jget mode)" = connected ] &&
		[ "$(echo "$st" | jget replay_pending)" = 0 ]
}
wait_for 60 drained
t_ok $? "reconnected and the replay log drained"
fresh=$T_DIR/fresh
cairnd_mount "$fresh" "$T_DIR/cache-fresh" torn "$T_DIR/tok" || exit 1
for d in d1 d2; do
	srv=$(names "$fresh/$d")
	wait_for 10 sh -c "[ \"\$(ls -f '$mnt/$d' | grep -v '^\.\.\?\$' | sort | tr '\n' ' ')\" = '$srv' ]"
	t_is "$(names "$mnt/$d")" "$srv" "$d: after the replay the listing is the server's"
done
t_is "$(cat "$fresh/d2/o1" 2>&1) $(cat "$fresh/d1/n2" 2>&1)" "acked after" \
	"the acknowledged offline creates are on the server"
cairnd_umount "$fresh"

# Connected edits of d3 kept in memory, kill -9 while connected, and a
# start with the server down: d3's stored listing is older than its
# attributes. Disconnected that is all there is: served as it is (not
# EIO: the names the file has, not those of the last edits), and the
# server's once connected.
echo a >"$mnt/d3/a"
sleep 1.2
echo b >"$mnt/d3/b"
echo c >"$mnt/d3/c"
t_is "$(names "$mnt/d3")" "a b c f1 f2 f3 " "d3 online: six names"
cairnd_kill9 "$mnt"
vold_stop
cairnd_mount "$mnt" "$cache" torn "$T_DIR/tok" --fetch-timeout 2s || exit 1
# Connected with the server down a listing fetch fails (EIO); once
# disconnected the stored listing is all there is.
"$FS" disconnect -m "$mnt" >/dev/null
mode() { [ "$("$FS" status --json -m "$mnt" 2>/dev/null | jget mode)" = "$1" ]; }
wait_for 30 mode disconnected
t_ok $? "fs disconnect with the server down"
got=$(names "$mnt/d3")
case $got in
"a f1 f2 f3 " | "a b f1 f2 f3 " | "a b c f1 f2 f3 ") t_ok 0 "started with the server down after a kill: d3 lists its stored names ($got)" ;;
*) t_is "$got" "a [b c] f1 f2 f3" "started with the server down after a kill: d3 lists its stored names" ;;
esac
t_is "$(cat "$mnt/d3/a" 2>&1)" "a" "and its file reads"
n=$(stat1 dir_stale_offline)
t_ok $(( ${n:-0} >= 1 ? 0 : 1 )) "an older stored listing served disconnected is counted (dir_stale_offline ${n:-none})"
vold_restart || exit 99
"$FS" reconnect -m "$mnt" >/dev/null 2>&1
wait_for 60 drained
cairnd_mount "$fresh" "$T_DIR/cache-fresh2" torn "$T_DIR/tok" || exit 1
t_is "$(cat "$fresh/d3/b" "$fresh/d3/c" 2>&1 | tr '\n' ' ')" "b c " "the files of d3 made before the kill are on the server"
wait_for 10 sh -c "[ \"\$(ls -f '$mnt/d3' | grep -v '^\.\.\?\$' | sort | tr '\n' ' ')\" = 'a b c f1 f2 f3 ' ]"
t_is "$(names "$mnt/d3")" "a b c f1 f2 f3 " "connected again: d3 is the server's"
cairnd_umount "$fresh"
cairnd_umount "$mnt"
"$FSCK" --check "$cache" >"$T_DIR/fsck.out" 2>&1
t_is "$?" 0 "cairn-fsck finds the cache clean"
t_done
