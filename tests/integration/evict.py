#!/usr/bin/env python3
# evict.py DIR: drop every regular file under DIR from the page cache
# (POSIX_FADV_DONTNEED: clean pages only, so the caller writes the tree
# back first: lib.sh's t_evict) and print "CACHED N": the non-empty files
# whose first page is still cached, checked with mincore(2) (which reads
# nothing), and the number of non-empty files. Used by t1191 and t1192.
import ctypes, mmap, os, stat, sys
# mincore(2) of the first page: a RWF_NOWAIT read would tell too, but it
# starts reading the page it misses (the file is back in the cache a
# moment later).
libc = ctypes.CDLL(None, use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int,
                      ctypes.c_int, ctypes.c_int, ctypes.c_long]
libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
def in_cache(fd):
    a = libc.mmap(None, 4096, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
    if a is None or a == ctypes.c_void_p(-1).value:
        sys.exit("mmap: %s" % os.strerror(ctypes.get_errno()))
    v = ctypes.create_string_buffer(1)
    r = libc.mincore(a, 4096, v)
    libc.munmap(a, 4096)
    if r:
        sys.exit("mincore: %s" % os.strerror(ctypes.get_errno()))
    return v.raw[0] & 1
cached = n = 0
for d, _, fs in os.walk(sys.argv[1]):
    for f in fs:
        p = os.path.join(d, f)
        s = os.lstat(p)
        if not stat.S_ISREG(s.st_mode):
            continue
        fd = os.open(p, os.O_RDONLY | os.O_NOATIME)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        if s.st_size > 0:
            n += 1
            cached += in_cache(fd)
        os.close(fd)
print(cached, n)
