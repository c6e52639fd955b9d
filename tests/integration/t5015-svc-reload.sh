#!/usr/bin/env bash
# t5015-svc-reload: SIGHUP and SIGTERM as systemd sends them (ExecReload,
# stop), and logs for the journal.
#  - cairnd: after `vos revoke` and a new token in the token file, SIGHUP
#    keeps the same mount and process, and the next requests (reads,
#    writes, the event stream) use the new token; a changed setting that
#    cannot change while mounted is named in the log and kept; log-level
#    applies at once; a config that does not load changes nothing.
#  - SIGTERM: a clean stop whose last line says nothing is left unstored.
#  - cairn-vold: access log lines (no token in them), reopened on SIGHUP
#    (rotation); SIGHUP rereads its config.
#  - JOURNAL_STREAM: no timestamp of ours, a <N> priority prefix.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 240

src=$T_DIR/src
mkdir -p "$src"
for f in a b c d; do echo "file $f" >"$src/$f.txt"; done
vconf=$T_DIR/vold.conf
printf '[vold]\naccess-log = %s\n' "$T_DIR/access.log" >"$vconf"
vold_start --config "$vconf" || exit 99
vos init >/dev/null 2>&1
vos import lab "$src" >/dev/null || exit 99
tok=$T_DIR/lab.tok
make_token lab rw "$tok"
old=$(cat "$tok")
conf=$T_DIR/cairnd.conf
printf '[cairnd]\nthreads = 4\nfetch-timeout = 2s\n' >"$conf"
mnt=$T_DIR/mnt
log=$T_DIR/cairnd-mnt.log
cairnd_mount "$mnt" "$T_DIR/cache" lab "$tok" --config "$conf" || exit 99
pid=$(cairnd_pid "$mnt")
t_is "$(cat "$mnt/a.txt")" "file a" "read with the first token"
# Reading a.txt prefetches its small siblings (t2203): drop b.txt's
# chunks again, so that its read below must ask the server.
sleep 0.5
"$FS" flush "$mnt/b.txt" >/dev/null 2>&1

# Revoke: the old token is refused from now on.
vos revoke lab >/dev/null || exit 99
export VC_URL=$VOLD_URL VC_VOL=lab
t_is "$(VC_TOKEN=$old vc get /v1/vol/lab | jerr)" "401 EACCES" "old token refused after vos revoke"
cat "$mnt/b.txt" >/dev/null 2>&1
t_ok $((! $?)) "an uncached read fails with the revoked token"

# A new token in the same file, a changed setting, then SIGHUP.
make_token lab rw "$tok"
new=$(cat "$tok")
printf '[cairnd]\nthreads = 8\nfetch-timeout = 2s\nlog-level = debug\n' >"$conf"
kill -HUP "$pid"
t_check "log: the new token is read" wait_for 10 grep -q "reload: new token read from '$tok'" "$log"
t_check "log: threads cannot change while mounted" grep -q "reload: threads changed to '8'.*'4' stays until cairnd restarts" "$log"
# lib.sh gives --log-level on the command line: that still wins.
t_is "$(grep -c "reload: log-level" "$log")" 0 "log-level of the command line still wins over the file"
t_check "same process" kill -0 "$pid"
t_check "still mounted" mountpoint -q "$mnt"
t_is "$(cat "$mnt/b.txt" 2>&1)" "file b" "an uncached read works with the new token"
t_is "$(cat "$mnt/a.txt" 2>&1)" "file a" "a cached file still reads"
echo "after reload" >"$mnt/w.txt"
t_ok $? "a write (store) with the new token"
t_is "$(VC_TOKEN=$new vc cat "$(VC_TOKEN=$new vc lookup "$(VC_TOKEN=$new vc root)" w.txt)")" "after reload" \
	"the server has the write"
# The event stream came back with the new token: a change made on the
# server shows through the mount without any lookup of ours first.
ls "$mnt" >/dev/null
root=$(VC_TOKEN=$new vc root)
VC_TOKEN=$new vc create "$root" from-server.txt >/dev/null
t_check "a server-side create shows through the event stream" wait_for 10 sh -c "ls '$mnt' | grep -qx from-server.txt"

# A config that does not load: the running settings stay.
printf '[cairnd]\nthreads = lots\n' >"$conf"
kill -HUP "$pid"
t_check "log: a bad config on reload is refused" wait_for 10 grep -q "reload failed, the running settings stay: config '$conf:2': threads must be 1..256" "$log"
t_check "still mounted after a failed reload" mountpoint -q "$mnt"
t_is "$(cat "$mnt/c.txt" 2>&1)" "file c" "and still reading"
# The token file made unreadable to others' standards: the old one stays.
printf '[cairnd]\nthreads = 4\nfetch-timeout = 2s\n' >"$conf"
chmod 644 "$tok"
kill -HUP "$pid"
t_check "log: a token file with a bad mode is refused, the token stays" \
	wait_for 10 grep -q "reload: cannot read token file '$tok'.*the old token stays" "$log"
