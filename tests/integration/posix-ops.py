#!/usr/bin/env python3
"""posix-ops.py DIR - a fixed sequence of POSIX calls under DIR, as a transcript.

Each call prints one line: what was called (paths relative to DIR), then
"ok" and what it returned that matters, or the errno name. The transcript
holds no inode numbers, no absolute paths and no times except the ones set
with utime, so the same run on a local directory and on a cairnd mount must
print the same text (t2100-cm-posix.sh diffs them). It ends with a sorted
recursive listing: type, mode, size, nlink, owner, content sha256, symlink
target, user.* xattrs.

Two things POSIX lets a file system refuse are normalized so the transcripts
still agree: renameat2() flags answered with EINVAL are emulated with plain
renames, and mkfifo answered with EPERM is accepted; each such case prints a
"note:" line on stderr instead.

With --list-only DIR it prints only that listing of DIR/w (to compare what
a second client, or a fresh cache, sees after the run).

Run as root to cover chown to other ids and the EACCES checks (done by a
child that drops to uid/gid 65534); without root those lines say "skipped".
"""
import ctypes
import errno
import hashlib
import os
import random
import stat
import sys

AT_FDCWD = -100
RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
NOBODY = 65534

out = sys.stdout
notes = []


def note(msg):
    notes.append(msg)
    print("note: " + msg, file=sys.stderr)


def ename(e):
    return errno.errorcode.get(e.errno, str(e.errno))


def call(desc, fn, *args, show=None, **kw):
    """Run fn; print "desc: ok [show(result)]" or "desc: ERRNO"."""
    try:
        r = fn(*args, **kw)
    except OSError as e:
        print("%s: %s" % (desc, ename(e)), file=out)
        return None
    extra = ""
    if show is not None:
        extra = " " + str(show(r))
    print("%s: ok%s" % (desc, extra), file=out)
    return r if r is not None else True


def say(desc, value):
    print("%s: %s" % (desc, value), file=out)


def sha(b):
    return hashlib.sha256(b).hexdigest()[:16]


def typ(mode):
    return {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink",
            stat.S_IFIFO: "fifo", stat.S_IFCHR: "chr", stat.S_IFBLK: "blk",
            stat.S_IFSOCK: "sock"}.get(stat.S_IFMT(mode), "?")


def st_line(st, size=True):
    s = "%s %04o nlink=%d uid=%d gid=%d" % (typ(st.st_mode), stat.S_IMODE(st.st_mode),
                                          st.st_nlink, st.st_uid, st.st_gid)
    if size and not stat.S_ISDIR(st.st_mode):
        s += " size=%d" % st.st_size
    return s


def lstat(p):
    call("lstat(%s)" % p, os.lstat, p, show=st_line)


def read_all(p):
    with open(p, "rb") as f:
        return f.read()


def content(p):
    call("content(%s)" % p, read_all, p, show=lambda b: "len=%d sha=%s" % (len(b), sha(b)))


def pread_all(fd):
    chunks = []
    off = 0
    while True:
        b = os.pread(fd, 1 << 20, off)
        if not b:
            break
        chunks.append(b)
        off += len(b)
    return b"".join(chunks)


def write_all(fd, data):
    n = 0
    while n < len(data):
        n += os.write(fd, data[n:])
    return n


def open_close(p, flags, mode=0o666):
    fd = os.open(p, flags, mode)
    os.close(fd)


libc = ctypes.CDLL(None, use_errno=True)


def renameat2(src, dst, flags):
    if libc.renameat2(AT_FDCWD, src.encode(), AT_FDCWD, dst.encode(),
                      ctypes.c_uint(flags)) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))


