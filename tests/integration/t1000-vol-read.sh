#!/bin/bash
# t1000-vol-read: every read endpoint of cairn-vold over real HTTP on
# 127.0.0.1: volinfo, getattr, readdirplus (ETag / 304), link, xattr, chunk
# GET (headers, SHA-256, 410 for an old DV, 416 past the end, holes).
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 120
VC="$top_srcdir/tests/integration/vol-client.py"
vc() { python3 "$VC" "$@"; }
jget() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read().split("\n",1)[1]); exec("print(" + sys.argv[1] + ")")' "$1"; }

vold_start || exit 99
src=$T_DIR/src
mkdir -p "$src/sub"
head -c 200000 /dev/urandom >"$src/data.bin"
: >"$src/empty"
echo hello >"$src/sub/hello.txt"
ln -s sub/hello.txt "$src/link"
setfattr -n user.color -v red "$src/data.bin" 2>/dev/null
truncate -s 300000 "$src/sparse"
vos import proj "$src" >/dev/null || { echo "# import failed"; exit 99; }
export VC_URL=$VOLD_URL VC_VOL=proj
make_token proj rw "$T_DIR/rw.tok"
make_token proj ro "$T_DIR/ro.tok"
export VC_TOKEN=$(cat "$T_DIR/rw.tok")

# volinfo
r=$(vc get /v1/vol/proj)
t_is "$(echo "$r" | head -1)" 200 "volinfo 200"
t_is "$(echo "$r" | jget 'd["volume"], d["protocol"], d["readonly"], d["files_used"]')" "proj 8 False 7" "volinfo fields"
ROOT=$(vc root)
t_is "$(VC_TOKEN=$(cat "$T_DIR/ro.tok") vc get /v1/vol/proj | jget 'd["readonly"]')" True "readonly true with an ro token"
t_is "$(vc get /v1/vol/nosuch | head -1)" 403 "another volume's name with this token: 403"

# readdirplus + ETag
r=$(vc get "/v1/vol/proj/dir/$ROOT")
t_is "$(echo "$r" | head -1)" 200 "dir 200"
t_is "$(echo "$r" | jget '" ".join(sorted(e["name"] for e in d["entries"]))')" "data.bin empty link sparse sub" "dir entries"
t_is "$(echo "$r" | jget 'all("attr" in e and e["attr"]["fid"] for e in d["entries"])')" True "every entry has attributes"
etag=$(curl -s -D - -o /dev/null -H "Authorization: Bearer $VC_TOKEN" "$VOLD_URL/v1/vol/proj/dir/$ROOT" | tr -d '\r' | sed -n 's/^ETag: //p')
dv=$(echo "$r" | jget 'd["dir"]["dv"]')
t_is "$etag" "\"$dv\"" "dir ETag is the quoted DV"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $VC_TOKEN" -H "If-None-Match: $etag" "$VOLD_URL/v1/vol/proj/dir/$ROOT")
t_is "$code" 304 "If-None-Match with the current DV: 304"
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $VC_TOKEN" -H "If-None-Match: \"999999\"" "$VOLD_URL/v1/vol/proj/dir/$ROOT")
t_is "$code" 200 "If-None-Match with another DV: 200"

DATA=$(vc lookup "$ROOT" data.bin)
EMPTY=$(vc lookup "$ROOT" empty)
LINK=$(vc lookup "$ROOT" link)
SPARSE=$(vc lookup "$ROOT" sparse)
r=$(vc get "/v1/vol/proj/dir/$DATA")
t_is "$(echo "$r" | head -1) $(echo "$r" | jget 'd["errno"]')" "400 ENOTDIR" "dir of a file: 400 ENOTDIR"

# getattr (bulk, in order, unknown FIDs as errno entries)
bogus="${ROOT%%.*}.00000000000000000000000000000001"
r=$(vc req POST /v1/vol/proj/getattr "{\"fids\": [\"$DATA\", \"$bogus\", \"$ROOT\"]}")
t_is "$(echo "$r" | head -1)" 200 "getattr 200"
t_is "$(echo "$r" | jget 'd["attrs"][0]["size"], d["attrs"][1]["errno"], d["attrs"][2]["type"]')" "200000 ENOENT dir" "getattr in order with an ENOENT entry"

# link, xattr
t_is "$(vc get "/v1/vol/proj/link/$LINK" | jget 'd["target"]')" "sub/hello.txt" "readlink"
r=$(vc get "/v1/vol/proj/link/$DATA")
t_is "$(echo "$r" | head -1) $(echo "$r" | jget 'd["errno"]')" "400 EINVAL" "link of a file: 400 EINVAL"
t_is "$(vc get "/v1/vol/proj/xattr/$DATA" | jget 'd["xattrs"].get("user.color")')" "cmVk" "xattr user.color is base64 of red"

