#!/usr/bin/env bash
# t2205-vol-chunk-sums-kept: cairn-vold keeps the sums of a chunk (its
# SHA-256 and block CRC32Cs) after it lets the data file go (issue #16:
# with a tree larger than its cache of open files, every chunk GET hashed
# the chunk again). With cache-objects = 16 and 40 files, the second GET
# of each file opens it on a worker but hashes nothing; every reply still
# carries the file's bytes and their SHA-256, and an old DV is still 410.
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 120

src=$T_DIR/src
mkdir -p "$src"
for i in $(seq 1 40); do
	head -c $((i * 997)) /dev/urandom >"$src/f$i"
done
printf '[vold]\ncache-objects = 16\n' >"$T_DIR/vold.conf"
vold_start --config "$T_DIR/vold.conf" --metrics-listen 0 \
	--metrics-port-file "$T_DIR/metrics.port" || exit 99
vos init >/dev/null 2>&1
vos import sk "$src" >/dev/null || exit 99
make_token sk ro "$T_DIR/tok"
auth="Authorization: Bearer $(cat "$T_DIR/tok")"
wait_for 5 test -s "$T_DIR/metrics.port" || { echo "# no metrics port"; exit 99; }
MURL=http://127.0.0.1:$(cat "$T_DIR/metrics.port")/metrics
metric() { curl -sf "$MURL" | awk -v n="$1" '$1 == n {print $2}'; }

root=$(vold_curl -H "$auth" "$VOLD_URL/v1/vol/sk" | python3 -c 'import json,sys; print(json.load(sys.stdin)["root"])')
vold_curl -H "$auth" "$VOLD_URL/v1/vol/sk/dir/$root" | python3 -c 'import json,sys
for e in json.load(sys.stdin)["entries"]:
    print(e["name"], e["attr"]["fid"], e["attr"]["dv"])' >"$T_DIR/files"
t_is "$(wc -l <"$T_DIR/files")" 40 "40 files listed"

# pass N: GET chunk 0 of every file; check bytes and the SHA-256 header.
pass() {
	local bad=0 name fid dv sha
	while read -r name fid dv; do
		curl -s -H "$auth" -D "$T_DIR/h" -o "$T_DIR/b" \
			"$VOLD_URL/v1/vol/sk/data/$fid/$dv/0?size=262144"
		sha=$(tr -d '\r' <"$T_DIR/h" | awk -F': ' 'tolower($1) == "x-cairn-sha256" {print $2}')
		cmp -s "$T_DIR/b" "$src/$name" &&
			[ "$sha" = "$(sha256sum <"$src/$name" | cut -d' ' -f1)" ] ||
			bad=$((bad + 1))
	done <"$T_DIR/files"
	echo "$bad"
}
h0=$(metric cairn_vold_chunk_hashes_total)
t_is "$(pass)" 0 "first pass: every reply has the file's bytes and SHA-256"
h1=$(metric cairn_vold_chunk_hashes_total)
t_is "$((h1 - h0))" 40 "first pass hashed each of the 40 chunks"
t_check "at most 16 files kept open" test "$(metric cairn_vold_open_data_files)" -le 16
t_is "$(metric cairn_vold_chunk_sums)" 40 "the sums of all 40 chunks are kept"

t_is "$(pass)" 0 "second pass: the same bytes and SHA-256s"
h2=$(metric cairn_vold_chunk_hashes_total)
t_is "$((h2 - h1))" 0 "second pass hashed nothing (the files were reopened)"
t_check "still at most 16 files open" test "$(metric cairn_vold_open_data_files)" -le 16

# A DV that is not current is refused, kept sums or not.
set -- $(head -n 1 "$T_DIR/files")
code=$(curl -s -o /dev/null -w '%{http_code}' -H "$auth" \
	"$VOLD_URL/v1/vol/sk/data/$2/$(($3 + 1))/0?size=262144")
t_is "$code" 410 "a GET of another DV: 410"
# Another chunk size is another content: hashed anew, right bytes.
curl -s -H "$auth" -o "$T_DIR/b" "$VOLD_URL/v1/vol/sk/data/$2/$3/0?size=65536"
t_check "chunk size 64 KiB: the file's first 64 KiB" cmp "$T_DIR/b" \
	<(head -c 65536 "$src/$1")
t_is "$(($(metric cairn_vold_chunk_hashes_total) - h2))" 1 "and hashed once"
t_done
