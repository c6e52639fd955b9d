#!/usr/bin/env bash
# t3040-fs-security: the control socket gives a local user only what the
# mount would (issue #12, High 1 and Medium 1). Conflicts are made inside
# a 0700 directory of root's; uid 65534 may not settle them (fs resolve
# fails with EACCES and the server keeps its version), does not see them
# (fs conflicts, fs replaylog) nor root's pins there (fs pins), may not
# remove a pin of root's it can read (fs unpin: EPERM, the pin stays), and
# fs unpin -r on the mount removes only its own pins. Root does all that.
# A 0711 directory of root's (hid/) lets uid 65534 reach names in it but
# not list them: it sees no pin, replay record or conflict of root's there.
# fs resolve of a path it cannot reach fails alike whether there is a
# conflict there or not, naming no change.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 120
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }
command -v setpriv >/dev/null || { echo "# SKIP: no setpriv"; exit 77; }

nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
jget() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get(sys.argv[1], ""))' "$1"; }
# The paths of a list member of a JSON answer, space-separated.
paths() { python3 -c 'import json,sys; print(" ".join(sorted(x.get("path", x.get("name", "")) for x in json.load(sys.stdin)[sys.argv[1]])))' "$1"; }

src=$T_DIR/src
mkdir -p "$src/secret" "$src/pub" "$src/nob" "$src/hid"
printf 'hidden\n' >"$src/hid/h.txt"
chmod 0644 "$src/hid/h.txt"
chmod 0711 "$src/hid"
printf 'root data\n' >"$src/secret/m.txt"
printf 'open\n' >"$src/pub/open.txt"
printf 'open too\n' >"$src/pub/open2.txt"
chmod 0755 "$src/pub"
chmod 0644 "$src/secret/m.txt" "$src/pub/open.txt" "$src/pub/open2.txt"
chmod 0700 "$src/secret"
printf 'nobody data\n' >"$src/nob/x.txt"
chown -R 65534:65534 "$src/nob"
chmod 0755 "$src/nob"
chmod 0644 "$src/nob/x.txt"
vold_start || exit 99
vos init >/dev/null 2>&1
vos import sec "$src" >/dev/null || exit 99
make_token sec rw "$T_DIR/tok"
A=$T_DIR/a
cairnd_mount "$A" "$T_DIR/ca" sec "$T_DIR/tok" --fetch-timeout 2s || exit 1
fsj() { "$FS" "$@" --json -m "$A" 2>/dev/null; }

t_is "$(stat -c '%a %u' "$A/secret")" "700 0" "secret/ is root's, mode 0700, through the mount"
nobody cat "$A/secret/m.txt" >/dev/null 2>&1
t_ok "$([ $? -ne 0 ] && echo 0 || echo 1)" "uid 65534 cannot read secret/m.txt through the mount"

# --- pins: root's in secret/ and in pub/, one of uid 65534's in pub/ ---
t_check "root pins secret/m.txt" "$FS" pin "$A/secret/m.txt"
t_check "root pins pub/open.txt" "$FS" pin "$A/pub/open.txt"
t_check "root pins hid/h.txt" "$FS" pin "$A/hid/h.txt"
t_check "uid 65534 can read hid/h.txt (0711 lets it reach the name)" nobody cat "$A/hid/h.txt"
nobody ls "$A/hid" >/dev/null 2>&1
t_ok "$([ $? -ne 0 ] && echo 0 || echo 1)" "but cannot list hid/"
t_check "uid 65534 pins pub/open2.txt" nobody "$FS" pin "$A/pub/open2.txt"
t_is "$(fsj pins | paths pins)" "hid/h.txt pub/open.txt pub/open2.txt secret/m.txt" "root sees every pin"
t_is "$(nobody "$FS" pins --json -m "$A" 2>/dev/null | paths pins)" "pub/open.txt pub/open2.txt" \
	"uid 65534 does not see root's pins in secret/ nor in the 0711 hid/"
