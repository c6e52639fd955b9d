#!/usr/bin/env bash
# t2310-cm-sync-fold-two-clients: sync mode's promise with the compound
# close (create + data + attributes in one batch at close, tar's
# futimens/fchmod/fchown folded into it) seen from a second client: as
# soon as close(2) returned on A, an open on B finds the file with its
# bytes, mode and mtime; before that close it does not exist on B. The
# same for a file written in several writes past a chunk's inline size,
# an empty file, a chmod/utimes after close (its own request, answered
# after the server has it), and a directory's times set after its files
# (what tar does last). Refusals at close go to the closer: the file
# quota (EDQUOT from the create carried in the batch), the byte quota
# (EDQUOT from the store), a name B took meanwhile (EIO, A's bytes in a
# conflict copy), a directory B removed meanwhile; none leaves a file on
# the server that close did not report.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 300

vold_start || exit 99
vos init >/dev/null 2>&1
vos create fo >/dev/null || exit 99
make_token fo rw "$T_DIR/tok"
A=$T_DIR/a
B=$T_DIR/b
cairnd_mount "$A" "$T_DIR/ca" fo "$T_DIR/tok" || exit 1
cairnd_mount "$B" "$T_DIR/cb" fo "$T_DIR/tok" || exit 1

# One writer on A per file. Right after its close returned the server
# must hold the name with every byte, the mode and the mtime (asked
# over HTTP, vol-client.py: no cache in between); B, which looked the
# name up before (a negative entry in its kernel and a listing in its
# cache), must see it within the events' bound (names within 1 s,
# cairnd(8); 5 s here on a loaded machine), and the first time B sees
# the name at all it must already be complete: the create, the data and
# the attributes reach the server in one request, so there is no state
# in between for anyone to see.
cat >"$T_DIR/w.py" <<'PY'
import json, os, subprocess, sys, time
a, b, name, size, nw, vc = sys.argv[1:7]
size, nw = int(size), int(nw)
data = bytes((i * 7 + len(name)) % 251 for i in range(size))
pa, pb = os.path.join(a, name), os.path.join(b, name)
out = []
fd = os.open(pa, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
step = max(1, (size + nw - 1) // nw)
for off in range(0, size, step):
    os.write(fd, data[off:off + step])
os.utime(fd, (1500000000, 1500000123))
os.fchmod(fd, 0o640)
os.fchown(fd, os.getuid(), os.getgid())
out.append("absent" if not os.path.exists(pb) else "early")
os.close(fd)
def v(*args):
    return subprocess.run(["python3", vc] + list(args), capture_output=True).stdout
fid = v("root").decode().strip()
for part in name.split("/"):
    fid = v("lookup", fid, part).decode().strip()
if not fid:
    out.append("server:missing")
else:
    got = v("cat", fid)
    out.append("server:" + ("bytes" if got == data else "badbytes(%d)" % len(got)))
    out.append("%o" % (int(v("attr", fid, "mode")) & 0o7777))
    out.append("%d" % (int(v("attr", fid, "mtime")) // 10**9))
first = None
t0 = time.time()
while time.time() - t0 < 5:
    try:
        st = os.stat(pb)
        with open(pb, "rb") as f:
            got = f.read()
        first = "B:" + ("bytes" if got == data else "badbytes(%d)" % len(got)) + \
            " %o %d" % (st.st_mode & 0o7777, st.st_mtime)
        break
    except FileNotFoundError:
        time.sleep(0.02)
out.append(first or "B:missing")
print(" ".join(out))
PY
w() { python3 "$T_DIR/w.py" "$A" "$B" "$@" "$top_srcdir/tests/integration/vol-client.py" 2>&1; }
export VC_URL=$VOLD_URL VC_VOL=fo VC_TOKEN=$(cat "$T_DIR/tok")
want="absent server:bytes 640 1500000123 B:bytes 640 1500000123"

ls "$A" "$B" >/dev/null
t_is "$(w small 1000 1)" "$want" "1000 bytes: on the server when close returned, complete on B at first sight"
t_is "$(w tarlike 61440 6)" "$want" "60 KiB in six writes (tar): the same"
t_is "$(w big 300000 30)" "$want" "300,000 bytes past a chunk (staged): the same"
t_is "$(w empty 0 1)" "$want" "an empty file: the same"

# In a new directory, then the directory's times last (tar's order).
mkdir "$A/dir" || exit 1
t_is "$(w dir/inner 5000 2)" "$want" "in a directory made just before"
touch -d @1400000000 "$A/dir"
dfid=$(python3 "$top_srcdir/tests/integration/vol-client.py" lookup "$(python3 "$top_srcdir/tests/integration/vol-client.py" root)" dir)
t_is "$(( $(python3 "$top_srcdir/tests/integration/vol-client.py" attr "$dfid" mtime) / 1000000000 ))" 1400000000 \
	"a directory's utimes after its files: on the server when it returned"
wait_eval 5 '[ "$(stat -c %Y "$B/dir" 2>&1)" = 1400000000 ]'
t_is "$(stat -c %Y "$B/dir" 2>&1)" 1400000000 "and on B"

# A chmod and utimes after close: their own requests, answered once the
# server has them.
python3 - "$A" <<'PY' >"$T_DIR/after.out" 2>&1
import os, sys
a = sys.argv[1]
with open(os.path.join(a, "after"), "wb") as f:
    f.write(b"after\n")
os.chmod(os.path.join(a, "after"), 0o604)
os.utime(os.path.join(a, "after"), (1300000000, 1300000000))
print("ok")
PY
afid=$(python3 "$top_srcdir/tests/integration/vol-client.py" lookup "$(python3 "$top_srcdir/tests/integration/vol-client.py" root)" after)
t_is "$(cat "$T_DIR/after.out")|$(python3 -c "print('%o' % ($(python3 "$top_srcdir/tests/integration/vol-client.py" attr "$afid" mode) & 0o777))")|$(( $(python3 "$top_srcdir/tests/integration/vol-client.py" attr "$afid" mtime) / 1000000000 ))" \
	"ok|604|1300000000" "chmod and utimes after close: on the server when they returned"

# --- refusals at close go to the closer ---
cat >"$T_DIR/refuse.py" <<'PY'
import errno, os, sys
a, name, size = sys.argv[1], sys.argv[2], int(sys.argv[3])
try:
    fd = os.open(os.path.join(a, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
except OSError as e:
    print("open", errno.errorcode.get(e.errno, e.errno)); sys.exit()
try:
    os.write(fd, b"r" * size)
    os.fchmod(fd, 0o600)
except OSError as e:
    print("write", errno.errorcode.get(e.errno, e.errno))
try:
    os.close(fd)
    print("close ok")
except OSError as e:
    print("close", errno.errorcode.get(e.errno, e.errno))
PY
refuse() { python3 "$T_DIR/refuse.py" "$@" 2>&1; }

# A volume with room for exactly one more file, then one byte-limited.
vos create fq --files 3 >/dev/null || exit 99
vos create bq --quota 1M >/dev/null || exit 99
make_token fq rw "$T_DIR/tokq"
make_token bq rw "$T_DIR/tokb"
Q=$T_DIR/q
QB=$T_DIR/qb
cairnd_mount "$Q" "$T_DIR/cq" fq "$T_DIR/tokq" || exit 1
cairnd_mount "$QB" "$T_DIR/cqb" bq "$T_DIR/tokb" || exit 1
ls "$Q" "$QB" >/dev/null
out=""
for i in 1 2 3 4; do out="$out$(refuse "$Q" "f$i" 100);"; done
echo "# file quota: $out"
case "$out" in
*"close EDQUOT"*|*"open EDQUOT"*) t_ok 0 "file quota: the create refused in the batch is reported ($out)" ;;
*) t_ok 1 "file quota: the create refused in the batch is reported ($out)" ;;
esac
n_ok=$(printf '%s' "$out" | grep -o 'close ok' | wc -l)
n_srv=$(vos examine fq --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["files"])')
# the root counts as one object
t_is "$((n_srv - 1))" "$n_ok" "file quota: the server holds exactly the files whose close returned 0"

out=$(refuse "$QB" toobig 2000000)
t_ok "$(case "$out" in *EDQUOT*|*ENOSPC*) echo 0 ;; *) echo 1 ;; esac)" "byte quota: the store refused at close is reported ($out)"
# The create may stay held (the chunks were refused at staging, before
# the batch) and go alone a second later: an empty file or none, never
# some of the bytes.
export VC_VOL=bq VC_TOKEN=$(cat "$T_DIR/tokb")
sleep 1.5
tfid=$(python3 "$top_srcdir/tests/integration/vol-client.py" lookup "$(python3 "$top_srcdir/tests/integration/vol-client.py" root)" toobig)
tsz=none
[ -n "$tfid" ] && tsz=$(python3 "$top_srcdir/tests/integration/vol-client.py" attr "$tfid" size 2>&1)
t_ok "$(case "$tsz" in none|0) echo 0 ;; *) echo 1 ;; esac)" "byte quota: none of its bytes on the server ($tsz)"
out=$(refuse "$QB" fits 1000)
t_is "$out" "close ok" "byte quota: a small file still fits"

# A directory removed by B while A writes a new file in it.
mkdir "$A/gone" && ls "$B/gone" >/dev/null
out=$(python3 - "$A" "$B" <<'PY'
import errno, os, sys
a, b = sys.argv[1], sys.argv[2]
fd = os.open(os.path.join(a, "gone", "x"), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
os.write(fd, b"x" * 100)
os.rmdir(os.path.join(b, "gone"))
try:
    os.close(fd)
    print("close ok")
except OSError as e:
    print("close", errno.errorcode.get(e.errno, e.errno))
PY
)
t_ok "$(case "$out" in "close ok") echo 1 ;; close*) echo 0 ;; *) echo 1 ;; esac)" "directory removed meanwhile: close reports it ($out)"
t_ok "$(test ! -e "$B/gone" && echo 0 || echo 1)" "directory removed meanwhile: B's rmdir stands"

cairnd_umount "$Q"
cairnd_umount "$QB"
cairnd_umount "$A"
cairnd_umount "$B"
t_done
