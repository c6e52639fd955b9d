#!/usr/bin/env bash
# t5055-ns-reload-add: SIGHUP with a new [volume DIR] section: the new
# volume appears in the mount root (the kernel's cached listing and its
# negative entry are invalidated), reads and writes, its writes reach its
# server; the running volumes are untouched. A volume added while its
# server is down answers EIO, then is served once the server is up (the
# retrier). A SIGHUP storm changes nothing more.
. "$top_srcdir/tests/integration/lib.sh"
. "$top_srcdir/tests/integration/lib-ns.sh"
t_need_fuse
t_timeout 180

ns_src "$T_DIR/src-a" alpha 2
ns_src "$T_DIR/src-b" gamma 2
ns_vold A
ns_import alpha "$T_DIR/src-a"
ns_import gamma "$T_DIR/src-b"
ns_vold B
ns_import delta "$T_DIR/src-a"
vold_stop

base() {
	ns_conf_head
	ns_vol alpha "" "$URL_A"
}
base >"$conf"
ns_start

t_is "$(ls "$mnt" | tr '\n' ' ')" "alpha " "one volume at start"
t_is "$(cat "$mnt/proj/f1.txt" 2>&1 | sed 's/.*: //')" "No such file or directory" "proj: ENOENT before the reload"
cd "$mnt/alpha" || exit 1
exec 7<"$mnt/alpha/f1.txt"

{ base; ns_vol proj gamma "$URL_A"; } >"$conf"
kill -HUP "$pid"
t_check "log: the new volume" wait_for 10 grep -q "reload: volume 'proj' is new ('gamma' from $URL_A)" "$log"
served() { [ "$(cat "$mnt/proj/f1.txt" 2>/dev/null)" = "gamma 1" ]; }
wait_for 15 served
t_ok $? "proj reads after the reload (the negative entry is gone)"
t_check "log: it is served" grep -q "volume 'proj' (added by a reload) is served" "$log"
t_is "$(ls "$mnt" | tr '\n' ' ')" "alpha proj " "ls of the mount root shows it"
t_is "$(stat -c %h "$mnt")" 4 "the root's link count follows"
echo "new in proj" >"$mnt/proj/n.txt"
t_is "$(cat "$mnt/proj/n.txt")" "new in proj" "it writes"
on_a() { [ "$(ns_onsrv "$URL_A" gamma "$T_DIR/gamma.tok" n.txt)" = "new in proj" ]; }
wait_for 15 on_a
t_ok $? "its write reached its server"
t_is "$(cat <&7)" "alpha 1" "an open file of alpha is untouched"
t_is "$(cat f2.txt)" "alpha 2" "a process in alpha's directory is untouched"
cd "$T_DIR" || exit 1
exec 7<&-
t_is "$(ns_listvol)" \
	"alpha=connected proj=connected" "fs listvol lists it"

# A volume whose server is down: EIO, then served once it is up.
{ base; ns_vol proj gamma "$URL_A"; ns_vol d delta "$URL_B"; } >"$conf"
kill -HUP "$pid"
t_check "log: d is new" wait_for 10 grep -q "reload: volume 'd' is new" "$log"
# "is new" is logged before the kernel is told the root changed; the
# reload is over at its second "reload done".
reloaded() { [ "$(grep -c 'reload done' "$log")" -ge "$1" ]; }
wait_for 10 reloaded 2
t_is "$(ls "$mnt" | tr '\n' ' ')" "alpha d proj " "d is listed at once"
t_is "$(ls "$mnt/d" 2>&1 | sed 's/.*: //')" "Input/output error" "its server is down: EIO"
ns_vold_restart "$SRV_B" "$URL_B" || exit 99
d_served() { [ "$(cat "$mnt/d/f2.txt" 2>/dev/null)" = "alpha 2" ]; }
wait_for 25 d_served
t_ok $? "d is served once its server is up"
echo "in d" >"$mnt/d/x.txt"
t_is "$(cat "$mnt/d/x.txt")" "in d" "d writes"

# A burst of SIGHUPs with the same config: nothing changes.
for _ in 1 2 3 4 5; do kill -HUP "$pid"; done
sleep 1
t_check "still running" kill -0 "$pid"
t_is "$(ls "$mnt" | tr '\n' ' ')" "alpha d proj " "the same volumes after a SIGHUP burst"
t_is "$(grep -c "reload: volume 'proj' is new" "$log")" 1 "proj was added once"

ns_stop
t_check "SIGTERM stops it" sh -c "! kill -0 $pid 2>/dev/null"
t_check "and unmounts" sh -c "! mountpoint -q '$mnt'"
t_is "$(grep -c "stopped with every change stored on the server" "$log")" 3 \
	"the stop says nothing is left, for each of the three volumes"
t_check "cairn-fsck finds the shared cache clean" "$FSCK" --check --quiet "$T_DIR/cache"
t_done
