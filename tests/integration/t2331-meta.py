#!/usr/bin/env python3
"""t2331-meta.py - look at and damage a cairnd meta.tdb (cm/vc.c) from a
test, through libtdb with ctypes (no tdb module or tdbtool needed).

  count PATH              print "D=n G=n A=n" (records by tag)
  orphans PATH N          add N pages (valid, checksummed) under the FID of
                          the first listing ('D') found, named by nothing
  flip PATH TAG N         flip one byte past the header of N records of TAG
                          (A, D or G): a torn or rotten record
The file must not be open in a cairnd.
"""
import ctypes
import os
import random
import sys

lib = ctypes.CDLL("libtdb.so.1")


class TDB_DATA(ctypes.Structure):
    _fields_ = [("dptr", ctypes.POINTER(ctypes.c_ubyte)), ("dsize", ctypes.c_size_t)]


lib.tdb_open.restype = ctypes.c_void_p
lib.tdb_open.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_uint]
lib.tdb_close.argtypes = [ctypes.c_void_p]
lib.tdb_firstkey.restype = TDB_DATA
lib.tdb_firstkey.argtypes = [ctypes.c_void_p]
lib.tdb_nextkey.restype = TDB_DATA
lib.tdb_nextkey.argtypes = [ctypes.c_void_p, TDB_DATA]
lib.tdb_fetch.restype = TDB_DATA
lib.tdb_fetch.argtypes = [ctypes.c_void_p, TDB_DATA]
lib.tdb_store.argtypes = [ctypes.c_void_p, TDB_DATA, TDB_DATA, ctypes.c_int]
libc = ctypes.CDLL(None)
libc.free.argtypes = [ctypes.c_void_p]

POLY = 0x82F63B78
TABLE = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ POLY if c & 1 else c >> 1
    TABLE.append(c)


def crc32c(b):
    c = 0xFFFFFFFF
    for x in b:
        c = TABLE[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def mk(b):
    buf = (ctypes.c_ubyte * max(len(b), 1)).from_buffer_copy(b if b else b"\0")
    return TDB_DATA(ctypes.cast(buf, ctypes.POINTER(ctypes.c_ubyte)), len(b)), buf


def take(d):
    if not d.dptr:
        return None
    b = bytes(d.dptr[: d.dsize])
    libc.free(ctypes.cast(d.dptr, ctypes.c_void_p))
    return b


def keys(t):
    out = []
    k = take(lib.tdb_firstkey(t))
    while k is not None:
        out.append(k)
        kd, _buf = mk(k)
        k = take(lib.tdb_nextkey(t, kd))
    return out


def fetch(t, k):
    kd, _buf = mk(k)
    return take(lib.tdb_fetch(t, kd))


def store(t, k, v):
    kd, _b1 = mk(k)
    vd, _b2 = mk(v)
    if lib.tdb_store(t, kd, vd, 1) != 0:  # TDB_REPLACE
        sys.exit("tdb_store failed")


def main():
    cmd, path = sys.argv[1], sys.argv[2].encode()
    t = lib.tdb_open(path, 0, 0, os.O_RDWR, 0o600)
    if not t:
        sys.exit("cannot open %s" % path)
    ks = keys(t)
    if cmd == "count":
        n = {c: 0 for c in "DGA"}
        for k in ks:
            c = chr(k[0])
            if c in n and len(k) in (21, 29):
                n[c] += 1
        print(" ".join("%s=%d" % (c, n[c]) for c in "DGA"))
    elif cmd == "orphans":
        n = int(sys.argv[3])
        d = [k for k in ks if k[0] == ord("D") and len(k) == 21]
        if not d:
            sys.exit("no listing")
        fid = d[0][1:]
        ent = (1).to_bytes(2, "little") + b"o" + bytes([1]) + bytes(20)
        payload = (1).to_bytes(4, "little") + ent
        val = bytes([2]) + crc32c(payload).to_bytes(4, "little") + payload
        for i in range(n):
            pid = (0xFEED << 48) | i  # below 2^63: never one cairnd hands out
            store(t, b"G" + fid + pid.to_bytes(8, "little"), val)
        print(n)
    elif cmd == "flip":
        tag, n = sys.argv[3], int(sys.argv[4])
        cand = [k for k in ks if k[0] == ord(tag) and len(k) in (21, 29)]
        random.seed(2331)
        random.shuffle(cand)
        done = 0
        for k in cand[:n]:
            v = bytearray(fetch(t, k))
            if len(v) < 8:
                continue
            i = random.randrange(5, len(v))
            v[i] ^= 0x20
            store(t, k, bytes(v))
            done += 1
        print(done)
    lib.tdb_close(t)


main()
