#!/usr/bin/env bash
# t4024-wback-read-drain: files written in writeback mode are read again
# and again while their log drains to the server, and across a kill -9 of
# cairnd in the middle of that drain. Every read must return the bytes
# written: a read that races with the acknowledgement of its file's store
# (wb_stored() moves chunks and write state to the server's DV) once got
# the right size and zero bytes (t4020's flake; test_cm_wb holds the race
# itself). Readers drop the file's pages before each read (fadvise), so
# every read reaches cairnd. In the end the server's tree, read by a
# fresh client, equals the reference.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 300
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }
N=${WB_FILES:-200}
READERS=3
OPS=$top_srcdir/tests/integration/wbops.py

vold_start || exit 99
vos init >/dev/null 2>&1
vos create wrd >/dev/null || exit 99
make_token wrd rw "$T_DIR/tok"
A=$T_DIR/a
ref=$T_DIR/ref
mnt() { cairnd_mount "$A" "$T_DIR/ca" wrd "$T_DIR/tok" --write-mode writeback --writeback-delay 60s; }
mnt || exit 1
jst() { "$FS" status --json -m "$A" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }

# write ROOT ROUND: N files of 100 B .. 60 KiB, each its own bytes
cat >"$T_DIR/write.py" <<'PY'
import os, sys
root, r, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
d = os.path.join(root, "r%d" % r)
os.makedirs(d, exist_ok=True)
for i in range(n):
    line = ("round %d file %d\n" % (r, i)).encode()
    with open(os.path.join(d, "f%03d" % i), "wb") as f:
        f.write(line * (1 + (i * 523) % 3000))
PY
# read ROOT ROUND REF STOPFILE: read the files in a loop until STOPFILE
# exists; print "reads wrong errors" (wrong: a read that completed with
# other bytes than REF's copy; errors: the mount went away meanwhile)
cat >"$T_DIR/read.py" <<'PY'
import os, sys
root, r, ref, stop = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
names = sorted(os.listdir(os.path.join(ref, "r%d" % r)))
want = {}
for nm in names:
    with open(os.path.join(ref, "r%d" % r, nm), "rb") as f:
        want[nm] = f.read()
reads = wrong = errors = 0
while not os.path.exists(stop):
    for nm in names:
        p = os.path.join(root, "r%d" % r, nm)
        try:
            fd = os.open(p, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
                got = b""
                while True:
                    b = os.read(fd, 1 << 20)
                    if not b:
                        break
                    got += b
            finally:
                os.close(fd)
        except OSError:
            errors += 1
            continue
        reads += 1
        if got != want[nm]:
            wrong += 1
            if wrong <= 3:
                print("# wrong read of %s: %d bytes, %d zero, want %d"
                      % (nm, len(got), got.count(0), len(want[nm])),
                      file=sys.stderr)
print(reads, wrong, errors)
PY

readers_start() { # ROUND
	rm -f "$T_DIR/stop"
	for k in $(seq 1 $READERS); do
		python3 "$T_DIR/read.py" "$A/w" "$1" "$ref/w" "$T_DIR/stop" >"$T_DIR/read$1.$k" 2>>"$T_DIR/wrong.log" &
		eval "rpid$k=\$!"
		t_track_pid $!
	done
}
readers_stop() { # ROUND -> "reads wrong errors" summed
	touch "$T_DIR/stop"
	for k in $(seq 1 $READERS); do
		eval "wait \$rpid$k" 2>/dev/null
		# (a wait cut short: each reader prints its line last)
		for _ in $(seq 1 200); do [ -s "$T_DIR/read$1.$k" ] && break; sleep 0.05; done
	done
	cat "$T_DIR"/read"$1".* | awk '{ r += $1; w += $2; e += $3 } END { print r + 0, w + 0, e + 0 }'
}

SEED=${SEED:-$RANDOM}
echo "# seed $SEED"
RANDOM=$SEED
mkdir -p "$A/w" "$ref/w" || exit 1
for r in 0 1 2; do
	python3 "$T_DIR/write.py" "$ref/w" "$r" "$N" || exit 99
	python3 "$T_DIR/write.py" "$A/w" "$r" "$N" || { t_ok 1 "round $r: write on the mount"; break; }
	back=$(jst backlog_records)
	readers_start "$r"
	sleep 0.3
	"$FS" setpolicy -m "$A" --writeback-delay 10ms >/dev/null 2>&1
	if [ "$r" = 1 ]; then
		# kill -9 somewhere in the drain, restart, read on
		sleep "0.$(( RANDOM % 6 ))$(( RANDOM % 10 ))"
		cairnd_kill9 "$A"
		mnt || exit 1
	fi
	"$FS" sync -m "$A" >/dev/null 2>&1 || t_ok 1 "round $r: fs sync"
	sleep 0.3
	set -- $(readers_stop "$r")
	echo "# round $r: backlog $back records; $1 reads, $2 wrong, $3 failed (mount away)"
	t_ok "$([ "$1" -ge "$N" ] && echo 0 || echo 1)" "round $r: the readers read every file ($1 reads)"
	t_is "$2" 0 "round $r: no read returned other bytes"
	"$FS" setpolicy -m "$A" --writeback-delay 60s >/dev/null 2>&1
done
[ -s "$T_DIR/wrong.log" ] && sed 's/^/#   /' "$T_DIR/wrong.log" | head -n 6
python3 "$OPS" --tree "$A/w" >"$T_DIR/view.tree" 2>&1
python3 "$OPS" --tree "$ref/w" >"$T_DIR/ref.tree"
t_ok "$(cmp -s "$T_DIR/view.tree" "$T_DIR/ref.tree" && echo 0 || echo 1)" "the mount shows the reference tree"
t_is "$(jst backlog_records)|$(jst conflicts)" "0|0" "the log is empty, no conflicts"

C=$T_DIR/c
cairnd_mount "$C" "$T_DIR/cc" wrd "$T_DIR/tok" || exit 1
python3 "$OPS" --tree "$C/w" >"$T_DIR/server.tree" 2>&1
t_ok "$(cmp -s "$T_DIR/server.tree" "$T_DIR/ref.tree" && echo 0 || echo 1)" \
	"the server's tree equals the reference ($(wc -l <"$T_DIR/ref.tree") names)"
cmp -s "$T_DIR/server.tree" "$T_DIR/ref.tree" || diff "$T_DIR/ref.tree" "$T_DIR/server.tree" | head -n 10 | sed 's/^/#   /'
cairnd_umount "$C"
cairnd_umount "$A"
t_done
