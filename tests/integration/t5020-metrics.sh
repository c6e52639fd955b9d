#!/bin/sh
# t5020-metrics.sh - metrics of both daemons (issue #15): cairn-vold's
# GET /metrics on --metrics-listen, cairnd's `fs metrics` and its loopback
# listener (--metrics-listen). Each scrape must parse under a strict
# reader of the text format (promcheck.py; promtool too when installed),
# carry the documented names with their TYPE, and its counters must move
# after reads and writes; the mode gauge follows fs disconnect and
# reconnect. Bad input: unknown paths, a wrong method, a body, the
# metrics path on the volume listener, and listen addresses that are not
# loopback in cairnd's command line and config file.
. "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}/tests/integration/lib.sh"
t_need_fuse
t_timeout 240
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

PC="python3 $top_srcdir/tests/integration/promcheck.py"
nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }

# scrape_ok FILE DESC: FILE parses (and promtool agrees, if present).
scrape_ok() {
	$PC "$1" >"$1.check" 2>&1
	t_is "$?" 0 "$2 parses strictly ($(tail -n 1 "$1.check"))"
	[ "$?" = 0 ] || sed 's/^/#   /' "$1.check" | head -20
	if command -v promtool >/dev/null 2>&1; then
		t_check "$2: promtool check metrics" sh -c "promtool check metrics <'$1' >/dev/null 2>&1"
	fi
}
val() { # FILE NAME [L=V...]: the sample's value, or "none"
	_f=$1
	shift
	$PC "$_f" get "$@" 2>/dev/null || echo none
}
# A labelled counter has no sample before its first count: absent in
# the old scrape reads as 0, absent in the new one fails.
moved() { # OLD NEW NAME [L=V...]: the sample grew between two scrapes
	_o=$1 _n=$2
	shift 2
	python3 -c 'import sys; a,b=sys.argv[1:]; a = 0 if a == "none" else a; sys.exit(0 if b!="none" and float(b)>float(a) else 1)' \
		"$(val "$_o" "$@")" "$(val "$_n" "$@")"
}

src=$T_DIR/src
mkdir -p "$src/d"
head -c $((700 * 1024)) /dev/urandom >"$src/d/big.bin" # 3 chunks
echo hello >"$src/d/small.txt"
chmod 0755 "$src/d"
chmod 0644 "$src/d/big.bin" "$src/d/small.txt"

vold_start --metrics-listen 0 --metrics-port-file "$T_DIR/metrics.port" || exit 99
vos init >/dev/null 2>&1
vos import home "$src" >"$T_DIR/import.log" 2>&1 || { cat "$T_DIR/import.log"; exit 99; }
vos create proj --quota 10M --files 500 >/dev/null 2>&1 || exit 99
make_token home rw "$T_DIR/tok"
wait_for 5 test -s "$T_DIR/metrics.port" || { echo "# no metrics port file"; exit 99; }
MPORT=$(cat "$T_DIR/metrics.port")
MURL=http://127.0.0.1:$MPORT/metrics
t_check "the metrics listener is on its own port" test "$MPORT" != "$VOLD_PORT"

# --- cairn-vold ----------------------------------------------------------
curl -s -D "$T_DIR/v0.hdr" -o "$T_DIR/v0.txt" "$MURL"
t_check "GET /metrics: 200" grep -q "^HTTP/1.1 200" "$T_DIR/v0.hdr"
t_check "content type is the text format 0.0.4" \
	grep -qi "^Content-Type: text/plain; version=0.0.4" "$T_DIR/v0.hdr"
scrape_ok "$T_DIR/v0.txt" "vold scrape"
for f in cairn_vold_requests_total:counter \
	cairn_vold_request_duration_seconds:histogram \
	cairn_vold_received_bytes_total:counter cairn_vold_sent_bytes_total:counter \
	cairn_vold_connections:gauge cairn_vold_admission_refusals_total:counter \
	cairn_vold_op_commits_total:counter \
	cairn_vold_op_commit_duration_seconds:histogram \
	cairn_vold_event_streams:gauge cairn_vold_volume_used_bytes:gauge \
	cairn_vold_volume_quota_bytes:gauge cairn_vold_volume_objects:gauge \
	cairn_vold_volume_quota_objects:gauge cairn_vold_info:gauge; do
	t_is "$($PC "$T_DIR/v0.txt" type "${f%%:*}")" "${f#*:}" "vold: # TYPE ${f%%:*} ${f#*:}"
