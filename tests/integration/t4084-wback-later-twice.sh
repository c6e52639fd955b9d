#!/usr/bin/env bash
# t4084-wback-later-twice: a writeback mount's own stores never conflict
# with each other. When the answer to a replayed store of a file comes
# while a later STORE record of the file is in the log, the write state
# keeps the DV it was based on (cm/wb.c stored(), "later"), and every
# record logged until then names that DV; the replay's DV map sends them
# on the DV our last store produced. With two such answers in a row the
# map knew only the base the last record was sent on, the third record
# went out on the old DV, the server said 412: fsync gave EIO, the file
# a conflict copy, the server kept the older version (t4085's writer,
# 1 run in 5). A relay holds the answers back while the next version is
# written, so both answers come with a later record in the log.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 180
umask 022
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

vol_setup wk
spoil_mode events
spoilproxy_start || exit 99
A=$T_DIR/a
cairnd_mount "$A" "$T_DIR/ca" wk "$T_DIR/tok" --write-mode writeback \
	--writeback-delay 60s --fetch-timeout 30s || exit 1
stat1() { cm_stat "$A" "$1"; }
F=$A/f
# ver N [sync|append]: version N of f (an O_TRUNC open, its lines, an
# fsync if asked, close; or its lines appended: an O_TRUNC rewrite while
# a store of the file is in flight waits for its answer, doc/cm.md "A
# rewrite waits for the log", an append does not); says which call
# failed
ver() {
	python3 - "$F" "$@" <<'PY'
import os, sys, time
path, v = sys.argv[1], int(sys.argv[2])
log = open(os.path.join(os.path.dirname(os.path.dirname(path)), "ver.log"), "a")
t0 = time.time()
def did(what):
    print("%.3f version %d: %s after %.3f s" % (time.time(), v, what,
          time.time() - t0), file=log, flush=True)
call = "open"
try:
    append = sys.argv[3:] == ["append"]
    flags = os.O_WRONLY if append else os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(path, flags, 0o644)
    did("open")
    call = "write"
    data = b"version %d\n" % v * (1000 + 300 * v)
    if append:
        os.pwrite(fd, data, os.fstat(fd).st_size)
    else:
        os.write(fd, data)
    did("write")
    if sys.argv[3:] == ["sync"]:
        call = "fsync"
        os.fsync(fd)
        did("fsync")
    call = "close"
    os.close(fd)
    did("close")
except OSError as e:
    print("version %d: %s: %s" % (v, call, e))
    sys.exit(1)
PY
}
held() { cat "$T_DIR/proxy.req.held" 2>/dev/null | wc -l; }
held_more() { [ "$(held)" -gt "$1" ]; }

t_is "$(ver 0 sync)" "" "version 0 (a create and a store) synced"
c0=$(stat1 conflicts)
for n in 1 2; do
	# version 2n-1 logged at its close and sent by fs sync (not fsync:
	# the kernel holds the inode's lock through an fsync, and the next
	# open would wait for it); the server takes it, and its answer
	# waits while version 2n is written and logged
	t_is "$(ver $((2 * n - 1)))" "" "round $n: version $((2 * n - 1)) written"
	h=$(held)
	spoil_mode events holdop
	"$FS" sync "$F" >"$T_DIR/sync$n.out" 2>&1 &
	spid=$!
	t_track_pid "$spid"
	wait_for 20 held_more "$h"
	t_ok "$([ "$(held)" -gt "$h" ] && echo 0 || echo 1)" \
		"round $n: the store of version $((2 * n - 1)) went, its answer is held"
	t_is "$(ver $((2 * n)) append)" "" "round $n: version $((2 * n)) appended while the answer waits"
	spoil_mode events
	wait "$spid"
	t_is "$?" 0 "round $n: fs sync of version $((2 * n - 1)) succeeded ($(cat "$T_DIR/sync$n.out"))"
done
# the third store of the file on the base its write state kept
t_is "$(ver 5 sync)" "" "version 5 synced (no EIO: no conflict with itself)"
t_is "$(( $(stat1 conflicts) - c0 ))" 0 "no conflict recorded"
t_is "$(cd "$A" && ls | grep -c conflict)" 0 "no conflict copy"
if grep 'conflict:' "$T_DIR/cairnd-a.log" | head -3 | sed 's/^/#   /' | grep .; then
	t_ok 1 "the log has no conflict"
else
	t_ok 0 "the log has no conflict"
fi
# the server has version 5: a second mount, straight to the server
VOLD_URL=$real_url
B=$T_DIR/b
cairnd_mount "$B" "$T_DIR/cb" wk "$T_DIR/tok" || exit 1
want=$(python3 -c 'import sys; sys.stdout.write("version 5\n" * 2500)' | sha256sum)
t_is "$(sha256sum <"$B/f")" "$want" "the server has version 5"
t_is "$(sha256sum <"$A/f")" "$want" "A reads version 5"
t_done
