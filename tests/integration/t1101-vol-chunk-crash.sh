#!/bin/bash
# t1101-vol-chunk-crash: kill -9 cairn-vold at random points while a
# client makes partial stores (1-3 chunks of 64 KiB, 256 KiB or 1 MiB into
# files of 1-3 MiB, growing or shrinking them) and truncates, at least 20
# rounds: after each restart every file is its last acknowledged content
# or a pending one (never a mix of chunk objects of two versions), and
# after the last one no chunk object is left that no file holds. Seed
# printed for replay.
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 240
crash_setup ccrash
for i in 0 1 2; do
	F=$(python3 "$VC" create "$R" "f$i") || exit 99
	echo "$F" >>"$T_DIR/fids"
	head -c $(( (i + 1) * 1000000 + 12345 )) /dev/urandom >"$T_DIR/init$i"
	python3 "$VC" store "$F" "$T_DIR/init$i" 262144 | head -n 1 | grep -qx 200 || exit 99
	echo "acked $F $(python3 "$VC" attr "$F" dv) $(sha256sum <"$T_DIR/init$i" | cut -d' ' -f1)" >>"$T_DIR/log"
done

cat >"$T_DIR/writer.py" <<'PY'
# Change the files until the server dies; log each change as "pending"
# (the DV and SHA-256 it would make) before and "acked" after its 200.
import hashlib, json, os, random, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))
vc = __import__("vol-client")
fids = open(sys.argv[2]).read().split()
log = open(sys.argv[3], "a", buffering=1)
rnd = random.Random(int(sys.argv[4]))

def read(fid, at):
    data = b""; i = 0; c = vc.conn()
    while True:
        st, body, _ = vc.request("GET", vc.vpath("/data/%s/%d/%d?size=1048576" % (fid, at["dv"], i)), c=c)
        if st == 416: break
        if st != 200: raise SystemExit("GET %d" % st)
        data += body; i += 1
        if len(body) < 1048576: break
    c.close()
    return data

while True:
    fid = rnd.choice(fids)
    try:
        at = vc.getattr_(fid)
        old = read(fid, at)
        size = rnd.choice([len(old), len(old), len(old) + rnd.randrange(1, 300000),
                           max(0, len(old) - rnd.randrange(1, 400000)),
                           rnd.randrange(1000000, 3200000)])
        new = bytearray(old[:size] + bytes(max(0, size - len(old))))
        if rnd.random() < 0.25:
            # A truncate (setattr size): no chunks.
            log.write("pending %s %d %s\n" % (fid, at["dv"] + 1, hashlib.sha256(new).hexdigest()))
            st, body, _ = vc.do_op({"op": "setattr", "fid": fid, "base_dv": at["dv"],
                                    "mask": ["size"], "size": size})
        else:
            cs = rnd.choice([65536, 262144, 1048576])
            n = max(1, (size + cs - 1) // cs)
            chunks = sorted(set(rnd.randrange(n) for _ in range(rnd.randint(1, 3))))
            txid = os.urandom(16).hex()
            c = vc.conn()
            for i in chunks:
                part = os.urandom(max(0, min(cs, size - i * cs)))
                new[i * cs:i * cs + len(part)] = part
                st, body, _ = vc.request("PUT", vc.vpath("/stage/%s/%s/%d?size=%d" % (fid, txid, i, cs)), part, c=c)
                if st != 204: raise SystemExit("stage %d" % st)
            c.close()
            log.write("pending %s %d %s\n" % (fid, at["dv"] + 1, hashlib.sha256(new).hexdigest()))
            st, body, _ = vc.do_op({"op": "store", "fid": fid, "base_dv": at["dv"], "txid": txid,
                                    "chunk_size": cs, "size": size, "chunks": chunks})
        if st == 200:
            log.write("acked %s %d %s\n" % (fid, json.loads(body)["attr"]["dv"], hashlib.sha256(new).hexdigest()))
        else:
            print("writer: %s: %d %s" % (fid, st, body), file=sys.stderr)
    except (OSError, ConnectionError, SystemExit, ValueError) as e:
        print("writer: %s: %r" % (fid, e), file=sys.stderr)
        sys.exit(0)
PY

cat >"$T_DIR/check.py" <<'PY'
# After a restart: each file's (dv, sha256) is its last acknowledged state
# or one of the changes pending after it, read at two chunk sizes.
import hashlib, os, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))
vc = __import__("vol-client")
fids = open(sys.argv[2]).read().split()
ok = {}; pend = {f: [] for f in fids}
for line in open(sys.argv[3]):
    kind, fid, dv, sha = line.split()
    if kind == "acked":
        ok[fid] = (int(dv), sha); pend[fid] = []
    else:
        pend[fid].append((int(dv), sha))
