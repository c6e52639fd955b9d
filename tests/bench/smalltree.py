#!/usr/bin/env python3
# smalltree.py ROOT N - issue #14's untar tree: N files of 1 to 64 KiB
# (spread evenly, the same in every run) in directories of 100
# (d00/f00000.txt ...), for bench-write.sh, bench-write-sync.sh and
# bench-untar-ab.sh.
import os
import sys

root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, "d%02d" % (i // 100))
    os.makedirs(d, exist_ok=True)
    size = 1024 + (i * 7919) % (63 * 1024 + 1)
    line = ("small file %d\n" % i).encode()
    with open(os.path.join(d, "f%05d.txt" % i), "wb") as f:
        f.write((line * (size // len(line) + 1))[:size])
