#!/bin/bash
# t1185-vol-journal-off: the journal is cairn-vold's default
# (--show-config says journal yes, 4 MiB checkpoints); "journal = no"
# in the config (or --journal no) commits through tdb alone: no
# meta.journal, the record unmarked, every create there after kill -9;
# a bad value is refused.
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 60
VC="$top_srcdir/tests/integration/vol-client.py"

mkdir -p "$T_DIR/srv"
t_is "$("$VOLD" --root "$T_DIR/srv" --show-config | awk '$1 == "journal" {print $3}')" yes "journal is on by default"
t_is "$("$VOLD" --root "$T_DIR/srv" --show-config | awk '$1 == "journal-checkpoint" {print $3}')" 4194304 "default checkpoint bound 4 MiB"
"$VOLD" --root "$T_DIR/srv" --journal maybe --show-config >/dev/null 2>"$T_DIR/bad.err"
t_ok "$([ $? -ne 0 ] && grep -q "journal must be yes or no" "$T_DIR/bad.err" && echo 0 || echo 1)" "a bad value is refused"
"$VOLD" --root "$T_DIR/srv" --journal-checkpoint 10 --show-config >/dev/null 2>"$T_DIR/bad.err"
t_ok "$([ $? -ne 0 ] && echo 0 || echo 1)" "a tiny checkpoint bound is refused"

printf '[vold]\njournal = no\n' >"$T_DIR/vold.conf"
vold_start --config "$T_DIR/vold.conf" || exit 99
vos create off >/dev/null || exit 99
export VC_URL=$VOLD_URL VC_VOL=off
make_token off rw "$T_DIR/rw.tok"
export VC_TOKEN=$(cat "$T_DIR/rw.tok")
R=$(vc root) || exit 99
for i in $(seq 1 5); do vc create "$R" "f$i" >/dev/null || exit 99; done
t_ok "$([ ! -e "$SRV_ROOT/volumes/off/meta.journal" ] && echo 0 || echo 1)" "journal = no: no meta.journal"
vold_kill9
vold_restart --config "$T_DIR/vold.conf" || exit 99
miss=0
for i in $(seq 1 5); do vc lookup "$R" "f$i" >/dev/null || miss=$((miss + 1)); done
t_is "$miss" 0 "every create there after kill -9"
vos examine off >/dev/null
t_ok $? "vos examine while it serves"
t_done
