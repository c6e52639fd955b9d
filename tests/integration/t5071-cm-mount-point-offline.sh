#!/usr/bin/env bash
# t5071-cm-mount-point-offline: mount points made and removed while
# disconnected (issue #15) show at once, are in the replay log, survive a
# clean restart and a kill -9 of cairnd, and replay to the server; a
# mkmount followed by its rmmount leaves nothing; a mount point made
# offline over a name another client took meanwhile becomes a conflict.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 240
umask 022
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

vol_setup mpo
A=$T_DIR/a
B=$T_DIR/b
cairnd_mount "$A" "$T_DIR/ca" mpo "$T_DIR/tok" || exit 1
cairnd_mount "$B" "$T_DIR/cb" mpo "$T_DIR/tok" || exit 1

fsj() { "$FS" "$@" --json -m "$A" 2>/dev/null; }
jget() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get(sys.argv[1], ""))' "$1"; }
status() { fsj status | jget "$1"; }
# name type mode for one directory, sorted; a mount point reads as dir
list() { (cd "$1" && for n in *; do printf '%s %s\n' "$n" "$(stat -c '%F %a' "$n")"; done); }
mounts() { for n in "$@"; do "$FS" lsmount "$n" 2>&1; done; }

mkdir "$A/d"
echo keep >"$A/d/file"
t_check "online: mkmount d/online" "$FS" mkmount "$A/d/online" online
wait_for 5 test -d "$B/d/online"

t_check "fs disconnect" "$FS" disconnect -m "$A"
t_is "$(status mode)" disconnected "disconnected"
out=$("$FS" mkmount "$A/d/off" proj 2>&1)
t_ok $? "offline: mkmount d/off proj"
t_is "$out" "'$A/d/off' is now a mount point for volume 'proj'" "offline: mkmount answers at once"
t_check "offline: mkmount d/gone" "$FS" mkmount "$A/d/gone" tmp
t_check "offline: rmmount d/gone (made offline)" "$FS" rmmount "$A/d/gone"
t_check "offline: rmmount d/online (made online)" "$FS" rmmount "$A/d/online"
t_check "offline: mkmount d/race" "$FS" mkmount "$A/d/race" mine
# Meanwhile the other client takes the name "race".
mkdir "$B/d/race"
want="file regular file 644
off directory 755
race directory 755"
t_is "$(list "$A/d")" "$want" "offline: the listing shows what was made and removed"
t_is "$(mounts "$A/d/off" "$A/d/race")" "'$A/d/off' is a mount point for volume 'proj'
'$A/d/race' is a mount point for volume 'mine'" "offline: lsmount answers from the cache"
t_is "$(ls "$A/d/off" 2>&1 | grep -c 'Permission denied')" 1 "offline: the new one is not readable inside"
t_is "$(fsj replaylog | python3 -c 'import json,sys; print(" ".join(r["op"] for r in json.load(sys.stdin)["records"]))')" \
	"mkmount unlink mkmount" "the log: mkmount off, unlink online, mkmount race (gone's pair cancelled)"
n0=$(status replay_pending)

cairnd_umount "$A"
cairnd_mount "$A" "$T_DIR/ca" mpo "$T_DIR/tok" || exit 1
t_is "$(status mode)" disconnected "after a restart: still disconnected"
t_is "$(status replay_pending)" "$n0" "after a restart: the log is intact"
t_is "$(list "$A/d")" "$want" "after a restart: the same listing"
cairnd_kill9 "$A"
cairnd_mount "$A" "$T_DIR/ca" mpo "$T_DIR/tok" || exit 1
t_is "$(status replay_pending)" "$n0" "after kill -9: the log is intact"
t_is "$(mounts "$A/d/off")" "'$A/d/off' is a mount point for volume 'proj'" "after kill -9: lsmount"

"$FS" reconnect -m "$A" >"$T_DIR/reconnect.out" 2>&1
wait_for 30 sh -c "[ \"\$('$FS' status --json -m '$A' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"mode\"])')\" = connected ]"
t_is "$(status mode)" connected "reconnected"
t_is "$(status replay_pending)" 0 "the log is empty"
t_is "$(status conflicts)" 1 "one conflict: the name race was taken"
t_is "$(fsj conflicts | python3 -c 'import json,sys; c=json.load(sys.stdin)["conflicts"][0]; print(c["op"], c["kind"], c["path"])')" \
	"mkmount name-exists d/race" "the conflict names the mkmount of d/race"

# What the server has now, seen through the other client.
wait_for 10 test -d "$B/d/off"
t_is "$(mounts "$B/d/off")" "'$B/d/off' is a mount point for volume 'proj'" "client B: the replayed mount point"
wait_for 10 sh -c "! test -e '$B/d/online'"
t_is "$(ls "$B/d" | tr '\n' ' ')" "file off race " "client B: online removed, gone never made, race is B's directory"
"$FS" lsmount "$B/d/race" 2>/dev/null
t_is "$?" 65 "client B: race is not a mount point"
t_check "fs resolve --keep server settles it" "$FS" resolve --keep server "$A/d/race"
t_is "$(status conflicts)" 0 "no conflict left"

# cairn-fsck finds the cache of a client with mount points clean.
cairnd_umount "$A"
"$FSCK" --json "$T_DIR/ca" >"$T_DIR/fsck.json" 2>"$T_DIR/fsck.err"
t_is "$? $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("was_clean"))' "$T_DIR/fsck.json" 2>/dev/null)" \
	"0 True" "cairn-fsck: the cache is clean"
t_done
