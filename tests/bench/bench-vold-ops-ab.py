#!/usr/bin/env python3
"""bench-vold-ops-ab.py - cairn-vold's CPU a small op, two servers side
by side (tests/bench/bench-vold-ops-ab.sh runs it): one client sends
MODE requests one at a time, acknowledged before the next, alternating
blocks of BLOCK between server A and server B (who goes first alternates
too), so both see the same load on a shared machine. For each server:
CPU ms a request (user + system of its process, /proc/PID/stat), user
ms, and context switches a request (all its threads,
/proc/PID/task/*/status).

MODE: create (POST /op create), setattr (POST /op setattr of mode on
files made first, not counted), newfile (POST /batch: create with the
client's FID, store of 1 KiB inline, setattr: how cairnd closes a new
small file; one request = three ops).

usage: bench-vold-ops-ab.py MODE N BLOCK URL_A TOKEN_A PID_A URL_B TOKEN_B PID_B
(volume "v" on both). Prints: MODE A cpu (user, cs) B cpu (user, cs) B/A.
"""
import base64
import http.client
import json
import os
import sys
import urllib.parse

MODE, N, BLOCK = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
HZ = os.sysconf("SC_CLK_TCK")
DATA = base64.b64encode(os.urandom(1024)).decode()


class Server:
    def __init__(self, url, tok, pid):
        u = urllib.parse.urlparse(url)
        self.c = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        self.tok, self.pid = tok, int(pid)
        self.cpu = self.user = self.cs = 0.0
        self.n = 0
        self.c.request("GET", "/v1/vol/v",
                       headers={"Authorization": "Bearer " + tok})
        root = json.loads(self.c.getresponse().read())["root"]
        st, b = self.post("op", {"op": "mkdir", "opid": os.urandom(16).hex(),
                                 "parent": root,
                                 "name": "d" + os.urandom(4).hex(),
                                 "mode": 0o755, "uid": 0, "gid": 0})
        if st != 200:
            raise SystemExit("mkdir: %d %s" % (st, b[:300]))
        self.d = json.loads(b)["attr"]["fid"]
        self.fids = []

    def post(self, path, obj):
        self.c.request("POST", "/v1/vol/v/%s" % path, json.dumps(obj),
                       {"Authorization": "Bearer " + self.tok,
                        "Content-Type": "application/json"})
        r = self.c.getresponse()
        return r.status, r.read()

    def sample(self):
        f = open("/proc/%d/stat" % self.pid).read().rsplit(")", 1)[1].split()
        cs = 0
        for t in os.listdir("/proc/%d/task" % self.pid):
            try:
                for line in open("/proc/%d/task/%s/status" % (self.pid, t)):
                    if line.startswith(("voluntary_ctxt",
                                        "nonvoluntary_ctxt")):
                        cs += int(line.split()[1])
            except FileNotFoundError:
                pass
        return (int(f[11]) + int(f[12])) / HZ, int(f[11]) / HZ, cs

    def create(self, name):
        return self.post("op", {"op": "create", "opid": os.urandom(16).hex(),
                                "parent": self.d, "name": name,
                                "type": "file", "mode": 0o644, "uid": 0,
                                "gid": 0})

    def op(self, i):
        if MODE == "create":
            st, b = self.create("f%d" % i)
        elif MODE == "setattr":
            fid, dv = self.fids[i]
            st, b = self.post("op", {"op": "setattr",
                                     "opid": os.urandom(16).hex(),
                                     "fid": fid, "base_dv": dv,
                                     "mask": ["mode"], "mode": 0o600})
        elif MODE == "newfile":
            fid = self.d.split(".")[0] + "." + os.urandom(16).hex()
            ops = [{"op": "create", "opid": os.urandom(16).hex(),
                    "parent": self.d, "name": "n%d" % i, "fid": fid,
                    "type": "file", "mode": 0o644, "uid": 0, "gid": 0},
                   {"op": "store", "opid": os.urandom(16).hex(), "fid": fid,
                    "base_dv": 0, "txid": os.urandom(16).hex(),
                    "chunk_size": 65536, "size": 1024, "chunks": [0],
                    "data": DATA},
                   {"op": "setattr", "opid": os.urandom(16).hex(),
                    "fid": fid, "base_dv": 0, "mask": ["mtime"], "mtime": 1}]
            st, b = self.post("batch", {"ops": ops, "stop_on_error": True})
            if st == 200 and any(r["status"] != 200
                                 for r in json.loads(b)["results"]):
                st = 500
        else:
            raise SystemExit("unknown mode %s" % MODE)
        if st != 200:
            raise SystemExit("%s: %d %s" % (MODE, st, b[:300]))


def main():
    srv = [Server(*sys.argv[4:7]), Server(*sys.argv[7:10])]
    if MODE == "setattr":
        for s in srv:
            for i in range(N):
                st, b = s.create("s%d" % i)
                if st != 200:
                    raise SystemExit("create: %d %s" % (st, b[:300]))
                a = json.loads(b)["attr"]
                s.fids.append((a["fid"], a["dv"]))
    for i in range(0, N, BLOCK):
        order = srv if (i // BLOCK) % 2 == 0 else srv[::-1]
        for s in order:
            c0, u0, x0 = s.sample()
            for k in range(i, min(N, i + BLOCK)):
                s.op(k)
            c1, u1, x1 = s.sample()
            s.cpu += c1 - c0
            s.user += u1 - u0
            s.cs += x1 - x0
            s.n += min(N, i + BLOCK) - i
    a, b = srv
    print("%-8s A %.3f (user %.3f, %.1f cs)  B %.3f (user %.3f, %.1f cs)  "
          "B/A %.2f" % (MODE, a.cpu * 1000 / a.n, a.user * 1000 / a.n,
                        a.cs / a.n, b.cpu * 1000 / b.n, b.user * 1000 / b.n,
                        b.cs / b.n, b.cpu / a.cpu if a.cpu else 0))


if __name__ == "__main__":
    main()
