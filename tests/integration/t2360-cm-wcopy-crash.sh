#!/usr/bin/env bash
# t2360-cm-wcopy-crash: kill -9 of cairnd at random points while a writer
# rewrites many small files in 10 KiB writes (each version then closed,
# or fsynced and closed) and a reader reads them all the time. A file's
# writes go into an open working copy of its chunk, committed only at
# its checkpoints (the store at close or fsync; doc/cm.md "Data"), so
# after each kill and restart every file must be exactly one version:
# the last one whose close (or fsync) returned, or one whose close or
# fsync was under way at the kill; never a version only written (unless
# it was written for over a second: the 1 s checkpoint may then show its
# first blocks over the acknowledged version, counted apart). Also:
# cairn-fsck --check finds no error in the cache the kill left; the
# reader never gets an error, a short file or a NUL byte (no version has
# one: zeros were never written) from a live mount; a
# fresh client sees what the restarted one does (the server got it).
# WCOPY_MODE=writeback (t2361) runs the same on a writeback mount.
# WCOPY_BIG=1 (t2362) makes files of 1 to 3 chunks (a write that fills a
# chunk commits it: a version under way may show its first chunks over the
# acknowledged one) and rewrites some versions through O_TRUNC (the
# truncate is a checkpoint: such a version may show a prefix of itself,
# empty included, or the acknowledged version if the truncate did not
# happen yet).
# SEED=N replays a run.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 600
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }
MODE=${WCOPY_MODE:-sync}
BIG=${WCOPY_BIG:-0}
export WCOPY_BIG=$BIG
ROUNDS=${ROUNDS:-4}
NF=${NF:-16}
FSCK=$top_builddir/admin/cairn-fsck
margs=()
[ "$MODE" = writeback ] && margs=(--write-mode writeback)

