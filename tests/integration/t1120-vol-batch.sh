#!/bin/bash
# t1120-vol-batch: POST /v1/vol/NAME/batch (protocol version 3) over HTTP:
# a compound create + store of staged chunks + setattr of a new file with
# a client-chosen FID; partial failure (each op its own status, the others
# kept); opid replay of a whole batch and of an opid repeated inside one;
# stop_on_error (424, not recorded); a read-only token; hostile batches
# (malformed, empty, too many ops, too large from the head alone, a bad op
# among good ones: nothing applied); 256 ops in one batch; concurrent
# single ops and batches (group commits) all applied exactly once.
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 120
VC="$top_srcdir/tests/integration/vol-client.py"

vold_start || exit 99
vos create b >/dev/null || exit 99
make_token b rw "$T_DIR/rw.tok"
make_token b ro "$T_DIR/ro.tok"
export VC_URL=$VOLD_URL VC_VOL=b VC_TOKEN=$(cat "$T_DIR/rw.tok")
export RO_TOKEN=$(cat "$T_DIR/ro.tok") VOLD_PORT

cat >"$T_DIR/batch.py" <<'PY'
# Prints one "RC DESCRIPTION" line per check (RC 0 = pass).
import hashlib, json, os, socket, sys, threading, time
sys.path.insert(0, os.path.dirname(sys.argv[1]))
vc = __import__("vol-client")

def check(cond, desc, detail=""):
    print("%d %s" % (0 if cond else 1, desc))
    if not cond and detail:
        print("# %s" % str(detail)[:300], file=sys.stderr)
    sys.stdout.flush()

def newid():
    return os.urandom(16).hex()

def batch(ops, stop=False, token=None):
    body = {"ops": ops}
    if stop:
        body["stop_on_error"] = True
    h = {"Content-Type": "application/json"}
    if token:
        old = os.environ["VC_TOKEN"]; os.environ["VC_TOKEN"] = token
    try:
        st, data, _ = vc.request("POST", vc.vpath("/batch"), json.dumps(body), h)
    finally:
        if token:
            os.environ["VC_TOKEN"] = old
    return st, data

def results(data):
    return json.loads(data)["results"]

def listing(fid):
    st, data, _ = vc.request("GET", vc.vpath("/dir/" + fid))
    return {e["name"]: e["attr"] for e in json.loads(data)["entries"]}

def volinfo():
    return json.loads(vc.request("GET", vc.vpath())[1])

root = vc.root()
vid = root.split(".")[0]

# 1. A new file at close: stage into a FID no object has yet, then
# create + store + setattr in one batch (base_dv 0: the batch's own file).
fid = vid + "." + newid()
txid = newid()
data = os.urandom(65536 + 1234)
c = vc.conn()
for i in range(2):
    st, body, _ = vc.request("PUT", vc.vpath("/stage/%s/%s/%d?size=65536" % (fid, txid, i)),
                             data[i * 65536:(i + 1) * 65536], c=c)
    check(st == 204, "stage chunk %d into a FID that does not exist yet" % i, (st, body))
c.close()
ops = [{"op": "create", "opid": newid(), "parent": root, "name": "new.c", "fid": fid,
        "type": "file", "mode": 0o644, "uid": 1000, "gid": 1000},
       {"op": "store", "opid": newid(), "fid": fid, "base_dv": 0, "txid": txid,
        "chunk_size": 65536, "size": len(data), "chunks": [0, 1]},
       {"op": "setattr", "opid": newid(), "fid": fid, "base_dv": 0,
        "mask": ["mode", "mtime"], "mode": 0o600, "mtime": 1234567890123456789}]
st, body = batch(ops, stop=True)
check(st == 200, "compound batch: 200", (st, body))
r = results(body) if st == 200 else []
check([x["status"] for x in r] == [200, 200, 200], "create, store, setattr: 200 each", body)
check(r and r[0]["body"]["attr"]["fid"] == fid, "the client's FID")
check(len(r) == 3 and r[2]["body"]["attr"]["mode"] == 0o600 and
      r[2]["body"]["attr"]["size"] == len(data) and
      r[2]["body"]["attr"]["dv"] == r[1]["body"]["attr"]["dv"],
      "setattr reply: mode, size, dv of the store")
at = vc.getattr_(fid)
check(at["size"] == len(data) and at["mode"] == 0o600 and at["mtime"] == 1234567890123456789,
      "getattr agrees", at)
got = b""
c = vc.conn()
for i in range(2):
    st, b, _ = vc.request("GET", vc.vpath("/data/%s/%d/%d?size=65536" % (fid, at["dv"], i)), c=c)
    got += b
