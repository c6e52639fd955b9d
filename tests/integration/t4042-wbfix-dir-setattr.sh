#!/usr/bin/env bash
# writeback, a setattr of a directory after a create inside it.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 200
vold_start || exit 99
vos init >/dev/null 2>&1
vos create rv >/dev/null 2>&1 || exit 99
make_token rv rw "$T_DIR/tok"
A=$T_DIR/a
cairnd_mount "$A" "$T_DIR/ca" rv "$T_DIR/tok" || exit 1
jst() { "$FS" status --json -m "$A" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }
mkdir "$A/E" && ls "$A/E" >/dev/null
t_check "writeback" "$FS" setpolicy -m "$A" --write-mode writeback --writeback-delay 5s
echo x >"$A/E/x"
chmod 700 "$A/E"
mkdir "$A/D"
echo y >"$A/D/y"
chmod 711 "$A/D"
"$FS" sync -m "$A"; echo "# fs sync rc=$?"
t_is "$(jst conflicts)" "0" "no conflicts"
"$FS" conflicts -m "$A" 2>&1 | sed 's/^/# /'
B=$T_DIR/b
cairnd_mount "$B" "$T_DIR/cb" rv "$T_DIR/tok" || exit 1
t_is "$(stat -c %a "$B/E")" 700 "E's chmod reached the server"
t_is "$(stat -c %a "$B/D")" 711 "D's chmod reached the server"
cairnd_umount "$B"
cairnd_umount "$A"
t_done
