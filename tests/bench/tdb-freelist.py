#!/usr/bin/env python3
# tdb-freelist.py - the free list of a tdb file (read only): how many
# free records, their bytes, the largest, and a histogram by power of
# two. tdb's allocator walks this list at every store that needs new
# space (doc/cm.md, "Whole-volume rows at 10,000, 100,000 and
# 1,000,000": the offline creates at 1,000,000).
#
#   tdb-freelist.py FILE.tdb
#
# The layout is tdb 1.x's: a 168-byte header (hash_size at 36), the
# free list's head at 168, records of six little-endian u32 (next,
# rec_len, key_len, data_len, full_hash, magic). Bounded: stops after
# 50,000,000 records (a list that loops).
import collections
import mmap
import struct
import sys

if len(sys.argv) != 2:
    sys.exit("usage: tdb-freelist.py FILE.tdb")
with open(sys.argv[1], "rb") as f:
    m = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
hash_size = struct.unpack_from("<I", m, 36)[0]
off = struct.unpack_from("<I", m, 168)[0]
n = total = largest = 0
hist = collections.Counter()
while off and n < 50_000_000 and off + 24 <= len(m):
    nxt, rec_len = struct.unpack_from("<2I", m, off)
    n += 1
    total += rec_len
    largest = max(largest, rec_len)
    b = 16
    while b < rec_len:
        b *= 2
    hist[b] += 1
    off = nxt
print("hash chains %d, file %d bytes, free records %d, %d bytes, largest %d"
      % (hash_size, len(m), n, total, largest))
print("by size (<= bytes: records): " +
      ", ".join("%d: %d" % kv for kv in sorted(hist.items())))
