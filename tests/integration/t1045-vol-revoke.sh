#!/bin/bash
# t1045-vol-revoke: tokens are bound to the volume's id and token epoch:
# `vos revoke` voids every token of a volume (401) while newly minted ones
# work, without a new server key; a volume removed and made again under
# the same name does not honour the old volume's tokens; old-format
# (cairn1) tokens are refused; `vos token -o` writes a 0600 file.
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 60

vold_start || exit 99
vos create home >/dev/null && vos create other >/dev/null || exit 99
export VC_URL=$VOLD_URL VC_VOL=home

# vos token -o: a 0600 file even under a permissive umask, replaced
# atomically when it exists.
(umask 000; vos token home --rw -o "$T_DIR/rw.tok") || exit 99
t_is "$(stat -c %a "$T_DIR/rw.tok")" 600 "vos token -o writes mode 0600 (umask 000)"
t_is "$(cut -c1-12 "$T_DIR/rw.tok")" "cairn2.home." "token format version 2"
cp "$T_DIR/rw.tok" "$T_DIR/rw.first"
(umask 000; vos token home --rw -o "$T_DIR/rw.tok") || exit 99
t_is "$(stat -c %a "$T_DIR/rw.tok")" 600 "vos token -o over an existing file keeps 0600"
t_is "$(ls "$T_DIR" | grep -c 'rw.tok.')" 0 "no temporary file left behind"
make_token other ro "$T_DIR/other.tok"
RW=$(cat "$T_DIR/rw.first") OTHER=$(cat "$T_DIR/other.tok")
key_before=$(md5sum <"$SRV_ROOT/secret.key")

t_is "$(VC_TOKEN=$RW vc get /v1/vol/home | head -1)" 200 "token works"
t_is "$(vos revoke home >/dev/null; echo $?)" 0 "vos revoke home"
t_is "$(VC_TOKEN=$RW vc get /v1/vol/home | jerr)" "401 EACCES" "revoked token: 401 at once"
t_is "$(VC_TOKEN=$(cat "$T_DIR/rw.tok") vc get /v1/vol/home | jerr)" "401 EACCES" "every token minted before the revoke: 401"
make_token home rw "$T_DIR/new.tok"
NEW=$(cat "$T_DIR/new.tok")
t_is "$(VC_TOKEN=$NEW vc get /v1/vol/home | head -1)" 200 "a token minted after the revoke works"
t_is "$(VC_TOKEN=$OTHER VC_VOL=other vc get /v1/vol/other | head -1)" 200 "another volume's tokens are untouched"
t_is "$(md5sum <"$SRV_ROOT/secret.key")" "$key_before" "the server key did not change"
t_is "$(vos revoke nosuch >/dev/null 2>&1; echo $?)" 66 "vos revoke of a missing volume: 66"
t_is "$(vos revoke >/dev/null 2>&1; echo $?)" 64 "vos revoke without a volume: usage"

# Remove and make again under the same name: a new id, old tokens void.
vos remove home >/dev/null || exit 99
vos create home >/dev/null || exit 99
t_is "$(VC_TOKEN=$NEW vc get /v1/vol/home | jerr)" "401 EACCES" "old token on a re-made volume of the same name: 401"
make_token home ro "$T_DIR/re.tok"
t_is "$(VC_TOKEN=$(cat "$T_DIR/re.tok") vc get /v1/vol/home | head -1)" 200 "a token of the new volume works"

# An old-format token with a genuine MAC is refused, with a hint.
v1=$(python3 -c '
import hmac, hashlib, sys
key = open(sys.argv[1], "rb").read()
body = "cairn1.home.rw.0"
print(body + "." + hmac.new(key, body.encode(), hashlib.sha256).hexdigest())' "$SRV_ROOT/secret.key")
t_is "$(VC_TOKEN=$v1 vc get /v1/vol/home | jerr)" "401 EACCES" "old-format (cairn1) token: 401"
t_is "$(VC_TOKEN=$v1 vc get /v1/vol/home | grep -c 'old-format')" 1 "the 401 says the token is old-format"
t_done
