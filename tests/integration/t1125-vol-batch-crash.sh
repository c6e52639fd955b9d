#!/bin/bash
# t1125-vol-batch-crash: kill -9 cairn-vold while 3 clients send batches
# (1 to 32 creates, some with stop_on_error), single ops, and compound
# batches of a new file (create with the client's FID + store of chunks
# staged before + setattr) at once, so that kills land inside batches and
# group commits; at least 15 rounds.
# After each restart: every acknowledged op is there (checked before
# anything is sent again), and every request sent again with the same
# opids is answered as the first time if it was acknowledged (byte for
# byte) and with 200 for each op otherwise (applied then or now, never
# twice: a create applied without its opid record would be 409). At the
# end the directory holds exactly one entry per create, and every file
# made by a compound batch has the bytes and mode it was sent with. Seed
# printed.
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 240
crash_setup bc
mkdir -p "$T_DIR/req"

cat >"$T_DIR/writer.py" <<'PY'
# Send requests until the server dies. Each request is saved as
# req/W-N.req (route and body) before it is sent, and its reply as
# req/W-N.rep after a 200.
import hashlib, json, os, random, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))
vc = __import__("vol-client")
root, rdir, wid, seed = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
rnd = random.Random(seed)
n = 0
c = vc.conn()
while n < 60:
    n += 1
    k = rnd.choice([1, 1, 2, 4, 16, 32, 0])
    ops = [{"op": "create", "opid": os.urandom(16).hex(), "parent": root,
            "name": "%s-%d-%d" % (wid, n, i), "type": "file", "mode": 0o644,
            "uid": 0, "gid": 0} for i in range(k)]
    sha = None
    if k == 0:
        # A new file at close: stage under the client's FID, then one
        # batch. Only a file whose chunks are all staged gets a .req.
        fid = root.split(".")[0] + "." + os.urandom(16).hex()
        txid = os.urandom(16).hex()
        data = os.urandom(rnd.choice([1, 65536, 100000, 200000]))
        nch = (len(data) + 65535) // 65536
        try:
            for i in range(nch):
                st, b, _ = vc.request("PUT", vc.vpath("/stage/%s/%s/%d?size=65536" % (fid, txid, i)),
                                      data[i * 65536:(i + 1) * 65536], c=c)
                if st != 204:
                    print("writer %s: stage status %d %s" % (wid, st, b[:200]), file=sys.stderr)
                    sys.exit(1)
        except (OSError, ConnectionError) as e:
            print("writer %s: %r" % (wid, e), file=sys.stderr)
            sys.exit(0)
        ops = [{"op": "create", "opid": os.urandom(16).hex(), "parent": root,
                "name": "%s-%d-f" % (wid, n), "fid": fid, "type": "file", "mode": 0o644,
                "uid": 0, "gid": 0},
               {"op": "store", "opid": os.urandom(16).hex(), "fid": fid, "base_dv": 0,
                "txid": txid, "chunk_size": 65536, "size": len(data),
                "chunks": list(range(nch))},
               {"op": "setattr", "opid": os.urandom(16).hex(), "fid": fid, "base_dv": 0,
                "mask": ["mode"], "mode": 0o600}]
        sha = "%s %d %s" % (fid, len(data), hashlib.sha256(data).hexdigest())
    if k == 1 and rnd.random() < 0.5:
        route, body = "/op", json.dumps(ops[0])
    else:
        route = "/batch"
        b = {"ops": ops}
        if k == 0 or rnd.random() < 0.3:
            b["stop_on_error"] = True
        body = json.dumps(b)
    name = os.path.join(rdir, "%s-%d" % (wid, n))
    if sha:
        with open(name + ".sha", "w") as f:
            f.write(sha)
    with open(name + ".req", "w") as f:
        f.write(route + "\n" + body)
    try:
        st, data, _ = vc.request("POST", vc.vpath(route), body, c=c)
    except (OSError, ConnectionError) as e:
        print("writer %s: %r" % (wid, e), file=sys.stderr)
        sys.exit(0)
    if st != 200:
        print("writer %s: status %d %s" % (wid, st, data[:200]), file=sys.stderr)
        sys.exit(1)
    with open(name + ".tmp", "wb") as f:
        f.write(data)
    os.rename(name + ".tmp", name + ".rep")
PY

cat >"$T_DIR/check.py" <<'PY'
# After a restart: (1) every op of every acknowledged request is in the
# directory; (2) every request not checked yet is sent again: acknowledged
# ones must get the same bytes, the others 200 for every op; then it is
# moved to done/. (3) With "final": one entry per op sent, no other.
import hashlib, json, os, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))
vc = __import__("vol-client")
root, rdir = sys.argv[2], sys.argv[3]
final = len(sys.argv) > 4
done = os.path.join(rdir, "done")
os.makedirs(done, exist_ok=True)
def names():
    st, data, _ = vc.request("GET", vc.vpath("/dir/" + root))
    return set(e["name"] for e in json.loads(data)["entries"])
def ops_of(route, body):
    b = json.loads(body)
    ops = b["ops"] if route == "/batch" else [b]
    return [o for o in ops if o["op"] == "create"]
