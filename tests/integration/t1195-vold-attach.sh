#!/usr/bin/env bash
# t1195-vold-attach: a store's bytes in the attachment of a request body
# (protocol 7, doc/protocol.md "The attachment of a request body"),
# against a real cairn-vold. The volume says protocol 7; a batch of a
# store with its bytes after the JSON text and a NUL is applied, and the
# chunk read back is those bytes (one byte, 64 KiB, two stores of one
# body); a single op's body likewise. Hostile bodies are refused with
# 400 (413 for E2BIG) and the errno the page names, and nothing of their batch is
# applied (the file keeps its bytes and DV): a range past the end, an
# offset that would wrap, an empty range, 64 KiB + 1, a range and base64,
# a range without an attachment, bytes no store names (before, after
# or between ranges: two stores naming the same bytes), a NUL and
# nothing, a NUL inside the JSON text, and every cut of a good body.
. "$top_srcdir/tests/integration/lib.sh"
t_timeout 120
crash_setup at
export VC_ROOT=$R

python3 - "$VC" >"$T_DIR/out" 2>&1 <<'PY'
import json, os, sys
sys.path.insert(0, os.path.dirname(sys.argv[1]))
vc = __import__("vol-client")
root = os.environ["VC_ROOT"]
def oid():
    return os.urandom(16).hex()
def say(name, ok, extra=""):
    print("%s %s%s" % ("ok" if ok else "FAIL", name, " (" + extra + ")" if extra else ""))
def create(name):
    st, b, _ = vc.do_op({"op": "create", "parent": root, "name": name, "uid": 0, "gid": 0,
                         "mode": 0o644, "type": "file"})
    if st != 200:
        raise SystemExit("create: %d %s" % (st, b))
    return json.loads(b)["attr"]["fid"]
def store(fid, size, extra):
    o = {"op": "store", "opid": oid(), "fid": fid,
         "base_dv": vc.getattr_(fid)["dv"], "txid": oid(),
         "chunk_size": 65536, "size": size, "chunks": [0]}
    o.update(extra)
    return o
def post(route, ops, att, ctype="application/vnd.cairn.ops"):
    text = json.dumps({"ops": ops} if route == "/batch" else ops).encode()
    body = text if att is None else text + b"\0" + att
    return vc.request("POST", vc.vpath(route), body, {"Content-Type": ctype})
def data(fid):
    a = vc.getattr_(fid)
    st, b, _ = vc.request("GET", vc.vpath("/data/%s/%d/0?size=65536" % (fid, a["dv"])))
    return (b if st == 200 else None), a["dv"], a["size"]

st, b, _ = vc.request("GET", vc.vpath())
say("the volume says protocol 7 or later", st == 200 and json.loads(b).get("protocol", 0) >= 7, b[:80].decode())
f = create("f")
big = bytes((i * 7 + 3) & 255 for i in range(65536))
for n, payload in (("one byte", b"\x00"), ("64 KiB", big)):
    st, b, _ = post("/batch", [store(f, len(payload),
                                     {"data_off": 0, "data_len": len(payload)})], payload)
    got = data(f)
    say("%s from the attachment: 200" % n, st == 200, "%d %s" % (st, b[:100]))
    say("%s: the chunk reads back" % n, got[0] == payload and got[2] == len(payload))
# Two stores in one body: ranges one after the other.
g = create("g")
st, b, _ = post("/batch", [store(f, 3, {"data_off": 0, "data_len": 3}),
                           store(g, 5, {"data_off": 3, "data_len": 5})], b"abcHELLO")
say("two stores of one body: 200", st == 200, "%d %s" % (st, b[:100]))
say("... each its range", data(f)[0] == b"abc" and data(g)[0] == b"HELLO")
st, b, _ = post("/op", store(g, 4, {"data_off": 0, "data_len": 4}), b"op..")
say("a single op with an attachment: 200", st == 200, "%d %s" % (st, b[:100]))
say("... its bytes", data(g)[0] == b"op..")

