#!/bin/bash
# t1080-vol-https: cairn-vold over HTTPS with a self-signed certificate.
# Verified clients get the same answers as over HTTP (ping, chunk bytes, a
# mutation, a staged store); plain HTTP to the TLS port, an unverified
# client, and truncated or garbage handshakes fail cleanly without hurting
# other clients; a bad certificate or key stops the server at start with
# a message naming the file; cairnd mounts over https with --ca-file.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 180
command -v openssl >/dev/null || { echo "# SKIP: no openssl"; exit 77; }
VC="$top_srcdir/tests/integration/vol-client.py"
vc() { python3 "$VC" "$@"; }
jget() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read().split("\n",1)[1]); exec("print(" + sys.argv[1] + ")")' "$1"; }

cert=$T_DIR/cert.pem
key=$T_DIR/key.pem
mkcert() { # CERT KEY
	openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 \
		-addext subjectAltName=IP:127.0.0.1 -days 1 \
		-keyout "$2" -out "$1" >>"$T_DIR/openssl.log" 2>&1
}
mkcert "$cert" "$key" || { echo "# openssl req failed"; exit 99; }
mkcert "$T_DIR/other.pem" "$T_DIR/other.key" || exit 99

# Bad certificate or key: a non-zero exit at start and a message naming
# the file, both in the foreground and as a daemon (the parent waits).
mkdir -p "$SRV_ROOT"
vos init >/dev/null 2>&1
badstart() { # EXPECTED-TEXT ARGS...
	local want=$1 out rc
	shift
	out=$(timeout 10 "$VOLD" --root "$SRV_ROOT" --listen 127.0.0.1:0 \
		--foreground "$@" 2>&1)
	rc=$?
	echo "$out" >>"$T_DIR/badstart.log"
	[ "$rc" = 78 ] && echo "$out" | grep -qF -- "$want"
}
t_check "missing certificate file: exit 78, names it" \
	badstart "cannot load certificate '$T_DIR/nope.pem'" --cert "$T_DIR/nope.pem" --key "$key"
t_check "missing key file: exit 78, names it" \
	badstart "cannot load key '$T_DIR/nope.key'" --cert "$cert" --key "$T_DIR/nope.key"
t_check "a key that is not PEM: exit 78" \
	badstart "cannot load key '$T_DIR/openssl.log'" --cert "$cert" --key "$T_DIR/openssl.log"
# OpenSSL refuses a key of another pair while loading it ("key values
# mismatch"), before our own check_private_key.
t_check "a key of another certificate: exit 78, names it" \
	badstart "cannot load key '$T_DIR/other.key'" --cert "$cert" --key "$T_DIR/other.key"
t_check "a certificate without a key: exit 78" \
	badstart "needs both a certificate and a key" --cert "$cert"
timeout 10 "$VOLD" --root "$SRV_ROOT" --listen 127.0.0.1:0 --cert "$T_DIR/nope.pem" \
	--key "$key" >"$T_DIR/daemon.out" 2>&1
t_is "$?" 78 "as a daemon too: the starting command exits 78"
t_check "as a daemon: it says start-up failed" grep -q "start-up failed" "$T_DIR/daemon.out"

# A volume with a file of three chunks (the last one short).
src=$T_DIR/src
mkdir -p "$src"
head -c $((2 * 262144 + 1000)) /dev/urandom >"$src/big.bin"
echo "hello over tls" >"$src/hello.txt"
vos import home "$src" >/dev/null || exit 99
make_token home rw "$T_DIR/rw.tok"

vold_start --cert "$cert" --key "$key" || exit 99
t_is "${VOLD_URL%%:*}" https "lib.sh gives an https:// URL"
t_is "$(curl -s --cacert "$cert" "$VOLD_URL/v1/ping" | cut -c1-13)" '{"protocol": ' "ping over https with --cacert"
curl -s -o /dev/null "$VOLD_URL/v1/ping"
t_is "$?" 60 "curl without --cacert: certificate not verified (60)"
curl -s -o /dev/null --cacert "$T_DIR/other.pem" "$VOLD_URL/v1/ping"
t_is "$?" 60 "curl with another CA: not verified (60)"

