#!/usr/bin/env python3
"""t2292-cmp.py REF OTHER - compare two trees (t2292): the same names,
types, permission bits and mtimes (ns) of every object, sizes and bytes
of regular files, targets of symlinks. Prints each difference and a
count; exit 1 if there is one."""
import os
import stat
import sys


def walk(root):
    out = {}
    for dp, dns, fns in os.walk(root):
        out[os.path.relpath(dp, root)] = os.lstat(dp)
        for n in dns + fns:
            p = os.path.join(dp, n)
            out[os.path.relpath(p, root)] = os.lstat(p)
    return out


def same_bytes(p, q):
    with open(p, "rb") as f, open(q, "rb") as g:
        return f.read() == g.read()


def main(a, b):
    ta, tb = walk(a), walk(b)
    bad = 0
    for k in sorted(set(ta) | set(tb)):
        if k not in tb:
            print("missing on the server:", k)
            bad += 1
            continue
        if k not in ta:
            print("extra on the server:", k)
            bad += 1
            continue
        x, y = ta[k], tb[k]
        d = []
        if stat.S_IFMT(x.st_mode) != stat.S_IFMT(y.st_mode):
            d.append("type")
        elif stat.S_ISREG(x.st_mode):
            if x.st_size != y.st_size:
                d.append("size %d/%d" % (x.st_size, y.st_size))
            elif not same_bytes(os.path.join(a, k), os.path.join(b, k)):
                d.append("bytes")
        elif stat.S_ISLNK(x.st_mode):
            if os.readlink(os.path.join(a, k)) != os.readlink(os.path.join(b, k)):
                d.append("target")
        if not stat.S_ISLNK(x.st_mode) and \
                stat.S_IMODE(x.st_mode) != stat.S_IMODE(y.st_mode):
            d.append("mode %o/%o" % (stat.S_IMODE(x.st_mode),
                                     stat.S_IMODE(y.st_mode)))
        if x.st_mtime_ns != y.st_mtime_ns:
            d.append("mtime %d/%d" % (x.st_mtime_ns, y.st_mtime_ns))
        if d:
            print(k + ": " + ", ".join(d))
            bad += 1
    print("differences:", bad, "of", len(ta))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