before = data(f)
h = create("h")
def bad(name, route, extra, att, want, plain=False):
    ops = [{"op": "setattr", "opid": oid(), "fid": h, "base_dv": 0,
            "mask": ["mode"], "mode": 0o600}, store(f, 5, extra)]
    st, b, _ = post(route, ops if route == "/batch" else ops[1], att)
    try:
        e = json.loads(b).get("errno")
    except Exception:
        e = None
    code = 413 if want == "E2BIG" else 400
    say("%s: %d %s" % (name, code, want), st == code and e == want, "%d %s" % (st, b[:120]))
    say("%s: nothing applied" % name,
        data(f) == before and vc.getattr_(h)["mode"] & 0o777 == 0o644)
for route in ("/batch", "/op"):
    bad("range past the end " + route, route, {"data_off": 1, "data_len": 5}, b"hello", "EINVAL")
    bad("offset that wraps " + route, route, {"data_off": 2**64 - 1, "data_len": 5}, b"hello", "EINVAL")
    bad("empty range " + route, route, {"data_off": 0, "data_len": 0}, b"hello", "EINVAL")
    bad("64 KiB + 1 " + route, route, {"data_off": 0, "data_len": 65537}, big + b"x", "E2BIG")
    bad("a range and base64 " + route, route, {"data_off": 0, "data_len": 5, "data": "aGVsbG8="},
        b"hello", "EINVAL")
    bad("an offset alone " + route, route, {"data_off": 0}, b"hello", "EINVAL")
    bad("a range, no attachment " + route, route, {"data_off": 0, "data_len": 5}, None, "EINVAL")
    bad("bytes nothing names " + route, route, {"data": "aGVsbG8="}, b"hello", "EINVAL")
    bad("a NUL and nothing " + route, route, {"data": "aGVsbG8="}, b"", "EINVAL")
    bad("bytes before the range " + route, route, {"data_off": 1, "data_len": 5}, b"xhello", "EINVAL")
    bad("bytes after the range " + route, route, {"data_off": 0, "data_len": 5}, b"hellox", "EINVAL")
# Two stores naming the same bytes: each range starts where the last ended.
st, b, _ = post("/batch", [store(f, 5, {"data_off": 0, "data_len": 5}),
                           store(g, 5, {"data_off": 0, "data_len": 5})], b"hello")
e = json.loads(b).get("errno") if st != 200 else None
say("two stores, one range: 400 EINVAL", st == 400 and e == "EINVAL", "%d %s" % (st, b[:100]))
say("... nothing applied", data(f) == before)
# A NUL inside the JSON text.
good = json.dumps({"ops": [store(f, 5, {"data_off": 0, "data_len": 5})]}).encode()
cut = good[:20] + b"\0" + good[20:] + b"\0hello"
st, b, _ = vc.request("POST", vc.vpath("/batch"), cut)
say("a NUL inside the JSON text: 400", st == 400, "%d" % st)
# Every cut of a good body (JSON, NUL, 5 bytes) is refused.
body = good + b"\0hello"
wrong = [i for i in range(1, len(body)) if vc.request("POST", vc.vpath("/batch"), body[:i])[0] != 400]
say("every cut of a good body: 400", not wrong, "cuts not refused: %s" % wrong[:5])
say("... nothing applied", data(f) == before)
st, b, _ = vc.request("POST", vc.vpath("/batch"), body)
say("the whole body: 200", st == 200, "%d %s" % (st, b[:100]))
say("... its bytes", data(f)[0] == b"hello")
PY
rc=$?
sed 's/^/# /' "$T_DIR/out" | grep -v '^# ok ' | head -40
n=0
while read -r res rest; do
	n=$((n + 1))
	t_is "$res" ok "$rest"
done < <(grep -E '^(ok|FAIL) ' "$T_DIR/out")
t_is "$rc" 0 "the client ran to its end"
t_check "50 or more checks ran ($n)" [ "$n" -ge 50 ]
t_done