done
t_is "$(val "$T_DIR/v0.txt" cairn_vold_volume_objects volume=home)" 4 \
	"home has 4 objects (root, d, two files)"
t_check "home's bytes are counted" \
	test "$(val "$T_DIR/v0.txt" cairn_vold_volume_used_bytes volume=home)" -ge $((700 * 1024))
t_is "$(val "$T_DIR/v0.txt" cairn_vold_volume_quota_bytes volume=home)" 0 "no quota: 0"
t_is "$(val "$T_DIR/v0.txt" cairn_vold_volume_quota_bytes volume=proj)" 10485760 \
	"an unused volume is there too, with its byte quota"
t_is "$(val "$T_DIR/v0.txt" cairn_vold_volume_quota_objects volume=proj)" 500 "and object quota"
t_is "$(val "$T_DIR/v0.txt" cairn_vold_volume_objects volume=proj)" 1 "proj: its root only"
t_is "$(val "$T_DIR/v0.txt" cairn_vold_event_streams volume=proj)" none \
	"looking at a volume does not keep it in use"
t_check "nor open it as a request would (no 'opened' log line)" \
	sh -c "! grep -q \"volume 'proj'.*opened\" '$T_DIR/vold.log'"
t_is "$(val "$T_DIR/v0.txt" cairn_vold_requests_total route=ping code=200)" 1 \
	"lib.sh's one ping was counted"

# Bad input on the metrics listener and on the volume listener.
code() { curl -s -o "$T_DIR/body" -w '%{http_code}' "$@"; }
t_is "$(code "http://127.0.0.1:$MPORT/")" 404 "metrics listener: / is 404"
t_is "$(code "http://127.0.0.1:$MPORT/metricsx")" 404 "metrics listener: /metricsx is 404"
t_is "$(code "http://127.0.0.1:$MPORT/v1/ping")" 404 "metrics listener serves no volume route"
t_is "$(code -X POST "$MURL")" 405 "POST /metrics: 405"
t_is "$(code -X DELETE "$MURL")" 405 "DELETE /metrics: 405"
t_is "$(code -X POST --data-binary "x=1" "$MURL")" 413 "a body on the metrics listener: 413"
t_is "$(code "$VOLD_URL/metrics")" 404 "the volume listener has no /metrics"
t_is "$(code "$MURL?x=1")" 200 "a query string is ignored"

# Admission refusals are counted by reason, and the refused request
# under route "refused": a body without a token, and one too large.
curl -s "$MURL" >"$T_DIR/r0.txt"
code -X POST --data-binary '{}' "$VOLD_URL/v1/vol/home/op" >/dev/null
code -X POST -H "Authorization: Bearer $(cat "$T_DIR/tok")" \
	-H "Content-Type: application/json" --data-binary '{"fids":[]}' \
	"$VOLD_URL/v1/vol/home/getattr" >/dev/null
code -X POST -H "Authorization: Bearer $(cat "$T_DIR/tok")" \
	--data-binary "@$src/d/big.bin" "$VOLD_URL/v1/vol/home/getattr" >/dev/null
curl -s "$MURL" >"$T_DIR/r1.txt"
scrape_ok "$T_DIR/r1.txt" "vold scrape after refusals"
t_check "refusal for the token counted" moved "$T_DIR/r0.txt" "$T_DIR/r1.txt" \
	cairn_vold_admission_refusals_total reason=token
t_check "refusal for the size counted" moved "$T_DIR/r0.txt" "$T_DIR/r1.txt" \
	cairn_vold_admission_refusals_total reason=body_too_large
t_check "the refused request: route refused, code 401" moved "$T_DIR/r0.txt" "$T_DIR/r1.txt" \
	cairn_vold_requests_total route=refused code=401
t_check "the refused request: route refused, code 413" moved "$T_DIR/r0.txt" "$T_DIR/r1.txt" \
	cairn_vold_requests_total route=refused code=413