nobody "$FS" unpin "$A/pub/open.txt" >/dev/null 2>"$T_DIR/unpin.err"
rc=$?
t_is "$rc" 77 "uid 65534 may not unpin root's pin of a file it can read (exit 77)"
t_check "and is told whose pin it is" grep -q "only its owner or root" "$T_DIR/unpin.err"
t_is "$(fsj pins | paths pins)" "hid/h.txt pub/open.txt pub/open2.txt secret/m.txt" "root's pin is still there"
nobody "$FS" unpin -r --json "$A" >"$T_DIR/unpin-r.json" 2>&1
t_is "$?" 0 "uid 65534: fs unpin -r on the mount"
t_is "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))[0]; print(d["pins_removed"], d["pins_kept"])' "$T_DIR/unpin-r.json")" "1 3" \
	"removes its own pin only and keeps root's three"
t_is "$(fsj pins | paths pins)" "hid/h.txt pub/open.txt secret/m.txt" "root's pins survive uid 65534's unpin -r"

# --- conflicts inside secret/: A changes offline, B on the server ---
t_check "read nob/x.txt (cached for the offline write)" cat "$A/nob/x.txt"
t_check "fs disconnect" "$FS" disconnect -m "$A"
t_check "offline: chmod secret/m.txt" chmod 0600 "$A/secret/m.txt"
t_check "offline: create secret/new.txt" sh -c "printf 'mine\\n' >'$A/secret/new.txt'"
t_check "offline: create hid/c.txt" sh -c "printf 'root hid\\n' >'$A/hid/c.txt'"
t_check "offline: create pub/p.txt" sh -c "printf 'pub\\n' >'$A/pub/p.txt'"
t_check "offline: uid 65534 writes its nob/x.txt" nobody sh -c "printf 'nobody offline\\n' >'$A/nob/x.txt'"
root_log=$(fsj replaylog | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["records"]))')
t_ok "$([ "$root_log" -ge 3 ] && echo 0 || echo 1)" "root sees every replay record ($root_log)"
nobody "$FS" replaylog --json -m "$A" >"$T_DIR/rl.json" 2>&1
t_is "$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); r=d["records"]; print([x["name"] for x in r if x["op"] == "create"], len(set(x["fid"] for x in r)), d["pending"])' "$T_DIR/rl.json")" \
	"['p.txt'] 2 3" "uid 65534 sees only the records of pub/ and nob/ (p.txt: create and data; x.txt: data), none in secret/ or hid/"
B=$T_DIR/b
cairnd_mount "$B" "$T_DIR/cb" sec "$T_DIR/tok" || exit 1
t_check "B writes secret/m.txt" sh -c "printf 'from B\\n' >'$B/secret/m.txt'"
t_check "B creates secret/new.txt" sh -c "printf 'theirs\\n' >'$B/secret/new.txt'"
t_check "B creates hid/c.txt" sh -c "printf 'theirs hid\\n' >'$B/hid/c.txt'"
t_check "B writes nob/x.txt" sh -c "printf 'from B\\n' >'$B/nob/x.txt'"
cairnd_umount "$B"
"$FS" reconnect -m "$A" >"$T_DIR/reconnect.out" 2>&1
wait_for 20 sh -c "[ \"\$('$FS' status --json -m '$A' | python3 -c 'import json,sys; print(json.load(sys.stdin)[\"mode\"])')\" = connected ]"
t_is "$(fsj status | jget mode)" connected "reconnected"

t_is "$(fsj conflicts | paths conflicts)" "hid/c.txt hid/c.txt nob/x.txt secret/m.txt secret/new.txt secret/new.txt" \
	"root sees the conflicts in secret/ and hid/ (and nob/x.txt)"
t_is "$(nobody "$FS" conflicts --json -m "$A" 2>/dev/null | paths conflicts)" "nob/x.txt" \
	"uid 65534 sees none of those in secret/ or hid/, and its own"
