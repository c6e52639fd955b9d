"""wbops.py - a deterministic mix of changes for the write-mode tests.

    python3 wbops.py ROOT ROUND [FILES]      apply round ROUND under ROOT
    python3 wbops.py --tree ROOT             print ROOT's tree, one line a
                                             name: path, type, mode, size,
                                             SHA-256 (or link target)

Round R makes ROOT/rR with FILES files of varying size (chmod every third,
rename every fifth, unlink every seventh), a directory and a symlink in
it, and changes what round R-1 made (an append, a rename across
directories, a chmod): records about objects whose own records may still
be on their way to the server. Run on a mount and on a local directory,
the two trees must print the same.
"""
import hashlib
import os
import stat
import sys


def round_ops(root, r, n):
    d = os.path.join(root, "r%d" % r)
    os.mkdir(d)
    for i in range(n):
        p = os.path.join(d, "f%03d" % i)
        with open(p, "wb") as f:
            f.write((("r%d f%d\n" % (r, i)) * (1 + (i * 37) % 300)).encode())
        if i % 3 == 0:
            os.chmod(p, 0o640)
        if i % 5 == 0:
            os.rename(p, p + ".mv")
            p += ".mv"
        if i % 7 == 0:
            os.unlink(p)
    os.mkdir(os.path.join(d, "sub"))
    os.symlink("../f001", os.path.join(d, "sub", "link"))
    if r > 0:
        pd = os.path.join(root, "r%d" % (r - 1))
        with open(os.path.join(pd, "f001"), "ab") as f:
            f.write(b"appended in round %d\n" % r)
        os.rename(os.path.join(pd, "f002"), os.path.join(d, "from-prev"))
        os.chmod(os.path.join(pd, "f004"), 0o600)


def tree(root):
    for dp, dns, fns in os.walk(root):
        dns.sort()
        for name in sorted(dns + fns):
            p = os.path.join(dp, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                print(rel, "l", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                print(rel, "d", oct(st.st_mode & 0o7777))
            else:
                with open(p, "rb") as f:
                    h = hashlib.sha256(f.read()).hexdigest()
                print(rel, "f", oct(st.st_mode & 0o7777), st.st_size, h)


if __name__ == "__main__":
    if sys.argv[1] == "--tree":
        tree(sys.argv[2])
    else:
        round_ops(sys.argv[1], int(sys.argv[2]),
                  int(sys.argv[3]) if len(sys.argv) > 3 else 100)
