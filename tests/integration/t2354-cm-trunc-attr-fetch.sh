#!/usr/bin/env bash
# t2354-cm-trunc-attr-fetch: an ftruncate of a file open for writing
# answers with the file's attributes; when they are not cached at that
# moment (another client's change dropped them, and their fetch is slow)
# they are fetched first. Before, the truncate was done and the call
# still got EIO (reply_attr_of()). A relay holds every getattr answer
# while the truncate comes.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 120
umask 022
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

vol_setup tr
spoil_mode events
spoilproxy_start || exit 99
A=$T_DIR/a
B=$T_DIR/b
cairnd_mount "$A" "$T_DIR/ca" tr "$T_DIR/tok" --fetch-timeout 30s || exit 1
(VOLD_URL=$real_url; cairnd_mount "$B" "$T_DIR/cb" tr "$T_DIR/tok") || exit 1
_T_MOUNTS="$_T_MOUNTS $B"

printf '0123456789abcdef' >"$A/f" || exit 1
wait_for 10 test -s "$B/f"
t_is "$(cat "$B/f")" 0123456789abcdef "B reads what A wrote"

cat >"$T_DIR/tr.py" <<'PY'
# path dir: open for writing (no O_TRUNC), then on "go" ftruncate to 5
import os, sys, time
path, d = sys.argv[1], sys.argv[2]
def say(name, what):
    with open(os.path.join(d, name), "w") as f:
        f.write(what + "\n")
fd = os.open(path, os.O_WRONLY)
say("t.opened", "")
end = time.time() + 60
while not os.path.exists(os.path.join(d, "t.go")) and time.time() < end:
    time.sleep(0.02)
t0 = time.time()
try:
    os.ftruncate(fd, 5)
    say("t.trunc", "ok %.1f" % (time.time() - t0))
except OSError as e:
    say("t.trunc", "ftruncate: %s" % e)
os.close(fd)
say("t.end", "")
PY
python3 "$T_DIR/tr.py" "$A/f" "$T_DIR" &
t_track_pid "$!"
wait_for 20 test -e "$T_DIR/t.opened"

# B changes the file's mode: its event drops A's cached attributes, and
# their fetch waits at the relay. First A's own events settle (its create
# and store), so that the count below moves for B's change.
e0=$(cm_stat "$A" events)
for _ in $(seq 1 40); do
	sleep 0.25
	e1=$(cm_stat "$A" events)
	[ "$e1" = "$e0" ] && break
	e0=$e1
done
spoil_mode events holdattr
chmod 600 "$B/f"
wait_for 20 cm_stat_more "$A" events "$e0"
t_ok "$([ "$(cm_stat "$A" events)" -gt "$e0" ] && echo 0 || echo 1)" "A heard of B's change"
sleep 0.3
touch "$T_DIR/t.go"
sleep 1.5
spoil_mode events
wait_for 30 test -e "$T_DIR/t.end"
r=$(cat "$T_DIR/t.trunc" 2>/dev/null)
t_is "${r%% *}" ok "the ftruncate succeeded ($r)"
# answered once the relay let the getattr answer go: it did wait for
# the fetch (else this run did not reach the case)
t_ok "$(awk -v t="${r#* }" 'BEGIN { exit !(t + 0 >= 1.0) }' && echo 0 || echo 1)" \
	"its reply waited for the attributes' fetch (${r#* } s)"
wait_for 10 sh -c "[ \"\$(cat '$B/f')\" = 01234 ]"
t_is "$(cat "$B/f")" 01234 "the server has the truncated file"
t_is "$(stat -c %a "$A/f")" 600 "A shows B's mode"
t_done