vold_start || exit 99
vos init >/dev/null 2>&1
vos create wk >/dev/null || exit 99
make_token wk rw "$T_DIR/tok"
A=$T_DIR/a
mnt() { cairnd_mount "$A" "$T_DIR/ca" wk "$T_DIR/tok" "${margs[@]}"; }
mnt || exit 1
jst() { "$FS" "$1" --json -m "$A" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$2"; }
# the log sent and every dirty file stored (wb_resume() after a restart)
drained() { [ "$(jst status replay_pending)" = 0 ] && [ "$(jst getcacheparms dirty_files)" = 0 ]; }
stat_of() { getfattr --absolute-names --only-values -n cairn.stats "$1" 2>/dev/null | awk -v k="$2" '$1 == k {print $2}'; }
SEED=${SEED:-$RANDOM}
echo "# seed $SEED, mode $MODE, big $BIG"
RANDOM=$SEED

cat >"$T_DIR/w.py" <<'PY'
import errno, json, os, random, sys, time
cmd = sys.argv[1]

BIG = os.environ.get("WCOPY_BIG", "0") == "1"
CHUNK = 256 * 1024

def size_of(f):
    if BIG:  # 1 to 3 chunks, most not a multiple of the chunk
        return 1024 + (f * 7919 + 13) % (3 * CHUNK)
    return 1024 + (f * 7919 + 13) % (200 * 1024)

def is_prefix(data, f):  # a version's first bytes (after a truncate)
    v = version_of(data, f)
    return len(data) == 0 or (v is not None and content(f, v)[:len(data)] == data)

def content(f, v):
    line = b"F%03d V%08d\n" % (f, v)
    n = size_of(f)
    return (line * (n // len(line) + 1))[:n]

def version_of(data, f):
    if len(data) < 14 or not data.startswith(b"F%03d V" % f):
        return None
    try:
        return int(data[6:14])
    except ValueError:
        return None

if cmd == "init":  # root nf
    root, nf = sys.argv[2], int(sys.argv[3])
    for f in range(nf):
        with open(os.path.join(root, "f%03d" % f), "wb") as fh:
            fh.write(content(f, 0))
    json.dump({str(f): 0 for f in range(nf)}, open(sys.argv[4], "w"))

elif cmd == "write":  # root nf seed log first_version
    root, nf, seed, log, v = sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
    random.seed(seed)
    dev = os.stat(root).st_dev
    lg = open(log, "a", buffering=1)
    try:
        while True:
            f = random.randrange(nf)
            v += 1
            data = content(f, v)
            trunc = BIG and random.random() < 0.3
            lg.write("W %d %d %.3f %d\n" % (f, v, time.time(), trunc))
            fd = os.open(os.path.join(root, "f%03d" % f),
                         os.O_WRONLY | (os.O_TRUNC if trunc else 0))
            if os.fstat(fd).st_dev != dev:
                break
            for off in range(0, len(data), 10240):
                os.pwrite(fd, data[off:off + 10240], off)
            sync = random.random() < 0.3
            lg.write("C %d %d\n" % (f, v))
            if sync:
                os.fsync(fd)
                lg.write("A %d %d\n" % (f, v))
            os.close(fd)
            lg.write("A %d %d\n" % (f, v))
    except OSError:
        pass

elif cmd == "read":  # root nf stopfile errfile
    root, nf, stop, errf = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
    dev = os.stat(root).st_dev
    bad = reads = 0
    while not os.path.exists(stop):
        f = random.randrange(nf)
        try:
            if os.stat(root).st_dev != dev:
                break
            with open(os.path.join(root, "f%03d" % f), "rb") as fh:
                data = fh.read()
            if os.stat(root).st_dev != dev:
                break
        except OSError as e:
            # the kill's own errors: the test touches the stop file
            # right after it; an error from a live mount is a failure
            time.sleep(3)
            if not os.path.exists(stop):
                bad += 1
                print("read f%03d: %s" % (f, e), file=open(errf, "a"))
            break
        reads += 1
        z = data.find(b"\0")
        if z >= 0:
            # no version has a NUL byte and none has a hole: zeros are
            # bytes never written (session 10 counted a reader racing an
            # O_TRUNC rewrite reading the old size as zeros apart; a
            # truncate cut chunks before it set the size, t2364)
            bad += 1
            print("read f%03d: %d bytes, zeros from %d" % (f, len(data), z), file=open(errf, "a"))
            continue
        if BIG and len(data) < size_of(f) and is_prefix(data, f):
            continue  # a version being written after its O_TRUNC
        if len(data) != size_of(f) or version_of(data, f) is None:
            bad += 1
            print("read f%03d: %d bytes, head %r" % (f, len(data), data[:14]), file=open(errf, "a"))
    print("%d %d" % (reads, bad), file=open(errf + ".n", "a"))

elif cmd == "verify":  # root nf log state kill_time
    root, nf, log, state, kill_t = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], float(sys.argv[6])
    base = {int(k): v for k, v in json.load(open(state)).items()}
    acked = dict(base)
    flight = {f: set() for f in range(nf)}
    started = {}
    for ln in open(log):
        p = ln.split()
        if len(p) < 3:
            continue  # a line the kill cut
        f, v = int(p[1]), int(p[2])
        if p[0] == "W" and len(p) == 5:
            started[(f, v)] = (float(p[3]), p[4] == "1")
        elif p[0] == "C":
            flight[f].add(v)
        elif p[0] == "A":
            acked[f] = v
            flight[f] = {x for x in flight[f] if x > v}
    bad = mixed = 0
    for f in range(nf):
        try:
            data = open(os.path.join(root, "f%03d" % f), "rb").read()
        except OSError as e:
            print("# f%03d: %s" % (f, e)); bad += 1; continue
        v = version_of(data, f)
        ok_set = {acked[f]} | flight[f]
        if v in ok_set and data == content(f, v):
            base[f] = v
            continue
        # a version under way: written for over a second before the kill,
        # the 1 s checkpoint (or the idle one) may have committed its first
        # blocks over the acknowledged one; with chunks, a write that
        # filled a chunk committed it; after an O_TRUNC (a checkpoint, at
        # size 0) the base is empty
        old = content(f, acked[f])
        hit = False
        for (g, w), (t, tr) in started.items():
            if g != f or w <= acked[f]:
                continue
            new = content(f, w)
            cuts = set(range(0, len(new) + 1, CHUNK)) | {len(new)}
            if kill_t - t >= 1.0:
                cuts |= set(range(0, len(new) + 1, 10240))
            bases = [old, b""] if tr else [old]
            for b in bases:
                for cut in cuts:
                    if data == new[:cut] + b[cut:]:
                        hit = True
        if hit:
            mixed += 1
            base[f] = -1  # unknown version: any later state is fine
            print("# f%03d: a prefix of a version under way" % f)
            continue
        print("# f%03d: version %s (%d bytes), allowed %s" % (f, v, len(data), sorted(ok_set)))
        bad += 1
    # a file left mixed is rewritten before the next round's check
    json.dump({str(f): (v if v >= 0 else 0) for f, v in base.items()}, open(state, "w"))
    print("%d %d" % (bad, mixed))

elif cmd == "fix":  # root nf state: rewrite mixed files as version 0
    root, nf, state = sys.argv[2], int(sys.argv[3]), sys.argv[4]
    for f in range(nf):
        data = open(os.path.join(root, "f%03d" % f), "rb").read()
        v = version_of(data, f)
        if v is None or data != content(f, v):
            with open(os.path.join(root, "f%03d" % f), "wb") as fh:
                fh.write(content(f, 0))

elif cmd == "same":  # root_a root_b nf
    a, b, nf = sys.argv[2], sys.argv[3], int(sys.argv[4])
    diff = [f for f in range(nf) if open(os.path.join(a, "f%03d" % f), "rb").read() != open(os.path.join(b, "f%03d" % f), "rb").read()]
    print(len(diff))
PY

mkdir -p "$A/d" || exit 1
python3 "$T_DIR/w.py" init "$A/d" "$NF" "$T_DIR/state" || exit 1
: >"$T_DIR/rerr"
bad_total=0 mixed_total=0 fsck_bad=0 v0=0 copies_ok=0
for round in $(seq 1 "$ROUNDS"); do
	: >"$T_DIR/log$round"
	rm -f "$T_DIR/stop"
	python3 "$T_DIR/w.py" write "$A/d" "$NF" "$((SEED + round))" "$T_DIR/log$round" "$((round * 1000000))" &
	wpid=$!
	python3 "$T_DIR/w.py" read "$A/d" "$NF" "$T_DIR/stop" "$T_DIR/rerr" &
	rpid=$!
	sleep "$(( RANDOM % 2 )).$(( RANDOM % 10 ))"
	sleep 0.3
	# one copy of a chunk per version written, not one per write (the
	# counter is this cairnd's, since its start: the versions of this
	# round, up to NF being written, and the rewrites of a "fix" before)
	c=$(stat_of "$A" cache_copies) w=$(grep -c '^C ' "$T_DIR/log$round")
	echo "# round $round so far: $w versions closed or fsynced, $c working copies made"
	if [ "$w" -gt 0 ]; then
		ch=1
		[ "$BIG" = 1 ] && ch=3
		if [ -n "$c" ] && [ "$c" -le $(((w + 2 * NF + 2) * ch)) ]; then
			[ "$copies_ok" = 0 ] && copies_ok=1
		else
			copies_ok=2
		fi
	fi
	kt=$(date +%s.%N)
	cairnd_kill9 "$A"
	touch "$T_DIR/stop"
	wait "$wpid" 2>/dev/null
	wait "$rpid" 2>/dev/null
	echo "# round $round: $(grep -c '^A ' "$T_DIR/log$round") acknowledged, killed with $(grep -c '^W ' "$T_DIR/log$round") started"
	if [ -x "$FSCK" ]; then
		if ! "$FSCK" --check --quiet "$T_DIR/ca" >"$T_DIR/fsck$round" 2>&1; then
			echo "# round $round: cairn-fsck --check after the kill:"; sed 's/^/#   /' "$T_DIR/fsck$round" | head -20
			fsck_bad=$((fsck_bad + 1))
		fi
	fi
	mnt || exit 1
	wait_for 60 drained
	drop_caches
	r=$(python3 "$T_DIR/w.py" verify "$A/d" "$NF" "$T_DIR/log$round" "$T_DIR/state" "$kt")
	echo "$r" | grep '^#'
	set -- $(echo "$r" | tail -n 1)
	bad_total=$((bad_total + $1)) mixed_total=$((mixed_total + $2))
	[ "$2" = 0 ] || python3 "$T_DIR/w.py" fix "$A/d" "$NF" "$T_DIR/state"
done
t_is "$fsck_bad" 0 "cairn-fsck --check found no error after any kill"
t_is "$bad_total" 0 "every file is a version whose close or fsync returned or was under way ($mixed_total a prefix of one under way)"
t_ok "$([ "$copies_ok" = 1 ] && echo 0 || echo 1)" "at most one working copy per version written (not one per write)"
rr=$(awk '{ r += $1; b += $2 } END { print r + 0, b + 0 }' "$T_DIR/rerr.n" 2>/dev/null)
echo "# reader: $rr (reads, bad)"; sed 's/^/#   /' "$T_DIR/rerr" | head
t_is "$(echo "$rr" | cut -d' ' -f2)" 0 "the reader never got an error, a wrong size or zeros from a live mount"
t_ok "$([ "$(echo "$rr" | cut -d' ' -f1)" -gt 0 ] && echo 0 || echo 1)" "the reader read"
wait_for 60 drained
C=$T_DIR/c
cairnd_mount "$C" "$T_DIR/cc" wk "$T_DIR/tok" || exit 1
t_is "$(python3 "$T_DIR/w.py" same "$A/d" "$C/d" "$NF")" 0 "a fresh client sees what the restarted one does"
cairnd_umount "$C"
cairnd_umount "$A"
if [ -x "$FSCK" ]; then
	"$FSCK" --check "$T_DIR/ca" >"$T_DIR/fsck-end" 2>&1
	t_is "$?" 0 "cairn-fsck --check after a clean stop"
fi
t_done
