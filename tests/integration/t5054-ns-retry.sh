#!/usr/bin/env bash
# t5054-ns-retry: a volume whose server is down at start (and of which
# the cache holds nothing) is left out, its directory answers EIO; the
# retrier (daemon_ns.c) tries it again in the background, and once the
# server is back the volume is served without a restart: it lists, reads
# and writes, and what it writes reaches its server. The other volume is
# served all along. A volume left out for a missing token file is served
# once the file is there.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 180

mkdir -p "$T_DIR/src-a" "$T_DIR/src-b"
for f in 1 2; do echo "alpha $f" >"$T_DIR/src-a/f$f.txt"; echo "gamma $f" >"$T_DIR/src-b/f$f.txt"; done
SRV_ROOT=$T_DIR/srvA
vold_start || exit 99
vos init >/dev/null 2>&1
vos import alpha "$T_DIR/src-a" >/dev/null || exit 99
make_token alpha rw "$T_DIR/alpha.tok"
vos import omega "$T_DIR/src-a" >/dev/null || exit 99
make_token omega rw "$T_DIR/omega.tok.later"
URL_A=$VOLD_URL SRV_A=$SRV_ROOT
SRV_ROOT=$T_DIR/srvB
vold_start || exit 99
vos init >/dev/null 2>&1
vos import gamma "$T_DIR/src-b" >/dev/null || exit 99
make_token gamma rw "$T_DIR/gamma.tok"
URL_B=$VOLD_URL
vold_stop

mnt=$T_DIR/mnt
conf=$T_DIR/cairnd.conf
mkdir -p "$mnt"
cat >"$conf" <<CONF
[cairnd]
cache = $T_DIR/cache
mountpoint = $mnt
fetch-timeout = 2s
[volume alpha]
server = $URL_A
token = $T_DIR/alpha.tok
[volume proj]
volume = gamma
server = $URL_B
token = $T_DIR/gamma.tok
[volume om]
volume = omega
server = $URL_A
token = $T_DIR/omega.tok
CONF
log=$T_DIR/cairnd-mnt.log
"$CAIRND" --config "$conf" --foreground >>"$log" 2>&1 &
pid=$!
t_track_pid "$pid"
_T_MOUNTS="$_T_MOUNTS $mnt"
wait_for 15 mountpoint -q "$mnt" || { echo "# cairnd did not mount"; tail -20 "$log"; exit 1; }

t_is "$(cat "$mnt/alpha/f1.txt" 2>&1)" "alpha 1" "alpha is served"
t_is "$(ls "$mnt/proj" 2>&1 | sed 's/.*: //')" "Input/output error" "proj (server down, nothing cached): EIO"
t_is "$(ls "$mnt" | tr '\n' ' ')" "alpha om proj " "the root lists all three"
t_is "$(ls "$mnt/om" 2>&1 | sed 's/.*: //')" "Input/output error" "om (no token file): EIO"
mv "$T_DIR/omega.tok.later" "$T_DIR/omega.tok"
om_served() { [ "$(cat "$mnt/om/f1.txt" 2>/dev/null)" = "alpha 1" ]; }
wait_for 15 om_served
t_ok $? "om is served once its token file is there"
t_check "the log says it is retried" wait_for 10 grep -q "volume 'proj' is still not served (.*): next try in" "$log"

# The server comes back on its port.
SRV_ROOT=$T_DIR/srvB VOLD_PORT=${URL_B##*:} vold_restart || exit 99
t0=$(date +%s)
served() { [ "$(cat "$mnt/proj/f1.txt" 2>/dev/null)" = "gamma 1" ]; }
wait_for 25 served
t_ok $? "proj is served without a restart"
t1=$(date +%s)
t_check "within the backoff bound (took $((t1 - t0)) s)" test $((t1 - t0)) -le 20
t_check "one log line says it is back" test "$(grep -c "volume 'proj' is back" "$log")" = 1
t_is "$(ls "$mnt/proj" | tr '\n' ' ')" "f1.txt f2.txt " "it lists"
echo "after retry" >"$mnt/proj/new.txt"
t_is "$(cat "$mnt/proj/new.txt")" "after retry" "it writes"
onsrv() { VC_URL=$URL_B VC_VOL=gamma VC_TOKEN=$(cat "$T_DIR/gamma.tok") vc cat \
	"$(VC_URL=$URL_B VC_VOL=gamma VC_TOKEN=$(cat "$T_DIR/gamma.tok") vc lookup \
	"$(VC_URL=$URL_B VC_VOL=gamma VC_TOKEN=$(cat "$T_DIR/gamma.tok") vc root)" "$1")" 2>/dev/null; }
on_b() { [ "$(onsrv new.txt)" = "after retry" ]; }
wait_for 15 on_b
t_ok $? "the write reached its server"
t_is "$("$FS" listvol -m "$mnt" --json | python3 -c 'import json,sys
print(" ".join(v["dir"]+"="+v["state"]+"/"+str(v["online"]) for v in json.load(sys.stdin)["volumes"]))')" \
	"alpha=connected/True proj=connected/True om=connected/True" "fs listvol: all connected"
t_is "$(cat "$mnt/alpha/f2.txt" 2>&1)" "alpha 2" "alpha still served"
echo "alpha w" >"$mnt/alpha/w.txt"
t_is "$(cat "$mnt/alpha/w.txt" 2>&1)" "alpha w" "alpha still writes"

kill -TERM "$pid"
for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
t_check "SIGTERM stops it" sh -c "! kill -0 $pid 2>/dev/null"
t_check "and unmounts" sh -c "! mountpoint -q '$mnt'"
t_is "$(grep -c "stopped with every change stored on the server" "$log")" 3 \
	"the stop says nothing is left, for each volume"
t_check "cairn-fsck finds the shared cache clean" "$FSCK" --check --quiet "$T_DIR/cache"
t_done
