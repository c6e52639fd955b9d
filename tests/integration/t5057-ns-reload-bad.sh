#!/usr/bin/env bash
# t5057-ns-reload-bad: hostile configs on SIGHUP leave the running set of
# volumes as it is, with a clear log line each: a syntax error, a second
# [volume alpha] section that moves it to another server, a changed
# volume name, a bad server URL, no [volume] section at all. A token
# change still works after them; kill -9 right after a SIGHUP leaves a
# cache the next start serves.
. "$top_srcdir/tests/integration/lib.sh"
. "$top_srcdir/tests/integration/lib-ns.sh"
t_need_fuse
t_timeout 180

ns_src "$T_DIR/src" file 1
ns_vold
for v in alpha gamma omega; do ns_import $v "$T_DIR/src"; done

good() {
	ns_conf_head
	ns_vol alpha "" "$VOLD_URL"
	ns_vol proj gamma "$VOLD_URL"
}
newsect=$(ns_vol extra omega "$VOLD_URL")
good >"$conf"
ns_start
cat "$mnt/alpha/f1.txt" "$mnt/proj/f1.txt" >/dev/null
unchanged() { # WHAT
	t_check "$1: still running" kill -0 "$pid"
	t_is "$(ls "$mnt" | tr '\n' ' ')" "alpha proj " "$1: the same volumes"
	t_is "$(cat "$mnt/alpha/f1.txt" "$mnt/proj/f1.txt" 2>&1 | tr '\n' '|')" "file 1|file 1|" "$1: both read"
	t_is "$(ls "$mnt/extra" 2>&1 | sed 's/.*: //')" "No such file or directory" "$1: nothing half-applied"
}
logged() { # TEXT: a reload after $before, and TEXT in the log
	[ "$(grep -c "SIGHUP: reloading" "$log")" -gt "$before" ] &&
		[ "$(grep -c "reload done\|reload failed\|reload refused" "$log")" -gt "$ends" ] &&
		grep -qF -- "$1" "$log"
}
hup() { # EXPECTED-LOG-TEXT
	before=$(grep -c "SIGHUP: reloading" "$log")
	ends=$(grep -c "reload done\|reload failed\|reload refused" "$log")
	kill -HUP "$pid"
	wait_for 10 logged "$1"
}

# A syntax error.
{ good; echo "$newsect"; echo "[volume broken"; } >"$conf"
hup "reload failed, the running settings stay"
t_ok $? "syntax error: the log says the reload failed"
unchanged "syntax error"

# A second [volume alpha] moving it to another server.
{ good; echo "$newsect"; printf '[volume alpha]\nserver = http://127.0.0.1:1\n'; } >"$conf"
hup "reload: volume 'alpha' is now 'alpha' from http://127.0.0.1:1 (was 'alpha' from $VOLD_URL): changing a running volume's server or volume needs a restart"
t_ok $? "a duplicate section that moves alpha: refused, the log names it"
unchanged "duplicate section"

# A changed volume name.
{ good | sed 's/^volume = gamma$/volume = alpha/'; echo "$newsect"; } >"$conf"
hup "reload: volume 'proj' is now 'alpha' from $VOLD_URL (was 'gamma' from $VOLD_URL): changing a running volume's server or volume needs a restart"
t_ok $? "proj's volume name changed: refused"
unchanged "changed volume name"

# A bad server URL.
{ good; printf '[volume extra]\nserver = ftp://nowhere\ntoken = %s\n' "$T_DIR/gamma.tok"; } >"$conf"
hup "server must be an http:// or https:// URL"
t_ok $? "a bad server URL: refused, the log names it"
unchanged "bad URL"

# No [volume] section.
good | sed -n '1,4p' >"$conf"
hup "no server given"
t_ok $? "no [volume] left: refused"
unchanged "no volumes"

# After all that, a good reload still applies.
{ good; echo "$newsect"; } >"$conf"
kill -HUP "$pid"
extra() { [ "$(cat "$mnt/extra/f1.txt" 2>/dev/null)" = "file 1" ]; }
t_is "$(grep -c "reload refused, the running settings stay" "$log")" 2 "two reloads were refused so far"
t_is "$(grep -c "reload failed, the running settings stay" "$log")" 3 "three did not load"
wait_for 15 extra
t_ok $? "a good reload after them adds the volume"

# A removed volume listed again with another server: refused too (its
# slot, caches and replay log are the old server's).
good >"$conf"
hup "reload: volume 'extra' is removed from the mount root"
t_ok $? "extra removed"
{ good; printf '[volume extra]\nvolume = omega\nserver = http://127.0.0.1:1\ntoken = %s\n' "$T_DIR/omega.tok"; } >"$conf"
hup "reload: volume 'extra' is now 'omega' from http://127.0.0.1:1 (was 'omega' from $VOLD_URL)"
t_ok $? "listed again with another server: refused"
t_is "$(ls "$mnt" | tr '\n' ' ')" "alpha proj " "it stays removed"

# kill -9 right after a SIGHUP.
good >"$conf"
kill -HUP "$pid"; ns_kill9
ns_start
t_is "$(ls "$mnt" | tr '\n' ' ')" "alpha proj " "the next start serves the config's volumes"
t_is "$(cat "$mnt/alpha/f1.txt" "$mnt/proj/f1.txt" 2>&1 | tr '\n' '|')" "file 1|file 1|" "and reads them"
ns_stop
t_check "SIGTERM stops it" sh -c "! kill -0 $pid 2>/dev/null"
t_check "cairn-fsck finds the shared cache clean" "$FSCK" --check --quiet "$T_DIR/cache"
t_done