def rename2(src, dst, flags, fname):
    """renameat2 with the EINVAL normalization described on top."""
    desc = "renameat2(%s, %s, %s)" % (src, dst, fname)
    try:
        renameat2(src, dst, flags)
        print("%s: ok" % desc, file=out)
        return
    except OSError as e:
        if e.errno != errno.EINVAL:
            print("%s: %s" % (desc, ename(e)), file=out)
            return
    note("%s: EINVAL (flag not supported); emulated with rename()" % desc)
    if flags == RENAME_NOREPLACE:
        if os.path.lexists(dst):
            print("%s: EEXIST" % desc, file=out)
            return
        call(desc, os.rename, src, dst)
    else:
        if not (os.path.lexists(src) and os.path.lexists(dst)):
            print("%s: ENOENT" % desc, file=out)
            return
        os.rename(src, src + ".xchg-tmp")
        os.rename(dst, src)
        os.rename(src + ".xchg-tmp", dst)
        print("%s: ok" % desc, file=out)


def section(name):
    print("== " + name, file=out)


def listing():
    """The sorted recursive listing of the current directory."""
    rows = []

    def fail(e):
        raise e
    for d, dirs, files in os.walk(".", onerror=fail):
        dirs.sort()
        for n in sorted(dirs + files):
            p = os.path.join(d, n)[2:]
            st = os.lstat(p)
            row = [repr(p), typ(st.st_mode), "%04o" % stat.S_IMODE(st.st_mode),
                   "nlink=%d" % st.st_nlink, "%d:%d" % (st.st_uid, st.st_gid)]
            if stat.S_ISREG(st.st_mode):
                row += ["size=%d" % st.st_size, sha(read_all(p))]
            elif stat.S_ISLNK(st.st_mode):
                t = os.readlink(p)
                row += ["size=%d" % st.st_size, "-> " + (t if len(t) < 64 else "%d bytes" % len(t))]
            if p in ("u", "d/e", "sl"):
                row.append("mtime_ns=%d" % st.st_mtime_ns)
            if not stat.S_ISLNK(st.st_mode):
                xs = sorted(x for x in os.listxattr(p) if x.startswith("user."))
                row += ["%s=%s" % (x, sha(os.getxattr(p, x))) for x in xs]
            rows.append(" ".join(row))
    for r in sorted(rows):
        print(r, file=out)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "--list-only":
        os.chdir(os.path.join(sys.argv[2], "w"))
        listing()
        return 0
    if len(sys.argv) != 2:
        print("usage: posix-ops.py DIR\n       posix-ops.py --list-only DIR",
              file=sys.stderr)
        return 2
    os.umask(0o022)
    os.chdir(sys.argv[1])
    is_root = os.geteuid() == 0
    call("mkdir(w, 0755)", os.mkdir, "w", 0o755)
    call("chmod(w, 0755)", os.chmod, "w", 0o755)
    try:
        os.chdir("w")
    except OSError as e:
        print("posix-ops.py: cannot set up %s/w: %s" % (sys.argv[1], e), file=sys.stderr)
        return 1
    rnd = random.Random(5)
    big = rnd.randbytes(1024 * 1024 + 3)

    section("create")
    call("open(a, O_CREAT|O_EXCL|O_WRONLY, 0666)", open_close, "a",
         os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666)
    call("open(a, O_CREAT|O_EXCL|O_WRONLY) again", open_close, "a",
         os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    call("open(a, O_CREAT|O_WRONLY) existing", open_close, "a", os.O_CREAT | os.O_WRONLY)
    lstat("a")
    call("open(p600, O_CREAT|O_EXCL|O_RDWR, 0600)", open_close, "p600",
         os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    lstat("p600")
    call("open(missing, O_RDONLY)", open_close, "missing", os.O_RDONLY)
    call("open(nodir/x, O_CREAT|O_WRONLY)", open_close, "nodir/x", os.O_CREAT | os.O_WRONLY)
    call("open(a/x, O_CREAT|O_WRONLY) under a file", open_close, "a/x",
         os.O_CREAT | os.O_WRONLY)

    section("write and read back")
    fd = os.open("data", os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o644)
    call("write(data, 1 MiB + 3)", write_all, fd, big, show=str)
    call("pread(data, 8 @ 262140) across a chunk boundary", os.pread, fd, 8, 262140,
         show=lambda b: b.hex())
    call("pread(data, 16 @ end - 5)", os.pread, fd, 16, len(big) - 5, show=lambda b: b.hex())
    call("pread(data, 16 @ 2 MiB) past EOF", os.pread, fd, 16, 2 << 20, show=len)
    call("pwrite(data, 10 @ 524283) over the next boundary", os.pwrite, fd,
         b"0123456789", 524283, show=str)
    call("fstat(data)", os.fstat, fd, show=st_line)
    call("fsync(data)", os.fsync, fd)
    call("fdatasync(data)", os.fdatasync, fd)
    call("close(data)", os.close, fd)
    content("data")
    fd = os.open("data", os.O_RDONLY)
    call("write to an O_RDONLY fd", os.write, fd, b"x")
    os.close(fd)
    fd = os.open("data", os.O_WRONLY)
    call("read from an O_WRONLY fd", os.read, fd, 1)
    os.close(fd)
    call("open(., O_WRONLY) a directory", open_close, ".", os.O_WRONLY)
    call("open(data, O_RDONLY|O_DIRECTORY)", open_close, "data", os.O_RDONLY | os.O_DIRECTORY)

    section("O_APPEND and O_TRUNC")
    with open("log", "wb") as f:
        f.write(b"first\n")
    fd = os.open("log", os.O_WRONLY | os.O_APPEND)
    call("write(log, O_APPEND)", os.write, fd, b"second\n", show=str)
    call("lseek(log, 0) then write (O_APPEND)", lambda: (os.lseek(fd, 0, os.SEEK_SET),
                                                         os.write(fd, b"third\n"))[1], show=str)
    call("pwrite(log, @0) on O_APPEND (Linux appends)", os.pwrite, fd, b"fourth\n", 0, show=str)
    os.close(fd)
    call("content(log)", read_all, "log", show=lambda b: repr(b.decode()))
    fd = os.open("log", os.O_RDWR | os.O_APPEND)
    call("read(log) at 0 on O_RDWR|O_APPEND", os.read, fd, 5, show=lambda b: repr(b.decode()))
    os.close(fd)
    call("open(log, O_WRONLY|O_TRUNC)", open_close, "log", os.O_WRONLY | os.O_TRUNC)
    lstat("log")
    with open("log", "wb") as f:
        f.write(b"again\n")
    call("open(log, O_RDONLY|O_TRUNC) truncates too", open_close, "log",
         os.O_RDONLY | os.O_TRUNC)
    lstat("log")

    section("truncate and ftruncate")
    with open("t", "wb") as f:
        f.write(b"x" * 100)
    call("truncate(t, 50)", os.truncate, "t", 50)
    content("t")
    call("truncate(t, 300000) up across a chunk", os.truncate, "t", 300000)
    content("t")
    fd = os.open("t", os.O_RDWR)
    call("pread(t, 8 @ 48)", os.pread, fd, 8, 48, show=lambda b: b.hex())
    call("ftruncate(t, 262144)", os.ftruncate, fd, 262144)
    call("fstat(t)", os.fstat, fd, show=st_line)
    call("pwrite(t, @ 600000) makes a hole", os.pwrite, fd, b"end", 600000, show=str)
    call("ftruncate(t, 262145)", os.ftruncate, fd, 262145)
    call("ftruncate(t, 1)", os.ftruncate, fd, 1)
    call("ftruncate(t, 700000)", os.ftruncate, fd, 700000)
    call("pread(t, 4 @ 600000) reads zeros", os.pread, fd, 4, 600000, show=lambda b: b.hex())
    os.close(fd)
    content("t")
    call("truncate(missing, 0)", os.truncate, "missing", 0)
    call("truncate(., 0) a directory", os.truncate, ".", 0)
    fd = os.open("data", os.O_RDONLY)
    call("ftruncate of an O_RDONLY fd", os.ftruncate, fd, 0)
    os.close(fd)

    section("fallocate mode 0")
    fd = os.open("fa", os.O_CREAT | os.O_RDWR, 0o644)
    call("posix_fallocate(fa, 0, 600000)", os.posix_fallocate, fd, 0, 600000)
    call("fstat(fa)", os.fstat, fd, show=st_line)
    os.pwrite(fd, b"abc", 10)
    call("posix_fallocate(fa, 5, 10) inside", os.posix_fallocate, fd, 5, 10)
    call("posix_fallocate(fa, 600000, 100) at the end", os.posix_fallocate, fd, 600000, 100)
    call("fstat(fa)", os.fstat, fd, show=st_line)
    os.close(fd)
    content("fa")

    section("mkdir and rmdir")
    call("mkdir(d, 0777)", os.mkdir, "d", 0o777)
    call("mkdir(d) again", os.mkdir, "d")
    call("mkdir(d/e, 0750)", os.mkdir, "d/e", 0o750)
    call("mkdir(nodir/e)", os.mkdir, "nodir/e")
    call("mkdir(a/e) under a file", os.mkdir, "a/e")
    lstat("d")
    lstat("d/e")
    with open("d/e/f", "wb") as f:
        f.write(b"in e\n")
    call("rmdir(d) non-empty", os.rmdir, "d")
    call("rmdir(a) a file", os.rmdir, "a")
    call("rmdir(missing)", os.rmdir, "missing")
    call("mkdir(gone)", os.mkdir, "gone")
    call("rmdir(gone)", os.rmdir, "gone")
    call("lstat(gone)", os.lstat, "gone")
    call("listdir(d)", os.listdir, "d", show=sorted)

    section("unlink")
    call("unlink(d) a directory", os.unlink, "d")
    call("unlink(missing)", os.unlink, "missing")
    call("unlink(d/e/f/x) under a file", os.unlink, "d/e/f/x")
    with open("victim", "wb") as f:
        f.write(b"v")
    call("unlink(victim)", os.unlink, "victim")
    call("lstat(victim)", os.lstat, "victim")

    section("rename")
    with open("r1", "wb") as f:
        f.write(b"r1 data\n")
    call("rename(r1, r2) within a dir", os.rename, "r1", "r2")
    call("lstat(r1)", os.lstat, "r1")
    content("r2")
    call("rename(r2, d/r3) across dirs", os.rename, "r2", "d/r3")
    content("d/r3")
    with open("over", "wb") as f:
        f.write(b"old content\n")
    call("rename(d/r3, over) over an existing file", os.rename, "d/r3", "over")
    content("over")
    call("rename(over, over) onto itself", os.rename, "over", "over")
    content("over")
    call("rename(missing, x)", os.rename, "missing", "x")
    call("mkdir(rd1)", os.mkdir, "rd1")
    call("mkdir(rd2)", os.mkdir, "rd2")
    call("rename(rd1, rd2) dir over an empty dir", os.rename, "rd1", "rd2")
    call("lstat(rd1)", os.lstat, "rd1")
    call("rename(rd2, d) dir over a non-empty dir", os.rename, "rd2", "d")
    call("rename(over, d) file over a dir", os.rename, "over", "d")
    call("rename(rd2, over) dir over a file", os.rename, "rd2", "over")
    call("rename(d, d/e/sub) dir into itself", os.rename, "d", "d/e/sub")
    call("rename(rd2, d/e/rd2) a dir across dirs", os.rename, "rd2", "d/e/rd2")
    lstat("d/e/rd2")
    call("rename(d/e/rd2, rd) back up", os.rename, "d/e/rd2", "rd")
    with open("n1", "wb") as f:
        f.write(b"n1\n")
    with open("n2", "wb") as f:
        f.write(b"n2\n")
    rename2("n1", "n2", RENAME_NOREPLACE, "RENAME_NOREPLACE")
    content("n1")
    content("n2")
    rename2("n1", "n3", RENAME_NOREPLACE, "RENAME_NOREPLACE")
    content("n3")
    rename2("n2", "n3", RENAME_EXCHANGE, "RENAME_EXCHANGE")
    content("n2")
    content("n3")
    rename2("n2", "rd", RENAME_EXCHANGE, "RENAME_EXCHANGE")
    lstat("n2")
    lstat("rd")
    rename2("rd", "n2", RENAME_EXCHANGE, "RENAME_EXCHANGE")
    rename2("n2", "nothere", RENAME_EXCHANGE, "RENAME_EXCHANGE")

    section("symlinks")
    call("symlink(a -> sl)", os.symlink, "a", "sl")
    call("symlink(x -> sl) again", os.symlink, "x", "sl")
    call("symlink(/etc/passwd -> abs)", os.symlink, "/etc/passwd", "abs")
    call("symlink(no/such/target -> dangling)", os.symlink, "no/such/target", "dangling")
    call("symlink(long target -> longlink)", os.symlink, "t" * 1000, "longlink")
    call("readlink(sl)", os.readlink, "sl", show=repr)
    call("readlink(abs)", os.readlink, "abs", show=repr)
    call("readlink(longlink)", os.readlink, "longlink", show=len)
    call("readlink(a) not a link", os.readlink, "a")
    call("readlink(missing)", os.readlink, "missing")
    lstat("sl")
    call("stat(sl) follows", os.stat, "sl", show=st_line)
    call("stat(dangling)", os.stat, "dangling")
    call("symlink(newtarget -> dl)", os.symlink, "newtarget", "dl")
    call("open(dl, O_CREAT|O_EXCL) on a dangling link", open_close, "dl",
         os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    call("open(dl, O_CREAT|O_WRONLY) creates the target", open_close, "dl",
         os.O_CREAT | os.O_WRONLY)
    lstat("newtarget")
    call("open(sl, O_NOFOLLOW)", open_close, "sl", os.O_RDONLY | os.O_NOFOLLOW)

    section("hard links")
    with open("h1", "wb") as f:
        f.write(b"linked\n")
    call("link(h1, h2)", os.link, "h1", "h2")
    call("link(h1, d/h3) across dirs", os.link, "h1", "d/h3")
    lstat("h1")
    lstat("d/h3")
    call("link(h1, h2) again", os.link, "h1", "h2")
    call("link(d, dlink) a directory", os.link, "d", "dlink")
    call("link(missing, x)", os.link, "missing", "x")
    call("rename(h1, h2) same inode", os.rename, "h1", "h2")
    lstat("h1")
    lstat("h2")
    with open("h2", "ab") as f:
        f.write(b"more\n")
    content("h1")
    call("unlink(h1)", os.unlink, "h1")
    lstat("h2")
    content("d/h3")

    section("chmod and chown")
    call("chmod(a, 0640)", os.chmod, "a", 0o640)
    lstat("a")
    call("chmod(a, 04755)", os.chmod, "a", 0o4755)
    lstat("a")
    call("chmod(d/e, 0700)", os.chmod, "d/e", 0o700)
    lstat("d/e")
    call("chmod(missing, 0644)", os.chmod, "missing", 0o644)
    fd = os.open("p600", os.O_RDONLY)
    call("fchmod(p600, 0604)", os.fchmod, fd, 0o604)
    os.close(fd)
    lstat("p600")
    if is_root:
        uid, gid = 1234, 5678
    else:
        uid, gid = os.getuid(), os.getgid()
    print("chown to: %s" % ("other ids" if is_root else "own ids"), file=out)
    call("chown(a, U, G)", os.chown, "a", uid, gid)
    st = os.lstat("a")
    say("owner(a) is U:G", st.st_uid == uid and st.st_gid == gid)
    say("mode(a) after chown", "%04o" % stat.S_IMODE(st.st_mode))
    call("chown(p600, -1, G)", os.chown, "p600", -1, gid)
    st = os.lstat("p600")
    say("gid(p600) is G, uid unchanged", st.st_gid == gid and st.st_uid == os.getuid())
    call("lchown(sl, U, G)", os.lchown, "sl", uid, gid)
    st = os.lstat("sl")
    say("owner(sl) is U:G", st.st_uid == uid and st.st_gid == gid)
    say("owner(a) unchanged by lchown(sl)", os.lstat("a").st_uid == uid)
    call("chown(missing)", os.chown, "missing", uid, gid)
    if is_root:
        call("mkdir(sg)", os.mkdir, "sg")
        call("chown(sg, 0, G)", os.chown, "sg", 0, gid)
        call("chmod(sg, 02775)", os.chmod, "sg", 0o2775)
        open_close("sg/f", os.O_CREAT | os.O_WRONLY)
        os.mkdir("sg/sub")
        st = os.lstat("sg/f")
        say("file in a setgid dir has its gid", st.st_gid == gid)
        st = os.lstat("sg/sub")
        say("dir in a setgid dir has its gid and the setgid bit",
            st.st_gid == gid and bool(st.st_mode & stat.S_ISGID))
    else:
        say("setgid directory", "skipped (not root)")

    section("utime")
    times = (1000000000123456789, 1100000000987654321)
    call("utime(u, ns)", lambda: (open_close("u", os.O_CREAT | os.O_WRONLY),
                                  os.utime("u", ns=times))[1])
    st = os.lstat("u")
    say("atime_ns(u)", st.st_atime_ns)
    say("mtime_ns(u)", st.st_mtime_ns)
    call("utime(d/e, ns) a dir", os.utime, "d/e", ns=(1, 1200000000000000007))
    say("mtime_ns(d/e)", os.lstat("d/e").st_mtime_ns)
    call("utime(sl, ns, nofollow)", os.utime, "sl", ns=(3, 1300000000000000003),
         follow_symlinks=False)
    say("mtime_ns(sl)", os.lstat("sl").st_mtime_ns)
    say("mtime_ns(a) unchanged (not 1300000000000000003)",
        os.lstat("a").st_mtime_ns != 1300000000000000003)
    call("utime(missing)", os.utime, "missing", ns=times)
    fd = os.open("u", os.O_RDWR)
    os.write(fd, b"w")
    os.close(fd)
    say("a write moves mtime(u) forward", os.lstat("u").st_mtime_ns > times[1])
    os.utime("u", ns=times)

    section("xattrs")
    call("setxattr(a, user.one, 1)", os.setxattr, "a", "user.one", b"1")
    call("setxattr(a, user.bin, 00ff)", os.setxattr, "a", "user.bin", b"\x00\xff")
    call("setxattr(a, user.empty, '')", os.setxattr, "a", "user.empty", b"")
    call("setxattr(a, user.big, 4000 bytes)", os.setxattr, "a", "user.big", b"B" * 4000)
    call("setxattr(a, user.one, XATTR_CREATE) existing", os.setxattr, "a", "user.one",
         b"2", os.XATTR_CREATE)
    call("setxattr(a, user.nope, XATTR_REPLACE) missing", os.setxattr, "a", "user.nope",
         b"2", os.XATTR_REPLACE)
    call("setxattr(a, user.one, 22, XATTR_REPLACE)", os.setxattr, "a", "user.one",
         b"22", os.XATTR_REPLACE)
    call("getxattr(a, user.one)", os.getxattr, "a", "user.one", show=lambda b: b.hex())
    call("getxattr(a, user.bin)", os.getxattr, "a", "user.bin", show=lambda b: b.hex())
    call("getxattr(a, user.empty)", os.getxattr, "a", "user.empty", show=len)
    call("getxattr(a, user.big)", os.getxattr, "a", "user.big", show=len)
    call("getxattr(a, user.missing)", os.getxattr, "a", "user.missing")
    call("listxattr(a) user.*", os.listxattr, "a",
         show=lambda l: sorted(x for x in l if x.startswith("user.")))
    call("removexattr(a, user.bin)", os.removexattr, "a", "user.bin")
    call("removexattr(a, user.bin) again", os.removexattr, "a", "user.bin")
    call("getxattr(a, user.bin) removed", os.getxattr, "a", "user.bin")
    call("setxattr(d, user.dir, yes) on a dir", os.setxattr, "d", "user.dir", b"yes")
    call("getxattr(d, user.dir)", os.getxattr, "d", "user.dir", show=lambda b: b.decode())
    call("setxattr(missing, user.x)", os.setxattr, "missing", "user.x", b"1")
    fd = os.open("h2", os.O_RDWR)
    call("fsetxattr(h2, user.f, v)", os.setxattr, fd, "user.f", b"v")
    os.close(fd)
    call("getxattr(d/h3, user.f) via the other link", os.getxattr, "d/h3", "user.f",
         show=lambda b: b.decode())

    section("fifo")
    try:
        os.mkfifo("fifo", 0o640)
        st = os.lstat("fifo")
        say("mkfifo(fifo, 0640)", "ok or EPERM" if stat.S_ISFIFO(st.st_mode) else
            "created a " + typ(st.st_mode))
        m = stat.S_IMODE(st.st_mode)
        say("mode(fifo)", "0640 or EPERM" if m == 0o640 else "%04o" % m)
        os.unlink("fifo")
    except OSError as e:
        if e.errno == errno.EPERM:
            note("mkfifo: EPERM (FIFOs refused)")
            say("mkfifo(fifo, 0640)", "ok or EPERM")
            say("mode(fifo)", "0640 or EPERM")
        else:
            say("mkfifo(fifo, 0640)", ename(e))
    call("lstat(fifo) after unlink", os.lstat, "fifo")

    section("fsync")
    fd = os.open("data", os.O_RDWR)
    os.pwrite(fd, b"synced", 100)
    call("fsync(data) after a write", os.fsync, fd)
    call("close(data)", os.close, fd)
    fd = os.open("d", os.O_RDONLY | os.O_DIRECTORY)
    call("fsync(d) a directory fd", os.fsync, fd)
    os.close(fd)
    fd = os.open(".", os.O_RDONLY | os.O_DIRECTORY)
    call("fsync(.) a directory fd", os.fsync, fd)
    os.close(fd)
    content("data")

    section("open, unlinked, still usable")
    fd = os.open("ou", os.O_CREAT | os.O_RDWR, 0o644)
    fd2 = os.open("ou", os.O_RDONLY)
    os.write(fd, b"before unlink\n")
    call("unlink(ou) while open", os.unlink, "ou")
    call("lstat(ou)", os.lstat, "ou")
    call("fstat(ou)", os.fstat, fd, show=lambda st: "nlink=%d size=%d" % (st.st_nlink,
                                                                          st.st_size))
    call("pwrite(ou) after unlink", os.pwrite, fd, b"after unlink\n", 14, show=str)
    call("pread(ou) through the first fd", pread_all, fd, show=lambda b: repr(b.decode()))
    call("pread(ou) through a second fd", pread_all, fd2, show=lambda b: repr(b.decode()))
    call("ftruncate(ou, 6) after unlink", os.ftruncate, fd, 6)
    call("fsync(ou) after unlink", os.fsync, fd)
    call("pread(ou) after ftruncate", pread_all, fd2, show=lambda b: repr(b.decode()))
    call("close(ou) first fd", os.close, fd)
    call("pread(ou) second fd after the first closed", pread_all, fd2,
         show=lambda b: repr(b.decode()))
    call("close(ou) last fd", os.close, fd2)
    call("open(ou, O_CREAT|O_EXCL) a new file by the old name", open_close, "ou",
         os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    lstat("ou")
    os.unlink("ou")

    section("names")
    n255, n256 = "b" * 255, "c" * 256
    call("open(255-byte name, O_CREAT)", open_close, n255, os.O_CREAT | os.O_WRONLY)
    call("lstat(255-byte name)", os.lstat, n255, show=lambda st: typ(st.st_mode))
    call("open(256-byte name, O_CREAT)", open_close, n256, os.O_CREAT | os.O_WRONLY)
    call("lstat(256-byte name)", os.lstat, n256)
    call("mkdir(256-byte name)", os.mkdir, n256)
    call("symlink(a -> 256-byte name)", os.symlink, "a", n256)
    call("rename(a, 256-byte name)", os.rename, "a", n256)
    call("link(a, 256-byte name)", os.link, "a", n256)
    call("unlink(255-byte name)", os.unlink, n255)
    for name in ["sp ace", "tab\tname", "ünïcødé-é", "-leading-dash", "new\nline", "*?[", ".hidden", "..dots"]:
        call("create(%r)" % name, open_close, name, os.O_CREAT | os.O_WRONLY)
    call("open(., O_CREAT|O_EXCL)", open_close, ".", os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    call("mkdir(.)", os.mkdir, ".")
    call("rmdir(d/.)", os.rmdir, "d/.")
    call("rename(d/., x)", os.rename, "d/.", "x")

    section("permissions as uid 65534")
    if is_root:
        os.mkdir("priv", 0o700)
        with open("priv/secret", "wb") as f:
            f.write(b"s")
        with open("pub", "wb") as f:
            f.write(b"public\n")
        os.chmod("pub", 0o644)
        with open("own600", "wb") as f:
            f.write(b"root only\n")
        os.chmod("own600", 0o600)
        os.mkdir("open", 0o777)
        os.chmod("open", 0o1777)
        r, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(r)
            res = []
            try:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)

                def t(desc, fn, *a):
                    try:
                        v = fn(*a)
                        res.append("%s: ok%s" % (desc, "" if v is None else " " + repr(v)))
                    except OSError as e:
                        res.append("%s: %s" % (desc, ename(e)))
                t("read(pub)", read_all, "pub")
                t("open(pub, O_WRONLY)", open_close, "pub", os.O_WRONLY)
                t("read(own600)", read_all, "own600")
                t("listdir(priv)", os.listdir, "priv")
                t("lstat(priv/secret)", lambda: os.lstat("priv/secret") and None)
                t("create(w/nobody)", open_close, "nobody", os.O_CREAT | os.O_WRONLY)
                t("mkdir(w/nobodyd)", os.mkdir, "nobodyd")
                t("unlink(pub)", os.unlink, "pub")
                t("rename(pub, x)", os.rename, "pub", "x")
                t("chmod(pub, 0666)", os.chmod, "pub", 0o666)
                t("chown(pub, 65534)", os.chown, "pub", NOBODY, NOBODY)
                t("utime(pub, ns) not the owner", os.utime, "pub", (1, 1))
                t("setxattr(pub, user.x)", os.setxattr, "pub", "user.x", b"1")
                t("create(open/mine) in a sticky 1777 dir", open_close, "open/mine",
                  os.O_CREAT | os.O_WRONLY, 0o644)
                t("lstat(open/mine) owner",
                  lambda: "%d:%d" % (os.lstat("open/mine").st_uid, os.lstat("open/mine").st_gid))
                t("chmod(open/mine, 0600) as its owner", os.chmod, "open/mine", 0o600)
                t("utime(open/mine, ns) as its owner",
                  lambda: os.utime("open/mine", ns=(5, 1400000000000000005)))
            except Exception as e:  # noqa: BLE001 - report anything to the parent
                res.append("child failed: %r" % e)
            os.write(wfd, ("\n".join(res) + "\n").encode())
            os._exit(0)
        os.close(wfd)
        data = b""
        while True:
            b = os.read(r, 65536)
            if not b:
                break
            data += b
        os.close(r)
        os.waitpid(pid, 0)
        for line in data.decode().splitlines():
            print("uid 65534: " + line, file=out)
        with open("open/rootfile", "wb") as f:
            f.write(b"r")
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                os.setgroups([])
                os.setgid(NOBODY)
                os.setuid(NOBODY)
                os.unlink("open/rootfile")
            except OSError as e:
                code = e.errno
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        code = os.WEXITSTATUS(status)
        say("uid 65534: unlink(open/rootfile) in a sticky dir",
            "ok" if code == 0 else errno.errorcode.get(code, str(code)))
    else:
        say("permissions", "skipped (not root)")

    section("listing")
    listing()
    out.flush()
    if notes:
        print("%d note(s) above" % len(notes), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
