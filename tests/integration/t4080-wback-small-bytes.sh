#!/usr/bin/env bash
# t4080-wback-small-bytes: in writeback mode the store of a small file
# (at most 64 KiB, chunk 0 alone) carries the file's bytes in its
# replay-log record (format 3), and its close syncs the log, not the chunk
# store. (1) Files around the bound (empty, 1 B, 64 KiB, 64 KiB + 1, one
# rewritten smaller, one grown past the bound after a small close): the
# closes sync no chunk of a file with its bytes logged (strace), cairnd is
# killed (-9) and the chunk files of the small files are destroyed, as a
# power cut could leave unsynced chunks: after the restart the drain sends
# the records' bytes, and a fresh client reads every file, mode and mtime
# as written. (2) kill -9 at random points of writeback untars of small
# files (seed printed; SEED=N replays): each restart shows what tar had
# made (at most the file it was writing differs), and after fs sync the
# server's tree, read by a fresh client, is the reference for every round,
# each object once, no conflicts.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 300
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

vold_start || exit 99
vos init >/dev/null 2>&1
vos create wsb >/dev/null || exit 99
make_token wsb rw "$T_DIR/tok"
A=$T_DIR/a
CA=$T_DIR/ca
C=$T_DIR/c
mnt() { cairnd_mount "$A" "$CA" wsb "$T_DIR/tok" --write-mode writeback --writeback-delay 60s "$@"; }
jst() { "$FS" status --json -m "$A" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }
srv_files() { vos examine wsb --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["files"])'; }
tree() { t_tree "$1"; }
kinds() { rlog_kinds "$A"; }

s0=$(srv_files)
mnt || exit 1
t_is "$(jst write_mode)" writeback "write mode writeback"

# (1) Files around the bound, written by one process; strace counts the
# fsyncs of chunk files (the chunk store's sync at close).
mkdir "$A/b" "$T_DIR/ref1" || exit 1
cat >"$T_DIR/mk.py" <<'PY'
import os, sys
d = sys.argv[1]
def put(name, data, mode, mtime, flags=os.O_CREAT | os.O_EXCL):
    fd = os.open(os.path.join(d, name), os.O_WRONLY | flags, 0o644)
    for i in range(0, len(data), 10240):
        os.write(fd, data[i:i + 10240])
    os.fchmod(fd, mode)
    os.utime(fd, ns=(mtime, mtime))
    os.close(fd)
