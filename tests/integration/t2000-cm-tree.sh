#!/usr/bin/env bash
# t2000-cm-tree: vos import a sample tree, mount it with cairnd, and check
# that ls -lR, find, stat, cat/cmp, tar, getfattr and readlink on the mount
# agree with the source: names, types, sizes, modes, owners, times,
# contents, xattrs, symlink targets, hard-link counts. Mutations are refused
# with EROFS (writes come in a later issue).
. "$top_srcdir/tests/integration/lib.sh"
t_need_fuse
t_timeout 120
command -v setfattr >/dev/null || { echo "# SKIP: no setfattr (attr package)"; exit 77; }

src=$T_DIR/src
mkdir -p "$src/dir one/sub/deeper" "$src/empty dir" "$src/ünïcødé"
: >"$src/empty"
echo "hello world" >"$src/hello.txt"
head -c $((1536 * 1024 + 7)) /dev/urandom >"$src/dir one/big.bin"
head -c $((256 * 1024)) /dev/urandom >"$src/exact256k.bin"
head -c $((512 * 1024)) /dev/urandom >"$src/dir one/sub/two-chunks.bin"
echo "deep" >"$src/dir one/sub/deeper/leaf.txt"
echo "unicode" >"$src/ünïcødé/fïlé ñame.txt"
echo "spaced" >"$src/name with  spaces.txt"
ln -s hello.txt "$src/rel-link"
ln -s "/etc/passwd" "$src/abs-link"
ln -s "does/not/exist" "$src/dangling"
ln "$src/hello.txt" "$src/dir one/hardlink.txt"
mkfifo "$src/fifo"
chmod 0600 "$src/empty"
chmod 0755 "$src/dir one/big.bin"
chmod 0444 "$src/exact256k.bin"
chmod 2750 "$src/dir one/sub"
chown 1234:5678 "$src/hello.txt"
setfattr -n user.color -v red "$src/hello.txt"
setfattr -n user.empty "$src/exact256k.bin"
setfattr -n user.bin -v 0x00ff10 "$src/dir one"
touch -h -d '2001-02-03 04:05:06.123456789' "$src/rel-link"
touch -d '1999-12-31 23:59:59.5' "$src/dir one/big.bin"

vold_start
vos init >/dev/null 2>&1
vos import tree "$src" >"$T_DIR/import.log" 2>&1 || { cat "$T_DIR/import.log"; exit 99; }
make_token tree ro "$T_DIR/tok"
mnt=$T_DIR/mnt
cairnd_mount "$mnt" "$T_DIR/cache" tree "$T_DIR/tok" || exit 1

# One walker for both trees: every attribute an application can see.
walk() {
	python3 - "$1" <<'PY'
import hashlib, os, stat, sys
root = sys.argv[1]
rows = []
for d, dirs, files in os.walk(root):
    dirs.sort()  # readdir order is the file system's (cairnd: name order)
    for n in sorted(dirs + files):
        p = os.path.join(d, n)
        st = os.lstat(p)
        rel = os.path.relpath(p, root)
        kind = stat.S_IFMT(st.st_mode)
        row = [rel, "%o" % st.st_mode, str(st.st_uid), str(st.st_gid),
               str(st.st_mtime_ns)]
        if stat.S_ISREG(kind):
            h = hashlib.sha256(open(p, "rb").read()).hexdigest()
            row += [str(st.st_size), str(st.st_nlink), h]
        elif stat.S_ISLNK(kind):
            row += [os.readlink(p)]
        if not stat.S_ISLNK(kind):
            xs = sorted(x for x in os.listxattr(p, follow_symlinks=False)
                        if x.startswith("user."))
            row += ["%s=%s" % (x, os.getxattr(p, x).hex()) for x in xs]
        rows.append("|".join(row))
print("\n".join(rows))
PY
}
walk "$src" >"$T_DIR/src.walk"
walk "$mnt" >"$T_DIR/mnt.walk" 2>"$T_DIR/mnt.walk.err"
t_check "walk of the mount succeeds" test ! -s "$T_DIR/mnt.walk.err"
t_check "names, types, modes, owners, times, sizes, link counts, contents, xattrs, links agree" \
	diff -u "$T_DIR/src.walk" "$T_DIR/mnt.walk"

# The usual tools, each against the source.
lsR() { (cd "$1" && ls -lRn --time-style=+%s.%N . | grep -v '^total ' |
	awk '$1 ~ /^d/ {$5="-"} {print}'); }
