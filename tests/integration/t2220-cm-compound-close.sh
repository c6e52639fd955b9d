#!/usr/bin/env bash
# t2220-cm-compound-close: in sync mode a file created and written before
# its close reaches the server as ONE batch request at close (create +
# store + the attributes set meanwhile), its bytes inline in the store
# (protocol 6: files of at most 64 KiB need no PUT of a staged chunk);
# tar's futimens/fchown/fchmod before close fold into that batch.
# Counted from cairn-vold's access log: per untarred file exactly one POST
# /batch, no PUT /stage and no POST /op (main sent create, store and two
# setattrs: 4 POST /op). When tar exits a fresh client sees every file with
# its bytes, mode and mtime. cairnd does no fsync during the untar. Then
# the corner cases of a create answered before the server has it: an
# empty file, a rename and an unlink before close, a write after utimes
# (mtime is the write's), a second client's view before and after close,
# and a name taken on the server meanwhile (close fails, the data is kept
# in a conflict copy).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 300
N=${N:-120}

vold_start --access-log "$T_DIR/access.log" || exit 99
vos init >/dev/null 2>&1
vos create cc >/dev/null || exit 99
make_token cc rw "$T_DIR/tok"
A=$T_DIR/a
B=$T_DIR/b
cairnd_mount "$A" "$T_DIR/ca" cc "$T_DIR/tok" || exit 1
cairnd_mount "$B" "$T_DIR/cb" cc "$T_DIR/tok" || exit 1

# A tree like issue #14's: N files of 1-64 KiB in 6 directories.
python3 - "$T_DIR/src" "$N" <<'PY' || exit 99
import os, random, sys
random.seed(2220)
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "d%d" % (i % 6))
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, "f%03d" % i)
    with open(p, "wb") as f:
        f.write(os.urandom(random.randint(1024, 65536)))
    os.chmod(p, 0o640 if i % 2 else 0o644)
    os.utime(p, (1600000000 + i, 1600000000 + i))
PY
tar -C "$T_DIR/src" -cf "$T_DIR/src.tar" . || exit 99
mkdir -p "$T_DIR/local" && tar -C "$T_DIR/local" -xf "$T_DIR/src.tar" || exit 99
ls -R "$A" >/dev/null

req() { # METHOD ROUTE: requests counted since the mark
	tail -n +"$mark" "$T_DIR/access.log" | awk -v m="$1" -v r="/$2" \
		'$3 == m && index($4, r) { n++ } END { print n + 0 }'
}
mark=$(( $(wc -l <"$T_DIR/access.log") + 1 ))
pid=$(cairnd_pid "$A")
strace -f -c -e trace=fsync,fdatasync,sync_file_range -p "$pid" -o "$T_DIR/strace.out" 2>/dev/null &
spid=$!
sleep 0.5
tar -C "$A" -xf "$T_DIR/src.tar"
t_ok $? "untar of $N files"
sleep 0.3
kill -INT "$spid" 2>/dev/null; wait "$spid" 2>/dev/null
t_is "$(req POST batch)" "$N" "one POST /batch per file"
t_is "$(req PUT stage)" 0 "no PUT /stage: each file's bytes ride in its batch"
# mkdir + the directory's utimes/chown/chmod, nothing per file
ops=$(req POST op)
t_ok "$([ "$ops" -le 30 ] && echo 0 || echo 1)" "POST /op only for the 6 directories ($ops)"
fsyncs=$(awk '$NF ~ /^(fsync|fdatasync|sync_file_range)$/ { s += $4 } END { print s + 0 }' "$T_DIR/strace.out" 2>/dev/null)
if [ -s "$T_DIR/strace.out" ] || command -v strace >/dev/null; then
	t_is "${fsyncs:-0}" 0 "no fsync in cairnd during the untar"
fi

# Straight after tar: a fresh client has every byte, mode and mtime.
C=$T_DIR/c
cairnd_mount "$C" "$T_DIR/cc" cc "$T_DIR/tok" || exit 1
lst() { (cd "$1" && find . -type f -printf '%P %m %s %T@\n' | sort); }
t_check "fresh client: the same bytes" diff -r "$T_DIR/local" "$C"
t_is "$(lst "$C" | md5sum)" "$(lst "$T_DIR/local" | md5sum)" "fresh client: the same modes, sizes and mtimes"
cairnd_umount "$C"

