#!/usr/bin/env python3
"""special-ops.py DIR - sockets, device nodes and FIFOs under DIR, as a transcript.

Every operation issue #16 lists, on each of the four special types, one
line per call: what was called (paths relative to DIR), then "ok" and what
it returned that matters, or the errno name. Like posix-ops.py the
transcript holds no inode numbers, no absolute paths and no times except
the ones set with utime, so a run on a local directory and one on a cairnd
mount must print the same text (t2180-cm-special.sh diffs them). Opening a
device node depends on the mount's nodev flag: run both on nodev mounts
(cairnd mounts nodev; the test runs the local side on a nodev tmpfs).

It ends with a sorted listing of DIR/s: type, mode, nlink, owner, size and,
for devices, major:minor. With --list-only DIR it prints only that listing
(to compare what a second client or a fresh cache sees).

Run as root to cover devices, chown and the checks made as uid 65534 (a
child that drops its ids); without root those lines say "skipped".
"""
import errno
import os
import socket
import stat
import sys

NOBODY = 65534
out = sys.stdout


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
    out.flush()
    return r if r is not None else True


def say(desc, value):
    print("%s: %s" % (desc, value), file=out)
    out.flush()


def section(name):
    print("== %s" % name, file=out)


def typ(mode):
    return {stat.S_IFREG: "file", stat.S_IFDIR: "dir", stat.S_IFLNK: "symlink",
            stat.S_IFIFO: "fifo", stat.S_IFCHR: "chr", stat.S_IFBLK: "blk",
            stat.S_IFSOCK: "sock"}.get(stat.S_IFMT(mode), "?")


def st_line(st):
    s = "%s %04o nlink=%d uid=%d gid=%d" % (typ(st.st_mode), stat.S_IMODE(st.st_mode),
                                          st.st_nlink, st.st_uid, st.st_gid)
    if not stat.S_ISDIR(st.st_mode):
        s += " size=%d" % st.st_size
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        s += " dev=%d:%d" % (os.major(st.st_rdev), os.minor(st.st_rdev))
    return s


def lstat(p):
    call("lstat(%s)" % p, os.lstat, p, show=st_line)


def open_close(p, flags):
    fd = os.open(p, flags)
    os.close(fd)


def listing(top):
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        rel = os.path.relpath(dirpath, top)
        for n in sorted(dirnames + filenames):
            p = os.path.join(dirpath, n)
            st = os.lstat(p)
            print("%s %s" % (os.path.normpath(os.path.join(rel, n)), st_line(st)),
                  file=out)


def as_nobody(fn):
    """Run fn() in a child with uid/gid 65534; its lines go to our output."""
    out.flush()
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            fn()
        finally:
            out.flush()
            os._exit(0)
    os.waitpid(pid, 0)


TYPES = [
    ("sock", stat.S_IFSOCK, 0),
    ("chr", stat.S_IFCHR, os.makedev(1, 3)),
    ("blk", stat.S_IFBLK, os.makedev(7, 200)),
    ("fifo", stat.S_IFIFO, 0),
]


def one_type(name, kind, dev, root):
    section(name)
    if kind in (stat.S_IFCHR, stat.S_IFBLK) and not root:
        say("mknod(%s)" % name, "skipped (not root)")
        return
    call("mknod(%s, 0640)" % name, os.mknod, name, kind | 0o640, dev)
    lstat(name)
    call("mknod(%s) again" % name, os.mknod, name, kind | 0o640, dev)
    call("mkdir(%s)" % name, os.mkdir, name)
    call("chmod(%s, 0604)" % name, os.chmod, name, 0o604)
    lstat(name)
    call("chmod(%s, 01750)" % name, os.chmod, name, 0o1750)
    lstat(name)
    if root:
        call("chown(%s, 1234, 5678)" % name, os.chown, name, 1234, 5678,
             follow_symlinks=False)
        lstat(name)
        call("chown(%s, 0, 0)" % name, os.chown, name, 0, 0, follow_symlinks=False)
    else:
        say("chown(%s)" % name, "skipped (not root)")
    call("utime(%s)" % name, os.utime, name, ns=(1000000000123, 2000000000456),
         follow_symlinks=False)
    call("mtime(%s)" % name, os.lstat, name,
         show=lambda st: "%d %d" % (st.st_atime_ns, st.st_mtime_ns))
    # Opens: the kernel answers them from the inode (ENXIO for a
    # socket, EACCES for a device on a nodev mount, a FIFO's pipe).
    call("open(%s, O_RDONLY|O_NONBLOCK)" % name, open_close, name,
         os.O_RDONLY | os.O_NONBLOCK)
    call("open(%s, O_WRONLY|O_NONBLOCK)" % name, open_close, name,
         os.O_WRONLY | os.O_NONBLOCK)
    call("open(%s, O_RDWR|O_TRUNC)" % name, open_close, name,
         os.O_RDWR | os.O_TRUNC | os.O_NONBLOCK)
    call("truncate(%s)" % name, os.truncate, name, 0)
    call("readlink(%s)" % name, os.readlink, name)
    call("listdir(%s)" % name, os.listdir, name)
    call("setxattr(%s, user.x)" % name, os.setxattr, name, "user.x", b"1",
         follow_symlinks=False)
    call("getxattr(%s, user.x)" % name, os.getxattr, name, "user.x",
         follow_symlinks=False)
    call("access(%s, R_OK)" % name, os.access, name, os.R_OK)
    call("link(%s, %s.l)" % (name, name), os.link, name, name + ".l")
    lstat(name)
    lstat(name + ".l")
    call("rename(%s, %s.r)" % (name, name), os.rename, name, name + ".r")
    lstat(name)
    lstat(name + ".r")
    with open("victim", "wb") as f:
        f.write(b"victim bytes")
    call("rename(%s.l, victim)" % name, os.rename, name + ".l", "victim")
    lstat("victim")
    lstat(name + ".r")
    call("rename(victim, adir)", os.rename, "victim", "adir")
    call("rename(adir, victim)", os.rename, "adir", "victim")
    call("unlink(victim)", os.unlink, "victim")
    call("unlink(victim) again", os.unlink, "victim")
    lstat(name + ".r")
    call("rmdir(%s.r)" % name, os.rmdir, name + ".r")
    call("unlink(%s.r)" % name, os.unlink, name + ".r")
    lstat(name + ".r")
    # One of each stays for the final listing.
    call("mknod(%s.keep, 0600)" % name, os.mknod, name + ".keep", kind | 0o600, dev)


