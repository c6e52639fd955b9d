#!/usr/bin/env bash
# t4000-offline-day: the laptop promise of issue #7. Pin a tree, stop the
# server, edit, create, delete, rename, chmod, setxattr, mkdir while it is
# gone (cairnd notices by itself), restart cairnd while offline, start the
# server, reconnect: the server's tree then equals the one expected
# (content hashes, modes, xattrs), checked from a second client with an
# empty cache. Along the way: fs status shows the mode and the pending
# records, the log rules keep the log small (store over store, create then
# remove, counted with fs replaylog), an uncached read offline fails at
# once with EIO, and a concurrent change by another client becomes a
# conflict with the local data saved beside it.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 300
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

src=$T_DIR/src
mkdir -p "$src/proj/sub" "$src/other"
printf 'keep me\n' >"$src/proj/keep.txt"
printf 'edit me\n' >"$src/proj/edit.txt"
printf 'delete me\n' >"$src/proj/gone.txt"
printf 'rename me\n' >"$src/proj/old-name.txt"
printf 'chmod me\n' >"$src/proj/mode.txt"
printf 'xattr me\n' >"$src/proj/x.txt"
printf 'both edit\n' >"$src/proj/both.txt"
printf 'local edit\n' >"$src/proj/loc.txt"
printf 'chain\n' >"$src/proj/chain.txt"
printf 'meta\n' >"$src/proj/m2.txt"
printf 'r1\n' >"$src/proj/r1"
printf 'srv\n' >"$src/proj/srv.txt"
mkdir -p "$src/proj/pd"
printf 'pd\n' >"$src/proj/pd/old"
head -c 300000 /dev/urandom >"$src/proj/sub/data.bin"
head -c 100000 /dev/urandom >"$src/other/uncached.bin"
head -c 100000 /dev/urandom >"$src/other/statted.bin"
vold_start || exit 99
vos init >/dev/null 2>&1
vos import day "$src" >/dev/null || exit 99
make_token day rw "$T_DIR/tok"
A=$T_DIR/a
cairnd_mount "$A" "$T_DIR/ca" day "$T_DIR/tok" --fetch-timeout 2s || exit 1
fsj() { "$FS" "$@" --json -m "$A" 2>/dev/null; }
jget() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get(sys.argv[1], ""))' "$1"; }
status() { fsj status | jget "$1"; }

t_check "fs pin -r the project" "$FS" pin -r "$A/proj"
t_check "stat a file (its attributes cached, not its data)" stat "$A/other/statted.bin"
t_is "$(status mode)" connected "mode: connected"

# --- the server goes away; the first change notices it ---
vold_stop
t0=$(date +%s.%N)
printf 'edited offline\n' >"$A/proj/edit.txt"
rc=$?
secs=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
t_is "$rc" 0 "a write and close with the server gone succeeds"
t_ok "$(awk -v s="$secs" 'BEGIN { exit !(s < 10) }' && echo 0 || echo 1)" \
	"disconnect detected in bounded time ($secs s, fetch-timeout 2 s)"
t_is "$(status mode)" disconnected "mode: disconnected (automatic)"

# --- an offline day ---
t_check "read a pinned file offline" cmp "$A/proj/sub/data.bin" "$src/proj/sub/data.bin"
t_is "$(cat "$A/proj/edit.txt")" "edited offline" "the edit reads back"
t0=$(date +%s.%N)
cat "$A/other/uncached.bin" >/dev/null 2>"$T_DIR/miss.err"
t_ok "$(grep -q 'Input/output error\|No such' "$T_DIR/miss.err" && echo 0 || echo 1)" \
	"an uncached read offline fails ($(head -c 60 "$T_DIR/miss.err"))"
ms0=$(( $(date +%s%N) / 1000000 ))
cat "$A/other/uncached.bin" >/dev/null 2>&1
t_ok "$([ $(( $(date +%s%N) / 1000000 - ms0 )) -lt 1000 ] && echo 0 || echo 1)" "offline-miss=error: at once"
"$FS" setpolicy -m "$A" offline-miss=maybe >/dev/null 2>&1
t_ok "$([ $? -ne 0 ] && echo 0 || echo 1)" "fs setpolicy with a bad value fails"
t_is "$(status offline_miss)" error "and changes nothing"
t_check "fs setpolicy offline-miss=wait:3" "$FS" setpolicy -m "$A" offline-miss=wait:3
t_is "$(status offline_miss)" wait:3 "fs status shows the policy"
ms0=$(( $(date +%s%N) / 1000000 ))
cat "$A/other/uncached.bin" >/dev/null 2>&1
rc=$?
waited=$(( $(date +%s%N) / 1000000 - ms0 ))
t_ok "$([ "$rc" -ne 0 ] && [ "$waited" -ge 2500 ] && [ "$waited" -lt 15000 ] && echo 0 || echo 1)" \
	"offline-miss=wait:3: the miss waits about 3 s for the server, then fails ($waited ms)"
