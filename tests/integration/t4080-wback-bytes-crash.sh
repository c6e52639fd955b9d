#!/usr/bin/env bash
# t4080-wback-bytes-crash: a small file's close in writeback mode logs
# its bytes in the replay record (format 3, doc/replay-log.md) and leaves
# the chunk file unsynced (doc/cm.md "Session 13"). cairnd is killed -9
# at a random point while a writer makes small files one after the other
# (an untar: create, write, close; each name noted once its close
# returned); then a power cut is played on the chunk store: every chunk
# file a record with bytes names (cairn-fsck lists them: slot and
# generation) is deleted or torn, as unsynced files may be after one.
# At the restart every file whose close returned must read its bytes at
# once (the chunks restored from the records before the mount answers),
# and after the drain a fresh client must see the same files, each once,
# with no conflict (nothing applied twice). Three rounds: the drain held
# back (60 s), the drain running meanwhile (20 ms), and held back again
# with the kill later. Seed printed; SEED=N replays.
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 300
[ -x "$FS" ] || { echo "# SKIP: $FS not built"; exit 77; }
[ -x "$FSCK" ] || { echo "# SKIP: $FSCK not built"; exit 77; }

vold_start || exit 99
vos init >/dev/null 2>&1
vos create wbb >/dev/null || exit 99
make_token wbb rw "$T_DIR/tok"
A=$T_DIR/a
CA=$T_DIR/ca
jst() { "$FS" status --json -m "$A" 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin).get(sys.argv[1], ""))' "$1"; }

SEED=${SEED:-$RANDOM}
echo "# seed $SEED"
RANDOM=$SEED

# The writer: files w/rROUND/dDD/fNNNN, their bytes a function of the
# name; sizes 0..64 KiB mostly (logged with their bytes), one in ten up
# to 300 KiB (synced chunks, as before). Each name is appended to the
# list (on local disk) once close() returned.
cat >"$T_DIR/writer.py" <<'PY'
import os, random, sys
root, rnd, n, listf = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
def body(name):
    r = random.Random(name)
    k = r.random()
    size = 0 if k < 0.03 else r.randint(1, 300 * 1024) if k > 0.9 else r.randint(1, 65536)
    return (name.encode() * (size // len(name) + 1))[:size]
if len(sys.argv) > 5:       # --check: DIR holds the names of LIST with their bytes
    bad = 0
    for name in open(listf).read().split():
        try:
            got = open(os.path.join(root, name), "rb").read()
        except OSError as e:
            got = None
        if got != body(name):
            bad += 1
            if bad <= 5:
                print("# bad: %s (%s)" % (name, "missing" if got is None else "%d bytes" % len(got)))
    print(bad)
    sys.exit(0)
out = open(listf, "a", buffering=1)
for i in range(n):
    name = "w/r%d/d%02d/f%04d" % (rnd, i % 10, i)
    p = os.path.join(root, name)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    b = body(name)
    for off in range(0, len(b), 16384):
        os.write(fd, b[off:off + 16384])
    os.close(fd)
    out.write(name + "\n")
PY

# Play a power cut on the chunk store of the stopped cairnd: the chunk
# files the log holds bytes of are deleted or torn. Prints how many.
power_cut() {
	"$FSCK" --check "$CA" 2>&1 | sed -n 's/.*carries a store.s \([0-9]*\) bytes (chunk slot \([0-9]*\),.*/\2 \1/p' >"$T_DIR/slots"
	local n=0 slot len f
	while read -r slot len; do
		f=$(printf '%s/chunks/%02x/%08x' "$CA" $((slot & 255)) "$slot")
		[ -e "$f" ] || continue
		if [ $((RANDOM % 2)) = 0 ]; then
			rm -f "$f"
		else
			truncate -s $((len / 2)) "$f"
		fi
		n=$((n + 1))
	done <"$T_DIR/slots"
	echo "$n"
}

: >"$T_DIR/list"
logged=0 cut=0 bad=0 restored=0
for r in 0 1 2; do
	case $r in
	1) delay=20ms ;;
	*) delay=60s ;;
	esac
	cairnd_mount "$A" "$CA" wbb "$T_DIR/tok" --write-mode writeback --writeback-delay "$delay" || exit 1
	: >"$T_DIR/list$r"
	python3 "$T_DIR/writer.py" "$A" "$r" 3000 "$T_DIR/list$r" >"$T_DIR/writer$r.log" 2>&1 &
	wpid=$!
	t_track_pid "$wpid"
	# 0.5 .. 2.5 s in (the writer makes ~100-400 files a second here)
	sleep "$(( 1 + RANDOM % 2 - (r == 1 ? 1 : 0) )).$(( RANDOM % 10 ))"
	[ "$r" = 1 ] && sleep 0.5
	cairnd_kill9 "$A"
	wait "$wpid" 2>/dev/null
	n=$(wc -l <"$T_DIR/list$r")
	lb=$("$FSCK" --check "$CA" 2>&1 | grep -c 'carries a store.s')
	logged=$((logged + lb))
	c=$(power_cut)
	cut=$((cut + c))
	cat "$T_DIR/list$r" >>"$T_DIR/list"
	cairnd_mount "$A" "$CA" wbb "$T_DIR/tok" --write-mode writeback --writeback-delay 60s || exit 1
	# at once, before any drain: the local view has every closed file
	b=$(python3 "$T_DIR/writer.py" "$A" 0 0 "$T_DIR/list" --check)
	echo "# round $r (delay $delay): $n files closed, $lb records with bytes, $c chunk files cut; $b bad after the restart"
	[ "$b" = 0 ] || { bad=$((bad + 1)); python3 "$T_DIR/writer.py" "$A" 0 0 "$T_DIR/list" --check | head -6; }
	rs=$(sed -n 's/.*restored \([0-9]*\) files. bytes from the replay log.*/\1/p' "$T_DIR/cairnd-a.log" | tail -1)
	restored=$((restored + ${rs:-0}))
	mv "$T_DIR/cairnd-a.log" "$T_DIR/cairnd-a.log.$r"
	"$FS" sync -m "$A" >/dev/null 2>&1 || echo "# round $r: fs sync failed"
	cairnd_umount "$A"
