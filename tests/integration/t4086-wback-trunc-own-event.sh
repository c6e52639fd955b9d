#!/usr/bin/env bash
# t4086-wback-trunc-own-event: on a writeback mount, an ftruncate of a file
# this client alone writes never fails. When the answer to a replayed
# store of a file comes while the file, still open, was written again
# since the store was logged (and no later store is logged), the write
# state moves to the new DV (cm/wb.c stored(), "written again since"),
# but the cached attributes kept the old one: the store's own event,
# applied once its record had left the log, then looked like another
# client's change, dropped the attributes (and the kernel's pages), and
# until they were fetched again the ftruncate's attribute reply had
# nothing to answer with: EIO after the truncate was done (t4085's
# writer, about 1 run in 20 under load). A relay holds the store's
# answer while the file is written again, then its event until the
# answer is applied, then every getattr answer, so that the window
# stays open while the ftruncate comes.
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
line() { python3 -c 'import sys; sys.stdout.write("version %s\n" % sys.argv[1] * int(sys.argv[2]))' "$@"; }
# ver N [sync]: version N of f (an O_TRUNC open, its lines, an fsync if
# asked, close); says which call failed
ver() {
	python3 - "$F" "$@" <<'PY'
import os, sys
path, v = sys.argv[1], int(sys.argv[2])
call = "open"
try:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    call = "write"
    os.write(fd, b"version %d\n" % v * 3000)
    if sys.argv[3:] == ["sync"]:
        call = "fsync"
        os.fsync(fd)
    call = "close"
    os.close(fd)
except OSError as e:
    print("version %d: %s: %s" % (v, call, e))
    sys.exit(1)
PY
}
held() { cat "$T_DIR/proxy.req.held" 2>/dev/null | wc -l; }
held_more() { [ "$(held)" -gt "$1" ]; }
events_more() { [ "$(stat1 events)" -gt "$1" ]; }

t_is "$(ver 0 sync)" "" "version 0 (a create and a store) synced"
c0=$(stat1 conflicts)
t_is "$(ver 1)" "" "version 1 written (its store logged at close)"

# the store of version 1 goes (fs sync); the server takes it, its answer
# and its event wait
h=$(held)
spoil_mode events holdop holdev
"$FS" sync "$F" >"$T_DIR/sync.out" 2>&1 &
spid=$!
t_track_pid "$spid"
wait_for 20 held_more "$h"
t_ok "$([ "$(held)" -gt "$h" ] && echo 0 || echo 1)" \
	"the store of version 1 went, its answer is held"

# meanwhile a writer opens the file (no O_TRUNC: nothing is logged) and
# writes again past the logged end (a write below it would wait for the
# store's answer: doc/cm.md "A rewrite waits for the log"); it keeps the
# descriptor open and truncates it on a sign
cat >"$T_DIR/w.py" <<'PY'
import os, sys, time
path, d = sys.argv[1], sys.argv[2]
def say(name, what):
    with open(os.path.join(d, name), "w") as f:
        f.write(what + "\n")
call = "open"
try:
    fd = os.open(path, os.O_WRONLY)
    call = "write"
    os.pwrite(fd, b"version 2\n" * 2000, os.fstat(fd).st_size)
    say("w.opened", "")
    end = time.time() + 60
    while not os.path.exists(os.path.join(d, "w.go")) and time.time() < end:
        time.sleep(0.02)
    try:
        os.ftruncate(fd, 0)
        say("w.trunc", "ok")
    except OSError as e:
        say("w.trunc", "ftruncate: %s" % e)
    call = "write after the ftruncate"
    os.pwrite(fd, b"version 3\n" * 2500, 0)
    call = "close"
    os.close(fd)
    say("w.end", "ok")
except OSError as e:
    say("w.end", "%s: %s" % (call, e))
PY
python3 "$T_DIR/w.py" "$F" "$T_DIR" &
wpid=$!
t_track_pid "$wpid"
wait_for 20 test -e "$T_DIR/w.opened"
t_ok "$([ -e "$T_DIR/w.opened" ] && echo 0 || echo 1)" \
	"the writer wrote again while the answer waits"

# the answer is applied (the write state moves to the new DV), its event
# still held; then the event, while every getattr answer waits
spoil_mode events holdev holdattr
wait "$spid"
t_is "$?" 0 "fs sync of version 1 succeeded ($(cat "$T_DIR/sync.out"))"
e0=$(stat1 events)
spoil_mode events holdattr
wait_for 20 events_more "$e0"
t_ok "$(events_more "$e0" && echo 0 || echo 1)" "the store's event came"
sleep 0.5

touch "$T_DIR/w.go"
wait_for 30 test -e "$T_DIR/w.trunc"
t_is "$(cat "$T_DIR/w.trunc" 2>/dev/null)" "ok" \
	"the ftruncate of the file open for writing succeeded"
spoil_mode events
wait_for 30 test -e "$T_DIR/w.end"
t_is "$(cat "$T_DIR/w.end" 2>/dev/null)" "ok" "the writer wrote version 3 and closed"
wait "$wpid"
"$FS" sync "$F" >"$T_DIR/sync2.out" 2>&1
t_is "$?" 0 "fs sync of version 3 succeeded ($(cat "$T_DIR/sync2.out"))"
t_is "$(( $(stat1 conflicts) - c0 ))" 0 "no conflict recorded"

# the server has version 3: a second mount, straight to the server
VOLD_URL=$real_url
B=$T_DIR/b
cairnd_mount "$B" "$T_DIR/cb" wk "$T_DIR/tok" || exit 1
want=$(line 3 2500 | sha256sum)
t_is "$(sha256sum <"$B/f")" "$want" "the server has version 3"
t_is "$(sha256sum <"$A/f")" "$want" "A reads version 3"
t_done
