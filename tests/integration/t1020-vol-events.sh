#!/bin/bash
# t1020-vol-events: the event stream: live events with increasing seq,
# replay with since=, reset when the client is ahead of the server, events
# kept across a restart, and a ping after 15 s of silence.
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 120
VC="$top_srcdir/tests/integration/vol-client.py"
vc() { python3 "$VC" "$@"; }
jget() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read().split("\n",1)[1]); exec("print(" + sys.argv[1] + ")")' "$1"; }
# kinds/seqs of an ndjson file: "seq:kind seq:kind ..."
evs() { python3 -c 'import json,sys
print(" ".join("%d:%s" % (e["seq"], e["kind"]) for e in map(json.loads, filter(None, open(sys.argv[1]).read().split("\n")))))' "$1"; }
stream() { # FILE [QUERY] [SECS]: read the stream for SECS seconds
	curl -sN --max-time "${3:-2}" -H "Authorization: Bearer $VC_TOKEN" "$VOLD_URL/v1/vol/home/events${2:-}" >"$1" 2>/dev/null
}

vold_start || exit 99
vos create home >/dev/null || exit 99
export VC_URL=$VOLD_URL VC_VOL=home
make_token home ro "$T_DIR/ro.tok"
make_token home rw "$T_DIR/rw.tok"
export VC_TOKEN=$(cat "$T_DIR/rw.tok")
R=$(vc root)

# A live stream (ro token is enough) sees the events of later mutations.
VC_TOKEN=$(cat "$T_DIR/ro.tok") stream "$T_DIR/live" "" 30 &
spid=$!
sleep 0.7
A=$(vc create "$R" a)
vc op "{\"op\": \"setattr\", \"fid\": \"$A\", \"base_dv\": $(vc attr "$A" dv), \"mask\": [\"mode\"], \"mode\": 384}" >/dev/null
vc op "{\"op\": \"unlink\", \"parent\": \"$R\", \"name\": \"a\", \"fid\": \"$A\"}" >/dev/null
wait_eval 10 '[ "$(wc -l <"$T_DIR/live")" -ge 4 ]'
kill "$spid" 2>/dev/null
wait "$spid" 2>/dev/null
t_is "$(evs "$T_DIR/live")" "1:dir 2:attr 3:dir 4:gone" "live: dir, attr, dir, gone with seq 1..4"
t_is "$(head -1 "$T_DIR/live" | python3 -c 'import json,sys; e=json.load(sys.stdin); print(e["fid"], e["dv"] > 0)')" "$R True" "the dir event names the root and its new dv"
t_is "$(curl -s -D - -o /dev/null --max-time 1 -H "Authorization: Bearer $VC_TOKEN" "$VOLD_URL/v1/vol/home/events" | tr -d '\r' | sed -n 's/^Content-Type: //p')" "application/x-ndjson" "content type ndjson"

# Replay with since=.
stream "$T_DIR/since2" "?since=2" 1
t_is "$(evs "$T_DIR/since2")" "3:dir 4:gone" "since=2 replays 3 and 4"
stream "$T_DIR/since0" "?since=0" 1
t_is "$(evs "$T_DIR/since0")" "1:dir 2:attr 3:dir 4:gone" "since=0 replays everything held"
stream "$T_DIR/since4" "?since=4" 1
t_is "$(evs "$T_DIR/since4")" "" "since=current: nothing"
stream "$T_DIR/ahead" "?since=1000" 1
t_is "$(evs "$T_DIR/ahead")" "4:reset" "since ahead of the server: reset at the current seq"
t_is "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 -H "Authorization: Bearer $VC_TOKEN" "$VOLD_URL/v1/vol/home/events?since=-1")" 400 "since=-1: 400"
t_is "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 -H "Authorization: Bearer $VC_TOKEN" "$VOLD_URL/v1/vol/home/events?since=01")" 400 "since with a leading zero: 400"

# Events survive a restart.
vold_stop
vold_restart || exit 99
stream "$T_DIR/after" "?since=1" 1
t_is "$(evs "$T_DIR/after")" "2:attr 3:dir 4:gone" "after a restart: events replayed from disk"
B=$(vc create "$R" b)
stream "$T_DIR/after2" "?since=4" 1
t_is "$(evs "$T_DIR/after2")" "5:dir" "sequence continues after a restart"

# A silent stream gets a ping within 15-20 s.
stream "$T_DIR/ping" "" 18
t_is "$(evs "$T_DIR/ping" | tr ' ' '\n' | grep -c ':ping')" 1 "one ping after 15 s of silence"
t_is "$(evs "$T_DIR/ping")" "5:ping" "the ping carries the current seq"
t_done