export VC_URL=$VOLD_URL VC_VOL=home VC_TOKEN=$(cat "$T_DIR/rw.tok")
R=$(vc root)
F=$(vc lookup "$R" big.bin)
t_ok "$([ -n "$F" ] && echo 0 || echo 1)" "lookup over https"
DV=$(vc attr "$F" dv)
for i in 0 2; do
	curl -sf --cacert "$cert" -H "Authorization: Bearer $VC_TOKEN" \
		-o "$T_DIR/chunk$i" "$VOLD_URL/v1/vol/home/data/$F/$DV/$i?size=262144"
	t_is "$?" 0 "chunk $i GET over https"
	dd if="$src/big.bin" of="$T_DIR/want$i" bs=262144 skip="$i" count=1 2>/dev/null
	t_check "chunk $i has the right bytes" cmp "$T_DIR/chunk$i" "$T_DIR/want$i"
done
t_check "a whole file by chunk GETs over https" sh -c \
	"python3 '$VC' cat '$F' 262144 | cmp - '$src/big.bin'"

# A mutation with curl, and a staged store through the python client.
body="{\"op\": \"mkdir\", \"opid\": \"$(printf '5a%.0s' $(seq 16))\", \"parent\": \"$R\", \"name\": \"made-over-tls\", \"mode\": 493, \"uid\": 0, \"gid\": 0}"
code=$(curl -s --cacert "$cert" -o "$T_DIR/mkdir.json" -w '%{http_code}' \
	-H "Authorization: Bearer $VC_TOKEN" -H 'Content-Type: application/json' \
	--data-binary "$body" "$VOLD_URL/v1/vol/home/op")
t_is "$code" 200 "mkdir with curl over https: 200"
D=$(vc lookup "$R" made-over-tls)
t_is "$(vc attr "$D" type)" dir "the directory exists"
H=$(vc lookup "$R" hello.txt)
head -c 300000 /dev/urandom >"$T_DIR/new.bin"
t_is "$(vc store "$H" "$T_DIR/new.bin" 65536 | head -1)" 200 "staged store over https: 200"
t_check "the stored bytes read back" sh -c \
	"python3 '$VC' cat '$H' 262144 | cmp - '$T_DIR/new.bin'"

# Plain HTTP to the TLS port fails, and the server keeps serving.
code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$VOLD_PORT/v1/ping")
t_ok "$([ "$code" != 200 ] && echo 0 || echo 1)" "plain HTTP to the TLS port: no answer ($code)"
t_is "$(vold_curl "$VOLD_URL/v1/ping" | cut -c1-13)" '{"protocol": ' "still serving after plain HTTP"

# Truncated and garbage handshakes: one closes at once, one sends junk, one
# stays silent half-way; a verified client is served meanwhile.
python3 - "$VOLD_PORT" >"$T_DIR/hostile.log" 2>&1 <<'PY' &
import os, socket, sys, time
port = int(sys.argv[1])
def c():
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    return s
s = c(); s.sendall(b"\x16\x03\x01"); s.close()
s = c(); s.sendall(b"\x16\x03\x01\x02\x00" + os.urandom(512)); time.sleep(0.2); s.close()
s = c(); s.sendall(os.urandom(8192)); s.close()
held = c(); held.sendall(b"\x16\x03\x01\x00\xff\x01\x00")
time.sleep(3)
held.close()
print("done")
PY
hostile=$!
sleep 0.5
t_is "$(vold_curl --max-time 5 "$VOLD_URL/v1/ping" | cut -c1-13)" '{"protocol": ' "ping while a handshake hangs half-way"
t_check "a chunk while a handshake hangs half-way" sh -c \
	"python3 '$VC' cat '$F' 262144 | cmp - '$src/big.bin'"
wait "$hostile"
t_check "the hostile client ran" grep -q done "$T_DIR/hostile.log"
t_ok "$(kill -0 "$VOLD_PID" 2>/dev/null && echo 0 || echo 1)" "cairn-vold still runs"
t_is "$(vold_curl "$VOLD_URL/v1/ping" | cut -c1-13)" '{"protocol": ' "ping after the hostile handshakes"

# cairnd over https (lib.sh passes --ca-file $VOLD_CA).
make_token home ro "$T_DIR/ro.tok"
mnt=$T_DIR/mnt
cairnd_mount "$mnt" "$T_DIR/cache" home "$T_DIR/ro.tok" || exit 99
t_check "cat through the https mount matches the source" cmp "$mnt/big.bin" "$src/big.bin"
t_check "the stored file through the mount" cmp "$mnt/hello.txt" "$T_DIR/new.bin"
t_check "the new directory through the mount" test -d "$mnt/made-over-tls"
cairnd_umount "$mnt"
t_ok "$?" "cairnd exits after unmount"
t_done
