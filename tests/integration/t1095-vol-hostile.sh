#!/bin/bash
# t1095-vol-hostile: clients with and without tokens cannot exhaust
# cairn-vold (issue #12, "High 2"): 50 connections announcing huge bodies
# keep its RSS bounded while a well-behaved client is served; bodies over a
# route's limit and requests without a valid token are refused from their
# head, before the body is sent; connections beyond the per-address cap are
# closed at once; a trickling client is cut off at the receive deadline;
# event streams are capped per token and end when their token expires or
# is revoked; a body is refused for its token (revoked, old-format) exactly
# as the request without one would be; the total cap stops accepting; out
# of descriptors the server pauses accepting instead of spinning.
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 90
VC="$top_srcdir/tests/integration/vol-client.py"
vc() { python3 "$VC" "$@"; }

RSS_MAX_KB=$((64 * 1024))
DEADLINE=3
vold_start --request-deadline "$DEADLINE" --max-conns-per-addr 64 \
	--max-streams-per-token 2 || exit 99
src=$T_DIR/src
mkdir -p "$src"
echo hello >"$src/hello"
vos import h "$src" >/dev/null || exit 99
make_token h rw "$T_DIR/rw.tok"
make_token h ro "$T_DIR/ro.tok"
RW=$(cat "$T_DIR/rw.tok")
RO=$(cat "$T_DIR/ro.tok")
export VC_URL=$VOLD_URL VC_VOL=h VC_TOKEN=$RW
ROOT=$(vc root)
HELLO=$(vc lookup "$ROOT" hello)
HDV=$(vc attr "$HELLO" dv)
rss() { awk '/^VmRSS:/ { print $2 }' "/proc/$VOLD_PID/status"; }
# A well-behaved client: volinfo, getattr and a chunk, all correct.
good() {
	vc get /v1/vol/h | head -1 | grep -qx 200 &&
	[ "$(vc attr "$HELLO" size)" = 6 ] &&
	[ "$(curl -s --max-time 5 -H "Authorization: Bearer $RW" \
		"$VOLD_URL/v1/vol/h/data/$HELLO/$HDV/0?size=65536")" = hello ]
}
t_check "a well-behaved client is served" good

# Raw requests: send a head (and maybe some body), report what came back.
cat >"$T_DIR/raw.py" <<'PY'
import socket, sys, time
def head(port, method, path, clen, tok=None, extra=b""):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    h = "%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n" % (method, path, clen)
    if tok:
        h += "Authorization: Bearer %s\r\n" % tok
    s.sendall(h.encode() + b"\r\n" + extra)
    return s
def reply(s, wait=3.0):
    """Status, body, and whether the server closed after the reply."""
    s.settimeout(wait)
    data = b""
    t0 = time.time()
    try:
        while time.time() - t0 < wait:
            b = s.recv(65536)
            if not b:
                return data, True
            data += b
            if b"\r\n\r\n" in data:
                hd, _, body = data.partition(b"\r\n\r\n")
                n = [int(l.split(b":")[1]) for l in hd.split(b"\r\n") if l.lower().startswith(b"content-length:")]
                if n and len(body) >= n[0]:
                    try:
                        return data, s.recv(1) == b""
                    except OSError:
                        return data, False
    except ConnectionResetError:
        return data, True
    except socket.timeout:
        pass
    return data, False
PY

