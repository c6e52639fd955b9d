#!/bin/bash
# t1097-vol-public: chunk replies say "Cache-Control: private" unless the
# volume is made public with `vos setpublic`; the flag persists, shows in
# `vos examine`, and a running cairn-vold follows a change within about a
# second, also for chunks it answers from its own cache (doc/protocol.md,
# "Caching and trust").
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 60
VC="$top_srcdir/tests/integration/vol-client.py"
vc() { python3 "$VC" "$@"; }

vold_start || exit 99
src=$T_DIR/src
mkdir -p "$src"
head -c 100000 /dev/urandom >"$src/data.bin"
vos import proj "$src" >/dev/null || { echo "# import failed"; exit 99; }
export VC_URL=$VOLD_URL VC_VOL=proj
make_token proj ro "$T_DIR/ro.tok"
export VC_TOKEN=$(cat "$T_DIR/ro.tok")
DATA=$(vc lookup "$(vc root)" data.bin)
DV=$(vc attr "$DATA" dv)
cs=65536
url=$VOLD_URL/v1/vol/proj/data/$DATA/$DV

# cache_control CHUNK [CURL ARGS]: the Cache-Control header of a chunk GET
cache_control() {
	local c=$1; shift
	curl -s -D - -o /dev/null -H "Authorization: Bearer $VC_TOKEN" "$@" \
		"$url/$c?size=$cs" | tr -d '\r' | sed -n 's/^Cache-Control: //p'
}
cc_is() { test "$(cache_control "$1")" = "$2"; }
private="private, max-age=31536000, immutable"
public="public, max-age=31536000, immutable"

t_is "$(cache_control 0)" "$private" "default: a chunk from disk is private"
t_is "$(cache_control 0)" "$private" "default: the same chunk from vold's cache is private"
etag="\"$DATA-$DV-$cs-0\""
t_is "$(cache_control 0 -H "If-None-Match: $etag")" "$private" "default: a 304 is private too"
t_is "$(vos examine proj | sed -n 's/^public *//p')" "no" "vos examine: public no"
t_is "$(vos examine proj --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["public"])')" "False" "vos examine --json: public false"

t_check "vos setpublic proj on" vos setpublic proj on
t_is "$(vos examine proj | sed -n 's/^public *\([a-z]*\).*/\1/p')" "yes" "vos examine: public yes"
t_check "the running vold turns chunk 0 (cached) public within 5 s" \
	wait_for 5 cc_is 0 "$public"
t_is "$(cache_control 1)" "$public" "public: a chunk from disk"

# The flag is on disk: a restarted server starts public.
vold_stop
vold_restart || { echo "# vold did not restart"; exit 99; }
t_is "$(cache_control 1)" "$public" "after a restart: still public"

t_check "vos setpublic proj off" vos setpublic proj off
t_check "the running vold turns chunk 1 (cached) private within 5 s" \
	wait_for 5 cc_is 1 "$private"
t_is "$(cache_control 0)" "$private" "private again: a chunk from disk"

vos setpublic proj maybe >/dev/null 2>&1
t_is "$?" 64 "vos setpublic with a bad value: usage error (64)"
vos setpublic nosuch on >/dev/null 2>&1
t_is "$?" 66 "vos setpublic on a missing volume: 66"
t_done
