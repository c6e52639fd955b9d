#!/usr/bin/env bash
# t5056-ns-reload-remove: SIGHUP without a volume's section.
#  - an unused volume: gone from the mount root's listing, a lookup is
#    ENOENT, fs listvol says "removed";
#  - one with a file not yet stored and records in its replay log
#    (writeback, a long delay) and a process whose cwd is inside: the
#    log says what is kept, its replay log stays on disk, the process
#    keeps reading and writing there;
#  - listed again by the next SIGHUP: it is back with its change;
#  - removed again and kill -9: the next start that lists it replays its
#    log to its server, nothing lost.
. "$top_srcdir/tests/integration/lib.sh"
. "$top_srcdir/tests/integration/lib-ns.sh"
t_need_fuse
t_timeout 180

ns_src "$T_DIR/src" file 2
ns_vold
for v in alpha gamma omega; do ns_import $v "$T_DIR/src"; done

writeconf() { # VOLUMES...
	{
		ns_conf_head "write-mode = writeback" "writeback-delay = 60s"
		for v in "$@"; do ns_vol "$v" "" "$VOLD_URL"; done
	} >"$conf"
}
onsrv() { ns_onsrv "$VOLD_URL" "$1" "$T_DIR/$1.tok" "$2"; } # VOL FILE

writeconf alpha gamma omega
ns_start
t_is "$(ls "$mnt" | tr '\n' ' ')" "alpha gamma omega " "three volumes"
cat "$mnt/omega/f1.txt" >/dev/null

# --- an unused volume ---
writeconf alpha gamma
kill -HUP "$pid"
t_check "log: omega removed, nothing waiting" wait_for 10 grep -q "reload: volume 'omega' is removed from the mount root; nothing of it is waiting" "$log"
t_is "$(ls "$mnt" | tr '\n' ' ')" "alpha gamma " "gone from ls"
t_is "$(stat -c %h "$mnt")" 4 "the root's link count follows"
t_is "$(ls "$mnt/omega" 2>&1 | sed 's/.*: //')" "No such file or directory" "a lookup: ENOENT"
t_is "$(cat "$mnt/omega/f1.txt" 2>&1 | sed 's/.*: //')" "No such file or directory" "a path inside: ENOENT"
t_is "$(ns_listvol)" "alpha=connected gamma=connected omega=removed" "fs listvol: removed"

# --- a volume with a file not stored, records and a process inside ---
echo "gamma change" >"$mnt/gamma/new.txt"
t_is "$(onsrv gamma new.txt)" "" "not on the server yet (writeback, 60 s)"
mkfifo "$T_DIR/in.fifo"
( cd "$mnt/gamma" && exec 8<"$T_DIR/in.fifo" && read -r _ <&8 && cat f2.txt >"$T_DIR/inside.out" && echo "from inside" >inside.txt && cat inside.txt >>"$T_DIR/inside.out" ) &
inpid=$!
exec 9>"$T_DIR/in.fifo"
sleep 0.3
writeconf alpha
kill -HUP "$pid"
t_check "log: gamma removed, its changes kept" wait_for 10 grep -q "reload: volume 'gamma' is removed from the mount root; its [0-9]* files not stored and [1-9][0-9]* changes in the replay log are kept in '.*/vol/gamma'" "$log"
t_is "$(ls "$mnt" | tr '\n' ' ')" "alpha " "gone from ls"
t_is "$(cat "$mnt/gamma/new.txt" 2>&1 | sed 's/.*: //')" "No such file or directory" "a new lookup: ENOENT"
t_check "its replay log is on disk" test -s "$T_DIR/cache/vol/gamma/rlog.tdb"
echo go >&9
exec 9>&-
wait "$inpid"
t_is "$(cat "$T_DIR/inside.out" 2>&1 | tr '\n' '|')" "file 2|from inside|" "a process inside keeps reading and writing"

# --- listed again ---
writeconf alpha gamma
kill -HUP "$pid"
t_check "log: gamma listed again" wait_for 10 grep -q "reload: volume 'gamma' is listed again" "$log"
t_is "$(ls "$mnt" | tr '\n' ' ')" "alpha gamma " "back in ls"
t_is "$(cat "$mnt/gamma/new.txt" 2>&1)" "gamma change" "with its change"
t_is "$(cat "$mnt/gamma/inside.txt" 2>&1)" "from inside" "and what was written inside meanwhile"

# --- removed again, kill -9, restart listing it ---
writeconf alpha
kill -HUP "$pid"
wait_for 10 sh -c "[ \$(grep -c \"reload: volume 'gamma' is removed\" '$log') = 2 ]"
t_ok $? "removed again"
t_is "$(onsrv gamma new.txt)" "" "still not on the server"
ns_kill9
t_check "its replay log survived" test -s "$T_DIR/cache/vol/gamma/rlog.tdb"
writeconf alpha gamma
sed -i 's/^writeback-delay = 60s/writeback-delay = 1s/' "$conf"
ns_start
t_is "$(cat "$mnt/gamma/new.txt" 2>&1)" "gamma change" "the next start has the change"
on_srv() { [ "$(onsrv gamma new.txt)" = "gamma change" ] && [ "$(onsrv gamma inside.txt)" = "from inside" ]; }
wait_for 20 on_srv
t_ok $? "and sends it to the server: nothing lost"
ns_stop
t_check "SIGTERM stops it" sh -c "! kill -0 $pid 2>/dev/null"
t_check "cairn-fsck finds the shared cache clean" "$FSCK" --check --quiet "$T_DIR/cache"
t_done
