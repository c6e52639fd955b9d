#!/bin/bash
# t1160-vol-inline-crash: kill -9 cairn-vold while 3 clients write small
# files the way cairnd closes them (one batch: create with the client's
# FID, store with the bytes inline, setattr), rewrite their own files
# (inline stores of 1 B to 64 KiB, as base64 or in the body's attachment
# of protocol 7, staged stores of 64 KiB + 1 to 200 KiB
# that make a chunk object, truncates that trim an object back into an
# inline chunk), so that kills land inside commits of inline chunks (format
# 3) and of chunk objects, alone and in group commits; at least 15 rounds.
# After each restart: every file is in the state of its last acknowledged
# request or of the one request sent after it (never torn, never older);
# every request is sent again with the same opids and answered as the
# first time if it was acknowledged (byte for byte), 200 for each op
# otherwise (applied then or now, never twice); then every file is in the
# state of its last request, bytes and mode. At the end the directory has
# exactly the files made. Seed printed.
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 300
crash_setup ic
mkdir -p "$T_DIR/req"

cat >"$T_DIR/writer.py" <<'PY'
# Send requests until the server dies. Each request is saved as
# req/W-NNN.req (route and body) with req/W-NNN.st ("fid size sha mode":
# the file's state once it is applied) before it is sent, and its reply
# as req/W-NNN.rep after a 200. A file is only changed again once its
# last request was acknowledged.
import base64, hashlib, json, os, random, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))
vc = __import__("vol-client")
root, rdir, wid, seed = sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
rnd = random.Random(seed)
c = vc.conn()
mine = {}  # fid -> (dv, data, mode): acknowledged state
n = 0
def oid():
    return os.urandom(16).hex()
