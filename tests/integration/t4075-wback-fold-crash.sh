#!/usr/bin/env bash
# t4075-wback-fold-crash: in writeback mode the setattrs of a file still
# being written (fchmod, futimens, fchown: what tar does on the open file)
# fold into its write state (dirty.tdb) instead of each being a durable
# replay-log append; the close logs the store and a setattr record in one
# commit. They must still survive kill -9 of cairnd once they returned:
# (1) a file held open after write + fchmod + futimens, cairnd killed: the
# restart shows its bytes, mode and mtime, and the server gets them; (2)
# kill -9 at random points of three writeback untars (seed printed;
# SEED=N replays): each restart shows what tar had made (at most the file
# it was writing differs from the reference), a last untar without a
# kill equals the reference, and after fs sync the server's tree, read by
# a fresh client, is what the mount showed, modes and mtimes included,
# every object once and no conflicts.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 300
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

vold_start || exit 99
vos init >/dev/null 2>&1
vos create wbf >/dev/null || exit 99
make_token wbf rw "$T_DIR/tok"
A=$T_DIR/a
CA=$T_DIR/ca
mnt() { cairnd_mount "$A" "$CA" wbf "$T_DIR/tok" --write-mode writeback --writeback-delay 60s; }
jst() { "$FS" status --json -m "$A" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }
srv_files() { vos examine wbf --json 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["files"])'; }
tree() { t_tree "$1"; }
kinds() { rlog_kinds "$A"; }

s0=$(srv_files)
mnt || exit 1
t_is "$(jst write_mode)" writeback "write mode writeback"

# (1) An open file: write, fchmod, futimens, then cairnd is killed while
# the file is still open (no close, no store logged yet).
mkdir "$A/one" || exit 1
python3 - "$A/one/f" "$T_DIR/ready" <<'PY' &
import os, sys, time
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
os.write(fd, b"held open\n" * 100)
os.fchmod(fd, 0o604)
os.utime(fd, ns=(1500000000 * 10**9, 1400000000 * 10**9 + 123456789))
open(sys.argv[2], "w").close()
time.sleep(60)
PY
hpid=$!
t_track_pid "$hpid"
wait_for 20 test -e "$T_DIR/ready" || { t_ok 1 "the writer got to its setattrs"; t_done; }
t_is "$(stat -c '%a %s %Y' "$A/one/f")" "604 1000 1400000000" "the mount shows the folded mode and mtime"
t_is "$(kinds)" "create=1 mkdir=1 " "the setattrs were folded: no setattr record (only the mkdir and the create)"
cairnd_kill9 "$A"
kill "$hpid" 2>/dev/null; wait "$hpid" 2>/dev/null
mnt || exit 1
t_is "$(stat -c '%a %s %Y' "$A/one/f" 2>&1)" "604 1000 1400000000" "after kill -9: bytes, mode and mtime are back"
# (the restart may already drain the mkdir and the create; it logs the
# store once that drain is over, so wait for it)
logged_sa() { kinds | grep -q "setattr=1 store=1 "; }
wait_for 20 logged_sa
k=$(kinds)
t_ok "$(echo "$k" | grep -q "setattr=1 store=1 " && echo 0 || echo 1)" "the restart logged the store and the setattr ($k)"
"$FS" sync -m "$A" >/dev/null 2>&1
t_is "$(jst backlog_records)|$(jst conflicts)" "0|0" "drained, no conflicts"
C=$T_DIR/c
cairnd_mount "$C" "$T_DIR/cc" wbf "$T_DIR/tok" || exit 1
t_is "$(stat -c '%a %s %Y' "$C/one/f" 2>&1)" "604 1000 1400000000" "a fresh client sees them on the server"
t_is "$(md5sum <"$C/one/f")" "$(python3 -c 'import sys; sys.stdout.write("held open\n" * 100)' | md5sum)" "and the bytes"
cairnd_umount "$C"

# (2) kill -9 during writeback untars of small files with varied modes
# and mtimes.
ref=$T_DIR/ref
python3 - "$ref/t" <<'PY'
import os, sys
root = sys.argv[1]
for i in range(300):
    d = os.path.join(root, "d%d" % (i // 60))
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, "f%03d" % i)
    with open(p, "wb") as f:
        f.write((("t %d\n" % i) * (1 + (i * 131) % 900)).encode())
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
	# What the restart shows: every file tar had closed, as in the
	# reference; at most the one it was writing differs (and the
	# directories: tar gives them their modes when it is done).
	tree "$A/r$r/t" >"$T_DIR/view$r.tree" 2>&1
	bad=$(comm -13 "$T_DIR/ref.tree" <(sort "$T_DIR/view$r.tree") | grep -c ' f ')
	echo "# round $r: $(wc -l <"$T_DIR/view$r.tree") names after the restart, $bad unlike the reference"
	[ "$bad" -le 1 ] || t_ok 1 "round $r: the restart shows what tar made ($bad names unlike the reference)"
done
# One untar without a kill, on a log the kills left.
tar -C "$A" -xf "$T_DIR/t.tar" || t_ok 1 "the last untar"
tree "$A/t" >"$T_DIR/view.tree" 2>&1
t_ok "$(cmp -s <(sort "$T_DIR/view.tree") "$T_DIR/ref.tree" && echo 0 || echo 1)" "the mount shows the reference tree"
"$FS" sync -m "$A" >/dev/null 2>&1
t_is "$(jst backlog_records)|$(jst conflicts)" "0|0" "drained, no conflicts"
"$FS" conflicts -m "$A" 2>&1 | head -5 | sed 's/^/#   /'
tree "$A" >"$T_DIR/all.tree" 2>&1
cairnd_mount "$C" "$T_DIR/cc2" wbf "$T_DIR/tok" || exit 1
tree "$C/t" | sort >"$T_DIR/server.tree" 2>&1
t_ok "$(cmp -s "$T_DIR/ref.tree" "$T_DIR/server.tree" && echo 0 || echo 1)" \
	"the server's tree equals the reference, modes and mtimes included ($(wc -l <"$T_DIR/ref.tree") names)"
cmp -s "$T_DIR/ref.tree" "$T_DIR/server.tree" || diff "$T_DIR/ref.tree" "$T_DIR/server.tree" | head -n 10 | sed 's/^/#   /'
tree "$C" >"$T_DIR/allsrv.tree" 2>&1
t_ok "$(cmp -s "$T_DIR/all.tree" "$T_DIR/allsrv.tree" && echo 0 || echo 1)" \
	"and so do the killed untars: the server has what the mount showed ($(wc -l <"$T_DIR/all.tree") names)"
cmp -s "$T_DIR/all.tree" "$T_DIR/allsrv.tree" || diff "$T_DIR/all.tree" "$T_DIR/allsrv.tree" | head -n 10 | sed 's/^/#   /'
# each name once: the server's object count is the mount's
t_is "$(srv_files)" $((s0 + $(wc -l <"$T_DIR/all.tree"))) "every object on the server once"
t_is "$(find "$C" -name '*.conflict-*' | wc -l)" 0 "no conflict copies"
cairnd_umount "$C"
cairnd_umount "$A"
t_done
