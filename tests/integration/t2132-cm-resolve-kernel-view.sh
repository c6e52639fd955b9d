#!/usr/bin/env bash
# t2132-cm-resolve-kernel-view: fs resolve --keep local redoes a refused
# change on the server from cairnd, not through the mount; the kernel did
# not see it, so cairnd drops the kernel's entries of its names and its
# attributes of the objects before it answers (cm_ctl_kernel_sync()).
# Before, A's own view after the command was the old one: a rename's old
# name still there until the server's events came, a chmod's old mode for
# the attribute timeout (a day: our own attr event changes nothing).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 180
umask 022
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

vol_setup rk
A=$T_DIR/a
B=$T_DIR/b
cairnd_mount "$A" "$T_DIR/ca" rk "$T_DIR/tok" || exit 1
cairnd_mount "$B" "$T_DIR/cb" rk "$T_DIR/tok" || exit 1
jget() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get(sys.argv[1], ""))' "$1"; }
status() { "$FS" status --json -m "$A" 2>/dev/null | jget "$1"; }
# A file's content, or the error.
what() { cat "$1" 2>&1 | sed 's/^cat: [^:]*: //'; }

mkdir "$A/d" "$A/e"
echo mine >"$A/d/r1"
echo meta >"$A/d/m"
chmod 644 "$A/d/m"
wait_for 5 test -f "$B/d/m"

# Offline on A: a rename across directories and a chmod. Meanwhile B
# takes the new name and changes the file: both are refused at replay.
t_check "fs disconnect" "$FS" disconnect -m "$A"
mv "$A/d/r1" "$A/e/r2"
chmod 600 "$A/d/m"
echo theirs >"$B/e/r2"
echo "meta from B" >"$B/d/m"
"$FS" reconnect -m "$A" >"$T_DIR/reconnect.out" 2>&1
wait_for 30 sh -c "[ \"\$('$FS' status --json -m '$A' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"mode\"])')\" = connected ]"
t_is "$(status mode)" connected "reconnected"
t_is "$(status conflicts)" 2 "two conflicts: the rename and the chmod"
# A's kernel looks the names and the mode up now: the server's state.
wait_for 5 sh -c "[ \"\$(cat '$A/e/r2' 2>/dev/null)\" = theirs ]"
t_is "$(what "$A/d/r1")|$(what "$A/e/r2")" "mine|theirs" "A shows the server's names"
wait_for 5 sh -c "[ \"\$(stat -c %a '$A/d/m')\" = 644 ]"
t_is "$(stat -c %a "$A/d/m")|$(what "$A/d/m")" "644|meta from B" "A shows the server's mode"

t_check "fs resolve --keep local of the rename" "$FS" resolve -m "$A" --keep local "$A/d/r1"
t_is "$(what "$A/d/r1")|$(what "$A/e/r2")" "No such file or directory|mine" \
	"right after: the old name is gone, the new one is A's file"
t_check "fs resolve --keep local of the chmod" "$FS" resolve -m "$A" --keep local "$A/d/m"
t_is "$(stat -c %a "$A/d/m")|$(what "$A/d/m")" "600|meta from B" \
	"right after: the mode is A's, on B's version"
t_is "$(status conflicts)" 0 "no conflicts left"

# The server has them: B sees the same once its events came.
wait_for 10 sh -c "! test -e '$B/d/r1' && [ \"\$(stat -c %a '$B/d/m')\" = 600 ]"
t_is "$(what "$B/d/r1")|$(what "$B/e/r2")|$(stat -c %a "$B/d/m")" \
	"No such file or directory|mine|600" "client B: the same"
# A keep-local with nothing to settle changes nothing.
"$FS" resolve -m "$A" --keep local "$A/d/m" 2>"$T_DIR/e1"
t_ok "$([ $? -ne 0 ] && grep -q 'no conflict' "$T_DIR/e1" && echo 0 || echo 1)" \
	"resolve where there is no conflict: refused, nothing changed"
t_is "$(stat -c %a "$A/d/m")" 600 "the mode stays"

cairnd_umount "$A"
cairnd_umount "$B"
t_done