def blob(n, seed):
    s = (b"%d-" % seed) * (n // 2 + 1)
    return s[:n]
put("empty", b"", 0o600, 1300000000 * 10**9)
put("one", b"x", 0o640, 1300000001 * 10**9)
put("small", blob(3000, 1), 0o644, 1300000002 * 10**9)
put("bound", blob(65536, 2), 0o755, 1300000003 * 10**9)
put("over", blob(65537, 3), 0o400, 1300000004 * 10**9)
put("rewritten", blob(20000, 4), 0o644, 1300000005 * 10**9)
put("rewritten", blob(7000, 5), 0o604, 1300000006 * 10**9, os.O_TRUNC)
put("grown", blob(5000, 6), 0o644, 1300000007 * 10**9)
fd = os.open(os.path.join(d, "grown"), os.O_WRONLY | os.O_APPEND)
os.write(fd, blob(150000, 7))
os.utime(fd, ns=(1300000008 * 10**9, 1300000008 * 10**9))
os.close(fd)
PY
python3 "$T_DIR/mk.py" "$T_DIR/ref1" || exit 99
tree "$T_DIR/ref1" >"$T_DIR/ref1.tree"
pid=$(cairnd_pid "$A")
if command -v strace >/dev/null 2>&1; then
	strace -f -e trace=fsync,fdatasync,openat -o "$T_DIR/strace" -p "$pid" 2>/dev/null &
	spid=$!
	sleep 1
fi
python3 "$T_DIR/mk.py" "$A/b" || t_ok 1 "writing the files"
if [ -n "${spid:-}" ]; then
	kill -INT "$spid"; wait "$spid" 2>/dev/null
	# chunk files fsynced: open of chunks/XX/NNNNNNNN then fsync of it
	n=$(python3 - "$T_DIR/strace" <<'PY'
import re, sys
fds, n = {}, 0
for line in open(sys.argv[1]):
    m = re.search(r'^(\d+)\s+openat\(\d+, "chunks/[0-9a-f]{2}/[0-9a-f]{8}", O_RDONLY.*= (\d+)$', line)
    if m:
        fds[(m.group(1), m.group(2))] = True
        continue
    m = re.search(r'^(\d+)\s+fsync\((\d+)\)', line)
    if m and (m.group(1), m.group(2)) in fds:
        n += 1
        del fds[(m.group(1), m.group(2))]
print(n)
PY
)
	# over (65537 B) and grown (155,000 B) sync their chunk at close;
	# the six small closes none
	t_is "$n" 2 "chunk files fsynced at close: only the two past 64 KiB"
fi
t_is "$(tree "$A/b")" "$(cat "$T_DIR/ref1.tree")" "the mount shows the files"
t_is "$(kinds)" "create=7 mkdir=1 setattr=9 store=6 " "the records: a store per file but the empty one (rewritten and grown merged)"
cairnd_kill9 "$A"
# A power cut after the closes could leave the unsynced chunks of the
# small files empty or gone: destroy every chunk file of at most 64 KiB
# and its 64-byte trailer (over's and grown's were synced).
nsm=0
for f in $(find "$CA/chunks" -type f -regextype egrep -regex '.*/[0-9a-f]{8}' -size -$((65536 + 64 + 1))c 2>/dev/null); do
	: >"$f"; nsm=$((nsm + 1))
done
echo "# $nsm small chunk files emptied"
t_ok "$([ "$nsm" -ge 4 ] && echo 0 || echo 1)" "small chunk files found and emptied ($nsm)"
mnt || exit 1
"$FS" sync -m "$A" >/dev/null 2>&1
t_is "$(jst backlog_records)|$(jst conflicts)" "0|0" "drained, no conflicts"
cairnd_mount "$C" "$T_DIR/cc1" wsb "$T_DIR/tok" || exit 1
t_is "$(tree "$C/b")" "$(cat "$T_DIR/ref1.tree")" "a fresh client reads the records' bytes, modes and mtimes"
cairnd_umount "$C"
t_is "$(tree "$A/b")" "$(cat "$T_DIR/ref1.tree")" "and so does the mount after the drain"

# (2) kill -9 at random points of writeback untars of small files.
ref=$T_DIR/ref
python3 - "$ref/t" <<'PY'
import os, sys
root = sys.argv[1]
for i in range(240):
    d = os.path.join(root, "d%d" % (i // 40))
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, "f%03d" % i)
    n = (i * 7919) % 70000
    with open(p, "wb") as f:
        f.write(((b"s %d\n" % i) * (n // 4 + 1))[:n])
    os.chmod(p, (0o600, 0o640, 0o644, 0o755, 0o400)[i % 5])
    os.utime(p, (1600000000 + i * 77, 1300000000 + i * 3607))
PY
tar -C "$ref" -cf "$T_DIR/t.tar" t || exit 99
tree "$ref/t" | sort >"$T_DIR/ref.tree"
SEED=${SEED:-$RANDOM}
echo "# seed $SEED"
RANDOM=$SEED
for r in 0 1 2; do
	mkdir "$A/r$r" || exit 1
	tar -C "$A/r$r" -xf "$T_DIR/t.tar" 2>/dev/null &
	tpid=$!
	sleep "0.$(( RANDOM % 10 ))$(( RANDOM % 10 ))"
	cairnd_kill9 "$A"
	wait "$tpid" 2>/dev/null
	mnt || exit 1
	tree "$A/r$r/t" >"$T_DIR/view$r.tree" 2>&1
	bad=$(comm -13 "$T_DIR/ref.tree" <(sort "$T_DIR/view$r.tree") | grep -c ' f ')
	echo "# round $r: $(wc -l <"$T_DIR/view$r.tree") names after the restart, $bad unlike the reference"
	t_ok "$([ "$bad" -le 1 ] && echo 0 || echo 1)" "round $r: the restart shows what tar made ($bad files unlike the reference)"
	# then tar finishes the job over what the kill left
	tar -C "$A/r$r" -xf "$T_DIR/t.tar" 2>/dev/null || t_ok 1 "round $r: the untar again"
	tree "$A/r$r/t" | sort >"$T_DIR/view$r.tree"
	t_ok "$(cmp -s "$T_DIR/view$r.tree" "$T_DIR/ref.tree" && echo 0 || echo 1)" "round $r: the mount then shows the reference"
done
"$FS" sync -m "$A" >/dev/null 2>&1
t_is "$(jst backlog_records)|$(jst conflicts)" "0|0" "drained, no conflicts"
"$FS" conflicts -m "$A" 2>&1 | head -5 | sed 's/^/#   /'
cairnd_mount "$C" "$T_DIR/cc2" wsb "$T_DIR/tok" || exit 1
for r in 0 1 2; do
	tree "$C/r$r/t" | sort >"$T_DIR/server$r.tree" 2>&1
	t_ok "$(cmp -s "$T_DIR/ref.tree" "$T_DIR/server$r.tree" && echo 0 || echo 1)" \
		"round $r: the server's tree equals the reference, modes and mtimes included"
	cmp -s "$T_DIR/ref.tree" "$T_DIR/server$r.tree" || diff "$T_DIR/ref.tree" "$T_DIR/server$r.tree" | head -n 6 | sed 's/^/#   /'
done
tree "$A" >"$T_DIR/all.tree" 2>&1
tree "$C" >"$T_DIR/allsrv.tree" 2>&1
t_is "$(srv_files)" $((s0 + $(wc -l <"$T_DIR/all.tree"))) "every object on the server once"
t_is "$(find "$C" -name '*.conflict-*' | wc -l)" 0 "no conflict copies"
cairnd_umount "$C"
cairnd_umount "$A"
t_done
