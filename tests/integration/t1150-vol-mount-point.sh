#!/bin/bash
# t1150-vol-mount-point: mount points on the server (issue #15, protocol
# 5): the op mkmount and its refusals (empty, too long, bad characters,
# '..', a path), what a client of protocol 5 and an older one are shown
# (listing, getattr, link, op replies: a symlink to "#VOLUME"), opid
# replay, batches, link/rmdir/unlink, a restart of the server, and vos
# export/import keeping them (as symlinks to "#VOLUME.").
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 180
VC="$top_srcdir/tests/integration/vol-client.py"
vc() { python3 "$VC" "$@"; }
jget() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read().split("\n",1)[1]); exec("print(" + sys.argv[1] + ")")' "$1"; }
opst() { local r; r=$(vc op "$1"); echo "$(echo "$r" | head -1) $(echo "$r" | jget 'd.get("errno", "-")')"; }
# curl as a client of protocol $PV: GET PATH | POST PATH BODY
pv_get() { vold_curl -H "Authorization: Bearer $VC_TOKEN" -H "X-Cairn-Protocol: $PV" "$VOLD_URL$1"; }
pv_post() { vold_curl -X POST -H "Authorization: Bearer $VC_TOKEN" -H "X-Cairn-Protocol: $PV" --data-binary "$2" "$VOLD_URL$1"; }
py() { python3 -c "import json,sys; d=json.load(sys.stdin); exec('print(' + sys.argv[1] + ')')" "$1"; }

vold_start || exit 99
vos create home >/dev/null || exit 99
export VC_URL=$VOLD_URL VC_VOL=home
make_token home rw "$T_DIR/rw.tok"
export VC_TOKEN=$(cat "$T_DIR/rw.tok")
R=$(vc root)
own='"uid": 1000, "gid": 100'
files() { vc get /v1/vol/home | jget 'd["files_used"]'; }

# The op, from a client of protocol 5.
PV=5
r=$(pv_post /v1/vol/home/op "{\"op\": \"mkmount\", \"opid\": \"0123456789abcdef0123456789abcdef\", \"parent\": \"$R\", \"name\": \"proj\", \"target\": \"proj\", $own}")
t_ok $? "mkmount: 200"
t_is "$(echo "$r" | py 'd["attr"]["type"], oct(d["attr"]["mode"]), d["attr"]["size"], d["attr"]["uid"], d["attr"]["gid"], d["attr"]["nlink"]')" \
	"mount 0o755 4 1000 100 1" "reply: type mount, mode 0755, size 4, the owner asked for"
M=$(echo "$r" | py 'd["attr"]["fid"]')
t_is "$(pv_get "/v1/vol/home/link/$M" | py 'd["target"]')" proj "protocol 5: the link is the volume"
t_is "$(pv_get "/v1/vol/home/dir/$R" | py '[(e["name"], e["attr"]["type"]) for e in d["entries"]]')" \
	"[('proj', 'mount')]" "protocol 5: listed as a mount point"
# The same opid again: the first reply, nothing made twice.
n=$(files)
r2=$(pv_post /v1/vol/home/op "{\"op\": \"mkmount\", \"opid\": \"0123456789abcdef0123456789abcdef\", \"parent\": \"$R\", \"name\": \"proj\", \"target\": \"proj\", $own}")
t_is "$(echo "$r2" | py 'd["attr"]["fid"]')" "$M" "opid replay: the same reply"
t_is "$(files)" "$n" "opid replay: nothing made"

# An older client (no header: protocol 2; and 4).
t_is "$(vc get "/v1/vol/home/dir/$R" | jget '[(e["name"], e["attr"]["type"], e["attr"]["size"]) for e in d["entries"]]')" \
	"[('proj', 'symlink', 5)]" "no header: a symlink of 5 bytes"
