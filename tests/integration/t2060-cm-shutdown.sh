#!/usr/bin/env bash
# t2060-cm-shutdown: termination signals that arrive while cairnd shuts
# down (after the first SIGTERM, or after an unmount) must not cut the
# clean close of the chunk store short: cairn-fsck finds the cache clean
# (was_clean) and cairnd exits 0. A burst of SIGHUP (reload) leaves it
# mounted. Signals are sent in a burst until cairnd
# is gone, so some land in every step of the shutdown.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 180

src=$T_DIR/src
mkdir -p "$src"
head -c $((3 * 1024 * 1024 + 17)) /dev/urandom >"$src/big.bin"
echo small >"$src/small.txt"
vold_start || exit 99
vos init >/dev/null 2>&1
vos import sd "$src" >/dev/null || exit 99
make_token sd ro "$T_DIR/tok"
mnt=$T_DIR/mnt
cache=$T_DIR/cache

# Send SIG to PID back to back until it exits (at most 200000 signals,
# a few seconds); print how many were sent.
burst() { # SIG PID
	local n=0
	while [ "$n" -lt 200000 ] && kill -s "$1" "$2" 2>/dev/null; do
		n=$((n + 1))
	done
	echo "$n"
}
# was_clean from cairn-fsck --json, and its exit status.
fsck_clean() {
	"$FSCK" --json "$cache" >"$T_DIR/fsck.json" 2>>"$T_DIR/fsck.err"
	echo "$? $(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("was_clean"))' "$T_DIR/fsck.json" 2>/dev/null)"
}

run() { # HOW DESC: mount, read, stop with a burst, check
	local how=$1 desc=$2 pid n st alive
	cairnd_mount "$mnt" "$cache" sd "$T_DIR/tok" || exit 99
	pid=$(cairnd_pid "$mnt")
	t_check "$desc: read through the mount" cmp "$mnt/big.bin" "$src/big.bin"
	case $how in
	term) kill -TERM "$pid"; n=$(burst TERM "$pid") ;;
	hup)
		# SIGHUP reloads (cairnd(8)): a burst must leave the mount
		# up and working; then a SIGTERM burst stops it.
		n=0
		while [ "$n" -lt 20000 ] && kill -HUP "$pid" 2>/dev/null; do
			n=$((n + 1))
		done
		sleep 1
		t_check "$desc: still running after $n SIGHUPs" kill -0 "$pid"
		t_check "$desc: mount still reads" cmp "$mnt/small.txt" "$src/small.txt"
		kill -TERM "$pid"; n=$(burst TERM "$pid") ;;
	umount) fusermount3 -u "$mnt"; n=$(burst TERM "$pid") ;;
	esac
	# Bounded: a cairnd that ignored the whole burst gets 10 s more, then
	# SIGKILL (and fails below), so the wait cannot hang.
	alive=0
	if ! wait_for 10 sh -c "! kill -0 $pid"; then
		alive=1
		kill -9 "$pid" 2>/dev/null
	fi
	wait "$pid" 2>/dev/null
	st=$?
	t_is "$alive" 0 "$desc: cairnd exited ($n more signals)"
	t_is "$st" 0 "$desc: exit status 0"
	mountpoint -q "$mnt" && fusermount3 -uz "$mnt"
	t_is "$(fsck_clean)" "0 True" "$desc: cairn-fsck says clean"
	: >"$T_DIR/cairnd-mnt.log"
}

for i in 1 2 3; do
	run term "SIGTERM burst #$i"
done
run hup "SIGHUP burst, then SIGTERM"
run umount "unmount, then a SIGTERM burst"

# The cache is still good: a new mount reads from it.
cairnd_mount "$mnt" "$cache" sd "$T_DIR/tok" || exit 99
t_check "remount reads the file" cmp "$mnt/big.bin" "$src/big.bin"
t_is "$(getfattr --only-values -n cairn.stats "$mnt" | awk '$1 == "chunks_fetched" {print $2}')" 0 "no chunk fetched again"
cairnd_umount "$mnt"
t_done
