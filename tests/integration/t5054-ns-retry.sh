#!/usr/bin/env bash
# t5054-ns-retry: a volume whose server is down at start (and of which
# the cache holds nothing) is left out, its directory answers EIO; the
# retrier (daemon_ns.c) tries it again in the background, and once the
# server is back the volume is served without a restart: it lists, reads
# and writes, and what it writes reaches its server. The other volume is
# served all along. A volume left out for a missing token file is served
# once the file is there.
. "$top_srcdir/tests/integration/lib.sh"
. "$top_srcdir/tests/integration/lib-ns.sh"
t_need_fuse
t_timeout 180

ns_src "$T_DIR/src-a" alpha 2
ns_src "$T_DIR/src-b" gamma 2
ns_vold A
ns_import alpha "$T_DIR/src-a"
ns_import omega "$T_DIR/src-a" "$T_DIR/omega.tok.later"
ns_vold B
ns_import gamma "$T_DIR/src-b"
vold_stop

{
	ns_conf_head
	ns_vol alpha "" "$URL_A"
	ns_vol proj gamma "$URL_B"
	ns_vol om omega "$URL_A"
} >"$conf"
ns_start

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
ns_vold_restart "$SRV_B" "$URL_B" || exit 99
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
on_b() { [ "$(ns_onsrv "$URL_B" gamma "$T_DIR/gamma.tok" new.txt)" = "after retry" ]; }
wait_for 15 on_b
t_ok $? "the write reached its server"
t_is "$(ns_listvol -o)" \
	"alpha=connected/True proj=connected/True om=connected/True" "fs listvol: all connected"
t_is "$(cat "$mnt/alpha/f2.txt" 2>&1)" "alpha 2" "alpha still served"
echo "alpha w" >"$mnt/alpha/w.txt"
t_is "$(cat "$mnt/alpha/w.txt" 2>&1)" "alpha w" "alpha still writes"

ns_stop
t_check "SIGTERM stops it" sh -c "! kill -0 $pid 2>/dev/null"
t_check "and unmounts" sh -c "! mountpoint -q '$mnt'"
t_is "$(grep -c "stopped with every change stored on the server" "$log")" 3 \
	"the stop says nothing is left, for each volume"
t_check "cairn-fsck finds the shared cache clean" "$FSCK" --check --quiet "$T_DIR/cache"
t_done
