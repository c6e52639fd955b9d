#!/usr/bin/env bash
# t2120-cm-two-clients: two cairnd mounts of one volume (separate caches,
# rw token) are two clients. A write and close on A is read on B within
# 1 s; mkdir, rename and unlink on A are seen on B within 1 s (B has the
# old state cached). Concurrent edits: both open the same file and write,
# A closes, then B closes: the server keeps A's version under the name and
# B's bytes are in NAME.conflict-HOST-YYYYMMDD-HHMMSS beside it; a third,
# fresh client checks that and that nothing else was lost.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 300

vold_start || exit 99
vos init >/dev/null 2>&1
vos create two >/dev/null 2>&1 || exit 99
make_token two rw "$T_DIR/tok"
A=$T_DIR/a
B=$T_DIR/b
cairnd_mount "$A" "$T_DIR/cache-a" two "$T_DIR/tok" || exit 1
cairnd_mount "$B" "$T_DIR/cache-b" two "$T_DIR/tok" || exit 1

now() { date +%s.%N; }
ms_since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%d", (b - a) * 1000 }'; }
sha() { sha256sum "$1" 2>/dev/null | cut -c1-64; }
# seen DESC CMD...: poll CMD for at most 1 s, then assert it holds.
seen() {
	local desc=$1 t0 i
	shift
	t0=$(now)
	for i in $(seq 1 40); do
		"$@" >/dev/null 2>&1 && break
		sleep 0.025
		[ "$(ms_since "$t0")" -ge 1000 ] && break
	done
	if "$@" >/dev/null 2>&1; then
		t_ok 0 "$desc (after $(ms_since "$t0") ms)"
		return 0
	fi
	t_ok 1 "$desc (not within 1 s)"
	return 1
}
# gone DESC PATH: B stops seeing PATH within 1 s; it must have seen it
# just before (the previous check), or this would pass for nothing.
gone() {
	if [ "$saw" = 1 ]; then seen "$1" absent "$2"; else
		t_ok 1 "$1 (B never saw it, so its going away proves nothing)"; fi
}
content_is() { [ "$(cat "$1" 2>/dev/null)" = "$2" ]; }
absent() { [ ! -e "$1" ] && ! ls "$(dirname "$1")" 2>/dev/null | grep -qxF "$(basename "$1")"; }
listed() { ls "$(dirname "$1")" 2>/dev/null | grep -qxF "$(basename "$1")"; }

# B looks first, so what it learns later is a change to what it caches.
ls -la "$B" >/dev/null 2>&1
t_check "A: create and write f1" sh -c "echo one >'$A/f1'"
seen "B reads f1 written and closed on A" content_is "$B/f1" one
t_check "A: rewrite f1" sh -c "echo two-two >'$A/f1'"
seen "B reads the new content of f1 (it had the old one cached)" content_is "$B/f1" two-two
head -c $((1024 * 1024 + 17)) /dev/urandom >"$T_DIR/big"
t_check "A: write a 1 MiB file" cp "$T_DIR/big" "$A/big"
seen "B reads the 1 MiB file" cmp "$T_DIR/big" "$B/big"

ls "$B" >/dev/null 2>&1
t_check "A: mkdir d" mkdir "$A/d"
seen "B sees d" test -d "$B/d"
seen "B's listing has d" listed "$B/d"
ls "$B/d" >/dev/null 2>&1
content_is "$B/f1" two-two && saw=1 || saw=0
t_check "A: rename f1 to d/f1r" mv "$A/f1" "$A/d/f1r"
seen "B sees d/f1r" content_is "$B/d/f1r" two-two
gone "B no longer sees f1" "$B/f1"
test -d "$B/d" && saw=1 || saw=0
t_check "A: rename d to d2" mv "$A/d" "$A/d2"
seen "B sees d2/f1r" content_is "$B/d2/f1r" two-two && saw=1 || saw=0
gone "B no longer sees d" "$B/d"
t_check "A: unlink d2/f1r" rm "$A/d2/f1r"
gone "B no longer sees d2/f1r" "$B/d2/f1r"
stat_of() { getfattr --only-values -n cairn.stats "$1" 2>/dev/null | awk -v k="$2" '$1 == k {print $2}'; }
stat -c %a "$A/big" >/dev/null
own0=$(stat_of "$A" own_events)
ga0=$(stat_of "$A" getattr_requests)
t_check "A: chmod big 0600" chmod 0600 "$A/big"
seen "B sees the new mode" sh -c "[ \"\$(stat -c %a '$B/big')\" = 600 ]"
t_is "$(stat -c %a "$A/big")" 600 "A sees its own mode"
# The event of A's own chmod is covered by the op's reply (event_seq):
# A does not fetch the attributes again.
t_ok "$([ "$(stat_of "$A" own_events)" -gt "${own0:-0}" ] && echo 0 || echo 1)" \
	"A's own attr event was recognised (own_events $own0 -> $(stat_of "$A" own_events))"
