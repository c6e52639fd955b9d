#!/usr/bin/env bash
# t5072-cm-mount-point-oldserver: mount points and a cairn-vold older than
# protocol 5, given as CAIRN_OLD_VOLD=PATH (tools/check builds one from
# commit 2be91d7, the last of protocol 4, into build-old/; skipped
# without it). cairnd refuses fs mkmount against
# it, with a reason and nothing logged; and a volume holding a mount
# point, served by the old server, still serves everything else: only a
# listing that holds the mount point fails, for clients of protocol 4
# (doc/vol-format.md "Mount points").
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 180
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }
if [ -z "${CAIRN_OLD_VOLD:-}" ] || [ ! -x "$CAIRN_OLD_VOLD" ]; then
	echo "# SKIP: set CAIRN_OLD_VOLD to a cairn-vold of protocol 4 or earlier"
	exit 77
fi
NEW_VOLD=$VOLD
VOLD=$CAIRN_OLD_VOLD
vol_setup mp
t_is "$(vold_curl "$VOLD_URL/v1/ping" | python3 -c 'import json,sys; print(json.load(sys.stdin)["protocol"] < 5)')" \
	True "the old server speaks a protocol before 5"
A=$T_DIR/a
cairnd_mount "$A" "$T_DIR/ca" mp "$T_DIR/tok" || exit 1
mkdir "$A/d"
echo hello >"$A/d/f"
"$FS" mkmount "$A/d/proj" proj 2>"$T_DIR/e1"
t_is "$?" 70 "mkmount against an old server: exit 70"
t_is "$(cat "$T_DIR/e1")" "fs: mkmount $A/d/proj: the server does not know mount points (protocol 5)" \
	"... saying why"
t_is "$(ls "$A/d")" f "nothing made"
t_is "$("$FS" status --json -m "$A" | python3 -c 'import json,sys; print(json.load(sys.stdin)["replay_pending"])')" 0 \
	"nothing logged"
cairnd_umount "$A"

# The new server makes one; the old one serves that volume again.
vold_stop
VOLD=$NEW_VOLD
vold_restart || exit 99
cairnd_mount "$A" "$T_DIR/ca2" mp "$T_DIR/tok" || exit 1
t_check "the new server: mkmount d/proj" "$FS" mkmount "$A/d/proj" proj
cairnd_umount "$A"
vold_stop
VOLD=$CAIRN_OLD_VOLD
vold_restart || exit 99
R=$(vold_curl -H "Authorization: Bearer $(cat "$T_DIR/tok")" "$VOLD_URL/v1/vol/mp" |
	python3 -c 'import json,sys; print(json.load(sys.stdin)["root"])')
t_ok $? "old server: the volume still opens"
st=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(cat "$T_DIR/tok")" \
	"$VOLD_URL/v1/vol/mp/dir/$R")
t_is "$st" 200 "old server: the root listing (no mount point in it) is served"
D=$(vold_curl -H "Authorization: Bearer $(cat "$T_DIR/tok")" "$VOLD_URL/v1/vol/mp/dir/$R" |
	python3 -c 'import json,sys; print([e["attr"]["fid"] for e in json.load(sys.stdin)["entries"] if e["name"]=="d"][0])')
ls4() { curl -s -o "$T_DIR/dir.out" -w '%{http_code}' -H "Authorization: Bearer $(cat "$T_DIR/tok")" "$@" \
	"$VOLD_URL/v1/vol/mp/dir/$D"; }
t_is "$(ls4 -H 'X-Cairn-Protocol: 4')" 400 "old server, a client of its protocol: the listing holding the mount point is 400"
t_is "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["errno"])' "$T_DIR/dir.out")" EINVAL "... EINVAL"
t_is "$(ls4)" 200 "old server, a client of protocol 2: the listing is served"
t_is "$(python3 -c 'import json,sys; print([(e["name"], e["attr"]["type"], e["attr"]["size"]) for e in json.load(open(sys.argv[1]))["entries"]])' "$T_DIR/dir.out")" \
	"[('f', 'file', 6), ('proj', 'file', 0)]" "... the mount point as an empty file"
t_check "old server: still answers" vold_curl "$VOLD_URL/v1/ping"
t_done
