#!/bin/bash
# t1182-vol-journal-vos: vos examine and vos export of a volume that
# cairn-vold journals, while a client keeps creating files in it: each
# examine counts at least every create acknowledged before it started and
# each export holds every such file (vos knocks, cairn-vold checkpoints
# and shares the volume), quickly (SIGUSR2, not the next tick); the
# client never sees a failure meanwhile; cairn-vold journals again once
# vos is done (meta.journal grows, the lock file names it).
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 200
VC="$top_srcdir/tests/integration/vol-client.py"

vold_start --journal yes || exit 99
vos create live >/dev/null || exit 99
export VC_URL=$VOLD_URL VC_VOL=live
make_token live rw "$T_DIR/rw.tok"
export VC_TOKEN=$(cat "$T_DIR/rw.tok")
R=$(vc root) || exit 99
VD=$SRV_ROOT/volumes/live

cat >"$T_DIR/writer.py" <<'PY'
# Create n1, n2, ... until killed; after each 200 write N to GEN.
import json, os, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))
vc = __import__("vol-client")
root, gen = sys.argv[2], sys.argv[3]
c = vc.conn()
n = 0
while True:
    n += 1
    st, rep, _ = vc.request("POST", vc.vpath("/op"), json.dumps(
        {"op": "create", "opid": os.urandom(16).hex(), "parent": root,
         "name": "n%d" % n, "type": "file", "mode": 0o644, "uid": 0, "gid": 0}), c=c)
    if st != 200:
        print("writer: create n%d: %d %s" % (n, st, rep[:200]), file=sys.stderr)
        sys.exit(1)
    open(gen + ".tmp", "w").write("%d\n" % n)
    os.rename(gen + ".tmp", gen)
PY
python3 "$T_DIR/writer.py" "$VC" "$R" "$T_DIR/gen" 2>>"$T_DIR/writer.err" &
wpid=$!
t_track_pid "$wpid"
wait_for 20 test -s "$T_DIR/gen" || { echo "# the writer did not start"; exit 99; }

# Journalling: the journal holds records, the lock file names cairn-vold.
wait_for 10 sh -c "[ \$(stat -c %s '$VD/meta.journal') -gt 40 ]"
t_ok $? "cairn-vold journals the creates (meta.journal grows)"
t_is "$(cat "$VD/lock" 2>/dev/null | tr -d '\n')" "$VOLD_PID" "the lock file names the journalling cairn-vold"

bad=0 slow=0 maxms=0
for i in $(seq 1 20); do
	g0=$(cat "$T_DIR/gen")
	t0=$(date +%s%N)
	objs=$(vos examine live 2>>"$T_DIR/vos.err" | awk '/^objects/ {print $2}')
	ms=$(( ($(date +%s%N) - t0) / 1000000 ))
	[ "$ms" -gt "$maxms" ] && maxms=$ms
	[ "$ms" -gt 900 ] && slow=$((slow + 1))
	# The root and n1..n(g0) at least.
	if [ -z "$objs" ] || [ "$objs" -lt $((g0 + 1)) ]; then
		echo "# examine $i: $objs objects, $g0 creates acknowledged before"
		bad=$((bad + 1))
	fi
	sleep 0.$((RANDOM % 4))
done
t_is "$bad" 0 "20 examines: each counts every create acknowledged before it"
echo "# slowest examine ${maxms} ms"
t_ok "$([ "$slow" -le 2 ] && echo 0 || echo 1)" "examines answered at once, not at the next tick ($slow of 20 over 0.9 s)"

bad=0
for i in 1 2 3; do
	g0=$(cat "$T_DIR/gen")
	rm -rf "$T_DIR/out"
	if ! vos export live "$T_DIR/out" >"$T_DIR/export.log" 2>&1; then
		echo "# export $i failed:"; sed 's/^/#   /' "$T_DIR/export.log"
		bad=$((bad + 1)); continue
	fi
	for n in $(seq 1 "$g0"); do
		[ -f "$T_DIR/out/n$n" ] || { echo "# export $i: n$n missing ($g0 acknowledged before)"; bad=$((bad + 1)); break; }
	done
done
t_is "$bad" 0 "3 exports: each holds every file acknowledged before it"

# Back to journalling once no process knocks.
sleep 2.5
s1=$(stat -c %s "$VD/meta.journal")
wait_for 10 sh -c "[ \$(stat -c %s '$VD/meta.journal') -gt $s1 ] || [ \$(stat -c %s '$VD/meta.journal') -gt 40 ]"
t_ok $? "cairn-vold journals again after vos is done"
t_ok "$(kill -0 $wpid 2>/dev/null && echo 0 || echo 1)" "the writer never saw a failure"
kill $wpid 2>/dev/null; wait $wpid 2>/dev/null
[ -s "$T_DIR/writer.err" ] && sed 's/^/#   /' "$T_DIR/writer.err"
t_is "$(ls "$VD" | grep -c '^knock\.')" 0 "no knock left behind"
t_done