t_check "fs setpolicy offline-miss=error" "$FS" setpolicy -m "$A" offline-miss=error
t_check "rm offline" rm "$A/proj/gone.txt"
t_check "mv offline" mv "$A/proj/old-name.txt" "$A/proj/new-name.txt"
t_check "chmod offline" chmod 0600 "$A/proj/mode.txt"
t_check "setfattr offline" setfattr -n user.tag -v offline "$A/proj/x.txt"
t_check "mkdir offline" mkdir "$A/proj/newdir"
t_check "create in the new dir" sh -c "printf 'brand new\\n' >'$A/proj/newdir/new.txt'"
t_check "symlink offline" ln -s new-name.txt "$A/proj/link"
t_is "$(ls "$A/proj" | tr '\n' ' ')" "both.txt chain.txt edit.txt keep.txt link loc.txt m2.txt mode.txt new-name.txt newdir pd r1 srv.txt sub x.txt " \
	"the listing shows the offline changes"
t_is "$(getfattr --absolute-names --only-values -n user.tag "$A/proj/x.txt" 2>&1)" offline "the xattr reads back offline"

# Log rules: two more stores of one file keep one record; a file created
# and removed offline leaves none.
n0=$(fsj replaylog | jget pending)
printf 'second\n' >"$A/proj/edit.txt"
printf 'edited twice offline\n' >"$A/proj/edit.txt"
t_is "$(fsj replaylog | jget pending)" "$n0" "store over store: still $n0 records"
printf 'temp\n' >"$A/proj/tmp.txt"
rm "$A/proj/tmp.txt"
t_is "$(fsj replaylog | jget pending)" "$n0" "create + remove offline: no records left"
mv "$A/proj/chain.txt" "$A/proj/c1" && mv "$A/proj/c1" "$A/proj/c2" && mv "$A/proj/c2" "$A/proj/chain-end.txt"
t_is "$(fsj replaylog | jget pending)" "$((n0 + 1))" "a chain of 3 renames: one record"
n0=$((n0 + 1))
t_ok "$([ "$n0" -ge 8 ] && echo 0 || echo 1)" "the day's changes are logged ($n0 records)"

# --- restart cairnd while offline: the mode, the log and the data stay ---
cairnd_umount "$A"
cairnd_mount "$A" "$T_DIR/ca" day "$T_DIR/tok" --fetch-timeout 2s || exit 1
t_is "$(status mode)" disconnected "after a restart: still disconnected"
t_is "$(status replay_pending)" "$n0" "after a restart: the log is intact"
t_is "$(cat "$A/proj/edit.txt" 2>&1)" "edited twice offline" "after a restart: the edit is there"
t_is "$(cat "$A/proj/newdir/new.txt" 2>&1)" "brand new" "after a restart: the new file is there"

# --- meanwhile another client changes both.txt on the server; A, made
# to stay disconnected (fs disconnect: no probes), edits it too ---
t_check "fs disconnect (manual: stays until fs reconnect)" "$FS" disconnect -m "$A"
# offline-miss=wait longer than fetch-timeout (2 s): a read of data not
# cached (the attributes are) waits for the server and is answered once it
# is back.
t_check "fs setpolicy offline-miss=wait:60" "$FS" setpolicy -m "$A" offline-miss=wait:60
ms0=$(( $(date +%s%N) / 1000000 ))
cat "$A/other/statted.bin" >"$T_DIR/waited.bin" 2>"$T_DIR/waited.err" &
catpid=$!
t_track_pid "$catpid"
sleep 5
t_ok "$(kill -0 "$catpid" 2>/dev/null && echo 0 || echo 1)" \
	"offline-miss=wait:60: the read still waits after 5 s ($(head -c 60 "$T_DIR/waited.err"))"
vold_restart || exit 99
wait_for 30 sh -c "! kill -0 $catpid 2>/dev/null"
wait "$catpid" 2>/dev/null
rc=$?
waited=$(( $(date +%s%N) / 1000000 - ms0 ))
t_ok "$([ "$rc" = 0 ] && cmp -s "$T_DIR/waited.bin" "$src/other/statted.bin" && echo 0 || echo 1)" \
	"the waiting read gets the file's bytes once the server is back ($waited ms)"
