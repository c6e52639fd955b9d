#!/usr/bin/env python3
"""bench-scale-ops.py URL VOL TOKEN PID BIGDIR N - server side of
bench-scale.sh: N creates then N unlinks of files, one POST /op each, in
directory BIGDIR (a FID) and in a new empty directory, alternating rounds;
prints the server CPU (of process PID) and the wall time per op of each,
and the ratio big / empty."""
import http.client, json, os, sys, time, urllib.parse

URL, VOL, TOK, PID, BIG, N = sys.argv[1:7]
PID, N = int(PID), int(N)
HZ = os.sysconf("SC_CLK_TCK")


def conn():
    u = urllib.parse.urlparse(URL)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=60)


def post(c, obj):
    obj["opid"] = os.urandom(16).hex()
    c.request("POST", "/v1/vol/%s/op" % VOL, json.dumps(obj),
              {"Authorization": "Bearer " + TOK,
               "Content-Type": "application/json"})
    r = c.getresponse()
    body = r.read()
    if r.status != 200:
        raise SystemExit("%s: %d %s" % (obj["op"], r.status, body))
    return json.loads(body)


def cpu():
    f = open("/proc/%d/stat" % PID).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / HZ


def root(c):
    c.request("GET", "/v1/vol/%s" % VOL, headers={"Authorization": "Bearer " + TOK})
    return json.loads(c.getresponse().read())["root"]


def mkrm(c, parent, tag):
    c0, t0 = cpu(), time.time()
    fids = []
    for i in range(N):
        r = post(c, {"op": "create", "parent": parent, "name": "%s%05d" % (tag, i),
                     "type": "file", "mode": 0o644, "uid": 0, "gid": 0})
        fids.append(r["attr"]["fid"])
    for i in range(N):
        post(c, {"op": "unlink", "parent": parent, "name": "%s%05d" % (tag, i),
                 "fid": fids[i]})
    return (cpu() - c0) * 1000 / (2 * N), (time.time() - t0) * 1000 / (2 * N)


c = conn()
empty = post(c, {"op": "mkdir", "parent": root(c), "name": "empty-ops",
                 "mode": 0o755, "uid": 0, "gid": 0})["attr"]["fid"]
big, emp = [0, 0], [0, 0]
for rnd in range(3):
    for acc, d in ((big, BIG), (emp, empty)):
        cp, wl = mkrm(c, d, "r%d-" % rnd)
        acc[0] += cp / 3
        acc[1] += wl / 3
print("%-30s %8s %8s %8s" % ("server create+unlink (ms/op)", "big", "empty", "ratio"))
print("%-30s %8.3f %8.3f %8.2f" % ("server CPU", big[0], emp[0], big[0] / max(emp[0], 1e-9)))
print("%-30s %8.3f %8.3f %8.2f" % ("wall (fsynced commits)", big[1], emp[1], big[1] / max(emp[1], 1e-9)))