# 1. 50 connections announce 64 MiB bodies without a token and push
# 2 MiB each as fast as they can, then trickle; vold's RSS stays bounded
# and the good client keeps working meanwhile.
python3 - "$VOLD_PORT" "$T_DIR" <<'PY' >"$T_DIR/flood.log" 2>&1 &
import socket, sys, time, threading
sys.path.insert(0, sys.argv[2])
port = int(sys.argv[1])
def one(i):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(("POST /v1/vol/h/op HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (64 << 20)).encode())
        s.sendall(b"x" * (2 << 20))
        for _ in range(20):
            s.sendall(b"x")
            time.sleep(0.25)
    except OSError:
        pass
ts = [threading.Thread(target=one, args=(i,)) for i in range(50)]
for t in ts: t.start()
print("started", flush=True)
for t in ts: t.join()
print("done", flush=True)
PY
fpid=$!
t_track_pid "$fpid"
wait_for 10 grep -q started "$T_DIR/flood.log"
peak=0
served=0
for i in $(seq 1 10); do
	r=$(rss)
	[ "$r" -gt "$peak" ] && peak=$r
	good && served=$((served + 1))
	sleep 0.2
done
wait "$fpid" 2>/dev/null
echo "# peak VmRSS under the flood: $peak kB (bound $RSS_MAX_KB kB)"
t_ok "$([ "$peak" -lt "$RSS_MAX_KB" ] && echo 0 || echo 1)" "50 flooding connections: RSS ${peak} kB < 64 MiB"
t_is "$served" 10 "the good client was served 10 times out of 10 meanwhile"

# 2. Bodies over a route's limit: 413 from the head alone, connection
# closed; nothing of the body was sent.
over() { # METHOD PATH CLEN TOKEN -> "STATUS ERRNO closed|open"
	python3 - "$VOLD_PORT" "$T_DIR" "$@" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[2])
from raw import head, reply
port, method, path, clen, tok = int(sys.argv[1]), sys.argv[3], sys.argv[4], int(sys.argv[5]), sys.argv[6]
s = head(port, method, path, clen, tok if tok != "-" else None)
data, closed = reply(s)
st = data.split(b" ")[1].decode() if data.startswith(b"HTTP/1.1 ") else "none"
try:
    err = json.loads(data.partition(b"\r\n\r\n")[2])["errno"]
except Exception:
    err = "-"
print(st, err, "closed" if closed else "open")
PY
}
TX=00112233445566778899aabbccddeeff
t_is "$(over PUT "/v1/vol/h/stage/$HELLO/$TX/0?size=65536" 1000000 "$RW")" "413 E2BIG closed" "stage body over its chunk size: 413 before the body"
t_is "$(over POST /v1/vol/h/op $((64 << 20)) "$RW")" "413 E2BIG closed" "64 MiB op: 413 before the body"
t_is "$(over POST /v1/vol/h/getattr 200000 "$RW")" "413 E2BIG closed" "200 KB getattr: 413 before the body"
t_is "$(over GET /v1/vol/h 10 "$RW")" "413 E2BIG closed" "a body on a GET route: 413"

# 3. Without a valid token the body is not read either.
t_is "$(over POST /v1/vol/h/op 10000 -)" "401 EACCES closed" "op without a token: 401 before the body"
t_is "$(over POST /v1/vol/h/op $((64 << 20)) -)" "401 EACCES closed" "64 MiB op without a token: 401 before the body"
t_is "$(over POST /v1/vol/h/op 10000 "$RO")" "403 EPERM closed" "op with a read-only token: 403 before the body"
t_is "$(over PUT "/v1/vol/h/stage/$HELLO/$TX/0?size=65536" 65536 "cairn2.h.$(printf '%08x' 1).0.rw.0.$(printf '0%.0s' $(seq 64))")" "401 EACCES closed" "stage with a forged token: 401 before the body"
t_is "$(over POST /v1/vol/other/getattr 1000 "$RW")" "403 EPERM closed" "getattr on another volume: 403 before the body"
V1=$(python3 -c '
import hmac, hashlib, sys
key = open(sys.argv[1], "rb").read()
body = "cairn1.h.rw.0"
print(body + "." + hmac.new(key, body.encode(), hashlib.sha256).hexdigest())' "$SRV_ROOT/secret.key")
t_is "$(over POST /v1/vol/h/op 10000 "$V1")" "401 EACCES closed" "op with an old-format token (genuine MAC): 401 before the body"
t_check "a good client still works after the refusals" good

# 4. Per-address cap: of 80 idle connections 64 stay, 16 are closed at
# once; a normal request is refused while they hold the slots and works
# once they are gone.
python3 - "$VOLD_PORT" <<'PY' >"$T_DIR/cap.log" 2>&1 &
import socket, sys, time, select, subprocess
port = int(sys.argv[1])
socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(80)]
time.sleep(0.5)
closed = 0
for s in socks:
    r, _, _ = select.select([s], [], [], 0)
    if r:
        try:
            if s.recv(1) == b"":
                closed += 1
        except OSError:
            closed += 1
print("closed", closed, flush=True)
time.sleep(1.5)
for s in socks:
    s.close()
print("released", flush=True)
PY
cpid=$!
t_track_pid "$cpid"
wait_for 5 grep -q closed "$T_DIR/cap.log"
t_is "$(sed -n 's/^closed //p' "$T_DIR/cap.log")" 16 "80 connections from one address: 16 over the cap closed at once"
t_is "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$VOLD_URL/v1/ping")" 000 "a 65th connection is refused while 64 are open"
wait_for 5 grep -q released "$T_DIR/cap.log"
t_check "after they close, a normal request works" wait_for 3 good