def stage(fid, txid, data):
    for i in range((len(data) + 65535) // 65536):
        st, b, _ = vc.request("PUT", vc.vpath("/stage/%s/%s/%d?size=65536" % (fid, txid, i)),
                              data[i * 65536:(i + 1) * 65536], c=c)
        if st != 204:
            print("writer %s: stage status %d %s" % (wid, st, b[:200]), file=sys.stderr)
            sys.exit(1)
att = []  # the bytes of the request being built (protocol 7)
def store(fid, dv, data):
    txid = oid()
    op = {"op": "store", "opid": oid(), "fid": fid, "base_dv": dv, "txid": txid,
          "chunk_size": 65536, "size": len(data)}
    if len(data) <= 65536 and rnd.random() < 0.85:
        op["chunks"] = [0]
        if rnd.random() < 0.5:
            op["data"] = base64.b64encode(data).decode()
        else:
            op["data_off"] = sum(len(a) for a in att)
            op["data_len"] = len(data)
            att.append(data)
    else:
        stage(fid, txid, data)
        op["chunks"] = list(range((len(data) + 65535) // 65536))
    return op
try:
    while n < 40:
        n += 1
        att.clear()
        name = os.path.join(rdir, "%s-%03d" % (wid, n))
        sizes = [1, 100, 3000, 40000, 65536, 65537, 200000]
        if not mine or rnd.random() < 0.6:
            fid = root.split(".")[0] + "." + oid()
            data = os.urandom(rnd.choice(sizes))
            ops = [{"op": "create", "opid": oid(), "parent": root,
                    "name": "%s-%d" % (wid, n), "fid": fid, "type": "file",
                    "mode": 0o644, "uid": 0, "gid": 0},
                   store(fid, 0, data),
                   {"op": "setattr", "opid": oid(), "fid": fid, "base_dv": 0,
                    "mask": ["mode"], "mode": 0o600}]
            route, body, mode = "/batch", json.dumps({"ops": ops, "stop_on_error": True}), 0o600
        else:
            fid = rnd.choice(sorted(mine))
            dv, old, mode = mine[fid]
            if rnd.random() < 0.3 and len(old) > 10:
                # Truncate: an object cut to a small size is inline again.
                data = old[:rnd.choice([5, 1000, 70000])]
                op = {"op": "setattr", "opid": oid(), "fid": fid, "base_dv": dv,
                      "mask": ["size"], "size": len(data)}
            else:
                data = os.urandom(rnd.choice(sizes))
                op = store(fid, dv, data)
            route, body = "/op", json.dumps(op)
        body = body.encode() + (b"\0" + b"".join(att) if att else b"")
        with open(name + ".st", "w") as f:
            f.write("%s %d %s %o" % (fid, len(data), hashlib.sha256(data).hexdigest(), mode))
        with open(name + ".req", "wb") as f:
            f.write(route.encode() + b"\n" + body)
        st, rep, _ = vc.request("POST", vc.vpath(route), body, c=c)
        if st != 200:
            print("writer %s: status %d %s" % (wid, st, rep[:300]), file=sys.stderr)
            sys.exit(1)
        res = json.loads(rep)
        if route == "/batch":
            if any(r["status"] != 200 for r in res["results"]):
                print("writer %s: op not applied %s" % (wid, rep[:300]), file=sys.stderr)
                sys.exit(1)
            dv = res["results"][-1]["body"]["attr"]["dv"]
        else:
            dv = res["attr"]["dv"]
        with open(name + ".tmp", "wb") as f:
            f.write(rep)
        os.rename(name + ".tmp", name + ".rep")
        mine[fid] = (dv, data, mode)
except (OSError, ConnectionError) as e:
    print("writer %s: %r" % (wid, e), file=sys.stderr)
PY

cat >"$T_DIR/check.py" <<'PY'
# After a restart: (1) every file is in the state of its last acknowledged
# request or of the one sent after it; (2) every request not checked yet
# is sent again, in order: acknowledged ones must get the same bytes, the
# others 200 for every op; (3) every file is in the state of its last
# request; then they move to done/. (4) With "final": the directory holds
# exactly the files made, each in its last state.
import hashlib, json, os, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))
vc = __import__("vol-client")
root, rdir = sys.argv[2], sys.argv[3]
final = len(sys.argv) > 4
done = os.path.join(rdir, "done")
os.makedirs(done, exist_ok=True)
def state(fid):
    at = vc.getattr_(fid)
    data = b""
    cc = vc.conn()
    for i in range((at["size"] + 65535) // 65536):
        st, body, _ = vc.request("GET", vc.vpath("/data/%s/%d/%d?size=65536" % (fid, at["dv"], i)), c=cc)
        if st != 200:
            cc.close()
            return "GET chunk %d: %d" % (i, st)
        data += body
    cc.close()
    return "%s %d %s %o" % (fid, len(data), hashlib.sha256(data).hexdigest(), at["mode"])
def reqs_in(d):
    return sorted(f[:-4] for f in os.listdir(d) if f.endswith(".req"))
bad = 0
# The last acknowledged state of every file (over all rounds) and the
# unacknowledged request after it, if any.
last, pending = {}, {}
for d in (done, rdir):
    for r in reqs_in(d):
        p = os.path.join(d, r)
        st = open(p + ".st").read()
        fid = st.split()[0]
        # Requests in done/ were all sent again and applied.
        if d == done or os.path.exists(p + ".rep"):
            last[fid] = st
            pending.pop(fid, None)
        else:
            pending[fid] = st
for fid in set(last) | set(pending):
    have = state(fid) if fid in last else None
    if fid not in last:
        continue  # never acknowledged: may or may not exist yet
    if have != last[fid] and have != pending.get(fid):
        print("# %s: state %s, acknowledged %s, pending %s" % (fid, have, last[fid], pending.get(fid)))
        bad += 1
c = vc.conn()
now = {}
for r in reqs_in(rdir):
    p = os.path.join(rdir, r)
    route, body = open(p + ".req", "rb").read().split(b"\n", 1)
    route = route.decode()
    st, data, _ = vc.request("POST", vc.vpath(route), body, c=c)
    if os.path.exists(p + ".rep"):
        if st != 200 or data != open(p + ".rep", "rb").read():
            print("# %s: acknowledged, but sent again: %d %s" % (r, st, data[:160])); bad += 1
    else:
        sts = [st] if route == "/op" or st != 200 else [x["status"] for x in json.loads(data)["results"]]
        if any(s != 200 for s in sts):
            print("# %s: unacknowledged, sent again: %s %s" % (r, sts, data[:160])); bad += 1
    s = open(p + ".st").read()
    now[s.split()[0]] = s
    for ext in (".req", ".rep", ".st"):
        if os.path.exists(p + ext):
            os.rename(p + ext, os.path.join(done, r + ext))
c.close()
for fid, s in now.items():
    have = state(fid)
    if have != s:
        print("# %s: after sending again: %s, want %s" % (fid, have, s)); bad += 1
if final:
    want, files = set(), {}
    for r in reqs_in(done):
        route, body = open(os.path.join(done, r + ".req"), "rb").read().split(b"\n", 1)
        route, body = route.decode(), body.split(b"\0", 1)[0]
        s = open(os.path.join(done, r + ".st")).read()
        files[s.split()[0]] = s
        if route == "/batch":
            want.add(json.loads(body)["ops"][0]["name"])
    st, data, _ = vc.request("GET", vc.vpath("/dir/" + root))
    ents = [e["name"] for e in json.loads(data)["entries"]]
    if sorted(ents) != sorted(want):
        print("# final: %d entries, %d files made" % (len(ents), len(want))); bad += 1
    for fid, s in files.items():
        if state(fid) != s:
            print("# final: %s is %s, want %s" % (fid, state(fid), s)); bad += 1
    print("# %d files, %d requests in all" % (len(want), len(reqs_in(done))))
sys.exit(1 if bad else 0)
PY

nreq() { ls "$T_DIR/req" | grep -c '\.rep$'; }
_progress() { [ "$(nreq)" -gt "$1" ]; }
start=$(date +%s)
rounds=0 badrounds=0
while [ $rounds -lt 15 ] || { [ $rounds -lt 60 ] && [ $(( $(date +%s) - start )) -lt "$(t_crash_seconds 40)" ]; }; do
	[ $(( $(date +%s) - start )) -ge 200 ] && break
	pids=""
	for w in a b c; do
		python3 "$T_DIR/writer.py" "$VC" "$R" "$T_DIR/req" "r$rounds$w" "$SEED$rounds$w" \
			2>>"$T_DIR/writer.log" &
		pids="$pids $!"
	done
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
t_is "$badrounds" 0 "every round: acknowledged states there, each op applied once"
t_ok "$([ "$acked" -gt 0 ] && echo 0 || echo 1)" "some requests were acknowledged"
t_check "finally every file made, each in its last state" python3 "$T_DIR/check.py" "$VC" "$R" "$T_DIR/req" final
grep '^# .* requests in all' "$T_DIR/check.log" | tail -1
t_is "$(grep -c 'status\|not applied' "$T_DIR/writer.log")" 0 "no request refused while the server was up"
t_is "$(vos examine ic | grep -c 'format 3')" 1 "the volume is format 3 (inline chunks)"
# Inline chunks have no object; every object left is named by the map
# (the cleanup at the last open removed the rest): fewer objects than
# chunks, and vos export gives every file's bytes.
vold_stop
t_check "vos export of the volume" vos export ic "$T_DIR/exp"
python3 - "$T_DIR/req/done" "$T_DIR/exp" >"$T_DIR/exp.check" 2>&1 <<'PY'
import hashlib, json, os, sys
d, exp = sys.argv[1], sys.argv[2]
files, names = {}, {}
for f in sorted(os.listdir(d)):
    if f.endswith(".req"):
        route, body = open(os.path.join(d, f), "rb").read().split(b"\n", 1)
        route, body = route.decode(), body.split(b"\0", 1)[0]
        s = open(os.path.join(d, f[:-4] + ".st")).read().split()
        files[s[0]] = s
        if route == "/batch":
            names[s[0]] = json.loads(body)["ops"][0]["name"]
bad = 0
for fid, s in files.items():
    b = open(os.path.join(exp, names[fid]), "rb").read()
    if len(b) != int(s[1]) or hashlib.sha256(b).hexdigest() != s[2]:
        print("exported %s differs" % names[fid]); bad += 1
print("%d files checked" % len(files))
sys.exit(1 if bad else 0)
PY
t_is $? 0 "the export has every file's last bytes ($(tail -n 1 "$T_DIR/exp.check"))"
t_done
