#!/bin/bash
# bench-vol.sh - chunk GET throughput of cairn-vold against nginx serving
# the same bytes as static files on 127.0.0.1 (ratio in the same run), at
# 1, 8 and 64 concurrent connections; then readdirplus of a 10,000-entry
# directory; then mutations (tests/bench/bench-vol-mut.py): ops/s and
# server CPU per op for creates and setattrs one at a time, creates from 8
# concurrent clients (group commits), and batches of 1, 16 and 256.
# Run by `make bench`. Needs wrk and nginx (installs wrk with apt-get when
# root and missing) for the GET rows.
#
# BENCH_VOL_ONLY=mut runs only the mutation rows. BENCH_VOLD_BASE=PATH
# runs them also against another cairn-vold binary (say, one built from
# main), in the same run, alternating, for a same-run before/after; its
# volume is made by BENCH_VOS_BASE (default: the vos beside it in its
# build tree, ../admin/vos), since volume formats may differ.
# BENCH_MUT_OPS sets the ops per row (default 2000).
set -u
: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir/build}"
VOLD=$top_builddir/vol/cairn-vold
VOS=$top_builddir/admin/vos
DUR=${BENCH_DURATION:-5}
CS=262144
W=$(mktemp -d "${TMPDIR:-/tmp}/bench-vol.XXXXXX")
PIDS=""
cleanup() { for p in $PIDS; do kill "$p" 2>/dev/null; done; sleep 0.2; rm -rf "$W"; }
trap cleanup EXIT

# Mutations against a fresh volume made by vos $3 and served by binary
# $1, labelled $2.
bench_mut() { # VOLD LABEL VOS
	local root=$W/mut-$2 port pid tok
	"$3" --root "$root" create mut >/dev/null || return 1
	tok=$("$3" --root "$root" token mut --rw)
	rm -f "$W/mport"
	"$1" --root "$root" --listen 127.0.0.1:0 --port-file "$W/mport" --foreground \
		--log-level warn >>"$W/vold-mut.log" 2>&1 &
	pid=$!
	for _ in $(seq 100); do [ -s "$W/mport" ] && break; sleep 0.05; done
	port=$(cat "$W/mport")
	python3 "$top_srcdir/tests/bench/bench-vol-mut.py" "http://127.0.0.1:$port" mut \
		"$tok" "$pid" "$2"
	kill "$pid"
	wait "$pid" 2>/dev/null
	rm -rf "$root"
}

mut_rows() {
	echo "mutations, each fsynced before its reply (ops, s, ops/s, server CPU ms/op; load: $(cut -d' ' -f1-3 /proc/loadavg)):"
	printf '%-8s %-22s %6s %8s %9s %9s\n' binary row ops s ops/s cpu-ms/op
	local bvos=${BENCH_VOS_BASE:-$(dirname "${BENCH_VOLD_BASE:-.}")/../admin/vos}
	for round in 1 2; do
		[ -n "${BENCH_VOLD_BASE:-}" ] &&
			bench_mut "$BENCH_VOLD_BASE" "base$round" "$bvos"
		bench_mut "$VOLD" "this$round" "$VOS"
	done
}

if [ "${BENCH_VOL_ONLY:-}" = mut ]; then
	mut_rows
	exit 0
fi

if ! command -v wrk >/dev/null; then
	[ "$(id -u)" -eq 0 ] && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null 2>&1
fi
command -v wrk >/dev/null || { echo "bench-vol: wrk not available, skipping"; exit 0; }
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "bench-vol: nginx not available (apt-get install nginx-light), skipping"; exit 0; }

# A 64 MiB file (256 chunks of 256 KiB) and a 10,000-entry directory.
mkdir -p "$W/src/big10k"
head -c $((64 << 20)) /dev/urandom >"$W/src/data"
for i in $(seq 1 10000); do : >"$W/src/big10k/entry-number-$i"; done
t0=$(date +%s.%N)
"$VOS" --root "$W/srv" import bench "$W/src" >/dev/null || exit 1
t1=$(date +%s.%N)
TOK=$("$VOS" --root "$W/srv" token bench --ro)
"$VOLD" --root "$W/srv" --listen 127.0.0.1:0 --port-file "$W/port" --foreground --log-level warn \
	>"$W/vold.log" 2>&1 &
PIDS="$PIDS $!"
for _ in $(seq 100); do [ -s "$W/port" ] && break; sleep 0.05; done
PORT=$(cat "$W/port")
H="Authorization: Bearer $TOK"
j() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
ROOT=$(curl -s -H "$H" "http://127.0.0.1:$PORT/v1/vol/bench" | j 'd["root"]')
read -r FID DV < <(curl -s -H "$H" "http://127.0.0.1:$PORT/v1/vol/bench/dir/$ROOT" |
	j '" ".join(str(x) for e in d["entries"] if e["name"] == "data" for x in (e["attr"]["fid"], e["attr"]["dv"]))')
BIG=$(curl -s -H "$H" "http://127.0.0.1:$PORT/v1/vol/bench/dir/$ROOT" | j '[e["attr"]["fid"] for e in d["entries"] if e["name"] == "big10k"][0]')

