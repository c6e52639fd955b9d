#!/usr/bin/env bash
# t2225-cm-compound-crash: cairnd killed (kill -9) in the middle of an
# untar in sync mode, where creates are answered before the server has
# them and go with the file's data and attributes as one batch at close.
# A tar-like writer (O_CREAT|O_EXCL, 10 KiB writes, futimens, fchmod,
# close, as GNU tar does) notes every file whose close returned; cairnd is
# killed at a random point (seed printed; SEED=N replays), restarted on
# the same cache, and left to send what its log holds. Three rounds. Then
# a fresh client must find every file that was closed with its bytes, mode
# and mtime, no conflict copy anywhere and no conflict recorded (an op
# resent after the crash carries its opid: the server applies it once; a
# create resent alone is followed by its store on the DV it gave), and
# a file whose close never returned either absent or holding a prefix of
# its bytes.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 300
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }
N=${N:-300}

vold_start || exit 99
vos init >/dev/null 2>&1
vos create kc >/dev/null || exit 99
make_token kc rw "$T_DIR/tok"
A=$T_DIR/a
cairnd_mount "$A" "$T_DIR/ca" kc "$T_DIR/tok" || exit 1
jst() { "$FS" status --json -m "$A" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }

SEED=${SEED:-$RANDOM}
echo "# seed $SEED"
RANDOM=$SEED
cat >"$T_DIR/writer.py" <<'PY'
import os, random, sys
root, src, n, seed, log = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
random.seed(seed)
# The mount's device: once cairnd is killed its mount point is
# unmounted lazily, and the same paths then name the empty directory
# under it; a file made there was never the mount's (stop).
dev = os.stat(root).st_dev
with open(log, "a", buffering=1) as lg:
    for i in range(n):
        d = "d%d" % (i % 8)
        os.makedirs(os.path.join(root, d), exist_ok=True)
        os.makedirs(os.path.join(src, d), exist_ok=True)
        name = os.path.join(d, "f%04d" % i)
        data = os.urandom(random.randint(1024, 65536))
        mode = random.choice((0o644, 0o640, 0o600))
        mt = 1600000000 + i
        with open(os.path.join(src, name), "wb") as f:
            f.write(data)
        os.chmod(os.path.join(src, name), mode)
        os.utime(os.path.join(src, name), (mt, mt))
        fd = os.open(os.path.join(root, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        if os.fstat(fd).st_dev != dev:
            os.close(fd)
            break
        for off in range(0, len(data), 10240):
            os.write(fd, data[off:off + 10240])
        os.utime(fd, (mt, mt))
        os.fchmod(fd, mode)
        os.close(fd)
        lg.write(name + "\n")
PY

for round in 1 2 3; do
	mkdir -p "$A/r$round" || { echo "# cannot mkdir"; exit 1; }
	python3 "$T_DIR/writer.py" "$A/r$round" "$T_DIR/src/r$round" "$N" "$((SEED + round))" \
		"$T_DIR/closed$round" 2>"$T_DIR/writer$round.err" &
	wpid=$!
	# a random point: 0.3 to 2.2 s into the untar
	sleep "$(( 1 + RANDOM % 2 - 1 )).$(( 3 + RANDOM % 7 ))"
	cairnd_kill9 "$A"
	wait "$wpid" 2>/dev/null
	closed=$(wc -l <"$T_DIR/closed$round" 2>/dev/null || echo 0)
	echo "# round $round: killed after $closed closed files"
	cairnd_mount "$A" "$T_DIR/ca" kc "$T_DIR/tok" || exit 1
	wait_eval 30 '[ "$(jst replay_pending)" = 0 ]'
	t_is "$(jst replay_pending)|$(jst conflicts)" "0|0" "round $round: the log drained after the restart, no conflict"
done
sleep 1

C=$T_DIR/c
cairnd_mount "$C" "$T_DIR/cc" kc "$T_DIR/tok" || exit 1
bad=0 partial=0 nclosed=0
for round in 1 2 3; do
	while read -r f; do
		nclosed=$((nclosed + 1))
		s=$T_DIR/src/r$round/$f
		m=$C/r$round/$f
		if ! cmp -s "$s" "$m" || [ "$(stat -c '%a %Y' "$s")" != "$(stat -c '%a %Y' "$m" 2>&1)" ]; then
			echo "# closed but wrong on the server: r$round/$f"
			bad=$((bad + 1))
		fi
	done <"$T_DIR/closed$round"
	# Files written but not closed: absent, or a prefix of their bytes.
	for m in $(cd "$C/r$round" && find . -type f | sed 's|^\./||'); do
		grep -qx "$m" "$T_DIR/closed$round" && continue
		s=$T_DIR/src/r$round/$m
		sz=$(stat -c %s "$C/r$round/$m")
		if [ ! -e "$s" ] || ! cmp -s -n "$sz" "$s" "$C/r$round/$m"; then
			echo "# unclosed file not a prefix: r$round/$m"
			bad=$((bad + 1))
		fi
		partial=$((partial + 1))
	done
done
echo "# $nclosed closed files checked, $partial unclosed ones found on the server"
t_ok "$([ "$nclosed" -gt 0 ] && echo 0 || echo 1)" "some files were closed before the kills"
t_is "$bad" 0 "every closed file is on the server with its bytes, mode and mtime"
t_is "$(find "$C" -name '*.conflict-*' | wc -l)" 0 "no conflict copy"
cairnd_umount "$C"
cairnd_umount "$A"
t_done