t_check "fs setpolicy offline-miss=error" "$FS" setpolicy -m "$A" offline-miss=error
sleep 2
t_is "$(status mode)" disconnected "a manual disconnect does not reconnect by itself"
printf 'offline side\n' >"$A/proj/both.txt" 2>/dev/null
printf 'local wins\n' >"$A/proj/loc.txt" 2>/dev/null
chmod 0640 "$A/proj/m2.txt"
printf 'mine\n' >"$A/proj/new1.txt"
ln -s mine "$A/proj/sl2"
mv "$A/proj/r1" "$A/proj/r2"
printf 'srv from A\n' >"$A/proj/srv.txt"
ls "$A/proj/pd" >/dev/null
(umask 022 && printf 'made offline in pd\n' >"$A/proj/pd/f") # 0644
"$FS" status -m "$A" >"$T_DIR/status.txt" 2>&1
t_ok "$(grep -q 'mode.*disconnected (by hand) since' "$T_DIR/status.txt" && grep -q 'replay pending.*records' "$T_DIR/status.txt" && echo 0 || echo 1)" \
	"fs status says disconnected by hand, since when, and what is pending"
B=$T_DIR/b
cairnd_mount "$B" "$T_DIR/cb" day "$T_DIR/tok" || exit 1
t_check "B edits both.txt on the server" sh -c "printf 'server side\\n' >'$B/proj/both.txt'"
t_check "B edits loc.txt on the server" sh -c "printf 'server loses\\n' >'$B/proj/loc.txt'"
t_check "B edits m2.txt on the server" sh -c "printf 'meta from B\\n' >'$B/proj/m2.txt'"
t_check "B creates new1.txt, a name A created offline" sh -c "printf 'theirs\\n' >'$B/proj/new1.txt'"
t_check "B makes symlink sl2 and file r2, names A took offline" sh -c "ln -s theirs '$B/proj/sl2' && echo b >'$B/proj/r2'"
t_check "B edits srv.txt and removes pd" sh -c "printf 'srv from B\\n' >'$B/proj/srv.txt' && rm -r '$B/proj/pd'"
cairnd_umount "$B"

# --- reconnect: everything replays ---
"$FS" reconnect -m "$A" >"$T_DIR/reconnect.out" 2>&1
echo "# fs reconnect: $(cat "$T_DIR/reconnect.out")"
wait_for 20 sh -c "[ \"\$('$FS' status --json -m '$A' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"mode\"])')\" = connected ]"
t_is "$(status mode)" connected "reconnected"
t_is "$(status replay_pending)" 0 "the log is empty"
t_is "$(status conflicts)" 10 "ten conflicts (both.txt, loc.txt, m2.txt, new1.txt: create and data, sl2, r1 -> r2, srv.txt, pd/f: create and data)"

C=$T_DIR/c
cairnd_mount "$C" "$T_DIR/cc" day "$T_DIR/tok" || exit 1
t_is "$(cat "$C/proj/edit.txt" 2>&1)" "edited twice offline" "server: the edit"
t_is "$(ls "$C/proj" 2>&1 | grep -v conflict | tr '\n' ' ')" "both.txt chain-end.txt edit.txt keep.txt link loc.txt m2.txt mode.txt new-name.txt new1.txt newdir r1 r2 sl2 srv.txt sub x.txt " \
	"server: the listing"
t_is "$(cat "$C/proj/chain-end.txt" 2>&1)" chain "server: the end of the rename chain"
t_is "$(cat "$C/proj/new-name.txt" 2>&1)" "rename me" "server: the renamed file"
t_is "$(stat -c %a "$C/proj/mode.txt")" 600 "server: the mode"
t_is "$(getfattr --absolute-names --only-values -n user.tag "$C/proj/x.txt" 2>&1)" offline "server: the xattr"
t_is "$(cat "$C/proj/newdir/new.txt" 2>&1)" "brand new" "server: the file in the new dir"
t_is "$(readlink "$C/proj/link")" new-name.txt "server: the symlink"
t_check "server: untouched data" cmp "$C/proj/sub/data.bin" "$src/proj/sub/data.bin"
t_is "$(cat "$C/proj/both.txt")" "server side" "conflict: the server keeps its version"
copy=$(ls "$C/proj" | grep '^both\.txt\.conflict-' | head -n 1)
t_is "$(cat "$C/proj/$copy" 2>&1)" "offline side" "conflict: the local version is saved beside it ($copy)"
t_is "$(fsj conflicts | python3 -c 'import json,sys; print(" ".join(c["path"] + ":" + c["kind"] for c in json.load(sys.stdin)["conflicts"]))')" \
	"proj/both.txt:stale-dv proj/loc.txt:stale-dv proj/m2.txt:stale-dv proj/new1.txt:name-exists proj/new1.txt:object-gone proj/sl2:name-exists proj/r1:name-exists proj/srv.txt:stale-dv proj/pd/f:parent-gone proj/pd/f:object-gone" "fs conflicts lists them"
