#!/bin/bash
# t1186-vol-journal-oldvold: a cairn-vold older than the journal refuses a
# volume that a killed cairn-vold left with a live journal (the record's
# CVJ mark), and so does its vos; this cairn-vold then serves every
# acknowledged create. The old programs: CAIRN_OLD_VOLD and CAIRN_OLD_VOS
# (tools/check builds them from this repository's history into
# build-old/), or the build tree OLD_BUILD; skipped when there are none or
# when they know the journal already.
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 90
if [ -n "${OLD_BUILD:-}" ]; then
	OLD_VOLD=$OLD_BUILD/vol/cairn-vold OLD_VOS=$OLD_BUILD/admin/vos
else
	OLD_VOLD=${CAIRN_OLD_VOLD:-} OLD_VOS=${CAIRN_OLD_VOS:-}
fi
[ -n "$OLD_VOLD" ] && [ -x "$OLD_VOLD" ] && [ -n "$OLD_VOS" ] && [ -x "$OLD_VOS" ] ||
	{ echo "# SKIP: no old cairn-vold and vos (CAIRN_OLD_VOLD, CAIRN_OLD_VOS or OLD_BUILD)"; exit 77; }
"$OLD_VOLD" --root "$T_DIR/x" --show-config 2>/dev/null | grep -q '^journal ' &&
	{ echo "# SKIP: $OLD_VOLD knows the journal already"; exit 77; }

vold_start || exit 99
vos create oj >/dev/null || exit 99
export VC_URL=$VOLD_URL VC_VOL=oj
make_token oj rw "$T_DIR/rw.tok"
export VC_TOKEN=$(cat "$T_DIR/rw.tok")
R=$(vc root) || exit 99
for i in $(seq 1 8); do vc create "$R" "f$i" >/dev/null || exit 99; done
vold_kill9
t_ok "$([ "$(stat -c %s "$SRV_ROOT/volumes/oj/meta.journal")" -gt 40 ] && echo 0 || echo 1)" "kill -9 left a live journal"

"$OLD_VOS" --root "$SRV_ROOT" examine oj >"$T_DIR/oldvos.out" 2>&1
t_ok "$([ $? -ne 0 ] && echo 0 || echo 1)" "the old vos refuses the volume"
sed 's/^/#   /' "$T_DIR/oldvos.out"
VOLD_SAVE=$VOLD
VOLD=$OLD_VOLD
vold_restart || exit 99
st=$(vc get /v1/vol/oj 2>/dev/null | head -n1)
t_ok "$([ "$st" != 200 ] && echo 0 || echo 1)" "the old cairn-vold refuses it ($st)"
vold_stop
VOLD=$VOLD_SAVE
vold_restart || exit 99
miss=0
for i in $(seq 1 8); do vc lookup "$R" "f$i" >/dev/null || miss=$((miss + 1)); done
t_is "$miss" 0 "this cairn-vold replays it: every create there"
vold_stop
vos examine oj >/dev/null
t_ok $? "after a clean stop"
"$OLD_VOS" --root "$SRV_ROOT" examine oj >/dev/null 2>&1
t_ok $? "the old vos reads it again (mark cleared at the checkpoint)"
t_done
