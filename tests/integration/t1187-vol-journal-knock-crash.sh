#!/bin/bash
# t1187-vol-journal-knock-crash: kill -9 of cairn-vold while a client
# creates files and vos examines the volume over and over (so the kills
# land while cairn-vold steps aside for a knock, commits through tdb,
# takes the journal back, or checkpoints: 8 KiB bound), at least 15
# rounds. After each kill a vos reads the volume first (the journal the
# kill left, read-only) and counts at least every acknowledged create;
# every other round a vos that writes (setpublic) replays the journal
# before cairn-vold restarts; then every acknowledged create is listed.
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 240
VC="$top_srcdir/tests/integration/vol-client.py"
SEED=${SEED:-$RANDOM}
echo "# seed $SEED"
RANDOM=$SEED

vold_start --journal yes --journal-checkpoint 8K || exit 99
vos create kc >/dev/null || exit 99
export VC_URL=$VOLD_URL VC_VOL=kc
make_token kc rw "$T_DIR/rw.tok"
export VC_TOKEN=$(cat "$T_DIR/rw.tok")
R=$(vc root) || exit 99

cat >"$T_DIR/writer.py" <<'PY'
# Create PREFIX-1, PREFIX-2, ... until the server dies; log "acked NAME".
import json, os, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))
vc = __import__("vol-client")
root, prefix, log = sys.argv[2], sys.argv[3], open(sys.argv[4], "a", buffering=1)
n = 0
try:
    c = vc.conn()
    while True:
        n += 1
        name = "%s-%d" % (prefix, n)
        st, rep, _ = vc.request("POST", vc.vpath("/op"), json.dumps(
            {"op": "create", "opid": os.urandom(16).hex(), "parent": root,
             "name": name, "type": "file", "mode": 0o644, "uid": 0, "gid": 0}), c=c)
        if st == 200:
            log.write("acked %s\n" % name)
except (OSError, ConnectionError) as e:
    pass
PY
cat >"$T_DIR/check.py" <<'PY'
# Every name acked in LOG is listed in the root; print how many.
import json, os, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))
vc = __import__("vol-client")
root, log = sys.argv[2], sys.argv[3]
st, data, _ = vc.request("GET", vc.vpath("/dir/" + root))
if st != 200:
    print("# listing: %d" % st); sys.exit(1)
have = {e["name"] for e in json.loads(data)["entries"]}
acked = [l.split()[1] for l in open(log) if l.startswith("acked ")]
miss = [a for a in acked if a not in have]
if miss:
    print("# %d acknowledged creates missing, e.g. %s" % (len(miss), miss[:5])); sys.exit(1)
PY
: >"$T_DIR/log"
knocker() { while :; do vos examine kc >/dev/null 2>&1; sleep 0.0$((RANDOM % 9)); done; }

start=$(date +%s) rounds=0 bad=0
while [ $rounds -lt 15 ] || { [ $rounds -lt 60 ] && [ $(( $(date +%s) - start )) -lt "$(t_crash_seconds 30)" ]; }; do
	[ $(( $(date +%s) - start )) -ge 150 ] && break
	python3 "$T_DIR/writer.py" "$VC" "$R" "r$rounds" "$T_DIR/log" 2>>"$T_DIR/writer.err" &
	wpid=$!
	# Under load python's start alone can take the whole random delay:
	# let the round's first create be acknowledged (at most 5 s) so that
	# the kills land among creates, not before the first one.
	wait_for 5 grep -q "^acked r$rounds-1\$" "$T_DIR/log"
	knocker &
	kpid=$!
	sleep "0.$(( RANDOM % 7 + 1 ))$(( RANDOM % 10 ))"
	vold_kill9
	kill "$kpid" 2>/dev/null; wait "$kpid" 2>/dev/null
	wait "$wpid" 2>/dev/null
	nacked=$(grep -c acked "$T_DIR/log")
	objs=$(vos examine kc 2>>"$T_DIR/vos.err" | awk '/^objects/ {print $2}')
	if [ -z "$objs" ] || [ "$objs" -lt $((nacked + 1)) ]; then
		echo "# round $rounds: vos examine after the kill counts '$objs' objects, $nacked creates acknowledged"
		bad=$((bad + 1))
	fi
	if [ $((rounds % 2)) -eq 1 ]; then
		vos setpublic kc off >>"$T_DIR/vos.err" 2>&1 ||
			{ echo "# round $rounds: vos setpublic failed"; bad=$((bad + 1)); }
	fi
	vold_restart --journal yes --journal-checkpoint 8K || { echo "# restart failed in round $rounds"; bad=$((bad + 1)); break; }
	python3 "$T_DIR/check.py" "$VC" "$R" "$T_DIR/log" || { echo "# round $rounds failed (seed $SEED)"; bad=$((bad + 1)); }
	rounds=$((rounds + 1))
done
echo "# $rounds rounds in $(( $(date +%s) - start )) s, $(grep -c acked "$T_DIR/log") creates acknowledged"
t_ok "$([ $rounds -ge 15 ] && echo 0 || echo 1)" "at least 15 kill -9 rounds ($rounds)"
t_is "$bad" 0 "every round: vos and the restarted cairn-vold see every acknowledged create"
t_ok "$([ "$(grep -c acked "$T_DIR/log")" -gt 0 ] && echo 0 || echo 1)" "some creates were acknowledged"
t_is "$(ls "$SRV_ROOT/volumes/kc" | grep -c '^knock\.')" 0 "no knock of a live process left"
t_done