def content_ok(r, p):
    fid, size, sha = open(p + ".sha").read().split()
    at = vc.getattr_(fid)
    data = b""
    cc = vc.conn()
    for i in range((int(size) + 65535) // 65536):
        st, body, _ = vc.request("GET", vc.vpath("/data/%s/%d/%d?size=65536" % (fid, at["dv"], i)), c=cc)
        if st != 200:
            print("# %s: GET chunk %d: %d" % (r, i, st)); return False
        data += body
    cc.close()
    if at["size"] != int(size) or at["mode"] != 0o600 or hashlib.sha256(data).hexdigest() != sha:
        print("# %s: file %s: size %d mode %o, content %s" % (r, fid, at["size"], at["mode"],
              "ok" if hashlib.sha256(data).hexdigest() == sha else "wrong")); return False
    return True
bad = 0
have = names()
reqs = sorted(f[:-4] for f in os.listdir(rdir) if f.endswith(".req"))
for r in reqs:
    p = os.path.join(rdir, r)
    route, body = open(p + ".req").read().split("\n", 1)
    if os.path.exists(p + ".rep"):
        for o in ops_of(route, body):
            if o["name"] not in have:
                print("# %s: acknowledged %s missing" % (r, o["name"])); bad += 1
        if os.path.exists(p + ".sha") and not content_ok(r, p):
            bad += 1
c = vc.conn()
for r in reqs:
    p = os.path.join(rdir, r)
    route, body = open(p + ".req").read().split("\n", 1)
    st, data, _ = vc.request("POST", vc.vpath(route), body, c=c)
    if os.path.exists(p + ".rep"):
        if st != 200 or data != open(p + ".rep", "rb").read():
            print("# %s: acknowledged, but sent again: %d %s" % (r, st, data[:120])); bad += 1
    else:
        if route == "/op":
            sts = [st]
        else:
            sts = [x["status"] for x in json.loads(data)["results"]] if st == 200 else [st]
        if any(s != 200 for s in sts):
            print("# %s: unacknowledged, sent again: %s" % (r, sts)); bad += 1
        elif os.path.exists(p + ".sha") and not content_ok(r, p):
            bad += 1
    for ext in (".req", ".rep", ".sha"):
        if os.path.exists(p + ext):
            os.rename(p + ext, os.path.join(done, r + ext))
c.close()
if final:
    want = set()
    for f in os.listdir(done):
        if f.endswith(".req"):
            route, body = open(os.path.join(done, f)).read().split("\n", 1)
            want |= set(o["name"] for o in ops_of(route, body))
    st, data, _ = vc.request("GET", vc.vpath("/dir/" + root))
    ents = [e["name"] for e in json.loads(data)["entries"]]
    if sorted(ents) != sorted(want):
        print("# final: %d entries, %d ops sent" % (len(ents), len(want))); bad += 1
    print("# %d ops in all" % len(want))
sys.exit(1 if bad else 0)
PY

nreq() { ls "$T_DIR/req" | grep -c '\.rep$'; }
_progress() { [ "$(nreq)" -gt "$1" ]; }
start=$(date +%s)
rounds=0 badrounds=0
while [ $rounds -lt 15 ] || { [ $rounds -lt 60 ] && [ $(( $(date +%s) - start )) -lt "$(t_crash_seconds 40)" ]; }; do
	[ $(( $(date +%s) - start )) -ge 150 ] && break
	pids=""
	for w in a b c; do
		python3 "$T_DIR/writer.py" "$VC" "$R" "$T_DIR/req" "$w$rounds" "$SEED$rounds$w" \
			2>>"$T_DIR/writer.log" &
		pids="$pids $!"
	done
	# Kill once the writers have made some progress, at a random moment.
	n0=$(nreq)
	wait_for 10 _progress "$n0"
	sleep "0.$(( RANDOM % 3 ))$(( RANDOM % 10 ))"
	vold_kill9
	for p in $pids; do wait "$p" 2>/dev/null; done
	vold_restart || { echo "# restart failed in round $rounds"; badrounds=$((badrounds + 1)); break; }
	if ! python3 "$T_DIR/check.py" "$VC" "$R" "$T_DIR/req" >>"$T_DIR/check.log" 2>&1; then
		echo "# round $rounds failed (seed $SEED)"
		tail -n 5 "$T_DIR/check.log" | sed 's/^/#   /'
		badrounds=$((badrounds + 1))
	fi
	rounds=$((rounds + 1))
done
acked=$(ls "$T_DIR/req/done" | grep -c '\.rep$')
echo "# $rounds rounds in $(( $(date +%s) - start )) s, $acked requests acknowledged"
t_ok "$([ $rounds -ge 15 ] && echo 0 || echo 1)" "at least 15 kill -9 rounds ($rounds)"
t_is "$badrounds" 0 "every round: acknowledged ops there, each op applied once"
t_ok "$([ "$acked" -gt 0 ] && echo 0 || echo 1)" "some requests were acknowledged"
t_check "finally one entry per op sent" python3 "$T_DIR/check.py" "$VC" "$R" "$T_DIR/req" final
grep '^# .* ops in all' "$T_DIR/check.log" | tail -1
t_is "$(grep -c 'status' "$T_DIR/writer.log")" 0 "no request refused while the server was up"
t_done