t_is "$(fsj conflicts | python3 -c 'import json,sys; c=[c for c in json.load(sys.stdin)["conflicts"] if c["path"]=="proj/both.txt"][0]; print(c.get("local_size"), c.get("server_size"), c.get("base_size"), c.get("server_dv", 0) > 0, c.get("copy", "").startswith("proj/both.txt.conflict-"))')" \
	"13 12 10 True True" "the conflict shows local, server and base sizes, the server's DV and the copy"
"$FS" conflicts -m "$A" >"$T_DIR/conflicts.txt" 2>&1
t_ok "$(grep -q 'server: size 12' "$T_DIR/conflicts.txt" && echo 0 || echo 1)" "fs conflicts prints the server's side"
t_check "fs resolve --keep both" "$FS" resolve -m "$A" --keep both "$A/proj/both.txt"
t_check "fs resolve --keep local" "$FS" resolve -m "$A" --keep local "$A/proj/loc.txt"
t_check "fs resolve --keep local of a refused chmod" "$FS" resolve -m "$A" --keep local "$A/proj/m2.txt"
t_check "fs resolve --keep local of a name both created" "$FS" resolve -m "$A" --keep local "$A/proj/new1.txt"
t_check "fs resolve --keep local of a symlink name both made" "$FS" resolve -m "$A" --keep local "$A/proj/sl2"
t_check "fs resolve --keep local of a rename onto a taken name" "$FS" resolve -m "$A" --keep local "$A/proj/r1"
t_check "fs resolve --all --keep server --match 'srv*'" "$FS" resolve -m "$A" --all --keep server --match 'srv*'
t_check "fs resolve --all --keep server --match f (the file in the removed dir)" "$FS" resolve -m "$A" --all --keep server --match f
t_is "$(status conflicts)" 0 "no conflicts left"
wait_for 5 sh -c "[ \"\$(cat '$C/proj/loc.txt' 2>/dev/null)\" = 'local wins' ]"
t_is "$(cat "$C/proj/loc.txt" 2>&1)" "local wins" "keep local: the server now has the local version"
t_is "$(ls "$C/proj" | grep -c '^loc\.txt\.conflict-')" 0 "keep local: its conflict copy is gone"
wait_for 5 sh -c "[ \"\$(stat -c %a '$C/proj/m2.txt')\" = 640 ]"
t_is "$(stat -c %a "$C/proj/m2.txt")|$(cat "$C/proj/m2.txt")" "640|meta from B" "keep local of the chmod: redone on B's version"
wait_for 5 sh -c "[ \"\$(cat '$C/proj/new1.txt' 2>/dev/null)\" = mine ]"
t_is "$(cat "$C/proj/new1.txt")|$(ls "$C/proj" | grep -c '^new1\.txt\.conflict-')" "mine|0" "keep local of the create: A's file has the name, no copy left"
wait_for 5 sh -c "[ \"\$(readlink '$C/proj/sl2')\" = mine ]"
t_is "$(readlink "$C/proj/sl2")" mine "keep local of the symlink: A's target"
wait_for 5 sh -c "[ ! -e '$C/proj/r1' ]"
t_is "$(cat "$C/proj/r2" 2>&1)|$([ -e "$C/proj/r1" ] && echo r1 || echo no-r1)" "r1|no-r1" "keep local of the rename: r1 replaced B's r2"
t_is "$(ls "$C/proj" | grep -c '^both\.txt\.conflict-')" 1 "keep both: its conflict copy stays"
t_is "$(cat "$C/proj/srv.txt")" "srv from B" "keep server: B's version stands"
t_is "$(cat "$C/proj/$(ls "$C/proj" | grep '^srv\.txt\.conflict-' | head -n 1)" 2>&1)" "srv from A" \
	"keep server: A's version is still findable in its conflict copy"
t_is "$(cat "$C/$(ls "$C" | grep '^f\.conflict-' | head -n 1)" 2>&1)" "made offline in pd" \
	"a file made offline in a directory removed meanwhile: saved in the root"
t_is "$(stat -c %a "$C/$(ls "$C" | grep '^f\.conflict-' | head -n 1)" 2>&1)" 600 \
	"and for its owner only there (0644 -> 0600): the root shows what pd/ may have kept from others"
"$FS" resolve -m "$A" --keep sideways "$A/proj/both.txt" >/dev/null 2>&1
t_is "$?" 64 "fs resolve with a bad --keep: usage error (64)"
"$FS" resolve -m "$A" --keep server "$A/proj/keep.txt" >/dev/null 2>&1
t_is "$?" 66 "fs resolve where there is no conflict: 66"
cairnd_umount "$C"
cairnd_umount "$A"
t_done
