#!/usr/bin/env python3
# mktree.py - make the source trees of the scale benches (issue #17) fast:
# one process, os.open/os.write/os.close (no buffered file objects), one
# mkdir a directory, and a few threads over different directories (ext4
# serializes creates within a directory, not across them; the GIL is let
# go in each system call). The last sessions' generators made ~400 files/s
# on the shared disk; this one is bound by the file system's creates.
#
#   mktree.py ROOT N [--per K] [--empty] [--max B] [--split] [--threads T]
#
# N files f%07d in directories d%04d of K files each (--per 0: all in
# ROOT itself); sizes B * r^8 bytes (B = 65536 unless --max says: 0-64
# KiB, a quarter empty, mean ~7 KiB, seeded per directory so any
# --threads gives the same tree), or all empty (--empty). --split: the
# first tenth of the directories under ROOT/p0, the rest under ROOT/p1
# (bench-scale-tree's shape).
import os
import random
import sys
import threading

args = sys.argv[1:]
if len(args) < 2:
    sys.exit("usage: mktree.py ROOT N [--per K] [--empty] [--max B] [--split] [--threads T]")
root, n = args[0], int(args[1])
per, empty, split, threads, maxsize = 1000, False, False, 4, 65536
i = 2
while i < len(args):
    a = args[i]
    if a == "--per":
        per = int(args[i + 1])
        i += 1
    elif a == "--empty":
        empty = True
    elif a == "--max":
        maxsize = int(args[i + 1])
        if not 0 < maxsize <= 65536:
            sys.exit("mktree.py: --max takes 1 to 65536")
        i += 1
    elif a == "--split":
        split = True
    elif a == "--threads":
        threads = int(args[i + 1])
        i += 1
    else:
        sys.exit("mktree.py: unknown option " + a)
    i += 1

buf = bytes(range(256)) * 256
flags = os.O_CREAT | os.O_WRONLY | os.O_EXCL | os.O_CLOEXEC
os.makedirs(root, exist_ok=True)
ndirs = (n + per - 1) // per if per else 1
tenth = max(1, ndirs // 10)


def one_dir(k):
    lo = k * per if per else 0
    hi = min(n, lo + per) if per else n
    if per:
        d = os.path.join(root, ("p0" if k < tenth else "p1") if split else "",
                         "d%04d" % k)
        os.makedirs(d, exist_ok=True)
    else:
        d = root
    rnd = random.Random(17 * 1000003 + k)
    for f in range(lo, hi):
        fd = os.open(os.path.join(d, "f%07d" % f), flags, 0o644)
        if not empty:
            size = int(maxsize * rnd.random() ** 8)
            if size:
                data = memoryview(buf[f % 256:f % 256 + size]
                                  if size <= 65280 else buf[:size])
                # os.write may write less (a full disk): loop, and a
                # write of nothing is an error, not a shorter file
                while data:
                    w = os.write(fd, data)
                    if w <= 0:
                        raise OSError("short write to %s" % d)
                    data = data[w:]
        os.close(fd)


lock = threading.Lock()
nxt = [0]
err = []


def worker():
    while True:
        with lock:
            k = nxt[0]
            nxt[0] += 1
        if k >= ndirs or err:
            return
        try:
            one_dir(k)
        except Exception as e:  # any error, or the tree is partial and exit 0
            err.append(e)
            return


ts = [threading.Thread(target=worker) for _ in range(max(1, threads))]
for t in ts:
    t.start()
for t in ts:
    t.join()
if err:
    sys.exit("mktree.py: %s" % err[0])
