"""Versions of a file made of numbered lines, and what a reader of them
may see (t2364, t4085, t4087).

Version V of file F is the 15-byte line b"F%03d V%08d\\n" % (F, V)
repeated and cut to the version's size. No version holds a NUL byte
and a writer of them leaves no hole, so a NUL byte a reader reads is a
page of zeros the kernel made (doc/cm.md "Pages of zeros"), and a line
of another shape is a mix of versions cut in the wrong place.
"""
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
    z = data.find(b"\0")
    if z >= 0:
        e = z
        while e < len(data) and data[e] == 0:
            e += 1
        return "zeros at %d-%d of %d bytes" % (z, e, len(data))
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
