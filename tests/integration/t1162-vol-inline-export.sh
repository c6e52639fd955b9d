#!/bin/bash
# t1162-vol-inline-export: vos export of a volume cairn-vold is changing
# through inline chunks (format 3: the bytes live in meta.tdb) reads one
# instant that includes every acknowledged change: while a writer bumps a
# counter in small file A, then in B (stores of 100 to 130,000
# bytes: inline up to 64 KiB, staged above), and makes a new small file
# at each round, every export succeeds,
# holds A = B or A = B + 1, has A at least at the generation acknowledged
# before it started, every file made before it started with its bytes,
# and no snapshot is left behind.
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 200
VC="$top_srcdir/tests/integration/vol-client.py"

vold_start || exit 99
vos create live >/dev/null || exit 99
export VC_URL=$VOLD_URL VC_VOL=live
make_token live rw "$T_DIR/rw.tok"
export VC_TOKEN=$(cat "$T_DIR/rw.tok")
R=$(vc root)
A=$(vc create "$R" A) && B=$(vc create "$R" B) || exit 99

cat >"$T_DIR/writer.py" <<'PY'
# Bump the counter (the first 8 bytes of a file of a size that changes)
# in A, then in B, then make file nN (N bytes of a pattern of N), until
# killed; write the generation acknowledged in all three to GEN.
import base64, json, os, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))
vc = __import__("vol-client")
root, a, b, gen = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
c = vc.conn()
def body(n):
    size = 100 + (n * 7919) % 129900
    return (b"%08d" % n + bytes([n % 251]) * size)[:size]
CS = 262144
def store_op(fid, base_dv, d):
    """A store of d: inline (data) up to 64 KiB, the protocol's bound;
    staged first (a PUT) above, which makes a chunk object."""
    op = {"op": "store", "opid": os.urandom(16).hex(), "fid": fid, "base_dv": base_dv,
          "txid": os.urandom(16).hex(), "chunk_size": CS, "size": len(d), "chunks": [0]}
    if len(d) <= 65536:
        op["data"] = base64.b64encode(d).decode()
    else:
        st, rep, _ = vc.request("PUT", vc.vpath("/stage/%s/%s/0?size=%d" % (fid, op["txid"], CS)), d, c=c)
        assert st == 204, (st, rep)
    return op
def bump(fid, n):
    at = vc.getattr_(fid)
    st, rep, _ = vc.request("POST", vc.vpath("/op"), json.dumps(store_op(fid, at["dv"], body(n))), c=c)
    assert st == 200, (st, rep)
n = 0
while True:
    n += 1
    bump(a, n); bump(b, n)
    fid = root.split(".")[0] + "." + os.urandom(16).hex()
    st, rep, _ = vc.request("POST", vc.vpath("/batch"), json.dumps({"ops": [
        {"op": "create", "opid": os.urandom(16).hex(), "parent": root, "name": "n%d" % n,
         "fid": fid, "type": "file", "mode": 0o644, "uid": 0, "gid": 0},
        store_op(fid, 0, body(n))]}), c=c)
    assert st == 200 and all(r["status"] == 200 for r in json.loads(rep)["results"]), (st, rep)
    open(gen + ".tmp", "w").write("%d\n" % n)
    os.rename(gen + ".tmp", gen)
PY
cat >"$T_DIR/check.py" <<'PY'
# check.py OUT G0: A = B or B + 1, A >= G0, every nN with N <= G0 there
# with its bytes, every file's bytes those of its generation.
import os, sys
out, g0 = sys.argv[1], int(sys.argv[2])
def body(n):
    size = 100 + (n * 7919) % 129900
    return (b"%08d" % n + bytes([n % 251]) * size)[:size]
bad = []
a, b = open(os.path.join(out, "A"), "rb").read(), open(os.path.join(out, "B"), "rb").read()
ga, gb = int(a[:8] or b"0"), int(b[:8] or b"0")
if not (ga == gb or ga == gb + 1): bad.append("A=%d B=%d" % (ga, gb))
if ga < g0: bad.append("A=%d older than acknowledged %d" % (ga, g0))
if ga and a != body(ga): bad.append("A's bytes are not those of generation %d" % ga)
if gb and b != body(gb): bad.append("B's bytes are not those of generation %d" % gb)
for n in range(1, g0 + 1):
    p = os.path.join(out, "n%d" % n)
    if not os.path.exists(p) or open(p, "rb").read() != body(n):
        bad.append("n%d missing or wrong" % n)
        break
print("# A=%d B=%d, acknowledged before: %d; %s" % (ga, gb, g0, "; ".join(bad) or "ok"))
sys.exit(1 if bad else 0)
PY
python3 "$T_DIR/writer.py" "$VC" "$R" "$A" "$B" "$T_DIR/gen" 2>"$T_DIR/writer.err" &
wpid=$!
t_track_pid $wpid
wait_for 20 test -s "$T_DIR/gen" || exit 99
bad=0 fails=0
for i in $(seq 1 8); do
	rm -rf "$T_DIR/out"
	g0=$(cat "$T_DIR/gen")
	if ! vos export live "$T_DIR/out" >"$T_DIR/export.log" 2>&1; then
		fails=$((fails + 1)); sed 's/^/#   /' "$T_DIR/export.log"; continue
	fi
	python3 "$T_DIR/check.py" "$T_DIR/out" "$g0" || bad=$((bad + 1))
done
g1=$(cat "$T_DIR/gen")
kill $wpid; wait $wpid 2>/dev/null
t_is "$fails" 0 "8 exports of the volume being written all succeed"
t_is "$bad" 0 "each export is one instant with every acknowledged change"
t_ok "$([ "$g1" -ge 8 ] && echo 0 || echo 1)" "the writer kept going meanwhile ($g1 generations)"
t_is "$(grep -c . "$T_DIR/writer.err")" 0 "no write refused"
t_is "$(vos examine live | grep -c 'format 3')" 1 "the volume is format 3"
# Bodies of 100 to 130,000 bytes: those of at most 64 KiB (VS_INLINE_WRITE_MAX,
# sent inline) are inline, the others (staged) objects, so both kinds were
# exported mid-write.
nobj=$(find "$SRV_ROOT/volumes/live/data" -type f 2>/dev/null | wc -l)
nbig=$(python3 -c 'import sys; g=int(sys.argv[1]); print(sum(1 for n in range(1, g + 2) if 100 + (n * 7919) % 129900 > 65536))' "$g1")
t_ok "$([ "$nobj" -ge 1 ] && [ "$nobj" -le $((nbig + 2)) ] && echo 0 || echo 1)" \
	"chunk objects only for bodies over 64 KiB ($nobj objects, $nbig such files made)"
t_is "$(ls -a "$SRV_ROOT/volumes" | grep -c '^\.snap-')" 0 "no snapshot left behind"
t_done
