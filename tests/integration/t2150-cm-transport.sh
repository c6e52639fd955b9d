#!/bin/bash
# t2150-cm-transport: how cairnd reaches its server (issue #12, medium 4).
#  1. Plain http:// to a host that is not loopback (192.0.2.1, a
#     documentation address) is refused at startup, before anything is
#     opened or connected, with a message naming allow-insecure-http.
#  2. With --allow-insecure-http it gets past that check and warns; a
#     missing token file stops it right after, still before any
#     connection. Both runs happen in a network namespace of their own
#     (unshare -n: loopback only) when possible, so no packet can leave.
#  3. http_proxy, HTTPS_PROXY, ALL_PROXY in the environment are ignored: a
#     recording proxy on 127.0.0.1 sees no connection while a file is read.
#  4. With --proxy that proxy carries every request.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 60

netns=""
unshare -n true 2>/dev/null && netns="unshare -n"
[ -n "$netns" ] || echo "# unshare -n not available: relying on the refusal alone"
(umask 077; echo not-a-real-token >"$T_DIR/dummy.tok")

# 1. Refused before anything.
t0=$(date +%s%N)
$netns "$CAIRND" --server http://192.0.2.1:7070 --volume proj \
	--token "$T_DIR/dummy.tok" --cache "$T_DIR/c-refused" \
	--mountpoint "$T_DIR/m-refused" --foreground >"$T_DIR/refused.log" 2>&1
rc=$?
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
t_is "$rc" 78 "http:// to 192.0.2.1: cairnd exits 78 (EX_CONFIG)"
t_check "the message names the option" grep -q -- "allow-insecure-http" "$T_DIR/refused.log"
t_check "the message names the server" grep -q "http://192.0.2.1:7070" "$T_DIR/refused.log"
t_ok "$([ ! -e "$T_DIR/c-refused" ] && echo 0 || echo 1)" "refused before the cache was created"
t_ok "$([ "$ms" -lt 3000 ] && echo 0 || echo 1)" "refused at once (${ms} ms), no connect timeout waited"
t_ok "$(grep -q "cannot reach server" "$T_DIR/refused.log" && echo 1 || echo 0)" "no connection was tried"

# 2. Allowed: past the check, with a warning; stopped by the missing token.
$netns "$CAIRND" --server http://192.0.2.1:7070 --volume proj \
	--token "$T_DIR/missing.tok" --cache "$T_DIR/c-allowed" \
	--mountpoint "$T_DIR/m-allowed" --foreground --allow-insecure-http \
	>"$T_DIR/allowed.log" 2>&1
rc=$?
t_ok "$([ "$rc" -ne 0 ] && [ "$rc" -ne 78 ] && echo 0 || echo 1)" "with --allow-insecure-http: past the option check (exit $rc, not 78)"
t_check "a warning says the token goes in clear text" grep -q "warn.*clear text" "$T_DIR/allowed.log"
t_check "then it stopped at the token file" grep -q "cannot read token file" "$T_DIR/allowed.log"
t_ok "$(grep -q "cannot reach server" "$T_DIR/allowed.log" && echo 1 || echo 0)" "and never tried the server"

# 3. and 4. need a server, a volume and the recording proxy.
vold_start || exit 99
mkdir -p "$T_DIR/src"
head -c 300000 /dev/urandom >"$T_DIR/src/data.bin"
vos import proj "$T_DIR/src" >/dev/null || { echo "# import failed"; exit 99; }
make_token proj ro "$T_DIR/ro.tok"
: >"$T_DIR/proxy.req"
python3 "$top_srcdir/tests/integration/fwdproxy.py" "$T_DIR/proxy.req" \
	"$T_DIR/proxy.port" >"$T_DIR/proxy.log" 2>&1 &
t_track_pid $!
wait_for 10 test -s "$T_DIR/proxy.port" || { echo "# proxy did not start"; exit 99; }
proxy=http://127.0.0.1:$(cat "$T_DIR/proxy.port")

# 3. The environment names the proxy; cairnd must not use it.
http_proxy=$proxy HTTP_PROXY=$proxy https_proxy=$proxy HTTPS_PROXY=$proxy \
	all_proxy=$proxy ALL_PROXY=$proxy \
	cairnd_mount "$T_DIR/env.mnt" "$T_DIR/env.cache" proj "$T_DIR/ro.tok" ||
	exit 99
t_check "environment proxy: the file reads right" cmp "$T_DIR/src/data.bin" "$T_DIR/env.mnt/data.bin"
t_is "$(wc -l <"$T_DIR/proxy.req")" 0 "environment proxy: not one connection to it"
cairnd_umount "$T_DIR/env.mnt"

# 4. The configured proxy carries the requests.
cairnd_mount "$T_DIR/px.mnt" "$T_DIR/px.cache" proj "$T_DIR/ro.tok" \
	--proxy "$proxy" || exit 99
t_check "configured proxy: the file reads right" cmp "$T_DIR/src/data.bin" "$T_DIR/px.mnt/data.bin"
t_check "configured proxy: it saw the volume request" \
	grep -q "^GET http://127.0.0.1:$VOLD_PORT/v1/vol/proj$" "$T_DIR/proxy.req"
t_check "configured proxy: it saw chunk GETs" \
	grep -q "^GET http://127.0.0.1:$VOLD_PORT/v1/vol/proj/data/" "$T_DIR/proxy.req"
t_check "cairnd says it uses the configured proxy" \
	grep -q "configured proxy" "$T_DIR/cairnd-px.mnt.log"
cairnd_umount "$T_DIR/px.mnt"
t_done
