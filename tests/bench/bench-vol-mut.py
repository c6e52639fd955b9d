#!/usr/bin/env python3
"""bench-vol-mut.py - mutation throughput of a running cairn-vold, for
tests/bench/bench-vol.sh: ops/s and the server's CPU time per op (user +
system of the cairn-vold process, from /proc/PID/stat) for creates and
setattrs sent one at a time, creates from 8 concurrent clients (group
commits), creates in batches of 1, 16 and 256 (POST /batch; a server
without it gets "n/a"), and new small files as cairnd closes them (one
batch: create with the client's FID, store of BENCH_MUT_SMALL (1024)
bytes inline, setattr of the times; protocol 6) from 1 and 4 clients.
Every op is durable (fsynced) when its reply arrives; a new-file row
counts one op per file (three in its batch).

usage: bench-vol-mut.py URL VOLUME TOKEN VOLD_PID [LABEL]
Prints one line per row: LABEL ROW OPS SECONDS OPS/S CPU-MS/OP.
"""
import http.client
import json
import multiprocessing
import os
import sys
import time
import urllib.parse

URL, VOL, TOK, PID = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
LABEL = sys.argv[5] if len(sys.argv) > 5 else "vold"
HZ = os.sysconf("SC_CLK_TCK")
N = int(os.environ.get("BENCH_MUT_OPS", "2000"))


def conn():
    u = urllib.parse.urlparse(URL)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=60)


def post(c, path, obj):
    c.request("POST", "/v1/vol/%s/%s" % (VOL, path), json.dumps(obj),
              {"Authorization": "Bearer " + TOK,
               "Content-Type": "application/json"})
    r = c.getresponse()
    return r.status, r.read()


def cpu():
    f = open("/proc/%d/stat" % PID).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / HZ


def create(parent, name):
    return {"op": "create", "opid": os.urandom(16).hex(), "parent": parent,
            "name": name, "type": "file", "mode": 0o644, "uid": 0, "gid": 0}


def mkdir(c, parent, name):
    st, body = post(c, "op", {"op": "mkdir", "opid": os.urandom(16).hex(),
                              "parent": parent, "name": name, "mode": 0o755,
                              "uid": 0, "gid": 0})
    if st != 200:
        raise SystemExit("mkdir: %d %s" % (st, body))
    return json.loads(body)["attr"]["fid"]


SMALL = int(os.environ.get("BENCH_MUT_SMALL", "1024"))


def newfiles(args):
    """New small files at close, one batch each; args: (parent, volid,
    names). False if the server has no inline stores."""
    import base64
    parent, names = args
    c = conn()
    data = base64.b64encode(os.urandom(SMALL)).decode()
    for n in names:
        fid = parent.split(".")[0] + "." + os.urandom(16).hex()
        ops = [{"op": "create", "opid": os.urandom(16).hex(),
                "parent": parent, "name": n, "fid": fid, "type": "file",
                "mode": 0o644, "uid": 0, "gid": 0},
               {"op": "store", "opid": os.urandom(16).hex(), "fid": fid,
                "base_dv": 0, "txid": os.urandom(16).hex(),
                "chunk_size": 65536, "size": SMALL, "chunks": [0],
                "data": data},
               {"op": "setattr", "opid": os.urandom(16).hex(), "fid": fid,
                "base_dv": 0, "mask": ["mtime"], "mtime": 1}]
        st, body = post(c, "batch", {"ops": ops, "stop_on_error": True})
        if st in (400, 404, 413):
            return False
        if st != 200 or any(r["status"] != 200 for r in
                            json.loads(body)["results"]):
            raise SystemExit("new file: %d %s" % (st, body[:300]))
    c.close()
    return True


def singles(args):
    parent, names = args
    c = conn()
    for n in names:
        st, body = post(c, "op", create(parent, n))
        if st != 200:
            raise SystemExit("create: %d %s" % (st, body))
    c.close()


def row(name, nops, fn):
    c0, t0 = cpu(), time.time()
    ok = fn()
    dt, dc = time.time() - t0, cpu() - c0
    if not ok:
        print("%-8s %-22s %6d %8s %9s %9s" % (LABEL, name, nops, "-", "n/a",
                                            "n/a"))
    else:
        print("%-8s %-22s %6d %8.2f %9.0f %9.3f" %
              (LABEL, name, nops, dt, nops / dt, dc * 1000 / nops))
    sys.stdout.flush()


def main():
    c = conn()
    c.request("GET", "/v1/vol/" + VOL, headers={"Authorization": "Bearer " + TOK})
    root = json.loads(c.getresponse().read())["root"]

    d = mkdir(c, root, "single")

    def one():
        singles((d, ["f%d" % i for i in range(N)]))
        return True
    row("create, 1 client", N, one)

    # setattr (mode) of the files just made, one at a time.
    c.request("GET", "/v1/vol/%s/dir/%s" % (VOL, d),
              headers={"Authorization": "Bearer " + TOK})
    ents = json.loads(c.getresponse().read())["entries"]

    def sa():
        for e in ents[:N]:
            a = e["attr"]
            st, body = post(c, "op", {"op": "setattr",
                                      "opid": os.urandom(16).hex(),
                                      "fid": a["fid"], "base_dv": a["dv"],
                                      "mask": ["mode"], "mode": 0o600})
            if st != 200:
                raise SystemExit("setattr: %d %s" % (st, body))
        return True
    row("setattr, 1 client", min(N, len(ents)), sa)

    d = mkdir(c, root, "conc")
    per = N // 8

    def conc():
        with multiprocessing.Pool(8) as p:
            p.map(singles, [(d, ["w%d-%d" % (w, i) for i in range(per)])
                            for w in range(8)])
        return True
    row("create, 8 clients", per * 8, conc)

    for bs in (1, 16, 256):
        d = mkdir(c, root, "batch%d" % bs)
        nb = max(1, N // bs)

        def bat():
            for b in range(nb):
                ops = [create(d, "b%d-%d" % (b, i)) for i in range(bs)]
                st, body = post(c, "batch", {"ops": ops})
                if st in (404, 413):
                    return False
                if st != 200 or any(r["status"] != 200 for r in
                                    json.loads(body)["results"]):
                    raise SystemExit("batch: %d %s" % (st, body[:200]))
            return True
        row("create, batches of %d" % bs, nb * bs, bat)

    d = mkdir(c, root, "small")
    nf = N // 2

    def small1():
        return newfiles((d, ["s%d" % i for i in range(nf)]))
    row("new %d B file, 1 client" % SMALL, nf, small1)

    def small4():
        with multiprocessing.Pool(4) as p:
            return all(p.map(newfiles, [(d, ["c%d-%d" % (w, i) for i in
                                              range(nf // 4)])
                                         for w in range(4)]))
    row("new %d B file, 4 clients" % SMALL, (nf // 4) * 4, small4)
    c.close()


if __name__ == "__main__":
    main()
