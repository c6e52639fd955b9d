#!/usr/bin/env bash
# t4023-wback-batch: replay sends batches. Through a relay that logs every
# POST (spoilproxy.py): a reintegration of 300 small files made offline
# goes out in POST .../batch requests (a handful, not one per record), and
# so does a writeback drain of 200 files; against a server that answers
# 404 to /batch (the relay in "nobatch" mode, as a protocol 2 server) the
# same replay falls back to one POST .../op per record and still
# succeeds. Each time a fresh client (straight to the server) finds every
# file with its content, and no conflict was made.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 300
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

vold_start || exit 99
vos init >/dev/null 2>&1
vos create bat >/dev/null 2>&1 || exit 99
make_token bat rw "$T_DIR/tok"
direct=$VOLD_URL
echo "pass" >"$T_DIR/mode"
printf 'def spoil(mode, status, headers, body):\n    return headers, body, len(body), 0\n' >"$T_DIR/spoil.py"
spoilproxy_start "$T_DIR/spoil.py" || exit 99
POSTS=$T_DIR/proxy.req.posts
A=$T_DIR/a
cairnd_mount "$A" "$T_DIR/ca" bat "$T_DIR/tok" || exit 1
jst() { "$FS" status --json -m "$A" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }
count() { grep -c "/v1/vol/bat/$1\$" "$POSTS" 2>/dev/null || true; }
# check DIR N TAG: a fresh client straight to the server has N files in
# DIR, each with its content
check() {
	local m=$T_DIR/check-$3 bad=0 i
	VOLD_URL=$direct cairnd_mount "$m" "$T_DIR/cache-check-$3" bat "$T_DIR/tok" || return 1
	t_is "$(ls "$m/$1" 2>/dev/null | wc -l)" "$2" "$3: the server has $2 files in $1"
	for i in $(seq 1 "$2"); do
		[ "$(cat "$m/$1/f$i" 2>/dev/null)" = "$3 $i" ] || bad=$((bad + 1))
	done
	t_is "$bad" 0 "$3: every file has its content"
	cairnd_umount "$m"
}

# --- a reintegration in batches ---
mkdir "$A/off" && ls "$A/off" >/dev/null
t_check "fs disconnect" "$FS" disconnect -m "$A"
for i in $(seq 1 300); do echo "off $i" >"$A/off/f$i"; done
rec=$(jst replay_pending)
: >"$POSTS"
t_check "fs reconnect" "$FS" reconnect -m "$A"
nb=$(count batch) no=$(count op)
echo "# reintegration of $rec records: $nb batch requests, $no single ops"
t_ok "$([ "$nb" -ge 1 ] && [ "$nb" -le $(( rec / 16 + 4 )) ] && echo 0 || echo 1)" \
	"the replay went out in batches ($nb requests for $rec records)"
t_is "$no" 0 "no record went alone"
t_is "$(jst replay_pending)|$(jst conflicts)" "0|0" "the log is empty, no conflicts"
check off 300 off

# --- a writeback drain in batches ---
t_check "fs setpolicy --write-mode writeback" "$FS" setpolicy -m "$A" --write-mode writeback --writeback-delay 500ms
mkdir "$A/wb"
: >"$POSTS"
for i in $(seq 1 200); do echo "wb $i" >"$A/wb/f$i"; done
t_check "fs sync" "$FS" sync -m "$A"
nb=$(count batch) no=$(count op)
echo "# writeback drain: $nb batch requests, $no single ops"
t_ok "$([ "$nb" -ge 1 ] && [ "$nb" -le 40 ] && [ "$no" -eq 0 ] && echo 0 || echo 1)" \
	"the drain went out in batches ($nb requests, $no single ops)"
check wb 200 wb

# --- a server without /batch: single ops ---
t_check "fs setpolicy --write-mode sync" "$FS" setpolicy -m "$A" --write-mode sync
mkdir "$A/old" && ls "$A/old" >/dev/null
echo "pass nobatch" >"$T_DIR/mode"
t_check "fs disconnect" "$FS" disconnect -m "$A"
for i in $(seq 1 50); do echo "old $i" >"$A/old/f$i"; done
: >"$POSTS"
t_check "fs reconnect (the server refuses /batch)" "$FS" reconnect -m "$A"
nb=$(count batch) no=$(count op)
echo "# reintegration against a protocol 2 server: $nb batch requests, $no single ops"
t_ok "$([ "$nb" -le 1 ] && [ "$no" -ge 50 ] && echo 0 || echo 1)" \
	"one refused batch, then single ops ($nb, $no)"
t_is "$(jst replay_pending)|$(jst conflicts)" "0|0" "the log is empty, no conflicts"
check old 50 old
cairnd_umount "$A"
t_done