c.close()
check(got == data, "the staged bytes are the file's content")
check(len(r) == 3 and all("event_seq" in x["body"] for x in r) and
      r[0]["body"]["event_seq"] < r[1]["body"]["event_seq"] < r[2]["body"]["event_seq"],
      "event_seq grows op by op")
ev0 = volinfo()["event_seq"]
st2, body2 = batch(ops, stop=True)
check(st2 == 200 and body2 == body, "the batch again: the same reply, byte for byte")
check(volinfo()["event_seq"] == ev0, "and nothing changed")

# 2. Partial failure.
rid = newid()
ops = [{"op": "create", "opid": rid, "parent": root, "name": "a", "type": "file",
        "mode": 0o644, "uid": 0, "gid": 0},
       {"op": "create", "opid": newid(), "parent": root, "name": "a", "type": "file",
        "mode": 0o644, "uid": 0, "gid": 0},
       {"op": "mkdir", "opid": newid(), "parent": root, "name": "d", "mode": 0o755,
        "uid": 0, "gid": 0},
       {"op": "unlink", "opid": newid(), "parent": root, "name": "nosuch", "fid": fid},
       {"op": "create", "opid": rid, "parent": root, "name": "dup-opid", "type": "file",
        "mode": 0o644, "uid": 0, "gid": 0},
       {"op": "setattr", "opid": newid(), "fid": fid, "base_dv": 1, "mask": ["mode"],
        "mode": 0o644}]
ev0 = volinfo()["event_seq"]
st, body = batch(ops)
r = results(body) if st == 200 else []
check([x["status"] for x in r] == [200, 409, 200, 404, 200, 412],
      "partial failure: 200 409 200 404 200 412", body)
check(len(r) == 6 and r[1]["body"]["errno"] == "EEXIST" and r[3]["body"]["errno"] == "ENOENT"
      and r[5]["body"]["errno"] == "ECANCELED" and r[5]["body"]["dv"] == at["dv"],
      "each failure has its errno (and 412 its dv)")
check(len(r) == 6 and r[4] == r[0], "an opid repeated inside the batch: the first reply")
names = listing(root)
check("a" in names and "d" in names and "dup-opid" not in names and "nosuch" not in names,
      "applied ops stay, failed ones left nothing", sorted(names))
check(volinfo()["event_seq"] == ev0 + 2, "two dir events: the two ops applied")
st2, body2 = batch(ops)
check(st2 == 200 and body2 == body, "retried: the same reply, refusals included")

# 3. stop_on_error.
ops = [{"op": "create", "opid": newid(), "parent": root, "name": "s1", "type": "file",
        "mode": 0o644, "uid": 0, "gid": 0},
       {"op": "create", "opid": newid(), "parent": root, "name": "a", "type": "file",
        "mode": 0o644, "uid": 0, "gid": 0},
       {"op": "create", "opid": newid(), "parent": root, "name": "s2", "type": "file",
        "mode": 0o644, "uid": 0, "gid": 0}]
st, body = batch(ops, stop=True)
r = results(body) if st == 200 else []
check([x["status"] for x in r] == [200, 409, 424], "stop_on_error: 200 409 424", body)
check(len(r) == 3 and r[2]["body"]["errno"] == "EAGAIN", "424 says EAGAIN")
check("s2" not in listing(root), "the op after the failure did not run")
st, body = batch(ops[2:])
check(st == 200 and results(body)[0]["status"] == 200,
      "the op not applied runs when sent again (it was never recorded)")

# 4. Tokens and methods.
st, body = batch([{"op": "create", "opid": newid(), "parent": root, "name": "ro",
                   "type": "file", "mode": 0o644, "uid": 0, "gid": 0}], token=os.environ["RO_TOKEN"])
check(st == 403, "a read-only token cannot send a batch", (st, body))
st, body, _ = vc.request("GET", vc.vpath("/batch"))
check(st == 405, "GET /batch: 405", st)

# 5. Hostile batches: nothing applied.
ev0 = volinfo()["event_seq"]
def raw(body):
    st, data, _ = vc.request("POST", vc.vpath("/batch"), body)
    try:
        e = json.loads(data).get("errno")
    except ValueError:
        e = None
    return st, e
check(raw("{\"ops\": [") == (400, "EINVAL"), "truncated JSON: 400 EINVAL")
check(raw("{\"ops\": []}") == (400, "EINVAL"), "no ops: 400 EINVAL")
check(raw("[]") == (400, "EINVAL"), "not an object: 400 EINVAL")
check(raw("{\"ops\": [{\"op\": \"create\"}]}") == (400, "EINVAL"), "an op without its members")
many = [{"op": "setattr", "opid": newid(), "fid": fid, "base_dv": 1, "mask": []} for _ in range(257)]
check(raw(json.dumps({"ops": many})) == (413, "E2BIG"), "257 ops: 413 E2BIG")
good = {"op": "create", "opid": newid(), "parent": root, "name": "good", "type": "file",
        "mode": 0o644, "uid": 0, "gid": 0}
