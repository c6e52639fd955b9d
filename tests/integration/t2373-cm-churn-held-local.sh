#!/usr/bin/env bash
# t2373-cm-churn-held-local: a directory handle open on A (a late
# listing held, mfetch_hold_late(): ls -l's LOOKUPs take FIDs from it)
# while B churns the directory, then A's own rm and mv there. The held
# listing was taken before them: a LOOKUP after them must not be
# answered from it (review11 M1). Before the fix, once the sync mv was
# acknowledged (mcache_ahead() false again), `stat old` found the moved
# object under its old name, and `mv log log.1; echo x > log` truncated
# log.1 instead of making a new log. Also: a held listing is used only
# for a few seconds after it was taken (S1), and a held name whose
# object is gone falls back to a listing fetch (S2). Since session 21 the
# holder's OPENDIR reads the listing as it comes (dstream.h) and the
# overtaken listing is held once its last page is in: hold() waits for
# that (dir_stream_held).
. "$top_srcdir/tests/integration/lib.sh"
. "$top_srcdir/tests/integration/churn.sh"
t_need_fuse
t_timeout 400
N=5000 # two pages of 4,096

src=$T_DIR/src
churn_tree "$N"
echo orig >"$src/dir/s000041"
churn_start || exit 99

# A holder: opens the directory (OPENDIR is served the overtaken
# listing, which is held while the handle is open) and keeps it open
# until told to stop, without reading it: a READDIRPLUS would give the
# kernel the stable names' entries, and their stats no LOOKUP.
cat >"$T_DIR/hold.py" <<'PY'
import os, sys, time
d, ready, stop = sys.argv[1], sys.argv[2], sys.argv[3]
fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
with open(ready, "w") as f:
    f.write("open\n")
while not os.path.exists(stop):
    time.sleep(0.02)
os.close(fd)
PY
hold() { # hold N: start holder N and wait until it read the directory
	local s0 h0
	s0=$(stat_of dir_streamed)
	h0=$(stat_of dir_stream_held)
	rm -f "$T_DIR/ready$1" "$T_DIR/hstop$1"
	python3 "$T_DIR/hold.py" "$A/dir" "$T_DIR/ready$1" "$T_DIR/hstop$1" 2>"$T_DIR/hold$1.err" &
	t_track_pid $!
	wait_for 120 test -s "$T_DIR/ready$1" || return 1
	# An open that reads the listing as it comes (dir_streamed, a
	# listing of two pages) holds it once the last page is in, the
	# listing whole but overtaken by the churn (dir_stream_held).
	[ "$(stat_of dir_streamed)" = "$s0" ] ||
		wait_eval 60 '[ "$(stat_of dir_stream_held)" -gt "$h0" ]'
}
unhold() { : >"$T_DIR/hstop$1"; }
stat_of() { getfattr --only-values -n cairn.stats "$A" 2>"$T_DIR/getfattr.err" | awk -v k="$1" '$1 == k {print $2}'; }

cairnd_mount "$A" "$T_DIR/ca" big "$T_DIR/tok" || exit 1
t_check "a holder read the churning directory" hold 1
h0=$(stat_of dir_held)
t_check "stat of a name the held listing shows" stat "$A/dir/s000030"
h1=$(stat_of dir_held)
t_ok "$([ "${h1:-0}" -gt "${h0:-0}" ] && echo 0 || echo 1)" \
	"it was answered from the held listing (dir_held ${h0:-0} -> ${h1:-0})"
t_check "mv s000040 m000040" mv "$A/dir/s000040" "$A/dir/m000040"
t_check "stat of the old name after mv: ENOENT" \
	bash -c "stat '$A/dir/s000040' 2>&1 | grep -q 'No such file'"
unhold 1

t_check "a holder read the directory again" hold 2
t_check "stat through the held listing" stat "$A/dir/s000031"
t_check "mv s000041 t000041" mv "$A/dir/s000041" "$A/dir/t000041"
t_check "echo x > s000041" bash -c "echo x >'$A/dir/s000041'"
t_is "$(cat "$A/dir/t000041" 2>&1)" orig "the moved file kept its content"
t_is "$(cat "$A/dir/s000041" 2>&1)" x "the old name is a new file"
t_ok "$([ "$(stat -c %i "$A/dir/s000041")" != "$(stat -c %i "$A/dir/t000041")" ] && echo 0 || echo 1)" \
	"two objects"
unhold 2

# S2: B removes a name and makes it again (a new object): the held
# listing's FID for it is gone, and A falls back to a listing fetch
# once rather than answer ENOENT.
# A hears of B's changes through events, which take their time on a
# loaded machine: the checks of S2 and S1 wait for them (10 s at most,
# the handle open all along), so what they catch is a held listing that
# keeps answering, not a slow event (session 13: under I/O load A had
# not heard yet in 2 of 7 runs, on main too).
t_check "a holder opened the directory again" hold 3
rm "$B/dir/s000060" && echo y >"$B/dir/s000060"
wait_eval 10 '[ "$(cat "$A/dir/s000060" 2>&1)" = y ]'
t_is "$(cat "$A/dir/s000060" 2>&1)" y "a name made again on B reads as the new file on A"
unhold 3

# S1: a held listing answers only a few seconds after it came: a rename
# on B (no event about the object itself) shows on A after that even
# while the handle stays open.
t_check "a holder opened the directory again" hold 4
sleep 6
mv "$B/dir/s000050" "$B/dir/b000050"
wait_for 10 bash -c "stat '$A/dir/s000050' 2>&1 | grep -q 'No such file'"
t_check "stat on A of the name B moved away, 6 s after the open: ENOENT" \
	bash -c "stat '$A/dir/s000050' 2>&1 | grep -q 'No such file'"
wait_for 10 stat "$A/dir/b000050"
t_check "the new name is there" stat "$A/dir/b000050"
unhold 4

kill -0 "$churn" 2>/dev/null
t_is "$?" 0 "the churn was still going"
: >"$T_DIR/stop"
wait "$churn"
t_is "$(wc -l <"$T_DIR/churn.err")" 0 "the churner on B saw no error"
cat "$T_DIR"/hold*.err | sed 's/^/# /'
echo events >"$T_DIR/mode"
# Once the churn stopped, B sees the same.
t_ok "$(wait_for 20 sh -c "[ \"\$(cat '$B/dir/t000041')\" = orig ] && [ \"\$(cat '$B/dir/s000041')\" = x ] && ! [ -e '$B/dir/s000040' ]" && echo 0 || echo 1)" \
	"B sees t000041 orig, s000041 x, no s000040"
cairnd_umount "$A"
cairnd_umount "$B"
t_done