# chunk GET
DV=$(vc attr "$DATA" dv)
cs=65536
for chunk in 0 3; do
	hdr=$T_DIR/h$chunk body=$T_DIR/b$chunk
	code=$(curl -s -D "$hdr" -o "$body" -w '%{http_code}' -H "Authorization: Bearer $VC_TOKEN" "$VOLD_URL/v1/vol/proj/data/$DATA/$DV/$chunk?size=$cs")
	t_is "$code" 200 "chunk $chunk: 200"
	want=$(dd if="$src/data.bin" bs=$cs skip=$chunk count=1 2>/dev/null | sha256sum | cut -d' ' -f1)
	t_is "$(sha256sum <"$body" | cut -d' ' -f1)" "$want" "chunk $chunk: the bytes of the file"
	t_is "$(tr -d '\r' <"$hdr" | sed -n 's/^X-Cairn-SHA256: //p')" "$want" "chunk $chunk: X-Cairn-SHA256 matches sha256sum"
	t_is "$(tr -d '\r' <"$hdr" | sed -n 's/^X-Cairn-Size: //p')" 200000 "chunk $chunk: X-Cairn-Size"
	t_is "$(tr -d '\r' <"$hdr" | sed -n 's/^Cache-Control: //p')" "private, max-age=31536000, immutable" "chunk $chunk: immutable, private (volume not public)"
	t_is "$(tr -d '\r' <"$hdr" | sed -n 's/^ETag: //p')" "\"$DATA-$DV-$cs-$chunk\"" "chunk $chunk: ETag"
done
t_is "$(stat -c %s "$T_DIR/b3")" $((200000 - 3 * cs)) "last chunk is short"
# The second GET of a chunk comes from the server's cache: same answer.
code=$(curl -s -D "$T_DIR/h0b" -o "$T_DIR/b0b" -w '%{http_code}' -H "Authorization: Bearer $VC_TOKEN" "$VOLD_URL/v1/vol/proj/data/$DATA/$DV/0?size=$cs")
t_check "cached chunk 0 has the same bytes" cmp "$T_DIR/b0" "$T_DIR/b0b"
r=$(vc get "/v1/vol/proj/data/$DATA/$((DV - 1))/0?size=$cs")
t_is "$(echo "$r" | head -1) $(echo "$r" | jget 'd["errno"], d["dv"]')" "410 ESTALE $DV" "old DV: 410 with the current dv"
r=$(vc get "/v1/vol/proj/data/$DATA/$DV/4?size=$cs")
t_is "$(echo "$r" | head -1) $(echo "$r" | jget 'd["errno"]')" "416 ERANGE" "chunk past the end: 416"
r=$(vc get "/v1/vol/proj/data/$DATA/$DV/99999999999999?size=$cs")
t_is "$(echo "$r" | head -1)" 416 "a huge chunk number: 416"
EDV=$(vc attr "$EMPTY" dv)
code=$(curl -s -o "$T_DIR/e0" -w '%{http_code}' -H "Authorization: Bearer $VC_TOKEN" "$VOLD_URL/v1/vol/proj/data/$EMPTY/$EDV/0?size=$cs")
t_is "$code:$(stat -c %s "$T_DIR/e0")" "200:0" "chunk 0 of an empty file: 200, empty"
t_is "$(vc get "/v1/vol/proj/data/$EMPTY/$EDV/1?size=$cs" | head -1)" 416 "chunk 1 of an empty file: 416"
SDV=$(vc attr "$SPARSE" dv)
curl -s -o "$T_DIR/s1" -H "Authorization: Bearer $VC_TOKEN" "$VOLD_URL/v1/vol/proj/data/$SPARSE/$SDV/1?size=$cs"
t_is "$(sha256sum <"$T_DIR/s1" | cut -d' ' -f1)" "$(head -c $cs /dev/zero | sha256sum | cut -d' ' -f1)" "a hole reads as zeros"
t_is "$(vc get "/v1/vol/proj/data/$ROOT/1/0?size=$cs" | head -1)" 400 "chunk GET of a directory: 400"
t_is "$(vc get "/v1/vol/proj/data/$DATA/$DV/0?size=1000" | head -1)" 400 "chunk size not a power of two: 400"
t_is "$(vc get /v1/ping | jget 'd["protocol"]')" 8 "ping"
t_done
