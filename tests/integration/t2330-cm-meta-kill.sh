#!/usr/bin/env bash
# t2330-cm-meta-kill: kill -9 of cairnd during heavy listing edits in a big
# directory, several times over one cache (issue #17, the review of
# session 8: torn records, page ids, orphan pages):
#   - four writers create, rename and unlink in the directory (the listing
#     is stored as pages and a 'D' record over and over) while cairnd is
#     killed at a different moment each round;
#   - after each restart the mount's listing equals the server's (a mount
#     on an empty cache), with every acknowledged op in it;
#   - then disconnected (every edit stores the listing), two writers and
#     a kill each round: the listing read back holds every acknowledged
#     offline op and nothing else (the op in flight may be either way);
#   - what a kill leaves (orphan pages at most) is swept by the next
#     start, so after a clean stop cairn-fsck finds the cache clean
#     (chunks and metadata records).
# CAIRN_KILL_N sets the size (default 20,000), CAIRN_KILL_ROUNDS the
# number of kills (default 5).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
N=${CAIRN_KILL_N:-20000}
ROUNDS=${CAIRN_KILL_ROUNDS:-5}
t_timeout $((300 + N / 50 + ROUNDS * 100))
META=$top_srcdir/tests/integration/t2331-meta.py

src=$T_DIR/src
mkdir -p "$src/big"
python3 - "$src/big" "$N" <<'PY'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    os.close(os.open(os.path.join(d, "f%06d" % i), os.O_CREAT | os.O_WRONLY, 0o644))
PY
vos init >/dev/null 2>&1
vos import bk "$src" >/dev/null || exit 99
vold_start
make_token bk rw "$T_DIR/tok"
mnt=$T_DIR/mnt
fresh=$T_DIR/fresh
cache=$T_DIR/cache
listing() { ls -f "$1/big" | grep -v '^\.\.\?$' | sort; }

cairnd_mount "$mnt" "$cache" bk "$T_DIR/tok" || exit 1
listing "$mnt" >/dev/null
for r in $(seq 1 "$ROUNDS"); do
	# Four writers, each in its own part of the name space (so the ops
	# of one never race another's): creates, renames, unlinks.
	pids=""
	for w in 1 2 3 4; do
		python3 - "$mnt/big" "$T_DIR/acked.$r.$w" "$r" "$w" "$N" <<'PY' &
import os, sys
d, log, r, w, n = sys.argv[1], open(sys.argv[2], "w", buffering=1), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
i = 0
try:
    while i < 100000:
        name = "r%d-w%d-%06d" % (r, w, i)
        p = os.path.join(d, name)
        log.write("try %s\n" % name)
        os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o644))
        log.write("ok %s\n" % name)
        if i % 2:
            log.write("try %s\n" % (name + "-mv"))
            os.rename(p, p + "-mv")
            log.write("ok %s\n" % (name + "-mv"))
        # Unlink an original name of this writer's quarter of the range.
        v = "f%06d" % (w * (n // 4) - 1 - (r * 1000 + i) % (n // 4))
        if i % 3 == 0 and os.path.exists(os.path.join(d, v)):
            log.write("try %s\n" % v)
            os.unlink(os.path.join(d, v))
            log.write("ok %s\n" % v)
        i += 1
except OSError:
    pass
PY
		pids="$pids $!"
	done
	# A different moment each round, past at least one stored listing
	# (at most once a second) and some acknowledged ops.
	wait_for 60 sh -c "[ \$(cat '$T_DIR'/acked.$r.* 2>/dev/null | grep -c '^ok') -ge 40 ]"
	sleep "1.$((r * 37 % 10))"
	cairnd_kill9 "$mnt"
	for p in $pids; do wait "$p" 2>/dev/null; done
	ops=$(cat "$T_DIR"/acked.$r.* | grep -c '^ok')
	t_ok $(( ops < 40 ? 1 : 0 )) "round $r: $ops ops acknowledged before the kill"
	"$FSCK" --check --quiet "$cache" >"$T_DIR/fsck.$r" 2>&1
	echo "# round $r: after the kill cairn-fsck reports $(grep -c orphan "$T_DIR/fsck.$r") orphan pages, $(grep -c 'damaged\|names a missing' "$T_DIR/fsck.$r") damaged"
	cairnd_mount "$mnt" "$cache" bk "$T_DIR/tok" || exit 1
	cairnd_mount "$fresh" "$T_DIR/cache-fresh-$r" bk "$T_DIR/tok" || exit 1
	listing "$fresh" >"$T_DIR/server"
	cairnd_umount "$fresh"
	# The op in flight at the kill may have reached the server without
	# the cached listing knowing: the event stream, resumed, tells the
	# restarted cairnd within a moment.
	t0=$(date +%s%N)
	wait_for 10 sh -c "ls -f '$mnt/big' | grep -v '^\.\.\?\$' | sort | cmp -s - '$T_DIR/server'"
	listing "$mnt" >"$T_DIR/got"
	cmp -s "$T_DIR/got" "$T_DIR/server"
	t_ok $? "round $r: after the kill and a restart the listing equals the server's ($(wc -l <"$T_DIR/server") names, $(( ($(date +%s%N) - t0) / 1000000 )) ms)"
	diff "$T_DIR/got" "$T_DIR/server" | head -5 | sed 's/^/# /'
	# Every acknowledged create is there (its "-mv" name if renamed).
	missing=0
	for f in "$T_DIR"/acked.$r.*; do
		awk '$1 == "ok" {print $2}' "$f" >"$T_DIR/okn"
		while read -r nm; do
			case $nm in
			f*) grep -qxF -- "$nm" "$T_DIR/got" && missing=$((missing + 1)) ;;
			*-mv) grep -qxF -- "$nm" "$T_DIR/got" || missing=$((missing + 1)) ;;
			*) grep -qxF -- "$nm" "$T_DIR/got" ||
				grep -qxF -- "$nm-mv" "$T_DIR/got" || missing=$((missing + 1)) ;;
			esac
		done <"$T_DIR/okn"
	done
	t_is "$missing" 0 "round $r: every acknowledged create, rename and unlink is in the listing"
