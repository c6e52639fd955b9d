#!/usr/bin/env bash
# t4061-replay-kill9: a replay of a few thousand records made offline
# (small files: each store's bytes ride inline in the batch, no stage PUT),
# with kill -9 of cairnd and of cairn-vold at random points during it
# (seed printed; SEED=N replays). cairnd killed: restarted, it comes back
# disconnected with the rest of the log and fs reconnect goes on. vold
# killed: the batch in flight gets no answer, cairnd disconnects by
# itself and reintegrates when its probe finds the restarted server. At
# the end every file is on the server exactly once with its content (one
# "data" event per file in the server's event ring: no store applied
# twice), no record became a conflict, and no small file's data went
# through a stage PUT.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 900
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }
N=${N:-1500}
MARGS="--metrics-listen 0 --metrics-port-file $T_DIR/metrics.port"
vold_start $MARGS || exit 99
vos init >/dev/null 2>&1
vos create rk >/dev/null || exit 99
make_token rk rw "$T_DIR/tok"
A=$T_DIR/a
cairnd_mount "$A" "$T_DIR/ca" rk "$T_DIR/tok" || exit 1
jst() { "$FS" status --json -m "$A" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }
stage_puts() { # stage PUTs the running vold answered
	curl -s "http://127.0.0.1:$(cat "$T_DIR/metrics.port")/metrics" |
		awk '/^cairn_vold_requests_total/ && /route="stage"/ { n += $NF } END { print n + 0 }'
}

mkdir "$A/r" && ls "$A/r" >/dev/null
t_check "fs disconnect" "$FS" disconnect -m "$A"
python3 - "$A/r" "$N" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "d%02d" % (i // 100))
    if i % 100 == 0:
        os.mkdir(d)
    with open(os.path.join(d, "f%05d" % i), "w") as f:
        f.write("file %d\n" % i)
PY
pending=$(jst replay_pending)
t_ok "$([ "${pending:-0}" -ge $((2 * N)) ] && echo 0 || echo 1)" "$N files made offline ($pending records)"

SEED=${SEED:-$RANDOM}
echo "# seed $SEED"
RANDOM=$SEED
# Wait until the log shrank below $1 (at most 60 s), then 0-0.04 s more.
after_progress() {
	local t_end=$((SECONDS + 60)) now
	while [ "$SECONDS" -lt "$t_end" ]; do
		# without a python start: a replay batch takes ~0.1 s now
		now=$("$FS" status --json -m "$A" 2>/dev/null | grep -o '"replay_pending": *[0-9]*' | grep -o '[0-9]*$')
		[ -n "$now" ] && [ "$now" -lt "$1" ] && break
		sleep 0.01
	done
	sleep "0.0$(( RANDOM % 5 ))"
}
killed_mid=0 badmode=0
for round in cairnd vold cairnd vold; do
	left0=$(jst replay_pending)
	[ "${left0:-0}" -gt 0 ] || break
	[ "$(jst mode)" = disconnected ] || "$FS" disconnect -m "$A" >/dev/null 2>&1
	"$FS" reconnect -m "$A" >"$T_DIR/reconnect-$round.out" 2>&1 &
	rpid=$!
	after_progress "$left0"
	if [ $round = cairnd ]; then
		cairnd_kill9 "$A"
		wait "$rpid" 2>/dev/null
		cairnd_mount "$A" "$T_DIR/ca" rk "$T_DIR/tok" || exit 1
		left=$(jst replay_pending)
		[ "${left:-0}" -gt 0 ] && [ "$(jst mode)" != disconnected ] && badmode=1
	else
		vold_kill9
		left=$(jst replay_pending)
		sleep 0.5
		vold_restart $MARGS || exit 1
		wait "$rpid" 2>/dev/null
		# cairnd's probe finds it and the replay goes on by itself
		wait_for 120 sh -c "[ \"\$(\"$FS\" status --json -m \"$A\" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d[\"mode\"], d[\"replay_pending\"])')\" = 'connected 0' ] || [ \"\$(\"$FS\" status --json -m \"$A\" | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"mode\"])')\" = disconnected ]"
	fi
	echo "# round $round: killed with ${left:-?} of $left0 records left; now $(jst mode), $(jst replay_pending) left"
	[ "${left:-0}" -gt 0 ] && [ "$left" -lt "$left0" ] && killed_mid=$((killed_mid + 1))
done
t_ok "$([ "$killed_mid" -ge 2 ] && echo 0 || echo 1)" "killed in the middle of the replay ($killed_mid of 4 rounds)"
t_is "$badmode" 0 "cairnd restarted with records left comes back disconnected"
if [ "$(jst mode)" != connected ] || [ "$(jst replay_pending)" != 0 ]; then
	"$FS" reconnect -m "$A" >"$T_DIR/reconnect-last.out" 2>&1
fi
wait_for 60 sh -c "[ \"\$(\"$FS\" status --json -m \"$A\" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d[\"mode\"], d[\"replay_pending\"])')\" = 'connected 0' ]"
t_is "$(jst mode)|$(jst replay_pending)|$(jst conflicts)" "connected|0|0" "connected, the log is empty, no conflicts"
t_is "$(stage_puts)" 0 "no stage PUT since the last vold start (small stores inline)"

C=$T_DIR/c
cairnd_mount "$C" "$T_DIR/cc" rk "$T_DIR/tok" || exit 1
t_is "$(find "$C/r" -type f | wc -l)" "$N" "the server has $N files, no more"
bad=$(python3 - "$C/r" "$N" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
bad = 0
for i in range(n):
    p = os.path.join(root, "d%02d" % (i // 100), "f%05d" % i)
    try:
        if open(p).read() != "file %d\n" % i:
            bad += 1
    except OSError:
        bad += 1
print(bad)
PY
)
t_is "$bad" 0 "every file has its content"
# Exactly once: each file's store is one "data" event in the server's
# event ring (a store applied twice would be two).
(cd "$C/r" && find . -type f | sort | xargs "$FS" examine -m "$C") 2>&1 |
	awk '$1 == "fid" { print $2 }' >"$T_DIR/fids.txt"
curl -s -N --max-time 5 -H "Authorization: Bearer $(cat "$T_DIR/tok")" \
	"$VOLD_URL/v1/vol/rk/events?since=0" >"$T_DIR/events.txt" 2>/dev/null
t_is "$(python3 - "$T_DIR/fids.txt" "$T_DIR/events.txt" <<'PY'
import collections, json, sys
fids = [l.strip() for l in open(sys.argv[1]) if l.strip()]
n = collections.Counter()
for l in open(sys.argv[2]):
    try:
        e = json.loads(l)
    except ValueError:
        continue
    if e.get("kind") == "reset":
        print("reset")
    if e.get("kind") == "data":
        n[e["fid"]] += 1
print(len(fids), collections.Counter(n[f] for f in fids).most_common())
PY
)" "$N [(1, $N)]" "every file's store reached the server exactly once"
cairnd_umount "$C"
cairnd_umount "$A"
t_done
