#!/bin/bash
# t1050-vol-crash: kill -9 cairn-vold while a client stores, at random
# points, at least 30 rounds (bounded to 150 s): after each restart
# every file holds its old or its new content (never a mix), and every
# store that was acknowledged is there. Seed printed for replay.
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 240
crash_setup crash
for i in 0 1 2 3; do python3 "$VC" create "$R" "f$i" >>"$T_DIR/fids" || exit 99; done

cat >"$T_DIR/writer.py" <<'PY'
# Store random contents into the files until the server dies; log each
# store as "pending" before and "acked" after its 200.
import hashlib, json, os, random, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))
vc = __import__("vol-client")
fids = open(sys.argv[2]).read().split()
log = open(sys.argv[3], "a", buffering=1)
rnd = random.Random(int(sys.argv[4]))
while True:
    fid = rnd.choice(fids)
    try:
        dv = vc.getattr_(fid)["dv"]
        size = rnd.choice([0, 1000, 65536, 200000, 300001])
        data = os.urandom(size)
        cs = 65536
        txid = os.urandom(16).hex()
        chunks = list(range((size + cs - 1) // cs))
        log.write("pending %s %d %s\n" % (fid, dv + 1, hashlib.sha256(data).hexdigest()))
        c = vc.conn()
        for i in chunks:
            st, body, _ = vc.request("PUT", vc.vpath("/stage/%s/%s/%d?size=%d" % (fid, txid, i, cs)),
                                     data[i * cs:(i + 1) * cs], c=c)
            if st != 204:
                raise SystemExit("stage %d" % st)
        c.close()
        st, body, _ = vc.do_op({"op": "store", "fid": fid, "base_dv": dv, "txid": txid,
                                "chunk_size": cs, "size": size, "chunks": chunks})
        if st == 200:
            log.write("acked %s %d %s\n" % (fid, json.loads(body)["attr"]["dv"], hashlib.sha256(data).hexdigest()))
    except (OSError, ConnectionError, SystemExit, ValueError) as e:
        # Expected once the server is killed; kept for the test's log.
        print("writer: %s: %r" % (fid, e), file=sys.stderr)
        sys.exit(0)
PY

cat >"$T_DIR/check.py" <<'PY'
# After a restart: each file's (dv, sha256) is its last acknowledged state
# or one of the stores pending after it; nothing else. (More than one can
# be pending: a store committed just before a kill is never acknowledged,
# and the next round's writer bases its own store on it.)
import hashlib, os, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))
vc = __import__("vol-client")
fids = open(sys.argv[2]).read().split()
empty = hashlib.sha256(b"").hexdigest()
ok = {f: None for f in fids}
pend = {f: [] for f in fids}
for line in open(sys.argv[3]):
    kind, fid, dv, sha = line.split()
    if kind == "acked":
        ok[fid] = (int(dv), sha); pend[fid] = []
    else:
        pend[fid].append((int(dv), sha))
bad = 0
for f in fids:
    at = vc.getattr_(f)
    c = vc.conn(); data = b""; i = 0
    while True:
        st, body, _ = vc.request("GET", vc.vpath("/data/%s/%d/%d?size=65536" % (f, at["dv"], i)), c=c)
        if st == 416: break
        if st != 200: print("# GET %s: %d" % (f, st)); bad += 1; break
        data += body; i += 1
        if len(body) < 65536: break
    c.close()
    got = (at["dv"], hashlib.sha256(data).hexdigest())
    allowed = ([ok[f]] if ok[f] else []) + pend[f]
    if ok[f] is None:
        allowed.append(("initial", empty))
        if got[1] == empty and (not pend[f] or got[0] < pend[f][0][0]): continue
    if got not in allowed or len(data) != at["size"]:
        print("# %s: got dv %d sha %s, allowed %s" % (f, got[0], got[1][:12], allowed)); bad += 1
sys.exit(1 if bad else 0)
PY

_acked_since() { [ "$(grep -c acked "$T_DIR/log")" -gt "$1" ]; }

start=$(date +%s)
rounds=0 badrounds=0
while [ $rounds -lt 30 ] || { [ $rounds -lt 200 ] && [ $(( $(date +%s) - start )) -lt "$(t_crash_seconds 40)" ]; }; do
	[ $(( $(date +%s) - start )) -ge 150 ] && break
	python3 "$T_DIR/writer.py" "$VC" "$T_DIR/fids" "$T_DIR/log" "$SEED$rounds" 2>>"$T_DIR/writer.err" &
	wpid=$!
	# The kill point is random, but counted from the writer's progress,
	# not from its start (a slow machine may take most of a second to
	# start python, or to fsync): until 3 stores are acknowledged, every
	# fifth round waits for one of its own; the others kill at once or up
	# to 0.5 s into the stores.
	acked0=$(grep -c acked "$T_DIR/log" 2>/dev/null)
	if [ $((rounds % 5)) -eq 0 ] && [ "${acked0:-0}" -lt 3 ]; then
		wait_for 10 _acked_since "${acked0:-0}"
	else
		wait_for 10 grep -q . "$T_DIR/log"
	fi
	sleep "0.$(( RANDOM % 5 ))$(( RANDOM % 10 ))"
	vold_kill9
	wait "$wpid" 2>/dev/null
	vold_restart || { echo "# restart failed in round $rounds"; badrounds=$((badrounds + 1)); break; }
	if ! python3 "$T_DIR/check.py" "$VC" "$T_DIR/fids" "$T_DIR/log"; then
		echo "# round $rounds failed (seed $SEED)"
		badrounds=$((badrounds + 1))
	fi
	rounds=$((rounds + 1))
done
echo "# $rounds rounds in $(( $(date +%s) - start )) s, $(grep -c acked "$T_DIR/log") stores acknowledged"
t_ok "$([ $rounds -ge 30 ] && echo 0 || echo 1)" "at least 30 kill -9 rounds ($rounds)"
t_is "$badrounds" 0 "every round: old or new content, every acknowledged store kept"
nacked=$(grep -c acked "$T_DIR/log")
t_ok "$([ "$nacked" -gt 0 ] && echo 0 || echo 1)" "some stores were acknowledged"
[ "$nacked" -gt 0 ] || tail -n 10 "$T_DIR/writer.err" | sed 's/^/#   /'
# Leftovers of the kills are cleaned when the volume is opened again.
python3 "$VC" get /v1/vol/crash >/dev/null
# Volume format 2 keeps a file as chunk objects of 256 KiB (trailing
# zeros and holes not stored): a file of N bytes has at most
# ceil(N / 256 KiB) of them, so more than that in all is a stray.
n_data=$(find "$SRV_ROOT/volumes/crash/data" -type f | wc -l)
n_max=0
for f in $(cat "$T_DIR/fids"); do
	sz=$(python3 "$VC" attr "$f" size)
	n_max=$((n_max + (sz + 262143) / 262144))
done
t_ok "$([ "$n_data" -le "$n_max" ] && echo 0 || echo 1)" "no stray chunk objects after restart ($n_data, at most $n_max for the 4 files)"
t_is "$(find "$SRV_ROOT/volumes/crash/stage" -name '*.tmp' | wc -l)" 0 "no staging temp files after restart"
t_done
