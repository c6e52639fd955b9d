#!/bin/bash
# t1060-vol-slowclient: clients that stop reading big responses (pipelined
# 4 MiB chunk GETs, a huge readdirplus) do not block anyone else.
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 120
VC="$top_srcdir/tests/integration/vol-client.py"

vold_start || exit 99
src=$T_DIR/src
mkdir -p "$src/many"
head -c $((64 << 20)) /dev/urandom >"$src/big"
echo small >"$src/small"
for i in $(seq 1 3000); do : >"$src/many/file-with-a-longish-name-$i"; done
vos import slow "$src" >/dev/null || exit 99
export VC_URL=$VOLD_URL VC_VOL=slow
make_token slow ro "$T_DIR/ro.tok"
export VC_TOKEN=$(cat "$T_DIR/ro.tok")
R=$(python3 "$VC" root)
BIG=$(python3 "$VC" lookup "$R" big)
MANY=$(python3 "$VC" lookup "$R" many)
SMALL=$(python3 "$VC" lookup "$R" small)
DV=$(python3 "$VC" attr "$BIG" dv)
SDV=$(python3 "$VC" attr "$SMALL" dv)

# Five stalled clients: each pipelines 16 requests for 4 MiB chunks (or
# the big directory) and never reads a byte.
python3 - "$VOLD_PORT" "$VC_TOKEN" "$BIG" "$DV" "$MANY" >"$T_DIR/stall.log" 2>&1 <<'PY' &
import socket, sys, time
port, tok, fid, dv, many = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
socks = []
for k in range(5):
    s = socket.create_connection(("127.0.0.1", int(port)))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    req = b""
    for i in range(16):
        path = "/v1/vol/slow/data/%s/%s/%d?size=4194304" % (fid, dv, i) if k < 4 else "/v1/vol/slow/dir/%s" % many
        req += ("GET %s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n" % (path, tok)).encode()
    s.sendall(req)
    socks.append(s)
print("stalled", flush=True)
time.sleep(60)
PY
spid=$!
t_track_pid "$spid"
wait_for 10 grep -q stalled "$T_DIR/stall.log"
sleep 1

# Meanwhile others are served promptly.
slow=0
for i in $(seq 1 20); do
	t=$( { /usr/bin/time -f %e curl -s -o "$T_DIR/s" -H "Authorization: Bearer $VC_TOKEN" --max-time 5 \
		"$VOLD_URL/v1/vol/slow/data/$SMALL/$SDV/0?size=65536"; } 2>&1)
	[ "$(cat "$T_DIR/s")" = small ] || slow=$((slow + 1))
	awk -v t="$t" 'BEGIN { exit !(t > 1.0) }' && slow=$((slow + 1))
done
t_is "$slow" 0 "20 small GETs answered within 1 s each while 5 clients stall"
code=$(curl -s -o "$T_DIR/c5" -w '%{http_code}' --max-time 10 -H "Authorization: Bearer $VC_TOKEN" "$VOLD_URL/v1/vol/slow/data/$BIG/$DV/5?size=4194304")
t_is "$code" 200 "a 4 MiB chunk for another client: 200"
t_is "$(stat -c %s "$T_DIR/c5")" 4194304 "... complete"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H "Authorization: Bearer $VC_TOKEN" "$VOLD_URL/v1/vol/slow/dir/$MANY")
t_is "$code" 200 "the big directory for another client: 200"
t_is "$(curl -s --max-time 2 "$VOLD_URL/v1/ping" | cut -c1-13)" '{"protocol": ' "ping still answers"
kill "$spid" 2>/dev/null
t_done
