#!/bin/bash
# t1010-vol-mutate: every mutation of POST /op over HTTP with its refusals
# (409, 412, 4xx), opid replay (same reply, nothing changed twice), and a
# store staged in several PUTs that becomes visible at once.
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 180
VC="$top_srcdir/tests/integration/vol-client.py"
vc() { python3 "$VC" "$@"; }
jget() { python3 -c 'import json,sys; d=json.loads(sys.stdin.read().split("\n",1)[1]); exec("print(" + sys.argv[1] + ")")' "$1"; }
# op JSON -> "STATUS ERRNO"
opst() { local r; r=$(vc op "$1"); echo "$(echo "$r" | head -1) $(echo "$r" | jget 'd.get("errno", "-")')"; }

vold_start || exit 99
vos create home >/dev/null || exit 99
export VC_URL=$VOLD_URL VC_VOL=home
make_token home rw "$T_DIR/rw.tok"
export VC_TOKEN=$(cat "$T_DIR/rw.tok")
R=$(vc root)
own='"uid": 1000, "gid": 1000'

# create / mkdir / symlink
r=$(vc op "{\"op\": \"create\", \"parent\": \"$R\", \"name\": \"a\", \"type\": \"file\", \"mode\": 420, $own}")
t_is "$(echo "$r" | head -1)" 200 "create"
A=$(echo "$r" | jget 'd["attr"]["fid"]')
t_is "$(echo "$r" | jget 'd["attr"]["uid"], d["attr"]["mode"], d["parent"]["fid"] == "'"$R"'"')" "1000 420 True" "create reply: attr and parent"
t_is "$(opst "{\"op\": \"create\", \"parent\": \"$R\", \"name\": \"a\", \"type\": \"file\", \"mode\": 420, $own}")" "409 EEXIST" "create over a name: 409"
r=$(vc op "{\"op\": \"mkdir\", \"parent\": \"$R\", \"name\": \"d\", \"mode\": 493, $own}")
D=$(echo "$r" | jget 'd["attr"]["fid"]')
t_is "$(echo "$r" | jget 'd["attr"]["type"]')" dir "mkdir"
t_is "$(opst "{\"op\": \"symlink\", \"parent\": \"$D\", \"name\": \"s\", \"target\": \"../a\", $own}")" "200 -" "symlink"
t_is "$(opst "{\"op\": \"create\", \"parent\": \"$A\", \"name\": \"x\", \"type\": \"file\", \"mode\": 420, $own}")" "400 ENOTDIR" "create in a file: 400"
t_is "$(opst "{\"op\": \"create\", \"parent\": \"$R\", \"name\": \"f\", \"type\": \"fifo\", \"mode\": 420, $own}")" "200 -" "create a fifo"
CH="${R%%.*}.0123456789abcdef0123456789abcdef"
t_is "$(opst "{\"op\": \"create\", \"parent\": \"$R\", \"name\": \"chosen\", \"fid\": \"$CH\", \"type\": \"file\", \"mode\": 420, $own}")" "200 -" "create with a client-chosen FID"
t_is "$(vc lookup "$R" chosen)" "$CH" "the object has the chosen FID"
t_is "$(opst "{\"op\": \"create\", \"parent\": \"$R\", \"name\": \"chosen2\", \"fid\": \"$CH\", \"type\": \"file\", \"mode\": 420, $own}")" "409 EEXIST" "a chosen FID that exists: 409"

# link / unlink / rmdir
t_is "$(opst "{\"op\": \"link\", \"parent\": \"$D\", \"name\": \"hard\", \"fid\": \"$A\"}")" "200 -" "link"
t_is "$(vc attr "$A" nlink)" 2 "nlink 2"
t_is "$(opst "{\"op\": \"link\", \"parent\": \"$R\", \"name\": \"dl\", \"fid\": \"$D\"}")" "403 EPERM" "link a directory: 403"
t_is "$(opst "{\"op\": \"link\", \"parent\": \"$R\", \"name\": \"a\", \"fid\": \"$A\"}")" "409 EEXIST" "link over a name: 409"
t_is "$(opst "{\"op\": \"unlink\", \"parent\": \"$R\", \"name\": \"a\", \"fid\": \"$D\"}")" "412 ECANCELED" "unlink with another FID: 412"
t_is "$(opst "{\"op\": \"unlink\", \"parent\": \"$R\", \"name\": \"zz\", \"fid\": \"$A\"}")" "404 ENOENT" "unlink a missing name: 404"
t_is "$(opst "{\"op\": \"unlink\", \"parent\": \"$R\", \"name\": \"d\", \"fid\": \"$D\"}")" "400 EISDIR" "unlink a directory: 400"
t_is "$(opst "{\"op\": \"rmdir\", \"parent\": \"$R\", \"name\": \"d\", \"fid\": \"$D\"}")" "409 ENOTEMPTY" "rmdir non-empty: 409"
t_is "$(opst "{\"op\": \"unlink\", \"parent\": \"$D\", \"name\": \"hard\", \"fid\": \"$A\"}")" "200 -" "unlink the link"
t_is "$(vc attr "$A" nlink)" 1 "nlink 1"

