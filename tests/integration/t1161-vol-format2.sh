#!/bin/bash
# t1161-vol-format2: a volume written in format 2 (chunk objects only,
# tests/fixtures/vol-format2.tar.gz, made by the vos and cairn-vold of
# before inline chunks with tests/fixtures/make-vol-format2.sh) opens as
# it is: vos examine says format 2, cairn-vold serves every file byte for
# byte, and a small store then goes inline (the volume becomes format 3,
# the replaced object is unlinked, the other objects stay); after a
# restart (the cleanup at open) every file still reads right, and vos
# export gives the manifest back with the one change.
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 120
FX=$top_srcdir/tests/fixtures/vol-format2.tar.gz
mkdir -p "$SRV_ROOT" && chmod 700 "$SRV_ROOT" && tar -C "$SRV_ROOT" -xzf "$FX" || exit 99
manifest() { # DIR: "SHA SIZE PATH" of every file under DIR
	(cd "$1" && find . -type f | sort | while read -r f; do
		echo "$(sha256sum <"$f" | cut -d' ' -f1) $(stat -c %s "$f") ${f#./}"
	done)
}
objs() { find "$SRV_ROOT/volumes/two/data" -type f | wc -l; }

t_is "$(vos examine two | grep -c 'format 2')" 1 "vos examine: format 2"
t_is "$(vos examine two --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["format"])')" 2 "vos examine --json: format 2"
t_is "$(objs)" 7 "the fixture has 7 chunk objects"

vold_start || exit 99
export VC_URL=$VOLD_URL VC_VOL=two
VC="$top_srcdir/tests/integration/vol-client.py"
make_token two rw "$T_DIR/rw.tok" || exit 99
export VC_TOKEN=$(cat "$T_DIR/rw.tok")
vc() { python3 "$VC" "$@"; }
R=$(vc root) || exit 99
readall() { # PATH: "SHA SIZE PATH" as cairn-vold serves it
	local f=$R p
	IFS=/ read -ra parts <<<"$1"
	for p in "${parts[@]}"; do f=$(vc lookup "$f" "$p") || return 1; done
	vc cat "$f" 262144 >"$T_DIR/got" || return 1
	echo "$(sha256sum <"$T_DIR/got" | cut -d' ' -f1) $(stat -c %s "$T_DIR/got") $1"
}
served() { while read -r _ _ p; do readall "$p"; done <"$SRV_ROOT/two.manifest"; }
served >"$T_DIR/served1" 2>&1
t_check "cairn-vold serves every file as the old vos exported it" cmp "$T_DIR/served1" "$SRV_ROOT/two.manifest"
t_is "$(objs)" 7 "opening it removed no object (all named by the map)"

# A small store: its bytes go inline, the old object goes.
T=$(vc lookup "$R" small.txt)
echo "a third version" >"$T_DIR/small3"
t_is "$(vc store "$T" "$T_DIR/small3" 65536 | head -n 1)" 200 "store of 16 bytes into small.txt"
t_is "$(vos examine two | grep -c 'format 3')" 1 "the volume is format 3 now"
t_is "$(vos examine two --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["format"])')" 3 "and --json says format 3"
t_is "$(objs)" 6 "small.txt's object is gone (its chunk is inline), the others stay"
t_is "$(readall small.txt | cut -d' ' -f1,2)" "$(sha256sum <"$T_DIR/small3" | cut -d' ' -f1) 16" "small.txt reads the new bytes"

# Restart: the cleanup at open keeps what the map names.
vold_stop
vold_restart || exit 99
R=$(vc root) || exit 99
served >"$T_DIR/served2" 2>&1
grep -v ' small.txt$' "$SRV_ROOT/two.manifest" >"$T_DIR/want2"
echo "$(sha256sum <"$T_DIR/small3" | cut -d' ' -f1) 16 small.txt" >>"$T_DIR/want2"
sort -k3 "$T_DIR/want2" >"$T_DIR/want2s"
sort -k3 "$T_DIR/served2" >"$T_DIR/served2s"
t_check "after a restart every file reads right" cmp "$T_DIR/served2s" "$T_DIR/want2s"
t_is "$(objs)" 6 "and the 6 objects are still there"
vold_stop
t_check "vos export of the format 3 volume" vos export two "$T_DIR/out"
manifest "$T_DIR/out" | sort -k3 >"$T_DIR/exported"
t_check "the export is the manifest with the one change" cmp "$T_DIR/exported" "$T_DIR/want2s"
t_done
