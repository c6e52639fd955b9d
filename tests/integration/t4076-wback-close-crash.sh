#!/usr/bin/env bash
# t4076-wback-close-crash: cairnd killed between a close's replay-log
# commit (the store and the setattr folded into it, one commit) and the
# save of the file's write state in dirty.tdb. The restart then has both:
# the logged store + setattr, which the drain sends, and a write state
# still dirty with the folded attributes, which it stores again on the DV
# the first store produced, with a setattr on that same base. The second
# setattr is our own change on top of our own store, not a stale one: no
# conflict, and the server has the bytes, mode and mtime once.
#
# The window is a few microseconds wide (t4075 met it on a loaded
# machine); here it is made by hand: dirty.tdb is copied while the file is
# open (dirty, attributes folded, nothing logged), the file is closed (the
# log gets the store and the setattr), cairnd is killed and the copy put
# back, which is the state a kill inside the window leaves.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 180
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

vold_start || exit 99
vos init >/dev/null 2>&1
vos create wbc >/dev/null || exit 99
make_token wbc rw "$T_DIR/tok"
A=$T_DIR/a
CA=$T_DIR/ca
mnt() { cairnd_mount "$A" "$CA" wbc "$T_DIR/tok" --write-mode writeback --writeback-delay 60s; }
jst() { "$FS" status --json -m "$A" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }
kinds() { rlog_kinds "$A"; }

mnt || exit 1
mkdir "$A/d" || exit 1
# Files of both kinds: one made in this mount's life (a local DV until its
# create is replayed), one already on the server (a server DV).
printf 'old\n' >"$A/d/old" || exit 1
"$FS" sync -m "$A" >/dev/null 2>&1
t_is "$(jst backlog_records)" 0 "the first files are on the server"

round=0
for name in new old; do
	round=$((round + 1))
	rm -f "$T_DIR/ready" "$T_DIR/go"
	python3 - "$A/d/$name" "$T_DIR/ready" "$T_DIR/go" "$round" <<'PY' &
import os, sys, time
path, ready, go, rnd = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, (b"round %d\n" % rnd) * 500)
os.fchmod(fd, 0o640)
os.utime(fd, ns=(1500000000 * 10**9, (1400000000 + rnd) * 10**9))
open(ready, "w").close()
for _ in range(600):
    if os.path.exists(go):
        break
    time.sleep(0.05)
os.close(fd)
open(ready + ".closed", "w").close()
PY
	wpid=$!
	t_track_pid "$wpid"
	wait_for 20 test -e "$T_DIR/ready" || { t_ok 1 "$name: the writer got to its setattrs"; t_done; }
	t_is "$(kinds)" "$([ "$name" = new ] && echo "create=1 " || echo "")" "$name: open, written, chmod'ed: nothing logged (but a new file's create)"
	# dirty.tdb and its journal are one state: copied and put back
	# together, the journal first (a checkpoint between the two copies
	# then leaves a journal the tdb contains, which opens)
	cp "$CA/dirty.tdb.jnl" "$T_DIR/dirty.jnl.copy" || exit 1
	cp "$CA/dirty.tdb" "$T_DIR/dirty.copy" || exit 1
	touch "$T_DIR/go"
	wait_for 20 test -e "$T_DIR/ready.closed" || { t_ok 1 "$name: the writer closed"; t_done; }
	wait "$wpid" 2>/dev/null
	t_ok "$(kinds | grep -q 'setattr=1 store=1 ' && echo 0 || echo 1)" "$name: the close logged the store and the setattr ($(kinds))"
	cairnd_kill9 "$A"
	cp "$T_DIR/dirty.copy" "$CA/dirty.tdb" || exit 1
	cp "$T_DIR/dirty.jnl.copy" "$CA/dirty.tdb.jnl" || exit 1
	rm -f "$T_DIR/ready.closed"
	mnt || exit 1
	t_is "$(stat -c '%a %s %Y' "$A/d/$name" 2>&1)" "640 $((500 * 8)) $((1400000000 + round))" "$name: after the restart the mount shows bytes, mode and mtime"
	# the drain of the logged store, then the write state stored again
	wait_for 20 sh -c "grep -q 'storing data a crash left dirty' '$T_DIR/cairnd-a.log'" ||
		t_ok 1 "$name: the restart stored the write state again"
	"$FS" sync -m "$A" >/dev/null 2>&1
	t_is "$(jst backlog_records)|$(jst conflicts)" "0|0" "$name: drained, no conflicts"
	"$FS" conflicts -m "$A" 2>&1 | head -8 | sed 's/^/#   /'
	C=$T_DIR/c$round
	cairnd_mount "$C" "$T_DIR/cc$round" wbc "$T_DIR/tok" || exit 1
	t_is "$(stat -c '%a %s %Y' "$C/d/$name" 2>&1)" "640 $((500 * 8)) $((1400000000 + round))" "$name: a fresh client sees the mode and mtime"
	t_is "$(md5sum <"$C/d/$name")" "$(python3 -c 'import sys; sys.stdout.write("round %d\n" % int(sys.argv[1]) * 500)' "$round" | md5sum)" "$name: and the bytes"
	t_is "$(ls "$C/d" | tr '\n' ' ')" "new old " "$name: each name once"
	cairnd_umount "$C"
	mv "$T_DIR/cairnd-a.log" "$T_DIR/cairnd-a.log.$round"
done
cairnd_umount "$A"
t_done