# rename
B=$(vc create "$R" b)
t_is "$(opst "{\"op\": \"rename\", \"parent\": \"$R\", \"name\": \"a\", \"fid\": \"$A\", \"newparent\": \"$R\", \"newname\": \"b\"}")" "412 ECANCELED" "rename onto a name without victim: 412"
t_is "$(opst "{\"op\": \"rename\", \"parent\": \"$R\", \"name\": \"a\", \"fid\": \"$A\", \"newparent\": \"$R\", \"newname\": \"b\", \"flags\": [\"noreplace\"]}")" "409 EEXIST" "noreplace: 409"
t_is "$(opst "{\"op\": \"rename\", \"parent\": \"$R\", \"name\": \"a\", \"fid\": \"$A\", \"newparent\": \"$R\", \"newname\": \"b\", \"flags\": [\"noreplace\", \"exchange\"], \"victim\": \"$B\"}")" "400 EINVAL" "both flags: 400"
r=$(vc op "{\"op\": \"rename\", \"parent\": \"$R\", \"name\": \"a\", \"fid\": \"$A\", \"newparent\": \"$D\", \"newname\": \"a2\"}")
t_is "$(echo "$r" | head -1)" 200 "rename across directories"
t_is "$(echo "$r" | jget '"newparent" in d and "parent" in d')" True "reply has parent and newparent"
t_is "$(vc lookup "$D" a2)" "$A" "the object is at its new name"
t_is "$(opst "{\"op\": \"rename\", \"parent\": \"$D\", \"name\": \"a2\", \"fid\": \"$A\", \"newparent\": \"$R\", \"newname\": \"b\", \"victim\": \"$B\"}")" "200 -" "rename over b with victim b"
t_is "$(vc req POST /v1/vol/home/getattr "{\"fids\": [\"$B\"]}" | jget 'd["attrs"][0]["errno"]')" ENOENT "the victim is gone"
E=$(vc mkdir "$R" e)
t_is "$(opst "{\"op\": \"rename\", \"parent\": \"$R\", \"name\": \"d\", \"fid\": \"$D\", \"newparent\": \"$D\", \"newname\": \"x\"}")" "400 EINVAL" "a directory into itself: 400"
t_is "$(opst "{\"op\": \"rename\", \"parent\": \"$R\", \"name\": \"d\", \"fid\": \"$D\", \"newparent\": \"$R\", \"newname\": \"e\", \"flags\": [\"exchange\"], \"victim\": \"$E\"}")" "200 -" "exchange d and e"
t_is "$(vc lookup "$R" e)" "$D" "e is now the old d"

# setattr
dv=$(vc attr "$A" dv)
t_is "$(opst "{\"op\": \"setattr\", \"fid\": \"$A\", \"base_dv\": $((dv + 1)), \"mask\": [\"mode\"], \"mode\": 384}")" "412 ECANCELED" "setattr on a stale dv: 412"
r=$(vc op "{\"op\": \"setattr\", \"fid\": \"$A\", \"base_dv\": $dv, \"mask\": [\"mode\", \"uid\", \"mtime\"], \"mode\": 384, \"uid\": 7, \"mtime\": 1000000000000000000}")
t_is "$(echo "$r" | jget 'd["attr"]["mode"], d["attr"]["uid"], d["attr"]["mtime"], d["attr"]["dv"]')" "384 7 1000000000000000000 $dv" "chmod/chown/mtime keep the dv"
r=$(vc op "{\"op\": \"setattr\", \"fid\": \"$A\", \"base_dv\": $dv, \"mask\": [\"size\"], \"size\": 5000}")
t_is "$(echo "$r" | jget 'd["attr"]["size"], d["attr"]["dv"]')" "5000 $((dv + 1))" "truncate bumps the dv"
t_is "$(opst "{\"op\": \"setattr\", \"fid\": \"$D\", \"base_dv\": $(vc attr "$D" dv), \"mask\": [\"size\"], \"size\": 1}")" "400 EISDIR" "truncate a directory: 400"

# xattrs
t_is "$(opst "{\"op\": \"setxattr\", \"fid\": \"$A\", \"xname\": \"user.k\", \"xvalue\": \"dg==\", \"flags\": [\"replace\"]}")" "404 ENOENT" "replace a missing xattr: 404"
t_is "$(opst "{\"op\": \"setxattr\", \"fid\": \"$A\", \"xname\": \"user.k\", \"xvalue\": \"dg==\", \"flags\": [\"create\"]}")" "200 -" "setxattr"
t_is "$(opst "{\"op\": \"setxattr\", \"fid\": \"$A\", \"xname\": \"user.k\", \"xvalue\": \"dg==\", \"flags\": [\"create\"]}")" "409 EEXIST" "create an existing xattr: 409"
t_is "$(opst "{\"op\": \"setxattr\", \"fid\": \"$A\", \"xname\": \"security.k\", \"xvalue\": \"dg==\"}")" "400 ENOTSUP" "a non-user xattr: 400"
t_is "$(vc get "/v1/vol/home/xattr/$A" | jget 'd["xattrs"]')" "{'user.k': 'dg=='}" "xattr stored"
t_is "$(opst "{\"op\": \"removexattr\", \"fid\": \"$A\", \"xname\": \"user.k\"}")" "200 -" "removexattr"
t_is "$(opst "{\"op\": \"removexattr\", \"fid\": \"$A\", \"xname\": \"user.k\"}")" "404 ENOENT" "removexattr again: 404"

