#!/bin/bash
# t1040-vol-auth: bearer tokens: 401 without or with a broken token, 403
# for another volume or an ro token on a mutation, expiry; ping needs none.
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 60

vold_start || exit 99
vos create home >/dev/null && vos create other >/dev/null || exit 99
export VC_URL=$VOLD_URL VC_VOL=home
make_token home rw "$T_DIR/rw.tok"
make_token home ro "$T_DIR/ro.tok"
make_token other rw "$T_DIR/other.tok"
RW=$(cat "$T_DIR/rw.tok") RO=$(cat "$T_DIR/ro.tok")
R=$(VC_TOKEN=$RW vc root)
mkop="{\"op\": \"mkdir\", \"parent\": \"$R\", \"name\": \"d\", \"mode\": 493, \"uid\": 0, \"gid\": 0}"

t_is "$(VC_TOKEN= vc get /v1/ping | cut -c1-3 | head -1)" 200 "ping without a token"
t_is "$(VC_TOKEN= vc get /v1/vol/home | jerr)" "401 EACCES" "no token: 401"
t_is "$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Basic $RW" "$VOLD_URL/v1/vol/home")" 401 "Basic scheme: 401"
t_is "$(VC_TOKEN=garbage vc get /v1/vol/home | jerr)" "401 EACCES" "garbage token: 401"
bad=${RW%?}$( [ "${RW: -1}" = 0 ] && echo 1 || echo 0)
t_is "$(VC_TOKEN=$bad vc get /v1/vol/home | jerr)" "401 EACCES" "token with a wrong MAC: 401"
t_is "$(VC_TOKEN=${RW/.rw./.ro.} vc get /v1/vol/home | jerr)" "401 EACCES" "rw token edited to ro: 401 (MAC)"
t_is "$(VC_TOKEN=$(cat "$T_DIR/other.tok") vc get /v1/vol/home | jerr)" "403 EPERM" "another volume's token: 403"
t_is "$(VC_TOKEN=$RO vc get /v1/vol/home | head -1)" 200 "ro token reads"
t_is "$(VC_TOKEN=$RO vc get "/v1/vol/home/dir/$R" | head -1)" 200 "ro token lists"
t_is "$(VC_TOKEN=$RO vc op "$mkop" | jerr)" "403 EPERM" "ro token on a mutation: 403"
t_is "$(curl -s -o /dev/null -w '%{http_code}' -X PUT --data-binary x -H "Authorization: Bearer $RO" "$VOLD_URL/v1/vol/home/stage/$R/0123456789abcdef0123456789abcdef/0?size=65536")" 403 "ro token on a stage PUT: 403"
t_is "$(VC_TOKEN=$RW vc op "$mkop" | head -1)" 200 "rw token mutates"
vos token home --rw --expires 10s -o "$T_DIR/exp.tok" || exit 99
t_is "$(VC_TOKEN=$(cat "$T_DIR/exp.tok") vc get /v1/vol/home | head -1)" 200 "short-lived token works at first"
sleep 11
t_is "$(VC_TOKEN=$(cat "$T_DIR/exp.tok") vc get /v1/vol/home | jerr)" "401 EACCES" "expired token: 401"
t_is "$(curl -s -D - -o /dev/null "$VOLD_URL/v1/vol/home" | tr -d '\r' | grep -c '^WWW-Authenticate: Bearer')" 1 "401 names the Bearer scheme"
t_is "$(vos token home --ro --rw >/dev/null 2>&1; echo $?)" 64 "vos token with both rights: usage error"
t_is "$(vos token nosuch --ro >/dev/null 2>&1; echo $?)" 66 "vos token for a missing volume: 66"
t_done
