#!/bin/bash
# t1030-vol-badinput: hostile and broken requests get a 4xx with a JSON
# error and change nothing: malformed and truncated bodies, huge headers
# and bodies, unknown FIDs, bad names, bad chunk numbers, path traversal.
# "Nothing changed" is checked with a vos export before and after.
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 180
VC="$top_srcdir/tests/integration/vol-client.py"
vc() { python3 "$VC" "$@"; }
jerr() { python3 -c 'import json,sys
t=sys.stdin.read().split("\n",1)
try: print(t[0], json.loads(t[1])["errno"])
except Exception: print(t[0], "NOJSON")'; }
TOKH() { echo "Authorization: Bearer $VC_TOKEN"; }
# raw request with curl, keeping the path as given: prints "STATUS ERRNO"
raw() { # METHOD PATH [curl args]
	local m=$1 p=$2 out
	shift 2
	out=$(curl -s --path-as-is -X "$m" -w '\n%{http_code}' -H "$(TOKH)" "$@" "$VOLD_URL$p")
	printf '%s\n%s' "$(echo "$out" | tail -1)" "$(echo "$out" | sed '$d')" | jerr
}

vold_start || exit 99
src=$T_DIR/src
mkdir -p "$src/d"
echo content >"$src/f"
vos import home "$src" >/dev/null || exit 99
export VC_URL=$VOLD_URL VC_VOL=home
make_token home rw "$T_DIR/rw.tok"
export VC_TOKEN=$(cat "$T_DIR/rw.tok")
R=$(vc root)
F=$(vc lookup "$R" f)
vos export home "$T_DIR/before" || exit 99
sleep 0.02
touch "$T_DIR/stamp"
seq0=$(vc get /v1/vol/home | python3 -c 'import json,sys; print(json.loads(sys.stdin.read().split("\n",1)[1])["event_seq"])')

op() { vc op "$1" | jerr; }
# Malformed and wrong JSON.
t_is "$(vc req POST /v1/vol/home/op '{"op": "create", ' | jerr)" "400 EINVAL" "truncated JSON: 400"
t_is "$(vc req POST /v1/vol/home/op 'not json' | jerr)" "400 EINVAL" "not JSON: 400"
t_is "$(vc req POST /v1/vol/home/op '[]' | jerr)" "400 EINVAL" "a JSON array: 400"
t_is "$(vc req POST /v1/vol/home/op '' | jerr)" "400 EINVAL" "empty body: 400"
t_is "$(op '{"op": "frobnicate"}')" "400 EINVAL" "unknown op: 400"
t_is "$(op "{\"op\": \"create\", \"parent\": \"$R\", \"name\": \"x\", \"type\": \"file\", \"mode\": 99999, \"uid\": 0, \"gid\": 0}")" "400 EINVAL" "mode out of range: 400"
t_is "$(vc req POST /v1/vol/home/op "{\"op\": \"create\", \"opid\": \"$(printf 'ab%.0s' $(seq 16))\", \"parent\": \"$R\", \"name\": \"x\", \"name\": \"y\", \"type\": \"file\", \"mode\": 420, \"uid\": 0, \"gid\": 0}" | jerr)" "400 EINVAL" "duplicate key: 400"
t_is "$(vc req POST /v1/vol/home/getattr '{"fids": "x"}' | jerr)" "400 EINVAL" "getattr with a bad list: 400"
many=$(python3 -c 'import sys; print("{\"fids\": [" + ",".join(["\"'"$R"'\""] * 1025) + "]}")')
t_is "$(vc req POST /v1/vol/home/getattr "$many" | jerr)" "413 E2BIG" "getattr of 1025 FIDs: 413"
# Per-route limits come before any parsing (issue #12): a getattr body
# past 128 KiB is 413 even when it is one FID and blanks.
python3 -c 'print("{\"fids\": [\"'"$R"'\"]" + " " * (129 << 10) + "}")' >"$T_DIR/pad.json"
t_is "$(raw POST /v1/vol/home/getattr --data-binary @"$T_DIR/pad.json")" "413 E2BIG" "getattr body over 128 KiB: 413"
t_is "$(vc req POST /v1/vol/home/getattr "{\"fids\": [\"$R\"]}" | head -1)" 200 "a small getattr still works"

# Bad names.
for n in 'a/b' '..' '.' '' 'a\u0000b' "$(printf 'n%.0s' $(seq 256))"; do
	t_is "$(op "{\"op\": \"create\", \"parent\": \"$R\", \"name\": \"$n\", \"type\": \"file\", \"mode\": 420, \"uid\": 0, \"gid\": 0}" | cut -d' ' -f1)" 400 "name '${n:0:12}': 400"
done
t_is "$(op "{\"op\": \"create\", \"parent\": \"$R\", \"name\": \"\\udcff\", \"type\": \"file\", \"mode\": 420, \"uid\": 0, \"gid\": 0}" | cut -d' ' -f1)" 400 "a lone surrogate: 400"

# Unknown FIDs.
bogus="${R%%.*}.0000000000000000000000000000beef"
other="00000001.0000000000000000000000000000beef"
t_is "$(vc get "/v1/vol/home/dir/$bogus" | jerr)" "404 ENOENT" "dir of an unknown FID: 404"
t_is "$(vc get "/v1/vol/home/dir/$other" | jerr)" "404 ENOENT" "dir of another volume's FID: 404"
t_is "$(vc get "/v1/vol/home/xattr/$bogus" | jerr)" "404 ENOENT" "xattr of an unknown FID: 404"
t_is "$(vc get "/v1/vol/home/data/$bogus/1/0?size=65536" | jerr)" "404 ENOENT" "data of an unknown FID: 404"
t_is "$(op "{\"op\": \"create\", \"parent\": \"$bogus\", \"name\": \"x\", \"type\": \"file\", \"mode\": 420, \"uid\": 0, \"gid\": 0}")" "404 ENOENT" "create under an unknown FID: 404"
t_is "$(vc get "/v1/vol/home/dir/${R^^}" | jerr)" "400 EINVAL" "an upper-case FID in a path: 400"

# Bad chunk numbers and sizes.
DV=$(vc attr "$F" dv)
for q in "$DV/01?size=65536" "$DV/-1?size=65536" "$DV/x?size=65536" "0$DV/0?size=65536" \
	"$DV/0?size=65536&size=65536" "$DV/0" "$DV/0?size=8388608" "$DV/0?size=%36%35%35%33%36"; do
	t_is "$(raw GET "/v1/vol/home/data/$F/$q")" "400 EINVAL" "chunk path '$q': 400"
done
t_is "$(raw GET "/v1/vol/home/data/$F/$DV/18446744073709551615?size=4194304" | cut -d' ' -f1)" 416 "chunk past any off_t: 416"
t_is "$(raw GET "/v1/vol/home/data/$F/$DV/18446744073709551616?size=65536")" "400 EINVAL" "chunk number overflowing uint64: 400"

# Path traversal: never a file outside the volume, always a JSON 4xx.
for p in "/v1/vol/../../etc/passwd" "/v1/vol/home/../../../etc/passwd" "/v1/vol/%2e%2e/%2e%2e/etc/passwd" \
	"/v1/vol/home/dir/..%2f..%2fetc" "/v1/vol/..%2fhome" "/v1/vol/.home" "/../../etc/passwd" \
	"/v1/vol/home/data/../../../../etc/passwd" "/v1/vol/home%00/dir/$R" "/v1/vol/home//dir/$R" "/v1/vol/home/dir/$R/"; do
	r=$(raw GET "$p")
	code=${r%% *}
	t_ok "$([ "${code:0:1}" = 4 ] && [ "${r#* }" != NOJSON ] && echo 0 || echo 1)" "traversal '$p': $r"
done
t_is "$(raw DELETE "/v1/vol/home/dir/$R" | cut -d' ' -f1)" 405 "DELETE: 405"
t_is "$(raw GET /v1/vol/home/op | cut -d' ' -f1)" 405 "GET of /op: 405"

# Huge headers and bodies.
# Headers under 16 KiB are ours to answer (JSON); at 16 KiB or more
# libevent 2.1 answers its own 400 with an HTML body and closes
# (doc/protocol.md, "Oversized headers").
hdrs() { # HEADER-BYTES [PATH-SUFFIX]: prints "STATUS TYPE CONNECTION JSON|NOJSON"
	local v
	v=$(head -c "$1" /dev/zero | tr '\0' a)
	curl -s -D "$T_DIR/h.txt" -o "$T_DIR/b.txt" -H "X-Big: $v" -H "$(TOKH)" \
		"$VOLD_URL/v1/vol/home${2:-}" >/dev/null
	python3 - "$T_DIR/h.txt" "$T_DIR/b.txt" <<'PY'
import json, sys
h = open(sys.argv[1], encoding="latin-1", newline="").read().split("\r\n")
st = h[0].split(" ")[1] if h and " " in h[0] else "none"
kv = dict((l.split(":", 1)[0].lower(), l.split(":", 1)[1].strip()) for l in h[1:] if ":" in l)
try:
    json.load(open(sys.argv[2])); js = "JSON"
except Exception:
    js = "NOJSON"
print(st, kv.get("content-type", "-").split(";")[0], kv.get("connection", "-"), js)
PY
}
t_is "$(hdrs 15000 | cut -d' ' -f1,4)" "200 JSON" "15 KiB of headers: served"
t_is "$(hdrs 15000 /nosuch | cut -d' ' -f1,4)" "404 JSON" "15 KiB of headers, an error: our JSON"
t_is "$(hdrs 20000)" "400 text/html close NOJSON" "20 KiB of headers: libevent's HTML 400, connection closed"
long=$(head -c 17000 /dev/zero | tr '\0' a)
t_is "$(curl -s -o /dev/null -w '%{http_code}' -H "$(TOKH)" "$VOLD_URL/v1/vol/home?$long")" 400 "a 17 KiB request line: 400"
# A client that keeps sending headers (1 MiB) is cut off; others go on.
python3 - "$VOLD_PORT" <<'PY' >"$T_DIR/hdrflood.log" 2>&1
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=10)
s.sendall(b"GET /v1/ping HTTP/1.1\r\nHost: x\r\n")
try:
    for i in range(1024):
        s.sendall(b"X-Flood: " + b"a" * 1000 + b"\r\n")
    r = s.recv(100)
    print("reply", r[:12])
except OSError as e:
    print("cut off", e)
PY
t_check "1 MiB of headers: refused or cut off" grep -qE "reply b'HTTP/1.1 400|cut off" "$T_DIR/hdrflood.log"
t_is "$(curl -s -o /dev/null -w '%{http_code}' "$VOLD_URL/v1/ping")" 200 "server alive after oversized headers"
head -c $((65 * 1024 * 1024)) /dev/zero >"$T_DIR/huge"
code=$(curl -s -o /dev/null -w '%{http_code}' -X POST --data-binary "@$T_DIR/huge" -H "$(TOKH)" "$VOLD_URL/v1/vol/home/op")
t_is "$code" 413 "65 MiB body: 413"
rm -f "$T_DIR/huge"
# A body shorter than its Content-Length, then the client vanishes.
python3 - "$VOLD_PORT" "$VC_TOKEN" "$R" <<'PY'
import socket, sys
port, tok, root = int(sys.argv[1]), sys.argv[2], sys.argv[3]
body = ('{"op": "mkdir", "opid": "%s", "parent": "%s", "name": "trunc", "mode": 493, "uid": 0, "gid": 0}' % ("ab" * 16, root)).encode()
s = socket.create_connection(("127.0.0.1", port))
s.sendall(b"POST /v1/vol/home/op HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + tok.encode() +
          b"\r\nContent-Length: %d\r\n\r\n" % (len(body) + 50) + body)
s.close()
PY
sleep 0.3
t_is "$(curl -s -o /dev/null -w '%{http_code}' "$VOLD_URL/v1/ping")" 200 "server alive after a truncated body"
t_is "$(vc lookup "$R" trunc >/dev/null 2>&1 && echo made || echo absent)" absent "the truncated mkdir did not happen"

# Nothing changed.
vos export home "$T_DIR/after" || exit 99
t_check "vos export identical before and after" diff -r "$T_DIR/before" "$T_DIR/after"
t_is "$(vc get /v1/vol/home | python3 -c 'import json,sys; print(json.loads(sys.stdin.read().split("\n",1)[1])["event_seq"])')" "$seq0" "no event was produced"
t_is "$(find "$SRV_ROOT" -newer "$T_DIR/stamp" -path '*/data/*' -type f | wc -l)" 0 "no data file was written"
t_done