t_is "$(nobody "$FS" replaylog --json -m "$A" 2>/dev/null | jget pending)" 0 "nor any replay record"

# --- uid 65534 tries to settle them ---
dvof() { fsj examine "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["dv"])'; }
dv0=$(dvof "$A/secret/new.txt")
nobody "$FS" resolve -m "$A" --keep local "$A/secret/new.txt" >"$T_DIR/res.out" 2>"$T_DIR/res.err"
t_is "$?" 77 "uid 65534: fs resolve --keep local in a 0700 root directory fails (exit 77)"
t_check "with EACCES's message" grep -q "may not settle conflicts there" "$T_DIR/res.err"
t_ok "$(grep -qi 'create\|setattr\|store' "$T_DIR/res.err" && echo 1 || echo 0)" "which names no change"
nobody "$FS" resolve -m "$A" --keep local "$A/secret/none.txt" >/dev/null 2>"$T_DIR/res-none.err"
t_is "$?" 77 "uid 65534: fs resolve of a path in secret/ with no conflict: the same EACCES, not ENOENT"
t_is "$(sed 's/none\.txt/new.txt/' "$T_DIR/res-none.err")" "$(cat "$T_DIR/res.err")" \
	"with the same message: whether root has a conflict there is not told"
nobody "$FS" resolve -m "$A" --keep server "$A/secret/none.txt" >/dev/null 2>&1
t_is "$?" 77 "and so for keep server"
nobody "$FS" resolve -m "$A" --keep server "$A/pub/none.txt" >/dev/null 2>"$T_DIR/res-pub.err"
t_is "$?" 66 "a path it can reach with no conflict: ENOENT (exit 66)"
t_check "saying so" grep -q "no conflict at this path" "$T_DIR/res-pub.err"
nobody "$FS" resolve -m "$A" --keep local "$A/secret/m.txt" >/dev/null 2>&1
t_is "$?" 77 "uid 65534: keep local of root's chmod fails too"
nobody "$FS" resolve -m "$A" --keep server "$A/secret/m.txt" >/dev/null 2>&1
t_is "$?" 77 "uid 65534: keep server (dropping root's change) fails too"
t_is "$(fsj status | jget conflicts)" 6 "every conflict is still there"
t_check "uid 65534 may settle its own conflict (keep server)" nobody "$FS" resolve -m "$A" --keep server "$A/nob/x.txt"
t_is "$(fsj status | jget conflicts)" 5 "that one is gone"
C=$T_DIR/c
cairnd_mount "$C" "$T_DIR/cc" sec "$T_DIR/tok" || exit 1
t_is "$(cat "$C/secret/new.txt" 2>&1)|$(stat -c %a "$C/secret/m.txt")" "theirs|644" \
	"the server is unchanged: B's new.txt, m.txt's mode"
t_is "$(dvof "$A/secret/new.txt")" "$dv0" "new.txt's DV is unchanged ($dv0)"
grep -q "resolve at 'secret/new.txt' refused to uid 65534" "$T_DIR/cairnd-a.log"
t_ok "$?" "cairnd logs the refusal"

# --- root may ---
t_check "root: fs resolve --keep local secret/new.txt" "$FS" resolve -m "$A" --keep local "$A/secret/new.txt"
t_check "root: fs resolve --keep local secret/m.txt" "$FS" resolve -m "$A" --keep local "$A/secret/m.txt"
wait_for 5 sh -c "[ \"\$(cat '$C/secret/new.txt' 2>/dev/null)\" = mine ]"
t_is "$(cat "$C/secret/new.txt" 2>&1)" mine "root's keep local reached the server"
wait_for 5 sh -c "[ \"\$(stat -c %a '$C/secret/m.txt')\" = 600 ]"
t_is "$(stat -c %a "$C/secret/m.txt")" 600 "and so did root's chmod"
cairnd_umount "$C"
t_done