t_is "$(val "$T_DIR/r1.txt" cairn_vold_requests_total route=getattr code=200)" 1 \
	"the admitted getattr under its route"

# An HTTPS volume listener: the metrics listener still speaks plain HTTP
# (set in the config file this time).
if openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 \
	-addext subjectAltName=IP:127.0.0.1 -days 1 -keyout "$T_DIR/key.pem" \
	-out "$T_DIR/cert.pem" >"$T_DIR/openssl.log" 2>&1; then
	# The listener from cairn-vold.conf(5) this time.
	printf '[vold]\nmetrics-listen = 127.0.0.1:0\nmetrics-port-file = %s\n' \
		"$T_DIR/tls.mport" >"$T_DIR/vold-tls.conf"
	"$VOLD" --root "$T_DIR/srv3" --listen 127.0.0.1:0 --port-file "$T_DIR/tls.port" \
		--cert "$T_DIR/cert.pem" --key "$T_DIR/key.pem" --config "$T_DIR/vold-tls.conf" \
		--foreground >"$T_DIR/vold-tls.log" 2>&1 &
	t_track_pid $!
	wait_for 10 test -s "$T_DIR/tls.mport"
	curl -s "http://127.0.0.1:$(cat "$T_DIR/tls.mport")/metrics" >"$T_DIR/tls.txt"
	scrape_ok "$T_DIR/tls.txt" "metrics of an HTTPS cairn-vold, over plain HTTP"
	t_is "$(code --cacert "$T_DIR/cert.pem" "https://127.0.0.1:$(cat "$T_DIR/tls.port")/v1/ping")" 200 \
		"its volume listener speaks HTTPS"
	# A TLS hello to the plain listener is no request line: cairn-vold
	# would wait its request timeout (30 s) for one; 3 s tell as much.
	t_is "$(code -m 3 "https://127.0.0.1:$(cat "$T_DIR/tls.mport")/metrics")" 000 \
		"its metrics listener does not"
else
	echo "# openssl req failed: no HTTPS check"
fi

# --- cairnd ----------------------------------------------------------------
mnt=$T_DIR/mnt
cairnd_mount "$mnt" "$T_DIR/cache" home "$T_DIR/tok" --metrics-listen 127.0.0.1:0 || exit 1
log=$T_DIR/cairnd-mnt.log
wait_for 5 grep -q "metrics on http://127.0.0.1:[0-9]*/metrics" "$log"
CURL=$(sed -n 's|.*metrics on \(http://127.0.0.1:[0-9]*/metrics\).*|\1|p' "$log" | tail -n 1)
t_check "cairnd logs its metrics address ($CURL)" test -n "$CURL"

"$FS" metrics -m "$mnt" >"$T_DIR/c0.txt" 2>"$T_DIR/c0.err"
t_is "$?" 0 "fs metrics: exit 0"
scrape_ok "$T_DIR/c0.txt" "fs metrics"
for f in cairnd_chunk_hits_total:counter cairnd_chunk_misses_total:counter \
	cairnd_fetched_bytes_total:counter cairnd_fetch_duration_seconds:histogram \
	cairnd_cache_evictions_total:counter cairnd_cache_used_bytes:gauge \
	cairnd_cache_limit_bytes:gauge cairnd_cache_dirty_bytes:gauge \
	cairnd_dirty_files:gauge cairnd_replay_log_records:gauge \
	cairnd_replay_log_bytes:gauge cairnd_replay_log_oldest_age_seconds:gauge \
	cairnd_mode:gauge cairnd_fuse_requests_total:counter cairnd_info:gauge; do
	t_is "$($PC "$T_DIR/c0.txt" type "${f%%:*}")" "${f#*:}" "cairnd: # TYPE ${f%%:*} ${f#*:}"
done
t_is "$(val "$T_DIR/c0.txt" cairnd_mode volume=home mode=connected)" 1 "mode connected: 1"
t_is "$(val "$T_DIR/c0.txt" cairnd_mode volume=home mode=disconnected)" 0 "mode disconnected: 0"
t_is "$(val "$T_DIR/c0.txt" cairnd_replay_log_records volume=home)" 0 "an empty replay log"

