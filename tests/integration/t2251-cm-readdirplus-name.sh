#!/usr/bin/env bash
# t2251-cm-readdirplus-name: readdirplus answers from the listing taken
# at opendir. A file renamed after that opendir must keep its new name in
# cairnd's inode table: the name feeds wb_open_write() and the paths of
# conflicts. A directory handle opened before "mv a.txt b.txt" is read
# again from the start (rewinddir: readdirplus, offset 0); then b.txt is
# written while disconnected and changed on the server by a second
# client, and the conflict must be named d/b.txt, not d/a.txt.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 120
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

src=$T_DIR/src
mkdir -p "$src/d"
printf 'base\n' >"$src/d/a.txt"
vold_start || exit 99
vos init >/dev/null 2>&1
vos import lab "$src" >/dev/null || exit 99
make_token lab rw "$T_DIR/tok"
A=$T_DIR/a
cairnd_mount "$A" "$T_DIR/ca" lab "$T_DIR/tok" || exit 99
ls -l "$A/d" >/dev/null

out=$(python3 - "$A/d" <<'PY'
import os, sys, time
d = sys.argv[1]
fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
os.listdir(fd)                      # the handle's listing: a.txt
os.rename(d + "/a.txt", d + "/b.txt")
time.sleep(0.5)                     # the kernel's cached pages go
print(" ".join(sorted(os.listdir(fd))))  # rewinddir: readdirplus again
os.close(fd)
PY
)
t_is "$out" "a.txt" "the old handle still lists its snapshot"

t_check "fs disconnect" "$FS" disconnect -m "$A"
printf 'local\n' >"$A/d/b.txt"
t_ok $? "write b.txt while disconnected"
B=$T_DIR/b
cairnd_mount "$B" "$T_DIR/cb" lab "$T_DIR/tok" || exit 99
t_check "B changes b.txt on the server" sh -c "printf 'server\\n' >'$B/d/b.txt'"
cairnd_umount "$B"
"$FS" reconnect -m "$A" >"$T_DIR/reconnect.out" 2>&1
wait_for 20 sh -c "[ \"\$('$FS' status --json -m '$A' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"mode\"])')\" = connected ]"
t_ok $? "reconnected"
t_is "$("$FS" conflicts --json -m "$A" 2>/dev/null | python3 -c 'import json,sys; print(" ".join(c["path"] + ":" + c["kind"] for c in json.load(sys.stdin)["conflicts"]))')" \
	"d/b.txt:stale-dv" "the conflict has the file's name since the rename"
# (A new listing would have named it right again: only now.)
t_is "$(ls "$A/d" | grep -v conflict | tr '\n' ' ')" "b.txt " "a new listing has the new name"
cairnd_umount "$A"
t_done
