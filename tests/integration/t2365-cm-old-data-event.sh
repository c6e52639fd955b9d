#!/usr/bin/env bash
# t2365-cm-old-data-event: the DATA event of one of our own creates or
# stores that comes after the answer to a later store of the same file
# is old news. cairnd used to drop the file's cached attributes for any
# DATA event whose DV was not the cached one, then fetch them again: a
# getattr a file written, and, when the mount went offline before that
# answer (fs disconnect right after `echo x > f`, t2181 on a loaded
# machine), the file gave EIO offline and after a restart. Here a relay
# holds A's event stream back while A writes, so every event comes after
# every answer; then A goes offline. A change made on client B (a DV
# newer than A's) must still reach A.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 240
umask 022
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

vol_setup old
B=$T_DIR/b
cairnd_mount "$B" "$T_DIR/cb" old "$T_DIR/tok" || exit 1
echo "events" >"$T_DIR/mode"
spoilproxy_start || exit 99
A=$T_DIR/a
cairnd_mount "$A" "$T_DIR/ca" old "$T_DIR/tok" || exit 1
stats() { getfattr -n cairn.stats --only-values "$A" 2>/dev/null; }
stat1() { stats | awk -v k="$1" '$1 == k {print $2}'; }

mkdir "$A/d"
echo theirs >"$A/d/theirs"
wait_for 10 test -e "$B/d/theirs"
t_is "$(cat "$B/d/theirs")" theirs "B sees A's file"
sleep 0.5 # the events of the above are applied

echo "events holdev" >"$T_DIR/mode"
ev0=$(stat1 events)
echo existing >"$A/d/old"       # create + store: two DATA events
printf 'one\n' >"$A/d/twice"    # written, then written again
printf 'two\n' >>"$A/d/twice"
mknod "$A/d/chr" c 5 1
echo more >>"$B/d/theirs"       # B's store: a DV newer than A's
sleep 0.3
t_is "$(( $(stat1 events) - ev0 ))" 0 "A: no event yet (held back)"
g0=$(stat1 getattr_fids)

echo "events" >"$T_DIR/mode"
wait_eval 10 '[ "$(( $(stat1 events) - ev0 ))" -ge 6 ]'
n=$(( $(stat1 events) - ev0 ))
t_ok "$([ "$n" -ge 6 ] && echo 0 || echo 1)" "A: the held events came ($n)"
# B's change is news: A fetches theirs's attributes again (a getattr,
# or with a listing when the kernel let go of the inode: 0 or 1), never
# those of its own files (3 before the fix).
wait_eval 10 '[ "$(stat -c %s "$A/d/theirs")" = 12 ]'
t_is "$(cat "$A/d/theirs")" "theirs
more" "A: B's append to theirs is seen (its event is news)"
g=$(( $(stat1 getattr_fids) - g0 ))
t_ok "$([ "$g" -le 1 ] && echo 0 || echo 1)" \
	"A: $g getattr FIDs (<= 1: theirs's at most, not those of A's own files)"

t_check "fs disconnect" "$FS" disconnect -m "$A"
t_is "$(stat -c '%s %a' "$A/d/old" 2>&1)" "9 644" "offline: old's size and mode"
t_is "$(cat "$A/d/old" 2>&1)" existing "offline: old's content"
t_is "$(cat "$A/d/twice" 2>&1 | tr '\n' ' ')" "one two " "offline: twice's content"
t_is "$(stat -c '%F %t:%T' "$A/d/chr" 2>&1)" "character special file 5:1" \
	"offline: the device made online"
t_is "$(ls "$A/d" | tr '\n' ' ')" "chr old theirs twice " "offline: the listing"
cairnd_umount "$A"
cairnd_mount "$A" "$T_DIR/ca" old "$T_DIR/tok" || exit 1
t_is "$(cat "$A/d/old" 2>&1)" existing "offline after a restart: old's content"
t_is "$(stat -c %s "$A/d/twice" 2>&1)" 8 "offline after a restart: twice's size"
"$FS" reconnect -m "$A" >/dev/null 2>&1
cairnd_umount "$A"
cairnd_umount "$B"
t_done
