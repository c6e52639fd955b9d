#!/usr/bin/env bash
# t2323-cm-pending-events-kill9: news that a listing's pending attributes
# already account for is durable before the event sequence passes it
# (doc/cm.md "Pending attributes"). cairnd A (through a relay that holds
# its event stream back) has P/F cached in meta.tdb; client B appends to
# F (one store, one DATA event) and creates S/y; A lists P again before
# the events come (F at its new DV, pending); F's event comes, finds
# nothing to do, and the sequence is saved past it; kill -9 of A while
# the pending set is still in memory (listings keep coming, so it is
# not written). The next cairnd over that cache must show F's new size
# and content, not meta.tdb's older record (before the fix: the old
# size, and nothing left to correct it). S's listing is checked too (the
# re-listing of P prefetches it again, so it is right either way).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 240

src=$T_DIR/src
mkdir -p "$src/P/S" "$src/Q"
printf 'old\n' >"$src/P/F"
: >"$src/P/S/x"
for i in $(seq -w 0 79); do mkdir "$src/Q/d$i"; : >"$src/Q/d$i/e"; done
vos init >/dev/null 2>&1
vos import pk "$src" >/dev/null || exit 99
vold_start
make_token pk rw "$T_DIR/tok"
mb=$T_DIR/b.mnt
cairnd_mount "$mb" "$T_DIR/cache-b" pk "$T_DIR/tok" || exit 1
echo "events" >"$T_DIR/mode"
spoilproxy_start || exit 99
mnt=$T_DIR/a.mnt
cache=$T_DIR/cache-a
cairnd_mount "$mnt" "$cache" pk "$T_DIR/tok" || exit 1
stats() { getfattr -n cairn.stats --only-values "$mnt" 2>/dev/null; }
stat1() { stats | awk -v k="$1" '$1 == k {print $2}'; }

# A: F and S (and S's listing) in meta.tdb, written.
ls -l "$mnt/P" >/dev/null
ls "$mnt/P/S" >/dev/null
t_is "$(stat -c %s "$mnt/P/F")" 4 "A: F cached at its first size"
ls "$mnt/Q" >/dev/null
sleep 2 # past the write of the pending attributes
ev0=$(stat1 events)

# B's changes, their events held back from A.
echo "events holdev" >"$T_DIR/mode"
printf 'more\n' >>"$mb/P/F" # one store, one event
: >"$mb/P/S/y"
t_is "$(stat -c %s "$mb/P/F")" 9 "B: F appended to"
t_is "$(ls "$mb/P/S" | tr '\n' ' ')" "x y " "B: S has y"
sleep 1
# Listings keep coming (the pending set is not written meanwhile).
(while [ ! -e "$T_DIR/stop" ]; do
	"$FS" flushmeta "$mnt/Q" >/dev/null 2>&1
	ls -l "$mnt/Q" >/dev/null 2>&1
	sleep 0.05
done) &
lister=$!
t_track_pid $lister
# A lists P again before the events: F at its new DV, pending.
"$FS" flushmeta "$mnt/P" >/dev/null 2>&1
t_is "$?" 0 "A: fs flushmeta P"
ls -l "$mnt/P" >/dev/null
t_is "$(stat -c %s "$mnt/P/F")" 9 "A: P listed again: F's new size (pending)"
sleep 0.3
t_is "$(( $(stat1 events) - ev0 ))" 0 "A: no event yet (held back)"
echo "events" >"$T_DIR/mode"
wait_eval 10 '[ "$(( $(stat1 events) - ev0 ))" -ge 2 ]'
t_ok "$([ $(( $(stat1 events) - ev0 )) -ge 2 ] && echo 0 || echo 1)" \
	"A: B's events applied ($(( $(stat1 events) - ev0 )))"
sleep 0.5 # the sequence saved after the chunk
cairnd_kill9 "$mnt"
touch "$T_DIR/stop"
wait "$lister" 2>/dev/null

VOLD_URL=$real_url
cairnd_mount "$mnt" "$cache" pk "$T_DIR/tok" || exit 1
t_is "$(stat -c %s "$mnt/P/F")" 9 "after kill -9: F's new size, not meta.tdb's older one"
t_is "$(cat "$mnt/P/F" | tr '\n' ' ')" "old more " "  and its new content"
t_is "$(ls "$mnt/P/S" | tr '\n' ' ')" "x y " "  S's listing has y"
cairnd_umount "$mnt"
cairnd_umount "$mb"
t_done
