#!/usr/bin/env bash
# t5041-cm-metrics-fds: any local user can connect to cairnd's loopback
# metrics listener; that must not use up cairnd's descriptors nor spin
# its loop. (a) Many held connections: cairnd keeps at most 16 of them
# open, says so once, and cold reads through the mount go on. (b) Out of
# descriptors (the limit lowered with prlimit while connections are
# held): accept() fails, the listener pauses instead of logging "Too many
# open files" in a loop at full CPU; once the clients go, metrics answer
# again. Before, (a) ran cairnd out of descriptors and (b) logged
# hundreds of thousands of lines.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 180
command -v prlimit >/dev/null || { echo "# SKIP: no prlimit"; exit 77; }

src=$T_DIR/src
mkdir -p "$src"
for i in 1 2 3 4; do head -c 200000 /dev/urandom >"$src/f$i"; done
vold_start || exit 99
vos init >/dev/null 2>&1
vos import lab "$src" >/dev/null || exit 99
make_token lab rw "$T_DIR/lab.tok"
mnt=$T_DIR/mnt
cairnd_mount "$mnt" "$T_DIR/cache" lab "$T_DIR/lab.tok" --metrics-listen 127.0.0.1:0 || exit 99
log=$T_DIR/cairnd-mnt.log
pid=$(cairnd_pid "$mnt")
wait_for 5 grep -q "metrics on http://127.0.0.1:[0-9]*/metrics" "$log"
url=$(sed -n 's|.*metrics on \(http://127.0.0.1:[0-9]*/metrics\).*|\1|p' "$log" | tail -n 1)
port=${url##*:}
port=${port%%/*}
t_check "metrics answer" sh -c "curl -sSf '$url' | grep -q '^cairnd_'"
nfd() { ls "/proc/$pid/fd" | wc -l; }
cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; } # clock ticks
storm() { grep -c "Too many open files" "$log"; }

# hold N SECS: N connections to the metrics port that say nothing,
# kept for SECS (in the background; the pid in $holder).
hold() {
	python3 -c '
import socket, sys, time
port, n, secs = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
socks = []
for _ in range(n):
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect(("127.0.0.1", port))
    except OSError:
        pass
    socks.append(s)
print("held", flush=True)
time.sleep(secs)
' "$port" "$1" "$2" >"$T_DIR/hold.out" 2>&1 &
	holder=$!
	t_track_pid "$holder"
	wait_for 10 grep -q held "$T_DIR/hold.out"
}

# Only the soft limit moves (a lower hard one could not be raised back).
hard=$(prlimit --pid "$pid" --nofile -o HARD --noheadings | tr -d ' ')
soft=$(prlimit --pid "$pid" --nofile -o SOFT --noheadings | tr -d ' ')
setlim() { prlimit --pid "$pid" --nofile="$1:$hard"; }

# (a) The cap.
base=$(nfd)
setlim $((base + 60))
hold 200 4
sleep 1
n=$(nfd)
t_ok $((n > base + 16 + 4)) "200 held connections: cairnd has $((n - base)) more descriptors (at most 16 + a few)"
t_is "$(cmp "$mnt/f1" "$src/f1" 2>&1; echo $?)" 0 "a cold read while they are held"
t_is "$(storm)" 0 "no 'Too many open files'"
t_is "$(grep -c "metrics connections open (the maximum)" "$log")" 1 "the cap is logged once"
wait "$holder" 2>/dev/null
t_check "metrics answer after the clients went" wait_for 10 sh -c "curl -sf -m 2 '$url' | grep -q '^cairnd_'"

# (b) Out of descriptors: fewer left than the cap.
base=$(nfd)
setlim $((base + 6))
c0=$(cpu)
hold 40 3
sleep 2
c1=$(cpu)
t_ok $(((c1 - c0) > 100)) "out of descriptors: cairnd used $((c1 - c0)) ticks in ~2s (no spinning)"
t_ok $(($(storm) > 5)) "no log storm ($(storm) lines of 'Too many open files')"
t_check "the pause is logged" grep -q "cannot accept a metrics connection: Too many open files" "$log"
t_is "$(grep -c "cannot accept a metrics connection" "$log")" 1 "logged once"
wait "$holder" 2>/dev/null
setlim "$soft"
t_check "metrics answer again" wait_for 10 sh -c "curl -sf -m 2 '$url' | grep -q '^cairnd_'"
t_is "$(cmp "$mnt/f2" "$src/f2" 2>&1; echo $?)" 0 "cold reads go on"
t_check "cairnd still runs" kill -0 "$pid"
# Stopping with metrics connections open frees them and the listener
# once (a double free aborts cairnd).
hold 5 10
sleep 0.5
cairnd_umount "$mnt"
t_ok $? "unmount with metrics connections open"
wait "$pid" 2>/dev/null
st=$?
t_is "$st" 0 "cairnd exits 0"
t_check "and says it stopped" grep -q "stopped with every change stored" "$log"
kill "$holder" 2>/dev/null
t_done