chmod 600 "$tok"
t_is "$(cat "$mnt/d.txt" 2>&1)" "file d" "reads go on with the token in use"

# SIGTERM: clean stop, and the last line says so.
echo "last" >"$mnt/last.txt"
kill -TERM "$pid"
t_check "cairnd exits on SIGTERM" wait_for 15 sh -c "! kill -0 $pid 2>/dev/null"
wait "$pid" 2>/dev/null
t_is "$?" 0 "exit status 0"
t_check "log: stopped with every change stored" grep -q "stopped with every change stored on the server" "$log"
t_check "not mounted after SIGTERM" sh -c "! mountpoint -q '$mnt'"

# SIGTERM while disconnected: nothing can reach the server, and the last
# line says what stays in the cache for the next start.
mnt4=$T_DIR/mnt4
cairnd_mount "$mnt4" "$T_DIR/cache4" lab "$tok" || exit 99
pid4=$(cairnd_pid "$mnt4")
ls "$mnt4" >/dev/null
t_check "fs disconnect" "$FS" disconnect -m "$mnt4"
echo "offline" >"$mnt4/offline.txt"
t_ok $? "a write while disconnected"
kill -TERM "$pid4"
t_check "cairnd exits on SIGTERM while disconnected" wait_for 15 sh -c "! kill -0 $pid4 2>/dev/null"
t_check "log: what stays in the cache is said" \
	grep -qE "stopped with [0-9]+ files not stored and [1-9][0-9]* changes in the replay log: they stay in '$T_DIR/cache4' and go to the server at the next start" "$T_DIR/cairnd-mnt4.log"
mountpoint -q "$mnt4" && fusermount3 -uz "$mnt4"

# A cairnd that detached (no --foreground) with relative paths: after the
# fork it runs in /, and a reload still finds its config and token file.
(cd "$T_DIR" && printf '[cairnd]\nserver = %s\nvolume = lab\ntoken = lab.tok\ncache = cache3\nmountpoint = mnt3\n' "$VOLD_URL" >t5015-rel.conf &&
	mkdir -p mnt3 && "$CAIRND" --config t5015-rel.conf)
t_ok $? "a detached cairnd with relative paths starts"
_T_MOUNTS="$_T_MOUNTS $T_DIR/mnt3"
dpid=$(pgrep -f -- "--config t5015-rel.conf\$")
t_track_pid "$dpid"
t_is "$(cat "$T_DIR/mnt3/a.txt" 2>&1)" "file a" "it reads"
vos revoke lab >/dev/null
make_token lab rw "$tok"
kill -HUP "$dpid"
sleep 1
t_is "$(cat "$T_DIR/mnt3/c.txt" 2>&1)" "file c" "after revoke, new token and SIGHUP, an uncached read works"
t_check "the detached cairnd still runs" kill -0 "$dpid"
umount "$T_DIR/mnt3"
t_check "it stops at umount" wait_for 10 sh -c "! kill -0 $dpid 2>/dev/null"

# cairn-vold's access log.
al=$T_DIR/access.log
t_check "access log written" test -s "$al"
t_check "a GET line: time, peer, method, path, status, bytes, duration" \
	grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]+Z 127\.0\.0\.1:[0-9]+ GET /v1/vol/lab[^ ]* 200 [0-9-]+ [0-9.]+$' "$al"