t_is "$(vc get "/v1/vol/home/link/$M" | jget 'd["target"]')" "#proj" "no header: its target is #proj"
PV=4
t_is "$(pv_get "/v1/vol/home/link/$M" | py 'd["target"]')" "#proj" "protocol 4: #proj"
t_is "$(pv_post /v1/vol/home/getattr "{\"fids\": [\"$M\"]}" | py '[(a["type"], a["size"]) for a in d["attrs"]]')" \
	"[('symlink', 5)]" "protocol 4: getattr shows a symlink"
r=$(vc op "{\"op\": \"mkmount\", \"parent\": \"$R\", \"name\": \"lab\", \"target\": \"lab:home\", $own}")
t_is "$(echo "$r" | head -1)" 200 "mkmount from a client without the header (it asked for it)"
t_is "$(echo "$r" | jget 'd["attr"]["type"], d["attr"]["size"]')" "symlink 9" \
	"its reply shows that client a symlink of 9 bytes (#lab:home)"
L=$(echo "$r" | jget 'd["attr"]["fid"]')
PV=5
t_is "$(pv_get "/v1/vol/home/link/$L" | py 'd["target"]')" "lab:home" "protocol 5: lab:home stored"
t_is "$(pv_post /v1/vol/home/getattr "{\"fids\": [\"$M\"]}" | py '[(a["type"], a["size"]) for a in d["attrs"]]')" \
	"[('mount', 4)]" "protocol 5: getattr shows the mount point"

# Refusals: 400, nothing made.
n=$(files)
mk() { echo "{\"op\": \"mkmount\", \"parent\": \"$R\", \"name\": \"bad\", $1 $own}"; }
t_is "$(opst "$(mk '"target": "",')")" "400 EINVAL" "empty target: 400"
t_is "$(opst "$(mk '')")" "400 EINVAL" "no target: 400"
t_is "$(opst "$(mk '"target": 7,')")" "400 EINVAL" "a number: 400"
t_is "$(opst "$(mk "\"target\": \"$(printf 'v%.0s' $(seq 1 65))\",")")" "400 EINVAL" "a 65-byte volume: 400"
t_is "$(opst "$(mk "\"target\": \"$(printf 'v%.0s' $(seq 1 300))\",")")" "400 ENAMETOOLONG" "300 bytes: 400 ENAMETOOLONG"
for bad in ".." "../etc" "/srv" "a/b" "a b" ".x" "a:b:c" ":b" "a:" "a\\u0000b" "caf\\u00e9" "#proj"; do
	t_is "$(opst "$(mk "\"target\": \"$bad\",")")" "400 EINVAL" "target '$bad': 400"
done
t_is "$(opst "{\"op\": \"mkmount\", \"parent\": \"$R\", \"name\": \"..\", \"target\": \"x\", $own}")" \
	"400 EINVAL" "name '..': 400"
t_is "$(opst "{\"op\": \"mkmount\", \"parent\": \"$R\", \"name\": \"proj\", \"target\": \"x\", $own}")" \
	"409 EEXIST" "over an existing name: 409"
t_is "$(opst "{\"op\": \"mkmount\", \"parent\": \"$M\", \"name\": \"in\", \"target\": \"x\", $own}")" \
	"400 ENOTDIR" "inside a mount point: 400 ENOTDIR"
t_is "$(files)" "$n" "nothing made by the refusals"

# Other ops on it.
t_is "$(opst "{\"op\": \"link\", \"parent\": \"$R\", \"name\": \"hard\", \"fid\": \"$M\"}")" "403 EPERM" "link: 403 EPERM"
t_is "$(opst "{\"op\": \"rmdir\", \"parent\": \"$R\", \"name\": \"proj\", \"fid\": \"$M\"}")" "400 ENOTDIR" "rmdir: 400 ENOTDIR"
t_is "$(opst "{\"op\": \"create\", \"parent\": \"$R\", \"name\": \"c\", \"type\": \"mount\", \"mode\": 493, $own}")" \
	"400 EINVAL" "create of type mount: 400"