# 5. The receive deadline: a client trickling its head (or its body) one
# line every 0.5 s is cut off after DEADLINE seconds, not kept forever.
trickle() { # head|body -> seconds until the server closed
	python3 - "$VOLD_PORT" "$1" "$RW" <<'PY'
import socket, sys, time
port, what, tok = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.create_connection(("127.0.0.1", port), timeout=1)
t0 = time.time()
if what == "head":
    s.sendall(b"GET /v1/ping HTTP/1.1\r\n")
else:
    s.sendall(("POST /v1/vol/h/op HTTP/1.1\r\nAuthorization: Bearer %s\r\nContent-Length: 1000\r\n\r\n" % tok).encode())
while time.time() - t0 < 15:
    try:
        s.sendall(b"X-Slow: 1\r\n" if what == "head" else b"x")
        if s.recv(1) == b"":
            break
    except socket.timeout:
        continue
    except OSError:
        break
print("%.1f" % (time.time() - t0))
PY
}
for w in head body; do
	t=$(trickle $w)
	t_ok "$(awk -v t="$t" -v d="$DEADLINE" 'BEGIN { exit !(t >= d - 0.5 && t <= d + 2) }' && echo 0 || echo 1)" "a client trickling its $w is cut off after ${t} s (deadline $DEADLINE s)"
done

# 6. Event streams: at most 2 per token; a third is refused with 429, a
# stream of another token is not.
python3 - "$VOLD_PORT" "$RW" "$RO" <<'PY' >"$T_DIR/streams.log" 2>&1
import socket, sys
port, rw, ro = int(sys.argv[1]), sys.argv[2], sys.argv[3]
def stream(tok):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(("GET /v1/vol/h/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n" % tok).encode())
    return s, s.recv(200).split(b" ")[1].decode()
a = stream(rw); b = stream(rw); c = stream(rw); d = stream(ro)
print(a[1], b[1], c[1], d[1])
PY
t_is "$(cat "$T_DIR/streams.log")" "200 200 429 200" "event streams: 2 per token, the third refused (429), another token served"