t_is "$(stat_of "$A" getattr_requests)" "$ga0" "A sent no getattr for its own chmod"
# Another client's later change of the same object is not mistaken for ours.
t_check "B: chmod big 0640" chmod 0640 "$B/big"
seen "A sees B's mode (an event after A's own is applied)" sh -c "[ \"\$(stat -c %a '$A/big')\" = 640 ]"
t_check "B: write back to A's directory" sh -c "echo from-b >'$B/d2/fromb'"
seen "A reads what B wrote" content_is "$A/d2/fromb" from-b

# Concurrent edits of one file. Each writer opens, writes, says "ready",
# and closes only when told; close's result goes to a file.
cat >"$T_DIR/writer.py" <<'PY'
import os, sys, time
path, data, ready, go, result = sys.argv[1:6]
try:
    # No O_TRUNC: a truncate is a mutation of its own; both versions
    # are longer than the "base" they overwrite.
    fd = os.open(path, os.O_WRONLY)
    os.write(fd, data.encode())
except OSError as e:
    open(result, "w").write("open/write: " + os.strerror(e.errno))
    sys.exit(1)
open(ready, "w").close()
for _ in range(400):
    if os.path.exists(go):
        break
    time.sleep(0.025)
try:
    os.close(fd)
    r = "0"
except OSError as e:
    r = "close: " + os.strerror(e.errno)
open(result, "w").write(r)
PY
t_check "A: create c.txt" sh -c "echo base >'$A/c.txt'"
t_check "A: create other.txt" sh -c "echo keep >'$A/other.txt'"
seen "B sees c.txt" content_is "$B/c.txt" base
data_a="version from A, longer than B's"
data_b="version from B"
sync_dir=$T_DIR/sync
mkdir -p "$sync_dir"
python3 "$T_DIR/writer.py" "$A/c.txt" "$data_a" "$sync_dir/ready-a" "$sync_dir/go-a" "$sync_dir/res-a" 2>"$T_DIR/writer-a.err" &
pa=$!
python3 "$T_DIR/writer.py" "$B/c.txt" "$data_b" "$sync_dir/ready-b" "$sync_dir/go-b" "$sync_dir/res-b" 2>"$T_DIR/writer-b.err" &
pb=$!
t_check "both clients opened and wrote c.txt" wait_for 5 test -e "$sync_dir/ready-a" -a -e "$sync_dir/ready-b"
touch "$sync_dir/go-a"
wait_for 15 test -e "$sync_dir/res-a"
t_is "$(cat "$sync_dir/res-a" 2>/dev/null || cat "$T_DIR/writer-a.err")" 0 "A's close returns 0"
touch "$sync_dir/go-b"
wait_for 15 test -e "$sync_dir/res-b"
wait "$pa" "$pb" 2>/dev/null
echo "# B's close returned: $(cat "$sync_dir/res-b" 2>/dev/null || head -n 3 "$T_DIR/writer-b.err")"
t_ok "$(grep -q '^open/write' "$sync_dir/res-b" 2>/dev/null || [ ! -e "$sync_dir/res-b" ] && echo 1 || echo 0)" \
	"B wrote and its close returned"

printf '%s' "$data_a" >"$T_DIR/want-a"
printf '%s' "$data_b" >"$T_DIR/want-b"
host=$(hostname -s)
conflict_re="^c\\.txt\\.conflict-$host-[0-9]{8}-[0-9]{6}\$"
seen "B's name c.txt now has A's version" sh -c "[ \"\$(sha256sum <'$B/c.txt' | cut -c1-64)\" = '$(sha "$T_DIR/want-a")' ]"
seen "B sees the conflict copy" sh -c "ls '$B' | grep -qE '$conflict_re'"

# The truth, from a third client with an empty cache.
C=$T_DIR/c
cairnd_mount "$C" "$T_DIR/cache-c" two "$T_DIR/tok" || exit 1
t_is "$(sha "$C/c.txt")" "$(sha "$T_DIR/want-a")" "the server keeps A's version under c.txt"
copies=$(ls "$C" 2>/dev/null | grep -E "$conflict_re")
t_is "$(echo "$copies" | grep -c .)" 1 "exactly one conflict copy named c.txt.conflict-$host-YYYYMMDD-HHMMSS"
copy=$(echo "$copies" | head -n 1)
t_is "$(sha "$C/$copy")" "$(sha "$T_DIR/want-b")" "the conflict copy holds B's bytes"
day=$(echo "$copy" | sed -n 's/.*-\([0-9]\{8\}\)-[0-9]\{6\}$/\1/p')
t_ok "$([ "$day" = "$(date +%Y%m%d)" ] || [ "$day" = "$(date -u +%Y%m%d)" ] && echo 0 || echo 1)" \
	"the copy's date is today ($day)"
t_is "$(ls "$C" 2>&1 | grep -vE "$conflict_re" | tr '\n' ' ')" "big c.txt d2 other.txt " \
	"nothing else appeared or was lost"
t_check "big is intact" cmp "$T_DIR/big" "$C/big"
t_is "$(cat "$C/d2/fromb" 2>&1)|$(cat "$C/other.txt" 2>&1)" "from-b|keep" "the other files are intact"
t_is "$(sha "$A/c.txt")" "$(sha "$T_DIR/want-a")" "A still reads its version"
cairnd_umount "$C"
cairnd_umount "$B"
cairnd_umount "$A"
t_done