done

# Disconnected, every edit stores the listing (its changed pages and its
# 'D' record; cm/vc.c), so kills land in the middle of stores far more
# often. After each kill cairnd starts disconnected (the mode is kept)
# and reads the listing from its pages: it holds the names the server had
# plus every acknowledged offline op; only the op in flight of each
# writer may be either way. The replay log is not drained here (t2291
# does that): this is about the listing's records.
cp "$T_DIR/server" "$T_DIR/model"
"$FS" disconnect -m "$mnt" >/dev/null || { t_ok 1 "fs disconnect"; t_done; }
for r in $(seq 1 "$ROUNDS"); do
	pids=""
	for w in 1 2; do
		python3 - "$mnt/big" "$T_DIR/off.$r.$w" "$r" "$w" "$N" <<'PY' &
import os, sys
d, log, r, w, n = sys.argv[1], open(sys.argv[2], "w", buffering=1), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
i = 0
try:
    while i < 100000:
        name = "o%d-w%d-%06d" % (r, w, i)
        p = os.path.join(d, name)
        log.write("try c %s\n" % name)
        os.close(os.open(p, os.O_CREAT | os.O_WRONLY, 0o644))
        log.write("ok c %s\n" % name)
        if i % 2:
            log.write("try m %s\n" % name)
            os.rename(p, p + "-mv")
            log.write("ok m %s\n" % name)
        v = "f%06d" % (n // 2 * (w - 1) + (r * 977 + i * 7) % (n // 2))
        if i % 3 == 0 and os.path.exists(os.path.join(d, v)):
            log.write("try u %s\n" % v)
            os.unlink(os.path.join(d, v))
            log.write("ok u %s\n" % v)
        i += 1
except OSError:
    pass
PY
		pids="$pids $!"
	done
	wait_for 60 sh -c "[ \$(cat '$T_DIR'/off.$r.* 2>/dev/null | grep -c '^ok') -ge 40 ]"
	sleep "0.$((r * 53 % 10))"
	cairnd_kill9 "$mnt"
	for p in $pids; do wait "$p" 2>/dev/null; done
	"$FSCK" --check --quiet "$cache" >"$T_DIR/fsck.off.$r" 2>&1
	echo "# offline round $r: after the kill cairn-fsck reports $(grep -c orphan "$T_DIR/fsck.off.$r") orphan pages, $(grep -c 'damaged\|names a missing' "$T_DIR/fsck.off.$r") damaged"
	cairnd_mount "$mnt" "$cache" bk "$T_DIR/tok" || exit 1
	listing "$mnt" >"$T_DIR/got"
	out=$(python3 - "$T_DIR/model" "$T_DIR/got" "$T_DIR"/off.$r.* <<'PY'
import sys
model = set(open(sys.argv[1]).read().split())
got = set(open(sys.argv[2]).read().split())
skip = set()
for f in sys.argv[3:]:
    lines = open(f).read().split("\n")
    lines = [l.split() for l in lines if l.strip()]
    for l in lines:
        if l[0] != "ok":
            continue
        k, nm = l[1], l[2]
        if k == "c":
            model.add(nm)
        elif k == "m":
            model.discard(nm)
            model.add(nm + "-mv")
        else:
            model.discard(nm)
    if lines and lines[-1][0] == "try":  # the op in flight at the kill
        k, nm = lines[-1][1], lines[-1][2]
        skip.update([nm, nm + "-mv"])
bad = (model ^ got) - skip
# the model goes on with what the cache holds for the in-flight names
for nm in skip:
    model.discard(nm)
    if nm in got:
        model.add(nm)
open(sys.argv[1], "w").write("\n".join(sorted(model)) + "\n")
n = sum(1 for f in sys.argv[3:] for l in open(f) if l.startswith("ok"))
print(len(bad), n, " ".join(sorted(bad)[:5]))
PY
)
	set -- $out
	t_is "$1" 0 "offline round $r: after a kill during $2 offline edits the listing holds every acknowledged one (and only those) ${3:-}"
done
cairnd_umount "$mnt"
"$FSCK" --check "$cache" >"$T_DIR/fsck.end" 2>&1
t_is "$?" 0 "after the kills, a restart and a clean stop cairn-fsck finds the cache clean"
grep '^error' "$T_DIR/fsck.end" | head -5 | sed 's/^/# /'
echo "# meta.tdb: $(python3 "$META" count "$cache/meta.tdb")"
t_done
