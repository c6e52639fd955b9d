#!/usr/bin/env bash
# t4083-wback-rewrite-copy: in writeback mode, a version whose close
# returned 0 is never lost to a rewrite of the file while its store is
# still in the log. A STORE record names the file's chunks, not a copy of
# them: before, an O_TRUNC open cut them while the record waited, and
# when the server then refused the record (another client had stored
# the file since) the conflict copy was made from the new version's
# start and zeros; the refused version was in no copy, and the writer of
# the new one got EIO. Now a write or truncate below what a logged store
# covers first has the log send it (cm/fuse_mut.c fmut_drain_first()):
# the copy holds the refused version whole and the rewrite goes on from
# the server's version. Both a small file (its bytes ride in the record)
# and a large one (three chunks); and with the server gone, the wait ends
# when the mount goes disconnected.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 150
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

vol_setup rw
A=$T_DIR/a
B=$T_DIR/b
cairnd_mount "$A" "$T_DIR/ca" rw "$T_DIR/tok" --write-mode writeback \
	--writeback-delay 60s || exit 1
cairnd_mount "$B" "$T_DIR/cb" rw "$T_DIR/tok" || exit 1

cat >"$T_DIR/rewrite.py" <<'PY'
# path data-file dir: an O_TRUNC open, the first 64 KiB, a sign, then
# (on "go") the rest and close; says "ok" or the call that failed
import os, sys, time
path, src, d = sys.argv[1], sys.argv[2], sys.argv[3]
data = open(src, "rb").read()
def say(name, what):
    with open(os.path.join(d, name), "w") as f:
        f.write(what + "\n")
call = "open"
try:
    t0 = time.time()
    fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
    say("w.open_ms", "%d" % ((time.time() - t0) * 1000))
    call = "first write"
    os.pwrite(fd, data[:65536], 0)
    say("w.started", "")
    end = time.time() + 60
    while not os.path.exists(os.path.join(d, "w.go")) and time.time() < end:
        time.sleep(0.02)
    call = "second write"
    if len(data) > 65536:
        os.pwrite(fd, data[65536:], 65536)
    call = "close"
    os.close(fd)
    say("w.end", "ok")
except OSError as e:
    say("w.end", "%s: %s" % (call, e))
PY

# one FILE N SIZE1 (N: its number in verlines.py): v0 on the server, v1 logged on A, B's version stored,
# then A rewrites the file while v1's record is still in the log
one() {
	local f=$1 fn=$2 size1=$3 c0 w0 n
	t_version "$fn" 0 150000 >"$A/$f" || return 1
	t_check "$f: version 0 reaches the server" "$FS" sync -m "$A"
	wait_for 10 test -s "$B/$f"
	t_version "$fn" 1 "$size1" >"$T_DIR/$f.v1"
	t_version "$fn" 2 200000 >"$T_DIR/$f.v2"
	cp "$T_DIR/$f.v1" "$A/$f"
	t_is "$?" 0 "$f: version 1 written on A (its store logged)"
	t_version "$fn" 9 90000 >"$B/$f"
	t_is "$?" 0 "$f: B stored its own version since"
	c0=$(cm_stat "$A" conflicts)
	w0=$(cm_stat "$A" rewrite_waits)
	rm -f "$T_DIR"/w.*
	python3 "$T_DIR/rewrite.py" "$A/$f" "$T_DIR/$f.v2" "$T_DIR" &
	t_track_pid "$!"
	wait_for 30 test -e "$T_DIR/w.started"
	t_ok "$([ -e "$T_DIR/w.started" ] && echo 0 || echo 1)" \
		"$f: A's rewrite began (its open took $(cat "$T_DIR/w.open_ms" 2>/dev/null) ms)"
	# before: this sync sent version 1's record now, refused, and the
	# copy was made of the half-written version 2
	"$FS" sync -m "$A" >"$T_DIR/sync1.out" 2>&1
	touch "$T_DIR/w.go"
	wait_for 30 test -e "$T_DIR/w.end"
	t_is "$(cat "$T_DIR/w.end" 2>/dev/null)" ok "$f: the rewrite's calls all succeeded"
	t_check "$f: A's log drains" "$FS" sync -m "$A"
	t_ok "$([ "$(cm_stat "$A" rewrite_waits)" -gt "$w0" ] && echo 0 || echo 1)" \
		"$f: the rewrite waited for the log"
	t_is "$(( $(cm_stat "$A" conflicts) - c0 ))" 1 "$f: one conflict"
	# B learns of the copy A made through its events
	wait_for 20 sh -c "ls '$B' | grep -q '^$f\.conflict-'"
	n=0
	for c in "$B/$f".conflict-*; do
		[ -e "$c" ] || continue
		n=$((n + 1))
		t_is "$(sha256sum <"$c")" "$(sha256sum <"$T_DIR/$f.v1")" \
			"$f: the conflict copy holds version 1 whole"
	done
	t_is "$n" 1 "$f: one conflict copy"
	wait_for 10 sh -c "cmp -s '$B/$f' '$T_DIR/$f.v2'"
	t_is "$(sha256sum <"$B/$f")" "$(sha256sum <"$T_DIR/$f.v2")" \
		"$f: the server has version 2"
	t_is "$(sha256sum <"$A/$f")" "$(sha256sum <"$T_DIR/$f.v2")" \
		"$f: A reads version 2"
}

one big 1 700000
one small 2 20000

# The server gone: the wait ends when the mount goes disconnected (a
# write must not hang offline); the rewrite is logged and reaches the
# server once it is back.
t_version 3 1 300000 >"$A/down" || exit 1
t_check "down: version 1 reaches the server" "$FS" sync -m "$A"
t_version 3 2 300000 >"$T_DIR/down.v2"
t_version 3 3 250000 >"$T_DIR/down.v3"
cp "$T_DIR/down.v2" "$A/down"
vold_kill9
t0=$(date +%s%N)
cp "$T_DIR/down.v3" "$A/down"
t_is "$?" 0 "down: a rewrite while the server is gone succeeds"
ms=$((($(date +%s%N) - t0) / 1000000))
t_ok "$([ "$ms" -lt 15000 ] && echo 0 || echo 1)" "down: it did not wait for the bound ($ms ms)"
t_is "$(sha256sum <"$A/down")" "$(sha256sum <"$T_DIR/down.v3")" "down: A reads the rewrite"
vold_restart || exit 1
"$FS" reconnect -m "$A" >/dev/null 2>&1
wait_for 30 sh -c "cmp -s '$B/down' '$T_DIR/down.v3'"
t_is "$(sha256sum <"$B/down")" "$(sha256sum <"$T_DIR/down.v3")" "down: the server has it once back"
t_done