bad = 0
for f in fids:
    at = vc.getattr_(f)
    for cs in (65536, 4194304):
        c = vc.conn(); data = b""; i = 0
        while True:
            st, body, h = vc.request("GET", vc.vpath("/data/%s/%d/%d?size=%d" % (f, at["dv"], i, cs)), c=c)
            if st == 416: break
            if st != 200: print("# GET %s: %d" % (f, st)); bad += 1; break
            if h.get("x-cairn-sha256") != hashlib.sha256(body).hexdigest():
                print("# %s chunk %d: X-Cairn-SHA256 wrong" % (f, i)); bad += 1
            data += body; i += 1
            if len(body) < cs: break
        c.close()
        got = (at["dv"], hashlib.sha256(data).hexdigest())
        if got not in [ok[f]] + pend[f] or len(data) != at["size"]:
            print("# %s: got dv %d sha %s (cs %d), allowed %s" % (f, got[0], got[1][:12], cs,
                  [ok[f]] + pend[f])); bad += 1
    print("%s %d" % (f, at["size"]), file=sys.stderr)
sys.exit(1 if bad else 0)
PY

_acked_since() { [ "$(grep -c acked "$T_DIR/log")" -gt "$1" ]; }

start=$(date +%s)
rounds=0 badrounds=0
while [ $rounds -lt 20 ] || { [ $rounds -lt 100 ] && [ $(( $(date +%s) - start )) -lt "$(t_crash_seconds 40)" ]; }; do
	[ $(( $(date +%s) - start )) -ge 150 ] && break
	python3 "$T_DIR/writer.py" "$VC" "$T_DIR/fids" "$T_DIR/log" "$SEED$rounds" 2>>"$T_DIR/writer.err" &
	wpid=$!
	acked0=$(grep -c acked "$T_DIR/log")
	if [ $((rounds % 4)) -eq 0 ]; then
		wait_for 10 _acked_since "$acked0"
	else
		wait_for 10 _acked_since "$((acked0 - 1))"
	fi
	sleep "0.$(( RANDOM % 6 ))$(( RANDOM % 10 ))"
	vold_kill9
	wait "$wpid" 2>/dev/null
	vold_restart || { echo "# restart failed in round $rounds"; badrounds=$((badrounds + 1)); break; }
	if ! python3 "$T_DIR/check.py" "$VC" "$T_DIR/fids" "$T_DIR/log" 2>"$T_DIR/sizes"; then
		echo "# round $rounds failed (seed $SEED)"
		badrounds=$((badrounds + 1))
	fi
	rounds=$((rounds + 1))
done
nacked=$(grep -c acked "$T_DIR/log")
echo "# $rounds rounds in $(( $(date +%s) - start )) s, $((nacked - 3)) changes acknowledged"
t_ok "$([ $rounds -ge 20 ] && echo 0 || echo 1)" "at least 20 kill -9 rounds ($rounds)"
t_is "$badrounds" 0 "every round: old or new content at chunk sizes 64 KiB and 4 MiB, every acknowledged change kept"
t_ok "$([ "$nacked" -gt 10 ] && echo 0 || echo 1)" "changes were acknowledged ($((nacked - 3)))"
# The cleanup at the last open removed every object no map entry names:
# at most one object per 256 KiB of each file.
most=$(awk '{ n += int(($2 + 262143) / 262144) } END { print n }' "$T_DIR/sizes")
objs=$(find "$SRV_ROOT/volumes/ccrash/data" -type f | wc -l)
t_ok "$([ "$objs" -le "$most" ] && echo 0 || echo 1)" "no stray chunk objects ($objs for at most $most chunks)"
t_is "$(find "$SRV_ROOT/volumes/ccrash/stage" -name '*.tmp' | wc -l)" 0 "no staging temp files after restart"
t_done