"$FS" metrics -m "$mnt" --json >"$T_DIR/c0.json"
t_is "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["content_type"])' "$T_DIR/c0.json")" \
	"text/plain; version=0.0.4; charset=utf-8" "fs metrics --json: content_type"
nobody "$FS" metrics -m "$mnt" >"$T_DIR/nobody.txt" 2>&1
t_is "$?" 0 "uid 65534 may read the metrics (as getcacheparms)"

curl -s -D "$T_DIR/h0.hdr" -o "$T_DIR/h0.txt" "$CURL"
t_check "cairnd GET /metrics: 200" grep -q "^HTTP/1.1 200" "$T_DIR/h0.hdr"
scrape_ok "$T_DIR/h0.txt" "cairnd's listener"
t_is "$($PC "$T_DIR/h0.txt" names | tr '\n' ' ')" "$($PC "$T_DIR/c0.txt" names | tr '\n' ' ')" \
	"the listener and fs metrics give the same families"
CBASE=${CURL%/metrics}
t_is "$(code "$CBASE/")" 404 "cairnd listener: / is 404"
t_is "$(code -X POST "$CURL")" 405 "cairnd listener: POST is 405"

# --- counters move ---------------------------------------------------------
curl -s "$MURL" >"$T_DIR/v1.txt"
"$FS" metrics -m "$mnt" >"$T_DIR/c1.txt"
cat "$mnt/d/big.bin" >/dev/null
cat "$mnt/d/small.txt" >/dev/null
echo "written through the mount" >"$mnt/d/new.txt"
sync
head -c 100000 /dev/urandom >"$mnt/d/new.bin"
curl -s "$MURL" >"$T_DIR/v2.txt"
"$FS" metrics -m "$mnt" >"$T_DIR/c2.txt"
scrape_ok "$T_DIR/v2.txt" "vold scrape after I/O"
scrape_ok "$T_DIR/c2.txt" "fs metrics after I/O"
t_check "cairnd: chunk misses grew" moved "$T_DIR/c1.txt" "$T_DIR/c2.txt" cairnd_chunk_misses_total volume=home
t_check "cairnd: bytes fetched grew" moved "$T_DIR/c1.txt" "$T_DIR/c2.txt" cairnd_fetched_bytes_total volume=home
t_check "cairnd: fetch latency observed" moved "$T_DIR/c1.txt" "$T_DIR/c2.txt" cairnd_fetch_duration_seconds_count volume=home
t_check "cairnd: FUSE reads counted" moved "$T_DIR/c1.txt" "$T_DIR/c2.txt" cairnd_fuse_requests_total volume=home kind=read
t_check "cairnd: stores counted" moved "$T_DIR/c1.txt" "$T_DIR/c2.txt" cairnd_stores_total volume=home
t_check "cairnd: cache use grew" moved "$T_DIR/c1.txt" "$T_DIR/c2.txt" cairnd_cache_used_bytes volume=home
t_check "vold: data GETs counted" moved "$T_DIR/v1.txt" "$T_DIR/v2.txt" cairn_vold_requests_total route=data code=200
t_check "vold: op commits counted" moved "$T_DIR/v1.txt" "$T_DIR/v2.txt" cairn_vold_op_commits_total result=applied
t_check "vold: commit latency observed" moved "$T_DIR/v1.txt" "$T_DIR/v2.txt" cairn_vold_op_commit_duration_seconds_count
t_check "vold: bytes sent grew" moved "$T_DIR/v1.txt" "$T_DIR/v2.txt" cairn_vold_sent_bytes_total
t_check "vold: bytes received grew" moved "$T_DIR/v1.txt" "$T_DIR/v2.txt" cairn_vold_received_bytes_total
t_check "vold: home's usage grew" moved "$T_DIR/v1.txt" "$T_DIR/v2.txt" cairn_vold_volume_used_bytes volume=home
t_check "vold: home's objects grew" moved "$T_DIR/v1.txt" "$T_DIR/v2.txt" cairn_vold_volume_objects volume=home
t_check "vold: data latency observed" \
	test "$(val "$T_DIR/v2.txt" cairn_vold_request_duration_seconds_count route=data)" -ge 3
t_is "$(val "$T_DIR/v2.txt" cairn_vold_event_streams volume=home)" 1 "vold: cairnd's event stream is open"

