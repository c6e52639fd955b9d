"""t2353-order.py - read spoilproxy's POST log (LOG.bodies: "STATUS PATH
BODY", in the order the server answered) and print every store of a file
that reached the server while the file still had set-ID bits that the same
request did not clear: new data with the old bits (review 10, finding 1).
A file first seen in the log is taken to have its bits set (the test
made every file it writes 6777 before the log starts); a create sets them
from its mode. A request is one step: a batch [store, setattr] clears the
bits with the data (one commit), and counts as cleared.

    python3 t2353-order.py LOG.bodies
"""
import json
import sys

SETID = 0o6000


def main():
    bits = {}
    bad = stores = 0
    with open(sys.argv[1], "rb") as f:
        for n, line in enumerate(f, 1):
            parts = line.rstrip(b"\n").split(b" ", 2)
            if len(parts) < 3 or parts[0] != b"200":
                continue
            try:
                body = json.loads(parts[2])
            except ValueError:
                continue
            ops = body.get("ops", [body]) if isinstance(body, dict) else []
            before = {}
            for op in ops:
                fid = json.dumps(op.get("fid"), sort_keys=True)
                if fid not in before:
                    before[fid] = bits.get(fid, True)
                if op.get("op") == "create":
                    bits[fid] = bool(op.get("mode", 0) & SETID)
                    before[fid] = False
                elif op.get("op") == "setattr" and "mode" in op:
                    bits[fid] = bool(op["mode"] & SETID)
            for op in ops:
                if op.get("op") != "store":
                    continue
                fid = json.dumps(op.get("fid"), sort_keys=True)
                stores += 1
                if before[fid] and bits.get(fid, True):
                    bad += 1
                    print("request %d: a store of %s with its set-ID bits "
                          "still set" % (n, fid))
    print("# %d stores checked" % stores, file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
