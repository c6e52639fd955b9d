#!/usr/bin/env python3
"""t2292-cmp.py REF OTHER - compare two trees (t2292): the same names,
types, permission bits, mtimes (ns), sizes and bytes of regular files,
symlink targets. Prints each difference; exit 1 if there is one."""
import os, stat, sys
a, b = sys.argv[1], sys.argv[2]   # a: reference (local untar), b: server export
def walk(root):
    out = {}
    for dp, dns, fns in os.walk(root):
        for n in dns + fns + ['']:
            p = os.path.join(dp, n) if n else dp
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            out[rel] = st
    return out
A, B = walk(a), walk(b)
bad = 0
for k in sorted(set(A) | set(B)):
    if k not in B: print("missing on server:", k); bad += 1; continue
    if k not in A: print("extra on server:", k); bad += 1; continue
    x, y = A[k], B[k]
    d = []
    if stat.S_IFMT(x.st_mode) != stat.S_IFMT(y.st_mode): d.append("type")
    if stat.S_IMODE(x.st_mode) != stat.S_IMODE(y.st_mode): d.append("mode %o/%o" % (stat.S_IMODE(x.st_mode), stat.S_IMODE(y.st_mode)))
    if stat.S_ISREG(x.st_mode) and x.st_size != y.st_size: d.append("size %d/%d" % (x.st_size, y.st_size))
    if x.st_mtime_ns != y.st_mtime_ns: d.append("mtime %d/%d" % (x.st_mtime_ns, y.st_mtime_ns))
    if stat.S_ISREG(x.st_mode) and x.st_size == y.st_size:
        with open(os.path.join(a, k), "rb") as f, open(os.path.join(b, k), "rb") as g:
            if f.read() != g.read():
                d.append("content")
    if stat.S_ISLNK(x.st_mode) and os.readlink(os.path.join(a, k)) != os.readlink(os.path.join(b, k)):
        d.append("target")
    if d: print(k, ", ".join(d)); bad += 1
print("differences:", bad, "of", len(A))
sys.exit(1 if bad else 0)
