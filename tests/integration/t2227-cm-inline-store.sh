#!/usr/bin/env bash
# t2227-cm-inline-store: a new file of at most 64 KiB reaches a protocol 6
# server with its bytes inline in the store of its batch at close: no PUT
# to the staging area (one request per file instead of two). Counted in
# cairn-vold's access log: 64 KiB exactly goes inline, one byte more is
# staged; an empty file and a file with a hole come out right; a file
# rewritten after its first close (not new any more) inline too. Then
# cairn-vold is killed (kill -9) and restarted while a writer closes
# small files: every file whose close returned 0 is on the server with
# its bytes, and nothing is applied twice (no conflict, no error).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 300
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

vold_start --access-log "$T_DIR/access.log" || exit 99
vos init >/dev/null 2>&1
vos create il >/dev/null || exit 99
make_token il rw "$T_DIR/tok"
A=$T_DIR/a
cairnd_mount "$A" "$T_DIR/ca" il "$T_DIR/tok" || exit 1
mkdir -p "$A/s" "$T_DIR/ref"
ls "$A/s" >/dev/null

req() { # METHOD ROUTE: requests counted since the mark
	tail -n +"$mark" "$T_DIR/access.log" | awk -v m="$1" -v r="/$2" \
		'$3 == m && index($4, r) { n++ } END { print n + 0 }'
}
one() { # NAME BYTES: write a new file on the mount and in ref
	head -c "$2" /dev/urandom >"$T_DIR/ref/$1"
	cat "$T_DIR/ref/$1" >"$A/s/$1"
}
mark=$(( $(wc -l <"$T_DIR/access.log") + 1 ))
one max 65536
t_is "$(req PUT stage)|$(req POST batch)" "0|1" "64 KiB: one batch, no PUT"
mark=$(( $(wc -l <"$T_DIR/access.log") + 1 ))
one over 65537
t_is "$(req PUT stage)|$(req POST batch)" "1|1" "64 KiB + 1: staged (one PUT), one batch"
mark=$(( $(wc -l <"$T_DIR/access.log") + 1 ))
one small 1
: >"$T_DIR/ref/empty"; : >"$A/s/empty"
python3 - "$A/s/hole" "$T_DIR/ref/hole" <<'PY'
import os, sys
for p in sys.argv[1:]:
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    os.pwrite(fd, b"tail of a file with a hole", 60000)
    os.close(fd)
PY
t_is "$(req PUT stage)" 0 "a 1-byte file, an empty one and one with a hole: no PUT"
mark=$(( $(wc -l <"$T_DIR/access.log") + 1 ))
head -c 3000 /dev/urandom >"$T_DIR/ref/small"
cat "$T_DIR/ref/small" >"$A/s/small"
t_is "$(req PUT stage)" 0 "a small file rewritten: inline too"

# kill -9 of cairn-vold while small files are closed one after another
cat >"$T_DIR/writer.py" <<'PY'
import os, sys
root, ref, n, log = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
with open(log, "a", buffering=1) as lg:
    for i in range(n):
        data = os.urandom(500 + (i * 997) % 60000)
        with open(os.path.join(ref, "k%04d" % i), "wb") as f:
            f.write(data)
        try:
            fd = os.open(os.path.join(root, "k%04d" % i), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, data)
            os.close(fd)
        except OSError as e:
            print("k%04d: %s" % (i, e), file=sys.stderr)
            continue
        lg.write("k%04d\n" % i)
PY
mkdir -p "$A/k" "$T_DIR/ref/k"
ls "$A/k" >/dev/null
python3 "$T_DIR/writer.py" "$A/k" "$T_DIR/ref/k" 150 "$T_DIR/closed" 2>"$T_DIR/writer.err" &
wpid=$!
sleep 0.7
vold_kill9
sleep 0.3
vold_restart --access-log "$T_DIR/access.log" || exit 99
wait "$wpid"
closed=$(wc -l <"$T_DIR/closed")
echo "# $closed of 150 closes returned 0; errors: $(head -c 200 "$T_DIR/writer.err")"
jst() { "$FS" status --json -m "$A" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }
wait_eval 30 '[ "$(jst replay_pending)" = 0 ]'
t_is "$(jst replay_pending)|$(jst conflicts)" "0|0" "after the restart: nothing left in the log, no conflict"
t_ok "$([ "$closed" -gt 0 ] && echo 0 || echo 1)" "some closes returned 0 ($closed)"

C=$T_DIR/c
cairnd_mount "$C" "$T_DIR/cc" il "$T_DIR/tok" || exit 1
for f in max over small empty hole; do
	t_check "fresh client: '$f' has its bytes" cmp "$T_DIR/ref/$f" "$C/s/$f"
done
bad=0
while read -r f; do
	cmp -s "$T_DIR/ref/k/$f" "$C/k/$f" || { echo "# closed but wrong on the server: $f"; bad=$((bad + 1)); }
done <"$T_DIR/closed"
t_is "$bad" 0 "every file closed around the kill is on the server with its bytes"
t_is "$(find "$C" -name '*.conflict-*' | wc -l)" 0 "no conflict copy"
cairnd_umount "$C"
cairnd_umount "$A"
t_done