def unix_socket():
    section("unix socket")
    path = "srv.sock"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    if not call("bind(%s)" % path, s.bind, path):
        s.close()
        return
    lstat(path)
    call("listen(%s)" % path, s.listen, 4)
    out.flush()
    pid = os.fork()
    if pid == 0:
        rc = 1
        try:
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.settimeout(10)
            c.connect(path)
            c.sendall(b"ping from the client")
            rc = 0 if c.recv(100) == b"pong from the server" else 2
            c.close()
        finally:
            os._exit(rc)
    s.settimeout(10)
    try:
        conn, _ = s.accept()
        conn.settimeout(10)
        got = conn.recv(100)
        conn.sendall(b"pong from the server")
        conn.close()
        say("accept and recv(%s)" % path, got.decode())
    except OSError as e:
        say("accept and recv(%s)" % path, ename(e))
    _, st = os.waitpid(pid, 0)
    say("the other process's connect, send, recv", os.waitstatus_to_exitcode(st))
    call("open(%s)" % path, open_close, path, os.O_RDONLY)
    s.close()
    call("bind(%s) again" % path, socket.socket(socket.AF_UNIX).bind, path)
    # A socket file whose socket is closed refuses connections.
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    call("connect(%s) after close" % path, c.connect, path)
    c.close()
    call("unlink(%s)" % path, os.unlink, path)
    # Renamed while listening: the socket follows its inode.
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    call("bind(l.sock)", s.bind, "l.sock")
    s.listen(1)
    call("rename(l.sock, m.sock)", os.rename, "l.sock", "m.sock")
    c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    c.settimeout(10)
    call("connect(m.sock)", c.connect, "m.sock")
    c.close()
    s.close()
    call("unlink(m.sock)", os.unlink, "m.sock")


def nobody(root):
    section("uid 65534")
    if not root:
        say("as uid 65534", "skipped (not root)")
        return
    os.mkdir("pub")
    os.chmod("pub", 0o777)

    def child():
        call("nobody: mknod(pub/c, chr 1:3)", os.mknod, "pub/c", stat.S_IFCHR | 0o600,
             os.makedev(1, 3))
        call("nobody: mknod(pub/b, blk 7:0)", os.mknod, "pub/b", stat.S_IFBLK | 0o600,
             os.makedev(7, 0))
        call("nobody: mknod(pub/s, sock)", os.mknod, "pub/s", stat.S_IFSOCK | 0o600)
        call("nobody: mknod(pub/f, fifo)", os.mknod, "pub/f", stat.S_IFIFO | 0o600)
        lstat("pub/c")
        lstat("pub/s")
        call("nobody: chmod(pub/s, 0666)", os.chmod, "pub/s", 0o666)
        call("nobody: mknod(sx, sock) in a 0755 dir", os.mknod, "sx",
             stat.S_IFSOCK | 0o600)

    as_nobody(child)
    call("chmod(sock.keep, 0600)", os.chmod, "sock.keep", 0o600)

    def child2():
        call("nobody: chmod(sock.keep)", os.chmod, "sock.keep", 0o644)
        call("nobody: unlink(sock.keep)", os.unlink, "sock.keep")
        call("nobody: rename(pub/s, pub/s2)", os.rename, "pub/s", "pub/s2")

    as_nobody(child2)
    lstat("pub/s2")


def devices(root):
    section("device numbers")
    if not root:
        say("device numbers", "skipped (not root)")
        return
    for maj, mi in ((0, 0), (8, 1), (4095, 1048575), (259, 65536)):
        n = "d-%d-%d" % (maj, mi)
        call("mknod(%s)" % n, os.mknod, n, stat.S_IFBLK | 0o600, os.makedev(maj, mi))
        lstat(n)
    # Not a Linux device number: never reaches the file system.
    try:
        d = os.makedev(4096, 0)
    except (OverflowError, ValueError):
        d = None
    if d is not None:
        call("mknod(d-4096-0)", os.mknod, "d-4096-0", stat.S_IFCHR | 0o600, d)


def main():
    args = sys.argv[1:]
    if args and args[0] == "--list-only":
        top = os.path.join(args[1], "s")
        listing(top)
        return 0
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 64
    root = os.geteuid() == 0
    os.umask(0o022)
    os.chdir(args[0])
    os.mkdir("s")
    os.chdir("s")
    os.mkdir("adir")
    for name, kind, dev in TYPES:
        one_type(name, kind, dev, root)
    unix_socket()
    nobody(root)
    devices(root)
    os.chdir(args[0])
    print("== listing", file=out)
    listing("s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
