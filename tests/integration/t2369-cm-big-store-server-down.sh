#!/usr/bin/env bash
# t2369-cm-big-store-server-down: a file bigger than a store's inline
# bytes (64 KiB) written and closed on a connected mount (sync mode)
# whose server is down. The close's store stages its chunks with PUTs
# first; when they get no answer the store goes as its op would without
# one: the mount disconnects (auto) and the store, with the file's held
# create before it and the attributes set while it was written after
# it, stays in the replay log for the reintegration; the close succeeds.
# Before (session 14's known gap), the staging failure ended the store
# with EIO and dropped its record, while the held create, given back,
# went alone: the server got an empty file, the mount showed the bytes,
# and nothing stored them until a later flush or the next start. The
# contract (as for small files, t2368): the change fails and the server
# never gets it, or it succeeds and reaches the server exactly once.
#   1. cp of a new 1 MB file (held create + store), right after a start
#      with the server down;
#   2. an existing file rewritten (700 KB) with an fchmod before the
#      close (store + setattr), the server stopped under a connected
#      mount;
#   3. a new file (300 KB) with an fchmod before the close (held create,
#      store, setattr), then kill -9 of cairnd while disconnected and a
#      restart with the server still down: the records wait and the
#      bytes read from the cache.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 300
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }

vol_setup bg
mnt=$T_DIR/mnt
cache=$T_DIR/cache
tok=$T_DIR/tok
jget() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get(sys.argv[1], ""))' "$1"; }
stat_of() { "$FS" status --json -m "$mnt" 2>/dev/null | jget "$1"; }
drained() { [ "$(stat_of mode)" = connected ] && [ "$(stat_of replay_pending)" = 0 ]; }
back() { # the server back, fs reconnect if needed, the log drained
	vold_restart || exit 99
	[ "$(stat_of mode)" = disconnected ] && "$FS" reconnect -m "$mnt" >/dev/null 2>&1
	wait_for 60 drained
}
# write FILE SRC [MODE]: one open (O_TRUNC), the bytes of SRC, an
# fchmod to MODE (octal) before the close if given.
write() {
	python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, open(sys.argv[2], "rb").read())
if len(sys.argv) > 3:
    os.fchmod(fd, int(sys.argv[3], 8))
os.close(fd)' "$@" 2>/dev/null
}
n_fresh=0
fresh_mount() {
	n_fresh=$((n_fresh + 1))
	F=$T_DIR/fresh
	cairnd_mount "$F" "$T_DIR/cache-fresh$n_fresh" bg "$tok" || exit 1
}
# data_events PATH: stores the server applied to PATH under the fresh mount $F.
data_events() { vol_data_events bg "$tok" "$F" "$1"; }
# check R PATH SRC RC [MODE]: on the server (a fresh mount), what the
# close did if it succeeded (the bytes, stored once, MODE), else nothing.
check() {
	local r=$1 p=$2 src=$3 rc=$4 mode=${5:-}
	fresh_mount
	if [ "$rc" = 0 ]; then
		cmp -s "$src" "$F/$p"
		t_ok $? "$r: the close succeeded and the server has the bytes"
		[ -n "$mode" ] && t_is "$(stat -c %a "$F/$p")" "$mode" "$r: and the mode set before the close"
		t_is "$(data_events "$p")" "${want_stores:-1}" "$r: its store was applied once"
	else
		t_ok "$([ -e "$F/$p" ]; echo $((!$?)))" "$r: the close failed and the server has no such file"
	fi
	t_is "$("$FS" conflicts -m "$mnt" 2>&1)" "no conflicts" "$r: no conflict"
	t_is "$(ls "$mnt/d" | grep -c conflict)" 0 "$r: no conflict copy"
	cairnd_umount "$F"
}

cairnd_mount "$mnt" "$cache" bg "$tok" || exit 1
mkdir "$mnt/d"
ls "$mnt/d" >/dev/null
cairnd_umount "$mnt"

# --- 1: a start with the server down, cp of a new file ----------------
vold_stop
cairnd_mount "$mnt" "$cache" bg "$tok" --fetch-timeout 2s || exit 1
head -c 1000000 /dev/urandom >"$T_DIR/big"
cp "$T_DIR/big" "$mnt/d/big" 2>/dev/null
rc=$?
echo "# r1: cp rc=$rc, mode $(stat_of mode)"
t_is "$rc $(stat_of mode) $(stat_of manual)" "0 disconnected False" \
	"r1: the close succeeded, the mount disconnected by itself"
cmp -s "$T_DIR/big" "$mnt/d/big"
t_ok $? "r1: the mount reads the bytes while disconnected"
sleep 3 # what a held create's second try would do, and its deadline
back
t_ok $? "r1: connected again and drained"
check r1 d/big "$T_DIR/big" "$rc"

# --- 2: an existing file rewritten, fchmod before the close -----------
head -c 700000 /dev/urandom >"$T_DIR/old"
echo small >"$T_DIR/small"
write "$mnt/d/old" "$T_DIR/small" # one store (a shell redirection: two)
vold_stop
write "$mnt/d/old" "$T_DIR/old" 600
rc=$?
echo "# r2: write rc=$rc, mode $(stat_of mode)"
t_is "$rc $(stat_of mode)" "0 disconnected" "r2: the close succeeded, the mount disconnected"
cmp -s "$T_DIR/old" "$mnt/d/old"
t_ok $? "r2: the mount reads the new bytes while disconnected"
t_is "$(stat -c %a "$mnt/d/old")" 600 "r2: and shows the mode"
back
t_ok $? "r2: connected again and drained"
want_stores=2 check r2 d/old "$T_DIR/old" "$rc" 600

# --- 3: a new file with fchmod, then kill -9 while disconnected -------
head -c 300000 /dev/urandom >"$T_DIR/new"
vold_stop
write "$mnt/d/new" "$T_DIR/new" 640
rc=$?
echo "# r3: write rc=$rc, mode $(stat_of mode)"
t_is "$rc $(stat_of mode)" "0 disconnected" "r3: the close succeeded, the mount disconnected"
"$FS" replaylog -m "$mnt" 2>&1 | sed 's/^/# /'
cairnd_kill9 "$mnt"
cairnd_mount "$mnt" "$cache" bg "$tok" --fetch-timeout 2s || exit 1
cmp -s "$T_DIR/new" "$mnt/d/new"
t_ok $? "r3: after kill -9 and a restart with the server down: the bytes read"
t_is "$(stat -c %a "$mnt/d/new")" 640 "r3: and the mode"
back
t_ok $? "r3: connected again and drained"
check r3 d/new "$T_DIR/new" "$rc" 640
cmp -s "$T_DIR/big" "$mnt/d/big" && cmp -s "$T_DIR/old" "$mnt/d/old"
t_ok $? "the earlier files read the same on the mount"
cairnd_umount "$mnt"
t_done