done
t_ok "$([ "$logged" -gt 0 ] && echo 0 || echo 1)" "closes logged their bytes in the replay log ($logged records seen by cairn-fsck)"
t_ok "$([ "$cut" -gt 0 ] && [ "$restored" -gt 0 ] && echo 0 || echo 1)" "the power cuts took chunk files ($cut) and the restarts restored them ($restored)"
t_is "$bad" 0 "after each restart every closed file reads its bytes at once"

cairnd_mount "$A" "$CA" wbb "$T_DIR/tok" --write-mode writeback --writeback-delay 60s || exit 1
"$FS" sync -m "$A" >/dev/null 2>&1
t_is "$(jst backlog_records)|$(jst conflicts)" "0|0" "drained: the log is empty, no conflicts"
C=$T_DIR/c
cairnd_mount "$C" "$T_DIR/cc" wbb "$T_DIR/tok" || exit 1
t_is "$(python3 "$T_DIR/writer.py" "$C" 0 0 "$T_DIR/list" --check)" 0 \
	"a fresh client reads every closed file's bytes from the server ($(wc -l <"$T_DIR/list") files)"
t_is "$(cd "$C" && find w -type f | sort | uniq -d | wc -l)|$(find "$C" -name '*.conflict-*' | wc -l)" "0|0" \
	"each name once, no conflict copies"
t_is "$(cd "$C" && find w -type f | wc -l)" "$(cd "$A" && find w -type f | wc -l)" \
	"the server has the files the mount has"
"$FSCK" --check "$T_DIR/cc" >/dev/null 2>&1
cairnd_umount "$C"
cairnd_umount "$A"
t_is "$("$FSCK" --check "$CA" >/dev/null 2>&1; echo $?)" 0 "cairn-fsck finds the cache clean"
t_done
