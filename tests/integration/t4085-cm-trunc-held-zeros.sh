#!/usr/bin/env bash
# t4085-cm-trunc-held-zeros: readers that hold a file open while another
# process truncates and rewrites it never read pages of zeros. One writer
# rewrites one file of 1 to 3 chunks again and again: an O_TRUNC open,
# 10 or 64 KiB writes, half the time an ftruncate to 0 and a second
# version through the same descriptor (a truncating setattr over bytes
# not stored yet), sometimes an fsync, close. Three readers hold
# descriptors open and pread the whole file in a loop (the kernel's page
# cache across the writer's opens), a fourth opens it at each read; the
# attributes they ask for between reads are what keeps the kernel from
# taking a READ answered short as the end of the file (fuse_short_read():
# attributes came in since it sent the READ), so it keeps its size and
# the zeros it filled the pages with. No version holds a NUL byte and
# the writer leaves no hole: a NUL read is such a page (doc/cm.md "Pages
# of zeros"), the one client never conflicts with itself, and no call
# of its writer fails (an ftruncate's EIO in writeback: doc/cm.md "Our
# own store's event"). Sync and writeback mounts. TRUNC_SECS sets each
# run's length, SEED replays, TRUNC_MODES picks the mounts, TRUNC_READERS the
# readers (h1 h2 h3 hold, r1 opens).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 240
SECS=${TRUNC_SECS:-15}
SEED=${SEED:-$RANDOM}
MODES=${TRUNC_MODES:-sync writeback}
READERS=${TRUNC_READERS:-h1 h2 h3 r1}
echo "# seed $SEED, $SECS s per mode"
export PYTHONPATH="$top_srcdir/tests/integration${PYTHONPATH:+:$PYTHONPATH}"

cat >"$T_DIR/hz.py" <<'PY'
import os, random, sys, time
from verlines import CHUNK, check, content, read_loop

cmd, path = sys.argv[1], sys.argv[2]
if cmd == "init":
    with open(path, "wb") as fh:
        fh.write(content(0, 0, 3 * CHUNK - 4321))
elif cmd == "write":  # path secs seed
    secs, rnd = float(sys.argv[3]), random.Random(int(sys.argv[4]))
    end = time.time() + secs
    v = 0
    call = ""
    try:
        while time.time() < end:
            v += 1
            size = rnd.randrange(1024, 3 * CHUNK + 1)
            call = "open(O_TRUNC)"
            fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
            # half the time a second version through the same
            # descriptor, cut by an ftruncate (a setattr of the size,
            # its bytes not stored yet)
            for again in range(1 + (rnd.random() < 0.5)):
                if again:
                    v += 1
                    size = rnd.randrange(1024, 3 * CHUNK + 1)
                    call = "ftruncate"
                    os.ftruncate(fd, 0)
                data = content(0, v, size)
                step = rnd.choice((10240, 65536))
                for off in range(0, size, step):
                    call = "pwrite at %d" % off
                    os.pwrite(fd, data[off:off + step], off)
                if rnd.random() < 0.2:
                    call = "fsync"
                    os.fsync(fd)
            call = "close"
            os.close(fd)
    except OSError as e:
        # the versions written before it, then the error
        print(v - 1)
        print("writer: version %d: %s: %s" % (v, call, e), file=sys.stderr)
        sys.exit(1)
    print(v)
elif cmd in ("hold", "read"):  # path stopfile outfile
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
	python3 "$T_DIR/hz.py" init "$F" || exit 1
	stop=$T_DIR/stop.$mode
	pids=""
	for r in $READERS; do
		kind=hold
		[ "$r" = r1 ] && kind=read
		python3 "$T_DIR/hz.py" "$kind" "$F" "$stop" "$T_DIR/$r.$mode" &
		pids="$pids $!"
		t_track_pid "$!"
	done
	python3 "$T_DIR/hz.py" write "$F" "$SECS" "$SEED" >"$T_DIR/w.$mode" \
		2>"$T_DIR/we.$mode"
	wrc=$?
	touch "$stop"
	# shellcheck disable=SC2086
	wait $pids
	set -- $(cat "$T_DIR"/[hr][123]."$mode" | awk '{ r += $1; b += $2 } END { print r + 0, b + 0 }')
	echo "# $mode: $(cat "$T_DIR/w.$mode") versions, $1 reads, $2 bad"
	cat "$T_DIR"/[hr][123]."$mode".log | head -10 | sed 's/^/#   /'
	t_ok "$([ "$(cat "$T_DIR/w.$mode")" -gt 0 ] 2>/dev/null && echo 0 || echo 1)" "$mode: the writer wrote versions"
	# a file this client alone writes: no call of the writer fails (an
	# ftruncate's EIO in writeback: doc/cm.md, "Our own store's event")
	t_is "$wrc $(cat "$T_DIR/we.$mode")" "0 " "$mode: no call of the writer failed"
	t_ok "$([ "${1:-0}" -gt 0 ] && echo 0 || echo 1)" "$mode: the readers read ($1 reads)"
	t_is "${2:-x}" 0 "$mode: no read of a NUL byte or a foreign line"
	# one client: none of its changes may conflict with another of them
	# (writeback: a store sent on the base DV its write state kept, t4084)
	set -- $(cm_stat "$A" conflicts)
	grep 'conflict:' "$T_DIR/cairnd-$mode.log" | head -3 | sed 's/^/#   /'
	t_is "${1:-x}" 0 "$mode: no conflict of the client with itself"
	cairnd_umount "$A"
done
t_done
