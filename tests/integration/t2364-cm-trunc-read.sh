#!/usr/bin/env bash
# t2364-cm-trunc-read: a reader racing O_TRUNC rewrites never reads zeros
# that were never written. A writer rewrites files of 1 to 3 chunks, each
# version through an O_TRUNC open, in 10 KiB or 64 KiB writes, then
# closes (sometimes after an fsync); readers read the files all the time,
# one opening each read, one holding its descriptor open (the kernel's
# page cache across the writer's opens). What a local file system gives
# such a reader (no locks, no fsync): the old version, the new one, a
# short file, a prefix of the version being written, or pieces of
# versions that followed each other, but never a NUL byte, since no
# version has one and the writer leaves no hole. The same writer and
# readers run first on a local directory (the check itself, the local
# file system's guarantee), then on cairn in sync mode and in writeback
# mode (doc/cm.md "Data", "A reader during a rewrite"). No kill -9 here
# (t2360-t2362 do that). TRUNC_SECS sets each run's length, SEED replays.
# TRUNC_MODES names the cairn mounts, and skips the local runs when set.
# By default (make check) only sync: writeback mode still makes, now and
# then, a conflict copy of the only writer's file or an EIO to it (doc/cm.md
# "Pages of zeros", which also says how the kernel's pages of zeros are
# held off since session 15; t4085 checks those in both modes); run by
# hand with TRUNC_MODES="sync writeback".
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 300
SECS=${TRUNC_SECS:-6}
NF=${NF:-3}
SEED=${SEED:-$RANDOM}
MODES=${TRUNC_MODES:-}
echo "# seed $SEED, $SECS s per run"
export PYTHONPATH="$top_srcdir/tests/integration${PYTHONPATH:+:$PYTHONPATH}"

cat >"$T_DIR/tr.py" <<'PY'
import os, random, sys, time
from verlines import CHUNK, check, content, pread_all, read_file

cmd = sys.argv[1]
if cmd == "write":  # root nf secs seed
    root, nf, secs, seed = sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    rnd = random.Random(seed)
    end = time.time() + secs
    v = n = 0
    while time.time() < end:
        f = rnd.randrange(nf)
        v += 1
        size = rnd.randrange(1024, 3 * CHUNK + 1)
        data = content(f, v, size)
        fd = os.open(os.path.join(root, "f%03d" % f), os.O_WRONLY | os.O_TRUNC)
        step = rnd.choice((10240, 65536))
        for off in range(0, size, step):
            os.pwrite(fd, data[off:off + step], off)
        if rnd.random() < 0.2:
            os.fsync(fd)
        os.close(fd)
        n += 1
    print(n)
elif cmd == "init":  # root nf
    root, nf = sys.argv[2], int(sys.argv[3])
    for f in range(nf):
        with open(os.path.join(root, "f%03d" % f), "wb") as fh:
            fh.write(content(f, 0, 3 * CHUNK - 4321))
elif cmd in ("read", "hold"):  # root nf stopfile outfile seed
    root, nf, stop, out, seed = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], int(sys.argv[6])
    rnd = random.Random(seed)
    fds = [os.open(os.path.join(root, "f%03d" % f), os.O_RDONLY) for f in range(nf)]
    reads = bad = short = 0
    log = open(out + ".log", "w")
    while not os.path.exists(stop):
        f = rnd.randrange(nf)
        if cmd == "read":
            data = read_file(os.path.join(root, "f%03d" % f))
        else:  # the same descriptor: size now, then read to the end
            data = pread_all(fds[f])
        reads += 1
        why = check(data, f)
        if why:
            bad += 1
            if bad <= 20:
                print("f%03d: %s" % (f, why), file=log)
    with open(out, "w") as o:
        print(reads, bad, file=o)
PY

# run DIR NAME: the writer for $SECS s and the two readers; prints
# "reads bad" (what it saw goes to stderr)
run() {
	local d=$1 name=$2 wpid r1 r2
	python3 "$T_DIR/tr.py" init "$d" "$NF" || return 1
	rm -f "$T_DIR/stop.$name"
	python3 "$T_DIR/tr.py" read "$d" "$NF" "$T_DIR/stop.$name" "$T_DIR/r1.$name" "$SEED" &
	r1=$!
	python3 "$T_DIR/tr.py" hold "$d" "$NF" "$T_DIR/stop.$name" "$T_DIR/r2.$name" "$((SEED + 1))" &
	r2=$!
	t_track_pid "$r1"
	t_track_pid "$r2"
	python3 "$T_DIR/tr.py" write "$d" "$NF" "$SECS" "$SEED" >"$T_DIR/w.$name"
	touch "$T_DIR/stop.$name"
	wait "$r1" "$r2"
	echo "# $name: $(cat "$T_DIR/w.$name") versions written; reads, bad: open each time $(cat "$T_DIR/r1.$name"), held open $(cat "$T_DIR/r2.$name")" >&2
	sed 's/^/#   /' "$T_DIR/r1.$name.log" "$T_DIR/r2.$name.log" | head -10 >&2
	awk '{ r += $1; b += $2 } END { print r + 0, b + 0 }' "$T_DIR/r1.$name" "$T_DIR/r2.$name"
}

# Local file systems first: the directory of the test's work (ext4
# here), and tmpfs when /dev/shm is one
if [ -z "$MODES" ]; then
	mkdir -p "$T_DIR/local"
	set -- $(run "$T_DIR/local" local)
	t_ok "$([ "${1:-0}" -gt 0 ] && echo 0 || echo 1)" "local ($(stat -f -c %T "$T_DIR")): the readers read ($1 reads)"
	t_is "${2:-x}" 0 "local: no read of a NUL byte or a foreign line"
	if [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ] &&
		SHM=$(mktemp -d /dev/shm/t2364.XXXXXX); then
		set -- $(run "$SHM" tmpfs)
		rm -rf "$SHM"
		t_is "${2:-x}" 0 "tmpfs: no read of a NUL byte or a foreign line ($1 reads)"
	else
		t_ok 0 "# SKIP no tmpfs at /dev/shm"
	fi
fi

vold_start || exit 99
vos init >/dev/null 2>&1
vos create wk >/dev/null || exit 99
make_token wk rw "$T_DIR/tok"
for mode in ${MODES:-sync}; do
	A=$T_DIR/$mode
	cairnd_mount "$A" "$T_DIR/c-$mode" wk "$T_DIR/tok" --write-mode "$mode" || exit 1
	mkdir -p "$A/$mode" || exit 1
	set -- $(run "$A/$mode" "$mode")
	t_ok "$([ "${1:-0}" -gt 0 ] && echo 0 || echo 1)" "$mode: the readers read ($1 reads)"
	t_is "${2:-x}" 0 "$mode: no read of a NUL byte or a foreign line (old size as zeros)"
	# one client wrote: nothing may have conflicted (a conflict makes
	# the writer's handle read the server's version)
	t_is "$(find "$A/$mode" -name '*.conflict-*' | wc -l)" 0 "$mode: no conflict copy"
	cairnd_umount "$A"
done
t_done
