#!/usr/bin/env bash
# t2131-cm-ctl-kernel-view: a change made through the control socket, not
# through the mount (fs mkmount, fs rmmount), is what the kernel shows as
# soon as the command returns: cairnd drops the kernel's entries of the
# names and its attributes of the directory, and answers only after the
# kernel took that (cm_ctl_kernel_sync(): a kernel barrier). Before, a
# name looked up before `fs mkmount` stayed a negative entry for the entry
# timeout (a day), and one looked up before `fs rmmount` stayed until the
# server's event about it came, or for a day when disconnected (t5051 saw
# it still there under load). Online and disconnected; the other client
# sees the same from the server.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 180
umask 022
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

vol_setup kv
A=$T_DIR/a
B=$T_DIR/b
cairnd_mount "$A" "$T_DIR/ca" kv "$T_DIR/tok" || exit 1
cairnd_mount "$B" "$T_DIR/cb" kv "$T_DIR/tok" || exit 1
jget() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get(sys.argv[1], ""))' "$1"; }
status() { "$FS" status --json -m "$A" 2>/dev/null | jget "$1"; }
# What stat says of a name: its type, or the error.
what() { stat -c %F "$1" 2>&1 | sed 's/^stat: cannot statx* [^:]*: //'; }
inval() { getfattr --only-values -n cairn.stats "$A" 2>/dev/null | awk '$1 == "invalidations" {print $2}'; }

mkdir "$A/d" "$A/o"
echo hello >"$A/d/f"

# 1. Online: mkmount over a name the kernel holds a negative entry of.
t_is "$(what "$A/d/new")" "No such file or directory" "before mkmount: no such name (a negative entry)"
m0=$(stat -c %Y.%y "$A/d")
i0=$(inval)
t_check "fs mkmount d/new" "$FS" mkmount "$A/d/new" proj
t_is "$(what "$A/d/new")" "directory" "right after mkmount: the name is there"
t_is "$("$FS" lsmount "$A/d/new" 2>&1)" "'$A/d/new' is a mount point for volume 'proj'" "and is the mount point"
t_ok "$([ "$(stat -c %Y.%y "$A/d")" != "$m0" ] && echo 0 || echo 1)" \
	"the parent's mtime is the new one at once"
t_ok "$([ "$(inval)" -ge $((i0 + 2)) ] && echo 0 || echo 1)" \
	"cairnd told the kernel (invalidations $i0 -> $(inval))"
t_is "$(ls "$A/d" | tr '\n' ' ')" "f new " "ls lists it"

# 2. Online: rmmount of a name the kernel holds an entry of.
t_is "$(what "$A/d/new")" "directory" "before rmmount: looked up"
t_check "fs rmmount d/new" "$FS" rmmount "$A/d/new"
t_is "$(what "$A/d/new")" "No such file or directory" "right after rmmount: the name is gone"
t_is "$(ls "$A/d" | tr '\n' ' ')" "f " "ls no longer lists it"
# A loop of both: each answer is the kernel's view at once.
bad=0
for i in $(seq 1 10); do
	stat "$A/d/m$i" >/dev/null 2>&1
	"$FS" mkmount "$A/d/m$i" proj >/dev/null 2>&1 || bad=$((bad + 1))
	[ -d "$A/d/m$i" ] || bad=$((bad + 1))
	"$FS" rmmount "$A/d/m$i" >/dev/null 2>&1 || bad=$((bad + 1))
	[ -e "$A/d/m$i" ] && bad=$((bad + 1))
done
t_is "$bad" 0 "10 rounds of stat, mkmount, stat, rmmount, stat: each at once"

# 3. Disconnected: no event will come; the answer alone must do. In o,
# which the churn above did not touch: resolving o/two offline needs o's
# listing cached in cairnd (it is: nothing but this mkmount changed o).
t_check "fs mkmount o/two (online)" "$FS" mkmount "$A/o/two" proj
wait_for 5 test -d "$B/o/two"
t_is "$(ls "$A/o" | tr '\n' ' ')" "two " "o lists two"
t_is "$(what "$A/o/two")" "directory" "o/two looked up"
t_check "fs disconnect" "$FS" disconnect -m "$A"
t_is "$(status mode)" disconnected "disconnected"
t_check "offline: fs rmmount o/two" "$FS" rmmount "$A/o/two"
t_is "$(what "$A/o/two")" "No such file or directory" "offline: right after rmmount the name is gone"
t_is "$(what "$A/o/three")" "No such file or directory" "offline: no o/three yet (a negative entry)"
t_check "offline: fs mkmount o/three" "$FS" mkmount "$A/o/three" proj
t_is "$(what "$A/o/three")" "directory" "offline: right after mkmount the name is there"
t_is "$(ls "$A/o" | tr '\n' ' ')" "three " "offline: ls shows both changes"

# 4. Reconnected: the server has them; the other client sees the same.
"$FS" reconnect -m "$A" >"$T_DIR/reconnect.out" 2>&1
wait_for 30 sh -c "[ \"\$('$FS' status --json -m '$A' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"mode\"])')\" = connected ]"
t_is "$(status mode)" connected "reconnected"
t_is "$(status replay_pending)" 0 "the log is empty"
wait_for 10 sh -c "test -d '$B/o/three' && ! test -e '$B/o/two'"
t_is "$(ls "$B/o" | tr '\n' ' ')" "three " "client B: three made, two removed"
t_is "$(what "$A/o/three")|$(what "$A/o/two")" "directory|No such file or directory" \
	"client A: the same after the replay"

# 5. A failed rmmount (not a mount point) changes nothing and says so.
"$FS" rmmount "$A/d/f" 2>"$T_DIR/e1"
t_ok "$([ $? -ne 0 ] && echo 0 || echo 1)" "fs rmmount of a file fails"
t_is "$(cat "$A/d/f")" hello "the file is untouched"

cairnd_umount "$A"
cairnd_umount "$B"
t_done