lsR "$src" >"$T_DIR/src.ls"
lsR "$mnt" >"$T_DIR/mnt.ls"
t_check "ls -lR agrees (directory sizes aside)" diff -u "$T_DIR/src.ls" "$T_DIR/mnt.ls"
(cd "$src" && find . | sort) >"$T_DIR/src.find"
(cd "$mnt" && find . | sort) >"$T_DIR/mnt.find"
t_check "find lists the same names" diff -u "$T_DIR/src.find" "$T_DIR/mnt.find"
t_is "$(stat -c '%F %a %s %h %u %g %Y' "$mnt/hello.txt")" \
	"$(stat -c '%F %a %s %h %u %g %Y' "$src/hello.txt")" "stat of a hard-linked file"
t_is "$(stat -c '%i' "$mnt/hello.txt")" "$(stat -c '%i' "$mnt/dir one/hardlink.txt")" \
	"hard links share one inode number"
t_is "$(stat -c '%F' "$mnt/fifo")" "fifo" "a FIFO is a FIFO"
t_is "$(readlink "$mnt/rel-link")" "hello.txt" "readlink relative"
t_is "$(readlink "$mnt/dangling")" "does/not/exist" "readlink dangling"
t_is "$(cat "$mnt/rel-link")" "hello world" "reading through a symlink"
t_check "cmp a file of 1.5 MiB (7 chunks)" cmp "$src/dir one/big.bin" "$mnt/dir one/big.bin"
t_check "cmp a file of exactly 256 KiB" cmp "$src/exact256k.bin" "$mnt/exact256k.bin"
t_is "$(getfattr --only-values -n user.color "$mnt/hello.txt")" "red" "getfattr value"
t_is "$(getfattr -e hex -n user.bin "$mnt/dir one" 2>/dev/null | grep '^user')" "user.bin=0x00ff10" "binary xattr on a dir"
getfattr -n user.nope "$mnt/hello.txt" >"$T_DIR/nodata.out" 2>&1
t_check "a missing xattr is ENODATA" grep -q "No such attribute" "$T_DIR/nodata.out"
t_is "$(python3 -c 'import os,sys
try:
    os.getxattr(sys.argv[1], "user.color", follow_symlinks=True) and None
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    buf = ctypes.create_string_buffer(1)
    r = libc.getxattr(sys.argv[1].encode(), b"user.color", buf, 1)
    print(r, os.strerror(ctypes.get_errno()))
except OSError as e:
    print(e)' "$mnt/hello.txt")" "-1 Numerical result out of range" "a too-small buffer is ERANGE"

# tar of the mount extracts into a copy equal to the source.
mkdir -p "$T_DIR/untar"
if tar --xattrs --xattrs-include='user.*' -C "$mnt" -cf "$T_DIR/t.tar" . 2>"$T_DIR/tar.err" &&
	tar --xattrs --xattrs-include='user.*' -C "$T_DIR/untar" -xpf "$T_DIR/t.tar"; then
	_t_report ok "tar c of the mount"
else
	_t_report fail "tar c of the mount"; cat "$T_DIR/tar.err"
fi
walk "$T_DIR/untar" | sed 's/|[0-9]*|\([0-9a-f]\{64\}\)/|\1/' >"$T_DIR/untar.walk"
sed 's/|[0-9]*|\([0-9a-f]\{64\}\)/|\1/' "$T_DIR/src.walk" >"$T_DIR/src.walk2"
t_check "the tar copy equals the source" diff -u "$T_DIR/src.walk2" "$T_DIR/untar.walk"

# Errors: missing names, and every mutation is EROFS for now.
t_is "$(cat "$mnt/nope" 2>&1 | sed 's/.*: //')" "No such file or directory" "ENOENT for a missing name"
t_is "$(touch "$mnt/new" 2>&1 | sed 's/.*: //')" "Read-only file system" "create is EROFS"
t_is "$(mkdir "$mnt/newdir" 2>&1 | sed 's/.*: //')" "Read-only file system" "mkdir is EROFS"
t_is "$(sh -c "echo x >>'$mnt/hello.txt'" 2>&1 | sed 's/.*: //')" "Read-only file system" "write is EROFS"
t_is "$(rm -f "$mnt/empty" 2>&1 | sed 's/.*: //')" "Read-only file system" "unlink is EROFS"
t_check "statfs works" stat -f "$mnt"
t_is "$(stat -f -c %l "$mnt")" "255" "statfs: names up to 255 bytes"
t_check "the mount says what it is" sh -c "grep -q 'cairn:tree $mnt fuse.cairn' /proc/mounts"

cairnd_umount "$mnt"
t_check "cairnd exits on unmount" sh -c "! kill -0 $(cairnd_pid "$mnt") 2>/dev/null"
t_check "clean exit is logged with the counters" grep -q "stat chunks_fetched" "$T_DIR/cairnd-mnt.log"
t_done