# A batch with one.
PV=5
r=$(pv_post /v1/vol/home/batch "{\"ops\": [{\"op\": \"mkdir\", \"opid\": \"00000000000000000000000000000b01\", \"parent\": \"$R\", \"name\": \"d\", \"fid\": \"$(echo "$R" | cut -d. -f1).000000000000000000000000000000d1\", \"mode\": 493, $own}, {\"op\": \"mkmount\", \"opid\": \"00000000000000000000000000000b02\", \"parent\": \"$(echo "$R" | cut -d. -f1).000000000000000000000000000000d1\", \"name\": \"m\", \"target\": \"sw\", $own}]}")
t_is "$(echo "$r" | py '[(x["status"], x["body"].get("attr", {}).get("type")) for x in d["results"]]')" \
	"[(200, 'dir'), (200, 'mount')]" "batch: mkdir, then mkmount inside"

r=$(vc batch "{\"ops\": [{\"op\": \"mkmount\", \"parent\": \"$R\", \"name\": \"old\", \"target\": \"o\", $own}]}")
t_is "$(echo "$r" | jget '[(x["status"], x["body"]["attr"]["type"], x["body"]["attr"]["size"]) for x in d["results"]]')" \
	"[(200, 'symlink', 2)]" "batch from a client without the header: a symlink of 2 bytes (#o)"

# A restart keeps them.
vold_stop
vold_restart || exit 99
t_is "$(pv_get "/v1/vol/home/link/$M" | py 'd["target"]')" proj "after a restart: still a mount point for proj"

# vos export and import.
vold_stop
t_check "vos export" "$VOS_BIN" --root "$SRV_ROOT" export home "$T_DIR/out"
t_is "$(readlink "$T_DIR/out/proj") $(readlink "$T_DIR/out/lab") $(readlink "$T_DIR/out/d/m")" \
	"#proj. #lab:home. #sw." "exported as symlinks to #VOLUME."
ln -s '#not a volume.' "$T_DIR/out/plain"
ln -s '#x' "$T_DIR/out/plain2"
vos import home2 "$T_DIR/out" >"$T_DIR/import.log" 2>&1
t_ok $? "vos import of the export"
t_is "$(grep -c "4 symlinks to '#VOLUME.' made mount points" "$T_DIR/import.log")" 1 "import counts the mount points"
vold_restart || exit 99
make_token home2 rw "$T_DIR/rw2.tok"
VC_TOKEN=$(cat "$T_DIR/rw2.tok")
R2=$(VC_VOL=home2 vc root)
t_is "$(pv_get "/v1/vol/home2/dir/$R2" | py 'sorted((e["name"], e["attr"]["type"]) for e in d["entries"])')" \
	"[('d', 'dir'), ('lab', 'mount'), ('old', 'mount'), ('plain', 'symlink'), ('plain2', 'symlink'), ('proj', 'mount')]" \
	"imported: mount points again, other symlinks stay symlinks"
P2=$(pv_get "/v1/vol/home2/dir/$R2" | py '[e["attr"]["fid"] for e in d["entries"] if e["name"] == "lab"][0]')
t_is "$(pv_get "/v1/vol/home2/link/$P2" | py 'd["target"]')" lab:home "imported: target lab:home"
vold_stop
t_check "a second export" "$VOS_BIN" --root "$SRV_ROOT" export home2 "$T_DIR/out2"
t_is "$(readlink "$T_DIR/out2/proj") $(readlink "$T_DIR/out2/plain")" "#proj. #not a volume." "the second export is the same"
vold_restart || exit 99

# rmmount is an unlink on the server.
VC_TOKEN=$(cat "$T_DIR/rw.tok")
t_is "$(opst "{\"op\": \"unlink\", \"parent\": \"$R\", \"name\": \"proj\", \"fid\": \"$M\"}")" "200 -" "unlink: 200"
PV=5
t_is "$(pv_get "/v1/vol/home/dir/$R" | py 'sorted(e["name"] for e in d["entries"])')" "['d', 'lab', 'old']" "gone from the listing"
t_done
