#!/usr/bin/env bash
# t4021-wback-two-clients: two clients of one volume, A in writeback mode
# (writeback-delay 1 s), B in sync mode. A change on A returns before the
# server has it (A's backlog shows it, B does not see it yet) and is seen
# on B within the bound (1 s delay + sending; checked at 3 s): a create
# with data, a mkdir, a rename, an unlink, a chmod. While 300 creates
# drain, A's listing always has all 300 names (server news does not hide
# what A has not sent yet). A file A wrote and chmod'ed shows B's later
# rewrite once A's changes are on the server. Concurrent edits: A
# (writeback) and B (sync)
# both rewrite one file; B's close reaches the server first, A's store is
# refused when it drains: A's fs sync reports it, fs conflicts lists it,
# and a fresh client finds B's version under the name and exactly one
# conflict copy with A's bytes.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 300
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

vold_start || exit 99
vos init >/dev/null 2>&1
vos create two >/dev/null 2>&1 || exit 99
make_token two rw "$T_DIR/tok"
A=$T_DIR/a
B=$T_DIR/b
cairnd_mount "$A" "$T_DIR/cache-a" two "$T_DIR/tok" --write-mode writeback --writeback-delay 1s || exit 1
cairnd_mount "$B" "$T_DIR/cache-b" two "$T_DIR/tok" || exit 1
jst() { "$FS" status --json -m "$1" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$2"; }

now() { date +%s.%N; }
ms_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%d", (b - a) * 1000 }'; }
content_is() { [ "$(cat "$1" 2>/dev/null)" = "$2" ]; }
absent() { [ ! -e "$1" ] && ! ls "$(dirname "$1")" 2>/dev/null | grep -qxF "$(basename "$1")"; }
# seen DESC T0 CMD...: poll CMD for 3 s from T0 (when the change on A
# returned), then assert it holds.
seen() {
	local desc=$1 t0=$2
	shift 2
	while [ "$(ms_since "$t0")" -lt 3000 ]; do
		"$@" >/dev/null 2>&1 && break
		sleep 0.05
	done
	if "$@" >/dev/null 2>&1; then
		t_ok 0 "$desc (after $(ms_since "$t0") ms)"
	else
		t_ok 1 "$desc (not within 3 s)"
	fi
}

t_is "$(jst "$A" write_mode)|$(jst "$B" write_mode)" "writeback|sync" "A writes back, B is sync"
ls -la "$B" >/dev/null 2>&1
t0=$(now)
echo one >"$A/f1" || t_ok 1 "A: create and write f1"
# B's look first, the status after: on a loaded machine fs status and
# python may take longer than the drain's 1 s bound.
absent "$B/f1"; b_abs=$?
b_ms=$(ms_since "$t0")
back=$(jst "$A" backlog_records)
t_ok "$b_abs" "B does not see f1 yet (looked $b_ms ms after A's close)"
t_ok "$([ "${back:-0}" -ge 1 ] || [ "$(ms_since "$t0")" -ge 900 ] && echo 0 || echo 1)" \
	"A's close returned with the change still in its log ($back records, $(ms_since "$t0") ms after it)"
seen "B reads f1 written on A" "$t0" content_is "$B/f1" one
t0=$(now); mkdir "$A/d"
seen "B sees A's mkdir" "$t0" test -d "$B/d"
t0=$(now); mv "$A/f1" "$A/d/f1r"
seen "B sees A's rename" "$t0" content_is "$B/d/f1r" one
seen "B no longer sees the old name" "$t0" absent "$B/f1"
t0=$(now); chmod 0600 "$A/d/f1r"
seen "B sees A's chmod" "$t0" sh -c "[ \"\$(stat -c %a '$B/d/f1r')\" = 600 ]"
t0=$(now); rm "$A/d/f1r"
seen "B sees A's unlink" "$t0" absent "$B/d/f1r"

# A's own view while its log drains: 300 creates logged (a long delay),
# then drained by fs sync while A lists the directory again and again.
t_check "A: a long delay" "$FS" setpolicy -m "$A" --writeback-delay 60s
mkdir "$A/many" || exit 1
for i in $(seq 1 300); do echo "$i" >"$A/many/m$i"; done
t_ok "$([ "$(jst "$A" backlog_records)" -ge 300 ] && echo 0 || echo 1)" "300 files logged, not sent"
"$FS" sync -m "$A" >"$T_DIR/sync-many.out" 2>&1 &
spid=$!
short=0 rounds=0
while kill -0 "$spid" 2>/dev/null && [ "$rounds" -lt 2000 ]; do
	n=$(ls "$A/many" | wc -l)
	[ "$n" = 300 ] || short=$((short + 1))
	rounds=$((rounds + 1))
done
wait "$spid"
t_is "$?" 0 "fs sync on A"
t_is "$short" 0 "A lists all 300 names at every look while they drain ($rounds looks)"
seen "B lists 300 names once A synced" "$(now)" sh -c "[ \"\$(ls '$B/many' | wc -l)\" = 300 ]"
t_check "A: back to 1 s" "$FS" setpolicy -m "$A" --writeback-delay 1s

# A file A wrote and then chmod'ed (its store and its setattr drain in
# that order): once both are on the server, A shows B's later rewrite.
# (The store's write state stayed "logged" for good: A kept its own
# bytes and never showed B's.)
echo a-version >"$A/m.txt" && chmod 600 "$A/m.txt"
echo a-version >"$A/n.txt"
t_check "fs sync of m.txt and n.txt" "$FS" sync -m "$A"
t0=$(now)
until content_is "$B/m.txt" a-version || [ "$(ms_since "$t0")" -gt 3000 ]; do sleep 0.05; done
t_check "B: rewrite m.txt and n.txt" sh -c "echo b-version >'$B/m.txt' && echo b-version >'$B/n.txt'"
t0=$(now)
seen "A shows B's rewrite of a file it did not chmod" "$t0" content_is "$A/n.txt" b-version
seen "A shows B's rewrite of the file it chmod'ed" "$t0" content_is "$A/m.txt" b-version

# Concurrent edits.
t_check "A: create c.txt" sh -c "echo base >'$A/c.txt'"
t_check "fs sync c.txt" "$FS" sync "$A/c.txt"
t0=$(now)
until content_is "$B/c.txt" base || [ "$(ms_since "$t0")" -gt 3000 ]; do sleep 0.05; done
t_check "A: set a long delay" "$FS" setpolicy -m "$A" --writeback-delay 30s
t_check "A: rewrite c.txt (logged)" sh -c "echo from-a >'$A/c.txt'"
t_check "B: rewrite c.txt (on the server at close)" sh -c "echo from-b >'$B/c.txt'"
"$FS" sync "$A/c.txt" >"$T_DIR/sync.out" 2>&1
rc=$?
t_ok "$([ "$rc" -ne 0 ] && echo 0 || echo 1)" "A's fs sync of c.txt reports the refusal (exit $rc: $(head -c 80 "$T_DIR/sync.out"))"
t_is "$(jst "$A" conflicts)" 1 "A has one conflict"
"$FS" conflicts -m "$A" >"$T_DIR/conflicts.out" 2>&1
t_ok "$(grep -q 'c.txt' "$T_DIR/conflicts.out" && echo 0 || echo 1)" "fs conflicts names c.txt"
C=$T_DIR/c
cairnd_mount "$C" "$T_DIR/cache-c" two "$T_DIR/tok" || exit 1
t_is "$(cat "$C/c.txt")" from-b "the server kept B's version under the name"
copies=$(ls "$C" | grep -c '^c\.txt\.conflict-')
t_is "$copies" 1 "exactly one conflict copy"
t_is "$(cat "$C"/c.txt.conflict-* 2>/dev/null)" from-a "the copy holds A's bytes"
t_is "$(ls "$C/many" | wc -l)" 300 "nothing else was lost"
cairnd_umount "$C"
cairnd_umount "$B"
cairnd_umount "$A"
t_done
