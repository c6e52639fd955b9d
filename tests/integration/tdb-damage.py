#!/usr/bin/env python3
"""tdb-damage.py KIND FILE: damage tdb's own structure of FILE the way a
killed tdb_allocate() or a hostile file would (t2390), as
tests/unit/tdb_damage.h does for the unit tests. tdb's layout (its
tdb_private.h): a 168-byte header (hash size at offset 36), the free-list
head and one u32 chain head per bucket, then records one after another:
24 bytes (next, rec_len, key_len, data_len, full_hash, magic), key, value,
padding, and a u32 tailer (the whole length) in the last 4 bytes.

KIND:
  loop      the first two live records name each other as next
  overlap   a live record grows over the live one after it, which stays
            in its hash chain (two records share bytes)
  pastend   the first live record's length points far past the end
  truncate  the file cut to 60 % of its records (header and hash table kept)
  header    64 bytes of garbage over the header
  unlink    the first live record taken out of its hash chain (its
            predecessor or bucket head names its successor): the record
            is still in the file, but no lookup or walk finds it
  twin      the next live record whose key has the first's length and
            that lies in another hash chain becomes a second version of
            the first's key (key bytes and hash copied, its value kept)
  value     one byte of the first live record's value flipped (its key
            not tdbj's "\0tdbj" record): tdb's structure stays sound,
            only the content changed, as bit rot would leave it
  count     print the number of live records (no change)
Prints "ok" (or the count); exits 1 when the file has no place for it.
"""
import os
import struct
import sys

MAGIC = 0x26011999


def records(buf):
    hash_size = struct.unpack_from("<I", buf, 36)[0]
    off = 168 + 4 * hash_size + 4
    while off + 24 <= len(buf):
        nxt, rec_len, klen, dlen, h, magic = struct.unpack_from("<6I", buf, off)
        yield off, nxt, rec_len, magic
        off += 24 + rec_len


def main():
    kind, path = sys.argv[1], sys.argv[2]
    if kind == "truncate":
        # 60 % of the records kept: a cut into the header or the hash
        # table (4 MiB in a new metadata cache) is a file tdb cannot
        # open, not a damaged structure.
        with open(path, "rb") as f:
            head = f.read(40)
        start = 168 + 4 * struct.unpack_from("<I", head, 36)[0] + 4
        size = os.path.getsize(path)
        os.truncate(path, start + (size - start) * 6 // 10)
        print("ok")
        return 0
    if kind == "header":
        with open(path, "r+b") as f:
            f.write(os.urandom(64))
        print("ok")
        return 0
    buf = bytearray(open(path, "rb").read())
    live = [r for r in records(buf) if r[3] == MAGIC]
    if kind == "count":
        print(len(live))
        return 0
    if kind == "loop" and len(live) >= 2:
        x, y = live[0][0], live[1][0]
        struct.pack_into("<I", buf, x, y)
        struct.pack_into("<I", buf, y, x)
    elif kind == "overlap":
        for (a, _, alen, _), (b, _, blen, _) in zip(live, live[1:]):
            if a + 24 + alen == b:
                grown = alen + 24 + blen
                struct.pack_into("<I", buf, a + 4, grown)
                struct.pack_into("<I", buf, a + 24 + grown - 4, grown + 24)
                break
        else:
            return 1
    elif kind == "unlink" and live:
        off, nxt = live[0][0], live[0][1]
        hash_size = struct.unpack_from("<I", buf, 36)[0]
        for p in range(168 + 4, 168 + 4 + 4 * hash_size, 4):
            if struct.unpack_from("<I", buf, p)[0] == off:
                struct.pack_into("<I", buf, p, nxt)
                break
        else:
            for r in live[1:]:
                if r[1] == off:
                    struct.pack_into("<I", buf, r[0], nxt)
                    break
            else:
                return 1
    elif kind == "twin":
        klen = lambda off: struct.unpack_from("<I", buf, off + 8)[0]
        chain = lambda off: (struct.unpack_from("<I", buf, off + 16)[0] %
                             struct.unpack_from("<I", buf, 36)[0])
        a = live[0][0]
        for b, _, _, _ in live[1:]:
            # In another chain than a's: a twin in a's own chain has the
            # hash its chain expects, which tdb_check() does not flag
            # (t2390's "twin" failed so, once, in CI).
            if klen(b) == klen(a) and chain(b) != chain(a):
                buf[b + 24:b + 24 + klen(a)] = buf[a + 24:a + 24 + klen(a)]
                buf[b + 16:b + 20] = buf[a + 16:a + 20]
                break
        else:
            return 1
    elif kind == "value":
        for off, _, _, _ in live:
            klen, dlen = struct.unpack_from("<2I", buf, off + 8)
            if dlen and bytes(buf[off + 24:off + 24 + klen]) != b"\0tdbj":
                buf[off + 24 + klen + dlen - 1] ^= 0x40
                break
        else:
            return 1
    elif kind == "pastend" and live:
        struct.pack_into("<I", buf, live[0][0] + 4, 0x7FFF0000)
    else:
        return 1
    with open(path, "r+b") as f:
        f.write(buf)
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