# opid replay
OPID=0123456789abcdef0123456789abcdef
j="{\"op\": \"create\", \"opid\": \"$OPID\", \"parent\": \"$R\", \"name\": \"once\", \"type\": \"file\", \"mode\": 420, $own}"
r1=$(vc op "$j")
files1=$(vc get /v1/vol/home | jget 'd["files_used"], d["event_seq"]')
r2=$(vc op "$j")
t_is "$(echo "$r2" | head -1)" 200 "replayed create: 200, not 409"
t_is "$r2" "$r1" "replayed reply is the first reply"
t_is "$(vc get /v1/vol/home | jget 'd["files_used"], d["event_seq"]')" "$files1" "replay changed nothing (files, events)"

# a staged store: several PUTs, visible at once
F=$(vc create "$R" big)
head -c 300000 /dev/urandom >"$T_DIR/v1"
t_is "$(vc store "$F" "$T_DIR/v1" | head -1)" 200 "first store"
dv=$(vc attr "$F" dv)
head -c 300000 /dev/urandom >"$T_DIR/v2"
TX=$(python3 -c 'import os; print(os.urandom(16).hex())')
ok=0
for c in 0 1 2 3 4; do
	dd if="$T_DIR/v2" of="$T_DIR/c$c" bs=65536 skip=$c count=1 2>/dev/null
	code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT --data-binary "@$T_DIR/c$c" -H "Authorization: Bearer $VC_TOKEN" "$VOLD_URL/v1/vol/home/stage/$F/$TX/$c?size=65536")
	[ "$code" = 204 ] && ok=$((ok + 1))
	# Nothing is visible before the store.
	if [ $c = 2 ]; then
		t_is "$(vc attr "$F" dv)" "$dv" "mid-staging: dv unchanged"
		vc cat "$F" >"$T_DIR/mid"
		t_check "mid-staging: old content" cmp "$T_DIR/mid" "$T_DIR/v1"
	fi
done
t_is "$ok" 5 "five chunks staged (204)"
head -c 65537 /dev/zero >"$T_DIR/toobig"
t_is "$(curl -s -o /dev/null -w '%{http_code}' -X PUT --data-binary "@$T_DIR/toobig" -H "Authorization: Bearer $VC_TOKEN" "$VOLD_URL/v1/vol/home/stage/$F/$TX/5?size=65536")" 413 "a chunk larger than its size: 413"
st="{\"op\": \"store\", \"fid\": \"$F\", \"base_dv\": $dv, \"txid\": \"$TX\", \"chunk_size\": 65536, \"size\": 300000, \"chunks\": [0, 1, 2, 3, 4, 5]}"
t_is "$(opst "$st")" "400 EINVAL" "store of an unstaged chunk: 400"
st="{\"op\": \"store\", \"fid\": \"$F\", \"base_dv\": $((dv - 1)), \"txid\": \"$TX\", \"chunk_size\": 65536, \"size\": 300000, \"chunks\": [0, 1, 2, 3, 4]}"
t_is "$(opst "$st")" "412 ECANCELED" "store on a stale base: 412"
st="{\"op\": \"store\", \"fid\": \"$F\", \"base_dv\": $dv, \"txid\": \"$TX\", \"chunk_size\": 65536, \"size\": 300000, \"chunks\": [0, 1, 2, 3, 4]}"
t_is "$(opst "$st")" "200 -" "store"
t_is "$(vc attr "$F" dv)" "$((dv + 1))" "new dv = base + 1"
vc cat "$F" >"$T_DIR/after"
t_check "after the store: the new content" cmp "$T_DIR/after" "$T_DIR/v2"
t_is "$(vc get "/v1/vol/home/data/$F/$dv/0?size=65536" | head -1)" 410 "the old DV is gone: 410"
t_is "$(ls "$SRV_ROOT/volumes/home/stage" | wc -l)" 0 "staging cleaned after the store"

# unlink the data file: gone, file removed from disk
t_is "$(opst "{\"op\": \"unlink\", \"parent\": \"$R\", \"name\": \"big\", \"fid\": \"$F\"}")" "200 -" "unlink the stored file"
t_is "$(find "$SRV_ROOT/volumes/home/data" -name "${F#*.}.*" | wc -l)" 0 "its data file is removed"
t_is "$(opst "{\"op\": \"rmdir\", \"parent\": \"$R\", \"name\": \"d\", \"fid\": \"$E\"}")" "200 -" "rmdir an empty directory"
t_done
