#!/usr/bin/env bash
# t4087-cm-trunc-starved: a READ answered short during a truncation waits
# until the truncating thread has run, however long the machine keeps it
# waiting (doc/cm.md "Pages of zeros"). The kernel takes a truncation's
# new size in the truncating thread, after cairnd's answer; a READ sent
# for the old size and answered short before that makes pages of zeros
# its readers then read up to the old size. cairnd holds such a READ for
# FOPS_TRUNC_GRACE_MS after the answer, and past it for as long as the
# thread is still runnable (it has not run since). Here the writer is
# starved on purpose: nice 19 on a CPU of its own with two busy loops,
# so that it waits hundreds of ms for the CPU after each answer, as a
# writer on a loaded 2-core machine sometimes does (CI). It rewrites one
# file again and again (ftruncate to 0, then 64 KiB writes); two readers
# pread it through held descriptors, a third opens it at each read. Sync
# and writeback mounts. STARVE_SECS sets each mode's length, SEED
# replays, STARVE_MODES picks the mounts.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
[ "$(nproc)" -ge 2 ] || { echo "# SKIP: needs 2 CPUs (one to starve the writer on)"; exit 77; }
t_timeout 200
SECS=${STARVE_SECS:-10}
SEED=${SEED:-$RANDOM}
MODES=${STARVE_MODES:-sync writeback}
echo "# seed $SEED, $SECS s per mode"
export PYTHONPATH="$top_srcdir/tests/integration${PYTHONPATH:+:$PYTHONPATH}"

cat >"$T_DIR/st.py" <<'PY'
import os, random, sys, time
from verlines import CHUNK, check, content, read_loop

cmd, path = sys.argv[1], sys.argv[2]
if cmd == "init":
    with open(path, "wb") as fh:
        fh.write(content(0, 0, 3 * CHUNK - 4321))
elif cmd == "hog":  # stopfile
    os.sched_setaffinity(0, {0})
    while not os.path.exists(path):
        for _ in range(200000):
            pass
elif cmd == "write":  # path secs seed
    # CPU 0 with the two hogs, at the lowest priority: after each answer
    # it waits for the CPU far longer than the grace.
    os.sched_setaffinity(0, {0})
    os.nice(19)
    secs, rnd = float(sys.argv[3]), random.Random(int(sys.argv[4]))
    end = time.time() + secs
    fd = os.open(path, os.O_WRONLY)
    v = 0
    call = ""
    try:
        while time.time() < end:
            v += 1
            size = rnd.randrange(4096, 3 * CHUNK + 1)
            data = content(0, v, size)
            call = "ftruncate"
            os.ftruncate(fd, 0)
            for off in range(0, size, 65536):
                call = "pwrite at %d" % off
                os.pwrite(fd, data[off:off + 65536], off)
        call = "close"
        os.close(fd)
    except OSError as e:
        print(v - 1)
        print("writer: version %d: %s: %s" % (v, call, e), file=sys.stderr)
        sys.exit(1)
    print(v)
elif cmd in ("hold", "read"):  # path stopfile outfile
    # the CPUs other than the writer's
    os.sched_setaffinity(0, set(range(1, os.cpu_count())))
    read_loop(cmd, path, sys.argv[3], sys.argv[4], lambda d: check(d, 0))
PY

vold_start || exit 99
vos init >/dev/null 2>&1
vos create wk >/dev/null || exit 99
make_token wk rw "$T_DIR/tok"
for mode in $MODES; do
	A=$T_DIR/$mode
	cairnd_mount "$A" "$T_DIR/c-$mode" wk "$T_DIR/tok" --write-mode "$mode" || exit 1
	mkdir -p "$A/$mode" || exit 1
	F=$A/$mode/f
	python3 "$T_DIR/st.py" init "$F" || exit 1
	stop=$T_DIR/stop.$mode
	held0=$(cm_stat "$A" reads_held)
	pids=""
	for h in 1 2; do
		python3 "$T_DIR/st.py" hog "$stop" &
		pids="$pids $!"
		t_track_pid "$!"
	done
	for r in h1 h2 r1; do
		kind=hold
		[ "$r" = r1 ] && kind=read
		python3 "$T_DIR/st.py" "$kind" "$F" "$stop" "$T_DIR/$r.$mode" &
		pids="$pids $!"
		t_track_pid "$!"
	done
	python3 "$T_DIR/st.py" write "$F" "$SECS" "$SEED" >"$T_DIR/w.$mode" \
		2>"$T_DIR/we.$mode"
	touch "$stop"
	# shellcheck disable=SC2086
	wait $pids
	set -- $(cat "$T_DIR"/[hr][12]."$mode" | awk '{ r += $1; b += $2 } END { print r + 0, b + 0 }')
	held=$(cm_stat "$A" reads_held)
	held=$(( ${held:-0} - ${held0:-0} ))
	echo "# $mode: $(head -1 "$T_DIR/w.$mode") versions, $1 reads, $2 bad, $held reads held"
	cat "$T_DIR"/[hr][12]."$mode".log | head -6 | sed 's/^/#   /'
	t_is "$(cat "$T_DIR/we.$mode")" "" "$mode: the writer's calls all succeeded"
	t_ok "$([ "$(head -1 "$T_DIR/w.$mode")" -gt 2 ] 2>/dev/null && echo 0 || echo 1)" "$mode: the writer wrote versions"
	# the premise: READs came back short during truncations and were held
	t_ok "$([ "${1:-0}" -gt 0 ] && [ "$held" -gt 0 ] && echo 0 || echo 1)" "$mode: the readers read ($1 reads) and raced the truncations ($held held)"
	t_is "${2:-x}" 0 "$mode: no read of a NUL byte or a foreign line"
	cairnd_umount "$A"
done
t_done
