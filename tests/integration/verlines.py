"""Versions of a file made of numbered lines, and what a reader of them
may see (t2364, t4085, t4087, t4089; t2355 and t4083 write versions with
lib.sh's t_version, which runs this file as "verlines.py F V SIZE").

Version V of file F is the 15-byte line b"F%03d V%08d\\n" % (F, V)
repeated and cut to the version's size. No version holds a NUL byte
and a writer of them leaves no hole, so a NUL byte a reader reads is a
page of zeros the kernel made (doc/cm.md "Pages of zeros"), and a line
of another shape is a mix of versions cut in the wrong place.
"""
import os
import time

CHUNK = 256 * 1024
LINE = 15


def content(f, v, n):
    """The first n bytes of version v of file f."""
    line = b"F%03d V%08d\n" % (f, v)
    return (line * (n // LINE + 1))[:n]


def check(data, f, most=3 * CHUNK):
    """'' if data can be what a reader of file f reads at once (the
    versions are at most `most` bytes), else why not."""
    if len(data) > most:
        return "%d bytes, more than any version" % len(data)
    z = zeros(data)
    if z:
        return z
    head = b"F%03d V" % f
    for o in range(0, len(data), LINE):
        ln = data[o:o + LINE]
        if len(ln) < LINE:
            # the last line, cut: a prefix of a line of this file
            k = min(len(ln), len(head))
            if ln[:k] != head[:k] or not (ln[k:].isdigit() or ln[k:] == b""):
                return "bad last line at %d: %r" % (o, ln)
            continue
        if not (ln.startswith(head) and ln[6:14].isdigit() and
                ln.endswith(b"\n")):
            return "bad line at %d: %r" % (o, ln)
    return ""


def zeros(data):
    """'' if data holds no NUL byte, else where its first run of them is."""
    z = data.find(b"\0")
    if z < 0:
        return ""
    e = z
    while e < len(data) and data[e] == 0:
        e += 1
    return "zeros at %d-%d of %d bytes" % (z, e, len(data))


def pread_all(fd, most=3 * CHUNK):
    """What descriptor fd holds from its start to its end (at most one
    read past `most` bytes), in 1 MiB preads: what a reader holding the
    file open sees, page cache and all."""
    parts, off = [], 0
    while off <= most:
        b = os.pread(fd, 1 << 20, off)
        if not b:
            break
        parts.append(b)
        off += len(b)
    return b"".join(parts)


def read_file(path):
    """The file at path, opened for this one read."""
    with open(path, "rb") as fh:
        return fh.read()


def read_loop(kind, path, stop, out, why_bad):
    """A reader of t4085, t4087 and t4089: until the file `stop` exists,
    read the file at `path` whole through a descriptor opened once
    ("hold") or at each read ("read"); why_bad(data) says what is wrong
    with a read, '' if nothing. Writes "READS BAD" to `out` and the
    first ten reasons to out + ".log"."""
    fd = os.open(path, os.O_RDONLY)
    reads = bad = 0
    with open(out + ".log", "w") as log:
        while not os.path.exists(stop):
            data = read_file(path) if kind == "read" else pread_all(fd)
            reads += 1
            if not data:
                # the file is empty (its writer truncates): no spinning
                time.sleep(0.001)
            why = why_bad(data)
            if why:
                bad += 1
                if bad <= 10:
                    print(why, file=log, flush=True)
    os.close(fd)
    with open(out, "w") as o:
        print(reads, bad, file=o)


if __name__ == "__main__":
    import sys

    # verlines.py F V SIZE: version V of file F, SIZE bytes, to stdout
    f, v, n = (int(a) for a in sys.argv[1:4])
    sys.stdout.buffer.write(content(f, v, n))
