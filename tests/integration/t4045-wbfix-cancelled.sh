#!/usr/bin/env bash
# writeback, create+unlink cancelled in the log while another
# client's event about the directory came.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 200
vold_start || exit 99
vos init >/dev/null 2>&1
vos create rv >/dev/null 2>&1 || exit 99
make_token rv rw "$T_DIR/tok"
A=$T_DIR/a B=$T_DIR/b
cairnd_mount "$A" "$T_DIR/ca" rv "$T_DIR/tok" || exit 1
cairnd_mount "$B" "$T_DIR/cb" rv "$T_DIR/tok" || exit 1
jst() { "$FS" status --json -m "$A" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }
mkdir "$A/D" && ls "$A/D" >/dev/null
sleep 1; ls "$B/D" >/dev/null
t_check "writeback" "$FS" setpolicy -m "$A" --write-mode writeback --writeback-delay 3s
touch "$A/D/tmp"
echo new >"$B/D/new"
sleep 1
rm "$A/D/tmp"
"$FS" sync -m "$A"; echo "# fs sync rc=$?"
sleep 2
t_is "$(ls "$A/D" | tr '\n' ' ')" "new " "A sees B's file"
chmod 700 "$A/D"
"$FS" sync -m "$A"; echo "# fs sync rc=$?"
# fs sync returned once the server had the chmod; B learns of it by an
# event, a moment later (within about a second, cairnd(8)): read once
# right away it showed 755 once in 9 loaded runs while the server had 700
wait_for 5 sh -c "[ \"\$(stat -c %a '$B/D')\" = 700 ]"
t_is "$(stat -c %a "$B/D")" 700 "A's chmod of D reached the server"
"$FS" conflicts -m "$A" 2>&1 | sed 's/^/# /'
# The same without another client: the directory's local DV goes.
mkdir "$A/E" && "$FS" sync -m "$A" >/dev/null 2>&1 && ls "$A/E" >/dev/null
touch "$A/E/tmp"
rm "$A/E/tmp"
chmod 700 "$A/E"
"$FS" sync -m "$A"; echo "# fs sync rc=$?"
t_is "$(stat -c %a "$B/E")" 700 "A's chmod of E reached the server"
# A directory only a cancelled record named (the rename folded into the
# create): B's change there shows once the records are gone.
mkdir "$A/F1" "$A/F2" && "$FS" sync -m "$A" >/dev/null 2>&1
ls "$A/F1" "$A/F2" >/dev/null; sleep 1; ls "$B/F1" >/dev/null
touch "$A/F1/t"
echo b >"$B/F1/fromb"
sleep 1
mv "$A/F1/t" "$A/F2/t"
rm "$A/F2/t"
"$FS" sync -m "$A"; echo "# fs sync rc=$?"
sleep 2
t_is "$(ls "$A/F1" | tr '\n' ' ')" "fromb " "A sees B's file in F1"
t_is "$(jst conflicts)" "0" "no conflicts"
cairnd_umount "$B"
cairnd_umount "$A"
t_done