# The same bytes as static files under the same paths for nginx.
mkdir -p "$W/www/v1/vol/bench/data/$FID/$DV"
: >"$W/paths"
for c in $(seq 0 255); do
	dd if="$W/src/data" of="$W/www/v1/vol/bench/data/$FID/$DV/$c" bs=$CS skip=$c count=1 2>/dev/null
	echo "/v1/vol/bench/data/$FID/$DV/$c?size=$CS" >>"$W/paths"
done
mkdir -p "$W/nginx"
# nginx's workers run as www-data: let them read the static copy.
chmod 755 "$W"
chmod -R a+rX "$W/www"
cat >"$W/nginx.conf" <<NG
worker_processes 1;
pid $W/nginx/nginx.pid;
error_log $W/nginx/error.log;
daemon off;
events { worker_connections 1024; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path $W/nginx;
    proxy_temp_path $W/nginx;
    fastcgi_temp_path $W/nginx;
    uwsgi_temp_path $W/nginx;
    scgi_temp_path $W/nginx;
    server {
        listen 127.0.0.1:0;
        root $W/www;
        location / { default_type application/octet-stream; }
    }
}
NG
# nginx cannot report a port it picked: take a free one.
NPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed -i "s/listen 127.0.0.1:0;/listen 127.0.0.1:$NPORT;/" "$W/nginx.conf"
"$NGINX" -c "$W/nginx.conf" -p "$W/nginx" >/dev/null 2>&1 &
PIDS="$PIDS $!"
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$NPORT/v1/vol/bench/data/$FID/$DV/0" && break; sleep 0.05; done

# Warm both (page cache, vold's SHA cache).
export BENCH_PATHS=$W/paths
LUA=$top_srcdir/tests/bench/bench-vol.lua
wrk -t1 -c4 -d2s -s "$LUA" -H "$H" "http://127.0.0.1:$PORT" >/dev/null 2>&1
wrk -t1 -c4 -d2s -s "$LUA" "http://127.0.0.1:$NPORT" >/dev/null 2>&1

run() { # URL CONNS -> "req/s MB/s"
	local th=$(( $2 < 2 ? 1 : 2 ))
	wrk -t$th -c"$2" -d"${DUR}s" -s "$LUA" -H "$H" "$1" 2>/dev/null | awk '
		/^Requests\/sec/ { r = $2 }
		/^Transfer\/sec/ { v = $2; u = substr(v, length(v) - 1); v = v + 0;
			if (u == "GB") v *= 1024; else if (u == "KB") v /= 1024; m = v }
		END { printf "%.0f %.1f\n", r, m }'
}
echo "chunk GETs of $((CS / 1024)) KiB, ${DUR}s each (cairn-vold vs nginx-light, 1 worker, sendfile):"
printf '%-6s %12s %12s %12s %12s %8s %8s\n' conns vold-req/s vold-MB/s nginx-req/s nginx-MB/s req-ratio MB-ratio
for c in 1 8 64; do
	read -r vr vm < <(run "http://127.0.0.1:$PORT" $c)
	read -r nr nm < <(run "http://127.0.0.1:$NPORT" $c)
	printf '%-6s %12s %12s %12s %12s %8s %8s\n' "$c" "$vr" "$vm" "$nr" "$nm" \
		"$(awk -v a="$vr" -v b="$nr" 'BEGIN { printf "%.2f", b ? a / b : 0 }')" \
		"$(awk -v a="$vm" -v b="$nm" 'BEGIN { printf "%.2f", b ? a / b : 0 }')"
done

# readdirplus of 10,000 entries: cold (first, reads tdb) and warm.
echo
echo "10,000-entry directory: vos import of the tree took $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f", b - a }') s"
for k in first second; do
	curl -s -o "$W/dir.json" -w "readdirplus ($k): %{time_total} s, %{size_download} bytes\n" \
		-H "$H" "http://127.0.0.1:$PORT/v1/vol/bench/dir/$BIG"
done
echo "entries: $(j 'len(d["entries"])' <"$W/dir.json")"
TOKW=$("$VOS" --root "$W/srv" token bench --rw)
# Flush the 128 MiB this script wrote, or the first fsyncs pay for it.
sync
t0=$(date +%s.%N)
for i in $(seq 1 50); do
	curl -s -o /dev/null -w '%{time_starttransfer}\n' -H "Authorization: Bearer $TOKW" -X POST "http://127.0.0.1:$PORT/v1/vol/bench/op" \
		--data "{\"op\": \"create\", \"opid\": \"$(printf '%032x' $((i + 7)))\", \"parent\": \"$BIG\", \"name\": \"new-$i\", \"type\": \"file\", \"mode\": 420, \"uid\": 0, \"gid\": 0}" >>"$W/ttfb"
done
echo "  (median time to first byte: $(sort -n "$W/ttfb" | sed -n 25p) s)"
t1=$(date +%s.%N)
echo "create in the 10,000-entry directory (fsynced, one at a time): $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) * 1000 / 50 }') ms each"

echo
mut_rows