# 7. A stream lives no longer than its token: it ends when the token
# expires, and when `vos revoke` voids it (the client then gets 401).
# stream_end TOKEN [CMD...]: open a stream, run CMD once it is open, and
# print the seconds from then until the server ended it ("never" within
# 10 s, "no-stream" if it was not opened).
stream_end() {
	local tok=$1
	shift
	python3 - "$VOLD_PORT" "$tok" "$T_DIR/stream.go" <<'PY' &
import os, socket, sys, time
port, tok, go = int(sys.argv[1]), sys.argv[2], sys.argv[3]
s = socket.create_connection(("127.0.0.1", port), timeout=10)
s.sendall(("GET /v1/vol/h/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n\r\n" % tok).encode())
data = s.recv(4096)
if not data.startswith(b"HTTP/1.1 200"):
    open(go + ".out", "w").write("no-stream\n")
    open(go, "w").close()
    sys.exit(0)
open(go, "w").close()
t0 = time.time()
ended = False
try:
    while time.time() - t0 < 10:
        if data.endswith(b"0\r\n\r\n"):
            ended = True
            break
        b = s.recv(4096)
        if not b:
            ended = True
            break
        data += b
except OSError:
    pass
open(go + ".out", "w").write(("%.1f" % (time.time() - t0) if ended else "never") + "\n")
PY
	local spid=$!
	t_track_pid "$spid"
	wait_for 5 test -e "$T_DIR/stream.go"
	[ $# -gt 0 ] && "$@" >/dev/null
	wait "$spid"
	cat "$T_DIR/stream.go.out"
	rm -f "$T_DIR/stream.go" "$T_DIR/stream.go.out"
}
vos token h --ro --expires 2 -o "$T_DIR/short.tok" || exit 99
SHORT=$(cat "$T_DIR/short.tok")
t=$(stream_end "$SHORT")
t_ok "$(awk -v t="$t" 'BEGIN { exit !(t ~ /^[0-9.]+$/ && t <= 4) }' && echo 0 || echo 1)" "a stream whose token expires ends (after ${t} s)"
t_is "$(VC_TOKEN=$SHORT vc get /v1/vol/h | head -1)" 401 "... and the expired token gets 401"
make_token h ro "$T_DIR/rev.tok"
REV=$(cat "$T_DIR/rev.tok")
t=$(stream_end "$REV" vos revoke h)
t_ok "$(awk -v t="$t" 'BEGIN { exit !(t ~ /^[0-9.]+$/ && t <= 2.5) }' && echo 0 || echo 1)" "a stream open before vos revoke ends ${t} s after it"
t_is "$(VC_TOKEN=$REV vc get /v1/vol/h | head -1)" 401 "... and the revoked token gets 401"
t_is "$(over POST /v1/vol/h/op 10000 "$RW")" "401 EACCES closed" "op with a token revoked since: 401 before the body"

# 8. The cap on connections in all: at 5 the server stops accepting (a
# 6th client waits in the listen queue) and accepts again once one closes.
vold_stop
vold_start --max-conns 5 --max-conns-per-addr 100 || exit 99
python3 - "$VOLD_PORT" <<'PY' >"$T_DIR/total.log" 2>&1
import socket, subprocess, sys, time
port = sys.argv[1]
def ping():
    return subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "1",
                           "http://127.0.0.1:%s/v1/ping" % port], capture_output=True, text=True).stdout
socks = [socket.create_connection(("127.0.0.1", int(port))) for _ in range(5)]
time.sleep(0.3)
full = ping()
socks[0].close()
time.sleep(0.3)
print(full, ping())
PY
t_is "$(cat "$T_DIR/total.log")" "000 200" "5 connections in all: a 6th waits unserved, served once one closes"

# 9. Out of descriptors: with 40 allowed, 60 connections make accept()
# fail; vold logs it once, does not spin, and still serves.
vold_stop
( ulimit -n 40; exec "$VOLD" --root "$SRV_ROOT" --listen 127.0.0.1:0 \
	--port-file "$T_DIR/vold2.port" --foreground >>"$T_DIR/vold2.log" 2>&1 ) &
V2=$!
t_track_pid "$V2"
wait_for 10 test -s "$T_DIR/vold2.port" || exit 99
P2=$(cat "$T_DIR/vold2.port")
python3 - "$P2" "/proc/$V2/stat" <<'PY' >"$T_DIR/emfile.log" 2>&1
import socket, sys, time
port, stat = int(sys.argv[1]), sys.argv[2]
def cpu():
    f = open(stat).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / 100.0
socks = []
for _ in range(60):
    try:
        socks.append(socket.create_connection(("127.0.0.1", port), timeout=1))
    except OSError:
        pass
c0 = cpu()
time.sleep(2)
print("cpu %.2f" % (cpu() - c0), flush=True)
for s in socks:
    s.close()
time.sleep(1)
s = socket.create_connection(("127.0.0.1", port), timeout=3)
s.sendall(b"GET /v1/ping HTTP/1.1\r\nHost: x\r\n\r\n")
print("ping", s.recv(12).decode(), flush=True)
PY
cpu=$(sed -n 's/^cpu //p' "$T_DIR/emfile.log")
t_ok "$(awk -v c="$cpu" 'BEGIN { exit !(c < 0.5) }' && echo 0 || echo 1)" "out of descriptors: ${cpu} s of CPU in 2 s (no busy loop)"
t_is "$(grep -c 'cannot accept a connection' "$T_DIR/vold2.log")" 1 "... logged once"
t_is "$(sed -n 's/^ping //p' "$T_DIR/emfile.log")" "HTTP/1.1 200" "... and serves again once descriptors are free"
t_done