bad = dict(good, opid=newid(), name="..")
check(raw(json.dumps({"ops": [good, bad]})) == (400, "EINVAL"),
      "a bad op among good ones: the whole batch refused")
check("good" not in listing(root) and volinfo()["event_seq"] == ev0,
      "nothing of the refused batches was applied")
# Over the limit from the head alone: refused before any body is sent.
s = socket.create_connection(("127.0.0.1", int(os.environ["VOLD_PORT"])), timeout=5)
s.sendall(("POST /v1/vol/b/batch HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
           "Content-Length: %d\r\n\r\n" % (os.environ["VC_TOKEN"], 25427968 + 1)).encode())
rep = b""
try:
    while b"\r\n\r\n" not in rep or not rep.rstrip().endswith(b"}"):
        b = s.recv(4096)
        if not b:
            break
        rep += b
except OSError:
    pass
s.close()
check(rep.startswith(b"HTTP/1.1 413") and b"E2BIG" in rep,
      "a body over 25,427,968 bytes is refused from the head (413)", rep[:80])

# 6. 256 ops in one batch.
sub = vc.request("POST", vc.vpath("/op"), json.dumps(
    {"op": "mkdir", "opid": newid(), "parent": root, "name": "many", "mode": 0o755,
     "uid": 0, "gid": 0}))
many_dir = json.loads(sub[1])["attr"]["fid"]
ops = [{"op": "create", "opid": newid(), "parent": many_dir, "name": "f%03d" % i,
        "type": "file", "mode": 0o644, "uid": 0, "gid": 0} for i in range(256)]
t0 = time.time()
st, body = batch(ops)
dt = time.time() - t0
check(st == 200 and all(x["status"] == 200 for x in results(body)),
      "256 creates in one batch: all 200")
check(len(listing(many_dir)) == 256, "256 entries")
print("# 256 creates in one batch: %.1f ms" % (dt * 1000), file=sys.stderr)

# 7. Concurrent single ops and batches: group commits, each op once.
conc = vc.request("POST", vc.vpath("/op"), json.dumps(
    {"op": "mkdir", "opid": newid(), "parent": root, "name": "conc", "mode": 0o755,
     "uid": 0, "gid": 0}))
cdir = json.loads(conc[1])["attr"]["fid"]
errors = []
def worker(w):
    c = vc.conn()
    for i in range(40):
        if i % 4 == 3:
            ops = [{"op": "create", "opid": newid(), "parent": cdir,
                    "name": "w%d-%d-%d" % (w, i, k), "type": "file", "mode": 0o644,
                    "uid": 0, "gid": 0} for k in range(8)]
            st, data, _ = vc.request("POST", vc.vpath("/batch"), json.dumps({"ops": ops}), c=c)
            if st != 200 or any(x["status"] != 200 for x in json.loads(data)["results"]):
                errors.append((w, i, st, data[:100]))
        else:
            st, data, _ = vc.request("POST", vc.vpath("/op"), json.dumps(
                {"op": "create", "opid": newid(), "parent": cdir, "name": "w%d-%d" % (w, i),
                 "type": "file", "mode": 0o644, "uid": 0, "gid": 0}), c=c)
            if st != 200:
                errors.append((w, i, st, data[:100]))
    c.close()
ths = [threading.Thread(target=worker, args=(w,)) for w in range(8)]
ev0 = volinfo()["event_seq"]
t0 = time.time()
for t in ths: t.start()
for t in ths: t.join()
dt = time.time() - t0
check(not errors, "8 clients, 320 requests at once: all 200", errors[:3])
n = 8 * (30 + 10 * 8)
check(len(listing(cdir)) == n, "all %d files there" % n)
check(volinfo()["event_seq"] == ev0 + n, "one event per create, none twice")
print("# 8 concurrent clients: %d creates in %.2f s" % (n, dt), file=sys.stderr)
PY

python3 "$T_DIR/batch.py" "$VC" >"$T_DIR/checks" 2>"$T_DIR/batch.log"
rc=$?
while read -r st desc; do t_ok "$st" "$desc"; done <"$T_DIR/checks"
t_is "$rc" 0 "the check script ran to its end"
sed 's/^/  /' "$T_DIR/batch.log" | grep '^  #' || true
grep -q "group commit\|cannot" "$T_DIR/vold.log" && grep "cannot" "$T_DIR/vold.log" | head -3 | sed 's/^/# vold: /'
t_done