# --- the mode gauge follows fs disconnect / reconnect ------------------------
"$FS" disconnect -m "$mnt" >/dev/null 2>&1
"$FS" metrics -m "$mnt" >"$T_DIR/c3.txt"
t_is "$(val "$T_DIR/c3.txt" cairnd_mode volume=home mode=disconnected)" 1 "after fs disconnect: disconnected 1"
t_is "$(val "$T_DIR/c3.txt" cairnd_mode volume=home mode=connected)" 0 "after fs disconnect: connected 0"
echo "made offline" >"$mnt/d/offline.txt"
sleep 1.2
"$FS" metrics -m "$mnt" >"$T_DIR/c4.txt"
t_check "offline write: the replay log has a record" \
	test "$(val "$T_DIR/c4.txt" cairnd_replay_log_records volume=home)" -ge 1
age=$(val "$T_DIR/c4.txt" cairnd_replay_log_oldest_age_seconds volume=home)
t_check "its oldest record is over a second old ($age s)" \
	python3 -c 'import sys; sys.exit(0 if 1.0 <= float(sys.argv[1]) < 60 else 1)' "$age"
"$FS" reconnect -m "$mnt" >/dev/null 2>&1
connected() { "$FS" metrics -m "$mnt" >"$T_DIR/c5.txt" && test "$(val "$T_DIR/c5.txt" cairnd_mode volume=home mode=connected)" = 1; }
t_check "after fs reconnect: connected again" wait_for 20 connected
t_check "after reintegration: the replay log is empty" \
	wait_for 10 sh -c "'$FS' metrics -m '$mnt' >'$T_DIR/c6.txt' && $PC '$T_DIR/c6.txt' get cairnd_replay_log_records volume=home | grep -qx 0"

# --- cairnd refuses a metrics listener off loopback ---------------------------
for a in 10.0.0.1:9100 0.0.0.0:9100 "[::]:9100" example.com:9100 127.0.0.1:99999 ":9100" "[::1:9100"; do
	"$CAIRND" --server "$VOLD_URL" --volume home --token "$T_DIR/tok" \
		--cache "$T_DIR/cache2" --mountpoint "$T_DIR/mnt2" --foreground \
		--metrics-listen "$a" >"$T_DIR/bad.out" 2>&1
	rc=$?
	t_is "$rc" 64 "cairnd --metrics-listen $a: refused, EX_USAGE"
	t_check "and says why ($a)" grep -q "metrics-listen" "$T_DIR/bad.out"
done
printf '[cairnd]\nmetrics-listen = 192.168.1.1:9100\n' >"$T_DIR/bad.conf"
"$CAIRND" --config "$T_DIR/bad.conf" --server "$VOLD_URL" --volume home \
	--token "$T_DIR/tok" --cache "$T_DIR/cache2" --mountpoint "$T_DIR/mnt2" \
	--foreground >"$T_DIR/badconf.out" 2>&1
rc=$?
t_is "$rc" 78 "metrics-listen off loopback in cairn.conf: refused, EX_CONFIG"
t_check "and names loopback" grep -q "loopback" "$T_DIR/badconf.out"
t_check "nothing was mounted" sh -c "! mountpoint -q '$T_DIR/mnt2'"

# --- cairn-vold: a bad metrics address fails the start -----------------------
"$VOLD" --root "$T_DIR/srv2" --listen 127.0.0.1:0 --metrics-listen "nonsense" \
	--foreground >"$T_DIR/vbad.out" 2>&1
t_is "$?" 78 "cairn-vold --metrics-listen nonsense: EX_CONFIG"
t_check "and says so" grep -q "bad metrics listen address" "$T_DIR/vbad.out"
"$VOLD" --root "$T_DIR/srv2" --listen 127.0.0.1:0 --metrics-listen "127.0.0.1:$MPORT" \
	--foreground >"$T_DIR/vbusy.out" 2>&1
t_check "cairn-vold with a metrics port in use: fails ($?)" test "$?" -ne 0
t_check "and names the metrics address" grep -q "cannot listen for metrics" "$T_DIR/vbusy.out"

cairnd_umount "$mnt"
t_done
