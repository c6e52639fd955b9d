#!/usr/bin/env bash
# t5052-ns-restart: the durable state of a cairnd serving several volumes.
#  - kill -9 with changes of two volumes (on two servers) still in their
#    replay logs (writeback, a long delay): the restart replays each
#    volume's log to its own server, nothing lost, nothing mixed;
#  - a start with server B down: its volume, cached before, mounts from
#    the cache (server unreachable) and the others are connected; a volume
#    never cached is left out (EIO for it, "failed" in fs listvol) while
#    the rest are served;
#  - SIGHUP with a new token for one volume (after vos revoke): the mount
#    stays, that volume goes on with the new token;
#  - SIGTERM: a clean stop that says, per volume, that nothing is left.
. "$top_srcdir/tests/integration/lib.sh"
. "$top_srcdir/tests/integration/lib-ns.sh"
t_need_fuse
t_timeout 240

ns_src "$T_DIR/src-a" alpha 3
ns_src "$T_DIR/src-b" gamma 3
ns_vold A
ns_import alpha "$T_DIR/src-a"
ns_vold B
ns_import gamma "$T_DIR/src-b"
ns_create never
# A copy of alpha on server B: the same volume id as on A.
cp -a "$SRV_A/volumes/alpha" "$SRV_ROOT/volumes/alpha" || exit 99
make_token alpha rw "$T_DIR/alpha-b.tok"

writeconf() { # EXTRA-TOP-LEVEL-LINES [EXTRA-SECTIONS]
	{
		ns_conf_head "$1"
		ns_vol alpha "" "$URL_A"
		ns_vol proj gamma "$URL_B"
		[ -z "${2:-}" ] || printf '%s\n' "$2"
	} >"$conf"
}

# --- kill -9 with both volumes' changes in their logs ---
writeconf "write-mode = writeback
writeback-delay = 60s" "$(ns_vol alpha-b alpha "$URL_B" "$T_DIR/alpha-b.tok")"
ns_start
t_check "a volume with another's id is left out" grep -q "volume 'alpha-b' .* has the id .* of volume 'alpha'" "$log"
t_is "$(ls "$mnt/alpha-b" 2>&1 | sed 's/.*: //')" "Input/output error" "its directory: EIO"
t_is "$("$FS" status -m "$mnt" -V alpha-b 2>&1 | sed 's/.*: //')" \
	"the volume could not be opened yet (see the log)" "fs status -V alpha-b says so"
cat "$mnt/alpha/f1.txt" "$mnt/proj/f1.txt" >/dev/null
echo "alpha change" >"$mnt/alpha/new.txt"
echo "gamma change" >"$mnt/proj/new.txt"
echo "gamma edit" >"$mnt/proj/f2.txt"
t_is "$(ns_onsrv "$URL_A" alpha "$T_DIR/alpha.tok" new.txt)" "" "alpha's change is not on server A yet"
t_is "$(ns_onsrv "$URL_B" gamma "$T_DIR/gamma.tok" new.txt)" "" "proj's change is not on server B yet"
ns_kill9
t_check "each volume has its replay log" test -f "$T_DIR/cache/vol/alpha/rlog.tdb" -a -f "$T_DIR/cache/vol/proj/rlog.tdb"
writeconf ""
ns_start
t_is "$(cat "$mnt/proj/f2.txt")" "gamma edit" "after the restart the local view has the edit"
on_a() { [ "$(ns_onsrv "$URL_A" alpha "$T_DIR/alpha.tok" new.txt)" = "alpha change" ]; }
on_b() { [ "$(ns_onsrv "$URL_B" gamma "$T_DIR/gamma.tok" f2.txt)" = "gamma edit" ]; }
wait_for 15 on_a
t_ok $? "alpha's change reached server A"
wait_for 15 on_b
t_ok $? "proj's changes reached server B"
t_is "$(ns_onsrv "$URL_B" gamma "$T_DIR/gamma.tok" new.txt)" "gamma change" "both of them"
t_is "$(ns_onsrv "$URL_A" alpha "$T_DIR/alpha.tok" f2.txt)" "alpha 2" "nothing of proj's went to server A"
t_is "$(ls "$mnt" | tr '\n' ' ')" "alpha proj " "the second start lists what it serves now"
cat "$mnt/proj/f3.txt" >/dev/null
fusermount3 -u "$mnt"
ns_wait_exit

# --- server B down at start ---
kill -KILL "$PID_B"; wait "$PID_B" 2>/dev/null
writeconf "" "$(ns_vol never "" "$URL_B")"
ns_start
t_is "$(cat "$mnt/alpha/f1.txt" 2>&1)" "alpha 1" "alpha served, connected"
t_is "$(cat "$mnt/proj/f3.txt" 2>&1)" "gamma 3" "proj mounted from the cache"
t_is "$(ls "$mnt/never" 2>&1 | sed 's/.*: //')" "Input/output error" "a volume never cached: EIO"
t_is "$(ns_listvol -o)" \
	"alpha=connected/True proj=connected/False never=failed/False" "fs listvol: each volume's state (proj not online)"
t_check "the log says why" grep -q "volume 'never' is not served" "$log"
echo "alpha while B is down" >"$mnt/alpha/w.txt"
t_is "$(ns_onsrv "$URL_A" alpha "$T_DIR/alpha.tok" w.txt)" "alpha while B is down" "alpha stores to server A"

# --- SIGHUP: a new token for alpha ---
old=$(cat "$T_DIR/alpha.tok")
SRV_ROOT=$SRV_A vos revoke alpha >/dev/null || exit 99
SRV_ROOT=$SRV_A make_token alpha rw "$T_DIR/alpha.tok"
kill -HUP "$pid"
t_check "log: alpha's new token read" wait_for 10 grep -q "reload: volume 'alpha': new token read" "$log"
t_check "log: proj's token unchanged" grep -q "reload: volume 'proj': token in '.*' unchanged" "$log"
t_check "same process, still mounted" sh -c "kill -0 $pid && mountpoint -q '$mnt'"
t_is "$(cat "$mnt/alpha/f3.txt" 2>&1)" "alpha 3" "an uncached read in alpha with the new token"
echo "after reload" >"$mnt/alpha/r.txt"
t_is "$(ns_onsrv "$URL_A" alpha "$T_DIR/alpha.tok" r.txt)" "after reload" "a store with the new token"

# --- SIGTERM ---
ns_stop
t_check "SIGTERM stops it" sh -c "! kill -0 $pid 2>/dev/null"
t_check "and unmounts" sh -c "! mountpoint -q '$mnt'"
t_is "$(grep -c "stopped with every change stored on the server" "$log")" 4 \
	"each start's stops said nothing is left (2 at the first clean stop, 2 now)"
t_check "cairn-fsck finds the shared cache clean" "$FSCK" --check --quiet "$T_DIR/cache"
t_done