# An empty new file reaches the server at close; one being written is
# seen by this client at once and by another only after its close.
mark=$(( $(wc -l <"$T_DIR/access.log") + 1 ))
: >"$A/empty"
t_is "$(req POST op)|$(req POST batch)" "0|1" "touch: one batch (create + store)"
wait_for 3 test -e "$B/empty"
t_is "$(stat -c %s "$B/empty" 2>&1)" 0 "touch: the other client sees it"
out=$(python3 - "$A" "$B" <<'PY'
import os, sys, time
a, b = sys.argv[1], sys.argv[2]
fd = os.open(os.path.join(a, "open"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
os.write(fd, b"x" * 5000)
r = []
r.append("open" in os.listdir(a))
r.append(os.stat(os.path.join(a, "open")).st_size == 5000)
os.utime(fd, (1500000000, 1500000000))
os.write(fd, b"y")               # a write after utimes: mtime is now
os.fchmod(fd, 0o604)
time.sleep(0.3)
r.append(not os.path.exists(os.path.join(b, "open")))
os.close(fd)
st = None
for _ in range(40):
    try:
        st = os.stat(os.path.join(b, "open"))
        break
    except FileNotFoundError:
        time.sleep(0.05)
r.append(st is not None and st.st_size == 5001 and oct(st.st_mode & 0o777) == "0o604"
         and st.st_mtime > 1600000000)
print(" ".join("1" if x else "0" for x in r))
PY
)
t_is "$out" "1 1 1 1" "open file: listed and sized here, absent on B until close, then mode and write-time mtime"

# A create held longer than a second goes alone (events about its
# directory wait while it is held); the data follows at close.
out=$(python3 - "$A" "$B" <<'PY'
import os, sys, time
a, b = sys.argv[1], sys.argv[2]
fd = os.open(os.path.join(a, "slow"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
os.write(fd, b"s" * 3000)
r = []
seen = False
for _ in range(60):
    time.sleep(0.05)
    if os.path.exists(os.path.join(b, "slow")):
        seen = True
        break
r.append(seen)
os.write(fd, b"t" * 10)
os.fchmod(fd, 0o611)
os.close(fd)
ok = False
for _ in range(60):
    try:
        st = os.stat(os.path.join(b, "slow"))
        if st.st_size == 3010 and st.st_mode & 0o777 == 0o611:
            with open(os.path.join(b, "slow"), "rb") as f:
                ok = f.read() == b"s" * 3000 + b"t" * 10
            if ok:
                break
    except FileNotFoundError:
        pass
    time.sleep(0.05)
r.append(ok)
print(" ".join("1" if x else "0" for x in r))
PY
)
t_is "$out" "1 1" "a create held over a second: seen by B before close, data and mode after"

# A rename and an unlink before close: the create goes first, alone.
out=$(python3 - "$A" <<'PY'
import os, sys
a = sys.argv[1]
fd = os.open(os.path.join(a, "r1"), os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, b"renamed\n")
os.rename(os.path.join(a, "r1"), os.path.join(a, "r2"))
os.write(fd, b"more\n")
os.close(fd)
fd = os.open(os.path.join(a, "u1"), os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, b"gone\n")
os.unlink(os.path.join(a, "u1"))
os.write(fd, b"still\n")
os.lseek(fd, 0, 0)
os.close(fd)
print("ok")
PY
)
t_is "$out" ok "rename and unlink of files being written"
wait_eval 3 '[ "$(cat "$B/r2" 2>/dev/null)" = "$(printf "renamed\nmore")" ]'
t_is "$(cat "$B/r2" 2>&1)" "$(printf 'renamed\nmore')" "renamed before close: the server has it under the new name"
t_ok "$([ ! -e "$B/r1" ] && [ ! -e "$B/u1" ] && echo 0 || echo 1)" "no old name, no unlinked file on the server"

# A name taken on the server while our create was held: close fails,
# ours is kept as a conflict copy, B's file stands.
ls "$A" >/dev/null
out=$(python3 - "$A" "$B" <<'PY'
import os, sys, time
a, b = sys.argv[1], sys.argv[2]
fd = os.open(os.path.join(a, "taken"), os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
os.write(fd, b"from A\n")
with open(os.path.join(b, "taken"), "w") as f:
    f.write("from B\n")
try:
    os.close(fd)
    print("close ok")
except OSError as e:
    print("close", e.errno)
PY
)
t_is "$out" "close 5" "a name taken meanwhile: close says EIO"
wait_for 3 test -e "$B"/taken.conflict-*
t_is "$(cat "$A/taken" 2>&1)|$(cat "$B/taken" 2>&1)" "from B|from B" "B's file stands on both clients"
copy=$(ls "$B" | grep -c '^taken\.conflict-')
t_is "$copy" 1 "one conflict copy"
t_is "$(cat "$B"/taken.conflict-* 2>&1)" "from A" "it holds A's bytes"
t_is "$(grep -c 'refused by the server' "$T_DIR/cairnd-a.log")" 1 "the refusal is logged"

cairnd_umount "$A"
cairnd_umount "$B"
t_done
