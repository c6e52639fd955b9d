#!/usr/bin/env bash
# t4088-cm-late-listing-chmod: a listing the server built before one of
# our attribute changes (chmod, chown, utimes: the DV stays) committed,
# but that arrives after the change's answer, does not take the change
# back (session 14's t2352 flake: a late answer at the same DV reverted
# a chmod until the chmod's own event). Client B's create in d/ makes A
# fetch d's listing; a relay holds the reply back 2 s (built at once,
# so it shows f's old mode, owner and mtime at f's unchanged DV);
# meanwhile A changes f in sync mode. After the listing A must still
# show its change: the server's ctime orders two answers of one DV.
# Rounds 1 and 3 make the kernel forget f while the listing is held
# (drop_caches, as other tests running beside this one under make -j do):
# A's inode entry goes with its mark that the attributes are the
# server's, and until session 20 the late listing's older ones were taken
# from there (1 run in 4 under load; doc/cm.md "Answers built before our
# own change"). Checked at once, right after the listing.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 240
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

vol_setup lc
B=$T_DIR/b
cairnd_mount "$B" "$T_DIR/cb" lc "$T_DIR/tok" || exit 1
echo "events" >"$T_DIR/mode"
cat >"$T_DIR/spoil.py" <<'PY'
import time
def spoil(mode, status, headers, body):
    return headers, body, len(body), 0
def spoil_dir(mode, path, body):
    if "dirdelay" in mode:
        time.sleep(2)
    return body
PY
spoilproxy_start "$T_DIR/spoil.py" || exit 99
A=$T_DIR/a
cairnd_mount "$A" "$T_DIR/ca" lc "$T_DIR/tok" || exit 1
stats() { getfattr -n cairn.stats --only-values "$A" 2>/dev/null; }
stat1() { stats | awk -v k="$1" '$1 == k {print $2}'; }
ndir() { grep -c . "$T_DIR/proxy.req.dir" 2>/dev/null || echo 0; }
# The kernel forgets unused inodes (FUSE_FORGET) and their dentries: of
# every file system, as lib.sh's drop_caches, but not the page cache.
forget_inodes() { echo 2 >/proc/sys/vm/drop_caches 2>/dev/null; }

mkdir "$A/d"
echo data >"$A/d/f"
chmod 600 "$A/d/f"
wait_for 10 test -e "$B/d/f"
sleep 0.5 # the events of the above are applied

# round: MODE UID MTIME (a date) FORGET; A's change while the listing is
# held, then with FORGET=1 the kernel forgets f.
round=0
for spec in "640 101 2001-02-03 1" "751 202 2002-03-04 0" "604 303 2003-04-05 1"; do
	set -- $spec
	round=$((round + 1))
	echo "events dirdelay" >"$T_DIR/mode"
	n0=$(ndir)
	p0=$(stat1 dir_pages)
	touch "$B/d/other$round" # A hears of it, fetches d's listing
	wait_eval 30 '[ "$(ndir)" -gt "$n0" ]'
	t_ok "$([ "$(ndir)" -gt "$n0" ] && echo 0 || echo 1)" \
		"round $round: A asked for d's listing (held back 2 s)"
	dv0=$("$FS" examine -m "$A" "$A/d/f" 2>/dev/null | awk '$1 == "dv" {print $2}')
	chmod "$1" "$A/d/f" && chown "$2" "$A/d/f" && touch -m -d "$3 12:00:00 UTC" "$A/d/f"
	t_ok $? "round $round: A's chmod, chown and touch while the listing is held"
	fg0=$(stat1 req_forget)
	[ "$4" = 1 ] && forget_inodes
	wait_eval 30 '[ "$(stat1 dir_pages)" -gt "$p0" ]' # the held reply came
	t_ok "$([ "$(stat1 dir_pages)" -gt "$p0" ] && echo 0 || echo 1)" \
		"round $round: the held listing came"
	sleep 0.5 # and was applied
	echo "events" >"$T_DIR/mode"
	dv1=$("$FS" examine -m "$A" "$A/d/f" 2>/dev/null | awk '$1 == "dv" {print $2}')
	t_is "$dv1" "$dv0" "round $round: f's DV did not move (attribute changes only)"
	want_m=$(date -u -d "$3 12:00:00 UTC" +%s)
	t_is "$(stat -c '%a %u %Y' "$A/d/f")" "$1 $2 $want_m" \
		"round $round: A: f shows its mode, owner and mtime after the late listing"
	echo "# round $round: forget $4: the kernel forgot $(($(stat1 req_forget) - fg0)) inodes"
	t_is "$(ls "$A/d" | grep -c "^other$round\$")" 1 "round $round: A: the listing shows B's file"
	echo "# round $round: fetched_old $(stat1 fetched_old)"
done
# The directory itself: a chmod of d while d's listing (with d's own
# attributes at the same DV) is held.
echo "events dirdelay" >"$T_DIR/mode"
n0=$(ndir)
p0=$(stat1 dir_pages)
touch "$B/d/other4"
wait_eval 30 '[ "$(ndir)" -gt "$n0" ]'
chmod 750 "$A/d"
t_ok $? "round 4: A's chmod of d while d's listing is held"
wait_eval 30 '[ "$(stat1 dir_pages)" -gt "$p0" ]'
sleep 0.5
echo "events" >"$T_DIR/mode"
t_is "$(stat -c %a "$A/d")" 750 "round 4: A: d shows its mode after its late listing"
t_is "$(ls "$A/d" | grep -c "^other4\$")" 1 "round 4: A: the listing shows B's file"
wait_eval 10 '[ "$(stat -c "%a %u" "$B/d/f")" = "604 303" ]'
t_is "$(stat -c '%a %u' "$B/d/f")" "604 303" "B sees A's last change"
t_is "$(cat "$A/d/f")" data "A: f's bytes"

# Round 5: the listing comes before the change's own event (events held
# back by the relay), on a fresh mount C whose first listing of d is
# held while C chmods d and makes a file in it. The listing was built
# before both: its directory is older than the answers C applied, so it
# is not stored (mcache_fetched_older(), session 21); before, it took
# the chmod back and hid the new name until the event came.
C=$T_DIR/c
echo "events" >"$T_DIR/mode"
cairnd_mount "$C" "$T_DIR/cc" lc "$T_DIR/tok" || exit 1
stat "$C/d" >/dev/null
echo "events dirdelay holdev" >"$T_DIR/mode"
n0=$(ndir)
ls "$C/d" >"$T_DIR/c-ls1" 2>&1 &
lsp=$!
wait_eval 30 '[ "$(ndir)" -gt "$n0" ]'
t_ok "$([ "$(ndir)" -gt "$n0" ] && echo 0 || echo 1)" "round 5: C asked for d's listing (held back 2 s)"
chmod 700 "$C/d" && echo new >"$C/d/new5"
t_ok $? "round 5: C's chmod of d and a new file while the listing is held, events held too"
wait "$lsp"
sleep 0.5
t_is "$(stat -c %a "$C/d")" 700 "round 5: C: d keeps its mode after the older listing"
t_is "$(ls "$C/d" | grep -c '^new5$')" 1 "round 5: C: the listing shows the new file"
echo "events" >"$T_DIR/mode"
wait_eval 10 '[ "$(stat -c %a "$B/d" 2>/dev/null)" = 700 ]'
t_is "$(stat -c %a "$B/d")" 700 "round 5: B sees C's chmod"
cairnd_umount "$C"
cairnd_umount "$A"
cairnd_umount "$B"
t_done
