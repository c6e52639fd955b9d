#!/usr/bin/env python3
"""vol-client.py - a tiny cairn protocol client for the t1xxx integration
tests (python3 standard library only; 127.0.0.1 only).

Environment: VC_URL (http://127.0.0.1:PORT or https://...), VC_TOKEN
(bearer token), VC_VOL (volume name), VC_CA (the CA file for https://;
VOLD_CA from lib.sh when VC_CA is not set).

Commands (print "STATUS" on the first line, then the body, unless said):
  req METHOD PATH [BODY]      raw request; BODY a string, or @FILE
  get PATH                    GET
  op JSON                     POST /v1/vol/VOL/op; adds "opid" if missing
  batch JSON                  POST /v1/vol/VOL/batch of {"ops": [...]}; adds
                              an "opid" to each op that has none
  root                        print the root FID only
  lookup DIRFID NAME          print the FID of NAME in DIRFID (or exit 1)
  attr FID FIELD              print one attribute field (getattr)
  create DIRFID NAME [TYPE]   create a file, print its FID (exit 1 on error)
  mkdir DIRFID NAME           print the new FID
  store FID FILE [CS]         stage FILE in chunks of CS and store it at
                              the current DV; prints "STATUS" + body of the
                              store (exit 0 even on an HTTP error)
  cat FID [CS]                print the file's bytes fetched by chunk GETs
                              (raw, to stdout); exit 1 on any error
"""
import http.client
import json
import os
import signal
import ssl
import sys
import urllib.parse


def conn():
    u = urllib.parse.urlparse(os.environ["VC_URL"])
    if u.scheme == "https":
        ca = os.environ.get("VC_CA") or os.environ.get("VOLD_CA") or None
        ctx = ssl.create_default_context(cafile=ca)
        return http.client.HTTPSConnection(u.hostname, u.port, timeout=30,
                                           context=ctx)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=30)


def request(method, path, body=None, headers=None, c=None):
    h = {}
    tok = os.environ.get("VC_TOKEN")
    if tok:
        h["Authorization"] = "Bearer " + tok
    if headers:
        h.update(headers)
    own = c is None
    c = c or conn()
    if isinstance(body, str):
        body = body.encode()
    c.request(method, path, body=body, headers=h)
    r = c.getresponse()
    data = r.read()
    hdrs = dict((k.lower(), v) for k, v in r.getheaders())
    if own:
        c.close()
    return r.status, data, hdrs


def vpath(rest=""):
    return "/v1/vol/" + os.environ["VC_VOL"] + rest


def out(status, data):
    sys.stdout.write("%d\n" % status)
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.write("\n")


def do_op(obj):
    if "opid" not in obj:
        obj["opid"] = os.urandom(16).hex()
    return request("POST", vpath("/op"), json.dumps(obj),
                   {"Content-Type": "application/json"})


def do_batch(obj):
    for o in obj.get("ops", []):
        if isinstance(o, dict) and "opid" not in o:
            o["opid"] = os.urandom(16).hex()
    return request("POST", vpath("/batch"), json.dumps(obj),
                   {"Content-Type": "application/json"})


def getattr_(fid):
    st, data, _ = request("POST", vpath("/getattr"),
                          json.dumps({"fids": [fid]}))
    if st != 200:
        raise SystemExit("getattr: %d %s" % (st, data))
    return json.loads(data)["attrs"][0]


def root():
    st, data, _ = request("GET", vpath())
    if st != 200:
        raise SystemExit("volinfo: %d %s" % (st, data))
    return json.loads(data)["root"]


def main(a):
    cmd = a[0]
    if cmd == "req":
        body = None
        if len(a) > 3:
            body = a[3]
            if body.startswith("@"):
                body = open(body[1:], "rb").read()
        out(*request(a[1], a[2], body)[:2])
    elif cmd == "get":
        out(*request("GET", a[1])[:2])
    elif cmd == "op":
        out(*do_op(json.loads(a[1]))[:2])
    elif cmd == "batch":
        out(*do_batch(json.loads(a[1]))[:2])
    elif cmd == "root":
        print(root())
    elif cmd == "lookup":
        st, data, _ = request("GET", vpath("/dir/" + a[1]))
        if st != 200:
            sys.exit(1)
        for e in json.loads(data)["entries"]:
            if e["name"] == a[2]:
                print(e["attr"]["fid"])
                return
        sys.exit(1)
    elif cmd == "attr":
        print(getattr_(a[1])[a[2]])
    elif cmd in ("create", "mkdir"):
        o = {"op": cmd, "parent": a[1], "name": a[2], "mode": 0o644,
             "uid": 0, "gid": 0}
        if cmd == "create":
            o["type"] = a[3] if len(a) > 3 else "file"
        st, data, _ = do_op(o)
        if st != 200:
            sys.stderr.write("%s: %d %s\n" % (cmd, st, data))
            sys.exit(1)
        print(json.loads(data)["attr"]["fid"])
    elif cmd == "store":
        fid, fname = a[1], a[2]
        cs = int(a[3]) if len(a) > 3 else 65536
        data = open(fname, "rb").read()
        dv = getattr_(fid)["dv"]
        txid = os.urandom(16).hex()
        c = conn()
        chunks = []
        for i in range(0, max(1, (len(data) + cs - 1) // cs)):
            part = data[i * cs:(i + 1) * cs]
            if not part and len(data):
                break
            st, body, _ = request(
                "PUT", vpath("/stage/%s/%s/%d?size=%d" % (fid, txid, i, cs)),
                part, c=c)
            if st != 204:
                out(st, body)
                return
            chunks.append(i)
        c.close()
        out(*do_op({"op": "store", "fid": fid, "base_dv": dv, "txid": txid,
                    "chunk_size": cs, "size": len(data),
                    "chunks": chunks})[:2])
    elif cmd == "cat":
        fid = a[1]
        cs = int(a[2]) if len(a) > 2 else 65536
        at = getattr_(fid)
        c = conn()
        i = 0
        while True:
            st, body, _ = request(
                "GET", vpath("/data/%s/%d/%d?size=%d" % (fid, at["dv"], i, cs)),
                c=c)
            if st == 416:
                break
            if st != 200:
                sys.stderr.write("cat: %d %s\n" % (st, body))
                sys.exit(1)
            sys.stdout.buffer.write(body)
            if len(body) < cs:
                break
            i += 1
        c.close()
    else:
        raise SystemExit("unknown command " + cmd)


if __name__ == "__main__":
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    main(sys.argv[1:])