t_check "a 401 line for the revoked token" grep -qE ' 401 [0-9-]+ [0-9.-]+$' "$al"
t_check "a POST line (the store)" grep -qE ' POST /v1/vol/lab/op[^ ]* 200 ' "$al"
t_is "$(grep -c -e "${old#cairn2.}" -e "${new#cairn2.}" "$al")" 0 "no token in the access log"
# Rotation: move it away, SIGHUP, the next request goes to a new file.
mv "$al" "$al.1"
printf '[vold]\naccess-log = %s\nworkers = 7\n' "$al" >"$vconf"
kill -HUP "$VOLD_PID"
t_check "vold: reload logged" wait_for 10 grep -q "reload done" "$T_DIR/vold.log"
t_check "vold: workers cannot change while serving" grep -q "reload: workers changed to '7'.*stays until cairn-vold restarts" "$T_DIR/vold.log"
vold_curl "$VOLD_URL/v1/ping" >/dev/null
t_check "access log reopened after rotation" wait_for 5 grep -q 'GET /v1/ping 200' "$al"
t_check "vold still serves after reload" vold_curl "$VOLD_URL/v1/ping"

# sd_notify as systemd's Type=notify sees it: a datagram socket in
# NOTIFY_SOCKET gets READY=1 once cairn-vold listens and once cairnd's
# mount is up, RELOADING=1 then READY=1 around a SIGHUP, STOPPING=1 at
# SIGTERM.
ns=$T_DIR/notify.sock
python3 -c '
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
with open(sys.argv[2], "a") as f:
    while True:
        m = s.recv(4096).decode(errors="replace").replace("\n", " ")
        f.write(m + "\n"); f.flush()
' "$ns" "$T_DIR/notify.log" &
t_track_pid $!
wait_for 5 test -S "$ns"
mkdir -p "$T_DIR/srv3"
NOTIFY_SOCKET=$ns "$VOLD" --root "$T_DIR/srv3" --listen 127.0.0.1:0 --foreground 2>>"$T_DIR/vold3.log" &
np=$!
t_track_pid "$np"
t_check "vold: READY=1 with a status once it listens" wait_for 10 grep -qE '^READY=1 STATUS=listening on 127\.0\.0\.1:[0-9]+$' "$T_DIR/notify.log"
kill -HUP "$np"
t_check "vold: RELOADING=1, then READY=1 on SIGHUP" wait_for 10 sh -c "grep -A1 -x RELOADING=1 '$T_DIR/notify.log' | grep -qx READY=1"
kill -TERM "$np"
t_check "vold: STOPPING=1 on SIGTERM" wait_for 10 grep -qx STOPPING=1 "$T_DIR/notify.log"
wait "$np" 2>/dev/null
: >"$T_DIR/notify.log"
mnt5=$T_DIR/mnt5
# Started as cairnd@.service starts it: everything in the config file.
c5=$T_DIR/cairnd5.conf
printf '[cairnd]\nserver = %s\nvolume = lab\ntoken = %s\ncache = %s\nmountpoint = %s\nlog-level = info\n' \
	"$VOLD_URL" "$tok" "$T_DIR/cache5" "$mnt5" >"$c5"
mkdir -p "$mnt5"
NOTIFY_SOCKET=$ns "$CAIRND" --config "$c5" --foreground >>"$T_DIR/cairnd-mnt5.log" 2>&1 &
pid5=$!
t_track_pid "$pid5"
_T_MOUNTS="$_T_MOUNTS $mnt5"
t_check "cairnd: READY=1 naming the mount" wait_for 10 grep -q "^READY=1 STATUS=volume lab from $VOLD_URL on $mnt5\$" "$T_DIR/notify.log"
t_check "mounted when READY=1 came" mountpoint -q "$mnt5"
t_is "$(grep -c ' debug ' "$T_DIR/cairnd-mnt5.log")" 0 "no debug lines at log-level info"
sed -i 's/^log-level = info/log-level = debug/' "$c5"
kill -HUP "$pid5"
t_check "cairnd: RELOADING=1, then READY=1 on SIGHUP" wait_for 10 sh -c "grep -A1 -x RELOADING=1 '$T_DIR/notify.log' | grep -qx READY=1"
t_check "log: log-level from the file applied on SIGHUP" grep -q "reload: log-level is now 'debug'" "$T_DIR/cairnd-mnt5.log"
ls -R "$mnt5" >/dev/null; cat "$mnt5/d.txt" >/dev/null
t_check "debug lines follow" wait_for 5 grep -q ' debug ' "$T_DIR/cairnd-mnt5.log"
kill -TERM "$pid5"
t_check "cairnd: STOPPING=1 on SIGTERM" wait_for 10 grep -qx STOPPING=1 "$T_DIR/notify.log"
wait_for 10 sh -c "! kill -0 $pid5 2>/dev/null"

# JOURNAL_STREAM naming stderr: no timestamp of ours, a <N> prefix.
jl=$T_DIR/journal.log
: >"$jl"
js=$(stat -c '%d:%i' "$jl")
mkdir -p "$T_DIR/srv2"
JOURNAL_STREAM=$js "$VOLD" --root "$T_DIR/srv2" --listen 127.0.0.1:0 --foreground >/dev/null 2>>"$jl" &
jp=$!
t_track_pid "$jp"
t_check "journal: started" wait_for 10 grep -q "listening on" "$jl"
t_check "journal: <6>info main: listening on ..." grep -qE '^<6>info main: listening on 127\.0\.0\.1:[0-9]+$' "$jl"
kill -TERM "$jp"; wait "$jp" 2>/dev/null
# A JOURNAL_STREAM that names another file (inherited, not ours): normal lines.
jl2=$T_DIR/notjournal.log
JOURNAL_STREAM=1:1 "$VOLD" --root "$T_DIR/srv2" --listen 127.0.0.1:0 --foreground >/dev/null 2>>"$jl2" &
jp=$!
t_track_pid "$jp"
t_check "not the journal: started" wait_for 10 grep -q "listening on" "$jl2"
t_check "not the journal: timestamped lines" grep -qE '^[0-9]{4}-[0-9]{2}-[0-9]{2} .*cairn-vold\[[0-9]+\] info main: listening on' "$jl2"
kill -TERM "$jp"; wait "$jp" 2>/dev/null
t_done
